//! The portable int8 GEMM on the `wide` crate: safe Rust, SIMD on every target `wide`
//! knows (SSE2 on a default x86_64 build, AVX2 when the build enables it, NEON on
//! aarch64), plain arrays elsewhere (thumbv7em).
//!
//! Only operations that compile to real SIMD on x86_64 *and* aarch64 are used (see
//! `README.md`): 32 bytes are read as an `i16x16`; `(v << 8) >> 8` sign-extends the even
//! bytes and `v >> 8` the odd ones (arithmetic shifts: `psllw`/`psraw`, `shl`/`sshr`),
//! except on builds with AVX2, where `i16x16::from_i8x16` is one `vpmovsxbw` per 16 bytes;
//! `i16x16::dot` multiplies and adds pairs into i32 (`pmaddwd`, NEON `smull` + `addp`).
//! Even bytes meet even bytes and odd meet odd (with AVX2: first halves meet first
//! halves), so the sum over both is the dot product, exact for all of `[-128, 127]` (a
//! pair sums to at most 2·128² < 2³¹).

use ::wide::{i16x16, i32x8};

const STEP: usize = 32;

/// Two versions of an item: the first for builds with AVX2 (which widen bytes with
/// `vpmovsxbw`), the second for every other build.
macro_rules! if_avx2 {
    ($yes:item $no:item) => {
        #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
        $yes
        #[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
        $no
    };
}

if_avx2! {
    /// A row as [`tile`]'s loop reads it: exactly `steps` blocks of 32 bytes, so that the
    /// loads need no bounds checks (with byte ranges LLVM kept two per load).
    type Row<'a> = &'a [[i8; STEP]];
    /// A row as [`tile`]'s loop reads it: its bytes (the block form above measured 10-15 %
    /// slower on the default SSE2 build, which spills more with it).
    type Row<'a> = &'a [i8];
}

if_avx2! {
    #[inline(always)]
    fn row(r: &[i8], steps: usize) -> Row<'_> {
        &bytemuck::cast_slice::<i8, [i8; STEP]>(&r[..steps * STEP])[..steps]
    }
    #[inline(always)]
    fn row(r: &[i8], _steps: usize) -> Row<'_> {
        r
    }
}

if_avx2! {
    /// Block `s` of a row as two `i16x16` whose pairs [`tile`] multiplies: bytes 0-15 and
    /// 16-31 sign-extended by `i16x16::from_i8x16` (one `vpmovsxbw` each, from memory).
    #[inline(always)]
    fn at(r: Row<'_>, s: usize) -> (i16x16, i16x16) {
        let half = |o: usize| {
            i16x16::from_i8x16(bytemuck::pod_read_unaligned::<::wide::i8x16>(bytemuck::cast_slice(&r[s][o..o + 16])))
        };
        (half(0), half(16))
    }
    /// Block `s` of a row as two `i16x16` whose pairs [`tile`] multiplies: the even and the
    /// odd bytes, sign-extended by shifts (`from_i8x16` is scalar on aarch64).
    #[inline(always)]
    fn at(r: Row<'_>, s: usize) -> (i16x16, i16x16) {
        let v = bytemuck::pod_read_unaligned::<i16x16>(bytemuck::cast_slice(&r[s * STEP..(s + 1) * STEP]));
        ((v << 8) >> 8, v >> 8)
    }
}

/// An `R × C` tile over the whole of K. Both operands are split alike by [`at`], so every
/// pair meets its partner.
#[inline(always)]
fn tile<const R: usize, const C: usize>(k: usize, a: [&[i8]; R], b: [&[i8]; C]) -> [[i32; C]; R] {
    let steps = k / STEP;
    let ab: [Row<'_>; R] = core::array::from_fn(|i| row(a[i], steps));
    let bb: [Row<'_>; C] = core::array::from_fn(|j| row(b[j], steps));
    let mut acc = [[i32x8::ZERO; C]; R];
    for s in 0..steps {
        let mut bs = [(i16x16::ZERO, i16x16::ZERO); C];
        for j in 0..C {
            bs[j] = at(bb[j], s);
        }
        for i in 0..R {
            let (lo, hi) = at(ab[i], s);
            for j in 0..C {
                acc[i][j] += lo.dot(bs[j].0) + hi.dot(bs[j].1);
            }
        }
    }
    let p = steps * STEP;
    let mut out = [[0i32; C]; R];
    for i in 0..R {
        for j in 0..C {
            let tail: i32 = a[i][p..k].iter().zip(&b[j][p..k]).map(|(&x, &y)| x as i32 * y as i32).sum();
            out[i][j] = acc[i][j].reduce_add() + tail;
        }
    }
    out
}

/// One `R`-row tile row of the driver: rows `i..i + R` against columns `j..j + cols`.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // one tile's geometry, from one caller
fn emit<const R: usize, const C: usize>(
    k: usize,
    n: usize,
    a: &[i8],
    i: usize,
    bp: [&[i8]; C],
    j: usize,
    cols: usize,
    c: &mut [i32],
) {
    let ap: [&[i8]; R] = core::array::from_fn(|t| &a[(i + t) * k..(i + t + 1) * k]);
    let out = tile::<R, C>(k, ap, bp);
    for (t, o) in out.iter().enumerate() {
        c[(i + t) * n + j..][..cols].copy_from_slice(&o[..cols]);
    }
}

/// `c[i][j] = Σ_k a[i][k] · b[j][k]`, exact in i32, in tiles of 4 rows × 2 columns: each
/// weight pair is loaded and split once for four activation rows (8 accumulators, 4 split
/// weight vectors and one split activation: 14 ymm with AVX2, 28 q registers on NEON).
pub(super) fn gemm_i8_i32(m: usize, n: usize, k: usize, a: &[i8], b: &[i8], c: &mut [i32]) {
    const C: usize = 2;
    const R: usize = 4;
    let nb = super::col_block(k, C);
    fn rowk(s: &[i8], i: usize, k: usize) -> &[i8] {
        &s[i * k..(i + 1) * k]
    }
    let row = |s, i| rowk(s, i, k);
    for j0 in (0..n).step_by(nb) {
        let j1 = (j0 + nb).min(n);
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(R);
            for j in (j0..j1).step_by(C) {
                let cols = (j1 - j).min(C);
                let bp = [row(b, j), row(b, j + cols - 1)];
                match rows {
                    4 => emit::<4, C>(k, n, a, i, bp, j, cols, c),
                    3 => emit::<3, C>(k, n, a, i, bp, j, cols, c),
                    2 => emit::<2, C>(k, n, a, i, bp, j, cols, c),
                    _ => emit::<1, C>(k, n, a, i, bp, j, cols, c),
                }
            }
            i += rows;
        }
    }
}

/// K values per i32 block of [`gemm_i16_i8_i64`]: a `dot` lane gains at most
/// 2·2¹⁵·2⁷ = 2²³ per step of 16 values, so 128 steps stay below 2³¹.
const I16_BLOCK: usize = 2048;

/// An `R × C` tile of int16 activations against int8 weights over the whole of K, exact
/// in i64: 16 activations read as an `i16x16`, 16 weights widened by
/// `i16x16::from_i8x16` (`vpmovsxbw` with AVX2; SSE2 and SSE4.1 have their own branches),
/// `dot` (`pmaddwd`) into i32 for blocks of [`I16_BLOCK`] values, then i64.
#[inline(always)]
fn tile16<const R: usize, const C: usize>(k: usize, a: [&[i16]; R], b: [&[i8]; C]) -> [[i64; C]; R] {
    let mut out = [[0i64; C]; R];
    let mut p = 0;
    while p + 16 <= k {
        let end = (p + I16_BLOCK).min(k);
        let mut acc = [[i32x8::ZERO; C]; R];
        while p + 16 <= end {
            let bs: [i16x16; C] = core::array::from_fn(|j| {
                i16x16::from_i8x16(bytemuck::pod_read_unaligned::<::wide::i8x16>(bytemuck::cast_slice(
                    &b[j][p..p + 16],
                )))
            });
            for i in 0..R {
                let av = bytemuck::pod_read_unaligned::<i16x16>(bytemuck::cast_slice(&a[i][p..p + 16]));
                for j in 0..C {
                    acc[i][j] += av.dot(bs[j]);
                }
            }
            p += 16;
        }
        for i in 0..R {
            for j in 0..C {
                out[i][j] += acc[i][j].to_array().iter().map(|&v| v as i64).sum::<i64>();
            }
        }
    }
    for i in 0..R {
        for j in 0..C {
            out[i][j] += a[i][p..k].iter().zip(&b[j][p..k]).map(|(&x, &y)| x as i64 * y as i64).sum::<i64>();
        }
    }
    out
}

/// `c[i][j] = Σ_k a[i][k] · b[j][k]` for int16 activations, exact in i64, in tiles of 2
/// rows × 2 columns (4 accumulators, 2 widened weight vectors, one activation vector:
/// 7 ymm with AVX2, 14 xmm with SSE2).
pub(super) fn gemm_i16_i8_i64(m: usize, n: usize, k: usize, a: &[i16], b: &[i8], c: &mut [i64]) {
    const C: usize = 2;
    const R: usize = 2;
    let nb = super::col_block(k, C);
    for j0 in (0..n).step_by(nb) {
        let j1 = (j0 + nb).min(n);
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(R);
            for j in (j0..j1).step_by(C) {
                let cols = (j1 - j).min(C);
                let bp = [&b[j * k..(j + 1) * k], &b[(j + cols - 1) * k..(j + cols) * k]];
                let ar = |t: usize| &a[(i + t.min(rows - 1)) * k..(i + t.min(rows - 1) + 1) * k];
                let out = tile16::<R, C>(k, [ar(0), ar(1)], bp);
                for (t, o) in out.iter().enumerate().take(rows) {
                    c[(i + t) * n + j..][..cols].copy_from_slice(&o[..cols]);
                }
            }
            i += rows;
        }
    }
}
