//! KV-cache writes of stateful decoders: the new keys/values of a step go into their slots
//! of the cache in place, so a step never copies the cache.
use crate::error::IndexError;

/// Write `new` (`[outer, n, inner]`) into `cache` (`[outer, slots, inner]`) at slots
/// `position..position + n`. Fails, writing nothing, when those slots are not all inside
/// the cache.
pub fn write_slots<T: Copy>(
    cache: &mut [T],
    new: &[T],
    outer: usize,
    slots: usize,
    inner: usize,
    position: i64,
) -> Result<(), IndexError> {
    let n = new.len() / (outer * inner).max(1);
    let fits = usize::try_from(position)
        .ok()
        .filter(|&p| p.checked_add(n).is_some_and(|end| end <= slots));
    let Some(position) = fits else {
        return Err(IndexError {
            index: position,
            bound: slots,
        });
    };
    let len = n * inner;
    for o in 0..outer {
        let dst = o * slots * inner + position * inner;
        cache[dst..dst + len].copy_from_slice(&new[o * len..(o + 1) * len]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_slot_per_outer_row() {
        // cache [2 heads, 3 slots, 2], write slot 1 of both heads.
        let mut cache = [0.0f32; 12];
        write_slots(&mut cache, &[1.0, 2.0, 3.0, 4.0], 2, 3, 2, 1).unwrap();
        assert_eq!(
            cache,
            [0.0, 0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 3.0, 4.0, 0.0, 0.0]
        );
    }

    #[test]
    fn refuses_slots_outside_the_cache() {
        let mut cache = [0.0f32; 6];
        assert!(write_slots(&mut cache, &[1.0, 2.0], 1, 3, 2, 3).is_err());
        assert!(write_slots(&mut cache, &[1.0, 2.0], 1, 3, 2, -1).is_err());
        assert!(write_slots(&mut cache, &[1.0, 2.0, 3.0, 4.0], 1, 3, 2, 2).is_err());
        assert_eq!(cache, [0.0; 6]);
    }
}
