//! A `quantize` killed while it writes leaves the previous output intact: the blob goes to
//! a temporary file that is renamed over the output only once complete
//! (`albert_quantize::write::write_atomic`). The test SIGKILLs the process the moment its
//! temporary file appears, i.e. in the middle of writing a ~20 MB blob.
#![cfg(unix)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use safetensors::tensor::{Dtype, TensorView};

/// An `AlbertModel` checkpoint big enough that writing its f32 blob takes a while.
fn write_checkpoint(dir: &Path) {
    let (v, e, h, i, p) = (30000usize, 128usize, 256usize, 1024usize, 512usize);
    let config = format!(
        r#"{{"architectures": ["AlbertModel"], "model_type": "albert", "vocab_size": {v}, "embedding_size": {e},
        "hidden_size": {h}, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": {i},
        "max_position_embeddings": {p}, "type_vocab_size": 2}}"#
    );
    std::fs::write(dir.join("config.json"), config).unwrap();
    let l = "albert.encoder.albert_layer_groups.0.albert_layers.0";
    let mut specs: Vec<(String, Vec<usize>)> = vec![
        ("albert.embeddings.word_embeddings.weight".into(), vec![v, e]),
        ("albert.embeddings.position_embeddings.weight".into(), vec![p, e]),
        ("albert.embeddings.token_type_embeddings.weight".into(), vec![2, e]),
        ("albert.embeddings.LayerNorm.weight".into(), vec![e]),
        ("albert.embeddings.LayerNorm.bias".into(), vec![e]),
        ("albert.encoder.embedding_hidden_mapping_in.weight".into(), vec![h, e]),
        ("albert.encoder.embedding_hidden_mapping_in.bias".into(), vec![h]),
    ];
    for (n, r, k) in [
        ("attention.query", h, h),
        ("attention.key", h, h),
        ("attention.value", h, h),
        ("attention.dense", h, h),
        ("ffn", i, h),
        ("ffn_output", h, i),
    ] {
        specs.push((format!("{l}.{n}.weight"), vec![r, k]));
        specs.push((format!("{l}.{n}.bias"), vec![r]));
    }
    for n in ["attention.LayerNorm", "full_layer_layer_norm"] {
        specs.push((format!("{l}.{n}.weight"), vec![h]));
        specs.push((format!("{l}.{n}.bias"), vec![h]));
    }
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = specs
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let bytes = (0..n).flat_map(|k| (((k * 7919) % 2000) as f32 / 20000.0 - 0.05).to_le_bytes()).collect();
            (name, shape, bytes)
        })
        .collect();
    let views: Vec<(&str, TensorView<'_>)> =
        data.iter().map(|(n, s, b)| (n.as_str(), TensorView::new(Dtype::F32, s.clone(), b).unwrap())).collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
}

#[test]
fn killed_quantize_leaves_the_previous_blob_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = tmp.path().join("checkpoint");
    let out_dir = tmp.path().join("out");
    std::fs::create_dir_all(&ck).unwrap();
    std::fs::create_dir_all(&out_dir).unwrap();
    write_checkpoint(&ck);
    let out = out_dir.join("model.albq");
    let quantize = |out: &Path| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_quantize"));
        c.arg(&ck).arg("-o").arg(out);
        c
    };

    // The previous blob: a complete quantize run of the same checkpoint to another name.
    let previous = out_dir.join("previous.albq");
    let done = quantize(&previous).args(["--dtype", "f32"]).output().unwrap();
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let old = std::fs::read(&previous).unwrap();
    std::fs::copy(&previous, &out).unwrap();

    // Kill each run as soon as its temporary file shows up; retry if a run got past the
    // rename first (a fast disk), which must then have left a complete blob.
    let mut killed_mid_write = 0;
    for attempt in 0..5 {
        let mut child =
            quantize(&out).args(["--dtype", "f32"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let start = Instant::now();
        let mut saw_temp = false;
        while start.elapsed() < Duration::from_secs(120) {
            let temp = std::fs::read_dir(&out_dir)
                .unwrap()
                .filter_map(|e| e.ok())
                .any(|e| e.file_name().to_string_lossy().starts_with(".model.albq.tmp-"));
            if temp {
                saw_temp = true;
                child.kill().unwrap(); // SIGKILL: no destructor, no cleanup runs
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let status = child.wait().unwrap();
        let now = std::fs::read(&out).unwrap();
        if saw_temp && !status.success() {
            assert!(now == old, "attempt {attempt}: killed quantize changed the output ({} bytes)", now.len());
            killed_mid_write += 1;
        } else {
            // Finished before the kill: the output is the whole new blob (the same bytes).
            assert_eq!(now, old, "attempt {attempt}: completed run wrote something else");
        }
        // Whatever the kill left behind is only ever a temporary file.
        for e in std::fs::read_dir(&out_dir).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                name == "model.albq" || name == "previous.albq" || name.starts_with(".model.albq.tmp-"),
                "unexpected file {name}"
            );
        }
    }
    assert!(killed_mid_write > 0, "no run was caught while writing");
}
