//! Summarizing an Arabic article in English with a chat model.
//!
//! Two strategies: `direct` gives the model the Arabic article and asks for an English
//! summary; `translate` first translates the article sentence by sentence (see
//! [`super::translate`]) and summarizes the English. An article longer than the context
//! allows is summarized map-reduce: each chunk of sentences on its own, then the partial
//! summaries together.
//!
//! Each summary sentence can name the source sentences it draws on. With `translate` this
//! comes from word overlap with the sentence translations; with `direct` the model is
//! asked to cite the numbered source sentences, and the citations are parsed and removed.
//!
//! With [`Candidates`], the final request is asked several times at once and the summary
//! with the best consensus plus faithfulness is kept ([`SummaryChoice`]).

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tarjama_text::{Normalizer, Script};

use crate::glossary::Glossary;
use crate::mbr::{self, ChrfUtility};
use crate::prompts::{fill, PromptSet};
use crate::translate::{
    arabic_share, run_concurrently, translate_document, Candidates, ChatTranslator,
    TranslateOptions,
};
use tarjama_chat::{ChatEngine, Message, Result, SamplingParams};
use tarjama_eval::facts::{self, Backing};

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

/// How the summary was chosen among candidates.
///
/// - *Consensus*: the candidate's mean sentence chrF++ against the other candidates,
///   0 to 1 (what most candidates say).
/// - *Faithfulness*: the share of the candidate's names and numbers
///   ([`tarjama_eval::facts`]) that the sentence translations of the article, the
///   glossary's English or another candidate have; a name or number found nowhere else
///   is likely invented or garbled.
///
/// The winner has the highest sum of the two; ties go to the greedy candidate.
#[derive(Debug, Clone, Serialize)]
pub struct SummaryChoice {
    /// Candidates compared (those in Arabic or empty are dropped first).
    pub compared: usize,
    /// The winner's consensus, 0 to 1.
    pub consensus: f64,
    /// The winner's faithfulness, 0 to 1.
    pub faithfulness: f64,
    /// The winner's names and numbers found nowhere else.
    pub unsupported: Vec<String>,
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

struct Article {
    /// (span, normalized text) of every sentence.
    sentences: Vec<(Range<usize>, String)>,
}

impl Article {
    fn new(text: &str, normalizer: Option<&Normalizer>) -> Self {
        let sentences = tarjama_text::split(text)
            .iter()
            .flat_map(|p| p.sentences.iter())
            .map(|s| {
                let t = match normalizer {
                    Some(n) => n.normalize(s.text).into_owned(),
                    None => s.text.to_string(),
                };
                (s.span.clone(), t)
            })
            .collect();
        Article { sentences }
    }

    fn numbered(&self, range: Range<usize>) -> String {
        self.sentences[range.clone()]
            .iter()
            .zip(range)
            .map(|((_, t), i)| format!("[{}] {t}", i + 1))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn plain(&self, range: Range<usize>) -> String {
        self.sentences[range]
            .iter()
            .map(|(_, t)| t.as_str())
            .collect::<Vec<_>>()
            .join("\n")
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
    let mut article = Article::new(text, options.normalizer.as_ref());
    if let Some(glossary) = &options.glossary {
        // The model reads the glossary's English in place of each term (spans unchanged).
        for (_, sentence) in &mut article.sentences {
            *sentence = glossary.annotate(sentence);
        }
    }
    let mut events = Vec::new();
    if article.sentences.is_empty() {
        return Ok(SummaryReport {
            summary: String::new(),
            sentences: Vec::new(),
            strategy: options.strategy,
            chunks: 0,
            source_sentences: 0,
            translation: None,
            events: vec!["the input has no text to summarize".into()],
            glossary_absent: Vec::new(),
            choice: None,
            elapsed: start.elapsed(),
        });
    }
    let arabic = article
        .sentences
        .iter()
        .filter(|(_, t)| matches!(Script::detect(t), Script::Arabic | Script::Mixed))
        .count();
    if arabic == 0 {
        events.push("the input has no Arabic; summarizing it as it is".into());
    }

    let (english_sentences, body, template) = match options.strategy {
        Strategy::Direct => (None, None, prompts.summarize.clone()),
        Strategy::Translate => {
            let (english, body) = translate_article(model, prompts, text, options, &mut events)?;
            (Some(english), Some(body), prompts.summarize_english.clone())
        }
    };

    // The glossary's entries found in the article lead every request.
    let lead = options
        .glossary
        .as_ref()
        .and_then(|g| g.hint(text))
        .map(|entries| fill(&prompts.glossary, &[("entries", &entries)]));
    let lead = lead.as_deref();

    let length = options.length;
    let cite = options.attribute && options.strategy == Strategy::Direct;
    let sampling = SamplingParams {
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
    };
    let overhead = 200 + model.count_tokens(&prompts.system)? + model.count_tokens(&template)?;
    let budget = model
        .max_context()
        .saturating_sub(sampling.max_new_tokens + overhead)
        .max(64);

    let n = article.sentences.len();
    // With candidates, what backs a candidate's names and numbers: the sentence
    // translations (made for that when the strategy did not make them) and the
    // glossary's English for the article.
    let mut evidence = None;
    if options.candidates.n > 1 {
        let english = match &english_sentences {
            Some(english) => english.clone(),
            None => translate_article(model, prompts, text, options, &mut events)?.0,
        };
        let mut backing = Backing::new(english.iter().map(String::as_str));
        if let Some(glossary) = &options.glossary {
            for entry in glossary.entries_in(text) {
                backing.add(&entry.english);
            }
        }
        evidence = Some(backing);
    }
    let mut choice = None;
    let mut final_ask =
        |user: &str, params: &SamplingParams, on_text: &mut dyn FnMut(&str)| match &evidence {
            Some(backing) => {
                let (answer, chosen) = ask_candidates(
                    model,
                    prompts,
                    lead,
                    user,
                    params,
                    &options.candidates,
                    backing,
                )?;
                on_text(&answer);
                choice = chosen;
                Ok(answer)
            }
            None => ask(model, prompts, lead, user, params, on_text),
        };
    let whole = match &english_sentences {
        Some(_) => body.clone().unwrap_or_default(),
        None if cite => article.numbered(0..n),
        None => article.plain(0..n),
    };
    let whole_tokens = model.count_tokens(&whole)?;
    let mut chunks = 1;
    let (answer, cite_offsets) = if whole_tokens <= budget {
        let user = fill(&template, &[("length", &length.phrase()), ("text", &whole)]);
        if cite {
            let answer = final_ask(&format!("{user}{CITE}"), &sampling, on_text)?;
            if !strip_citations(&answer, n).is_empty() {
                (answer, true)
            } else {
                // Small models sometimes answer with the citations alone; ask for the
                // summary again without them rather than return nothing.
                events.push(
                    "the model answered with citations only; asked again without them".into(),
                );
                let plain = fill(
                    &template,
                    &[("length", &length.phrase()), ("text", &article.plain(0..n))],
                );
                (final_ask(&plain, &sampling, on_text)?, false)
            }
        } else {
            (final_ask(&user, &sampling, on_text)?, true)
        }
    } else {
        // Map: summarize chunks of sentences that fit, in English.
        let units: Vec<String> = match &english_sentences {
            Some(en) => en.clone(),
            None => article.sentences.iter().map(|(_, t)| t.clone()).collect(),
        };
        let groups = group_by_tokens(model, &units, budget)?;
        chunks = groups.len();
        events.push(format!(
            "the article ({whole_tokens} tokens) is longer than the context allows ({budget}); \
             summarized in {chunks} parts, then the parts together"
        ));
        let partial_params = SamplingParams {
            max_new_tokens: SummaryLength::Sentences(3)
                .max_new_tokens()
                .min(options.sampling.max_new_tokens),
            stop_on_loop: LOOP_WINDOW,
            stop_after_sentences: 3,
            ..options.sampling.clone()
        };
        // The parts are independent: they go to the model together.
        let partials = run_concurrently(groups.len(), model.parallel(), |i| {
            let part = units[groups[i].clone()].join("\n");
            let user = fill(
                &template,
                &[
                    ("length", &SummaryLength::Sentences(3).phrase()),
                    ("text", &part),
                ],
            );
            ask(model, prompts, lead, &user, &partial_params, &mut |_| {})
        })
        .into_iter()
        .collect::<Result<Vec<String>>>()?;
        // Reduce: one summary of the partial summaries.
        let user = fill(
            &prompts.summarize_english,
            &[("length", &length.phrase()), ("text", &partials.join("\n"))],
        );
        (final_ask(&user, &sampling, on_text)?, false)
    };

    tracing::debug!(answer = %answer, "model's raw summary");
    // A small model can answer in Arabic, copying the article (more so when a glossary
    // has put English names into it): ask once more, reminded of the language.
    let answer = if arabic_share(&answer) > 0.2 {
        events.push("the summary came back in Arabic; asked again for English".into());
        let user = fill(
            &template,
            &[("length", &length.phrase()), ("text", &article.plain(0..n))],
        );
        let strict = SamplingParams {
            repetition_penalty: 1.15,
            ..sampling.clone()
        };
        let user = format!("{user}\n\nWrite the summary in English only.");
        ask(model, prompts, lead, &user, &strict, on_text)?
    } else {
        answer
    };
    let cite_offsets = cite_offsets && arabic_share(&answer) <= 0.2;
    // The answer as sentences, each with the source sentences it cites (direct strategy).
    let mut parts: Vec<(String, Option<Vec<usize>>)> = if cite && cite_offsets {
        strip_citations(&answer, n)
            .into_iter()
            .map(|(t, c)| (t, Some(c)))
            .collect()
    } else {
        sentences_of(&answer)
            .into_iter()
            .map(|t| (t, None))
            .collect()
    };
    let repeated = drop_repeats(&mut parts);
    if repeated > 0 {
        events.push(format!(
            "dropped {repeated} repeated sentence(s) from the model's answer"
        ));
    }
    if cut_to_length(&mut parts, length) {
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
    let sentences = attribute(
        parts,
        &article,
        english_sentences.as_deref(),
        options.attribute,
    );
    if options.attribute && sentences.iter().all(|s| s.sources.is_empty()) {
        events.push("no source sentences could be tied to the summary".into());
    }
    let glossary_absent = options
        .glossary
        .as_ref()
        .map_or_else(Vec::new, |g| g.missing(text, &summary));
    Ok(SummaryReport {
        summary,
        sentences,
        strategy: options.strategy,
        chunks,
        source_sentences: n,
        translation: body,
        events,
        glossary_absent,
        choice,
        elapsed: start.elapsed(),
    })
}

/// The article translated sentence by sentence: the sentences' English and the whole text.
fn translate_article(
    model: &dyn ChatEngine,
    prompts: &PromptSet,
    text: &str,
    options: &SummaryOptions,
    events: &mut Vec<String>,
) -> Result<(Vec<String>, String)> {
    let mut translator = ChatTranslator::new(
        model,
        "summarize".into(),
        prompts.clone(),
        SamplingParams {
            max_new_tokens: 512.min(options.sampling.max_new_tokens),
            ..options.sampling.clone()
        },
    );
    if let Some(glossary) = &options.glossary {
        translator = translator.with_glossary(glossary.clone());
    }
    let doc = translate_document(
        &mut translator,
        text,
        &TranslateOptions {
            normalizer: options.normalizer.clone(),
            glossary: None,
        },
    )?;
    events.extend(doc.events.iter().cloned());
    let english = doc
        .sentences
        .iter()
        .map(|s| s.translation.clone())
        .collect();
    Ok((english, doc.text()))
}

/// Asks for `candidates.n` answers at once (the first with `params`, the others
/// sampled) and keeps the one with the best consensus plus faithfulness
/// ([`SummaryChoice`]), its names and numbers checked against `evidence`.
fn ask_candidates(
    model: &dyn ChatEngine,
    prompts: &PromptSet,
    lead: Option<&str>,
    user: &str,
    params: &SamplingParams,
    candidates: &Candidates,
    evidence: &Backing,
) -> Result<(String, Option<SummaryChoice>)> {
    let answers = model
        .chat_many(&messages(prompts, lead, user), &candidates.params(params))
        .into_iter()
        .map(|a| a.map(|c| c.text))
        .collect::<Result<Vec<String>>>()?;
    let mut good: Vec<String> = answers
        .iter()
        .filter(|a| !a.trim().is_empty() && arabic_share(a) <= 0.2)
        .cloned()
        .collect();
    if good.len() < 2 {
        // Nothing to compare: the greedy answer goes on to the usual repairs.
        let answer = good.pop().unwrap_or_else(|| answers[0].clone());
        return Ok((answer, None));
    }
    let scored = score_candidates(&good, evidence);
    let best = (0..good.len()).fold(0, |best, i| {
        if scored[i].0 > scored[best].0 {
            i
        } else {
            best
        }
    });
    let (_, consensus, faithfulness, unsupported) = scored[best].clone();
    Ok((
        good.swap_remove(best),
        Some(SummaryChoice {
            compared: good.len() + 1,
            consensus,
            faithfulness,
            unsupported,
        }),
    ))
}

/// (score, consensus, faithfulness, unsupported facts) of each candidate.
fn score_candidates(
    candidates: &[String],
    evidence: &Backing,
) -> Vec<(f64, f64, f64, Vec<String>)> {
    // Citations ("[2][5]") are not part of what is compared.
    let plain: Vec<String> = candidates.iter().map(|c| without_citations(c)).collect();
    let consensus = mbr::consensus(&plain, &ChrfUtility::default());
    plain
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let others = Backing::new(
                plain
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .map(|(_, t)| t.as_str()),
            );
            let all = facts::facts(text);
            let mut unsupported: Vec<String> = all
                .iter()
                .filter(|f| !evidence.backs(f) && !others.backs(f))
                .map(|f| f.text.clone())
                .collect();
            let faithfulness = if all.is_empty() {
                1.0
            } else {
                1.0 - unsupported.len() as f64 / all.len() as f64
            };
            unsupported.dedup();
            let consensus = consensus[i] / 100.0;
            (
                consensus + faithfulness,
                consensus,
                faithfulness,
                unsupported,
            )
        })
        .collect()
}

/// `text` without bracketed citation numbers.
fn without_citations(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let close = rest[open..].find(']').map(|c| open + c);
        match close {
            Some(close)
                if rest[open + 1..close]
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == ',' || c == ' ') =>
            {
                out.push_str(&rest[..open]);
                rest = &rest[close + 1..];
            }
            _ => {
                out.push_str(&rest[..=open]);
                rest = &rest[open + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// One request: `user` after the glossary's `lead`, if any.
fn ask(
    model: &dyn ChatEngine,
    prompts: &PromptSet,
    lead: Option<&str>,
    user: &str,
    params: &SamplingParams,
    on_text: &mut dyn FnMut(&str),
) -> Result<String> {
    Ok(model
        .chat(&messages(prompts, lead, user), params, on_text)?
        .text)
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

fn group_by_tokens(
    model: &dyn ChatEngine,
    units: &[String],
    budget: usize,
) -> Result<Vec<Range<usize>>> {
    let mut groups = Vec::new();
    let (mut start, mut tokens) = (0, 0);
    for (i, u) in units.iter().enumerate() {
        let t = model.count_tokens(u)? + 1;
        if i > start && tokens + t > budget {
            groups.push(start..i);
            start = i;
            tokens = 0;
        }
        tokens += t;
    }
    groups.push(start..units.len());
    Ok(groups)
}

/// Splits `[3][5]`-style citations off each sentence. Returns each clean sentence with
/// the cited (zero-based) sentence indices below `n`.
fn strip_citations(answer: &str, n: usize) -> Vec<(String, Vec<usize>)> {
    let mut out: Vec<(String, Vec<usize>)> = Vec::new();
    for paragraph in tarjama_text::split(answer.trim()) {
        for s in paragraph.sentences {
            let mut text = String::new();
            let mut nums = Vec::new();
            let mut rest = s.text;
            while let Some(open) = rest.find('[') {
                let Some(close) = rest[open..].find(']') else {
                    break;
                };
                let inside = &rest[open + 1..open + close];
                let parsed: Vec<usize> = inside
                    .split([',', ' ', '-'])
                    .filter(|x| !x.is_empty())
                    .filter_map(|x| x.trim().parse::<usize>().ok())
                    .collect();
                text.push_str(&rest[..open]);
                if parsed.is_empty() {
                    text.push_str(&rest[open..open + close + 1]);
                }
                nums.extend(
                    parsed
                        .into_iter()
                        .filter(|&k| k >= 1 && k <= n)
                        .map(|k| k - 1),
                );
                rest = &rest[open + close + 1..];
            }
            text.push_str(rest);
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            let text = text.replace(" .", ".").replace(" ,", ",");
            if text.is_empty() || text.chars().all(|c| !c.is_alphanumeric()) {
                // A citation on a line of its own belongs to the sentence before.
                if let Some((_, last)) = out.last_mut() {
                    last.extend(nums);
                    last.sort_unstable();
                    last.dedup();
                }
                continue;
            }
            nums.sort_unstable();
            nums.dedup();
            out.push((text, nums));
        }
    }
    out
}

/// The sentences of an English text.
fn sentences_of(text: &str) -> Vec<String> {
    tarjama_text::split(text.trim())
        .into_iter()
        .flat_map(|p| p.sentences.into_iter().map(|s| s.text.to_string()))
        .collect()
}

/// Removes sentences that repeat an earlier one (most of their content words already
/// said): small models loop. Returns how many were removed.
fn drop_repeats<T>(parts: &mut Vec<(String, T)>) -> usize {
    let before = parts.len();
    let mut seen: Vec<HashSet<String>> = Vec::new();
    parts.retain(|(text, _)| {
        let words = content_words(text);
        let repeat = !words.is_empty()
            && seen
                .iter()
                .any(|s| words.intersection(s).count() as f32 >= 0.8 * words.len() as f32);
        if !repeat {
            seen.push(words);
        }
        !repeat
    });
    before - parts.len()
}

/// Cuts the summary to the requested length at a sentence end; says whether it cut.
fn cut_to_length<T>(parts: &mut Vec<(String, T)>, length: SummaryLength) -> bool {
    let keep = match length {
        SummaryLength::Sentences(n) => n.max(1),
        SummaryLength::Words(n) => {
            // Allow 20% slack before cutting: a summary that is a little long is better
            // than one cut mid-thought.
            let limit = n + n / 5;
            let mut words = 0;
            let mut keep = 0;
            for (s, _) in parts.iter() {
                words += s.split_whitespace().count();
                if words > limit && keep > 0 {
                    break;
                }
                keep += 1;
            }
            keep
        }
    };
    let cut = keep < parts.len();
    parts.truncate(keep);
    cut
}

fn content_words(text: &str) -> HashSet<String> {
    const STOP: &[&str] = &[
        "the", "and", "that", "this", "with", "from", "for", "was", "were", "are", "has", "have",
        "had", "his", "her", "its", "their", "they", "which", "who", "said", "says", "will",
        "would", "been", "between", "about", "also", "into", "after", "over", "not", "but", "than",
        "there", "what", "when", "where", "while", "during",
    ];
    text.split(|c: char| !c.is_alphanumeric())
        .map(|w| w.to_lowercase())
        .filter(|w| w.chars().count() > 2 && !STOP.contains(&w.as_str()))
        .collect()
}

fn attribute(
    parts: Vec<(String, Option<Vec<usize>>)>,
    article: &Article,
    english: Option<&[String]>,
    wanted: bool,
) -> Vec<SummarySentence> {
    let english_words: Option<Vec<HashSet<String>>> =
        english.map(|en| en.iter().map(|s| content_words(s)).collect());
    parts
        .into_iter()
        .map(|(text, cited)| {
            let mut indices: Vec<usize> = Vec::new();
            if wanted {
                if let Some(c) = cited {
                    indices = c;
                } else if let Some(ew) = &english_words {
                    let words = content_words(&text);
                    let mut scored: Vec<(f32, usize)> = ew
                        .iter()
                        .enumerate()
                        .map(|(j, w)| {
                            let overlap = words.intersection(w).count() as f32;
                            (overlap / words.len().max(1) as f32, j)
                        })
                        .filter(|(s, _)| *s >= 0.25)
                        .collect();
                    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
                    indices = scored.into_iter().take(3).map(|(_, j)| j).collect();
                    indices.sort_unstable();
                }
            }
            SummarySentence {
                text,
                sources: indices
                    .into_iter()
                    .filter_map(|j| {
                        article.sentences.get(j).map(|(span, _)| SourceRef {
                            index: j,
                            span: span.clone(),
                        })
                    })
                    .collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn citations_are_parsed_and_removed() {
        let parts = strip_citations("Putin met Witkoff [1][2]. Talks were fruitful [3, 9].", 5);
        assert_eq!(
            parts,
            vec![
                ("Putin met Witkoff.".to_string(), vec![0, 1]),
                ("Talks were fruitful.".to_string(), vec![2]),
            ]
        );
    }

    #[test]
    fn length_is_enforced_at_sentence_ends() {
        let parts = |s: &str| -> Vec<(String, ())> {
            sentences_of(s).into_iter().map(|t| (t, ())).collect()
        };
        let s = "One two. Three four. Five six.";
        let mut p = parts(s);
        assert!(cut_to_length(&mut p, SummaryLength::Sentences(2)));
        assert_eq!(p.len(), 2);
        let mut p = parts(s);
        assert!(!cut_to_length(&mut p, SummaryLength::Sentences(5)));
        let mut p = parts(s);
        assert!(cut_to_length(&mut p, SummaryLength::Words(4)));
        assert_eq!(
            p.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(),
            ["One two.", "Three four."]
        );
    }

    #[test]
    fn repeated_sentences_are_dropped() {
        let mut p: Vec<(String, ())> = sentences_of(
            "The meeting took place in Saint Petersburg and lasted four hours. Dmitriev called the talks productive. The meeting took place in Saint Petersburg, and lasted four hours.",
        )
        .into_iter()
        .map(|t| (t, ()))
        .collect();
        assert_eq!(drop_repeats(&mut p), 1);
        assert_eq!(p.len(), 2);
    }
}
