//! An identity map with the MMU and caches on: normal write-back memory for RAM (SIMD
//! loads, unaligned accesses and the caches need it), device memory for the peripherals.
//!
//! 4 KiB granule, 32-bit virtual addresses (T0SZ = 32): a level-1 table of four 1 GiB
//! entries; the first GiB goes through a level-2 table of 2 MiB blocks, so a board can
//! put its peripheral window anywhere in it (raspi3b: 0x3F00_0000).

use super::Static;
use core::arch::asm;

#[repr(C, align(4096))]
struct Table([u64; 512]);

static L1: Static<Table> = Static::new(Table([0; 512]));
static L2: Static<Table> = Static::new(Table([0; 512]));

const VALID_BLOCK: u64 = 0b01;
const VALID_TABLE: u64 = 0b11;
/// MAIR index 0: Device-nGnRnE (0x00); index 1: Normal, inner/outer write-back,
/// read/write-allocate (0xff).
const MAIR: u64 = 0xff << 8;
const ATTR_DEVICE: u64 = 0 << 2;
const ATTR_NORMAL: u64 = 1 << 2;
const INNER_SHAREABLE: u64 = 3 << 8;
const ACCESS_FLAG: u64 = 1 << 10;
const NO_EXECUTE: u64 = (1 << 53) | (1 << 54);

const GIB: u64 = 1 << 30;
const BLOCK_2M: u64 = 1 << 21;

fn block(addr: u64, normal: bool) -> u64 {
    let attrs = if normal { ATTR_NORMAL | INNER_SHAREABLE } else { ATTR_DEVICE | NO_EXECUTE };
    addr | attrs | ACCESS_FLAG | VALID_BLOCK
}

/// Builds the tables (`is_ram` says which addresses are RAM) and turns on the MMU and the
/// data and instruction caches. Call once, at EL1, before anything needs normal memory.
pub fn enable(is_ram: fn(u64) -> bool) {
    // SAFETY: single core, called once; nothing else ever references the tables.
    let (l1, l2) = unsafe { (&mut L1.get().0, &mut L2.get().0) };
    for (i, e) in l2.iter_mut().enumerate() {
        let addr = i as u64 * BLOCK_2M;
        *e = block(addr, is_ram(addr));
    }
    l1[0] = (l2.as_ptr() as u64) | VALID_TABLE;
    for (i, e) in l1.iter_mut().enumerate().take(4).skip(1) {
        let addr = i as u64 * GIB;
        *e = block(addr, is_ram(addr));
    }
    // TCR_EL1: T0SZ 32 | IRGN0, ORGN0 write-back write-allocate | SH0 inner | TG0 4 KiB |
    // EPD1 (no TTBR1 walks) | IPS 36 bits.
    let tcr: u64 = 32 | (1 << 8) | (1 << 10) | (3 << 12) | (1 << 23) | (1 << 32);
    let ttbr0 = l1.as_ptr() as u64;
    // SAFETY: the tables identity-map all code, data, stack and MMIO the program uses with
    // the attributes above; the barriers make the table writes and register updates visible
    // before the MMU uses them, and the TLB and instruction cache hold nothing stale.
    unsafe {
        asm!(
            "msr mair_el1, {mair}",
            "msr tcr_el1, {tcr}",
            "msr ttbr0_el1, {ttbr0}",
            "dsb ish",
            "isb",
            "tlbi vmalle1",
            "ic iallu",
            "dsb ish",
            "isb",
            "mrs {t}, sctlr_el1",
            "orr {t}, {t}, #(1 << 0)",  // M: MMU
            "orr {t}, {t}, #(1 << 2)",  // C: data cache
            "orr {t}, {t}, #(1 << 12)", // I: instruction cache
            "bic {t}, {t}, #(1 << 1)",  // A: no alignment faults on normal memory
            "bic {t}, {t}, #(1 << 19)", // WXN
            "msr sctlr_el1, {t}",
            "isb",
            mair = in(reg) MAIR,
            tcr = in(reg) tcr,
            ttbr0 = in(reg) ttbr0,
            t = out(reg) _,
            options(nostack),
        );
    }
}
