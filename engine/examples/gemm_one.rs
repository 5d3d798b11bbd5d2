//! One GEMM shape, many calls: for `perf record` of a kernel on one shape, and a quick
//! best/mean throughput (Gelem/s, one multiply-add = 2, as in `gemm_best`).
//!
//! `cargo run --release -p albert-engine --example gemm_one -- KERNEL M N K REPS [i16|7]`
//! (`i16`: the int16-activation GEMM instead of the int8 one; `7`: 7-bit activations,
//! `[-64, 63]`, as `quantize --act7` makes them). The kernel is given the
//! weight row sums, as a forward pass gives them (`Kernel::gemm_i8_i32_sums`).
use albert_engine::kernels;
use std::hint::black_box;
use std::time::Instant;
/// The first `len` bytes of `buf` from its first 64-byte boundary.
fn line_aligned(buf: &mut [i8], len: usize) -> &mut [i8] {
    let off = buf.as_ptr().align_offset(64);
    &mut buf[off..off + len]
}

fn main() {
    let a: Vec<usize> = std::env::args().skip(2).take(4).map(|s| s.parse().unwrap()).collect();
    let kern = kernels::by_name(&std::env::args().nth(1).unwrap()).unwrap();
    let (m, n, k, reps) = (a[0], a[1], a[2], a[3]);
    // Both operands start on a cache line, as a forward pass has them (the scratch regions
    // and the blob's tensors are aligned): a heap `Vec` of this size starts 16 bytes past
    // one, which splits every other 32-byte load across two lines.
    let (mut abuf, mut bbuf) = (vec![0i8; m * k + 64], vec![0i8; n * k + 64]);
    let av = line_aligned(&mut abuf, m * k);
    let act7 = std::env::args().nth(6).is_some_and(|s| s == "7");
    av.iter_mut().enumerate().for_each(|(i, v)| *v = (i * 7 % 251) as i8 >> u8::from(act7));
    let bv = line_aligned(&mut bbuf, n * k);
    bv.iter_mut().enumerate().for_each(|(i, v)| *v = (i * 13 % 253) as i8);
    let (av, bv) = (&*av, &*bv);
    let mut c = vec![0i32; m * n];
    let a16: Vec<i16> = av.iter().enumerate().map(|(i, &x)| (x as i16) * 97 + (i % 89) as i16).collect();
    let mut c16 = vec![0i64; m * n];
    let sums: Vec<f32> = bv.chunks_exact(k).map(|r| r.iter().map(|&x| x as i32).sum::<i32>() as f32).collect();
    let i16 = std::env::args().nth(6).is_some_and(|s| s == "i16");
    let mut best = f64::INFINITY;
    let mut tot = 0.0;
    for _ in 0..reps {
        let t = Instant::now();
        if i16 {
            kern.gemm_i16_i8_i64_sums(m, n, k, black_box(&a16), black_box(bv), black_box(&sums), black_box(&mut c16));
        } else {
            kern.gemm_i8_i32_sums(m, n, k, black_box(av), black_box(bv), black_box(&sums), black_box(&mut c));
        }
        let e = t.elapsed().as_secs_f64();
        tot += e;
        best = best.min(e);
    }
    println!(
        "m{m} n{n} k{k} best {:.1} mean {:.1} Gelem/s",
        2.0 * (m * n * k) as f64 / best / 1e9,
        2.0 * (m * n * k) as f64 * reps as f64 / tot / 1e9
    );
}
