//! What the fuzz targets share: the tiny models and tokenizers they run (built once per
//! process from the repository's fixtures with the same code `quantize` runs), and the
//! checks every successful result must pass. A failed check is a finding, like a panic.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use albert_engine::config::DType;
use albert_engine::format::{self, Blob, CHECKSUM_OFFSET};
use albert_engine::tokenizer::{EncodeOptions, Encoding, Mode, NChar, Node, Truncation, Workspace};
use albert_engine::{Inputs, Model, Tokenizer};
use albert_quantize::checkpoint::{self, Checkpoint, Task, Tensor};
use albert_quantize::pack::{self, AlignedBlob, PackOptions};
use albert_quantize::tokenizer::{self as tk, Step, TokenizerSpec};

macro_rules! repo_file {
    ($p:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../", $p))
    };
}

/// The tiny SentencePiece model and its `tokenizer.json` (`seeds/make_tiny_tokenizer.py`).
pub const TINY_SPIECE: &[u8] = repo_file!("fuzz/seeds/tiny_tokenizer/spiece.model");
pub const TINY_TOKENIZER_JSON: &[u8] = repo_file!("fuzz/seeds/tiny_tokenizer/tokenizer.json");

/// Texts every tokenizer built from fuzzed files is run on.
pub const TEXTS: [&str; 4] = ["Hello [MASK] world.", "  naïve ＦＵＬＬ  café (x) ", "", "[CLS][SEP]<unk>\u{3000}ﬁ"];

/// Fuzzer bytes read front to back; zeros once they run out.
pub struct Bytes<'a>(pub &'a [u8]);

impl Bytes<'_> {
    pub fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
}

// ---- tokenizers ---------------------------------------------------------------------

/// Drops the steps whose tables are built from all of Unicode (~0.1 s each, and the same
/// whatever the input file says), so a fuzz run can build sections quickly.
pub fn without_unicode_tables(mut spec: TokenizerSpec) -> TokenizerSpec {
    spec.steps.retain(|s| !matches!(s, Step::CharMap { .. } | Step::PySlow { .. }));
    spec
}

/// Packs `spec` (minus its Unicode tables), and when that succeeds loads the section and
/// runs it on [`TEXTS`] as a single text and as a pair.
pub fn exercise_spec(spec: TokenizerSpec) {
    let Ok(section) = tk::build_section(&without_unicode_tables(spec)) else { return };
    // build_section validates with the engine before returning: a refusal here is a bug.
    let tok = Tokenizer::from_section(&section).expect("a section build_section accepted must load");
    for (i, text) in TEXTS.iter().enumerate() {
        let opts = EncodeOptions { max_length: (i % 2 == 1).then_some(6), ..EncodeOptions::default() };
        encode_checked(&tok, text.as_bytes(), None, &opts, None, 64);
        encode_checked(&tok, text.as_bytes(), Some(TEXTS[(i + 1) % 4].as_bytes()), &opts, None, 64);
    }
}

/// Encodes with fresh buffers (`chars_cap` characters of workspace when given, else the
/// recommended size; `out_cap` output slots) and checks what comes back: every id in the
/// vocabulary, offsets inside their text on character boundaries, lengths as the options
/// say. Errors must format.
pub fn encode_checked(
    tok: &Tokenizer<'_>,
    first: &[u8],
    second: Option<&[u8]>,
    opts: &EncodeOptions,
    chars_cap: Option<usize>,
    out_cap: usize,
) -> Option<usize> {
    let longest = first.len().max(second.map_or(0, <[u8]>::len));
    let n = chars_cap.unwrap_or(Workspace::chars_for(longest));
    let (mut chars, mut chars2) = (vec![NChar::EMPTY; n], vec![NChar::EMPTY; n]);
    let mut bytes = vec![0u8; 4 * n];
    let mut lattice = vec![Node::EMPTY; 4 * n + 1];
    let mut ws = Workspace { chars: &mut chars, chars2: &mut chars2, bytes: &mut bytes, lattice: &mut lattice };
    let (mut ids, mut type_ids, mut mask) = (vec![0u32; out_cap], vec![0u32; out_cap], vec![0u32; out_cap]);
    let mut offsets = vec![[0u32; 2]; out_cap];
    let mut out = Encoding { ids: &mut ids, type_ids: &mut type_ids, attention_mask: &mut mask, offsets: &mut offsets };
    let n = match tok.encode_bytes(first, second, opts, &mut ws, &mut out) {
        Ok(n) => n,
        Err(e) => {
            let _ = e.to_string();
            return None;
        }
    };
    assert!(n <= out_cap, "{n} tokens written into {out_cap} slots");
    for i in 0..n {
        assert!(ids[i] < tok.vocab_size(), "token {i}: id {} outside the vocabulary", ids[i]);
        assert!(type_ids[i] <= 1 && (second.is_some() || type_ids[i] == 0), "token {i}: type id {}", type_ids[i]);
        assert!(mask[i] <= 1, "token {i}: mask {}", mask[i]);
        let text = if type_ids[i] == 0 { first } else { second.unwrap_or(first) };
        let [s, e] = offsets[i].map(|o| o as usize);
        let text = std::str::from_utf8(text).expect("encode accepted the text, so it is UTF-8");
        assert!(
            s <= e && e <= text.len() && text.is_char_boundary(s) && text.is_char_boundary(e),
            "token {i}: offsets {s}..{e} in a text of {} bytes",
            text.len()
        );
    }
    if let Some(max) = opts.max_length {
        if opts.pad_to_max_length {
            assert!(n >= max, "padded to max_length {max} but only {n} tokens");
        }
        // Fast mode refuses what it cannot truncate; sentencepiece mode (as transformers)
        // returns the sequence untruncated then.
        if tok.mode() == Mode::Fast {
            assert!(n <= max, "{n} tokens for max_length {max}");
        }
    }
    if opts.max_length.is_none() && !opts.add_special_tokens && second.is_none() {
        let text = std::str::from_utf8(first).expect("checked above");
        let mut ws = Workspace { chars: &mut chars, chars2: &mut chars2, bytes: &mut bytes, lattice: &mut lattice };
        let count = tok.count(text, &mut ws).expect("count of a text encode accepted");
        assert_eq!(count, n, "count() disagrees with encode()");
    }
    Some(n)
}

/// Encode options from two fuzzer bytes.
pub fn options(flags: u8, max: u8) -> EncodeOptions {
    EncodeOptions {
        add_special_tokens: flags & 1 == 0,
        max_length: (flags & 2 != 0).then_some(max as usize),
        truncation: match (flags >> 2) % 3 {
            0 => Truncation::LongestFirst,
            1 => Truncation::OnlyFirst,
            _ => Truncation::OnlySecond,
        },
        pad_to_max_length: flags & 16 != 0,
    }
}

/// The tokenizers the tokenizer target runs: the bundled model's (fast mode), the
/// tokenizer fixture's `tokenizer.json` (fast) and its `spiece.model` (sentencepiece mode),
/// with every normalizer table. Loaded once: validating a section costs more than an input.
pub fn tokenizers() -> &'static [Tokenizer<'static>] {
    // The sections live in a static of their own, not a leaked box: memory reachable from
    // no static is a leak to LeakSanitizer at exit, which fails every run.
    static S: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    static T: OnceLock<Vec<Tokenizer<'static>>> = OnceLock::new();
    T.get_or_init(|| {
        let sections = S.get_or_init(tokenizer_sections);
        sections.iter().map(|s| Tokenizer::from_section(s).expect("fixture sections load")).collect()
    })
}

fn tokenizer_sections() -> Vec<Vec<u8>> {

    let bundled = AlignedBlob::new(repo_file!("models/albert-pydoc.albq"));
    let bundled = Blob::parse(bundled.as_bytes()).expect("bundled model loads");
    let json = tk::from_tokenizer_json_bytes(repo_file!("tests/fixtures/tokenizer/tokenizer.json"))
        .expect("fixture tokenizer.json reads");
    let slow = tk::from_spiece_slow(repo_file!("tests/fixtures/tokenizer/spiece.model"), true, false)
        .expect("fixture spiece.model reads");
    vec![
        bundled.tokenizer_section().expect("bundled model has a tokenizer").to_vec(),
        tk::build_section(&json).expect("packs"),
        tk::build_section(&slow).expect("packs"),
    ]
}

// ---- models -------------------------------------------------------------------------

/// A tiny checkpoint for `task` (vocabulary of the tiny tokenizer's size), read through
/// `checkpoint::from_parts` as `quantize` reads a directory.
pub fn tiny_checkpoint(task: Task, vocab: usize) -> Checkpoint {
    let (e, h, i, p, labels) = (8usize, 16usize, 32usize, 16usize, 3usize);
    let arch = match task {
        Task::Model => "AlbertModel",
        Task::Pretraining => "AlbertForPreTraining",
        Task::MaskedLm => "AlbertForMaskedLM",
        Task::SequenceClassification => "AlbertForSequenceClassification",
        Task::TokenClassification => "AlbertForTokenClassification",
        Task::QuestionAnswering => "AlbertForQuestionAnswering",
        Task::MultipleChoice => "AlbertForMultipleChoice",
    };
    let json = format!(
        r#"{{"architectures": ["{arch}"], "model_type": "albert", "vocab_size": {vocab}, "embedding_size": {e},
        "hidden_size": {h}, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": {i},
        "max_position_embeddings": {p}, "type_vocab_size": 2, "hidden_act": "gelu_new",
        "id2label": {{"0": "neg", "1": "neutral", "2": "pos"}}}}"#
    );
    let cfg = checkpoint::parse_config_json(json.as_bytes()).expect("tiny config.json");
    let mut t = BTreeMap::new();
    let mut stream = 0u64;
    let mut add = |name: &str, shape: &[usize], base: f32| {
        stream += 1;
        let n: usize = shape.iter().product();
        let values = (0..n as u64)
            .map(|k| {
                // splitmix64: deterministic weights in [-0.1, 0.1) around `base`.
                let mut z = (k + (stream << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z ^= z >> 31;
                base + ((z >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
            })
            .collect();
        t.insert(name.to_string(), Tensor { shape: shape.to_vec(), values });
    };
    add("embeddings.word_embeddings.weight", &[vocab, e], 0.0);
    add("embeddings.position_embeddings.weight", &[p, e], 0.0);
    add("embeddings.token_type_embeddings.weight", &[2, e], 0.0);
    add("embeddings.LayerNorm.weight", &[e], 1.0);
    add("embeddings.LayerNorm.bias", &[e], 0.0);
    add("encoder.embedding_hidden_mapping_in.weight", &[h, e], 0.0);
    add("encoder.embedding_hidden_mapping_in.bias", &[h], 0.0);
    let l = "encoder.albert_layer_groups.0.albert_layers.0";
    for (n, r, k) in [
        ("attention.query", h, h),
        ("attention.key", h, h),
        ("attention.value", h, h),
        ("attention.dense", h, h),
        ("ffn", i, h),
        ("ffn_output", h, i),
    ] {
        add(&format!("{l}.{n}.weight"), &[r, k], 0.0);
        add(&format!("{l}.{n}.bias"), &[r], 0.0);
    }
    for n in ["attention.LayerNorm", "full_layer_layer_norm"] {
        add(&format!("{l}.{n}.weight"), &[h], 1.0);
        add(&format!("{l}.{n}.bias"), &[h], 0.0);
    }
    add("pooler.weight", &[h, h], 0.0);
    add("pooler.bias", &[h], 0.0);
    match task {
        Task::Pretraining | Task::MaskedLm => {
            add("predictions.dense.weight", &[e, h], 0.0);
            add("predictions.dense.bias", &[e], 0.0);
            add("predictions.LayerNorm.weight", &[e], 1.0);
            add("predictions.LayerNorm.bias", &[e], 0.0);
            add("predictions.bias", &[vocab], 0.0);
            if task == Task::Pretraining {
                add("sop_classifier.classifier.weight", &[2, h], 0.0);
                add("sop_classifier.classifier.bias", &[2], 0.0);
            }
        }
        Task::SequenceClassification | Task::TokenClassification => {
            add("classifier.weight", &[labels, h], 0.0);
            add("classifier.bias", &[labels], 0.0);
        }
        Task::MultipleChoice => {
            add("classifier.weight", &[1, h], 0.0);
            add("classifier.bias", &[1], 0.0);
        }
        Task::QuestionAnswering => {
            add("qa_outputs.weight", &[2, h], 0.0);
            add("qa_outputs.bias", &[2], 0.0);
        }
        Task::Model => {}
    }
    checkpoint::from_parts(&cfg, t, None).expect("tiny checkpoint")
}

/// The tiny tokenizer's section without its Unicode tables (small enough for blob seeds).
pub fn tiny_tokenizer_section() -> Vec<u8> {
    let spec = tk::from_tokenizer_json_bytes(TINY_TOKENIZER_JSON).expect("tiny tokenizer.json reads");
    tk::build_section(&without_unicode_tables(spec)).expect("tiny tokenizer packs")
}

/// Blobs of the tiny model in every dtype and head, with the tiny tokenizer packed in.
pub fn tiny_blobs() -> Vec<(String, Vec<u8>)> {
    let section = tiny_tokenizer_section();
    let vocab = Tokenizer::from_section(&section).expect("loads").vocab_size() as usize;
    let mut out = Vec::new();
    for (task, tname) in [
        (Task::Pretraining, "pretraining"),
        (Task::SequenceClassification, "seq_cls"),
        (Task::TokenClassification, "token_cls"),
        (Task::QuestionAnswering, "qa"),
        (Task::MultipleChoice, "multiple_choice"),
    ] {
        let ck = tiny_checkpoint(task, vocab);
        let dtypes: &[(DType, &str)] = if task == Task::Pretraining {
            &[(DType::F32, "f32"), (DType::F16, "f16"), (DType::I8, "i8")]
        } else {
            &[(DType::I8, "i8")]
        };
        for &(dtype, dname) in dtypes {
            let opts = PackOptions { tokenizer: Some(section.clone()), ..PackOptions::new(dtype) };
            let (bytes, _) = pack::pack_with(&ck, &opts).expect("tiny model packs");
            out.push((format!("{tname}_{dname}"), bytes));
        }
    }
    out
}

/// The models the forward target runs: the tiny ones, and the `pretraining` fixture
/// (transformers weights) in int8 and f16. Loaded once, from blobs that live as long as
/// the process.
pub fn forward_models() -> &'static [Model<'static>] {
    // As in `tokenizers`: the blobs in a static, not a leaked box.
    static B: OnceLock<Vec<AlignedBlob>> = OnceLock::new();
    static M: OnceLock<Vec<Model<'static>>> = OnceLock::new();
    M.get_or_init(|| {
        let blobs = B.get_or_init(forward_blobs);
        blobs.iter().map(|b| Model::from_bytes(b.as_bytes()).expect("fixture models load")).collect()
    })
}

fn forward_blobs() -> Vec<AlignedBlob> {

    let mut v: Vec<AlignedBlob> = tiny_blobs().iter().map(|(_, b)| AlignedBlob::new(b)).collect();
    let cfg = checkpoint::parse_config_json(repo_file!("tests/fixtures/pretraining/config.json")).expect("config");
    let mut t = BTreeMap::new();
    checkpoint::read_safetensors(repo_file!("tests/fixtures/pretraining/model.safetensors"), &mut t)
        .expect("fixture weights");
    let ck = checkpoint::from_parts(&cfg, t, None).expect("fixture checkpoint");
    for dtype in [DType::I8, DType::F16] {
        v.push(AlignedBlob::new(&pack::pack(&ck, dtype).expect("fixture packs").0));
    }
    v
}

/// Re-seals a blob after an edit: `file_size` set to the length and a fresh checksum, so
/// the checks behind them see the edit.
pub fn reseal(b: &mut [u8]) {
    if b.len() < format::HEADER_SIZE {
        return;
    }
    let len = b.len() as u64;
    b[32..40].copy_from_slice(&len.to_le_bytes());
    let crc = format::checksum(b);
    b[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Loads `bytes` as a model; when it loads, walks everything a caller may read from it
/// and runs a short forward pass (if the scratch is small) and the tokenizer.
pub fn exercise_blob(bytes: &[u8]) {
    let _ = Blob::parse_with(bytes, false).map_err(|e| e.to_string());
    let m = match Model::from_bytes(bytes) {
        Ok(m) => m,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let blob = m.blob();
    for t in blob.tensors() {
        assert!(blob.tensor(t.name).is_some());
        assert_eq!(t.data.len() as u64, t.numel() * t.dtype.size() as u64);
    }
    for i in 0..blob.label_count() + 1 {
        let _ = m.label(i);
    }
    if let Some(section) = blob.tokenizer_section()
        && let Ok(tok) = Tokenizer::from_section(section)
    {
        for text in TEXTS {
            encode_checked(&tok, text.as_bytes(), None, &EncodeOptions::default(), None, 64);
        }
    }
    let c = *m.config();
    let ids: Vec<u32> = [c.bos_token_id, 5, c.pad_token_id, c.eos_token_id].iter().map(|&i| i % c.vocab_size).collect();
    let need = m.scratch_bytes(ids.len(), 1);
    if need <= 16 << 20 {
        let mut scratch = vec![0u8; need];
        if let Err(e) = m.encode(&Inputs::single(&ids), &mut scratch) {
            let _ = e.to_string();
        }
    }
}
