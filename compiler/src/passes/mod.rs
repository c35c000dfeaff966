//! Graph-to-graph passes. Each pass is one file, a struct with `run`, and a doc comment
//! stating the pattern it rewrites; pipelines are plain lists.
use crate::error::{Error, Result};
use crate::ir::{Graph, NodeId, ValueId, verify::verify};
use crate::ops::Op;
use crate::target::TargetProfile;

pub mod attention_live_length;
pub mod eliminate_dead_nodes;
pub mod fold_constants;
pub mod fold_key_transpose;
pub mod fold_matmul_transpose;
pub mod fuse_attention;
pub mod fuse_elementwise;
pub mod fuse_layer_norm;
pub mod fuse_layer_norm_rows;
pub mod fuse_linear;
pub mod fuse_linear_activation;
pub mod fuse_residual;
pub mod fuse_rms_norm;
pub mod fuse_rotary;
pub mod fuse_swiglu;
pub mod merge_linears;
pub mod pack_linear_weights;
pub mod quantize_attention;
pub mod quantize_conv;
pub mod quantize_f16;
pub mod quantize_int4;
pub mod quantize_int8;
pub mod simplify_broadcasts;
pub mod simplify_reshapes;
pub mod tie_float_embeddings;
pub mod transpose_unit_axes;

/// A graph rewrite. Returns whether it changed anything.
pub trait Pass {
    fn name(&self) -> &'static str;
    fn run(&self, graph: &mut Graph) -> Result<bool>;
}

/// The passes run for a target, in order.
pub fn pipeline(target: &TargetProfile) -> Vec<Box<dyn Pass>> {
    vec![
        Box::new(fold_constants::FoldConstants),
        Box::new(transpose_unit_axes::TransposeUnitAxes),
        Box::new(simplify_reshapes::SimplifyReshapes),
        Box::new(eliminate_dead_nodes::EliminateDeadNodes),
        Box::new(fuse_attention::FuseAttention {
            tiling: target.gemm_tiling(),
        }),
        Box::new(fuse_layer_norm::FuseLayerNorm),
        Box::new(fuse_rms_norm::FuseRmsNorm),
        Box::new(fuse_rotary::FuseRotary),
        Box::new(fold_key_transpose::FoldKeyTranspose),
        Box::new(attention_live_length::AttentionLiveLength),
        Box::new(fuse_linear::FuseLinear),
        Box::new(fuse_linear_activation::FuseLinearActivation),
        Box::new(fold_matmul_transpose::FoldMatMulTranspose),
        Box::new(pack_linear_weights::PackLinearWeights {
            tiling: target.gemm_tiling(),
        }),
        Box::new(tie_float_embeddings::TieFloatEmbeddings),
        Box::new(fuse_swiglu::FuseSwiGlu),
        Box::new(merge_linears::MergeLinears),
        Box::new(fuse_residual::FuseResidual),
        Box::new(fuse_layer_norm_rows::FuseLayerNormRows),
        // After every fusion that matches a pattern with its broadcasts as written (the
        // attention mask is expanded over heads on purpose).
        Box::new(simplify_broadcasts::SimplifyBroadcasts),
        // After every pass that matches elementwise ops into a bigger op (the GEMM
        // epilogues, SwiGLU, residual adds): only what they left is fused into loops.
        Box::new(fuse_elementwise::FuseElementwise),
        Box::new(eliminate_dead_nodes::EliminateDeadNodes),
    ]
}

/// Replace the matched `nodes` of `pass` by one node `name` (`op` over `inputs`, recorded as
/// the source op `op_type`) whose first output takes over `out`: its name and its readers.
/// Further outputs are named `<name>.<suffix>` for each of `extra_outputs`. Returns the new
/// node's outputs.
#[allow(clippy::too_many_arguments)]
pub(crate) fn replace_nodes(
    graph: &mut Graph,
    pass: &str,
    nodes: &[NodeId],
    out: ValueId,
    name: String,
    op_type: &str,
    op: Op,
    inputs: Vec<ValueId>,
    extra_outputs: &[&str],
) -> Result<Vec<ValueId>> {
    let mut names = vec![graph.value(out).name.clone()];
    names.extend(extra_outputs.iter().map(|e| format!("{name}.{e}")));
    let read: Vec<ValueId> = nodes
        .iter()
        .flat_map(|&n| graph.node(n).inputs.clone())
        .collect();
    for &n in nodes {
        graph.remove_node(n);
    }
    let (_, outs) = graph
        .add_node(name, op_type, op, inputs, &names)
        .map_err(|e| Error::Internal(format!("{pass}: {e}")))?;
    graph.replace_uses(out, outs[0]);
    graph.drop_if_unread(&read);
    Ok(outs)
}

/// The nodes in topological (schedule) order.
pub(crate) fn topo_order(graph: &Graph) -> Result<Vec<NodeId>> {
    graph
        .topo_order()
        .map_err(|e| Error::Internal(e.to_string()))
}

/// Offer every node to `rewrite` once, in the topological order of the graph as it is now,
/// skipping nodes an earlier rewrite removed; `rewrite` returns whether it changed the graph.
/// Returns whether any call did.
pub(crate) fn rewrite_each(
    graph: &mut Graph,
    mut rewrite: impl FnMut(&mut Graph, NodeId) -> Result<bool>,
) -> Result<bool> {
    let mut changed = false;
    for id in topo_order(graph)? {
        if graph.has_node(id) && rewrite(graph, id)? {
            changed = true;
        }
    }
    Ok(changed)
}

/// Run `passes` in order; with `verify_each`, verify the graph after every pass.
pub fn run(graph: &mut Graph, passes: &[Box<dyn Pass>], verify_each: bool) -> Result<()> {
    for pass in passes {
        pass.run(graph)?;
        // A pass that rewrote a weight leaves the original behind: free it before the next.
        graph.drop_unread_constants();
        if verify_each {
            verify(graph)
                .map_err(|e| crate::Error::Internal(format!("after pass {}: {e}", pass.name())))?;
        }
    }
    Ok(())
}

/// Graph-building helpers shared by the pass tests: one node per call, its output named
/// `<name>.out`.
#[cfg(test)]
pub(crate) mod test_util {
    use crate::ir::{Graph, Tensor, ValueId};
    use crate::ops::Op;
    use crate::ops::binary::{Binary, BinaryKind};
    use crate::ops::linear::Linear;
    use crate::ops::unary::{Unary, UnaryKind};
    use runtime_core::kernels::gemm::Activation;

    /// `act(x · W + b)` as an unpacked `Linear` node `<name>_proj` (op type `MatMul`) over
    /// `x: [.., k]`, with constants `<name>.w` = `w` (`k×n`) and `<name>.b` = `bias`.
    pub fn linear(
        g: &mut Graph,
        name: &str,
        x: ValueId,
        (k, n): (usize, usize),
        w: Vec<f32>,
        bias: Option<Vec<f32>>,
        activation: Activation,
    ) -> ValueId {
        let w = g.add_constant(
            format!("{name}.w"),
            Tensor::from_f32s(vec![k, n], w).unwrap(),
        );
        let mut inputs = vec![x, w];
        if let Some(b) = bias {
            inputs
                .push(g.add_constant(format!("{name}.b"), Tensor::from_f32s(vec![n], b).unwrap()));
        }
        let mut op = Linear::new(k, n);
        op.bias = inputs.len() == 3;
        op.activation = activation;
        g.add_node(
            format!("{name}_proj"),
            "MatMul",
            Op::Linear(op),
            inputs,
            &[format!("{name}.out")],
        )
        .unwrap()
        .1[0]
    }

    /// Pack every `Linear` for the `x86` profile (`int8`: quantize them to `QLinear`s as
    /// `--quantize int8` does), then drop what that left unread.
    pub fn pack_for_x86(g: &mut Graph, int8: bool) {
        use super::Pass;
        let target = crate::target::TargetProfile::load("x86").unwrap();
        if int8 {
            let options = crate::quantize::QuantOptions::new(crate::quantize::QuantMode::Int8);
            let pass = super::quantize_int8::QuantizeInt8 {
                tiling: target.quant_tiling(),
                options,
                static_act: Default::default(),
            };
            pass.run(g).unwrap();
        } else {
            let tiling = target.gemm_tiling();
            super::pack_linear_weights::PackLinearWeights { tiling }
                .run(g)
                .unwrap();
        }
        super::eliminate_dead_nodes::EliminateDeadNodes
            .run(g)
            .unwrap();
    }

    /// `kind(a, b)` as a node `name` (op type `Bin`).
    pub fn bin(g: &mut Graph, name: &str, kind: BinaryKind, a: ValueId, b: ValueId) -> ValueId {
        g.add_node(
            name,
            "Bin",
            Op::Binary(Binary { kind }),
            vec![a, b],
            &[format!("{name}.out")],
        )
        .unwrap()
        .1[0]
    }

    /// `kind(a)` as a node `name` (op type `Un`).
    pub fn un(g: &mut Graph, name: &str, kind: UnaryKind, a: ValueId) -> ValueId {
        g.add_node(
            name,
            "Un",
            Op::Unary(Unary { kind }),
            vec![a],
            &[format!("{name}.out")],
        )
        .unwrap()
        .1[0]
    }
}
