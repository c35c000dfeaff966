//! Llama-family decoders (`model_type: llama`): RMSNorm, rotary embeddings (rope_theta,
//! `linear` and `llama3` scaling), grouped-query attention, SiLU-gated MLP, tied or untied
//! embeddings — as Hugging Face `LlamaForCausalLM` computes them.
#![deny(clippy::indexing_slicing)]
use super::builder::{Builder, causal_mask};
use super::checkpoint::Checkpoint;
use super::config::Config;
use crate::error::Result;
use crate::frontend::ImportOptions;
use crate::ir::{DType, Graph, ValueId};
use crate::ops::binary::BinaryKind;
use crate::ops::unary::UnaryKind;
use serde_json::Value;

/// The shape of the model, from `config.json`.
struct Dims {
    hidden: usize,
    intermediate: usize,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    vocab: usize,
    eps: f32,
    tied: bool,
    attention_bias: bool,
    mlp_bias: bool,
}

fn dims(c: &Config) -> Result<Dims> {
    let hidden = c.usize("hidden_size")?;
    let heads = c.usize("num_attention_heads")?;
    let kv_heads = c.usize_or("num_key_value_heads", heads)?;
    if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 {
        return Err(c.error(
            "num_key_value_heads",
            format!("{kv_heads} does not divide num_attention_heads {heads}"),
        ));
    }
    let head_dim = c.usize_or("head_dim", hidden / heads)?;
    if head_dim == 0 || head_dim % 2 != 0 {
        return Err(c.error("head_dim", format!("{head_dim} must be even and positive")));
    }
    let act = c.str_or("hidden_act", "silu")?;
    if act != "silu" {
        return Err(c.error("hidden_act", format!("`{act}` is not supported (silu is)")));
    }
    c.require("partial_rotary_factor", &Value::from(1.0), "partial rotary")?;
    Ok(Dims {
        hidden,
        intermediate: c.usize("intermediate_size")?,
        layers: c.usize("num_hidden_layers")?,
        heads,
        kv_heads,
        head_dim,
        vocab: c.usize("vocab_size")?,
        eps: c.f64_or("rms_norm_eps", 1e-6)? as f32,
        tied: c.bool_or("tie_word_embeddings", false)?,
        attention_bias: c.bool_or("attention_bias", false)?,
        mlp_bias: c.bool_or("mlp_bias", false)?,
    })
}

/// Rotary inverse frequencies (`head_dim / 2` of them) with the config's scaling.
pub fn inv_freq(c: &Config, head_dim: usize) -> Result<Vec<f64>> {
    // transformers ≥ 5 writes `rope_parameters`; older configs `rope_theta` + `rope_scaling`.
    let params = c.object("rope_parameters")?;
    let scaling = match &params {
        Some(p) => Some(p.clone()),
        None => c.object("rope_scaling")?,
    };
    let (field, theta) = match &params {
        Some(p) if p.get("rope_theta").is_some() => (
            "rope_parameters.rope_theta",
            p.f64_or("rope_theta", 10000.0)?,
        ),
        _ => ("rope_theta", c.f64_or("rope_theta", 10000.0)?),
    };
    if theta <= 0.0 {
        return Err(c.error(field, format!("{theta} must be positive")));
    }
    let mut inv: Vec<f64> = (0..head_dim / 2)
        .map(|j| {
            // transformers computes these in float32.
            let exponent = ((2 * j) as f32 / head_dim as f32) as f64;
            (1.0 / (theta as f32).powf(exponent as f32)) as f64
        })
        .collect();
    let Some(s) = scaling else {
        return Ok(inv);
    };
    let kind = match s.get("rope_type").or(s.get("type")) {
        Some(Value::String(k)) => k.clone(),
        _ => "default".to_string(),
    };
    match kind.as_str() {
        "default" => {}
        "linear" => {
            let factor = s.f64_or("factor", 1.0)?;
            inv.iter_mut().for_each(|f| *f /= factor);
        }
        "llama3" => {
            let factor = s.f64_or("factor", 8.0)?;
            let low = s.f64_or("low_freq_factor", 1.0)?;
            let high = s.f64_or("high_freq_factor", 4.0)?;
            let old = s.f64_or("original_max_position_embeddings", 8192.0)?;
            let (low_wavelen, high_wavelen) = (old / low, old / high);
            for f in inv.iter_mut() {
                let wavelen = 2.0 * std::f64::consts::PI / *f;
                if wavelen > low_wavelen {
                    *f /= factor;
                } else if wavelen >= high_wavelen {
                    let smooth = (old / wavelen - low) / (high - low);
                    *f = (1.0 - smooth) * *f / factor + smooth * *f;
                }
            }
        }
        other => {
            return Err(c.error(
                "rope_scaling",
                format!("rope type `{other}` is not supported (default, linear, llama3 are)"),
            ));
        }
    }
    Ok(inv)
}

/// `cos` and `sin` tables `[positions, head_dim]` in rotate-half layout.
pub fn rope_tables(inv: &[f64], positions: usize) -> (Vec<f32>, Vec<f32>) {
    let (mut cos, mut sin) = (Vec::new(), Vec::new());
    for p in 0..positions {
        for &f in inv.iter().chain(inv) {
            let angle = (p as f32 * f as f32) as f64;
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    (cos, sin)
}

/// Apply rotary embeddings to `x` `[1, heads, seq, head_dim]`.
fn rotate(
    b: &mut Builder<'_>,
    name: &str,
    x: ValueId,
    cos: ValueId,
    sin: ValueId,
) -> Result<ValueId> {
    let d = *b.ty(x).shape.last().unwrap_or(&0);
    let x1 = b.slice(&format!("{name}/first_half"), x, 3, 0, d / 2)?;
    let x2 = b.slice(&format!("{name}/second_half"), x, 3, d / 2, d)?;
    let neg = b.unary(&format!("{name}/negate"), UnaryKind::Neg, x2)?;
    let rotated = b.concat(&format!("{name}/rotate_half"), &[neg, x1], 3)?;
    let a = b.binary(&format!("{name}/cos"), BinaryKind::Mul, x, cos)?;
    let r = b.binary(&format!("{name}/sin"), BinaryKind::Mul, rotated, sin)?;
    b.binary(name, BinaryKind::Add, a, r)
}

/// Build the graph (see the module docs of `frontend::safetensors` for the two shapes).
pub fn build(c: &Config, ckpt: &Checkpoint, options: &ImportOptions) -> Result<Graph> {
    let d = dims(c)?;
    let inv = inv_freq(c, d.head_dim)?;
    let mut b = Builder::new(ckpt);
    let stateful = options.max_context;
    let (seq, past) = match stateful {
        Some(m) => (1, m.saturating_sub(1)),
        None => (super::sequence_length(options)?, 0),
    };
    let ids = b.input("input_ids", DType::I64, vec![1, seq]);
    let hd = d.head_dim;
    // Rotary tables for this graph's positions: gathered by `position_ids` when stateful,
    // constants for positions 0..seq otherwise.
    let (cos, sin) = match stateful {
        Some(m) => {
            let positions = b.input("position_ids", DType::I64, vec![1, 1]);
            let (cos, sin) = rope_tables(&inv, m);
            let cos = b.f32_constant("rotary.cos_table", vec![m, hd], cos)?;
            let sin = b.f32_constant("rotary.sin_table", vec![m, hd], sin)?;
            let cos = b.gather("rotary.cos", cos, positions)?;
            let sin = b.gather("rotary.sin", sin, positions)?;
            (
                b.reshape("rotary.cos/reshape", cos, vec![1, 1, 1, hd])?,
                b.reshape("rotary.sin/reshape", sin, vec![1, 1, 1, hd])?,
            )
        }
        None => {
            let (cos, sin) = rope_tables(&inv, seq);
            (
                b.f32_constant("rotary.cos", vec![1, 1, seq, hd], cos)?,
                b.f32_constant("rotary.sin", vec![1, 1, seq, hd], sin)?,
            )
        }
    };
    let embed = b.weight("model.embed_tokens.weight", &[d.vocab, d.hidden])?;
    let mut x = b.gather("model.embed_tokens", embed, ids)?;
    let groups = d.heads / d.kv_heads;
    let keys = past + seq;
    let scale = b.f32_constant("attention.scale", vec![], vec![1.0 / (hd as f32).sqrt()])?;
    let mask = if seq > 1 {
        let m = causal_mask(groups, seq, past);
        Some(b.f32_constant("attention.causal_mask", vec![groups * seq, keys], m)?)
    } else {
        None
    };
    let mut presents = Vec::new();
    for layer in 0..d.layers {
        let p = format!("model.layers.{layer}");
        let h = b.rms_norm(
            &format!("{p}.input_layernorm"),
            x,
            &format!("{p}.input_layernorm.weight"),
            d.hidden,
            d.eps,
        )?;
        let a = format!("{p}.self_attn");
        let q = b.linear(
            &format!("{a}.q_proj"),
            h,
            d.hidden,
            d.heads * hd,
            d.attention_bias,
        )?;
        let k = b.linear(
            &format!("{a}.k_proj"),
            h,
            d.hidden,
            d.kv_heads * hd,
            d.attention_bias,
        )?;
        let v = b.linear(
            &format!("{a}.v_proj"),
            h,
            d.hidden,
            d.kv_heads * hd,
            d.attention_bias,
        )?;
        let q = b.reshape(&format!("{a}.q/heads"), q, vec![1, seq, d.heads, hd])?;
        let q = b.transpose(&format!("{a}.q/transpose"), q, vec![0, 2, 1, 3])?;
        let k = b.reshape(&format!("{a}.k/heads"), k, vec![1, seq, d.kv_heads, hd])?;
        let k = b.transpose(&format!("{a}.k/transpose"), k, vec![0, 2, 1, 3])?;
        let v = b.reshape(&format!("{a}.v/heads"), v, vec![1, seq, d.kv_heads, hd])?;
        let v = b.transpose(&format!("{a}.v/transpose"), v, vec![0, 2, 1, 3])?;
        let q = rotate(&mut b, &format!("{a}.q/rotary"), q, cos, sin)?;
        let k = rotate(&mut b, &format!("{a}.k/rotary"), k, cos, sin)?;
        let (k, v) = if stateful.is_some() {
            let pk = b.input(
                &format!("past_key_values.{layer}.key"),
                DType::F32,
                vec![1, d.kv_heads, past, hd],
            );
            let pv = b.input(
                &format!("past_key_values.{layer}.value"),
                DType::F32,
                vec![1, d.kv_heads, past, hd],
            );
            let k = b.concat(&format!("{a}.k/cache"), &[pk, k], 2)?;
            let v = b.concat(&format!("{a}.v/cache"), &[pv, v], 2)?;
            presents.push((format!("present.{layer}.key"), k));
            presents.push((format!("present.{layer}.value"), v));
            (k, v)
        } else {
            (k, v)
        };
        // Grouped-query attention: the `groups` query heads of one kv head attend together
        // as `[1, kv_heads, groups * seq, head_dim]`.
        let q = b.reshape(
            &format!("{a}.q/groups"),
            q,
            vec![1, d.kv_heads, groups * seq, hd],
        )?;
        let mask = mask.map(|m| ("causal_mask", m));
        let o = b.attention(&a, "k", [q, k, v], scale, mask)?;
        let o = b.reshape(&format!("{a}.context/heads"), o, vec![1, d.heads, seq, hd])?;
        let o = b.transpose(&format!("{a}.context/transpose"), o, vec![0, 2, 1, 3])?;
        let o = b.reshape(&format!("{a}.context/merge"), o, vec![1, seq, d.heads * hd])?;
        let o = b.linear(
            &format!("{a}.o_proj"),
            o,
            d.heads * hd,
            d.hidden,
            d.attention_bias,
        )?;
        x = b.binary(&format!("{p}.attention_residual"), BinaryKind::Add, x, o)?;

        let m = format!("{p}.mlp");
        let h = b.rms_norm(
            &format!("{p}.post_attention_layernorm"),
            x,
            &format!("{p}.post_attention_layernorm.weight"),
            d.hidden,
            d.eps,
        )?;
        let g = b.linear(
            &format!("{m}.gate_proj"),
            h,
            d.hidden,
            d.intermediate,
            d.mlp_bias,
        )?;
        let u = b.linear(
            &format!("{m}.up_proj"),
            h,
            d.hidden,
            d.intermediate,
            d.mlp_bias,
        )?;
        let g = b.unary(&format!("{m}.act_fn"), UnaryKind::Silu, g)?;
        let gu = b.binary(&format!("{m}.gate"), BinaryKind::Mul, g, u)?;
        let down = b.linear(
            &format!("{m}.down_proj"),
            gu,
            d.intermediate,
            d.hidden,
            d.mlp_bias,
        )?;
        x = b.binary(&format!("{p}.mlp_residual"), BinaryKind::Add, x, down)?;
    }
    let x = b.rms_norm("model.norm", x, "model.norm.weight", d.hidden, d.eps)?;
    let head = if d.tied || !ckpt.contains("lm_head.weight") {
        if !d.tied {
            return Err(crate::Error::CheckpointTensor {
                tensor: "lm_head.weight".into(),
                reason: "missing, and tie_word_embeddings is false".into(),
            });
        }
        b.weight_transposed("model.embed_tokens.weight", d.vocab, d.hidden)?
    } else {
        b.weight_transposed("lm_head.weight", d.vocab, d.hidden)?
    };
    let logits = b.matmul("lm_head", x, head)?;
    b.output("logits", logits);
    for (name, v) in presents {
        b.output(&name, v);
    }
    Ok(b.finish())
}
