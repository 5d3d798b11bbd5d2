//! The `avx2` kernel's form for 7-bit activations (every value in `[-64, 63]`, as linears
//! packed with `quantize --act7` give them): `vpmaddubsw` instead of `vpmaddwd`, 32
//! products per multiply instead of 16.
//!
//! `vpmaddubsw` multiplies unsigned bytes by signed ones and adds adjacent products into
//! i16 lanes, saturating. With full int8 activations biased to unsigned (`a + 128`, up to
//! 255) a pair reaches 2·255·128 and saturates, which is why the exact `avx2` kernel widens
//! to i16 and why ONNX Runtime's AVX2 path, which does not, is wrong on large values
//! (README, "Against ONNX Runtime"). Biased by 64 instead, a 7-bit activation is at most
//! 127, a pair at most 2·127·128 = 32 512 < 2¹⁵: exact, for any weight byte. Then
//! `vpmaddwd` against ones widens the pairs into i32 and `vpaddd` accumulates: three
//! instructions per 32 products where the exact int8 loop needs four per 32 (two
//! `vpmaddwd`, two `vpaddd`) plus the weights' `vpmovsxbw`. The bias comes back at the end:
//! `Σ a·b = Σ (a + 64)·b − 64·Σ b`, the weight row sums given (the blob's `weight_sum`) or
//! summed once per column block.
//!
//! The kernel checks the range itself ([`fits`]), so the `avx2` GEMM takes this form
//! whenever the activations allow it and its result is the same either way: exact.

use core::arch::x86_64::*;

use super::x86::Lines;

/// Longest K this form takes: a 4-row panel of biased bytes, 32 KiB of stack.
pub(super) const PANEL_K: usize = 8192;

/// Most columns per block: the stack array of a block's weight sums (4 KiB).
const MAX_BLOCK: usize = 1024;

/// Weight rows per tile.
const C: usize = 2;

/// Whether every value of `a[..len]` lies in `[-64, 63]`: the sign bit of `a + 64`
/// (wrapping) is clear exactly then. Int8 activations reach ±127 in every row (each row's
/// range sets its scale), so for them the scan stops within the first KiB or so.
///
/// # Safety
/// AVX2 present; `a` valid for `len` bytes.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn fits(a: *const i8, len: usize) -> bool {
    let bias = _mm256_set1_epi8(64);
    let mut any = _mm256_setzero_si256();
    let mut q = 0;
    // SAFETY: loads of 32 bytes at q with q + 32 ≤ len, then single bytes below len.
    unsafe {
        while q + 32 <= len {
            any = _mm256_or_si256(any, _mm256_add_epi8(_mm256_loadu_si256(a.add(q).cast()), bias));
            q += 32;
            if q % 1024 == 0 && _mm256_movemask_epi8(any) != 0 {
                return false;
            }
        }
        let mut tail = 0u8;
        while q < len {
            tail |= (*a.add(q)).wrapping_add(64) as u8;
            q += 1;
        }
        _mm256_movemask_epi8(any) == 0 && tail & 0x80 == 0
    }
}

/// `c = a · bᵀ` (exact in wrapping i32) for activations in `[-64, 63]`; `sums` is null
/// or holds `Σ_k b[j][k]` for the `n` weight rows (exact integers, as the blob's
/// `weight_sum`). Row tiles of 4 (1-3 at the bottom) are biased by 64 into a stack panel
/// once per column block; tiles of 4 rows × 2 weight rows run over it.
///
/// # Safety
/// AVX2 present; `k ≤ PANEL_K`; every value of `a[..m·k]` in `[-64, 63]` ([`fits`]);
/// `a`, `b`, `c` valid for `m·k`, `n·k`, `m·n` elements; `sums` null or valid for `n`.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn gemm(m: usize, n: usize, k: usize, a: *const i8, b: *const i8, sums: *const f32, c: *mut i32) {
    let mut panel = core::mem::MaybeUninit::<Lines<[u8; 4 * PANEL_K]>>::uninit();
    let pp = panel.as_mut_ptr().cast::<u8>();
    let mut ws = [0i32; MAX_BLOCK];
    let nb = super::col_block(k, C).min(MAX_BLOCK);
    let bias = _mm256_set1_epi8(64);
    let mut j0 = 0;
    while j0 < n {
        let j1 = (j0 + nb).min(n);
        // SAFETY: weight rows j0..j1 < n (k bytes each) or sums[j0..j1].
        unsafe {
            for j in j0..j1 {
                ws[j - j0] = if sums.is_null() { row_sum(b.add(j * k), k) } else { *sums.add(j) as i32 };
            }
        }
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(4);
            // SAFETY: rows i..i + rows < m of `a` are read (k bytes each) and written,
            // biased, to panel rows 0..rows (k ≤ PANEL_K bytes each), which the tiles read;
            // weight rows < n and output elements (i + t, j + u), t < rows, u < cols.
            unsafe {
                for t in 0..rows {
                    let (src, dst) = (a.add((i + t) * k), pp.add(t * PANEL_K));
                    let mut q = 0;
                    while q + 32 <= k {
                        let v = _mm256_add_epi8(_mm256_loadu_si256(src.add(q).cast()), bias);
                        _mm256_store_si256(dst.add(q).cast(), v);
                        q += 32;
                    }
                    for q in q..k {
                        *dst.add(q) = (*src.add(q)).wrapping_add(64) as u8;
                    }
                }
                macro_rules! row_tile {
                    ($r:literal) => {{
                        let ap: [*const u8; $r] = core::array::from_fn(|t| pp.add(t * PANEL_K).cast_const());
                        let mut j = j0;
                        while j < j1 {
                            let cols = (j1 - j).min(C);
                            let bp: [*const i8; C] = core::array::from_fn(|u| b.add((j + u.min(cols - 1)) * k));
                            // As in the `avx2` kernel: the first row tile of a block
                            // streams its weights from L3 or memory, and requests the rows
                            // two column tiles ahead into L2 while it runs (later row tiles
                            // find the block in L2).
                            let out = if i == 0 && j + 2 * C < n {
                                tile::<$r, true>(k, ap, bp, b.add((j + 2 * C) * k))
                            } else {
                                tile::<$r, false>(k, ap, bp, core::ptr::null())
                            };
                            for (t, row) in out.iter().enumerate() {
                                // Wrapping: exact for right sums, no panic for wrong ones.
                                let fixed: [i32; C] = core::array::from_fn(|u| {
                                    row[u].wrapping_sub(ws[(j + u.min(cols - 1)) - j0].wrapping_mul(64))
                                });
                                super::store_cols!(&fixed, c.add((i + t) * n + j), cols, 2);
                            }
                            j += C;
                        }
                    }};
                }
                match rows {
                    4 => row_tile!(4),
                    3 => row_tile!(3),
                    2 => row_tile!(2),
                    _ => row_tile!(1),
                }
            }
            i += rows;
        }
        j0 = j1;
    }
}

/// `Σ_k b[k]` of one weight row.
///
/// # Safety
/// AVX2 present (inlined into [`gemm`]); `b` valid for `k` bytes.
#[inline(always)]
unsafe fn row_sum(b: *const i8, k: usize) -> i32 {
    // SAFETY: loads of 32 bytes at q with q + 32 ≤ k, then single bytes below k.
    unsafe {
        let (ones8, ones16) = (_mm256_set1_epi8(1), _mm256_set1_epi16(1));
        let mut acc = _mm256_setzero_si256();
        let mut q = 0;
        while q + 32 <= k {
            let w = _mm256_loadu_si256(b.add(q).cast());
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, w), ones16));
            q += 32;
        }
        let mut lanes = [0i32; 8];
        _mm256_storeu_si256(lanes.as_mut_ptr().cast(), acc);
        let mut s = lanes.iter().fold(0i32, |s, &v| s.wrapping_add(v));
        for q in q..k {
            s = s.wrapping_add(*b.add(q) as i32);
        }
        s
    }
}

/// R activation rows (biased bytes, one 32-byte-aligned panel row each) × 2 weight rows:
/// per 32 K values one `vpmaddubsw` + `vpmaddwd` (ones) + `vpaddd` per pair, R·2
/// accumulators + R activation vectors + the ones + a product (4 rows: 14 ymm). The K
/// tail is scalar, on the same biased bytes. Returns `Σ_k (a + 64)·b` per pair. With `PF`
/// each step also prefetches a line of the two weight rows at `pf` into L2.
///
/// # Safety
/// AVX2 present (inlined into [`gemm`]); each `a` pointer valid for `k` bytes and
/// 32-byte aligned, each `b` pointer for `k` bytes.
#[inline(always)]
unsafe fn tile<const R: usize, const PF: bool>(
    k: usize,
    a: [*const u8; R],
    b: [*const i8; C],
    pf: *const i8,
) -> [[i32; C]; R] {
    // SAFETY: loads stay inside `[p, p + 32)` with `p + 32 ≤ k`; the panel rows are
    // aligned; AVX2 per the contract.
    unsafe {
        let ones = _mm256_set1_epi16(1);
        let mut acc = [[_mm256_setzero_si256(); C]; R];
        let mut p = 0;
        while p + 32 <= k {
            if PF {
                // 64 bytes of the 2·k at `pf` per 32-K step: the next rows, spread over the
                // steps (a prefetch never faults; `wrapping_add` forms no bad pointer).
                _mm_prefetch::<_MM_HINT_T1>(pf.wrapping_add(2 * p));
            }
            // A loop, not `array::from_fn`: its closure would not be inlined into the AVX2
            // function and would run at the baseline ISA.
            let mut av = [_mm256_setzero_si256(); R];
            for i in 0..R {
                av[i] = _mm256_load_si256(a[i].add(p).cast());
            }
            for j in 0..C {
                let bv = _mm256_loadu_si256(b[j].add(p).cast());
                for i in 0..R {
                    let pairs = _mm256_maddubs_epi16(av[i], bv);
                    acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(pairs, ones));
                }
            }
            p += 32;
        }
        // The int8 tile's end: each accumulator's lanes summed, the K tail in scalar.
        super::x86::finish_tile(&acc, p, k, a, b)
    }
}
