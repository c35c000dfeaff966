//! BERT-style encoders (`model_type: bert`, incl. MiniLM): token + position + token-type
//! embeddings, post-LayerNorm blocks, GELU MLP. Outputs `last_hidden_state`, and the
//! pooled `sentence_embedding` (mean over the attention mask, optionally L2-normalised)
//! when the folder's sentence-transformers config (`modules.json`, `1_Pooling/config.json`)
//! asks for mean pooling.
#![deny(clippy::indexing_slicing)]
use super::Source;
use super::builder::Builder;
use super::checkpoint::Checkpoint;
use super::config::Config;
use crate::error::{Error, Result};
use crate::frontend::ImportOptions;
use crate::ir::{DType, Graph, ValueId};
use crate::ops::Op;
use crate::ops::binary::BinaryKind;
use crate::ops::unary::UnaryKind;

/// What sentence-transformers puts after the transformer.
struct Pooling {
    mean: bool,
    normalize: bool,
}

fn pooling(src: Source<'_>) -> Result<Option<Pooling>> {
    if !src.is_file("modules.json") {
        return Ok(None);
    }
    let text = src.read_to_string("modules.json")?;
    let list: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        Error::InvalidModel(format!(
            "`{}` is not JSON: {e}",
            src.path("modules.json").display()
        ))
    })?;
    let items = list.as_array().cloned().unwrap_or_default();
    let kind = |item: &serde_json::Value| {
        item.get("type")
            .and_then(|t| t.as_str())
            .unwrap_or("")
            .to_string()
    };
    let mut out = Pooling {
        mean: false,
        normalize: false,
    };
    for item in &items {
        let k = kind(item);
        if k.ends_with("models.Pooling") {
            let path = item
                .get("path")
                .and_then(|p| p.as_str())
                .unwrap_or("1_Pooling");
            if path.contains("..") || path.starts_with('/') {
                return Err(Error::InvalidModel(format!(
                    "modules.json: pooling path `{path}` leaves the checkpoint folder"
                )));
            }
            let rel = if path.is_empty() {
                "config.json".to_string()
            } else {
                format!("{path}/config.json")
            };
            let cfg = Config::read(src, &rel)?;
            for mode in [
                "pooling_mode_cls_token",
                "pooling_mode_max_tokens",
                "pooling_mode_mean_sqrt_len_tokens",
                "pooling_mode_weightedmean_tokens",
                "pooling_mode_lasttoken",
            ] {
                if cfg.bool_or(mode, false)? {
                    return Err(cfg.error(mode, "only mean pooling is supported"));
                }
            }
            out.mean = cfg.bool_or("pooling_mode_mean_tokens", false)?;
        } else if k.ends_with("models.Normalize") {
            out.normalize = true;
        } else if !k.ends_with("models.Transformer") {
            return Err(Error::UnsupportedModel(format!(
                "modules.json: sentence-transformers module `{k}` is not supported"
            )));
        }
    }
    Ok(out.mean.then_some(out))
}

pub fn build(
    c: &Config,
    ckpt: &Checkpoint,
    src: Source<'_>,
    options: &ImportOptions,
) -> Result<Graph> {
    if options.max_context.is_some() {
        return Err(Error::Usage(
            "--max-context is for decoders; a BERT encoder is stateless".into(),
        ));
    }
    let dim = c.usize("hidden_size")?;
    let layers = c.usize("num_hidden_layers")?;
    let heads = c.usize("num_attention_heads")?;
    let inner = c.usize("intermediate_size")?;
    let vocab = c.usize("vocab_size")?;
    let positions = c.usize("max_position_embeddings")?;
    let types = c.usize_or("type_vocab_size", 2)?;
    let eps = c.f64_or("layer_norm_eps", 1e-12)? as f32;
    if heads == 0 || dim % heads != 0 {
        return Err(c.error(
            "num_attention_heads",
            format!("{heads} does not divide hidden_size {dim}"),
        ));
    }
    let act = match c.str_or("hidden_act", "gelu")?.as_str() {
        "gelu" => UnaryKind::Gelu,
        "gelu_new" | "gelu_pytorch_tanh" => UnaryKind::GeluTanh,
        "relu" => UnaryKind::Relu,
        other => return Err(c.error("hidden_act", format!("`{other}` is not supported"))),
    };
    let kind = c.str_or("position_embedding_type", "absolute")?;
    if kind != "absolute" {
        return Err(c.error(
            "position_embedding_type",
            format!("`{kind}` is not supported (absolute is)"),
        ));
    }
    let seq = super::sequence_length(options)?;
    if seq > positions {
        return Err(c.error(
            "max_position_embeddings",
            format!("{positions} positions, the build needs {seq}"),
        ));
    }
    let hd = dim / heads;
    let pooling = pooling(src)?;
    let mut b = Builder::new(ckpt);
    let ids = b.input("input_ids", DType::I64, vec![1, seq]);
    let mask_in = b.input("attention_mask", DType::I64, vec![1, seq]);
    let e = "embeddings";
    let words = b.weight(&format!("{e}.word_embeddings.weight"), &[vocab, dim])?;
    let words = b.gather(&format!("{e}.word_embeddings"), words, ids)?;
    let pos_table = ckpt
        .get(
            &format!("{e}.position_embeddings.weight"),
            &[positions, dim],
        )?
        .data
        .to_f64_vec();
    let type_table = ckpt
        .get(&format!("{e}.token_type_embeddings.weight"), &[types, dim])?
        .data
        .to_f64_vec();
    // Positions 0..seq and token type 0, folded into one constant.
    let type0 = type_table
        .get(..dim)
        .ok_or_else(|| c.error("type_vocab_size", "must be at least 1"))?;
    let fixed: Vec<f32> = pos_table
        .iter()
        .take(seq * dim)
        .zip(type0.iter().cycle())
        .map(|(p, t)| (p + t) as f32)
        .collect();
    let fixed = b.f32_constant(&format!("{e}.position_and_type"), vec![1, seq, dim], fixed)?;
    let x = b.binary(&format!("{e}.sum"), BinaryKind::Add, words, fixed)?;
    let mut x = b.layer_norm(
        &format!("{e}.LayerNorm"),
        x,
        &format!("{e}.LayerNorm.weight"),
        &format!("{e}.LayerNorm.bias"),
        dim,
        eps,
    )?;
    // Additive key mask: 0 where attention_mask is 1, the float minimum where it is 0 (as
    // transformers does).
    let maskf = b.op(
        "attention_mask/float",
        Op::Cast(crate::ops::cast::Cast { to: DType::F32 }),
        &[mask_in],
    )?;
    let one = b.f32_constant("attention_mask/one", vec![], vec![1.0])?;
    let inverted = b.binary("attention_mask/invert", BinaryKind::Sub, one, maskf)?;
    let min = b.f32_constant("attention_mask/min", vec![], vec![f32::MIN])?;
    let additive = b.binary("attention_mask/additive", BinaryKind::Mul, inverted, min)?;
    let additive = b.reshape("attention_mask/keys", additive, vec![1, 1, 1, seq])?;
    let scale = b.f32_constant("attention.scale", vec![], vec![1.0 / (hd as f32).sqrt()])?;
    for layer in 0..layers {
        let p = format!("encoder.layer.{layer}");
        let a = format!("{p}.attention.self");
        let heads_of = |b: &mut Builder<'_>, what: &str| -> Result<ValueId> {
            let t = b.linear(&format!("{a}.{what}"), x, dim, dim, true)?;
            let t = b.reshape(&format!("{a}.{what}/heads"), t, vec![1, seq, heads, hd])?;
            b.transpose(&format!("{a}.{what}/transpose"), t, vec![0, 2, 1, 3])
        };
        let q = heads_of(&mut b, "query")?;
        let k = heads_of(&mut b, "key")?;
        let v = heads_of(&mut b, "value")?;
        let o = b.attention(&a, "key", [q, k, v], scale, Some(("mask", additive)))?;
        let o = b.transpose(&format!("{a}.context/transpose"), o, vec![0, 2, 1, 3])?;
        let o = b.reshape(&format!("{a}.context/merge"), o, vec![1, seq, dim])?;
        let ao = format!("{p}.attention.output");
        let o = b.linear(&format!("{ao}.dense"), o, dim, dim, true)?;
        let o = b.binary(&format!("{ao}.residual"), BinaryKind::Add, o, x)?;
        let h = b.layer_norm(
            &format!("{ao}.LayerNorm"),
            o,
            &format!("{ao}.LayerNorm.weight"),
            &format!("{ao}.LayerNorm.bias"),
            dim,
            eps,
        )?;
        let f = b.linear(&format!("{p}.intermediate.dense"), h, dim, inner, true)?;
        let f = b.unary(&format!("{p}.intermediate.act"), act, f)?;
        let f = b.linear(&format!("{p}.output.dense"), f, inner, dim, true)?;
        let f = b.binary(&format!("{p}.output.residual"), BinaryKind::Add, f, h)?;
        x = b.layer_norm(
            &format!("{p}.output.LayerNorm"),
            f,
            &format!("{p}.output.LayerNorm.weight"),
            &format!("{p}.output.LayerNorm.bias"),
            dim,
            eps,
        )?;
    }
    b.output("last_hidden_state", x);
    if let Some(pool) = pooling {
        let m = b.reshape("pooling/mask", maskf, vec![1, seq, 1])?;
        let masked = b.binary("pooling/masked", BinaryKind::Mul, x, m)?;
        let sum_op = |axes: Vec<usize>| {
            Op::Reduce(crate::ops::reduce::Reduce {
                kind: runtime_core::kernels::reduce::ReduceKind::Sum,
                axes,
                keepdims: false,
            })
        };
        let total = b.op("pooling/sum", sum_op(vec![1]), &[masked])?;
        let count = b.op("pooling/count", sum_op(vec![1]), &[m])?;
        let tiny = b.f32_constant("pooling/min_count", vec![], vec![1e-9])?;
        let count = b.binary("pooling/clamp", BinaryKind::Max, count, tiny)?;
        let mut pooled = b.binary("pooling/mean", BinaryKind::Div, total, count)?;
        if pool.normalize {
            let sq = b.binary("normalize/square", BinaryKind::Mul, pooled, pooled)?;
            let ss = b.op(
                "normalize/sum",
                Op::Reduce(crate::ops::reduce::Reduce {
                    kind: runtime_core::kernels::reduce::ReduceKind::Sum,
                    axes: vec![1],
                    keepdims: true,
                }),
                &[sq],
            )?;
            let norm = b.unary("normalize/sqrt", UnaryKind::Sqrt, ss)?;
            let eps = b.f32_constant("normalize/epsilon", vec![], vec![1e-12])?;
            let norm = b.binary("normalize/clamp", BinaryKind::Max, norm, eps)?;
            pooled = b.binary("normalize", BinaryKind::Div, pooled, norm)?;
        }
        b.output("sentence_embedding", pooled);
    }
    Ok(b.finish())
}
