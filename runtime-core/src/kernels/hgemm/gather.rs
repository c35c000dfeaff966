//! Embedding lookups in half-precision tables (`--quantize f16`): a table `T[rows, cols]`
//! stored as IEEE half bits, row-major ([`pack_rows_h`]), or — when a classifier multiplies
//! by `Tᵀ` (tied embeddings) — read out of that classifier's half blob ([`super::pack_h`]
//! panels of `Tᵀ: [cols, rows]`), so the table is stored once. Rows come out as f32.
use super::{HWeights, convert_panel};
use crate::error::Error;
use crate::kernels::gather::{Index, fill_rows};
use crate::math;

/// Bytes of a row-major half table.
pub const fn packed_rows_h_bytes(rows: usize, cols: usize) -> usize {
    2 * rows * cols
}

/// Round a row-major f32 table to half (nearest even, [`math::f32_to_f16`]) and store it
/// row-major as little-endian bits (build time); `out` has [`packed_rows_h_bytes`] bytes.
/// Values beyond the half range become ±inf: callers that must not change a value's meaning
/// check the range first.
pub fn pack_rows_h(table: &[f32], out: &mut [u8]) {
    assert_eq!(out.len(), 2 * table.len());
    for (o, &v) in out.chunks_exact_mut(2).zip(table) {
        o.copy_from_slice(&math::f32_to_f16(v).to_le_bytes());
    }
}

/// `out[r] = T[indices[r]]` widened to f32 (exact), for a table stored by [`pack_rows_h`].
/// Negative indices count from the end; anything else outside `0..rows` is
/// `Error::IndexOutOfRange` naming `node`. `out` holds at least `indices.len() · cols` values.
pub fn gather_rows_h<I: Index>(
    node: &'static str,
    blob: &[u8],
    rows: usize,
    cols: usize,
    indices: &[I],
    out: &mut [f32],
) -> Result<(), Error> {
    assert!(
        blob.len() == packed_rows_h_bytes(rows, cols) && out.len() >= indices.len() * cols,
        "gather_rows_h sizes"
    );
    fill_rows(node, indices, rows, cols, out, |i, row| {
        convert_panel(&blob[2 * i * cols..2 * (i + 1) * cols], row)
    })
}

/// `out[r][p] = W[p][indices[r]]` widened to f32, for `p < w.k`: row `indices[r]` of the
/// table whose transpose the half classifier blob `w` holds. Index rules as
/// [`gather_rows_h`], with `w.n` rows. `out` holds at least `indices.len() · w.k` values.
pub fn gather_cols_h<I: Index>(
    node: &'static str,
    w: HWeights<'_>,
    indices: &[I],
    out: &mut [f32],
) -> Result<(), Error> {
    let k = w.k;
    assert!(
        out.len() >= indices.len() * k && w.data.len() >= super::packed_h_bytes(k, w.n, w.nr),
        "gather_cols_h sizes"
    );
    fill_rows(node, indices, w.n, k, out, |j, row| {
        for (p, o) in row.iter_mut().enumerate() {
            *o = math::f16_to_f32(w.bits(p, j));
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::hgemm::{pack_h, packed_h_bytes};
    use crate::kernels::test_values as values;
    use std::vec;
    use std::vec::Vec;

    /// Rows from the row-major table and from a classifier blob of its transpose (every
    /// panel width the half GEMMs use, ragged last panels) are the table's values rounded to
    /// half, bit for bit; negative indices count from the end; an index past either end is
    /// an error naming the node.
    #[test]
    fn rows_match_the_rounded_table_both_ways() {
        for (rows, cols) in [(1, 1), (5, 3), (37, 20), (64, 33)] {
            let t = values(rows * cols, 21);
            let want: Vec<f32> = t
                .iter()
                .map(|&v| math::f16_to_f32(math::f32_to_f16(v)))
                .collect();
            let ids: Vec<i64> = vec![0, rows as i64 - 1, -1, (rows / 2) as i64];
            let rowid = |r: usize| (ids[r] + if ids[r] < 0 { rows as i64 } else { 0 }) as usize;
            let mut blob = vec![0u8; packed_rows_h_bytes(rows, cols)];
            pack_rows_h(&t, &mut blob);
            let mut got = vec![f32::NAN; ids.len() * cols];
            gather_rows_h("e", &blob, rows, cols, &ids, &mut got).unwrap();
            for (r, row) in got.chunks(cols).enumerate() {
                let w = &want[rowid(r) * cols..(rowid(r) + 1) * cols];
                assert!(row.iter().zip(w).all(|(a, b)| a.to_bits() == b.to_bits()));
            }
            let tt: Vec<f32> = (0..cols * rows)
                .map(|i| t[(i % rows) * cols + i / rows])
                .collect();
            for nr in [5, 8, 16, 32] {
                let mut blob = vec![0u8; packed_h_bytes(cols, rows, nr)];
                pack_h(&tt, cols, rows, nr, &mut blob);
                let w = HWeights::new(&blob, cols, rows, nr);
                let ids32: Vec<i32> = ids.iter().map(|&i| i as i32).collect();
                let mut got = vec![f32::NAN; ids.len() * cols];
                gather_cols_h("e", w, &ids32, &mut got).unwrap();
                for (r, row) in got.chunks(cols).enumerate() {
                    let w = &want[rowid(r) * cols..(rowid(r) + 1) * cols];
                    assert!(
                        row.iter().zip(w).all(|(a, b)| a.to_bits() == b.to_bits()),
                        "nr {nr}"
                    );
                }
                let e = gather_cols_h("e", w, &[rows as i64], &mut got).unwrap_err();
                assert!(std::format!("{e}").contains('e'));
            }
            let mut one = vec![0.0; cols];
            assert!(
                gather_rows_h("e", &blob, rows, cols, &[-(rows as i64) - 1], &mut one).is_err()
            );
        }
    }
}
