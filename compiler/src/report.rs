//! Human-readable reports: the build summary and `inspect`.
use crate::frontend::onnx;
use crate::ir::Graph;
use crate::pipeline::Imported;
use crate::plan::Plan;
use crate::target::WeightsEmbed;
use onnx_protobuf::ModelProto;
use std::collections::BTreeMap;

fn kib(bytes: usize) -> String {
    format!("{bytes} B ({:.1} KiB)", bytes as f64 / 1024.0)
}

/// Weight blobs from this size on get a note about the RAM rustc needs to compile them.
const LARGE_BLOB_BYTES: usize = 256 << 20;

/// rustc keeps an `include_bytes!` blob in memory many times over while it compiles the
/// crate (measured on rustc 1.95, opt-level 3: a 200 MB blob peaks at 3.0 GB RSS; a 1.1 GB
/// one passed 20 GB). A large blob embedded that way (`--weights-embed bytes`) gets a note
/// before the user's build runs out of memory; a linked blob (`object`) never enters rustc.
fn compile_memory_note(weight_bytes: usize, embed: WeightsEmbed) -> Option<String> {
    if weight_bytes < LARGE_BLOB_BYTES || embed.uses_object(weight_bytes) {
        return None;
    }
    let gib = weight_bytes as f64 * 15.0 / (1u64 << 30) as f64;
    Some(format!(
        "  note: rustc holds the embedded weights ≈ 15× over while compiling the generated crate: \
         expect ≥ {gib:.1} GiB of RAM for `cargo build`; --weights-embed object links it \
         instead (rustc never reads it)\n"
    ))
}

/// The build report: graph size, memory plan, weights (`embed`: how the crate carries them).
pub fn build_report(
    imported: &Imported,
    graph: &Graph,
    plan: &Plan,
    embed: WeightsEmbed,
) -> String {
    let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
    for id in graph.node_ids() {
        *ops.entry(graph.node(id).op.name()).or_default() += 1;
    }
    let hist: Vec<String> = ops.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let mut s = String::new();
    s.push_str(&format!(
        "nodes: {} after import, {} after optimisation ({})\n",
        imported.node_count,
        graph.node_count(),
        hist.join(", ")
    ));
    s.push_str(&format!(
        "weights: {} in {} tensors\n",
        kib(plan.weight_bytes),
        plan.weights.len()
    ));
    if embed.uses_object(plan.weight_bytes) {
        s.push_str("  linked as a static library that build.rs writes from weights.bin (--weights-embed)\n");
    }
    if let Some(note) = compile_memory_note(plan.weight_bytes, embed) {
        s.push_str(&note);
    }
    for id in graph.node_ids() {
        if let crate::ops::Op::TiedGather(g) = &graph.node(id).op {
            s.push_str(&format!(
                "  {}: table {}x{} read from the tied classifier's weight (stored once)\n",
                graph.node(id).name,
                g.rows,
                g.cols
            ));
        }
    }
    s.push_str(&format!("arena: {}\n", kib(plan.arena_bytes)));
    s.push_str(&format!(
        "  lower bound (most bytes live at once): {}\n",
        kib(plan.lower_bound_bytes)
    ));
    s.push_str(&format!(
        "  naive (sum of all intermediates): {}\n",
        kib(plan.naive_bytes)
    ));
    s.push_str(&format!(
        "  views aliased without a copy: {}\n",
        plan.aliased.len()
    ));
    let linears: Vec<String> = graph
        .node_ids()
        .into_iter()
        .filter_map(|id| match &graph.node(id).op {
            crate::ops::Op::Linear(l) => Some(format!(
                "  {} {}: {} {}x{}, kc={}, mc={}, epilogue {}",
                graph.node(id).source_op,
                graph.node(id).name,
                l.kernel,
                l.tiles.mr,
                l.nr,
                l.tiles.kc,
                l.tiles.mc,
                l.epilogue()
            )),
            _ => None,
        })
        .collect();
    if !imported.float_notes.is_empty() {
        s.push_str(&format!(
            "quantized nodes imported as float/i32 arithmetic ({}):\n",
            imported.float_notes.len()
        ));
        for (node, why) in &imported.float_notes {
            s.push_str(&format!("  {node}: {why}\n"));
        }
    }
    if !linears.is_empty() {
        s.push_str(&format!(
            "GEMM kernels ({} with pre-packed weights):\n",
            linears.len()
        ));
        for line in linears {
            s.push_str(&line);
            s.push('\n');
        }
    }
    s
}

/// Where a quantized build's weight bytes go: int4 nibbles, scales and zero points (the
/// `Q4Linear` blobs' sections without padding), other quantized blobs (int8 layers and
/// tables), float and integer tensors, and the rest (alignment and panel padding).
fn weight_breakdown(graph: &Graph, plan: &Plan) -> String {
    use crate::ops::Op;
    let mut q4 = [0usize; 3];
    let (mut blobs, mut plain) = (0usize, 0usize);
    for &(v, _) in &plan.weights {
        let bytes = graph.ty(v).size_bytes();
        let q4_layer = graph
            .consumers(v)
            .into_iter()
            .find_map(|id| match &graph.node(id).op {
                Op::Q4Linear(l) if graph.node(id).inputs.get(1) == Some(&v) => Some(l.clone()),
                _ => None,
            });
        if let Some(l) = q4_layer {
            let parts = runtime_core::kernels::qgemm::q4_blob_parts(
                l.k,
                l.n,
                l.group,
                l.f16_scales,
                l.zero_points,
            );
            for (sum, part) in q4.iter_mut().zip(parts) {
                *sum += part;
            }
        } else if graph.ty(v).dtype == crate::ir::DType::U8 {
            blobs += bytes;
        } else {
            plain += bytes;
        }
    }
    let counted = q4.iter().sum::<usize>() + blobs + plain;
    let padding = plan.weight_bytes.saturating_sub(counted);
    format!(
        "int4 weights {} B, int4 scales {} B, int4 zero points {} B, other quantized blobs {} B, \
         unquantized tensors {} B, alignment/padding {} B",
        q4[0], q4[1], q4[2], blobs, plain, padding
    )
}

/// The quantization section of the build report: mode, weight bytes against the float
/// build, the quantized layers, every layer left in float with the reason, and the
/// `--validate` accuracy.
pub fn quantization_report(
    q: &crate::quantize::QuantSummary,
    graph: &Graph,
    plan: &Plan,
) -> String {
    use crate::ops::Op;
    use crate::ops::qlinear::ActQuant;
    let o = &q.options;
    let mut s = format!("quantization: {}\n", o.flags());
    if let Some(profile) = &o.profile_default {
        s.push_str(&format!(
            "  (the `[quantize]` default of target profile `{profile}`; `--quantize none` builds float)\n"
        ));
    }
    s.push_str(&format!(
        "  weights: {} quantized vs {} float ({:.4}x)\n",
        kib(plan.weight_bytes),
        kib(q.float_weight_bytes),
        plan.weight_bytes as f64 / q.float_weight_bytes.max(1) as f64
    ));
    s.push_str(&format!("    {}\n", weight_breakdown(graph, plan)));
    let mut layers = Vec::new();
    for id in graph.node_ids() {
        let node = graph.node(id);
        let line = match &node.op {
            Op::QLinear(l) => format!(
                "int8 {}x{} per-channel, activations {}, {} nr={}, epilogue {}",
                l.k,
                l.n,
                match l.act_quant {
                    ActQuant::DynamicRow => "dynamic per row".to_string(),
                    ActQuant::DynamicTensorU8 => "dynamic per tensor u8".to_string(),
                    a => a.describe(),
                },
                l.kernel,
                l.nr,
                l.epilogue()
            ),
            Op::Q4Linear(l) => format!(
                "int4 {}x{} group {} ({} scales{}), {} nr={}, epilogue {}",
                l.k,
                l.n,
                l.group,
                if l.f16_scales { "f16" } else { "f32" },
                if l.zero_points { ", zero points" } else { "" },
                l.kernel,
                l.nr,
                crate::ops::linear::epilogue(l.bias, l.activation)
            ),
            Op::HLinear(l) => format!(
                "f16 {}x{}, {} nr={}, epilogue {}",
                l.k,
                l.n,
                l.kernel,
                l.nr,
                crate::ops::linear::epilogue(l.bias, l.activation)
            ),
            Op::QGather(g) => format!(
                "int{} table {}x{}{}",
                g.bits,
                g.rows,
                g.cols,
                match g.tied_nr {
                    Some(_) => ", read from the tied classifier's weight (stored once)",
                    None => "",
                }
            ),
            Op::HGather(g) => format!(
                "f16 table {}x{}{}",
                g.rows,
                g.cols,
                match g.tied_nr {
                    Some(_) => ", read from the tied classifier's weight (stored once)",
                    None => "",
                }
            ),
            Op::QConv(c) => format!(
                "int8 conv kernel {:?} group {} -> {} channels, {} nr={}",
                c.geometry.kernel, c.group, c.out_channels, c.kernel, c.nr
            ),
            Op::QAttention(a) => format!(
                "int8 attention (Q per row, K per key, V per column, probabilities u8), scale {:?}{}",
                a.base.scale,
                if a.base.mask { ", mask" } else { "" }
            ),
            _ => continue,
        };
        layers.push(format!("    {}: {line}", node.name));
    }
    s.push_str(&format!("  quantized layers: {}\n", layers.len()));
    for l in layers {
        s.push_str(&l);
        s.push('\n');
    }
    s.push_str(&format!(
        "  layers left in float: {}\n",
        q.float_layers.len()
    ));
    for f in &q.float_layers {
        s.push_str(&format!("    {} ({}): {}\n", f.node, f.op, f.reason));
    }
    if !q.accuracy.is_empty() {
        s.push_str("  accuracy vs float (worst over the --validate sample sets):\n");
        for a in &q.accuracy {
            s.push_str(&format!(
                "    {:<32} cosine {:.6}  max abs error {:.3e}  ({} sets)\n",
                a.name, a.min_cosine, a.max_abs_error, a.sets
            ));
        }
    }
    if let Some(first) = q.greedy.first() {
        s.push_str(&format!(
            "  greedy tokens vs float (--validate-prompts, {} generated per prompt):\n",
            first.float_ids.len()
        ));
        for g in &q.greedy {
            let verdict = match g.first_difference() {
                None => format!("all {} identical", g.float_ids.len()),
                Some(i) => format!(
                    "first {i} identical; at {i} float {} vs quantized {} (float logit gap {:.3})",
                    g.float_ids[i],
                    g.quantized_ids[i],
                    g.float_gap.unwrap_or(f32::NAN)
                ),
            };
            s.push_str(&format!(
                "    {:<32} ({} prompt tokens) {verdict}\n",
                format!("{:?}", g.prompt.label),
                g.prompt.ids.len()
            ));
        }
    }
    s
}

/// `inspect`: what the file holds, without needing dims or support for every op.
pub fn inspect(model: &ModelProto) -> String {
    use onnx_protobuf::tensor_shape_proto::dimension::Value as Dim;
    use onnx_protobuf::type_proto::Value;
    let mut s = String::new();
    s.push_str(&format!(
        "producer: {} {}; IR version {}; opsets: {}\n",
        model.producer_name,
        model.producer_version,
        model.ir_version,
        model
            .opset_import
            .iter()
            .map(|o| format!(
                "{}={}",
                if o.domain.is_empty() {
                    "ai.onnx"
                } else {
                    &o.domain
                },
                o.version
            ))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let Some(g) = model.graph.as_ref() else {
        s.push_str("no graph\n");
        return s;
    };
    let params: u128 = g
        .initializer
        .iter()
        .map(|t| t.dims.iter().map(|&d| d.max(0) as u128).product::<u128>())
        .sum();
    s.push_str(&format!(
        "parameters: {params} in {} initializers\n",
        g.initializer.len()
    ));
    let describe = |v: &onnx_protobuf::ValueInfoProto| {
        let (dtype, dims) = match v.type_.as_ref().and_then(|t| t.value.as_ref()) {
            Some(Value::TensorType(t)) => {
                let dtype = onnx::tensor::dtype_from_onnx(t.elem_type)
                    .map(|d| d.to_string())
                    .unwrap_or_else(|e| e);
                let dims: Vec<String> = t
                    .shape
                    .as_ref()
                    .map(|sh| {
                        sh.dim
                            .iter()
                            .map(|d| match &d.value {
                                Some(Dim::DimValue(v)) => v.to_string(),
                                Some(Dim::DimParam(p)) => p.clone(),
                                _ => "?".into(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                (dtype, dims.join(", "))
            }
            _ => ("non-tensor".into(), String::new()),
        };
        format!("  {}: {dtype}[{dims}]\n", v.name)
    };
    let inits: std::collections::HashSet<&str> =
        g.initializer.iter().map(|t| t.name.as_str()).collect();
    s.push_str("inputs:\n");
    for i in g.input.iter().filter(|i| !inits.contains(i.name.as_str())) {
        s.push_str(&describe(i));
    }
    s.push_str("outputs:\n");
    for o in &g.output {
        s.push_str(&describe(o));
    }
    let mut hist: BTreeMap<String, usize> = BTreeMap::new();
    for n in &g.node {
        let key = if n.domain.is_empty() {
            n.op_type.clone()
        } else {
            format!("{}:{}", n.domain, n.op_type)
        };
        *hist.entry(key).or_default() += 1;
    }
    s.push_str(&format!("ops ({} nodes):\n", g.node.len()));
    for (k, v) in &hist {
        s.push_str(&format!("  {k:<28} {v}\n"));
    }
    let unsupported = onnx::unsupported_ops(model);
    if unsupported.is_empty() {
        s.push_str("unsupported ops: none\n");
    } else {
        s.push_str(&format!("unsupported ops: {}\n", unsupported.len()));
        for u in &unsupported {
            s.push_str(&format!("  - {}\n", u.node));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_blobs_get_a_compile_memory_note() {
        assert_eq!(
            compile_memory_note(LARGE_BLOB_BYTES - 1, WeightsEmbed::Bytes),
            None
        );
        let note = compile_memory_note(1 << 30, WeightsEmbed::Bytes).unwrap();
        assert!(note.contains("≥ 15.0 GiB of RAM"), "{note}");
        // Linked blobs never enter rustc: no note under `auto` or `object`.
        assert_eq!(compile_memory_note(1 << 30, WeightsEmbed::Auto), None);
        assert_eq!(compile_memory_note(1 << 30, WeightsEmbed::Object), None);
    }
}
