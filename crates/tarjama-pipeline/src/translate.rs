//! Document translation: split into paragraphs and sentences, pass through what is not
//! Arabic, translate the rest with any [`Translator`], and keep every output sentence tied
//! to its source span.
//!
//! [`ChatTranslator`] drives a chat model. Small chat models fail in known ways, so each
//! answer is checked: commentary ("Here is the translation:") is stripped, an answer still
//! in Arabic or caught in a repetition loop is retried with stricter settings, and a
//! numbered batch that comes back with a sentence missing is redone sentence by sentence.
//! Every such event is reported, never hidden.
//!
//! Why one file of over 700 lines: a fifth of it is tests; the rest is one pipeline whose
//! parts (plan, chunk, ask, check, repair) read best in the order they run.

use std::ops::Range;

use serde::Serialize;
use tarjama_text::{Normalizer, Script};

use std::sync::Arc;

use crate::glossary::Glossary;
use crate::mbr::{self, ChrfUtility, Utility};
use crate::prompts::{fill, PromptSet};
use tarjama_chat::{ChatEngine, Message, Result, SamplingParams};
use tarjama_seq2seq::{GenerateOptions, Seq2SeqTranslator};

/// One translated sentence.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Translated {
    /// The English text.
    pub text: String,
    /// Mean log-probability of the output tokens, when the model gives one.
    pub score: Option<f32>,
    /// With candidates: how many passed the guards and were compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidates: Option<usize>,
    /// With candidates: the winner's mean utility against the others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utility: Option<f64>,
}

impl Translated {
    /// A translation with nothing known about it but its text.
    pub fn new(text: String) -> Self {
        Translated {
            text,
            ..Translated::default()
        }
    }
}

/// Anything that turns Arabic sentences into English ones, one output per input, in order.
pub trait Translator {
    /// A name for reports (the model).
    fn name(&self) -> String;
    /// Translates `sentences` (already normalized).
    fn translate(&mut self, sentences: &[&str]) -> Result<Vec<Translated>>;
    /// What went wrong and was repaired since the last call, for the report.
    fn take_events(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// How to prepare a document for translation.
#[derive(Debug, Clone, Default)]
pub struct TranslateOptions {
    /// Normalization applied to Arabic sentences before translation (`None`: as is).
    pub normalizer: Option<Normalizer>,
    /// A glossary to check the translations against: each sentence reports the entries
    /// of its source whose English its translation lacks.
    pub glossary: Option<Arc<Glossary>>,
}

/// One sentence of a translated document.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SentenceOut {
    /// Paragraph index in the document.
    pub paragraph: usize,
    /// Sentence index in the document.
    pub index: usize,
    /// Byte span of the source sentence.
    pub span: Range<usize>,
    /// The source sentence.
    pub source: String,
    /// Its translation (the source itself when passed through).
    pub translation: String,
    /// Whether it was passed through untouched (not Arabic).
    pub passthrough: bool,
    /// Mean log-probability, when known.
    pub score: Option<f32>,
    /// With candidates: how many were compared, and the winner's mean utility.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidates: Option<usize>,
    /// The winner's mean utility against the other candidates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utility: Option<f64>,
    /// With a glossary: the English of the entries in the source that the translation
    /// lacks.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub glossary_missing: Vec<String>,
}

/// A translated document.
#[derive(Debug, Clone, Serialize)]
pub struct DocumentTranslation {
    /// Every sentence, in order.
    pub sentences: Vec<SentenceOut>,
    /// Failures that were detected and repaired.
    pub events: Vec<String>,
}

impl DocumentTranslation {
    /// The translation as text: sentences of a paragraph joined by a space, paragraphs by a
    /// blank line, each translation on one line ([`one_line`]), so the output has exactly
    /// the source's paragraphs whatever the model wrote.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let mut last_paragraph = None;
        for s in &self.sentences {
            match last_paragraph {
                None => {}
                Some(p) if p == s.paragraph => out.push(' '),
                Some(_) => out.push_str("\n\n"),
            }
            out.push_str(&one_line(&s.translation));
            last_paragraph = Some(s.paragraph);
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out
    }
}

/// The sentences of `text` that [`translate_document`] hands the translator (the
/// Arabic ones, normalized), in order.
pub fn sentences_to_translate(text: &str, options: &TranslateOptions) -> Vec<String> {
    plan(text, options).1
}

/// A translation on one line: every whitespace run that holds a line break becomes one
/// space, and the ends are trimmed.
///
/// Writers put each translation through this. A model can answer one sentence with a
/// blank line inside (a lead-in the guard missed, a note); written as is, it would add a
/// paragraph to the output, and every later paragraph would no longer face its source.
pub fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    let text = text.trim();
    if !text.contains(['\n', '\r']) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    for c in text.chars() {
        if c.is_whitespace() {
            run.push(c);
            continue;
        }
        if run.contains(['\n', '\r']) {
            out.push(' ');
        } else {
            out.push_str(&run);
        }
        run.clear();
        out.push(c);
    }
    std::borrow::Cow::Owned(out)
}

/// Translates a whole document.
pub fn translate_document(
    translator: &mut dyn Translator,
    text: &str,
    options: &TranslateOptions,
) -> Result<DocumentTranslation> {
    let (mut sentences, todo_text) = plan(text, options);
    let todo_index: Vec<usize> = sentences
        .iter()
        .filter(|s| !s.passthrough)
        .map(|s| s.index)
        .collect();
    let refs: Vec<&str> = todo_text.iter().map(String::as_str).collect();
    let translated = if refs.is_empty() {
        Vec::new()
    } else {
        translator.translate(&refs)?
    };
    for (i, t) in todo_index.into_iter().zip(translated) {
        sentences[i].translation = t.text;
        sentences[i].score = t.score;
        sentences[i].candidates = t.candidates;
        sentences[i].utility = t.utility;
    }
    let mut events = translator.take_events();
    if let Some(glossary) = &options.glossary {
        for s in sentences.iter_mut().filter(|s| !s.passthrough) {
            s.glossary_missing = glossary.missing(&s.source, &s.translation);
            if !s.glossary_missing.is_empty() {
                events.push(format!(
                    "glossary: {} missing from the translation of \"{}\"",
                    s.glossary_missing.join(", "),
                    preview(&s.source)
                ));
            }
        }
    }
    Ok(DocumentTranslation { sentences, events })
}

/// Every sentence of `text` (translations standing in as the source), and the texts to
/// translate: those of the Arabic ones, normalized.
fn plan(text: &str, options: &TranslateOptions) -> (Vec<SentenceOut>, Vec<String>) {
    let paragraphs = tarjama_text::split(text);
    let mut sentences = Vec::new();
    let mut todo_text = Vec::new();
    for (p, paragraph) in paragraphs.iter().enumerate() {
        for sentence in &paragraph.sentences {
            let arabic = matches!(sentence.script, Script::Arabic | Script::Mixed);
            if arabic {
                todo_text.push(match &options.normalizer {
                    Some(n) => n.normalize(sentence.text).into_owned(),
                    None => sentence.text.to_string(),
                });
            }
            sentences.push(SentenceOut {
                paragraph: p,
                index: sentences.len(),
                span: sentence.span.clone(),
                source: sentence.text.to_string(),
                translation: sentence.text.to_string(),
                passthrough: !arabic,
                score: None,
                candidates: None,
                utility: None,
                glossary_missing: Vec::new(),
            });
        }
    }
    (sentences, todo_text)
}

/// A chat model used as a translator, through any [`ChatEngine`]: the batched GGUF engine
/// or a remote server (requests of one call run concurrently), or one GGUF model behind a
/// mutex (one request at a time).
///
/// With [`Candidates`] above 1, every request is asked that many times at once (the
/// greedy answer, then samples), the answers that fail the guards are dropped, and each
/// sentence keeps the answer chosen by minimum Bayes risk ([`mbr`]); with a glossary,
/// only the answers that miss the fewest of its terms take part.
pub struct ChatTranslator<E: ChatEngine> {
    engine: E,
    prompts: PromptSet,
    params: SamplingParams,
    /// Sentences are sent together while their tokens stay under this.
    chunk_tokens: usize,
    /// At most this many sentences per request.
    chunk_sentences: usize,
    candidates: Candidates,
    utility: Arc<dyn Utility>,
    glossary: Option<Arc<Glossary>>,
    /// Worked examples shown before each request (the first this many of the prompts').
    examples: usize,
    name: String,
    events: Vec<String>,
}

impl<E: ChatEngine + std::fmt::Debug> std::fmt::Debug for ChatTranslator<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTranslator")
            .field("engine", &self.engine)
            .field("name", &self.name)
            .field("candidates", &self.candidates)
            .field("utility", &self.utility.name())
            .finish_non_exhaustive()
    }
}

/// How many answers a chat translator asks for per request, and how the extra ones are
/// sampled.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidates {
    /// Answers per request; 1 is the plain greedy (or `params`) answer alone.
    pub n: usize,
    /// Temperature of the sampled candidates (every one but the first).
    pub temperature: f64,
    /// Epsilon cut of the sampled candidates ([`SamplingParams::epsilon`]).
    pub epsilon: Option<f64>,
}

impl Default for Candidates {
    fn default() -> Self {
        Candidates {
            n: 1,
            temperature: 0.7,
            epsilon: Some(0.02),
        }
    }
}

impl Candidates {
    /// The sampling of each of a request's `n` candidates: `base` itself for the first,
    /// epsilon samples (each seeded on its own) for the others.
    pub fn params(&self, base: &SamplingParams) -> Vec<SamplingParams> {
        let sample = |k: usize| SamplingParams {
            temperature: self.temperature,
            epsilon: self.epsilon,
            seed: base.seed.wrapping_add(k as u64),
            ..base.clone()
        };
        std::iter::once(base.clone())
            .chain((1..self.n).map(sample))
            .collect()
    }
}

/// The translations of one request's sentences, and what went wrong on the way.
type ChunkOut = (Vec<Translated>, Vec<String>);

impl<E: ChatEngine> ChatTranslator<E> {
    /// Wraps a chat engine; `params.max_new_tokens` caps each request's output.
    pub fn new(engine: E, name: String, prompts: PromptSet, params: SamplingParams) -> Self {
        ChatTranslator {
            engine,
            prompts,
            params,
            chunk_tokens: 160,
            chunk_sentences: 6,
            candidates: Candidates::default(),
            utility: Arc::new(ChrfUtility::default()),
            glossary: None,
            examples: 0,
            name,
            events: Vec::new(),
        }
    }

    /// Sets how many source tokens and sentences go into one request (1 sentence: each
    /// sentence alone).
    pub fn with_chunking(mut self, tokens: usize, sentences: usize) -> Self {
        self.chunk_tokens = tokens.max(1);
        self.chunk_sentences = sentences.max(1);
        self
    }

    /// Asks for several answers per request and keeps the MBR choice.
    pub fn with_candidates(mut self, candidates: Candidates) -> Self {
        self.candidates = Candidates {
            n: candidates.n.max(1),
            ..candidates
        };
        self
    }

    /// Uses another utility than sentence chrF++ for the MBR choice.
    pub fn with_utility(mut self, utility: Arc<dyn Utility>) -> Self {
        self.utility = utility;
        self
    }

    /// Tells the model how to write the glossary's terms found in each request, and
    /// prefers the candidates that follow it.
    pub fn with_glossary(mut self, glossary: Arc<Glossary>) -> Self {
        self.glossary = Some(glossary);
        self
    }

    /// Shows the model the first `n` of the prompts' worked examples before each request:
    /// as one numbered exchange before a numbered request, as `n` exchanges of one
    /// sentence before a single one. They are the same for every request, so the engine
    /// computes them once and reuses them.
    pub fn with_examples(mut self, n: usize) -> Self {
        self.examples = n.min(self.prompts.examples.len());
        self
    }

    /// The earlier turns that show the model worked examples in the shape of a request:
    /// numbered or one sentence.
    fn example_turns(&self, numbered: bool) -> Vec<Message> {
        let examples = &self.prompts.examples[..self.examples];
        if examples.is_empty() {
            return Vec::new();
        }
        if numbered {
            let number = |pick: fn(&(String, String)) -> &String| {
                let lines: Vec<String> = examples
                    .iter()
                    .enumerate()
                    .map(|(i, e)| format!("{}. {}", i + 1, pick(e)))
                    .collect();
                lines.join("\n")
            };
            let arabic = number(|e| &e.0);
            vec![
                Message::new(
                    "user",
                    fill(&self.prompts.translate_numbered, &[("text", &arabic)]),
                ),
                Message::new("assistant", number(|e| &e.1)),
            ]
        } else {
            examples
                .iter()
                .flat_map(|(ar, en)| {
                    [
                        Message::new("user", fill(&self.prompts.translate, &[("text", ar)])),
                        Message::new("assistant", en.as_str()),
                    ]
                })
                .collect()
        }
    }

    /// The user message for `text`: the template filled. With a glossary, its entries
    /// found in `text` are listed first and written into the text in place of their
    /// Arabic ([`Glossary::annotate`]).
    fn user_message(&self, template: &str, text: &str) -> String {
        let Some(glossary) = &self.glossary else {
            return fill(template, &[("text", text)]);
        };
        let body = fill(template, &[("text", &glossary.annotate(text))]);
        match glossary.hint(text) {
            Some(entries) => {
                let lead = fill(&self.prompts.glossary, &[("entries", &entries)]);
                format!("{lead}\n\n{body}")
            }
            None => body,
        }
    }

    fn ask(
        &self,
        numbered: bool,
        user: String,
        max_new: usize,
        params: &SamplingParams,
    ) -> Result<String> {
        self.ask_many(numbered, user, max_new, std::slice::from_ref(params))
            .remove(0)
    }

    /// Answers to one request, one per entry of `params`, asked for together.
    fn ask_many(
        &self,
        numbered: bool,
        user: String,
        max_new: usize,
        params: &[SamplingParams],
    ) -> Vec<Result<String>> {
        let mut messages = vec![Message::new("system", &self.prompts.system)];
        messages.extend(self.example_turns(numbered));
        messages.push(Message::new("user", user));
        let params: Vec<SamplingParams> = params
            .iter()
            .map(|p| SamplingParams {
                max_new_tokens: max_new.min(p.max_new_tokens),
                ..p.clone()
            })
            .collect();
        self.engine
            .chat_many(&messages, &params)
            .into_iter()
            .map(|a| a.map(|c| c.text))
            .collect()
    }

    /// Every candidate answer to `user`, the first with `params` as they are, the others
    /// sampled; they go to the engine together and share its batches, the prompt and
    /// the steps on which they choose alike.
    fn answers(&self, numbered: bool, user: &str, max_new: usize) -> Result<Vec<String>> {
        let params = self.candidates.params(&self.params);
        self.ask_many(numbered, user.to_string(), max_new, &params)
            .into_iter()
            .collect()
    }

    /// The translation of `source` among `good` (answers that passed the guards, the
    /// greedy one first when it did).
    fn choose(&self, source: &str, mut good: Vec<String>) -> Translated {
        if self.candidates.n <= 1 {
            return Translated::new(good.swap_remove(0));
        }
        select(source, good, self.glossary.as_deref(), &*self.utility)
    }

    fn output_budget(&self, source_tokens: usize) -> usize {
        // Arabic takes more tokens than its English translation in Qwen's and Gemma's
        // vocabularies; twice the source plus slack covers verbose translations.
        source_tokens * 2 + 24
    }

    fn translate_one(&self, sentence: &str, events: &mut Vec<String>) -> Result<Translated> {
        let tokens = self.engine.count_tokens(sentence)?;
        let budget = self.output_budget(tokens);
        let user = self.user_message(&self.prompts.translate, sentence);
        let answers: Vec<String> = self
            .answers(false, &user, budget)?
            .iter()
            .map(|a| clean_answer(a))
            .collect();
        let first_problem = problem(&answers[0], sentence);
        let good: Vec<String> = answers
            .into_iter()
            .filter(|t| problem_free(t, sentence))
            .collect();
        if !good.is_empty() {
            return Ok(self.choose(sentence, good));
        }
        // Retry once, stricter: a repetition penalty breaks loops, and a reminder of the
        // target language fixes most answers that stayed in Arabic.
        let strict = SamplingParams {
            repetition_penalty: 1.15,
            ..self.params.clone()
        };
        let user = format!("{user}\n\nAnswer in English only.");
        let retry = clean_answer(&self.ask(false, user, budget, &strict)?);
        let fixed = problem_free(&retry, sentence);
        events.push(format!(
            "{} in the translation of \"{}\"; retried{}",
            first_problem.unwrap_or("a bad answer"),
            preview(sentence),
            if fixed { "" } else { ", still wrong" }
        ));
        Ok(Translated::new(retry))
    }

    fn translate_chunk(&self, sentences: &[&str]) -> Result<ChunkOut> {
        let mut events = Vec::new();
        let lines = if sentences.len() == 1 {
            vec![self.translate_one(sentences[0], &mut events)?]
        } else {
            self.translate_numbered(sentences, &mut events)?
        };
        let lines = lines
            .into_iter()
            .zip(sentences)
            .map(|(line, s)| self.honour_glossary(s, line, &mut events))
            .collect::<Result<_>>()?;
        Ok((lines, events))
    }

    /// A translation that misses glossary terms of its sentence is asked for once more,
    /// the sentence alone with the missing terms named; the answer that misses fewer
    /// terms is kept. Small models drop or respell a term now and then (on FLORES
    /// 501-1012 with a names glossary, 16 of 299 terms), and a second, pointed request
    /// for those few sentences costs little.
    fn honour_glossary(
        &self,
        sentence: &str,
        chosen: Translated,
        events: &mut Vec<String>,
    ) -> Result<Translated> {
        let Some(glossary) = &self.glossary else {
            return Ok(chosen);
        };
        let missing = glossary.missing(sentence, &chosen.text);
        if missing.is_empty() {
            return Ok(chosen);
        }
        let tokens = self.engine.count_tokens(sentence)?;
        let user = format!(
            "{}\n\nThe English must contain: {}.",
            self.user_message(&self.prompts.translate, sentence),
            missing.join("; ")
        );
        let retry =
            clean_answer(&self.ask(false, user, self.output_budget(tokens), &self.params)?);
        let still = glossary.missing(sentence, &retry).len();
        let better = problem_free(&retry, sentence) && still < missing.len();
        events.push(format!(
            "glossary: {} missing from the translation of \"{}\"; asked again{}",
            missing.join(", "),
            preview(sentence),
            if better {
                ""
            } else {
                ", kept the first answer"
            }
        ));
        // The new answer was not among the candidates compared: their count stays on
        // record, a winner's utility does not.
        Ok(if better {
            Translated {
                candidates: chosen.candidates,
                ..Translated::new(retry)
            }
        } else {
            chosen
        })
    }

    /// A request of several numbered sentences; a sentence whose line is missing or bad
    /// in every answer is translated alone.
    fn translate_numbered(
        &self,
        sentences: &[&str],
        events: &mut Vec<String>,
    ) -> Result<Vec<Translated>> {
        let numbered: Vec<String> = sentences
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{}. {s}", i + 1))
            .collect();
        let numbered = numbered.join("\n");
        let tokens = self.engine.count_tokens(&numbered)?;
        let user = self.user_message(&self.prompts.translate_numbered, &numbered);
        let answers = self.answers(true, &user, self.output_budget(tokens))?;
        // Each sentence's candidates: its line in every answer that numbered its lines
        // back right, if the line passes the guards.
        let mut per_sentence: Vec<Vec<String>> = vec![Vec::new(); sentences.len()];
        let mut parsed_any = false;
        for lines in answers
            .iter()
            .filter_map(|raw| parse_numbered(raw, sentences.len()))
        {
            parsed_any = true;
            for (i, line) in lines.into_iter().enumerate() {
                if problem_free(&line, sentences[i]) {
                    per_sentence[i].push(line);
                }
            }
        }
        let redo = per_sentence.iter().filter(|c| c.is_empty()).count();
        if redo > 0 {
            events.push(format!(
                "a batch of {} sentences came back {}; translated {} one by one",
                sentences.len(),
                if parsed_any {
                    "with a bad line"
                } else {
                    "with sentences missing or merged"
                },
                if redo == sentences.len() {
                    "them".to_string()
                } else {
                    format!("{redo} of them")
                }
            ));
        }
        per_sentence
            .into_iter()
            .zip(sentences)
            .map(|(good, s)| {
                if good.is_empty() {
                    self.translate_one(s, events)
                } else {
                    Ok(self.choose(s, good))
                }
            })
            .collect()
    }

    /// The sentences of each request: consecutive sentences while their tokens stay
    /// under `chunk_tokens`, at most `chunk_sentences`.
    fn chunks(&self, sentences: &[&str]) -> Result<Vec<Range<usize>>> {
        let mut chunks = Vec::new();
        let mut start = 0;
        while start < sentences.len() {
            let mut end = start;
            let mut tokens = 0;
            while end < sentences.len() && end - start < self.chunk_sentences {
                let t = self.engine.count_tokens(sentences[end])?;
                if end > start && tokens + t > self.chunk_tokens {
                    break;
                }
                tokens += t;
                end += 1;
            }
            chunks.push(start..end);
            start = end;
        }
        Ok(chunks)
    }
}

impl<E: ChatEngine> Translator for ChatTranslator<E> {
    fn name(&self) -> String {
        self.name.clone()
    }

    /// Requests go to the engine together, as many at once as it runs in parallel;
    /// results and events come back in the sentences' order whatever order the requests
    /// finish in.
    fn translate(&mut self, sentences: &[&str]) -> Result<Vec<Translated>> {
        let chunks = self.chunks(sentences)?;
        let this = &*self;
        let outs: Vec<Result<ChunkOut>> =
            run_concurrently(chunks.len(), this.engine.parallel(), |i| {
                this.translate_chunk(&sentences[chunks[i].clone()])
            });
        let mut out = Vec::with_capacity(sentences.len());
        for result in outs {
            let (lines, events) = result?;
            out.extend(lines);
            self.events.extend(events);
        }
        Ok(out)
    }

    fn take_events(&mut self) -> Vec<String> {
        std::mem::take(&mut self.events)
    }
}

/// `f(0..n)`, up to `parallel` calls at once on scoped threads (inline when 1); results
/// in index order.
pub fn run_concurrently<T: Send>(
    n: usize,
    parallel: usize,
    f: impl Fn(usize) -> T + Sync,
) -> Vec<T> {
    let threads = parallel.min(n);
    if threads <= 1 {
        return (0..n).map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: Vec<std::sync::Mutex<Option<T>>> = (0..n).map(|_| Default::default()).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let value = f(i);
                *slots[i].lock().expect("no panic while holding") = Some(value);
            });
        }
    });
    slots
        .into_iter()
        .map(|s| {
            s.into_inner()
                .expect("no panic while holding")
                .expect("every index ran")
        })
        .collect()
}

/// An encoder-decoder model (Marian, NLLB) used as a translator: sentences go to it in
/// length-sorted batches, with its beam search settings. With a glossary, a sentence
/// that holds some of its terms is decoded by constrained beam search, which writes
/// their English; with candidates, the beam's n-best list is chosen among as chat
/// candidates are (guards, glossary, minimum Bayes risk).
pub struct Seq2SeqAdapter {
    model: Seq2SeqTranslator,
    options: GenerateOptions,
    name: String,
    glossary: Option<Arc<Glossary>>,
    candidates: usize,
    utility: Arc<dyn Utility>,
}

impl std::fmt::Debug for Seq2SeqAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seq2SeqAdapter")
            .field("name", &self.name)
            .field("candidates", &self.candidates)
            .finish_non_exhaustive()
    }
}

impl Seq2SeqAdapter {
    /// Wraps a loaded encoder-decoder model.
    pub fn new(model: Seq2SeqTranslator, name: String, options: GenerateOptions) -> Self {
        Seq2SeqAdapter {
            model,
            options,
            name,
            glossary: None,
            candidates: 1,
            utility: Arc::new(ChrfUtility::default()),
        }
    }

    /// Makes every sentence's output contain the English of the glossary terms found in
    /// it (constrained beam search).
    pub fn with_glossary(mut self, glossary: Arc<Glossary>) -> Self {
        self.glossary = Some(glossary);
        self
    }

    /// Chooses among the `n` best hypotheses of the beam (widened to `n` beams if it is
    /// narrower) instead of taking the first.
    pub fn with_candidates(mut self, n: usize) -> Result<Self> {
        self.candidates = n.max(1);
        if self.candidates > 1 {
            let beams = self
                .model
                .search_params(&self.options)
                .map_err(tarjama_chat::Error::engine)?
                .num_beams;
            self.options.beam = Some(beams.max(self.candidates));
            self.options.nbest = self.candidates;
        }
        Ok(self)
    }
}

impl Translator for Seq2SeqAdapter {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn translate(&mut self, sentences: &[&str]) -> Result<Vec<Translated>> {
        let terms: Vec<Vec<String>> = match &self.glossary {
            Some(g) => sentences
                .iter()
                .map(|s| g.entries_in(s).iter().map(|e| e.english.clone()).collect())
                .collect(),
            None => Vec::new(),
        };
        let out = if terms.iter().any(|t| !t.is_empty()) {
            self.model
                .translate_constrained(sentences, &self.options, &terms)
                .map_err(tarjama_chat::Error::engine)?
        } else {
            self.model
                .translate(sentences, &self.options)
                .map_err(tarjama_chat::Error::engine)?
        };
        Ok(out
            .into_iter()
            .zip(sentences)
            .map(|(t, source)| {
                let good: Vec<String> = t
                    .nbest
                    .iter()
                    .map(|c| c.text.clone())
                    .filter(|c| problem_free(c, source))
                    .collect();
                if self.candidates > 1 && !good.is_empty() {
                    select(source, good, self.glossary.as_deref(), &*self.utility)
                } else {
                    Translated {
                        score: Some(t.score),
                        ..Translated::new(t.text)
                    }
                }
            })
            .collect())
    }
}

/// The candidate kept among `good` (non-empty, every one past the guards): of those
/// that miss the fewest glossary terms of `source`, the minimum-Bayes-risk choice.
fn select(
    source: &str,
    mut good: Vec<String>,
    glossary: Option<&Glossary>,
    utility: &dyn Utility,
) -> Translated {
    let compared = good.len();
    if let Some(glossary) = glossary {
        let misses: Vec<usize> = good
            .iter()
            .map(|t| glossary.missing(source, t).len())
            .collect();
        let fewest = misses.iter().copied().min().unwrap_or(0);
        good = good
            .into_iter()
            .zip(misses)
            .filter(|&(_, m)| m == fewest)
            .map(|(t, _)| t)
            .collect();
    }
    let choice = mbr::select(&good, utility).expect("at least one candidate");
    Translated {
        text: good.swap_remove(choice.index),
        score: None,
        candidates: Some(compared),
        utility: choice.utility,
    }
}

fn preview(s: &str) -> String {
    let mut p: String = s.chars().take(40).collect();
    if p.len() < s.len() {
        p.push('…');
    }
    p
}

/// Removes what small chat models wrap around a translation: a lead-in ("Here is the
/// translation:", "The text translates to English as:") on a line of its own or before the
/// translation on the same line, a `Translation:` label, code fences, enclosing quotes,
/// and notes after the translation ("Note: ...", "(Note: ...)", "This translation ...").
///
/// A line that ends with a colon is real content as often as not ("He said:" before a
/// quote): it is taken for a lead-in only when it talks about the translation itself
/// ([`is_lead_in`]), and a note only when it comes after the translation's first line.
pub fn clean_answer(raw: &str) -> String {
    let mut lines: Vec<&str> = raw.trim().lines().collect();
    let is_fence = |l: &str| l.trim().starts_with("```");
    while let Some(first) = lines.first() {
        let followed = lines[1..]
            .iter()
            .any(|l| !l.trim().is_empty() && !is_fence(l));
        let first = first.trim();
        if first.is_empty() || is_fence(first) || is_lead_in(first, followed) {
            lines.remove(0);
        } else {
            break;
        }
    }
    // A note ends the answer: it and everything after it go.
    if let Some(k) = (1..lines.len()).find(|&k| is_note(lines[k], lines[k - 1].trim().is_empty())) {
        lines.truncate(k);
    }
    while lines
        .last()
        .is_some_and(|l| is_fence(l) || l.trim().is_empty())
    {
        lines.pop();
    }
    let mut text = lines.join("\n").trim().to_string();
    if let Some(rest) = strip_inline_lead_in(&text) {
        text = rest.to_string();
    }
    for label in ["Translation:", "English:", "English translation:"] {
        if let Some(rest) = text.strip_prefix(label) {
            text = rest.trim().to_string();
        }
    }
    // "(Note: ...)" after the translation on the same line.
    if let Some(k) = text.rfind('(').filter(|&k| k > 0 && text.ends_with(')')) {
        let tail = text[k + 1..].to_lowercase();
        let notes = [
            "note:",
            "notes:",
            "note that",
            "translator's note",
            "translator’s note",
            "translation note",
        ];
        if notes.iter().any(|n| tail.starts_with(n)) {
            text = text[..k].trim_end().to_string();
        }
    }
    let quoted = |o: char, c: char| text.starts_with(o) && text.ends_with(c) && text.len() > 2;
    if quoted('"', '"') || quoted('“', '”') {
        let inner: String = {
            let mut cs = text.chars();
            cs.next();
            cs.next_back();
            cs.collect()
        };
        if !inner.contains(['"', '“', '”']) {
            text = inner;
        }
    }
    text
}

/// Lowercase words of `text` (letters and digits; `here's` gives `here`, `s`).
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// A word about the act of translating: `translation`, `translates`, ... (not
/// `translator`, a person a news sentence may well quote).
fn is_translate_word(w: &str) -> bool {
    w.starts_with("translat") && !w.starts_with("translator")
}

/// Whether the words open with a reply's courtesy: "Here is", "Sure", "Of course", ...
fn opens_a_reply(w: &[String]) -> bool {
    let first = w.first().map_or("", String::as_str);
    matches!(
        first,
        "here" | "sure" | "certainly" | "okay" | "ok" | "absolutely" | "below"
    ) || (first == "of" && w.get(1).is_some_and(|s| s == "course"))
}

/// Whether the words name the text being translated.
fn names_the_text(w: &[String]) -> bool {
    w.iter()
        .any(|w| matches!(w.as_str(), "text" | "sentence" | "arabic" | "english"))
}

/// Whether a line ending with `:` introduces the translation rather than being part of
/// it; `followed`: whether text comes after it.
///
/// It must talk about the translation: a translating word or "English" anywhere ("The
/// text translates to English as:"), or, with text after it, a reply's opening ("Here it
/// is:", "Sure:") or a short line about the text ("The Arabic text says:", "The sentence
/// reads as follows:"). "He said:", "The plan is as follows:" or "The text of the
/// agreement reads:" are content and stay.
fn is_lead_in(line: &str, followed: bool) -> bool {
    let line = line.trim().trim_matches(['*', '_', '#']).trim();
    let Some(body) = line.strip_suffix(':').or_else(|| line.strip_suffix('：')) else {
        return false;
    };
    let w = words(body);
    if w.is_empty() || w.len() > 15 {
        return false;
    }
    if w.iter().any(|w| is_translate_word(w) || w == "english") {
        // Even with nothing after it: the answer is then empty, which is retried.
        return true;
    }
    if !followed {
        return false;
    }
    let joined = w.join(" ");
    let points_ahead = ["as follows", "the following", "below"]
        .iter()
        .any(|p| joined.contains(p));
    opens_a_reply(&w) || (names_the_text(&w) && (points_ahead || w.len() <= 4))
}

/// The translation after a lead-in on the same line ("The text translates to English as:
/// Putin met ..."), if there is one. Stricter than [`is_lead_in`]: "He told the English
/// paper: ..." is content, so "English" alone does not count here.
fn strip_inline_lead_in(text: &str) -> Option<&str> {
    let colon = text.find(": ")?;
    let (head, rest) = (&text[..colon], text[colon + 1..].trim_start());
    let first_line_ends = text.find('\n').unwrap_or(text.len());
    if colon > first_line_ends || rest.is_empty() {
        return None;
    }
    let w = words(head);
    if w.is_empty() || w.len() > 12 {
        return None;
    }
    let label = w.iter().all(|w| {
        matches!(
            w.as_str(),
            "in" | "into" | "to" | "the" | "english" | "version" | "text" | "arabic"
        )
    });
    let lead_in = w.iter().any(|w| is_translate_word(w))
        || (opens_a_reply(&w) && names_the_text(&w))
        || (label && w.iter().any(|w| w == "english"));
    lead_in.then_some(rest)
}

/// Whether `line` starts a note about the translation. "Note:" does wherever it stands
/// after the first line; softer openings ("This translation ...", "Please note") only
/// after a blank line, where the translation has ended.
fn is_note(line: &str, after_blank: bool) -> bool {
    let l = line
        .trim()
        .trim_start_matches(['*', '_', '(', '[', '#', ' '])
        .to_lowercase();
    let strong = [
        "note:",
        "notes:",
        "note -",
        "n.b.",
        "translator's note",
        "translator’s note",
        "translation note",
    ];
    if strong.iter().any(|p| l.starts_with(p)) {
        return true;
    }
    let soft = [
        "note ",
        "this translation",
        "the translation",
        "in this translation",
        "the above",
        "please note",
        "i hope",
        "let me know",
        "if you",
        "explanation",
    ];
    after_blank && soft.iter().any(|p| l.starts_with(p))
}

/// What is wrong with a translation, if anything a check can see.
fn problem(translation: &str, source: &str) -> Option<&'static str> {
    if translation.trim().is_empty() {
        return Some("an empty answer");
    }
    if arabic_share(translation) > 0.2 {
        return Some("an answer still in Arabic");
    }
    if is_looping(translation) {
        return Some("a repetition loop");
    }
    let w = words(translation);
    if !w.is_empty()
        && w.iter()
            .all(|w| is_translate_word(w) || matches!(w.as_str(), "english" | "text" | "the"))
    {
        // "English translation", "Translated text": a label in place of the text.
        return Some("a label instead of a translation");
    }
    let (src, out) = (source.chars().count(), translation.chars().count());
    if out > src * 4 + 80 {
        return Some("an answer far longer than the source");
    }
    // Written Arabic leaves out short vowels: its English is rarely much shorter.
    if src >= 40 && out * 3 < src {
        return Some("an answer far shorter than the source");
    }
    None
}

fn problem_free(translation: &str, source: &str) -> bool {
    problem(translation, source).is_none()
}

/// Share of letters that are Arabic.
pub(crate) fn arabic_share(text: &str) -> f32 {
    let (mut arabic, mut letters) = (0usize, 0usize);
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        letters += 1;
        if matches!(c, '\u{0600}'..='\u{06FF}' | '\u{0750}'..='\u{077F}' | '\u{08A0}'..='\u{08FF}' | '\u{FB50}'..='\u{FDFF}' | '\u{FE70}'..='\u{FEFF}')
        {
            arabic += 1;
        }
    }
    if letters == 0 {
        0.0
    } else {
        arabic as f32 / letters as f32
    }
}

/// A word 4-gram that occurs 3 times or more: the signature of a model stuck in a loop.
fn is_looping(text: &str) -> bool {
    let words: Vec<String> = text.split_whitespace().map(|w| w.to_lowercase()).collect();
    if words.len() < 12 {
        return false;
    }
    let mut counts = std::collections::HashMap::new();
    for gram in words.windows(4) {
        let c = counts.entry(gram).or_insert(0);
        *c += 1;
        if *c >= 3 {
            return true;
        }
    }
    false
}

/// Parses `N. text` lines; None unless exactly the numbers 1..=n come back, in order.
fn parse_numbered(raw: &str, n: usize) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for line in raw.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let digits: String = line.chars().take_while(|c| c.is_ascii_digit()).collect();
        let rest = &line[digits.len()..];
        match digits.parse::<usize>() {
            Ok(k) if k == out.len() + 1 && (rest.starts_with('.') || rest.starts_with(')')) => {
                out.push(clean_answer(rest[1..].trim()));
            }
            // A line without a number continues the previous sentence.
            _ if !out.is_empty() && digits.is_empty() => {
                let last = out.last_mut().expect("not empty");
                last.push(' ');
                last.push_str(line);
            }
            _ if out.is_empty() && digits.is_empty() => {} // a lead-in line
            _ => return None,
        }
    }
    (out.len() == n).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commentary_is_stripped() {
        assert_eq!(
            clean_answer("Here is the translation:\n\n\"Putin met Witkoff.\""),
            "Putin met Witkoff."
        );
        assert_eq!(clean_answer("Translation: Hello."), "Hello.");
        assert_eq!(clean_answer("```\nHello.\n```"), "Hello.");
        assert_eq!(
            clean_answer("He said \"no\" twice."),
            "He said \"no\" twice."
        );
    }

    #[test]
    fn lead_ins_about_the_translation_are_stripped() {
        // Seen on held-out news with the default model: the lead-in, a blank line, then
        // the translation. Kept, it added a paragraph to the txt output.
        assert_eq!(
            clean_answer("The text translates to English as:\n\nPutin met Witkoff in Moscow."),
            "Putin met Witkoff in Moscow."
        );
        for lead_in in [
            "Sure! Here is the translation:",
            "Here's the English version:",
            "Certainly:",
            "Of course, here it is:",
            "The Arabic text says:",
            "The sentence reads as follows:",
            "**Translation:**",
            "Translated into English, the sentence is:",
        ] {
            assert_eq!(
                clean_answer(&format!("{lead_in}\nThe talks were fruitful.")),
                "The talks were fruitful.",
                "{lead_in}"
            );
        }
        // On the translation's own line.
        assert_eq!(
            clean_answer("The text translates to English as: The talks were fruitful."),
            "The talks were fruitful."
        );
        assert_eq!(
            clean_answer("In English: The talks were fruitful."),
            "The talks were fruitful."
        );
        // A lead-in with nothing after it leaves nothing: `problem` sees an empty answer.
        assert_eq!(clean_answer("Here is the translation:"), "");
    }

    #[test]
    fn colons_that_belong_to_the_translation_stay() {
        for content in [
            "He said:\n\"We will not give up.\"",
            "The plan is as follows:\nfirst a ceasefire, then talks.",
            "The text of the agreement reads:\n\"Both sides shall withdraw.\"",
            "The minister said the following:\nthe talks will go on.",
        ] {
            assert_eq!(clean_answer(content), content);
        }
        for content in [
            "He said: \"We will not give up.\"",
            "He told the English newspaper: the talks will go on.",
            "The translator said: the book is finished.",
            "The results were as follows:",
            "Here are the main points:",
            "He bought a laptop (notebook)",
        ] {
            assert_eq!(clean_answer(content), content);
        }
    }

    #[test]
    fn notes_after_the_translation_are_stripped() {
        assert_eq!(
            clean_answer("Putin met Witkoff.\n\nNote: the names are transliterated."),
            "Putin met Witkoff."
        );
        assert_eq!(
            clean_answer("Putin met Witkoff.\n(Note: Witkoff is a US envoy.)"),
            "Putin met Witkoff."
        );
        assert_eq!(
            clean_answer("Putin met Witkoff. (Note: Witkoff is a US envoy.)"),
            "Putin met Witkoff."
        );
        assert_eq!(
            clean_answer(
                "Here is the translation:\n\nPutin met Witkoff.\n\nThis translation keeps the names as written."
            ),
            "Putin met Witkoff."
        );
        // Softer openings count only after a blank line, and never on the first line.
        assert_eq!(
            clean_answer("This translation was approved.\nThe council met."),
            "This translation was approved.\nThe council met."
        );
        assert_eq!(
            clean_answer("Note: the office is closed."),
            "Note: the office is closed."
        );
    }

    #[test]
    fn one_line_joins_lines_and_keeps_other_spacing() {
        assert_eq!(
            one_line("Putin met\n\n  Witkoff.\r\n"),
            "Putin met Witkoff."
        );
        assert_eq!(one_line(" a  b "), "a  b");
        assert!(matches!(one_line("a b"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn problems_are_seen() {
        assert_eq!(problem("", "x"), Some("an empty answer"));
        assert_eq!(problem("قال بوتين", "x"), Some("an answer still in Arabic"));
        let looping = "the talks were fruitful ".repeat(5);
        assert_eq!(
            problem(&looping, &"x".repeat(200)),
            Some("a repetition loop")
        );
        assert_eq!(
            problem("Putin met Witkoff in Saint Petersburg.", "قال"),
            None
        );
        // Seen on FLORES with a glossary: every line of a batch answered with a label.
        let source = "أُنشئت طرق العربات في إنجلترا في وقت يرجع إلى القرن السادس عشر.";
        assert_eq!(
            problem("English translation", source),
            Some("a label instead of a translation")
        );
        assert_eq!(
            problem("Wagonways.", source),
            Some("an answer far shorter than the source")
        );
        assert_eq!(
            problem(
                "Wagonways were built in England as early as the 16th century.",
                source
            ),
            None
        );
    }

    #[test]
    fn numbered_answers_parse_or_fail() {
        let raw = "Sure:\n1. First.\n2. Second\ncontinued.\n3) Third.";
        assert_eq!(
            parse_numbered(raw, 3).unwrap(),
            vec!["First.", "Second continued.", "Third."]
        );
        assert!(parse_numbered("1. A\n3. C", 3).is_none());
        assert!(parse_numbered("1. A\n2. B", 3).is_none());
    }

    struct Upper;
    impl Translator for Upper {
        fn name(&self) -> String {
            "upper".into()
        }
        fn translate(&mut self, s: &[&str]) -> Result<Vec<Translated>> {
            Ok(s.iter()
                .map(|t| Translated::new(format!("<{}>", t.chars().count())))
                .collect())
        }
    }

    #[test]
    fn documents_keep_structure_and_pass_english_through() {
        let text = "قال بوتين إن المحادثات مثمرة. Hello there.\n\nوأضاف ليفيت.";
        let doc = translate_document(&mut Upper, text, &TranslateOptions::default()).unwrap();
        assert_eq!(doc.sentences.len(), 3);
        assert!(doc.sentences[1].passthrough);
        assert_eq!(doc.sentences[1].translation, "Hello there.");
        assert_eq!(&text[doc.sentences[2].span.clone()], "وأضاف ليفيت.");
        assert_eq!(doc.text(), "<29> Hello there.\n\n<12>\n");
    }

    /// Answers every sentence with a blank line inside, as a chat model that writes a
    /// lead-in the guard does not know would.
    struct Chatty;
    impl Translator for Chatty {
        fn name(&self) -> String {
            "chatty".into()
        }
        fn translate(&mut self, s: &[&str]) -> Result<Vec<Translated>> {
            Ok(s.iter()
                .map(|_| Translated::new("Well then:\n\nA sentence.\nMore.".into()))
                .collect())
        }
    }

    #[test]
    fn text_has_the_source_paragraphs_whatever_the_model_writes() {
        let text = "قال بوتين إن المحادثات مثمرة.\nHello there.\n\nوأضاف ليفيت.\n\nEnd.";
        let doc = translate_document(&mut Chatty, text, &TranslateOptions::default()).unwrap();
        assert_eq!(
            doc.text(),
            "Well then: A sentence. More. Hello there.\n\nWell then: A sentence. More.\n\nEnd.\n"
        );
        assert_eq!(doc.text().matches("\n\n").count(), 2);
    }
}
