//! GPT-2 decoders (`model_type: gpt2`): learned positions, pre-LayerNorm blocks, fused
//! `c_attn` projection (Conv1D weights stored `[in, out]`), GELU (tanh) MLP, tied head —
//! as Hugging Face `GPT2LMHeadModel` computes them.
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

/// `x @ W + b` for a GPT-2 `Conv1D` named `prefix` (`weight` `[inp, out]`).
fn conv1d(
    b: &mut Builder<'_>,
    prefix: &str,
    x: ValueId,
    inp: usize,
    out: usize,
) -> Result<ValueId> {
    let w = b.weight(&format!("{prefix}.weight"), &[inp, out])?;
    let y = b.matmul(prefix, x, w)?;
    let bias = b.weight(&format!("{prefix}.bias"), &[out])?;
    b.binary(&format!("{prefix}/bias"), BinaryKind::Add, y, bias)
}

pub fn build(c: &Config, ckpt: &Checkpoint, options: &ImportOptions) -> Result<Graph> {
    let dim = c.usize("n_embd")?;
    let layers = c.usize("n_layer")?;
    let heads = c.usize("n_head")?;
    let vocab = c.usize("vocab_size")?;
    let positions = c.usize("n_positions")?;
    let inner = c.usize_or("n_inner", 4 * dim)?;
    let eps = c.f64_or("layer_norm_epsilon", 1e-5)? as f32;
    if heads == 0 || dim % heads != 0 {
        return Err(c.error("n_head", format!("{heads} does not divide n_embd {dim}")));
    }
    let act = match c.str_or("activation_function", "gelu_new")?.as_str() {
        "gelu_new" | "gelu_pytorch_tanh" => UnaryKind::GeluTanh,
        "gelu" => UnaryKind::Gelu,
        "relu" => UnaryKind::Relu,
        "silu" | "swish" => UnaryKind::Silu,
        other => {
            return Err(c.error("activation_function", format!("`{other}` is not supported")));
        }
    };
    c.require(
        "scale_attn_by_inverse_layer_idx",
        &Value::from(false),
        "per-layer attention scaling",
    )?;
    let scale_weights = c.bool_or("scale_attn_weights", true)?;
    let hd = dim / heads;
    let mut b = Builder::new(ckpt);
    let stateful = options.max_context;
    let (seq, past) = match stateful {
        Some(m) => (1, m.saturating_sub(1)),
        None => (super::sequence_length(options)?, 0),
    };
    if past + seq > positions {
        return Err(c.error(
            "n_positions",
            format!("{positions} positions, but the build needs {}", past + seq),
        ));
    }
    let ids = b.input("input_ids", DType::I64, vec![1, seq]);
    let wte = b.weight("wte.weight", &[vocab, dim])?;
    let wpe = b.weight("wpe.weight", &[positions, dim])?;
    let tokens = b.gather("wte", wte, ids)?;
    let pos = match stateful {
        Some(_) => {
            let position_ids = b.input("position_ids", DType::I64, vec![1, 1]);
            b.gather("wpe", wpe, position_ids)?
        }
        None => {
            let table = ckpt.get("wpe.weight", &[positions, dim])?.data.to_f64_vec();
            let first: Vec<f32> = table.iter().take(seq * dim).map(|&v| v as f32).collect();
            b.f32_constant("wpe:positions", vec![1, seq, dim], first)?
        }
    };
    let mut x = b.binary("embeddings", BinaryKind::Add, tokens, pos)?;
    let keys = past + seq;
    let scale = b.f32_constant(
        "attention.scale",
        vec![],
        vec![if scale_weights {
            1.0 / (hd as f32).sqrt()
        } else {
            1.0
        }],
    )?;
    let mask = if seq > 1 {
        Some(b.f32_constant(
            "attention.causal_mask",
            vec![seq, keys],
            causal_mask(1, seq, past),
        )?)
    } else {
        None
    };
    let mut presents = Vec::new();
    for layer in 0..layers {
        let p = format!("h.{layer}");
        let h = b.layer_norm(
            &format!("{p}.ln_1"),
            x,
            &format!("{p}.ln_1.weight"),
            &format!("{p}.ln_1.bias"),
            dim,
            eps,
        )?;
        let a = format!("{p}.attn");
        let qkv = conv1d(&mut b, &format!("{a}.c_attn"), h, dim, 3 * dim)?;
        let mut split = Vec::new();
        for (i, what) in ["q", "k", "v"].iter().enumerate() {
            let t = b.slice(&format!("{a}.{what}"), qkv, 2, i * dim, (i + 1) * dim)?;
            let t = b.reshape(&format!("{a}.{what}/heads"), t, vec![1, seq, heads, hd])?;
            split.push(b.transpose(&format!("{a}.{what}/transpose"), t, vec![0, 2, 1, 3])?);
        }
        let [q, mut k, mut v]: [ValueId; 3] = split
            .try_into()
            .map_err(|_| crate::error::Error::Internal("q, k, v split".into()))?;
        if stateful.is_some() {
            let pk = b.input(
                &format!("past_key_values.{layer}.key"),
                DType::F32,
                vec![1, heads, past, hd],
            );
            let pv = b.input(
                &format!("past_key_values.{layer}.value"),
                DType::F32,
                vec![1, heads, past, hd],
            );
            k = b.concat(&format!("{a}.k/cache"), &[pk, k], 2)?;
            v = b.concat(&format!("{a}.v/cache"), &[pv, v], 2)?;
            presents.push((format!("present.{layer}.key"), k));
            presents.push((format!("present.{layer}.value"), v));
        }
        let mask = mask.map(|m| ("causal_mask", m));
        let o = b.attention(&a, "k", [q, k, v], scale, mask)?;
        let o = b.transpose(&format!("{a}.context/transpose"), o, vec![0, 2, 1, 3])?;
        let o = b.reshape(&format!("{a}.context/merge"), o, vec![1, seq, dim])?;
        let o = conv1d(&mut b, &format!("{a}.c_proj"), o, dim, dim)?;
        x = b.binary(&format!("{p}.attention_residual"), BinaryKind::Add, x, o)?;
        let h = b.layer_norm(
            &format!("{p}.ln_2"),
            x,
            &format!("{p}.ln_2.weight"),
            &format!("{p}.ln_2.bias"),
            dim,
            eps,
        )?;
        let m = format!("{p}.mlp");
        let f = conv1d(&mut b, &format!("{m}.c_fc"), h, dim, inner)?;
        let f = b.unary(&format!("{m}.act"), act, f)?;
        let f = conv1d(&mut b, &format!("{m}.c_proj"), f, inner, dim)?;
        x = b.binary(&format!("{p}.mlp_residual"), BinaryKind::Add, x, f)?;
    }
    let x = b.layer_norm("ln_f", x, "ln_f.weight", "ln_f.bias", dim, eps)?;
    let head_name = if !c.bool_or("tie_word_embeddings", true)? && ckpt.contains("lm_head.weight") {
        "lm_head.weight"
    } else {
        "wte.weight"
    };
    let head = b.weight_transposed(head_name, vocab, dim)?;
    let logits = b.matmul("lm_head", x, head)?;
    b.output("logits", logits);
    for (name, v) in presents {
        b.output(&name, v);
    }
    Ok(b.finish())
}
