//! stories260K on a bare-metal Cortex-M55 (QEMU `mps3-an547`): greedy-decodes `EXPECTED.len()`
//! tokens from BOS with the slm-aot generated stateful `Model`, prints the ids, the SysTick
//! ticks of every decode step and the stack high-water mark, compares the ids with llama2.c's
//! reference, and exits through semihosting (QEMU's exit status is 0 on a match, 1 otherwise).
//!
//! Memory: the model (arena, KV cache, logits) is a static in DTCM `.bss`; the weight blob is
//! read in place from QSPI flash (the `.weights` section, see `memory.x`).
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{SCB, SYST};
use cortex_m_rt::{entry, exception};
use cortex_m_semihosting::{debug, hprint, hprintln};
use panic_semihosting as _;
use stories260k::Model;

include!(concat!(env!("OUT_DIR"), "/expected.rs"));

/// Beginning of sequence: the prompt.
const BOS: u32 = 1;
/// SysTick's largest reload value: it counts down 24 bits.
const SYSTICK_RELOAD: u32 = 0x00FF_FFFF;

/// SysTick wraps since the current step began (the exception handler counts them).
static WRAPS: AtomicU32 = AtomicU32::new(0);

unsafe extern "C" {
    /// cortex-m-rt's linker symbols: the lowest address of the stack (above `.bss`) and the
    /// initial stack pointer (the end of RAM).
    static _stack_end: u32;
    static _stack_start: u32;
}

#[exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// Start counting ticks (core clock) from zero.
fn restart_ticks(syst: &mut SYST) {
    syst.clear_current();
    WRAPS.store(0, Ordering::Relaxed);
}

/// Ticks since `restart_ticks`, with the 24-bit wraps the exception handler counted, plus a
/// wrap that is pending but not yet handled.
fn ticks() -> u64 {
    let pending_before = SCB::is_pendst_pending();
    let mut current = SYST::get_current();
    let pending_after = SCB::is_pendst_pending();
    if pending_after && !pending_before {
        // The counter reloaded around the read: read again, after the reload.
        current = SYST::get_current();
    }
    let wraps = WRAPS.load(Ordering::Relaxed) as u64 + pending_after as u64;
    wraps * (SYSTICK_RELOAD as u64 + 1) + (SYSTICK_RELOAD - current) as u64
}

/// Greedy decoding from BOS: fills `ids` and the ticks of each step.
fn decode(
    model: &mut Model,
    syst: &mut SYST,
    ids: &mut [u32],
    step_ticks: &mut [u64],
) -> Result<(), runtime_core::Error> {
    let mut token = BOS;
    for (id, ticks_of_step) in ids.iter_mut().zip(step_ticks.iter_mut()) {
        restart_ticks(syst);
        let logits = model.step(token)?;
        token = runtime_core::sampling::argmax(logits) as u32;
        *ticks_of_step = ticks();
        *id = token;
    }
    Ok(())
}

/// End the emulation through semihosting: QEMU exits with 0 on success, 1 otherwise.
fn exit(success: bool) -> ! {
    debug::exit(if success {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    // Only reached without a semihosting host (real hardware without a debugger).
    loop {
        cortex_m::asm::wfi();
    }
}

#[entry]
fn main() -> ! {
    // cortex-m-rt turns an entry function's `static mut` into a `&'static mut`, safely (main
    // runs once); the value is all zeros, so it lives in `.bss`, never on the stack. (A
    // `critical_section::Mutex<RefCell<Model>>` would keep interrupts off while decoding,
    // and the SysTick wrap count needs its exception.)
    static mut MODEL: Model = Model::new();

    let stack_bottom = &raw const _stack_end as usize;
    let stack_top = &raw const _stack_start as usize;
    let painted = runtime_core::stack::paint(stack_bottom, stack_top);

    let mut peripherals = cortex_m::Peripherals::take().unwrap();
    let syst = &mut peripherals.SYST;
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(SYSTICK_RELOAD);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();

    let mut ids = [0u32; EXPECTED.len()];
    let mut step_ticks = [0u64; EXPECTED.len()];
    if let Err(e) = decode(MODEL, syst, &mut ids, &mut step_ticks) {
        hprintln!("decode failed: {}", e);
        exit(false);
    }

    hprint!("ids:");
    for id in &ids {
        hprint!(" {}", id);
    }
    hprintln!();
    hprint!("ticks/step:");
    for t in &step_ticks {
        hprint!(" {}", t);
    }
    hprintln!();
    let total: u64 = step_ticks.iter().sum();
    hprintln!(
        "ticks: total {} mean/step {} (SysTick, core clock; run under -icount shift=0)",
        total,
        total / step_ticks.len() as u64
    );
    // Measured after the decoding and the printing above: the deepest the program went.
    let stack_used = runtime_core::stack::high_water(stack_bottom, stack_top);
    hprintln!(
        "stack high-water: {} bytes (of {} painted)",
        stack_used,
        painted
    );
    let passed = ids.iter().zip(&EXPECTED).filter(|(a, b)| a == b).count();
    let failed = EXPECTED.len() - passed;
    for (k, (got, want)) in ids.iter().zip(&EXPECTED).enumerate() {
        if got != want {
            hprintln!("token {}: got {}, expected {}", k, got, want);
        }
    }
    hprintln!("{} passed, {} failed", passed, failed);
    exit(failed == 0)
}
