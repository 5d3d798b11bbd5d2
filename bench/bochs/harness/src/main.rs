//! Bare x86-64 test program for the Bochs CPU emulator (`../run.py`): checks every int8
//! GEMM kernel the build's target features enable against `scalar`, bit for bit, and
//! leaves a [`Report`] in memory for the runner.
//!
//! No OS: `_start` is entered with a stack and nothing else; the program never makes a
//! system call. All buffers are statics sized for the largest case. At the end it executes
//! `hlt` with the report's address in RAX: in user mode (CPL 3) that is a #GP, which the
//! runner takes as "finished" (and a panic does the same, with `state` = panicked).
//!
//! Forms checked per kernel and shape: `gemm_i8_i32`, `gemm_i8_i32_sums`,
//! `gemm_i16_i8_i64`, `gemm_i16_i8_i64_sums` (sums[j] = Σ_k b[j][k] as f32). Each output
//! buffer is filled with a marker first, so an element a kernel leaves unwritten fails,
//! and `GUARD` elements past `m·n` must keep the marker (no write past the end).
//!
//! A second mode ([`forward`]): entered with a header's address in RDI (0 for the GEMM
//! sweep), it runs one forward pass of a model blob the runner mapped into memory.

#![no_std]
#![no_main]

use albert_engine::kernels::{self, Kernel, scalar};
use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;
use core::fmt::Write;

mod forward;

// ---------------------------------------------------------------------------------------
// The sweep.

const MS: &[usize] = &[1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 48];
const NS: &[usize] = &[1, 5, 7, 8, 12, 13, 24, 37];
const KS: &[usize] = &[4, 8, 12, 16, 60, 64, 68, 1024, 1028, 2052];

/// Shapes of the all-extreme patterns (every product at ±128·127 or 128·128, ±32768·128
/// for int16): saturation and overflow of the accumulators.
const MS_EXT: &[usize] = &[1, 4, 17, 48];
const NS_EXT: &[usize] = &[1, 13, 37];
const KS_EXT: &[usize] = &[64, 1028, 2052];

/// Shapes wider than one column block (the weight rows a kernel keeps in L2 at a time:
/// 63 for `avx2` at k = 2052, 256 for the broadcast VNNI kernels, whose K runs in chunks
/// of 1024), so the walk across blocks and K chunks is checked too.
const MS_WIDE: &[usize] = &[4, 33];
const NS_WIDE: &[usize] = &[300];
const KS_WIDE: &[usize] = &[2052];

const MAX_M: usize = 48;
const MAX_N: usize = 300;
const MAX_K: usize = 2052;
/// Output elements after `m·n` that must stay untouched.
const GUARD: usize = 64;
const MAX_KERNELS: usize = 16;

/// Data patterns: 0 = pseudo-random with an extreme in about one element in seven;
/// 1 = every activation and weight at the minimum (-128, int16 -32768): the largest
/// positive sums; 2 = activations at the maximum (127, 32767), weights at -128: the most
/// negative ones.
const PATTERN_RANDOM: u32 = 0;
const PATTERN_MIN_MIN: u32 = 1;
const PATTERN_MAX_MIN: u32 = 2;

const FORM_I8: u32 = 0;
const FORM_I8_SUMS: u32 = 1;
const FORM_I16: u32 = 2;
const FORM_I16_SUMS: u32 = 3;

const MARK32: i32 = 0x5A5A_5A5A;
const MARK64: i64 = 0x5A5A_5A5A_5A5A_5A5A;

// ---------------------------------------------------------------------------------------
// The report the runner reads (layout mirrored in ../run.py: keep the two in step).

const STATE_RUNNING: u32 = 0;
const STATE_DONE: u32 = 1;
const STATE_PANICKED: u32 = 2;

/// One case: which kernel, form, data pattern and shape; for a mismatch also the first
/// differing element (`row` = m for a guard element, `col` its index past m·n).
#[repr(C)]
#[derive(Clone, Copy)]
struct Case {
    kernel: u32,
    form: u32,
    pattern: u32,
    m: u32,
    n: u32,
    k: u32,
    row: u32,
    col: u32,
    expected: i64,
    got: i64,
}

const NO_CASE: Case = Case { kernel: 0, form: 0, pattern: 0, m: 0, n: 0, k: 0, row: 0, col: 0, expected: 0, got: 0 };

#[repr(C)]
struct Report {
    magic: [u8; 8],
    /// `size_of::<Report>()`, for the runner to check the layout.
    size: u32,
    state: u32,
    cases: u64,
    mismatches: u64,
    first_mismatch: Case,
    /// Entries of `kernel_names` (every available kernel, `scalar` included: index 0).
    kernel_count: u32,
    /// Bit mask of the build's target features (`FEATURES`).
    features: u32,
    kernel_names: [[u8; 16]; MAX_KERNELS],
    kernel_cases: [u64; MAX_KERNELS],
    kernel_mismatches: [u64; MAX_KERNELS],
    /// The case being run (for an exception in the middle of one).
    current: Case,
    panic_len: u32,
    _pad: u32,
    panic_msg: [u8; 256],
}

pub(crate) struct Global<T>(UnsafeCell<T>);
// SAFETY: one thread, no interrupts.
unsafe impl<T> Sync for Global<T> {}
impl<T> Global<T> {
    pub(crate) const fn new(v: T) -> Self {
        Global(UnsafeCell::new(v))
    }
    pub(crate) fn get(&self) -> *mut T {
        self.0.get()
    }
}

impl<E, const N: usize> Global<[E; N]> {
    /// The first `len` elements.
    ///
    /// # Safety
    /// No other reference to this buffer is live while the result is.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice<'a>(&self, len: usize) -> &'a mut [E] {
        assert!(len <= N, "buffer too small");
        // SAFETY: in bounds (checked); exclusive per the contract.
        unsafe { core::slice::from_raw_parts_mut(self.get().cast::<E>(), len) }
    }
}

#[unsafe(no_mangle)]
static ALBERT_BOCHS_REPORT: Global<Report> = Global::new(Report {
    magic: *b"ALBBOCH1",
    size: core::mem::size_of::<Report>() as u32,
    state: STATE_RUNNING,
    cases: 0,
    mismatches: 0,
    first_mismatch: NO_CASE,
    kernel_count: 0,
    features: 0,
    kernel_names: [[0; 16]; MAX_KERNELS],
    kernel_cases: [0; MAX_KERNELS],
    kernel_mismatches: [0; MAX_KERNELS],
    current: NO_CASE,
    panic_len: 0,
    _pad: 0,
    panic_msg: [0; 256],
});

/// The build's target features, bit by bit (names in ../run.py).
const FEATURES: u32 = (cfg!(target_feature = "avx2") as u32)
    | (cfg!(target_feature = "fma") as u32) << 1
    | (cfg!(target_feature = "avxvnni") as u32) << 2
    | (cfg!(target_feature = "avx512f") as u32) << 3
    | (cfg!(target_feature = "avx512bw") as u32) << 4
    | (cfg!(target_feature = "avx512dq") as u32) << 5
    | (cfg!(target_feature = "avx512vl") as u32) << 6
    | (cfg!(target_feature = "avx512vnni") as u32) << 7;

// ---------------------------------------------------------------------------------------
// Buffers.

static A8: Global<[i8; MAX_M * MAX_K]> = Global::new([0; MAX_M * MAX_K]);
static A16: Global<[i16; MAX_M * MAX_K]> = Global::new([0; MAX_M * MAX_K]);
static B: Global<[i8; MAX_N * MAX_K]> = Global::new([0; MAX_N * MAX_K]);
static SUMS: Global<[f32; MAX_N]> = Global::new([0.0; MAX_N]);
static REF32: Global<[i32; MAX_M * MAX_N]> = Global::new([0; MAX_M * MAX_N]);
static REF64: Global<[i64; MAX_M * MAX_N]> = Global::new([0; MAX_M * MAX_N]);
static C32: Global<[i32; MAX_M * MAX_N + GUARD]> = Global::new([0; MAX_M * MAX_N + GUARD]);
static C64: Global<[i64; MAX_M * MAX_N + GUARD]> = Global::new([0; MAX_M * MAX_N + GUARD]);

// ---------------------------------------------------------------------------------------
// Entry, exit, panic.

global_asm!(
    ".globl _start",
    ".type _start,@function",
    "_start:",
    "xor ebp, ebp",
    "and rsp, -16",
    "call {main}", // RDI, as the runner set it: the first argument

    "ud2",
    main = sym harness_main,
);

/// `header`: null for the GEMM sweep, else a forward-pass [`forward::Header`] the runner
/// mapped.
extern "C" fn harness_main(header: *mut forward::Header) -> ! {
    if !header.is_null() {
        // SAFETY: single-threaded; the runner maps the header and the areas it names.
        unsafe {
            *forward::HEADER.get() = header;
            let state = forward::run(header);
            finish_forward(header, state)
        }
    }
    run();
    finish(STATE_DONE)
}

/// The forward mode's end: the state in the header, `hlt` with its address in RAX.
fn finish_forward(header: *mut forward::Header, state: u32) -> ! {
    // SAFETY: single-threaded; the header is mapped and writable.
    unsafe { (*header).state = state };
    loop {
        // SAFETY: as in `finish`.
        unsafe { asm!("hlt", in("rax") header, options(nostack)) };
    }
}

/// Records the final state and stops: `hlt` at CPL 3 raises #GP, the runner's end signal.
fn finish(state: u32) -> ! {
    let report = ALBERT_BOCHS_REPORT.get();
    // SAFETY: single-threaded; the report is a static.
    unsafe { (*report).state = state };
    loop {
        // SAFETY: `hlt` only traps (no `nomem`: the state store above happens first).
        unsafe { asm!("hlt", in("rax") report, options(nostack)) };
    }
}

pub(crate) struct Cursor<'a> {
    pub(crate) buf: &'a mut [u8],
    pub(crate) len: usize,
}

impl Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.buf.len() - self.len;
        let take = s.len().min(room);
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    // SAFETY: single-threaded.
    let header = unsafe { *forward::HEADER.get() };
    if !header.is_null() {
        // SAFETY: single-threaded; the forward pass holds no reference into the message.
        unsafe {
            let mut w = Cursor { buf: &mut *core::ptr::addr_of_mut!((*header).msg), len: 0 };
            let _ = write!(w, "{info}");
            (*header).msg_len = w.len as u32;
        }
        finish_forward(header, forward::STATE_PANICKED)
    }
    let report = ALBERT_BOCHS_REPORT.get();
    // SAFETY: single-threaded; nothing else holds a reference into the report now.
    unsafe {
        let mut w = Cursor { buf: &mut *core::ptr::addr_of_mut!((*report).panic_msg), len: 0 };
        let _ = write!(w, "{info}");
        (*report).panic_len = w.len as u32;
    }
    finish(STATE_PANICKED)
}

// ---------------------------------------------------------------------------------------
// What the link needs without a libc (inline assembly, so LLVM cannot turn the loops
// back into calls to themselves).

#[unsafe(no_mangle)]
unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract (valid, non-overlapping ranges of n bytes).
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _, options(nostack, preserves_flags));
    }
    dst
}

#[unsafe(no_mangle)]
unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract; copies backwards when dst overlaps the end of src.
    unsafe {
        if (dst as usize).wrapping_sub(src as usize) >= n {
            asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _, options(nostack, preserves_flags));
        } else {
            asm!(
                "std",
                "rep movsb",
                "cld",
                inout("rcx") n => _,
                inout("rdi") dst.add(n).wrapping_sub(1) => _,
                inout("rsi") src.add(n).wrapping_sub(1) => _,
                options(nostack),
            );
        }
    }
    dst
}

#[unsafe(no_mangle)]
unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract (n writable bytes).
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dst => _, in("al") c as u8, options(nostack, preserves_flags));
    }
    dst
}

#[unsafe(no_mangle)]
unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    if n == 0 {
        return 0;
    }
    let (pa, pb): (*const u8, *const u8);
    let equal: u8;
    // SAFETY: the caller's contract (n readable bytes each). `repe cmpsb` stops after the
    // first differing byte, with rsi/rdi one past it.
    unsafe {
        asm!(
            "repe cmpsb",
            "sete {eq}",
            eq = out(reg_byte) equal,
            inout("rcx") n => _,
            inout("rsi") a => pa,
            inout("rdi") b => pb,
            options(nostack, readonly),
        );
        if equal != 0 { 0 } else { *pa.sub(1) as i32 - *pb.sub(1) as i32 }
    }
}

#[unsafe(no_mangle)]
unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: as `memcmp`.
    unsafe { memcmp(a, b, n) }
}

// ---------------------------------------------------------------------------------------
// Data.

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// -128 or 127 in about one draw in seven, else uniform.
    fn i8(&mut self) -> i8 {
        let r = self.next();
        if r.is_multiple_of(7) { if (r >> 32) & 1 == 0 { -128 } else { 127 } } else { (r >> 40) as i8 }
    }

    /// An extreme in about one draw in seven (-32768, 32767, -128, 127), else uniform.
    fn i16(&mut self) -> i16 {
        let r = self.next();
        if r.is_multiple_of(7) { [-32768, 32767, -128, 127][((r >> 32) & 3) as usize] } else { (r >> 40) as i16 }
    }
}

/// Fills the operands of one shape and the references of both element types.
fn prepare(pattern: u32, m: usize, n: usize, k: usize) {
    // SAFETY: single-threaded; these are the only live references to the buffers.
    let (a8, a16, b, sums, ref32, ref64) = unsafe {
        (A8.slice(m * k), A16.slice(m * k), B.slice(n * k), SUMS.slice(n), REF32.slice(m * n), REF64.slice(m * n))
    };
    let mut rng = Rng((pattern as u64) << 48 ^ (m as u64) << 32 ^ (n as u64) << 16 ^ k as u64);
    match pattern {
        PATTERN_MIN_MIN => {
            a8.fill(-128);
            a16.fill(-32768);
            b.fill(-128);
        }
        PATTERN_MAX_MIN => {
            a8.fill(127);
            a16.fill(32767);
            b.fill(-128);
        }
        _ => {
            a8.iter_mut().for_each(|x| *x = rng.i8());
            a16.iter_mut().for_each(|x| *x = rng.i16());
            b.iter_mut().for_each(|x| *x = rng.i8());
        }
    }
    for (j, s) in sums.iter_mut().enumerate() {
        *s = b[j * k..(j + 1) * k].iter().map(|&x| x as i32).sum::<i32>() as f32;
    }
    scalar::gemm_i8_i32(m, n, k, a8, b, ref32);
    scalar::gemm_i16_i8_i64(m, n, k, a16, b, ref64);
}

/// The first element where `got` differs from `want` (`want.len()` = m·n) or a guard
/// element lost its marker: (row, col, expected, got).
fn first_difference<T: Copy + PartialEq + Into<i64>>(
    n: usize,
    want: &[T],
    got: &[T],
    mark: T,
) -> Option<(u32, u32, i64, i64)> {
    let mn = want.len();
    if let Some(p) = (0..mn).find(|&p| got[p] != want[p]) {
        return Some(((p / n) as u32, (p % n) as u32, want[p].into(), got[p].into()));
    }
    (mn..mn + GUARD).find(|&p| got[p] != mark).map(|p| ((mn / n) as u32, (p - mn) as u32, mark.into(), got[p].into()))
}

/// Runs one kernel in one form on the prepared operands; records the outcome.
fn check(
    report: &mut Report,
    index: usize,
    kernel: &Kernel,
    form: u32,
    pattern: u32,
    (m, n, k): (usize, usize, usize),
) {
    let mut case = Case { kernel: index as u32, form, pattern, m: m as u32, n: n as u32, k: k as u32, ..NO_CASE };
    report.current = case;
    // SAFETY: single-threaded; shared views of the operands, one mutable view of the output.
    let diff = unsafe {
        let (a8, a16, b, sums) = (A8.slice(m * k), A16.slice(m * k), B.slice(n * k), SUMS.slice(n));
        if form == FORM_I8 || form == FORM_I8_SUMS {
            let c = C32.slice(m * n + GUARD);
            c.fill(MARK32);
            let out = &mut c[..m * n];
            if form == FORM_I8 {
                kernel.gemm_i8_i32(m, n, k, a8, b, out);
            } else {
                kernel.gemm_i8_i32_sums(m, n, k, a8, b, sums, out);
            }
            first_difference(n, REF32.slice(m * n), c, MARK32)
        } else {
            let c = C64.slice(m * n + GUARD);
            c.fill(MARK64);
            let out = &mut c[..m * n];
            if form == FORM_I16 {
                kernel.gemm_i16_i8_i64(m, n, k, a16, b, out);
            } else {
                kernel.gemm_i16_i8_i64_sums(m, n, k, a16, b, sums, out);
            }
            first_difference(n, REF64.slice(m * n), c, MARK64)
        }
    };
    report.cases += 1;
    report.kernel_cases[index] += 1;
    if let Some((row, col, expected, got)) = diff {
        if report.mismatches == 0 {
            case.row = row;
            case.col = col;
            case.expected = expected;
            case.got = got;
            report.first_mismatch = case;
        }
        report.mismatches += 1;
        report.kernel_mismatches[index] += 1;
    }
}

fn run() {
    // SAFETY: single-threaded; the only reference to the report until `finish`.
    let report = unsafe { &mut *ALBERT_BOCHS_REPORT.get() };
    report.features = FEATURES;
    let mut list: [Option<Kernel>; MAX_KERNELS] = [None; MAX_KERNELS];
    let mut count = 0;
    for kernel in kernels::available().take(MAX_KERNELS) {
        let name = kernel.name().as_bytes();
        let len = name.len().min(15);
        report.kernel_names[count][..len].copy_from_slice(&name[..len]);
        list[count] = Some(kernel);
        count += 1;
    }
    report.kernel_count = count as u32;

    let mut shape = |pattern: u32, m: usize, n: usize, k: usize| {
        prepare(pattern, m, n, k);
        for (index, kernel) in list[..count].iter().enumerate() {
            let kernel = kernel.as_ref().expect("listed");
            if kernel.name() == "scalar" {
                continue;
            }
            for form in [FORM_I8, FORM_I8_SUMS, FORM_I16, FORM_I16_SUMS] {
                check(report, index, kernel, form, pattern, (m, n, k));
            }
        }
    };
    for &k in KS {
        for &n in NS {
            for &m in MS {
                shape(PATTERN_RANDOM, m, n, k);
            }
        }
    }
    for &k in KS_WIDE {
        for &n in NS_WIDE {
            for &m in MS_WIDE {
                shape(PATTERN_RANDOM, m, n, k);
            }
        }
    }
    for pattern in [PATTERN_MIN_MIN, PATTERN_MAX_MIN] {
        for &k in KS_EXT {
            for &n in NS_EXT {
                for &m in MS_EXT {
                    shape(pattern, m, n, k);
                }
            }
        }
    }
}
