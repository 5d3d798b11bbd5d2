//! `albert`: run an `.albq` model from the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use albert_engine::{Heads, Inputs, Model};
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use serde_json::{Map, Value, json};

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

fn rows(v: &[f32], width: usize) -> Value {
    Value::Array(v.chunks(width).map(|r| json!(r)).collect())
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
        let mut out = Map::new();
        out.insert("last_hidden_state".into(), rows(enc.last_hidden_state(), h));
        if c.heads.has(Heads::POOLER) {
            let mut p = vec![0f32; h];
            model.pooler_output(&mut enc, 0, &mut p)?;
            out.insert("pooler_output".into(), json!(p));
        }
        if c.heads.has(Heads::MLM) {
            let positions: Vec<usize> =
                if args.mask_positions.is_empty() { (0..ids.len()).collect() } else { args.mask_positions.clone() };
            let mut logits = vec![0f32; c.vocab_size as usize];
            let mut all = Vec::new();
            for &p in &positions {
                model.mlm_logits(&mut enc, 0, p, &mut logits)?;
                all.push(json!(logits));
            }
            out.insert("prediction_logits".into(), Value::Array(all));
        }
        if c.heads.has(Heads::SOP) {
            let mut l = [0f32; 2];
            model.sop_logits(&mut enc, 0, &mut l)?;
            out.insert("sop_logits".into(), json!(l));
        }
        let nl = c.num_labels as usize;
        if c.heads.has(Heads::SEQ_CLS) {
            let mut l = vec![0f32; nl];
            model.classify(&mut enc, 0, &mut l)?;
            out.insert("logits".into(), json!(l));
        }
        if c.heads.has(Heads::MULTIPLE_CHOICE) {
            out.insert("logits".into(), json!([model.choice_logit(&mut enc, 0)?]));
        }
        if c.heads.has(Heads::TOKEN_CLS) {
            let mut all = vec![0f32; ids.len() * nl];
            for (p, row) in all.chunks_mut(nl).enumerate() {
                model.classify_token(&mut enc, 0, p, row)?;
            }
            out.insert("logits".into(), rows(&all, nl));
        }
        if c.heads.has(Heads::QA) {
            let (mut s, mut e) = (Vec::new(), Vec::new());
            for p in 0..ids.len() {
                let (a, b) = model.qa_logits(&mut enc, 0, p)?;
                s.push(a);
                e.push(b);
            }
            out.insert("start_logits".into(), json!(s));
            out.insert("end_logits".into(), json!(e));
        }
        println!("{}", Value::Object(out));
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match &cli.command {
        Command::Forward(a) => forward(a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("albert: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
