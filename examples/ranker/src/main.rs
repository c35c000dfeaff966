//! Sentence-similarity ranking with sentence-transformers' paraphrase-MiniLM-L3-v2, compiled
//! ahead of time by slm-aot with its WordPiece tokenizer baked in.
//!
//! Embeds every candidate sentence (tokenize → BERT → mean pooling over the attention mask,
//! all inside the generated `minilm` crate), ranks the candidates by cosine similarity to
//! the query, and checks the embeddings of the model's reference sentences against ONNX
//! Runtime's (`ref/sentence_embedding_461.npy`, cosine ≥ 0.9999), exiting non-zero if any
//! differs.
//! Usage: `ranker [--model-dir DIR] [QUERY]` (DIR defaults to
//! `../shared/models/paraphrase-MiniLM-L3-v2` from the repository root).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use minilm::{Inputs, Model, Outputs};

const SEQ: usize = minilm::INPUT_IDS_LEN;
const DIM: usize = minilm::V_461_LEN;

/// The model's sanity sentences (`ref/sanity.json`), in reference order.
const SENTENCES: [&str; 7] = [
    "A man is playing a guitar.",
    "Someone is strumming a guitar on stage.",
    "The cat sleeps on the sofa.",
    "A kitten is napping on the couch.",
    "Stock markets fell sharply today.",
    "How do I reset my password?",
    "I forgot my login credentials, how can I recover them?",
];

/// The mean-pooled sentence embedding of `text`.
fn embed(model: &mut Model, text: &str) -> Result<Vec<f32>, String> {
    let tokenizer = minilm::tokenizer().map_err(|e| e.to_string())?;
    let mut ids32 = [0u32; SEQ];
    let n = tokenizer.encode(text, &mut ids32).map_err(|e| format!("{text:?}: {e}"))?;
    let mut input_ids = [0i64; SEQ];
    let mut attention_mask = [0i64; SEQ];
    for i in 0..n {
        input_ids[i] = ids32[i] as i64;
        attention_mask[i] = 1;
    }
    let mut output = Box::new([0i64; minilm::OUTPUT_LEN]);
    let mut v_463 = Box::new([0i64; minilm::V_463_LEN]);
    let mut hidden = Box::new([0f32; minilm::ONNX_SHAPE_422_LEN]);
    let mut embedding = [0f32; DIM];
    model
        .run(
            &Inputs {
                input_ids: &input_ids,
                attention_mask: &attention_mask,
            },
            &mut Outputs {
                output: &mut output,
                v_463: &mut v_463,
                onnx_shape_422: &mut hidden,
                v_461: &mut embedding,
            },
        )
        .map_err(|e| e.to_string())?;
    Ok(embedding.to_vec())
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// A float32 `.npy` file's values (C order).
fn read_npy_f32(path: &Path) -> Result<Vec<f32>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(format!("{} is not a .npy file", path.display()));
    }
    let (header_len, start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        let b = &bytes[8..12];
        (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12)
    };
    let header = String::from_utf8_lossy(&bytes[start..start + header_len]);
    if !header.contains("'<f4'") || header.contains("'fortran_order': True") {
        return Err(format!("{}: expected little-endian float32, C order", path.display()));
    }
    Ok(bytes[start + header_len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn run() -> Result<bool, String> {
    let mut model_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models/paraphrase-MiniLM-L3-v2");
    let mut query = String::from("A person plays an instrument.");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--model-dir" => model_dir = PathBuf::from(args.next().ok_or("--model-dir needs a value")?),
            "--help" | "-h" => {
                println!("usage: ranker [--model-dir DIR] [QUERY]");
                return Ok(true);
            }
            _ => query = arg,
        }
    }
    let mut model = Box::new(Model::new());
    let q = embed(&mut model, &query)?;
    let mut embeddings = Vec::new();
    for s in SENTENCES {
        embeddings.push(embed(&mut model, s)?);
    }
    let mut ranked: Vec<(f64, &str)> = embeddings
        .iter()
        .zip(SENTENCES)
        .map(|(e, s)| (cosine(&q, e), s))
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    println!("query: {query}");
    for (score, s) in &ranked {
        println!("  {score:+.4}  {s}");
    }

    let reference = read_npy_f32(&model_dir.join("ref/sentence_embedding_461.npy"))?;
    let mut worst = 1.0f64;
    for (i, e) in embeddings.iter().enumerate() {
        let want = reference.get(i * DIM..(i + 1) * DIM).ok_or("reference has too few rows")?;
        worst = worst.min(cosine(e, want));
    }
    println!(
        "embeddings vs ONNX Runtime reference: min cosine {worst:.7} over {} sentences",
        SENTENCES.len()
    );
    Ok(worst >= 0.9999)
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("MISMATCH: an embedding differs from the reference (cosine < 0.9999)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
