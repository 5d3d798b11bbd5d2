//! Packing a [`Checkpoint`] into an `.albq` blob at a chosen weight precision.

use albert_engine::Model;
use albert_engine::config::DType;
use albert_engine::format::write::{BlobWriter, TensorData};
use anyhow::{Result, anyhow};

use crate::checkpoint::Checkpoint;

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
}

/// Packs `ck` with matrices stored as `dtype`, validates the result with the engine, and
/// returns the blob bytes and a per-tensor summary.
pub fn pack(ck: &Checkpoint, dtype: DType) -> Result<(Vec<u8>, Vec<Packed>)> {
    let mut config = ck.config;
    config.weight_dtype = dtype;
    config.activation_scheme = (dtype == DType::I8) as u32;
    let mut w = BlobWriter::new(config);
    w.labels = ck.labels.clone();
    let mut summary = Vec::new();
    for (name, t) in &ck.tensors {
        let shape: Vec<u32> = t
            .shape
            .iter()
            .map(|&d| u32::try_from(d).map_err(|_| anyhow!("tensor `{name}` dimension {d} too large")))
            .collect::<Result<_>>()?;
        if shape.is_empty() || shape.len() > 4 {
            return Err(anyhow!("tensor `{name}` has {} dimensions; 1 to 4 are supported", shape.len()));
        }
        let td = if is_matrix(name) && shape.len() == 2 {
            match dtype {
                DType::F32 => TensorData::f32(name, &shape, &t.values),
                DType::F16 => TensorData::f16(name, &shape, &t.values),
                DType::I8 => TensorData::i8_per_row(name, &shape, &t.values),
            }
        } else {
            TensorData::f32(name, &shape, &t.values)
        };
        let bytes = td.data.len() + td.scales.as_ref().map_or(0, |s| 4 * s.len());
        summary.push(Packed { name: name.clone(), dtype: td.dtype, shape, bytes });
        w.tensors.push(td);
    }
    let bytes = w.to_bytes();
    let aligned = AlignedBlob::new(&bytes);
    Model::from_bytes(aligned.as_bytes()).map_err(|e| anyhow!("the checkpoint does not match its config.json: {e}"))?;
    Ok((bytes, summary))
}
