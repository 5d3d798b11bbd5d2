//! Damaged blobs, systematically: every single-bit flip of the header and the section
//! table, truncation at every section boundary, sizes that overflow, offsets past the end or
//! misaligned, sections and tensors sharing bytes. Each must give an error (naming the field
//! where the format has one), never a panic or a model that silently means something else.
#![allow(clippy::result_large_err)] // the engine's Error, see engine/src/lib.rs

mod common;

use albert_engine::config::{Activation, ModelConfig};
use albert_engine::format::{self, ALIGN, CHECKSUM_OFFSET, HEADER_SIZE, SECTION_ENTRY_SIZE, section};
use albert_engine::{Error, Model, Tokenizer};
use common::{TOKENIZER_FAST as TOKENIZER, aligned};

/// The common test blob, built once per process and copied: each test edits its own copy,
/// and under Miri a build costs seconds of the interpreter's clock (most of this file's
/// Miri time went to rebuilding it for every edit).
fn blob() -> Vec<u8> {
    static BLOB: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BLOB.get_or_init(common::blob).clone()
}

/// What a caller sees of a blob that loads: its config, labels and tokenizer section.
#[derive(Debug, PartialEq)]
struct Loaded {
    config: ModelConfig,
    labels: Vec<String>,
    tokenizer: Option<Vec<u8>>,
}

/// Loads `bytes` as a model and, when it carries one, its tokenizer: the whole of what a
/// host does with a blob before the first input.
fn load(bytes: &[u8]) -> Result<Loaded, Error> {
    let a = aligned(bytes);
    let m = Model::from_bytes(&bytemuck::cast_slice(&a)[..bytes.len()])?;
    let tokenizer = m.blob().tokenizer_section();
    if let Some(t) = tokenizer {
        Tokenizer::from_section(t)?;
    }
    Ok(Loaded {
        config: *m.config(),
        labels: (0..m.blob().label_count()).map(|i| m.label(i).unwrap_or("?").to_string()).collect(),
        tokenizer: tokenizer.map(<[u8]>::to_vec),
    })
}

/// Recomputes the checksum after an edit, so that the check under test is the one that fires.
fn reseal(b: &mut [u8]) {
    let crc = format::checksum(b);
    b[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// The section table: (entry offset, kind, data offset, data length).
fn sections(b: &[u8]) -> Vec<(usize, u32, u64, u64)> {
    (0..u32_at(b, 20) as usize)
        .map(|i| {
            let at = HEADER_SIZE + i * SECTION_ENTRY_SIZE;
            (at, u32_at(b, at), u64_at(b, at + 8), u64_at(b, at + 16))
        })
        .collect()
}

fn entry_of(b: &[u8], kind: u32) -> usize {
    sections(b).iter().find(|s| s.1 == kind).expect("section present").0
}

/// Bit positions to flip: all eight, or (under Miri, where a load costs seconds) one.
fn bits() -> Vec<u8> {
    if cfg!(miri) { vec![0x10] } else { (0..8).map(|b| 1 << b).collect() }
}

/// Bytes to damage among `0..end`: all of them, or under Miri (which checks the unsafe
/// views for undefined behaviour, not the coverage the normal run gives, and takes about
/// a minute per load that gets past the checksum) two: `section_count` and the first
/// section entry's `kind`.
fn positions(end: usize) -> Vec<usize> {
    if cfg!(miri) { vec![20, HEADER_SIZE] } else { (0..end).collect() }
}

/// Where the header field holding byte `at` starts.
fn header_field_start(at: usize) -> usize {
    match at {
        24..40 => at & !7,
        _ => at & !3,
    }
}

/// The header's named fields, by byte offset: the name a `BadField` carries.
fn header_field(at: usize) -> &'static str {
    match at {
        0..8 => "magic",
        8..12 => "format_version",
        12..16 => "flags",
        16..20 => "header_size",
        20..24 => "section_count",
        24..32 => "section_table_offset",
        32..40 => "file_size",
        40..44 => "checksum",
        44..64 => "reserved",
        _ => "config",
    }
}

#[test]
fn the_test_blob_loads_with_every_section() {
    let b = blob();
    let l = load(&b).expect("undamaged blob loads");
    assert_eq!(l.labels, ["negative", "neutral", "positive"]);
    assert_eq!(l.tokenizer.as_deref(), Some(TOKENIZER));
    let kinds: Vec<u32> = sections(&b).iter().map(|s| s.1).collect();
    assert_eq!(
        kinds,
        [section::TENSOR_INDEX, section::STRINGS, section::TENSOR_DATA, section::LABELS, section::TOKENIZER]
    );
}

/// With the stored checksum, every flip of a header or table byte is refused: by the
/// check of the field itself where it comes before the checksum, by the checksum after.
#[test]
fn every_header_and_section_table_flip_is_rejected() {
    let b = blob();
    let end = HEADER_SIZE + sections(&b).len() * SECTION_ENTRY_SIZE;
    let mut checked = 0;
    for at in positions(end) {
        for bit in bits() {
            let mut d = b.clone();
            d[at] ^= bit;
            let e = load(&d).expect_err(&format!("flip of bit {bit:#x} at byte {at} accepted"));
            let ok = match header_field(at) {
                "magic" => matches!(e, Error::BadMagic { .. }),
                "format_version" => matches!(e, Error::UnsupportedVersion { .. }),
                "header_size" => matches!(e, Error::BadField { field: "header_size", offset: 16, .. }),
                // Bit 0 (int8 weights) is a valid flag: only the checksum sees it flip.
                "flags" => matches!(e, Error::BadField { field: "flags", offset: 12, .. } | Error::Checksum { .. }),
                "file_size" => {
                    matches!(e, Error::Truncated { .. } | Error::BadField { field: "file_size", offset: 32, .. })
                }
                _ => matches!(e, Error::Checksum { .. }),
            };
            assert!(ok, "flip of bit {bit:#x} at byte {at} ({}): unexpected error {e}", header_field(at));
            checked += 1;
        }
    }
    assert_eq!(checked, positions(end).len() * bits().len());
}

/// The same flips behind a valid checksum (a blob damaged before it was sealed, or loaded
/// without verifying it): the structural checks must refuse each one, naming the field, or
/// the flip must be one of the few a valid blob allows, and then the loaded model shows it.
#[test]
fn every_header_and_section_table_flip_behind_a_valid_checksum_is_named_or_harmless() {
    let b = blob();
    let orig = load(&b).unwrap();
    let table = sections(&b);
    let end = HEADER_SIZE + table.len() * SECTION_ENTRY_SIZE;
    let mut failures = Vec::new();
    let mut harmless = 0;
    let at_all = positions(end);
    for &at in &at_all {
        if (CHECKSUM_OFFSET..CHECKSUM_OFFSET + 4).contains(&at) {
            continue; // resealing rewrites it; the test above covers it
        }
        for bit in bits() {
            let mut d = b.clone();
            d[at] ^= bit;
            reseal(&mut d);
            let verdict = match load(&d) {
                Err(e) => named(&b, at, &e).map_err(|why| format!("{why}: {e}")),
                Ok(l) => harmless_flip(&b, &d, at, &orig, &l).map(|()| harmless += 1),
            };
            if let Err(why) = verdict {
                failures.push(format!("bit {bit:#x} at byte {at}: {why}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} flips mishandled:\n{}", failures.len(), failures.join("\n"));
    // Keep the allowance honest: the harmless cases are the exception.
    let flips =
        at_all.iter().filter(|&&at| !(CHECKSUM_OFFSET..CHECKSUM_OFFSET + 4).contains(&at)).count() * bits().len();
    eprintln!("{harmless} of {flips} flips accepted as harmless");
    assert!(harmless * 10 < flips, "{harmless} flips accepted");
}

/// Whether error `e` for a flip at byte `at` of blob `b` names the damaged field.
fn named(b: &[u8], at: usize, e: &Error) -> Result<(), &'static str> {
    use Error::*;
    let end = HEADER_SIZE + sections(b).len() * SECTION_ENTRY_SIZE;
    let ok = if at < 64 {
        let f = header_field(at);
        match f {
            "magic" => matches!(e, BadMagic { .. }),
            "format_version" => matches!(e, UnsupportedVersion { .. }),
            "file_size" => matches!(e, Truncated { .. } | BadField { field: "file_size", .. }),
            // A count that takes in zeroed bytes after the table reads entries at offset 0
            // (inside the header); a smaller one loses required sections.
            "section_count" => {
                matches!(e, BadField { field: "section_count", .. } | Overlap { .. } | MissingSection { .. })
            }
            "reserved" => matches!(e, BadField { field: "reserved", offset, .. } if *offset as usize == at),
            _ => {
                matches!(e, BadField { field, offset, .. } if *field == f && *offset as usize == header_field_start(at))
            }
        }
    } else if at < HEADER_SIZE {
        let word = (at - 64) / 4;
        let config_field = |name: &str| matches!(e, BadConfig { field, .. } if *field == name);
        match word {
            // Dimensions: out of range or disagreeing with the tensors.
            0 => config_field("vocab_size") || matches!(e, ShapeMismatch { .. }),
            1 => config_field("embedding_size") || matches!(e, ShapeMismatch { .. }),
            2 => {
                config_field("hidden_size") || config_field("num_attention_heads") || matches!(e, ShapeMismatch { .. })
            }
            3 => config_field("num_hidden_layers"),
            // groups × inner is checked as `num_hidden_groups`; more layers lack tensors.
            4 => config_field("num_hidden_groups") || matches!(e, MissingTensor { .. }),
            5 => {
                config_field("inner_group_num")
                    || config_field("num_hidden_groups")
                    || matches!(e, MissingTensor { .. })
            }
            6 => config_field("num_attention_heads"),
            7 => config_field("intermediate_size") || matches!(e, ShapeMismatch { .. }),
            8 => config_field("max_position_embeddings") || matches!(e, ShapeMismatch { .. }),
            9 => config_field("type_vocab_size") || matches!(e, ShapeMismatch { .. }),
            10 => matches!(e, BadField { field: "hidden_act", .. }),
            11 => config_field("layer_norm_eps"),
            12 => {
                config_field("num_labels")
                    || matches!(e, ShapeMismatch { .. } | BadField { field: "LABELS length", .. })
            }
            13 => {
                config_field("heads")
                    || config_field("num_labels")
                    || matches!(e, MissingTensor { .. } | UnknownTensor { .. })
            }
            14 => matches!(e, BadField { field: "weight_dtype" | "flags", .. }) || config_field("activation_scheme"),
            15 => config_field("pad_token_id"),
            16 => config_field("bos_token_id"),
            17 => config_field("eos_token_id"),
            18 => config_field("activation_scheme"),
            _ => matches!(e, BadField { field: "reserved config word", offset, .. } if *offset as usize == at & !3),
        }
    } else {
        let entry = (at - HEADER_SIZE) / SECTION_ENTRY_SIZE;
        let base = HEADER_SIZE + entry * SECTION_ENTRY_SIZE;
        let kind = u32_at(b, base);
        let tokenizer = kind == section::TOKENIZER;
        match at - base {
            // A kind made equal to another entry's is reported at whichever of the two
            // comes second: nothing tells which one is damaged.
            0..4 => {
                matches!(e, UnknownRequiredSection { offset, .. } if *offset as usize == base)
                    || matches!(e, BadField { field: "section kind", offset, .. } if (*offset as usize) < end)
                    || matches!(e, MissingSection { .. })
            }
            4..8 => matches!(e, BadField { field: "section flags", offset, .. } if *offset as usize == base + 4),
            8..16 => {
                matches!(e, Misaligned { what: "section", .. } | OutOfBounds { what: "section", .. } | Overlap { .. })
            }
            16..24 => {
                matches!(e, OutOfBounds { what: "section", .. } | Overlap { .. })
                    // What lies in the section no longer fits: named by the section's
                    // own content checks.
                    || match kind {
                        section::TENSOR_INDEX => {
                            matches!(e, BadField { field: "TENSOR_INDEX length", .. } | MissingTensor { .. })
                        }
                        section::STRINGS => {
                            matches!(e, BadTensorName { .. } | BadField { field: "label string", .. })
                        }
                        section::TENSOR_DATA => {
                            matches!(e, OutOfBounds { what: "tensor data" | "tensor scales", .. })
                        }
                        section::LABELS => matches!(e, BadField { field: "LABELS length", .. }),
                        _ => tokenizer && matches!(e, BadTokenizer { .. } | Truncated { .. } | OutOfBounds { .. }),
                    }
            }
            _ => matches!(e, BadField { field: "section reserved", offset, .. } if *offset as usize == base + 24),
        }
    };
    if ok { Ok(()) } else { Err("error does not name the flipped field") }
}

/// The flips a valid blob allows, each checked to show in what the model reports: a
/// different iteration count, epsilon, activation or special-token id; the `required` bit
/// of a known section (which only matters for unknown kinds); an optional section turned
/// into an unknown optional kind or dropped from the end of the table (readers skip those:
/// the model then lacks it); a section length changed only within its alignment padding.
fn harmless_flip(b: &[u8], d: &[u8], at: usize, orig: &Loaded, l: &Loaded) -> Result<(), String> {
    let same_but = |cfg: ModelConfig| {
        if l.config == cfg && l.labels == orig.labels && l.tokenizer == orig.tokenizer {
            Ok(())
        } else {
            Err(format!("accepted, but the model changed beyond the flipped field: {l:?}"))
        }
    };
    let word = |i: usize| u32_at(d, 64 + 4 * i);
    if (64..HEADER_SIZE).contains(&at) {
        let mut c = orig.config;
        match (at - 64) / 4 {
            3 => c.num_hidden_layers = word(3),
            6 => c.num_attention_heads = word(6),
            10 => c.hidden_act = Activation::from_code(word(10)).ok_or("bad activation accepted")?,
            11 => c.layer_norm_eps = f32::from_bits(word(11)),
            15 => c.pad_token_id = word(15),
            16 => c.bos_token_id = word(16),
            17 => c.eos_token_id = word(17),
            w => return Err(format!("config word {w} changed and the blob still loads")),
        }
        return same_but(c);
    }
    if (20..24).contains(&at) {
        // Fewer entries: only optional sections at the end of the table may drop out.
        let n = u32_at(d, 20) as usize;
        let dropped: Vec<u32> = sections(b)[n..].iter().map(|s| s.1).collect();
        let want_labels = if dropped.contains(&section::LABELS) { vec![] } else { orig.labels.clone() };
        let want_tok = if dropped.contains(&section::TOKENIZER) { None } else { orig.tokenizer.clone() };
        return if dropped.iter().all(|&k| k == section::LABELS || k == section::TOKENIZER)
            && l.labels == want_labels
            && l.tokenizer == want_tok
            && l.config == orig.config
        {
            Ok(())
        } else {
            Err(format!("section_count {n} accepted, dropping {dropped:?}"))
        };
    }
    if at < HEADER_SIZE {
        return Err(format!("header byte {at} ({}) changed and the blob still loads", header_field(at)));
    }
    let base = HEADER_SIZE + (at - HEADER_SIZE) / SECTION_ENTRY_SIZE * SECTION_ENTRY_SIZE;
    let kind = u32_at(b, base);
    match at - base {
        0..4 => {
            let new = u32_at(d, base);
            let required = u32_at(d, base + 4) & section::REQUIRED != 0;
            let optional = kind == section::LABELS || kind == section::TOKENIZER;
            let gone = match kind {
                section::LABELS => l.labels.is_empty() && l.tokenizer == orig.tokenizer,
                _ => l.tokenizer.is_none() && l.labels == orig.labels,
            };
            if optional && !required && !(1..=5).contains(&new) && gone {
                Ok(())
            } else {
                Err(format!("section kind {kind} became {new} and the blob still loads"))
            }
        }
        4..8 => {
            let flags = u32_at(d, base + 4);
            if flags & !section::REQUIRED == 0 {
                same_but(orig.config)
            } else {
                Err(format!("flags {flags:#x} accepted"))
            }
        }
        16..24 => {
            let (off, old, new) = (u64_at(b, base + 8), u64_at(b, base + 16), u64_at(d, base + 16));
            let pad = |len: u64| (off + len).div_ceil(ALIGN as u64);
            let same_tokenizer = match (&l.tokenizer, &orig.tokenizer) {
                // A longer or shorter slice of the same bytes that still loads.
                (Some(t), Some(o)) => t[..t.len().min(o.len())] == o[..t.len().min(o.len())],
                _ => false,
            };
            if pad(old) == pad(new)
                && l.config == orig.config
                && l.labels == orig.labels
                && (l.tokenizer == orig.tokenizer || (kind == section::TOKENIZER && same_tokenizer))
            {
                Ok(())
            } else {
                Err(format!("section {kind} length {old} became {new} and the blob still loads"))
            }
        }
        r => Err(format!("section {kind} entry byte {r} changed and the blob still loads")),
    }
}

#[test]
fn truncation_at_every_section_boundary_is_an_error() {
    let b = blob();
    let mut cuts = vec![0, 1, 7, 8, 63, 64, HEADER_SIZE - 1, HEADER_SIZE];
    for (at, _, off, len) in sections(&b) {
        cuts.extend([at, at + SECTION_ENTRY_SIZE - 1, at + SECTION_ENTRY_SIZE]);
        for x in [off, off + len] {
            let x = x as usize;
            cuts.extend([x.saturating_sub(1), x, x + 1]);
        }
    }
    cuts.retain(|&c| c < b.len());
    cuts.sort_unstable();
    cuts.dedup();
    for cut in cuts {
        let e = load(&b[..cut]).expect_err(&format!("blob cut at {cut} accepted"));
        assert!(matches!(e, Error::Truncated { .. } | Error::BadMagic { .. }), "cut at {cut}: {e}");
        if cut < HEADER_SIZE {
            continue;
        }
        // The same cut with file_size and checksum made to agree: what lies past the end is
        // what must be refused.
        let mut d = b[..cut].to_vec();
        put64(&mut d, 32, cut as u64);
        reseal(&mut d);
        let e = load(&d).expect_err(&format!("resealed blob cut at {cut} accepted"));
        assert!(
            matches!(e, Error::OutOfBounds { what: "section" | "section table", limit, .. } if limit == cut as u64),
            "resealed cut at {cut}: {e}"
        );
    }
}

/// Applies `edit` to a copy of the blob, reseals it and returns the load error.
fn edited(edit: impl FnOnce(&mut Vec<u8>)) -> Error {
    let mut d = blob();
    edit(&mut d);
    reseal(&mut d);
    load(&d).expect_err("edited blob accepted")
}

/// The offset of the first tensor entry's field `f` (bytes into its 64-byte entry).
fn tensor_field(b: &[u8], f: usize) -> usize {
    sections(b)[0].2 as usize + f
}

#[test]
fn sizes_that_overflow_are_refused() {
    // Section end past u64::MAX, and exactly wrapping to 0.
    for len in [u64::MAX, u64::MAX - 63] {
        let e = edited(|d| {
            let at = entry_of(d, section::LABELS);
            put64(d, at + 16, len);
        });
        assert!(matches!(e, Error::OutOfBounds { what: "section", len: l, .. } if l == len), "{e}");
    }
    let e = edited(|d| d[20..24].copy_from_slice(&u32::MAX.to_le_bytes()));
    assert!(matches!(e, Error::BadField { field: "section_count", offset: 20, .. }), "{e}");
    // Tensor data length and scale length wrapping past the end of the address space.
    let e = edited(|d| {
        let at = tensor_field(d, 40);
        put64(d, at, u64::MAX);
    });
    assert!(matches!(e, Error::BadTensorEncoding { detail, .. } if detail.contains("data length")), "{e}");
    let e = edited(|d| {
        let at = tensor_field(d, 48);
        put64(d, at, u64::MAX - 63);
    });
    assert!(matches!(e, Error::OutOfBounds { what: "tensor scales", .. }), "{e}");
    // Four u32::MAX dimensions: their product overflows u64 (regression: it used to be
    // multiplied unchecked).
    let e = edited(|d| {
        let at = tensor_field(d, 16);
        d[at - 5] = 4; // ndim
        for k in 0..4 {
            d[at + 4 * k..at + 4 * k + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        }
    });
    assert!(matches!(e, Error::BadTensorEncoding { detail, .. } if detail.contains("data length")), "{e}");
    // A name offset at the end of u32 (past usize on 32-bit targets when the length is added).
    let e = edited(|d| {
        let at = tensor_field(d, 0);
        d[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    });
    assert!(matches!(e, Error::BadTensorName { entry: 0, .. }), "{e}");
}

#[test]
fn offsets_past_the_end_are_refused() {
    let len = blob().len() as u64;
    for kind in [section::TENSOR_INDEX, section::STRINGS, section::TENSOR_DATA, section::LABELS, section::TOKENIZER] {
        let e = edited(|d| {
            let at = entry_of(d, kind);
            put64(d, at + 8, len.div_ceil(64) * 64 + 64);
        });
        assert!(matches!(e, Error::OutOfBounds { what: "section", limit, .. } if limit == len), "kind {kind}: {e}");
    }
    let e = edited(|d| {
        let at = tensor_field(d, 32);
        put64(d, at, len.div_ceil(64) * 64);
    });
    assert!(matches!(e, Error::OutOfBounds { what: "tensor data", .. }), "{e}");
    let e = edited(|d| {
        let at = tensor_field(d, 48);
        put64(d, at, len.div_ceil(64) * 64);
    });
    assert!(matches!(e, Error::OutOfBounds { what: "tensor scales", .. }), "{e}");
}

#[test]
fn misaligned_offsets_are_refused() {
    for shift in [1u64, 4, 8, 32] {
        for kind in [section::TENSOR_INDEX, section::STRINGS, section::TENSOR_DATA, section::LABELS] {
            let e = edited(|d| {
                let at = entry_of(d, kind);
                let off = u64_at(d, at + 8);
                put64(d, at + 8, off + shift);
            });
            assert!(matches!(e, Error::Misaligned { what: "section", align: 64, .. }), "kind {kind} +{shift}: {e}");
        }
        for (field, what) in [(32, "tensor data"), (48, "tensor scales")] {
            let e = edited(|d| {
                let at = tensor_field(d, field);
                let off = u64_at(d, at);
                put64(d, at, off + shift);
            });
            assert!(matches!(e, Error::Misaligned { what: w, .. } if w == what), "{what} +{shift}: {e}");
        }
    }
}

#[test]
fn a_section_table_pointing_twice_at_the_same_bytes_is_refused() {
    let b = blob();
    let t = sections(&b);
    // Every pair of sections made to share the first one's bytes (under Miri, the pairs with
    // the first section: each edit reseals and loads the whole blob, 7 s of Miri's clock).
    for i in 0..t.len() {
        for j in 0..t.len() {
            if i == j || (cfg!(miri) && i != 0 && j != 0) {
                continue;
            }
            let e = edited(|d| {
                put64(d, t[j].0 + 8, t[i].2);
                put64(d, t[j].0 + 16, t[i].3);
            });
            assert!(matches!(e, Error::Overlap { what: "section", .. }), "sections {i} and {j}: {e}");
        }
    }
    // A section overlapping only the start of the next one.
    let e = edited(|d| {
        let len = t[1].2 - t[0].2 + 64;
        put64(d, t[0].0 + 16, len);
    });
    assert!(matches!(e, Error::Overlap { what: "section", .. }), "{e}");
    // A section over the header or the section table.
    for off in [0u64, 256] {
        let e = edited(|d| put64(d, t[3].0 + 8, off));
        assert!(matches!(e, Error::Overlap { what: "section (with header or section table)", .. }), "{off}: {e}");
    }
    // Two tensors over the same bytes.
    let e = edited(|d| {
        let first = u64_at(d, tensor_field(d, 32));
        let at = tensor_field(d, 64 + 32);
        put64(d, at, first);
    });
    assert!(matches!(e, Error::Overlap { .. } | Error::BadTensorEncoding { .. }), "{e}");
    // The last tensor's entry made the first one's but for the name (the same shape and
    // bytes, so only the overlap can refuse it), and the last tensor given the first one's
    // name.
    let b = blob();
    let last = (sections(&b)[0].3 as usize / 64 - 1) * 64;
    let e = edited(|d| {
        let (from, to) = (tensor_field(d, 0), tensor_field(d, last));
        d.copy_within(from + 8..from + 64, to + 8);
    });
    assert!(matches!(e, Error::Overlap { what: "tensor data (shared with an earlier tensor)", .. }), "{e}");
    let e = edited(|d| {
        let (from, to) = (tensor_field(d, 0), tensor_field(d, last));
        d.copy_within(from..from + 8, to);
    });
    assert!(
        matches!(&e, Error::DuplicateTensor { name } if name.as_str() == "embeddings.word_embeddings.weight"),
        "{e}"
    );
}

#[test]
fn unknown_sections_are_skipped_only_when_optional() {
    let e = edited(|d| {
        let at = entry_of(d, section::LABELS);
        d[at..at + 4].copy_from_slice(&77u32.to_le_bytes());
        d[at + 4..at + 8].copy_from_slice(&section::REQUIRED.to_le_bytes());
    });
    assert!(matches!(e, Error::UnknownRequiredSection { kind: 77, .. }), "{e}");
    let mut d = blob();
    let at = entry_of(&d, section::LABELS);
    d[at..at + 4].copy_from_slice(&77u32.to_le_bytes());
    reseal(&mut d);
    let l = load(&d).expect("an unknown optional section is skipped");
    assert!(l.labels.is_empty());
}

#[test]
fn reserved_fields_must_be_zero() {
    for at in [44usize, 50, 63] {
        let e = edited(|d| d[at] = 1);
        assert!(matches!(e, Error::BadField { field: "reserved", offset, .. } if offset as usize == at), "{e}");
    }
    let e = edited(|d| d[64 + 4 * 30] = 1);
    assert!(matches!(e, Error::BadField { field: "reserved config word", offset: 184, .. }), "{e}");
    let e = edited(|d| {
        let at = entry_of(d, section::STRINGS) + 24;
        d[at] = 1;
    });
    assert!(matches!(e, Error::BadField { field: "section reserved", .. }), "{e}");
    let e = edited(|d| {
        let at = tensor_field(d, 12);
        d[at] = 1;
    });
    assert!(matches!(e, Error::BadTensorEncoding { detail, .. } if detail.contains("reserved")), "{e}");
}
