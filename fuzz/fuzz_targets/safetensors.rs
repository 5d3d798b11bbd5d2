//! `quantize`'s safetensors reader on arbitrary bytes; tensors that read are packed as
//! `quantize` would (f32 and plain int8) under a fixed tiny config.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use albert_engine::config::DType;
use albert_quantize::checkpoint::{self, ConfigJson};
use albert_quantize::pack::{self, PackOptions};
use libfuzzer_sys::fuzz_target;

fn config() -> &'static ConfigJson {
    static C: OnceLock<ConfigJson> = OnceLock::new();
    C.get_or_init(|| {
        let json = br#"{"model_type": "albert", "vocab_size": 6, "embedding_size": 2, "hidden_size": 4,
            "num_hidden_layers": 1, "num_attention_heads": 1, "intermediate_size": 4,
            "max_position_embeddings": 4, "type_vocab_size": 1}"#;
        checkpoint::parse_config_json(json).expect("fixed config")
    })
}

fuzz_target!(|data: &[u8]| {
    let mut tensors = BTreeMap::new();
    if checkpoint::read_safetensors(data, &mut tensors).is_err() {
        return;
    }
    let Ok(ck) = checkpoint::from_parts(config(), tensors, None) else { return };
    for dtype in [DType::F32, DType::I8] {
        if let Err(e) = pack::pack_with(&ck, &PackOptions::plain(dtype)) {
            let _ = format!("{e:#}");
        }
    }
});
