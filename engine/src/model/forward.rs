//! The encoder: embeddings, projection to hidden, and the shared layer(s) iterated
//! `num_hidden_layers` times, as transformers' `AlbertModel` computes them.

use super::observe::{Gemm, NoObserver, Observer, Site};
use super::scratch::{Plan, Work};
use super::weights::{Layer, Linear, Matrix, Norm};
use super::{Inputs, Model};
use crate::config::{Activation, ModelConfig};
use crate::error::Error;
use crate::format::Acts;
use crate::kernels::attention::QROWS;
use crate::kernels::{self, attention, scalar};
use crate::ops;
use crate::par::{Chunks, Columns, ColumnsMut, ELEMENT_WORK, Par, Partition};
use crate::profile::{self, Stage};

/// The encoder's output (`last_hidden_state`), living in the caller's scratch, plus the
/// scratch the heads still need.
pub struct Encoded<'s> {
    pub(crate) hidden: &'s mut [f32],
    pub(crate) work: Work<'s>,
    batch: usize,
    seq_len: usize,
    hidden_size: usize,
    /// The token of each sequence that row 0 holds: 0, but for [`Model::encode_positions`]
    /// its first position (the pooled heads, which read `[CLS]`, refuse any other).
    pub(crate) first_token: usize,
}

impl Encoded<'_> {
    /// `batch × seq_len × hidden_size`, row-major: transformers' `last_hidden_state`.
    pub fn last_hidden_state(&self) -> &[f32] {
        self.hidden
    }

    /// The hidden state of token `pos` of sequence `b`.
    pub fn token(&self, b: usize, pos: usize) -> &[f32] {
        let h = self.hidden_size;
        let at = (b * self.seq_len + pos) * h;
        &self.hidden[at..at + h]
    }

    pub fn batch(&self) -> usize {
        self.batch
    }

    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    pub fn hidden_size(&self) -> usize {
        self.hidden_size
    }
}

/// Rows per thread from which [`linear_rows`] cuts a GEMM by rows: two 16-token panels of
/// the `vnni` kernel, so each thread still runs its widest tiles.
const ROWS_PER_THREAD: usize = 32;
/// The fewest rows of accumulators a row part may have.
const PANEL_ROWS: usize = 16;

/// Output columns per part of a parallel GEMM are a multiple of this: the tile widths of
/// every kernel (2, 3, 4) divide it, so only a matrix's last part has a ragged tile.
const COL_ALIGN: usize = 48;

/// `y[m×n] = x[m×k] Wᵀ + b`. For int8 weights the rows of `x` are quantized per token
/// into `work.qx` and multiplied exactly in i32 (`FORMAT.md`, "Quantization").
///
/// With several threads the rows are quantized in parallel, then the output columns are
/// cut into parts (`par.rs`): each part multiplies all rows by its weight rows and applies
/// scales, bias and outlier channels to its columns, so every output element goes through
/// the same operations whatever the number of threads.
pub(crate) fn linear(x: &[f32], m: usize, lin: &Linear<'_>, y: &mut [f32], work: &mut Work<'_>, par: Par<'_>) {
    linear_with(x, m, lin, y, work, par, false, false, Post::None)
}

/// A row-wise step applied to a linear's output (see [`linear_rows`]).
#[derive(Clone, Copy)]
enum Post<'a> {
    None,
    /// The activation, on every value.
    Act(Activation),
    /// `y += residual`, then LayerNorm, row by row (as [`add_norm_rows`]).
    AddNorm(&'a [f32], &'a Norm<'a>, f32),
}

impl Post<'_> {
    /// Applies the step to rows `r0 ..` of the output (`y` holds whole rows of `n`).
    #[inline]
    fn apply(&self, y: &mut [f32], r0: usize, n: usize) {
        match *self {
            Post::None => {}
            Post::Act(act) => profile::time(Stage::Activation, || ops::activate(y, act)),
            Post::AddNorm(residual, norm, eps) => profile::time(Stage::Norm, || {
                for (i, row) in y.chunks_exact_mut(n).enumerate() {
                    add_norm_row(row, Some(&residual[(r0 + i) * n..(r0 + i + 1) * n]), norm, eps);
                }
            }),
        }
    }
}

/// [`linear`] whose output rows feed a row-wise step `post` (LayerNorm, the activation):
/// with several threads and enough rows the GEMM is cut by rows instead of columns, one
/// part per thread, so each thread quantizes, multiplies and finishes (`post`) its own rows
/// with no barrier in between and no row changing cores. Otherwise `post` runs after the
/// GEMM, rows in parallel. Bit-identical either way.
fn linear_rows(
    x: &[f32],
    m: usize,
    lin: &Linear<'_>,
    y: &mut [f32],
    work: &mut Work<'_>,
    par: Par<'_>,
    post: Post<'_>,
) {
    linear_with(x, m, lin, y, work, par, false, true, post)
}

/// Whether `b` quantizes its input exactly as `a` does (int8 weights, the same activation
/// type, centring and per-channel multipliers), so that after `a` ran on an input, `work`
/// already holds that input quantized for `b`: the query, key and value linears share
/// their input and usually their outlier channels.
fn same_input_quantization(a: &Linear<'_>, b: &Linear<'_>) -> bool {
    match (&a.w.m, &b.w.m) {
        (Matrix::I8 { acts: x, .. }, Matrix::I8 { acts: y, .. }) => {
            x == y
                && a.w.cols == b.w.cols
                && a.row_sum.is_some() == b.row_sum.is_some()
                && match (a.input_mul, b.input_mul) {
                    (None, None) => true,
                    (Some(x), Some(y)) => x.iter().map(|v| v.to_bits()).eq(y.iter().map(|v| v.to_bits())),
                    _ => false,
                }
        }
        _ => false,
    }
}

/// [`linear`]; with `quantized`, `work` already holds `x` quantized as `lin` needs it
/// (see [`same_input_quantization`]).
#[allow(clippy::too_many_arguments)]
fn linear_with(
    x: &[f32],
    m: usize,
    lin: &Linear<'_>,
    y: &mut [f32],
    work: &mut Work<'_>,
    par: Par<'_>,
    quantized: bool,
    by_rows: bool,
    post: Post<'_>,
) {
    let (n, k) = (lin.w.rows, lin.w.cols);
    let y = &mut y[..m * n];
    let x = &x[..m * k];
    // Many rows: one column part per thread, since every part packs all the rows'
    // activations again (`vnni`); few rows: a few parts per thread (`Par::partition`).
    let cols = if m >= ROWS_PER_THREAD && matches!(lin.w.m, Matrix::I8 { .. }) {
        Partition::even(n, par.threads(), COL_ALIGN)
    } else {
        par.partition(n, COL_ALIGN, m * k)
    };
    match lin.w.m {
        Matrix::F32(w) => {
            let ys = Columns::new(y, m, n, cols, 1);
            par.run(&cols, &|p| {
                let mut yv = ys.take(p);
                let js = yv.cols();
                profile::time(Stage::Gemm, || {
                    for r in 0..m {
                        let xr = &x[r * k..(r + 1) * k];
                        for (o, j) in yv.row(r).iter_mut().zip(js.clone()) {
                            *o = scalar::dot_f32(xr, &w[j * k..(j + 1) * k]);
                        }
                    }
                });
                profile::time(Stage::Dequantize, || epilogue(x, m, k, lin, &mut yv));
            });
        }
        Matrix::F16(_) => {
            // Convert one weight row at a time (into the one `wrow`), then use it for every
            // token: serial, this is the reference path for f16 blobs.
            let wrow = &mut work.wrow[..k];
            profile::time(Stage::Gemm, || {
                for j in 0..n {
                    lin.w.row_into(j, wrow);
                    for r in 0..m {
                        y[r * n + j] = scalar::dot_f32(&x[r * k..(r + 1) * k], wrow);
                    }
                }
            });
            let one = Partition::even(n, 1, 1);
            let ys = Columns::new(y, m, n, one, 1);
            profile::time(Stage::Dequantize, || epilogue(x, m, k, lin, &mut ys.take(0)));
        }
        Matrix::I8 { q, scales, acts } => {
            let act16 = acts == Acts::Int16;
            let asym = lin.row_sum.is_some();
            let kern = kernels::active();
            // int16 activations accumulate in i64: the i32 region viewed as i64 when a row
            // fits there (the dedicated one-row `acc64` otherwise, e.g. for a
            // vocabulary-wide decoder).
            let (acc32, acc64): (&mut [i32], &mut [i64]) = if act16 {
                let wide64 = bytemuck::pod_align_to_mut::<i32, i64>(&mut *work.acc).1;
                (&mut [], if wide64.len() >= n { wide64 } else { &mut *work.acc64 })
            } else {
                (&mut *work.acc, &mut [])
            };
            let acc_len = if act16 { acc64.len() } else { acc32.len() };
            let threads = par.threads();
            if by_rows && threads > 1 && m >= ROWS_PER_THREAD * threads && acc_len / threads / n >= PANEL_ROWS {
                // One part per thread, each a block of whole rows: it quantizes its rows,
                // multiplies them by every weight row and finishes them (and `post`), so its
                // output rows stay in its core's cache for the row-wise step that follows,
                // and the activations are packed once per column block as with one thread.
                let rows = Partition::even(m, threads, 1);
                let per_part = Partition::even(threads, threads, 1);
                let accs = AccParts::new(acc32, acc64, act16, per_part, acc_len / threads);
                let qparts =
                    QuantParts::new((&mut *work.qs, &mut *work.qc, &mut *work.qx, &mut *work.qx16), m, k, act16, rows);
                let ys = Chunks::new(y, rows, n);
                par.run(&rows, &|p| {
                    let r = rows.range(p);
                    let mp = r.len();
                    let xp = &x[r.start * k..r.end * k];
                    let (qs, qc, q8, q16) = qparts.take(p);
                    if !quantized {
                        profile::time(Stage::Quantize, || quantize_rows(xp, k, lin, asym, qs, qc, q8, q16));
                    }
                    let (acc32, acc64) = accs.take(p);
                    let all = Columns::new(ys.take(p), mp, n, Partition::even(n, 1, 1), 1);
                    let mut yv = all.take(0);
                    let post = (post, r.start);
                    int8_part(kern, xp, mp, lin, q, scales, (q8, q16, qs, qc), &mut yv, (acc32, acc64), post);
                });
                return;
            }
            // Quantize every input row (per token; centred when the linear has row sums).
            let rows = par.partition(m, 1, k * ELEMENT_WORK);
            if !quantized {
                let qparts =
                    QuantParts::new((&mut *work.qs, &mut *work.qc, &mut *work.qx, &mut *work.qx16), m, k, act16, rows);
                par.run(&rows, &|p| {
                    let r = rows.range(p);
                    let (qs, qc, q8, q16) = qparts.take(p);
                    profile::time(Stage::Quantize, || {
                        quantize_rows(&x[r.start * k..r.end * k], k, lin, asym, qs, qc, q8, q16)
                    });
                });
            }
            // The process's kernel (`kernels::selected`) over blocks of rows as large as
            // the accumulators allow (all rows at short sequences), each part its columns.
            let block = (acc_len / n).clamp(1, m);
            // Part p's accumulators: `block` rows of its columns, packed.
            let accs = AccParts::new(acc32, acc64, act16, cols, block);
            let (qx, qx16, qs, qc) = (&work.qx[..m * k], &work.qx16[..m * k], &work.qs[..m], &work.qc[..m]);
            let (qx, qx16) = if act16 { (&[][..], qx16) } else { (qx, &[][..]) };
            // One part holds whole rows: it finishes each row (`post`) as soon as it is
            // dequantized, while the row is in cache.
            let whole_rows = cols.parts() == 1;
            let ys = Columns::new(y, m, n, cols, 1);
            par.run(&cols, &|p| {
                let mut yv = ys.take(p);
                let post = (if whole_rows { post } else { Post::None }, 0);
                int8_part(kern, x, m, lin, q, scales, (qx, qx16, qs, qc), &mut yv, accs.take(p), post);
            });
            if whole_rows {
                return;
            }
        }
    }
    if !matches!(post, Post::None) {
        let rows = par.partition(m, 1, n * ELEMENT_WORK);
        let ys = Chunks::new(y, rows, n);
        par.run(&rows, &|p| post.apply(ys.take(p), rows.range(p).start, n));
    }
}

/// The quantized-activation regions of a linear's input (`m` rows of `k`) split into parts
/// of rows: each part's scales, centres and values, int8 or int16 (the other one empty).
struct QuantParts<'a> {
    qs: Chunks<'a, f32>,
    qc: Chunks<'a, f32>,
    q8: Chunks<'a, i8>,
    q16: Chunks<'a, i16>,
    act16: bool,
}

impl<'a> QuantParts<'a> {
    /// `(qs, qc, qx, qx16)` are `Work`'s regions.
    fn new(
        (qs, qc, qx, qx16): (&'a mut [f32], &'a mut [f32], &'a mut [i8], &'a mut [i16]),
        m: usize,
        k: usize,
        act16: bool,
        rows: Partition,
    ) -> Self {
        let (p8, p16) = if act16 { (Partition::EMPTY, rows) } else { (rows, Partition::EMPTY) };
        QuantParts {
            qs: Chunks::new(&mut qs[..m], rows, 1),
            qc: Chunks::new(&mut qc[..m], rows, 1),
            q8: Chunks::new(if act16 { &mut [] } else { &mut qx[..m * k] }, p8, k),
            q16: Chunks::new(if act16 { &mut qx16[..m * k] } else { &mut [] }, p16, k),
            act16,
        }
    }

    /// Part `p`'s `(scales, centres, int8 values, int16 values)`.
    #[allow(clippy::type_complexity)]
    fn take(&self, p: usize) -> (&mut [f32], &mut [f32], &mut [i8], &mut [i16]) {
        let (q8, q16) = if self.act16 { (&mut [][..], self.q16.take(p)) } else { (self.q8.take(p), &mut [][..]) };
        (self.qs.take(p), self.qc.take(p), q8, q16)
    }
}

/// A GEMM's accumulators split into parts: i32, or i64 for int16 activations (the other
/// one empty).
struct AccParts<'a> {
    a32: Chunks<'a, i32>,
    a64: Chunks<'a, i64>,
    act16: bool,
}

impl<'a> AccParts<'a> {
    /// Part `p` gets `unit ×` its length in `part` of the region in use.
    fn new(a32: &'a mut [i32], a64: &'a mut [i64], act16: bool, part: Partition, unit: usize) -> Self {
        let (p32, p64) = if act16 { (Partition::EMPTY, part) } else { (part, Partition::EMPTY) };
        AccParts { a32: Chunks::new(a32, p32, unit), a64: Chunks::new(a64, p64, unit), act16 }
    }

    /// Part `p`'s `(i32, i64)` accumulators.
    fn take(&self, p: usize) -> (&mut [i32], &mut [i64]) {
        if self.act16 { (&mut [][..], self.a64.take(p)) } else { (self.a32.take(p), &mut [][..]) }
    }
}

/// Quantizes rows of `x` (`k` wide) per token for `lin`: scales into `qs`, centres into
/// `qc`, values into `q8` or (int16 activations) `q16`.
#[allow(clippy::too_many_arguments)]
fn quantize_rows(
    x: &[f32],
    k: usize,
    lin: &Linear<'_>,
    asym: bool,
    qs: &mut [f32],
    qc: &mut [f32],
    q8: &mut [i8],
    q16: &mut [i16],
) {
    let grid = match (asym, lin.zero_on_grid) {
        (false, _) => ops::Grid::Symmetric,
        (true, false) => ops::Grid::Midpoint,
        (true, true) => ops::Grid::ZeroExact,
    };
    let acts = match lin.w.m {
        Matrix::I8 { acts, .. } => acts,
        _ => Acts::Int8,
    };
    for (i, (t, c)) in qs.iter_mut().zip(qc.iter_mut()).enumerate() {
        let xr = &x[i * k..(i + 1) * k];
        (*t, *c) = if acts == Acts::Int16 {
            ops::quantize_row(xr, lin.input_mul, grid, &mut q16[i * k..(i + 1) * k])
        } else {
            ops::quantize_row_to(xr, lin.input_mul, grid, acts.max(), &mut q8[i * k..(i + 1) * k])
        };
    }
}

/// `m` quantized rows (`qx` or `qx16`, scales `qs`, centres `qc`) times the weight rows
/// of `yv`'s columns, in blocks of rows as large as the accumulators (`acc32` or `acc64`)
/// hold; dequantized, with the row-sum term, bias and outlier channels, into `yv`, one row
/// at a time. `x` is the f32 input of those rows (for the outlier channels). The same
/// operations for every element whichever rows and columns a part holds. With `post`
/// (only when `yv` holds whole rows; the second value is the part's first row in the
/// linear's output), each row is finished right after it is dequantized.
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn int8_part(
    kern: kernels::Kernel,
    x: &[f32],
    m: usize,
    lin: &Linear<'_>,
    q: &[i8],
    scales: &[f32],
    (qx, qx16, qs, qc): (&[i8], &[i16], &[f32], &[f32]),
    yv: &mut ColumnsMut<'_, f32>,
    (acc32, acc64): (&mut [i32], &mut [i64]),
    (post, p0): (Post<'_>, usize),
) {
    let k = lin.w.cols;
    let act16 = matches!(lin.w.m, Matrix::I8 { acts: Acts::Int16, .. });
    let js = yv.cols();
    let nc = js.len();
    let block = if act16 { acc64.len() } else { acc32.len() } / nc.max(1);
    let block = block.clamp(1, m.max(1));
    let chunk = kern.column_chunk(block, k);
    for r0 in (0..m).step_by(block) {
        let rows = block.min(m - r0);
        // Columns in chunks: each chunk's accumulators are finished while they are in L2.
        for c0 in (0..nc).step_by(chunk) {
            let c1 = (c0 + chunk).min(nc);
            let (cw, cols) = (c1 - c0, js.start + c0..js.start + c1);
            let (wq, sc) = (&q[cols.start * k..cols.end * k], &scales[cols.clone()]);
            let a = r0 * k..(r0 + rows) * k;
            profile::time(Stage::Gemm, || match (act16, lin.weight_sum.map(|s| &s[cols.clone()])) {
                (true, None) => kern.gemm_i16_i8_i64(rows, cw, k, &qx16[a], wq, &mut acc64[..rows * cw]),
                (true, Some(ws)) => kern.gemm_i16_i8_i64_sums(rows, cw, k, &qx16[a], wq, ws, &mut acc64[..rows * cw]),
                (false, None) => kern.gemm_i8_i32(rows, cw, k, &qx[a], wq, &mut acc32[..rows * cw]),
                (false, Some(ws)) => kern.gemm_i8_i32_sums(rows, cw, k, &qx[a], wq, ws, &mut acc32[..rows * cw]),
            });
            kernels::vectorized(
                #[inline(always)]
                || {
                    let bias = &lin.b[cols.clone()];
                    for r in r0..r0 + rows {
                        let (t, c) = (qs[r], qc[r]);
                        let out = &mut yv.row(r)[c0..c1];
                        let at = (r - r0) * cw..(r - r0 + 1) * cw;
                        // `((t·s)·acc + c·row_sum) + bias` (the row-sum term: the centre c of
                        // the token's range times Σ_k W[n][k]): one pass for the usual linear
                        // without outlier channels, the same operations in the same order as
                        // the general path below.
                        macro_rules! finish {
                            ($acc:expr) => {
                                match (lin.outliers.is_none(), lin.row_sum) {
                                    (true, Some(rs)) => {
                                        let rs = &rs[cols.clone()];
                                        for ((((o, &a), &s), &rs), &b) in
                                            out.iter_mut().zip($acc).zip(sc).zip(rs).zip(bias)
                                        {
                                            *o = (t * s * a as f32 + c * rs) + b;
                                        }
                                    }
                                    (true, None) => {
                                        for (((o, &a), &s), &b) in out.iter_mut().zip($acc).zip(sc).zip(bias) {
                                            *o = t * s * a as f32 + b;
                                        }
                                    }
                                    (false, rs) => {
                                        let rs = rs.map(|rs| &rs[cols.clone()]);
                                        let xr = &x[r * k..(r + 1) * k];
                                        finish_with_outliers($acc, sc, rs, bias, t, c, xr, lin, cols.clone(), out);
                                    }
                                }
                            };
                        }
                        // Inlined into the vectorized region, or it would be built for the
                        // baseline CPU.
                        profile::time(
                            Stage::Dequantize,
                            #[inline(always)]
                            || {
                                if act16 {
                                    finish!(&acc64[at]);
                                } else {
                                    finish!(&acc32[at]);
                                }
                            },
                        );
                        // An activation is element-wise: finished with the chunk.
                        if let Post::Act(act) = post {
                            profile::time(Stage::Activation, || ops::activate(out, act));
                        }
                    }
                },
            );
        }
        // Residual + LayerNorm needs whole rows.
        if let Post::AddNorm(..) = post {
            for r in r0..r0 + rows {
                post.apply(yv.row(r), p0 + r, nc);
            }
        }
    }
}

/// The bias and the f32 outlier channels of `lin`, added to one part's columns of `y`:
/// `y = (y + b) + Σ_j x[col_j]·w[n][j]`, the sum from −0.0 in order of `j` (as
/// `Iterator::sum`), for every element.
#[inline(always)]
fn epilogue(x: &[f32], m: usize, k: usize, lin: &Linear<'_>, yv: &mut ColumnsMut<'_, f32>) {
    let js = yv.cols();
    for r in 0..m {
        epilogue_row(&x[r * k..(r + 1) * k], lin, js.clone(), yv.row(r));
    }
}

/// [`epilogue`] for one row: `xr` the row's input, `y` its output columns `js`.
#[inline(always)]
fn epilogue_row(xr: &[f32], lin: &Linear<'_>, js: core::ops::Range<usize>, y: &mut [f32]) {
    let bias = &lin.b[js.clone()];
    let Some(o) = &lin.outliers else {
        y.iter_mut().zip(bias).for_each(|(y, b)| *y += b);
        return;
    };
    let c = o.cols.len();
    let ow = &o.w[js.start * c..js.end * c];
    // The usual handful of channels as a compile-time count (an unrolled sum over
    // registers); any count through the general loop, with the same operations.
    match c {
        1 => outlier_row::<1>(xr, o.cols, ow, bias, y),
        2 => outlier_row::<2>(xr, o.cols, ow, bias, y),
        3 => outlier_row::<3>(xr, o.cols, ow, bias, y),
        4 => outlier_row::<4>(xr, o.cols, ow, bias, y),
        5 => outlier_row::<5>(xr, o.cols, ow, bias, y),
        6 => outlier_row::<6>(xr, o.cols, ow, bias, y),
        7 => outlier_row::<7>(xr, o.cols, ow, bias, y),
        8 => outlier_row::<8>(xr, o.cols, ow, bias, y),
        _ => {
            for ((yo, wrow), &b) in y.iter_mut().zip(ow.chunks_exact(c)).zip(bias) {
                let s = o.cols.iter().zip(wrow).fold(-0.0f32, |s, (&col, &w)| s + xr[col as usize] * w);
                *yo = (*yo + b) + s;
            }
        }
    }
}

/// An accumulator element (i32 for int8 activations, i64 for int16), as `as f32` converts it.
trait AccF32: Copy {
    fn to_f32(self) -> f32;
}

impl AccF32 for i32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self as f32
    }
}

impl AccF32 for i64 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self as f32
    }
}

/// The finish of one row's part with outlier channels, in one pass:
/// `((t·s·acc + c·row_sum) + bias) + Σ_j x[col_j]·w[n][j]`, the sum from −0.0 in order of
/// `j`: the operations and their order of dequantizing, adding the row-sum term and then
/// [`epilogue_row`], with one write of each output instead of three.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn finish_with_outliers<A: AccF32>(
    acc: &[A],
    sc: &[f32],
    rs: Option<&[f32]>,
    bias: &[f32],
    t: f32,
    c: f32,
    xr: &[f32],
    lin: &Linear<'_>,
    js: core::ops::Range<usize>,
    out: &mut [f32],
) {
    let Some(o) = &lin.outliers else { return };
    let n = o.cols.len();
    let ow = &o.w[js.start * n..js.end * n];
    // The usual handful of channels as a compile-time count (an unrolled sum over
    // registers), as `epilogue_row`; any count through the general sum, the same operations.
    let general = |w: &[f32]| o.cols.iter().zip(w).fold(-0.0f32, |s, (&col, &w)| s + xr[col as usize] * w);
    match n {
        1 => outliers_fused::<1, A>(acc, sc, rs, bias, t, c, xr, o.cols, ow, out),
        2 => outliers_fused::<2, A>(acc, sc, rs, bias, t, c, xr, o.cols, ow, out),
        3 => outliers_fused::<3, A>(acc, sc, rs, bias, t, c, xr, o.cols, ow, out),
        4 => outliers_fused::<4, A>(acc, sc, rs, bias, t, c, xr, o.cols, ow, out),
        5 => outliers_fused::<5, A>(acc, sc, rs, bias, t, c, xr, o.cols, ow, out),
        6 => outliers_fused::<6, A>(acc, sc, rs, bias, t, c, xr, o.cols, ow, out),
        7 => outliers_fused::<7, A>(acc, sc, rs, bias, t, c, xr, o.cols, ow, out),
        8 => outliers_fused::<8, A>(acc, sc, rs, bias, t, c, xr, o.cols, ow, out),
        _ => finish_rows(acc, sc, rs, bias, t, c, ow.chunks_exact(n), out, general),
    }
}

/// `out[i] = ((t·sc[i]·acc[i] (+ c·rs[i])) + bias[i]) + sum(w_i)` over the per-column
/// outlier weights `ws`: the loop both forms of [`finish_with_outliers`] run.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn finish_rows<'w, A: AccF32>(
    acc: &[A],
    sc: &[f32],
    rs: Option<&[f32]>,
    bias: &[f32],
    t: f32,
    c: f32,
    ws: impl Iterator<Item = &'w [f32]>,
    out: &mut [f32],
    sum: impl Fn(&[f32]) -> f32,
) {
    match rs {
        Some(rs) => {
            for (((((o, &a), &s), &r), &b), w) in out.iter_mut().zip(acc).zip(sc).zip(rs).zip(bias).zip(ws) {
                *o = ((t * s * a.to_f32() + c * r) + b) + sum(w);
            }
        }
        None => {
            for ((((o, &a), &s), &b), w) in out.iter_mut().zip(acc).zip(sc).zip(bias).zip(ws) {
                *o = (t * s * a.to_f32() + b) + sum(w);
            }
        }
    }
}

/// [`finish_with_outliers`] with `C` channels.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn outliers_fused<const C: usize, A: AccF32>(
    acc: &[A],
    sc: &[f32],
    rs: Option<&[f32]>,
    bias: &[f32],
    t: f32,
    c: f32,
    xr: &[f32],
    cols: &[f32],
    ow: &[f32],
    out: &mut [f32],
) {
    let xo: [f32; C] = core::array::from_fn(|j| xr[cols[j] as usize]);
    let sum = |w: &[f32]| {
        let mut s = -0.0f32;
        for j in 0..C {
            s += xo[j] * w[j];
        }
        s
    };
    finish_rows(acc, sc, rs, bias, t, c, ow.chunks_exact(C), out, sum);
}

/// One row of [`epilogue`] with `C` outlier channels.
#[inline(always)]
fn outlier_row<const C: usize>(xr: &[f32], cols: &[f32], ow: &[f32], bias: &[f32], y: &mut [f32]) {
    let xo: [f32; C] = core::array::from_fn(|j| xr[cols[j] as usize]);
    for ((yo, wrow), &b) in y.iter_mut().zip(ow.chunks_exact(C)).zip(bias) {
        let mut s = -0.0f32;
        for j in 0..C {
            s += xo[j] * wrow[j];
        }
        *yo = (*yo + b) + s;
    }
}

/// `x += residual` (when given), then LayerNorm, row by row; rows in parallel.
fn add_norm_rows(x: &mut [f32], residual: Option<&[f32]>, width: usize, norm: &Norm<'_>, eps: f32, par: Par<'_>) {
    let m = x.len() / width;
    let rows = par.partition(m, 1, width * ELEMENT_WORK);
    let xs = Chunks::new(x, rows, width);
    par.run(&rows, &|p| {
        let r0 = rows.range(p).start;
        profile::time(Stage::Norm, || {
            for (i, row) in xs.take(p).chunks_exact_mut(width).enumerate() {
                add_norm_row(row, residual.map(|r| &r[(r0 + i) * width..(r0 + i + 1) * width]), norm, eps);
            }
        });
    });
}

/// `row += residual` (when given), then LayerNorm.
#[inline]
fn add_norm_row(row: &mut [f32], residual: Option<&[f32]>, norm: &Norm<'_>, eps: f32) {
    if let Some(res) = residual {
        row.iter_mut().zip(res).for_each(|(a, &h)| *a += h);
    }
    ops::layer_norm(row, norm.gamma, norm.beta, eps);
}

impl Model<'_> {
    /// Checks ids, type ids and mask against the config.
    fn check_inputs(&self, inp: &Inputs<'_>) -> Result<(), Error> {
        let c = self.config();
        let t = inp.batch.checked_mul(inp.seq_len).ok_or(Error::BadInput {
            what: "batch × seq_len",
            index: 0,
            value: u64::MAX,
            limit: usize::MAX as u64,
        })?;
        if inp.seq_len == 0 || inp.batch == 0 {
            return Err(Error::BadInput {
                what: "sequence length and batch (empty input)",
                index: 0,
                value: 0,
                limit: 1,
            });
        }
        if inp.seq_len > c.max_position_embeddings as usize {
            return Err(Error::BadInput {
                what: "sequence length (max_position_embeddings + 1)",
                index: 0,
                value: inp.seq_len as u64,
                limit: c.max_position_embeddings as u64 + 1,
            });
        }
        let lens = [
            ("input_ids length", Some(inp.input_ids.len())),
            ("token_type_ids length", inp.token_type_ids.map(<[u32]>::len)),
            ("attention_mask length", inp.attention_mask.map(<[u32]>::len)),
        ];
        for (what, len) in lens {
            if let Some(len) = len.filter(|&l| l != t) {
                return Err(Error::BadInput { what, index: 0, value: len as u64, limit: t as u64 + 1 });
            }
        }
        if let Some((i, &id)) = inp.input_ids.iter().enumerate().find(|&(_, &id)| id >= c.vocab_size) {
            return Err(Error::BadInput { what: "token id", index: i, value: id as u64, limit: c.vocab_size as u64 });
        }
        if let Some(tt) = inp.token_type_ids
            && let Some((i, &v)) = tt.iter().enumerate().find(|&(_, &v)| v >= c.type_vocab_size)
        {
            return Err(Error::BadInput {
                what: "token type id",
                index: i,
                value: v as u64,
                limit: c.type_vocab_size as u64,
            });
        }
        if let Some(m) = inp.attention_mask
            && let Some((i, &v)) = m.iter().enumerate().find(|&(_, &v)| v > 1)
        {
            return Err(Error::BadInput { what: "attention mask value", index: i, value: v as u64, limit: 2 });
        }
        Ok(())
    }

    /// Runs the encoder over a batch, writing everything into `scratch`.
    ///
    /// `scratch` must be at least [`Model::scratch_bytes`]`(inputs.seq_len, inputs.batch)`
    /// long. Nothing is allocated.
    pub fn encode<'s>(&self, inputs: &Inputs<'_>, scratch: &'s mut [u8]) -> Result<Encoded<'s>, Error> {
        self.encode_observed(inputs, scratch, &mut NoObserver)
    }

    /// [`Model::encode`] for heads that read only the first token (`[CLS]`) of each
    /// sequence: [`Model::pooler_output`], [`Model::classify`], [`Model::sop_logits`],
    /// [`Model::choice_logit`]. The last layer computes the queries, attention, dense and
    /// FFN of that token alone (the keys and values of every token still), which saves all
    /// but a sixth of one layer's work: about 7 % of the pass with 12 layers. The first
    /// token's hidden state has the same bits as with [`Model::encode`].
    ///
    /// The result is the encoding of that token only: an [`Encoded`] with `seq_len` 1, so
    /// `last_hidden_state()` holds `batch × hidden_size` values and the per-token heads
    /// accept position 0 only.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), albert_engine::Error> {
    /// # let blob: &[u8] = &[];
    /// let model = albert_engine::Model::from_bytes(blob)?;
    /// let ids = [2, 48, 13, 3];
    /// let inputs = albert_engine::Inputs::single(&ids);
    /// let mut scratch = vec![0u8; model.scratch_bytes(ids.len(), 1)];
    /// let mut enc = model.encode_pooled(&inputs, &mut scratch)?;
    /// let mut logits = vec![0f32; model.config().num_labels as usize];
    /// model.classify(&mut enc, 0, &mut logits)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn encode_pooled<'s>(&self, inputs: &Inputs<'_>, scratch: &'s mut [u8]) -> Result<Encoded<'s>, Error> {
        self.encode_rows(inputs, scratch, &mut NoObserver, Some(&[0]))
    }

    /// [`Model::encode`] for heads that read a few positions: the last layer computes the
    /// queries, attention, dense and FFN of tokens `positions` of each sequence alone (the
    /// keys and values of every token still), as [`Model::encode_pooled`] does for the
    /// first token. Fill-mask, for one `[MASK]` among 128 tokens with 12 layers, saves
    /// about 7 % of the pass. Each of those tokens' hidden states has the same bits as with
    /// [`Model::encode`].
    ///
    /// `positions` are indices into each sequence (the same for every sequence of the
    /// batch), strictly increasing, each below `seq_len`. The result holds those tokens
    /// only: an [`Encoded`] with `seq_len` = `positions.len()`, where position `r` of
    /// sequence `b` is token `positions[r]` of that sequence (`enc.token(b, r)`,
    /// `model.mlm_logits(&mut enc, b, r, …)`). The pooled heads (pooler, classification,
    /// SOP, multiple choice) read `[CLS]`: they work when `positions[0]` is 0 and refuse the
    /// encoding otherwise.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), albert_engine::Error> {
    /// # let blob: &[u8] = &[];
    /// let model = albert_engine::Model::from_bytes(blob)?;
    /// let ids = [2, 48, 4, 13, 3]; // [CLS] … [MASK] … [SEP]
    /// let inputs = albert_engine::Inputs::single(&ids);
    /// let mut scratch = vec![0u8; model.scratch_bytes(ids.len(), 1)];
    /// let mut enc = model.encode_positions(&inputs, &[2], &mut scratch)?;
    /// let mut logits = vec![0f32; model.config().vocab_size as usize];
    /// model.mlm_logits(&mut enc, 0, 0, &mut logits)?; // token 2, the mask
    /// # Ok(())
    /// # }
    /// ```
    pub fn encode_positions<'s>(
        &self,
        inputs: &Inputs<'_>,
        positions: &[usize],
        scratch: &'s mut [u8],
    ) -> Result<Encoded<'s>, Error> {
        let seq_len = inputs.seq_len;
        let bad = |detail, index, value| Error::BadPositions { detail, index, value, seq_len };
        if positions.is_empty() {
            return Err(bad("the list is empty", 0, 0));
        }
        for (i, &p) in positions.iter().enumerate() {
            if p >= seq_len {
                return Err(bad("each must be below the sequence length", i, p));
            }
            if i > 0 && p <= positions[i - 1] {
                return Err(bad("they must be strictly increasing", i, p));
            }
        }
        self.encode_rows(inputs, scratch, &mut NoObserver, Some(positions))
    }

    /// [`Model::encode`], reporting every GEMM and layer output to `obs`.
    pub fn encode_observed<'s, O: Observer>(
        &self,
        inputs: &Inputs<'_>,
        scratch: &'s mut [u8],
        obs: &mut O,
    ) -> Result<Encoded<'s>, Error> {
        self.encode_rows(inputs, scratch, obs, None)
    }

    /// The encoder; with `keep`, the last layer for those positions of each sequence only
    /// ([`Model::encode_positions`], checked there; not observed).
    fn encode_rows<'s, O: Observer>(
        &self,
        inputs: &Inputs<'_>,
        scratch: &'s mut [u8],
        obs: &mut O,
        keep: Option<&[usize]>,
    ) -> Result<Encoded<'s>, Error> {
        self.check_inputs(inputs)?;
        let c: ModelConfig = *self.config();
        let (b, s) = (inputs.batch, inputs.seq_len);
        let plan = Plan::new(&c, s, b);
        let r = plan.carve(scratch)?;
        let t = plan.tokens;
        let (e, h) = (c.embedding_size as usize, c.hidden_size as usize);
        let w = &self.weights;
        let eps = c.layer_norm_eps;
        let mut work = r.work;

        // Embeddings: word + token type + position, then LayerNorm (AlbertEmbeddings).
        for (tok, row) in r.emb.chunks_exact_mut(e).enumerate() {
            w.word.row_into(inputs.input_ids[tok] as usize, row);
            let tt = inputs.token_type_ids.map_or(0, |v| v[tok]) as usize;
            w.token_type.add_row_into(tt, row);
            w.position.add_row_into(tok % s, row);
        }
        let par = self.par();
        add_norm_rows(r.emb, None, e, &w.emb_norm, eps, par);
        linear(r.emb, t, &w.mapping_in, r.hidden, &mut work, par);
        obs.gemm(Site { gemm: Gemm::MappingIn, layer: 0, iteration: 0 }, r.emb, r.hidden, t);

        let inner = c.inner_group_num as usize;
        for it in 0..c.num_hidden_layers {
            let g = ModelConfig::group_of_iteration(it, c.num_hidden_layers, c.num_hidden_groups);
            for (j, layer) in w.layers[g * inner..(g + 1) * inner].iter().enumerate() {
                let bufs = LayerBufs {
                    attn: &mut *r.attn,
                    q: &mut *r.q,
                    k: &mut *r.k,
                    v: &mut *r.v,
                    ctx: &mut *r.ctx,
                    ffn: &mut *r.ffn,
                    probs: &mut *r.probs,
                };
                let at = Site { gemm: Gemm::Query, layer: g * inner + j, iteration: it };
                if let Some(keep) = keep
                    && it + 1 == c.num_hidden_layers
                    && j + 1 == inner
                {
                    layer_forward_at(&c, layer, inputs, keep, r.hidden, bufs, &mut work, par);
                    // Those tokens' states are now rows 0..b·n, sequence by sequence.
                    let n = keep.len();
                    let hidden = &mut r.hidden[..b * n * h];
                    return Ok(Encoded { hidden, work, batch: b, seq_len: n, hidden_size: h, first_token: keep[0] });
                }
                layer_forward(&c, layer, inputs, r.hidden, bufs, &mut work, par, at, obs);
                obs.layer(it, g * inner + j, r.hidden);
            }
        }
        Ok(Encoded { hidden: r.hidden, work, batch: b, seq_len: s, hidden_size: h, first_token: 0 })
    }
}

/// Multi-head attention: the context rows of `queries` query rows per sequence, from the
/// queries `q`, the keys `k` and values `v` of every token (rows of `hidden_size`). Query
/// and context row `bi·queries + i` is query `i` of sequence `bi`: every token with
/// `queries = seq_len`, or the compacted rows of [`layer_forward_at`].
#[allow(clippy::too_many_arguments)]
fn attention_heads(
    c: &ModelConfig,
    inp: &Inputs<'_>,
    queries: usize,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    ctx: &mut [f32],
    probs: &mut [f32],
    par: Par<'_>,
) {
    let (b, s) = (inp.batch, inp.seq_len);
    let h = c.hidden_size as usize;
    let nh = c.num_attention_heads as usize;
    let d = c.head_dim();
    let scale = 1.0 / libm::sqrtf(d as f32);
    // The query and context row of query `i` of sequence `bi`.
    let row = |bi: usize, i: usize| bi * queries + i;
    // Heads in parallel: a part owns its heads' columns of the context and one row of
    // probabilities per head.
    // A head's work: the scores and the context (f32 multiply-adds, each worth a few int8
    // ones), and its softmax.
    let head_work = b * queries * s * (4 * 2 * d + ELEMENT_WORK);
    let heads = par.partition(nh, 1, head_work);
    let ctx = Columns::new(ctx, b * queries, h, heads, d);
    // Per head: QROWS rows of probabilities and of context, its keys (transposed for the
    // AVX-512 scores, else packed) and its values packed (`scratch::Plan`).
    let kt_len = attention::keys_stride(s) * d;
    let unit = QROWS * (s + d) + kt_len + s * d;
    let probs = Chunks::new(probs, heads, unit);
    par.run(&heads, &|p| {
        let mut ctx = ctx.take(p);
        let (probs, rest) = probs.take(p)[..unit].split_at_mut(QROWS * s);
        let (out, rest) = rest.split_at_mut(QROWS * d);
        let (kt, vp) = rest.split_at_mut(kt_len);
        let first = ctx.cols().start;
        for head in heads.range(p) {
            let col = head * d;
            for bi in 0..b {
                let base = bi * s;
                // The head's keys and values of token j start at `j·h` in these slices.
                // Rows `h` floats apart (a multiple of 4 KiB / 3 for the base shape) fall into
                // a few L1 sets: packed rows `d` apart stay in L1 across the query rows.
                let keys = &k[base * h + col..];
                let mask = inp.attention_mask.map(|m| &m[base..base + s]);
                let transposed = attention::reads_transposed_keys();
                profile::time(Stage::Scores, || {
                    if transposed {
                        attention::transpose_keys(keys, h, s, d, kt);
                    } else {
                        attention::pack_rows(keys, h, s, d, kt);
                    }
                    attention::pack_rows(&v[base * h + col..], h, s, d, vp);
                });
                let (keys, stride) = if transposed { (keys, h) } else { (&kt[..], d) };
                let values = &vp[..];
                // QROWS query rows at a time, sharing each key and value load.
                for i in (0..queries).step_by(QROWS) {
                    let rows = QROWS.min(queries - i);
                    let qs: [&[f32]; QROWS] =
                        core::array::from_fn(|r| &q[row(bi, i + r.min(rows - 1)) * h + col..][..d]);
                    // transformers adds finfo(float32).min where the mask is 0.
                    profile::time(Stage::Scores, || {
                        attention::scores_rows(&qs[..rows], keys, stride, kt, scale, mask, probs, s)
                    });
                    profile::time(Stage::Softmax, || probs[..rows * s].chunks_exact_mut(s).for_each(ops::softmax));
                    profile::time(Stage::Context, || attention::context_rows(probs, s, rows, values, d, out, d));
                    for r in 0..rows {
                        ctx.row(row(bi, i + r))[col - first..][..d].copy_from_slice(&out[r * d..][..d]);
                    }
                }
            }
        }
    });
}

/// The last `AlbertLayer` for tokens `at` of each sequence only
/// ([`Model::encode_positions`]; `at` strictly increasing, each below `seq_len`): the keys
/// and values of every token, then queries, attention, dense and FFN for `b·n` rows
/// (`n = at.len()`). On return `hidden[..b·n·h]` holds those tokens' outputs, each bit for
/// bit what [`layer_forward`] gives it.
#[allow(clippy::too_many_arguments)]
fn layer_forward_at(
    c: &ModelConfig,
    l: &Layer<'_>,
    inp: &Inputs<'_>,
    at: &[usize],
    hidden: &mut [f32],
    x: LayerBufs<'_>,
    work: &mut Work<'_>,
    par: Par<'_>,
) {
    let (b, s) = (inp.batch, inp.seq_len);
    let t = b * s;
    let n = at.len();
    let h = c.hidden_size as usize;
    // Per token: quantized alike whichever linear quantizes first (`same_input_quantization`).
    linear(hidden, t, &l.key, x.k, work, par);
    linear_with(hidden, t, &l.value, x.v, work, par, same_input_quantization(&l.key, &l.value), false, Post::None);
    // Token at[r] of sequence bi to row bi·n + r: in this order every row moves down
    // (bi·n + r ≤ bi·s + at[r], as at[r] ≥ r) and never over a row still to come.
    for bi in 0..b {
        for (r, &p) in at.iter().enumerate() {
            let (from, to) = (bi * s + p, bi * n + r);
            if from != to {
                hidden.copy_within(from * h..from * h + h, to * h);
            }
        }
    }
    let m = b * n;
    let hidden = &mut hidden[..m * h];
    linear(hidden, m, &l.query, x.q, work, par);
    attention_heads(c, inp, n, &*x.q, &*x.k, &*x.v, &mut *x.ctx, &mut *x.probs, par);
    dense_and_ffn(c, l, m, hidden, x, work, par);
}

/// The rest of an `AlbertLayer` after attention, for `m` rows: dense + residual +
/// LayerNorm into `x.attn`, then FFN + residual + LayerNorm into `hidden`, each row-wise
/// step inside its linear (by each thread on the rows it produced when the GEMM is cut by
/// rows).
fn dense_and_ffn(
    c: &ModelConfig,
    l: &Layer<'_>,
    m: usize,
    hidden: &mut [f32],
    x: LayerBufs<'_>,
    work: &mut Work<'_>,
    par: Par<'_>,
) {
    let eps = c.layer_norm_eps;
    linear_rows(x.ctx, m, &l.dense, x.attn, work, par, Post::AddNorm(hidden, &l.attn_norm, eps));
    linear_rows(x.attn, m, &l.ffn, x.ffn, work, par, Post::Act(c.hidden_act));
    linear_rows(x.ffn, m, &l.ffn_output, hidden, work, par, Post::AddNorm(x.attn, &l.out_norm, eps));
}

struct LayerBufs<'x> {
    attn: &'x mut [f32],
    q: &'x mut [f32],
    k: &'x mut [f32],
    v: &'x mut [f32],
    ctx: &'x mut [f32],
    ffn: &'x mut [f32],
    probs: &'x mut [f32],
}

/// One `AlbertLayer`: attention with residual and LayerNorm, then FFN with residual and
/// LayerNorm. Updates `hidden` in place.
#[allow(clippy::too_many_arguments)]
fn layer_forward<O: Observer>(
    c: &ModelConfig,
    l: &Layer<'_>,
    inp: &Inputs<'_>,
    hidden: &mut [f32],
    x: LayerBufs<'_>,
    work: &mut Work<'_>,
    par: Par<'_>,
    at: Site,
    obs: &mut O,
) {
    let site = |gemm| Site { gemm, ..at };
    let (b, s) = (inp.batch, inp.seq_len);
    let t = b * s;
    let h = c.hidden_size as usize;

    linear(hidden, t, &l.query, x.q, work, par);
    obs.gemm(site(Gemm::Query), hidden, x.q, t);
    linear_with(hidden, t, &l.key, x.k, work, par, same_input_quantization(&l.query, &l.key), false, Post::None);
    obs.gemm(site(Gemm::Key), hidden, x.k, t);
    linear_with(hidden, t, &l.value, x.v, work, par, same_input_quantization(&l.key, &l.value), false, Post::None);
    obs.gemm(site(Gemm::Value), hidden, x.v, t);

    attention_heads(c, inp, s, &*x.q, &*x.k, &*x.v, &mut *x.ctx, &mut *x.probs, par);

    // The row-wise steps after the dense, FFN and FFN-output linears run inside them
    // (`dense_and_ffn`), unless an observer must see the linear's own output first.
    if O::OBSERVES {
        let eps = c.layer_norm_eps;
        linear_rows(x.ctx, t, &l.dense, x.attn, work, par, Post::None);
        obs.gemm(site(Gemm::Dense), x.ctx, x.attn, t);
        add_norm_rows(x.attn, Some(hidden), h, &l.attn_norm, eps, par);
        linear_rows(x.attn, t, &l.ffn, x.ffn, work, par, Post::None);
        obs.gemm(site(Gemm::Ffn), x.attn, x.ffn, t);
        let rows = par.partition(t, 1, c.intermediate_size as usize * ELEMENT_WORK);
        let ffn = Chunks::new(&mut *x.ffn, rows, c.intermediate_size as usize);
        par.run(&rows, &|p| profile::time(Stage::Activation, || ops::activate(ffn.take(p), c.hidden_act)));
        linear_rows(x.ffn, t, &l.ffn_output, hidden, work, par, Post::None);
        obs.gemm(site(Gemm::FfnOutput), x.ffn, hidden, t);
        add_norm_rows(hidden, Some(x.attn), h, &l.out_norm, eps, par);
    } else {
        dense_and_ffn(c, l, t, hidden, x, work, par);
    }
}
