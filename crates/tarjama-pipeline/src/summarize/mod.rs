//! Summarizing an Arabic article in English with a chat model.
//!
//! Two strategies: `direct` gives the model the Arabic article and asks for an English
//! summary; `translate` first translates the article sentence by sentence (see
//! [`crate::translate`]) and summarizes the English. An article longer than the context
//! allows is summarized map-reduce: each run of sentences that fits on its own, then the
//! partial summaries together.
//!
//! Each summary sentence can name the source sentences it draws on. With `translate` this
//! comes from word overlap with the sentence translations; with `direct` the model is
//! asked to cite the numbered source sentences, and the citations are parsed and removed
//! (module `answer`).
//!
//! With [`Candidates`], the final request is asked several times at once and the summary
//! with the best consensus plus faithfulness is kept ([`SummaryChoice`]; module
//! `candidates`). The article as the model reads it is module `article`.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tarjama_chat::{ChatEngine, Message, Result, SamplingParams};
use tarjama_eval::facts::Backing;
use tarjama_text::chunk::group_by_cost;
use tarjama_text::Normalizer;

use crate::concurrency::run_concurrently;
use crate::glossary::Glossary;
use crate::prompts::{fill, PromptSet};
use crate::translate::guards::arabic_share;
use crate::translate::Candidates;

mod answer;
mod article;
mod candidates;

use article::{translate_article, Article, Translation};

pub use candidates::SummaryChoice;

/// How the summary is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Arabic in, English summary out, in one step.
    Direct,
    /// Translate the article, then summarize the English.
    Translate,
}

/// How long the summary should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SummaryLength {
    /// At most this many sentences.
    Sentences(usize),
    /// At most about this many words.
    Words(usize),
}

impl SummaryLength {
    fn phrase(self) -> String {
        match self {
            SummaryLength::Sentences(1) => "one sentence".into(),
            SummaryLength::Sentences(n) => format!("at most {n} sentences"),
            SummaryLength::Words(n) => format!("at most {n} words"),
        }
    }

    fn max_new_tokens(self) -> usize {
        match self {
            SummaryLength::Sentences(n) => n * 60 + 40,
            SummaryLength::Words(n) => n * 2 + 40,
        }
    }
}

/// Settings of one summary.
#[derive(Debug, Clone)]
pub struct SummaryOptions {
    /// Direct or translate-then-summarize.
    pub strategy: Strategy,
    /// Target length.
    pub length: SummaryLength,
    /// Sampling (greedy by default). The token budget is derived from the length;
    /// `max_new_tokens` caps it (`usize::MAX`: no cap beyond the length's).
    pub sampling: SamplingParams,
    /// Normalization of the Arabic before it reaches the model.
    pub normalizer: Option<Normalizer>,
    /// Ask for and return the source sentences each summary sentence draws on.
    pub attribute: bool,
    /// A glossary: its entries found in the article go into every request's prompt,
    /// and the report lists those the summary does not name.
    pub glossary: Option<Arc<Glossary>>,
    /// Candidate summaries: with more than one, the final request is asked that many
    /// times (the greedy answer and samples) and the candidate with the best consensus
    /// plus faithfulness wins ([`SummaryChoice`]).
    pub candidates: Candidates,
}

/// A source sentence a summary sentence draws on.
#[derive(Debug, Clone, Serialize)]
pub struct SourceRef {
    /// Sentence index in the article.
    pub index: usize,
    /// Its byte span in the article.
    pub span: Range<usize>,
}

/// One sentence of the summary.
#[derive(Debug, Clone, Serialize)]
pub struct SummarySentence {
    /// The English sentence.
    pub text: String,
    /// The article sentences it draws on (empty when none could be found).
    pub sources: Vec<SourceRef>,
}

/// A summary and how it was made.
#[derive(Debug, Clone, Serialize)]
pub struct SummaryReport {
    /// The summary text.
    pub summary: String,
    /// The summary's sentences with their sources.
    pub sentences: Vec<SummarySentence>,
    /// The strategy used.
    pub strategy: Strategy,
    /// How many chunks the article was cut into (1: it fit the context).
    pub chunks: usize,
    /// Sentences in the article.
    pub source_sentences: usize,
    /// The English translation, for the `translate` strategy.
    pub translation: Option<String>,
    /// Repairs and warnings.
    pub events: Vec<String>,
    /// With a glossary: the English of its entries found in the article that the summary
    /// does not name (a summary need not name everyone; a misspelled name shows here).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub glossary_absent: Vec<String>,
    /// With candidates: how the summary was chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choice: Option<SummaryChoice>,
    /// Wall time.
    #[serde(serialize_with = "secs")]
    pub elapsed: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

impl SummaryReport {
    /// The report on an input with no sentences: nothing asked, nothing said.
    fn empty(strategy: Strategy, elapsed: Duration) -> Self {
        SummaryReport {
            summary: String::new(),
            sentences: Vec::new(),
            strategy,
            chunks: 0,
            source_sentences: 0,
            translation: None,
            events: vec!["the input has no text to summarize".into()],
            glossary_absent: Vec::new(),
            choice: None,
            elapsed,
        }
    }
}

const CITE: &str = "\n\nThe article's sentences are numbered. End each sentence of your summary \
with the numbers of the article sentences it is based on, in brackets, like [2][5].";

/// Generated tokens that, repeated verbatim, count as a loop (about one short sentence).
const LOOP_WINDOW: usize = 16;

/// Summarizes `text`, streaming the final summary's text to `on_text`.
pub fn summarize(
    model: &dyn ChatEngine,
    prompts: &PromptSet,
    text: &str,
    options: &SummaryOptions,
    on_text: &mut dyn FnMut(&str),
) -> Result<SummaryReport> {
    let start = Instant::now();
    let article = Article::new(text, options);
    if article.sentences.is_empty() {
        return Ok(SummaryReport::empty(options.strategy, start.elapsed()));
    }
    let mut events = Vec::new();
    if !article.has_arabic() {
        events.push("the input has no Arabic; summarizing it as it is".into());
    }
    let job = Job::new(model, prompts, text, options, article, &mut events)?;
    let Draft {
        answer,
        cited,
        chunks,
        choice,
    } = job.draft(&mut events, on_text)?;
    tracing::debug!(answer = %answer, "model's raw summary");
    let answer = job.in_english(answer, &mut events, on_text)?;
    let cited = cited && arabic_share(&answer) <= 0.2;
    let (summary, sentences) = job.sentences(&answer, cited, &mut events);
    let glossary_absent = options
        .glossary
        .as_ref()
        .map_or_else(Vec::new, |g| g.missing(text, &summary));
    Ok(SummaryReport {
        summary,
        sentences,
        strategy: options.strategy,
        chunks,
        source_sentences: job.article.sentences.len(),
        translation: job.translation.map(|t| t.text),
        events,
        glossary_absent,
        choice,
        elapsed: start.elapsed(),
    })
}

/// One summary in the making: the article, and what every request for it shares.
struct Job<'a> {
    model: &'a dyn ChatEngine,
    prompts: &'a PromptSet,
    options: &'a SummaryOptions,
    article: Article,
    /// With the `translate` strategy: the article's translation, which is summarized.
    translation: Option<Translation>,
    /// The request's template (Arabic or English in).
    template: String,
    /// The glossary's entries found in the article: they lead every request.
    lead: Option<String>,
    /// Whether the model is asked to cite the article's numbered sentences.
    cite: bool,
    /// The final request's sampling.
    sampling: SamplingParams,
    /// Tokens of article one request may hold.
    budget: usize,
    /// With candidates: what backs a candidate's names and numbers.
    evidence: Option<Backing>,
}

/// The model's answer, before its repairs.
struct Draft {
    answer: String,
    /// Whether the answer carries the citations asked for (not when it was asked for
    /// again without them, nor when it was made from parts).
    cited: bool,
    /// How many parts the article was summarized in (1: whole).
    chunks: usize,
    /// With candidates: how the answer was chosen.
    choice: Option<SummaryChoice>,
}

impl<'a> Job<'a> {
    /// Prepares the requests: translates the article for the `translate` strategy, sets
    /// the final request's sampling and the article's token budget, and gathers the
    /// evidence candidates are checked against.
    fn new(
        model: &'a dyn ChatEngine,
        prompts: &'a PromptSet,
        text: &str,
        options: &'a SummaryOptions,
        article: Article,
        events: &mut Vec<String>,
    ) -> Result<Self> {
        let (translation, template) = match options.strategy {
            Strategy::Direct => (None, prompts.summarize.clone()),
            Strategy::Translate => (
                Some(translate_article(model, prompts, text, options, events)?),
                prompts.summarize_english.clone(),
            ),
        };
        let lead = options
            .glossary
            .as_ref()
            .and_then(|g| g.hint(text))
            .map(|entries| fill(&prompts.glossary, &[("entries", &entries)]));
        let cite = options.attribute && options.strategy == Strategy::Direct;
        let sampling = final_sampling(options, cite);
        let overhead =
            200 + model.count_tokens(&prompts.system)? + model.count_tokens(&template)?;
        let budget = model
            .max_context()
            .saturating_sub(sampling.max_new_tokens + overhead)
            .max(64);
        let english = translation.as_ref().map(|t| t.sentences.as_slice());
        let evidence = candidates::evidence(model, prompts, text, options, english, events)?;
        Ok(Job {
            model,
            prompts,
            options,
            article,
            translation,
            template,
            lead,
            cite,
            sampling,
            budget,
            evidence,
        })
    }

    /// The summary as the model first gives it: of the whole article when it fits the
    /// budget, else of its parts.
    fn draft(&self, events: &mut Vec<String>, on_text: &mut dyn FnMut(&str)) -> Result<Draft> {
        let n = self.article.sentences.len();
        let whole = match &self.translation {
            Some(translation) => translation.text.clone(),
            None if self.cite => self.article.numbered(0..n),
            None => self.article.plain(0..n),
        };
        let whole_tokens = self.model.count_tokens(&whole)?;
        if whole_tokens <= self.budget {
            self.draft_whole(&whole, events, on_text)
        } else {
            self.draft_in_parts(whole_tokens, events, on_text)
        }
    }

    /// One request for the whole article (`whole`: as the model reads it).
    fn draft_whole(
        &self,
        whole: &str,
        events: &mut Vec<String>,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Draft> {
        let length = self.options.length;
        let user = fill(
            &self.template,
            &[("length", &length.phrase()), ("text", whole)],
        );
        let drafted = |(answer, choice), cited| Draft {
            answer,
            cited,
            chunks: 1,
            choice,
        };
        if !self.cite {
            return Ok(drafted(self.final_ask(&user, on_text)?, false));
        }
        let (answer, choice) = self.final_ask(&format!("{user}{CITE}"), on_text)?;
        let n = self.article.sentences.len();
        if !answer::strip_citations(&answer, n).is_empty() {
            return Ok(drafted((answer, choice), true));
        }
        // Small models sometimes answer with the citations alone; ask for the summary
        // again without them rather than return nothing.
        events.push("the model answered with citations only; asked again without them".into());
        let plain = fill(
            &self.template,
            &[
                ("length", &length.phrase()),
                ("text", &self.article.plain(0..n)),
            ],
        );
        Ok(drafted(self.final_ask(&plain, on_text)?, false))
    }

    /// Map-reduce: each run of sentences that fits the budget is summarized in English on
    /// its own (the runs together, as the engine takes them), then the partial summaries
    /// together.
    fn draft_in_parts(
        &self,
        whole_tokens: usize,
        events: &mut Vec<String>,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Draft> {
        let units: Vec<String> = match &self.translation {
            Some(translation) => translation.sentences.clone(),
            None => self
                .article
                .sentences
                .iter()
                .map(|(_, t)| t.clone())
                .collect(),
        };
        let groups = part_groups(self.model, &units, self.budget)?;
        let chunks = groups.len();
        events.push(format!(
            "the article ({whole_tokens} tokens) is longer than the context allows ({}); \
             summarized in {chunks} parts, then the parts together",
            self.budget
        ));
        let params = part_sampling(self.options);
        let partials = run_concurrently(groups.len(), self.model.parallel(), |i| {
            let part = units[groups[i].clone()].join("\n");
            let user = fill(
                &self.template,
                &[
                    ("length", &SummaryLength::Sentences(3).phrase()),
                    ("text", &part),
                ],
            );
            self.ask(&user, &params, &mut |_| {})
        })
        .into_iter()
        .collect::<Result<Vec<String>>>()?;
        // Reduce: one summary of the partial summaries.
        let user = fill(
            &self.prompts.summarize_english,
            &[
                ("length", &self.options.length.phrase()),
                ("text", &partials.join("\n")),
            ],
        );
        let (answer, choice) = self.final_ask(&user, on_text)?;
        Ok(Draft {
            answer,
            cited: false,
            chunks,
            choice,
        })
    }

    /// `answer`, or when it came back in Arabic (a small model can copy the article, more
    /// so when a glossary has put English names into it) the answer to the request asked
    /// once more, reminded of the language.
    fn in_english(
        &self,
        answer: String,
        events: &mut Vec<String>,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<String> {
        if arabic_share(&answer) <= 0.2 {
            return Ok(answer);
        }
        events.push("the summary came back in Arabic; asked again for English".into());
        let user = fill(
            &self.template,
            &[
                ("length", &self.options.length.phrase()),
                ("text", &self.article.plain(0..self.article.sentences.len())),
            ],
        );
        let strict = SamplingParams {
            repetition_penalty: 1.15,
            ..self.sampling.clone()
        };
        let user = format!("{user}\n\nWrite the summary in English only.");
        self.ask(&user, &strict, on_text)
    }

    /// The summary and its sentences from the final answer (`cited`: it carries
    /// citations): repeats dropped, cut to length, each sentence tied to its sources.
    fn sentences(
        &self,
        answer: &str,
        cited: bool,
        events: &mut Vec<String>,
    ) -> (String, Vec<SummarySentence>) {
        let length = self.options.length;
        let mut parts = answer::parts(answer, cited, self.article.sentences.len());
        let repeated = answer::drop_repeats(&mut parts);
        if repeated > 0 {
            events.push(format!(
                "dropped {repeated} repeated sentence(s) from the model's answer"
            ));
        }
        if answer::cut_to_length(&mut parts, length) {
            events.push(format!(
                "the model wrote more than {}; cut",
                length.phrase()
            ));
        }
        let summary = parts
            .iter()
            .map(|(t, _)| t.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let english = self.translation.as_ref().map(|t| t.sentences.as_slice());
        let wanted = self.options.attribute;
        let sentences = answer::attribute(parts, &self.article, english, wanted);
        if wanted && sentences.iter().all(|s| s.sources.is_empty()) {
            events.push("no source sentences could be tied to the summary".into());
        }
        (summary, sentences)
    }

    /// The final request: asked once, or with candidates several times at once and the
    /// best kept; its text goes to `on_text`.
    fn final_ask(
        &self,
        user: &str,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<(String, Option<SummaryChoice>)> {
        let Some(evidence) = &self.evidence else {
            return Ok((self.ask(user, &self.sampling, on_text)?, None));
        };
        let (answer, choice) = candidates::ask_candidates(
            self.model,
            self.prompts,
            self.lead.as_deref(),
            user,
            &self.sampling,
            &self.options.candidates,
            evidence,
        )?;
        on_text(&answer);
        Ok((answer, choice))
    }

    /// One request: `user` after the glossary's lead, if any.
    fn ask(
        &self,
        user: &str,
        params: &SamplingParams,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<String> {
        let messages = messages(self.prompts, self.lead.as_deref(), user);
        Ok(self.model.chat(&messages, params, on_text)?.text)
    }
}

/// The final request's sampling: the length's token budget (and room for citations),
/// capped by the options'.
fn final_sampling(options: &SummaryOptions, cite: bool) -> SamplingParams {
    let length = options.length;
    SamplingParams {
        max_new_tokens: (length.max_new_tokens() + if cite { 60 } else { 0 })
            .min(options.sampling.max_new_tokens),
        // Small models fall into saying the same sentence again; what they repeat is
        // dropped afterwards, so stop decoding it as soon as the loop shows.
        stop_on_loop: LOOP_WINDOW,
        // What is past the requested number of sentences is cut afterwards.
        stop_after_sentences: match length {
            SummaryLength::Sentences(n) => n,
            SummaryLength::Words(_) => 0,
        },
        ..options.sampling.clone()
    }
}

/// A part's sampling (map-reduce): three sentences.
fn part_sampling(options: &SummaryOptions) -> SamplingParams {
    SamplingParams {
        max_new_tokens: SummaryLength::Sentences(3)
            .max_new_tokens()
            .min(options.sampling.max_new_tokens),
        stop_on_loop: LOOP_WINDOW,
        stop_after_sentences: 3,
        ..options.sampling.clone()
    }
}

/// The runs of `units` summarized apart when the article is over the budget:
/// consecutive units while their tokens, one more each for the line break that joins
/// them, stay within `budget`; a unit over it alone is a run of its own.
fn part_groups(
    model: &dyn ChatEngine,
    units: &[String],
    budget: usize,
) -> Result<Vec<Range<usize>>> {
    let tokens = units
        .iter()
        .map(|u| Ok(model.count_tokens(u)? + 1))
        .collect::<Result<Vec<usize>>>()?;
    Ok(group_by_cost(&tokens, budget, usize::MAX))
}

/// The system prompt and the request (after its lead, if any).
fn messages(prompts: &PromptSet, lead: Option<&str>, user: &str) -> [Message; 2] {
    let user = match lead {
        Some(lead) => format!("{lead}\n\n{user}"),
        None => user.to_string(),
    };
    [
        Message::new("system", &prompts.system),
        Message::new("user", user),
    ]
}

#[cfg(test)]
// Runs are compared as lists of ranges; a list of one range is meant.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;
    use crate::testing::Words;

    /// The parts of an article whose sentences take `words` tokens each.
    fn parts(words: &[usize], budget: usize) -> Vec<Range<usize>> {
        let units: Vec<String> = words.iter().map(|&n| "w ".repeat(n)).collect();
        part_groups(&Words, &units, budget).unwrap()
    }

    #[test]
    fn a_part_that_hits_the_budget_exactly_is_kept_whole() {
        // Each sentence costs its tokens and one for its line break: 4 + 3 = 7.
        assert_eq!(parts(&[3, 2, 3], 7), [0..2, 2..3]);
        assert_eq!(parts(&[3, 2, 3], 6), [0..1, 1..2, 2..3]);
        assert_eq!(parts(&[3, 2, 1], 9), [0..3]);
    }

    #[test]
    fn a_sentence_over_the_budget_is_a_part_of_its_own() {
        assert_eq!(parts(&[1, 20, 1, 1], 5), [0..1, 1..2, 2..4]);
        assert_eq!(parts(&[20, 1], 5), [0..1, 1..2]);
    }

    #[test]
    fn parts_have_no_sentence_limit() {
        assert_eq!(parts(&[1; 40], 80), [0..40]);
        assert_eq!(parts(&[1; 40], 40), [0..20, 20..40]);
    }
}
