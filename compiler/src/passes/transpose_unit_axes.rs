//! Turn transposes that only move axes of length 1 into reshapes, which are views (no copy).
//!
//! Before: `y = Transpose{perm}(x)` where the axes of `x` longer than 1 keep their relative
//! order under `perm` (e.g. `[1,1,4,8] → perm [0,2,1,3] → [1,4,1,8]`, a decode step's head
//! split). After: `y = Reshape{shape of y}(x)`: the elements are in the same order.
use super::{Pass, rewrite_each};
use crate::error::Result;
use crate::ir::Graph;
use crate::ops::Op;
use crate::ops::reshape::Reshape;

pub struct TransposeUnitAxes;

impl Pass for TransposeUnitAxes {
    fn name(&self) -> &'static str {
        "transpose_unit_axes"
    }

    fn run(&self, graph: &mut Graph) -> Result<bool> {
        rewrite_each(graph, |graph, id| {
            let node = graph.node(id);
            let Op::Transpose(t) = &node.op else {
                return Ok(false);
            };
            let shape = &graph.ty(node.inputs[0]).shape;
            let moved: Vec<usize> = t
                .perm
                .iter()
                .copied()
                .filter(|&a| shape.get(a).is_some_and(|&n| n != 1))
                .collect();
            if !moved.windows(2).all(|w| w[0] < w[1]) {
                return Ok(false);
            }
            let out_shape = graph.ty(node.outputs[0]).shape.clone();
            graph.node_mut(id).op = Op::Reshape(Reshape { shape: out_shape });
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{DType, TensorType, printer::print};
    use crate::ops::transpose::Transpose;

    #[test]
    fn head_split_of_one_token_becomes_a_reshape() {
        let mut g = Graph::new(17);
        let x = g.add_value("x", TensorType::new(DType::F32, vec![1, 1, 4, 8]));
        g.inputs.push(x);
        let tr = |g: &mut Graph, name: &str, x, perm: Vec<usize>| {
            g.add_node(
                name,
                "Transpose",
                Op::Transpose(Transpose { perm }),
                vec![x],
                &[format!("{name}.out")],
            )
            .unwrap()
            .1[0]
        };
        let a = tr(&mut g, "split", x, vec![0, 2, 1, 3]);
        let b = tr(&mut g, "swap", a, vec![0, 3, 2, 1]);
        g.outputs.extend([a, b]);
        assert!(TransposeUnitAxes.run(&mut g).unwrap());
        crate::ir::verify::verify(&g).unwrap();
        // The second transpose swaps two long axes and stays.
        insta::assert_snapshot!(print(&g).unwrap());
    }
}
