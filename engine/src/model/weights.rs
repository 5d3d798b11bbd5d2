//! Typed, borrowed views of the blob's tensors, checked against the config at load.

use core::fmt::Write;

use half::f16;

use crate::config::{DType, Heads, MAX_LAYERS, ModelConfig};
use crate::error::{Error, Name, name};
use crate::format::{Acts, Blob, TensorInfo};

/// A weight matrix in whatever dtype the blob stores, `rows × cols` row-major.
#[derive(Clone, Copy, Debug)]
pub enum Matrix<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
    /// int8 values with one scale per row: `w[r][c] ≈ scales[r] · q[r][c]`. `acts` says
    /// what the GEMM quantizes its input to (int8, int16 or 7 bits).
    I8 {
        q: &'a [i8],
        scales: &'a [f32],
        acts: Acts,
    },
}

/// A matrix and its dimensions.
#[derive(Clone, Copy, Debug)]
pub struct Weight<'a> {
    pub m: Matrix<'a>,
    pub rows: usize,
    pub cols: usize,
}

impl Weight<'_> {
    /// Writes row `r`, dequantized to f32, into `out` (`cols` long).
    pub fn row_into(&self, r: usize, out: &mut [f32]) {
        let c = self.cols;
        match self.m {
            Matrix::F32(w) => out.copy_from_slice(&w[r * c..(r + 1) * c]),
            Matrix::F16(w) => out.iter_mut().zip(&w[r * c..(r + 1) * c]).for_each(|(o, v)| *o = v.to_f32()),
            Matrix::I8 { q, scales, .. } => {
                let s = scales[r];
                out.iter_mut().zip(&q[r * c..(r + 1) * c]).for_each(|(o, &v)| *o = s * v as f32);
            }
        }
    }

    /// Adds row `r`, dequantized, to `out`.
    pub fn add_row_into(&self, r: usize, out: &mut [f32]) {
        let c = self.cols;
        match self.m {
            Matrix::F32(w) => out.iter_mut().zip(&w[r * c..(r + 1) * c]).for_each(|(o, v)| *o += v),
            Matrix::F16(w) => out.iter_mut().zip(&w[r * c..(r + 1) * c]).for_each(|(o, v)| *o += v.to_f32()),
            Matrix::I8 { q, scales, .. } => {
                let s = scales[r];
                out.iter_mut().zip(&q[r * c..(r + 1) * c]).for_each(|(o, &v)| *o += s * v as f32);
            }
        }
    }

    pub fn dtype(&self) -> DType {
        match self.m {
            Matrix::F32(_) => DType::F32,
            Matrix::F16(_) => DType::F16,
            Matrix::I8 { .. } => DType::I8,
        }
    }
}

/// `y = x Wᵀ + b` with `W` in `[out, in]` orientation.
#[derive(Clone, Copy, Debug)]
pub struct Linear<'a> {
    pub w: Weight<'a>,
    pub b: &'a [f32],
    /// Per-input-channel multipliers applied to `x` before it is quantized (SmoothQuant-style
    /// migration of activation outliers into the weights, whose columns were divided by the
    /// same values at quantize time). Only with int8 weights.
    pub input_mul: Option<&'a [f32]>,
    /// Input channels computed in f32 instead (LLM.int8-style decomposition): their
    /// activations are excluded from quantization (`input_mul` is 0 there) and their
    /// contribution is added from these f32 weight columns.
    pub outliers: Option<Outliers<'a>>,
    /// `Σ_k W[n][k]` per output row, of the stored (dequantized) weights: present when the
    /// GEMM quantizes its input centred on each token's midpoint, whose offset it corrects.
    pub row_sum: Option<&'a [f32]>,
    /// `Σ_k q[n][k]` per output row, of the stored int8 weights, as exact integers: what the
    /// kernels that offset the activations (`vnni`) would otherwise compute on every call.
    /// Written by `quantize` for every int8 linear; without it the kernel sums the rows.
    pub weight_sum: Option<&'a [f32]>,
    /// With `row_sum`: the centre of each token's range is moved onto its quantization grid,
    /// so that 0 quantizes exactly (activation scheme 2; `FORMAT.md`, "Activations").
    pub zero_on_grid: bool,
}

/// The f32 part of a decomposed linear.
#[derive(Clone, Copy, Debug)]
pub struct Outliers<'a> {
    /// Input channel indices, stored as exact f32 integers (all below 2^20).
    pub cols: &'a [f32],
    /// `out × cols.len()`, row-major: `w[n][j] = W[n][cols[j]]`.
    pub w: &'a [f32],
}

/// LayerNorm parameters.
#[derive(Clone, Copy, Debug)]
pub struct Norm<'a> {
    pub gamma: &'a [f32],
    pub beta: &'a [f32],
}

/// One ALBERT layer (shared across iterations).
#[derive(Clone, Copy, Debug)]
pub struct Layer<'a> {
    pub query: Linear<'a>,
    pub key: Linear<'a>,
    pub value: Linear<'a>,
    pub dense: Linear<'a>,
    pub attn_norm: Norm<'a>,
    pub ffn: Linear<'a>,
    pub ffn_output: Linear<'a>,
    pub out_norm: Norm<'a>,
}

/// The masked-LM head: dense E←H, activation, LayerNorm, decoder V←E.
#[derive(Clone, Copy, Debug)]
pub struct MlmHead<'a> {
    pub dense: Linear<'a>,
    pub norm: Norm<'a>,
    /// The decoder weight: the word embeddings unless the checkpoint untied them.
    pub decoder: Weight<'a>,
    pub bias: &'a [f32],
    /// Row sums of the decoder weight (`predictions.decoder.row_sum`), see [`Linear::row_sum`].
    pub decoder_row_sum: Option<&'a [f32]>,
}

/// All weights of a model, borrowed from its blob.
#[derive(Clone, Debug)]
pub struct Weights<'a> {
    pub word: Weight<'a>,
    pub position: Weight<'a>,
    pub token_type: Weight<'a>,
    pub emb_norm: Norm<'a>,
    pub mapping_in: Linear<'a>,
    /// `num_hidden_groups × inner_group_num` layers, group-major.
    pub layers: heapless::Vec<Layer<'a>, MAX_LAYERS>,
    pub pooler: Option<Linear<'a>>,
    pub mlm: Option<MlmHead<'a>>,
    pub sop: Option<Linear<'a>>,
    pub classifier: Option<Linear<'a>>,
    pub qa: Option<Linear<'a>>,
}

/// Formats a tensor name without allocating.
fn fmt_name(args: core::fmt::Arguments<'_>) -> Name {
    let mut s = Name::new();
    // Names are short and bounded (≤ 128 bytes); a failure would only truncate.
    let _ = s.write_fmt(args);
    s
}

struct Loader<'b, 'a> {
    blob: &'b Blob<'a>,
    found: usize,
}

impl<'a> Loader<'_, 'a> {
    fn get(&mut self, nm: &str) -> Result<TensorInfo<'a>, Error> {
        let t = self.blob.tensor(nm).ok_or_else(|| Error::MissingTensor { name: name(nm) })?;
        self.found += 1;
        Ok(t)
    }

    fn opt(&mut self, nm: &str) -> Option<TensorInfo<'a>> {
        let t = self.blob.tensor(nm)?;
        self.found += 1;
        Some(t)
    }

    fn vector(&mut self, nm: &str, len: u32) -> Result<&'a [f32], Error> {
        let t = self.get(nm)?;
        check_shape(&t, [len, 1, 1, 1], 1)?;
        if t.dtype != DType::F32 {
            return Err(Error::BadTensorEncoding { name: name(nm), detail: "vectors (biases, LayerNorm) must be f32" });
        }
        cast(&t)
    }

    fn matrix(&mut self, nm: &str, rows: u32, cols: u32) -> Result<Weight<'a>, Error> {
        let t = self.get(nm)?;
        matrix_of(&t, rows, cols)
    }

    fn linear(&mut self, prefix: &str, out: u32, inp: u32) -> Result<Linear<'a>, Error> {
        let w = self.matrix(&fmt_name(format_args!("{prefix}.weight")), out, inp)?;
        let b = self.vector(&fmt_name(format_args!("{prefix}.bias")), out)?;
        let mul_name = fmt_name(format_args!("{prefix}.input_mul"));
        let input_mul = match self.blob.tensor(&mul_name) {
            None => None,
            Some(_) => {
                let m = self.vector(&mul_name, inp)?;
                if w.dtype() != DType::I8 {
                    return Err(Error::BadTensorEncoding {
                        name: name(&mul_name),
                        detail: "input multipliers are only valid for int8 weights",
                    });
                }
                if m.iter().any(|v| !v.is_finite() || *v < 0.0) {
                    return Err(Error::BadTensorEncoding {
                        name: name(&mul_name),
                        detail: "input multipliers must be finite and non-negative",
                    });
                }
                Some(m)
            }
        };
        let cols_name = fmt_name(format_args!("{prefix}.outlier_cols"));
        let outliers = match self.blob.tensor(&cols_name) {
            None => None,
            Some(t) => {
                let c = t.shape[0];
                let cols = self.vector(&cols_name, c)?;
                let bad = |detail| Error::BadTensorEncoding { name: name(&cols_name), detail };
                let mul = input_mul.ok_or(bad("outlier columns need input multipliers (0 at those columns)"))?;
                for &k in cols {
                    if !(k >= 0.0 && k < inp as f32 && libm::truncf(k) == k) || mul[k as usize] != 0.0 {
                        return Err(bad("outlier column index out of range, not an integer, or not masked"));
                    }
                }
                let wname = fmt_name(format_args!("{prefix}.outlier_weight"));
                let t = self.get(&wname)?;
                check_shape(&t, [out, c, 1, 1], 2)?;
                if t.dtype != DType::F32 {
                    return Err(Error::BadTensorEncoding { name: name(&wname), detail: "outlier weights must be f32" });
                }
                Some(Outliers { cols, w: cast(&t)? })
            }
        };
        let rs_name = fmt_name(format_args!("{prefix}.row_sum"));
        let row_sum = match self.blob.tensor(&rs_name) {
            None => None,
            Some(_) if w.dtype() != DType::I8 => {
                return Err(Error::BadTensorEncoding {
                    name: name(&rs_name),
                    detail: "row sums are only valid for int8 weights",
                });
            }
            Some(_) => Some(self.vector(&rs_name, out)?),
        };
        let ws_name = fmt_name(format_args!("{prefix}.weight_sum"));
        let weight_sum = match self.blob.tensor(&ws_name) {
            None => None,
            Some(_) if w.dtype() != DType::I8 => {
                return Err(Error::BadTensorEncoding {
                    name: name(&ws_name),
                    detail: "weight sums are only valid for int8 weights",
                });
            }
            Some(_) => {
                let v = self.vector(&ws_name, out)?;
                // An integer no larger than K·127 (a kernel trusts it as the exact sum).
                let bound = inp as f32 * 127.0;
                if v.iter().any(|&x| !(x.abs() <= bound && libm::truncf(x) == x)) {
                    return Err(Error::BadTensorEncoding {
                        name: name(&ws_name),
                        detail: "weight sums must be integers within K·127",
                    });
                }
                Some(v)
            }
        };
        Ok(Linear { w, b, input_mul, outliers, row_sum, weight_sum, zero_on_grid: false })
    }

    fn norm(&mut self, prefix: &str, n: u32) -> Result<Norm<'a>, Error> {
        let gamma = self.vector(&fmt_name(format_args!("{prefix}.weight")), n)?;
        let beta = self.vector(&fmt_name(format_args!("{prefix}.bias")), n)?;
        Ok(Norm { gamma, beta })
    }
}

fn check_shape(t: &TensorInfo<'_>, expected: [u32; 4], ndim: u8) -> Result<(), Error> {
    if t.shape != expected || t.ndim != ndim {
        return Err(Error::ShapeMismatch { name: name(t.name), expected, found: t.shape });
    }
    Ok(())
}

fn cast<'a, T: bytemuck::Pod>(t: &TensorInfo<'a>) -> Result<&'a [T], Error> {
    bytemuck::try_cast_slice(t.data)
        .map_err(|_| Error::BadTensorEncoding { name: name(t.name), detail: "data misaligned for its dtype" })
}

fn matrix_of<'a>(t: &TensorInfo<'a>, rows: u32, cols: u32) -> Result<Weight<'a>, Error> {
    check_shape(t, [rows, cols, 1, 1], 2)?;
    let m = match (t.dtype, t.scales) {
        (DType::F32, None) => Matrix::F32(cast(t)?),
        (DType::F16, None) => Matrix::F16(cast(t)?),
        (DType::I8, Some(scales)) => {
            let acts = Acts::of_quant(t.quant).ok_or(Error::BadTensorEncoding {
                name: name(t.name),
                detail: "int8 tensor without a per-row quantization code",
            })?;
            Matrix::I8 { q: cast(t)?, scales, acts }
        }
        _ => {
            return Err(Error::BadTensorEncoding { name: name(t.name), detail: "dtype and quantization do not match" });
        }
    };
    Ok(Weight { m, rows: rows as usize, cols: cols as usize })
}

impl<'a> Weights<'a> {
    /// Finds, shape-checks and types every tensor the config calls for, and refuses
    /// tensors it does not call for.
    pub fn load(blob: &Blob<'a>) -> Result<Self, Error> {
        let c: ModelConfig = blob.config;
        let (v, e, h, i) = (c.vocab_size, c.embedding_size, c.hidden_size, c.intermediate_size);
        let mut ld = Loader { blob, found: 0 };
        let word = ld.matrix("embeddings.word_embeddings.weight", v, e)?;
        let position = ld.matrix("embeddings.position_embeddings.weight", c.max_position_embeddings, e)?;
        let token_type = ld.matrix("embeddings.token_type_embeddings.weight", c.type_vocab_size, e)?;
        let emb_norm = ld.norm("embeddings.LayerNorm", e)?;
        let mapping_in = ld.linear("encoder.embedding_hidden_mapping_in", h, e)?;
        let mut layers = heapless::Vec::new();
        for g in 0..c.num_hidden_groups {
            for j in 0..c.inner_group_num {
                let p = fmt_name(format_args!("encoder.albert_layer_groups.{g}.albert_layers.{j}"));
                let sub = |s: &str| fmt_name(format_args!("{p}.{s}"));
                let layer = Layer {
                    query: ld.linear(&sub("attention.query"), h, h)?,
                    key: ld.linear(&sub("attention.key"), h, h)?,
                    value: ld.linear(&sub("attention.value"), h, h)?,
                    dense: ld.linear(&sub("attention.dense"), h, h)?,
                    attn_norm: ld.norm(&sub("attention.LayerNorm"), h)?,
                    ffn: ld.linear(&sub("ffn"), i, h)?,
                    // Scheme 2 puts 0 on the grid of this input only (activation-function
                    // outputs: mostly values a hair below 0). Elsewhere the per-token offset
                    // of the midpoint grid acts as dither: on the trained model 0 on every
                    // grid cost 1.3 dB end to end (`FORMAT.md`).
                    ffn_output: Linear {
                        zero_on_grid: c.activation_scheme == 2,
                        ..ld.linear(&sub("ffn_output"), h, i)?
                    },
                    out_norm: ld.norm(&sub("full_layer_layer_norm"), h)?,
                };
                // validate() caps groups × inner at MAX_LAYERS.
                let _ = layers.push(layer);
            }
        }
        let heads = c.heads;
        let pooler = if heads.has(Heads::POOLER) { Some(ld.linear("pooler", h, h)?) } else { None };
        let mlm = if heads.has(Heads::MLM) {
            let dense = ld.linear("predictions.dense", e, h)?;
            let norm = ld.norm("predictions.LayerNorm", e)?;
            let bias = ld.vector("predictions.bias", v)?;
            let decoder = match ld.opt("predictions.decoder.weight") {
                Some(t) => matrix_of(&t, v, e)?,
                None => word,
            };
            let decoder_row_sum = match ld.blob.tensor("predictions.decoder.row_sum") {
                Some(_) => Some(ld.vector("predictions.decoder.row_sum", v)?),
                None => None,
            };
            Some(MlmHead { dense, norm, decoder, bias, decoder_row_sum })
        } else {
            None
        };
        let sop = if heads.has(Heads::SOP) { Some(ld.linear("sop_classifier.classifier", 2, h)?) } else { None };
        let classifier =
            if heads.has(Heads::SEQ_CLS) || heads.has(Heads::TOKEN_CLS) || heads.has(Heads::MULTIPLE_CHOICE) {
                Some(ld.linear("classifier", c.num_labels, h)?)
            } else {
                None
            };
        let qa = if heads.has(Heads::QA) { Some(ld.linear("qa_outputs", 2, h)?) } else { None };

        if ld.found != blob.tensor_count() {
            // Some tensor was not asked for: name the first one.
            for t in blob.tensors() {
                if !expected_name(&c, t.name) {
                    return Err(Error::UnknownTensor { name: name(t.name) });
                }
            }
        }
        Ok(Weights { word, position, token_type, emb_norm, mapping_in, layers, pooler, mlm, sop, classifier, qa })
    }
}

/// Whether `nm` is a tensor a blob with config `c` may contain.
fn expected_name(c: &ModelConfig, nm: &str) -> bool {
    const EMB: [&str; 6] = [
        "embeddings.word_embeddings.weight",
        "embeddings.position_embeddings.weight",
        "embeddings.token_type_embeddings.weight",
        "embeddings.LayerNorm.weight",
        "embeddings.LayerNorm.bias",
        "encoder.embedding_hidden_mapping_in.weight",
    ];

    let h = c.heads;
    const PARTS: [&str; 7] =
        [".weight", ".bias", ".input_mul", ".outlier_cols", ".outlier_weight", ".row_sum", ".weight_sum"];
    let wb = |p: &str| nm.strip_prefix(p).is_some_and(|r| PARTS.contains(&r));
    if EMB.contains(&nm) || wb("encoder.embedding_hidden_mapping_in") {
        return true;
    }
    if (h.has(Heads::POOLER) && wb("pooler"))
        || (h.has(Heads::SOP) && wb("sop_classifier.classifier"))
        || (h.has(Heads::QA) && wb("qa_outputs"))
        || ((h.has(Heads::SEQ_CLS) || h.has(Heads::TOKEN_CLS) || h.has(Heads::MULTIPLE_CHOICE)) && wb("classifier"))
        || (h.has(Heads::MLM)
            && (wb("predictions.dense")
                || wb("predictions.LayerNorm")
                || nm == "predictions.bias"
                || nm == "predictions.decoder.weight"
                || nm == "predictions.decoder.row_sum"))
    {
        return true;
    }
    for g in 0..c.num_hidden_groups {
        for j in 0..c.inner_group_num {
            let p = fmt_name(format_args!("encoder.albert_layer_groups.{g}.albert_layers.{j}."));
            if let Some(rest) = nm.strip_prefix(p.as_str()) {
                let base = PARTS.iter().find_map(|p| rest.strip_suffix(p));
                return matches!(
                    base,
                    Some(
                        "attention.query"
                            | "attention.key"
                            | "attention.value"
                            | "attention.dense"
                            | "attention.LayerNorm"
                            | "ffn"
                            | "ffn_output"
                            | "full_layer_layer_norm"
                    )
                );
            }
        }
    }
    false
}
