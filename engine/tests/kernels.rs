//! The conformance suite every int8 GEMM kernel runs: bit-identical i32 results against
//! `kernels::scalar::gemm_i8_i32` over odd shapes (1..=512 rows, K and N not multiples of
//! any tile) and extreme values (-128, 127).
//!
//! Every kernel the running CPU supports is tested; the suite prints which. With
//! `ALBERT_EXPECT_KERNELS=a,b,c` (CI sets it, e.g. under qemu) the set of available kernels
//! must be exactly that, so a kernel that silently went missing fails the run.

use albert_engine::kernels::{self, Kernel, scalar};
use proptest::prelude::*;

fn rng(seed: u64) -> impl FnMut() -> i8 {
    let mut s = seed | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 24) as i8
    }
}

/// Random bytes, with a share of the extremes so that saturation bugs show.
fn fill(len: usize, seed: u64, extremes: u8) -> Vec<i8> {
    let mut next = rng(seed);
    (0..len)
        .map(|_| {
            let v = next();
            match (v as u8) % 16 {
                x if x < extremes / 2 => -128,
                x if x < extremes => 127,
                _ => next(),
            }
        })
        .collect()
}

/// The weight row sums as the blob's `weight_sum` tensors hold them (exact f32 integers).
fn weight_sums(n: usize, k: usize, b: &[i8]) -> Vec<f32> {
    (0..n).map(|j| b[j * k..(j + 1) * k].iter().map(|&x| x as i32).sum::<i32>() as f32).collect()
}

/// Whether to call the kernels without and with the weight sums: under Miri only without,
/// since the kernels Miri runs (`scalar`, `wide`) have no form that reads them.
fn given_sums() -> &'static [bool] {
    if cfg!(miri) { &[false] } else { &[false, true] }
}

/// Checks `kern` against the scalar GEMM twice: as it sums the weight rows itself, and
/// given the sums (`gemm_i8_i32_sums`, what a forward pass with a blob's `weight_sum` does).
fn check(kern: Kernel, m: usize, n: usize, k: usize, a: &[i8], b: &[i8]) {
    let mut want = vec![0i32; m * n];
    scalar::gemm_i8_i32(m, n, k, a, b, &mut want);
    let sums = weight_sums(n, k, b);
    for &given in given_sums() {
        // Poison the output so a kernel that skips an element is caught.
        let mut got = vec![0x5a5a_5a5ai32; m * n + 3];
        if given {
            kern.gemm_i8_i32_sums(m, n, k, a, b, &sums, &mut got);
        } else {
            kern.gemm_i8_i32(m, n, k, a, b, &mut got);
        }
        for i in 0..m {
            for j in 0..n {
                assert_eq!(
                    got[i * n + j],
                    want[i * n + j],
                    "kernel {} m={m} n={n} k={k} (sums given: {given}): c[{i}][{j}] differs",
                    kern.name()
                );
            }
        }
        assert_eq!(&got[m * n..], &[0x5a5a_5a5a; 3], "kernel {} wrote past c", kern.name());
    }
}

fn check16(kern: Kernel, m: usize, n: usize, k: usize, a: &[i16], b: &[i8]) {
    let mut want = vec![0i64; m * n];
    scalar::gemm_i16_i8_i64(m, n, k, a, b, &mut want);
    let sums = weight_sums(n, k, b);
    for &given in given_sums() {
        let mut got = vec![0x5a5a_5a5a_5a5ai64; m * n + 3];
        if given {
            kern.gemm_i16_i8_i64_sums(m, n, k, a, b, &sums, &mut got);
        } else {
            kern.gemm_i16_i8_i64(m, n, k, a, b, &mut got);
        }
        assert_eq!(&got[..m * n], &want[..], "kernel {} (int16) m={m} n={n} k={k} (sums given: {given})", kern.name());
        assert_eq!(&got[m * n..], &[0x5a5a_5a5a_5a5a; 3], "kernel {} (int16) wrote past c", kern.name());
    }
}

fn kernels_under_test() -> Vec<Kernel> {
    kernels::available().collect()
}

#[test]
fn reports_and_checks_the_available_set() {
    let names: Vec<&str> = kernels::available().map(|k| k.name()).collect();
    eprintln!("kernels available here: {names:?}; selected: {:?}", kernels::selected());
    assert!(names.contains(&"scalar") && names.contains(&"wide"));
    if let Ok(expect) = std::env::var("ALBERT_EXPECT_KERNELS") {
        let want: Vec<&str> = expect.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        let mut sorted_want = want.clone();
        sorted_want.sort_unstable();
        let mut sorted_got = names.clone();
        sorted_got.sort_unstable();
        assert_eq!(sorted_got, sorted_want, "ALBERT_EXPECT_KERNELS={expect}: available kernels differ");
    }
    for name in kernels::NAMES {
        let r = kernels::by_name(name);
        assert_eq!(r.is_ok(), kernels::is_supported(name), "{name}");
        if let Err(e) = r {
            assert!(e.known);
            assert!(e.to_string().contains("not available"), "{e}");
        }
    }
    let e = kernels::by_name("avx9000").unwrap_err();
    assert!(!e.known && e.to_string().contains("unknown kernel"), "{e}");
}

#[test]
fn edge_shapes_every_kernel() {
    let shapes = [
        (1, 1, 1),
        (1, 1, 15),
        (1, 3, 16),
        (2, 5, 17),
        (3, 7, 31),
        (4, 4, 32),
        (5, 9, 33),
        (7, 13, 63),
        (8, 8, 64),
        (9, 11, 65),
        (1, 768, 768),
        (16, 67, 768),
        (17, 5, 3072),
        (3, 2, 127),
        (6, 6, 129),
        // Around the `avx2` kernel's i16 activation panel (4096 values): full, and one
        // past it (the tile that extends the activations at every step).
        (6, 7, 4096),
        (5, 7, 4097),
    ];
    // Under Miri, which interprets every multiply-add, only the small ones (every ragged
    // edge of `wide`'s 4×2 tile and 32-byte step is still among them).
    let shapes: Vec<_> = shapes.into_iter().filter(|&(m, n, k)| !cfg!(miri) || m * n * k < 5_000).collect();
    for kern in kernels_under_test() {
        for (t, &(m, n, k)) in shapes.iter().enumerate() {
            let a = fill(m * k, 11 + t as u64, 4);
            let b = fill(n * k, 97 + t as u64, 4);
            check(kern, m, n, k, &a, &b);
        }
        eprintln!("edge shapes: {} ok", kern.name());
    }
}

#[test]
fn extremes_every_kernel() {
    // All four sign combinations of the extremes, long enough to overflow i16 sums and
    // any 2-product i16 pair, at K not a multiple of any step.
    // (Under Miri: K = 40, still past any i16 pair sum, and three row counts.)
    let k = if cfg!(miri) { 40 } else { 1000 };
    let rows: &[usize] = if cfg!(miri) { &[1, 5, 8] } else { &[1, 2, 3, 4, 5, 8, 33] };
    for kern in kernels_under_test() {
        for (x, y) in [(-128i8, -128i8), (-128, 127), (127, -128), (127, 127), (-127, -127)] {
            for &m in rows {
                let n = 6;
                let a = vec![x; m * k];
                let b = vec![y; n * k];
                check(kern, m, n, k, &a, &b);
            }
        }
    }
}

/// [`fill`] narrowed to 7-bit activations, `[-64, 63]` (`quantize --act7`), with a share
/// of both ends.
fn fill7(len: usize, seed: u64, extremes: u8) -> Vec<i8> {
    fill(len, seed, extremes)
        .into_iter()
        .map(|v| match v {
            -128 => -64,
            127 => 63,
            v => v >> 1,
        })
        .collect()
}

#[test]
fn seven_bit_activations_every_kernel() {
    // Activations in [-64, 63] (the `avx2` kernel's `vpmaddubsw` form takes them) against
    // weights over all of [-128, 127]: ragged shapes, both ends of the range in all four
    // sign combinations at a K past any i16 pair sum, and K around the 8192-byte panel.
    let shapes: &[(usize, usize, usize)] = if cfg!(miri) {
        &[(1, 3, 33), (5, 3, 40)]
    } else {
        &[
            (1, 1, 1),
            (1, 3, 31),
            (2, 5, 32),
            (3, 7, 33),
            (4, 2, 64),
            (5, 9, 65),
            (7, 13, 100),
            (8, 768, 768),
            (17, 5, 3072),
            (33, 37, 768),
            (130, 11, 200),
            (6, 5, 8192),
            (5, 3, 8193),
            (3, 1200, 40),
        ]
    };
    for kern in kernels_under_test() {
        for (t, &(m, n, k)) in shapes.iter().enumerate() {
            let a = fill7(m * k, 71 + t as u64, 4);
            let b = fill(n * k, 73 + t as u64, 4);
            check(kern, m, n, k, &a, &b);
        }
        let k = if cfg!(miri) { 40 } else { 1000 };
        for (x, y) in [(-64i8, -128i8), (-64, 127), (63, -128), (63, 127)] {
            for m in [1, 4, 5] {
                check(kern, m, 3, k, &vec![x; m * k], &vec![y; 3 * k]);
            }
        }
        eprintln!("7-bit activations: {} ok", kern.name());
    }
}

#[test]
fn one_value_past_seven_bits_every_kernel() {
    // A single activation just outside [-64, 63], first or last, among 7-bit ones: the
    // `avx2` kernel must see it and take its i16 form (the biased byte would be 128 or
    // 255 and the i16 pairs of `vpmaddubsw` would saturate against -128 weights).
    // m·k leaves a scalar tail after the 32-byte steps, where the last value sits.
    let (m, n, k) = if cfg!(miri) { (3, 2, 40) } else { (9, 7, 767) };
    for kern in kernels_under_test() {
        for (at, v) in [(0, 64i8), (m * k - 1, -65), (m * k / 2, 127), (1, -128)] {
            let mut a = vec![63i8; m * k];
            a[at] = v;
            let b = vec![-128i8; n * k];
            check(kern, m, n, k, &a, &b);
        }
    }
}

#[test]
fn many_rows_every_kernel() {
    // 512 rows (a sequence of 512 tokens), N past a column block, K of the FFN output.
    let (m, n, k) = if cfg!(miri) { (64, 5, 40) } else { (512, 37, 200) };
    let a = fill(m * k, 5, 2);
    let b = fill(n * k, 6, 2);
    for kern in kernels_under_test() {
        check(kern, m, n, k, &a, &b);
    }
}

#[test]
fn token_panels_and_k_chunks_every_kernel() {
    // Kernels that repack the activations (vnni from 8 rows up: panels of 16 tokens, or 15
    // and a bias lane below 16 rows, two per tile, K in chunks of 1024 bytes, 12 weight rows
    // per tile, weight row sums per column block of at most 1020 rows; 8-15 rows with K a
    // multiple of 8: one or two panels of 8 tokens × 8 bytes; 2-8 rows with K a multiple of
    // 16: one or two panels of 4 tokens × 16 bytes) at every ragged edge: rows around one
    // and two panels, K past one and several chunks and off 64-byte sums, N around the tile
    // and past a column block. (Under Miri, which has none of the kernels that pack, the
    // smallest.)
    let shapes = [
        (8, 12, 4),
        (2, 13, 16),
        (3, 1, 768),
        (4, 12, 1040),
        (5, 25, 2064),
        (7, 11, 48),
        (8, 13, 3072),
        (8, 700, 768),
        (8, 13, 8),
        (8, 25, 2056),
        (9, 11, 1032),
        (15, 12, 776),
        (12, 1, 3072),
        (14, 13, 1024),
        (15, 1, 1028),
        (16, 25, 2052),
        (29, 11, 768),
        (30, 24, 4100),
        (31, 37, 3072),
        (46, 13, 6148),
        (32, 37, 772),
        (33, 700, 768),
        (20, 1030, 4),
        (47, 13, 100),
    ];
    let shapes = if cfg!(miri) { &shapes[..1] } else { &shapes[..] };
    for kern in kernels_under_test() {
        for (t, &(m, n, k)) in shapes.iter().enumerate() {
            let a = fill(m * k, 41 + t as u64, 6);
            let b = fill(n * k, 43 + t as u64, 6);
            check(kern, m, n, k, &a, &b);
        }
        for (x, y) in [(-128i8, -128i8), (-128, 127), (127, -128), (127, 127)] {
            let (m, n, k) = if cfg!(miri) { (8, 3, 40) } else { (17, 13, 4100) };
            check(kern, m, n, k, &vec![x; m * k], &vec![y; n * k]);
            // The quad form (2-8 rows, K a multiple of 16), K past a chunk.
            if !cfg!(miri) {
                check(kern, 6, 13, 2064, &vec![x; 6 * 2064], &vec![y; 13 * 2064]);
            }
        }
    }
}

#[test]
fn column_blocks_every_kernel() {
    // N spanning several L2 column blocks with a ragged last block (the blocks are about
    // 128 KiB of weights: 170 rows at K = 768).
    // Under Miri the blocks are 4 KiB (`kernels::col_block`): at K = 512 a block is 8 rows
    // (`wide`'s 2-column tiles), so 9 rows are a full block and a ragged one.
    let (m, n, k) = if cfg!(miri) { (2, 9, 512) } else { (5, 401, 768) };
    let a = fill(m * k, 8, 2);
    let b = fill(n * k, 9, 2);
    for kern in kernels_under_test() {
        check(kern, m, n, k, &a, &b);
    }
}

#[test]
fn empty_shapes_are_fine() {
    for kern in kernels_under_test() {
        let mut c = [7i32; 4];
        kern.gemm_i8_i32(0, 4, 5, &[], &[0; 20], &mut c);
        kern.gemm_i8_i32(2, 0, 5, &[0; 10], &[], &mut c);
        assert_eq!(c, [7; 4]);
        kern.gemm_i8_i32(2, 2, 0, &[], &[], &mut c);
        assert_eq!(c, [0, 0, 0, 0,]);
        // K = 0 at the row counts of every packing form (2-8, 8-15 and from 16 rows).
        for m in [5, 8, 9, 16, 40] {
            let mut c = vec![7i32; m * 3];
            kern.gemm_i8_i32(m, 3, 0, &[], &[], &mut c);
            assert!(c.iter().all(|&v| v == 0), "{} m {m}", kern.name());
            let mut c16 = vec![7i64; m * 3];
            kern.gemm_i16_i8_i64(m, 3, 0, &[], &[], &mut c16);
            assert!(c16.iter().all(|&v| v == 0), "{} m {m} (i16)", kern.name());
        }
    }
}

#[test]
fn int16_activations_every_kernel() {
    // Extremes long enough to overflow an i32 accumulator (k·2¹⁵·2⁷ > 2³¹ from k = 512),
    // and random values at ragged shapes.
    for kern in kernels_under_test() {
        for (x, y) in [(i16::MIN, -128i8), (i16::MIN, 127), (i16::MAX, -128), (i16::MAX, 127)] {
            // K past the i32 range of one accumulator (k·2¹⁵·2⁷ > 2³¹ from 512); smaller
            // under Miri.
            let (m, n, k) = if cfg!(miri) { (1, 2, 600) } else { (2, 5, 5000) };
            check16(kern, m, n, k, &vec![x; m * k], &vec![y; n * k]);
            // The same from 16 rows up (vnni's broadcast form: two byte panels per tile),
            // and at 8 rows with K a multiple of 8 (its pair form).
            let (m, n, k) = if cfg!(miri) { (16, 2, 40) } else { (17, 13, 4100) };
            check16(kern, m, n, k, &vec![x; m * k], &vec![y; n * k]);
            if !cfg!(miri) {
                check16(kern, 8, 13, 4104, &vec![x; 8 * 4104], &vec![y; 13 * 4104]);
                // vnni's int16 quad form (2-15 rows, K a multiple of 16): two token groups,
                // one, and two calls (8 + 5 rows), K past 1024-value chunks, N ragged
                // against its 6-row tiles.
                for (m, n, k) in [(6, 13, 4112), (3, 19, 2064), (13, 5, 1040)] {
                    check16(kern, m, n, k, &vec![x; m * k], &vec![y; n * k]);
                }
            }
        }
        // Ragged shapes below and from 8 rows: rows around a 16-token tile, in vnni's
        // pair form (5-8 rows, K a multiple of 8) and its quad form (2-15 rows, K a multiple
        // of 16; 9 rows leave one for the dot tiles), K past 1024-value chunks and off
        // 64-byte row sums, N around the 6- and 12-row tiles and past a column block.
        let shapes = [
            (1, 1, 1),
            (1, 7, 15),
            (3, 9, 17),
            (2, 768, 768),
            (5, 6, 3072),
            (4, 3, 2049),
            (8, 12, 4),
            (5, 13, 8),
            (6, 25, 2056),
            (7, 14, 1032),
            (8, 1, 3072),
            (15, 13, 1028),
            (7, 14, 1040),
            (3, 21, 1040),
            (4, 11, 2064),
            (9, 7, 784),
            (12, 13, 2064),
            (14, 19, 48),
            (16, 25, 2052),
            (17, 11, 3072),
            (33, 700, 768),
            (20, 1030, 4),
            (47, 13, 100),
        ];
        // Under Miri only the smallest shapes below 8 rows: the kernels Miri runs (`scalar`,
        // `wide`) are safe code behind one slice adapter, which any shape exercises; the
        // packing forms these shapes aim at are x86 SIMD, which Miri does not run. The
        // shapes up to 100 000 multiply-adds took 290 s of Miri's clock there (five of the
        // CI step's minutes).
        for (t, &(m, n, k)) in
            shapes.iter().filter(|&&(m, n, k)| !cfg!(miri) || (m < 8 && m * n * k < 10_000)).enumerate()
        {
            let mut next = rng(31 + t as u64);
            let a: Vec<i16> = (0..m * k).map(|_| i16::from_le_bytes([next() as u8, next() as u8])).collect();
            let b = fill(n * k, 77 + t as u64, 4);
            check16(kern, m, n, k, &a, &b);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_shapes_every_kernel(
        m in prop_oneof![1usize..=9, 1usize..=512],
        n in 1usize..=41,
        k in prop_oneof![1usize..=80, 1usize..=700],
        extremes in 0u8..=16,
        seed in any::<u64>(),
        seven_bit in any::<bool>(),
    ) {
        // Half the cases with 7-bit activations (`[-64, 63]`: the `avx2` kernel's
        // `vpmaddubsw` form).
        let a = if seven_bit { fill7(m * k, seed, extremes) } else { fill(m * k, seed, extremes) };
        let b = fill(n * k, seed.rotate_left(17) ^ 0x9e37, extremes);
        for kern in kernels_under_test() {
            check(kern, m, n, k, &a, &b);
        }
    }
}
