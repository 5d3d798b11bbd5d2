//! The blob and tokenizer sections the corruption, limits and concurrency tests share.
#![allow(dead_code)] // each test crate uses its own part

use albert_engine::config::{Activation, DType, Heads, ModelConfig};
use albert_engine::format::write::{BlobWriter, TensorData};

/// Tokenizer sections the tools packed from the fuzz seeds' tiny SentencePiece model
/// (`fuzz/examples/write_seeds.rs`), without the tables built from all of Unicode: fast
/// mode (from its `tokenizer.json`) and sentencepiece mode (from `spiece.model`).
pub const TOKENIZER_FAST: &[u8] = include_bytes!("../data/tiny_fast.tok");
pub const TOKENIZER_SP: &[u8] = include_bytes!("../data/tiny_sp.tok");

pub fn config() -> ModelConfig {
    ModelConfig {
        vocab_size: 20,
        embedding_size: 4,
        hidden_size: 8,
        num_hidden_layers: 3,
        num_hidden_groups: 1,
        inner_group_num: 1,
        num_attention_heads: 2,
        intermediate_size: 12,
        max_position_embeddings: 10,
        type_vocab_size: 2,
        hidden_act: Activation::GeluNew,
        layer_norm_eps: 1e-12,
        num_labels: 3,
        heads: Heads(Heads::POOLER | Heads::SEQ_CLS),
        weight_dtype: DType::I8,
        pad_token_id: 0,
        bos_token_id: 2,
        eos_token_id: 3,
        activation_scheme: 1,
    }
}

/// A complete int8 sequence classifier with labels and a tokenizer: five sections, one of
/// each kind.
pub fn blob() -> Vec<u8> {
    let c = config();
    let mut w = BlobWriter::new(c);
    let (v, e, h, i) = (20, 4, 8, 12);
    let mut seed = 0u32;
    let mut values = |n: u32| -> Vec<f32> {
        seed += 1;
        (0..n).map(|k| ((k.wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 1000) as f32 / 1000.0 - 0.5).collect()
    };
    let mut mats = vec![
        ("embeddings.word_embeddings.weight".to_string(), v, e),
        ("embeddings.position_embeddings.weight".into(), 10, e),
        ("embeddings.token_type_embeddings.weight".into(), 2, e),
        ("encoder.embedding_hidden_mapping_in.weight".into(), h, e),
        ("pooler.weight".into(), h, h),
        ("classifier.weight".into(), 3, h),
    ];
    let mut vecs = vec![
        ("embeddings.LayerNorm.weight".to_string(), e),
        ("embeddings.LayerNorm.bias".into(), e),
        ("encoder.embedding_hidden_mapping_in.bias".into(), h),
        ("pooler.bias".into(), h),
        ("classifier.bias".into(), 3),
    ];
    let p = "encoder.albert_layer_groups.0.albert_layers.0";
    for (n, r, k) in [
        ("attention.query", h, h),
        ("attention.key", h, h),
        ("attention.value", h, h),
        ("attention.dense", h, h),
        ("ffn", i, h),
        ("ffn_output", h, i),
    ] {
        mats.push((format!("{p}.{n}.weight"), r, k));
        vecs.push((format!("{p}.{n}.bias"), r));
    }
    for n in ["attention.LayerNorm", "full_layer_layer_norm"] {
        vecs.push((format!("{p}.{n}.weight"), h));
        vecs.push((format!("{p}.{n}.bias"), h));
    }
    for (name, r, k) in mats {
        w.tensors.push(TensorData::i8_per_row(&name, &[r, k], &values(r * k)));
    }
    for (name, n) in vecs {
        w.tensors.push(TensorData::f32(&name, &[n], &values(n)));
    }
    w.labels = vec!["negative".into(), "neutral".into(), "positive".into()];
    w.tokenizer = Some(TOKENIZER_FAST.to_vec());
    w.to_bytes()
}

/// An 8-byte aligned copy of `bytes` (what a memory map gives).
pub fn aligned(bytes: &[u8]) -> Vec<u64> {
    let mut v = vec![0u64; bytes.len().div_ceil(8)];
    bytemuck::cast_slice_mut::<u64, u8>(&mut v)[..bytes.len()].copy_from_slice(bytes);
    v
}
