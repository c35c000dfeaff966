//! Minimal `.npy` (version 1–3) reader and writer for tensors of the IR's dtypes, with
//! every header field checked.
#![deny(clippy::indexing_slicing)]
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
    let Some((magic, rest)) = bytes.split_first_chunk::<6>() else {
        return Err("missing NUMPY magic".into());
    };
    if magic != MAGIC {
        return Err("missing NUMPY magic".into());
    }
    let Some(([major, _minor], rest)) = rest.split_first_chunk::<2>() else {
        return Err("truncated header".into());
    };
    let (header_len, start): (usize, usize) = match major {
        1 => match rest.first_chunk::<2>() {
            Some(&len) => (u16::from_le_bytes(len) as usize, 10),
            None => return Err("truncated header".into()),
        },
        2 | 3 => match rest.first_chunk::<4>() {
            Some(&len) => (u32::from_le_bytes(len) as usize, 12),
            None => return Err("truncated header".into()),
        },
        v => return Err(format!("unsupported version {v}")),
    };
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or("truncated header")?;
    let header = bytes.get(start..end).ok_or("truncated header")?;
    let header = std::str::from_utf8(header).map_err(|_| "header is not UTF-8")?;
    let field = |key: &str| -> std::result::Result<&str, String> {
        let (_, rest) = header
            .split_once(&format!("'{key}'"))
            .ok_or(format!("header lacks '{key}'"))?;
        let (_, value) = rest.split_once(':').ok_or("malformed header")?;
        Ok(value.trim_start())
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
    let shape_text = shape_text
        .strip_prefix('(')
        .and_then(|s| s.split_once(')'))
        .map(|(inside, _)| inside)
        .ok_or("malformed shape")?;
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("bad dimension '{s}'"))
        })
        .collect::<std::result::Result<_, _>>()?;
    let n = checked_numel(&shape).map_err(|e| e.to_string())?;
    let data = bytes.get(end..).ok_or("truncated header")?;
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
    let shape = match t.ty.shape.as_slice() {
        [n] => format!("({n},)"),
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
#[allow(clippy::indexing_slicing)]
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

    /// Headers whose shape text is not `(..)` used to slice out of bounds.
    #[test]
    fn malformed_shape_text_is_an_error() {
        for shape in [")", "", "\u{e9})", "(1, 2"] {
            let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}}}");
            let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
            bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
            bytes.extend_from_slice(header.as_bytes());
            let err = parse(&bytes).unwrap_err();
            assert!(err.contains("malformed shape"), "{shape:?}: {err}");
        }
    }
}
