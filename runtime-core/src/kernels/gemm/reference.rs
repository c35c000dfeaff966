//! The portable GEMM: plain loops over the same operand layouts and epilogue as the ISA
//! variants. It is the oracle of the kernel test battery and what the compiler's reference
//! evaluator runs; targets without a tuned variant run it too.
use super::{BMatrix, Gemm, epilogue};

/// `C = act(A · B + bias)`, row by row (the inner loop over a panel's columns vectorises).
pub fn gemm(a: &[f32], b: BMatrix<'_>, c: &mut [f32], g: &Gemm<'_>) {
    super::check_bounds(a, &b, c, g);
    let (k, n, nr) = (g.k, g.n, b.nr);
    for i in 0..g.m {
        let row = &mut c[i * g.ldc..i * g.ldc + n];
        row.fill(0.0);
        for p in 0..k {
            let x = a[i * g.lda + p];
            for (panel, out) in row.chunks_mut(nr).enumerate() {
                let start = panel * b.panel_stride + p * b.row_stride;
                let w = &b.data[start..start + out.len()];
                for (o, &w) in out.iter_mut().zip(w) {
                    *o += x * w;
                }
            }
        }
        epilogue(row, g.bias, g.activation);
    }
}
