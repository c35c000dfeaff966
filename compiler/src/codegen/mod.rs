//! Crate emission: turns a verified graph and its plan into the files of a generated crate
//! (`Cargo.toml`, `src/lib.rs`, `weights.bin`, `model.ir`, `README.md`), in memory first so
//! a build can be written or compared byte for byte.
pub mod firmware_runner;
pub mod golden;
pub mod naming;
pub mod runner;
pub mod suite;

use crate::error::{Error, Result};
use crate::ir::{DType, Graph, ValueId};
use crate::ops::util::{EmitCtx, lit_usize, storage_ty};
use crate::plan::{Location, Plan};
use crate::target::TargetProfile;
use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::{format_ident, quote};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The generated crate's fixed pieces.
const CARGO_TEMPLATE: &str = include_str!("../../../templates/Cargo.toml.in");
const README_TEMPLATE: &str = include_str!("../../../templates/README.md.in");
const BUILD_RS_TEMPLATE: &str = include_str!("../../../templates/build.rs.in");

/// What the emitted crate records about how it was made.
#[derive(Debug, Clone)]
pub struct CrateMeta {
    pub crate_name: String,
    /// The model file's name (no directories, so output does not depend on where it lives).
    pub model_file: String,
    pub target: TargetProfile,
    /// `runtime-core` path as written into `Cargo.toml`.
    pub runtime_path: String,
    pub manifest: crate::manifest::Manifest,
}

/// A generated crate held in memory: relative path → bytes, in a fixed order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedCrate {
    pub name: String,
    pub files: BTreeMap<PathBuf, Vec<u8>>,
}

impl GeneratedCrate {
    /// Write every file under `dir` (creating folders; stale files of ours are overwritten).
    pub fn write(&self, dir: &Path) -> Result<()> {
        for (rel, bytes) in &self.files {
            let path = dir.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            }
            let unchanged = std::fs::read(&path).is_ok_and(|old| &old == bytes);
            if !unchanged {
                std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))?;
            }
        }
        Ok(())
    }

    /// Files under `dir` that differ from (or are missing against) this crate.
    pub fn differences(&self, dir: &Path) -> Vec<PathBuf> {
        self.files
            .iter()
            .filter(|(rel, bytes)| std::fs::read(dir.join(rel)).map_or(true, |old| &&old != bytes))
            .map(|(rel, _)| rel.clone())
            .collect()
    }
}

/// Names of the public API for every graph input and output.
pub struct Io {
    pub input_fields: Vec<String>,
    pub output_fields: Vec<String>,
    /// Fields of the generated `State` struct, one per `Graph::states` entry.
    pub state_fields: Vec<String>,
}

impl Io {
    pub fn new(graph: &Graph) -> Io {
        let names: Vec<String> = graph
            .inputs
            .iter()
            .map(|&v| graph.value(v).name.clone())
            .chain((0..graph.outputs.len()).map(|i| graph.output_name(i).to_string()))
            .chain(graph.states.iter().map(|s| s.name.clone()))
            .collect();
        let mut fields = naming::unique_snake(&names);
        let state_fields = fields.split_off(graph.inputs.len() + graph.outputs.len());
        let output_fields = fields.split_off(graph.inputs.len());
        Io {
            input_fields: fields,
            output_fields,
            state_fields,
        }
    }

    fn field(name: &str) -> Ident {
        Ident::new(name, Span::call_site())
    }

    fn len_const(name: &str) -> Ident {
        format_ident!("{}_LEN", name.to_ascii_uppercase())
    }

    fn shape_const(name: &str) -> Ident {
        format_ident!("{}_SHAPE", name.to_ascii_uppercase())
    }
}

fn api_ty(dtype: DType) -> TokenStream {
    let ident = Ident::new(dtype.rust_api(), Span::call_site());
    quote!(#ident)
}

/// Comment text that survives as a `//` line: printable ASCII only.
fn comment_text(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect::<String>()
        .replace(['"', '\\'], "?")
}

/// Emit the crate.
pub fn emit(graph: &Graph, plan: &Plan, meta: &CrateMeta) -> Result<GeneratedCrate> {
    let io = Io::new(graph);
    let weights = weight_blob(graph, plan)?;
    let weights_sha256 = crate::manifest::hex_digest(&weights);
    let object = weights_object(meta, plan.weight_bytes, &weights_sha256);
    let form = Form::Crate {
        object: object.clone(),
    };
    let lib = lib_rs(graph, plan, meta, &io, &weights_sha256, &form)?;
    let ir = crate::ir::printer::print(graph).map_err(|e| Error::Internal(e.to_string()))?;
    let mut files = BTreeMap::new();
    files.insert(
        PathBuf::from("Cargo.toml"),
        fill(CARGO_TEMPLATE, meta, graph, plan, &io).into_bytes(),
    );
    files.insert(
        PathBuf::from("README.md"),
        fill(README_TEMPLATE, meta, graph, plan, &io).into_bytes(),
    );
    files.insert(PathBuf::from("src/lib.rs"), lib.into_bytes());
    let object_literal = match &object {
        Some((symbol, section)) => format!("Some(({symbol:?}, {section:?}))"),
        None => "None".to_string(),
    };
    let build_rs = BUILD_RS_TEMPLATE
        .replace("{{weights_sha256}}", &weights_sha256)
        .replace("{{weights_object}}", &object_literal);
    files.insert(PathBuf::from("build.rs"), build_rs.into_bytes());
    files.insert(PathBuf::from("weights.bin"), weights);
    files.insert(PathBuf::from("model.ir"), ir.into_bytes());
    // Generated code is already formatted (prettyplease); keep `cargo fmt` in a user's
    // workspace from rewriting it, so vendored copies stay byte-identical to a regeneration.
    files.insert(
        PathBuf::from("rustfmt.toml"),
        b"disable_all_formatting = true\n".to_vec(),
    );
    Ok(GeneratedCrate {
        name: meta.crate_name.clone(),
        files,
    })
}

/// One model as a module of a larger crate: the module's source and its weight blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedModule {
    pub source: String,
    pub weights: Vec<u8>,
}

/// Emit the model as a module (`Inputs`, `Outputs`, `Model`, `run` and the `pub const`s,
/// exactly as in a crate's `lib.rs`) that includes its weights from `weights_path`,
/// relative to the module's file. The enclosing crate supplies `#![no_std]` and the
/// `runtime-core` dependency. Test harnesses compile many models into one crate this way.
pub fn emit_module(
    graph: &Graph,
    plan: &Plan,
    meta: &CrateMeta,
    weights_path: &str,
) -> Result<GeneratedModule> {
    let io = Io::new(graph);
    let weights = weight_blob(graph, plan)?;
    let form = Form::Module {
        weights_path: weights_path.to_string(),
    };
    let weights_sha256 = crate::manifest::hex_digest(&weights);
    let source = lib_rs(graph, plan, meta, &io, &weights_sha256, &form)?;
    Ok(GeneratedModule { source, weights })
}

/// Whether the code is a crate's `lib.rs` (its blob included from `../weights.bin`, or
/// linked as the library its `build.rs` writes: `object` = `(symbol, section)`) or a module
/// inside another crate (always `include_bytes!`).
enum Form {
    Crate { object: Option<(String, String)> },
    Module { weights_path: String },
}

/// Section of a linked blob when the profile names none (merged into `.rodata`).
const OBJECT_SECTION: &str = ".rodata.slm_weights";

/// `(symbol, section)` of the crate's blob when it is linked as a library
/// (`memory.weights_embed`): the symbol names the crate and the blob's digest, so two
/// generated crates linked into one program do not clash.
fn weights_object(
    meta: &CrateMeta,
    weight_bytes: usize,
    weights_sha256: &str,
) -> Option<(String, String)> {
    if !meta.target.memory.weights_embed.uses_object(weight_bytes) {
        return None;
    }
    let name: String = meta
        .crate_name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let digest = weights_sha256.get(..16).unwrap_or(weights_sha256);
    let section = match meta.target.memory.weights_section.as_str() {
        "" => OBJECT_SECTION,
        s => s,
    };
    Some((format!("slm_weights_{name}_{digest}"), section.to_string()))
}

fn io_table(graph: &Graph, io: &Io) -> String {
    let mut s = String::from("| | model name | field | type |\n|---|---|---|---|\n");
    for (k, &v) in graph.inputs.iter().enumerate() {
        s.push_str(&format!(
            "| input | `{}` | `{}` | `{}` |\n",
            graph.value(v).name,
            io.input_fields[k],
            graph.ty(v)
        ));
    }
    for (k, &v) in graph.outputs.iter().enumerate() {
        s.push_str(&format!(
            "| output | `{}` | `{}` | `{}` |\n",
            graph.output_name(k),
            io.output_fields[k],
            graph.ty(v)
        ));
    }
    s
}

fn fill(template: &str, meta: &CrateMeta, graph: &Graph, plan: &Plan, io: &Io) -> String {
    template
        .replace("{{crate_name}}", &meta.crate_name)
        .replace("{{model_file}}", &meta.model_file)
        .replace("{{target}}", &meta.target.name)
        .replace("{{runtime_path}}", &meta.runtime_path)
        .replace("{{compiler_version}}", env!("CARGO_PKG_VERSION"))
        .replace("{{arena_bytes}}", &plan.arena_bytes.to_string())
        .replace("{{weight_bytes}}", &plan.weight_bytes.to_string())
        .replace("{{io_table}}", &io_table(graph, io))
}

fn weight_blob(graph: &Graph, plan: &Plan) -> Result<Vec<u8>> {
    let mut blob = Vec::with_capacity(plan.weight_bytes);
    for &(v, offset) in &plan.weights {
        let t = graph
            .constant(v)
            .ok_or_else(|| Error::Internal("weight without data".into()))?;
        blob.resize(offset, 0);
        blob.extend_from_slice(&t.data.to_le_bytes());
    }
    blob.resize(plan.weight_bytes, 0);
    Ok(blob)
}

/// How node code reads a value: the expression of a typed shared slice, and the arena span
/// it needs (if any).
fn read_expr(
    graph: &Graph,
    plan: &Plan,
    io: &Io,
    v: ValueId,
    arena_ident: &Ident,
) -> Result<TokenStream> {
    let ty = graph.ty(v);
    let t = storage_ty(ty.dtype);
    let bytes = ty.size_bytes();
    Ok(match plan.location(v)? {
        Location::Arena(_) => quote!(rt::arena::cast::<#t>(#arena_ident)),
        Location::Weight(off) => {
            let (a, b) = (lit_usize(off), lit_usize(off + bytes));
            quote!(rt::arena::cast::<#t>(&WEIGHTS.0[#a..#b]))
        }
        Location::Input(i) => {
            let f = Io::field(&io.input_fields[i]);
            if ty.dtype == DType::Bool {
                quote!(rt::arena::bools_as_bytes(&inputs.#f[..]))
            } else {
                quote!(&inputs.#f[..])
            }
        }
        Location::Output(i) => {
            let f = Io::field(&io.output_fields[i]);
            quote!(&outputs.#f[..])
        }
        Location::State(i) => {
            let f = Io::field(&io.state_fields[i]);
            quote!(&state.#f[..])
        }
    })
}

/// A `__node!(N)` marker that [`format_file`] turns into the comment `comments[N]`.
fn marker(comments: &mut Vec<String>, text: String) -> Literal {
    comments.push(comment_text(&text));
    Literal::usize_unsuffixed(comments.len() - 1)
}

fn node_code(
    graph: &Graph,
    plan: &Plan,
    io: &Io,
    id: crate::ir::NodeId,
    comments: &mut Vec<String>,
) -> Result<TokenStream> {
    let node = graph.node(id);
    let mut reads = Vec::new();
    let mut writes = Vec::new();
    let mut binds = Vec::new();
    // An in-place op whose output shares its input's buffer reads it through `o0`.
    let in_place = node.op.in_place_input().filter(|&k| {
        let same = node
            .inputs
            .get(k)
            .zip(node.outputs.first())
            .map(|(&i, &o)| (plan.location(i).ok(), plan.location(o).ok()));
        matches!(same, Some((Some(a), Some(b))) if a == b)
    });
    for (k, &v) in node.inputs.iter().enumerate() {
        if in_place == Some(k) {
            continue;
        }
        let ident = format_ident!("i{}", k);
        let t = storage_ty(graph.ty(v).dtype);
        let arena_ident = format_ident!("r{}", reads.len());
        if let Location::Arena(off) = plan.location(v)? {
            reads.push((off, graph.ty(v).size_bytes()));
        }
        let expr = read_expr(graph, plan, io, v, &arena_ident)?;
        binds.push(quote!(let #ident: &[#t] = #expr;));
    }
    for (k, &v) in node.outputs.iter().enumerate() {
        let ident = format_ident!("o{}", k);
        let t = storage_ty(graph.ty(v).dtype);
        let expr = match plan.location(v)? {
            Location::Arena(off) => {
                let w = format_ident!("w{}", writes.len());
                writes.push((off, graph.ty(v).size_bytes()));
                quote!(rt::arena::cast_mut::<#t>(#w))
            }
            Location::Output(i) => {
                let f = Io::field(&io.output_fields[i]);
                quote!(&mut outputs.#f[..])
            }
            Location::State(i) => {
                let f = Io::field(&io.state_fields[i]);
                quote!(&mut state.#f[..])
            }
            other => {
                return Err(Error::Internal(format!(
                    "node `{}` writes to read-only location {other:?}",
                    node.name
                )));
            }
        };
        binds.push(quote!(let #ident: &mut [#t] = #expr;));
    }
    let in_types: Vec<_> = node.inputs.iter().map(|&v| graph.ty(v).clone()).collect();
    let out_types: Vec<_> = node.outputs.iter().map(|&v| graph.ty(v).clone()).collect();
    let ctx = EmitCtx {
        node_name: &node.name,
        inputs: &in_types,
        outputs: &out_types,
    };
    let mut body = node
        .op
        .emit(&ctx)
        .map_err(|e| Error::Internal(format!("emitting node `{}`: {e}", node.name)))?;
    if let (Some(k), None) = (node.op.in_place_input(), in_place) {
        // Not sharing a buffer: start from a copy of the input it updates.
        let i = format_ident!("i{}", k);
        body = quote! { rt::kernels::layout::copy(#i, o0); #body };
    }
    let marker = marker(comments, format!("{} ({})", node.name, node.op.name()));
    let split = split_tokens(&reads, &writes);
    Ok(quote! {
        __node!(#marker);
        {
            #split
            #(#binds)*
            #body
        }
    })
}

fn split_tokens(reads: &[(usize, usize)], writes: &[(usize, usize)]) -> TokenStream {
    if reads.is_empty() && writes.is_empty() {
        return quote!();
    }
    let r_idents = (0..reads.len()).map(|i| format_ident!("r{}", i));
    let w_idents = (0..writes.len()).map(|i| format_ident!("w{}", i));
    let spans = |v: &[(usize, usize)]| {
        let items = v.iter().map(|&(o, l)| {
            let (o, l) = (lit_usize(o), lit_usize(l));
            quote!((#o, #l))
        });
        quote!([#(#items),*])
    };
    let (rs, ws) = (spans(reads), spans(writes));
    quote!(let ([#(#r_idents),*], [#(#w_idents),*]) = rt::arena::split(&mut *arena, #rs, #ws);)
}

fn output_copy_code(
    graph: &Graph,
    plan: &Plan,
    io: &Io,
    (output, source): (usize, ValueId),
    comments: &mut Vec<String>,
) -> Result<TokenStream> {
    let ty = graph.ty(source);
    let f = Io::field(&io.output_fields[output]);
    let mut reads = Vec::new();
    if let Location::Arena(off) = plan.location(source)? {
        reads.push((off, ty.size_bytes()));
    }
    let split = split_tokens(&reads, &[]);
    let src = read_expr(graph, plan, io, source, &format_ident!("r0"))?;
    let t = storage_ty(ty.dtype);
    let copy = if ty.dtype == DType::Bool {
        quote!(rt::arena::bytes_to_bools(src, &mut outputs.#f[..]);)
    } else {
        quote!(rt::kernels::layout::copy(src, &mut outputs.#f[..]);)
    };
    let marker = marker(comments, format!("output `{}`", graph.output_name(output)));
    Ok(quote! {
        __node!(#marker);
        {
            #split
            let src: &[#t] = #src;
            #copy
        }
    })
}

fn lib_rs(
    graph: &Graph,
    plan: &Plan,
    meta: &CrateMeta,
    io: &Io,
    weights_sha256: &str,
    form: &Form,
) -> Result<String> {
    let manifest = manifest_tokens(&meta.manifest, weights_sha256);
    let (no_std, weights_path) = match form {
        Form::Crate { .. } => (quote!(#![no_std]), Literal::string("../weights.bin")),
        Form::Module { weights_path } => (quote!(), Literal::string(weights_path)),
    };
    let section = &meta.target.memory.weights_section;
    let weights_static = if let Form::Crate {
        object: Some((symbol, _)),
    } = form
    {
        let symbol = Literal::string(symbol);
        quote! {
            rt::weights_in_object!(#symbol, WEIGHTS, WEIGHT_BYTES);
        }
    } else if section.is_empty() {
        quote! {
            static WEIGHTS: rt::Aligned64<[u8; WEIGHT_BYTES]> = rt::Aligned64(*include_bytes!(#weights_path));
        }
    } else {
        let section = Literal::string(section);
        quote! {
            rt::weights_in_section!(#section, WEIGHTS, WEIGHT_BYTES, *include_bytes!(#weights_path));
        }
    };
    let arena_bytes = lit_usize(plan.arena_bytes);
    let weight_bytes = lit_usize(plan.weight_bytes);
    let lower = lit_usize(plan.lower_bound_bytes);
    let state_bytes = lit_usize(crate::pipeline::state_bytes(graph));
    let ram = Literal::u64_unsuffixed(meta.target.memory.ram_bytes as u64);
    let flash = Literal::u64_unsuffixed(meta.target.memory.flash_bytes as u64);
    let weights_in_ram = meta.target.memory.weights_in == "ram";

    let mut consts = Vec::new();
    let mut in_fields = Vec::new();
    let mut out_fields = Vec::new();
    let describe = |v: ValueId| format!(" `{}`: `{}`", graph.value(v).name, graph.ty(v));
    for (k, &v) in graph.inputs.iter().enumerate() {
        let name = &io.input_fields[k];
        let (len_c, shape_c, field) = (Io::len_const(name), Io::shape_const(name), Io::field(name));
        let ty = graph.ty(v);
        let (n, rank) = (lit_usize(ty.numel()), lit_usize(ty.rank()));
        let dims = ty.shape.iter().map(|&d| lit_usize(d));
        let doc = format!(" Input{}.", describe(v));
        consts.push(quote! {
            #[doc = #doc]
            pub const #shape_c: [usize; #rank] = [#(#dims),*];
            pub const #len_c: usize = #n;
        });
        let t = api_ty(ty.dtype);
        in_fields.push(quote! { #[doc = #doc] pub #field: &'a [#t; #len_c], });
    }
    for (k, &v) in graph.outputs.iter().enumerate() {
        let name = &io.output_fields[k];
        let (len_c, shape_c, field) = (Io::len_const(name), Io::shape_const(name), Io::field(name));
        let ty = graph.ty(v);
        let (n, rank) = (lit_usize(ty.numel()), lit_usize(ty.rank()));
        let dims = ty.shape.iter().map(|&d| lit_usize(d));
        let doc = format!(" Output `{}`: `{}`.", graph.output_name(k), graph.ty(v));
        consts.push(quote! {
            #[doc = #doc]
            pub const #shape_c: [usize; #rank] = [#(#dims),*];
            pub const #len_c: usize = #n;
        });
        let t = api_ty(ty.dtype);
        out_fields.push(quote! { #[doc = #doc] pub #field: &'a mut [#t; #len_c], });
    }
    let mut unused_inputs = quote!();
    if in_fields.is_empty() {
        // A model without inputs (all constant) still takes `&Inputs<'_>`, so every model
        // has the same API shape.
        in_fields.push(quote! {
            /// The model has no inputs: `Inputs { none: core::marker::PhantomData }`.
            pub none: core::marker::PhantomData<&'a ()>,
        });
        unused_inputs = quote!(let _ = inputs;);
    }
    let input_names = graph
        .inputs
        .iter()
        .map(|&v| Literal::string(&graph.value(v).name));
    let output_names = (0..graph.outputs.len()).map(|i| Literal::string(graph.output_name(i)));
    let (n_in, n_out) = (
        lit_usize(graph.inputs.len()),
        lit_usize(graph.outputs.len()),
    );

    let mut body = Vec::new();
    let mut comments = Vec::new();
    for &id in &plan.order {
        if plan.aliased.contains(&id) {
            continue;
        }
        body.push(node_code(graph, plan, io, id, &mut comments)?);
    }
    for copy in &plan.output_copies {
        body.push(output_copy_code(
            graph,
            plan,
            io,
            (copy.output, copy.source),
            &mut comments,
        )?);
    }
    // The same sums as `pipeline::check_budget`, so a crate whose plan was refused at build
    // time (or edited by hand) does not compile either.
    let budget_check = if weights_in_ram {
        quote! {
            const _: () = assert!((ARENA_BYTES as u64) + (STATE_BYTES as u64) + (WEIGHT_BYTES as u64) <= RAM_BUDGET_BYTES, "arena, state and weights exceed the target's RAM budget");
        }
    } else {
        quote! {
            const _: () = assert!((ARENA_BYTES as u64) + (STATE_BYTES as u64) <= RAM_BUDGET_BYTES, "arena and state exceed the target's RAM budget");
            const _: () = assert!((WEIGHT_BYTES as u64) <= FLASH_BUDGET_BYTES, "the weights exceed the target's flash budget");
        }
    };
    let (model_file, target_name) = (
        Literal::string(&meta.model_file),
        Literal::string(&meta.target.name),
    );
    let header = format!(
        " Generated by slm-aot {} from `{}` for target `{}`. Do not edit: regenerate.",
        env!("CARGO_PKG_VERSION"),
        comment_text(&meta.model_file),
        meta.target.name
    );
    let model_items = if graph.states.is_empty() {
        quote! {
            /// The model with its own arena (`ARENA_BYTES`, 64-byte aligned). Place it in a
            /// `static` or on the heap when the arena is large.
            pub struct Model {
                arena: rt::Aligned64<[u8; ARENA_BYTES]>,
            }

            impl Model {
                pub const fn new() -> Self {
                    Model { arena: rt::Aligned64([0; ARENA_BYTES]) }
                }

                /// Run the model once.
                pub fn run(&mut self, inputs: &Inputs<'_>, outputs: &mut Outputs<'_>) -> Result<(), rt::Error> {
                    run(&mut self.arena.0, inputs, outputs)
                }
            }

            impl Default for Model {
                fn default() -> Self {
                    Self::new()
                }
            }

            /// Run the model once in a caller-provided arena of at least `ARENA_BYTES` bytes,
            /// starting on a 64-byte boundary.
            pub fn run(arena: &mut [u8], inputs: &Inputs<'_>, outputs: &mut Outputs<'_>) -> Result<(), rt::Error> {
                rt::arena::check(arena, ARENA_BYTES)?;
                #unused_inputs
                #(#body)*
                Ok(())
            }
        }
    } else {
        stateful_items(graph, io, &body)?
    };
    let file = quote! {
        #![doc = #header]
        #no_std
        #![forbid(unsafe_code)]

        use runtime_core as rt;

        /// Bytes of the activation arena the static plan needs.
        pub const ARENA_BYTES: usize = #arena_bytes;
        /// The most bytes live at once: no static plan of this graph can use less.
        pub const ARENA_LOWER_BOUND_BYTES: usize = #lower;
        /// Bytes of the baked weight blob.
        pub const WEIGHT_BYTES: usize = #weight_bytes;
        /// Bytes of the state kept between steps (a decoder's KV cache; 0 when stateless).
        pub const STATE_BYTES: usize = #state_bytes;
        /// The target profile's RAM budget.
        pub const RAM_BUDGET_BYTES: u64 = #ram;
        /// The target profile's flash budget.
        pub const FLASH_BUDGET_BYTES: u64 = #flash;
        #budget_check
        /// The model file this crate was generated from.
        pub const MODEL_FILE: &str = #model_file;
        /// The target profile it was generated for.
        pub const TARGET: &str = #target_name;
        /// The model's input names, in order.
        pub const INPUT_NAMES: [&str; #n_in] = [#(#input_names),*];
        /// The model's output names, in order.
        pub const OUTPUT_NAMES: [&str; #n_out] = [#(#output_names),*];
        #(#consts)*

                #manifest

                #weights_static

        /// The model's inputs for one run, borrowed from the caller.
        pub struct Inputs<'a> {
            #(#in_fields)*
        }

        /// Where one run writes the model's outputs.
        pub struct Outputs<'a> {
            #(#out_fields)*
        }

        #model_items
    };
    format_file(file, &comments)
}

/// The API of a stateful decoder (`Graph::states` non-empty): the KV cache as a `State`
/// struct, and a `Model` that owns arena, state, logits and position, with `step`,
/// `prefill`, `reset` and `position`.
fn stateful_items(graph: &Graph, io: &Io, body: &[TokenStream]) -> Result<TokenStream> {
    use crate::stateful::{InputRole, input_role};
    let slots = crate::stateful::slots(graph)
        .ok_or_else(|| Error::Internal("stateful graph without states".into()))?;
    let max_context = lit_usize(slots);
    let logits_len = Io::len_const(io.output_fields.first().map_or("logits", |s| s.as_str()));
    let logits_field = Io::field(io.output_fields.first().map_or("logits", |s| s.as_str()));
    let mut state_consts = Vec::new();
    let mut state_fields = Vec::new();
    let mut state_zeros = Vec::new();
    let mut state_resets = Vec::new();
    for (k, state) in graph.states.iter().enumerate() {
        let name = &io.state_fields[k];
        let (len_c, shape_c, field) = (Io::len_const(name), Io::shape_const(name), Io::field(name));
        let ty = graph.ty(state.input);
        let (n, rank) = (lit_usize(ty.numel()), lit_usize(ty.rank()));
        let dims = ty.shape.iter().map(|&d| lit_usize(d));
        let doc = format!(
            " State `{}`: `{ty}`, cache slots on axis {}.",
            state.name, state.axis
        );
        state_consts.push(quote! {
            #[doc = #doc]
            pub const #shape_c: [usize; #rank] = [#(#dims),*];
            pub const #len_c: usize = #n;
        });
        let t = storage_ty(ty.dtype);
        state_fields.push(quote! { #[doc = #doc] pub #field: [#t; #len_c], });
        state_zeros.push(quote! { #field: [0 as #t; #len_c], });
        state_resets.push(quote! { self.#field.fill(0 as #t); });
    }
    let mut step_locals = Vec::new();
    let mut input_inits = Vec::new();
    let mut mask_fields = Vec::new();
    let mut mask_zeros = Vec::new();
    let mut mask_resets = Vec::new();
    for (k, &v) in graph.inputs.iter().enumerate() {
        let name = &io.input_fields[k];
        let (len_c, field) = (Io::len_const(name), Io::field(name));
        let t = storage_ty(graph.ty(v).dtype);
        let value = &graph.value(v).name;
        match input_role(value) {
            Some(InputRole::TokenId) => {
                step_locals.push(quote! { let #field: [#t; #len_c] = [token as #t; #len_c]; });
                input_inits.push(quote! { #field: &#field, });
            }
            Some(InputRole::Position) => {
                step_locals.push(quote! { let #field: [#t; #len_c] = [position as #t; #len_c]; });
                input_inits.push(quote! { #field: &#field, });
            }
            Some(InputRole::AttentionMask) => {
                mask_fields.push(quote! { #field: [#t; #len_c], });
                mask_zeros.push(quote! { #field: [0 as #t; #len_c], });
                mask_resets.push(quote! { self.#field.fill(0 as #t); });
                step_locals.push(quote! {
                    if position < #len_c {
                        self.#field[position] = 1 as #t;
                    }
                });
                input_inits.push(quote! { #field: &self.#field, });
            }
            None => {
                return Err(Error::Internal(format!(
                    "decoder input `{value}` has no role"
                )));
            }
        }
    }
    Ok(quote! {
        /// Tokens the KV cache holds: `step` fails with `rt::Error::ContextFull` beyond it.
        pub const MAX_CONTEXT: usize = #max_context;
        /// Vocabulary size: the length of the logits `step` returns.
        pub const VOCAB: usize = #logits_len;
        #(#state_consts)*

        /// A sampler over this model's vocabulary (`rt::sampling`).
        pub type Sampler = rt::sampling::Sampler<VOCAB>;

        /// The model state kept between steps: the KV cache, updated in place.
        pub struct State {
            #(#state_fields)*
        }

        impl State {
            pub const fn new() -> Self {
                State { #(#state_zeros)* }
            }

            /// Zero the cache.
            pub fn reset(&mut self) {
                #(#state_resets)*
            }
        }

        impl Default for State {
            fn default() -> Self {
                Self::new()
            }
        }

        /// A stateful decoder: arena, KV cache, logits and position in one value (no
        /// allocation). Place it in a `static` or on the heap when it is large.
        pub struct Model {
            arena: rt::Aligned64<[u8; ARENA_BYTES]>,
            state: State,
            logits: [f32; VOCAB],
            position: usize,
            #(#mask_fields)*
        }

        impl Model {
            pub const fn new() -> Self {
                Model {
                    arena: rt::Aligned64([0; ARENA_BYTES]),
                    state: State::new(),
                    logits: [0.0; VOCAB],
                    position: 0,
                    #(#mask_zeros)*
                }
            }

            /// Forget everything: position 0, cache zeroed.
            pub fn reset(&mut self) {
                self.position = 0;
                self.state.reset();
                #(#mask_resets)*
            }

            /// Tokens consumed so far (the next token's position).
            pub fn position(&self) -> usize {
                self.position
            }

            /// Feed one token; returns the logits for the next one.
            pub fn step(&mut self, token: u32) -> Result<&[f32; VOCAB], rt::Error> {
                let position = self.position;
                if position >= MAX_CONTEXT {
                    return Err(rt::Error::ContextFull { capacity: MAX_CONTEXT });
                }
                #(#step_locals)*
                let inputs = Inputs { #(#input_inits)* };
                let mut outputs = Outputs { #logits_field: &mut self.logits };
                run(&mut self.arena.0, &mut self.state, &inputs, &mut outputs)?;
                self.position = position + 1;
                Ok(&self.logits)
            }

            /// Feed a prompt (at least one token); returns the logits after its last token.
            /// Fails before running anything if the prompt does not fit the cache.
            pub fn prefill(&mut self, ids: &[u32]) -> Result<&[f32; VOCAB], rt::Error> {
                let Some((&last, rest)) = ids.split_last() else {
                    return Err(rt::Error::EmptyPrompt);
                };
                if self.position + ids.len() > MAX_CONTEXT {
                    return Err(rt::Error::ContextFull { capacity: MAX_CONTEXT });
                }
                for &token in rest {
                    self.step(token)?;
                }
                self.step(last)
            }

            /// Run one step with explicit inputs (position and mask are the caller's), updating
            /// the cache; `step` is the usual entry point.
            pub fn run(&mut self, inputs: &Inputs<'_>, outputs: &mut Outputs<'_>) -> Result<(), rt::Error> {
                run(&mut self.arena.0, &mut self.state, inputs, outputs)
            }

            /// The KV cache.
            pub fn state(&self) -> &State {
                &self.state
            }
        }

        impl Default for Model {
            fn default() -> Self {
                Self::new()
            }
        }

        /// Run one step in a caller-provided arena of at least `ARENA_BYTES` bytes (64-byte
        /// aligned), reading and updating `state` in place.
        pub fn run(arena: &mut [u8], state: &mut State, inputs: &Inputs<'_>, outputs: &mut Outputs<'_>) -> Result<(), rt::Error> {
            rt::arena::check(arena, ARENA_BYTES)?;
            #(#body)*
            Ok(())
        }
    })
}

fn manifest_tokens(m: &crate::manifest::Manifest, weights_sha256: &str) -> TokenStream {
    let files = m.model_files.iter().map(|(name, digest)| {
        let (name, digest) = (Literal::string(name), Literal::string(digest));
        quote!((#name, #digest))
    });
    let n = lit_usize(m.model_files.len());
    let (compiler, flags, target, target_sha) = (
        Literal::string(&m.compiler),
        Literal::string(&m.flags),
        Literal::string(&m.target),
        Literal::string(&m.target_sha256),
    );
    let weights = Literal::string(weights_sha256);
    quote! {
        /// Provenance: what this crate was generated from, by what, and how. `build.rs`
        /// refuses to compile if `weights.bin` no longer has `WEIGHTS_SHA256`.
        pub mod manifest {
            /// The compiler and its version.
            pub const COMPILER: &str = #compiler;
            /// Every source file (relative to the model's folder) with its SHA-256.
            pub const MODEL_FILES: [(&str, &str); #n] = [#(#files),*];
            /// The flags that shaped this crate.
            pub const FLAGS: &str = #flags;
            /// The target profile's name.
            pub const TARGET: &str = #target;
            /// SHA-256 of the target profile's TOML text.
            pub const TARGET_PROFILE_SHA256: &str = #target_sha;
            /// SHA-256 of `weights.bin`.
            pub const WEIGHTS_SHA256: &str = #weights;
        }
    }
}

/// Pretty-print tokens and turn `__node!(N);` markers into `// comments[N]` lines.
pub fn format_file(tokens: TokenStream, comments: &[String]) -> Result<String> {
    let file: syn::File = syn::parse2(tokens)
        .map_err(|e| Error::Internal(format!("generated code does not parse: {e}")))?;
    let text = prettyplease::unparse(&file);
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let trimmed = line.trim_start();
        let comment = trimmed
            .strip_prefix("__node!(")
            .and_then(|rest| rest.strip_suffix(");"))
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| comments.get(n));
        if let Some(comment) = comment {
            out.push_str(&line[..line.len() - trimmed.len()]);
            out.push_str("// ");
            out.push_str(comment);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    Ok(out)
}
