//! Tensor types and constant tensor data (weights, folded values, reference-eval buffers).
use super::dtype::DType;
use crate::error::OpError;
use std::fmt;

/// Upper bound on the elements of any one tensor, so a hostile shape cannot make the
/// compiler allocate without bound (2^34 elements is far above any 1B-parameter model's
/// largest tensor).
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 34;

/// Element count of a shape, checked against overflow and [`MAX_TENSOR_ELEMENTS`].
pub fn checked_numel(shape: &[usize]) -> Result<usize, OpError> {
    let mut n: usize = 1;
    for &d in shape {
        n = n
            .checked_mul(d)
            .ok_or_else(|| OpError::Invalid(format!("shape {shape:?} overflows usize")))?;
    }
    if n > MAX_TENSOR_ELEMENTS {
        return Err(OpError::Invalid(format!(
            "shape {shape:?} has {n} elements, above the limit of {MAX_TENSOR_ELEMENTS}"
        )));
    }
    Ok(n)
}

/// The static type of an IR value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Vec<usize>,
}

impl TensorType {
    pub fn new(dtype: DType, shape: Vec<usize>) -> Self {
        TensorType { dtype, shape }
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Element count. Shapes are checked when a type is inferred, so this cannot overflow
    /// for a type inside a verified graph; it saturates otherwise.
    pub fn numel(&self) -> usize {
        self.shape.iter().fold(1usize, |n, &d| n.saturating_mul(d))
    }

    pub fn size_bytes(&self) -> usize {
        self.numel().saturating_mul(self.dtype.size_bytes())
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[", self.dtype)?;
        for (i, d) in self.shape.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// Typed element storage. Booleans use `U8` (0 or 1).
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    I16(Vec<i16>),
    I8(Vec<i8>),
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U64(Vec<u64>),
}

/// Apply a generic expression to whichever vector a [`Data`] holds.
#[macro_export]
macro_rules! with_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            $crate::ir::Data::F32($v) => $body,
            $crate::ir::Data::F64($v) => $body,
            $crate::ir::Data::I64($v) => $body,
            $crate::ir::Data::I32($v) => $body,
            $crate::ir::Data::I16($v) => $body,
            $crate::ir::Data::I8($v) => $body,
            $crate::ir::Data::U8($v) => $body,
            $crate::ir::Data::U16($v) => $body,
            $crate::ir::Data::U32($v) => $body,
            $crate::ir::Data::U64($v) => $body,
        }
    };
}

impl Data {
    /// Zero-filled storage for `n` elements of `dtype`.
    pub fn zeros(dtype: DType, n: usize) -> Data {
        match dtype {
            DType::F32 => Data::F32(vec![0.0; n]),
            DType::F64 => Data::F64(vec![0.0; n]),
            DType::I64 => Data::I64(vec![0; n]),
            DType::I32 => Data::I32(vec![0; n]),
            DType::I16 => Data::I16(vec![0; n]),
            DType::I8 => Data::I8(vec![0; n]),
            DType::U8 | DType::Bool => Data::U8(vec![0; n]),
            DType::U16 | DType::F16 | DType::BF16 => Data::U16(vec![0; n]),
            DType::U32 => Data::U32(vec![0; n]),
            DType::U64 => Data::U64(vec![0; n]),
        }
    }

    pub fn len(&self) -> usize {
        with_data!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Little-endian bytes, the layout of the weight blob.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        with_data!(self, v => for x in v { out.extend_from_slice(&x.to_le_bytes()) });
        out
    }

    /// Decode little-endian bytes; the caller has checked `bytes.len() == n * size`.
    pub fn from_le_bytes(dtype: DType, bytes: &[u8]) -> Data {
        macro_rules! decode {
            ($t:ty, $variant:ident) => {{
                const N: usize = std::mem::size_of::<$t>();
                Data::$variant(
                    bytes
                        .chunks_exact(N)
                        .map(|c| {
                            let mut a = [0u8; N];
                            a.copy_from_slice(c);
                            <$t>::from_le_bytes(a)
                        })
                        .collect(),
                )
            }};
        }
        match dtype {
            DType::F32 => decode!(f32, F32),
            DType::F64 => decode!(f64, F64),
            DType::I64 => decode!(i64, I64),
            DType::I32 => decode!(i32, I32),
            DType::I16 => decode!(i16, I16),
            DType::I8 => decode!(i8, I8),
            DType::U8 => decode!(u8, U8),
            DType::Bool => Data::U8(bytes.iter().map(|&b| (b != 0) as u8).collect()),
            DType::U16 | DType::F16 | DType::BF16 => decode!(u16, U16),
            DType::U32 => decode!(u32, U32),
            DType::U64 => decode!(u64, U64),
        }
    }

    /// Every element widened to f64 (for comparisons and reports).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        #[allow(clippy::unnecessary_cast)]
        let widened = with_data!(self, v => v.iter().map(|&x| x as f64).collect());
        widened
    }
}

/// A tensor with data: a weight, a folded constant or a reference-eval value.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub ty: TensorType,
    pub data: Data,
}

impl Tensor {
    /// A tensor whose data length must match its shape.
    pub fn new(ty: TensorType, data: Data) -> Result<Tensor, OpError> {
        let n = checked_numel(&ty.shape)?;
        if data.len() != n {
            return Err(OpError::Invalid(format!(
                "tensor of type {ty} needs {n} elements, has {}",
                data.len()
            )));
        }
        Ok(Tensor { ty, data })
    }

    pub fn zeros(ty: TensorType) -> Result<Tensor, OpError> {
        let n = checked_numel(&ty.shape)?;
        Ok(Tensor {
            data: Data::zeros(ty.dtype, n),
            ty,
        })
    }

    pub fn scalar_i64(v: i64) -> Tensor {
        Tensor {
            ty: TensorType::new(DType::I64, vec![]),
            data: Data::I64(vec![v]),
        }
    }

    pub fn from_i64s(shape: Vec<usize>, v: Vec<i64>) -> Result<Tensor, OpError> {
        Tensor::new(TensorType::new(DType::I64, shape), Data::I64(v))
    }

    pub fn from_f32s(shape: Vec<usize>, v: Vec<f32>) -> Result<Tensor, OpError> {
        Tensor::new(TensorType::new(DType::F32, shape), Data::F32(v))
    }

    /// Integer contents (any integer or bool dtype) as i64: shape-like parameters.
    pub fn to_i64_vec(&self) -> Result<Vec<i64>, OpError> {
        match &self.data {
            Data::I64(v) => Ok(v.clone()),
            Data::I32(v) => Ok(v.iter().map(|&x| x as i64).collect()),
            Data::I16(v) => Ok(v.iter().map(|&x| x as i64).collect()),
            Data::I8(v) => Ok(v.iter().map(|&x| x as i64).collect()),
            Data::U8(v) => Ok(v.iter().map(|&x| x as i64).collect()),
            Data::U16(v) => Ok(v.iter().map(|&x| x as i64).collect()),
            Data::U32(v) => Ok(v.iter().map(|&x| x as i64).collect()),
            Data::U64(v) => Ok(v.iter().map(|&x| x as i64).collect()),
            _ => Err(OpError::Invalid(format!(
                "expected an integer tensor, got {}",
                self.ty
            ))),
        }
    }

    /// Every element as f64, decoding half-precision bit patterns.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match (&self.data, self.ty.dtype) {
            (Data::U16(v), DType::F16) => v
                .iter()
                .map(|&b| runtime_core::math::f16_to_f32(b) as f64)
                .collect(),
            (Data::U16(v), DType::BF16) => v
                .iter()
                .map(|&b| runtime_core::math::bf16_to_f32(b) as f64)
                .collect(),
            (data, _) => data.to_f64_vec(),
        }
    }

    /// The single value of a one-element tensor, widened to f64.
    pub fn scalar_f64(&self) -> Result<f64, OpError> {
        let v = self.to_f64_vec();
        if v.len() != 1 {
            return Err(OpError::Invalid(format!(
                "expected a single value, got {}",
                self.ty
            )));
        }
        Ok(v[0])
    }
}
