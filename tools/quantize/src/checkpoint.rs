//! Reading a Hugging Face ALBERT checkpoint directory (`config.json` + safetensors).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use albert_engine::config::{Activation, DType, Heads, ModelConfig};
use anyhow::{Context, Result, anyhow, bail};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

/// What the `classifier` tensor means, which only the architecture tells apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Task {
    /// `AlbertModel`: encoder (and pooler if present) only.
    Model,
    /// `AlbertForPreTraining`: masked LM + sentence order.
    Pretraining,
    /// `AlbertForMaskedLM`.
    MaskedLm,
    /// `AlbertForSequenceClassification`.
    SequenceClassification,
    /// `AlbertForTokenClassification`.
    TokenClassification,
    /// `AlbertForQuestionAnswering`.
    QuestionAnswering,
    /// `AlbertForMultipleChoice`.
    MultipleChoice,
}

impl Task {
    fn from_architecture(a: &str) -> Option<Task> {
        Some(match a {
            "AlbertModel" => Task::Model,
            "AlbertForPreTraining" => Task::Pretraining,
            "AlbertForMaskedLM" => Task::MaskedLm,
            "AlbertForSequenceClassification" => Task::SequenceClassification,
            "AlbertForTokenClassification" => Task::TokenClassification,
            "AlbertForQuestionAnswering" => Task::QuestionAnswering,
            "AlbertForMultipleChoice" => Task::MultipleChoice,
            _ => return None,
        })
    }
}

/// A float tensor read from the checkpoint.
#[derive(Clone, Debug)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// A checkpoint, normalised: names without the `albert.` prefix, tied weights resolved,
/// buffers dropped.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// The config; `weight_dtype`/`activation_scheme` are set by packing.
    pub config: ModelConfig,
    pub task: Task,
    /// `id2label` in class order (empty without a classification head).
    pub labels: Vec<String>,
    pub tensors: BTreeMap<String, Tensor>,
}

fn get_u32(cfg: &Value, key: &str, default: u32) -> Result<u32> {
    match cfg.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .ok_or_else(|| anyhow!("config.json: `{key}` is {v}, expected a non-negative integer")),
    }
}

fn to_f32(view: &safetensors::tensor::TensorView<'_>, name: &str) -> Result<Vec<f32>> {
    let b = view.data();
    Ok(match view.dtype() {
        Dtype::F32 => b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        Dtype::F16 => b.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        Dtype::BF16 => b.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        Dtype::F64 => b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("chunk of 8")) as f32).collect(),
        other => bail!("tensor `{name}` has dtype {other:?}; only F32, F16, BF16 and F64 weights are supported"),
    })
}

/// The safetensors files of a checkpoint: `model.safetensors`, or the shards listed in
/// `model.safetensors.index.json`.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let v: Value =
            serde_json::from_slice(&fs::read(&index)?).with_context(|| format!("parsing {}", index.display()))?;
        let map = v
            .get("weight_map")
            .and_then(Value::as_object)
            .ok_or_else(|| anyhow!("{}: no `weight_map` object", index.display()))?;
        let mut files: Vec<PathBuf> = map.values().filter_map(Value::as_str).map(|f| dir.join(f)).collect();
        files.sort();
        files.dedup();
        return Ok(files);
    }
    for (file, how) in [
        ("pytorch_model.bin", "AlbertForMaskedLM.from_pretrained(DIR).save_pretrained(DIR, safe_serialization=True)"),
        (
            "tf_model.h5",
            "AlbertForMaskedLM.from_pretrained(DIR, from_tf=True).save_pretrained(DIR, safe_serialization=True)",
        ),
    ] {
        if dir.join(file).is_file() {
            bail!(
                "{} has only {file}, which quantize does not read (it would need PyTorch to unpickle). \
                 Convert it to safetensors once with transformers: python -c \"from transformers import AlbertForMaskedLM; \
                 {how}\" (use the model class named in config.json's `architectures`)",
                dir.display()
            );
        }
    }
    bail!("{} has no model.safetensors (nor a sharded model.safetensors.index.json)", dir.display())
}

/// Reads and normalises the checkpoint in `dir`. `task` overrides `architectures`.
pub fn load(dir: &Path, task: Option<Task>) -> Result<Checkpoint> {
    let cfg_path = dir.join("config.json");
    let cfg_bytes = fs::read(&cfg_path).with_context(|| format!("reading {}", cfg_path.display()))?;
    let cfg = parse_config_json(&cfg_bytes).with_context(|| format!("parsing {}", cfg_path.display()))?;
    let mut tensors = BTreeMap::new();
    for file in weight_files(dir)? {
        let bytes = fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        read_safetensors(&bytes, &mut tensors).with_context(|| format!("reading {}", file.display()))?;
    }
    from_parts(&cfg, tensors, task)
}

/// A parsed `config.json`, with the fields checked that do not depend on the tensors.
#[derive(Clone, Debug)]
pub struct ConfigJson {
    value: Value,
    hidden_act: Activation,
    layer_norm_eps: f32,
}

/// Parses the bytes of a `config.json` (the part of [`load`] that reads that file).
pub fn parse_config_json(bytes: &[u8]) -> Result<ConfigJson> {
    let cfg: Value = serde_json::from_slice(bytes)?;
    if !cfg.is_object() {
        bail!("config.json is not a JSON object");
    }
    if let Some(mt) = cfg.get("model_type").and_then(Value::as_str)
        && mt != "albert"
    {
        bail!("model_type is `{mt}`, this tool packs only `albert` checkpoints");
    }
    if let Some(p) = cfg.get("position_embedding_type").and_then(Value::as_str)
        && p != "absolute"
    {
        bail!("config.json: position_embedding_type `{p}` is not supported (only `absolute`, ALBERT's default)");
    }
    let act_name = match cfg.get("hidden_act") {
        None | Some(Value::Null) => "gelu_new",
        Some(v) => v.as_str().ok_or_else(|| anyhow!("config.json: hidden_act is {v}, expected a string"))?,
    };
    let hidden_act = Activation::from_hf_name(act_name)
        .ok_or_else(|| anyhow!("config.json: hidden_act `{act_name}` is not supported (gelu, gelu_new, gelu_pytorch_tanh, relu, gelu_fast, quick_gelu, silu, swish, tanh, sigmoid, linear)"))?;
    let layer_norm_eps = match cfg.get("layer_norm_eps") {
        None => 1e-12,
        Some(v) => v.as_f64().ok_or_else(|| anyhow!("config.json: layer_norm_eps is {v}, expected a number"))? as f32,
    };
    Ok(ConfigJson { value: cfg, hidden_act, layer_norm_eps })
}

/// Adds the tensors of one safetensors file's bytes to `tensors`, converted to f32 and
/// named without the `albert.` prefix (the part of [`load`] that reads weight files).
pub fn read_safetensors(bytes: &[u8], tensors: &mut BTreeMap<String, Tensor>) -> Result<()> {
    // The crate checks the declared header length against `bytes` before reading it and
    // every tensor's extent against the data, so nothing here is sized from an unchecked
    // number.
    let st = SafeTensors::deserialize(bytes).context("parsing as safetensors")?;
    for (name, view) in st.tensors() {
        // An empty tensor carries no data that would bound its other dimensions, which
        // later steps size tables from; no ALBERT weight is empty.
        if view.shape().contains(&0) {
            bail!("tensor `{name}` has shape {:?}, with a zero dimension", view.shape());
        }
        let values = to_f32(&view, &name)?;
        let short = name.strip_prefix("albert.").unwrap_or(&name).to_string();
        if tensors.insert(short.clone(), Tensor { shape: view.shape().to_vec(), values }).is_some() {
            bail!("tensor `{short}` appears twice (with and without the `albert.` prefix?)");
        }
    }
    Ok(())
}

/// Builds the normalised checkpoint from a parsed `config.json` and the tensors of its
/// weight files (as [`read_safetensors`] gives them).
pub fn from_parts(cfg: &ConfigJson, mut tensors: BTreeMap<String, Tensor>, task: Option<Task>) -> Result<Checkpoint> {
    let (hidden_act, eps) = (cfg.hidden_act, cfg.layer_norm_eps);
    let cfg = &cfg.value;
    // Buffers transformers saves in some versions; they carry no weights.
    for buf in ["embeddings.position_ids", "embeddings.token_type_ids"] {
        tensors.remove(buf);
    }
    // The decoder bias is the same parameter as `predictions.bias`.
    if let Some(b) = tensors.remove("predictions.decoder.bias") {
        tensors.entry("predictions.bias".into()).or_insert(b);
    }
    // transformers ties the decoder to the word embeddings at load unless told not to,
    // overwriting whatever the file holds; do the same.
    let tie = cfg.get("tie_word_embeddings").and_then(Value::as_bool).unwrap_or(true);
    if tie {
        tensors.remove("predictions.decoder.weight");
    }

    let task = match task {
        Some(t) => t,
        None => {
            let arch = cfg.get("architectures").and_then(|a| a.get(0)).and_then(Value::as_str);
            match arch.and_then(Task::from_architecture) {
                Some(t) => t,
                None => infer_task(&tensors).ok_or_else(|| {
                    anyhow!(
                        "config.json: architectures is {} and the tensors do not say which head `classifier` is; pass --task",
                        arch.unwrap_or("missing")
                    )
                })?,
            }
        }
    };

    let has = |n: &str| tensors.contains_key(n);
    let mut heads = 0;
    if has("pooler.weight") {
        heads |= Heads::POOLER;
    }
    let wants = |t: &[Task]| t.contains(&task);
    if wants(&[Task::Pretraining, Task::MaskedLm]) {
        heads |= Heads::MLM;
    }
    if wants(&[Task::Pretraining]) {
        heads |= Heads::SOP;
    }
    let mut num_labels = 0;
    let mut labels = Vec::new();
    match task {
        Task::SequenceClassification => heads |= Heads::SEQ_CLS,
        Task::TokenClassification => heads |= Heads::TOKEN_CLS,
        Task::MultipleChoice => heads |= Heads::MULTIPLE_CHOICE,
        Task::QuestionAnswering => heads |= Heads::QA,
        _ => {}
    }
    if heads & (Heads::SEQ_CLS | Heads::TOKEN_CLS | Heads::MULTIPLE_CHOICE) != 0 {
        let w = tensors
            .get("classifier.weight")
            .ok_or_else(|| anyhow!("{task:?} checkpoint has no `classifier.weight`"))?;
        num_labels = classifier_rows(&w.shape)?;
        if task != Task::MultipleChoice {
            labels = read_labels(cfg, num_labels as usize)?;
        }
    }
    if heads & (Heads::SEQ_CLS | Heads::SOP | Heads::MULTIPLE_CHOICE) != 0 && heads & Heads::POOLER == 0 {
        bail!("{task:?} checkpoint has no pooler (`pooler.weight`), which its head needs");
    }

    let config = ModelConfig {
        vocab_size: get_u32(cfg, "vocab_size", 30000)?,
        embedding_size: get_u32(cfg, "embedding_size", 128)?,
        hidden_size: get_u32(cfg, "hidden_size", 4096)?,
        num_hidden_layers: get_u32(cfg, "num_hidden_layers", 12)?,
        num_hidden_groups: get_u32(cfg, "num_hidden_groups", 1)?,
        inner_group_num: get_u32(cfg, "inner_group_num", 1)?,
        num_attention_heads: get_u32(cfg, "num_attention_heads", 64)?,
        intermediate_size: get_u32(cfg, "intermediate_size", 16384)?,
        max_position_embeddings: get_u32(cfg, "max_position_embeddings", 512)?,
        type_vocab_size: get_u32(cfg, "type_vocab_size", 2)?,
        hidden_act,
        layer_norm_eps: eps,
        num_labels,
        heads: Heads(heads),
        weight_dtype: DType::F32,
        pad_token_id: get_u32(cfg, "pad_token_id", 0)?,
        bos_token_id: get_u32(cfg, "bos_token_id", 2)?,
        eos_token_id: get_u32(cfg, "eos_token_id", 3)?,
        activation_scheme: 0,
    };
    config.validate().map_err(|e| anyhow!("config.json: {e}"))?;
    Ok(Checkpoint { config, task, labels, tensors })
}

/// Rows of `classifier.weight` (its number of labels), refused unless the shape is two
/// non-zero dimensions with at most 2^20 rows: the label table is sized from it before the
/// config is validated, and a zero-width tensor holds no data that would bound it.
fn classifier_rows(shape: &[usize]) -> Result<u32> {
    match *shape {
        [rows, cols] if rows > 0 && cols > 0 && rows <= MAX_LABELS => Ok(rows as u32),
        _ => bail!(
            "classifier.weight has shape {shape:?}; expected [num_labels, hidden_size] with 1 to {MAX_LABELS} labels"
        ),
    }
}

/// Most labels a classification head may have (the engine's limit on any dimension).
const MAX_LABELS: usize = 1 << 20;

fn infer_task(t: &BTreeMap<String, Tensor>) -> Option<Task> {
    let has = |n: &str| t.contains_key(n);
    if has("classifier.weight") {
        return None;
    }
    Some(if has("sop_classifier.classifier.weight") {
        Task::Pretraining
    } else if has("qa_outputs.weight") {
        Task::QuestionAnswering
    } else if has("predictions.dense.weight") {
        Task::MaskedLm
    } else {
        Task::Model
    })
}

/// `id2label` as a list; keys are class indices as strings.
fn read_labels(cfg: &Value, n: usize) -> Result<Vec<String>> {
    let Some(map) = cfg.get("id2label").and_then(Value::as_object) else {
        return Ok((0..n).map(|i| format!("LABEL_{i}")).collect());
    };
    let mut labels = vec![None; n];
    for (k, v) in map {
        let i: usize = k.parse().map_err(|_| anyhow!("config.json: id2label key `{k}` is not an integer"))?;
        let s = v.as_str().ok_or_else(|| anyhow!("config.json: id2label[{k}] is not a string"))?;
        let slot = labels
            .get_mut(i)
            .ok_or_else(|| anyhow!("config.json: id2label has class {i} but the classifier has {n} rows"))?;
        *slot = Some(s.to_string());
    }
    labels
        .into_iter()
        .enumerate()
        .map(|(i, l)| l.ok_or_else(|| anyhow!("config.json: id2label lacks class {i} of {n}")))
        .collect()
}
