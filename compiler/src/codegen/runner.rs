//! The host runner crate `verify` and `bench` build next to a generated crate: a fixed
//! `main.rs` from `templates/runner/` plus generated typed glue.
use super::{GeneratedCrate, Io};
use crate::error::Result;
use crate::ir::Graph;
use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::{format_ident, quote};
use std::collections::BTreeMap;
use std::path::PathBuf;

const MAIN: &str = include_str!("../../../templates/runner/main.rs");
const CARGO: &str = include_str!("../../../templates/runner/Cargo.toml.in");

/// The typed I/O of one model inside runner glue: reading its inputs from `input_dir`,
/// zeroed output arrays, the `Inputs`/`Outputs` field lists and the writes to `output_dir`.
/// `module` is the path of the generated model module (`model` or `model::<name>`).
pub(super) struct IoGlue {
    pub reads: Vec<TokenStream>,
    pub allocs: Vec<TokenStream>,
    pub in_fields: Vec<TokenStream>,
    pub out_fields: Vec<TokenStream>,
    pub writes: Vec<TokenStream>,
}

impl IoGlue {
    pub fn new(graph: &Graph, module: &TokenStream) -> Self {
        let io = Io::new(graph);
        let mut glue = IoGlue {
            reads: Vec::new(),
            allocs: Vec::new(),
            in_fields: Vec::new(),
            out_fields: Vec::new(),
            writes: Vec::new(),
        };
        for (k, &v) in graph.inputs.iter().enumerate() {
            let f = Ident::new(&io.input_fields[k], Span::call_site());
            let len = format_ident!("{}_LEN", io.input_fields[k].to_ascii_uppercase());
            let t = Ident::new(graph.ty(v).dtype.rust_api(), Span::call_site());
            let kk = Literal::usize_unsuffixed(k);
            glue.reads
                .push(quote!(let #f: Box<[#t; #module::#len]> = crate::read(input_dir, #kk)?;));
            glue.in_fields.push(quote!(#f: &#f,));
        }
        if graph.inputs.is_empty() {
            glue.in_fields
                .push(quote!(none: core::marker::PhantomData,));
        }
        for (k, &v) in graph.outputs.iter().enumerate() {
            let f = Ident::new(&io.output_fields[k], Span::call_site());
            let len = format_ident!("{}_LEN", io.output_fields[k].to_ascii_uppercase());
            let t = Ident::new(graph.ty(v).dtype.rust_api(), Span::call_site());
            let kk = Literal::usize_unsuffixed(k);
            glue.allocs
                .push(quote!(let mut #f: Box<[#t; #module::#len]> = crate::zeroed();));
            glue.out_fields.push(quote!(#f: &mut #f,));
            glue.writes
                .push(quote!(crate::write(output_dir, #kk, &outputs.#f[..])?;));
        }
        glue
    }
}

/// The runner crate `<crate_name>-runner`: the fixed `main.rs`, its `Cargo.toml` pointing
/// at the model crate (`model_path`) and runtime-core, and the formatted `glue`.
pub(super) fn runner_crate(
    crate_name: &str,
    model_path: &str,
    runtime_path: &str,
    glue: TokenStream,
) -> Result<GeneratedCrate> {
    let glue = super::format_file(glue, &[])?;
    let runner_name = format!("{crate_name}-runner");
    let cargo = CARGO
        .replace("{{crate_name}}", crate_name)
        .replace("{{runner_name}}", &runner_name)
        .replace("{{model_path}}", model_path)
        .replace("{{runtime_path}}", runtime_path);
    let mut files = BTreeMap::new();
    files.insert(PathBuf::from("Cargo.toml"), cargo.into_bytes());
    files.insert(PathBuf::from("src/main.rs"), MAIN.as_bytes().to_vec());
    files.insert(PathBuf::from("src/glue.rs"), glue.into_bytes());
    Ok(GeneratedCrate {
        name: runner_name,
        files,
    })
}

/// Emit the runner for the model crate `crate_name` found at `model_path`.
pub fn emit(
    graph: &Graph,
    crate_name: &str,
    model_path: &str,
    runtime_path: &str,
) -> Result<GeneratedCrate> {
    let IoGlue {
        reads,
        allocs,
        in_fields,
        out_fields,
        writes,
    } = IoGlue::new(graph, &quote!(model));
    let run_call = if graph.states.is_empty() {
        quote!(crate::timed(iterations, || model::run(arena, &inputs, &mut outputs).map_err(|e| e.to_string()))?;)
    } else {
        // A stateful model runs one step from a zeroed cache.
        quote! {
            let mut state: Box<model::State> = Box::default();
            crate::timed(iterations, || model::run(arena, &mut state, &inputs, &mut outputs).map_err(|e| e.to_string()))?;
        }
    };
    let glue = quote! {
        //! Typed glue between the runner and the generated model.
        use std::path::Path;

        pub fn run(input_dir: &Path, output_dir: &Path, iterations: usize) -> Result<(), String> {
            #(#reads)*
            #(#allocs)*
            let mut blocks = crate::arena(model::ARENA_BYTES);
            let arena = runtime_core::arena::from_blocks(&mut blocks);
            let inputs = model::Inputs { #(#in_fields)* };
            let mut outputs = model::Outputs { #(#out_fields)* };
            #run_call
            #(#writes)*
            Ok(())
        }
    };
    runner_crate(crate_name, model_path, runtime_path, glue)
}
