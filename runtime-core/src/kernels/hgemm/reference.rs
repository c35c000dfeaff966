//! The portable half-weight kernels: scalar [`math::f16_to_f32`] and plain loops. The oracle
//! of the test battery and what the compiler's reference evaluator runs (with the f32
//! reference GEMM for several rows).
use super::{HWeights, check_bounds};
use crate::kernels::gemm::{Gemm, epilogue};
use crate::math;

/// Convert packed half bytes to f32, element by element.
pub fn convert(panel: &[u8], out: &mut [f32]) {
    for (o, b) in out.iter_mut().zip(panel.chunks_exact(2)) {
        *o = math::f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
    }
}

/// `C = act(A · W + bias)`, row by row, weights converted as they are read.
pub fn hgemm(a: &[f32], w: HWeights<'_>, c: &mut [f32], g: &Gemm<'_>) {
    check_bounds(a, &w, c, g);
    for i in 0..g.m {
        let row = &mut c[i * g.ldc..i * g.ldc + g.n];
        row.fill(0.0);
        for p in 0..g.k {
            let x = a[i * g.lda + p];
            for (j, o) in row.iter_mut().enumerate() {
                *o += x * math::f16_to_f32(w.bits(p, j));
            }
        }
        epilogue(row, g.bias, g.activation);
    }
}

/// The one-row product (`g.m` must be 1).
pub fn gemv(a: &[f32], w: HWeights<'_>, c: &mut [f32], g: &Gemm<'_>) {
    assert_eq!(g.m, 1);
    hgemm(a, w, c, g);
}
