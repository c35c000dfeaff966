//! Minimal `.npy` (version 1–3) reader and writer for tensors of the IR's dtypes, with
//! every header field checked.
use crate::error::{Error, Result};
use crate::ir::{DType, Data, Tensor, TensorType, checked_numel};
use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";

/// Read a C-ordered `.npy` file.
pub fn read(path: &Path) -> Result<Tensor> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(&bytes).map_err(|reason| {
        Error::Usage(format!(
            "`{}` is not a usable .npy file: {reason}",
            path.display()
        ))
    })
}

fn parse(bytes: &[u8]) -> std::result::Result<Tensor, String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("missing NUMPY magic".into());
    }
    let major = bytes[6];
    let (header_len, start): (usize, usize) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err("truncated header".into());
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => return Err(format!("unsupported version {v}")),
    };
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or("truncated header")?;
    let header = std::str::from_utf8(&bytes[start..end]).map_err(|_| "header is not UTF-8")?;
    let field = |key: &str| -> std::result::Result<&str, String> {
        let at = header
            .find(&format!("'{key}'"))
            .ok_or(format!("header lacks '{key}'"))?;
        let rest = &header[at + key.len() + 2..];
        let colon = rest.find(':').ok_or("malformed header")?;
        Ok(rest[colon + 1..].trim_start())
    };
    let descr = field("descr")?;
    let descr = descr
        .strip_prefix('\'')
        .and_then(|d| d.split('\'').next())
        .ok_or("malformed descr")?;
    let dtype = DType::from_npy_descr(descr).ok_or(format!("unsupported dtype '{descr}'"))?;
    if field("fortran_order")?.starts_with("True") {
        return Err("Fortran-ordered arrays are not supported".into());
    }
    let shape_text = field("shape")?;
    let close = shape_text.find(')').ok_or("malformed shape")?;
    let shape: Vec<usize> = shape_text[1..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad dimension '{s}'"))
        })
        .collect::<std::result::Result<_, _>>()?;
    let n = checked_numel(&shape).map_err(|e| e.to_string())?;
    let data = &bytes[end..];
    let want = n.checked_mul(dtype.size_bytes()).ok_or("size overflows")?;
    if data.len() != want {
        return Err(format!(
            "holds {} data bytes, shape {shape:?} of {dtype} needs {want}",
            data.len()
        ));
    }
    Tensor::new(
        TensorType::new(dtype, shape),
        Data::from_le_bytes(dtype, data),
    )
    .map_err(|e| e.to_string())
}

/// Write a tensor as `.npy` version 1.
pub fn write(path: &Path, t: &Tensor) -> Result<()> {
    let shape = match t.ty.shape.len() {
        1 => format!("({},)", t.ty.shape[0]),
        _ => format!(
            "({})",
            t.ty.shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}",
        t.ty.dtype.npy_descr()
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + t.ty.size_bytes());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&t.data.to_le_bytes());
    std::fs::write(path, out).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_reject_garbage() {
        let dir = std::env::temp_dir().join(format!("slm-aot-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let t = Tensor::from_f32s(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let p = dir.join("t.npy");
        write(&p, &t).unwrap();
        assert_eq!(read(&p).unwrap(), t);
        assert!(parse(b"\x93NUMPY\x01\x00\xff\xff{").is_err());
        assert!(parse(b"garbage").is_err());
    }
}
