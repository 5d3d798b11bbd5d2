//! Every way a blob can be damaged gives an error naming what and where, never a panic.
#![allow(clippy::result_large_err)] // the engine's Error, see engine/src/lib.rs

use albert_engine::config::{Activation, DType, Heads, ModelConfig};
use albert_engine::format::write::{BlobWriter, TensorData};
use albert_engine::format::{self, CHECKSUM_OFFSET};
use albert_engine::{Error, Inputs, Model};

fn config(dtype: DType) -> ModelConfig {
    ModelConfig {
        vocab_size: 20,
        embedding_size: 4,
        hidden_size: 8,
        num_hidden_layers: 3,
        num_hidden_groups: 1,
        inner_group_num: 1,
        num_attention_heads: 2,
        intermediate_size: 12,
        max_position_embeddings: 10,
        type_vocab_size: 2,
        hidden_act: Activation::GeluNew,
        layer_norm_eps: 1e-12,
        num_labels: 0,
        heads: Heads(Heads::POOLER),
        weight_dtype: dtype,
        pad_token_id: 0,
        bos_token_id: 2,
        eos_token_id: 3,
        activation_scheme: (dtype == DType::I8) as u32,
    }
}

fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}

/// A complete tiny model: the tensors `Weights::load` asks for.
fn writer(dtype: DType) -> BlobWriter {
    let c = config(dtype);
    let mut w = BlobWriter::new(c);
    let (v, e, h, i) = (20, 4, 8, 12);
    let mut seed = 0;
    let mut mat = |w: &mut BlobWriter, name: &str, r: u32, k: u32| {
        seed += 1;
        let x = values((r * k) as usize, seed);
        w.tensors.push(match dtype {
            DType::F32 => TensorData::f32(name, &[r, k], &x),
            DType::F16 => TensorData::f16(name, &[r, k], &x),
            DType::I8 => TensorData::i8_per_row(name, &[r, k], &x),
        });
    };
    let vec =
        |w: &mut BlobWriter, name: &str, n: u32| w.tensors.push(TensorData::f32(name, &[n], &values(n as usize, n)));
    mat(&mut w, "embeddings.word_embeddings.weight", v, e);
    mat(&mut w, "embeddings.position_embeddings.weight", 10, e);
    mat(&mut w, "embeddings.token_type_embeddings.weight", 2, e);
    vec(&mut w, "embeddings.LayerNorm.weight", e);
    vec(&mut w, "embeddings.LayerNorm.bias", e);
    mat(&mut w, "encoder.embedding_hidden_mapping_in.weight", h, e);
    vec(&mut w, "encoder.embedding_hidden_mapping_in.bias", h);
    let p = "encoder.albert_layer_groups.0.albert_layers.0";
    for (n, r, k) in [
        ("attention.query", h, h),
        ("attention.key", h, h),
        ("attention.value", h, h),
        ("attention.dense", h, h),
        ("ffn", i, h),
        ("ffn_output", h, i),
    ] {
        mat(&mut w, &format!("{p}.{n}.weight"), r, k);
        vec(&mut w, &format!("{p}.{n}.bias"), r);
    }
    for n in ["attention.LayerNorm", "full_layer_layer_norm"] {
        vec(&mut w, &format!("{p}.{n}.weight"), h);
        vec(&mut w, &format!("{p}.{n}.bias"), h);
    }
    mat(&mut w, "pooler.weight", h, h);
    vec(&mut w, "pooler.bias", h);
    w
}

/// An 8-byte aligned copy of `bytes`.
fn aligned(bytes: &[u8]) -> Vec<u64> {
    let mut v = vec![0u64; bytes.len().div_ceil(8)];
    bytemuck::cast_slice_mut::<u64, u8>(&mut v)[..bytes.len()].copy_from_slice(bytes);
    v
}

fn load(bytes: &[u8]) -> Result<(), Error> {
    let a = aligned(bytes);
    Model::from_bytes(&bytemuck::cast_slice(&a)[..bytes.len()]).map(|_| ())
}

/// Re-seals the checksum after an edit, so the check under test is the one that fires.
fn reseal(b: &mut [u8]) {
    let crc = format::checksum(b);
    b[CHECKSUM_OFFSET..CHECKSUM_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn valid_blobs_load_and_run_in_every_dtype() {
    for dtype in [DType::F32, DType::F16, DType::I8] {
        let bytes = writer(dtype).to_bytes();
        let a = aligned(&bytes);
        let m = Model::from_bytes(&bytemuck::cast_slice(&a)[..bytes.len()]).unwrap();
        let ids = [2u32, 5, 7, 3];
        let mut scratch = vec![0u8; m.scratch_bytes(4, 1)];
        let enc = m.encode(&Inputs::single(&ids), &mut scratch).unwrap();
        assert!(enc.last_hidden_state().iter().all(|x| x.is_finite()));
    }
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = writer(DType::I8).to_bytes();
    // Every prefix length near structure boundaries and a sweep through the data.
    let mut lens: Vec<usize> = (0..300).collect();
    lens.extend((300..bytes.len()).step_by(97));
    lens.push(bytes.len() - 1);
    for len in lens {
        let e = load(&bytes[..len]).expect_err("truncated blob accepted");
        assert!(matches!(e, Error::Truncated { .. } | Error::BadMagic { .. }), "len {len}: unexpected error {e}");
    }
}

#[test]
fn wrong_magic_and_version() {
    let mut b = writer(DType::F32).to_bytes();
    b[0] = b'X';
    assert!(matches!(load(&b), Err(Error::BadMagic { .. })));
    let mut b = writer(DType::F32).to_bytes();
    b[8] = 2;
    reseal(&mut b);
    let e = load(&b).unwrap_err();
    assert_eq!(e, Error::UnsupportedVersion { found: 2, supported: 1 });
    assert!(e.to_string().contains("version 2"));
}

#[test]
fn any_flipped_byte_is_caught_by_the_checksum() {
    let bytes = writer(DType::I8).to_bytes();
    for at in (8..bytes.len()).step_by(53) {
        if (32..40).contains(&at) {
            continue; // file_size: caught as a size error instead
        }
        let mut b = bytes.clone();
        b[at] ^= 0x40;
        let e = load(&b).expect_err("corruption accepted");
        assert!(matches!(e, Error::Checksum { .. } | Error::UnsupportedVersion { .. }), "byte {at}: {e}");
    }
}

#[test]
fn missing_tensor_is_named() {
    let mut w = writer(DType::F32);
    w.tensors.retain(|t| t.name != "encoder.albert_layer_groups.0.albert_layers.0.ffn.bias");
    let e = load(&w.to_bytes()).unwrap_err();
    assert!(
        matches!(&e, Error::MissingTensor { name } if name.as_str() == "encoder.albert_layer_groups.0.albert_layers.0.ffn.bias"),
        "{e}"
    );
}

#[test]
fn unknown_tensor_is_named() {
    let mut w = writer(DType::F32);
    w.tensors.push(TensorData::f32("encoder.mystery.weight", &[2], &[1.0, 2.0]));
    let e = load(&w.to_bytes()).unwrap_err();
    assert!(e.to_string().contains("encoder.mystery.weight"), "{e}");
}

#[test]
fn shape_disagreeing_with_config_is_named() {
    let mut w = writer(DType::F32);
    let t = w.tensors.iter_mut().find(|t| t.name == "pooler.weight").unwrap();
    t.shape = vec![4, 16];
    let e = load(&w.to_bytes()).unwrap_err();
    assert!(
        matches!(&e, Error::ShapeMismatch { name, expected, found } if name.as_str() == "pooler.weight" && expected[..2] == [8, 8] && found[..2] == [4, 16]),
        "{e}"
    );
}

#[test]
fn config_disagreeing_with_tensors_is_caught() {
    let mut w = writer(DType::F32);
    w.config.hidden_size = 16; // heads still divide it, but every layer tensor is 8 wide
    let e = load(&w.to_bytes()).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    let mut w = writer(DType::F32);
    w.config.num_attention_heads = 3;
    assert!(matches!(load(&w.to_bytes()), Err(Error::BadConfig { field: "num_attention_heads", .. })));
}

/// int8 blobs take activation scheme 1 or 2, float blobs only 0.
#[test]
fn activation_scheme_must_match_the_weights() {
    for (dtype, scheme, ok) in [
        (DType::I8, 1, true),
        (DType::I8, 2, true),
        (DType::I8, 0, false),
        (DType::I8, 3, false),
        (DType::F32, 0, true),
        (DType::F32, 2, false),
    ] {
        let mut w = writer(dtype);
        w.config.activation_scheme = scheme;
        match load(&w.to_bytes()) {
            Ok(_) => assert!(ok, "{dtype:?} scheme {scheme} loaded"),
            Err(e) => {
                assert!(!ok, "{dtype:?} scheme {scheme}: {e}");
                assert!(matches!(e, Error::BadConfig { field: "activation_scheme", .. }), "{e}");
            }
        }
    }
}

#[test]
fn out_of_bounds_and_misaligned_offsets() {
    let bytes = writer(DType::F32).to_bytes();
    // First tensor entry lives at the TENSOR_INDEX section offset (section 0 of the table).
    let index_off = u64::from_le_bytes(bytes[256 + 8..256 + 16].try_into().unwrap()) as usize;
    let mut b = bytes.clone();
    b[index_off + 32..index_off + 40].copy_from_slice(&(bytes.len() as u64 + 64).to_le_bytes());
    reseal(&mut b);
    assert!(matches!(load(&b), Err(Error::OutOfBounds { what: "tensor data", .. })));
    let mut b = bytes.clone();
    let off = u64::from_le_bytes(b[index_off + 32..index_off + 40].try_into().unwrap()) + 4;
    b[index_off + 32..index_off + 40].copy_from_slice(&off.to_le_bytes());
    reseal(&mut b);
    assert!(matches!(load(&b), Err(Error::Misaligned { .. })));
    // Two tensors pointing at the same bytes.
    let mut b = bytes.clone();
    let e1 = index_off + 64;
    let (d0, d1) = (index_off + 32, e1 + 32);
    let first = b[d0..d0 + 8].to_vec();
    b[d1..d1 + 8].copy_from_slice(&first);
    reseal(&mut b);
    let e = load(&b).unwrap_err();
    assert!(matches!(e, Error::Overlap { .. } | Error::ShapeMismatch { .. } | Error::BadTensorEncoding { .. }), "{e}");
}

#[test]
fn misaligned_buffer_is_refused() {
    let bytes = writer(DType::F32).to_bytes();
    let a = aligned(&[&[0u8][..], &bytes].concat());
    let e = Model::from_bytes(&bytemuck::cast_slice(&a)[1..bytes.len() + 1]).unwrap_err();
    assert!(matches!(e, Error::Misaligned { .. }), "{e}");
}

#[test]
fn bad_inputs_are_errors() {
    let bytes = writer(DType::I8).to_bytes();
    let a = aligned(&bytes);
    let m = Model::from_bytes(&bytemuck::cast_slice(&a)[..bytes.len()]).unwrap();
    let mut scratch = vec![0u8; m.scratch_bytes(10, 1)];
    let too_long = [2u32; 11];
    assert!(matches!(
        m.encode(&Inputs::single(&too_long), &mut vec![0u8; m.scratch_bytes(11, 1)]),
        Err(Error::BadInput { .. })
    ));
    assert!(matches!(m.encode(&Inputs::single(&[]), &mut scratch), Err(Error::BadInput { .. })));
    assert!(matches!(
        m.encode(&Inputs::single(&[2, 20]), &mut scratch),
        Err(Error::BadInput { what: "token id", index: 1, .. })
    ));
    let types = [0u32, 2];
    let inp = Inputs { token_type_ids: Some(&types), ..Inputs::single(&[2, 3]) };
    assert!(matches!(m.encode(&inp, &mut scratch), Err(Error::BadInput { what: "token type id", .. })));
    let mut small = vec![0u8; 100];
    assert!(matches!(m.encode(&Inputs::single(&[2, 3]), &mut small), Err(Error::ScratchTooSmall { .. })));
    let mut enc = m.encode(&Inputs::single(&[2, 3]), &mut scratch).unwrap();
    assert!(matches!(m.mlm_logits(&mut enc, 0, 0, &mut [0.0; 20]), Err(Error::NoSuchHead { .. })));
    let mut p = [0f32; 8];
    assert!(matches!(m.pooler_output(&mut enc, 1, &mut p), Err(Error::BadInput { .. })));
}

#[test]
fn model_is_send_and_sync_and_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Model<'static>>();
    let bytes = writer(DType::I8).to_bytes();
    let a = aligned(&bytes);
    let m = Model::from_bytes(&bytemuck::cast_slice(&a)[..bytes.len()]).unwrap();
    let run = |ids: &[u32]| {
        let mut scratch = vec![0u8; m.scratch_bytes(ids.len(), 1)];
        m.encode(&Inputs::single(ids), &mut scratch).unwrap().last_hidden_state().to_vec()
    };
    let want = run(&[2, 5, 7, 3]);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..8).map(|_| s.spawn(|| run(&[2, 5, 7, 3]))).collect();
        for h in hs {
            assert_eq!(h.join().unwrap(), want);
        }
    });
}

#[test]
fn weight_sums_must_be_integers_within_range_on_int8_weights() {
    let ffn = "encoder.albert_layer_groups.0.albert_layers.0.ffn";
    // A valid one loads (12 rows of K = 8: |Σ| ≤ 8·127).
    let sums = |v: f32| vec![v; 12];
    let mut w = writer(DType::I8);
    w.tensors.push(TensorData::f32(&format!("{ffn}.weight_sum"), &[12], &sums(-1016.0)));
    load(&w.to_bytes()).unwrap();
    for (dtype, v, why) in [
        (DType::I8, 2.5, "integers"),
        (DType::I8, 1017.0, "within K·127"),
        (DType::I8, f32::NAN, "integers"),
        (DType::F32, 3.0, "only valid for int8 weights"),
    ] {
        let mut w = writer(dtype);
        w.tensors.push(TensorData::f32(&format!("{ffn}.weight_sum"), &[12], &sums(v)));
        let e = load(&w.to_bytes()).unwrap_err();
        assert!(
            matches!(&e, Error::BadTensorEncoding { name, detail } if name.as_str() == format!("{ffn}.weight_sum") && detail.contains(why)),
            "{v}: {e}"
        );
    }
}

#[test]
fn activation_codes_of_int8_weights() {
    // Codes 1-3 (int8, int16, 7-bit activations) load and run on an int8 weight and change
    // its result; 4 is unknown; 3 on an f32 tensor is refused.
    let ffn = "encoder.albert_layer_groups.0.albert_layers.0.ffn.weight";
    let run = |acts: format::Acts, dtype: DType| -> Result<Vec<f32>, Error> {
        let mut w = writer(dtype);
        w.tensors.iter_mut().filter(|t| t.name == ffn).for_each(|t| t.acts = acts);
        let bytes = w.to_bytes();
        let a = aligned(&bytes);
        let m = Model::from_bytes(&bytemuck::cast_slice(&a)[..bytes.len()])?;
        let mut scratch = vec![0u8; m.scratch_bytes(4, 1)];
        Ok(m.encode(&Inputs::single(&[2, 5, 7, 3]), &mut scratch)?.last_hidden_state().to_vec())
    };
    let int8 = run(format::Acts::Int8, DType::I8).unwrap();
    let int7 = run(format::Acts::Int7, DType::I8).unwrap();
    let int16 = run(format::Acts::Int16, DType::I8).unwrap();
    assert!(int7 != int8 && int16 != int8 && int7 != int16, "the codes made no difference");
    // An f32 weight carries no per-row code at all: the writer stores 0 whatever `acts` says.
    run(format::Acts::Int7, DType::F32).unwrap();
    // The first tensor entry (at the TENSOR_INDEX section's offset) of an int8 blob is an
    // int8 matrix: code 4 there is unknown.
    let bytes = writer(DType::I8).to_bytes();
    let index_off = u64::from_le_bytes(bytes[256 + 8..256 + 16].try_into().unwrap()) as usize;
    assert_eq!(bytes[index_off + 9], format::quant::PER_ROW_SYMMETRIC);
    let mut bad = bytes.clone();
    bad[index_off + 9] = 4;
    reseal(&mut bad);
    let e = load(&bad).unwrap_err();
    assert!(e.to_string().contains("unknown quantization code"), "{e}");
    // Code 3 on an f32 tensor (no scales) is refused.
    let bytes = writer(DType::F32).to_bytes();
    let index_off = u64::from_le_bytes(bytes[256 + 8..256 + 16].try_into().unwrap()) as usize;
    let mut bad = bytes.clone();
    bad[index_off + 9] = format::quant::PER_ROW_SYMMETRIC_A7;
    reseal(&mut bad);
    assert!(load(&bad).is_err(), "7-bit activation code on an f32 tensor loaded");
}
