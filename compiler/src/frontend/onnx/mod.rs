//! The ONNX frontend: protobuf decode, opset handling, attribute parsing, external data,
//! and import into the typed IR. Shape arithmetic is folded as nodes are imported, so
//! every value is typed with a static shape the moment it exists.
#![deny(clippy::indexing_slicing)]
mod attention;
mod contrib;
mod contrib_attention;
mod contrib_quant;
mod conv;
mod einsum;
mod extra;
mod node;
mod ops;
mod quant;
mod quant_fuse;
pub(super) mod rotary;
pub mod tensor;

pub use ops::supported_ops;

use super::ImportOptions;
use crate::error::{Error, NodeRef, Result, Unsupported};
use crate::ir::{Graph, TensorType, ValueId};
use node::NodeCtx;
use onnx_protobuf::{Message, ModelProto, NodeProto, ValueInfoProto};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// Largest model file accepted (protobuf itself cannot exceed 2 GiB).
pub const MAX_MODEL_FILE_BYTES: u64 = 2 << 30;

/// Decode an ONNX file.
pub fn read_model(path: &Path) -> Result<ModelProto> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.len() > MAX_MODEL_FILE_BYTES {
        return Err(Error::Limit(format!(
            "`{}` is {} bytes, above the {} byte limit of an ONNX protobuf",
            path.display(),
            meta.len(),
            MAX_MODEL_FILE_BYTES
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_model(&bytes).map_err(|e| match e {
        Error::InvalidModel(reason) => {
            Error::InvalidModel(format!("`{}` {reason}", path.display()))
        }
        other => other,
    })
}

/// Decode ONNX bytes (protobuf's own recursion limit bounds nesting depth).
pub fn parse_model(bytes: &[u8]) -> Result<ModelProto> {
    ModelProto::parse_from_bytes(bytes)
        .map_err(|e| Error::InvalidModel(format!("is not a valid ONNX protobuf: {e}")))
}

/// External-data file locations the model's initializers use, sorted and unique (they are
/// validated when the tensors are read).
pub fn external_locations(model: &ModelProto) -> Vec<String> {
    let mut out: BTreeSet<String> = BTreeSet::new();
    for t in model
        .graph
        .as_ref()
        .map(|g| g.initializer.as_slice())
        .unwrap_or(&[])
    {
        if t.data_location.value() == 1 {
            out.extend(
                t.external_data
                    .iter()
                    .filter(|e| e.key == "location")
                    .map(|e| e.value.clone()),
            );
        }
    }
    out.into_iter().collect()
}

/// The default-domain opset a model imports.
pub fn default_opset(model: &ModelProto) -> Result<i64> {
    model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| {
            Error::InvalidModel("the model imports no default-domain (ai.onnx) opset".into())
        })
}

/// The node as errors name it: an op of another domain (`com.microsoft`) with that domain
/// and its opset.
fn error_ref(model: &ModelProto, proto: &NodeProto, node: &NodeRef) -> NodeRef {
    if proto.domain.is_empty() || proto.domain == "ai.onnx" {
        return node.clone();
    }
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain == proto.domain)
        .map_or(0, |o| o.version);
    NodeRef {
        name: node.name.clone(),
        op_type: format!("{}.{}", proto.domain, proto.op_type),
        opset,
    }
}

fn node_name(proto: &NodeProto, index: usize) -> String {
    if proto.name.is_empty() {
        format!("{}_{index}", proto.op_type)
    } else {
        proto.name.clone()
    }
}

/// Every op occurrence the frontend has no constructor for, all at once.
pub fn unsupported_ops(model: &ModelProto) -> Vec<Unsupported> {
    let opset = default_opset(model).unwrap_or(0);
    let graph = model.graph.as_ref();
    let mut out = Vec::new();
    for (i, node) in graph
        .map(|g| g.node.as_slice())
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        if ops::constructor(&node.domain, &node.op_type).is_none() {
            out.push(Unsupported {
                node: NodeRef {
                    name: node_name(node, i),
                    op_type: node.op_type.clone(),
                    opset,
                },
                domain: node.domain.clone(),
            });
        }
    }
    out
}

/// Import a decoded model. `model_dir` anchors external data.
pub fn import(model: &ModelProto, model_dir: &Path, options: &ImportOptions) -> Result<Graph> {
    let opset = default_opset(model)?;
    let g = model
        .graph
        .as_ref()
        .ok_or_else(|| Error::InvalidModel("the model has no graph".into()))?;
    check_limits(g, options)?;
    let unsupported = unsupported_ops(model);
    if !unsupported.is_empty() {
        return Err(Error::UnsupportedOps(unsupported));
    }
    let mut graph = Graph::new(opset);
    let mut names: HashMap<String, ValueId> = HashMap::new();

    for init in &g.initializer {
        if names.contains_key(&init.name) {
            return Err(Error::InvalidModel(format!(
                "initializer `{}` is defined twice",
                init.name
            )));
        }
        let t = tensor::tensor_from_proto(init, Some(model_dir))
            .map_err(|e| Error::InvalidModel(format!("initializer `{}`: {e}", init.name)))?;
        let id = graph.add_constant(init.name.clone(), t);
        names.insert(init.name.clone(), id);
    }
    for input in &g.input {
        if names.contains_key(&input.name) {
            continue; // an initializer listed as input (IR < 4): a constant
        }
        let ty = input_type(input, options)?;
        let id = graph.add_value(input.name.clone(), ty);
        graph.inputs.push(id);
        names.insert(input.name.clone(), id);
    }

    let quant_plan = quant_fuse::plan(g, &|name: &str| {
        names.get(name).and_then(|&id| graph.constant(id).cloned())
    });
    graph.float_notes = quant_plan.notes.clone();
    for index in schedule(&g.node, &names)? {
        if quant_plan.skip.contains(&index) {
            continue;
        }
        let fusion = quant_plan.fused.get(&index);
        let proto = g
            .node
            .get(index)
            .ok_or_else(|| Error::Internal(format!("scheduled node {index} does not exist")))?;
        let node = NodeRef {
            name: node_name(proto, index),
            op_type: proto.op_type.clone(),
            opset,
        };
        let mut inputs = Vec::with_capacity(proto.input.len());
        let read: Vec<&str> = match fusion {
            Some(f) => f.reads(),
            None => proto.input.iter().map(String::as_str).collect(),
        };
        for &name in &read {
            if name.is_empty() {
                inputs.push(None);
                continue;
            }
            match names.get(name) {
                Some(&v) => inputs.push(Some(v)),
                None => {
                    return Err(Error::InvalidNode {
                        node,
                        reason: format!(
                            "input `{name}` is not computed (an unsupported optional output of an earlier node?)"
                        ),
                    });
                }
            }
        }
        let ctor = ops::constructor(&proto.domain, &proto.op_type)
            .ok_or_else(|| Error::UnsupportedOps(vec![]))?;
        let first_new = graph.value_count();
        let mut ctx = NodeCtx::new(proto, node.clone(), opset, &mut graph, inputs);
        if let Some(t) = options.quant_tiling {
            ctx.quant = t;
        }
        let outputs = match fusion {
            Some(f) => quant::fused(&mut ctx, f),
            None => ops::construct(ctor, &mut ctx),
        }
        .map_err(|e| e.at(error_ref(model, proto, &node)))?;
        for (name, &v) in proto.output.iter().zip(outputs.iter()) {
            if name.is_empty() {
                continue;
            }
            if names.contains_key(name) {
                return Err(Error::InvalidNode {
                    node,
                    reason: format!("output `{name}` is already defined"),
                });
            }
            if v.0 as usize >= first_new {
                graph.value_mut(v).name = name.clone();
            }
            names.insert(name.clone(), v);
        }
    }

    for output in &g.output {
        let v = *names.get(&output.name).ok_or_else(|| {
            Error::InvalidModel(format!("graph output `{}` is never computed", output.name))
        })?;
        if let Some(declared) = declared_dtype(output) {
            let ours = graph.ty(v).dtype;
            if declared != ours {
                return Err(Error::InvalidModel(format!(
                    "graph output `{}` is declared {declared} but computes {ours}",
                    output.name
                )));
            }
        }
        graph.outputs.push(v);
        graph.output_names.push(output.name.clone());
    }
    if graph.outputs.is_empty() {
        return Err(Error::InvalidModel("the graph has no outputs".into()));
    }
    Ok(graph)
}

/// Refuse a model above the node or weight-byte limits before decoding any tensor.
fn check_limits(g: &onnx_protobuf::GraphProto, options: &ImportOptions) -> Result<()> {
    let limits = &options.limits;
    if g.node.len() > limits.max_nodes {
        return Err(Error::Limit(format!(
            "the graph has {} nodes, above the limit of {} (raise it with --max-nodes)",
            g.node.len(),
            limits.max_nodes
        )));
    }
    let mut total: u64 = 0;
    for t in g
        .initializer
        .iter()
        .filter(|t| t.dims.iter().all(|&d| d >= 0))
    {
        let elems = t.dims.iter().try_fold(1u64, |n, &d| {
            u64::try_from(d).ok().and_then(|d| n.checked_mul(d))
        });
        let size = tensor::dtype_from_onnx(t.data_type)
            .map(|d| d.size_bytes() as u64)
            .unwrap_or(1);
        let bytes = elems.and_then(|n| n.checked_mul(size));
        total = match bytes.and_then(|b| total.checked_add(b)) {
            Some(v) => v,
            None => {
                return Err(Error::InvalidModel(format!(
                    "initializer `{}`: shape {:?} overflows or is negative",
                    t.name, t.dims
                )));
            }
        };
    }
    if total > limits.max_weight_bytes {
        return Err(Error::Limit(format!(
            "the initializers declare {total} bytes of weights, above the limit of {} (raise it with --max-weight-bytes)",
            limits.max_weight_bytes
        )));
    }
    Ok(())
}

fn declared_dtype(info: &ValueInfoProto) -> Option<crate::ir::DType> {
    use onnx_protobuf::type_proto::Value;
    match info.type_.as_ref()?.value.as_ref()? {
        Value::TensorType(t) => tensor::dtype_from_onnx(t.elem_type).ok(),
        _ => None,
    }
}

/// The static type of a graph input, binding symbolic dims from the options.
fn input_type(info: &ValueInfoProto, options: &ImportOptions) -> Result<TensorType> {
    use onnx_protobuf::tensor_shape_proto::dimension::Value as Dim;
    use onnx_protobuf::type_proto::Value;
    let bad =
        |reason: String| Error::InvalidModel(format!("graph input `{}`: {reason}", info.name));
    let t = match info.type_.as_ref().and_then(|t| t.value.as_ref()) {
        Some(Value::TensorType(t)) => t,
        Some(_) => return Err(bad("only tensor inputs are supported".into())),
        None => return Err(bad("no type given".into())),
    };
    let dtype = tensor::dtype_from_onnx(t.elem_type).map_err(bad)?;
    let shape_proto = t
        .shape
        .as_ref()
        .ok_or_else(|| bad("no shape given (rank unknown)".into()))?;
    let mut shape = Vec::with_capacity(shape_proto.dim.len());
    for (axis, dim) in shape_proto.dim.iter().enumerate() {
        let by_position = format!("{}.{axis}", info.name);
        let size = match &dim.value {
            Some(Dim::DimValue(v)) => usize::try_from(*v)
                .map_err(|_| bad(format!("axis {axis} has negative size {v}")))?,
            Some(Dim::DimParam(p)) if !p.is_empty() => {
                let stateful = options
                    .max_context
                    .and_then(|m| crate::stateful::default_dim(&info.name, axis, m));
                let bound = options.dims.get(p).or(options.dims.get(&by_position));
                match bound.copied().or(stateful) {
                    Some(v) => v,
                    None => {
                        return Err(Error::Usage(format!(
                            "graph input `{}` axis {axis} is the symbolic dimension `{p}`: bind it with `--dim {p}=N`",
                            info.name
                        )));
                    }
                }
            }
            _ => match options.dims.get(&by_position).copied().or_else(|| {
                options
                    .max_context
                    .and_then(|m| crate::stateful::default_dim(&info.name, axis, m))
            }) {
                Some(v) => v,
                None => {
                    return Err(Error::Usage(format!(
                        "graph input `{}` axis {axis} has no size and no name: bind it with `--dim {by_position}=N`",
                        info.name
                    )));
                }
            },
        };
        shape.push(size);
    }
    crate::ir::checked_numel(&shape).map_err(|e| bad(e.to_string()))?;
    Ok(TensorType::new(dtype, shape))
}

/// A topological order of the ONNX nodes (files should already be sorted, hostile ones
/// may not be): fails on cycles, dangling inputs and outputs defined twice.
fn schedule(nodes: &[NodeProto], known: &HashMap<String, ValueId>) -> Result<Vec<usize>> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for out in n.output.iter().filter(|o| !o.is_empty()) {
            if known.contains_key(out) || producer.insert(out.as_str(), i).is_some() {
                return Err(Error::InvalidModel(format!(
                    "value `{out}` is defined more than once (again by node `{}`)",
                    node_name(n, i)
                )));
            }
        }
    }
    let mut deps: Vec<BTreeSet<usize>> = Vec::with_capacity(nodes.len());
    for (i, n) in nodes.iter().enumerate() {
        let mut d = BTreeSet::new();
        for input in n.input.iter().filter(|s| !s.is_empty()) {
            if let Some(&p) = producer.get(input.as_str()) {
                d.insert(p);
            } else if !known.contains_key(input) {
                return Err(Error::InvalidNode {
                    node: NodeRef {
                        name: node_name(n, i),
                        op_type: n.op_type.clone(),
                        opset: 0,
                    },
                    reason: format!(
                        "input `{input}` is not a graph input, an initializer or any node's output"
                    ),
                });
            }
        }
        deps.push(d);
    }
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, d) in deps.iter().enumerate() {
        for &p in d {
            if let Some(u) = users.get_mut(p) {
                u.push(i);
            }
        }
    }
    let mut pending: Vec<usize> = deps.iter().map(|d| d.len()).collect();
    let mut ready: BTreeSet<usize> = (pending.iter().enumerate())
        .filter(|&(_, &n)| n == 0)
        .map(|(i, _)| i)
        .collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &u in users.get(i).into_iter().flatten() {
            if let Some(n) = pending.get_mut(u) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    ready.insert(u);
                }
            }
        }
    }
    if order.len() != nodes.len() {
        let stuck: Vec<String> = (pending.iter().zip(nodes).enumerate())
            .filter(|&(_, (&n, _))| n > 0)
            .take(8)
            .map(|(i, (_, node))| node_name(node, i))
            .collect();
        return Err(Error::InvalidModel(format!(
            "the graph has a cycle through nodes {stuck:?}"
        )));
    }
    Ok(order)
}
