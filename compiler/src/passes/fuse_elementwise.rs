//! Fuse chains and trees of f32 elementwise ops into one `Elementwise` node that evaluates
//! the whole expression per element in one loop (`kernels::elementwise::fused`), so the
//! intermediates never go through memory.
//!
//! Before (GPT-2's GELU, as exported):
//! `a = Mul(x, 0.5)`; `p = Pow(x, 3)`; `b = Mul(p, 0.044715)`; `c = Add(x, b)`;
//! `d = Mul(c, 0.797…)`; `t = Tanh(d)`; `e = Add(t, 1)`; `y = Mul(a, e)`.
//! After: `y = Elementwise{program=r0=Mul(i0,0.5); r1=Mul(i0,i0); …}(x)`.
//!
//! A group grows from a root (the last node of a chain) through operands produced by a
//! fusible node — `Unary` Neg/Abs/Sqrt/Reciprocal/Exp/Log/Erf/Tanh/Sigmoid/Relu/Gelu/
//! GeluTanh/Silu, `Binary` Add/Sub/Mul/Div/Max/Min/Pow, all f32 — whose value has the
//! root's output shape and no reader but its consumer in the group (and is not a graph
//! output). Other operands become inputs (read through broadcast strides), one-element
//! constants become immediates, `Pow` by a constant 2 or 3 becomes multiplications. Groups
//! of one node, or that need more inputs, registers or instructions than the kernel has,
//! are left alone. Erf/Tanh/Exp/Sigmoid inside a group use the vectorising `math::fast_*`.
use super::fuse_linear::sole_consumer;
use super::{Pass, replace_nodes};
use crate::error::{Error, Result};
use crate::ir::{DType, Graph, NodeId, ValueId};
use crate::ops::Op;
use crate::ops::elementwise::{Elementwise, fused_binary, fused_unary};
use runtime_core::kernels::elementwise::{
    FUSED_INPUTS, FUSED_MAX_INSTRS, FUSED_REGS, FusedBinary, FusedUnary, Instr, Src,
};
use std::collections::HashSet;

pub struct FuseElementwise;

/// An expression tree over the group's operands.
enum Expr {
    Input(ValueId),
    Const(f32),
    Unary(FusedUnary, Box<Expr>),
    Binary(FusedBinary, Box<Expr>, Box<Expr>),
    /// `x²` or `x³` by multiplications, `x` evaluated once.
    Power(u32, Box<Expr>),
}

/// The fused function of a node, if it is a fusible f32 op.
enum Func {
    Unary(FusedUnary),
    Binary(FusedBinary),
}

fn fusible(graph: &Graph, id: NodeId) -> Option<Func> {
    let node = graph.node(id);
    let all_f32 = node
        .inputs
        .iter()
        .chain(&node.outputs)
        .all(|&v| graph.ty(v).dtype == DType::F32);
    if !all_f32 {
        return None;
    }
    match &node.op {
        Op::Unary(u) => fused_unary(u.kind).map(Func::Unary),
        Op::Binary(b) => fused_binary(b.kind).map(Func::Binary),
        _ => None,
    }
}

fn scalar(graph: &Graph, v: ValueId) -> Option<f32> {
    graph
        .constant(v)
        .filter(|t| t.ty.numel() == 1 && t.ty.dtype == DType::F32)
        .and_then(|t| t.scalar_f64().ok())
        .map(|x| x as f32)
}

/// Collects the group's nodes while building its expression from the root.
struct Grower<'a> {
    graph: &'a Graph,
    shape: &'a [usize],
    nodes: Vec<NodeId>,
}

impl Grower<'_> {
    /// The expression computing `v`, read by `consumer` (a group member).
    fn operand(&mut self, v: ValueId, consumer: NodeId) -> Expr {
        let g = self.graph;
        if let Some(c) = scalar(g, v) {
            return Expr::Const(c);
        }
        if let Some(p) = g.value(v).producer
            && sole_consumer(g, v) == Some(consumer)
            && g.ty(v).shape == self.shape
            && fusible(g, p).is_some()
        {
            return self.node(p);
        }
        Expr::Input(v)
    }

    /// The expression of the fusible node `id`, which joins the group.
    fn node(&mut self, id: NodeId) -> Expr {
        self.nodes.push(id);
        let inputs = self.graph.node(id).inputs.clone();
        match fusible(self.graph, id) {
            Some(Func::Unary(f)) => Expr::Unary(f, Box::new(self.operand(inputs[0], id))),
            Some(Func::Binary(f)) => {
                let a = self.operand(inputs[0], id);
                match (f, scalar(self.graph, inputs[1])) {
                    (FusedBinary::Pow, Some(e)) if e == 2.0 || e == 3.0 => {
                        Expr::Power(e as u32, Box::new(a))
                    }
                    _ => {
                        let b = self.operand(inputs[1], id);
                        Expr::Binary(f, Box::new(a), Box::new(b))
                    }
                }
            }
            None => Expr::Input(self.graph.node(id).outputs[0]),
        }
    }
}

/// Registers an expression needs (Sethi–Ullman, evaluating the hungrier operand first).
fn need(e: &Expr) -> usize {
    match e {
        Expr::Input(_) | Expr::Const(_) => 0,
        Expr::Unary(_, x) => need(x).max(1),
        Expr::Power(_, x) => match **x {
            Expr::Input(_) | Expr::Const(_) => 1,
            _ => need(x).max(2),
        },
        Expr::Binary(_, a, b) => {
            let (na, nb) = (need(a), need(b));
            if na == nb {
                (na + 1).max(1)
            } else {
                na.max(nb)
            }
        }
    }
}

/// Emits a register program for an expression; `None` when it does not fit the kernel.
struct Codegen {
    program: Vec<Instr>,
    inputs: Vec<ValueId>,
    busy: [bool; FUSED_REGS],
}

impl Codegen {
    fn alloc(&mut self) -> Option<u8> {
        let r = self.busy.iter().position(|b| !b)?;
        self.busy[r] = true;
        u8::try_from(r).ok()
    }

    fn release(&mut self, s: Src) {
        if let Src::Reg(r) = s {
            self.busy[r as usize] = false;
        }
    }

    fn push(&mut self, i: Instr) -> Option<()> {
        (self.program.len() < FUSED_MAX_INSTRS).then(|| self.program.push(i))
    }

    fn emit(&mut self, e: &Expr) -> Option<Src> {
        Some(match e {
            Expr::Const(c) => Src::Const(*c),
            Expr::Input(v) => {
                let k = match self.inputs.iter().position(|x| x == v) {
                    Some(k) => k,
                    None => {
                        self.inputs.push(*v);
                        self.inputs.len() - 1
                    }
                };
                if k >= FUSED_INPUTS {
                    return None;
                }
                Src::Input(u8::try_from(k).ok()?)
            }
            Expr::Unary(f, x) => {
                let x = self.emit(x)?;
                self.release(x);
                let dst = self.alloc()?;
                self.push(Instr::Unary { f: *f, dst, x })?;
                Src::Reg(dst)
            }
            Expr::Binary(f, a, b) => {
                let (a, b) = if need(b) > need(a) {
                    let b = self.emit(b)?;
                    (self.emit(a)?, b)
                } else {
                    let a = self.emit(a)?;
                    (a, self.emit(b)?)
                };
                self.release(a);
                self.release(b);
                let dst = self.alloc()?;
                self.push(Instr::Binary { f: *f, dst, a, b })?;
                Src::Reg(dst)
            }
            Expr::Power(n, x) => {
                let x = self.emit(x)?;
                // `dst` must differ from `x` while `x` is still read (the cube).
                let dst = self.alloc()?;
                let mul = FusedBinary::Mul;
                self.push(Instr::Binary {
                    f: mul,
                    dst,
                    a: x,
                    b: x,
                })?;
                if *n == 3 {
                    self.push(Instr::Binary {
                        f: mul,
                        dst,
                        a: Src::Reg(dst),
                        b: x,
                    })?;
                }
                self.release(x);
                Src::Reg(dst)
            }
        })
    }
}

/// The fused node for the group rooted at `root`, if it has two nodes or more and fits.
fn group(graph: &Graph, root: NodeId) -> Option<(Vec<NodeId>, Vec<ValueId>, Elementwise)> {
    let out = *graph.node(root).outputs.first()?;
    let shape = graph.ty(out).shape.clone();
    let mut grower = Grower {
        graph,
        shape: &shape,
        nodes: Vec::new(),
    };
    let expr = grower.node(root);
    if grower.nodes.len() < 2 {
        return None;
    }
    let mut cg = Codegen {
        program: Vec::new(),
        inputs: Vec::new(),
        busy: [false; FUSED_REGS],
    };
    cg.emit(&expr)?;
    if cg.inputs.is_empty() {
        return None;
    }
    Some((
        grower.nodes,
        cg.inputs,
        Elementwise {
            shape,
            program: cg.program,
        },
    ))
}

impl Pass for FuseElementwise {
    fn name(&self) -> &'static str {
        "fuse_elementwise"
    }

    fn run(&self, graph: &mut Graph) -> Result<bool> {
        let mut changed = false;
        let mut order = graph
            .topo_order()
            .map_err(|e| Error::Internal(e.to_string()))?;
        // Consumers first: a chain is fused from its last node.
        order.reverse();
        let mut fused: HashSet<NodeId> = HashSet::new();
        for id in order {
            if fused.contains(&id) || !graph.has_node(id) || fusible(graph, id).is_none() {
                continue;
            }
            let Some((nodes, inputs, op)) = group(graph, id) else {
                continue;
            };
            let out = graph.node(id).outputs[0];
            let name = format!("{}.elementwise", graph.node(id).name);
            fused.extend(nodes.iter().copied());
            let op = Op::Elementwise(op);
            let pass = self.name();
            replace_nodes(
                graph,
                pass,
                &nodes,
                out,
                name,
                "Elementwise",
                op,
                inputs,
                &[],
            )?;
            changed = true;
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Tensor, TensorType, printer::print};
    use crate::ops::binary::BinaryKind;
    use crate::ops::unary::UnaryKind;
    use crate::passes::test_util::{bin, un};

    fn c(g: &mut Graph, name: &str, v: f32) -> ValueId {
        g.add_constant(name, Tensor::from_f32s(vec![], vec![v]).unwrap())
    }

    /// GPT-2's exported GELU on `x`.
    fn gelu_tanh(g: &mut Graph, x: ValueId) -> ValueId {
        use BinaryKind::{Add, Mul, Pow};
        let (half, three, k, s, one) = (
            c(g, "half", 0.5),
            c(g, "three", 3.0),
            c(g, "k", 0.044715),
            c(g, "s", 0.797_884_6),
            c(g, "one", 1.0),
        );
        let a = bin(g, "mul", Mul, x, half);
        let p = bin(g, "pow", Pow, x, three);
        let b = bin(g, "mul_1", Mul, p, k);
        let cc = bin(g, "add", Add, x, b);
        let d = bin(g, "mul_2", Mul, cc, s);
        let t = un(g, "tanh", UnaryKind::Tanh, d);
        let e = bin(g, "add_1", Add, t, one);
        bin(g, "mul_3", Mul, a, e)
    }

    fn input(g: &mut Graph, name: &str, shape: Vec<usize>) -> ValueId {
        let x = g.add_value(name, TensorType::new(DType::F32, shape));
        g.inputs.push(x);
        x
    }

    fn run_and_compare(mut g: Graph, inputs: &[Tensor]) -> Graph {
        let before = crate::eval::evaluate(&g, inputs).unwrap();
        assert!(FuseElementwise.run(&mut g).unwrap());
        crate::passes::eliminate_dead_nodes::EliminateDeadNodes
            .run(&mut g)
            .unwrap();
        crate::ir::verify::verify(&g).unwrap();
        let after = crate::eval::evaluate(&g, inputs).unwrap();
        for (b, a) in before.iter().zip(&after) {
            for (x, y) in b.data.to_f64_vec().iter().zip(a.data.to_f64_vec()) {
                assert!((x - y).abs() <= 1e-5 * (1.0 + x.abs()), "{x} vs {y}");
            }
        }
        g
    }

    fn ramp(shape: Vec<usize>, scale: f32) -> Tensor {
        let n: usize = shape.iter().product();
        let v = (0..n)
            .map(|i| (i as f32 - n as f32 / 2.0) * scale)
            .collect();
        Tensor::from_f32s(shape, v).unwrap()
    }

    #[test]
    fn gpt2_gelu_becomes_one_loop() {
        let mut g = Graph::new(17);
        let x = input(&mut g, "x", vec![2, 70]);
        let y = gelu_tanh(&mut g, x);
        g.outputs.push(y);
        let g = run_and_compare(g, &[ramp(vec![2, 70], 0.05)]);
        insta::assert_snapshot!(print(&g).unwrap());
    }

    /// BERT's erf GELU after a bias add with a row-vector bias, then a residual add and a
    /// scale: a tree with three tensor inputs.
    #[test]
    fn bert_gelu_with_bias_and_residual_becomes_one_loop() {
        use BinaryKind::{Add, Div, Mul};
        let mut g = Graph::new(17);
        let x = input(&mut g, "x", vec![1, 3, 8]);
        let r = input(&mut g, "residual", vec![1, 3, 8]);
        let bias = g.add_constant("bias", ramp(vec![8], 0.1));
        let (sqrt2, one, half, scale) = (
            c(&mut g, "sqrt2", std::f32::consts::SQRT_2),
            c(&mut g, "one", 1.0),
            c(&mut g, "half", 0.5),
            c(&mut g, "scale", 0.125),
        );
        let h = bin(&mut g, "bias_add", Add, x, bias);
        let d = bin(&mut g, "div", Div, h, sqrt2);
        let e = un(&mut g, "erf", UnaryKind::Erf, d);
        let a = bin(&mut g, "add", Add, e, one);
        let m = bin(&mut g, "mul", Mul, h, a);
        let m1 = bin(&mut g, "mul_1", Mul, m, half);
        let s = bin(&mut g, "residual_add", Add, m1, r);
        let y = bin(&mut g, "scale_mul", Mul, s, scale);
        g.outputs.push(y);
        let g = run_and_compare(g, &[ramp(vec![1, 3, 8], 0.2), ramp(vec![1, 3, 8], -0.1)]);
        insta::assert_snapshot!(print(&g).unwrap());
    }

    #[test]
    fn a_shared_intermediate_ends_the_group() {
        use BinaryKind::{Add, Mul};
        let mut g = Graph::new(17);
        let x = input(&mut g, "x", vec![4]);
        let one = c(&mut g, "one", 1.0);
        let a = bin(&mut g, "add", Add, x, one);
        let t = un(&mut g, "tanh", UnaryKind::Tanh, a);
        let m = bin(&mut g, "mul", Mul, t, one);
        // `a` is also a graph output: only tanh·1 fuses.
        g.outputs.extend([m, a]);
        let g = run_and_compare(g, &[ramp(vec![4], 0.5)]);
        let ops: Vec<&str> = g.node_ids().iter().map(|&n| g.node(n).op.name()).collect();
        assert_eq!(ops, ["Binary", "Elementwise"]);
    }

    #[test]
    fn lone_ops_and_integer_ops_are_left_alone() {
        use BinaryKind::Add;
        let mut g = Graph::new(17);
        let x = input(&mut g, "x", vec![4]);
        let y = input(&mut g, "y", vec![4]);
        let s = bin(&mut g, "add", Add, x, y);
        g.outputs.push(s);
        let i = g.add_value("i", TensorType::new(DType::I64, vec![4]));
        g.inputs.push(i);
        let ii = bin(&mut g, "iadd", Add, i, i);
        let ij = bin(&mut g, "iadd_1", Add, ii, i);
        g.outputs.push(ij);
        assert!(!FuseElementwise.run(&mut g).unwrap());
    }

    #[test]
    fn a_tree_wider_than_the_register_file_is_not_fused() {
        // A balanced tree of depth 9 of Add over tanh leaves needs 10 registers.
        fn tree(g: &mut Graph, x: ValueId, depth: usize, id: &mut usize) -> ValueId {
            *id += 1;
            let name = format!("n{id}");
            if depth == 0 {
                return un(g, &name, UnaryKind::Tanh, x);
            }
            let a = tree(g, x, depth - 1, id);
            let b = tree(g, x, depth - 1, id);
            bin(g, &name, BinaryKind::Add, a, b)
        }
        let mut g = Graph::new(17);
        let x = input(&mut g, "x", vec![4]);
        let mut id = 0;
        let y = tree(&mut g, x, FUSED_REGS + 1, &mut id);
        g.outputs.push(y);
        let root = g.value(y).producer.unwrap();
        assert!(group(&g, root).is_none());
    }
}
