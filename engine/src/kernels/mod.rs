//! Matrix kernels and the table that picks one per process.
//!
//! `scalar` is the reference every faster kernel is checked against (bit-identical int32
//! results, `engine/tests/kernels.rs`). The int8 GEMM `c[m×n] = a[m×k] · b[n×k]ᵀ` has one
//! implementation per instruction set, all reading the weights in place, row-major along K
//! (the blob's weight layout; only `vnni` packs, the activations, into a stack panel):
//!
//! | name     | where                      | inner instruction                          | tile (rows × cols) |
//! |----------|----------------------------|--------------------------------------------|--------------------|
//! | `scalar` | everywhere                 | plain Rust                                 | 1 × 1              |
//! | `wide`   | everywhere (`wide` crate)  | i16 shifts (AVX2 builds: `vpmovsxbw`) + `pmaddwd` / `smull+addp` | 4 × 2 |
//! | `avx2`   | x86_64 with AVX2           | `vpmovsxbw` + `vpmaddwd` (ymm); activations within `[-64, 63]` (`quantize --act7`): `vpmaddubsw` | 4 × 3; 4 × 2 |
//! | `avxvnni` | x86_64 with AVX-VNNI (no AVX-512 needed) | `vpdpbusd` (ymm, VEX), weights broadcast | 16 × 6 (m ≥ 4, K % 4 = 0); else `avx2` |
//! | `vnni`   | x86_64 with AVX-512 VNNI   | `vpdpbusd` (zmm), weights broadcast        | 32 × 12 (m ≥ 16), 9-15 × 12 (pair form), 2-8 × 12 (quad form) |
//! | `amx`    | x86_64 with AMX-INT8 (Linux) | `tdpbssd` (16 × 16 × 64 tiles); other shapes `vnni` | 32 × 32 (m ≥ 16, K a multiple of 64) |
//! | `neon`   | aarch64                    | `smull` + `sadalp`                         | 4 × 4              |
//! | `sdot`   | aarch64 with dotprod       | `sdot`                                     | 4 × 4              |
//! | `i8mm`   | aarch64 with i8mm          | `smmla`                                    | 4 × 4              |
//!
//! Every kernel is exact for all of `[-128, 127]` in both operands (see `README.md` in this
//! folder for how, and for what the generated assembly looks like). Each kernel also
//! carries an int16×int8 GEMM ([`Kernel::gemm_i16_i8_i64`], exact in i64) for linears with
//! int16 activations, and [`attention`] holds the f32 loops of attention.
//!
//! Selection happens once per process. With `std`: run-time detection
//! (`is_x86_feature_detected!`, `is_aarch64_feature_detected!`) and the environment
//! variable `ALBERT_KERNEL=scalar|wide|avx2|avxvnni|vnni|amx|neon|sdot|i8mm`, which forces one (an
//! unknown or unavailable name is an error from [`selected`], and a panic naming the
//! variable when inference runs). Without `std`: the best kernel the build's
//! `target_feature`s allow.

pub mod attention;
pub mod scalar;
mod wide;

// The AVX-512 intrinsics of the `vnni` kernel are stable from Rust 1.89, the workspace's
// rust-version.
#[cfg(target_arch = "x86_64")]
mod x86;

// The `avx2` kernel's `vpmaddubsw` form for 7-bit activations.
#[cfg(target_arch = "x86_64")]
mod avx2_a7;

// VEX `vpdpbusd` (AVX-VNNI): intrinsics and detection stable from Rust 1.89.
#[cfg(target_arch = "x86_64")]
mod avxvnni;

// AMX by inline assembly: its intrinsics and `is_x86_feature_detected!("amx-int8")` are
// not stable.
#[cfg(target_arch = "x86_64")]
mod amx;

#[cfg(target_arch = "aarch64")]
mod aarch64;

use core::fmt;

/// Every kernel name, in order of preference (the last available one is the default).
/// `avxvnni` ranks above `avx2` (twice the products per instruction; checked in an
/// emulator, `avxvnni.rs`) and below `vnni`, which CPUs with both run. `amx` ranks first:
/// on a Sapphire Rapids-class Xeon it passed the conformance suite and gave the same
/// forward-pass bits as every other kernel, at 2.5-4× `vnni`'s GEMM rate from 32 tokens
/// on; below 16 tokens it hands the whole product to `vnni` (`amx.rs`).
pub const NAMES: [&str; 9] = ["scalar", "wide", "neon", "sdot", "i8mm", "avx2", "avxvnni", "vnni", "amx"];

type GemmI8 = unsafe fn(usize, usize, usize, *const i8, *const i8, *mut i32);
type GemmI16 = unsafe fn(usize, usize, usize, *const i16, *const i8, *mut i64);
/// The same with the weight row sums (`*const f32`, `n` exact integers).
type GemmI8Sums = unsafe fn(usize, usize, usize, *const i8, *const i8, *const f32, *mut i32);
type GemmI16Sums = unsafe fn(usize, usize, usize, *const i16, *const i8, *const f32, *mut i64);

/// One int8 GEMM implementation. A `Kernel` value only exists for a kernel the running
/// CPU supports (the constructors check), which is what makes [`Kernel::gemm_i8_i32`] safe.
#[derive(Clone, Copy)]
pub struct Kernel {
    name: &'static str,
    gemm: GemmI8,
    gemm16: GemmI16,
    /// Forms that take the weight row sums instead of computing them (`vnni`).
    sums: Option<(GemmI8Sums, GemmI16Sums)>,
}

impl fmt::Debug for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for Kernel {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Kernel {
    /// The kernel's name, as `ALBERT_KERNEL` spells it.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// How many output columns (weight rows) one GEMM call should cover when its caller
    /// finishes the accumulators right after it: few enough that a block of rows'
    /// accumulators stay in L2 until they are read back, and exactly the `vnni` broadcast
    /// kernels' column block (its activations are packed once per block); for `amx` on the
    /// `m` rows it takes (at least 16), whole blocks of 32 columns, about 1 MiB of weights
    /// (it packs the activations once per call and K chunk).
    pub fn column_chunk(&self, m: usize, k: usize) -> usize {
        #[cfg(not(target_arch = "x86_64"))]
        let _ = m;
        #[cfg(target_arch = "x86_64")]
        return if self.name == "amx" && amx::takes_rows(m) { amx::column_chunk(k) } else { x86::first_col_block(k) };
        #[allow(unreachable_code)]
        (256 * 1024 / k.max(1)).clamp(48, 1024).next_multiple_of(48)
    }

    /// `c[i][j] = Σ_k a[i][k] · b[j][k]`, exact in i32; the same contract (and result) as
    /// [`scalar::gemm_i8_i32`].
    pub fn gemm_i8_i32(&self, m: usize, n: usize, k: usize, a: &[i8], b: &[i8], c: &mut [i32]) {
        assert!(a.len() >= m * k && b.len() >= n * k && c.len() >= m * n, "gemm_i8_i32: buffers too small");
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            // An empty sum (the packing kernels store only what a K chunk produced).
            c[..m * n].fill(0);
            return;
        }
        // SAFETY: the buffers hold m·k, n·k and m·n elements (checked above), which is all
        // a kernel reads or writes; a `Kernel` is only built for a kernel this CPU supports.
        unsafe { (self.gemm)(m, n, k, a.as_ptr(), b.as_ptr(), c.as_mut_ptr()) }
    }

    /// [`Kernel::gemm_i8_i32`], given `sums[j] = Σ_k b[j][k]` (exact integers, as the blob's
    /// `weight_sum` tensors store them): kernels that offset the activations (`vnni`) use
    /// them instead of summing the weight rows on every call; the others ignore them. The
    /// result is the same only if the sums are right.
    #[allow(clippy::too_many_arguments)] // the GEMM's operands and the sums
    pub fn gemm_i8_i32_sums(&self, m: usize, n: usize, k: usize, a: &[i8], b: &[i8], sums: &[f32], c: &mut [i32]) {
        let Some((gemm, _)) = self.sums else { return self.gemm_i8_i32(m, n, k, a, b, c) };
        assert!(a.len() >= m * k && b.len() >= n * k && c.len() >= m * n, "gemm_i8_i32: buffers too small");
        assert!(sums.len() >= n, "gemm_i8_i32_sums: fewer sums than weight rows");
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            // An empty sum (the packing kernels store only what a K chunk produced).
            c[..m * n].fill(0);
            return;
        }
        // SAFETY: as in `gemm_i8_i32`; `sums` holds n values (checked above).
        unsafe { gemm(m, n, k, a.as_ptr(), b.as_ptr(), sums.as_ptr(), c.as_mut_ptr()) }
    }

    /// [`Kernel::gemm_i16_i8_i64`] given the weight row sums, as [`Kernel::gemm_i8_i32_sums`].
    #[allow(clippy::too_many_arguments)] // the GEMM's operands and the sums
    pub fn gemm_i16_i8_i64_sums(&self, m: usize, n: usize, k: usize, a: &[i16], b: &[i8], sums: &[f32], c: &mut [i64]) {
        let Some((_, gemm16)) = self.sums else { return self.gemm_i16_i8_i64(m, n, k, a, b, c) };
        assert!(a.len() >= m * k && b.len() >= n * k && c.len() >= m * n, "gemm_i16_i8_i64: buffers too small");
        assert!(sums.len() >= n, "gemm_i16_i8_i64_sums: fewer sums than weight rows");
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            // An empty sum (the packing kernels store only what a K chunk produced).
            c[..m * n].fill(0);
            return;
        }
        // SAFETY: as in `gemm_i16_i8_i64`; `sums` holds n values (checked above).
        unsafe { gemm16(m, n, k, a.as_ptr(), b.as_ptr(), sums.as_ptr(), c.as_mut_ptr()) }
    }

    /// `c[i][j] = Σ_k a[i][k] · b[j][k]` for int16 activations, exact in i64; the same
    /// contract (and result) as [`scalar::gemm_i16_i8_i64`]. `avx2` uses `vpmaddwd`, `vnni`
    /// `vpdpwssd` (zmm), the aarch64 kernels share one NEON implementation (`smlal`), `wide`
    /// uses the scalar one. Given the weight row sums ([`Kernel::gemm_i16_i8_i64_sums`]),
    /// `vnni`, `sdot` and `i8mm` run it as two int8 products instead.
    pub fn gemm_i16_i8_i64(&self, m: usize, n: usize, k: usize, a: &[i16], b: &[i8], c: &mut [i64]) {
        assert!(a.len() >= m * k && b.len() >= n * k && c.len() >= m * n, "gemm_i16_i8_i64: buffers too small");
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            // An empty sum (the packing kernels store only what a K chunk produced).
            c[..m * n].fill(0);
            return;
        }
        // SAFETY: as in `gemm_i8_i32`.
        unsafe { (self.gemm16)(m, n, k, a.as_ptr(), b.as_ptr(), c.as_mut_ptr()) }
    }
}

/// Why a kernel name could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelError {
    /// The requested name (cut to 32 bytes).
    pub requested: heapless::String<32>,
    /// Whether the name is one of [`NAMES`] (then the CPU or the build lacks it).
    pub known: bool,
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.known {
            write!(f, "kernel `{}` is not available on this CPU (available:", self.requested)?;
        } else {
            // No `[&str]::join` in no_std (no allocator).
            write!(f, "unknown kernel `{}` (known:", self.requested)?;
            for (i, n) in NAMES.iter().enumerate() {
                write!(f, "{}{n}", if i == 0 { " " } else { ", " })?;
            }
            f.write_str("; available here:")?;
        }
        for k in available() {
            write!(f, " {}", k.name)?;
        }
        f.write_str(")")
    }
}

#[cfg(feature = "std")]
impl std::error::Error for KernelError {}

/// The slices behind a GEMM's raw pointers: `m·k` activations, `n·k` weights, `m·n` outputs.
///
/// # Safety
/// `a`, `b`, `c` point to that many valid elements (and `c` to writable ones, not aliased).
unsafe fn gemm_slices<'a, A, B, C>(
    (m, n, k): (usize, usize, usize),
    a: *const A,
    b: *const B,
    c: *mut C,
) -> (&'a [A], &'a [B], &'a mut [C]) {
    // SAFETY: the caller's contract.
    unsafe {
        (
            core::slice::from_raw_parts(a, m * k),
            core::slice::from_raw_parts(b, n * k),
            core::slice::from_raw_parts_mut(c, m * n),
        )
    }
}

/// `wide` and `scalar` are plain safe Rust: adapters to the raw-pointer table types.
///
/// # Safety
/// `a`, `b`, `c` point to `m·k`, `n·k`, `m·n` valid elements (and `c` to writable ones).
unsafe fn scalar_raw(m: usize, n: usize, k: usize, a: *const i8, b: *const i8, c: *mut i32) {
    // SAFETY: the caller guarantees the lengths (`Kernel::gemm_i8_i32` checked them).
    let (a, b, c) = unsafe { gemm_slices((m, n, k), a, b, c) };
    scalar::gemm_i8_i32(m, n, k, a, b, c)
}

/// # Safety
/// As [`scalar_raw`].
unsafe fn scalar16_raw(m: usize, n: usize, k: usize, a: *const i16, b: *const i8, c: *mut i64) {
    // SAFETY: the caller guarantees the lengths (`Kernel::gemm_i16_i8_i64` checked them).
    let (a, b, c) = unsafe { gemm_slices((m, n, k), a, b, c) };
    scalar::gemm_i16_i8_i64(m, n, k, a, b, c)
}

/// # Safety
/// As [`scalar_raw`].
unsafe fn wide_raw(m: usize, n: usize, k: usize, a: *const i8, b: *const i8, c: *mut i32) {
    // SAFETY: the caller guarantees the lengths (`Kernel::gemm_i8_i32` checked them).
    let (a, b, c) = unsafe { gemm_slices((m, n, k), a, b, c) };
    wide::gemm_i8_i32(m, n, k, a, b, c)
}

/// # Safety
/// As [`scalar_raw`].
unsafe fn wide16_raw(m: usize, n: usize, k: usize, a: *const i16, b: *const i8, c: *mut i64) {
    // SAFETY: the caller guarantees the lengths (`Kernel::gemm_i16_i8_i64` checked them).
    let (a, b, c) = unsafe { gemm_slices((m, n, k), a, b, c) };
    wide::gemm_i16_i8_i64(m, n, k, a, b, c)
}

/// Whether this CPU (with `std`: detected at run time; without: the build's target
/// features) runs kernel `name`. `false` for unknown names.
pub fn is_supported(name: &str) -> bool {
    match name {
        "scalar" | "wide" => true,
        #[cfg(target_arch = "x86_64")]
        "avx2" => x86::has_avx2(),
        #[cfg(target_arch = "x86_64")]
        "avxvnni" => x86::has_avxvnni(),
        #[cfg(target_arch = "x86_64")]
        "vnni" => x86::has_vnni(),
        #[cfg(target_arch = "x86_64")]
        "amx" => amx::has_amx(),
        #[cfg(target_arch = "aarch64")]
        "neon" => aarch64::has_neon(),
        #[cfg(target_arch = "aarch64")]
        "sdot" => aarch64::has_sdot(),
        #[cfg(target_arch = "aarch64")]
        "i8mm" => aarch64::has_i8mm(),
        _ => false,
    }
}

fn table_entry(name: &'static str) -> Option<(GemmI8, GemmI16)> {
    Some(match name {
        "scalar" => (scalar_raw, scalar16_raw),
        "wide" => (wide_raw, wide16_raw),
        #[cfg(target_arch = "x86_64")]
        "avx2" => (x86::avx2_gemm_i8_i32_4x3, x86::avx2_gemm_i16_i8_i64_3x4),
        #[cfg(target_arch = "x86_64")]
        "avxvnni" => (avxvnni::avxvnni_gemm_i8_i32, x86::avx2_gemm_i16_i8_i64_3x4),
        #[cfg(target_arch = "x86_64")]
        "vnni" => (x86::avx512vnni_gemm_i8_i32, x86::avx512vnni_gemm_i16_i8_i64),
        #[cfg(target_arch = "x86_64")]
        "amx" => (amx::amx_gemm_i8_i32, x86::avx512vnni_gemm_i16_i8_i64),
        #[cfg(target_arch = "aarch64")]
        "neon" => (aarch64::neon_gemm_i8_i32_4x4, aarch64::neon_gemm_i16_i8_i64_4x4),
        #[cfg(target_arch = "aarch64")]
        "sdot" => (aarch64::sdot_gemm_i8_i32_4x4, aarch64::neon_gemm_i16_i8_i64_4x4),
        #[cfg(target_arch = "aarch64")]
        "i8mm" => (aarch64::i8mm_gemm_i8_i32_8x4, aarch64::neon_gemm_i16_i8_i64_4x4),
        _ => return None,
    })
}

fn sums_entry(name: &'static str) -> Option<(GemmI8Sums, GemmI16Sums)> {
    match name {
        #[cfg(target_arch = "x86_64")]
        "avx2" => Some((x86::avx2_gemm_i8_i32_sums, avxvnni::avx2_gemm_i16_i8_i64_sums)),
        #[cfg(target_arch = "x86_64")]
        "avxvnni" => Some((avxvnni::avxvnni_gemm_i8_i32_sums, avxvnni::avx2_gemm_i16_i8_i64_sums)),
        #[cfg(target_arch = "x86_64")]
        "vnni" => Some((x86::avx512vnni_gemm_i8_i32_sums, x86::avx512vnni_gemm_i16_i8_i64_sums)),
        #[cfg(target_arch = "x86_64")]
        "amx" => Some((amx::amx_gemm_i8_i32_sums, x86::avx512vnni_gemm_i16_i8_i64_sums)),
        #[cfg(target_arch = "aarch64")]
        "sdot" => Some((aarch64::sdot_gemm_i8_i32_sums, aarch64::sdot_gemm_i16_i8_i64_sums)),
        #[cfg(target_arch = "aarch64")]
        "i8mm" => Some((aarch64::i8mm_gemm_i8_i32_sums, aarch64::i8mm_gemm_i16_i8_i64_sums)),
        _ => None,
    }
}

/// The kernel called `name`, if this CPU supports it.
pub fn by_name(name: &str) -> Result<Kernel, KernelError> {
    let known = NAMES.iter().find(|&&n| n == name);
    match known {
        Some(&n) if is_supported(n) => {
            let (gemm, gemm16) = table_entry(n).expect("a supported kernel is in the table");
            Ok(Kernel { name: n, gemm, gemm16, sums: sums_entry(n) })
        }
        _ => {
            let mut requested = heapless::String::new();
            for ch in name.chars() {
                if requested.push(ch).is_err() {
                    break;
                }
            }
            Err(KernelError { requested, known: known.is_some() })
        }
    }
}

/// The kernels this CPU supports, in order of preference (best last).
pub fn available() -> impl Iterator<Item = Kernel> {
    NAMES.iter().filter_map(|n| by_name(n).ok())
}

/// The best kernel this CPU supports.
pub fn best() -> Kernel {
    available().last().expect("scalar is always available")
}

/// The kernel inference uses: `ALBERT_KERNEL` if set (with `std`), else [`best`].
/// Decided once per process.
#[cfg(feature = "std")]
pub fn selected() -> Result<Kernel, KernelError> {
    static CHOICE: std::sync::OnceLock<Result<Kernel, KernelError>> = std::sync::OnceLock::new();
    CHOICE
        .get_or_init(|| match std::env::var("ALBERT_KERNEL") {
            Ok(name) if !name.is_empty() => by_name(&name),
            _ => Ok(best()),
        })
        .clone()
}

/// The kernel inference uses: the best one the build's target features allow.
#[cfg(not(feature = "std"))]
pub fn selected() -> Result<Kernel, KernelError> {
    Ok(best())
}

/// [`selected`], for the inference path: a bad `ALBERT_KERNEL` is a configuration error
/// that stops the process with the reason.
pub(crate) fn active() -> Kernel {
    match selected() {
        Ok(k) => k,
        Err(e) => panic!("ALBERT_KERNEL: {e}"),
    }
}

/// Which instructions the float loops (GELU, softmax, LayerNorm, activation quantization,
/// attention) run on in this process: `"avx512"` with the `vnni` or `amx` kernel, `"avx2"`
/// with the `avx2` or `avxvnni` kernel, else what the build's `wide::f32x8` compiles to (`"sse2"` on a default
/// x86_64 build, with the AVX2 attention loops where the CPU has AVX2: `"sse2+avx2"`, as
/// when `wide` is forced on such a CPU; `"neon"` on aarch64;
/// `"portable"` elsewhere). Shown by `albert inspect --kernels` and `albert bench`.
pub fn float_loops() -> &'static str {
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    return if float_avx512() {
        "avx512"
    } else if float_avx2() {
        "avx2"
    } else if std::is_x86_feature_detected!("avx2") {
        "sse2+avx2"
    } else {
        "sse2"
    };
    #[cfg(all(target_arch = "x86_64", not(feature = "std")))]
    return "sse2";
    #[cfg(target_arch = "aarch64")]
    return "neon";
    #[allow(unreachable_code)]
    "portable"
}

/// Whether the float loops (`ops`, attention) take their AVX-512 forms: when the process's
/// GEMM kernel is `vnni` or `amx` (so AVX-512F, BW, DQ, VL and VNNI are present, and
/// `ALBERT_KERNEL` forcing another kernel selects the portable float loops too). Same bits
/// either way.
#[cfg(all(target_arch = "x86_64", feature = "std"))]
pub(crate) fn float_avx512() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| selected().is_ok_and(|k| matches!(k.name(), "vnni" | "amx")))
}

/// Whether the element-wise float loops of `ops` (GELU, softmax, activation range and
/// quantization) take their AVX2 forms: when the process's GEMM kernel is `avx2` or
/// `avxvnni` (as
/// [`float_avx512`] with `vnni`; forcing `wide` or `scalar` selects the portable loops).
/// Same bits either way.
#[cfg(all(target_arch = "x86_64", feature = "std"))]
pub(crate) fn float_avx2() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| selected().is_ok_and(|k| matches!(k.name(), "avx2" | "avxvnni")))
}

/// Runs `f` compiled for AVX-512 when [`float_avx512`] holds, else for AVX2 where the CPU
/// has it, else as built: for plain element-wise loops (dequantization, bias, outlier
/// channels), which LLVM then vectorises 16 or 8 lanes wide instead of the default
/// build's 4 (SSE2). Rust never reassociates or contracts float operations (and FMA is
/// not enabled), so the bits are the same either way. Everything `f` calls must be
/// `#[inline(always)]` to be compiled inside.
#[inline(always)]
pub(crate) fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    {
        if float_avx512() {
            // SAFETY: `float_avx512` holds only where the `vnni` or `amx` kernel runs:
            // AVX-512F, BW, DQ and VL are present (`x86::has_vnni`, which `amx` requires).
            return unsafe { x86::in_avx512(f) };
        }
        if x86::has_avx2() {
            // SAFETY: AVX2 is present (detected at run time).
            return unsafe { x86::in_avx2(f) };
        }
    }
    f()
}

/// Columns per L2 block: the driver walks `nb` weight rows (`nb·k` bytes, about 128 KiB,
/// a multiple of the tile width `c`) against every row tile of the activations, so the
/// block stays in L2 while the activation tile (`r·k` bytes) stays in L1.
#[allow(dead_code)] // unused on targets with only the portable kernels
pub(crate) fn col_block(k: usize, c: usize) -> usize {
    ((COL_BLOCK_BYTES / k.max(1)) / c).max(1) * c
}

/// Weight bytes per [`col_block`]. Under Miri, 4 KiB: the same blocking code, crossed by a
/// test shape small enough for the interpreter (a 128 KiB block took 169 s of Miri's clock
/// to cross once, with `scalar` and `wide`).
const COL_BLOCK_BYTES: usize = if cfg!(miri) { 4 * 1024 } else { 128 * 1024 };

/// The per-row-tile precomputation of kernels that need none.
#[allow(dead_code)] // unused on targets with only the portable kernels
#[inline(always)]
pub(crate) unsafe fn no_prep<const R: usize>(_k: usize, _a: &[*const i8; R]) -> [i32; R] {
    [0; R]
}

/// Stores the first `cols` values of a tile row at `dst`. A full row is a copy of constant
/// length (a vector store); a loop over a run-time count compiled to a `memcpy` call per
/// row of every tile (2 % of a forward pass). Expands inside an `unsafe` context.
#[allow(unused_macros)]
macro_rules! store_cols {
    ($row:expr, $dst:expr, $cols:expr, $width:literal) => {{
        let (row, dst) = ($row, $dst);
        if $cols == $width {
            core::ptr::copy_nonoverlapping(row.as_ptr(), dst, $width);
        } else {
            for (u, &v) in row.iter().enumerate().take($cols) {
                *dst.add(u) = v;
            }
        }
    }};
}
#[allow(unused_imports)]
pub(crate) use store_cols;

/// The row tiles of `m` rows: for each, `const $r` is the smallest of `$rr` that covers
/// the rows left (the last of `$rr` while more are left), `$i` the tile's first row and
/// `$rows` its real rows (≤ `$r`; padding the rest is the body's business), and `$body`
/// runs. Shared by [`drive`] and the kernels' own drivers.
#[allow(unused_macros)]
macro_rules! row_tiles {
    ([$($rr:literal),+], $m:expr, |$r:ident, $i:ident, $rows:ident| $body:block) => {{
        let m: usize = $m;
        let rmax: usize = $crate::kernels::row_tiles!(@last $($rr),+);
        let mut $i = 0;
        while $i < m {
            let rows_left = m - $i;
            let mut done = 0;
            $(
                if done == 0 && (rows_left <= $rr || $rr == rmax) {
                    const $r: usize = $rr;
                    let $rows = rows_left.min($r);
                    $body
                    done = $rows;
                }
            )+
            $i += done;
        }
    }};
    (@last $x:literal) => { $x };
    (@last $x:literal, $($rest:literal),+) => { $crate::kernels::row_tiles!(@last $($rest),+) };
}
#[allow(unused_imports)]
pub(crate) use row_tiles;

/// The blocked driver every SIMD kernel shares: walks `c`-column tiles of `b` inside
/// L2-sized column blocks, `r`-row tiles of `a` ([`row_tiles`]), calls
/// `$tile::<R, C>(k, rows, cols, prep)` with `R` the smallest of `$rr` that covers the rows
/// left (missing rows and columns are padded with copies of the last real one and not
/// stored) and stores the valid part. `prep` is `$prep::<R>(k, rows)`, computed once per
/// row tile (default: zeros), e.g. the row sums a kernel needs to undo a bias.
///
/// Expands inside an `unsafe` context; `$a`, `$b`, `$c` are raw pointers to `m·k`, `n·k`,
/// `m·n` elements.
#[allow(unused_macros)]
macro_rules! drive {
    ($tile:ident, [$($rr:literal),+], $cols:literal, $m:expr, $n:expr, $k:expr, $a:expr, $b:expr, $c:expr) => {
        drive!($tile, no_prep, [$($rr),+], $cols, $m, $n, $k, $a, $b, $c)
    };
    ($tile:ident, $prep:ident, [$($rr:literal),+], $cols:literal, $m:expr, $n:expr, $k:expr, $a:expr, $b:expr, $c:expr) => {{
        let (m, n, k): (usize, usize, usize) = ($m, $n, $k);
        let (a, b, c): (*const i8, *const i8, *mut i32) = ($a, $b, $c);
        let nb = $crate::kernels::col_block(k, $cols);
        let mut j0 = 0;
        while j0 < n {
            let j1 = (j0 + nb).min(n);
            $crate::kernels::row_tiles!([$($rr),+], m, |R, i, rows| {
                let ap: [*const i8; R] = core::array::from_fn(|t| a.add((i + t.min(rows - 1)) * k));
                let prep: [i32; R] = $prep::<R>(k, &ap);
                let mut j = j0;
                while j < j1 {
                    let cols = (j1 - j).min($cols);
                    let bp: [*const i8; $cols] = core::array::from_fn(|t| b.add((j + t.min(cols - 1)) * k));
                    let out: [[i32; $cols]; R] = $tile::<R, $cols>(k, ap, bp, prep);
                    for (t, row) in out.iter().enumerate().take(rows) {
                        $crate::kernels::store_cols!(row, c.add((i + t) * n + j), cols, $cols);
                    }
                    j += $cols;
                }
            });
            j0 = j1;
        }
    }};
}
#[allow(unused_imports)]
pub(crate) use drive;

/// The driver of the int16×int8 kernels: `R`-row tiles of `a` (1 row at the bottom edge),
/// `C`-column tiles of `b` (padded with the last real column, not stored), each over all
/// of K (the weights are the big side: each weight row is read once per `R` tokens).
#[allow(unused_macros)]
macro_rules! drive16 {
    ($tile:ident, $r:literal, $cols:literal, $m:expr, $n:expr, $k:expr, $a:expr, $b:expr, $c:expr) => {{
        let (m, n, k): (usize, usize, usize) = ($m, $n, $k);
        let (a, b, c): (*const i16, *const i8, *mut i64) = ($a, $b, $c);
        let mut i = 0;
        while i < m {
            let full = m - i >= $r;
            let mut j = 0;
            while j < n {
                let cols = (n - j).min($cols);
                let bp: [*const i8; $cols] = core::array::from_fn(|t| b.add((j + t.min(cols - 1)) * k));
                if full {
                    let ap: [*const i16; $r] = core::array::from_fn(|t| a.add((i + t) * k));
                    let out: [[i64; $cols]; $r] = $tile::<$r, $cols>(k, ap, bp);
                    for (t, row) in out.iter().enumerate() {
                        $crate::kernels::store_cols!(row, c.add((i + t) * n + j), cols, $cols);
                    }
                } else {
                    let out: [[i64; $cols]; 1] = $tile::<1, $cols>(k, [a.add(i * k)], bp);
                    $crate::kernels::store_cols!(&out[0], c.add(i * n + j), cols, $cols);
                }
                j += $cols;
            }
            i += if full { $r } else { 1 };
        }
    }};
}
#[allow(unused_imports)]
pub(crate) use drive16;
