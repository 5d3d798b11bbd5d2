//! Inputs the fuzz targets (`fuzz/`) found to crash the engine, kept as files and replayed
//! here: each must now give an error or a result, never a panic.
#![allow(clippy::result_large_err)] // the engine's Error, see engine/src/lib.rs

mod common;

use albert_engine::format::{self, CHECKSUM_OFFSET};
use albert_engine::tokenizer::{EncodeOptions, Encoding, NChar, Node, Workspace};
use albert_engine::{Error, Model, Tokenizer};
use common::aligned;

/// Encodes each text alone with fresh 64-slot buffers: the ids, or the error.
fn encode_each(tok: &Tokenizer<'_>, texts: &[&str]) -> Vec<Result<Vec<u32>, Error>> {
    let n = 64;
    let (mut chars, mut chars2) = (vec![NChar::EMPTY; n], vec![NChar::EMPTY; n]);
    let mut bytes = vec![0u8; 4 * n];
    let mut lattice = vec![Node::EMPTY; 4 * n + 1];
    let mut ws = Workspace { chars: &mut chars, chars2: &mut chars2, bytes: &mut bytes, lattice: &mut lattice };
    let (mut ids, mut type_ids, mut mask, mut offsets) =
        (vec![0u32; 64], vec![0u32; 64], vec![0u32; 64], vec![[0u32; 2]; 64]);
    texts
        .iter()
        .map(|text| {
            let mut out =
                Encoding { ids: &mut ids, type_ids: &mut type_ids, attention_mask: &mut mask, offsets: &mut offsets };
            let k = tok.encode_bytes(text.as_bytes(), None, &EncodeOptions::default(), &mut ws, &mut out)?;
            Ok(ids[..k].to_vec())
        })
        .collect()
}

/// `blob` target, 2026-11-26: a re-sealed blob whose tokenizer trie has a leaf (no
/// children) with a `first` index far past the node table. Validation accepts leaves
/// whatever their `first`; the lookup sliced the label table from it and panicked.
#[test]
fn trie_leaf_with_a_wild_first_child_index() {
    // The file as the fuzzer mutated it; the target re-seals it (file size, checksum) so
    // that the checks behind the checksum see the mutation, and so does this test.
    let mut bytes = include_bytes!("data/fuzz-blob-trie-leaf.albq").to_vec();
    let len = bytes.len() as u64;
    bytes[32..40].copy_from_slice(&len.to_le_bytes());
    let crc = format::checksum(&bytes);
    bytes[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    let a = aligned(&bytes);
    let m = Model::from_bytes(&bytemuck::cast_slice(&a)[..bytes.len()]).expect("the re-sealed blob is valid");
    let tok = Tokenizer::from_section(m.blob().tokenizer_section().expect("has a tokenizer")).expect("section valid");
    let _ = encode_each(&tok, &["Hello world", "The quick brown fox.", "a", "ÀÉÎ õü — 東京"]);
}

/// `spiece` target, 2026-11-28: a `spiece.model` whose trainer spec says `unk_id: -1`
/// (read as u32::MAX, the section's "none") packed into a sentencepiece-mode section; the
/// engine then emitted id 4294967295 for unknown text, outside the vocabulary. Here the
/// fixture's sentencepiece section with its unknown id removed: text that needs the
/// unknown piece must be an error, everything else ids inside the vocabulary.
#[test]
fn sentencepiece_mode_without_an_unknown_piece_never_emits_an_outside_id() {
    let mut section = common::TOKENIZER_SP.to_vec();
    section[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
    let tok = Tokenizer::from_section(&section).expect("a section without an unknown piece loads");
    let texts = ["Hello world", "東京 ☃", "<unk> x", "12,345, 6,", "a"];
    let mut errors = 0;
    for (text, got) in texts.iter().zip(encode_each(&tok, &texts)) {
        match got {
            Ok(ids) => assert!(ids.iter().all(|&id| id < tok.vocab_size()), "{text:?}: {ids:?}"),
            Err(e) => {
                assert!(e.to_string().contains("unk_id"), "{text:?}: {e}");
                errors += 1;
            }
        }
    }
    assert!(errors > 0, "no text needed the unknown piece: the test checks nothing");
}
