//! Calibration: run the float model on sample inputs and record, per encoder GEMM, the
//! largest |activation| of every input channel (over all tokens and all iterations of the
//! shared layer). Smoothing (`pack::smooth`) turns these into per-channel multipliers.

use std::collections::BTreeMap;
use std::path::Path;

use albert_engine::model::observe::{Gemm, Observer, Site};
use albert_engine::{Inputs, Model, ModelConfig};
use anyhow::{Context, Result, bail};

/// The checkpoint name of the linear a site runs (`...albert_layers.{j}.attention.query`).
pub fn linear_name(c: &ModelConfig, gemm: Gemm, layer: usize) -> String {
    match gemm {
        Gemm::MappingIn => "encoder.embedding_hidden_mapping_in".to_string(),
        g => {
            let inner = c.inner_group_num as usize;
            format!("encoder.albert_layer_groups.{}.albert_layers.{}.{}", layer / inner, layer % inner, g.hf_name())
        }
    }
}

/// Per linear name, per input channel: max |x|.
pub type AbsMax = BTreeMap<String, Vec<f32>>;

struct Collect<'c> {
    cfg: &'c ModelConfig,
    absmax: AbsMax,
}

impl Observer for Collect<'_> {
    fn gemm(&mut self, site: Site, x: &[f32], _y: &[f32], m: usize) {
        let k = x.len() / m.max(1);
        let e = self.absmax.entry(linear_name(self.cfg, site.gemm, site.layer)).or_insert_with(|| vec![0.0; k]);
        for row in x[..m * k].chunks_exact(k) {
            for (a, &v) in e.iter_mut().zip(row) {
                *a = a.max(v.abs());
            }
        }
    }
}

/// Runs `model` (normally the f32 blob) on each sequence and collects [`AbsMax`].
pub fn collect_absmax(model: &Model<'_>, seqs: &[Vec<u32>]) -> Result<AbsMax> {
    let cfg = *model.config();
    let mut obs = Collect { cfg: &cfg, absmax: BTreeMap::new() };
    run_observed(model, seqs, &mut obs)?;
    Ok(obs.absmax)
}

/// Segment ids of a calibration sequence as the tokenizer would give them: 0 up to and
/// including the first separator (`eos_token_id`, ALBERT's `[SEP]`), 1 after it when the
/// model has a second segment type. Calibrating on both segments matters: the type
/// embedding shifts every hidden state of the second one.
pub fn type_ids(c: &ModelConfig, ids: &[u32]) -> Vec<u32> {
    let second = (c.type_vocab_size >= 2) as u32;
    let mut seen = false;
    ids.iter()
        .map(|&id| {
            let t = if seen { second } else { 0 };
            seen |= id == c.eos_token_id;
            t
        })
        .collect()
}

/// Runs `model` on each calibration sequence (segment ids from [`type_ids`]) with `obs`.
pub fn run_observed(model: &Model<'_>, seqs: &[Vec<u32>], obs: &mut impl Observer) -> Result<()> {
    let cfg = *model.config();
    let mut scratch = Vec::new();
    for ids in seqs {
        let types = type_ids(&cfg, ids);
        scratch.resize(model.scratch_bytes(ids.len(), 1), 0);
        let inputs = Inputs { token_type_ids: Some(&types), ..Inputs::single(ids) };
        model.encode_observed(&inputs, &mut scratch, obs)?;
    }
    Ok(())
}

/// Built-in calibration when the user gives none: `n` sequences of random in-vocabulary
/// ids, `len` tokens each (fixed seed), every other one a pair `[CLS] A [SEP] B [SEP]` (the
/// rest `[CLS] … [SEP]`) so both segment types are seen. Structural outlier channels
/// (LayerNorm gains, biases) show on any input; real text (`--calib-ids`) is better for the
/// rest.
pub fn synthetic_ids(c: &ModelConfig, n: usize, len: usize) -> Vec<Vec<u32>> {
    let len = len.clamp(2, c.max_position_embeddings as usize);
    let mut s: u64 = 0x5eed_a1be_27c0_ffee;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let first = 5.min(c.vocab_size as u64 - 1);
    let sep = c.eos_token_id.min(c.vocab_size - 1);
    (0..n)
        .map(|i| {
            let mut ids = vec![c.bos_token_id.min(c.vocab_size - 1)];
            ids.extend((0..len - 2).map(|_| (first + next() % (c.vocab_size as u64 - first)) as u32));
            ids.push(sep);
            if i % 2 == 1 && len >= 5 {
                ids[len / 2] = sep;
            }
            ids
        })
        .collect()
}

/// Reads `--calib-ids` (defined beside `albert eval`, which reads the same files).
pub use albert_tools::eval::read_ids;

/// Reads `--calib-text`: one input per line, a tab separating a pair's two texts; each
/// tokenized with the blob's tokenizer `section` (`[CLS] A [SEP] (B [SEP])`), truncated to
/// `max_len` tokens. Blank lines are skipped.
pub fn text_ids(section: &[u8], path: &Path, max_len: usize) -> Result<Vec<Vec<u32>>> {
    use albert_engine::Tokenizer;
    use albert_engine::tokenizer::{EncodeOptions, Encoding, OwnedWorkspace};
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let tok = Tokenizer::from_section(section)?;
    let opts = EncodeOptions { max_length: Some(max_len), ..EncodeOptions::default() };
    let (mut ids, mut types, mut mask, mut offs) =
        (vec![0; max_len], vec![0; max_len], vec![0; max_len], vec![[0; 2]; max_len]);
    let mut seqs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (a, b) = match line.split_once('\t') {
            Some((a, b)) => (a, Some(b)),
            None => (line, None),
        };
        let mut ws = OwnedWorkspace::new(line.len());
        let mut out = Encoding { ids: &mut ids, type_ids: &mut types, attention_mask: &mut mask, offsets: &mut offs };
        let len = tok
            .encode(a, b, &opts, &mut ws.workspace(), &mut out)
            .with_context(|| format!("{}:{}: tokenizing", path.display(), n + 1))?;
        seqs.push(ids[..len].to_vec());
    }
    if seqs.is_empty() {
        bail!("{}: no text", path.display());
    }
    Ok(seqs)
}
