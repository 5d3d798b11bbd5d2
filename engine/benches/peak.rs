//! Peak throughput of the multiply-add instructions the kernels are built on, so that the
//! GEMM bench's figures can be read as a fraction of what one core can do.
//!
//! `cargo bench -p albert-engine --bench peak`. Each probe runs independent chains of one
//! instruction on registers only (enough chains to cover its latency on current cores), no
//! loads; every step depends on the previous one of its chain, so nothing is hoisted. Throughput is in elements/s with one element = one integer or float operation (a
//! multiply-add is 2), the unit of the `gemm` bench: efficiency = GEMM Gelem/s ÷ probe
//! Gelem/s on the same machine.
//!
//! | probe | instruction(s) per step | multiply-adds | used by |
//! |---|---|---|---|
//! | `vpdpbusd_zmm` | `vpdpbusd` zmm | 64 | `vnni` int8 GEMM |
//! | `vpdpbusd_ymm` | `vpdpbusd` ymm (VEX) | 32 | `avxvnni` int8 GEMM |
//! | `vpdpwssd_zmm` | `vpdpwssd` zmm | 32 | `vnni` int16 × int8 GEMM |
//! | `vpmaddwd_ymm` | `vpmaddwd` + `vpaddd` ymm | 16 | `avx2` kernels, `wide` built with `+avx2` |
//! | `fma_f32_ymm` | `vfmadd231ps` ymm | 8 | f32 (attention, if contracted) |
//! | `mul_add_f32_zmm` | `vmulps` + `vaddps` zmm | 16 | f32 attention as built (`kernels::attention`: no contraction, so the same bits on every build) |
//! | `sdot` | `sdot` v.4s | 16 | `sdot` (aarch64; compiled, measured on an aarch64 host) |
//! | `smull_sadalp` | `smull` + `smull2` + 2 `sadalp` | 16 | `neon` |
//! | `fmla_f32` | `fmla` v.4s | 4 | f32 on aarch64 |
//!
//! Probes the CPU lacks are skipped with a line on stderr (a bench, not a test).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// Steps per probe call: long enough that the call overhead vanishes.
const STEPS: usize = 4096;
/// Independent accumulators: latency (≤ 5 cycles) × issue width (≤ 2 per cycle) rounded up.
const CHAINS: usize = 12;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{CHAINS, STEPS};
    use core::arch::x86_64::*;

    /// # Safety
    /// AVX-512 F and VNNI present.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub unsafe fn vpdpbusd_zmm(a: i8, b: i8) -> i32 {
        let (va, vb) = (_mm512_set1_epi8(a), _mm512_set1_epi8(b));
        let mut acc = [_mm512_setzero_si512(); CHAINS];
        for _ in 0..STEPS {
            for r in acc.iter_mut() {
                *r = _mm512_dpbusd_epi32(*r, va, vb);
            }
        }
        let s = acc.iter().fold(_mm512_setzero_si512(), |s, &r| _mm512_add_epi32(s, r));
        _mm512_reduce_add_epi32(s)
    }

    /// # Safety
    /// AVX2 and AVX-VNNI present.
    #[target_feature(enable = "avx2,avxvnni")]
    pub unsafe fn vpdpbusd_ymm(a: i8, b: i8) -> i32 {
        let (va, vb) = (_mm256_set1_epi8(a), _mm256_set1_epi8(b));
        let mut acc = [_mm256_setzero_si256(); CHAINS];
        for _ in 0..STEPS {
            for r in acc.iter_mut() {
                *r = _mm256_dpbusd_avx_epi32(*r, va, vb);
            }
        }
        let s = acc.iter().fold(_mm256_setzero_si256(), |s, &r| _mm256_add_epi32(s, r));
        _mm256_extract_epi32::<0>(s)
    }

    /// # Safety
    /// AVX-512 F and VNNI present.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub unsafe fn vpdpwssd_zmm(a: i16, b: i16) -> i32 {
        let (va, vb) = (_mm512_set1_epi16(a), _mm512_set1_epi16(b));
        let mut acc = [_mm512_setzero_si512(); CHAINS];
        for _ in 0..STEPS {
            for r in acc.iter_mut() {
                *r = _mm512_dpwssd_epi32(*r, va, vb);
            }
        }
        let s = acc.iter().fold(_mm512_setzero_si512(), |s, &r| _mm512_add_epi32(s, r));
        _mm512_reduce_add_epi32(s)
    }

    /// # Safety
    /// AVX2 present.
    #[target_feature(enable = "avx2")]
    pub unsafe fn vpmaddwd_ymm(a: i16, b: i16) -> i32 {
        let (va, vb) = (_mm256_set1_epi16(a), _mm256_set1_epi16(b));
        let mut acc = [_mm256_setzero_si256(); CHAINS];
        for _ in 0..STEPS {
            for r in acc.iter_mut() {
                // `asm!`: with intrinsics, `madd(va, vb)` is loop invariant and was hoisted,
                // leaving only the adds to measure.
                // SAFETY: register-only AVX2 instructions, enabled on this function.
                unsafe {
                    core::arch::asm!(
                        "vpmaddwd {t}, {a}, {b}",
                        "vpaddd {acc}, {acc}, {t}",
                        acc = inout(ymm_reg) *r,
                        a = in(ymm_reg) va,
                        b = in(ymm_reg) vb,
                        t = out(ymm_reg) _,
                        options(nomem, nostack, preserves_flags),
                    );
                }
            }
        }
        let s = acc.iter().fold(_mm256_setzero_si256(), |s, &r| _mm256_add_epi32(s, r));
        _mm256_extract_epi32::<0>(s)
    }

    /// # Safety
    /// AVX2 and FMA present.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma_f32_ymm(a: f32, b: f32) -> f32 {
        let (va, vb) = (_mm256_set1_ps(a), _mm256_set1_ps(b));
        let mut acc = [_mm256_setzero_ps(); CHAINS];
        for _ in 0..STEPS {
            for r in acc.iter_mut() {
                *r = _mm256_fmadd_ps(va, vb, *r);
            }
        }
        let s = acc.iter().fold(_mm256_setzero_ps(), |s, &r| _mm256_add_ps(s, r));
        _mm256_cvtss_f32(s)
    }

    /// `r = r·a + b` as two roundings (`vmulps`, then `vaddps`), as the attention loops
    /// compute: a step of a chain waits on both, 12 chains keep both ports busy.
    ///
    /// # Safety
    /// AVX-512F present.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn mul_add_f32_zmm(a: f32, b: f32) -> f32 {
        let (va, vb) = (_mm512_set1_ps(a), _mm512_set1_ps(b));
        let mut acc = [_mm512_setzero_ps(); CHAINS];
        for _ in 0..STEPS {
            for r in acc.iter_mut() {
                *r = _mm512_add_ps(_mm512_mul_ps(*r, va), vb);
            }
        }
        let s = acc.iter().fold(_mm512_setzero_ps(), |s, &r| _mm512_add_ps(s, r));
        _mm512_reduce_add_ps(s)
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use super::{CHAINS, STEPS};
    use core::arch::aarch64::*;
    use core::arch::asm;

    /// # Safety
    /// NEON and dotprod present.
    #[target_feature(enable = "neon,dotprod")]
    pub unsafe fn sdot(a: i8, b: i8) -> i32 {
        let (va, vb) = (vdupq_n_s8(a), vdupq_n_s8(b));
        let mut acc = [vdupq_n_s32(0); CHAINS];
        for _ in 0..STEPS {
            for r in acc.iter_mut() {
                // SAFETY: register-only instruction of a feature this function enables.
                unsafe {
                    asm!("sdot {0:v}.4s, {1:v}.16b, {2:v}.16b", inout(vreg) *r, in(vreg) va, in(vreg) vb,
                         options(pure, nomem, nostack, preserves_flags));
                }
            }
        }
        acc.iter().fold(0, |s, &r| s.wrapping_add(vaddvq_s32(r)))
    }

    /// # Safety
    /// NEON present.
    #[target_feature(enable = "neon")]
    pub unsafe fn smull_sadalp(a: i8, b: i8) -> i32 {
        let vb = vdupq_n_s8(b);
        let mut acc = [vreinterpretq_s32_s8(vdupq_n_s8(a)); CHAINS];
        for _ in 0..STEPS {
            for r in acc.iter_mut() {
                // The accumulator's bytes are the multiplicand, so the products depend on
                // the chain and are not hoisted out of the loop.
                let va = vreinterpretq_s8_s32(*r);
                let lo = vmull_s8(vget_low_s8(va), vget_low_s8(vb));
                let hi = vmull_high_s8(va, vb);
                *r = vpadalq_s16(vpadalq_s16(*r, lo), hi);
            }
        }
        acc.iter().fold(0, |s, &r| s.wrapping_add(vaddvq_s32(r)))
    }

    /// # Safety
    /// NEON present.
    #[target_feature(enable = "neon")]
    pub unsafe fn fmla_f32(a: f32, b: f32) -> f32 {
        let (va, vb) = (vdupq_n_f32(a), vdupq_n_f32(b));
        let mut acc = [vdupq_n_f32(0.0); CHAINS];
        for _ in 0..STEPS {
            for r in acc.iter_mut() {
                *r = vfmaq_f32(*r, va, vb);
            }
        }
        acc.iter().fold(0.0, |s, &r| s + vaddvq_f32(r))
    }
}

/// A probe: name, multiply-adds per step and chain, whether this CPU has it, and a call.
type Probe = (&'static str, u64, bool, fn() -> f64);

fn probes() -> Vec<Probe> {
    #[allow(unused_mut)]
    let mut v: Vec<Probe> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let vnni = has!("avx512f") && has!("avx512vnni");
        // SAFETY (each call): the probe runs only where `has` was true (`run` checks).
        v.push(("vpdpbusd_zmm", 64, vnni, || unsafe { x86::vpdpbusd_zmm(black_box(3), black_box(5)) } as f64));
        let avxvnni = has!("avx2") && has!("avxvnni");
        v.push(("vpdpbusd_ymm", 32, avxvnni, || unsafe { x86::vpdpbusd_ymm(black_box(3), black_box(5)) } as f64));
        v.push(("vpdpwssd_zmm", 32, vnni, || unsafe { x86::vpdpwssd_zmm(black_box(3), black_box(5)) } as f64));
        v.push(("vpmaddwd_ymm", 16, has!("avx2"), || unsafe { x86::vpmaddwd_ymm(black_box(3), black_box(5)) } as f64));
        let fma = has!("avx2") && has!("fma");
        v.push(("fma_f32_ymm", 8, fma, || unsafe { x86::fma_f32_ymm(black_box(1e-9), black_box(1e-9)) } as f64));
        let avx512 = has!("avx512f");
        v.push(
            ("mul_add_f32_zmm", 16, avx512, || unsafe { x86::mul_add_f32_zmm(black_box(0.5), black_box(1e-9)) } as f64)
        );
    }
    #[cfg(target_arch = "aarch64")]
    {
        use std::arch::is_aarch64_feature_detected as has;
        // SAFETY (each call): the probe runs only where `has` was true (`run` checks).
        v.push(("sdot", 16, has!("dotprod"), || unsafe { arm::sdot(black_box(3), black_box(5)) } as f64));
        v.push(("smull_sadalp", 16, has!("neon"), || unsafe { arm::smull_sadalp(black_box(3), black_box(5)) } as f64));
        v.push(("fmla_f32", 4, has!("neon"), || unsafe { arm::fmla_f32(black_box(1e-9), black_box(1e-9)) } as f64));
    }
    v
}

fn peak(c: &mut Criterion) {
    let mut g = c.benchmark_group("peak");
    g.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1));
    for (name, macs, present, call) in probes() {
        if !present {
            eprintln!("peak/{name}: not supported by this CPU, skipped");
            continue;
        }
        g.throughput(Throughput::Elements(2 * macs * (STEPS * CHAINS) as u64));
        g.bench_function(BenchmarkId::from_parameter(name), |b| b.iter(|| black_box(call())));
    }
    g.finish();
}

criterion_group!(benches, peak);
criterion_main!(benches);
