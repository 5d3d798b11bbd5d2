//! Float element-wise operations of the transformer: LayerNorm, softmax, activations,
//! and the per-token int8 quantization of activations.
//!
//! The hot ones (LayerNorm, softmax, GELU in its tanh forms, `quantize_row`) run on `wide`'s
//! `f32x8` (two SSE2 registers on a default x86_64 build, two NEON registers on aarch64,
//! plain arrays on targets without SIMD); `avx2.rs` and `avx512.rs` hold one-ymm and
//! 16-lane forms of the hottest, chosen with the `avx2` and `vnni` GEMM kernels. Only IEEE
//! add, subtract, multiply, divide, compare and bit operations are used, never a fused
//! multiply-add, and horizontal sums run in a fixed order, so every target computes the
//! same bits. Element-wise results never depend on where a slice starts or ends (a tail
//! shorter than 8 lanes goes through the same vector code, padded), which is what lets
//! the thread pool split these loops anywhere without changing a result.

use crate::config::Activation;
use wide::{CmpEq, CmpGe, CmpLt, f32x8, i32x8};

#[cfg(all(target_arch = "x86_64", feature = "std"))]
mod avx2;
#[cfg(all(target_arch = "x86_64", feature = "std"))]
mod avx512;

const LANES: usize = 8;

/// Whether the one-ymm AVX2 loops (`avx2.rs`, the same bits) run.
#[cfg(all(target_arch = "x86_64", feature = "std"))]
use crate::kernels::float_avx2 as use_avx2;
/// Whether the 16-lane AVX-512 loops (`avx512.rs`, the same bits) run.
#[cfg(all(target_arch = "x86_64", feature = "std"))]
use crate::kernels::float_avx512 as use_avx512;

// The constants of `exp_neg`, GELU and `quantize8`, shared with the AVX-512 versions.
/// ln(2⁻¹²⁶): the smallest argument of `exp_neg` whose result is a normal f32.
const LO_EXP: f32 = -87.336_55;
/// 1.5·2²³: adding it rounds a value below 2²² to an integer, kept in the low mantissa bits.
const ROUND: f32 = 12_582_912.0;
const LOG2_E: f32 = core::f32::consts::LOG2_E;
/// ln 2 split so that n·LN2_HI is exact for |n| < 2¹⁵ (LN2_HI has 9 significant bits).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

#[inline(always)]
fn splat(v: f32) -> f32x8 {
    f32x8::splat(v)
}

#[inline(always)]
fn load(s: &[f32]) -> f32x8 {
    f32x8::new(s[..LANES].try_into().expect("8 lanes"))
}

#[inline(always)]
fn store(v: f32x8, d: &mut [f32]) {
    d[..LANES].copy_from_slice(&v.to_array());
}

/// The sum of the 8 lanes in a fixed order. Not `f32x8::reduce_add`: its order differs
/// between the SSE and NEON builds, and every target must compute the same bits (the
/// C API and firmware demo are checked against the x86 CLI, byte for byte).
#[inline(always)]
fn hsum(v: f32x8) -> f32 {
    hsum_array(v.to_array())
}

#[inline(always)]
fn hsum_array(a: [f32; 8]) -> f32 {
    ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]))
}

/// Applies the lane-wise `f` to `x` in place: 8 lanes at a time, and the tail through the
/// same `f` on a copy padded with `pad`, so each element's result is the same wherever the
/// slice was cut.
#[inline(always)]
fn map8(x: &mut [f32], pad: f32, mut f: impl FnMut(f32x8) -> f32x8) {
    let mut chunks = x.chunks_exact_mut(LANES);
    for c in &mut chunks {
        store(f(load(c)), c);
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let mut buf = [pad; LANES];
        buf[..tail.len()].copy_from_slice(tail);
        let out = f(f32x8::new(buf)).to_array();
        tail.copy_from_slice(&out[..tail.len()]);
    }
}

/// `e^x` lane-wise for `x ≤ 0` (positive lanes are treated as 0 and give 1; NaN gives NaN;
/// below `ln 2⁻¹²⁶` the result is flushed to 0 instead of going subnormal).
///
/// Cody–Waite reduction `x = n·ln 2 + r` with `|r| ≤ ln 2 / 2`, the degree-7 Taylor
/// polynomial of `e^r` (truncation error below 2⁻²⁷ relative), and `2ⁿ` built in the
/// exponent bits. Measured error against f64: see the `exp_neg_*` test.
#[inline(always)]
fn exp_neg(x: f32x8) -> f32x8 {
    const LO: f32 = LO_EXP;
    let xc = x.fast_max(splat(LO)).fast_min(splat(0.0));
    let t = xc * splat(LOG2_E) + splat(ROUND);
    let n = t - splat(ROUND);
    let r = xc - n * splat(LN2_HI) - n * splat(LN2_LO);
    let mut p = splat(1.0 / 5040.0);
    for c in [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5] {
        p = p * r + splat(c);
    }
    let er = (p * r * r + r) + splat(1.0);
    // 2ⁿ: n sits in t's mantissa as an offset from ROUND's bits; n ∈ [-126, 0].
    let ni = bytemuck::cast::<f32x8, i32x8>(t) - i32x8::splat(ROUND.to_bits() as i32);
    let pow2: f32x8 = bytemuck::cast((ni + i32x8::splat(127)) << 23);
    let y = er * pow2;
    let y = x.cmp_lt(splat(LO)).blend(splat(0.0), y);
    x.cmp_eq(x).blend(y, x)
}

/// `u · σ(2z)`, which equals `0.5·u·(1 + tanh z)` (the tanh forms of GELU) without the
/// cancellation of `1 + tanh z` for negative `z`. `e^{-2|z|}` never overflows; `u` is
/// floored at −20 (where the result is already 0) so that `u = −∞` gives 0, not NaN.
#[inline(always)]
fn u_sigmoid_2z(u: f32x8, z: f32x8) -> f32x8 {
    let e = exp_neg(splat(-2.0) * z.abs());
    let s = z.cmp_lt(splat(0.0)).blend(e, splat(1.0)) / (splat(1.0) + e);
    u.fast_max(splat(-20.0)) * s
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// `gelu_new` (transformers' `NewGELUActivation`): `0.5·u·(1 + tanh(√(2/π)·(u + 0.044715·u³)))`.
#[inline(always)]
fn gelu_new8(u: f32x8) -> f32x8 {
    let z = splat(SQRT_2_OVER_PI) * (u + splat(0.044715) * u * u * u);
    u_sigmoid_2z(u, z)
}

/// `gelu_fast` (`FastGELUActivation`): the same with `tanh(u·√(2/π)·(1 + 0.044715·u²))`.
#[inline(always)]
fn gelu_fast8(u: f32x8) -> f32x8 {
    let z = u * splat(SQRT_2_OVER_PI) * (splat(1.0) + splat(0.044715) * u * u);
    u_sigmoid_2z(u, z)
}

/// In-place LayerNorm over one row, as `torch.nn.LayerNorm` (biased variance). Sums run in
/// 8 lanes, then the lanes and the tail.
pub fn layer_norm(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = x.len() as f32;
    let (body, tail) = x.split_at(x.len() - x.len() % LANES);
    let mut acc = splat(0.0);
    body.chunks_exact(LANES).for_each(|c| acc += load(c));
    let mean = (hsum(acc) + tail.iter().sum::<f32>()) / n;
    let m8 = splat(mean);
    let mut acc = splat(0.0);
    body.chunks_exact(LANES).for_each(|c| {
        let d = load(c) - m8;
        acc += d * d;
    });
    let var = (hsum(acc) + tail.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>()) / n;
    let inv = 1.0 / libm::sqrtf(var + eps);
    let inv8 = splat(inv);
    let split = body.len();
    let (gamma, beta) = (&gamma[..x.len()], &beta[..x.len()]);
    let (xb, xt) = x.split_at_mut(split);
    let lanes = xb.chunks_exact_mut(LANES).zip(gamma.chunks_exact(LANES)).zip(beta.chunks_exact(LANES));
    for ((c, g), b) in lanes {
        store((load(c) - m8) * inv8 * load(g) + load(b), c);
    }
    // The same operations in the same order as the lanes.
    for ((v, &g), &b) in xt.iter_mut().zip(&gamma[split..]).zip(&beta[split..]) {
        *v = (*v - mean) * inv * g + b;
    }
}

/// In-place softmax of one row, max-subtracted for range.
pub fn softmax(x: &mut [f32]) {
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if use_avx512() {
        // SAFETY: the `vnni` kernel was selected, so AVX-512F is present.
        return unsafe { avx512::softmax(x) };
    }
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if use_avx2() {
        // SAFETY: the `avx2` kernel was selected, so AVX2 is present.
        return unsafe { avx2::softmax(x) };
    }
    softmax8(x)
}

/// [`softmax`] on `f32x8`.
fn softmax8(x: &mut [f32]) {
    let mut m8 = splat(f32::NEG_INFINITY);
    let mut chunks = x.chunks_exact(LANES);
    (&mut chunks).for_each(|c| m8 = m8.max(load(c)));
    // f32::max and wide's max both ignore NaN, as the scalar fold did.
    let max = m8.to_array().into_iter().chain(chunks.remainder().iter().copied()).fold(f32::NEG_INFINITY, f32::max);
    let mut sum8 = splat(0.0);
    let max8 = splat(max);
    // Padding lanes are −∞: e^{−∞} = 0 adds nothing to the sum.
    map8(x, f32::NEG_INFINITY, |v| {
        let e = exp_neg(v - max8);
        sum8 += e;
        e
    });
    let inv = splat(1.0 / hsum(sum8));
    map8(x, 0.0, |v| v * inv);
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + libm::expf(-x))
}

/// Applies `act` in place. The tanh forms of GELU (ALBERT's `gelu_new`) run in 8 lanes;
/// the others are scalar `libm`.
pub fn activate(x: &mut [f32], act: Activation) {
    use Activation::*;
    match act {
        Gelu => x.iter_mut().for_each(|v| *v = 0.5 * *v * (1.0 + libm::erff(*v * core::f32::consts::FRAC_1_SQRT_2))),
        GeluNew => {
            #[cfg(all(target_arch = "x86_64", feature = "std"))]
            if use_avx512() {
                // SAFETY: the `vnni` kernel was selected, so AVX-512F is present.
                return unsafe { avx512::gelu_new_slice(x) };
            }
            #[cfg(all(target_arch = "x86_64", feature = "std"))]
            if use_avx2() {
                // SAFETY: the `avx2` kernel was selected, so AVX2 is present.
                return unsafe { avx2::gelu_new_slice(x) };
            }
            map8(x, 0.0, gelu_new8)
        }
        Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
        GeluFast => {
            #[cfg(all(target_arch = "x86_64", feature = "std"))]
            if use_avx512() {
                // SAFETY: as above.
                return unsafe { avx512::gelu_fast_slice(x) };
            }
            #[cfg(all(target_arch = "x86_64", feature = "std"))]
            if use_avx2() {
                // SAFETY: as above.
                return unsafe { avx2::gelu_fast_slice(x) };
            }
            map8(x, 0.0, gelu_fast8)
        }
        QuickGelu => x.iter_mut().for_each(|v| *v *= sigmoid(1.702 * *v)),
        Silu => x.iter_mut().for_each(|v| *v *= sigmoid(*v)),
        Tanh => x.iter_mut().for_each(|v| *v = libm::tanhf(*v)),
        Sigmoid => x.iter_mut().for_each(|v| *v = sigmoid(*v)),
        Linear => {}
    }
}

/// What the AVX-512 and AVX2 quantizers need of an integer type (its store instructions);
/// nothing on targets without those loops.
#[cfg(all(target_arch = "x86_64", feature = "std"))]
pub trait LaneStore: avx512::Store16 + avx2::Store8 {}
#[cfg(all(target_arch = "x86_64", feature = "std"))]
impl<T: avx512::Store16 + avx2::Store8> LaneStore for T {}
#[cfg(not(all(target_arch = "x86_64", feature = "std")))]
pub trait LaneStore {}
#[cfg(not(all(target_arch = "x86_64", feature = "std")))]
impl<T> LaneStore for T {}

/// An integer type activations are quantized to.
pub trait Quant: Copy + LaneStore {
    /// Largest magnitude used (symmetric range, so negation is exact).
    const MAX: f32;
    fn from_f32(v: f32) -> Self;
    /// `v` is an integer in `[-MAX, MAX]`.
    fn from_i32(v: i32) -> Self;
}

impl Quant for i8 {
    const MAX: f32 = 127.0;
    fn from_f32(v: f32) -> Self {
        v as i8
    }
    fn from_i32(v: i32) -> Self {
        v as i8
    }
}

impl Quant for i16 {
    const MAX: f32 = 32767.0;
    fn from_f32(v: f32) -> Self {
        v as i16
    }
    fn from_i32(v: i32) -> Self {
        v as i16
    }
}

/// `min` and `max` of `x ⊙ mul` (NaN ignored, as `f32::min`/`max` do).
fn range(x: &[f32], mul: Option<&[f32]>) -> (f32, f32) {
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if use_avx512() {
        // SAFETY: the `vnni` kernel was selected, so AVX-512F is present.
        return unsafe { avx512::range(x, mul) };
    }
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if use_avx2() {
        // SAFETY: the `avx2` kernel was selected, so AVX2 is present.
        return unsafe { avx2::range(x, mul) };
    }
    range8(x, mul)
}

/// [`range`] on `f32x8`.
fn range8(x: &[f32], mul: Option<&[f32]>) -> (f32, f32) {
    let (mut lo, mut hi) = (splat(f32::INFINITY), splat(f32::NEG_INFINITY));
    let split = x.len() - x.len() % LANES;
    let mut step = |v: f32x8| {
        lo = lo.min(v);
        hi = hi.max(v);
    };
    match mul {
        Some(m) => x[..split].chunks_exact(LANES).zip(m.chunks_exact(LANES)).for_each(|(c, m)| step(load(c) * load(m))),
        None => x[..split].chunks_exact(LANES).for_each(|c| step(load(c))),
    }
    range_finish(lo.to_array(), hi.to_array(), x, mul, split)
}

/// The end of every `range` form: the 8 lanes' minima and maxima folded, then the scalar
/// tail `x[split..]` (times `mul`).
#[inline(always)]
fn range_finish(lo: [f32; LANES], hi: [f32; LANES], x: &[f32], mul: Option<&[f32]>, split: usize) -> (f32, f32) {
    let (mut lo, mut hi) =
        (lo.into_iter().fold(f32::INFINITY, f32::min), hi.into_iter().fold(f32::NEG_INFINITY, f32::max));
    for (k, &v) in x.iter().enumerate().skip(split) {
        let v = v * mul.map_or(1.0, |m| m[k]);
        lo = lo.min(v);
        hi = hi.max(v);
    }
    (lo, hi)
}

/// `round((v − c)·inv)` clamped to `[-max, max]`, NaN to 0, as `i32` lanes: the same
/// integers as `libm::roundf` (half away from zero) then `clamp` then `as`.
#[inline(always)]
fn quantize8(v: f32x8, c: f32x8, inv: f32x8, max: f32x8) -> i32x8 {
    let y = (v - c) * inv;
    let y = y.cmp_eq(y).blend(y, splat(0.0)).fast_max(-max).fast_min(max);
    // |y| ≤ 32767 < 2²²: adding 1.5·2²³ rounds to the nearest integer, ties to even; a tie
    // that went down (|y| − r = ½) goes up instead, i.e. away from zero.
    let a = y.abs();
    let r = (a + splat(ROUND)) - splat(ROUND);
    let r = r + (a - r).cmp_ge(splat(0.5)).blend(splat(1.0), splat(0.0));
    r.copysign(y).fast_round_int()
}

/// Where a row's quantization grid sits (`FORMAT.md`, "Activations").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grid {
    /// `c = 0`, `t = max|x| / MAX`: linears without row sums.
    Symmetric,
    /// Centred on the midpoint of the row's range (`c = (max + min) / 2`, `t = (max − min) /
    /// 2MAX`), which spends every level on the values the row has: half the step for
    /// one-sided rows such as GELU outputs. Activation scheme 1.
    Midpoint,
    /// [`Grid::Midpoint`] with the centre moved onto the grid (`t = (max − min) / (2MAX − 1)`,
    /// `c = t · round(mid / t)`) when the range holds 0, so that 0 is a code and quantizes
    /// exactly. Activation scheme 2. GELU outputs are mostly values a hair below 0; off the
    /// grid they all round the same way, and that shared error adds up in every output.
    ZeroExact,
}

impl Grid {
    /// `(t, c)` of a row whose range is `[lo, hi]`, before the degenerate-row check.
    #[inline]
    fn step_and_centre(self, lo: f32, hi: f32, max: f32) -> (f32, f32) {
        match self {
            Grid::Symmetric => (hi.max(-lo) / max, 0.0),
            Grid::ZeroExact if lo <= 0.0 && hi >= 0.0 => {
                // |mid / t| ≤ MAX − ½, so the centre's code is a small exact integer, and
                // (hi − c) / t ≤ (MAX − ½) + ½: the range still fits.
                let t = (hi - lo) / (2.0 * max - 1.0);
                (t, t * libm::roundf(0.5 * (hi + lo) / t))
            }
            Grid::Midpoint | Grid::ZeroExact => ((hi - lo) / (2.0 * max), 0.5 * (hi + lo)),
        }
    }
}

/// Quantizes one activation row (`FORMAT.md`, "Quantization"): `x ⊙ mul` (`mul` optional,
/// per channel) becomes `q` with `x ⊙ mul ≈ t · q + c`, the grid placed as `grid` says.
/// Returns `(t, c)`.
pub fn quantize_row<T: Quant>(x: &[f32], mul: Option<&[f32]>, grid: Grid, q: &mut [T]) -> (f32, f32) {
    quantize_row_to(x, mul, grid, T::MAX, q)
}

/// [`quantize_row`] onto the codes `[-max, max]` (`max` an integer ≤ `T::MAX`): 63 for the
/// 7-bit activations of `quantize --act7` linears.
pub fn quantize_row_to<T: Quant>(x: &[f32], mul: Option<&[f32]>, grid: Grid, max: f32, q: &mut [T]) -> (f32, f32) {
    debug_assert!(max >= 1.0 && max <= T::MAX && libm::truncf(max) == max);
    let max = max.clamp(1.0, T::MAX);
    let (lo, hi) = range(x, mul);
    let (t, c) = grid.step_and_centre(lo, hi, max);
    let centred = grid != Grid::Symmetric;
    if !(t > 0.0 && t.is_finite() && c.is_finite()) {
        // All equal (or empty, or not finite): represent the row by its centre alone.
        q.iter_mut().for_each(|v| *v = T::from_f32(0.0));
        let c = if centred && c.is_finite() { c } else { 0.0 };
        return (1.0, c);
    }
    let inv = 1.0 / t;
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if use_avx512() {
        // SAFETY: the `vnni` kernel was selected, so AVX-512F is present.
        unsafe { avx512::quantize_into(x, mul, c, inv, max, q) };
        return (t, c);
    }
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if use_avx2() {
        // SAFETY: the `avx2` kernel was selected, so AVX2 is present.
        unsafe { avx2::quantize_into(x, mul, c, inv, max, q) };
        return (t, c);
    }
    quantize_into8(x, mul, c, inv, max, q);
    (t, c)
}

/// The quantizing loop of [`quantize_row`] on `f32x8`, and the tail in the scalar form.
fn quantize_into8<T: Quant>(x: &[f32], mul: Option<&[f32]>, c: f32, inv: f32, max: f32, q: &mut [T]) {
    let (c8, inv8, max8) = (splat(c), splat(inv), splat(max));
    let split = x.len() - x.len() % LANES;
    let put = |d: &mut [T], i: i32x8| d.iter_mut().zip(i.to_array()).for_each(|(d, v)| *d = T::from_i32(v));
    let qb = q[..split].chunks_exact_mut(LANES);
    match mul {
        Some(m) => qb
            .zip(x.chunks_exact(LANES).zip(m.chunks_exact(LANES)))
            .for_each(|(d, (v, m))| put(d, quantize8(load(v) * load(m), c8, inv8, max8))),
        None => qb.zip(x.chunks_exact(LANES)).for_each(|(d, v)| put(d, quantize8(load(v), c8, inv8, max8))),
    }
    quantize_tail(x, mul, c, inv, max, q, split);
}

/// The scalar form of `quantize8` (what `quantize_row` computed before it had lanes), for
/// the tail `split..` that every lane form leaves.
#[inline(always)]
fn quantize_tail<T: Quant>(x: &[f32], mul: Option<&[f32]>, c: f32, inv: f32, max: f32, q: &mut [T], split: usize) {
    for k in split..x.len() {
        let v = x[k] * mul.map_or(1.0, |m| m[k]);
        q[k] = T::from_f32(libm::roundf((v - c) * inv).clamp(-max, max));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// f32 values spread over the whole range: every `step`-th bit pattern of both signs,
    /// every 1/4096 in [-16, 16] (where the activations live), plus the specials.
    fn sweep(step: u32) -> impl Iterator<Item = f32> {
        let dense = (-65536..=65536).map(|i| i as f32 / 4096.0);
        let specials = [0.0, -0.0, f32::MIN_POSITIVE, f32::MAX, f32::MIN, f32::EPSILON, 0.5, -0.5, 1.0, -1.0];
        (0..0x7f80_0000u32)
            .step_by(step as usize)
            .flat_map(|b| [f32::from_bits(b), -f32::from_bits(b)])
            .chain(dense)
            .chain(specials)
    }

    /// Runs a lane function on one value (in lane 3, the others arbitrary).
    fn lane(f: impl Fn(f32x8) -> f32x8, x: f32) -> f32 {
        f(f32x8::new([1.0, -2.0, 3.0, x, 0.0, 7.0, -9.0, 0.25])).to_array()[3]
    }

    /// `gelu_new` in f64, as `u·σ(2z)`: the same function as `0.5·u·(1 + tanh z)`, without the
    /// cancellation that makes the tanh form lose all digits in f64 too below u ≈ −9.
    fn gelu_new_f64(u: f64) -> f64 {
        let z = (2.0 / core::f64::consts::PI).sqrt() * (u + 0.044715 * u * u * u);
        u / (1.0 + libm::exp(-2.0 * z))
    }

    /// Relative error, with results below `floor` compared absolutely (there the f32 result
    /// itself is subnormal or flushed).
    fn rel_err(got: f32, want: f64, floor: f64) -> f64 {
        (got as f64 - want).abs() / want.abs().max(floor)
    }

    #[test]
    fn exp_neg_is_within_two_ulp_of_f64_over_its_range() {
        let mut worst = (0.0f64, 0.0f32);
        for x in sweep(251).filter(|&x| x <= 0.0).chain([f32::NEG_INFINITY, -87.33, -87.34, -1e-30]) {
            let got = lane(exp_neg, x);
            let want = libm::exp(x as f64);
            assert!(got.is_finite() && got >= 0.0, "exp({x}) = {got}");
            if want < f32::MIN_POSITIVE as f64 {
                assert!(got == 0.0 || got == f32::MIN_POSITIVE || want > 1e-38, "exp({x}) = {got}");
                continue;
            }
            let e = rel_err(got, want, 0.0);
            if e > worst.0 {
                worst = (e, x);
            }
        }
        println!("exp_neg: worst relative error {:.3e} (2^-23 = 1.19e-7) at {}", worst.0, worst.1);
        assert!(worst.0 <= 2.0 * f32::EPSILON as f64, "{worst:?}");
        assert!(lane(exp_neg, f32::NAN).is_nan());
        assert_eq!(lane(exp_neg, 0.0), 1.0);
    }

    #[test]
    fn gelu_new_lanes_track_the_f64_formula_over_the_whole_range() {
        // Relative error where |gelu| ≥ 1e-30, absolute below (the tail for u < −9.6, where
        // the result underflows anyway). The bound grows with |z| because an error of one
        // f32 rounding in z (inevitable: z is computed in f32) moves σ(2z) by 2|z|·2⁻²⁴ relative.
        let (mut worst_bulk, mut worst_tail, mut worst_abs) = ((0.0f64, 0.0f32), (0.0f64, 0.0f32), 0.0f64);
        for u in sweep(997) {
            let got = lane(gelu_new8, u);
            assert!(!got.is_nan(), "gelu_new({u}) is NaN");
            let want = gelu_new_f64(u as f64);
            if !want.is_finite() {
                assert_eq!(got, want as f32, "gelu_new({u})");
                continue;
            }
            let z = (0.797_884_560_802_865_4 * (u as f64 + 0.044715 * (u as f64).powi(3))).abs();
            if want.abs() < 1e-30 {
                worst_abs = worst_abs.max((got as f64 - want).abs());
                continue;
            }
            let e = rel_err(got, want, 0.0);
            let bound = 4.0 * f32::EPSILON as f64 * (1.0 + z);
            assert!(e <= bound, "gelu_new({u}) = {got}, want {want}: relative error {e:e} > {bound:e}");
            let w = if u.abs() <= 3.0 { &mut worst_bulk } else { &mut worst_tail };
            if e > w.0 {
                *w = (e, u);
            }
        }
        println!(
            "gelu_new: worst relative error {:.3e} at {} for |u| <= 3, {:.3e} at {} beyond; worst absolute error {:.1e} where |gelu| < 1e-30",
            worst_bulk.0, worst_bulk.1, worst_tail.0, worst_tail.1, worst_abs
        );
        assert!(worst_abs <= 1e-30, "{worst_abs:e}");
        assert_eq!(lane(gelu_new8, f32::INFINITY), f32::INFINITY);
        assert_eq!(lane(gelu_new8, f32::NEG_INFINITY), 0.0);
        assert_eq!(lane(gelu_new8, -1e30), 0.0);
        assert_eq!(lane(gelu_new8, 1e30), 1e30);
        assert!(lane(gelu_new8, f32::NAN).is_nan());
    }

    #[test]
    fn gelu_fast_tracks_the_same_f64_formula() {
        // `gelu_fast` is `gelu_new` with z factored differently: the same bound applies.
        for u in sweep(4999) {
            let got = lane(gelu_fast8, u);
            assert!(!got.is_nan(), "gelu_fast({u}) is NaN");
            let want = gelu_new_f64(u as f64);
            if !want.is_finite() || want.abs() < 1e-30 {
                assert!(want.is_finite() || got == want as f32, "gelu_fast({u}) = {got}");
                assert!(!want.is_finite() || (got as f64 - want).abs() <= 1e-30, "gelu_fast({u}) = {got}");
                continue;
            }
            let z = (0.797_884_560_802_865_4 * (u as f64 + 0.044715 * (u as f64).powi(3))).abs();
            let bound = 4.0 * f32::EPSILON as f64 * (1.0 + z);
            assert!(rel_err(got, want, 0.0) <= bound, "gelu_fast({u}) = {got}, want {want}");
        }
    }

    #[test]
    fn element_wise_results_do_not_depend_on_where_the_slice_is_cut() {
        let x: Vec<f32> = (0..37).map(|i| (i as f32 - 18.0) * 0.37).collect();
        for act in [Activation::GeluNew, Activation::GeluFast] {
            let mut whole = x.clone();
            activate(&mut whole, act);
            for cut in 0..x.len() {
                let mut parts = x.clone();
                let (a, b) = parts.split_at_mut(cut);
                activate(a, act);
                activate(b, act);
                assert_eq!(
                    whole.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    parts.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                );
            }
        }
    }

    /// A xorshift32 stream from `seed` (non-zero).
    fn xorshift(mut s: u32) -> impl FnMut() -> u32 {
        move || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        }
    }

    /// The scalar `quantize_row` this file had before it used lanes: the oracle.
    fn quantize_row_scalar<T: Quant>(x: &[f32], mul: Option<&[f32]>, grid: Grid, q: &mut [T]) -> (f32, f32) {
        quantize_row_scalar_to(x, mul, grid, T::MAX, q)
    }

    /// [`quantize_row_scalar`] onto `[-max, max]`.
    fn quantize_row_scalar_to<T: Quant>(
        x: &[f32],
        mul: Option<&[f32]>,
        grid: Grid,
        max: f32,
        q: &mut [T],
    ) -> (f32, f32) {
        let centred = grid != Grid::Symmetric;
        let m = |k: usize| mul.map_or(1.0, |m| m[k]);
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        for (k, &v) in x.iter().enumerate() {
            let v = v * m(k);
            lo = lo.min(v);
            hi = hi.max(v);
        }
        let (t, c) = match grid {
            Grid::Symmetric => (hi.max(-lo) / max, 0.0),
            Grid::ZeroExact if lo <= 0.0 && hi >= 0.0 => {
                let t = (hi - lo) / (2.0 * max - 1.0);
                (t, t * libm::roundf(0.5 * (hi + lo) / t))
            }
            _ => ((hi - lo) / (2.0 * max), 0.5 * (hi + lo)),
        };
        if !(t > 0.0 && t.is_finite() && c.is_finite()) {
            q.iter_mut().for_each(|v| *v = T::from_f32(0.0));
            return (1.0, if centred && c.is_finite() { c } else { 0.0 });
        }
        let inv = 1.0 / t;
        for (k, (d, &v)) in q.iter_mut().zip(x).enumerate() {
            *d = T::from_f32(libm::roundf((v * m(k) - c) * inv).clamp(-max, max));
        }
        (t, c)
    }

    #[test]
    fn quantize_row_lanes_equal_the_scalar_form() {
        let mut next = xorshift(0x9e37_79b9);
        for case in 0..3000 {
            let len = case % 41;
            let mut x: Vec<f32> = (0..len).map(|_| (next() % 20001) as f32 / 100.0 - 100.0).collect();
            // Exact ties: with max 127 and t = 1, values k + ½ quantize at a half step.
            if case % 5 == 0 && len > 2 {
                x[0] = 127.0;
                x[1] = -127.0;
                for v in &mut x[2..] {
                    *v = (next() % 253) as f32 - 126.5;
                }
            }
            if case % 97 == 0 && len > 3 {
                x[len / 2] = f32::NAN;
            }
            let mul: Vec<f32> = (0..len).map(|_| 0.5 + (next() % 100) as f32 / 50.0).collect();
            // One-sided rows too, so that ZeroExact takes both of its branches.
            if case % 7 == 1 {
                x.iter_mut().for_each(|v| *v = v.abs() + 0.25);
            }
            for grid in [Grid::Symmetric, Grid::Midpoint, Grid::ZeroExact] {
                for m in [None, Some(&mul[..])] {
                    let (mut a, mut b) = (vec![0i8; len], vec![0i8; len]);
                    assert_eq!(quantize_row(&x, m, grid, &mut a), quantize_row_scalar(&x, m, grid, &mut b));
                    assert_eq!(a, b, "case {case} {grid:?}");
                    let (mut a, mut b) = (vec![0i16; len], vec![0i16; len]);
                    assert_eq!(quantize_row(&x, m, grid, &mut a), quantize_row_scalar(&x, m, grid, &mut b));
                    assert_eq!(a, b, "case {case} {grid:?} (i16)");
                    // 7-bit activations (`--act7`): codes within ±63.
                    let (mut a, mut b) = (vec![0i8; len], vec![0i8; len]);
                    let got = quantize_row_to(&x, m, grid, 63.0, &mut a);
                    assert_eq!(got, quantize_row_scalar_to(&x, m, grid, 63.0, &mut b));
                    assert_eq!(a, b, "case {case} {grid:?} (7 bits)");
                    assert!(a.iter().all(|v| (-63..=63).contains(v)), "case {case} {grid:?}: {a:?}");
                }
            }
        }
    }

    /// The body of the `*_loops_equal_the_portable_ones_bit_for_bit` tests: module `$m`'s
    /// loops give the portable loops' bits: GELU over the sweep, softmax, range and
    /// quantization over rows of every length up to 300 (NaN, ±∞, masked −∞, exact rounding
    /// ties among them).
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    macro_rules! loops_equal_portable {
        ($m:ident) => {{
            let same = |a: &[f32], b: &[f32]| {
                a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
                    && a.len() == b.len()
            };
            let xs: Vec<f32> = sweep(1 << 14).collect();
            for (name, f8, f16) in [
                ("gelu_new", gelu_new8 as fn(f32x8) -> f32x8, $m::gelu_new_slice as unsafe fn(&mut [f32])),
                ("gelu_fast", gelu_fast8, $m::gelu_fast_slice),
            ] {
                for cut in [0usize, 1, 5, 8, 15] {
                    let (mut a, mut b) = (xs[cut..].to_vec(), xs[cut..].to_vec());
                    map8(&mut a, 0.0, f8);
                    // SAFETY: the features detected above.
                    unsafe { f16(&mut b) };
                    assert!(same(&a, &b), "{name} cut {cut}");
                }
            }
            let mut next = xorshift(0x2545_f491);
            for len in 0..=300usize {
                for variant in 0..4 {
                    let mut x: Vec<f32> = (0..len).map(|_| (next() % 40001) as f32 / 1000.0 - 20.0).collect();
                    if variant == 1 {
                        x.iter_mut().step_by(3).for_each(|v| *v = f32::MIN);
                    }
                    if variant == 2 && len > 0 {
                        let at = next() as usize % len;
                        x[at] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][len % 3];
                    }
                    if variant == 3 {
                        x.iter_mut().for_each(|v| *v = v.round() + 0.5);
                    }
                    let (mut a, mut b) = (x.clone(), x.clone());
                    softmax8(&mut a);
                    // SAFETY: the features detected above.
                    unsafe { $m::softmax(&mut b) };
                    assert!(same(&a, &b), "softmax len {len} variant {variant}");
                    let mul: Vec<f32> = (0..len).map(|_| 0.25 + (next() % 100) as f32 / 25.0).collect();
                    for m in [None, Some(&mul[..])] {
                        let (lo, hi) = range8(&x, m);
                        // SAFETY: the features detected above.
                        let (lo2, hi2) = unsafe { $m::range(&x, m) };
                        assert!(same(&[lo, hi], &[lo2, hi2]), "range len {len} variant {variant}");
                        let (c, inv) = (0.5 * (hi + lo), 127.0 / (hi - lo).max(1e-3));
                        for (max, scale) in [(127.0, 1.0), (63.0, 0.5)] {
                            let (mut a, mut b) = (vec![0i8; len], vec![0i8; len]);
                            quantize_into8(&x, m, c, scale * inv, max, &mut a);
                            // SAFETY: the features detected above.
                            unsafe { $m::quantize_into(&x, m, c, scale * inv, max, &mut b) };
                            assert_eq!(a, b, "quantize i8 (max {max}) len {len} variant {variant}");
                        }
                        let (mut a, mut b) = (vec![0i16; len], vec![0i16; len]);
                        quantize_into8(&x, m, c, 257.0 * inv, 32767.0, &mut a);
                        // SAFETY: the features detected above.
                        unsafe { $m::quantize_into(&x, m, c, 257.0 * inv, 32767.0, &mut b) };
                        assert_eq!(a, b, "quantize i16 len {len} variant {variant}");
                    }
                }
            }
        }};
    }

    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    #[test]
    fn avx512_loops_equal_the_portable_ones_bit_for_bit() {
        if !std::is_x86_feature_detected!("avx512f") {
            // Not a pass: say so in the output (CI's machines have AVX-512).
            eprintln!("NOT RUN: this CPU has no AVX-512F");
            return;
        }
        loops_equal_portable!(avx512)
    }

    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    #[test]
    fn avx2_loops_equal_the_portable_ones_bit_for_bit() {
        // Every x86_64 machine CI runs on has AVX2: fail rather than skip.
        assert!(std::is_x86_feature_detected!("avx2"), "this CPU has no AVX2: the AVX2 loops cannot be checked");
        loops_equal_portable!(avx2)
    }

    #[test]
    fn softmax_and_layer_norm_track_f64() {
        for len in [1usize, 7, 8, 13, 64, 128, 130] {
            let x: Vec<f32> = (0..len).map(|i| ((i * 37) % 23) as f32 * 0.7 - 6.0).collect();
            let mut s = x.clone();
            softmax(&mut s);
            let max = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
            let sum: f64 = x.iter().map(|&v| libm::exp(v as f64 - max)).sum();
            for (&g, &v) in s.iter().zip(&x) {
                let want = libm::exp(v as f64 - max) / sum;
                assert!(rel_err(g, want, 0.0) < 1e-6, "softmax len {len}: {g} vs {want}");
            }
            let gamma: Vec<f32> = (0..len).map(|i| 1.0 + i as f32 * 0.01).collect();
            let beta: Vec<f32> = (0..len).map(|i| i as f32 * -0.02).collect();
            let mut l = x.clone();
            layer_norm(&mut l, &gamma, &beta, 1e-12);
            let mean = x.iter().map(|&v| v as f64).sum::<f64>() / len as f64;
            let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / len as f64;
            for k in 0..len {
                let want = (x[k] as f64 - mean) / (var + 1e-12).sqrt() * gamma[k] as f64 + beta[k] as f64;
                assert!(
                    (l[k] as f64 - want).abs() < 2e-6 * (1.0 + want.abs()),
                    "layer_norm len {len} [{k}]: {} vs {want}",
                    l[k]
                );
            }
        }
    }

    #[test]
    fn layer_norm_normalises() {
        let mut x = [1.0, 2.0, 3.0, 4.0];
        layer_norm(&mut x, &[1.0; 4], &[0.0; 4], 1e-12);
        let mean: f32 = x.iter().sum::<f32>() / 4.0;
        let var: f32 = x.iter().map(|v| v * v).sum::<f32>() / 4.0;
        assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5, "{x:?}");
    }

    #[test]
    fn softmax_sums_to_one_and_survives_large_inputs() {
        let mut x = [1000.0, 999.0, f32::MIN, 0.0];
        softmax(&mut x);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(x[0] > x[1] && x[2] == 0.0);
    }

    #[test]
    fn quantize_row_round_trips_within_half_a_step() {
        let x = [0.5, -1.27, 0.0, 1.0, -0.01];
        for grid in [Grid::Symmetric, Grid::Midpoint, Grid::ZeroExact] {
            let mut q = [0i8; 5];
            let (t, c) = quantize_row(&x, None, grid, &mut q);
            assert!(q[1] == -127 || (grid == Grid::ZeroExact && q[1] == -126), "{grid:?} {q:?}");
            for (a, &b) in x.iter().zip(&q) {
                assert!((a - (t * b as f32 + c)).abs() <= t / 2.0 + 1e-6, "{grid:?}");
            }
        }
        let mut z = [5i8; 3];
        assert_eq!(quantize_row(&[0.0; 3], None, Grid::Symmetric, &mut z), (1.0, 0.0));
        assert_eq!(z, [0; 3]);
        assert_eq!(quantize_row(&[2.0; 3], None, Grid::Midpoint, &mut z), (1.0, 2.0));
        assert_eq!(quantize_row(&[2.0; 3], None, Grid::ZeroExact, &mut z), (1.0, 2.0));
    }

    /// Activation scheme 2: wherever a row's range holds 0, 0 gets a code of its own
    /// (`t·q + c` is exactly 0), every value stays within half a step, and the range fits
    /// without clipping; a row that does not hold 0 keeps the midpoint rule.
    #[test]
    fn zero_on_grid_quantizes_zero_exactly() {
        let mut next = xorshift(0x2545_f491);
        for case in 0..2000 {
            let len = 2 + case % 37;
            // GELU-like rows (a bulk a hair below 0, a few large values) and plain ones.
            let scale = [1e-3f32, 0.17, 1.0, 40.0, 3e4][case % 5];
            let mut x: Vec<f32> = (0..len).map(|_| ((next() % 20001) as f32 / 10000.0 - 1.0) * scale).collect();
            x[case % len] = 0.0;
            if case % 3 == 0 {
                x.iter_mut().for_each(|v| *v = -v.abs() * 1e-3);
                x[(case + 1) % len] = scale * 7.0;
            }
            let (mut q, mut q16) = (vec![0i8; len], vec![0i16; len]);
            for (t, c, codes) in [
                {
                    let (t, c) = quantize_row(&x, None, Grid::ZeroExact, &mut q);
                    (t, c, q.iter().map(|&v| v as i32).collect::<Vec<_>>())
                },
                {
                    let (t, c) = quantize_row(&x, None, Grid::ZeroExact, &mut q16);
                    (t, c, q16.iter().map(|&v| v as i32).collect::<Vec<_>>())
                },
            ] {
                for (&v, &p) in x.iter().zip(&codes) {
                    let back = t * p as f32 + c;
                    if v == 0.0 {
                        assert_eq!(back, 0.0, "case {case}: 0 came back as {back} (t {t}, c {c})");
                    }
                    // Half a step, plus the f32 roundings of `t·p + c` itself.
                    let slack = 2.0 * f32::EPSILON * (c.abs() + (t * p as f32).abs());
                    assert!((v - back).abs() <= 0.5 * t * (1.0 + 1e-4) + slack, "case {case}: {v} -> {back}");
                }
            }
        }
        // Off zero: the midpoint rule's grid, unchanged.
        let x = [1.0f32, 2.0, 3.5];
        let (mut a, mut b) = ([0i8; 3], [0i8; 3]);
        assert_eq!(quantize_row(&x, None, Grid::ZeroExact, &mut a), quantize_row(&x, None, Grid::Midpoint, &mut b));
        assert_eq!(a, b);
        // The midpoint rule puts 0 between two codes on a GELU-like row.
        let (x, mut q) = ([-0.17f32, -1e-4, 0.0, 2.5], [0i8; 4]);
        let (t, c) = quantize_row(&x, None, Grid::Midpoint, &mut q);
        assert_ne!(t * q[2] as f32 + c, 0.0);
    }

    #[test]
    fn centred_quantization_halves_the_step_of_one_sided_rows() {
        let x: Vec<f32> = (0..100).map(|i| i as f32 / 99.0 - 0.1).collect();
        let mut q = vec![0i8; 100];
        let (ts, _) = quantize_row(&x, None, Grid::Symmetric, &mut q);
        let (tc, c) = quantize_row(&x, None, Grid::Midpoint, &mut q);
        assert!(tc < 0.6 * ts && (c - 0.4).abs() < 1e-6, "{tc} {ts} {c}");
        let mut q16 = vec![0i16; 100];
        let mul = vec![2.0; 100];
        let (t16, _) = quantize_row(&x, Some(&mul), Grid::Symmetric, &mut q16);
        assert!((t16 - 2.0 * 0.9 / 32767.0).abs() < 1e-9);
    }

    #[test]
    fn gelu_variants_match_known_values() {
        let mut a = [1.0f32, -1.0];
        activate(&mut a, Activation::Gelu);
        assert!((a[0] - 0.841_344_7).abs() < 1e-6 && (a[1] + 0.158_655_3).abs() < 1e-6);
        let mut b = [1.0f32];
        activate(&mut b, Activation::GeluNew);
        assert!((b[0] - 0.841_192).abs() < 1e-5);
    }
}
