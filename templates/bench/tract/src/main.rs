//! tract side of `slm-aot bench`: loads an ONNX model with `tract-onnx` (one thread), binds
//! the input shapes, optimises it, then serves timing requests on stdin.
//! Usage: slm-aot-bench-tract MODEL INPUT_DIR, where INPUT_DIR/manifest.txt holds one line
//! per graph input, `<index> <dtype> <dims,comma,separated>`, and `<index>.bin` its raw
//! little-endian bytes. Each stdin line `N` runs the model N times and prints `run_us X`
//! per run, then `done`; end of input quits.
use std::io::{BufRead, Write};
use tract_onnx::prelude::*;

fn load_input(dir: &std::path::Path, line: &str) -> TractResult<Tensor> {
    let parts: Vec<&str> = line.split_whitespace().collect();
    let (index, dtype) = (parts[0], parts[1]);
    let dims: Vec<usize> = match parts.get(2) {
        Some(d) if !d.is_empty() && *d != "-" => d.split(',').map(|x| x.parse().unwrap()).collect(),
        _ => vec![],
    };
    let bytes = std::fs::read(dir.join(format!("{index}.bin")))?;
    macro_rules! decode {
        ($t:ty) => {{
            let values: Vec<$t> = bytes
                .chunks_exact(std::mem::size_of::<$t>())
                .map(|c| <$t>::from_le_bytes(c.try_into().unwrap()))
                .collect();
            Tensor::from_shape(&dims, &values)?
        }};
    }
    let tensor = match dtype {
        "f32" => decode!(f32),
        "f64" => decode!(f64),
        "i64" => decode!(i64),
        "i32" => decode!(i32),
        "bool" => {
            let values: Vec<bool> = bytes.iter().map(|&b| b != 0).collect();
            Tensor::from_shape(&dims, &values)?
        }
        other => return Err(TractError::msg(format!("unsupported input type {other}"))),
    };
    Ok(tensor)
}

fn main() -> TractResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::Path::new(&args[2]);
    let manifest = std::fs::read_to_string(dir.join("manifest.txt"))?;
    let inputs: Vec<Tensor> = manifest
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| load_input(dir, l))
        .collect::<TractResult<_>>()?;
    let mut model = tract_onnx::onnx().model_for_path(&args[1])?;
    for (i, t) in inputs.iter().enumerate() {
        model.set_input_fact(i, InferenceFact::dt_shape(t.datum_type(), t.shape()))?;
    }
    let runnable = model.into_optimized()?.into_runnable()?;
    let values: TVec<TValue> = inputs.into_iter().map(|t| t.into_tvalue()).collect();
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    for line in stdin.lock().lines() {
        let n: usize = line?.trim().parse().unwrap_or(0);
        for _ in 0..n {
            let start = std::time::Instant::now();
            let result = runnable.run(values.clone())?;
            let us = start.elapsed().as_secs_f64() * 1e6;
            std::hint::black_box(result);
            writeln!(out, "run_us {us}")?;
        }
        writeln!(out, "done")?;
        out.flush()?;
    }
    Ok(())
}
