//! safetensors files: an 8-byte little-endian header length, a JSON header mapping tensor
//! names to `{dtype, shape, data_offsets}`, then the raw data. One file or a sharded set
//! (`model.safetensors.index.json`); f32, f16 and bf16 tensors are read as f32. From a folder
//! on disk only the headers are read up front; each tensor's bytes are read when a builder
//! asks for it, so the raw file is never in memory beside the widened weights.
#![deny(clippy::indexing_slicing)]
use super::Source;
use crate::error::{Error, Result};
use crate::ir::{Tensor, TensorType};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Largest header accepted (a real one is kilobytes).
const MAX_HEADER_BYTES: u64 = 100 << 20;

#[derive(Debug, Clone)]
struct Entry {
    file: usize,
    dtype: String,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// Where a safetensors file's bytes are: held in memory, or read by range from disk.
#[derive(Debug)]
enum Stored {
    Bytes(Vec<u8>),
    File(PathBuf),
}

/// Every tensor of a checkpoint folder: the parsed headers, and the files' bytes in memory
/// or (from a folder on disk) their paths.
#[derive(Debug, Default)]
pub struct Checkpoint {
    files: Vec<Stored>,
    entries: BTreeMap<String, Entry>,
}

fn bad(tensor: &str, reason: impl Into<String>) -> Error {
    Error::CheckpointTensor {
        tensor: tensor.to_string(),
        reason: reason.into(),
    }
}

impl Checkpoint {
    /// Load `model.safetensors`, or the shards a `model.safetensors.index.json` lists, or
    /// else every `*.safetensors` file of the folder (sorted by name).
    pub fn load(src: Source<'_>, max_bytes: u64) -> Result<Checkpoint> {
        let index = "model.safetensors.index.json";
        let single = "model.safetensors";
        let names: Vec<String> = if src.is_file(single) {
            vec![single.to_string()]
        } else if src.is_file(index) {
            let text = src.read_to_string(index)?;
            let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                Error::InvalidModel(format!("`{}` is not JSON: {e}", src.path(index).display()))
            })?;
            let mut shards: Vec<String> = json
                .get("weight_map")
                .and_then(|m| m.as_object())
                .map(|m| {
                    m.values()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            shards.sort();
            shards.dedup();
            for shard in &shards {
                if shard.contains('/') || shard.contains('\\') || shard.starts_with('.') {
                    return Err(Error::InvalidModel(format!(
                        "`{}` names shard `{shard}` outside the checkpoint folder",
                        src.path(index).display()
                    )));
                }
            }
            shards
        } else {
            src.file_names()?
                .into_iter()
                .filter(|n| n.ends_with(".safetensors"))
                .collect()
        };
        if names.is_empty() {
            return Err(Error::Usage(format!(
                "`{}` has a config.json but no .safetensors weights",
                src.path("").display()
            )));
        }
        let mut total = 0u64;
        for name in &names {
            total = total.saturating_add(src.len(name)?);
        }
        if total > max_bytes {
            return Err(Error::Limit(format!(
                "the checkpoint's weights are {total} bytes, above the limit of {max_bytes} \
                 (raise it with --max-weight-bytes)"
            )));
        }
        let mut checkpoint = Checkpoint::default();
        for name in names {
            match src {
                Source::Dir(_) => {
                    let path = src.path(&name);
                    let len = src.len(&name)?;
                    let head = read_head(&path, len)?;
                    checkpoint.add_header(&path, &head, len)?;
                    checkpoint.files.push(Stored::File(path));
                }
                Source::Memory(_) => {
                    let bytes = src.read(&name)?;
                    checkpoint.add_file(&src.path(&name), bytes)?;
                }
            }
        }
        Ok(checkpoint)
    }

    /// Parse a file held in memory and keep its bytes.
    fn add_file(&mut self, path: &Path, bytes: Vec<u8>) -> Result<()> {
        self.add_header(path, &bytes, bytes.len() as u64)?;
        self.files.push(Stored::Bytes(bytes));
        Ok(())
    }

    /// Parse the header at the start of `head` (the first bytes of a `len`-byte file) into
    /// entries of the file [`Checkpoint::add_file`] or [`Checkpoint::load`] pushes next.
    fn add_header(&mut self, path: &Path, head: &[u8], len: u64) -> Result<()> {
        let invalid = |reason: String| invalid_file(path, reason);
        let header_len = header_len(path, head, len)?;
        let data_start = 8 + header_len as usize;
        let header = head
            .get(8..data_start)
            .ok_or_else(|| invalid("shorter than its header".into()))?;
        let header: serde_json::Value = serde_json::from_slice(header)
            .map_err(|e| invalid(format!("header is not JSON: {e}")))?;
        let header = header
            .as_object()
            .ok_or_else(|| invalid("header is not a JSON object".into()))?;
        let file = self.files.len();
        let data_len = len as usize - data_start;
        let mut spans: Vec<(usize, usize, &String)> = Vec::new();
        for (name, info) in header {
            if name == "__metadata__" {
                continue;
            }
            let dtype = info
                .get("dtype")
                .and_then(|d| d.as_str())
                .ok_or_else(|| bad(name, "no dtype"))?
                .to_string();
            let shape: Vec<usize> = info
                .get("shape")
                .and_then(|s| s.as_array())
                .ok_or_else(|| bad(name, "no shape"))?
                .iter()
                .map(|d| d.as_u64().map(|d| d as usize))
                .collect::<Option<_>>()
                .ok_or_else(|| bad(name, "shape is not a list of sizes"))?;
            let offsets: Vec<usize> = info
                .get("data_offsets")
                .and_then(|s| s.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|d| d.as_u64().map(|d| d as usize))
                        .collect()
                })
                .unwrap_or_default();
            let &[start, end] = offsets.as_slice() else {
                return Err(bad(name, "data_offsets is not [start, end]"));
            };
            if start > end || end > data_len {
                return Err(bad(
                    name,
                    format!("data_offsets [{start}, {end}] outside the {data_len} data bytes"),
                ));
            }
            let numel = crate::ir::checked_numel(&shape).map_err(|e| bad(name, e.to_string()))?;
            let width = match dtype.as_str() {
                "F32" => 4,
                "F16" | "BF16" => 2,
                // Other dtypes are rejected only if a builder asks for the tensor.
                _ => 0,
            };
            if width != 0 && numel.checked_mul(width) != Some(end - start) {
                return Err(bad(
                    name,
                    match numel.checked_mul(width) {
                        Some(need) => {
                            format!("{dtype} {shape:?} needs {need} bytes, has {}", end - start)
                        }
                        None => format!("{dtype} {shape:?} needs more bytes than a usize counts"),
                    },
                ));
            }
            spans.push((start, end, name));
            self.entries.insert(
                name.clone(),
                Entry {
                    file,
                    dtype,
                    shape,
                    start: data_start + start,
                    end: data_start + end,
                },
            );
        }
        // The format stores tensors in disjoint byte ranges; a header that makes two
        // overlap is lying about the data.
        spans.sort();
        for pair in spans.windows(2) {
            let &[(_, end_a, a), (start_b, _, b)] = pair else {
                continue;
            };
            if start_b < end_a {
                return Err(bad(
                    b,
                    format!("data_offsets overlap those of tensor `{a}`"),
                ));
            }
        }
        Ok(())
    }

    /// The name under which `name` is stored, trying the common prefixes
    /// (`model.`, `transformer.`, `bert.`) both ways.
    pub fn resolve(&self, name: &str) -> Option<String> {
        if self.entries.contains_key(name) {
            return Some(name.to_string());
        }
        for prefix in ["model.", "transformer.", "bert."] {
            let with = format!("{prefix}{name}");
            if self.entries.contains_key(&with) {
                return Some(with);
            }
            if let Some(without) = name.strip_prefix(prefix)
                && self.entries.contains_key(without)
            {
                return Some(without.to_string());
            }
        }
        None
    }

    pub fn contains(&self, name: &str) -> bool {
        self.resolve(name).is_some()
    }

    /// Tensor `name` as f32, checked against `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let stored = self
            .resolve(name)
            .ok_or_else(|| bad(name, "missing from the checkpoint"))?;
        let e = self
            .entries
            .get(&stored)
            .ok_or_else(|| bad(&stored, "missing from the checkpoint"))?;
        if e.shape != shape {
            return Err(bad(
                &stored,
                format!("has shape {:?}, the config implies {shape:?}", e.shape),
            ));
        }
        let raw: Cow<'_, [u8]> = match self.files.get(e.file) {
            Some(Stored::Bytes(b)) => Cow::Borrowed(
                b.get(e.start..e.end)
                    .ok_or_else(|| bad(&stored, "data outside its file"))?,
            ),
            Some(Stored::File(path)) => Cow::Owned(read_range(path, e.start, e.end)?),
            None => return Err(bad(&stored, "data outside its file")),
        };
        let values: Vec<f32> = match e.dtype.as_str() {
            "F32" => raw
                .as_chunks::<4>()
                .0
                .iter()
                .map(|&c| f32::from_le_bytes(c))
                .collect(),
            "F16" => raw
                .as_chunks::<2>()
                .0
                .iter()
                .map(|&c| f16_to_f32(u16::from_le_bytes(c)))
                .collect(),
            "BF16" => raw
                .as_chunks::<2>()
                .0
                .iter()
                .map(|&c| f32::from_bits((u16::from_le_bytes(c) as u32) << 16))
                .collect(),
            other => {
                return Err(bad(
                    &stored,
                    format!("dtype {other} is not supported (F32, F16, BF16 are)"),
                ));
            }
        };
        Tensor::new(
            TensorType::new(crate::ir::DType::F32, shape.to_vec()),
            crate::ir::Data::F32(values),
        )
        .map_err(|e| bad(&stored, e.to_string()))
    }
}

fn invalid_file(path: &Path, reason: String) -> Error {
    Error::InvalidModel(format!(
        "`{}` is not a safetensors file: {reason}",
        path.display()
    ))
}

/// The header length a file of `len` bytes starting with `head` declares, checked to fit.
fn header_len(path: &Path, head: &[u8], len: u64) -> Result<u64> {
    let len_bytes: [u8; 8] = head
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| invalid_file(path, "shorter than its header length".into()))?;
    let header_len = u64::from_le_bytes(len_bytes);
    if header_len > MAX_HEADER_BYTES || 8 + header_len > len {
        return Err(invalid_file(
            path,
            format!("header length {header_len} is implausible"),
        ));
    }
    Ok(header_len)
}

/// The length prefix and JSON header of a safetensors file of `len` bytes on disk.
fn read_head(path: &Path, len: u64) -> Result<Vec<u8>> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut head = Vec::new();
    (&mut file)
        .take(8)
        .read_to_end(&mut head)
        .map_err(|e| Error::io(path, e))?;
    let header_len = header_len(path, &head, len)?;
    (&mut file)
        .take(header_len)
        .read_to_end(&mut head)
        .map_err(|e| Error::io(path, e))?;
    Ok(head)
}

/// Bytes `start..end` of a file on disk (a tensor's data).
fn read_range(path: &Path, start: usize, end: usize) -> Result<Vec<u8>> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    file.seek(SeekFrom::Start(start as u64))
        .map_err(|e| Error::io(path, e))?;
    let mut out = vec![0u8; end.saturating_sub(start)];
    file.read_exact(&mut out).map_err(|e| Error::io(path, e))?;
    Ok(out)
}

/// IEEE half to single precision.
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: normalise.
            let shift = f.leading_zeros() - 21;
            let frac = (f << shift) & 0x3ff;
            sign | ((127 - 15 + 1 - shift) << 23) | (frac << 13)
        }
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 127 - 15) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_values() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert!(f16_to_f32(0x7c00).is_infinite());
    }

    /// A folder on disk is read header first and tensor by tensor: the same values as the
    /// same file held in memory, and the same errors for a file cut short.
    #[test]
    fn files_on_disk_are_read_by_range() {
        let header = br#"{"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1,2],"data_offsets":[4,12]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(&[0x80, 0x3f, 0x00, 0xc0]);
        bytes.extend_from_slice(&0.25f32.to_le_bytes());
        bytes.extend_from_slice(&(-3f32).to_le_bytes());
        let dir = std::env::temp_dir().join(format!("slm-aot-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("model.safetensors"), &bytes).unwrap();
        let files: BTreeMap<String, Vec<u8>> = [("model.safetensors".to_string(), bytes.clone())]
            .into_iter()
            .collect();
        let disk = Checkpoint::load(Source::Dir(&dir), u64::MAX).unwrap();
        let memory = Checkpoint::load(Source::Memory(&files), u64::MAX).unwrap();
        assert!(matches!(disk.files[0], Stored::File(_)));
        for (name, shape) in [("a", vec![2]), ("b", vec![1, 2])] {
            assert_eq!(
                disk.get(name, &shape).unwrap(),
                memory.get(name, &shape).unwrap()
            );
        }
        assert_eq!(
            disk.get("a", &[2]).unwrap().data.to_f64_vec(),
            vec![1.0, -2.0]
        );
        std::fs::write(dir.join("model.safetensors"), &bytes[..bytes.len() - 1]).unwrap();
        let cut = Checkpoint::load(Source::Dir(&dir), u64::MAX).unwrap_err();
        assert!(
            cut.to_string().contains("outside the 11 data bytes"),
            "{cut}"
        );
        std::fs::write(dir.join("model.safetensors"), &bytes[..20]).unwrap();
        let cut = Checkpoint::load(Source::Dir(&dir), u64::MAX).unwrap_err();
        assert!(cut.to_string().contains("implausible"), "{cut}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parses_a_file_and_checks_shapes() {
        let header = br#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"format":"pt"}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(&1.5f32.to_le_bytes());
        bytes.extend_from_slice(&(-2f32).to_le_bytes());
        let mut c = Checkpoint::default();
        c.add_file(Path::new("x.safetensors"), bytes.clone())
            .unwrap();
        assert_eq!(c.get("w", &[2]).unwrap().data.to_f64_vec(), vec![1.5, -2.0]);
        assert!(c.get("model.w", &[2]).is_ok());
        assert!(c.get("w", &[3]).is_err());
        assert!(c.get("v", &[2]).is_err());
        let mut truncated = bytes;
        truncated.truncate(truncated.len() - 1);
        assert!(
            Checkpoint::default()
                .add_file(Path::new("x"), truncated)
                .is_err()
        );
    }
}
