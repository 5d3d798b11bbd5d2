//! The Intel AMX int8 kernel (`amx`): `tdpbssd`, one instruction per 16 × 16 × 64 block
//! (16 384 multiply-adds), on Xeons from Sapphire Rapids on.
//!
//! **Layout.** The weights are AMX's A operand: an A tile is 16 weight rows × 64 K bytes,
//! loaded straight from the blob (row stride K), so nothing is repacked. The activations
//! are the B operand, which AMX reads as 16 rows of 4 K values × 16 columns: they are
//! packed per K chunk into a stack panel `[K/4][16 tokens][4]` (the layout of the `vnni`
//! broadcast form, without its bias: `tdpbssd` multiplies signed by signed). A C tile is
//! then 16 weight rows × 16 tokens, transposed into `c` at the store. A block is 32 weight
//! rows × 32 tokens: 4 C tiles, 2 A, 2 B, all 8 tile registers; per 64 K bytes it loads
//! 4 KiB of tiles for 4 `tdpbssd`.
//!
//! **Shapes.** `K` a multiple of 64 and at least 16 tokens; weight rows in blocks of 32,
//! the last `N mod 32` rows and every other shape by the `vnni` kernel (AMX CPUs have
//! AVX-512 VNNI). Exact: `tdpbssd` adds signed byte products in wrapping i32, and each K
//! chunk's sums are added to `c` in wrapping i32, as in every kernel here.
//!
//! **Testing.** The tile instructions are one `asm!` block ([`Hw`]); [`Emu`] computes the
//! same block from the instruction's definition (Intel SDM, `TDPBSSD`), so that the unit
//! tests run the driver (packing, blocking, tails, the transposing store) against the
//! scalar reference on any x86_64 CPU with AVX2. What only AMX hardware checks is the
//! `asm!` block, the tile configuration and the detection: the conformance suite
//! (`engine/tests/kernels.rs`) runs `amx` wherever the CPU has it. It passed there on a
//! 16-core Sapphire Rapids-class Xeon (KVM guest), with forward passes bit-identical to
//! every other kernel's (`bench/results/2026-11-28-xeon-amx-2/`), so `amx` now ranks first
//! (`super::NAMES`).

use core::arch::x86_64::*;

use super::x86::{Lines, transpose_8x8};

/// Tokens per block (two B tiles) and weight rows per block (two A tiles).
const TB: usize = 32;
const WB: usize = 32;
/// K bytes per chunk: the two 16-token panels of a chunk take `2 · 16 · KC` = 32 KiB.
const KC: usize = 1024;
/// The fewest tokens AMX takes; below, the `vnni` quad and pair forms stream the weights once.
const MIN_TOKENS: usize = 16;

/// The int8 GEMM of the rest: shapes AMX does not take, and the last `N mod 32` weight
/// rows. `sums` may be null.
type Rest = unsafe fn(usize, usize, usize, *const i8, *const i8, *const f32, *mut i32);

/// One block of 32 weight rows × 32 tokens over `steps` steps of 64 K bytes.
trait Tiles {
    /// `out[(2·ra + tb)·256 + 16·r + t] = Σ_k a[ra][r·lda + k] · panel_tb(token t, k)`
    /// for the `64·steps` bytes `k` from `a[ra]` (weight rows `r` < 16, `lda` apart) and
    /// B tiles of 1 KiB at `b[tb] + 1024·s` (row `q`: 16 tokens × K bytes `4q .. 4q + 4`
    /// of step `s`).
    ///
    /// # Safety
    /// The pointers are valid for what they are read or written as; `steps ≥ 1`; tiles
    /// configured ([`Tiles::begin`]).
    unsafe fn block(&mut self, steps: usize, a: [*const i8; 2], lda: usize, b: [*const u8; 2], out: *mut i32);
    /// Sets up the tile registers for [`Tiles::block`].
    ///
    /// # Safety
    /// AMX usable in this process ([`has_amx`]), for [`Hw`].
    unsafe fn begin(&mut self) {}
    /// Releases them.
    ///
    /// # Safety
    /// After [`Tiles::begin`], on the same thread.
    unsafe fn end(&mut self) {}
}

/// The tile registers: all 8 as 16 rows × 64 bytes (palette 1).
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

const CONFIG: TileConfig = TileConfig {
    palette: 1,
    start_row: 0,
    reserved: [0; 14],
    colsb: [64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0],
    rows: [16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0],
};

/// The AMX instructions themselves.
struct Hw;

impl Tiles for Hw {
    #[inline(always)]
    unsafe fn block(&mut self, steps: usize, a: [*const i8; 2], lda: usize, b: [*const u8; 2], out: *mut i32) {
        // SAFETY: tile loads read 16 rows × 64 bytes at `a[i] + r·lda` and `b[i] + 64·q`
        // for each of `steps` steps, the stores write 4 KiB at `out`: all inside what the
        // caller guarantees; the tiles are configured (caller).
        unsafe {
            core::arch::asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                "2:",
                "tileloadd tmm4, [{a0} + {lda} * 1]",
                "tileloadd tmm5, [{a1} + {lda} * 1]",
                "tileloadd tmm6, [{b0} + {s64} * 1]",
                "tileloadd tmm7, [{b1} + {s64} * 1]",
                // C[ra][tb] += A[ra] · B[tb]
                "tdpbssd tmm0, tmm4, tmm6",
                "tdpbssd tmm1, tmm4, tmm7",
                "tdpbssd tmm2, tmm5, tmm6",
                "tdpbssd tmm3, tmm5, tmm7",
                "add {a0}, 64",
                "add {a1}, 64",
                "add {b0}, 1024",
                "add {b1}, 1024",
                "dec {steps}",
                "jnz 2b",
                "tilestored [{out} + {s64} * 1], tmm0",
                "tilestored [{out} + {s64} * 1 + 1024], tmm1",
                "tilestored [{out} + {s64} * 1 + 2048], tmm2",
                "tilestored [{out} + {s64} * 1 + 3072], tmm3",
                a0 = inout(reg) a[0] => _,
                a1 = inout(reg) a[1] => _,
                b0 = inout(reg) b[0] => _,
                b1 = inout(reg) b[1] => _,
                steps = inout(reg) steps => _,
                lda = in(reg) lda,
                s64 = in(reg) 64usize,
                out = in(reg) out,
                options(nostack),
            );
        }
    }

    unsafe fn begin(&mut self) {
        // SAFETY: AMX usable (caller); reads the 64-byte config.
        unsafe { core::arch::asm!("ldtilecfg [{}]", in(reg) &CONFIG, options(nostack, readonly)) }
    }

    unsafe fn end(&mut self) {
        // SAFETY: AMX usable (caller).
        unsafe { core::arch::asm!("tilerelease", options(nostack, nomem)) }
    }
}

/// [`Tiles::block`] computed from `TDPBSSD`'s definition: `C[m][n] += Σ_q Σ_i
/// sx(A[m][4q + i]) · sx(B[q][4n + i])`, dword sums wrapping. For the tests.
#[cfg(test)]
struct Emu;

#[cfg(test)]
impl Tiles for Emu {
    unsafe fn block(&mut self, steps: usize, a: [*const i8; 2], lda: usize, b: [*const u8; 2], out: *mut i32) {
        // SAFETY: the same reads and writes as `Hw::block`, per the caller's contract.
        unsafe {
            for (ra, &wa) in a.iter().enumerate() {
                for (tb, &pb) in b.iter().enumerate() {
                    for r in 0..16 {
                        for n in 0..16 {
                            let mut acc = 0i32;
                            for s in 0..steps {
                                for q in 0..16 {
                                    for i in 0..4 {
                                        let x = *wa.add(r * lda + 64 * s + 4 * q + i) as i32;
                                        let y = *pb.add(1024 * s + 64 * q + 4 * n + i) as i8 as i32;
                                        acc = acc.wrapping_add(x * y);
                                    }
                                }
                            }
                            *out.add((2 * ra + tb) * 256 + 16 * r + n) = acc;
                        }
                    }
                }
            }
        }
    }
}

/// Whether this process can run AMX: the CPU has AMX-TILE and AMX-INT8 (and the AVX-512
/// VNNI the other shapes take), the OS saves the tile state (XCR0 bits 17 and 18), and
/// Linux granted this process the tile data (`arch_prctl(ARCH_REQ_XCOMP_PERM,
/// XFEATURE_XTILEDATA)`, Linux 5.16 on; without it the first tile instruction faults).
/// Asked once. Other systems and `no_std` builds: never (they would need their own grant).
pub(super) fn has_amx() -> bool {
    #[cfg(all(feature = "std", target_os = "linux"))]
    {
        static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *OK.get_or_init(|| super::x86::has_vnni() && cpu_has_amx_int8() && os_saves_tiles() && linux_grants_tiles())
    }
    #[cfg(not(all(feature = "std", target_os = "linux")))]
    {
        false
    }
}

#[cfg(all(feature = "std", target_os = "linux"))]
fn cpu_has_amx_int8() -> bool {
    let l7 = __cpuid_count(7, 0);
    l7.edx & (1 << 24) != 0 && l7.edx & (1 << 25) != 0
}

#[cfg(all(feature = "std", target_os = "linux"))]
fn os_saves_tiles() -> bool {
    if __cpuid(1).ecx & (1 << 27) == 0 {
        return false; // no OSXSAVE: `xgetbv` would fault
    }
    let (lo, _hi): (u32, u32);
    // SAFETY: `xgetbv` with ECX = 0 reads XCR0; OSXSAVE is set (checked above).
    unsafe {
        core::arch::asm!("xgetbv", in("ecx") 0u32, out("eax") lo, out("edx") _hi, options(nomem, nostack, preserves_flags))
    };
    lo & (0b11 << 17) == 0b11 << 17
}

#[cfg(all(feature = "std", target_os = "linux"))]
fn linux_grants_tiles() -> bool {
    const SYS_ARCH_PRCTL: usize = 158;
    const ARCH_REQ_XCOMP_PERM: usize = 0x1023;
    const XFEATURE_XTILEDATA: usize = 18;
    let ret: isize;
    // SAFETY: the `arch_prctl` system call asks for a permission and touches no memory of
    // this process; `syscall` clobbers RCX and R11.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        )
    };
    ret == 0
}

/// Whether AMX takes a product of `m` rows (the rest go to `vnni` whole).
pub(super) fn takes_rows(m: usize) -> bool {
    m >= MIN_TOKENS
}

/// Output columns per GEMM call (`super::Kernel::column_chunk`): whole blocks of 32, about
/// 1 MiB of weights, since each call packs the activations once per K chunk.
pub(super) fn column_chunk(k: usize) -> usize {
    ((1024 * 1024 / k.max(1)) / WB).clamp(4, 48) * WB
}

/// The `amx` int8 GEMM (`c = a · bᵀ`, exact in wrapping i32).
///
/// # Safety
/// [`has_amx`]; `a`, `b`, `c` valid for `m·k`, `n·k`, `m·n` elements.
pub(super) unsafe fn amx_gemm_i8_i32(m: usize, n: usize, k: usize, a: *const i8, b: *const i8, c: *mut i32) {
    // SAFETY: the same contract, passed on.
    unsafe { amx_gemm_i8_i32_sums(m, n, k, a, b, core::ptr::null(), c) }
}

/// [`amx_gemm_i8_i32`] with the weight row sums (for the `vnni` shapes; null: none).
///
/// # Safety
/// As [`amx_gemm_i8_i32`]; `sums` null or valid for `n` values, each `Σ_k b[j][k]`.
pub(super) unsafe fn amx_gemm_i8_i32_sums(
    m: usize,
    n: usize,
    k: usize,
    a: *const i8,
    b: *const i8,
    sums: *const f32,
    c: *mut i32,
) {
    // SAFETY: the contract, passed on; `has_amx` implies the `vnni` kernel's features and
    // AVX2.
    unsafe { drive(&mut Hw, super::x86::avx512vnni_gemm_i8_i32_sums, (m, n, k), a, b, sums, c) }
}

/// The blocks AMX takes, then `rest` for the other shapes and the last `n mod 32` rows.
///
/// # Safety
/// AVX2 present, `tiles` usable ([`Tiles::begin`]), `rest` callable on this CPU; `a`, `b`,
/// `c` valid for `m·k`, `n·k`, `m·n`; `sums` null or valid for `n`.
#[target_feature(enable = "avx2")]
unsafe fn drive<T: Tiles>(
    tiles: &mut T,
    rest: Rest,
    (m, n, k): (usize, usize, usize),
    a: *const i8,
    b: *const i8,
    sums: *const f32,
    c: *mut i32,
) {
    let nb = n / WB * WB;
    if !takes_rows(m) || !k.is_multiple_of(64) || nb == 0 {
        // SAFETY: the contract, passed on.
        return unsafe { rest(m, n, k, a, b, sums, c) };
    }
    // Every byte a block reads is written by `pack` first; `acc` by the block.
    let mut panel = core::mem::MaybeUninit::<Lines<[u32; TB * KC / 4]>>::uninit();
    let panel = panel.as_mut_ptr().cast::<u32>();
    let mut acc = Lines([0i32; 4 * 256]);
    // SAFETY: per the contract; every pointer below stays inside a, b, c, the panel and
    // `acc` (bounds at each step).
    unsafe {
        tiles.begin();
        for t0 in (0..m).step_by(TB) {
            let tokens = (m - t0).min(TB);
            for k0 in (0..k).step_by(KC) {
                let kc = (k - k0).min(KC);
                pack(a.add(t0 * k + k0), k, tokens, kc, panel);
                let bp = [panel.cast::<u8>().cast_const(), panel.add(16 * kc / 4).cast::<u8>().cast_const()];
                for j0 in (0..nb).step_by(WB) {
                    let w = [b.add(j0 * k + k0), b.add((j0 + 16) * k + k0)];
                    tiles.block(kc / 64, w, k, bp, acc.0.as_mut_ptr());
                    store_t(&acc.0, c.add(t0 * n + j0), n, tokens, k0 > 0);
                }
            }
        }
        tiles.end();
        if nb < n {
            tail(rest, (m, n, k), nb, a, b, sums, c);
        }
    }
}

/// The last `n − nb` weight rows by `rest`, 64 tokens at a time through a stack buffer.
///
/// # Safety
/// As [`drive`]; `nb < n`, `n − nb < 32`.
unsafe fn tail(
    rest: Rest,
    (m, n, k): (usize, usize, usize),
    nb: usize,
    a: *const i8,
    b: *const i8,
    sums: *const f32,
    c: *mut i32,
) {
    const ROWS: usize = 64;
    let w = n - nb;
    let mut buf = [0i32; ROWS * WB];
    // SAFETY: rows r0 .. r0 + rows ≤ m of `a`, weight rows nb .. n of `b` (and `sums`),
    // `buf` holds rows · w ≤ 64 · 32 values, `c`'s rows hold n values.
    unsafe {
        let ws = if sums.is_null() { sums } else { sums.add(nb) };
        for r0 in (0..m).step_by(ROWS) {
            let rows = (m - r0).min(ROWS);
            rest(rows, w, k, a.add(r0 * k), b.add(nb * k), ws, buf.as_mut_ptr());
            for r in 0..rows {
                core::ptr::copy_nonoverlapping(buf.as_ptr().add(r * w), c.add((r0 + r) * n + nb), w);
            }
        }
    }
}

/// Packs `tokens ≤ 32` rows of `kc` bytes (`k` apart) into two panels of `[kc/4][16][4]`
/// bytes, `4·kc` u32 apart; the lanes of missing tokens are zero. Per 8 tokens × 8 groups
/// of 4 bytes: 8 loads, one 8 × 8 transpose, 8 stores.
///
/// # Safety
/// AVX2 present; `a` valid for `tokens` rows of `kc` bytes, `k` apart; `panel` for `8·kc`
/// u32; `kc` a multiple of 32.
#[target_feature(enable = "avx2")]
unsafe fn pack(a: *const i8, k: usize, tokens: usize, kc: usize, panel: *mut u32) {
    let quads = kc / 4;
    // SAFETY: loads of 32 bytes at offsets 4·q0 < kc of rows t < tokens; stores of 8 u32
    // at quad rows q0 + j < quads, lanes 8·th .. 8·th + 8 of a 16-lane row.
    unsafe {
        for p in 0..2 {
            let dst = panel.add(p * 16 * quads);
            for th in 0..2 {
                let t0 = 16 * p + 8 * th;
                let count = tokens.saturating_sub(t0).min(8);
                for q0 in (0..quads).step_by(8) {
                    let r: [__m256i; 8] = core::array::from_fn(|i| {
                        if i < count {
                            _mm256_loadu_si256(a.add((t0 + i) * k + 4 * q0).cast())
                        } else {
                            _mm256_setzero_si256()
                        }
                    });
                    for (j, &v) in transpose_8x8(r).iter().enumerate() {
                        _mm256_storeu_si256(dst.add(16 * (q0 + j) + 8 * th).cast(), v);
                    }
                }
            }
        }
    }
}

/// Stores (or, with `add`, adds) a block's 4 C tiles (`acc`, weight rows × tokens) to `c`
/// (tokens × weight rows, rows `n` apart): four 8 × 8 transposes per tile, the first
/// `tokens` token rows only.
///
/// # Safety
/// AVX2 present; `c` valid for `tokens` rows of 32 values, `n` apart.
#[target_feature(enable = "avx2")]
unsafe fn store_t(acc: &[i32; 4 * 256], c: *mut i32, n: usize, tokens: usize, add: bool) {
    // SAFETY: loads inside `acc`; loads and stores of 8 values at columns 16·ra + 8·rh ..
    // of token rows < tokens of `c` (the contract).
    unsafe {
        for ra in 0..2 {
            for tb in 0..2 {
                let tile = acc.as_ptr().add((2 * ra + tb) * 256);
                for rh in 0..2 {
                    for th in 0..2 {
                        let t1 = tb * 16 + th * 8;
                        if t1 >= tokens {
                            continue;
                        }
                        // Rows: 8 weight rows of the tile, their 8 tokens th·8 ..
                        let r: [__m256i; 8] =
                            core::array::from_fn(|i| _mm256_loadu_si256(tile.add((8 * rh + i) * 16 + 8 * th).cast()));
                        let cols = transpose_8x8(r);
                        for (t, &v) in cols.iter().enumerate().take(tokens - t1) {
                            let dst = c.add((t1 + t) * n + 16 * ra + 8 * rh).cast::<__m256i>();
                            let v = if add { _mm256_add_epi32(v, _mm256_loadu_si256(dst)) } else { v };
                            _mm256_storeu_si256(dst, v);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::scalar;

    /// The scalar reference in the `Rest` shape, as the tail and small shapes take it.
    unsafe fn scalar_rest(m: usize, n: usize, k: usize, a: *const i8, b: *const i8, _s: *const f32, c: *mut i32) {
        // SAFETY: the caller's lengths.
        let (a, b, c) = unsafe {
            (
                core::slice::from_raw_parts(a, m * k),
                core::slice::from_raw_parts(b, n * k),
                core::slice::from_raw_parts_mut(c, m * n),
            )
        };
        scalar::gemm_i8_i32(m, n, k, a, b, c)
    }

    fn fill(len: usize, seed: u64) -> Vec<i8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Every 7th value an extreme, so that -128 · -128 sums are crossed.
                match i % 7 {
                    0 => -128,
                    3 => 127,
                    _ => (x >> 32) as i8,
                }
            })
            .collect()
    }

    /// The driver with emulated tiles, against the scalar reference, bit for bit: token
    /// counts around the 16- and 32-token tiles, weight rows with and without a tail, K of
    /// one step, one chunk, and chunks plus a step (the chunks' sums added in `c`).
    #[test]
    #[cfg_attr(miri, ignore)] // AVX2 intrinsics; the driver's arithmetic is the scalar one
    fn emulated_tiles_match_scalar() {
        assert!(std::is_x86_feature_detected!("avx2"), "the driver's store needs AVX2");
        let mut cases = 0;
        for &m in &[1usize, 15, 16, 17, 31, 32, 33, 47, 64, 70] {
            for &n in &[1usize, 31, 32, 33, 64, 95] {
                for &k in &[64usize, 192, 1024, 1088, 2112] {
                    if m * n * k > 70 * 95 * 1088 && !(m == 33 && n == 33) {
                        continue; // the emulator is slow; the largest K on a few shapes
                    }
                    let (a, b) = (fill(m * k, (m * 131 + k) as u64), fill(n * k, (n * 71 + k) as u64));
                    let mut want = vec![0i32; m * n];
                    scalar::gemm_i8_i32(m, n, k, &a, &b, &mut want);
                    let mut got = vec![i32::MIN; m * n];
                    // SAFETY: the buffers hold m·k, n·k, m·n; AVX2 checked above; `Emu`
                    // needs no set-up and `scalar_rest` no CPU feature.
                    unsafe {
                        drive(
                            &mut Emu,
                            scalar_rest,
                            (m, n, k),
                            a.as_ptr(),
                            b.as_ptr(),
                            core::ptr::null(),
                            got.as_mut_ptr(),
                        )
                    };
                    assert_eq!(got, want, "m {m} n {n} k {k}");
                    cases += 1;
                }
            }
        }
        assert!(cases > 200, "{cases} cases");
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn transpose_8x8_is_a_transpose() {
        assert!(std::is_x86_feature_detected!("avx2"));
        let x: [i32; 64] = core::array::from_fn(|i| i as i32);
        #[target_feature(enable = "avx2")]
        unsafe fn run(x: &[i32; 64]) -> [i32; 64] {
            // SAFETY: AVX2 (caller); loads and stores inside the arrays.
            unsafe {
                let r: [__m256i; 8] = core::array::from_fn(|i| _mm256_loadu_si256(x.as_ptr().add(8 * i).cast()));
                let t = transpose_8x8(r);
                let mut out = [0i32; 64];
                for (j, v) in t.iter().enumerate() {
                    _mm256_storeu_si256(out.as_mut_ptr().add(8 * j).cast(), *v);
                }
                out
            }
        }
        // SAFETY: AVX2 checked above.
        let y = unsafe { run(&x) };
        for i in 0..8 {
            for j in 0..8 {
                assert_eq!(y[8 * j + i], x[8 * i + j]);
            }
        }
    }

    #[test]
    fn column_chunks_are_whole_blocks() {
        for k in [64, 128, 768, 3072, 16384, 1 << 20] {
            let c = column_chunk(k);
            assert!(c.is_multiple_of(WB) && (4 * WB..=48 * WB).contains(&c), "k {k}: {c}");
        }
    }
}
