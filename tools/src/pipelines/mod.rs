//! Hugging Face-style pipelines over a blob with a tokenizer: text in, task results out,
//! with transformers' field names. Each task's post-processing lives in its own module;
//! this one holds what they share: tokenizing, decoding, and running batches through the
//! engine.

pub mod choice;
pub mod classify;
pub mod embed;
pub mod fill_mask;
pub mod math;
pub mod qa;
pub mod token_classify;

use albert_engine::tokenizer::{EncodeOptions, Encoding, OwnedWorkspace};
use albert_engine::{Inputs, Model, Tokenizer};
use anyhow::{Context, Result, bail};

pub use choice::ChoiceScores;
pub use classify::{Label, SentenceOrder};
pub use embed::Pooling;
pub use fill_mask::FillMask;
pub use qa::{Answer, QaOptions};
pub use token_classify::{Aggregation, Entity};

/// Text encoded for the model.
#[derive(Clone, Debug, Default)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    /// Character offsets `[start, end)` (Python string indices, as transformers reports
    /// them) into the text each token came from: the first text for type id 0, the pair
    /// for type id 1; `[0, 0]` for special tokens.
    pub offsets: Vec<[usize; 2]>,
}

/// One token of a text without special tokens: id and character offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    pub id: u32,
    pub start: usize,
    pub end: usize,
}

/// A model and its tokenizer, with the scratch memory the engine runs in.
pub struct Pipeline<'m, 'b> {
    pub model: &'m Model<'b>,
    pub tokenizer: Tokenizer<'b>,
    /// Sequences per engine pass (inputs beyond it run in further passes).
    pub batch_size: usize,
    scratch: Vec<u8>,
}

/// Character index of each byte offset of `text` (one entry per byte, plus the end).
fn char_index(text: &str) -> Vec<usize> {
    let mut map = vec![0; text.len() + 1];
    let mut n = 0;
    for (i, c) in text.char_indices() {
        for b in 0..c.len_utf8() {
            map[i + b] = n;
        }
        n += 1;
    }
    map[text.len()] = n;
    map
}

/// transformers' `clean_up_tokenization`: no space before punctuation and contractions.
pub fn clean_up(s: &str) -> String {
    let mut out = s.to_string();
    for (from, to) in [
        (" .", "."),
        (" ?", "?"),
        (" !", "!"),
        (" ,", ","),
        (" ' ", "'"),
        (" n't", "n't"),
        (" 'm", "'m"),
        (" 's", "'s"),
        (" 've", "'ve"),
        (" 're", "'re"),
    ] {
        out = out.replace(from, to);
    }
    out
}

/// The `Metaspace` decoder of ALBERT's `tokenizer.json`: `▁` becomes a space, except in
/// the first token, where it is dropped (transformers' `convert_tokens_to_string`).
pub fn tokens_to_string<'a>(tokens: impl IntoIterator<Item = &'a str>) -> String {
    let mut s = String::new();
    for (i, t) in tokens.into_iter().enumerate() {
        for c in t.chars() {
            match c {
                '\u{2581}' if i == 0 => {}
                '\u{2581}' => s.push(' '),
                c => s.push(c),
            }
        }
    }
    s
}

impl<'m, 'b> Pipeline<'m, 'b> {
    /// Fails when the blob has no tokenizer.
    pub fn new(model: &'m Model<'b>) -> Result<Self> {
        let section = model.blob().tokenizer_section().context(
            "this blob has no tokenizer (re-run quantize on a checkpoint with tokenizer.json or spiece.model)",
        )?;
        Ok(Pipeline { model, tokenizer: Tokenizer::from_section(section)?, batch_size: 8, scratch: Vec::new() })
    }

    /// Fails with `message` unless the blob has head `bit` (`Heads::…`).
    pub(crate) fn require_head(&self, bit: u32, message: &str) -> Result<()> {
        if !self.model.config().heads.has(bit) {
            bail!("{message}");
        }
        Ok(())
    }

    /// The model's longest sequence (its position embeddings).
    pub fn max_length(&self) -> usize {
        self.model.config().max_position_embeddings as usize
    }

    /// Tokenizes `text` (and `pair`) with `[CLS]`/`[SEP]`, truncated (longest first) to
    /// the model's maximum length.
    pub fn encode(&self, text: &str, pair: Option<&str>) -> Result<Encoded> {
        let max = self.max_length();
        let opts = EncodeOptions { max_length: Some(max), ..EncodeOptions::default() };
        let mut ws = OwnedWorkspace::new(text.len().max(pair.map_or(0, str::len)));
        let (mut ids, mut type_ids, mut mask, mut offs) =
            (vec![0; max], vec![0; max], vec![0; max], vec![[0u32; 2]; max]);
        let mut out =
            Encoding { ids: &mut ids, type_ids: &mut type_ids, attention_mask: &mut mask, offsets: &mut offs };
        let n = self.tokenizer.encode(text, pair, &opts, &mut ws.workspace(), &mut out)?;
        let (first, second) = (char_index(text), char_index(pair.unwrap_or("")));
        let offsets = (0..n)
            .map(|i| {
                let map = if type_ids[i] == 1 { &second } else { &first };
                let at = |b: u32| map.get(b as usize).copied().unwrap_or(0);
                [at(offs[i][0]), at(offs[i][1])]
            })
            .collect();
        ids.truncate(n);
        type_ids.truncate(n);
        Ok(Encoded { ids, type_ids, offsets })
    }

    /// The tokens of `text` without special tokens, untruncated, with character offsets.
    pub fn tokens(&self, text: &str) -> Result<Vec<Token>> {
        let map = char_index(text);
        let mut ws = OwnedWorkspace::new(text.len());
        let mut out = Vec::new();
        self.tokenizer.for_each_token(text, &mut ws.workspace(), &mut |t| {
            out.push(Token { id: t.id, start: map[t.start as usize], end: map[t.end as usize] });
            true
        })?;
        Ok(out)
    }

    /// Piece `id`'s string (`▁` marks a word start); empty for an unknown id.
    pub fn piece(&self, id: u32) -> &'b str {
        self.tokenizer.id_to_piece(id).unwrap_or("")
    }

    /// transformers' `tokenizer.decode(ids, skip_special_tokens=…)` with its default
    /// clean-up of tokenization spaces.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> String {
        let kept = ids.iter().filter(|&&id| !(skip_special && self.tokenizer.is_special(id)));
        clean_up(&tokens_to_string(kept.map(|&id| self.piece(id))))
    }

    /// Runs `seqs` through the encoder, `batch_size` at a time (each batch padded to its
    /// longest sequence, padding masked out), and calls `each(model, output, b, i)` for
    /// sequence `i` of `seqs`, at row `b` of its batch.
    pub(crate) fn run<R>(
        &mut self,
        seqs: &[&Encoded],
        mut each: impl FnMut(&Model<'b>, &mut albert_engine::Encoded<'_>, usize, usize) -> Result<R>,
    ) -> Result<Vec<R>> {
        self.run_with(seqs, Keep::All, |m, e, b, i, _| each(m, e, b, i))
    }

    /// [`Pipeline::run`] for heads that read only the first token of each sequence
    /// (`Model::encode_pooled`: the last layer for that token alone).
    pub(crate) fn run_pooled<R>(
        &mut self,
        seqs: &[&Encoded],
        mut each: impl FnMut(&Model<'b>, &mut albert_engine::Encoded<'_>, usize, usize) -> Result<R>,
    ) -> Result<Vec<R>> {
        self.run_with(seqs, Keep::First, |m, e, b, i, _| each(m, e, b, i))
    }

    /// [`Pipeline::run`] for heads that read tokens `positions[i]` of sequence `i` only
    /// (`Model::encode_positions` on the union of a batch's lists). `each` gets that union
    /// as its last argument: token `p` of the sequence is position `at.binary_search(&p)`
    /// of the output.
    pub(crate) fn run_at<R>(
        &mut self,
        seqs: &[&Encoded],
        positions: &[Vec<usize>],
        each: impl FnMut(&Model<'b>, &mut albert_engine::Encoded<'_>, usize, usize, &[usize]) -> Result<R>,
    ) -> Result<Vec<R>> {
        self.run_with(seqs, Keep::At(positions), each)
    }

    fn run_with<R>(
        &mut self,
        seqs: &[&Encoded],
        keep: Keep<'_>,
        mut each: impl FnMut(&Model<'b>, &mut albert_engine::Encoded<'_>, usize, usize, &[usize]) -> Result<R>,
    ) -> Result<Vec<R>> {
        let model = self.model;
        let pad = self.tokenizer.pad_id();
        let mut out = Vec::with_capacity(seqs.len());
        for (c, chunk) in seqs.chunks(self.batch_size.max(1)).enumerate() {
            let len = chunk.iter().map(|e| e.ids.len()).max().unwrap_or(1).max(1);
            let n = chunk.len();
            let (mut ids, mut types, mut mask) = (vec![pad; n * len], vec![0; n * len], vec![0; n * len]);
            for (b, e) in chunk.iter().enumerate() {
                let row = b * len..b * len + e.ids.len();
                ids[row.clone()].copy_from_slice(&e.ids);
                types[row.clone()].copy_from_slice(&e.type_ids);
                mask[row].iter_mut().for_each(|m| *m = 1);
            }
            let inputs = Inputs {
                input_ids: &ids,
                token_type_ids: Some(&types),
                attention_mask: Some(&mask),
                batch: n,
                seq_len: len,
            };
            self.scratch.resize(model.scratch_bytes(len, n), 0);
            let first = c * self.batch_size.max(1);
            let mut at = Vec::new();
            let mut enc = match keep {
                Keep::All => model.encode(&inputs, &mut self.scratch)?,
                Keep::First => model.encode_pooled(&inputs, &mut self.scratch)?,
                Keep::At(positions) => {
                    at = positions[first..first + n].concat();
                    at.sort_unstable();
                    at.dedup();
                    model.encode_positions(&inputs, &at, &mut self.scratch)?
                }
            };
            for b in 0..n {
                out.push(each(model, &mut enc, b, first + b, &at)?);
            }
        }
        Ok(out)
    }
}

/// Which tokens' final states [`Pipeline::run_with`] computes.
#[derive(Clone, Copy)]
enum Keep<'p> {
    All,
    /// The first of each sequence (`Model::encode_pooled`).
    First,
    /// Per sequence of the run, the positions its heads read (`Model::encode_positions`).
    At(&'p [Vec<usize>]),
}
