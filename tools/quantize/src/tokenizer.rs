//! Host side of the tokenizer: read a checkpoint's `tokenizer.json` and/or `spiece.model`
//! and build the blob's `TOKENIZER` section (`engine/FORMAT.md`, "The tokenizer section").
//!
//! With a `tokenizer.json`, its pipeline is packed as it is (that file is the reference:
//! `tokenizers` runs it for `AlbertTokenizerFast`). With only `spiece.model`, the pipeline
//! transformers' classic `AlbertConverter` (4.x up to mid-2024, e.g. 4.40.2) builds from it
//! is packed: user-defined pieces stay ordinary vocabulary entries, a piece ending in a
//! digit and a comma loses 100 from its score, ``` `` ```/`''` → `"`, NFKD + accent
//! stripping (unless `keep_accents`), lowercasing (unless `do_lower_case` is false), the
//! model's `precompiled_charsmap`, `Replace(" {2,}", " ")`, Metaspace with
//! `prepend_scheme="always"`, `[CLS] A [SEP]` / `[CLS] A [SEP] B [SEP]`.

use std::collections::BTreeMap;
use std::path::Path;

use albert_engine::tokenizer::section::{self, added, pretok, region, step};
use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

/// Which tokenization semantics to pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenizerMode {
    /// `tokenizers` running `tokenizer.json` (what `AlbertTokenizerFast` gives).
    Fast,
    /// The slow SentencePiece-based `AlbertTokenizer`.
    SentencePiece,
}

/// One added token (special or not).
#[derive(Clone, Debug, PartialEq)]
pub struct AddedToken {
    pub id: u32,
    pub content: String,
    pub single_word: bool,
    pub lstrip: bool,
    pub rstrip: bool,
    pub normalized: bool,
    pub special: bool,
}

/// One normalizer step, as packed.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Replace {
        pattern: String,
        content: String,
    },
    ReplaceRun {
        ch: char,
        min: u32,
        content: String,
    },
    /// NFKD, accent stripping and lowercasing fused into one character map.
    CharMap {
        nfkd: bool,
        strip_accents: bool,
        lowercase: bool,
    },
    Precompiled,
    /// Sentencepiece mode: Python's per-character `lower()` (LOWER region) and
    /// `preprocess_text`'s NFKD + dropping combining classes ≠ 0 + `lower()` (CHARMAP).
    PySlow {
        nfkd: bool,
        lowercase: bool,
    },
}

/// Everything the section holds, before serialisation.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenizerSpec {
    pub mode: TokenizerMode,
    /// Pieces and scores by id.
    pub vocab: Vec<(String, f64)>,
    /// SentencePiece piece types by id (1 normal when unknown).
    pub types: Vec<u8>,
    pub unk_id: Option<u32>,
    pub cls_id: u32,
    pub sep_id: u32,
    pub pad_id: Option<u32>,
    pub added: Vec<AddedToken>,
    pub steps: Vec<Step>,
    pub precompiled: Vec<u8>,
    pub pretok: u32,
    pub replacement: char,
}

/// Reads the tokenizer of a checkpoint directory: `tokenizer.json` when there is one,
/// else `spiece.model` (with `tokenizer_config.json`'s `do_lower_case`/`keep_accents`).
/// `Ok(None)` when the directory has neither.
pub fn load_dir(dir: &Path, mode: TokenizerMode) -> Result<Option<TokenizerSpec>> {
    let tj = dir.join("tokenizer.json");
    let sp = dir.join("spiece.model");
    let config = || -> Result<(bool, bool)> {
        let cfg = dir.join("tokenizer_config.json");
        let cfg: Value = if cfg.is_file() {
            serde_json::from_str(&std::fs::read_to_string(&cfg)?)
                .with_context(|| format!("parsing {}", cfg.display()))?
        } else {
            Value::Null
        };
        let lower = cfg.get("do_lower_case").and_then(Value::as_bool).unwrap_or(true);
        let keep_accents = cfg.get("keep_accents").and_then(Value::as_bool).unwrap_or(false);
        Ok((lower, keep_accents))
    };
    if mode == TokenizerMode::SentencePiece {
        if !sp.is_file() {
            if tj.is_file() {
                bail!("{}: sentencepiece mode needs spiece.model (the slow tokenizer reads only that)", dir.display());
            }
            return Ok(None);
        }
        let bytes = std::fs::read(&sp).with_context(|| format!("reading {}", sp.display()))?;
        let (lower, keep_accents) = config()?;
        return from_spiece_slow(&bytes, lower, keep_accents).map(Some).with_context(|| format!("{}", sp.display()));
    }
    if tj.is_file() {
        let bytes = std::fs::read(&tj).with_context(|| format!("reading {}", tj.display()))?;
        return from_tokenizer_json_bytes(&bytes).map(Some).with_context(|| format!("{}", tj.display()));
    }
    if sp.is_file() {
        let bytes = std::fs::read(&sp).with_context(|| format!("reading {}", sp.display()))?;
        let cfg = dir.join("tokenizer_config.json");
        let cfg: Value = if cfg.is_file() {
            serde_json::from_str(&std::fs::read_to_string(&cfg)?)
                .with_context(|| format!("parsing {}", cfg.display()))?
        } else {
            Value::Null
        };
        let lower = cfg.get("do_lower_case").and_then(Value::as_bool).unwrap_or(true);
        let keep_accents = cfg.get("keep_accents").and_then(Value::as_bool).unwrap_or(false);
        return from_spiece(&bytes, lower, keep_accents).map(Some).with_context(|| format!("{}", sp.display()));
    }
    Ok(None)
}

// ---- tokenizer.json ------------------------------------------------------------------

fn str_field<'v>(v: &'v Value, k: &str) -> Result<&'v str> {
    v.get(k).and_then(Value::as_str).ok_or_else(|| anyhow!("missing string field `{k}`"))
}

/// [`from_tokenizer_json`] on the bytes of a `tokenizer.json` file.
pub fn from_tokenizer_json_bytes(bytes: &[u8]) -> Result<TokenizerSpec> {
    let v: Value = serde_json::from_slice(bytes).context("parsing JSON")?;
    from_tokenizer_json(&v)
}

/// The pipeline of a `tokenizer.json` (Unigram model, Metaspace, ALBERT's template).
pub fn from_tokenizer_json(v: &Value) -> Result<TokenizerSpec> {
    let model = v.get("model").ok_or_else(|| anyhow!("no `model`"))?;
    if str_field(model, "type")? != "Unigram" {
        bail!("model type `{}` is not supported (ALBERT uses Unigram)", str_field(model, "type")?);
    }
    if model.get("byte_fallback").and_then(Value::as_bool).unwrap_or(false) {
        bail!("Unigram `byte_fallback: true` is not supported");
    }
    let vocab: Vec<(String, f64)> = model
        .get("vocab")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("no `model.vocab` array"))?
        .iter()
        .map(|e| {
            let piece = e.get(0).and_then(Value::as_str).ok_or_else(|| anyhow!("vocab entry without a piece"))?;
            let score = e.get(1).and_then(Value::as_f64).ok_or_else(|| anyhow!("vocab entry without a score"))?;
            Ok((piece.to_string(), score))
        })
        .collect::<Result<_>>()?;
    // `null` (or absent): no unknown piece; anything else must be one of the pieces.
    let unk_id = match model.get("unk_id") {
        None | Some(Value::Null) => None,
        Some(u) => Some(
            u.as_u64()
                .and_then(|u| u32::try_from(u).ok())
                .filter(|&u| (u as usize) < vocab.len())
                .ok_or_else(|| anyhow!("model.unk_id {u} is not a piece id ({} pieces)", vocab.len()))?,
        ),
    };
    let mut added = Vec::new();
    for t in v.get("added_tokens").and_then(Value::as_array).into_iter().flatten() {
        let b = |k: &str| t.get(k).and_then(Value::as_bool).unwrap_or(false);
        added.push(AddedToken {
            id: t.get("id").and_then(Value::as_u64).ok_or_else(|| anyhow!("added token without id"))? as u32,
            content: str_field(t, "content")?.to_string(),
            single_word: b("single_word"),
            lstrip: b("lstrip"),
            rstrip: b("rstrip"),
            normalized: b("normalized"),
            special: b("special"),
        });
    }
    if let Some(t) = added.iter().find(|t| t.normalized) {
        bail!(
            "added token `{}` is `normalized: true`; this engine matches added tokens on the raw text only (converters since mid-2024 make SentencePiece user-defined pieces such tokens: convert with transformers 4.40.2, or pack spiece.model alone)",
            t.content
        );
    }
    let mut steps = Vec::new();
    let mut precompiled = Vec::new();
    let norm = v.get("normalizer").cloned().unwrap_or(Value::Null);
    let list: Vec<Value> = match str_field(&norm, "type") {
        Ok("Sequence") => norm.get("normalizers").and_then(Value::as_array).cloned().unwrap_or_default(),
        Ok(_) => vec![norm.clone()],
        Err(_) => vec![],
    };
    for n in &list {
        let kind = str_field(n, "type")?;
        match kind {
            "Replace" => {
                let content = str_field(n, "content")?.to_string();
                let pat = n.get("pattern").ok_or_else(|| anyhow!("Replace without pattern"))?;
                if let Some(s) = pat.get("String").and_then(Value::as_str) {
                    if s.is_empty() {
                        bail!("Replace with an empty pattern");
                    }
                    steps.push(Step::Replace { pattern: s.to_string(), content });
                } else if let Some(r) = pat.get("Regex").and_then(Value::as_str) {
                    // Only "X{n,}" with X one literal character.
                    let (ch, min) = parse_run_regex(r)
                        .ok_or_else(|| anyhow!("Replace regex `{r}` is not supported (only `X{{n,}}`)"))?;
                    steps.push(Step::ReplaceRun { ch, min, content });
                } else {
                    bail!("Replace pattern {pat} not understood");
                }
            }
            "NFKD" | "StripAccents" | "Lowercase" => {
                let (nfkd, strip, lower) = (kind == "NFKD", kind == "StripAccents", kind == "Lowercase");
                match steps.last_mut() {
                    Some(Step::CharMap { nfkd: a, strip_accents: b, lowercase: c })
                        if !(*c && (nfkd || strip)) && !(*b && nfkd) =>
                    {
                        *a |= nfkd;
                        *b |= strip;
                        *c |= lower;
                    }
                    _ => steps.push(Step::CharMap { nfkd, strip_accents: strip, lowercase: lower }),
                }
            }
            "Precompiled" => {
                precompiled = base64_decode(str_field(n, "precompiled_charsmap")?)?;
                if !precompiled.is_empty() {
                    steps.push(Step::Precompiled);
                }
            }
            other => bail!("normalizer `{other}` is not supported"),
        }
    }
    for s in &steps {
        if let Step::CharMap { nfkd: true, strip_accents: false, .. } = s {
            bail!("NFKD without StripAccents is not supported (combining-mark reordering)");
        }
    }
    // Pre-tokenizer.
    let pt = v.get("pre_tokenizer").cloned().unwrap_or(Value::Null);
    let (ws_split, meta) = match str_field(&pt, "type")? {
        "Metaspace" => (false, pt.clone()),
        "Sequence" => {
            let l = pt.get("pretokenizers").and_then(Value::as_array).cloned().unwrap_or_default();
            match l.as_slice() {
                [a, b] if str_field(a, "type")? == "WhitespaceSplit" && str_field(b, "type")? == "Metaspace" => {
                    (true, b.clone())
                }
                [b] if str_field(b, "type")? == "Metaspace" => (false, b.clone()),
                _ => bail!("pre-tokenizer sequence {pt} is not supported"),
            }
        }
        other => bail!("pre-tokenizer `{other}` is not supported (ALBERT uses Metaspace)"),
    };
    let replacement =
        str_field(&meta, "replacement")?.chars().next().ok_or_else(|| anyhow!("empty Metaspace replacement"))?;
    let scheme = match meta.get("prepend_scheme").and_then(Value::as_str) {
        Some("always") => pretok::PREPEND_ALWAYS,
        Some("first") => pretok::PREPEND_FIRST,
        Some("never") => pretok::PREPEND_NEVER,
        Some(o) => bail!("Metaspace prepend_scheme `{o}` unknown"),
        None => {
            if meta.get("add_prefix_space").and_then(Value::as_bool).unwrap_or(true) {
                pretok::PREPEND_ALWAYS
            } else {
                pretok::PREPEND_NEVER
            }
        }
    };
    let split = meta.get("split").and_then(Value::as_bool).unwrap_or(true);
    let pretok_flags =
        scheme | if split { pretok::SPLIT } else { 0 } | if ws_split { pretok::WHITESPACE_SPLIT } else { 0 };
    // Post-processor: ALBERT's template.
    let pp = v.get("post_processor").ok_or_else(|| anyhow!("no post_processor"))?;
    if str_field(pp, "type")? != "TemplateProcessing" {
        bail!("post_processor `{}` is not supported", str_field(pp, "type")?);
    }
    let sp_id = |name: &str| -> Result<u32> {
        pp.get("special_tokens")
            .and_then(|m| m.get(name))
            .and_then(|t| t.get("ids"))
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_u64)
            .map(|u| u as u32)
            .ok_or_else(|| anyhow!("post_processor has no `{name}` special token"))
    };
    let template = |k: &str| -> String {
        pp.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|p| {
                        if let Some(s) = p.get("SpecialToken") {
                            format!(
                                "{}:{}",
                                str_field(s, "id").unwrap_or("?"),
                                s.get("type_id").and_then(Value::as_u64).unwrap_or(9)
                            )
                        } else if let Some(s) = p.get("Sequence") {
                            format!(
                                "${}:{}",
                                str_field(s, "id").unwrap_or("?"),
                                s.get("type_id").and_then(Value::as_u64).unwrap_or(9)
                            )
                        } else {
                            "?".into()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    if template("single") != "[CLS]:0 $A:0 [SEP]:0" || template("pair") != "[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1" {
        bail!("post_processor template `{}` / `{}` is not ALBERT's", template("single"), template("pair"));
    }
    let cls_id = sp_id("[CLS]")?;
    let sep_id = sp_id("[SEP]")?;
    let pad_id = v
        .get("padding")
        .and_then(|p| p.get("pad_id"))
        .and_then(Value::as_u64)
        .map(|u| u as u32)
        .or_else(|| added.iter().find(|t| t.content == "<pad>").map(|t| t.id));
    let n = vocab.len();
    Ok(TokenizerSpec {
        mode: TokenizerMode::Fast,
        vocab,
        types: vec![1; n],
        unk_id,
        cls_id,
        sep_id,
        pad_id,
        added,
        steps,
        precompiled,
        pretok: pretok_flags,
        replacement,
    })
}

fn parse_run_regex(r: &str) -> Option<(char, u32)> {
    let mut it = r.chars();
    let ch = it.next()?;
    let rest: String = it.collect();
    let n = rest.strip_prefix('{')?.strip_suffix(",}")?.parse().ok()?;
    (ch != '\\' && !"()[]{}.*+?^$|".contains(ch)).then_some((ch, n))
}

fn base64_decode(s: &str) -> Result<Vec<u8>> {
    let val = |c: u8| -> Result<u32> {
        Ok(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => bail!("invalid base64 byte {c:#x} in precompiled_charsmap"),
        } as u32)
    };
    let b: Vec<u8> = s.bytes().filter(|&c| c != b'=' && !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(b.len() * 3 / 4);
    for chunk in b.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c)? << (18 - 6 * i);
        }
        let n = chunk.len() * 6 / 8;
        for i in 0..n {
            out.push((acc >> (16 - 8 * i)) as u8);
        }
    }
    Ok(out)
}

// ---- spiece.model --------------------------------------------------------------------

/// The fields of SentencePiece's `ModelProto` the tokenizer needs.
#[derive(Clone, Debug, Default)]
pub struct SpModel {
    /// (piece, score, type) by id.
    pub pieces: Vec<(String, f32, u8)>,
    pub unk_id: u32,
    pub precompiled_charsmap: Vec<u8>,
    pub add_dummy_prefix: bool,
    pub remove_extra_whitespaces: bool,
}

fn varint(b: &[u8], at: &mut usize) -> Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at).ok_or_else(|| anyhow!("truncated protobuf varint"))?;
        *at += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    bail!("protobuf varint too long")
}

/// Walks protobuf fields: (field number, wire type, varint value or payload bytes).
fn fields(b: &[u8], mut f: impl FnMut(u64, u64, u64, &[u8]) -> Result<()>) -> Result<()> {
    let mut at = 0;
    while at < b.len() {
        let key = varint(b, &mut at)?;
        let (num, wt) = (key >> 3, key & 7);
        match wt {
            0 => {
                let v = varint(b, &mut at)?;
                f(num, wt, v, &[])?;
            }
            1 | 5 => {
                let n = if wt == 1 { 8 } else { 4 };
                let p = b.get(at..at + n).ok_or_else(|| anyhow!("truncated protobuf fixed field"))?;
                at += n;
                let mut v = [0u8; 8];
                v[..n].copy_from_slice(p);
                f(num, wt, u64::from_le_bytes(v), p)?;
            }
            2 => {
                let n = varint(b, &mut at)? as usize;
                let p = b
                    .get(at..at.checked_add(n).ok_or_else(|| anyhow!("protobuf bytes field length {n} overflows"))?)
                    .ok_or_else(|| anyhow!("truncated protobuf bytes field"))?;
                at += n;
                f(num, wt, n as u64, p)?;
            }
            _ => bail!("protobuf wire type {wt} not supported"),
        }
    }
    Ok(())
}

/// Parses a `spiece.model`.
pub fn parse_spiece(b: &[u8]) -> Result<SpModel> {
    let mut m = SpModel { unk_id: 0, add_dummy_prefix: true, remove_extra_whitespaces: true, ..Default::default() };
    let mut model_type = 1u64;
    fields(b, |num, _wt, _v, p| {
        match num {
            1 => {
                let (mut piece, mut score, mut ty) = (String::new(), 0f32, 1u8);
                fields(p, |n, _, v, q| {
                    match n {
                        1 => piece = String::from_utf8(q.to_vec()).map_err(|_| anyhow!("piece is not UTF-8"))?,
                        2 => score = f32::from_bits(v as u32),
                        3 => ty = v as u8,
                        _ => {}
                    }
                    Ok(())
                })?;
                m.pieces.push((piece, score, ty));
            }
            2 => fields(p, |n, _, v, _| {
                match n {
                    3 => model_type = v,
                    // An int32: -1 (all ones) or past u32 stays out of range, never wraps.
                    40 => m.unk_id = u32::try_from(v).unwrap_or(u32::MAX),
                    35 if v != 0 => bail!("byte_fallback models are not supported"),
                    _ => {}
                }
                Ok(())
            })?,
            3 => fields(p, |n, _, v, q| {
                match n {
                    2 => m.precompiled_charsmap = q.to_vec(),
                    3 => m.add_dummy_prefix = v != 0,
                    4 => m.remove_extra_whitespaces = v != 0,
                    _ => {}
                }
                Ok(())
            })?,
            _ => {}
        }
        Ok(())
    })?;
    if model_type != 1 {
        bail!("SentencePiece model type {model_type} is not Unigram (1)");
    }
    if m.pieces.is_empty() {
        bail!("no pieces");
    }
    // SentencePiece needs its unknown piece (`unk_id: -1` reads as 4294967295 here); an id
    // outside the pieces would reach the engine as "no unknown piece" at best.
    if m.unk_id as usize >= m.pieces.len() {
        bail!("unk_id {} is not a piece id (the model has {} pieces)", m.unk_id, m.pieces.len());
    }
    Ok(m)
}

/// transformers' `check_number_comma`: false for a piece ending in a digit and a comma.
fn number_comma_ok(piece: &str) -> bool {
    let c: Vec<char> = piece.chars().collect();
    !(c.len() >= 2 && c[c.len() - 1] == ',' && c[c.len() - 2].is_numeric())
}

/// The classic `AlbertConverter` pipeline for a `spiece.model` (see the module docs).
pub fn from_spiece(b: &[u8], do_lower_case: bool, keep_accents: bool) -> Result<TokenizerSpec> {
    let m = parse_spiece(b)?;
    let vocab: Vec<(String, f64)> = m
        .pieces
        .iter()
        .map(|(p, s, _)| (p.clone(), if number_comma_ok(p) { *s as f64 } else { *s as f64 - 100.0 }))
        .collect();
    let id = |p: &str| m.pieces.iter().position(|(q, _, _)| q == p).map(|i| i as u32);
    let cls_id = id("[CLS]").ok_or_else(|| anyhow!("no [CLS] piece"))?;
    let sep_id = id("[SEP]").ok_or_else(|| anyhow!("no [SEP] piece"))?;
    let mut added = Vec::new();
    for (content, lstrip) in [("<pad>", false), ("<unk>", false), ("[CLS]", false), ("[SEP]", false), ("[MASK]", true)]
    {
        if let Some(i) = id(content) {
            added.push(AddedToken {
                id: i,
                content: content.into(),
                single_word: false,
                lstrip,
                rstrip: false,
                normalized: false,
                special: true,
            });
        }
    }
    added.sort_by_key(|t| t.id);
    let mut steps = vec![
        Step::Replace { pattern: "``".into(), content: "\"".into() },
        Step::Replace { pattern: "''".into(), content: "\"".into() },
    ];
    if !keep_accents || do_lower_case {
        steps.push(Step::CharMap { nfkd: !keep_accents, strip_accents: !keep_accents, lowercase: do_lower_case });
    }
    if !m.precompiled_charsmap.is_empty() {
        steps.push(Step::Precompiled);
    }
    steps.push(Step::ReplaceRun { ch: ' ', min: 2, content: " ".into() });
    Ok(TokenizerSpec {
        mode: TokenizerMode::Fast,
        types: m.pieces.iter().map(|p| p.2).collect(),
        vocab,
        unk_id: Some(m.unk_id),
        cls_id,
        sep_id,
        pad_id: id("<pad>"),
        added,
        steps,
        precompiled: m.precompiled_charsmap,
        pretok: pretok::PREPEND_ALWAYS | pretok::SPLIT,
        replacement: '▁',
    })
}

/// Sentencepiece mode (the slow `AlbertTokenizer`): raw piece scores, SentencePiece piece
/// types, and the Python preprocessing as two character maps (see
/// `engine/src/tokenizer/sp.rs`).
pub fn from_spiece_slow(b: &[u8], do_lower_case: bool, keep_accents: bool) -> Result<TokenizerSpec> {
    let mut spec = from_spiece(b, do_lower_case, keep_accents)?;
    let m = parse_spiece(b)?;
    spec.mode = TokenizerMode::SentencePiece;
    spec.vocab = m.pieces.iter().map(|(p, s, _)| (p.clone(), *s as f64)).collect();
    spec.steps = vec![Step::PySlow { nfkd: !keep_accents, lowercase: do_lower_case }];
    if !m.add_dummy_prefix || !m.remove_extra_whitespaces {
        bail!("sentencepiece mode supports only add_dummy_prefix and remove_extra_whitespaces set (ALBERT's)");
    }
    Ok(spec)
}

// ---- the character map ---------------------------------------------------------------

/// What the fused NFKD / strip-accents / lowercase step makes of `c` (tokenizers' tables:
/// `unicode-normalization-alignments`, Rust's `char::to_lowercase`).
fn map_char(c: char, nfkd: bool, strip: bool, lower: bool, out: &mut String) {
    let mut dec = String::new();
    if nfkd {
        unicode_normalization_alignments::char::decompose_compatible(c, |d| dec.push(d));
    } else {
        dec.push(c);
    }
    for d in dec.chars() {
        if strip && unicode_normalization_alignments::char::is_combining_mark(d) {
            continue;
        }
        if lower {
            out.extend(d.to_lowercase());
        } else {
            out.push(d);
        }
    }
}

// ---- serialisation -------------------------------------------------------------------

/// Serialises the section (layout in `engine/FORMAT.md`).
pub fn build_section(spec: &TokenizerSpec) -> Result<Vec<u8>> {
    let n = spec.vocab.len();
    if n == 0 || n >= section::NONE as usize {
        bail!("vocabulary of {n} pieces");
    }
    let mut strings: Vec<u8> = Vec::new();
    let intern = |s: &str, strings: &mut Vec<u8>| -> (u32, u32) {
        let off = strings.len() as u32;
        strings.extend_from_slice(s.as_bytes());
        (off, s.len() as u32)
    };
    let mut pieces = Vec::with_capacity(8 * n);
    let mut scores = Vec::with_capacity(8 * n);
    for (p, s) in &spec.vocab {
        let (o, l) = intern(p, &mut strings);
        pieces.extend_from_slice(&o.to_le_bytes());
        pieces.extend_from_slice(&l.to_le_bytes());
        scores.extend_from_slice(&s.to_le_bytes());
    }
    let min_score = spec.vocab.iter().map(|v| v.1).fold(f64::INFINITY, f64::min);
    let unk_score = min_score - 10.0;
    // Trie: the last id of a duplicated piece wins (as `tokenizers`' token_to_ids map).
    // Sentencepiece mode: only NORMAL, USER_DEFINED and UNUSED pieces are matchable, and
    // the first of a duplicated piece wins (SentencePiece refuses duplicates anyway).
    let mut last: BTreeMap<&[u8], u32> = BTreeMap::new();
    for (i, (p, _)) in spec.vocab.iter().enumerate() {
        if p.is_empty() {
            continue;
        }
        if spec.mode == TokenizerMode::SentencePiece {
            if matches!(spec.types.get(i), Some(1 | 4 | 5)) {
                last.entry(p.as_bytes()).or_insert(i as u32);
            }
        } else {
            last.insert(p.as_bytes(), i as u32);
        }
    }
    let (trie, labels) = build_trie(&last);
    let mut added_b = Vec::new();
    for t in &spec.added {
        let (o, l) = intern(&t.content, &mut strings);
        let flags = (t.single_word as u32 * added::SINGLE_WORD)
            | (t.lstrip as u32 * added::LSTRIP)
            | (t.rstrip as u32 * added::RSTRIP)
            | (t.normalized as u32 * added::NORMALIZED)
            | (t.special as u32 * added::SPECIAL);
        for w in [t.id, o, l, flags] {
            added_b.extend_from_slice(&w.to_le_bytes());
        }
    }
    let mut charmap = Vec::new();
    let mut lower = Vec::new();
    let mut steps_b = Vec::new();
    let mut have_charmap = false;
    for s in &spec.steps {
        let (kind, flags, pat, rep) = match s {
            Step::Replace { pattern, content } => (step::REPLACE, 0, pattern.as_str(), content.as_str()),
            Step::ReplaceRun { ch, min, content } => {
                let mut b = [0u8; 4];
                let p = ch.encode_utf8(&mut b).to_string();
                let (po, pl) = intern(&p, &mut strings);
                let (ro, rl) = intern(content, &mut strings);
                for w in [step::REPLACE_RUN, *min, po, pl, ro, rl] {
                    steps_b.extend_from_slice(&w.to_le_bytes());
                }
                continue;
            }
            Step::CharMap { nfkd, strip_accents, lowercase } => {
                if have_charmap {
                    bail!("two separate NFKD/StripAccents/Lowercase groups are not supported");
                }
                have_charmap = true;
                let mut out = String::new();
                for cp in 0..=0x10FFFFu32 {
                    let Some(c) = char::from_u32(cp) else { continue };
                    if *nfkd && (0xAC00..0xAC00 + 11172).contains(&cp) {
                        continue;
                    }
                    out.clear();
                    map_char(c, *nfkd, *strip_accents, *lowercase, &mut out);
                    let mut one = [0u8; 4];
                    if out != *c.encode_utf8(&mut one) {
                        let (o, l) = intern(&out, &mut strings);
                        for w in [cp, o, l] {
                            charmap.extend_from_slice(&w.to_le_bytes());
                        }
                    }
                }
                (step::CHARMAP, if *nfkd { step::HANGUL } else { 0 }, "", "")
            }
            Step::Precompiled => (step::PRECOMPILED, 0, "", ""),
            Step::PySlow { nfkd, lowercase } => {
                let mut out = String::new();
                for cp in 0..=0x10FFFFu32 {
                    let Some(c) = char::from_u32(cp) else { continue };
                    let mut one = [0u8; 4];
                    let one = c.encode_utf8(&mut one);
                    if *lowercase {
                        out.clear();
                        out.extend(c.to_lowercase());
                        if out != *one {
                            let (o, l) = intern(&out, &mut strings);
                            for w in [cp, o, l] {
                                lower.extend_from_slice(&w.to_le_bytes());
                            }
                        }
                    }
                    out.clear();
                    if *nfkd {
                        let mut dec = String::new();
                        unicode_normalization::char::decompose_compatible(c, |d| dec.push(d));
                        for d in dec.chars().filter(|&d| unicode_normalization::char::canonical_combining_class(d) == 0)
                        {
                            if *lowercase {
                                out.extend(d.to_lowercase());
                            } else {
                                out.push(d);
                            }
                        }
                    } else if *lowercase {
                        out.extend(c.to_lowercase());
                    } else {
                        out.push(c);
                    }
                    if out != *one {
                        let (o, l) = intern(&out, &mut strings);
                        for w in [cp, o, l] {
                            charmap.extend_from_slice(&w.to_le_bytes());
                        }
                    }
                }
                continue;
            }
        };
        let (po, pl) = intern(pat, &mut strings);
        let (ro, rl) = intern(rep, &mut strings);
        for w in [kind, flags, po, pl, ro, rl] {
            steps_b.extend_from_slice(&w.to_le_bytes());
        }
    }
    if spec.steps.len() > section::MAX_STEPS {
        bail!("{} normalizer steps; at most {}", spec.steps.len(), section::MAX_STEPS);
    }
    let mut regions: Vec<(usize, Vec<u8>)> = vec![
        (region::STRINGS, strings),
        (region::PIECES, pieces),
        (region::SCORES, scores),
        (region::TYPES, spec.types.clone()),
        (region::TRIE, trie),
        (region::LABELS, labels),
        (region::ADDED, added_b),
        (region::CHARMAP, charmap),
        (region::PRECOMPILED, spec.precompiled.clone()),
        (region::STEPS, steps_b),
        (region::LOWER, lower),
    ];
    let mut out = vec![0u8; section::PREFIX_BYTES];
    out[..8].copy_from_slice(&section::MAGIC);
    let put = |o: &mut Vec<u8>, at: usize, v: u32| o[at..at + 4].copy_from_slice(&v.to_le_bytes());
    put(&mut out, 8, section::LAYOUT_VERSION);
    put(&mut out, 12, (spec.mode == TokenizerMode::SentencePiece) as u32);
    put(&mut out, 16, n as u32);
    put(&mut out, 20, spec.unk_id.unwrap_or(section::NONE));
    put(&mut out, 24, spec.cls_id);
    put(&mut out, 28, spec.sep_id);
    put(&mut out, 32, spec.pad_id.unwrap_or(section::NONE));
    put(&mut out, 36, spec.pretok);
    put(&mut out, 40, spec.replacement as u32);
    out[48..56].copy_from_slice(&unk_score.to_le_bytes());
    // SentencePiece's own min/max over NORMAL pieces, in f32 (sentencepiece mode).
    let normal = spec.vocab.iter().zip(&spec.types).filter(|(_, t)| **t == 1).map(|(v, _)| v.1 as f32);
    let (sp_min, sp_max) = normal.fold((f32::MAX, f32::MIN_POSITIVE), |(a, b), s| (a.min(s), b.max(s)));
    out[56..60].copy_from_slice(&sp_min.to_le_bytes());
    out[60..64].copy_from_slice(&sp_max.to_le_bytes());
    for (i, bytes) in regions.iter_mut() {
        while !out.len().is_multiple_of(8) {
            out.push(0);
        }
        let off = out.len();
        out.extend_from_slice(bytes);
        put(&mut out, section::HEADER_BYTES + 8 * *i, off as u32);
        put(&mut out, section::HEADER_BYTES + 8 * *i + 4, bytes.len() as u32);
    }
    if out.len() > u32::MAX as usize {
        bail!("tokenizer section over 4 GiB");
    }
    albert_engine::Tokenizer::from_section(&out)
        .map_err(|e| anyhow!("built tokenizer section does not validate: {e}"))?;
    Ok(out)
}

/// A byte trie in breadth-first order: node 0 the root, each node's children contiguous,
/// after it, sorted by label. Returns (nodes, labels).
fn build_trie(keys: &BTreeMap<&[u8], u32>) -> (Vec<u8>, Vec<u8>) {
    // Pointer-free tree: children as sorted maps.
    #[derive(Default)]
    struct T {
        kids: BTreeMap<u8, T>,
        id: Option<u32>,
    }
    let mut root = T::default();
    for (k, &id) in keys {
        let mut n = &mut root;
        for &b in *k {
            n = n.kids.entry(b).or_default();
        }
        n.id = Some(id);
    }
    let mut order: Vec<(&T, u8)> = vec![(&root, 0)];
    let mut i = 0;
    let mut nodes = Vec::new();
    let mut labels = Vec::new();
    while i < order.len() {
        let (t, label) = order[i];
        let first = order.len();
        for (&b, k) in &t.kids {
            order.push((k, b));
        }
        let count = t.kids.len();
        for w in [if count == 0 { 0 } else { first as u32 }, count as u32, t.id.unwrap_or(section::NONE)] {
            nodes.extend_from_slice(&w.to_le_bytes());
        }
        labels.push(label);
        i += 1;
    }
    (nodes, labels)
}
