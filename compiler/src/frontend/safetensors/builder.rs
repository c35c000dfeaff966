//! Building IR from code: typed helpers over [`Graph::add_node`] that the family builders
//! share (linear layers, norms, attention pieces). Node names follow the checkpoint's
//! tensor names so generated code traces back to the model.
#![deny(clippy::indexing_slicing)]
use super::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::ir::{DType, Graph, Tensor, TensorType, ValueId};
use crate::ops::Op;
use crate::ops::binary::{Binary, BinaryKind};
use crate::ops::unary::{Unary, UnaryKind};

/// Where a checkpoint builder's ops come from, for error messages and reports.
const SOURCE: &str = "safetensors";

pub struct Builder<'a> {
    pub graph: Graph,
    pub checkpoint: &'a Checkpoint,
}

impl<'a> Builder<'a> {
    pub fn new(checkpoint: &'a Checkpoint) -> Self {
        Builder {
            graph: Graph::new(0),
            checkpoint,
        }
    }

    pub fn ty(&self, v: ValueId) -> &TensorType {
        self.graph.ty(v)
    }

    pub fn input(&mut self, name: &str, dtype: DType, shape: Vec<usize>) -> ValueId {
        let v = self.graph.add_value(name, TensorType::new(dtype, shape));
        self.graph.inputs.push(v);
        v
    }

    pub fn output(&mut self, name: &str, v: ValueId) {
        self.graph.outputs.push(v);
        self.graph.output_names.push(name.to_string());
    }

    pub fn constant(&mut self, name: &str, tensor: Tensor) -> ValueId {
        self.graph.add_constant(name, tensor)
    }

    pub fn f32_constant(
        &mut self,
        name: &str,
        shape: Vec<usize>,
        values: Vec<f32>,
    ) -> Result<ValueId> {
        let t = Tensor::from_f32s(shape, values).map_err(|e| Error::Internal(e.to_string()))?;
        Ok(self.constant(name, t))
    }

    /// A checkpoint tensor of the given shape, as a constant.
    pub fn weight(&mut self, name: &str, shape: &[usize]) -> Result<ValueId> {
        let t = self.checkpoint.get(name, shape)?;
        Ok(self.constant(name, t))
    }

    /// A `[rows, cols]` checkpoint matrix stored transposed as `[cols, rows]` (torch's
    /// `Linear` keeps `[out, in]`; the IR multiplies `x @ W`).
    pub fn weight_transposed(&mut self, name: &str, rows: usize, cols: usize) -> Result<ValueId> {
        let t = self.checkpoint.get(name, &[rows, cols])?;
        let src = t.data.to_f64_vec();
        let out: Vec<f32> = (0..cols)
            .flat_map(|c| (0..rows).map(move |r| r * cols + c))
            .map(|i| src.get(i).copied().unwrap_or_default() as f32)
            .collect();
        self.f32_constant(&format!("{name}:transposed"), vec![cols, rows], out)
    }

    pub fn op(&mut self, name: &str, op: Op, inputs: &[ValueId]) -> Result<ValueId> {
        let (_, outs) = self
            .graph
            .add_node(name, SOURCE, op, inputs.to_vec(), &[format!("{name}:0")])
            .map_err(|e| Error::Internal(format!("building `{name}`: {e}")))?;
        outs.first()
            .copied()
            .ok_or_else(|| Error::Internal(format!("`{name}` has no output")))
    }

    pub fn binary(
        &mut self,
        name: &str,
        kind: BinaryKind,
        a: ValueId,
        b: ValueId,
    ) -> Result<ValueId> {
        self.op(name, Op::Binary(Binary { kind }), &[a, b])
    }

    pub fn unary(&mut self, name: &str, kind: UnaryKind, x: ValueId) -> Result<ValueId> {
        self.op(name, Op::Unary(Unary { kind }), &[x])
    }

    pub fn matmul(&mut self, name: &str, a: ValueId, b: ValueId) -> Result<ValueId> {
        self.op(name, Op::MatMul(crate::ops::matmul::MatMul {}), &[a, b])
    }

    pub fn reshape(&mut self, name: &str, x: ValueId, shape: Vec<usize>) -> Result<ValueId> {
        self.op(
            name,
            Op::Reshape(crate::ops::reshape::Reshape { shape }),
            &[x],
        )
    }

    pub fn transpose(&mut self, name: &str, x: ValueId, perm: Vec<usize>) -> Result<ValueId> {
        self.op(
            name,
            Op::Transpose(crate::ops::transpose::Transpose { perm }),
            &[x],
        )
    }

    pub fn softmax(&mut self, name: &str, x: ValueId, axis: usize) -> Result<ValueId> {
        let op = crate::ops::softmax::Softmax {
            axis,
            log: false,
            coerce_2d: false,
        };
        self.op(name, Op::Softmax(op), &[x])
    }

    /// `softmax(q·kᵀ·scale [+ mask])·v` over `[batch, heads, seq, head_dim]` operands, as
    /// the torch exports spell it (so `fuse_attention` matches it): nodes
    /// `<a>.<key>/transpose_keys`, `<a>.scores`, `<a>.scores/scale`, `<a>.scores/<mask name>`,
    /// `<a>.softmax`, `<a>.context`.
    pub fn attention(
        &mut self,
        a: &str,
        key: &str,
        [q, k, v]: [ValueId; 3],
        scale: ValueId,
        mask: Option<(&str, ValueId)>,
    ) -> Result<ValueId> {
        let kt = self.transpose(&format!("{a}.{key}/transpose_keys"), k, vec![0, 1, 3, 2])?;
        let s = self.matmul(&format!("{a}.scores"), q, kt)?;
        let mut s = self.binary(&format!("{a}.scores/scale"), BinaryKind::Mul, s, scale)?;
        if let Some((what, m)) = mask {
            s = self.binary(&format!("{a}.scores/{what}"), BinaryKind::Add, s, m)?;
        }
        let probs = self.softmax(&format!("{a}.softmax"), s, 3)?;
        self.matmul(&format!("{a}.context"), probs, v)
    }

    pub fn concat(&mut self, name: &str, inputs: &[ValueId], axis: usize) -> Result<ValueId> {
        self.op(
            name,
            Op::Concat(crate::ops::concat::Concat { axis }),
            inputs,
        )
    }

    pub fn slice(
        &mut self,
        name: &str,
        x: ValueId,
        axis: usize,
        start: usize,
        end: usize,
    ) -> Result<ValueId> {
        let op = crate::ops::slice::Slice {
            starts: vec![start as i64],
            ends: vec![end as i64],
            axes: vec![axis],
            steps: vec![1],
        };
        self.op(name, Op::Slice(op), &[x])
    }

    pub fn gather(&mut self, name: &str, table: ValueId, ids: ValueId) -> Result<ValueId> {
        self.op(
            name,
            Op::Gather(crate::ops::gather::Gather { axis: 0 }),
            &[table, ids],
        )
    }

    /// `x @ W + b` for a torch `Linear` named `prefix` (`prefix.weight` `[out, in]`,
    /// optional `prefix.bias`).
    pub fn linear(
        &mut self,
        prefix: &str,
        x: ValueId,
        inp: usize,
        out: usize,
        bias: bool,
    ) -> Result<ValueId> {
        let w = self.weight_transposed(&format!("{prefix}.weight"), out, inp)?;
        let y = self.matmul(prefix, x, w)?;
        if !bias {
            return Ok(y);
        }
        let b = self.weight(&format!("{prefix}.bias"), &[out])?;
        self.binary(&format!("{prefix}/bias"), BinaryKind::Add, y, b)
    }

    /// LayerNorm over the last axis with `prefix.weight` and `prefix.bias` (or the given
    /// tensor names).
    pub fn layer_norm(
        &mut self,
        name: &str,
        x: ValueId,
        weight: &str,
        bias: &str,
        dim: usize,
        epsilon: f32,
    ) -> Result<ValueId> {
        let (w, b) = (self.weight(weight, &[dim])?, self.weight(bias, &[dim])?);
        let axis = self.ty(x).rank() - 1;
        let op = crate::ops::layer_norm::LayerNorm { axis, epsilon };
        self.op(name, Op::LayerNorm(op), &[x, w, b])
    }

    /// RMSNorm over the last axis: `x / sqrt(mean(x²) + eps) * weight`.
    pub fn rms_norm(
        &mut self,
        name: &str,
        x: ValueId,
        weight: &str,
        dim: usize,
        epsilon: f32,
    ) -> Result<ValueId> {
        let axis = self.ty(x).rank() - 1;
        let square = self.binary(&format!("{name}/square"), BinaryKind::Mul, x, x)?;
        let op = crate::ops::reduce::Reduce {
            kind: runtime_core::kernels::reduce::ReduceKind::Mean,
            axes: vec![axis],
            keepdims: true,
        };
        let mean = self.op(&format!("{name}/mean"), Op::Reduce(op), &[square])?;
        let eps = self.f32_constant(&format!("{name}/epsilon"), vec![], vec![epsilon])?;
        let var = self.binary(&format!("{name}/add_epsilon"), BinaryKind::Add, mean, eps)?;
        let rms = self.unary(&format!("{name}/sqrt"), UnaryKind::Sqrt, var)?;
        let normed = self.binary(&format!("{name}/divide"), BinaryKind::Div, x, rms)?;
        let w = self.weight(weight, &[dim])?;
        self.binary(name, BinaryKind::Mul, normed, w)
    }

    pub fn finish(self) -> Graph {
        self.graph
    }
}

/// An additive causal mask `[rows, keys]` for `seq` queries repeated `groups` times (row
/// `g * seq + s` is query `s`), where query `s` may see keys `0..=past + s`.
pub fn causal_mask(groups: usize, seq: usize, past: usize) -> Vec<f32> {
    let keys = past + seq;
    (0..groups)
        .flat_map(|_| 0..seq)
        .flat_map(|s| (0..keys).map(move |k| if k > past + s { f32::NEG_INFINITY } else { 0.0 }))
        .collect()
}
