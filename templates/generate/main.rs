//! Text generation runner that `slm-aot generate` builds next to a stateful generated crate:
//! prefill the prompt, then sample `--tokens` tokens with runtime-core's sampler.
//! Usage: generate (--prompt-ids "1 2 3" | --prompt TEXT) [--tokens N] [--temperature T] [--top-k K]
//!        [--top-p P] [--repetition-penalty R] [--seed S] [--eos ID] [--print-ids]
use runtime_core::sampling::{SamplingParams, Sampler};
use std::process::ExitCode;
use std::time::Instant;

mod text;

struct Args {
    prompt: Option<String>,
    prompt_ids: Vec<u32>,
    tokens: usize,
    params: SamplingParams,
    seed: u64,
    eos: Option<u32>,
    print_ids: bool,
}

fn value<T: std::str::FromStr>(args: &mut impl Iterator<Item = String>, flag: &str) -> Result<T, String> {
    let v = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
    v.parse().map_err(|_| format!("{flag}: `{v}` is not valid"))
}

fn parse() -> Result<Args, String> {
    let mut out = Args {
        prompt: None,
        prompt_ids: Vec::new(),
        tokens: 64,
        params: SamplingParams::GREEDY,
        seed: 0,
        eos: None,
        print_ids: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--prompt-ids" => {
                let list: String = value(&mut args, &arg)?;
                for id in list.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty()) {
                    out.prompt_ids.push(id.parse().map_err(|_| format!("`{id}` is not a token id"))?);
                }
            }
            "--prompt" => out.prompt = Some(value(&mut args, &arg)?),
            "--tokens" => out.tokens = value(&mut args, &arg)?,
            "--temperature" => out.params.temperature = value(&mut args, &arg)?,
            "--top-k" => out.params.top_k = value(&mut args, &arg)?,
            "--top-p" => out.params.top_p = value(&mut args, &arg)?,
            "--repetition-penalty" => out.params.repetition_penalty = value(&mut args, &arg)?,
            "--seed" => out.seed = value(&mut args, &arg)?,
            "--eos" => out.eos = Some(value(&mut args, &arg)?),
            "--print-ids" => out.print_ids = true,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if let Some(prompt) = &out.prompt {
        let tokenizer = text::tokenizer().ok_or("--prompt needs a tokenizer in the model crate (use --prompt-ids)")?;
        let mut ids = vec![0u32; prompt.len() + 8];
        let n = tokenizer.encode(prompt, &mut ids).map_err(|e| e.to_string())?;
        // A tokenizer.json template may add BOS itself.
        if ids[..n].first().copied() != tokenizer.bos() {
            out.prompt_ids.extend(tokenizer.bos());
        }
        out.prompt_ids.extend_from_slice(&ids[..n]);
    }
    if out.prompt_ids.is_empty() {
        return Err("the prompt is empty".into());
    }
    Ok(out)
}

fn run() -> Result<(), String> {
    let args = parse()?;
    let mut model: Box<model::Model> = Box::default();
    let mut sampler: Box<model::Sampler> = Box::new(Sampler::new(args.params, args.seed));
    let mut history: Vec<u32> = args.prompt_ids.clone();
    let mut logits = [0f32; model::VOCAB];
    let start = Instant::now();
    logits.copy_from_slice(model.prefill(&args.prompt_ids).map_err(|e| e.to_string())?);
    let prefill = start.elapsed();
    let mut generated = Vec::with_capacity(args.tokens);
    let start = Instant::now();
    for i in 0..args.tokens {
        let token = sampler.sample(&mut logits, &history);
        generated.push(token);
        history.push(token);
        if Some(token) == args.eos || i + 1 == args.tokens {
            break;
        }
        match model.step(token) {
            Ok(next) => logits.copy_from_slice(next),
            Err(runtime_core::Error::ContextFull { capacity }) => {
                eprintln!("stopped: the context is full ({capacity} tokens)");
                break;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    let decode = start.elapsed();
    let ids: Vec<String> = generated.iter().map(u32::to_string).collect();
    match text::tokenizer() {
        Some(tokenizer) if !args.print_ids => {
            let mut out = String::new();
            if let Some(prompt) = &args.prompt {
                out.push_str(prompt);
            }
            let mut prev = args.prompt_ids.last().copied().unwrap_or(0);
            for &id in &generated {
                let _ = tokenizer.decode_step(prev, id, &mut out);
                prev = id;
            }
            println!("{out}");
        }
        _ => println!("{}", ids.join(" ")),
    }
    let steps = generated.len().saturating_sub(1).max(1);
    eprintln!(
        "prompt {} tokens in {:.1} ms; {} tokens, {:.1} µs/token",
        args.prompt_ids.len(),
        prefill.as_secs_f64() * 1e3,
        generated.len(),
        decode.as_secs_f64() * 1e6 / steps as f64
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
