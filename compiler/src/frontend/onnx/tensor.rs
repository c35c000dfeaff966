//! ONNX `TensorProto` → IR [`Tensor`], including external data files, with every size and
//! path checked before anything is read.
#![deny(clippy::indexing_slicing)]
use crate::ir::{DType, Data, Tensor, TensorType, checked_numel};
use onnx_protobuf::TensorProto;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path};

/// Map an ONNX element type code to an IR dtype.
pub fn dtype_from_onnx(code: i32) -> Result<DType, String> {
    Ok(match code {
        1 => DType::F32,
        2 => DType::U8,
        3 => DType::I8,
        4 => DType::U16,
        5 => DType::I16,
        6 => DType::I32,
        7 => DType::I64,
        9 => DType::Bool,
        11 => DType::F64,
        12 => DType::U32,
        13 => DType::U64,
        8 => return Err("string tensors are not supported".into()),
        10 => DType::F16,
        16 => DType::BF16,
        14 | 15 => return Err("complex tensors are not supported".into()),
        17..=20 => return Err("float8 tensors are not supported".into()),
        21..=23 => return Err("4-bit tensors are not supported yet".into()),
        other => return Err(format!("unknown ONNX element type {other}")),
    })
}

/// Dims of a tensor proto, rejecting negative values.
pub fn dims(proto: &TensorProto) -> Result<Vec<usize>, String> {
    proto
        .dims
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| format!("negative dimension {d} in {:?}", proto.dims))
        })
        .collect()
}

/// Decode a tensor. `model_dir` anchors external data; `None` forbids external data (e.g.
/// in attributes of models loaded from memory).
pub fn tensor_from_proto(proto: &TensorProto, model_dir: Option<&Path>) -> Result<Tensor, String> {
    let dtype = dtype_from_onnx(proto.data_type)?;
    let shape = dims(proto)?;
    let n = checked_numel(&shape).map_err(|e| e.to_string())?;
    let ty = TensorType::new(dtype, shape);
    let byte_len = n
        .checked_mul(dtype.size_bytes())
        .ok_or("tensor byte size overflows")?;
    if proto.segment.is_some() {
        return Err("segmented tensors are not supported".into());
    }
    let external = proto.data_location.value() == 1;
    let data = if external {
        let dir = model_dir.ok_or("external data is not allowed here")?;
        let bytes = read_external(proto, dir, byte_len)?;
        Data::from_le_bytes(dtype, &bytes)
    } else if !proto.raw_data.is_empty() || n == 0 {
        if proto.raw_data.len() != byte_len {
            return Err(format!(
                "raw data holds {} bytes but type {ty} needs {byte_len}",
                proto.raw_data.len()
            ));
        }
        Data::from_le_bytes(dtype, &proto.raw_data)
    } else {
        typed_fields(proto, dtype, n)?
    };
    Tensor::new(ty, data).map_err(|e| e.to_string())
}

fn typed_fields(p: &TensorProto, dtype: DType, n: usize) -> Result<Data, String> {
    let check = |len: usize, field: &str| {
        if len != n {
            Err(format!(
                "{field} holds {len} values but the shape needs {n}"
            ))
        } else {
            Ok(())
        }
    };
    Ok(match dtype {
        DType::F32 => {
            check(p.float_data.len(), "float_data")?;
            Data::F32(p.float_data.clone())
        }
        DType::F64 => {
            check(p.double_data.len(), "double_data")?;
            Data::F64(p.double_data.clone())
        }
        DType::I64 => {
            check(p.int64_data.len(), "int64_data")?;
            Data::I64(p.int64_data.clone())
        }
        DType::I32 => {
            check(p.int32_data.len(), "int32_data")?;
            Data::I32(p.int32_data.clone())
        }
        DType::I16 => {
            check(p.int32_data.len(), "int32_data")?;
            Data::I16(p.int32_data.iter().map(|&v| v as i16).collect())
        }
        DType::I8 => {
            check(p.int32_data.len(), "int32_data")?;
            Data::I8(p.int32_data.iter().map(|&v| v as i8).collect())
        }
        DType::U8 => {
            check(p.int32_data.len(), "int32_data")?;
            Data::U8(p.int32_data.iter().map(|&v| v as u8).collect())
        }
        DType::Bool => {
            check(p.int32_data.len(), "int32_data")?;
            Data::U8(p.int32_data.iter().map(|&v| (v != 0) as u8).collect())
        }
        DType::U16 | DType::F16 | DType::BF16 => {
            check(p.int32_data.len(), "int32_data")?;
            Data::U16(p.int32_data.iter().map(|&v| v as u16).collect())
        }
        DType::U32 => {
            check(p.uint64_data.len(), "uint64_data")?;
            Data::U32(p.uint64_data.iter().map(|&v| v as u32).collect())
        }
        DType::U64 => {
            check(p.uint64_data.len(), "uint64_data")?;
            Data::U64(p.uint64_data.clone())
        }
    })
}

/// Read an external-data tensor. The location must be a relative path that stays inside
/// the model's folder after resolving symlinks; offset and length must lie inside the file.
fn read_external(proto: &TensorProto, dir: &Path, byte_len: usize) -> Result<Vec<u8>, String> {
    let mut location = None;
    let mut offset: u64 = 0;
    let mut length: Option<u64> = None;
    for entry in &proto.external_data {
        match entry.key.as_str() {
            "location" => location = Some(entry.value.clone()),
            "offset" => {
                offset = entry
                    .value
                    .parse()
                    .map_err(|_| format!("bad external data offset `{}`", entry.value))?
            }
            "length" => {
                length = Some(
                    entry
                        .value
                        .parse()
                        .map_err(|_| format!("bad external data length `{}`", entry.value))?,
                )
            }
            _ => {}
        }
    }
    let location = location.ok_or("external data without a location")?;
    let rel = Path::new(&location);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!(
            "external data location `{location}` must be a relative path inside the model's folder"
        ));
    }
    let root = dir
        .canonicalize()
        .map_err(|e| format!("cannot resolve model folder: {e}"))?;
    let path = root.join(rel);
    let real = path
        .canonicalize()
        .map_err(|e| format!("cannot open external data `{location}`: {e}"))?;
    if !real.starts_with(&root) {
        return Err(format!(
            "external data location `{location}` resolves outside the model's folder"
        ));
    }
    let mut file = std::fs::File::open(&real)
        .map_err(|e| format!("cannot open external data `{location}`: {e}"))?;
    let size = file
        .metadata()
        .map_err(|e| format!("cannot stat `{location}`: {e}"))?
        .len();
    let want = byte_len as u64;
    if let Some(len) = length
        && len != want
    {
        return Err(format!(
            "external data length {len} disagrees with the tensor's {want} bytes"
        ));
    }
    if offset.checked_add(want).is_none_or(|end| end > size) {
        return Err(format!(
            "external data range {offset}+{want} lies beyond the end of `{location}` ({size} bytes)"
        ));
    }
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| format!("cannot seek in `{location}`: {e}"))?;
    let mut bytes = vec![0u8; byte_len];
    file.read_exact(&mut bytes)
        .map_err(|e| format!("cannot read `{location}`: {e}"))?;
    Ok(bytes)
}
