//! Fold the activation after a `Linear` (or an imported `QLinear`/`Q4Linear`) into its
//! epilogue.
//!
//! Patterns, on `y = Linear(..)` without an activation (operands of commutative ops in
//! either order; every intermediate read only inside the pattern):
//! - `Relu(y)`, `Gelu(y)`, `GeluTanh(y)`, `Silu(y)` (IR unary ops);
//! - GELU as torch exports it: `Mul(Mul(y, Add(Erf(Div(y, √2)), 1)), 0.5)` (or `Mul(y, 1/√2)`
//!   for the `Div`);
//! - SiLU as exported: `Mul(y, Sigmoid(y))`.
//!
//! After: `Linear{activation}` producing the pattern's result; the pattern's nodes are gone.
use super::fuse_linear::sole_consumer;
use super::{Pass, rewrite_each};
use crate::error::Result;
use crate::ir::{Graph, NodeId, ValueId};
use crate::ops::Op;
use crate::ops::binary::BinaryKind;
use crate::ops::unary::UnaryKind;
use runtime_core::kernels::gemm::Activation;

pub struct FuseLinearActivation;

fn scalar(graph: &Graph, v: ValueId) -> Option<f64> {
    let t = graph.constant(v)?;
    if t.ty.numel() != 1 {
        return None;
    }
    t.scalar_f64().ok()
}

fn binary(graph: &Graph, id: NodeId, kind: BinaryKind) -> Option<(ValueId, ValueId)> {
    match &graph.node(id).op {
        Op::Binary(b) if b.kind == kind => {
            let n = graph.node(id);
            Some((n.inputs[0], n.inputs[1]))
        }
        _ => None,
    }
}

fn unary(graph: &Graph, id: NodeId) -> Option<UnaryKind> {
    match &graph.node(id).op {
        Op::Unary(u) => Some(u.kind),
        _ => None,
    }
}

/// `Binary{kind}(v, c)` or `(c, v)` with scalar constant `c` close to `want`.
fn with_scalar(graph: &Graph, id: NodeId, kind: BinaryKind, v: ValueId, want: f64) -> bool {
    let Some((a, b)) = binary(graph, id, kind) else {
        return false;
    };
    let commutes = matches!(kind, BinaryKind::Mul | BinaryKind::Add);
    let c = if a == v {
        b
    } else if b == v && commutes {
        a
    } else {
        return false;
    };
    scalar(graph, c).is_some_and(|x| (x - want).abs() < 1e-4)
}

fn out(graph: &Graph, id: NodeId) -> ValueId {
    graph.node(id).outputs[0]
}

/// The activation fed by `y`, the nodes it spans and its result.
fn match_activation(graph: &Graph, y: ValueId) -> Option<(Activation, Vec<NodeId>, ValueId)> {
    if graph.outputs.contains(&y) {
        return None;
    }
    let readers = graph.consumers(y);
    if readers.len() == 1 && graph.use_count(y) == 1 {
        let id = readers[0];
        let act = match unary(graph, id)? {
            UnaryKind::Relu => Activation::Relu,
            UnaryKind::Gelu => Activation::Gelu,
            UnaryKind::GeluTanh => Activation::GeluTanh,
            UnaryKind::Silu => Activation::Silu,
            _ => return None,
        };
        return Some((act, vec![id], out(graph, id)));
    }
    if readers.len() != 2 || graph.use_count(y) != 2 {
        return None;
    }
    // SiLU: Sigmoid(y) and Mul(y, sigmoid).
    for (s, m) in [(readers[0], readers[1]), (readers[1], readers[0])] {
        if unary(graph, s) == Some(UnaryKind::Sigmoid)
            && let Some((a, b)) = binary(graph, m, BinaryKind::Mul)
            && ((a == y && b == out(graph, s)) || (b == y && a == out(graph, s)))
            && sole_consumer(graph, out(graph, s)) == Some(m)
        {
            return Some((Activation::Silu, vec![s, m], out(graph, m)));
        }
    }
    // GELU: d = y / √2 (or y · 1/√2); e = erf(d); a = e + 1; m = y · a; r = m · 0.5.
    for (d, m) in [(readers[0], readers[1]), (readers[1], readers[0])] {
        let scaled = with_scalar(graph, d, BinaryKind::Div, y, std::f64::consts::SQRT_2)
            || with_scalar(
                graph,
                d,
                BinaryKind::Mul,
                y,
                std::f64::consts::FRAC_1_SQRT_2,
            );
        if !scaled {
            continue;
        }
        let e = sole_consumer(graph, out(graph, d))?;
        if unary(graph, e) != Some(UnaryKind::Erf) {
            return None;
        }
        let a = sole_consumer(graph, out(graph, e))?;
        if !with_scalar(graph, a, BinaryKind::Add, out(graph, e), 1.0) {
            return None;
        }
        let (p, q) = binary(graph, m, BinaryKind::Mul)?;
        let a_out = out(graph, a);
        if !((p == y && q == a_out) || (q == y && p == a_out))
            || sole_consumer(graph, a_out) != Some(m)
        {
            return None;
        }
        let h = sole_consumer(graph, out(graph, m))?;
        if !with_scalar(graph, h, BinaryKind::Mul, out(graph, m), 0.5) {
            return None;
        }
        return Some((Activation::Gelu, vec![d, e, a, m, h], out(graph, h)));
    }
    None
}

impl Pass for FuseLinearActivation {
    fn name(&self) -> &'static str {
        "fuse_linear_activation"
    }

    fn run(&self, graph: &mut Graph) -> Result<bool> {
        rewrite_each(graph, |graph, id| {
            let current = match &graph.node(id).op {
                Op::Linear(l) => l.activation,
                Op::QLinear(l) => l.activation,
                Op::Q4Linear(l) => l.activation,
                _ => return Ok(false),
            };
            if current != Activation::None {
                return Ok(false);
            }
            let y = out(graph, id);
            let Some((act, nodes, result)) = match_activation(graph, y) else {
                return Ok(false);
            };
            if graph.ty(result) != graph.ty(y) {
                return Ok(false);
            }
            for n in nodes {
                graph.remove_node(n);
            }
            match &mut graph.node_mut(id).op {
                Op::Linear(l) => l.activation = act,
                Op::QLinear(l) => l.activation = act,
                Op::Q4Linear(l) => l.activation = act,
                _ => {}
            }
            graph.replace_uses(result, y);
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{DType, Tensor, TensorType, printer::print};
    use crate::ops::binary::Binary;
    use crate::ops::linear::Linear;
    use crate::ops::unary::Unary;

    fn linear_graph() -> (Graph, ValueId) {
        let mut g = Graph::new(17);
        let x = g.add_value("x", TensorType::new(DType::F32, vec![2, 3]));
        g.inputs.push(x);
        let w = g.add_constant("w", Tensor::from_f32s(vec![3, 4], vec![0.5; 12]).unwrap());
        let (_, y) = g
            .add_node(
                "fc",
                "MatMul",
                Op::Linear(Linear::new(3, 4)),
                vec![x, w],
                &["y".into()],
            )
            .unwrap();
        (g, y[0])
    }

    fn bin(g: &mut Graph, name: &str, kind: BinaryKind, a: ValueId, b: ValueId) -> ValueId {
        g.add_node(
            name,
            "Binary",
            Op::Binary(Binary { kind }),
            vec![a, b],
            &[name.into()],
        )
        .unwrap()
        .1[0]
    }

    fn scalar(g: &mut Graph, name: &str, v: f32) -> ValueId {
        g.add_constant(name, Tensor::from_f32s(vec![], vec![v]).unwrap())
    }

    #[test]
    fn torch_gelu_folds_into_the_epilogue() {
        let (mut g, y) = linear_graph();
        let sqrt2 = scalar(&mut g, "sqrt2", std::f32::consts::SQRT_2);
        let one = scalar(&mut g, "one", 1.0);
        let half = scalar(&mut g, "half", 0.5);
        let d = bin(&mut g, "div", BinaryKind::Div, y, sqrt2);
        let erf = Op::Unary(Unary {
            kind: UnaryKind::Erf,
        });
        let e = g
            .add_node("erf", "Erf", erf, vec![d], &["erf".into()])
            .unwrap()
            .1[0];
        let a = bin(&mut g, "add", BinaryKind::Add, e, one);
        let m = bin(&mut g, "mul", BinaryKind::Mul, y, a);
        let h = bin(&mut g, "half_mul", BinaryKind::Mul, m, half);
        g.outputs.push(h);
        assert!(FuseLinearActivation.run(&mut g).unwrap());
        crate::passes::eliminate_dead_nodes::EliminateDeadNodes
            .run(&mut g)
            .unwrap();
        crate::ir::verify::verify(&g).unwrap();
        insta::assert_snapshot!(print(&g).unwrap());
    }

    /// An imported int8 layer (`QLinear`, from the ONNX frontend) takes its ReLU too.
    #[test]
    fn relu_after_an_imported_qlinear_folds() {
        use crate::ops::qlinear::{ActQuant, QLinear};
        use runtime_core::kernels::gemm::Tiles;
        use runtime_core::kernels::qgemm;
        let mut g = Graph::new(17);
        let x = g.add_value("x", TensorType::new(DType::F32, vec![2, 3]));
        g.inputs.push(x);
        let op = QLinear {
            k: 3,
            n: 4,
            nr: 4,
            bias: false,
            activation: Activation::None,
            act_quant: ActQuant::DynamicTensorU8,
            tiles: Tiles {
                mr: 4,
                kc: 256,
                mc: 64,
            },
            kernel: "portable",
            fused: Default::default(),
        };
        let bytes = qgemm::packed_i8_bytes(3, 4, 4);
        let blob = Tensor::new(
            TensorType::new(DType::U8, vec![bytes]),
            crate::ir::Data::U8(vec![0; bytes]),
        )
        .unwrap();
        let w = g.add_constant("w.q8", blob);
        let names: Vec<String> = ["y", "y.qa", "y.qa_scales", "y.qa_zero_points"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (_, outs) = g
            .add_node("fc", "MatMul", Op::QLinear(op), vec![x, w], &names)
            .unwrap();
        let relu = Op::Unary(Unary {
            kind: UnaryKind::Relu,
        });
        let r = g
            .add_node("relu", "Relu", relu, vec![outs[0]], &["r".into()])
            .unwrap()
            .1[0];
        g.outputs.push(r);
        assert!(FuseLinearActivation.run(&mut g).unwrap());
        crate::ir::verify::verify(&g).unwrap();
        insta::assert_snapshot!(print(&g).unwrap());
    }

    #[test]
    fn silu_as_sigmoid_times_input_folds() {
        let (mut g, y) = linear_graph();
        let sig = Op::Unary(Unary {
            kind: UnaryKind::Sigmoid,
        });
        let s = g
            .add_node("sig", "Sigmoid", sig, vec![y], &["sig".into()])
            .unwrap()
            .1[0];
        let m = bin(&mut g, "mul", BinaryKind::Mul, s, y);
        g.outputs.push(m);
        assert!(FuseLinearActivation.run(&mut g).unwrap());
        crate::passes::eliminate_dead_nodes::EliminateDeadNodes
            .run(&mut g)
            .unwrap();
        crate::ir::verify::verify(&g).unwrap();
        insta::assert_snapshot!(print(&g).unwrap());
    }

    #[test]
    fn a_shared_intermediate_blocks_the_fusion() {
        let (mut g, y) = linear_graph();
        let relu = Op::Unary(Unary {
            kind: UnaryKind::Relu,
        });
        let r = g
            .add_node("relu", "Relu", relu, vec![y], &["r".into()])
            .unwrap()
            .1[0];
        g.outputs.extend([r, y]);
        assert!(!FuseLinearActivation.run(&mut g).unwrap());
    }
}
