//! The context an ONNX op constructor works in: typed attribute access, inputs, and
//! `add`, which folds an op whose inputs are all constant or adds it to the graph.
#![deny(clippy::indexing_slicing)]
use super::tensor::tensor_from_proto;
use crate::error::{NodeRef, OpError};
use crate::invalid;
use crate::ir::{Graph, Tensor, TensorType, ValueId};
use crate::ops::Op;
use crate::target::QuantTiling;
use onnx_protobuf::{AttributeProto, NodeProto};
use std::sync::Arc;

/// Folded constants larger than this (and larger than twice their inputs) stay ops, so a
/// broadcast of a scalar cannot bloat the weight blob.
const FOLD_BYTES: usize = 1 << 20;

pub struct NodeCtx<'a> {
    pub proto: &'a NodeProto,
    pub node: NodeRef,
    pub opset: i64,
    pub graph: &'a mut Graph,
    pub inputs: Vec<Option<ValueId>>,
    /// The integer kernels quantized layers are packed for.
    pub quant: QuantTiling,
    added: usize,
    nodes_added: usize,
}

impl<'a> NodeCtx<'a> {
    pub fn new(
        proto: &'a NodeProto,
        node: NodeRef,
        opset: i64,
        graph: &'a mut Graph,
        inputs: Vec<Option<ValueId>>,
    ) -> Self {
        NodeCtx {
            proto,
            node,
            opset,
            graph,
            inputs,
            quant: crate::frontend::portable_quant_tiling(),
            added: 0,
            nodes_added: 0,
        }
    }

    /// A required input.
    pub fn input(&self, i: usize) -> Result<ValueId, OpError> {
        match self.inputs.get(i).copied().flatten() {
            Some(v) => Ok(v),
            None => invalid!("missing required input #{i}"),
        }
    }

    /// An optional input (absent or empty name).
    pub fn opt_input(&self, i: usize) -> Option<ValueId> {
        self.inputs.get(i).copied().flatten()
    }

    /// Every present input, in order.
    pub fn all_inputs(&self) -> Vec<ValueId> {
        self.inputs.iter().flatten().copied().collect()
    }

    pub fn ty(&self, v: ValueId) -> &TensorType {
        self.graph.ty(v)
    }

    /// The size of `v` along `axis`, or an error naming the type when it has no such axis.
    pub fn dim(&self, v: ValueId, axis: usize) -> Result<usize, OpError> {
        let ty = self.ty(v);
        ty.shape
            .get(axis)
            .copied()
            .ok_or_else(|| OpError::Invalid(format!("axis {axis} is outside {ty}")))
    }

    pub fn constant(&self, v: ValueId) -> Option<Arc<Tensor>> {
        self.graph.constant(v).cloned()
    }

    /// An input that must be known at build time (shapes, axes, pads, ...), as integers.
    pub fn const_ints(&self, i: usize, what: &str) -> Result<Vec<i64>, OpError> {
        let v = self.input(i)?;
        match self.constant(v) {
            Some(t) => t.to_i64_vec(),
            None => Err(OpError::Unsupported(format!(
                "input #{i} (`{}`, the {what}) must be constant at build time, but it is computed from run-time data",
                self.graph.value(v).name
            ))),
        }
    }

    /// Like [`Self::const_ints`] for an optional input.
    pub fn opt_const_ints(&self, i: usize, what: &str) -> Result<Option<Vec<i64>>, OpError> {
        match self.opt_input(i) {
            Some(_) => self.const_ints(i, what).map(Some),
            None => Ok(None),
        }
    }

    /// A constant input as a tensor.
    pub fn const_tensor(&self, i: usize, what: &str) -> Result<Arc<Tensor>, OpError> {
        let v = self.input(i)?;
        self.constant(v).ok_or_else(|| {
            OpError::Unsupported(format!(
                "input #{i} (`{}`, the {what}) must be constant at build time, but it is computed from run-time data",
                self.graph.value(v).name
            ))
        })
    }

    fn attr(&self, name: &str) -> Option<&AttributeProto> {
        self.proto.attribute.iter().find(|a| a.name == name)
    }

    fn attr_of_type(
        &self,
        name: &str,
        code: i32,
        type_name: &str,
    ) -> Result<Option<&AttributeProto>, OpError> {
        match self.attr(name) {
            None => Ok(None),
            Some(a) if a.type_.value() == code => Ok(Some(a)),
            Some(a) if !a.ref_attr_name.is_empty() => {
                invalid!("attribute `{name}` refers to a function attribute")
            }
            Some(_) => invalid!("attribute `{name}` must be of type {type_name}"),
        }
    }

    pub fn has_attr(&self, name: &str) -> bool {
        self.attr(name).is_some()
    }

    pub fn attr_int(&self, name: &str, default: i64) -> Result<i64, OpError> {
        Ok(self.attr_of_type(name, 2, "INT")?.map_or(default, |a| a.i))
    }

    pub fn attr_float(&self, name: &str, default: f32) -> Result<f32, OpError> {
        Ok(self
            .attr_of_type(name, 1, "FLOAT")?
            .map_or(default, |a| a.f))
    }

    pub fn attr_ints(&self, name: &str) -> Result<Option<Vec<i64>>, OpError> {
        Ok(self.attr_of_type(name, 7, "INTS")?.map(|a| a.ints.clone()))
    }

    pub fn attr_floats(&self, name: &str) -> Result<Option<Vec<f32>>, OpError> {
        Ok(self
            .attr_of_type(name, 6, "FLOATS")?
            .map(|a| a.floats.clone()))
    }

    pub fn attr_string(&self, name: &str, default: &str) -> Result<String, OpError> {
        match self.attr_of_type(name, 3, "STRING")? {
            Some(a) => String::from_utf8(a.s.clone())
                .map_err(|_| OpError::Invalid(format!("attribute `{name}` is not UTF-8"))),
            None => Ok(default.to_string()),
        }
    }

    pub fn attr_tensor(&self, name: &str) -> Result<Option<Tensor>, OpError> {
        match self.attr_of_type(name, 4, "TENSOR")? {
            Some(a) => match a.t.as_ref() {
                Some(t) => tensor_from_proto(t, None)
                    .map(Some)
                    .map_err(OpError::Invalid),
                None => invalid!("attribute `{name}` holds no tensor"),
            },
            None => Ok(None),
        }
    }

    /// A new constant value.
    pub fn constant_value(&mut self, tensor: Tensor) -> ValueId {
        let name = format!("{}:const{}", self.node.name, self.added);
        self.added += 1;
        self.graph.add_constant(name, tensor)
    }

    /// Apply `op` to `inputs`: evaluate it now when every input is constant (and the result
    /// stays small), otherwise add a node. Returns the output values.
    pub fn add(&mut self, op: Op, inputs: &[ValueId]) -> Result<Vec<ValueId>, OpError> {
        let in_types: Vec<&TensorType> = inputs.iter().map(|&v| self.graph.ty(v)).collect();
        let out_types = op.infer(&in_types)?;
        let consts: Option<Vec<Arc<Tensor>>> = inputs
            .iter()
            .map(|&v| self.graph.constant(v).cloned())
            .collect();
        if let Some(consts) = consts {
            let in_bytes: usize = consts.iter().map(|t| t.ty.size_bytes()).sum();
            let out_bytes: usize = out_types.iter().map(|t| t.size_bytes()).sum();
            if out_bytes <= FOLD_BYTES.max(in_bytes.saturating_mul(2)) {
                let refs: Vec<&Tensor> = consts.iter().map(|t| t.as_ref()).collect();
                let outs = op.eval(&refs, &out_types)?;
                return Ok(outs.into_iter().map(|t| self.constant_value(t)).collect());
            }
        }
        // The first node a constructor adds carries the model's node name; later ones derive
        // from it, so generated code traces back to the model.
        let name = if self.nodes_added == 0 {
            self.node.name.clone()
        } else {
            format!("{}/{}", self.node.name, self.nodes_added)
        };
        self.nodes_added += 1;
        let names: Vec<String> = (0..out_types.len())
            .map(|i| format!("{name}:{i}"))
            .collect();
        let (_, outs) =
            self.graph
                .add_node(name, self.node.op_type.clone(), op, inputs.to_vec(), &names)?;
        Ok(outs)
    }

    /// [`Self::add`] for a single-output op.
    pub fn add1(&mut self, op: Op, inputs: &[ValueId]) -> Result<ValueId, OpError> {
        let outs = self.add(op, inputs)?;
        outs.first()
            .copied()
            .ok_or_else(|| OpError::Invalid("op produced no output".into()))
    }
}
