//! Rotary position embedding in the "rotate half" form (Llama, GPT-NeoX):
//! `out = x · cos + rotate_half(x) · sin`, `rotate_half(x) = [-x[h..], x[..h]]`, row by row
//! through [`rowwise::rotary_half`] (ISA variants chosen at compile time).
use super::rowwise;

/// `x` and `out` are rows of `d` (even) elements; row `r` uses row `r % period` of `cos` and
/// `sin` (`period · d` elements each). Each element is rounded as the unfused
/// `Mul`/`Neg`/`Concat`/`Mul`/`Add` chain rounds it.
pub fn rotary_half(x: &[f32], cos: &[f32], sin: &[f32], out: &mut [f32], d: usize, period: usize) {
    let h = d / 2;
    if h == 0 || period == 0 {
        return;
    }
    for (r, (xr, or)) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)).enumerate() {
        let at = (r % period) * d;
        rowwise::rotary_half(xr, &cos[at..at + d], &sin[at..at + d], or);
    }
}

#[cfg(test)]
mod tests {
    use std::vec::Vec;

    #[test]
    fn matches_the_unfused_chain() {
        let (rows, d, period) = (6, 8, 3);
        let val = |i: usize| ((i * 7919) % 97) as f32 / 97.0 - 0.5;
        let x: Vec<f32> = (0..rows * d).map(val).collect();
        let cos: Vec<f32> = (0..period * d).map(|i| val(i + 11)).collect();
        let sin: Vec<f32> = (0..period * d).map(|i| val(i + 29)).collect();
        let mut out = std::vec![0.0; rows * d];
        super::rotary_half(&x, &cos, &sin, &mut out, d, period);
        for r in 0..rows {
            let xr = &x[r * d..(r + 1) * d];
            let p = (r % period) * d;
            let rotated: Vec<f32> = (0..d)
                .map(|j| {
                    if j < d / 2 {
                        -xr[j + d / 2]
                    } else {
                        xr[j - d / 2]
                    }
                })
                .collect();
            for j in 0..d {
                let a = xr[j] * cos[p + j];
                let b = rotated[j] * sin[p + j];
                assert_eq!(out[r * d + j], a + b, "row {r} col {j}");
            }
        }
    }
}
