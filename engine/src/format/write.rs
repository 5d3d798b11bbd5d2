//! Writing a blob (host side: `quantize` and tests). The inverse of [`super::Blob::parse`].

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::config::{CONFIG_WORDS, DType, ModelConfig};

/// A tensor waiting to be written.
#[derive(Clone, Debug)]
pub struct TensorData {
    pub name: String,
    pub dtype: DType,
    /// Outermost first, 1..=4 dims.
    pub shape: Vec<u32>,
    /// Little-endian element bytes.
    pub data: Vec<u8>,
    /// Per-row scales for int8 tensors.
    pub scales: Option<Vec<f32>>,
    /// What the GEMM of int8 weights quantizes its input to (`quant` codes 1-3).
    pub acts: super::Acts,
}

impl TensorData {
    /// An f32 tensor.
    pub fn f32(name: &str, shape: &[u32], values: &[f32]) -> Self {
        TensorData {
            name: name.into(),
            dtype: DType::F32,
            shape: shape.to_vec(),
            data: bytemuck::cast_slice(values).to_vec(),
            scales: None,
            acts: super::Acts::Int8,
        }
    }

    /// An f16 tensor, rounded from f32.
    pub fn f16(name: &str, shape: &[u32], values: &[f32]) -> Self {
        let h: Vec<half::f16> = values.iter().map(|&v| half::f16::from_f32(v)).collect();
        TensorData {
            name: name.into(),
            dtype: DType::F16,
            shape: shape.to_vec(),
            data: bytemuck::cast_slice(&h).to_vec(),
            scales: None,
            acts: super::Acts::Int8,
        }
    }

    /// An int8 tensor with per-row scales whose clipping range minimises each row's squared
    /// error: the scale is searched over `(0.70..=1.0) · max|w| / 127` (a row's extreme value
    /// may be worth clipping when that refines the step for all the others).
    pub fn i8_per_row_mse(name: &str, shape: &[u32], values: &[f32]) -> Self {
        Self::i8_rows(name, shape, values, 30)
    }

    /// An int8 tensor with per-row scales `max|w| / 127`, as `FORMAT.md` specifies.
    pub fn i8_per_row(name: &str, shape: &[u32], values: &[f32]) -> Self {
        Self::i8_rows(name, shape, values, 0)
    }

    /// Per-row symmetric int8, trying scales `(1 − 0.01·i) · max|w| / 127` for
    /// `i = 0..=search` and keeping the one with the least squared error.
    fn i8_rows(name: &str, shape: &[u32], values: &[f32], search: u32) -> Self {
        let rows = shape[0] as usize;
        let cols = values.len() / rows.max(1);
        let quant = |v: f32, s: f32| libm::roundf(v / s).clamp(-127.0, 127.0);
        let mut q = Vec::with_capacity(values.len());
        // Sized from the values, not from `shape`: a shape with a zero dimension holds no
        // values but may claim billions of rows.
        let mut scales = Vec::with_capacity(values.len().div_ceil(cols.max(1)));
        for row in values.chunks(cols.max(1)) {
            let amax = row.iter().fold(0f32, |m, &v| m.max(v.abs()));
            let mut best = (f64::INFINITY, if amax > 0.0 { amax / 127.0 } else { 1.0 });
            if amax > 0.0 && search > 0 {
                for step in 0..=search {
                    let s = amax * (1.0 - 0.01 * step as f32) / 127.0;
                    let err: f64 = row.iter().map(|&v| ((v - s * quant(v, s)) as f64).powi(2)).sum();
                    if err < best.0 {
                        best = (err, s);
                    }
                }
            }
            let s = best.1;
            scales.push(s);
            q.extend(row.iter().map(|&v| quant(v, s) as i8 as u8));
        }
        TensorData {
            name: name.into(),
            dtype: DType::I8,
            shape: shape.to_vec(),
            data: q,
            scales: Some(scales),
            acts: super::Acts::Int8,
        }
    }
}

/// Builds a blob in memory.
#[derive(Clone, Debug)]
pub struct BlobWriter {
    pub config: ModelConfig,
    pub tensors: Vec<TensorData>,
    /// `id2label`, in class order.
    pub labels: Vec<String>,
    /// The `TOKENIZER` section's bytes, when the blob carries a tokenizer.
    pub tokenizer: Option<Vec<u8>>,
}

fn pad_to(v: &mut Vec<u8>, align: usize) {
    while !v.len().is_multiple_of(align) {
        v.push(0);
    }
}

impl BlobWriter {
    pub fn new(config: ModelConfig) -> Self {
        BlobWriter { config, tensors: Vec::new(), labels: Vec::new(), tokenizer: None }
    }

    /// Serialises header, section table, index, strings, labels and data, then the checksum.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Strings: tensor names, then labels.
        let mut strings = Vec::new();
        let mut name_refs = Vec::new();
        for t in &self.tensors {
            name_refs.push((strings.len() as u32, t.name.len() as u32));
            strings.extend_from_slice(t.name.as_bytes());
        }
        let mut labels = Vec::new();
        for l in &self.labels {
            labels.extend_from_slice(&(strings.len() as u32).to_le_bytes());
            labels.extend_from_slice(&(l.len() as u32).to_le_bytes());
            strings.extend_from_slice(l.as_bytes());
        }

        let n_sections = 3 + usize::from(!self.labels.is_empty()) + usize::from(self.tokenizer.is_some());
        let table_end = HEADER_SIZE + n_sections * SECTION_ENTRY_SIZE;
        let align = |x: usize| x.div_ceil(ALIGN) * ALIGN;
        let index_off = align(table_end);
        let index_len = self.tensors.len() * TENSOR_ENTRY_SIZE;
        let strings_off = align(index_off + index_len);
        let labels_off = align(strings_off + strings.len());
        let tok = self.tokenizer.as_deref().unwrap_or(&[]);
        let tok_off = align(labels_off + labels.len());
        let data_off = align(tok_off + tok.len());

        // Data section: each tensor's bytes then its scales, each 64-aligned.
        let mut data = Vec::new();
        let mut places = Vec::new();
        for t in &self.tensors {
            pad_to(&mut data, ALIGN);
            let d = data_off + data.len();
            data.extend_from_slice(&t.data);
            let s = t.scales.as_ref().map(|s| {
                pad_to(&mut data, ALIGN);
                let at = data_off + data.len();
                data.extend_from_slice(bytemuck::cast_slice(s));
                (at, 4 * s.len())
            });
            places.push((d, s));
        }
        pad_to(&mut data, ALIGN);

        let mut out = vec![0u8; data_off];
        out[..8].copy_from_slice(&MAGIC);
        let put32 = |o: &mut Vec<u8>, at: usize, v: u32| o[at..at + 4].copy_from_slice(&v.to_le_bytes());
        let put64 = |o: &mut Vec<u8>, at: usize, v: u64| o[at..at + 8].copy_from_slice(&v.to_le_bytes());
        put32(&mut out, 8, VERSION);
        let flags = if self.config.weight_dtype == DType::I8 { FLAG_INT8 } else { 0 };
        put32(&mut out, 12, flags);
        put32(&mut out, 16, HEADER_SIZE as u32);
        put32(&mut out, 20, n_sections as u32);
        put64(&mut out, 24, HEADER_SIZE as u64);
        let words: [u32; CONFIG_WORDS] = self.config.to_words();
        for (i, w) in words.iter().enumerate() {
            put32(&mut out, CONFIG_OFFSET + 4 * i, *w);
        }
        let sec = |o: &mut Vec<u8>, i: usize, kind: u32, flags: u32, off: usize, len: usize| {
            let at = HEADER_SIZE + i * SECTION_ENTRY_SIZE;
            put32(o, at, kind);
            put32(o, at + 4, flags);
            put64(o, at + 8, off as u64);
            put64(o, at + 16, len as u64);
        };
        sec(&mut out, 0, section::TENSOR_INDEX, section::REQUIRED, index_off, index_len);
        sec(&mut out, 1, section::STRINGS, section::REQUIRED, strings_off, strings.len());
        sec(&mut out, 2, section::TENSOR_DATA, section::REQUIRED, data_off, data.len());
        if !self.labels.is_empty() {
            sec(&mut out, 3, section::LABELS, 0, labels_off, labels.len());
        }
        if self.tokenizer.is_some() {
            sec(&mut out, n_sections - 1, section::TOKENIZER, 0, tok_off, tok.len());
        }
        for (i, (t, (d, s))) in self.tensors.iter().zip(&places).enumerate() {
            let at = index_off + i * TENSOR_ENTRY_SIZE;
            put32(&mut out, at, name_refs[i].0);
            put32(&mut out, at + 4, name_refs[i].1);
            out[at + 8] = t.dtype as u8;
            out[at + 9] = match &t.scales {
                None => quant::NONE,
                Some(_) => t.acts.quant(),
            };
            out[at + 10] = 0;
            out[at + 11] = t.shape.len() as u8;
            for dim in 0..4 {
                put32(&mut out, at + 16 + 4 * dim, t.shape.get(dim).copied().unwrap_or(1));
            }
            put64(&mut out, at + 32, *d as u64);
            put64(&mut out, at + 40, t.data.len() as u64);
            let (so, sl) = s.unwrap_or((0, 0));
            put64(&mut out, at + 48, so as u64);
            put64(&mut out, at + 56, sl as u64);
        }
        out[strings_off..strings_off + strings.len()].copy_from_slice(&strings);
        out[labels_off..labels_off + labels.len()].copy_from_slice(&labels);
        out[tok_off..tok_off + tok.len()].copy_from_slice(tok);
        out.extend_from_slice(&data);
        let size = out.len() as u64;
        put64(&mut out, 32, size);
        let crc = checksum(&out);
        put32(&mut out, CHECKSUM_OFFSET, crc);
        out
    }
}
