//! Stack high-water measurement for bare-metal firmware ("stack painting"): fill the unused
//! stack with a pattern, run the workload, then find the lowest word that no longer holds it.
//!
//! The caller passes the stack's bounds as addresses, e.g. of cortex-m-rt's linker symbols
//! `_stack_end` (lowest address) and `_stack_start` (the initial stack pointer). Both functions
//! only touch words in `[bottom, top)`, and [`paint`] only words below its own frame, so it
//! never overwrites a live frame of a full-descending stack. The bounds cannot be checked
//! beyond that: they must delimit the stack the caller runs on (this is a measurement tool
//! for firmware, not for hosted programs, whose stacks are guarded by the OS).

/// The pattern written into unused stack words.
pub const PAINT: u32 = 0x5AC3_A53C;

/// Bytes left unpainted directly below [`paint`]'s own frame, for the calls it makes.
pub const GUARD_BYTES: usize = 256;

/// Paint the unused stack between `bottom` and this call's frame (minus [`GUARD_BYTES`])
/// with [`PAINT`], and return how many bytes were painted. Paints nothing (returns 0) unless
/// `bottom <= current stack position < top`, i.e. unless the range is the stack it runs on.
#[inline(never)]
pub fn paint(bottom: usize, top: usize) -> usize {
    let marker = 0u8;
    let here = core::hint::black_box(&raw const marker) as usize;
    if !(bottom <= here && here < top) {
        return 0;
    }
    let start = bottom.next_multiple_of(4);
    let end = here.saturating_sub(GUARD_BYTES) & !3;
    let mut at = start;
    while at < end {
        // SAFETY: `at` is 4-aligned and lies in `[bottom, here - GUARD_BYTES)`: inside the
        // caller's stack (its bounds contain this frame, checked above) and below every live
        // frame of a full-descending stack, so no Rust object lives there. Volatile, so the
        // stores are not elided as dead.
        unsafe { core::ptr::write_volatile(at as *mut u32, PAINT) };
        at += 4;
    }
    end.saturating_sub(start)
}

/// The most stack used since [`paint`]: bytes from `top` down to the lowest word in
/// `[bottom, top)` that no longer holds [`PAINT`]. Equals `top - bottom` (rounded) when the
/// pattern was never written or the stack overflowed into `bottom`.
pub fn high_water(bottom: usize, top: usize) -> usize {
    let mut at = bottom.next_multiple_of(4);
    while at + 4 <= top {
        // SAFETY: `at` is 4-aligned inside `[bottom, top)`, the caller's stack, which is
        // mapped, readable memory; a volatile read of a `u32` is valid for any bit pattern.
        let word = unsafe { core::ptr::read_volatile(at as *const u32) };
        if word != PAINT {
            break;
        }
        at += 4;
    }
    top.saturating_sub(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn high_water_finds_the_lowest_overwritten_word() {
        let mut words = [PAINT; 64];
        let bottom = words.as_ptr() as usize;
        let top = bottom + 64 * 4;
        assert_eq!(high_water(bottom, top), 0);
        words[40] = 0;
        core::hint::black_box(&mut words);
        assert_eq!(high_water(bottom, top), (64 - 40) * 4);
    }

    #[test]
    fn paint_refuses_a_range_that_is_not_the_current_stack() {
        let words = [0u32; 16];
        let bottom = words.as_ptr() as usize;
        // A range above this frame cannot contain paint's frame (the stack grows down).
        assert_eq!(paint(bottom + 4096, bottom + 8192), 0);
    }
}
