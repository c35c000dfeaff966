//! Pre-pack every `Linear` weight into the panel layout of the target's GEMM kernel and
//! record the target's tiles on the node, so no packing happens at run time.
//!
//! Before: `y = Linear{nr=0}(x, W: f32[k, n], ..)`. After: `y = Linear{nr, tiles}(x,
//! W.packed: f32[ceil(n/nr)·k·nr], ..)` with `W.packed` a new constant (shared by every
//! `Linear` that read `W`); `W` is dropped when nothing else reads it. For the `portable`
//! kernel (no SIMD variant, e.g. microcontrollers) the weight stays row-major: its kernel
//! reads it in place and padding panels would only cost flash.
use super::Pass;
use crate::error::{Error, Result};
use crate::ir::{DType, Graph, Tensor, TensorType, ValueId};
use crate::ops::Op;
use crate::target::GemmTiling;
use runtime_core::kernels::gemm::{self, Tiles};
use std::collections::BTreeMap;

pub struct PackLinearWeights {
    pub tiling: GemmTiling,
}

impl Pass for PackLinearWeights {
    fn name(&self) -> &'static str {
        "pack_linear_weights"
    }

    fn run(&self, graph: &mut Graph) -> Result<bool> {
        let t = self.tiling;
        let mut packed: BTreeMap<ValueId, ValueId> = BTreeMap::new();
        let mut changed = false;
        let order = graph
            .topo_order()
            .map_err(|e| Error::Internal(e.to_string()))?;
        for id in order {
            let node = graph.node(id);
            let Op::Linear(linear) = &node.op else {
                continue;
            };
            if linear.nr != 0 {
                continue;
            }
            let (k, n, w) = (linear.k, linear.n, node.inputs[1]);
            if t.kernel == "portable" {
                if let Op::Linear(linear) = &mut graph.node_mut(id).op {
                    linear.kernel = t.kernel;
                    linear.tiles = Tiles {
                        mr: t.mr,
                        kc: t.kc,
                        mc: t.mc,
                    };
                }
                changed = true;
                continue;
            }
            let Some(weight) = graph.constant(w).cloned() else {
                continue;
            };
            let new_w = match packed.get(&w) {
                Some(&v) => v,
                None => {
                    let data = crate::ops::util::data::<f32>(&weight)
                        .map_err(|e| Error::Internal(format!("pack_linear_weights: {e}")))?;
                    let mut out = vec![0.0f32; gemm::packed_len(k, n, t.nr)];
                    gemm::pack_b(data, k, n, t.nr, &mut out);
                    let ty = TensorType::new(DType::F32, vec![out.len()]);
                    let tensor = Tensor::new(ty, crate::ir::Data::F32(out))
                        .map_err(|e| Error::Internal(format!("pack_linear_weights: {e}")))?;
                    let name = format!("{}.packed{}", graph.value(w).name, t.nr);
                    let v = graph.add_constant(name, tensor);
                    packed.insert(w, v);
                    v
                }
            };
            let node = graph.node_mut(id);
            node.inputs[1] = new_w;
            if let Op::Linear(linear) = &mut node.op {
                linear.nr = t.nr;
                linear.kernel = t.kernel;
                linear.tiles = Tiles {
                    mr: t.mr,
                    kc: t.kc,
                    mc: t.mc,
                };
            }
            // The row-major weight goes as soon as its last reader reads the packed one.
            drop(weight);
            graph.drop_if_unread(&[w]);
            changed = true;
        }
        if changed {
            graph.rebuild_edges();
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::printer::print;
    use crate::ops::linear::Linear;

    /// A weight two layers share is packed once, and the row-major original is dropped
    /// by the pass itself once both read the packed copy; a weight a graph output also
    /// reads stays.
    #[test]
    fn replaced_weights_are_dropped_at_once() {
        let mut g = Graph::new(17);
        let x = g.add_value("x", TensorType::new(DType::F32, vec![2, 4]));
        g.inputs.push(x);
        let shared = g.add_constant("w", Tensor::from_f32s(vec![4, 4], vec![0.5; 16]).unwrap());
        let kept = g.add_constant("v", Tensor::from_f32s(vec![4, 4], vec![0.25; 16]).unwrap());
        let mut y = x;
        for (name, w) in [("fc1", shared), ("fc2", shared), ("fc3", kept)] {
            let op = Op::Linear(Linear::new(4, 4));
            y = g
                .add_node(name, "MatMul", op, vec![y, w], &[format!("{name}.y")])
                .unwrap()
                .1[0];
        }
        g.outputs.extend([y, kept]);
        let tiling = crate::target::TargetProfile::load("x86")
            .unwrap()
            .gemm_tiling();
        assert!(PackLinearWeights { tiling }.run(&mut g).unwrap());
        assert!(g.constant(shared).is_none());
        assert!(g.constant(kept).is_some());
        let packed: Vec<ValueId> = g.node_ids().iter().map(|&n| g.node(n).inputs[1]).collect();
        assert_eq!(packed[0], packed[1]);
        assert!(packed.iter().all(|&v| g.constant(v).is_some()));
        crate::ir::verify::verify(&g).unwrap();
    }

    #[test]
    fn weights_are_packed_for_the_target_kernel() {
        let mut g = Graph::new(17);
        let x = g.add_value("x", TensorType::new(DType::F32, vec![2, 3]));
        g.inputs.push(x);
        let w: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let w = g.add_constant("w", Tensor::from_f32s(vec![3, 4], w).unwrap());
        let (_, y) = g
            .add_node(
                "fc",
                "MatMul",
                Op::Linear(Linear::new(3, 4)),
                vec![x, w],
                &["y".into()],
            )
            .unwrap();
        g.outputs.push(y[0]);
        let tiling = crate::target::TargetProfile::load("x86")
            .unwrap()
            .gemm_tiling();
        assert!(PackLinearWeights { tiling }.run(&mut g).unwrap());
        crate::passes::eliminate_dead_nodes::EliminateDeadNodes
            .run(&mut g)
            .unwrap();
        crate::ir::verify::verify(&g).unwrap();
        insta::assert_snapshot!(print(&g).unwrap());
        let packed = g.constant(g.node(g.node_ids()[0]).inputs[1]).unwrap();
        // Panel width 16: row p of W sits at p·16, zero-padded past column 4.
        assert_eq!(
            &packed.data.to_f64_vec()[16..21],
            &[4.0, 5.0, 6.0, 7.0, 0.0]
        );
    }
}
