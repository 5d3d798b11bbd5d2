//! Shared helpers of the golden tests: load a transformers fixture, pack it, run the
//! engine on the fixture's inputs, and compare with what transformers computed.
//!
//! Fixtures live in `tests/fixtures/<name>/` (written by `tests/reference/make_fixtures.py`;
//! format in `tests/reference/README.md`).

pub mod synth;

use std::path::PathBuf;

use albert_engine::config::DType;
use albert_quantize::pack::{self, AlignedBlob};
use albert_quantize::{calib, checkpoint, gptq, tokenizer};
pub use albert_tools::goldens::{Array, Case, Goldens, cosine, engine_name, rel_max_err, run_case};
use anyhow::{Context, Result, anyhow};
use serde_json::Value;

/// A fixture directory: checkpoint plus cases.
pub struct Fixture {
    pub name: String,
    pub dir: PathBuf,
    pub model_class: String,
    pub cases: Vec<Case>,
}

/// `tests/fixtures`.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Names listed in `tests/fixtures/index.json`. Fails (never returns empty) if the
/// fixtures are missing, so a broken checkout cannot pass by testing nothing.
pub fn fixture_names() -> Result<Vec<String>> {
    let path = fixtures_dir().join("index.json");
    let v: Value =
        serde_json::from_slice(&std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?)?;
    let names: Vec<String> = v["fixtures"]
        .as_array()
        .ok_or_else(|| anyhow!("index.json has no `fixtures` list"))?
        .iter()
        .map(|n| n.as_str().map(str::to_string).ok_or_else(|| anyhow!("fixture name not a string")))
        .collect::<Result<_>>()?;
    anyhow::ensure!(!names.is_empty(), "index.json lists no fixtures");
    Ok(names)
}

impl Fixture {
    pub fn load(name: &str) -> Result<Fixture> {
        let dir = fixtures_dir().join(name);
        let g = Goldens::load(&dir).with_context(|| format!("fixture {name}"))?;
        Ok(Fixture { name: name.into(), dir, model_class: g.model_class, cases: g.cases })
    }

    /// Packs the fixture's checkpoint at `dtype` with the same code `quantize` runs.
    /// A fixture without a committed checkpoint (`synthetic_weights` in goldens.json) is
    /// first rebuilt into a temporary directory by [`synth`].
    pub fn pack(&self, dtype: DType) -> Result<AlignedBlob> {
        self.pack_with(&pack::PackOptions::new(dtype))
    }

    /// Packs the fixture's checkpoint with explicit options.
    pub fn pack_with(&self, opts: &pack::PackOptions) -> Result<AlignedBlob> {
        let ck = if self.dir.join("model.safetensors").exists() {
            checkpoint::load(&self.dir, None)?
        } else {
            let tmp = tempfile::tempdir()?;
            synth::write_outlier_checkpoint(&self.dir, tmp.path())?;
            checkpoint::load(tmp.path(), None)?
        };
        let (bytes, _) = pack::pack_with(&ck, opts)?;
        Ok(AlignedBlob::new(&bytes))
    }

    /// Packs the fixture's checkpoint with `opts`, calibrated the way `quantize
    /// --calib-text FILE` does it: outlier statistics and GPTQ correlations from the f32
    /// model run on `text` (one paragraph per line) tokenized with the fixture's tokenizer.
    pub fn pack_calibrated_on_text(&self, opts: &pack::PackOptions, text: &std::path::Path) -> Result<AlignedBlob> {
        let ck = checkpoint::load(&self.dir, None)?;
        let spec = tokenizer::load_dir(&self.dir, tokenizer::TokenizerMode::Fast)?
            .ok_or_else(|| anyhow!("fixture {} has no tokenizer", self.name))?;
        let section = tokenizer::build_section(&spec)?;
        let max_len = (ck.config.max_position_embeddings as usize).min(128);
        let seqs = calib::text_ids(&section, text, max_len)?;
        let f32_blob = AlignedBlob::new(&pack::pack(&ck, DType::F32)?.0);
        let f32_model = albert_engine::Model::from_bytes(f32_blob.as_bytes())?;
        let mut opts = opts.clone();
        if opts.outlier_threshold.is_some() || opts.smooth_alpha.is_some() {
            opts.absmax = Some(calib::collect_absmax(&f32_model, &seqs)?);
        }
        if opts.gptq {
            opts.hessians = Some(std::sync::Arc::new(gptq::collect(&f32_model, &seqs)?));
        }
        let (bytes, _) = pack::pack_with(&ck, &opts)?;
        Ok(AlignedBlob::new(&bytes))
    }
}
