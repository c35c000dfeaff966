//! Matrix products: batched `MatMul` with broadcast batch axes and arbitrary operand
//! strides (transposed operands are read in place).
use super::for_each_row;
use super::gemm::{self, Activation, BMatrix, Gemm, Tiles};
use crate::element::Numeric;

/// Geometry of a batched product `out[b] = A[b] (m×k) · B[b] (k×n)`; `out` is contiguous
/// `[batch..., m, n]`.
#[derive(Clone, Copy, Debug)]
pub struct MatMulSpec<'a> {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// Element strides of A's row and column.
    pub a_strides: [isize; 2],
    /// Element strides of B's row and column.
    pub b_strides: [isize; 2],
    /// The output's batch axes.
    pub batch: &'a [usize],
    /// A's and B's strides along the batch axes (0 where broadcast).
    pub a_batch_strides: &'a [isize],
    pub b_batch_strides: &'a [isize],
}

/// Batched matrix product.
pub fn matmul<T: Numeric>(a: &[T], b: &[T], out: &mut [T], spec: &MatMulSpec<'_>) {
    let (m, n) = (spec.m, spec.n);
    let mut start = 0usize;
    if spec.batch.is_empty() {
        gemm_one(a, 0, b, 0, &mut out[..m * n], spec);
        return;
    }
    // Treat the batch axes as the "rows" of the walk: one matrix product per index.
    let (outer, last) = match spec.batch.split_last() {
        Some((&last, outer)) => (outer, last),
        None => (&[][..], 1),
    };
    let rank = outer.len();
    let sa = spec.a_batch_strides[rank];
    let sb = spec.b_batch_strides[rank];
    for_each_row(
        outer,
        [&spec.a_batch_strides[..rank], &spec.b_batch_strides[..rank]],
        [0, 0],
        |[oa, ob]| {
            for j in 0..last as isize {
                gemm_one(
                    a,
                    oa + j * sa,
                    b,
                    ob + j * sb,
                    &mut out[start..start + m * n],
                    spec,
                );
                start += m * n;
            }
        },
    );
}

/// Batched f32 product through the blocked GEMM when both operands have unit column stride
/// (rows may be further apart than `k` / `n`, as in a head of a `[s, heads, d]` tensor),
/// `A` and `B` read in place; other layouts take the generic loop. Same result as
/// [`matmul`] up to rounding.
pub fn matmul_f32(a: &[f32], b: &[f32], out: &mut [f32], spec: &MatMulSpec<'_>, tiles: Tiles) {
    let (m, k, n) = (spec.m, spec.k, spec.n);
    let ([lda, ac], [ldb, bc]) = (spec.a_strides, spec.b_strides);
    if ac != 1 || bc != 1 || lda < k as isize || ldb < n as isize || m == 0 || k == 0 || n == 0 {
        matmul(a, b, out, spec);
        return;
    }
    let (lda, ldb) = (lda as usize, ldb as usize);
    let g = Gemm {
        m,
        k,
        n,
        lda,
        ldc: n,
        bias: None,
        activation: Activation::None,
        tiles,
    };
    let one = |a_off: isize, b_off: isize, out: &mut [f32]| {
        let (a_off, b_off) = (a_off as usize, b_off as usize);
        let b_mat =
            BMatrix::row_major(&b[b_off..b_off + (k - 1) * ldb + n], ldb, gemm::native_nr());
        gemm::gemm(&a[a_off..a_off + (m - 1) * lda + k], b_mat, out, &g);
    };
    if spec.batch.is_empty() {
        one(0, 0, &mut out[..m * n]);
        return;
    }
    let (outer, last) = match spec.batch.split_last() {
        Some((&last, outer)) => (outer, last),
        None => (&[][..], 1),
    };
    let rank = outer.len();
    let (sa, sb) = (spec.a_batch_strides[rank], spec.b_batch_strides[rank]);
    let mut start = 0usize;
    for_each_row(
        outer,
        [&spec.a_batch_strides[..rank], &spec.b_batch_strides[..rank]],
        [0, 0],
        |[oa, ob]| {
            for j in 0..last as isize {
                one(oa + j * sa, ob + j * sb, &mut out[start..start + m * n]);
                start += m * n;
            }
        },
    );
}

#[inline]
fn gemm_one<T: Numeric>(
    a: &[T],
    a_off: isize,
    b: &[T],
    b_off: isize,
    out: &mut [T],
    spec: &MatMulSpec<'_>,
) {
    let (m, k, n) = (spec.m, spec.k, spec.n);
    let [ar, ac] = spec.a_strides;
    let [br, bc] = spec.b_strides;
    if bc == 1 {
        // Row-major B: accumulate rows of B scaled by A's entries (the inner loop vectorises).
        for i in 0..m {
            let row = &mut out[i * n..(i + 1) * n];
            row.fill(T::ZERO);
            for p in 0..k {
                let x = a[(a_off + i as isize * ar + p as isize * ac) as usize];
                let b_row = (b_off + p as isize * br) as usize;
                for (o, &w) in row.iter_mut().zip(&b[b_row..b_row + n]) {
                    *o = o.add(x.mul(w));
                }
            }
        }
    } else {
        // Column-major B (a transposed weight): dot products along k.
        for i in 0..m {
            for j in 0..n {
                let mut acc = T::ZERO;
                for p in 0..k {
                    let x = a[(a_off + i as isize * ar + p as isize * ac) as usize];
                    let w = b[(b_off + p as isize * br + j as isize * bc) as usize];
                    acc = acc.add(x.mul(w));
                }
                out[i * n + j] = acc;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_transposed_b_agree() {
        let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2x3
        let b = [1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0]; // 3x2
        let bt = [1.0f32, 0.0, 1.0, 0.0, 1.0, 1.0]; // its transpose, 2x3
        let spec = |b_strides| MatMulSpec {
            m: 2,
            k: 3,
            n: 2,
            a_strides: [3, 1],
            b_strides,
            batch: &[],
            a_batch_strides: &[],
            b_batch_strides: &[],
        };
        let (mut x, mut y) = ([0.0f32; 4], [0.0f32; 4]);
        matmul(&a, &b, &mut x, &spec([2, 1]));
        matmul(&a, &bt, &mut y, &spec([1, 3]));
        assert_eq!(x, [4.0, 5.0, 10.0, 11.0]);
        assert_eq!(x, y);
    }

    #[test]
    fn broadcast_batch() {
        // A: [2, 1, 2], B: [2, 1] broadcast over the batch.
        let a = [1i64, 2, 3, 4];
        let b = [10i64, 1];
        let mut out = [0i64; 2];
        let spec = MatMulSpec {
            m: 1,
            k: 2,
            n: 1,
            a_strides: [2, 1],
            b_strides: [1, 1],
            batch: &[2],
            a_batch_strides: &[2],
            b_batch_strides: &[0],
        };
        matmul(&a, &b, &mut out, &spec);
        assert_eq!(out, [12, 34]);
    }

    #[test]
    fn gemm_path_reads_strided_rows_in_place() {
        // Per head h of 3: A is rows of a [5, 3, 4] tensor (row stride 12), B rows of a
        // [4, 3, 6] tensor (row stride 18), both unit column stride.
        let a: std::vec::Vec<f32> = (0..60).map(|x| (x % 7) as f32 - 3.0).collect();
        let b: std::vec::Vec<f32> = (0..72).map(|x| (x % 5) as f32 * 0.5 - 1.0).collect();
        let spec = MatMulSpec {
            m: 5,
            k: 4,
            n: 6,
            a_strides: [12, 1],
            b_strides: [18, 1],
            batch: &[3],
            a_batch_strides: &[4],
            b_batch_strides: &[6],
        };
        let (mut want, mut got) = ([0.0f32; 90], [0.0f32; 90]);
        matmul(&a, &b, &mut want, &spec);
        let tiles = Tiles {
            mr: 4,
            kc: 3,
            mc: 4,
        };
        matmul_f32(&a, &b, &mut got, &spec, tiles);
        for (x, y) in got.iter().zip(&want) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{x} vs {y}");
        }
    }
}
