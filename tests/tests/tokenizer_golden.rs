//! The engine's tokenizer against the committed corpus (`tests/fixtures/tokenizer/`, written
//! by `tests/reference/make_tokenizer_fixtures.py` with transformers 4.40.2 / tokenizers
//! 0.19.1): every case's `input_ids`, `token_type_ids`, `attention_mask` and character
//! offsets must be identical to `AlbertTokenizerFast`'s, for the section packed from the
//! fixture's `tokenizer.json` and for the one packed from its `spiece.model` alone.
//!
//! `cargo test -p albert-tests --test tokenizer_golden -- --nocapture` prints the tallies.

use std::path::PathBuf;

use albert_engine::Tokenizer;
use albert_engine::tokenizer::{EncodeOptions, Encoding, OwnedWorkspace, Truncation};
use albert_quantize::tokenizer::{self as tk, TokenizerMode};
use serde_json::Value;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/tokenizer")
}

fn goldens() -> Value {
    let p = fixture_dir().join("goldens.json");
    let text =
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e} (run make_tokenizer_fixtures.py)", p.display()));
    serde_json::from_str(&text).expect("goldens.json parses")
}

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array().expect("array").iter().map(|x| x.as_u64().expect("int") as u32).collect()
}

/// Byte offsets of `text` to character offsets (what transformers reports).
fn char_offsets(text: &str, off: [u32; 2]) -> [u32; 2] {
    let c = |b: u32| text.get(..b as usize).map_or(u32::MAX, |s| s.chars().count() as u32);
    [c(off[0]), c(off[1])]
}

#[derive(Default, Debug)]
struct Tally {
    cases: usize,
    ids: usize,
    types: usize,
    mask: usize,
    offsets: usize,
    errors: usize,
    failures: Vec<String>,
}

/// Runs the corpus through `tok`; `filter` selects cases.
fn run(tok: &Tokenizer<'_>, g: &Value, filter: impl Fn(&Value) -> bool) -> Tally {
    let mut t = Tally::default();
    let mut ws = OwnedWorkspace::new(64);
    for case in g["cases"].as_array().expect("cases").iter().filter(|c| filter(c)) {
        t.cases += 1;
        let text = case["text"].as_str().expect("text");
        let pair = case.get("pair").and_then(Value::as_str);
        let mut opts = EncodeOptions::default();
        if let Some(ml) = case.get("max_length").and_then(Value::as_u64) {
            opts.max_length = Some(ml as usize);
            opts.truncation = match case["truncation"].as_str() {
                Some("only_first") => Truncation::OnlyFirst,
                Some("only_second") => Truncation::OnlySecond,
                _ => Truncation::LongestFirst,
            };
            opts.pad_to_max_length = case.get("padding").and_then(Value::as_bool).unwrap_or(false);
        }
        ws.reserve(text.len().max(pair.map_or(0, str::len)));
        let cap = 4 * (text.len() + pair.map_or(0, str::len)) + 8 + opts.max_length.unwrap_or(0);
        let (mut ids, mut types, mut mask, mut offs) = (vec![0; cap], vec![0; cap], vec![0; cap], vec![[0; 2]; cap]);
        let mut out = Encoding { ids: &mut ids, type_ids: &mut types, attention_mask: &mut mask, offsets: &mut offs };
        let got = tok.encode(text, pair, &opts, &mut ws.workspace(), &mut out);
        let want = &case["fast"];
        let label = format!(
            "{:?} / {:?} / {:?}",
            text.chars().take(60).collect::<String>(),
            pair.map(|p| p.chars().take(30).collect::<String>()),
            case.get("max_length")
        );
        match (got, want.get("error")) {
            (Err(_), Some(_)) => {
                t.ids += 1;
                t.types += 1;
                t.mask += 1;
                t.offsets += 1;
                t.errors += 1;
            }
            (Err(e), None) => t.failures.push(format!("{label}: engine error {e}")),
            (Ok(n), Some(e)) => t.failures.push(format!("{label}: engine gave {n} tokens, transformers: {e}")),
            (Ok(n), None) => {
                let ok_ids = ids[..n] == u32s(&want["input_ids"])[..];
                let ok_types = types[..n] == u32s(&want["token_type_ids"])[..];
                let ok_mask = mask[..n] == u32s(&want["attention_mask"])[..];
                let want_offs: Vec<[u32; 2]> = want["offsets"]
                    .as_array()
                    .expect("offsets")
                    .iter()
                    .map(|o| [o[0].as_u64().expect("int") as u32, o[1].as_u64().expect("int") as u32])
                    .collect();
                let got_offs: Vec<[u32; 2]> = (0..n)
                    .map(|i| {
                        let src = if types[i] == 1 { pair.unwrap_or("") } else { text };
                        char_offsets(src, offs[i])
                    })
                    .collect();
                let ok_offs = got_offs == want_offs;
                t.ids += ok_ids as usize;
                t.types += ok_types as usize;
                t.mask += ok_mask as usize;
                t.offsets += ok_offs as usize;
                if !(ok_ids && ok_types && ok_mask && ok_offs) {
                    t.failures.push(format!(
                        "{label}:\n  ids  {:?}\n  want {:?}\n  offs {:?}\n  want {:?}",
                        &ids[..n],
                        u32s(&want["input_ids"]),
                        got_offs,
                        want_offs
                    ));
                }
            }
        }
    }
    t
}

fn check(what: &str, section: &[u8], g: &Value) {
    let tok = Tokenizer::from_section(section).expect("section validates");
    type Filter = Box<dyn Fn(&Value) -> bool>;
    let kinds: [(&str, Filter); 4] = [
        ("single", Box::new(|c: &Value| c.get("pair").is_none() && c.get("max_length").is_none())),
        ("pair", Box::new(|c: &Value| c.get("pair").is_some() && c.get("max_length").is_none())),
        ("single, truncated", Box::new(|c: &Value| c.get("pair").is_none() && c.get("max_length").is_some())),
        ("pair, truncated", Box::new(|c: &Value| c.get("pair").is_some() && c.get("max_length").is_some())),
    ];
    let mut failures = Vec::new();
    for (name, f) in kinds {
        let t = run(&tok, g, f);
        if t.cases == 0 && what.contains("trained_pydoc") && name.contains("truncated") {
            continue; // that corpus has no truncation cases
        }
        println!(
            "{what} / {name}: {} cases: input_ids {}/{0}, token_type_ids {}/{0}, attention_mask {}/{0}, offsets {}/{0} (of which {} refused by both)",
            t.cases, t.ids, t.types, t.mask, t.offsets, t.errors
        );
        assert!(t.cases > 0, "no {name} cases in the corpus");
        failures.extend(t.failures);
    }
    for f in failures.iter().take(15) {
        println!("MISMATCH {f}");
    }
    assert!(failures.is_empty(), "{what}: {} cases differ from AlbertTokenizerFast", failures.len());
}

#[test]
fn corpus_matches_fast_tokenizer_json() {
    let dir = fixture_dir();
    let v: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer.json")).expect("tokenizer.json"))
        .expect("json");
    let spec = tk::from_tokenizer_json(&v).expect("tokenizer.json packs");
    check("tokenizer.json", &tk::build_section(&spec).expect("section builds"), &goldens());
}

#[test]
fn corpus_matches_fast_from_spiece_model_alone() {
    let bytes = std::fs::read(fixture_dir().join("spiece.model")).expect("spiece.model");
    let spec = tk::from_spiece(&bytes, true, false).expect("spiece.model packs");
    check("spiece.model", &tk::build_section(&spec).expect("section builds"), &goldens());
}

/// A colleague's trained model ships only `spiece.model`: packed as the classic converter
/// would, against transformers 4.40.2's `AlbertTokenizerFast(vocab_file=...)`.
#[test]
fn corpus_matches_fast_for_trained_pydoc_spiece_model() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let bytes = std::fs::read(dir.join("trained_pydoc/spiece.model")).expect("trained_pydoc/spiece.model");
    let spec = tk::from_spiece(&bytes, true, false).expect("spiece.model packs");
    let p = dir.join("tokenizer/goldens_trained_pydoc.json");
    let g: Value =
        serde_json::from_str(&std::fs::read_to_string(&p).expect("goldens_trained_pydoc.json")).expect("json");
    check("trained_pydoc spiece.model", &tk::build_section(&spec).expect("section builds"), &g);
}

#[test]
fn spiece_model_and_tokenizer_json_pack_the_same_pipeline() {
    let dir = fixture_dir();
    let v: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer.json")).expect("tokenizer.json"))
        .expect("json");
    let a = tk::from_tokenizer_json(&v).expect("tokenizer.json packs");
    let b =
        tk::from_spiece(&std::fs::read(dir.join("spiece.model")).expect("spiece.model"), true, false).expect("packs");
    assert_eq!(a.vocab.len(), b.vocab.len());
    // serde_json (without `float_roundtrip`, as in `tokenizers` itself) may read a score
    // one unit in the last place away from Python's shortest repr; the pieces must agree
    // exactly, the scores to 4 ulp.
    let ulps = |x: f64, y: f64| (x.to_bits() as i64 - y.to_bits() as i64).unsigned_abs();
    let diff: Vec<_> = a
        .vocab
        .iter()
        .zip(&b.vocab)
        .enumerate()
        .filter(|(_, (x, y))| x.0 != y.0 || ulps(x.1, y.1) > 4)
        .take(5)
        .collect();
    assert!(diff.is_empty(), "pieces and scores (digit-comma penalty included) differ: {diff:?}");
    assert_eq!(a.steps, b.steps);
    assert_eq!(a.precompiled, b.precompiled);
    assert_eq!(
        (a.unk_id, a.cls_id, a.sep_id, a.pad_id, a.pretok, a.replacement),
        (b.unk_id, b.cls_id, b.sep_id, b.pad_id, b.pretok, b.replacement)
    );
    assert_eq!(a.added, b.added);
    let _ = TokenizerMode::Fast;
}

fn fixture_section() -> Vec<u8> {
    let dir = fixture_dir();
    let v: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer.json")).expect("tokenizer.json"))
        .expect("json");
    tk::build_section(&tk::from_tokenizer_json(&v).expect("packs")).expect("builds")
}

/// The engine's `no_std` charsmap lookup against `spm_precompiled` (what `tokenizers`
/// uses): every scalar value alone, and every grapheme-sized chunk of the corpus.
#[test]
fn charsmap_lookup_matches_spm_precompiled() {
    let spec =
        tk::parse_spiece(&std::fs::read(fixture_dir().join("spiece.model")).expect("spiece.model")).expect("parses");
    let raw = spec.precompiled_charsmap;
    let peer = spm_precompiled::Precompiled::from(&raw).expect("spm_precompiled parses it");
    let ours = albert_engine::tokenizer::charsmap::Charsmap::parse(&raw).expect("engine parses it");
    let mut n = 0;
    for cp in 0..=0x10FFFFu32 {
        let Some(c) = char::from_u32(cp) else { continue };
        let mut b = [0u8; 4];
        let s = c.encode_utf8(&mut b);
        assert_eq!(ours.transform(s.as_bytes()), peer.transform(s), "U+{cp:04X}");
        n += peer.transform(s).is_some() as usize;
    }
    assert!(n > 1000, "only {n} mapped characters");
    let g = goldens();
    for case in g["cases"].as_array().expect("cases") {
        let t = case["text"].as_str().expect("text");
        for (i, _) in t.char_indices() {
            for len in 1..=8 {
                if let Some(chunk) = t.get(i..i + len) {
                    assert_eq!(ours.transform(chunk.as_bytes()), peer.transform(chunk), "{chunk:?}");
                }
            }
        }
    }
}

/// The `tokenizers` crate itself (0.19.1) on the same file agrees with the Python goldens
/// for single texts (so the Rust peer of the bench is the same reference).
#[test]
fn tokenizers_crate_agrees_with_goldens() {
    let peer = tokenizers::Tokenizer::from_file(fixture_dir().join("tokenizer.json")).expect("loads");
    let g = goldens();
    for case in g["cases"].as_array().expect("cases") {
        if case.get("pair").is_some() || case.get("max_length").is_some() {
            continue;
        }
        let t = case["text"].as_str().expect("text");
        let e = peer.encode_char_offsets(t, true).expect("encodes");
        assert_eq!(e.get_ids(), &u32s(&case["fast"]["input_ids"])[..], "{t:?}");
    }
}

#[allow(clippy::result_large_err)]
fn encode_n(tok: &Tokenizer<'_>, text: &[u8], cap: usize, ws_bytes: usize) -> Result<usize, albert_engine::Error> {
    let mut ws = OwnedWorkspace::new(ws_bytes);
    let (mut ids, mut types, mut mask, mut offs) = (vec![0; cap], vec![0; cap], vec![0; cap], vec![[0; 2]; cap]);
    let mut out = Encoding { ids: &mut ids, type_ids: &mut types, attention_mask: &mut mask, offsets: &mut offs };
    tok.encode_bytes(text, None, &EncodeOptions::default(), &mut ws.workspace(), &mut out)
}

#[test]
fn bad_input_and_small_buffers_are_errors_not_panics() {
    let section = fixture_section();
    let tok = Tokenizer::from_section(&section).expect("validates");
    // Empty input: [CLS] [SEP].
    assert_eq!(encode_n(&tok, b"", 8, 0).expect("empty"), 2);
    // Invalid UTF-8 through the byte API.
    let e = encode_n(&tok, b"ab\xffcd", 8, 8).unwrap_err();
    assert!(matches!(e, albert_engine::Error::InvalidUtf8 { offset: 2, .. }), "{e}");
    // Output shorter than the encoding: says how much is needed.
    let e = encode_n(&tok, b"hello world, hello world", 3, 64).unwrap_err();
    assert!(e.to_string().contains("output buffer"), "{e}");
    // Workspace smaller than the text.
    let long = "x".repeat(5000);
    let mut ws = OwnedWorkspace::new(10);
    let cap = 8;
    let (mut ids, mut types, mut mask, mut offs) = (vec![0; cap], vec![0; cap], vec![0; cap], vec![[0; 2]; cap]);
    let mut out = Encoding { ids: &mut ids, type_ids: &mut types, attention_mask: &mut mask, offsets: &mut offs };
    let e = tok.encode(&long, None, &EncodeOptions::default(), &mut ws.workspace(), &mut out).unwrap_err();
    assert!(matches!(e, albert_engine::Error::TokenizerCapacity { .. }), "{e}");
    // max_length below the special tokens.
    let opts = EncodeOptions { max_length: Some(1), ..EncodeOptions::default() };
    let e = tok.encode("hi", None, &opts, &mut ws.workspace(), &mut out).unwrap_err();
    assert!(matches!(e, albert_engine::Error::Truncation { .. }), "{e}");
}

#[test]
fn corrupted_sections_are_refused_or_tokenize_without_panic() {
    let spiece = std::fs::read(fixture_dir().join("spiece.model")).expect("spiece.model");
    let slow = tk::build_section(&tk::from_spiece_slow(&spiece, true, false).expect("packs")).expect("builds");
    for section in [fixture_section(), slow] {
        fuzz(&section);
    }
}

fn fuzz(section: &[u8]) {
    let mut rng = 0x2545F4914F6CDD1Du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut ws = OwnedWorkspace::new(64);
    for _ in 0..3000 {
        let mut b = section.to_vec();
        for _ in 0..4 {
            let at = (next() % b.len() as u64) as usize;
            // Most hits land in strings/tables; bias some toward the header and region table.
            let at = if next() % 3 == 0 { at % 160 } else { at };
            b[at] ^= 1 << (next() % 8);
        }
        if let Ok(tok) = Tokenizer::from_section(&b) {
            let cap = 256;
            let (mut ids, mut types, mut mask, mut offs) =
                (vec![0; cap], vec![0; cap], vec![0; cap], vec![[0; 2]; cap]);
            let mut out =
                Encoding { ids: &mut ids, type_ids: &mut types, attention_mask: &mut mask, offsets: &mut offs };
            let _ = tok.encode(
                "Héllo ``wörld'' [MASK] 1,000 ﬁ 日本",
                Some("pair  text"),
                &EncodeOptions::default(),
                &mut ws.workspace(),
                &mut out,
            );
        }
    }
    assert!(Tokenizer::from_section(&section[..100]).is_err());
}

/// Sentencepiece mode against the slow `AlbertTokenizer`'s `input_ids`, every case.
fn check_slow(what: &str, spiece: &[u8], g: &Value) -> (usize, usize) {
    let spec = tk::from_spiece_slow(spiece, true, false).expect("packs");
    let section = tk::build_section(&spec).expect("builds");
    let tok = Tokenizer::from_section(&section).expect("validates");
    let mut ws = OwnedWorkspace::new(64);
    let (mut total, mut same) = (0, 0);
    let mut shown = 0;
    for case in g["cases"].as_array().expect("cases") {
        let text = case["text"].as_str().expect("text");
        let pair = case.get("pair").and_then(Value::as_str);
        let mut opts = EncodeOptions::default();
        if let Some(ml) = case.get("max_length").and_then(Value::as_u64) {
            opts.max_length = Some(ml as usize);
            opts.truncation = match case["truncation"].as_str() {
                Some("only_first") => Truncation::OnlyFirst,
                Some("only_second") => Truncation::OnlySecond,
                _ => Truncation::LongestFirst,
            };
            opts.pad_to_max_length = case.get("padding").and_then(Value::as_bool).unwrap_or(false);
        }
        ws.reserve(text.len().max(pair.map_or(0, str::len)));
        let cap = 4 * (text.len() + pair.map_or(0, str::len)) + 8 + opts.max_length.unwrap_or(0);
        let (mut ids, mut types, mut mask, mut offs) = (vec![0; cap], vec![0; cap], vec![0; cap], vec![[0; 2]; cap]);
        let mut out = Encoding { ids: &mut ids, type_ids: &mut types, attention_mask: &mut mask, offsets: &mut offs };
        let n =
            tok.encode(text, pair, &opts, &mut ws.workspace(), &mut out).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        let want = u32s(&case["slow_input_ids"]);
        total += 1;
        if ids[..n] == want[..] {
            same += 1;
        } else if shown < 12 {
            shown += 1;
            println!(
                "SLOW MISMATCH {what} {text:?} / {pair:?} / {:?}\n  got  {:?}\n  want {:?}",
                case.get("max_length"),
                &ids[..n],
                want
            );
        }
    }
    println!("{what} sentencepiece mode: input_ids {same}/{total} identical to the slow AlbertTokenizer");
    (same, total)
}

#[test]
fn sentencepiece_mode_matches_slow_tokenizer() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let a = check_slow(
        "tokenizer fixture",
        &std::fs::read(dir.join("tokenizer/spiece.model")).expect("spiece"),
        &goldens(),
    );
    let g2: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("tokenizer/goldens_trained_pydoc.json")).expect("goldens"),
    )
    .expect("json");
    let b = check_slow("trained_pydoc", &std::fs::read(dir.join("trained_pydoc/spiece.model")).expect("spiece"), &g2);
    assert_eq!((a.0, b.0), (a.1, b.1), "sentencepiece mode differs from the slow tokenizer");
}
