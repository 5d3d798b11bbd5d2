//! The `quantize` binary (Hugging Face ALBERT checkpoint directory → one `.albq` blob): its
//! arguments and what `main` runs. The binary is `Args::parse()` then [`run`]; a test does
//! the same in-process:
//!
//! ```no_run
//! use albert_quantize::cli::{Args, run};
//! use clap::Parser;
//!
//! let args = Args::try_parse_from(["quantize", "tests/fixtures/albert_model", "-o", "m.albq", "-q"])?;
//! let mut stdout = Vec::new();
//! run(&args, &mut stdout, false)?;
//! # Ok::<(), anyhow::Error>(())
//! ```

use std::io::Write;
use std::path::PathBuf;

use albert_engine::config::DType;
use clap::{Parser, ValueEnum};

use crate::checkpoint::{self, Task};
use crate::{calib, gptq, pack, report, tokenizer, write};

/// Which tokenization semantics the packed tokenizer follows.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TokMode {
    /// `tokenizers` running `tokenizer.json` (what `AlbertTokenizerFast` gives).
    Fast,
    /// The slow SentencePiece-based `AlbertTokenizer` (from spiece.model; ids only, no offsets).
    Sentencepiece,
}

/// `--dtype`: precision of the matrix weights.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum WeightDtype {
    F32,
    F16,
    Int8,
}

/// Pack a Hugging Face ALBERT checkpoint (config.json + model.safetensors) into an .albq blob.
#[derive(Parser, Debug)]
#[command(name = "quantize", version)]
pub struct Args {
    /// Checkpoint directory, as `save_pretrained` or `huggingface-cli download` leaves it.
    pub checkpoint: PathBuf,
    /// Output blob.
    #[arg(short, long, default_value = "model.albq")]
    pub output: PathBuf,
    /// Precision of the matrix weights (biases and LayerNorms stay f32).
    #[arg(long, value_enum, default_value = "int8")]
    pub dtype: WeightDtype,
    /// Which head `classifier` is, when config.json's `architectures` does not say.
    #[arg(long, value_enum)]
    pub task: Option<Task>,
    /// Print only the summary line, not every tensor, and no progress bar.
    #[arg(short, long)]
    pub quiet: bool,
    /// Tokenizer semantics to pack (from `tokenizer.json`, else `spiece.model`).
    #[arg(long, value_enum, default_value = "fast")]
    pub tokenizer_mode: TokMode,
    /// Directory to take the tokenizer from (default: the checkpoint directory).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Pack no tokenizer even when the checkpoint has one.
    #[arg(long, conflicts_with = "tokenizer")]
    pub no_tokenizer: bool,
    /// int8: SmoothQuant strength α in [0, 1]: move activation outliers into the weights
    /// with per-input-channel factors a^α / w^(1-α) from calibration (off by default).
    #[arg(long, value_name = "ALPHA")]
    pub smooth: Option<f32>,
    /// int8: plain scheme (no outlier split, symmetric activations, max-abs weights).
    #[arg(long)]
    pub plain: bool,
    /// int8: symmetric per-token activations instead of centred ones.
    #[arg(long)]
    pub symmetric_act: bool,
    /// int8: centre each token's activations on its range's midpoint, off the grid
    /// (activation scheme 1, the default before 0 was put on the grid).
    #[arg(long)]
    pub midpoint_centre: bool,
    /// int8: weight scales from each row's max |w| instead of the least-squared-error search.
    #[arg(long)]
    pub maxabs_weights: bool,
    /// int8: compute in f32 the input channels whose calibrated max exceeds this many
    /// times the median (at most K/32 per GEMM); 0 disables.
    #[arg(long, value_name = "RATIO", default_value_t = pack::DEFAULT_OUTLIER_THRESHOLD)]
    pub outlier_threshold: f32,
    /// int8: linears (name suffixes, comma separated) whose GEMM takes int16 activations
    /// (e.g. `ffn_output`, at about half the int8 speed; `all` for every one); `none` for
    /// none.
    #[arg(long, value_delimiter = ',', value_name = "NAMES", default_value = "none")]
    pub act16: Vec<String>,
    /// int8: linears (name suffixes, comma separated; `all` for every one) whose GEMM
    /// takes 7-bit activations: faster on x86 CPUs with AVX2 but no VNNI (the `avx2`
    /// kernel then uses `vpmaddubsw`), a little less accurate; the same results on every
    /// CPU. `none` for none.
    #[arg(long, value_delimiter = ',', value_name = "NAMES", default_value = "none")]
    pub act7: Vec<String>,
    /// int8: round weights to the nearest level instead of GPTQ's error-compensating
    /// rounding (default: GPTQ on the encoder's linears, from the calibration inputs).
    #[arg(long)]
    pub nearest_rounding: bool,
    /// Calibration sequences: a file with one sequence of token ids per line (comma or
    /// space separated). Without it, built-in synthetic sequences are used.
    #[arg(long, value_name = "FILE", conflicts_with = "calib_text")]
    pub calib_ids: Option<PathBuf>,
    /// Calibration text: a file with one input per line (a tab separates a pair's two
    /// texts), tokenized with the checkpoint's tokenizer; up to 128 tokens each.
    #[arg(long, value_name = "FILE")]
    pub calib_text: Option<PathBuf>,
    /// Print quantization error: SQNR per tensor, and per GEMM and per iteration of the
    /// shared layer against the f32 model on the calibration sequences.
    #[arg(long)]
    pub report: bool,
    /// With --report: print the report as one JSON object instead of tables.
    #[arg(long, requires = "report")]
    pub json: bool,
}

/// A progress bar on stderr; hidden with -q, --json, or when stderr is not a terminal.
fn progress_bar(hidden: bool) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if hidden || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// Runs `quantize` with `args`: writes the blob to `args.output` and to `out` what the
/// binary prints on stdout (the tensor table, the report, the summary line). `progress`:
/// draw a progress bar on stderr when it is a terminal (never with -q or --json).
pub fn run(args: &Args, out: &mut dyn Write, progress: bool) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let bar = progress_bar(!progress || args.quiet || args.json);
    bar.set_message(format!("reading {}", args.checkpoint.display()));
    let ck = checkpoint::load(&args.checkpoint, args.task)?;
    let dtype = match args.dtype {
        WeightDtype::F32 => DType::F32,
        WeightDtype::F16 => DType::F16,
        WeightDtype::Int8 => DType::I8,
    };
    let mut opts = pack::PackOptions::new(dtype);
    let mut tok_line = String::from("no tokenizer");
    if !args.no_tokenizer {
        let dir = args.tokenizer.as_deref().unwrap_or(&args.checkpoint);
        let mode = match args.tokenizer_mode {
            TokMode::Fast => tokenizer::TokenizerMode::Fast,
            TokMode::Sentencepiece => tokenizer::TokenizerMode::SentencePiece,
        };
        match tokenizer::load_dir(dir, mode)? {
            Some(spec) => {
                if spec.vocab.len() > ck.config.vocab_size as usize {
                    anyhow::bail!(
                        "the tokenizer has {} pieces but the model's vocab_size is {}",
                        spec.vocab.len(),
                        ck.config.vocab_size
                    );
                }
                let section = tokenizer::build_section(&spec)?;
                tok_line = format!("tokenizer ({} pieces, {} bytes)", spec.vocab.len(), section.len());
                opts.tokenizer = Some(section);
            }
            None if args.tokenizer.is_some() => {
                anyhow::bail!("{} has neither tokenizer.json nor spiece.model", dir.display())
            }
            None => {}
        }
    }
    if let Some(a) = args.smooth
        && !(0.0..=1.0).contains(&a)
    {
        anyhow::bail!("--smooth must be between 0 and 1, got {a}");
    }
    if args.plain {
        opts = pack::PackOptions { tokenizer: opts.tokenizer.take(), ..pack::PackOptions::plain(dtype) };
    }
    let int8 = dtype == DType::I8;
    opts.smooth_alpha = args.smooth.filter(|_| int8);
    if !args.plain {
        opts.outlier_threshold = (args.outlier_threshold > 0.0 && int8).then_some(args.outlier_threshold);
        opts.centred = int8 && !args.symmetric_act;
        opts.zero_on_grid = opts.centred && !args.midpoint_centre;
    }
    if !args.plain {
        opts.mse_weights = int8 && !args.maxabs_weights;
    }
    opts.gptq = int8 && !args.plain && !args.nearest_rounding;
    // `all` is the empty suffix, which every linear's name ends with.
    let names = |list: &[String]| -> Vec<String> {
        if args.plain || list.iter().any(|a| a == "none") || !int8 {
            Vec::new()
        } else {
            list.iter().map(|a| if a == "all" { String::new() } else { a.clone() }).collect()
        }
    };
    opts.act16 = names(&args.act16);
    opts.act7 = names(&args.act7);
    let calib_seqs = match (&args.calib_ids, &args.calib_text) {
        (Some(path), _) => Some(calib::read_ids(path)?),
        (None, Some(path)) => {
            let section = opts.tokenizer.as_deref().ok_or_else(|| {
                anyhow::anyhow!("--calib-text needs a tokenizer (tokenizer.json or spiece.model in the checkpoint)")
            })?;
            let max_len = (ck.config.max_position_embeddings as usize).min(128);
            Some(calib::text_ids(section, path, max_len)?)
        }
        (None, None) => None,
    };
    // Calibration statistics come from the f32 model on the calibration sequences.
    bar.set_message("calibrating");
    let f32_blob = if opts.smooth_alpha.is_some() || opts.outlier_threshold.is_some() || opts.gptq || args.report {
        let (b, _) = pack::pack(&ck, DType::F32)?;
        Some(pack::AlignedBlob::new(&b))
    } else {
        None
    };
    let seqs = match (&calib_seqs, &f32_blob) {
        (Some(s), _) => s.clone(),
        (None, Some(_)) => {
            let (n, len) = pack::SYNTHETIC_CALIB;
            calib::synthetic_ids(&ck.config, n, len)
        }
        _ => Vec::new(),
    };
    if let (Some(f), true) = (&f32_blob, opts.smooth_alpha.is_some() || opts.outlier_threshold.is_some()) {
        let model = albert_engine::Model::from_bytes(f.as_bytes())?;
        opts.absmax = Some(calib::collect_absmax(&model, &seqs)?);
    }
    if let (Some(f), true) = (&f32_blob, opts.gptq) {
        let model = albert_engine::Model::from_bytes(f.as_bytes())?;
        opts.hessians = Some(std::sync::Arc::new(gptq::collect(&model, &seqs)?));
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{bar:32}] {pos}/{len} tensors  {elapsed}  {wide_msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let (bytes, summary) = pack::pack_with_progress(&ck, &opts, &mut |done, total, name| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(name.to_string());
    })?;
    bar.finish_and_clear();
    write::write_atomic(&args.output, &bytes)?;
    let end_to_end = match (&f32_blob, args.report) {
        (Some(f), true) => {
            let reference = albert_engine::Model::from_bytes(f.as_bytes())?;
            let q = pack::AlignedBlob::new(&bytes);
            let quantized = albert_engine::Model::from_bytes(q.as_bytes())?;
            Some(report::end_to_end(&reference, &quantized, &seqs)?)
        }
        _ => None,
    };
    if args.json {
        let tensors: Vec<serde_json::Value> = summary
            .iter()
            .map(|p| {
                serde_json::json!({"name": p.name, "dtype": p.dtype.name(), "shape": p.shape, "bytes": p.bytes,
                    "sqnr_db": if p.sqnr_db.is_finite() { Some(p.sqnr_db) } else { None }})
            })
            .collect();
        let json = serde_json::json!({
            "output": args.output, "bytes": bytes.len(), "dtype": dtype.name(), "smooth_alpha": opts.smooth_alpha,
            "calibration_sequences": seqs.len(), "tensors": tensors, "end_to_end": end_to_end,
        });
        writeln!(out, "{json}")?;
        return Ok(());
    }
    if !args.quiet {
        writeln!(out, "{:<72} {:>5} {:>16} {:>10} {:>9}", "tensor", "dtype", "shape", "bytes", "SQNR dB")?;
        for p in &summary {
            let shape = p.shape.iter().map(u32::to_string).collect::<Vec<_>>().join("x");
            let sqnr = if p.sqnr_db.is_finite() { format!("{:.2}", p.sqnr_db) } else { "-".into() };
            writeln!(out, "{:<72} {:>5} {:>16} {:>10} {:>9}", p.name, p.dtype.name(), shape, p.bytes, sqnr)?;
        }
    }
    if let Some(r) = &end_to_end {
        report::print_end_to_end(r, out)?;
        writeln!(out)?;
    }
    let c = &ck.config;
    let f32_bytes: usize = ck.tensors.values().map(|t| 4 * t.values.len()).sum();
    writeln!(
        out,
        "wrote {}: {:?} (hidden {}, {} iterations over {} group(s)), {} tensors, {} weights, {}, {} bytes \
         ({:.1}x smaller than the f32 weights) in {:.1} s",
        args.output.display(),
        ck.task,
        c.hidden_size,
        c.num_hidden_layers,
        c.num_hidden_groups,
        summary.len(),
        dtype.name(),
        tok_line,
        bytes.len(),
        f32_bytes as f64 / bytes.len() as f64,
        started.elapsed().as_secs_f64()
    )?;
    Ok(())
}
