//! The instruction mix of an exact AVX2 int8 GEMM against ONNX Runtime's saturating one,
//! on the same data layouts, outside the engine (`engine/src/kernels/README.md`, "Panel
//! alignment"; the README's AVX2 comparison). Prints the median Gelem/s (one multiply-add
//! = 2) of five rounds of each loop:
//!
//! - `probe`: `vpmaddwd` + `vpaddd` on registers only (the `peak` bench's chain);
//! - `avx2 step, panel aligned`: the `avx2` kernel's 4×3 step (`tile_avx2_4x3_a16`'s asm)
//!   over a 4-row i16 panel on a cache line, weights streaming (768 rows × 768);
//! - `avx2 step, panel at 8 mod 64`: the same with the panel 8 bytes off a line;
//! - `avx2 step, 2 rows in regs`: the aligned step with two of the four activation rows
//!   loaded into registers once per step (11 loads per step instead of 15);
//! - `sign trick, broadcast`: an exact broadcast form, 8 tokens × 4 weight rows per 4-K
//!   step, `vpsignb` + `vpmaddubsw` + `vpmaddwd` + `vpaddd` per product vector;
//! - `ORT-like`: MLAS's AVX2 u8×s8 loop shape, 6 rows × 16 columns of packed weights per
//!   4-K step, `vpmaddubsw` + `vpmaddwd` (ones) + `vpaddd` (it saturates: timing only);
//! - `i16 broadcast (exact)`: the same broadcast shape on i16, exact: 6 rows' two i16
//!   activations broadcast against 16 columns × 2 K of packed i16 weights, `vpmaddwd` +
//!   `vpaddd` per product vector;
//! - `7-bit dot 3x3` and `4x2`: the exact `vpmaddubsw` form for 7-bit activations (biased
//!   to `[0, 127]`, as the `avx2` kernel takes `quantize --act7` rows; `avx2_a7.rs`), 3 or
//!   4 activation rows in registers against 3 or 2 weight rows from memory per 32-K step,
//!   `vpmaddubsw` + `vpmaddwd` (ones) + `vpaddd` per pair.
//!
//! `cargo run --release -p albert-engine --example avx2_mix` (x86_64 with AVX2).

#[cfg(target_arch = "x86_64")]
mod mix {
    use std::arch::asm;
    use std::time::Instant;

    /// Bytes from a 64-byte boundary (their values do not change the loops' timing).
    pub struct Mem(Vec<u8>, usize);

    impl Mem {
        pub fn new(len: usize) -> Mem {
            let v = vec![1u8; len + 64];
            let off = v.as_ptr().align_offset(64);
            Mem(v, off)
        }

        pub fn at(&self, o: usize) -> *const u8 {
            self.0[self.1 + o..].as_ptr()
        }
    }

    fn gelem(macs: f64, t: Instant) -> f64 {
        2.0 * macs / t.elapsed().as_secs_f64() / 1e9
    }

    /// Times `step(j, p)` over column tiles `j` of `ct` columns and K offsets `p` of `kt`
    /// values, repeated about `budget` steps' worth; each step does `macs` multiply-adds.
    #[inline(always)]
    fn sweep(
        budget: usize,
        (k, kt): (usize, usize),
        (cols, ct): (usize, usize),
        macs: f64,
        mut step: impl FnMut(usize, usize),
    ) -> f64 {
        let reps = budget / (k / kt) / (cols / ct) + 1;
        let t = Instant::now();
        for _ in 0..reps {
            for j in (0..cols - cols % ct).step_by(ct) {
                let mut p = 0usize;
                while p + kt <= k {
                    step(j, p);
                    p += kt;
                }
            }
        }
        gelem((reps * (cols / ct) * (k / kt)) as f64 * macs, t)
    }

    /// Register-only `vpmaddwd` + `vpaddd`, 12 independent accumulators.
    pub fn probe() -> f64 {
        let n: u64 = 20_000_000;
        let t = Instant::now();
        // SAFETY: AVX2 checked by `main`; registers only.
        unsafe {
            asm!("2:",
                "vpmaddwd ymm13, ymm12, ymm15",
                "vpaddd ymm0, ymm0, ymm13",
                "vpmaddwd ymm14, ymm12, ymm15",
                "vpaddd ymm1, ymm1, ymm14",
                "vpmaddwd ymm13, ymm12, ymm15",
                "vpaddd ymm2, ymm2, ymm13",
                "vpmaddwd ymm14, ymm12, ymm15",
                "vpaddd ymm3, ymm3, ymm14",
                "vpmaddwd ymm13, ymm12, ymm15",
                "vpaddd ymm4, ymm4, ymm13",
                "vpmaddwd ymm14, ymm12, ymm15",
                "vpaddd ymm5, ymm5, ymm14",
                "vpmaddwd ymm13, ymm12, ymm15",
                "vpaddd ymm6, ymm6, ymm13",
                "vpmaddwd ymm14, ymm12, ymm15",
                "vpaddd ymm7, ymm7, ymm14",
                "vpmaddwd ymm13, ymm12, ymm15",
                "vpaddd ymm8, ymm8, ymm13",
                "vpmaddwd ymm14, ymm12, ymm15",
                "vpaddd ymm9, ymm9, ymm14",
                "vpmaddwd ymm13, ymm12, ymm15",
                "vpaddd ymm10, ymm10, ymm13",
                "vpmaddwd ymm14, ymm12, ymm15",
                "vpaddd ymm11, ymm11, ymm14",
                "dec {n}", "jnz 2b", n = inout(reg) n => _, out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _, out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _, out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _, out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _, options(nostack, nomem));
        }
        gelem(192.0 * n as f64, t)
    }

    /// A function timing the `avx2` kernel's 4×3 step shape over a 4-row i16 panel `skew`
    /// bytes past a line, against `cols` weight rows of `k` bytes, three at a time, with
    /// the given step body (one `asm!` template over the operands `a0`-`a3`, `b0`-`b2`,
    /// `p`; every ymm clobbered).
    macro_rules! step_loop {
        ($(#[$doc:meta])* $name:ident, $($body:literal,)+) => {
            $(#[$doc])*
            pub fn $name(skew: usize, k: usize, cols: usize) -> f64 {
                let stride = 2 * k;
                let mem = Mem::new(4 * stride + 64 + cols * k);
                let pa = mem.at(skew);
                let wb = mem.at(4 * stride + 64);
                sweep(4_000_000, (k, 16), (cols, 3), 192.0, |j, p| {
                    // SAFETY: AVX2 checked by `main`; 16 bytes at b_j + p and 32 at
                    // a_i + 2p, inside `mem` (p + 16 ≤ k).
                    unsafe {
                        asm!(
                            $($body,)+
                            a0 = in(reg) pa, a1 = in(reg) pa.add(stride), a2 = in(reg) pa.add(2 * stride),
                            a3 = in(reg) pa.add(3 * stride), b0 = in(reg) wb.add(j * k),
                            b1 = in(reg) wb.add((j + 1) * k), b2 = in(reg) wb.add((j + 2) * k), p = in(reg) p,
                            out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _, out("ymm4") _, out("ymm5") _,
                            out("ymm6") _, out("ymm7") _, out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _,
                            out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _, options(nostack, readonly),
                        );
                    }
                })
            }
        };
    }

    step_loop!(
        /// The `avx2` kernel's 4×3 step (`tile_avx2_4x3_a16`'s asm).
        step,
        "vpmovsxbw ymm12, xmmword ptr [{b0} + {p}]",
        "vpmaddwd ymm13, ymm12, ymmword ptr [{a0} + 2*{p}]",
        "vpaddd ymm0, ymm0, ymm13",
        "vpmaddwd ymm13, ymm12, ymmword ptr [{a1} + 2*{p}]",
        "vpaddd ymm3, ymm3, ymm13",
        "vpmaddwd ymm13, ymm12, ymmword ptr [{a2} + 2*{p}]",
        "vpaddd ymm6, ymm6, ymm13",
        "vpmaddwd ymm13, ymm12, ymmword ptr [{a3} + 2*{p}]",
        "vpaddd ymm9, ymm9, ymm13",
        "vpmovsxbw ymm12, xmmword ptr [{b1} + {p}]",
        "vpmaddwd ymm13, ymm12, ymmword ptr [{a0} + 2*{p}]",
        "vpaddd ymm1, ymm1, ymm13",
        "vpmaddwd ymm13, ymm12, ymmword ptr [{a1} + 2*{p}]",
        "vpaddd ymm4, ymm4, ymm13",
        "vpmaddwd ymm13, ymm12, ymmword ptr [{a2} + 2*{p}]",
        "vpaddd ymm7, ymm7, ymm13",
        "vpmaddwd ymm13, ymm12, ymmword ptr [{a3} + 2*{p}]",
        "vpaddd ymm10, ymm10, ymm13",
        "vpmovsxbw ymm12, xmmword ptr [{b2} + {p}]",
        "vpmaddwd ymm13, ymm12, ymmword ptr [{a0} + 2*{p}]",
        "vpaddd ymm2, ymm2, ymm13",
        "vpmaddwd ymm13, ymm12, ymmword ptr [{a1} + 2*{p}]",
        "vpaddd ymm5, ymm5, ymm13",
        "vpmaddwd ymm13, ymm12, ymmword ptr [{a2} + 2*{p}]",
        "vpaddd ymm8, ymm8, ymm13",
        "vpmaddwd ymm13, ymm12, ymmword ptr [{a3} + 2*{p}]",
        "vpaddd ymm11, ymm11, ymm13",
    );

    step_loop!(
        /// [`step`] with activation rows 0 and 1 held in registers for the step.
        step_regs,
        "vmovdqa ymm14, ymmword ptr [{a0} + 2*{p}]",
        "vmovdqa ymm15, ymmword ptr [{a1} + 2*{p}]",
        "vpmovsxbw ymm12, xmmword ptr [{b0} + {p}]",
        "vpmaddwd ymm13, ymm12, ymm14",
        "vpaddd ymm0, ymm0, ymm13",
        "vpmaddwd ymm13, ymm12, ymm15",
        "vpaddd ymm3, ymm3, ymm13",
        "vpmaddwd ymm13, ymm12, ymmword ptr [{a2} + 2*{p}]",
        "vpaddd ymm6, ymm6, ymm13",
        "vpmaddwd ymm13, ymm12, ymmword ptr [{a3} + 2*{p}]",
        "vpaddd ymm9, ymm9, ymm13",
        "vpmovsxbw ymm12, xmmword ptr [{b1} + {p}]",
        "vpmaddwd ymm13, ymm12, ymm14",
        "vpaddd ymm1, ymm1, ymm13",
        "vpmaddwd ymm13, ymm12, ymm15",
        "vpaddd ymm4, ymm4, ymm13",
        "vpmaddwd ymm13, ymm12, ymmword ptr [{a2} + 2*{p}]",
        "vpaddd ymm7, ymm7, ymm13",
        "vpmaddwd ymm13, ymm12, ymmword ptr [{a3} + 2*{p}]",
        "vpaddd ymm10, ymm10, ymm13",
        "vpmovsxbw ymm12, xmmword ptr [{b2} + {p}]",
        "vpmaddwd ymm13, ymm12, ymm14",
        "vpaddd ymm2, ymm2, ymm13",
        "vpmaddwd ymm13, ymm12, ymm15",
        "vpaddd ymm5, ymm5, ymm13",
        "vpmaddwd ymm13, ymm12, ymmword ptr [{a2} + 2*{p}]",
        "vpaddd ymm8, ymm8, ymm13",
        "vpmaddwd ymm13, ymm12, ymmword ptr [{a3} + 2*{p}]",
        "vpaddd ymm11, ymm11, ymm13",
    );

    /// The exact broadcast form with the sign trick: two 8-token panels (`a` and `|a|`) per
    /// 4-K step against 4 weight rows' broadcast 4 bytes.
    pub fn sign_trick(k: usize, cols: usize) -> f64 {
        let mem = Mem::new(k / 4 * 128 + 64 + cols * k);
        let wb = mem.at(k / 4 * 128 + 64);
        sweep(4_000_000, (k, 4), (cols, 4), 256.0, |j, p| {
            // SAFETY: AVX2 checked by `main`; 128 panel bytes of step p/4 and 4 bytes
            // at b_j + p, inside `mem`.
            unsafe {
                asm!(
                    "vmovdqa ymm8, ymmword ptr [{pa}]",
                    "vmovdqa ymm9, ymmword ptr [{pa} + 32]",
                    "vmovdqa ymm10, ymmword ptr [{pa} + 64]",
                    "vmovdqa ymm11, ymmword ptr [{pa} + 96]",
                    "vpbroadcastd ymm12, dword ptr [{b0} + {p}]",
                    "vpsignb ymm14, ymm12, ymm8",
                    "vpmaddubsw ymm14, ymm10, ymm14",
                    "vpmaddwd ymm14, ymm14, ymm15",
                    "vpaddd ymm0, ymm0, ymm14",
                    "vpsignb ymm14, ymm12, ymm9",
                    "vpmaddubsw ymm14, ymm11, ymm14",
                    "vpmaddwd ymm14, ymm14, ymm15",
                    "vpaddd ymm1, ymm1, ymm14",
                    "vpbroadcastd ymm12, dword ptr [{b1} + {p}]",
                    "vpsignb ymm14, ymm12, ymm8",
                    "vpmaddubsw ymm14, ymm10, ymm14",
                    "vpmaddwd ymm14, ymm14, ymm15",
                    "vpaddd ymm2, ymm2, ymm14",
                    "vpsignb ymm14, ymm12, ymm9",
                    "vpmaddubsw ymm14, ymm11, ymm14",
                    "vpmaddwd ymm14, ymm14, ymm15",
                    "vpaddd ymm3, ymm3, ymm14",
                    "vpbroadcastd ymm12, dword ptr [{b2} + {p}]",
                    "vpsignb ymm14, ymm12, ymm8",
                    "vpmaddubsw ymm14, ymm10, ymm14",
                    "vpmaddwd ymm14, ymm14, ymm15",
                    "vpaddd ymm4, ymm4, ymm14",
                    "vpsignb ymm14, ymm12, ymm9",
                    "vpmaddubsw ymm14, ymm11, ymm14",
                    "vpmaddwd ymm14, ymm14, ymm15",
                    "vpaddd ymm5, ymm5, ymm14",
                    "vpbroadcastd ymm12, dword ptr [{b3} + {p}]",
                    "vpsignb ymm14, ymm12, ymm8",
                    "vpmaddubsw ymm14, ymm10, ymm14",
                    "vpmaddwd ymm14, ymm14, ymm15",
                    "vpaddd ymm6, ymm6, ymm14",
                    "vpsignb ymm14, ymm12, ymm9",
                    "vpmaddubsw ymm14, ymm11, ymm14",
                    "vpmaddwd ymm14, ymm14, ymm15",
                    "vpaddd ymm7, ymm7, ymm14",
                    pa = in(reg) mem.at(p / 4 * 128), b0 = in(reg) wb.add(j * k), b1 = in(reg) wb.add((j + 1) * k),
                    b2 = in(reg) wb.add((j + 2) * k), b3 = in(reg) wb.add((j + 3) * k), p = in(reg) p,
                    out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _, out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _, out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _, out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _, options(nostack, readonly));
            }
        })
    }

    /// MLAS's AVX2 u8×s8 loop shape: 6 rows' 4 bytes broadcast against 16 columns × 4 K of
    /// packed weights per step.
    pub fn ort_like(k: usize, cols: usize) -> f64 {
        let mem = Mem::new(6 * 4096 + 64 + cols * k);
        sweep(8_000_000, (k, 4), (cols, 16), 384.0, |j, p| {
            // SAFETY: AVX2 checked by `main`; 64 bytes of packed weights and 6 rows'
            // 4 bytes, inside `mem`.
            unsafe {
                asm!(
                    "vmovdqu ymm0, ymmword ptr [{pb}]",
                    "vmovdqu ymm1, ymmword ptr [{pb} + 32]",
                    "vpbroadcastd ymm2, dword ptr [{pa} + 0]",
                    "vpmaddubsw ymm3, ymm2, ymm0",
                    "vpmaddwd ymm3, ymm3, ymm15",
                    "vpaddd ymm4, ymm4, ymm3",
                    "vpmaddubsw ymm2, ymm2, ymm1",
                    "vpmaddwd ymm2, ymm2, ymm15",
                    "vpaddd ymm5, ymm5, ymm2",
                    "vpbroadcastd ymm2, dword ptr [{pa} + 4096]",
                    "vpmaddubsw ymm3, ymm2, ymm0",
                    "vpmaddwd ymm3, ymm3, ymm15",
                    "vpaddd ymm6, ymm6, ymm3",
                    "vpmaddubsw ymm2, ymm2, ymm1",
                    "vpmaddwd ymm2, ymm2, ymm15",
                    "vpaddd ymm7, ymm7, ymm2",
                    "vpbroadcastd ymm2, dword ptr [{pa} + 8192]",
                    "vpmaddubsw ymm3, ymm2, ymm0",
                    "vpmaddwd ymm3, ymm3, ymm15",
                    "vpaddd ymm8, ymm8, ymm3",
                    "vpmaddubsw ymm2, ymm2, ymm1",
                    "vpmaddwd ymm2, ymm2, ymm15",
                    "vpaddd ymm9, ymm9, ymm2",
                    "vpbroadcastd ymm2, dword ptr [{pa} + 12288]",
                    "vpmaddubsw ymm3, ymm2, ymm0",
                    "vpmaddwd ymm3, ymm3, ymm15",
                    "vpaddd ymm10, ymm10, ymm3",
                    "vpmaddubsw ymm2, ymm2, ymm1",
                    "vpmaddwd ymm2, ymm2, ymm15",
                    "vpaddd ymm11, ymm11, ymm2",
                    "vpbroadcastd ymm2, dword ptr [{pa} + 16384]",
                    "vpmaddubsw ymm3, ymm2, ymm0",
                    "vpmaddwd ymm3, ymm3, ymm15",
                    "vpaddd ymm12, ymm12, ymm3",
                    "vpmaddubsw ymm2, ymm2, ymm1",
                    "vpmaddwd ymm2, ymm2, ymm15",
                    "vpaddd ymm13, ymm13, ymm2",
                    "vpbroadcastd ymm2, dword ptr [{pa} + 20480]",
                    "vpmaddubsw ymm3, ymm2, ymm0",
                    "vpmaddwd ymm3, ymm3, ymm15",
                    "vpaddd ymm14, ymm14, ymm3",
                    "vpmaddubsw ymm2, ymm2, ymm1",
                    "vpmaddwd ymm2, ymm2, ymm15",
                    "vpaddd ymm15, ymm15, ymm2",
                    pa = in(reg) mem.at(p), pb = in(reg) mem.at(6 * 4096 + 64 + j * k + 16 * p),
                    out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _, out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _, out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _, out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _, options(nostack, readonly));
            }
        })
    }

    /// The exact broadcast form on i16: 6 activation rows (i16, 2 K values broadcast per
    /// row) against 16 columns × 2 K of packed i16 weights per step.
    pub fn bcast16(k: usize, cols: usize) -> f64 {
        let mem = Mem::new(6 * 8192 + 64 + cols * k * 2);
        sweep(4_000_000, (k, 2), (cols, 16), 192.0, |j, p| {
            // SAFETY: AVX2 checked by `main`; inside `mem`.
            unsafe {
                asm!(
                    "vmovdqu ymm0, ymmword ptr [{pb}]",
                    "vmovdqu ymm1, ymmword ptr [{pb} + 32]",
                    "vpbroadcastd ymm2, dword ptr [{pa} + 0]",
                    "vpmaddwd ymm3, ymm2, ymm0",
                    "vpaddd ymm4, ymm4, ymm3",
                    "vpmaddwd ymm2, ymm2, ymm1",
                    "vpaddd ymm5, ymm5, ymm2",
                    "vpbroadcastd ymm2, dword ptr [{pa} + 8192]",
                    "vpmaddwd ymm3, ymm2, ymm0",
                    "vpaddd ymm6, ymm6, ymm3",
                    "vpmaddwd ymm2, ymm2, ymm1",
                    "vpaddd ymm7, ymm7, ymm2",
                    "vpbroadcastd ymm2, dword ptr [{pa} + 16384]",
                    "vpmaddwd ymm3, ymm2, ymm0",
                    "vpaddd ymm8, ymm8, ymm3",
                    "vpmaddwd ymm2, ymm2, ymm1",
                    "vpaddd ymm9, ymm9, ymm2",
                    "vpbroadcastd ymm2, dword ptr [{pa} + 24576]",
                    "vpmaddwd ymm3, ymm2, ymm0",
                    "vpaddd ymm10, ymm10, ymm3",
                    "vpmaddwd ymm2, ymm2, ymm1",
                    "vpaddd ymm11, ymm11, ymm2",
                    "vpbroadcastd ymm2, dword ptr [{pa} + 32768]",
                    "vpmaddwd ymm3, ymm2, ymm0",
                    "vpaddd ymm12, ymm12, ymm3",
                    "vpmaddwd ymm2, ymm2, ymm1",
                    "vpaddd ymm13, ymm13, ymm2",
                    "vpbroadcastd ymm2, dword ptr [{pa} + 40960]",
                    "vpmaddwd ymm3, ymm2, ymm0",
                    "vpaddd ymm14, ymm14, ymm3",
                    "vpmaddwd ymm2, ymm2, ymm1",
                    "vpaddd ymm15, ymm15, ymm2",
                    pa = in(reg) mem.at(2 * p), pb = in(reg) mem.at(6 * 8192 + 64 + (j * k + 16 * p) * 2),
                    out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _, out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _, out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _, out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _, options(nostack, readonly));
            }
        })
    }

    /// 7-bit activations (u8 ≤ 127, exact): 3 rows × 3 weight rows per 32-K step, dot form.
    pub fn dot7_3x3(k: usize, cols: usize) -> f64 {
        let mem = Mem::new(3 * k + 64 + cols * k);
        let pa = mem.at(0);
        let wb = mem.at(3 * k + 64);
        sweep(4_000_000, (k, 32), (cols, 3), 288.0, |j, p| {
            // SAFETY: AVX2 checked by `main`; 32 bytes at a_i + p and b_j + p, inside `mem`.
            unsafe {
                asm!(
                            "vmovdqa ymm9, ymmword ptr [{a0} + {p}]",
                            "vmovdqa ymm10, ymmword ptr [{a1} + {p}]",
                            "vmovdqa ymm11, ymmword ptr [{a2} + {p}]",
                            "vpmaddubsw ymm12, ymm9, ymmword ptr [{b0} + {p}]",
                            "vpmaddwd ymm12, ymm12, ymm15",
                            "vpaddd ymm0, ymm0, ymm12",
                            "vpmaddubsw ymm13, ymm10, ymmword ptr [{b0} + {p}]",
                            "vpmaddwd ymm13, ymm13, ymm15",
                            "vpaddd ymm3, ymm3, ymm13",
                            "vpmaddubsw ymm14, ymm11, ymmword ptr [{b0} + {p}]",
                            "vpmaddwd ymm14, ymm14, ymm15",
                            "vpaddd ymm6, ymm6, ymm14",
                            "vpmaddubsw ymm12, ymm9, ymmword ptr [{b1} + {p}]",
                            "vpmaddwd ymm12, ymm12, ymm15",
                            "vpaddd ymm1, ymm1, ymm12",
                            "vpmaddubsw ymm13, ymm10, ymmword ptr [{b1} + {p}]",
                            "vpmaddwd ymm13, ymm13, ymm15",
                            "vpaddd ymm4, ymm4, ymm13",
                            "vpmaddubsw ymm14, ymm11, ymmword ptr [{b1} + {p}]",
                            "vpmaddwd ymm14, ymm14, ymm15",
                            "vpaddd ymm7, ymm7, ymm14",
                            "vpmaddubsw ymm12, ymm9, ymmword ptr [{b2} + {p}]",
                            "vpmaddwd ymm12, ymm12, ymm15",
                            "vpaddd ymm2, ymm2, ymm12",
                            "vpmaddubsw ymm13, ymm10, ymmword ptr [{b2} + {p}]",
                            "vpmaddwd ymm13, ymm13, ymm15",
                            "vpaddd ymm5, ymm5, ymm13",
                            "vpmaddubsw ymm14, ymm11, ymmword ptr [{b2} + {p}]",
                            "vpmaddwd ymm14, ymm14, ymm15",
                            "vpaddd ymm8, ymm8, ymm14",
                    a0 = in(reg) pa, a1 = in(reg) pa.add(k), a2 = in(reg) pa.add(2 * k), b0 = in(reg) wb.add(j * k), b1 = in(reg) wb.add((j + 1) * k), b2 = in(reg) wb.add((j + 2) * k), p = in(reg) p,
                    out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _, out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _, out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _, out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _, options(nostack, readonly));
            }
        })
    }

    /// 7-bit activations, 4 rows × 2 weight rows per 32-K step, dot form.
    pub fn dot7_4x2(k: usize, cols: usize) -> f64 {
        let mem = Mem::new(4 * k + 64 + cols * k);
        let pa = mem.at(0);
        let wb = mem.at(4 * k + 64);
        sweep(4_000_000, (k, 32), (cols, 2), 256.0, |j, p| {
            // SAFETY: AVX2 checked by `main`; 32 bytes at a_i + p and b_j + p, inside `mem`.
            unsafe {
                asm!(
                            "vmovdqa ymm8, ymmword ptr [{a0} + {p}]",
                            "vmovdqa ymm9, ymmword ptr [{a1} + {p}]",
                            "vmovdqa ymm10, ymmword ptr [{a2} + {p}]",
                            "vmovdqa ymm11, ymmword ptr [{a3} + {p}]",
                            "vpmaddubsw ymm12, ymm8, ymmword ptr [{b0} + {p}]",
                            "vpmaddwd ymm12, ymm12, ymm15",
                            "vpaddd ymm0, ymm0, ymm12",
                            "vpmaddubsw ymm13, ymm9, ymmword ptr [{b0} + {p}]",
                            "vpmaddwd ymm13, ymm13, ymm15",
                            "vpaddd ymm2, ymm2, ymm13",
                            "vpmaddubsw ymm14, ymm10, ymmword ptr [{b0} + {p}]",
                            "vpmaddwd ymm14, ymm14, ymm15",
                            "vpaddd ymm4, ymm4, ymm14",
                            "vpmaddubsw ymm12, ymm11, ymmword ptr [{b0} + {p}]",
                            "vpmaddwd ymm12, ymm12, ymm15",
                            "vpaddd ymm6, ymm6, ymm12",
                            "vpmaddubsw ymm13, ymm8, ymmword ptr [{b1} + {p}]",
                            "vpmaddwd ymm13, ymm13, ymm15",
                            "vpaddd ymm1, ymm1, ymm13",
                            "vpmaddubsw ymm14, ymm9, ymmword ptr [{b1} + {p}]",
                            "vpmaddwd ymm14, ymm14, ymm15",
                            "vpaddd ymm3, ymm3, ymm14",
                            "vpmaddubsw ymm12, ymm10, ymmword ptr [{b1} + {p}]",
                            "vpmaddwd ymm12, ymm12, ymm15",
                            "vpaddd ymm5, ymm5, ymm12",
                            "vpmaddubsw ymm13, ymm11, ymmword ptr [{b1} + {p}]",
                            "vpmaddwd ymm13, ymm13, ymm15",
                            "vpaddd ymm7, ymm7, ymm13",
                    a0 = in(reg) pa, a1 = in(reg) pa.add(k), a2 = in(reg) pa.add(2 * k), a3 = in(reg) pa.add(3 * k), b0 = in(reg) wb.add(j * k), b1 = in(reg) wb.add((j + 1) * k), p = in(reg) p,
                    out("ymm0") _, out("ymm1") _, out("ymm2") _, out("ymm3") _, out("ymm4") _, out("ymm5") _, out("ymm6") _, out("ymm7") _, out("ymm8") _, out("ymm9") _, out("ymm10") _, out("ymm11") _, out("ymm12") _, out("ymm13") _, out("ymm14") _, out("ymm15") _, options(nostack, readonly));
            }
        })
    }
}

/// A named loop that returns its Gelem/s.
#[cfg(target_arch = "x86_64")]
type Loop = (&'static str, fn() -> f64);

#[cfg(target_arch = "x86_64")]
fn main() {
    assert!(std::is_x86_feature_detected!("avx2"), "this example needs AVX2");
    let loops: [Loop; 9] = [
        ("probe", mix::probe),
        ("avx2 step, panel aligned", || mix::step(0, 768, 768)),
        ("avx2 step, panel at 8 mod 64", || mix::step(8, 768, 768)),
        ("avx2 step, 2 rows in regs", || mix::step_regs(0, 768, 768)),
        ("sign trick, broadcast", || mix::sign_trick(768, 768)),
        ("ORT-like (saturating)", || mix::ort_like(768, 768)),
        ("i16 broadcast (exact)", || mix::bcast16(768, 768)),
        ("7-bit dot 3x3 (exact)", || mix::dot7_3x3(768, 768)),
        ("7-bit dot 4x2 (exact)", || mix::dot7_4x2(768, 768)),
    ];
    let mut runs = vec![Vec::new(); loops.len()];
    for _ in 0..5 {
        for (r, (_, f)) in runs.iter_mut().zip(&loops) {
            r.push(f());
        }
    }
    for (r, (name, _)) in runs.iter_mut().zip(&loops) {
        r.sort_by(f64::total_cmp);
        println!("{name:30} median {:6.1} Gelem/s (min {:.1}, max {:.1})", r[2], r[0], r[4]);
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    eprintln!("avx2_mix: x86_64 only");
    std::process::exit(1);
}
