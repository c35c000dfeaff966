//! Elementwise maps with NumPy broadcasting: unary, binary, the ternary `where`, and
//! `fused`, which evaluates a whole chain of f32 maps (a small register program) per element.
use super::rowwise::{self, Unary};
use super::{for_each_row, inner_stride, split_inner};
use crate::MAX_RANK;
use crate::math;

/// `out[i] = f(x[i])`.
pub fn unary<T: Copy, U>(x: &[T], out: &mut [U], f: impl Fn(T) -> U) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = f(v);
    }
}

/// `out = f(a, b)` over `shape`, reading `a` and `b` through broadcast strides.
pub fn binary<A: Copy, B: Copy, U>(
    a: &[A],
    a_strides: &[isize],
    b: &[B],
    b_strides: &[isize],
    out: &mut [U],
    shape: &[usize],
    f: impl Fn(A, B) -> U,
) {
    let n = out.len();
    // Same element count as the output means same shape: no broadcasting on that side.
    if a.len() == n && b.len() == n {
        for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
            *o = f(x, y);
        }
        return;
    }
    if a.len() == n && b.len() == 1 {
        let y = b[0];
        for (o, &x) in out.iter_mut().zip(a) {
            *o = f(x, y);
        }
        return;
    }
    if a.len() == 1 && b.len() == n {
        let x = a[0];
        for (o, &y) in out.iter_mut().zip(b) {
            *o = f(x, y);
        }
        return;
    }
    let (outer, len) = split_inner(shape);
    let (sa, sb) = (inner_stride(a_strides), inner_stride(b_strides));
    let rank = outer.len();
    let mut start = 0usize;
    for_each_row(
        outer,
        [&a_strides[..rank], &b_strides[..rank]],
        [0, 0],
        |[oa, ob]| {
            let row = &mut out[start..start + len];
            start += len;
            let (oa, ob) = (oa as usize, ob as usize);
            // The common row shapes (a contiguous row against a contiguous row or one
            // repeated element) as plain zips, which vectorize.
            match (sa, sb) {
                (1, 1) => row
                    .iter_mut()
                    .zip(&a[oa..oa + len])
                    .zip(&b[ob..ob + len])
                    .for_each(|((o, &x), &y)| *o = f(x, y)),
                (1, 0) => {
                    let y = b[ob];
                    row.iter_mut()
                        .zip(&a[oa..oa + len])
                        .for_each(|(o, &x)| *o = f(x, y));
                }
                (0, 1) => {
                    let x = a[oa];
                    row.iter_mut()
                        .zip(&b[ob..ob + len])
                        .for_each(|(o, &y)| *o = f(x, y));
                }
                _ => {
                    for (j, o) in row.iter_mut().enumerate() {
                        let j = j as isize;
                        *o = f(
                            a[(oa as isize + j * sa) as usize],
                            b[(ob as isize + j * sb) as usize],
                        );
                    }
                }
            }
        },
    );
}

/// `out = cond ? x : y` with broadcasting; `cond` holds byte booleans.
#[allow(clippy::too_many_arguments)]
pub fn select<T: Copy>(
    cond: &[u8],
    cond_strides: &[isize],
    x: &[T],
    x_strides: &[isize],
    y: &[T],
    y_strides: &[isize],
    out: &mut [T],
    shape: &[usize],
) {
    let (outer, len) = split_inner(shape);
    let (sc, sx, sy) = (
        inner_stride(cond_strides),
        inner_stride(x_strides),
        inner_stride(y_strides),
    );
    let rank = outer.len();
    let mut start = 0usize;
    for_each_row(
        outer,
        [
            &cond_strides[..rank],
            &x_strides[..rank],
            &y_strides[..rank],
        ],
        [0, 0, 0],
        |[oc, ox, oy]| {
            let row = &mut out[start..start + len];
            start += len;
            // A condition constant along the row picks a whole (contiguous or broadcast) row.
            if sc == 0 {
                let (src, off, stride) = if cond[oc as usize] != 0 {
                    (x, ox, sx)
                } else {
                    (y, oy, sy)
                };
                match stride {
                    1 => row.copy_from_slice(&src[off as usize..off as usize + len]),
                    0 => row.fill(src[off as usize]),
                    _ => {
                        for (j, o) in row.iter_mut().enumerate() {
                            *o = src[(off + j as isize * stride) as usize];
                        }
                    }
                }
                return;
            }
            for (j, o) in row.iter_mut().enumerate() {
                let j = j as isize;
                *o = if cond[(oc + j * sc) as usize] != 0 {
                    x[(ox + j * sx) as usize]
                } else {
                    y[(oy + j * sy) as usize]
                };
            }
        },
    );
}

/// Registers of a [`fused`] program.
pub const FUSED_REGS: usize = 8;
/// Tensor operands of a [`fused`] program.
pub const FUSED_INPUTS: usize = 4;
/// Instructions of a [`fused`] program.
pub const FUSED_MAX_INSTRS: usize = 48;
/// Elements evaluated per instruction (the register width): one block of registers lives on
/// the stack (`FUSED_REGS · FUSED_BLOCK` f32), and each instruction is one loop over it.
pub const FUSED_BLOCK: usize = 64;

/// An operand of a fused instruction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Src {
    /// A register written by an earlier instruction.
    Reg(u8),
    /// Input tensor `k`, read through its broadcast strides.
    Input(u8),
    /// A constant, the same for every element.
    Const(f32),
}

/// A function of one f32 in a fused program. The transcendental ones are the branch-free
/// `math::fast_*` approximations, so their loops vectorise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FusedUnary {
    Neg,
    Abs,
    Sqrt,
    Reciprocal,
    Exp,
    Log,
    Erf,
    Tanh,
    Sigmoid,
    Relu,
    Gelu,
    GeluTanh,
    Silu,
}

/// A function of two f32 in a fused program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FusedBinary {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
    /// `powf` (libm): not vectorised; squares and cubes are multiplications instead.
    Pow,
}

/// One instruction: `dst = f(src…)`, element by element.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Instr {
    Unary {
        f: FusedUnary,
        dst: u8,
        x: Src,
    },
    Binary {
        f: FusedBinary,
        dst: u8,
        a: Src,
        b: Src,
    },
}

impl Instr {
    fn dst(&self) -> u8 {
        match *self {
            Self::Unary { dst, .. } | Self::Binary { dst, .. } => dst,
        }
    }
}

/// Why a fused program cannot run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgramError {
    Empty,
    TooLong,
    /// A register index ≥ [`FUSED_REGS`].
    Register(u8),
    /// An input index ≥ the number of inputs.
    Input(u8),
    /// A register read before any instruction wrote it.
    Unwritten(u8),
}

/// Check that `program` only names registers below [`FUSED_REGS`] and inputs below
/// `inputs`, reads no register before writing it, and has 1..=[`FUSED_MAX_INSTRS`]
/// instructions. [`fused`] relies on it.
pub fn check_program(program: &[Instr], inputs: usize) -> Result<(), ProgramError> {
    if program.is_empty() {
        return Err(ProgramError::Empty);
    }
    if program.len() > FUSED_MAX_INSTRS {
        return Err(ProgramError::TooLong);
    }
    let mut written = [false; FUSED_REGS];
    let read = |s: Src, written: &[bool; FUSED_REGS]| match s {
        Src::Reg(r) if r as usize >= FUSED_REGS => Err(ProgramError::Register(r)),
        Src::Reg(r) if !written[r as usize] => Err(ProgramError::Unwritten(r)),
        Src::Input(k) if k as usize >= inputs.min(FUSED_INPUTS) => Err(ProgramError::Input(k)),
        _ => Ok(()),
    };
    for i in program {
        match *i {
            Instr::Unary { x, .. } => read(x, &written)?,
            Instr::Binary { a, b, .. } => {
                read(a, &written)?;
                read(b, &written)?;
            }
        }
        let d = i.dst();
        if d as usize >= FUSED_REGS {
            return Err(ProgramError::Register(d));
        }
        written[d as usize] = true;
    }
    Ok(())
}

type Block = [f32; FUSED_BLOCK];

/// Copy `n` elements of `src` from `off` by `stride` into `dst`.
#[inline(always)]
fn gather(dst: &mut Block, src: &[f32], off: isize, stride: isize, n: usize) {
    let o = off as usize;
    match stride {
        1 => dst[..n].copy_from_slice(&src[o..o + n]),
        0 => dst[..n].fill(src[o]),
        _ => {
            for (j, d) in dst[..n].iter_mut().enumerate() {
                *d = src[(off + j as isize * stride) as usize];
            }
        }
    }
}

enum Operand<'a> {
    Lanes(&'a [f32]),
    Splat(f32),
}

#[inline(always)]
fn operand<'a>(
    s: Src,
    regs: &'a [Block; FUSED_REGS],
    ins: &'a [Block; FUSED_INPUTS],
    n: usize,
) -> Operand<'a> {
    match s {
        Src::Reg(r) => Operand::Lanes(&regs[r as usize][..n]),
        Src::Input(k) => Operand::Lanes(&ins[k as usize][..n]),
        Src::Const(c) => Operand::Splat(c),
    }
}

#[inline(always)]
fn map1(t: &mut [f32], x: Operand<'_>, f: impl Fn(f32) -> f32) {
    match x {
        Operand::Lanes(x) => {
            for (o, &v) in t.iter_mut().zip(x) {
                *o = f(v);
            }
        }
        Operand::Splat(v) => t.fill(f(v)),
    }
}

/// `t = f(x)` by the [`rowwise`] kernels (bit-identical to `f.scalar`).
#[inline(always)]
fn map_vec(t: &mut [f32], x: Operand<'_>, f: Unary) {
    match x {
        Operand::Lanes(x) => rowwise::map(x, t, f),
        Operand::Splat(v) => t.fill(f.scalar(v)),
    }
}

#[inline(always)]
fn map2(t: &mut [f32], a: Operand<'_>, b: Operand<'_>, f: impl Fn(f32, f32) -> f32) {
    match (a, b) {
        (Operand::Lanes(a), Operand::Lanes(b)) => {
            for ((o, &x), &y) in t.iter_mut().zip(a).zip(b) {
                *o = f(x, y);
            }
        }
        (Operand::Lanes(a), Operand::Splat(y)) => {
            for (o, &x) in t.iter_mut().zip(a) {
                *o = f(x, y);
            }
        }
        (Operand::Splat(x), Operand::Lanes(b)) => {
            for (o, &y) in t.iter_mut().zip(b) {
                *o = f(x, y);
            }
        }
        (Operand::Splat(x), Operand::Splat(y)) => t.fill(f(x, y)),
    }
}

/// Run `program` on `n ≤ FUSED_BLOCK` elements whose inputs are in `ins`; the last
/// instruction's register is the result.
fn run_block(
    program: &[Instr],
    ins: &[Block; FUSED_INPUTS],
    regs: &mut [Block; FUSED_REGS],
    n: usize,
) -> usize {
    let mut t = [0.0f32; FUSED_BLOCK];
    let mut last = 0;
    for i in program {
        let tn = &mut t[..n];
        match *i {
            Instr::Unary { f, x, .. } => {
                let x = operand(x, regs, ins, n);
                match f {
                    FusedUnary::Neg => map1(tn, x, |v| -v),
                    FusedUnary::Abs => map1(tn, x, f32::abs),
                    FusedUnary::Sqrt => map1(tn, x, math::sqrt),
                    FusedUnary::Reciprocal => map1(tn, x, |v| 1.0 / v),
                    FusedUnary::Exp => map_vec(tn, x, Unary::Exp),
                    FusedUnary::Log => map1(tn, x, math::log),
                    FusedUnary::Erf => map_vec(tn, x, Unary::Erf),
                    FusedUnary::Tanh => map_vec(tn, x, Unary::Tanh),
                    FusedUnary::Sigmoid => map_vec(tn, x, Unary::Sigmoid),
                    FusedUnary::Relu => map1(tn, x, |v| v.max(0.0)),
                    FusedUnary::Gelu => map_vec(tn, x, Unary::Gelu),
                    FusedUnary::GeluTanh => map_vec(tn, x, Unary::GeluTanh),
                    FusedUnary::Silu => map_vec(tn, x, Unary::Silu),
                }
            }
            Instr::Binary { f, a, b, .. } => {
                let (a, b) = (operand(a, regs, ins, n), operand(b, regs, ins, n));
                match f {
                    FusedBinary::Add => map2(tn, a, b, |x, y| x + y),
                    FusedBinary::Sub => map2(tn, a, b, |x, y| x - y),
                    FusedBinary::Mul => map2(tn, a, b, |x, y| x * y),
                    FusedBinary::Div => map2(tn, a, b, |x, y| x / y),
                    FusedBinary::Max => map2(tn, a, b, math::max::<f32>),
                    FusedBinary::Min => map2(tn, a, b, math::min::<f32>),
                    FusedBinary::Pow => map2(tn, a, b, math::pow::<f32>),
                }
            }
        }
        last = i.dst() as usize;
        regs[last][..n].copy_from_slice(tn);
    }
    last
}

/// `out = program(inputs…)` element by element over `shape`, input `k` read through
/// `strides[k]` (broadcast strides of `shape`'s rank). `program` must pass
/// [`check_program`] for `inputs.len()` inputs (at most [`FUSED_INPUTS`]); its last
/// instruction's register is the result. Each row of the innermost axis runs in blocks of
/// [`FUSED_BLOCK`] elements, one loop per instruction.
pub fn fused(
    inputs: &[&[f32]],
    strides: &[&[isize]],
    out: &mut [f32],
    shape: &[usize],
    program: &[Instr],
) {
    const ZERO: [isize; MAX_RANK] = [0; MAX_RANK];
    let rank = shape.len();
    let (outer, len) = split_inner(shape);
    let mut all: [&[isize]; FUSED_INPUTS] = [&ZERO[..rank]; FUSED_INPUTS];
    let mut data: [&[f32]; FUSED_INPUTS] = [&[0.0]; FUSED_INPUTS];
    for (k, (&x, &s)) in inputs.iter().zip(strides).take(FUSED_INPUTS).enumerate() {
        all[k] = s;
        data[k] = x;
    }
    let count = inputs.len().min(FUSED_INPUTS);
    let mut inner = [0isize; FUSED_INPUTS];
    for (k, s) in all.iter().enumerate() {
        inner[k] = inner_stride(s);
    }
    let outer_strides: [&[isize]; FUSED_INPUTS] = [
        &all[0][..rank.saturating_sub(1)],
        &all[1][..rank.saturating_sub(1)],
        &all[2][..rank.saturating_sub(1)],
        &all[3][..rank.saturating_sub(1)],
    ];
    let mut ins = [[0.0f32; FUSED_BLOCK]; FUSED_INPUTS];
    let mut regs = [[0.0f32; FUSED_BLOCK]; FUSED_REGS];
    let mut start = 0usize;
    for_each_row(outer, outer_strides, [0; FUSED_INPUTS], |offs| {
        let row = &mut out[start..start + len];
        start += len;
        let mut j = 0;
        for chunk in row.chunks_mut(FUSED_BLOCK) {
            let n = chunk.len();
            for k in 0..count {
                let off = offs[k] + j as isize * inner[k];
                gather(&mut ins[k], data[k], off, inner[k], n);
            }
            let r = run_block(program, &ins, &mut regs, n);
            chunk.copy_from_slice(&regs[r][..n]);
            j += n;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_with_a_row_constant_condition_picks_rows() {
        // cond [2, 1] per row, x [1, 3] broadcast down, y [2, 3].
        let cond = [1u8, 0];
        let x = [1.0f32, 2.0, 3.0];
        let y = [4.0f32, 5.0, 6.0, 7.0, 8.0, 9.0];
        let mut out = [0.0f32; 6];
        select(&cond, &[1, 0], &x, &[0, 1], &y, &[3, 1], &mut out, &[2, 3]);
        assert_eq!(out, [1.0, 2.0, 3.0, 7.0, 8.0, 9.0]);
    }

    #[test]
    fn binary_broadcasts_a_row_vector() {
        // [2,3] + [3]
        let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [10.0f32, 20.0, 30.0];
        let mut out = [0.0f32; 6];
        binary(
            &a,
            &[3, 1],
            &b,
            &[0, 1],
            &mut out,
            &[2, 3],
            math::add::<f32>,
        );
        assert_eq!(out, [11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
    }

    #[test]
    fn binary_broadcasts_both_sides() {
        // [2,1] * [1,3]
        let a = [1i64, 2];
        let b = [1i64, 10, 100];
        let mut out = [0i64; 6];
        binary(
            &a,
            &[1, 0],
            &b,
            &[0, 1],
            &mut out,
            &[2, 3],
            math::mul::<i64>,
        );
        assert_eq!(out, [1, 10, 100, 2, 20, 200]);
    }

    #[test]
    fn select_picks_by_condition() {
        let c = [1u8, 0];
        let x = [1.0f32, 2.0, 3.0, 4.0];
        let y = [-1.0f32];
        let mut out = [0.0f32; 4];
        select(&c, &[1, 0], &x, &[2, 1], &y, &[0, 0], &mut out, &[2, 2]);
        assert_eq!(out, [1.0, 2.0, -1.0, -1.0]);
    }
}

#[cfg(test)]
mod fused_tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// Evaluate `program` one element at a time with scalar inputs (the specification).
    fn scalar(program: &[Instr], inputs: &[f32]) -> f32 {
        let mut regs = [f32::NAN; FUSED_REGS];
        let get = |s: Src, regs: &[f32; FUSED_REGS]| match s {
            Src::Reg(r) => regs[r as usize],
            Src::Input(k) => inputs[k as usize],
            Src::Const(c) => c,
        };
        let mut last = 0;
        for i in program {
            let v = match *i {
                Instr::Unary { f, x, .. } => {
                    let x = get(x, &regs);
                    match f {
                        FusedUnary::Neg => -x,
                        FusedUnary::Abs => x.abs(),
                        FusedUnary::Sqrt => math::sqrt(x),
                        FusedUnary::Reciprocal => 1.0 / x,
                        FusedUnary::Exp => math::fast_exp(x),
                        FusedUnary::Log => math::log(x),
                        FusedUnary::Erf => math::fast_erf(x),
                        FusedUnary::Tanh => math::rational_tanh(x),
                        FusedUnary::Sigmoid => math::fast_sigmoid(x),
                        FusedUnary::Relu => x.max(0.0),
                        FusedUnary::Gelu => math::fast_gelu(x),
                        FusedUnary::GeluTanh => math::fast_gelu_tanh(x),
                        FusedUnary::Silu => math::fast_silu(x),
                    }
                }
                Instr::Binary { f, a, b, .. } => {
                    let (a, b) = (get(a, &regs), get(b, &regs));
                    match f {
                        FusedBinary::Add => a + b,
                        FusedBinary::Sub => a - b,
                        FusedBinary::Mul => a * b,
                        FusedBinary::Div => a / b,
                        FusedBinary::Max => math::max(a, b),
                        FusedBinary::Min => math::min(a, b),
                        FusedBinary::Pow => math::pow(a, b),
                    }
                }
            };
            last = i.dst() as usize;
            regs[last] = v;
        }
        regs[last]
    }

    fn bin(f: FusedBinary, dst: u8, a: Src, b: Src) -> Instr {
        Instr::Binary { f, dst, a, b }
    }

    /// GPT-2's GELU as exported: `0.5x · (1 + tanh(c · (x + 0.044715 · x³)))`.
    fn gelu_tanh() -> Vec<Instr> {
        use FusedBinary::{Add, Mul};
        use Src::{Const, Input, Reg};
        vec![
            bin(Mul, 0, Input(0), Const(0.5)),
            bin(Mul, 1, Input(0), Input(0)),
            bin(Mul, 1, Reg(1), Input(0)),
            bin(Mul, 1, Reg(1), Const(0.044715)),
            bin(Add, 1, Input(0), Reg(1)),
            bin(Mul, 1, Reg(1), Const(0.797_884_6)),
            Instr::Unary {
                f: FusedUnary::Tanh,
                dst: 1,
                x: Reg(1),
            },
            bin(Add, 1, Reg(1), Const(1.0)),
            bin(Mul, 2, Reg(0), Reg(1)),
        ]
    }

    #[test]
    fn every_function_matches_the_scalar_specification_across_block_tails() {
        use FusedBinary as B;
        use FusedUnary as U;
        let unaries = [
            U::Neg,
            U::Abs,
            U::Sqrt,
            U::Reciprocal,
            U::Exp,
            U::Log,
            U::Erf,
            U::Tanh,
            U::Sigmoid,
            U::Relu,
            U::Gelu,
            U::GeluTanh,
            U::Silu,
        ];
        let binaries = [B::Add, B::Sub, B::Mul, B::Div, B::Max, B::Min, B::Pow];
        // Rows of 3 × 150: two full blocks and a tail; input 1 is a row vector (stride 0
        // down the rows), input 2 a column (stride 0 along the row).
        let (rows, cols) = (3usize, 150usize);
        let x: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 13.0)
            .collect();
        let row: Vec<f32> = (0..cols).map(|j| 0.25 + j as f32 / 97.0).collect();
        let col = [1.5f32, -0.75, 2.0];
        let mut programs: Vec<Vec<Instr>> = vec![gelu_tanh()];
        for f in unaries {
            programs.push(vec![
                bin(B::Mul, 3, Src::Input(0), Src::Input(1)),
                Instr::Unary {
                    f,
                    dst: 7,
                    x: Src::Reg(3),
                },
            ]);
        }
        for f in binaries {
            programs.push(vec![
                Instr::Unary {
                    f: U::Abs,
                    dst: 0,
                    x: Src::Input(0),
                },
                bin(f, 1, Src::Reg(0), Src::Input(2)),
                bin(f, 1, Src::Input(1), Src::Reg(1)),
                bin(f, 2, Src::Reg(1), Src::Const(0.5)),
            ]);
        }
        for p in &programs {
            check_program(p, 3).unwrap();
            let mut out = vec![0.0f32; rows * cols];
            fused(
                &[&x, &row, &col],
                &[&[cols as isize, 1], &[0, 1], &[1, 0]],
                &mut out,
                &[rows, cols],
                p,
            );
            for r in 0..rows {
                for c in 0..cols {
                    let want = scalar(p, &[x[r * cols + c], row[c], col[r]]);
                    let got = out[r * cols + c];
                    assert!(
                        got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                        "{p:?} at ({r}, {c}): {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn rational_tanh_is_close_to_libm_in_relative_terms() {
        let mut x = -10.0f32;
        while x < 10.0 {
            let (got, want) = (math::rational_tanh(x), math::tanh(x));
            assert!(
                (got - want).abs() <= 4.0 * f32::EPSILON * want.abs().max(1e-30),
                "tanh({x}): {got} vs {want}"
            );
            x += 0.001_7;
        }
        for tiny in [1e-6f32, -1e-20] {
            let got = math::rational_tanh(tiny);
            assert!(
                (got - tiny).abs() <= 2.0 * f32::EPSILON * tiny.abs(),
                "{tiny}: {got}"
            );
        }
        assert_eq!(math::rational_tanh(-0.0).to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn a_scalar_shape_runs_one_element() {
        let mut out = [0.0f32];
        fused(&[&[3.0]], &[&[]], &mut out, &[], &gelu_tanh());
        assert_eq!(out[0], scalar(&gelu_tanh(), &[3.0]));
    }

    #[test]
    fn invalid_programs_are_named() {
        let ok = gelu_tanh();
        assert_eq!(check_program(&ok, 1), Ok(()));
        assert_eq!(check_program(&[], 1), Err(ProgramError::Empty));
        assert_eq!(check_program(&ok, 0), Err(ProgramError::Input(0)));
        let read_first = [bin(FusedBinary::Add, 0, Src::Reg(1), Src::Const(1.0))];
        assert_eq!(
            check_program(&read_first, 0),
            Err(ProgramError::Unwritten(1))
        );
        let far = [bin(
            FusedBinary::Add,
            FUSED_REGS as u8,
            Src::Const(1.0),
            Src::Const(1.0),
        )];
        assert_eq!(
            check_program(&far, 0),
            Err(ProgramError::Register(FUSED_REGS as u8))
        );
        let long = vec![ok[0]; FUSED_MAX_INSTRS + 1];
        assert_eq!(check_program(&long, 1), Err(ProgramError::TooLong));
    }
}
