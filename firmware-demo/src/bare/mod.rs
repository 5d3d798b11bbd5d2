//! Bare-metal aarch64: QEMU `virt` (default) or Raspberry Pi 3 / QEMU `raspi3b` (feature
//! `raspi3b`). No heap: the blob is linked into `.rodata`, every buffer is a static in
//! `.bss` sized at build time from the bundled blob (build.rs).
//!
//! Runs the demo sentences, prints results and timings over the PL011 and leaves: PSCI
//! SYSTEM_OFF on virt, semihosting with feature `semihosting`, else `wfe` forever.

mod boot;
mod mmu;
mod uart;

use albert_engine::tokenizer::{NChar, Node, Workspace};
use core::arch::asm;
use core::cell::UnsafeCell;
use core::fmt::Write;
use firmware_demo::{
    Aligned, BLOB_BYTES, BUNDLED, Buffers, Clock, Demo, MAX_TEXT, MAX_TOKENS, SCRATCH_BYTES, SENTENCES, STACK_BYTES,
    VOCAB_SIZE,
};
use uart::Pl011;

#[cfg(not(feature = "raspi3b"))]
mod board {
    pub const NAME: &str = "QEMU virt";
    pub const UART: usize = 0x0900_0000;
    /// RAM from 1 GiB up (3 GiB at most in the 32-bit map); below it, flash and devices.
    pub fn is_ram(addr: u64) -> bool {
        addr >= 0x4000_0000
    }
    /// A blob loaded here at run time replaces the bundled one:
    /// `-device loader,file=X.albq,addr=0x44000000,force-raw=on` (RAM is zero otherwise).
    pub const OVERRIDE: Option<(usize, usize)> = Some((0x4400_0000, 0x0400_0000));
    pub fn init() {}
}

#[cfg(feature = "raspi3b")]
mod board {
    pub const NAME: &str = "Raspberry Pi 3 (BCM2837)";
    pub const UART: usize = 0x3f20_1000;
    const GPFSEL1: usize = 0x3f20_0004;
    /// ARM RAM below the peripherals at 0x3F00_0000.
    pub fn is_ram(addr: u64) -> bool {
        addr < 0x3f00_0000
    }
    pub const OVERRIDE: Option<(usize, usize)> = None;
    /// GPIO 14 and 15 to ALT0 (PL011 TXD0/RXD0).
    pub fn init() {
        let p = GPFSEL1 as *mut u32;
        // SAFETY: the GPIO function-select register, mapped as device memory; only the
        // fields of pins 14 and 15 change.
        unsafe {
            let v = p.read_volatile() & !((7 << 12) | (7 << 15));
            p.write_volatile(v | (4 << 12) | (4 << 15));
        }
    }
}

const CHARS: usize = Workspace::chars_for(MAX_TEXT);

/// Every buffer the demo uses; all zero, so it lives in `.bss`.
struct Statics {
    ids: [u32; MAX_TOKENS],
    type_ids: [u32; MAX_TOKENS],
    attention_mask: [u32; MAX_TOKENS],
    offsets: [[u32; 2]; MAX_TOKENS],
    chars: [NChar; CHARS],
    chars2: [NChar; CHARS],
    bytes: [u8; 4 * CHARS],
    lattice: [Node; 4 * CHARS + 1],
    logits: [f32; VOCAB_SIZE],
    scratch: Aligned<[u8; SCRATCH_BYTES]>,
}

/// A static the single-core firmware hands out one `&mut` to, once.
pub struct Static<T>(UnsafeCell<T>);

// SAFETY: the firmware runs on one core without interrupts; `get`'s contract keeps the
// one reference unique.
unsafe impl<T> Sync for Static<T> {}

impl<T> Static<T> {
    pub const fn new(v: T) -> Self {
        Static(UnsafeCell::new(v))
    }

    /// # Safety
    /// At most one reference from `get` may be live at a time.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get(&self) -> &mut T {
        // SAFETY: the caller guarantees uniqueness.
        unsafe { &mut *self.0.get() }
    }
}

static STATICS: Static<Statics> = Static::new(Statics {
    ids: [0; MAX_TOKENS],
    type_ids: [0; MAX_TOKENS],
    attention_mask: [0; MAX_TOKENS],
    offsets: [[0; 2]; MAX_TOKENS],
    chars: [NChar::EMPTY; CHARS],
    chars2: [NChar::EMPTY; CHARS],
    bytes: [0; 4 * CHARS],
    lattice: [Node::EMPTY; 4 * CHARS + 1],
    logits: [0.0; VOCAB_SIZE],
    scratch: Aligned([0; SCRATCH_BYTES]),
});

unsafe extern "C" {
    static __image_start: u8;
    static __image_end: u8;
    static __bss_start: u8;
    static __bss_end: u8;
    static __stack_bottom: u8;
    static __stack_top: u8;
}

/// Addresses of linker-script symbols.
fn sym(s: &u8) -> usize {
    s as *const u8 as usize
}

/// The generic timer (virtual count) and, where the CPU has a PMU, its cycle counter.
struct Timer {
    pmu: bool,
}

impl Timer {
    fn new() -> Self {
        let dfr0: u64;
        // SAFETY: reading an ID register has no side effects.
        unsafe { asm!("mrs {}, id_aa64dfr0_el1", out(reg) dfr0, options(nomem, nostack)) };
        let pmu = matches!((dfr0 >> 8) & 0xf, 1..=0xe);
        if pmu {
            // SAFETY: the PMU exists (PMUVer); enable it and its cycle counter (PMCR_EL0.E,
            // C resets it), counting at EL1. Nothing else uses the PMU.
            unsafe {
                asm!(
                    "msr pmccfiltr_el0, xzr",
                    "mrs {t}, pmcr_el0",
                    "orr {t}, {t}, #1",
                    "orr {t}, {t}, #4",
                    "msr pmcr_el0, {t}",
                    "mov {t}, #(1 << 31)",
                    "msr pmcntenset_el0, {t}",
                    "isb",
                    t = out(reg) _,
                    options(nostack),
                )
            };
        }
        Timer { pmu }
    }
}

impl Clock for Timer {
    fn now(&mut self) -> u64 {
        let t: u64;
        // SAFETY: reading the virtual count; the isb keeps it in program order.
        unsafe { asm!("isb", "mrs {}, cntvct_el0", out(reg) t, options(nomem, nostack)) };
        t
    }
    fn hz(&self) -> u64 {
        let f: u64;
        // SAFETY: reading the counter frequency has no side effects.
        unsafe { asm!("mrs {}, cntfrq_el0", out(reg) f, options(nomem, nostack)) };
        f
    }
    fn cycles(&mut self) -> Option<u64> {
        if !self.pmu {
            return None;
        }
        let c: u64;
        // SAFETY: the cycle counter was enabled in `new`.
        unsafe { asm!("isb", "mrs {}, pmccntr_el0", out(reg) c, options(nomem, nostack)) };
        Some(c)
    }
}

static mut BOOT_EL: u64 = 1;

fn uart() -> Pl011 {
    // SAFETY: the board's PL011, identity-mapped as device memory; the demo is single-core
    // and every writer writes whole lines, so sharing it is harmless.
    unsafe { Pl011::new(board::UART) }
}

/// Leaves: semihosting SYS_EXIT with `code` (feature `semihosting`), else [`halt`].
fn exit(code: u32) -> ! {
    #[cfg(feature = "semihosting")]
    {
        let block: [u64; 2] = [0x20026, code as u64]; // ADP_Stopped_ApplicationExit
        // SAFETY: SYS_EXIT (0x18) with a pointer to its parameter block; the debugger
        // (QEMU `-semihosting`) ends the program here.
        unsafe { asm!("hlt #0xf000", in("w0") 0x18u32, in("x1") block.as_ptr(), options(nostack)) };
    }
    let _ = code;
    halt()
}

/// PSCI SYSTEM_OFF where QEMU `virt` provides it (`hvc` from a boot at EL1, `smc` when it
/// emulates EL2), else `wfe` forever.
fn halt() -> ! {
    #[cfg(not(feature = "raspi3b"))]
    {
        // SAFETY: written once in `kmain` before any exit.
        let el = unsafe { BOOT_EL };
        const SYSTEM_OFF: u64 = 0x8400_0008;
        // SAFETY: PSCI SYSTEM_OFF does not return when PSCI is there; if nothing answers,
        // the call returns an error code in x0 and we wait below.
        unsafe {
            match el {
                1 => asm!("hvc #0", inout("x0") SYSTEM_OFF => _, options(nostack)),
                2 => asm!("smc #0", inout("x0") SYSTEM_OFF => _, options(nostack)),
                _ => {}
            }
        }
    }
    loop {
        // SAFETY: waiting for an event has no other effect.
        unsafe { asm!("wfe", options(nomem, nostack)) };
    }
}

const STACK_PAINT: u64 = 0x5a5a_5a5a_5a5a_5a5a;

/// Fills the unused part of the stack with a pattern (for the high-water mark).
fn paint_stack() {
    let sp: usize;
    // SAFETY: reading sp.
    unsafe { asm!("mov {}, sp", out(reg) sp, options(nomem, nostack)) };
    // SAFETY: the linker script reserves [__stack_bottom, __stack_top) for the stack; the
    // part below the current sp (less a margin for this function) is unused.
    unsafe {
        let mut p = sym(&__stack_bottom) as *mut u64;
        while (p as usize) < sp - 1024 {
            p.write_volatile(STACK_PAINT);
            p = p.add(1);
        }
    }
}

/// Bytes of stack used so far: from the top down to the lowest word not holding the paint.
fn stack_used() -> usize {
    // SAFETY: reads inside the stack region.
    unsafe {
        let (bottom, top) = (sym(&__stack_bottom), sym(&__stack_top));
        let mut p = bottom as *const u64;
        while (p as usize) < top && p.read_volatile() == STACK_PAINT {
            p = p.add(1);
        }
        top - p as usize
    }
}

/// The blob to run: one loaded at the board's override address, else the bundled one.
fn blob() -> (&'static [u8], &'static str) {
    if let Some((at, max)) = board::OVERRIDE {
        // SAFETY: the override window is RAM mapped normal and nothing of this program
        // lives there (the linker script asserts the image, .bss and stack end below it);
        // QEMU zeroes RAM, so non-zero bytes mean a loader put them there.
        let head = unsafe { core::slice::from_raw_parts(at as *const u8, 64) };
        if head.iter().any(|&b| b != 0) {
            let declared = u64::from_le_bytes(head[32..40].try_into().unwrap());
            let len = if declared >= 64 && declared <= max as u64 { declared as usize } else { max };
            // SAFETY: as above; `len` stays inside the window.
            return (unsafe { core::slice::from_raw_parts(at as *const u8, len) }, "loaded at run time");
        }
    }
    (&BUNDLED.0, "bundled")
}

/// Called by `boot.rs` at EL1 with FP/SIMD on, a stack, and `.bss` zeroed.
#[unsafe(no_mangle)]
extern "C" fn kmain(boot_el: u64) -> ! {
    // SAFETY: single core; nothing reads it before this write.
    unsafe { BOOT_EL = boot_el };
    mmu::enable(board::is_ram);
    board::init();
    paint_stack();
    let mut out = uart();
    out.init();
    let mut clock = Timer::new();
    let midr: u64;
    // SAFETY: reading an ID register.
    unsafe { asm!("mrs {}, midr_el1", out(reg) midr, options(nomem, nostack)) };
    let _ = writeln!(
        out,
        "# albert-engine firmware demo on {}: booted at EL{boot_el}, running at EL1, MMU and caches on",
        board::NAME
    );
    let _ = writeln!(
        out,
        "# cpu: MIDR {midr:#010x}, generic timer {} Hz, PMU cycle counter {}",
        clock.hz(),
        if clock.pmu { "on" } else { "absent" }
    );
    // SAFETY: linker-script symbols; only their addresses are used.
    let (image, bss, stack) = unsafe {
        (
            sym(&__image_end) - sym(&__image_start),
            sym(&__bss_end) - sym(&__bss_start),
            sym(&__stack_top) - sym(&__stack_bottom),
        )
    };
    let _ = writeln!(
        out,
        "# memory: image {image} bytes (blob {BLOB_BYTES}), .bss {bss} bytes (scratch {SCRATCH_BYTES}), stack {stack} bytes; \
         no heap; max {MAX_TOKENS} tokens, {MAX_TEXT} text bytes"
    );
    let (bytes, source) = blob();
    let _ = writeln!(out, "# blob: {source}, {} bytes at {:#x}", bytes.len(), bytes.as_ptr() as usize);
    let t0 = clock.now();
    let demo = match Demo::new(bytes) {
        Ok(d) => d,
        Err(e) => {
            let _ = writeln!(out, "! blob rejected: {e}");
            let _ = writeln!(out, "# halted");
            exit(1);
        }
    };
    let t1 = clock.now();
    let _ = demo.describe(&mut out);
    let needed = demo.model.scratch_bytes(MAX_TOKENS, 1);
    let _ = writeln!(
        out,
        "# validated in {} ticks; scratch: static {SCRATCH_BYTES} bytes, model needs {needed} for {MAX_TOKENS} tokens",
        t1 - t0
    );
    if needed > SCRATCH_BYTES || demo.model.config().vocab_size as usize != VOCAB_SIZE {
        let _ = writeln!(
            out,
            "! this blob needs {needed} bytes of scratch and {} logits; the image has {SCRATCH_BYTES} and {VOCAB_SIZE} \
             (rebuild with FIRMWARE_DEMO_BLOB set to it)",
            demo.model.config().vocab_size
        );
        let _ = writeln!(out, "# halted");
        exit(1);
    }
    // SAFETY: single core, and this is the only reference ever taken to the statics.
    let s = unsafe { STATICS.get() };
    let mut failed = false;
    for text in SENTENCES.lines().filter(|l| !l.trim().is_empty()) {
        let mut bufs = Buffers {
            ids: &mut s.ids,
            type_ids: &mut s.type_ids,
            attention_mask: &mut s.attention_mask,
            offsets: &mut s.offsets,
            workspace: Workspace {
                chars: &mut s.chars,
                chars2: &mut s.chars2,
                bytes: &mut s.bytes,
                lattice: &mut s.lattice,
            },
            scratch: &mut s.scratch.0,
            logits: &mut s.logits,
        };
        match demo.fill_mask(text, &mut bufs, &mut clock, &mut out) {
            Ok(t) => {
                let _ = writeln!(out, "{t}");
            }
            Err(e) => {
                let _ = writeln!(out, "> {text}\n! error: {e}");
                failed = true;
            }
        }
    }
    let _ = writeln!(out, "# stack used: {} of {STACK_BYTES} bytes", stack_used());
    let _ = writeln!(out, "# done");
    exit(failed as u32)
}

static mut IN_EXCEPTION: bool = false;

/// Any exception: report it and leave. One that happens while leaving (`hlt` with QEMU's
/// semihosting off) halts without another try.
#[unsafe(no_mangle)]
extern "C" fn exception(kind: u64, esr: u64, elr: u64, far: u64) -> ! {
    // SAFETY: single core, interrupts masked: nothing else touches the flag.
    let again = unsafe { IN_EXCEPTION };
    // SAFETY: as above.
    unsafe { IN_EXCEPTION = true };
    if again {
        let _ = writeln!(uart(), "# halted");
        halt()
    }
    let _ = writeln!(uart(), "! exception {kind}: ESR {esr:#x}, ELR {elr:#x}, FAR {far:#x}");
    exit(2)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let _ = writeln!(uart(), "! panic: {info}");
    exit(3)
}
