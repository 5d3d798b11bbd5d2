//! `quantize`'s `config.json` reader on arbitrary bytes, finished into a checkpoint
//! against a fixed set of tensors under every task.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use albert_quantize::checkpoint::{self, Task, Tensor};
use libfuzzer_sys::fuzz_target;

fn tensors() -> &'static BTreeMap<String, Tensor> {
    static T: OnceLock<BTreeMap<String, Tensor>> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = BTreeMap::new();
        for (name, shape) in [
            ("pooler.weight", vec![4, 4]),
            ("classifier.weight", vec![3, 4]),
            ("predictions.decoder.bias", vec![5]),
            ("predictions.decoder.weight", vec![5, 2]),
        ] {
            let values = vec![0.5; shape.iter().product()];
            t.insert(name.to_string(), Tensor { shape, values });
        }
        t
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(cfg) = checkpoint::parse_config_json(data) else { return };
    for task in [None, Some(Task::SequenceClassification), Some(Task::MultipleChoice), Some(Task::Pretraining)] {
        if let Err(e) = checkpoint::from_parts(&cfg, tensors().clone(), task) {
            let _ = format!("{e:#}");
        }
    }
});
