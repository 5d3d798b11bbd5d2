//! `albert`: run an `.albq` model from the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use albert_engine::{Heads, Inputs, Model};
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use serde::Serialize;
use serde::ser::SerializeMap;
use std::io::Write;

#[path = "albert/tasks.rs"]
mod tasks;

#[derive(Parser, Debug)]
#[command(version, about = "Run an int8 ALBERT model packed by `quantize`")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Threads a forward pass runs on (default: one per physical core this process may use);
    /// results are bit-identical for any count.
    #[arg(long, global = true, value_parser = clap::value_parser!(u32).range(1..))]
    threads: Option<u32>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Raw model outputs for token ids, with transformers' output names.
    Forward(ForwardArgs),
    /// Tokenize text with the blob's tokenizer, as AlbertTokenizerFast does.
    Tokenize(TokenizeArgs),
    /// Compare a model with a reference: another blob, transformers goldens, or a
    /// held-out fill-mask set.
    Eval(EvalArgs),
    /// Predict the words hidden behind [MASK] (transformers' fill-mask pipeline).
    FillMask(tasks::FillMaskArgs),
    /// Token vectors or one pooled vector per text (transformers' feature-extraction).
    Embed(tasks::EmbedArgs),
    /// Label a text or a pair (transformers' text-classification).
    Classify(tasks::ClassifyArgs),
    /// Label every token and group them into entities (transformers' token-classification).
    TokenClassify(tasks::TokenClassifyArgs),
    /// Find the answer to a question in a context (transformers' question-answering).
    Qa(tasks::QaArgs),
    /// Score the choices that may follow a prompt (AlbertForMultipleChoice).
    MultipleChoice(tasks::ChoiceArgs),
    /// Sentence-order prediction: does the second text follow the first? (AlbertForPreTraining)
    Sop(tasks::SopArgs),
    /// Summarise a blob: config, heads, tensors, quantization, tokenizer, checksum.
    Inspect(InspectArgs),
    /// Latency percentiles, throughput and peak memory of the encoder.
    Bench(BenchArgs),
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum TruncationArg {
    LongestFirst,
    OnlyFirst,
    OnlySecond,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum PaddingArg {
    DoNotPad,
    MaxLength,
}

#[derive(Parser, Debug)]
struct TokenizeArgs {
    /// The .albq blob (packed with a tokenizer).
    #[arg(long, env = "ALBERT_MODEL")]
    model: PathBuf,
    /// The text.
    text: String,
    /// A second text, making a pair (`[CLS] A [SEP] B [SEP]`, token type 1 for B).
    #[arg(long)]
    pair: Option<String>,
    /// Truncate to this many tokens, special tokens included.
    #[arg(long)]
    max_length: Option<usize>,
    /// How to truncate (with --max-length).
    #[arg(long, value_enum, default_value = "longest-first")]
    truncation: TruncationArg,
    /// `max-length` pads with <pad> up to --max-length.
    #[arg(long, value_enum, default_value = "do-not-pad")]
    padding: PaddingArg,
    /// Do not add [CLS] and [SEP].
    #[arg(long)]
    no_special_tokens: bool,
    /// Print one JSON object: input_ids, token_type_ids, attention_mask, tokens, offsets
    /// (character offsets into the text each token came from, as transformers gives).
    #[arg(long)]
    json: bool,
}

#[derive(Parser, Debug)]
struct ForwardArgs {
    /// The .albq blob.
    #[arg(long, env = "ALBERT_MODEL")]
    model: PathBuf,
    /// Comma-separated token ids of one sequence; repeat for several sequences.
    #[arg(long, required = true)]
    ids: Vec<String>,
    /// Comma-separated token type ids, one list per --ids (default all 0).
    #[arg(long)]
    type_ids: Vec<String>,
    /// Positions whose masked-LM logits to print (default: every position).
    #[arg(long, value_delimiter = ',')]
    mask_positions: Vec<usize>,
    /// Print JSON (one object per sequence, one per line). The only format for now.
    #[arg(long)]
    json: bool,
}

fn parse_list(s: &str, what: &str) -> Result<Vec<u32>> {
    s.split(',')
        .filter(|t| !t.trim().is_empty())
        .map(|t| t.trim().parse::<u32>().with_context(|| format!("{what}: `{t}` is not a non-negative integer")))
        .collect()
}

/// One output: a vector or a matrix (rows of `width`). Serialised through serde's f32
/// path, so numbers print in their shortest round-trip f32 form.
enum Out {
    Vec(Vec<f32>),
    Rows(Vec<f32>, usize),
}

impl Serialize for Out {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Out::Vec(v) => v.serialize(s),
            Out::Rows(v, w) => s.collect_seq(v.chunks(*w)),
        }
    }
}

/// Outputs in insertion order (transformers' order), as one JSON object.
struct Outputs(Vec<(&'static str, Out)>);

impl Serialize for Outputs {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

fn forward(args: &ForwardArgs) -> Result<()> {
    let mapped = Model::open(&args.model)?;
    let model = mapped.model();
    let c = *model.config();
    let seqs: Vec<Vec<u32>> = args.ids.iter().map(|s| parse_list(s, "--ids")).collect::<Result<_>>()?;
    if !args.type_ids.is_empty() && args.type_ids.len() != seqs.len() {
        bail!("--type-ids given {} times but --ids {} times", args.type_ids.len(), seqs.len());
    }
    let mut scratch = Vec::new();
    let h = c.hidden_size as usize;
    for (n, ids) in seqs.iter().enumerate() {
        let types = match args.type_ids.get(n) {
            Some(t) => Some(parse_list(t, "--type-ids")?),
            None => None,
        };
        let inputs = Inputs { token_type_ids: types.as_deref(), ..Inputs::single(ids) };
        scratch.resize(model.scratch_bytes(ids.len().max(1), 1), 0);
        let mut enc = model.encode(&inputs, &mut scratch)?;
        let mut out = Vec::new();
        out.push(("last_hidden_state", Out::Rows(enc.last_hidden_state().to_vec(), h)));
        if c.heads.has(Heads::POOLER) {
            let mut p = vec![0f32; h];
            model.pooler_output(&mut enc, 0, &mut p)?;
            out.push(("pooler_output", Out::Vec(p)));
        }
        if c.heads.has(Heads::MLM) {
            let positions: Vec<usize> =
                if args.mask_positions.is_empty() { (0..ids.len()).collect() } else { args.mask_positions.clone() };
            let v = c.vocab_size as usize;
            let mut all = vec![0f32; positions.len() * v];
            for (&p, row) in positions.iter().zip(all.chunks_mut(v)) {
                model.mlm_logits(&mut enc, 0, p, row)?;
            }
            out.push(("prediction_logits", Out::Rows(all, v)));
        }
        if c.heads.has(Heads::SOP) {
            let mut l = [0f32; 2];
            model.sop_logits(&mut enc, 0, &mut l)?;
            out.push(("sop_logits", Out::Vec(l.to_vec())));
        }
        let nl = c.num_labels as usize;
        if c.heads.has(Heads::SEQ_CLS) {
            let mut l = vec![0f32; nl];
            model.classify(&mut enc, 0, &mut l)?;
            out.push(("logits", Out::Vec(l)));
        }
        if c.heads.has(Heads::MULTIPLE_CHOICE) {
            out.push(("logits", Out::Vec(vec![model.choice_logit(&mut enc, 0)?])));
        }
        if c.heads.has(Heads::TOKEN_CLS) {
            let mut all = vec![0f32; ids.len() * nl];
            for (p, row) in all.chunks_mut(nl).enumerate() {
                model.classify_token(&mut enc, 0, p, row)?;
            }
            out.push(("logits", Out::Rows(all, nl)));
        }
        if c.heads.has(Heads::QA) {
            let (mut s, mut e) = (Vec::new(), Vec::new());
            for p in 0..ids.len() {
                let (a, b) = model.qa_logits(&mut enc, 0, p)?;
                s.push(a);
                e.push(b);
            }
            out.push(("start_logits", Out::Vec(s)));
            out.push(("end_logits", Out::Vec(e)));
        }
        let mut stdout = std::io::stdout().lock();
        serde_json::to_writer(&mut stdout, &Outputs(out))?;
        writeln!(stdout)?;
    }
    Ok(())
}

fn tokenize(args: &TokenizeArgs) -> Result<()> {
    use albert_engine::tokenizer::{EncodeOptions, Encoding, OwnedWorkspace, Truncation};
    let mapped = Model::open(&args.model)?;
    let model = mapped.model();
    let section = model.blob().tokenizer_section().with_context(|| {
        format!(
            "{} has no tokenizer (re-run quantize on a checkpoint with tokenizer.json or spiece.model)",
            args.model.display()
        )
    })?;
    let tok = albert_engine::Tokenizer::from_section(section)?;
    let opts = EncodeOptions {
        add_special_tokens: !args.no_special_tokens,
        max_length: args.max_length,
        truncation: match args.truncation {
            TruncationArg::LongestFirst => Truncation::LongestFirst,
            TruncationArg::OnlyFirst => Truncation::OnlyFirst,
            TruncationArg::OnlySecond => Truncation::OnlySecond,
        },
        pad_to_max_length: matches!(args.padding, PaddingArg::MaxLength),
    };
    if opts.pad_to_max_length && opts.max_length.is_none() {
        bail!("--padding max-length needs --max-length");
    }
    let pair = args.pair.as_deref();
    let longest = args.text.len().max(pair.map_or(0, str::len));
    let mut ws = OwnedWorkspace::new(longest);
    let cap = 4 * (args.text.len() + pair.map_or(0, str::len)) + 8 + args.max_length.unwrap_or(0);
    let (mut ids, mut types, mut mask, mut offs) = (vec![0; cap], vec![0; cap], vec![0; cap], vec![[0u32; 2]; cap]);
    let mut out = Encoding { ids: &mut ids, type_ids: &mut types, attention_mask: &mut mask, offsets: &mut offs };
    let n = tok.encode(&args.text, pair, &opts, &mut ws.workspace(), &mut out)?;
    let char_off = |text: &str, b: u32| text.get(..b as usize).map_or(0, |s| s.chars().count());
    let offsets: Vec<[usize; 2]> = (0..n)
        .map(|i| {
            let src = if types[i] == 1 { pair.unwrap_or("") } else { &args.text };
            [char_off(src, offs[i][0]), char_off(src, offs[i][1])]
        })
        .collect();
    let tokens: Vec<&str> = ids[..n].iter().map(|&id| tok.id_to_piece(id).unwrap_or("")).collect();
    let mut stdout = std::io::stdout().lock();
    if args.json {
        // Field order as transformers' BatchEncoding.
        #[derive(Serialize)]
        struct Out<'a> {
            input_ids: &'a [u32],
            token_type_ids: &'a [u32],
            attention_mask: &'a [u32],
            tokens: Vec<&'a str>,
            offsets: Vec<[usize; 2]>,
        }
        let v = Out { input_ids: &ids[..n], token_type_ids: &types[..n], attention_mask: &mask[..n], tokens, offsets };
        serde_json::to_writer(&mut stdout, &v)?;
        writeln!(stdout)?;
    } else {
        writeln!(stdout, "{:>5} {:>8} {:>4} {:>9}  token", "pos", "id", "type", "chars")?;
        for i in 0..n {
            let o = format!("{}..{}", offsets[i][0], offsets[i][1]);
            writeln!(stdout, "{i:>5} {:>8} {:>4} {o:>9}  {}", ids[i], types[i], tokens[i])?;
        }
    }
    Ok(())
}

/// The bundled model, used when neither --model nor ALBERT_MODEL is given.
const DEFAULT_MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/albert-pydoc.albq");

#[derive(Parser, Debug)]
struct BenchArgs {
    /// The .albq blob (default: the bundled model).
    #[arg(long, env = "ALBERT_MODEL", default_value = DEFAULT_MODEL)]
    model: PathBuf,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 128)]
    seq: usize,
    /// Sequences per forward pass.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Timed forward passes.
    #[arg(long, default_value_t = 20)]
    iters: usize,
    /// Untimed forward passes first.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Time `encode_pooled`, the pass of the classification, sentence-order and
    /// multiple-choice heads (the last layer for the first token only), instead of the
    /// full encoder.
    #[arg(long, conflicts_with = "positions")]
    pooled: bool,
    /// Time `encode_positions` at these token positions (comma-separated, e.g. `5` for
    /// fill-mask with one `[MASK]` there): the last layer for those tokens only.
    #[arg(long, value_delimiter = ',')]
    positions: Option<Vec<usize>>,
    /// Also report milliseconds per pass in each stage of the encoder (GEMM, quantize,
    /// dequantize, attention, ...). Needs a build with `--features profile`; counts the
    /// time of every thread, so read it with `--threads 1`.
    #[arg(long)]
    profile: bool,
}

/// Peak resident memory of this process in bytes (Linux `VmHWM`), if known.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn bench(args: &BenchArgs, started: std::time::Instant) -> Result<()> {
    use std::time::Instant;
    let mapped = Model::open(&args.model)?;
    let model = mapped.model();
    let ready_ms = started.elapsed().as_secs_f64() * 1e3;
    let c = *model.config();
    let max = c.max_position_embeddings as usize;
    if args.seq == 0 || args.seq > max {
        bail!("--seq {}: this model takes 1 to {max} tokens (max_position_embeddings)", args.seq);
    }
    let seq = args.seq;
    if args.batch == 0 || args.iters == 0 {
        bail!("--batch and --iters must be at least 1");
    }
    if args.profile && !albert_engine::profile::ENABLED {
        bail!(
            "--profile: this albert was built without the profile feature (cargo build --release -p albert-tools --features profile)"
        );
    }
    // Deterministic in-vocabulary ids framed as [CLS] … [SEP].
    let mut ids = Vec::with_capacity(seq * args.batch);
    for b in 0..args.batch {
        for i in 0..seq {
            let id = match i {
                0 => c.bos_token_id,
                _ if i + 1 == seq => c.eos_token_id,
                _ => 5 + ((i * 7919 + b * 104_729) % (c.vocab_size as usize - 5)) as u32,
            };
            ids.push(id.min(c.vocab_size - 1));
        }
    }
    let inputs =
        Inputs { input_ids: &ids, token_type_ids: None, attention_mask: None, batch: args.batch, seq_len: seq };
    let mut scratch = vec![0u8; model.scratch_bytes(seq, args.batch)];
    let pass = |scratch: &mut [u8]| -> Result<()> {
        if let Some(at) = &args.positions {
            model.encode_positions(&inputs, at, scratch)?;
        } else if args.pooled {
            model.encode_pooled(&inputs, scratch)?;
        } else {
            model.encode(&inputs, scratch)?;
        }
        Ok(())
    };
    for _ in 0..args.warmup {
        pass(&mut scratch)?;
    }
    let mut ms = Vec::with_capacity(args.iters);
    albert_engine::profile::reset();
    for _ in 0..args.iters {
        let t = Instant::now();
        pass(&mut scratch)?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| ms[((p / 100.0) * (ms.len() - 1) as f64).round() as usize];
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    let seqs_per_s = args.batch as f64 / (mean / 1e3);
    // Each stage's mean milliseconds per pass; "other" is the rest of the mean pass
    // (embeddings, copies, waiting for threads; negative with several threads).
    let profile = args.profile.then(|| {
        let mut stages = serde_json::Map::new();
        let mut counted = 0.0;
        for (stage, nanos, _) in albert_engine::profile::snapshot() {
            let per_pass = nanos as f64 / 1e6 / args.iters as f64;
            counted += per_pass;
            stages.insert(stage.name().into(), per_pass.into());
        }
        stages.insert("other".into(), (mean - counted).into());
        stages
    });
    let out = serde_json::json!({
        "model": args.model, "seq": seq, "batch": args.batch, "iters": args.iters, "threads": model.threads(),
        "kernel": albert_engine::kernels::selected().ok().map(|k| k.name()),
        "float_loops": albert_engine::kernels::float_loops(),
        "p50_ms": pct(50.0), "p90_ms": pct(90.0), "p99_ms": pct(99.0), "mean_ms": mean,
        "sequences_per_s": seqs_per_s, "tokens_per_s": seqs_per_s * seq as f64,
        "peak_rss_bytes": peak_rss_bytes(), "scratch_bytes": scratch.len(), "blob_bytes": model.blob().bytes().len(),
        "ready_ms": ready_ms, "pooled": args.pooled, "positions": args.positions,
        "profile_ms": profile,
    });
    if args.json {
        println!("{out}");
    } else {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}

#[derive(Parser, Debug)]
struct InspectArgs {
    /// The .albq blob (default: the bundled model).
    #[arg(long, env = "ALBERT_MODEL", default_value = DEFAULT_MODEL)]
    model: PathBuf,
    /// List every tensor.
    #[arg(long)]
    tensors: bool,
    /// Show the int8 GEMM kernels this CPU supports and the one chosen (`ALBERT_KERNEL`
    /// forces one), instead of the model.
    #[arg(long)]
    kernels: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

fn inspect_kernels(json: bool) -> Result<()> {
    use albert_engine::kernels;
    let available: Vec<&str> = kernels::available().map(|k| k.name()).collect();
    let selected = kernels::selected().map_err(|e| anyhow::anyhow!("ALBERT_KERNEL: {e}"))?;
    if json {
        println!(
            "{}",
            serde_json::json!({"available": available, "selected": selected.name(), "known": kernels::NAMES,
                "float_loops": kernels::float_loops()})
        );
    } else {
        for name in kernels::NAMES {
            let mark = if name == selected.name() {
                "*"
            } else if available.contains(&name) {
                "+"
            } else {
                " "
            };
            println!("{mark} {name}");
        }
        println!("(* selected, + available; ALBERT_KERNEL=NAME forces one)");
        println!("float loops: {}", kernels::float_loops());
    }
    Ok(())
}

fn inspect(args: &InspectArgs) -> Result<()> {
    if args.kernels {
        return inspect_kernels(args.json);
    }
    let mapped = Model::open(&args.model)?;
    let model = mapped.model();
    let blob = model.blob();
    let c = model.config();
    let heads: Vec<&str> = [
        (Heads::POOLER, "pooler"),
        (Heads::MLM, "masked-lm"),
        (Heads::SOP, "sentence-order"),
        (Heads::SEQ_CLS, "sequence-classification"),
        (Heads::TOKEN_CLS, "token-classification"),
        (Heads::QA, "question-answering"),
        (Heads::MULTIPLE_CHOICE, "multiple-choice"),
    ]
    .iter()
    .filter(|(b, _)| c.heads.has(*b))
    .map(|(_, n)| *n)
    .collect();
    let tensors: Vec<_> = blob.tensors().collect();
    let count = |suffix: &str| tensors.iter().filter(|t| t.name.ends_with(suffix)).count();
    let bytes_of = |d: albert_engine::config::DType| -> usize {
        tensors.iter().filter(|t| t.dtype == d).map(|t| t.data.len() + t.scales.map_or(0, |s| 4 * s.len())).sum()
    };
    let labels: Vec<&str> = (0..blob.label_count()).filter_map(|i| blob.label(i)).collect();
    let tok = blob.tokenizer_section().map(albert_engine::Tokenizer::from_section).transpose()?;
    let json = serde_json::json!({
        "file": args.model, "bytes": blob.bytes().len(), "format_version": albert_engine::format::VERSION,
        "checksum": format!("{:#010x}", blob.checksum),
        "config": {
            "vocab_size": c.vocab_size, "embedding_size": c.embedding_size, "hidden_size": c.hidden_size,
            "num_hidden_layers": c.num_hidden_layers, "num_hidden_groups": c.num_hidden_groups,
            "inner_group_num": c.inner_group_num, "num_attention_heads": c.num_attention_heads,
            "intermediate_size": c.intermediate_size, "max_position_embeddings": c.max_position_embeddings,
            "type_vocab_size": c.type_vocab_size, "hidden_act": format!("{:?}", c.hidden_act),
            "layer_norm_eps": c.layer_norm_eps, "num_labels": c.num_labels,
        },
        "heads": heads, "labels": labels, "weight_dtype": c.weight_dtype.name(),
        "quantization": {
            "linears_with_outlier_split": count(".outlier_cols"), "linears_with_input_multipliers": count(".input_mul"),
            "linears_with_centred_activations": count(".row_sum"),
            "linears_with_int16_activations": tensors.iter().filter(|t| t.quant == albert_engine::format::quant::PER_ROW_SYMMETRIC_A16).count(),
            "linears_with_7bit_activations": tensors.iter().filter(|t| t.quant == albert_engine::format::quant::PER_ROW_SYMMETRIC_A7).count(),
        },
        "bytes_by_dtype": {"int8": bytes_of(albert_engine::config::DType::I8), "f16": bytes_of(albert_engine::config::DType::F16), "f32": bytes_of(albert_engine::config::DType::F32)},
        "tokenizer": tok.map(|t| serde_json::json!({"mode": format!("{:?}", t.mode()), "pieces": t.vocab_size()})),
        "tensors": tensors.len(),
    });
    if args.json {
        println!("{json}");
    } else {
        println!("{}", serde_json::to_string_pretty(&json)?);
    }
    if args.tensors {
        println!("{:<72} {:>5} {:>5} {:>16} {:>10}", "tensor", "dtype", "quant", "shape", "bytes");
        for t in &tensors {
            let shape = t.shape[..t.ndim as usize].iter().map(u32::to_string).collect::<Vec<_>>().join("x");
            println!("{:<72} {:>5} {:>5} {:>16} {:>10}", t.name, t.dtype.name(), t.quant, shape, t.data.len());
        }
    }
    Ok(())
}

#[derive(Parser, Debug)]
struct EvalArgs {
    /// The blob to evaluate.
    #[arg(long, env = "ALBERT_MODEL")]
    model: PathBuf,
    /// A reference blob (e.g. the f32 packing of the same checkpoint), run on --ids-file.
    #[arg(long, requires = "ids_file")]
    reference: Option<PathBuf>,
    /// Sequences for --reference: one line of comma- or space-separated ids each.
    #[arg(long)]
    ids_file: Option<PathBuf>,
    /// A goldens directory written by tests/reference/ (goldens.json + goldens.safetensors).
    #[arg(long, conflicts_with = "reference")]
    goldens: Option<PathBuf>,
    /// A held-out fill-mask set (heldout.json): top-1 / top-5 agreement with transformers.
    #[arg(long)]
    heldout: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

fn eval(args: &EvalArgs) -> Result<()> {
    use albert_tools::eval;
    let mapped = Model::open(&args.model)?;
    let model = mapped.model();
    let report = match (&args.reference, &args.goldens) {
        (Some(r), _) => {
            let reference = Model::open(r)?;
            let ids = args.ids_file.as_ref().context("--reference needs --ids-file")?;
            Some(eval::against_model(model, reference.model(), &eval::read_ids(ids)?)?)
        }
        (None, Some(dir)) => Some(eval::against_goldens(model, dir)?),
        (None, None) => None,
    };
    let heldout = match &args.heldout {
        Some(p) => Some(eval::heldout_agreement(model, p)?),
        None => None,
    };
    if report.is_none() && heldout.is_none() {
        bail!("nothing to compare with: give --reference with --ids-file, --goldens, or --heldout");
    }
    if args.json {
        println!("{}", serde_json::json!({"report": report, "heldout": heldout}));
        return Ok(());
    }
    if let Some(r) = &report {
        eval::print(r);
    }
    if let Some(h) = heldout {
        println!(
            "held-out fill-mask ({} sentences): top-1 agreement {:.2} %, top-5 overlap {:.2} %",
            h.sentences,
            100.0 * h.top1_agree,
            100.0 * h.top5_overlap
        );
        if !h.flip_gaps.is_empty() {
            println!(
                "  {} top-1 flips; transformers' own top-2 gap there is at most {:.3} nats",
                h.flip_gaps.len(),
                h.widest_flip_gap()
            );
        }
    }
    Ok(())
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    use std::io::ErrorKind::BrokenPipe;
    e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == BrokenPipe)
        || e.downcast_ref::<serde_json::Error>().and_then(serde_json::Error::io_error_kind) == Some(BrokenPipe)
}

/// `--help` and `--version` print as clap renders them; a wrong argument is one line on
/// stderr (clap's message without the usage block) and exit status 2.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let _ = e.print();
        return ExitCode::from(2);
    }
    let text = e.render().to_string();
    let message: Vec<&str> = text
        .lines()
        .take_while(|l| !l.starts_with("Usage:"))
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
        .collect();
    let message = message.join(" ");
    eprintln!("albert: {} (see albert --help)", message.trim_start_matches("error: ").replace("error: ", ""));
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let started = std::time::Instant::now();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    // Every model opened from here on runs on one pool of this many threads.
    let threads = cli.threads.map_or_else(albert_engine::threads::available, |t| t as usize);
    if let Err(e) = albert_engine::threads::set_default_threads(threads) {
        eprintln!("albert: error: starting {threads} threads: {e}");
        return ExitCode::FAILURE;
    }
    let r = match &cli.command {
        Command::Forward(a) => forward(a),
        Command::Tokenize(a) => tokenize(a),
        Command::Eval(a) => eval(a),
        Command::FillMask(a) => tasks::fill_mask(a),
        Command::Embed(a) => tasks::embed(a),
        Command::Classify(a) => tasks::classify(a),
        Command::TokenClassify(a) => tasks::token_classify(a),
        Command::Qa(a) => tasks::qa(a),
        Command::MultipleChoice(a) => tasks::multiple_choice(a),
        Command::Sop(a) => tasks::sop(a),
        Command::Inspect(a) => inspect(a),
        Command::Bench(a) => bench(a, started),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`albert forward ... | head`) is the reader's choice, not an error.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("albert: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
