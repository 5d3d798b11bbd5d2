//! The `albert` binary's pipeline subcommands against transformers' pipelines: every
//! subcommand runs on f32 blobs packed from `tests/fixtures/pipelines` and its `--json`
//! must give the labels, tokens and spans of `goldens.json` exactly and every score within
//! 1e-3 (goldens from `tests/reference/make_pipeline_fixtures.py`). Also: batches from
//! stdin, and one-line errors.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use albert_engine::config::DType;
use albert_quantize::{checkpoint, pack, tokenizer};
use serde_json::{Value, json};

const TOL: f64 = 1e-3;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn goldens() -> &'static Value {
    static G: OnceLock<Value> = OnceLock::new();
    G.get_or_init(|| {
        let path = repo().join("tests/fixtures/pipelines/goldens.json");
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_slice(&bytes).expect("goldens.json")
    })
}

fn cases(task: &str) -> &'static [Value] {
    let c = goldens()[task].as_array().unwrap_or_else(|| panic!("goldens.json has no `{task}`"));
    assert!(!c.is_empty(), "goldens.json: no {task} cases");
    c
}

/// The f32 blob of fixture `name` (packed once per test process, as `quantize --dtype f32
/// --tokenizer tests/fixtures/tokenizer` would).
fn blob(name: &str) -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let spec = tokenizer::load_dir(&repo().join("tests/fixtures/tokenizer"), tokenizer::TokenizerMode::Fast)
            .unwrap()
            .expect("tests/fixtures/tokenizer has a tokenizer");
        let section = tokenizer::build_section(&spec).unwrap();
        for name in ["pretraining", "seq_cls", "token_cls", "qa", "multiple_choice"] {
            let ck = checkpoint::load(&repo().join("tests/fixtures/pipelines").join(name), None).unwrap();
            let opts = pack::PackOptions { tokenizer: Some(section.clone()), ..pack::PackOptions::new(DType::F32) };
            let (bytes, _) = pack::pack_with(&ck, &opts).unwrap();
            std::fs::write(dir.path().join(format!("{name}.albq")), bytes).unwrap();
        }
        dir
    });
    dir.path().join(format!("{name}.albq"))
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn albert(args: &[&str], stdin: Option<&str>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_albert"))
        .args(args)
        .env_remove("ALBERT_MODEL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn albert");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Runs `albert args` and parses its stdout as one JSON value per line.
fn json_lines(args: &[&str], stdin: Option<&str>) -> Vec<Value> {
    let r = albert(args, stdin);
    assert_eq!(r.code, Some(0), "albert {args:?} failed: {}", r.stderr);
    r.stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{args:?}: `{l}`: {e}"))).collect()
}

fn json_out(args: &[&str]) -> Value {
    let mut v = json_lines(args, None);
    assert_eq!(v.len(), 1, "albert {args:?}: one JSON line expected");
    v.remove(0)
}

/// Largest score difference seen by one subcommand, with the command that gave it.
#[derive(Default)]
struct Worst(f64, String);

impl Worst {
    fn see(&mut self, diff: f64, cmd: &str) {
        if diff > self.0 {
            *self = Worst(diff, cmd.to_string());
        }
    }

    fn report(&self, task: &str) {
        println!("{task}: worst |score - transformers| = {:.2e}  ({})", self.0, self.1);
        assert!(self.0 <= TOL, "{task}: score difference {:e} > {TOL:e} ({})", self.0, self.1);
    }
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Compares `got` with `want` recursively: numbers under a key in `scored` within TOL
/// (the largest difference goes to `worst`), everything else exactly.
fn compare(got: &Value, want: &Value, scored: &[&str], key: &str, worst: &mut Worst, cmd: &str) {
    match (got, want) {
        (Value::Array(g), Value::Array(w)) => {
            assert_eq!(g.len(), w.len(), "{cmd}: `{key}` has {} entries, transformers {}", g.len(), w.len());
            for (a, b) in g.iter().zip(w) {
                compare(a, b, scored, key, worst, cmd);
            }
        }
        (Value::Object(g), Value::Object(w)) => {
            let (mut gk, mut wk): (Vec<_>, Vec<_>) = (g.keys().collect(), w.keys().collect());
            gk.sort();
            wk.sort();
            assert_eq!(gk, wk, "{cmd}: fields differ");
            for (k, b) in w {
                compare(&g[k], b, scored, k, worst, cmd);
            }
        }
        (Value::Number(_), Value::Number(_)) if scored.contains(&key) => {
            let d = (num(got) - num(want)).abs();
            worst.see(d, cmd);
            assert!(d <= TOL, "{cmd}: `{key}` {got} vs transformers {want}");
        }
        _ => assert_eq!(got, want, "{cmd}: `{key}` differs"),
    }
}

fn cmdline(args: &[&str]) -> String {
    let quoted: Vec<String> =
        args.iter().map(|a| if a.contains(' ') { format!("{a:?}") } else { a.to_string() }).collect();
    format!("albert {}", quoted.join(" "))
}

#[test]
fn fill_mask_matches_transformers() {
    let mut worst = Worst::default();
    let model = blob("pretraining");
    for c in cases("fill_mask") {
        let k = c["top_k"].to_string();
        let args =
            ["fill-mask", "--model", model.to_str().unwrap(), "--top-k", &k, "--json", c["text"].as_str().unwrap()];
        compare(&json_out(&args), &c["output"], &["score"], "", &mut worst, &cmdline(&args));
    }
    worst.report("fill-mask");
}

#[test]
fn embed_matches_feature_extraction() {
    let mut worst = Worst::default();
    let model = blob("pretraining");
    for c in cases("feature_extraction") {
        let text = c["text"].as_str().unwrap();
        for (flags, want) in [
            (&[][..], &c["output"][0]),
            (&["--pooling", "cls"][..], &c["cls"]),
            (&["--pooling", "mean"][..], &c["mean"]),
            (&["--pooling", "mean", "--normalize"][..], &c["mean_normalized"]),
        ] {
            let mut args = vec!["embed", "--model", model.to_str().unwrap(), "--json"];
            args.extend_from_slice(flags);
            args.push(text);
            compare(&json_out(&args), want, &[""], "", &mut worst, &cmdline(&args));
        }
    }
    worst.report("embed");
}

#[test]
fn classify_matches_text_classification() {
    let mut worst = Worst::default();
    let model = blob("seq_cls");
    for c in cases("text_classification") {
        // Without top_k the pipeline gives the best label ([{…}], or {…} for a pair); with
        // top_k=None every label.
        let k = match c.get("top_k") {
            None => "1".to_string(),
            Some(Value::Null) => "0".to_string(),
            Some(k) => k.to_string(),
        };
        let mut args = vec!["classify", "--model", model.to_str().unwrap(), "--json", "--top-k", &k];
        if let Some(p) = c["text_pair"].as_str() {
            args.extend(["--pair", p]);
        }
        args.push(c["text"].as_str().unwrap());
        let want = match &c["output"] {
            Value::Object(_) => json!([c["output"]]),
            v => v.clone(),
        };
        compare(&json_out(&args), &want, &["score"], "", &mut worst, &cmdline(&args));
    }
    worst.report("classify");
}

#[test]
fn token_classify_matches_token_classification() {
    let mut worst = Worst::default();
    let model = blob("token_cls");
    let mut seen = std::collections::BTreeSet::new();
    for c in cases("token_classification") {
        let agg = c["aggregation"].as_str().unwrap();
        seen.insert(agg);
        let args = [
            "token-classify",
            "--model",
            model.to_str().unwrap(),
            "--json",
            "--aggregation",
            agg,
            c["text"].as_str().unwrap(),
        ];
        let want = &c["output"];
        assert!(want.as_array().is_some_and(|a| !a.is_empty()), "a golden with no entities tests nothing");
        compare(&json_out(&args), want, &["score"], "", &mut worst, &cmdline(&args));
    }
    assert_eq!(seen.len(), 5, "every aggregation strategy is covered");
    worst.report("token-classify");
}

fn qa_args<'a>(c: &'a Value, model: &'a str, keep: &'a mut Vec<String>) -> Vec<&'a str> {
    *keep = ["top_k", "max_seq_len", "doc_stride", "max_answer_len"].iter().map(|k| c[*k].to_string()).collect();
    vec![
        "qa",
        "--model",
        model,
        "--json",
        "--question",
        c["question"].as_str().unwrap(),
        "--context",
        c["context"].as_str().unwrap(),
        "--top-k",
        &keep[0],
        "--max-seq-len",
        &keep[1],
        "--doc-stride",
        &keep[2],
        "--max-answer-len",
        &keep[3],
    ]
}

#[test]
fn qa_matches_question_answering() {
    let mut worst = Worst::default();
    let model = blob("qa");
    let mut chunked = 0;
    for c in cases("question_answering") {
        let mut keep = Vec::new();
        let args = qa_args(c, model.to_str().unwrap(), &mut keep);
        compare(&json_out(&args), &c["output"], &["score"], "", &mut worst, &cmdline(&args));
        chunked += (c["chunks"].as_u64().unwrap() > 1) as usize;
    }
    assert!(chunked >= 2, "the goldens split long contexts into windows");
    worst.report("qa");
}

#[test]
fn multiple_choice_matches_the_model() {
    let mut worst = Worst::default();
    let model = blob("multiple_choice");
    for c in cases("multiple_choice") {
        let mut args = vec![
            "multiple-choice",
            "--model",
            model.to_str().unwrap(),
            "--json",
            "--prompt",
            c["prompt"].as_str().unwrap(),
        ];
        for ch in c["choices"].as_array().unwrap() {
            args.extend(["--choice", ch.as_str().unwrap()]);
        }
        let scores: Vec<f64> = c["scores"].as_array().unwrap().iter().map(num).collect();
        let best = (0..scores.len()).fold(0, |b, i| if scores[i] > scores[b] { i } else { b });
        let want = json!({"best": best, "scores": c["scores"], "logits": c["logits"]});
        compare(&json_out(&args), &want, &["scores", "logits"], "", &mut worst, &cmdline(&args));
    }
    worst.report("multiple-choice");
}

#[test]
fn sop_matches_the_model() {
    let mut worst = Worst::default();
    let model = blob("pretraining");
    for c in cases("sop") {
        let args = [
            "sop",
            "--model",
            model.to_str().unwrap(),
            "--json",
            c["text"].as_str().unwrap(),
            c["text_pair"].as_str().unwrap(),
        ];
        let scores: Vec<f64> = c["scores"].as_array().unwrap().iter().map(num).collect();
        let best = if scores[1] > scores[0] { 1 } else { 0 };
        let label = ["in-order", "swapped"][best];
        let want = json!({"label": label, "score": scores[best], "scores": c["scores"], "logits": c["logits"]});
        compare(&json_out(&args), &want, &["score", "scores", "logits"], "", &mut worst, &cmdline(&args));
    }
    worst.report("sop");
}

/// Inputs from stdin run in padded batches and give the goldens, in order, one line each.
#[test]
fn stdin_batches_match_the_goldens() {
    let mut worst = Worst::default();
    let path = |n: &str| blob(n).to_str().unwrap().to_string();

    // Plain lines, batches of 2 (the second padded to the first's length or the reverse).
    let fm: Vec<&Value> = cases("fill_mask").iter().filter(|c| c["top_k"] == 5).collect();
    let mut lines = String::new();
    for c in &fm {
        lines += &format!("{}\n\n", c["text"].as_str().unwrap());
    }
    let model = path("pretraining");
    let args = ["fill-mask", "--model", &model, "--stdin", "--batch-size", "2"];
    let got = json_lines(&args, Some(&lines));
    assert_eq!(got.len(), fm.len());
    for (g, c) in got.iter().zip(&fm) {
        compare(g, &c["output"], &["score"], "", &mut worst, &cmdline(&args));
    }

    // JSON lines with pairs; `-` as the input.
    let tc: Vec<&Value> = cases("text_classification")
        .iter()
        .filter(|c| c.get("top_k") == Some(&Value::Null) || c.get("top_k").is_none())
        .collect();
    let lines: String = tc
        .iter()
        .map(|c| format!("{}\n", json!({"text": c["text"], "text_pair": c.get("text_pair").unwrap_or(&Value::Null)})))
        .collect();
    let model = path("seq_cls");
    let args = ["classify", "--model", &model, "--top-k", "1", "--batch-size", "3", "-"];
    let got = json_lines(&args, Some(&lines));
    assert_eq!(got.len(), tc.len());
    for (g, c) in got.iter().zip(&tc) {
        let best = match &c["output"] {
            Value::Object(_) => json!([c["output"]]),
            Value::Array(a) => json!([a[0]]),
            v => panic!("{v}"),
        };
        compare(g, &best, &["score"], "", &mut worst, &cmdline(&args));
    }

    let tk: Vec<&Value> = cases("token_classification").iter().filter(|c| c["aggregation"] == "simple").collect();
    let lines: String = tk.iter().map(|c| format!("{}\n", c["text"].as_str().unwrap())).collect();
    let model = path("token_cls");
    let args = ["token-classify", "--model", &model, "--aggregation", "simple", "--stdin", "--batch-size", "2"];
    let got = json_lines(&args, Some(&lines));
    assert_eq!(got.len(), tk.len());
    for (g, c) in got.iter().zip(&tk) {
        compare(g, &c["output"], &["score"], "", &mut worst, &cmdline(&args));
    }

    // QA: one shared set of options, so take the cases that use the first case's.
    let qa = cases("question_answering");
    let opts = ["top_k", "max_seq_len", "doc_stride", "max_answer_len"];
    let same: Vec<&Value> = qa.iter().filter(|c| opts.iter().all(|k| c[*k] == qa[1][*k])).collect();
    let lines: String =
        same.iter().map(|c| format!("{}\n", json!({"question": c["question"], "context": c["context"]}))).collect();
    let model = path("qa");
    let v: Vec<String> = opts.iter().map(|k| qa[1][*k].to_string()).collect();
    let args = [
        "qa",
        "--model",
        &model,
        "--stdin",
        "--batch-size",
        "3",
        "--top-k",
        &v[0],
        "--max-seq-len",
        &v[1],
        "--doc-stride",
        &v[2],
        "--max-answer-len",
        &v[3],
    ];
    let got = json_lines(&args, Some(&lines));
    assert_eq!(got.len(), same.len());
    for (g, c) in got.iter().zip(&same) {
        compare(g, &c["output"], &["score"], "", &mut worst, &cmdline(&args));
    }

    let mc = cases("multiple_choice");
    let lines: String =
        mc.iter().map(|c| format!("{}\n", json!({"prompt": c["prompt"], "choices": c["choices"]}))).collect();
    let model = path("multiple_choice");
    let args = ["multiple-choice", "--model", &model, "--stdin", "--batch-size", "3"];
    let got = json_lines(&args, Some(&lines));
    assert_eq!(got.len(), mc.len());
    for (g, c) in got.iter().zip(mc) {
        compare(&g["scores"], &c["scores"], &[""], "", &mut worst, &cmdline(&args));
    }

    let sop = cases("sop");
    let lines: String =
        sop.iter().map(|c| format!("{}\n", json!({"text": c["text"], "text_pair": c["text_pair"]}))).collect();
    let model = path("pretraining");
    let args = ["sop", "--model", &model, "--stdin"];
    let got = json_lines(&args, Some(&lines));
    assert_eq!(got.len(), sop.len());
    for (g, c) in got.iter().zip(sop) {
        compare(&g["logits"], &c["logits"], &[""], "", &mut worst, &cmdline(&args));
    }

    let fe = cases("feature_extraction");
    let lines: String = fe.iter().map(|c| format!("{}\n", json!({"text": c["text"]}))).collect();
    let args = ["embed", "--model", &model, "--stdin", "--pooling", "mean", "--batch-size", "2"];
    let got = json_lines(&args, Some(&lines));
    assert_eq!(got.len(), fe.len());
    for (g, c) in got.iter().zip(fe) {
        compare(g, &c["mean"], &[""], "", &mut worst, &cmdline(&args));
    }
    worst.report("stdin batches");
}

/// A failing command prints one line on stderr, starting `albert:`, and exits non-zero.
fn fails(args: &[&str], stdin: Option<&str>, expect: &str) {
    let r = albert(args, stdin);
    assert!(r.code.is_some_and(|c| c != 0), "{args:?} should fail: {:?} {} {}", r.code, r.stdout, r.stderr);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: one line on stderr expected, got:\n{}", r.stderr);
    assert!(lines[0].starts_with("albert: "), "{args:?}: {}", lines[0]);
    assert!(lines[0].contains(expect), "{args:?}: `{}` does not say `{expect}`", lines[0]);
    assert!(!r.stderr.contains("panicked"), "{args:?} panicked");
}

#[test]
fn errors_are_one_clear_line() {
    let seq_cls = blob("seq_cls");
    let seq = seq_cls.to_str().unwrap();
    let pre = blob("pretraining");
    let pre = pre.to_str().unwrap();
    // Wrong arguments.
    fails(&["classify", "--model", seq, "--no-such-flag", "x"], None, "--no-such-flag");
    fails(&["token-classify", "--model", seq, "--aggregation", "sideways", "x"], None, "sideways");
    fails(&["no-such-command"], None, "no-such-command");
    fails(&["qa", "--model", seq, "--question", "Why?"], None, "--context");
    fails(&["multiple-choice", "--model", seq, "--prompt", "p", "--choice", "a"], None, "two --choice");
    fails(&["sop", "--model", pre, "only one text"], None, "two texts");
    fails(&["embed", "--model", pre], None, "--stdin");
    fails(&["classify", "--model", seq, "--batch-size", "0", "x"], None, "batch-size");
    // A missing model file.
    fails(&["classify", "--model", "/nonexistent/model.albq", "x"], None, "/nonexistent/model.albq");
    fails(&["fill-mask", "--model", "/nonexistent/model.albq", "a [MASK]"], None, "/nonexistent/model.albq");
    // A blob without the head the command needs.
    fails(&["qa", "--model", seq, "--question", "q", "--context", "c"], None, "no question-answering head");
    fails(&["token-classify", "--model", seq, "x"], None, "no token-classification head");
    fails(
        &["multiple-choice", "--model", seq, "--prompt", "p", "--choice", "a", "--choice", "b"],
        None,
        "no multiple-choice head",
    );
    fails(&["sop", "--model", seq, "a", "b"], None, "no sentence-order head");
    fails(&["fill-mask", "--model", seq, "a [MASK]"], None, "no masked-LM head");
    fails(&["classify", "--model", pre, "x"], None, "no sequence-classification head");
    // Bad input.
    fails(&["fill-mask", "--model", pre, "no mask here"], None, "no [MASK]");
    fails(&["classify", "--model", seq, "--stdin"], Some("fine\n{\"text\": 3}\n"), "stdin line 2");
    fails(&["classify", "--model", seq, "--stdin"], Some("{\"txt\": \"typo\"}\n"), "stdin line 1");
    fails(&["qa", "--model", &blob("qa").to_string_lossy(), "--stdin"], Some("a plain question\n"), "--context");
    let qa = blob("qa");
    let long_q = "why ".repeat(40);
    fails(
        &["qa", "--model", qa.to_str().unwrap(), "--question", &long_q, "--context", "c", "--max-seq-len", "48"],
        None,
        "doc-stride",
    );
}

/// `inspect --json` reports the checkpoint's own config and labels, the head and the
/// tokenizer that were packed, and the blob's size; `--kernels` the CPU's kernels.
#[test]
fn inspect_describes_the_blob_and_the_kernels() {
    let b = blob("seq_cls");
    let v = json_out(&["inspect", "--model", b.to_str().unwrap(), "--json"]);
    let cfg: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/fixtures/pipelines/seq_cls/config.json")).unwrap(),
    )
    .unwrap();
    for key in [
        "hidden_size",
        "embedding_size",
        "intermediate_size",
        "num_attention_heads",
        "num_hidden_layers",
        "vocab_size",
        "max_position_embeddings",
    ] {
        assert_eq!(v["config"][key], cfg[key], "{key}");
    }
    assert_eq!(v["labels"], json!(["negative", "neutral", "positive"]));
    assert!(v["heads"].as_array().unwrap().iter().any(|h| h == "sequence-classification"), "{}", v["heads"]);
    assert_eq!(v["bytes"].as_u64().unwrap(), std::fs::metadata(&b).unwrap().len());
    assert_eq!(v["weight_dtype"], "f32");
    assert_eq!(v["tokenizer"]["pieces"], cfg["vocab_size"]);
    assert!(v["checksum"].as_str().unwrap().starts_with("0x"));
    let k = json_out(&["inspect", "--kernels", "--json"]);
    let available: Vec<&str> = k["available"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert!(available.contains(&"scalar") && available.contains(&"wide"), "{available:?}");
    assert!(available.contains(&k["selected"].as_str().unwrap()), "{k}");
    let float = k["float_loops"].as_str().unwrap();
    assert_eq!(float == "avx512", k["selected"] == "vnni" || k["selected"] == "amx", "{k}");
    assert_eq!(float == "avx2", k["selected"] == "avx2" || k["selected"] == "avxvnni", "{k}");
}

/// `bench --json` has the fields scripts read, percentiles in order, throughput that
/// agrees with the sequence length, and refuses a sequence the model cannot take.
#[test]
fn bench_reports_percentiles_throughput_and_memory() {
    let b = blob("seq_cls");
    let m = b.to_str().unwrap();
    let v =
        json_out(&["bench", "--model", m, "--seq", "16", "--iters", "5", "--warmup", "1", "--threads", "1", "--json"]);
    let f = |k: &str| v[k].as_f64().unwrap_or_else(|| panic!("no number `{k}` in {v}"));
    assert!(0.0 < f("p50_ms") && f("p50_ms") <= f("p90_ms") && f("p90_ms") <= f("p99_ms"), "{v}");
    assert!((f("tokens_per_s") / f("sequences_per_s") - 16.0).abs() < 1e-6, "{v}");
    assert!(f("peak_rss_bytes") > 1e6 && f("ready_ms") >= 0.0, "{v}");
    assert_eq!(v["seq"], 16);
    assert_eq!(v["threads"], 1);
    let kernels = json_out(&["inspect", "--kernels", "--json"]);
    assert_eq!(v["kernel"], kernels["selected"]);
    fails(&["bench", "--model", m, "--seq", "65"], None, "1 to 64 tokens");
    fails(&["bench", "--model", m, "--seq", "0"], None, "1 to 64 tokens");
    // --profile: the stages of a build with the `profile` feature, a clear refusal without.
    let args = ["bench", "--model", m, "--seq", "16", "--iters", "3", "--threads", "1", "--json", "--profile"];
    if albert_engine::profile::ENABLED {
        let v = json_out(&args);
        let p = &v["profile_ms"];
        let stages: f64 = albert_engine::profile::Stage::ALL
            .iter()
            .map(|s| p[s.name()].as_f64().unwrap_or_else(|| panic!("no stage {} in {p}", s.name())))
            .sum();
        assert!(stages > 0.0 && stages <= v["mean_ms"].as_f64().unwrap() * 1.01, "{v}");
    } else {
        fails(&args, None, "built without the profile feature");
    }
}
