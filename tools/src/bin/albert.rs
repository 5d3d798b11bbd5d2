//! `albert`: run an `.albq` model from the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use albert_engine::{Heads, Inputs, Model};
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use serde::Serialize;
use serde::ser::SerializeMap;
use std::io::Write;

#[derive(Parser, Debug)]
#[command(version, about = "Run an int8 ALBERT model packed by `quantize`")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Raw model outputs for token ids, with transformers' output names.
    Forward(ForwardArgs),
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

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    use std::io::ErrorKind::BrokenPipe;
    e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == BrokenPipe)
        || e.downcast_ref::<serde_json::Error>().and_then(serde_json::Error::io_error_kind) == Some(BrokenPipe)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match &cli.command {
        Command::Forward(a) => forward(a),
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
