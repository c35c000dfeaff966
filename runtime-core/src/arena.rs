//! The static arena: alignment wrapper, checked splitting into disjoint views, typed casts.
//!
//! Generated code is `#![forbid(unsafe_code)]`; every reinterpretation of arena or weight
//! bytes as typed slices happens here, behind checks of bounds, alignment and disjointness.
use crate::error::Error;

/// Alignment of the arena, of every planned offset and of every weight in the blob.
pub const ALIGN: usize = 64;

/// A value aligned to 64 bytes (cache line, widest SIMD register).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub struct Aligned64<T: ?Sized>(pub T);

/// Declare a model's weight blob in a named linker section (e.g. read in place from flash
/// on a microcontroller): `weights_in_section!(".weights", WEIGHTS, LEN, *include_bytes!(..))`
/// declares `static WEIGHTS: Aligned64<[u8; LEN]>`. Generated crates are
/// `#![forbid(unsafe_code)]`; the unsafe attribute is written here, in runtime-core.
#[macro_export]
macro_rules! weights_in_section {
    ($section:literal, $name:ident, $len:expr, $bytes:expr) => {
        // SAFETY: placing an immutable, initialised static in a section changes only where
        // the linker puts its bytes; the target's linker script must map the section to
        // readable memory (slm-aot's MCU profile and firmware example do).
        #[unsafe(link_section = $section)]
        static $name: $crate::Aligned64<[u8; $len]> = $crate::Aligned64($bytes);
    };
}

/// Check that `arena` can hold a plan of `needed` bytes and starts 64-byte aligned.
pub fn check(arena: &[u8], needed: usize) -> Result<(), Error> {
    if arena.len() < needed {
        return Err(Error::ArenaTooSmall {
            needed,
            got: arena.len(),
        });
    }
    if !(arena.as_ptr() as usize).is_multiple_of(ALIGN) {
        return Err(Error::ArenaMisaligned);
    }
    Ok(())
}

/// View a slice of 64-byte blocks (e.g. a heap `Vec` on a host) as one aligned byte arena.
pub fn from_blocks(blocks: &mut [Aligned64<[u8; ALIGN]>]) -> &mut [u8] {
    let len = blocks.len() * ALIGN;
    // SAFETY: `Aligned64<[u8; 64]>` is `repr(C)` with size 64 and no padding, so the blocks
    // are `len` contiguous initialised bytes; the returned borrow takes over `blocks`.
    unsafe { core::slice::from_raw_parts_mut(blocks.as_mut_ptr().cast::<u8>(), len) }
}

/// A byte range `(offset, len)` inside the arena.
pub type Span = (usize, usize);

fn overlaps(a: Span, b: Span) -> bool {
    a.1 != 0 && b.1 != 0 && a.0 < b.0 + b.1 && b.0 < a.0 + a.1
}

/// Split the arena into `R` shared views and `W` exclusive views.
///
/// Panics if a span is out of bounds, or an exclusive span overlaps any other span: the
/// compiler's planner guarantees neither happens, so a panic here is a compiler bug.
pub fn split<const R: usize, const W: usize>(
    arena: &mut [u8],
    reads: [Span; R],
    writes: [Span; W],
) -> ([&[u8]; R], [&mut [u8]; W]) {
    let total = arena.len();
    for &(off, len) in reads.iter().chain(writes.iter()) {
        assert!(
            off.checked_add(len).is_some_and(|end| end <= total),
            "arena span out of bounds"
        );
    }
    for (i, &w) in writes.iter().enumerate() {
        for &r in reads.iter() {
            assert!(!overlaps(w, r), "arena write span overlaps a read span");
        }
        for &w2 in writes[i + 1..].iter() {
            assert!(!overlaps(w, w2), "arena write spans overlap");
        }
    }
    let base = arena.as_mut_ptr();
    // SAFETY: every span lies inside `arena` (checked above); exclusive spans overlap no
    // other span (checked above), so no byte is reachable through a `&mut` and any other
    // reference at once; all views borrow from `arena` for its lifetime.
    let read_views =
        reads.map(|(off, len)| unsafe { core::slice::from_raw_parts(base.add(off), len) });
    // SAFETY: as above.
    let write_views =
        writes.map(|(off, len)| unsafe { core::slice::from_raw_parts_mut(base.add(off), len) });
    (read_views, write_views)
}

/// Plain-old-data element types that may be viewed from arena or weight bytes: every bit
/// pattern is a valid value.
pub trait Pod: Copy + 'static {}
impl Pod for f32 {}
impl Pod for f64 {}
impl Pod for i64 {}
impl Pod for i32 {}
impl Pod for i16 {}
impl Pod for i8 {}
impl Pod for u8 {}
impl Pod for u16 {}

/// View bytes as a typed slice. Panics on misalignment or a length that is not a multiple
/// of the element size (the planner aligns every offset, so either is a compiler bug).
pub fn cast<T: Pod>(bytes: &[u8]) -> &[T] {
    let size = core::mem::size_of::<T>();
    assert!(
        bytes.len().is_multiple_of(size),
        "byte length not a multiple of the element size"
    );
    assert!(
        (bytes.as_ptr() as usize).is_multiple_of(core::mem::align_of::<T>()),
        "misaligned tensor"
    );
    // SAFETY: alignment and length checked above; `T: Pod` accepts every bit pattern; the
    // result borrows `bytes`.
    unsafe { core::slice::from_raw_parts(bytes.as_ptr().cast::<T>(), bytes.len() / size) }
}

/// Mutable counterpart of [`cast`].
pub fn cast_mut<T: Pod>(bytes: &mut [u8]) -> &mut [T] {
    let size = core::mem::size_of::<T>();
    assert!(
        bytes.len().is_multiple_of(size),
        "byte length not a multiple of the element size"
    );
    assert!(
        (bytes.as_ptr() as usize).is_multiple_of(core::mem::align_of::<T>()),
        "misaligned tensor"
    );
    // SAFETY: as in `cast`; every bit pattern written through the view is a valid `u8`.
    unsafe { core::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast::<T>(), bytes.len() / size) }
}

/// View a `bool` slice as bytes (0 or 1), the storage kernels use for booleans.
pub fn bools_as_bytes(values: &[bool]) -> &[u8] {
    // SAFETY: `bool` has size and alignment 1 and is always 0 or 1, a valid `u8`.
    unsafe { core::slice::from_raw_parts(values.as_ptr().cast::<u8>(), values.len()) }
}

/// Copy byte-booleans (0 / non-zero) into a `bool` slice of the same length.
pub fn bytes_to_bools(src: &[u8], dst: &mut [bool]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = *s != 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_hands_out_disjoint_views() {
        let mut blocks = [Aligned64([0u8; ALIGN]); 4];
        let arena = from_blocks(&mut blocks);
        let ([a], [b]) = split(arena, [(0, 64)], [(64, 128)]);
        assert_eq!(a.len(), 64);
        b[0] = 7;
        assert_eq!(arena[64], 7);
    }

    #[test]
    fn check_rejects_short_arena() {
        let mut blocks = [Aligned64([0u8; ALIGN]); 1];
        let arena = from_blocks(&mut blocks);
        assert_eq!(
            check(arena, 128),
            Err(Error::ArenaTooSmall {
                needed: 128,
                got: 64
            })
        );
        assert_eq!(check(arena, 64), Ok(()));
    }
}
