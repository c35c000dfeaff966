//! Choosing the next token from logits without allocation: greedy, temperature, top-k,
//! top-p (nucleus) and repetition penalty, with a seeded RNG so a seed reproduces a run.
//!
//! The order of the transformations is Hugging Face's: repetition penalty, temperature,
//! top-k, top-p, then a draw from the renormalised distribution.

/// A small, seeded, deterministic random number generator (SplitMix64). Not for
/// cryptography.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub const fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`, 24 bits of resolution.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u32 << 24) as f32)
    }
}

/// How to pick the next token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingParams {
    /// 0 (or below) means greedy: the argmax, no randomness.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens; 0 keeps all.
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches `top_p`;
    /// 1.0 keeps all.
    pub top_p: f32,
    /// Hugging Face's repetition penalty (CTRL): a token already in the history has its
    /// logit divided by this when positive, multiplied when negative; 1.0 is off.
    pub repetition_penalty: f32,
}

impl SamplingParams {
    pub const GREEDY: SamplingParams = SamplingParams {
        temperature: 0.0,
        top_k: 0,
        top_p: 1.0,
        repetition_penalty: 1.0,
    };
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self::GREEDY
    }
}

/// The index of the largest logit (the first one on ties); 0 for an empty slice.
pub fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in logits.iter().enumerate() {
        if x > logits[best] {
            best = i;
        }
    }
    best
}

/// Apply the repetition penalty in place, once per distinct token of `history` (ids outside
/// the vocabulary are ignored). `seen` is scratch of at least `logits.len()` entries.
pub fn apply_repetition_penalty(
    logits: &mut [f32],
    history: &[u32],
    penalty: f32,
    seen: &mut [u32],
) {
    if penalty == 1.0 {
        return;
    }
    let n = logits.len().min(seen.len());
    seen[..n].fill(0);
    for &id in history {
        let id = id as usize;
        if id < n && seen[id] == 0 {
            seen[id] = 1;
            let x = logits[id];
            logits[id] = if x > 0.0 { x / penalty } else { x * penalty };
        }
    }
}

/// A sampler for a vocabulary of `VOCAB` tokens: the parameters, the RNG and the index
/// scratch the top-k/top-p selection sorts, all inline (no allocation).
#[derive(Clone)]
pub struct Sampler<const VOCAB: usize> {
    pub params: SamplingParams,
    pub rng: Rng,
    indices: [u32; VOCAB],
}

impl<const VOCAB: usize> Sampler<VOCAB> {
    pub const fn new(params: SamplingParams, seed: u64) -> Self {
        Sampler {
            params,
            rng: Rng::new(seed),
            indices: [0; VOCAB],
        }
    }

    /// Pick the next token. `logits` is modified (penalised and scaled); `history` holds
    /// the ids seen so far (prompt and generated) for the repetition penalty.
    pub fn sample(&mut self, logits: &mut [f32; VOCAB], history: &[u32]) -> u32 {
        let p = self.params;
        apply_repetition_penalty(logits, history, p.repetition_penalty, &mut self.indices);
        if p.temperature <= 0.0 || VOCAB == 0 {
            return argmax(logits) as u32;
        }
        for x in logits.iter_mut() {
            *x /= p.temperature;
        }
        for (i, slot) in self.indices.iter_mut().enumerate() {
            *slot = i as u32;
        }
        let by_logit_desc = |a: &u32, b: &u32| {
            let (x, y) = (logits[*a as usize], logits[*b as usize]);
            y.partial_cmp(&x)
                .unwrap_or(core::cmp::Ordering::Equal)
                .then(a.cmp(b))
        };
        let k = if p.top_k == 0 || p.top_k > VOCAB {
            VOCAB
        } else {
            p.top_k
        };
        if k < VOCAB {
            self.indices.select_nth_unstable_by(k - 1, by_logit_desc);
        }
        let candidates = &mut self.indices[..k];
        candidates.sort_unstable_by(by_logit_desc);
        // Softmax over the candidates (unnormalised weights, then the top-p cut).
        let max = logits[candidates[0] as usize];
        let mut total = 0.0f32;
        for &i in candidates.iter() {
            let w = crate::math::exp(logits[i as usize] - max);
            logits[i as usize] = w;
            total += w;
        }
        let mut keep = k;
        if p.top_p < 1.0 {
            let mut cumulative = 0.0f32;
            for (n, &i) in candidates.iter().enumerate() {
                cumulative += logits[i as usize] / total;
                if cumulative >= p.top_p {
                    keep = n + 1;
                    break;
                }
            }
        }
        let kept = &candidates[..keep];
        let mass: f32 = kept.iter().map(|&i| logits[i as usize]).sum();
        let mut r = self.rng.next_f32() * mass;
        for &i in kept {
            r -= logits[i as usize];
            if r < 0.0 {
                return i;
            }
        }
        kept[keep - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_reproducible_and_uniform_enough() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        let mut sum = 0.0;
        for _ in 0..10_000 {
            let x = a.next_f32();
            assert_eq!(x, b.next_f32());
            assert!((0.0..1.0).contains(&x));
            sum += x as f64;
        }
        assert!((sum / 10_000.0 - 0.5).abs() < 0.02);
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }

    #[test]
    fn greedy_is_argmax_and_ignores_the_rng() {
        let mut s = Sampler::<4>::new(SamplingParams::GREEDY, 7);
        assert_eq!(s.sample(&mut [0.1, 3.0, -1.0, 2.0], &[]), 1);
        assert_eq!(argmax(&[1.0, 5.0, 5.0]), 1);
    }

    #[test]
    fn repetition_penalty_is_applied_once_per_token() {
        let mut logits = [2.0f32, -2.0, 1.0];
        let mut seen = [0u32; 3];
        apply_repetition_penalty(&mut logits, &[0, 1, 0, 0, 9], 2.0, &mut seen);
        assert_eq!(logits, [1.0, -4.0, 1.0]);
        // With the penalty the greedy choice moves away from the repeated token.
        let params = SamplingParams {
            repetition_penalty: 3.0,
            ..SamplingParams::GREEDY
        };
        let mut s = Sampler::<3>::new(params, 0);
        assert_eq!(s.sample(&mut [2.0, -2.0, 1.0], &[0]), 2);
    }

    #[test]
    fn top_k_one_is_greedy_and_top_p_keeps_the_nucleus() {
        let params = SamplingParams {
            temperature: 1.0,
            top_k: 1,
            ..SamplingParams::GREEDY
        };
        let mut s = Sampler::<5>::new(params, 3);
        for _ in 0..50 {
            assert_eq!(s.sample(&mut [0.0, 1.0, 4.0, 3.9, 0.5], &[]), 2);
        }
        // Probabilities ≈ [0.6, 0.3, 0.1]: top_p 0.5 keeps only token 0, 0.8 keeps 0 and 1.
        let logits = [0.6f32.ln(), 0.3f32.ln(), 0.1f32.ln()];
        let params = SamplingParams {
            temperature: 1.0,
            top_p: 0.5,
            ..SamplingParams::GREEDY
        };
        let mut s = Sampler::<3>::new(params, 11);
        for _ in 0..50 {
            assert_eq!(s.sample(&mut logits.clone(), &[]), 0);
        }
        s.params.top_p = 0.8;
        let mut counts = [0; 3];
        for _ in 0..2000 {
            counts[s.sample(&mut logits.clone(), &[]) as usize] += 1;
        }
        assert_eq!(counts[2], 0);
        assert!(
            (counts[0] as f32 / 2000.0 - 2.0 / 3.0).abs() < 0.05,
            "{counts:?}"
        );
    }

    #[test]
    fn temperature_sampling_follows_the_distribution_and_the_seed() {
        let logits = [0.5f32.ln(), 0.25f32.ln(), 0.25f32.ln()];
        let params = SamplingParams {
            temperature: 1.0,
            ..SamplingParams::GREEDY
        };
        let (mut a, mut b) = (Sampler::<3>::new(params, 5), Sampler::<3>::new(params, 5));
        let mut counts = [0; 3];
        for _ in 0..4000 {
            let x = a.sample(&mut logits.clone(), &[]);
            assert_eq!(x, b.sample(&mut logits.clone(), &[]));
            counts[x as usize] += 1;
        }
        assert!((counts[0] as f32 / 4000.0 - 0.5).abs() < 0.04, "{counts:?}");
        assert!(
            (counts[1] as f32 / 4000.0 - 0.25).abs() < 0.04,
            "{counts:?}"
        );
    }
}
