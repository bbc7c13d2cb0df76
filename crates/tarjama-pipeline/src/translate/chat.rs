//! A chat model as a [`Translator`]: the sentences are grouped into requests under a
//! token budget, each request is asked (numbered when it holds several sentences, with
//! worked examples and glossary hints when set), and every answer goes through the
//! [`guards`](super::guards). Small chat models fail in known ways: an answer still in
//! Arabic or caught in a repetition loop is retried with stricter settings, a numbered
//! batch that comes back with a sentence missing is redone sentence by sentence, and a
//! translation that drops a glossary term is asked for again. Every such event is
//! reported, never hidden.
//!
//! With [`Candidates`], each request is asked several times at once and each sentence
//! keeps the minimum-Bayes-risk choice among the answers that pass the guards.

use std::ops::Range;
use std::sync::Arc;

use tarjama_chat::{ChatEngine, Message, Result, SamplingParams};
use tarjama_text::chunk::group_by_cost;

use super::guards::{clean_answer, parse_numbered, preview, problem, problem_free};
use super::seq2seq::select;
use super::{Translated, Translator};
use crate::concurrency::run_concurrently;
use crate::glossary::Glossary;
use crate::mbr::{ChrfUtility, Utility};
use crate::prompts::{fill, PromptSet};

/// A chat model used as a translator, through any [`ChatEngine`]: the batched GGUF engine
/// or a remote server (requests of one call run concurrently), or one GGUF model behind a
/// mutex (one request at a time).
///
/// With [`Candidates`] above 1, every request is asked that many times at once (the
/// greedy answer, then samples), the answers that fail the guards are dropped, and each
/// sentence keeps the answer chosen by minimum Bayes risk ([`mbr`](crate::mbr)); with a glossary,
/// only the answers that miss the fewest of its terms take part.
pub struct ChatTranslator<E: ChatEngine> {
    engine: E,
    prompts: PromptSet,
    params: SamplingParams,
    /// Sentences are sent together while their tokens stay within this.
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
    /// within `chunk_tokens` (a sentence over it goes alone), at most `chunk_sentences`.
    /// The tokens are the sentences' own, counted apart: the numbering and line breaks
    /// between them are not counted.
    fn chunks(&self, sentences: &[&str]) -> Result<Vec<Range<usize>>> {
        let tokens = sentences
            .iter()
            .map(|s| self.engine.count_tokens(s))
            .collect::<Result<Vec<usize>>>()?;
        Ok(group_by_cost(
            &tokens,
            self.chunk_tokens,
            self.chunk_sentences,
        ))
    }
}

impl<E: ChatEngine> Translator for ChatTranslator<E> {
    fn glossary(&self) -> Option<Arc<Glossary>> {
        self.glossary.clone()
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Words;

    /// The requests `ChatTranslator` makes of `sentences` (a token per word).
    fn requests(tokens: usize, per_request: usize, sentences: &[&str]) -> Vec<Range<usize>> {
        ChatTranslator::new(
            Words,
            "words".into(),
            PromptSet::default(),
            SamplingParams::default(),
        )
        .with_chunking(tokens, per_request)
        .chunks(sentences)
        .unwrap()
    }

    #[test]
    fn a_request_that_hits_the_token_budget_exactly_is_kept_whole() {
        // 3 + 4 = 7 tokens: the budget exactly; the numbering is not counted.
        let s = ["a b c", "d e f g", "h i j", "k"];
        assert_eq!(requests(7, 6, &s), [0..2, 2..4]);
        assert_eq!(requests(6, 6, &s), [0..1, 1..2, 2..4]);
    }

    #[test]
    fn a_sentence_over_the_token_budget_goes_alone() {
        let s = ["a b", "c d e f g h i j", "k", "l"];
        assert_eq!(requests(4, 6, &s), [0..1, 1..2, 2..4]);
        assert_eq!(requests(4, 6, &s[1..]), [0..1, 1..3]);
    }

    #[test]
    fn a_request_holds_at_most_the_sentences_set() {
        let s = ["a", "b", "c", "d", "e", "f", "g"];
        assert_eq!(requests(160, 3, &s), [0..3, 3..6, 6..7]);
        // 1 sentence per request: each sentence alone, whatever the budget.
        assert_eq!(requests(160, 1, &s[..3]), [0..1, 1..2, 2..3]);
        // The defaults: 160 tokens, 6 sentences.
        let defaults = ChatTranslator::new(
            Words,
            "words".into(),
            PromptSet::default(),
            SamplingParams::default(),
        );
        assert_eq!(defaults.chunks(&s).unwrap(), [0..6, 6..7]);
    }

    #[test]
    fn no_sentences_no_requests() {
        assert!(requests(160, 6, &[]).is_empty());
    }
}
