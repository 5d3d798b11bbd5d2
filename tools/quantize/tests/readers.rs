//! `quantize`'s readers on damaged and hostile files: each gives an error, and none sizes
//! an allocation from a number in the file before checking it against the file's length
//! (a test that allocated terabytes would abort instead of failing politely).

use std::collections::BTreeMap;

use albert_engine::config::DType;
use albert_engine::format::write::TensorData;
use albert_quantize::checkpoint::{self, Task, Tensor};
use albert_quantize::pack::{self, PackOptions};
use albert_quantize::tokenizer as tk;

fn err_text<T: std::fmt::Debug>(r: anyhow::Result<T>) -> String {
    format!("{:#}", r.expect_err("hostile input accepted"))
}

#[test]
fn safetensors_header_length_beyond_the_file_is_refused() {
    for declared in [1u64 << 40, u64::MAX, u64::MAX - 7, 9] {
        let mut bytes = declared.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{}      ");
        let e = err_text(checkpoint::read_safetensors(&bytes, &mut BTreeMap::new()));
        assert!(e.contains("safetensors"), "{e}");
    }
    assert!(checkpoint::read_safetensors(b"\x02\x00", &mut BTreeMap::new()).is_err());
}

#[test]
fn safetensors_tensor_extents_beyond_the_data_are_refused() {
    let header = br#"{"w":{"dtype":"F32","shape":[1000000000,1000000000],"data_offsets":[0,8]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0; 8]);
    assert!(checkpoint::read_safetensors(&bytes, &mut BTreeMap::new()).is_err());
}

#[test]
fn spiece_lengths_beyond_the_file_are_refused() {
    // Field 1 (a piece), wire type 2, with a declared length of 2^62 and of u64::MAX.
    for len in [1u64 << 62, u64::MAX] {
        let mut b = vec![0x0a];
        let mut v = len;
        while v >= 0x80 {
            b.push((v as u8) | 0x80);
            v >>= 7;
        }
        b.push(v as u8);
        b.extend_from_slice(b"abc");
        let e = err_text(tk::parse_spiece(&b));
        assert!(e.contains("protobuf"), "{e}");
    }
    // An 11-byte varint, a fixed64 cut short, an unknown wire type.
    assert!(tk::parse_spiece(&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).is_err());
    assert!(tk::parse_spiece(&[0x09, 1, 2, 3]).is_err());
    assert!(tk::parse_spiece(&[0x0f]).is_err());
}

/// The `spiece` fuzz target's 2026-11-28 finding: a trainer spec with `unk_id: -1` (or
/// any id past the pieces) packed into a tokenizer that emitted id 4294967295.
#[test]
fn spiece_unknown_id_outside_the_pieces_is_refused() {
    // Two pieces (field 1: piece string, field 3: type), then the trainer spec (field 2)
    // with model_type 1 (field 3) and unk_id (field 40, a varint) as given.
    let model = |unk: &[u8]| {
        let mut b = Vec::new();
        for piece in [&b"<unk>"[..], b"a"] {
            let mut p = vec![0x0a, piece.len() as u8];
            p.extend_from_slice(piece);
            p.extend_from_slice(&[0x18, 1]);
            b.push(0x0a);
            b.push(p.len() as u8);
            b.extend_from_slice(&p);
        }
        let mut spec = vec![0x18, 1, 0xc0, 0x02];
        spec.extend_from_slice(unk);
        b.push(0x12);
        b.push(spec.len() as u8);
        b.extend_from_slice(&spec);
        b
    };
    assert_eq!(tk::parse_spiece(&model(&[0])).expect("unk_id 0 is the first piece").unk_id, 0);
    // -1 as protobuf writes an int32: ten bytes of sign-extended varint.
    let minus_one = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
    for unk in [&minus_one[..], &[2]] {
        let e = err_text(tk::parse_spiece(&model(unk)));
        assert!(e.contains("unk_id") && e.contains("2 pieces"), "{e}");
    }
}

/// The same for `tokenizer.json`: `model.unk_id` past the vocabulary, negative or past u32
/// is refused (it was truncated to u32 before); `null` means no unknown piece.
#[test]
fn tokenizer_json_unknown_id_outside_the_vocabulary_is_refused() {
    for unk in ["2", "-1", "4294967296", "\"1\""] {
        let json =
            format!(r#"{{"model": {{"type": "Unigram", "vocab": [["<unk>", 0.0], ["a", -1.0]], "unk_id": {unk}}}}}"#);
        let e = err_text(tk::from_tokenizer_json_bytes(json.as_bytes()));
        assert!(e.contains("unk_id"), "{unk}: {e}");
    }
}

#[test]
fn tokenizer_json_that_is_not_albert_is_refused() {
    for text in [&b""[..], b"[]", b"{\"model\": 5}", b"{\"model\": {\"type\": \"BPE\"}}", b"\xff\xfe"] {
        assert!(tk::from_tokenizer_json_bytes(text).is_err(), "{}", String::from_utf8_lossy(text));
    }
}

fn tensor(shape: &[usize]) -> Tensor {
    Tensor { shape: shape.to_vec(), values: vec![0.0; shape.iter().product()] }
}

/// Regression (found while auditing for the fuzz targets): the label table was sized from
/// `classifier.weight`'s first dimension before the config was validated, and a tensor with
/// a zero-width second dimension holds no data that would bound it.
#[test]
fn classifier_rows_are_checked_before_the_label_table_is_sized() {
    let cfg = checkpoint::parse_config_json(br#"{"model_type": "albert"}"#).unwrap();
    for shape in [&[4_000_000_000usize, 0][..], &[3_000_000, 1], &[0, 8], &[5], &[2, 2, 2]] {
        let mut t = BTreeMap::new();
        t.insert("pooler.weight".to_string(), tensor(&[4, 4]));
        t.insert("classifier.weight".to_string(), Tensor { shape: shape.to_vec(), values: Vec::new() });
        let e = err_text(checkpoint::from_parts(&cfg, t, Some(Task::SequenceClassification)));
        assert!(e.contains("classifier.weight"), "{shape:?}: {e}");
    }
}

#[test]
fn config_json_values_of_the_wrong_kind_are_errors() {
    for json in [
        &br#"[1, 2]"#[..],
        br#"{"hidden_size": -1}"#,
        br#"{"hidden_size": 1e99}"#,
        br#"{"vocab_size": 99999999999}"#,
        br#"{"layer_norm_eps": "small"}"#,
        br#"{"hidden_act": 3}"#,
    ] {
        let r = checkpoint::parse_config_json(json)
            .and_then(|cfg| checkpoint::from_parts(&cfg, BTreeMap::new(), Some(Task::Model)));
        assert!(r.is_err(), "{} accepted", String::from_utf8_lossy(json));
    }
    // id2label keys that are not class indices, or past the classifier's rows.
    let mut t = BTreeMap::new();
    t.insert("pooler.weight".to_string(), tensor(&[4, 4]));
    t.insert("classifier.weight".to_string(), tensor(&[2, 4]));
    for labels in [r#"{"x": "a"}"#, r#"{"99999999999999999999": "a"}"#, r#"{"2": "a"}"#, r#"{"0": 1}"#] {
        let json = format!(r#"{{"hidden_size": 4, "num_attention_heads": 1, "id2label": {labels}}}"#);
        let cfg = checkpoint::parse_config_json(json.as_bytes()).unwrap();
        let e = err_text(checkpoint::from_parts(&cfg, t.clone(), Some(Task::SequenceClassification)));
        assert!(e.contains("id2label"), "{labels}: {e}");
    }
}

/// Regression: an int8 matrix with a zero dimension and billions of rows made the blob
/// writer reserve a scale per claimed row (16 GB) before the engine could refuse the shape.
#[test]
fn empty_tensors_are_refused_before_anything_is_sized_from_them() {
    let header = br#"{"classifier.weight":{"dtype":"F32","shape":[4000000000,0],"data_offsets":[0,0]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    let e = err_text(checkpoint::read_safetensors(&bytes, &mut BTreeMap::new()));
    assert!(e.contains("zero dimension"), "{e}");
    // The same shape handed to the writer directly (as a library caller could): what it
    // reserves follows the values, not the claimed rows (an overcommitting OS would hand
    // out the 16 GB without complaint, so the capacity is what shows it).
    let t = TensorData::i8_per_row("encoder.embedding_hidden_mapping_in.weight", &[4_000_000_000, 0], &[]);
    assert!(t.scales.as_ref().is_some_and(|s| s.capacity() <= 1), "{:?}", t.scales.map(|s| s.capacity()));
    // And the packer refuses it.
    let cfg = checkpoint::parse_config_json(
        br#"{"vocab_size": 6, "embedding_size": 2, "hidden_size": 4, "num_attention_heads": 1,
            "intermediate_size": 4, "max_position_embeddings": 4}"#,
    )
    .unwrap();
    let mut t = BTreeMap::new();
    t.insert(
        "encoder.embedding_hidden_mapping_in.weight".to_string(),
        Tensor { shape: vec![4_000_000_000, 0], values: vec![] },
    );
    let ck = checkpoint::from_parts(&cfg, t, Some(Task::Model)).unwrap();
    assert!(pack::pack_with(&ck, &PackOptions::plain(DType::I8)).is_err());
}
