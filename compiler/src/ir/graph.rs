//! The IR graph: a newtype over petgraph's `StableDiGraph` whose nodes are ops and whose
//! edges carry the value flowing from producer to consumer. Values live in a side table
//! indexed by [`ValueId`]; every value has a static [`TensorType`].
use super::tensor::{Tensor, TensorType};
use crate::error::OpError;
use crate::ops::Op;
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// Index of a value in [`Graph`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub u32);

/// Index of a node in [`Graph`]; stable across removals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub NodeIndex<u32>);

impl NodeId {
    pub fn index(self) -> usize {
        self.0.index()
    }
}

/// A tensor-valued edge source: a graph input, a constant, or a node output.
#[derive(Debug, Clone)]
pub struct Value {
    pub name: String,
    pub ty: TensorType,
    pub producer: Option<NodeId>,
    pub constant: Option<Arc<Tensor>>,
}

/// One op application.
#[derive(Debug, Clone)]
pub struct Node {
    /// The model's node name, or a name derived from it by a pass.
    pub name: String,
    /// The ONNX op type this node came from (for error messages and reports).
    pub source_op: String,
    pub op: Op,
    pub inputs: Vec<ValueId>,
    pub outputs: Vec<ValueId>,
}

/// Model state kept between runs (a stateful decoder's KV cache): the graph reads it as
/// `input` (a value with no producer, not in [`Graph::inputs`]) and writes it back as
/// `output` (not in [`Graph::outputs`]), in place: both get the same buffer.
#[derive(Debug, Clone)]
pub struct StateSlot {
    /// The model's name for it (the `past` input's name).
    pub name: String,
    pub input: ValueId,
    pub output: ValueId,
    /// The cache's slot (sequence) axis.
    pub axis: usize,
}

/// The whole model after import.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    dag: StableDiGraph<Node, ValueId>,
    values: Vec<Value>,
    pub inputs: Vec<ValueId>,
    pub outputs: Vec<ValueId>,
    /// The model's name for each graph output (an output may be the same value as an
    /// input or another output, so values do not carry it).
    pub output_names: Vec<String>,
    /// The default-domain opset the model was imported with.
    pub opset: i64,
    /// State carried between runs; empty for a stateless model.
    pub states: Vec<StateSlot>,
    /// Quantized model nodes imported as float/i32 arithmetic rather than integer kernels:
    /// `(node name, why)`, for the build report.
    pub float_notes: Vec<(String, String)>,
}

impl Graph {
    pub fn new(opset: i64) -> Self {
        Graph {
            opset,
            ..Default::default()
        }
    }

    pub fn value(&self, id: ValueId) -> &Value {
        &self.values[id.0 as usize]
    }

    pub fn value_mut(&mut self, id: ValueId) -> &mut Value {
        &mut self.values[id.0 as usize]
    }

    pub fn ty(&self, id: ValueId) -> &TensorType {
        &self.value(id).ty
    }

    pub fn constant(&self, id: ValueId) -> Option<&Arc<Tensor>> {
        self.value(id).constant.as_ref()
    }

    pub fn value_count(&self) -> usize {
        self.values.len()
    }

    /// The model's name of graph output `i`.
    pub fn output_name(&self, i: usize) -> &str {
        self.output_names
            .get(i)
            .map(String::as_str)
            .unwrap_or_else(|| &self.value(self.outputs[i]).name)
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.dag[id.0]
    }

    /// Whether `id` is still in the graph (passes remove nodes while walking an order).
    pub fn has_node(&self, id: NodeId) -> bool {
        self.dag.contains_node(id.0)
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.dag[id.0]
    }

    pub fn node_count(&self) -> usize {
        self.dag.node_count()
    }

    /// Node ids in index order (insertion order, stable).
    pub fn node_ids(&self) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self.dag.node_indices().map(NodeId).collect();
        ids.sort();
        ids
    }

    /// A value with no producer (a graph input, or a placeholder the caller fills).
    pub fn add_value(&mut self, name: impl Into<String>, ty: TensorType) -> ValueId {
        let id = ValueId(self.values.len() as u32);
        self.values.push(Value {
            name: name.into(),
            ty,
            producer: None,
            constant: None,
        });
        id
    }

    pub fn add_constant(&mut self, name: impl Into<String>, tensor: Tensor) -> ValueId {
        let id = self.add_value(name, tensor.ty.clone());
        self.values[id.0 as usize].constant = Some(Arc::new(tensor));
        id
    }

    /// Add a node, inferring its output types; outputs are named by `output_names`.
    pub fn add_node(
        &mut self,
        name: impl Into<String>,
        source_op: impl Into<String>,
        op: Op,
        inputs: Vec<ValueId>,
        output_names: &[String],
    ) -> Result<(NodeId, Vec<ValueId>), OpError> {
        let in_types: Vec<&TensorType> = inputs.iter().map(|&v| self.ty(v)).collect();
        let out_types = op.infer(&in_types)?;
        let name = name.into();
        let outputs: Vec<ValueId> = out_types
            .into_iter()
            .enumerate()
            .map(|(i, ty)| {
                let vname = output_names
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| format!("{name}:{i}"));
                self.add_value(vname, ty)
            })
            .collect();
        let node = Node {
            name,
            source_op: source_op.into(),
            op,
            inputs: inputs.clone(),
            outputs: outputs.clone(),
        };
        let id = NodeId(self.dag.add_node(node));
        for &out in &outputs {
            self.values[out.0 as usize].producer = Some(id);
        }
        for &input in &inputs {
            if let Some(p) = self.value(input).producer {
                self.dag.add_edge(p.0, id.0, input);
            }
        }
        Ok((id, outputs))
    }

    /// Remove a node; its outputs keep their ids but lose their producer.
    pub fn remove_node(&mut self, id: NodeId) {
        if let Some(node) = self.dag.remove_node(id.0) {
            for out in node.outputs {
                self.values[out.0 as usize].producer = None;
            }
        }
    }

    /// Make every consumer of `old` (and the graph outputs) read `new` instead.
    pub fn replace_uses(&mut self, old: ValueId, new: ValueId) {
        for id in self.node_ids() {
            let node = &mut self.dag[id.0];
            for input in node.inputs.iter_mut() {
                if *input == old {
                    *input = new;
                }
            }
        }
        for output in self.outputs.iter_mut() {
            if *output == old {
                *output = new;
            }
        }
        for state in self.states.iter_mut() {
            if state.output == old {
                state.output = new;
            }
        }
        self.rebuild_edges();
    }

    /// Recompute every edge from the nodes' input lists.
    pub fn rebuild_edges(&mut self) {
        self.dag.clear_edges();
        for id in self.node_ids() {
            let inputs = self.dag[id.0].inputs.clone();
            for input in inputs {
                if let Some(p) = self.value(input).producer {
                    self.dag.add_edge(p.0, id.0, input);
                }
            }
        }
    }

    /// Nodes that read `value`, in index order.
    pub fn consumers(&self, value: ValueId) -> Vec<NodeId> {
        let mut out: Vec<NodeId> = self
            .node_ids()
            .into_iter()
            .filter(|&n| self.node(n).inputs.contains(&value))
            .collect();
        out.dedup();
        out
    }

    /// Number of reads of `value` by nodes plus graph outputs.
    pub fn use_count(&self, value: ValueId) -> usize {
        let by_nodes: usize = self
            .node_ids()
            .iter()
            .map(|&n| self.node(n).inputs.iter().filter(|&&v| v == value).count())
            .sum();
        by_nodes
            + self.outputs.iter().filter(|&&v| v == value).count()
            + self.states.iter().filter(|s| s.output == value).count()
    }

    /// A deterministic topological order: among ready nodes the lowest index goes first.
    /// Fails with the names of nodes on a cycle.
    pub fn topo_order(&self) -> Result<Vec<NodeId>, OpError> {
        let mut indegree: HashMap<NodeIndex<u32>, usize> = HashMap::new();
        for n in self.dag.node_indices() {
            let preds: BTreeSet<NodeIndex<u32>> = self
                .dag
                .edges_directed(n, petgraph::Direction::Incoming)
                .map(|e| e.source())
                .collect();
            indegree.insert(n, preds.len());
        }
        let mut ready: BTreeSet<NodeIndex<u32>> = indegree
            .iter()
            .filter(|(_, d)| **d == 0)
            .map(|(n, _)| *n)
            .collect();
        let mut order = Vec::with_capacity(self.dag.node_count());
        while let Some(n) = ready.pop_first() {
            order.push(NodeId(n));
            let succs: BTreeSet<NodeIndex<u32>> = self
                .dag
                .edges_directed(n, petgraph::Direction::Outgoing)
                .map(|e| e.target())
                .collect();
            for s in succs {
                if let Some(d) = indegree.get_mut(&s) {
                    *d -= 1;
                    if *d == 0 {
                        ready.insert(s);
                    }
                }
            }
        }
        if order.len() != self.dag.node_count() {
            let done: BTreeSet<NodeIndex<u32>> = order.iter().map(|n| n.0).collect();
            let stuck: Vec<String> = self
                .node_ids()
                .into_iter()
                .filter(|n| !done.contains(&n.0))
                .take(8)
                .map(|n| self.node(n).name.clone())
                .collect();
            return Err(OpError::Invalid(format!(
                "the graph has a cycle through nodes {stuck:?}"
            )));
        }
        Ok(order)
    }

    /// Drop the data of every constant that no node, graph output or state reads (a pass
    /// that rewrote a weight, as packing does, leaves the original behind), so that no dead
    /// copy of the weights stays in memory.
    pub fn drop_unread_constants(&mut self) {
        let mut read: BTreeSet<ValueId> = self.outputs.iter().copied().collect();
        read.extend(self.states.iter().flat_map(|s| [s.input, s.output]));
        for id in self.node_ids() {
            read.extend(self.node(id).inputs.iter().copied());
        }
        for (i, value) in self.values.iter_mut().enumerate() {
            if !read.contains(&ValueId(i as u32)) {
                value.constant = None;
            }
        }
    }

    /// Drop the data of those of `values` that are constants no node, graph output or state
    /// reads any more: a rewrite that replaced a weight frees the old copy at once rather
    /// than at the end of its pass (one scan of the nodes).
    pub fn drop_if_unread(&mut self, values: &[ValueId]) {
        let mut unread: BTreeSet<ValueId> = values
            .iter()
            .copied()
            .filter(|&v| {
                self.values
                    .get(v.0 as usize)
                    .is_some_and(|x| x.constant.is_some())
            })
            .collect();
        if unread.is_empty() {
            return;
        }
        for v in self
            .outputs
            .iter()
            .chain(self.states.iter().flat_map(|s| [&s.input, &s.output]))
        {
            unread.remove(v);
        }
        for id in self.node_ids() {
            for v in &self.node(id).inputs {
                unread.remove(v);
            }
        }
        for v in unread {
            if let Some(value) = self.values.get_mut(v.0 as usize) {
                value.constant = None;
            }
        }
    }

    /// Values read by nodes or graph outputs that are constants, in first-use order of `order`.
    pub fn used_constants(&self, order: &[NodeId]) -> Vec<ValueId> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        let reads = order
            .iter()
            .flat_map(|&n| self.node(n).inputs.iter().copied())
            .chain(self.outputs.iter().copied());
        for v in reads {
            if self.constant(v).is_some() && seen.insert(v) {
                out.push(v);
            }
        }
        out
    }
}
