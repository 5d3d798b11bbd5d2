//! The `albert` subcommands that mirror Hugging Face pipelines: their arguments, reading
//! one input from the command line or many from stdin, and printing results (a table
//! for people, JSON with transformers' field names for scripts). The post-processing
//! itself lives in `albert_tools::pipelines`.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use albert_engine::Model;
use albert_tools::pipelines::{Aggregation, Pipeline, Pooling, QaOptions, embed::Embedding};
use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use serde::Deserialize;
use serde::Serialize;

use super::DEFAULT_MODEL;

/// Arguments every pipeline subcommand takes.
#[derive(Args, Debug)]
pub struct Common {
    /// The .albq blob (default: the bundled model).
    #[arg(long, env = "ALBERT_MODEL", default_value = DEFAULT_MODEL)]
    pub model: PathBuf,
    /// Print JSON with transformers' field names.
    #[arg(long)]
    pub json: bool,
    /// Read many inputs from stdin, one per line (plain text, or a JSON object with the
    /// task's fields), and print one JSON result per line. `-` as the input does the same.
    #[arg(long)]
    pub stdin: bool,
    /// Sequences per engine pass.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
}

/// One input of a text task: `{"text": …}` or `{"text": …, "text_pair": …}`.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
struct TextInput {
    text: String,
    #[serde(default)]
    text_pair: Option<String>,
}

/// One input of `qa`: `{"question": …, "context": …}`.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
struct QaInput {
    question: String,
    context: String,
}

/// One input of `multiple-choice`: `{"prompt": …, "choices": [...]}`.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
struct ChoiceInput {
    prompt: String,
    choices: Vec<String>,
}

/// One result printed bare, several as a list: the shape transformers returns for one
/// [MASK] or one answer.
#[derive(Serialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn new(mut v: Vec<T>) -> Self {
        if v.len() == 1 { OneOrMany::One(v.remove(0)) } else { OneOrMany::Many(v) }
    }

    fn items(&self) -> &[T] {
        match self {
            OneOrMany::One(x) => std::slice::from_ref(x),
            OneOrMany::Many(v) => v,
        }
    }
}

/// Parses stdin line `n` (1-based) as JSON `T`, or as plain text through `plain`.
fn parse_line<T: for<'de> Deserialize<'de>>(line: &str, n: usize, plain: &dyn Fn(&str) -> Result<T>) -> Result<T> {
    if line.trim_start().starts_with('{') {
        serde_json::from_str(line).with_context(|| format!("stdin line {n}: not a valid input object"))
    } else {
        plain(line).with_context(|| format!("stdin line {n}"))
    }
}

/// Runs a task: on the single input `one`, or (with `--stdin` or `-`) on every line of
/// stdin, `batch_size` lines at a time. `task` maps inputs to results; `human` prints one
/// result for people.
fn drive<I, O: Serialize>(
    common: &Common,
    one: Option<I>,
    plain: &dyn Fn(&str) -> Result<I>,
    mut task: impl FnMut(&mut Pipeline<'_, '_>, &[I]) -> Result<Vec<O>>,
    human: impl Fn(&mut dyn Write, &I, &O) -> Result<()>,
) -> Result<()>
where
    I: for<'de> Deserialize<'de>,
{
    let mapped = Model::open(&common.model)?;
    let mut p = Pipeline::new(mapped.model())?;
    p.batch_size = common.batch_size as usize;
    let mut stdout = std::io::stdout().lock();
    let Some(one) = one else {
        let stdin = std::io::stdin().lock();
        let mut batch = Vec::new();
        let mut flush = |batch: &mut Vec<I>, p: &mut Pipeline<'_, '_>| -> Result<()> {
            for r in task(p, batch)? {
                serde_json::to_writer(&mut stdout, &r)?;
                writeln!(stdout)?;
            }
            stdout.flush()?;
            batch.clear();
            Ok(())
        };
        for (n, line) in stdin.lines().enumerate() {
            let line = line.context("reading stdin")?;
            if line.trim().is_empty() {
                continue;
            }
            batch.push(parse_line(&line, n + 1, plain)?);
            if batch.len() == p.batch_size {
                flush(&mut batch, &mut p)?;
            }
        }
        return flush(&mut batch, &mut p);
    };
    let out = task(&mut p, std::slice::from_ref(&one))?.pop().context("no result")?;
    if common.json {
        serde_json::to_writer(&mut stdout, &out)?;
        writeln!(stdout)?;
    } else {
        human(&mut stdout, &one, &out)?;
    }
    Ok(())
}

/// The input text, or `None` when it comes from stdin (`--stdin` or `-`).
fn single<T>(common: &Common, text: Option<&str>, what: &str, make: impl FnOnce(&str) -> T) -> Result<Option<T>> {
    match text {
        _ if common.stdin => Ok(None),
        Some("-") => Ok(None),
        Some(t) => Ok(Some(make(t))),
        None => bail!("give {what} as an argument, or --stdin to read inputs from stdin"),
    }
}

// ---- fill-mask ----------------------------------------------------------------------

#[derive(Args, Debug)]
pub struct FillMaskArgs {
    #[command(flatten)]
    common: Common,
    /// How many candidates per [MASK].
    #[arg(long, default_value_t = 5)]
    top_k: usize,
    /// Text with one or more [MASK] tokens (`-`: read texts from stdin).
    text: Option<String>,
}

pub fn fill_mask(a: &FillMaskArgs) -> Result<()> {
    let one =
        single(&a.common, a.text.as_deref(), "a text with [MASK]", |t| TextInput { text: t.into(), text_pair: None })?;
    drive(
        &a.common,
        one,
        &|l| Ok(TextInput { text: l.into(), text_pair: None }),
        |p, xs: &[TextInput]| {
            if xs.iter().any(|x| x.text_pair.is_some()) {
                bail!("fill-mask takes one text, not a pair");
            }
            let texts: Vec<&str> = xs.iter().map(|x| x.text.as_str()).collect();
            // transformers returns a flat list for one mask and a list per mask otherwise.
            Ok(p.fill_mask_batch(&texts, a.top_k)?.into_iter().map(OneOrMany::new).collect())
        },
        |w, _, r| {
            let per_mask = r.items();
            for (m, cands) in per_mask.iter().enumerate() {
                if per_mask.len() > 1 {
                    writeln!(w, "[MASK] #{}", m + 1)?;
                }
                for c in cands {
                    writeln!(w, "{:>7.4}  {:<16} {}", c.score, c.token_str, c.sequence)?;
                }
            }
            Ok(())
        },
    )
}

// ---- embed --------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, ValueEnum)]
enum PoolingArg {
    /// One vector per token (transformers' feature-extraction).
    None,
    /// The [CLS] token's vector.
    Cls,
    /// The mean of the token vectors.
    Mean,
}

#[derive(Args, Debug)]
pub struct EmbedArgs {
    #[command(flatten)]
    common: Common,
    /// How to turn token vectors into the output.
    #[arg(long, value_enum, default_value = "none")]
    pooling: PoolingArg,
    /// Scale each output vector to unit L2 norm.
    #[arg(long)]
    normalize: bool,
    /// The text (`-`: read texts from stdin).
    text: Option<String>,
}

pub fn embed(a: &EmbedArgs) -> Result<()> {
    let pooling = match a.pooling {
        PoolingArg::None => Pooling::None,
        PoolingArg::Cls => Pooling::Cls,
        PoolingArg::Mean => Pooling::Mean,
    };
    let one = single(&a.common, a.text.as_deref(), "a text", |t| TextInput { text: t.into(), text_pair: None })?;
    drive(
        &a.common,
        one,
        &|l| Ok(TextInput { text: l.into(), text_pair: None }),
        |p, xs: &[TextInput]| {
            if xs.iter().any(|x| x.text_pair.is_some()) {
                bail!("embed takes one text, not a pair");
            }
            let texts: Vec<&str> = xs.iter().map(|x| x.text.as_str()).collect();
            p.embed_batch(&texts, pooling, a.normalize)
        },
        |w, _, e| {
            let line = |w: &mut dyn Write, v: &[f32]| -> Result<()> {
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                let head: Vec<String> = v.iter().take(6).map(|x| format!("{x:>8.4}")).collect();
                writeln!(w, "[{} …] ({} values, L2 norm {norm:.4})", head.join(" "), v.len())?;
                Ok(())
            };
            match e {
                Embedding::Pooled(v) => line(w, v)?,
                Embedding::Tokens(rows) => {
                    for (i, r) in rows.iter().enumerate() {
                        write!(w, "{i:>4}  ")?;
                        line(w, r)?;
                    }
                }
            }
            Ok(())
        },
    )
}

// ---- classify -----------------------------------------------------------------------

#[derive(Args, Debug)]
pub struct ClassifyArgs {
    #[command(flatten)]
    common: Common,
    /// A second text, classifying the pair (`[CLS] text [SEP] pair [SEP]`).
    #[arg(long)]
    pair: Option<String>,
    /// How many labels to print, best first (default 1; 0 for all).
    #[arg(long, default_value_t = 1)]
    top_k: usize,
    /// The text (`-`: read texts, or {"text", "text_pair"} objects, from stdin).
    text: Option<String>,
}

pub fn classify(a: &ClassifyArgs) -> Result<()> {
    let one =
        single(&a.common, a.text.as_deref(), "a text", |t| TextInput { text: t.into(), text_pair: a.pair.clone() })?;
    let top_k = (a.top_k > 0).then_some(a.top_k);
    drive(
        &a.common,
        one,
        &|l| Ok(TextInput { text: l.into(), text_pair: None }),
        |p, xs: &[TextInput]| {
            let inputs: Vec<(&str, Option<&str>)> =
                xs.iter().map(|x| (x.text.as_str(), x.text_pair.as_deref())).collect();
            p.classify_batch(&inputs, top_k)
        },
        |w, _, labels| {
            for l in labels {
                writeln!(w, "{:>7.4}  {}", l.score, l.label)?;
            }
            Ok(())
        },
    )
}

// ---- token-classify -----------------------------------------------------------------

#[derive(Clone, Copy, Debug, ValueEnum)]
enum AggregationArg {
    None,
    Simple,
    First,
    Average,
    Max,
}

#[derive(Args, Debug)]
pub struct TokenClassifyArgs {
    #[command(flatten)]
    common: Common,
    /// How tokens are grouped into entities (transformers' aggregation_strategy).
    #[arg(long, value_enum, default_value = "none")]
    aggregation: AggregationArg,
    /// The text (`-`: read texts from stdin).
    text: Option<String>,
}

pub fn token_classify(a: &TokenClassifyArgs) -> Result<()> {
    let aggregation = match a.aggregation {
        AggregationArg::None => Aggregation::None,
        AggregationArg::Simple => Aggregation::Simple,
        AggregationArg::First => Aggregation::First,
        AggregationArg::Average => Aggregation::Average,
        AggregationArg::Max => Aggregation::Max,
    };
    let one = single(&a.common, a.text.as_deref(), "a text", |t| TextInput { text: t.into(), text_pair: None })?;
    drive(
        &a.common,
        one,
        &|l| Ok(TextInput { text: l.into(), text_pair: None }),
        |p, xs: &[TextInput]| {
            if xs.iter().any(|x| x.text_pair.is_some()) {
                bail!("token-classify takes one text, not a pair");
            }
            let texts: Vec<&str> = xs.iter().map(|x| x.text.as_str()).collect();
            p.token_classify_batch(&texts, aggregation)
        },
        |w, _, entities| {
            writeln!(w, "{:<12} {:>7} {:>9}  word", "entity", "score", "chars")?;
            for e in entities {
                let label = e.entity.as_deref().or(e.entity_group.as_deref()).unwrap_or("");
                let span = format!("{}..{}", e.start, e.end);
                writeln!(w, "{label:<12} {:>7.4} {span:>9}  {}", e.score, e.word)?;
            }
            Ok(())
        },
    )
}

// ---- qa -----------------------------------------------------------------------------

#[derive(Args, Debug)]
pub struct QaArgs {
    #[command(flatten)]
    common: Common,
    /// The question (with --stdin: plain lines are questions about --context).
    #[arg(long)]
    question: Option<String>,
    /// The text holding the answer.
    #[arg(long)]
    context: Option<String>,
    /// Answers to print, best first.
    #[arg(long, default_value_t = 1)]
    top_k: usize,
    /// Tokens per window of a long context, question and special tokens included
    /// (default: the model's maximum, at most 384).
    #[arg(long)]
    max_seq_len: Option<usize>,
    /// Tokens shared by consecutive windows (default: min(128, max_seq_len / 2)).
    #[arg(long)]
    doc_stride: Option<usize>,
    /// Longest answer, in tokens.
    #[arg(long, default_value_t = 15)]
    max_answer_len: usize,
}

pub fn qa(a: &QaArgs) -> Result<()> {
    let one = match (&a.question, &a.context) {
        _ if a.common.stdin => None,
        (Some(q), _) if q == "-" => None,
        (Some(q), Some(c)) => Some(QaInput { question: q.clone(), context: c.clone() }),
        _ => bail!("give --question and --context, or --stdin to read {{\"question\", \"context\"}} lines"),
    };
    let context = a.context.clone();
    let plain = move |l: &str| match &context {
        Some(c) => Ok(QaInput { question: l.into(), context: c.clone() }),
        None => bail!("a plain line is a question about --context, which is missing; or give a JSON object"),
    };
    drive(
        &a.common,
        one,
        &plain,
        |p, xs: &[QaInput]| {
            let max_seq_len = a.max_seq_len.unwrap_or(p.max_length().min(384));
            let opts = QaOptions {
                top_k: a.top_k,
                max_seq_len,
                doc_stride: a.doc_stride.unwrap_or((max_seq_len / 2).min(128)),
                max_answer_len: a.max_answer_len,
            };
            let items: Vec<(&str, &str)> = xs.iter().map(|x| (x.question.as_str(), x.context.as_str())).collect();
            // One answer prints as an object, several as a list (as transformers returns them).
            Ok(p.qa_batch(&items, &opts)?.into_iter().map(OneOrMany::new).collect())
        },
        |w, _, r| {
            for x in r.items() {
                let span = format!("{}..{}", x.start, x.end);
                writeln!(w, "{:>7.4} {span:>9}  {}", x.score, x.answer)?;
            }
            Ok(())
        },
    )
}

// ---- multiple-choice ----------------------------------------------------------------

#[derive(Args, Debug)]
pub struct ChoiceArgs {
    #[command(flatten)]
    common: Common,
    /// The prompt (question or context) every choice is paired with.
    #[arg(long)]
    prompt: Option<String>,
    /// One choice; repeat for each.
    #[arg(long = "choice")]
    choices: Vec<String>,
}

pub fn multiple_choice(a: &ChoiceArgs) -> Result<()> {
    let one = match &a.prompt {
        _ if a.common.stdin => None,
        Some(p) if p == "-" => None,
        Some(p) if a.choices.len() >= 2 => Some(ChoiceInput { prompt: p.clone(), choices: a.choices.clone() }),
        Some(_) => bail!("give at least two --choice"),
        None => bail!("give --prompt and --choice …, or --stdin to read {{\"prompt\", \"choices\"}} lines"),
    };
    drive(
        &a.common,
        one,
        &|_| bail!("multiple-choice reads JSON objects {{\"prompt\": …, \"choices\": […]}}"),
        |p, xs: &[ChoiceInput]| {
            let items: Vec<(&str, Vec<&str>)> =
                xs.iter().map(|x| (x.prompt.as_str(), x.choices.iter().map(String::as_str).collect())).collect();
            p.multiple_choice_batch(&items)
        },
        |w, input, r| {
            for (i, c) in input.choices.iter().enumerate() {
                let mark = if i == r.best { "*" } else { " " };
                writeln!(w, "{mark} {:>7.4} {:>9.4}  {c}", r.scores[i], r.logits[i])?;
            }
            Ok(())
        },
    )
}

// ---- sop ----------------------------------------------------------------------------

#[derive(Args, Debug)]
pub struct SopArgs {
    #[command(flatten)]
    common: Common,
    /// The first text (`-`: read {"text", "text_pair"} objects from stdin).
    text: Option<String>,
    /// The text that may follow it.
    text_pair: Option<String>,
}

pub fn sop(a: &SopArgs) -> Result<()> {
    let one = match (&a.text, &a.text_pair) {
        _ if a.common.stdin => None,
        (Some(t), _) if t == "-" => None,
        (Some(t), Some(p)) => Some(TextInput { text: t.clone(), text_pair: Some(p.clone()) }),
        _ => bail!("give two texts (TEXT TEXT_PAIR), or --stdin to read {{\"text\", \"text_pair\"}} lines"),
    };
    drive(
        &a.common,
        one,
        &|_| bail!("sop reads JSON objects {{\"text\": …, \"text_pair\": …}}"),
        |p, xs: &[TextInput]| {
            let pairs = xs
                .iter()
                .map(|x| Ok((x.text.as_str(), x.text_pair.as_deref().context("sop needs a text_pair")?)))
                .collect::<Result<Vec<_>>>()?;
            p.sop_batch(&pairs)
        },
        |w, _, r| {
            writeln!(w, "{} ({:.4}; in-order {:.4}, swapped {:.4})", r.label, r.score, r.scores[0], r.scores[1])?;
            Ok(())
        },
    )
}
