//! Writes the generated seed files of `corpus/blob` and `corpus/safetensors` (the others
//! are copies of fixtures or hand-written; `README.md`), and the tiny tokenizer sections
//! the engine's tests load (`engine/tests/data`):
//!
//!     cargo +nightly run --example write_seeds -- corpus ../engine/tests/data
use std::path::PathBuf;

use albert_fuzz::{TINY_SPIECE, TINY_TOKENIZER_JSON, tiny_blobs, without_unicode_tables};
use albert_quantize::tokenizer as tk;
use safetensors::tensor::{Dtype, TensorView};

fn main() -> std::io::Result<()> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "corpus".into()));
    let engine_data = PathBuf::from(std::env::args().nth(2).unwrap_or_else(|| "../engine/tests/data".into()));
    std::fs::create_dir_all(&engine_data)?;
    let fast = tk::from_tokenizer_json_bytes(TINY_TOKENIZER_JSON).expect("tiny tokenizer.json reads");
    let slow = tk::from_spiece_slow(TINY_SPIECE, true, false).expect("tiny spiece.model reads");
    for (file, spec) in [("tiny_fast.tok", fast), ("tiny_sp.tok", slow)] {
        let section = tk::build_section(&without_unicode_tables(spec)).expect("packs");
        std::fs::write(engine_data.join(file), section)?;
    }
    std::fs::create_dir_all(out.join("blob"))?;
    for (name, bytes) in tiny_blobs() {
        std::fs::write(out.join("blob").join(format!("{name}.albq")), bytes)?;
    }
    // A complete checkpoint for the safetensors target's fixed config (vocab 6, E 2, H 4,
    // FFN 4, 4 positions, 1 type), once in f32 with `albert.` prefixes and once in f16.
    let (v, e, h, i, p) = (6usize, 2usize, 4usize, 4usize, 4usize);
    let l = "encoder.albert_layer_groups.0.albert_layers.0";
    let mut specs: Vec<(String, Vec<usize>)> = vec![
        ("embeddings.word_embeddings.weight".into(), vec![v, e]),
        ("embeddings.position_embeddings.weight".into(), vec![p, e]),
        ("embeddings.token_type_embeddings.weight".into(), vec![1, e]),
        ("embeddings.LayerNorm.weight".into(), vec![e]),
        ("embeddings.LayerNorm.bias".into(), vec![e]),
        ("encoder.embedding_hidden_mapping_in.weight".into(), vec![h, e]),
        ("encoder.embedding_hidden_mapping_in.bias".into(), vec![h]),
    ];
    for (n, r, k) in [
        ("attention.query", h, h),
        ("attention.key", h, h),
        ("attention.value", h, h),
        ("attention.dense", h, h),
        ("ffn", i, h),
        ("ffn_output", h, i),
    ] {
        specs.push((format!("{l}.{n}.weight"), vec![r, k]));
        specs.push((format!("{l}.{n}.bias"), vec![r]));
    }
    for n in ["attention.LayerNorm", "full_layer_layer_norm"] {
        specs.push((format!("{l}.{n}.weight"), vec![h]));
        specs.push((format!("{l}.{n}.bias"), vec![h]));
    }
    std::fs::create_dir_all(out.join("safetensors"))?;
    for (file, dtype, prefix) in [("f32.safetensors", Dtype::F32, "albert."), ("f16.safetensors", Dtype::F16, "")] {
        let data: Vec<(String, Vec<usize>, Vec<u8>)> = specs
            .iter()
            .enumerate()
            .map(|(s, (name, shape))| {
                let n: usize = shape.iter().product();
                let vals = (0..n).map(|k| ((k * 7 + s * 3) % 11) as f32 / 11.0 - 0.5);
                let bytes = match dtype {
                    Dtype::F32 => vals.flat_map(f32::to_le_bytes).collect(),
                    _ => vals.flat_map(|x| half_bits(x).to_le_bytes()).collect(),
                };
                (format!("{prefix}{name}"), shape.clone(), bytes)
            })
            .collect();
        let views: Vec<(String, TensorView<'_>)> = data
            .iter()
            .map(|(n, shape, b)| (n.clone(), TensorView::new(dtype, shape.clone(), b).expect("valid view")))
            .collect();
        let bytes = safetensors::serialize(views, None).expect("serializes");
        std::fs::write(out.join("safetensors").join(file), bytes)?;
    }
    Ok(())
}

/// f32 → IEEE binary16 bits for the small, normal values used here.
fn half_bits(x: f32) -> u16 {
    if x == 0.0 {
        return 0;
    }
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32 - 127 + 15;
    let mant = ((b >> 13) & 0x3ff) as u16;
    sign | ((exp as u16) << 10) | mant
}
