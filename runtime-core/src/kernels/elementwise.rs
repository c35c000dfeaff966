//! Elementwise maps with NumPy broadcasting: unary, binary, and the ternary `where`.
use super::{for_each_row, inner_stride, split_inner};

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
            for (j, o) in row.iter_mut().enumerate() {
                let j = j as isize;
                *o = f(a[(oa + j * sa) as usize], b[(ob + j * sb) as usize]);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math;

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
