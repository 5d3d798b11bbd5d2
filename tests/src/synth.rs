//! Rebuilds the weights of `tests/fixtures/outlier_base` bit for bit, mirroring
//! `tests/reference/make_outlier_fixture.py` (whose fp32 checkpoint is too large to commit).

use std::path::Path;

use anyhow::{Result, ensure};
use safetensors::tensor::{Dtype, TensorView};
use sha2::{Digest, Sha256};

/// n values in [-1, 1): splitmix64 of counter `stream · 2^32 + i`, top 24 bits, exactly
/// as the Python generator computes them.
pub fn uniform(stream: u64, n: usize) -> Vec<f32> {
    (0..n as u64)
        .map(|i| {
            let mut z = (i + (stream << 32)).wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 40) as f32 * 2f32.powi(-23) - 1.0
        })
        .collect()
}

struct Spec {
    name: String,
    shape: Vec<usize>,
    gain: bool,
    amp: f32,
}

fn specs(v: usize, e: usize, h: usize, i: usize, p: usize) -> Vec<Spec> {
    let (w, b) = (0.0346f32, 0.02f32);
    let mut s = Vec::new();
    let mut add = |name: &str, shape: &[usize], gain: bool, amp: f32| {
        s.push(Spec { name: name.to_string(), shape: shape.to_vec(), gain, amp })
    };
    add("albert.embeddings.word_embeddings.weight", &[v, e], false, w);
    add("albert.embeddings.position_embeddings.weight", &[p, e], false, w);
    add("albert.embeddings.token_type_embeddings.weight", &[2, e], false, w);
    add("albert.embeddings.LayerNorm.weight", &[e], true, 0.1);
    add("albert.embeddings.LayerNorm.bias", &[e], false, b);
    add("albert.encoder.embedding_hidden_mapping_in.weight", &[h, e], false, w);
    add("albert.encoder.embedding_hidden_mapping_in.bias", &[h], false, b);
    let l = "albert.encoder.albert_layer_groups.0.albert_layers.0.";
    for n in ["query", "key", "value", "dense"] {
        add(&format!("{l}attention.{n}.weight"), &[h, h], false, w);
        add(&format!("{l}attention.{n}.bias"), &[h], false, b);
    }
    add(&format!("{l}attention.LayerNorm.weight"), &[h], true, 0.1);
    add(&format!("{l}attention.LayerNorm.bias"), &[h], false, b);
    add(&format!("{l}ffn.weight"), &[i, h], false, w);
    add(&format!("{l}ffn.bias"), &[i], false, b);
    add(&format!("{l}ffn_output.weight"), &[h, i], false, w);
    add(&format!("{l}ffn_output.bias"), &[h], false, b);
    add(&format!("{l}full_layer_layer_norm.weight"), &[h], true, 0.1);
    add(&format!("{l}full_layer_layer_norm.bias"), &[h], false, b);
    add("predictions.bias", &[v], false, b);
    add("predictions.dense.weight", &[e, h], false, w);
    add("predictions.dense.bias", &[e], false, b);
    add("predictions.LayerNorm.weight", &[e], true, 0.1);
    add("predictions.LayerNorm.bias", &[e], false, b);
    s
}

/// Writes `model.safetensors` for the outlier fixture into `dir` (beside a copy of its
/// `config.json`) after checking the weights' SHA-256 against the one Python recorded.
pub fn write_outlier_checkpoint(fixture: &Path, dir: &Path) -> Result<()> {
    write_checkpoint(fixture, dir, None)
}

/// [`write_outlier_checkpoint`] with `max_position_embeddings` set to `positions`, for
/// benchmarks at sequences longer than the fixture's 128 (albert-base-v2 has 512). The
/// position table is drawn from the same stream, so its first 128 rows are the fixture's;
/// the SHA-256 check, which covers the fixture's table, is skipped.
pub fn write_outlier_checkpoint_positions(fixture: &Path, dir: &Path, positions: usize) -> Result<()> {
    write_checkpoint(fixture, dir, Some(positions))
}

fn write_checkpoint(fixture: &Path, dir: &Path, positions: Option<usize>) -> Result<()> {
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture.join("config.json"))?)?;
    if let Some(p) = positions {
        cfg["max_position_embeddings"] = p.into();
    }
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture.join("goldens.json"))?)?;
    let dim = |k: &str| cfg[k].as_u64().unwrap_or(0) as usize;
    let specs = specs(
        dim("vocab_size"),
        dim("embedding_size"),
        dim("hidden_size"),
        dim("intermediate_size"),
        dim("max_position_embeddings"),
    );
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = specs
        .iter()
        .enumerate()
        .map(|(stream, s)| {
            let n = s.shape.iter().product();
            let x = uniform(stream as u64, n).into_iter().map(|u| if s.gain { u * s.amp + 1.0 } else { u * s.amp });
            (s.name.clone(), s.shape.clone(), x.collect())
        })
        .collect();
    // Outlier channels (hidden, gain, bias) and the milder gain of the final LayerNorm.
    const OUTLIERS: [(usize, f32, f32); 4] = [(17, 6.0, 3.0), (300, -8.0, -2.0), (555, 5.0, 4.0), (701, 7.0, -3.0)];
    const FULL_LN_GAIN: f32 = 0.1;
    const EMB_OUTLIERS: [(usize, f32, f32); 2] = [(5, 30.0, 2.0), (77, -20.0, 4.0)];
    let l = "albert.encoder.albert_layer_groups.0.albert_layers.0.";
    let mut set = |name: &str, c: usize, v: f32| {
        let t = tensors.iter_mut().find(|t| t.0 == name).expect("tensor in spec list");
        t.2[c] = v;
    };
    for (c, g, b) in OUTLIERS {
        set(&format!("{l}attention.LayerNorm.weight"), c, g);
        set(&format!("{l}attention.LayerNorm.bias"), c, b);
        set(&format!("{l}full_layer_layer_norm.weight"), c, g * FULL_LN_GAIN);
        set(&format!("{l}full_layer_layer_norm.bias"), c, b * FULL_LN_GAIN);
    }
    for (c, g, b) in EMB_OUTLIERS {
        set("albert.embeddings.LayerNorm.weight", c, g);
        set("albert.embeddings.LayerNorm.bias", c, b);
    }
    let mut sha = Sha256::new();
    for t in &tensors {
        sha.update(bytemuck_f32(&t.2));
    }
    let got = format!("{:x}", sha.finalize());
    let want = meta["synthetic_weights"]["sha256_f32_le"].as_str().unwrap_or("");
    ensure!(
        positions.is_some() || got == want,
        "synthetic outlier weights differ from the Python generator: sha256 {got} != {want}"
    );

    let bytes: Vec<Vec<u8>> = tensors.iter().map(|t| bytemuck_f32(&t.2)).collect();
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| Ok((t.0.clone(), TensorView::new(Dtype::F32, t.1.clone(), b)?)))
        .collect::<Result<_>>()?;
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors"))?;
    if positions.is_some() {
        std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&cfg)?)?;
    } else {
        std::fs::copy(fixture.join("config.json"), dir.join("config.json"))?;
    }
    Ok(())
}

fn bytemuck_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
