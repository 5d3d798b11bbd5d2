//! `qa`: extractive question answering as transformers' QuestionAnsweringPipeline does it
//! (transformers 4.x; 5.x dropped the pipeline): the context is split into windows of
//! `max_seq_len` tokens overlapping by `doc_stride`, each window scores every span of at most
//! `max_answer_len` tokens as P(start)·P(end), spans are widened to whole words, and the
//! scores of spans giving the same answer text add up.

use albert_engine::Heads;
use anyhow::{Result, bail};
use serde::Serialize;

use super::{Encoded, Pipeline, Token, math};

/// transformers' QuestionAnsweringPipeline parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QaOptions {
    /// Answers per question.
    pub top_k: usize,
    /// Tokens per window, question and special tokens included (≤ the model's maximum).
    pub max_seq_len: usize,
    /// Tokens shared by consecutive windows of a long context.
    pub doc_stride: usize,
    /// Longest answer, in tokens.
    pub max_answer_len: usize,
}

impl Default for QaOptions {
    /// transformers' defaults (384-token windows, stride 128, answers up to 15 tokens).
    fn default() -> Self {
        QaOptions { top_k: 1, max_seq_len: 384, doc_stride: 128, max_answer_len: 15 }
    }
}

/// One answer: a span of the context.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Answer {
    pub score: f32,
    /// Character offsets into the context.
    pub start: usize,
    pub end: usize,
    pub answer: String,
}

/// One window of a context, ready for the model.
struct Window {
    enc: Encoded,
    /// Position of the first context token in `enc`.
    first: usize,
    /// The context tokens in the window (indices into the context's tokens).
    tokens: std::ops::Range<usize>,
}

/// Word index of each context token: a piece starting with `▁` starts a word (the
/// `Metaspace` pre-tokenizer splits there).
fn word_ids(p: &Pipeline<'_, '_>, ctx: &[Token]) -> Vec<usize> {
    let mut w = 0;
    ctx.iter()
        .enumerate()
        .map(|(i, t)| {
            if i > 0 && p.piece(t.id).starts_with('\u{2581}') {
                w += 1;
            }
            w
        })
        .collect()
}

/// The context token ranges of the windows: `tokenizers`' overflow with stride (windows of
/// `len` tokens starting every `len - stride`, the last one ending at the end).
fn windows(n: usize, len: usize, stride: usize) -> Vec<std::ops::Range<usize>> {
    if n <= len {
        return std::iter::once(0..n).collect();
    }
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        let stop = (start + len).min(n);
        out.push(start..stop);
        if stop == n {
            return out;
        }
        start += len - stride;
    }
}

impl Pipeline<'_, '_> {
    /// Answers each `(question, context)`; at most `opts.top_k` answers each, best first.
    pub fn qa_batch(&mut self, items: &[(&str, &str)], opts: &QaOptions) -> Result<Vec<Vec<Answer>>> {
        self.require_head(
            Heads::QA,
            "this blob has no question-answering head (pack an AlbertForQuestionAnswering checkpoint)",
        )?;
        if opts.max_seq_len > self.max_length() {
            bail!("--max-seq-len {} is longer than the model's {} positions", opts.max_seq_len, self.max_length());
        }
        if opts.top_k == 0 || opts.max_answer_len == 0 {
            bail!("--top-k and --max-answer-len must be at least 1");
        }
        let (cls, sep) = (self.model.config().bos_token_id, self.model.config().eos_token_id);
        let mut all: Vec<(usize, Window)> = Vec::new();
        let mut contexts = Vec::new();
        for (i, (question, context)) in items.iter().enumerate() {
            let q = self.tokens(question)?;
            let ctx = self.tokens(context)?;
            let room = opts.max_seq_len.saturating_sub(q.len() + 3);
            if room <= opts.doc_stride {
                bail!(
                    "the question takes {} tokens: with --max-seq-len {} a window has {room} context tokens, \
                     which must be more than --doc-stride {}",
                    q.len(),
                    opts.max_seq_len,
                    opts.doc_stride
                );
            }
            for r in windows(ctx.len(), room, opts.doc_stride) {
                let mut enc = Encoded::default();
                let mut put = |id: u32, ty: u32, off: [usize; 2]| {
                    enc.ids.push(id);
                    enc.type_ids.push(ty);
                    enc.offsets.push(off);
                };
                put(cls, 0, [0, 0]);
                q.iter().for_each(|t| put(t.id, 0, [t.start, t.end]));
                put(sep, 0, [0, 0]);
                ctx[r.clone()].iter().for_each(|t| put(t.id, 1, [t.start, t.end]));
                put(sep, 1, [0, 0]);
                all.push((i, Window { enc, first: q.len() + 2, tokens: r }));
            }
            contexts.push((word_ids(self, &ctx), context.chars().collect::<Vec<char>>()));
        }
        let refs: Vec<_> = all.iter().map(|(_, w)| &w.enc).collect();
        let logits = self.run(&refs, |model, enc, b, i| {
            let n = refs[i].ids.len();
            let (mut s, mut e) = (vec![0f32; n], vec![0f32; n]);
            for p in 0..n {
                (s[p], e[p]) = model.qa_logits(enc, b, p)?;
            }
            Ok((s, e))
        })?;
        let mut answers: Vec<Vec<Answer>> = vec![Vec::new(); items.len()];
        for ((item, w), (start, end)) in all.iter().zip(logits) {
            let (words, chars) = &contexts[*item];
            for (s, e, score) in best_spans(&start, &end, w, opts) {
                let (a, b) = char_span(w, words, s, e);
                let text: String = chars[a.min(chars.len())..b.clamp(a.min(chars.len()), chars.len())].iter().collect();
                let list = &mut answers[*item];
                match list.iter_mut().find(|x| x.answer.to_lowercase() == text.to_lowercase()) {
                    Some(x) => x.score += score,
                    None => list.push(Answer { score, start: a, end: b, answer: text }),
                }
            }
        }
        for list in &mut answers {
            list.sort_by(|x, y| y.score.total_cmp(&x.score));
            list.truncate(opts.top_k);
        }
        Ok(answers)
    }
}

/// The window's `2·top_k + 10` best spans (start, end, P(start)·P(end)) with a non-zero
/// score, best first. Only the context tokens and `[CLS]` may start or end a span; the
/// probabilities are a softmax over them.
fn best_spans(start: &[f32], end: &[f32], w: &Window, opts: &QaOptions) -> Vec<(usize, usize, f32)> {
    let n = start.len();
    let ctx = w.first..w.first + w.tokens.len();
    let allowed = |p: usize| p == 0 || ctx.contains(&p);
    // transformers replaces the logits of the other tokens by -10000 before the softmax.
    let prob = |x: &[f32]| {
        let mut v: Vec<f32> = (0..n).map(|p| if allowed(p) { x[p] } else { -10000.0 }).collect();
        math::softmax(&mut v);
        v
    };
    let (ps, pe) = (prob(start), prob(end));
    let mut spans = Vec::new();
    for s in (0..n).filter(|&p| allowed(p)) {
        for e in (s..n.min(s + opts.max_answer_len)).filter(|&p| allowed(p)) {
            let score = ps[s] * pe[e];
            if score > 0.0 {
                spans.push((s, e, score));
            }
        }
    }
    spans.sort_by(|a, b| b.2.total_cmp(&a.2));
    spans.truncate(2 * opts.top_k + 10);
    spans
}

/// Character span of the answer from window position `s` to `e`: widened to whole words
/// (the words' tokens inside the window), or the raw token offsets when `[CLS]` is part
/// of it, as transformers' `align_to_words`.
fn char_span(w: &Window, words: &[usize], s: usize, e: usize) -> (usize, usize) {
    let offsets = &w.enc.offsets;
    if s < w.first || e < w.first {
        return (offsets[s][0], offsets[e][1]);
    }
    let (ts, te) = (w.tokens.start + s - w.first, w.tokens.start + e - w.first);
    let in_window = |word: usize| w.tokens.clone().filter(move |&t| words[t] == word);
    let first = in_window(words[ts]).next().unwrap_or(ts);
    let last = in_window(words[te]).next_back().unwrap_or(te);
    let pos = |t: usize| w.first + t - w.tokens.start;
    (offsets[pos(first)][0], offsets[pos(last)][1])
}

#[cfg(test)]
mod tests {
    use super::windows;

    #[test]
    fn windows_overlap_by_the_stride_and_end_at_the_end() {
        assert_eq!(windows(5, 8, 2).len(), 1);
        assert_eq!(windows(5, 8, 2)[0], 0..5);
        assert_eq!(windows(10, 4, 1), [0..4, 3..7, 6..10]);
        assert_eq!(windows(11, 4, 1), [0..4, 3..7, 6..10, 9..11]);
    }
}
