//! Packing a [`Checkpoint`] into an `.albq` blob at a chosen weight precision.

use albert_engine::Model;
use albert_engine::config::DType;
use albert_engine::format::Acts;
use albert_engine::format::write::{BlobWriter, TensorData};
use anyhow::{Result, anyhow};

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::calib::{self, AbsMax};
use crate::checkpoint::Checkpoint;
use crate::gptq::{self, Hessian, Hessians};

/// How to pack: the weight precision and the int8 options (`FORMAT.md`, "Quantization").
#[derive(Clone, Debug)]
pub struct PackOptions {
    pub dtype: DType,
    /// SmoothQuant migration strength α in [0, 1] for int8 (None: no smoothing).
    pub smooth_alpha: Option<f32>,
    /// Calibration statistics; when smoothing without them, synthetic inputs are used.
    pub absmax: Option<AbsMax>,
    /// int8: split out input channels whose calibrated max exceeds this many times the
    /// median (None: no decomposition).
    pub outlier_threshold: Option<f32>,
    /// int8: per-row weight scales that minimise squared error (else max-abs scales).
    pub mse_weights: bool,
    /// int8: quantize GEMM inputs centred on each token's midpoint (stores row sums).
    pub centred: bool,
    /// int8, with `centred`: move each token's centre onto its grid so that 0 quantizes
    /// exactly (activation scheme 2; without it, scheme 1).
    pub zero_on_grid: bool,
    /// Linears (name suffixes such as `ffn_output`) whose weights stay f32 in an int8 blob.
    pub keep_f32: Vec<String>,
    /// Linears (name suffixes) whose int8 GEMM takes int16 activations.
    pub act16: Vec<String>,
    /// Linears (name suffixes) whose int8 GEMM takes 7-bit activations (`[-63, 63]`: the
    /// `avx2` kernel's `vpmaddubsw` form, faster on x86 CPUs without VNNI).
    pub act7: Vec<String>,
    /// The `TOKENIZER` section (`crate::tokenizer::build_section`), when packing one.
    pub tokenizer: Option<Vec<u8>>,
    /// int8: round the encoder's weights with GPTQ error compensation (`crate::gptq`).
    pub gptq: bool,
    /// Calibration input correlations for GPTQ; when absent, synthetic inputs are used.
    pub hessians: Option<Arc<Hessians>>,
    /// int8: store every linear's integer weight row sums (`P.weight_sum`), which the `vnni`
    /// kernel reads instead of summing the rows on every call. Off only to compare.
    pub weight_sums: bool,
}

impl PackOptions {
    /// The defaults `quantize` uses for `dtype`: for int8, outlier input channels split out
    /// (calibrated on synthetic inputs), activations quantized centred per token with 0 on
    /// the grid, weight scales chosen for least squared error and the encoder's weights
    /// rounded with GPTQ (measurements in `FORMAT.md`).
    pub fn new(dtype: DType) -> Self {
        let int8 = dtype == DType::I8;
        PackOptions {
            outlier_threshold: int8.then_some(DEFAULT_OUTLIER_THRESHOLD),
            centred: int8,
            zero_on_grid: int8,
            mse_weights: int8,
            gptq: int8,
            ..Self::plain(dtype)
        }
    }

    /// No smoothing, no outlier split: plain per-row int8 weights and per-token int8
    /// activations (the baseline scheme).
    pub fn plain(dtype: DType) -> Self {
        PackOptions {
            dtype,
            smooth_alpha: None,
            outlier_threshold: None,
            absmax: None,
            mse_weights: false,
            centred: false,
            zero_on_grid: false,
            keep_f32: Vec::new(),
            act16: Vec::new(),
            act7: Vec::new(),
            tokenizer: None,
            gptq: false,
            hessians: None,
            weight_sums: true,
        }
    }
}

/// `quantize`'s default outlier threshold (see `FORMAT.md`).
pub const DEFAULT_OUTLIER_THRESHOLD: f32 = 6.0;

/// Sequences and length of the built-in calibration.
pub const SYNTHETIC_CALIB: (usize, usize) = (4, 64);

/// How one linear's int8 GEMM is set up from calibration statistics.
struct LinearPlan {
    /// Factor folded into each weight column: the smoothing factor `s_k`, or 0 for an
    /// outlier channel (computed in f32 instead).
    col_scale: Vec<f32>,
    /// Outlier input channels, largest first.
    outliers: Vec<usize>,
}

impl LinearPlan {
    /// The engine's `input_mul`: `1 / s_k`, and 0 where the channel is split out.
    fn input_mul(&self) -> Vec<f32> {
        self.col_scale.iter().map(|&s| if s == 0.0 { 0.0 } else { 1.0 / s }).collect()
    }
}

/// Plans every linear with calibration data: split out the channels whose activation max
/// exceeds `threshold ×` the median (at most K/32 of them), then smooth the rest with
/// `s_k = a_k^α / w_k^(1-α)` (`a_k` the activation max, `w_k` the weight column max, over
/// query, key and value together since they share their input).
fn plan_linears(ck: &Checkpoint, absmax: &AbsMax, opts: &PackOptions) -> BTreeMap<String, LinearPlan> {
    let mut out = BTreeMap::new();
    for (prefix, act) in absmax {
        let k = act.len();
        let mut outliers = Vec::new();
        if let Some(threshold) = opts.outlier_threshold {
            let mut sorted = act.clone();
            sorted.sort_by(f32::total_cmp);
            let median = sorted[k / 2];
            let mut order: Vec<usize> = (0..k).collect();
            order.sort_by(|&x, &y| act[y].total_cmp(&act[x]));
            outliers = order.into_iter().take_while(|&c| act[c] > threshold * median).take((k / 32).max(1)).collect();
        }
        let col_scale: Vec<f32> = match opts.smooth_alpha {
            Some(alpha) => {
                let base = [".attention.query", ".attention.key", ".attention.value"]
                    .iter()
                    .find_map(|suffix| prefix.strip_suffix(suffix));
                let group: Vec<String> = match base {
                    Some(base) => {
                        ["query", "key", "value"].iter().map(|n| format!("{base}.attention.{n}.weight")).collect()
                    }
                    None => vec![format!("{prefix}.weight")],
                };
                let mut wmax = vec![0f32; k];
                for name in &group {
                    if let Some(t) = ck.tensors.get(name) {
                        for row in t.values.chunks_exact(k) {
                            wmax.iter_mut().zip(row).for_each(|(m, &v)| *m = m.max(v.abs()));
                        }
                    }
                }
                act.iter()
                    .zip(&wmax)
                    .map(|(&a, &w)| (a.max(1e-5).powf(alpha) / w.max(1e-5).powf(1.0 - alpha)).clamp(1e-4, 1e4))
                    .collect()
            }
            None => vec![1.0; k],
        };
        let mut plan = LinearPlan { col_scale, outliers };
        for &c in &plan.outliers {
            plan.col_scale[c] = 0.0;
        }
        if opts.smooth_alpha.is_some() || !plan.outliers.is_empty() {
            out.insert(prefix.clone(), plan);
        }
    }
    out
}

/// Whether `name` is a matrix stored at the chosen precision (`FORMAT.md`,
/// "Quantization"); every other tensor stays f32.
pub fn is_matrix(name: &str) -> bool {
    const WHOLE: [&str; 5] = [
        "embeddings.word_embeddings.weight",
        "encoder.embedding_hidden_mapping_in.weight",
        "pooler.weight",
        "predictions.dense.weight",
        "predictions.decoder.weight",
    ];
    const LAYER: [&str; 6] = [
        ".attention.query.weight",
        ".attention.key.weight",
        ".attention.value.weight",
        ".attention.dense.weight",
        ".ffn.weight",
        ".ffn_output.weight",
    ];
    WHOLE.contains(&name)
        || (name.starts_with("encoder.albert_layer_groups.") && LAYER.iter().any(|s| name.ends_with(s)))
}

/// A blob's bytes in an 8-byte aligned buffer, so the engine can view it in place.
pub struct AlignedBlob {
    words: Vec<u64>,
    len: usize,
}

impl AlignedBlob {
    pub fn new(bytes: &[u8]) -> Self {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        AlignedBlob { words, len: bytes.len() }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }
}

/// One line of the pack summary.
pub struct Packed {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<u32>,
    pub bytes: usize,
    /// Quantization SQNR of the stored values against the checkpoint's (dB; infinite for
    /// f32).
    pub sqnr_db: f64,
}

/// SQNR in dB of `td`'s stored values against `reference`.
fn stored_sqnr(reference: &[f32], td: &TensorData) -> f64 {
    let mut e = crate::report::Energy::default();
    match td.dtype {
        DType::F32 => return f64::INFINITY,
        DType::F16 => {
            let h: &[half::f16] = bytemuck::cast_slice(&td.data);
            let v: Vec<f32> = h.iter().map(|x| x.to_f32()).collect();
            e.add(reference, &v);
        }
        DType::I8 => {
            let scales = td.scales.as_deref().unwrap_or(&[]);
            let k = reference.len() / scales.len().max(1);
            let v: Vec<f32> = td.data.iter().enumerate().map(|(i, &q)| q as i8 as f32 * scales[i / k]).collect();
            e.add(reference, &v);
        }
    }
    e.sqnr_db()
}

/// `Σ_k w[n][k]` of an int8 tensor's dequantized rows: each row's scale times its
/// [`weight_sums`].
fn row_sums(t: &TensorData) -> Vec<f32> {
    let scales = t.scales.as_deref().unwrap_or(&[]);
    weight_sums(t).iter().zip(scales).map(|(&q, s)| s * q).collect()
}

/// Appends the auxiliary f32 vectors `vs` to the blob and to the summary (exact: no SQNR).
fn push_vectors(w: &mut BlobWriter, summary: &mut Vec<Packed>, vs: Vec<TensorData>) {
    for t in vs {
        summary.push(Packed {
            name: t.name.clone(),
            dtype: DType::F32,
            shape: t.shape.clone(),
            bytes: t.data.len(),
            sqnr_db: f64::INFINITY,
        });
        w.tensors.push(t);
    }
}

/// `Σ_k q[n][k]` of an int8 tensor's stored rows, as exact f32 integers (`weight_sum`).
fn weight_sums(t: &TensorData) -> Vec<f32> {
    let k = t.data.len() / t.shape[0].max(1) as usize;
    t.data.chunks_exact(k.max(1)).map(|row| row.iter().map(|&q| q as i8 as i32).sum::<i32>() as f32).collect()
}

/// Packs `ck` with [`PackOptions::new`]`(dtype)`.
pub fn pack(ck: &Checkpoint, dtype: DType) -> Result<(Vec<u8>, Vec<Packed>)> {
    pack_with(ck, &PackOptions::new(dtype))
}

/// Packs `ck` as `opts` says, validates the result with the engine, and returns the blob
/// bytes and a per-tensor summary.
pub fn pack_with(ck: &Checkpoint, opts: &PackOptions) -> Result<(Vec<u8>, Vec<Packed>)> {
    pack_with_progress(ck, opts, &mut |_, _, _| {})
}

/// [`pack_with`], calling `progress(done, total, name)` before each checkpoint tensor is
/// stored (for `quantize`'s progress bar).
pub fn pack_with_progress(
    ck: &Checkpoint,
    opts: &PackOptions,
    progress: &mut dyn FnMut(usize, usize, &str),
) -> Result<(Vec<u8>, Vec<Packed>)> {
    let dtype = opts.dtype;
    let quantize_i8 = |name: &str, shape: &[u32], v: &[f32]| {
        if opts.mse_weights {
            TensorData::i8_per_row_mse(name, shape, v)
        } else {
            TensorData::i8_per_row(name, shape, v)
        }
    };
    let plans = match dtype {
        DType::I8 if opts.smooth_alpha.is_some() || opts.outlier_threshold.is_some() => {
            let absmax = match &opts.absmax {
                Some(a) => a.clone(),
                None => {
                    let (f32_blob, _) = pack_with(ck, &PackOptions::new(DType::F32))?;
                    let aligned = AlignedBlob::new(&f32_blob);
                    let model = Model::from_bytes(aligned.as_bytes())?;
                    let (n, len) = SYNTHETIC_CALIB;
                    calib::collect_absmax(&model, &calib::synthetic_ids(model.config(), n, len))?
                }
            };
            plan_linears(ck, &absmax, opts)
        }
        _ => BTreeMap::new(),
    };
    let hessians = match (dtype, opts.gptq, &opts.hessians) {
        (DType::I8, true, Some(h)) => Some(h.clone()),
        (DType::I8, true, None) => {
            let (f32_blob, _) = pack_with(ck, &PackOptions::new(DType::F32))?;
            let aligned = AlignedBlob::new(&f32_blob);
            let model = Model::from_bytes(aligned.as_bytes())?;
            let (n, len) = SYNTHETIC_CALIB;
            Some(Arc::new(gptq::collect(&model, &calib::synthetic_ids(model.config(), n, len))?))
        }
        _ => None,
    };
    // GPTQ rounding of `td` (already holding its row scales) for the linear `name`, whose
    // stored weights are `values` and whose inputs are multiplied by `input_mul`.
    let compensate = |name: &str, td: TensorData, values: &[f32], input_mul: Option<&[f32]>| -> TensorData {
        let Some(h) = name.strip_suffix(".weight").and_then(|p| hessians.as_ref()?.get(p)) else {
            return td;
        };
        let scaled;
        let h = match input_mul {
            Some(d) => {
                let k = h.k;
                scaled = Hessian {
                    k,
                    rows: h.rows,
                    h: (0..k * k).map(|i| h.h[i] * d[i / k] as f64 * d[i % k] as f64).collect(),
                };
                &scaled
            }
            None => h,
        };
        let q = gptq::quantize_rows(values, td.scales.as_deref().unwrap_or(&[]), h);
        TensorData { data: q.into_iter().map(|v| v as u8).collect(), ..td }
    };
    let mut config = ck.config;
    config.weight_dtype = dtype;
    config.activation_scheme = match (dtype == DType::I8, opts.centred && opts.zero_on_grid) {
        (false, _) => 0,
        (true, false) => 1,
        (true, true) => 2,
    };
    let mut w = BlobWriter::new(config);
    w.labels = ck.labels.clone();
    w.tokenizer = opts.tokenizer.clone();
    let mut summary = Vec::new();
    for (done, (name, t)) in ck.tensors.iter().enumerate() {
        progress(done, ck.tensors.len(), name);
        let shape: Vec<u32> = t
            .shape
            .iter()
            .map(|&d| u32::try_from(d).map_err(|_| anyhow!("tensor `{name}` dimension {d} too large")))
            .collect::<Result<_>>()?;
        if shape.is_empty() || shape.len() > 4 {
            return Err(anyhow!("tensor `{name}` has {} dimensions; 1 to 4 are supported", shape.len()));
        }
        let smooth = name.strip_suffix(".weight").and_then(|p| plans.get(p));
        let listed = |list: &[String]| {
            name.strip_suffix(".weight").is_some_and(|p| list.iter().any(|k| p.ends_with(k.as_str())))
        };
        let keep = listed(&opts.keep_f32);
        let acts = match (listed(&opts.act16), listed(&opts.act7)) {
            (true, true) => return Err(anyhow!("linear `{name}` is named by both --act16 and --act7")),
            (true, false) => Acts::Int16,
            (false, true) => Acts::Int7,
            (false, false) => Acts::Int8,
        };
        let td = if is_matrix(name) && shape.len() == 2 && !keep {
            match (dtype, smooth) {
                (DType::I8, Some(plan)) => {
                    let prefix = &name[..name.len() - ".weight".len()];
                    let k = plan.col_scale.len();
                    // Fold the column factors into the weight; the engine multiplies the
                    // input by their inverse (and by 0 on split-out channels).
                    let scaled: Vec<f32> = t
                        .values
                        .chunks_exact(k)
                        .flat_map(|row| row.iter().zip(&plan.col_scale).map(|(w, f)| w * f))
                        .collect();
                    let mut extra =
                        vec![TensorData::f32(&format!("{prefix}.input_mul"), &[k as u32], &plan.input_mul())];
                    if !plan.outliers.is_empty() {
                        let cols: Vec<f32> = plan.outliers.iter().map(|&c| c as f32).collect();
                        let ow: Vec<f32> = t
                            .values
                            .chunks_exact(k)
                            .flat_map(|row| plan.outliers.iter().map(move |&c| row[c]))
                            .collect();
                        let c = cols.len() as u32;
                        extra.push(TensorData::f32(&format!("{prefix}.outlier_cols"), &[c], &cols));
                        extra.push(TensorData::f32(&format!("{prefix}.outlier_weight"), &[shape[0], c], &ow));
                    }
                    for e in extra {
                        let bytes = e.data.len();
                        summary.push(Packed {
                            name: e.name.clone(),
                            dtype: DType::F32,
                            shape: e.shape.clone(),
                            bytes,
                            sqnr_db: f64::INFINITY,
                        });
                        w.tensors.push(e);
                    }
                    let td = TensorData { acts, ..quantize_i8(name, &shape, &scaled) };
                    let td = compensate(name, td, &scaled, Some(&plan.input_mul()));
                    let sqnr_db = stored_sqnr(&scaled, &td);
                    let bytes = td.data.len() + 4 * shape[0] as usize;
                    summary.push(Packed { name: name.clone(), dtype: td.dtype, shape: shape.clone(), bytes, sqnr_db });
                    w.tensors.push(td);
                    continue;
                }
                (DType::F32, _) => TensorData::f32(name, &shape, &t.values),
                (DType::F16, _) => TensorData::f16(name, &shape, &t.values),
                (DType::I8, None) => {
                    compensate(name, TensorData { acts, ..quantize_i8(name, &shape, &t.values) }, &t.values, None)
                }
            }
        } else {
            TensorData::f32(name, &shape, &t.values)
        };
        let bytes = td.data.len() + td.scales.as_ref().map_or(0, |s| 4 * s.len());
        let sqnr_db = stored_sqnr(&t.values, &td);
        summary.push(Packed { name: name.clone(), dtype: td.dtype, shape, bytes, sqnr_db });
        w.tensors.push(td);
    }
    if dtype == DType::I8 && opts.centred {
        // Row sums of every int8 linear, for the centred activations' offset term. The MLM
        // decoder's weight is the word embedding table unless untied.
        let mut sums = Vec::new();
        for t in w.tensors.iter().filter(|t| t.dtype == DType::I8) {
            let prefix = match t.name.as_str() {
                "embeddings.word_embeddings.weight"
                    if ck.config.heads.has(albert_engine::Heads::MLM)
                        && !ck.tensors.contains_key("predictions.decoder.weight") =>
                {
                    "predictions.decoder"
                }
                "embeddings.word_embeddings.weight" => continue,
                n => n.strip_suffix(".weight").unwrap_or(n),
            };
            sums.push(TensorData::f32(&format!("{prefix}.row_sum"), &[t.shape[0]], &row_sums(t)));
        }
        push_vectors(&mut w, &mut summary, sums);
    }
    if dtype == DType::I8 && opts.weight_sums {
        // Integer row sums of every int8 linear (not the embedding table, which is also the
        // MLM decoder): the `vnni` kernel's activation offset correction, read instead of
        // summed on every call.
        let mut sums = Vec::new();
        for t in w.tensors.iter().filter(|t| t.dtype == DType::I8 && t.name != "embeddings.word_embeddings.weight") {
            let Some(prefix) = t.name.strip_suffix(".weight") else { continue };
            sums.push(TensorData::f32(&format!("{prefix}.weight_sum"), &[t.shape[0]], &weight_sums(t)));
        }
        push_vectors(&mut w, &mut summary, sums);
    }
    let bytes = w.to_bytes();
    let aligned = AlignedBlob::new(&bytes);
    Model::from_bytes(aligned.as_bytes()).map_err(|e| anyhow!("the checkpoint does not match its config.json: {e}"))?;
    Ok((bytes, summary))
}
