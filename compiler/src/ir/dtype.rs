//! Element types of IR values.
use std::fmt;

/// The element type of a tensor. `Bool` is stored as one byte (0 or 1) in weights, arena
/// and kernels. `F16` and `BF16` are stored as their `u16` bit patterns; only `Cast` (to and
/// from `F32`) computes on them: import widens them to f32 around every other op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    F32,
    F64,
    I64,
    I32,
    I16,
    I8,
    U8,
    U16,
    U32,
    U64,
    Bool,
    F16,
    BF16,
}

impl DType {
    pub fn size_bytes(self) -> usize {
        match self {
            DType::F64 | DType::I64 | DType::U64 => 8,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::I16 | DType::U16 | DType::F16 | DType::BF16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    /// The Rust element type kernels see (`bool` is `u8`).
    pub fn rust_storage(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I64 => "i64",
            DType::I32 => "i32",
            DType::I16 => "i16",
            DType::I8 => "i8",
            DType::U8 | DType::Bool => "u8",
            DType::U16 | DType::F16 | DType::BF16 => "u16",
            DType::U32 => "u32",
            DType::U64 => "u64",
        }
    }

    /// A 16-bit float type (stored as bits).
    pub fn is_half(self) -> bool {
        matches!(self, DType::F16 | DType::BF16)
    }

    /// The Rust element type of the generated public API.
    pub fn rust_api(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            other => other.rust_storage(),
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    /// The numpy `descr` code of this type.
    pub fn npy_descr(self) -> &'static str {
        match self {
            DType::F32 => "<f4",
            DType::F64 => "<f8",
            DType::I64 => "<i8",
            DType::I32 => "<i4",
            DType::I16 => "<i2",
            DType::I8 => "|i1",
            DType::U8 => "|u1",
            DType::U16 => "<u2",
            DType::F16 => "<f2",
            // numpy has no bfloat16: the raw bits.
            DType::BF16 => "<u2",
            DType::U32 => "<u4",
            DType::U64 => "<u8",
            DType::Bool => "|b1",
        }
    }

    pub fn from_npy_descr(descr: &str) -> Option<DType> {
        let all = [
            DType::F32,
            DType::F64,
            DType::I64,
            DType::I32,
            DType::I16,
            DType::I8,
            DType::U8,
            DType::U16,
            DType::U32,
            DType::U64,
            DType::Bool,
            DType::F16,
        ];
        let normalised = descr.replace('=', "<");
        all.into_iter().find(|d| d.npy_descr() == normalised)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            DType::Bool => "bool",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            other => other.rust_storage(),
        };
        f.write_str(s)
    }
}
