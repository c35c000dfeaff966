//! The host runner crate `verify` and `bench` build next to a generated crate: a fixed
//! `main.rs` from `templates/runner/` plus generated typed glue.
use super::{GeneratedCrate, Io};
use crate::error::Result;
use crate::ir::Graph;
use proc_macro2::{Ident, Span};
use quote::{format_ident, quote};
use std::collections::BTreeMap;
use std::path::PathBuf;

const MAIN: &str = include_str!("../../../templates/runner/main.rs");
const CARGO: &str = include_str!("../../../templates/runner/Cargo.toml.in");

/// Emit the runner for the model crate `crate_name` found at `model_path`.
pub fn emit(
    graph: &Graph,
    crate_name: &str,
    model_path: &str,
    runtime_path: &str,
) -> Result<GeneratedCrate> {
    let io = Io::new(graph);
    let mut reads = Vec::new();
    let mut in_fields = Vec::new();
    for (k, &v) in graph.inputs.iter().enumerate() {
        let f = Ident::new(&io.input_fields[k], Span::call_site());
        let len = format_ident!("{}_LEN", io.input_fields[k].to_ascii_uppercase());
        let t = Ident::new(graph.ty(v).dtype.rust_api(), Span::call_site());
        let kk = proc_macro2::Literal::usize_unsuffixed(k);
        reads.push(quote!(let #f: Box<[#t; model::#len]> = crate::read(input_dir, #kk)?;));
        in_fields.push(quote!(#f: &#f,));
    }
    if graph.inputs.is_empty() {
        in_fields.push(quote!(none: core::marker::PhantomData,));
    }
    let mut allocs = Vec::new();
    let mut out_fields = Vec::new();
    let mut writes = Vec::new();
    for (k, &v) in graph.outputs.iter().enumerate() {
        let f = Ident::new(&io.output_fields[k], Span::call_site());
        let len = format_ident!("{}_LEN", io.output_fields[k].to_ascii_uppercase());
        let t = Ident::new(graph.ty(v).dtype.rust_api(), Span::call_site());
        let kk = proc_macro2::Literal::usize_unsuffixed(k);
        allocs.push(quote!(let mut #f: Box<[#t; model::#len]> = crate::zeroed();));
        out_fields.push(quote!(#f: &mut #f,));
        writes.push(quote!(crate::write(output_dir, #kk, &outputs.#f[..])?;));
    }
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
