//! tarjama's own routes: `POST /v1/translate` (a text or its lines, with a glossary and
//! candidates, answered as JSON, text, jsonl records or a bilingual page) and
//! `POST /v1/summarize` (streamed as server-sent events, or one JSON answer). Each
//! answers what `tarjama translate` and `tarjama summarize --format json` report: the
//! model, the notes, the glossary terms missed.

use std::convert::Infallible;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State as Shared;
use axum::http::header;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use tarjama_batch::inputs::Kind;
use tarjama_batch::render::Format;
use tarjama_chat::{ChatEngine, Completion, Message, SamplingParams};
use tarjama_pipeline::summarize::{Strategy, SummaryLength, SummaryOptions};
use tarjama_pipeline::{Candidates, Glossary, TranslateOptions};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::error::ApiError;
use crate::openai::server_timing;
use crate::state::{AuthorizedJson, Model, State};

/// A translation request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranslateRequest {
    /// The Arabic text.
    text: String,
    /// `json` (default), `text`, `jsonl`, `html` or `tsv`.
    #[serde(default)]
    format: Option<String>,
    /// One segment per line: every line translated alone, one output line per line.
    #[serde(default)]
    lines: bool,
    /// `text` (default) or `srt` (a subtitle file: timestamps kept).
    #[serde(default)]
    kind: Option<String>,
    /// A glossary in the format of `--glossary` files: `Arabic<TAB>English` per line.
    #[serde(default)]
    glossary: Option<String>,
    /// Candidates per request (chosen by consensus); 1: greedy only.
    #[serde(default)]
    candidates: Option<usize>,
}

/// What a format is answered as.
fn content_type(format: Format) -> &'static str {
    match format {
        Format::Txt => "text/plain; charset=utf-8",
        Format::Jsonl => "application/x-ndjson",
        Format::Tsv => "text/tab-separated-values; charset=utf-8",
        Format::Html => "text/html; charset=utf-8",
    }
}

/// A request's glossary, parsed as `--glossary` files are.
pub fn parse_glossary(text: Option<&str>) -> Result<Option<Arc<Glossary>>, ApiError> {
    match text.filter(|t| !t.trim().is_empty()) {
        None => Ok(None),
        Some(t) => Glossary::parse(t)
            .map(|g| Some(Arc::new(g)))
            .map_err(|(line, problem)| {
                ApiError::field("glossary", format!("glossary, line {line}: {problem}"))
            }),
    }
}

/// `POST /v1/translate`.
pub async fn translate(
    Shared(state): Shared<Arc<State>>,
    AuthorizedJson(request): AuthorizedJson<TranslateRequest>,
) -> Result<Response, ApiError> {
    let start = Instant::now();
    let json_answer = matches!(request.format.as_deref(), None | Some("json"));
    let format = match request.format.as_deref() {
        None | Some("json") | Some("text") | Some("txt") => Format::Txt,
        Some("jsonl") => Format::Jsonl,
        Some("html") => Format::Html,
        Some("tsv") => Format::Tsv,
        Some(other) => {
            return Err(ApiError::field(
                "format",
                format!("format: {other:?} is not json, text, jsonl, html or tsv"),
            ))
        }
    };
    let kind = match request.kind.as_deref() {
        None | Some("text") | Some("txt") => Kind::Text,
        Some("srt") => Kind::Srt,
        Some(other) => {
            return Err(ApiError::field(
                "kind",
                format!("kind: {other:?} is not text or srt"),
            ))
        }
    };
    if request.lines && matches!(format, Format::Html | Format::Tsv) {
        return Err(ApiError::field(
            "format",
            "format: line mode answers json, text or jsonl",
        ));
    }
    let glossary = parse_glossary(request.glossary.as_deref())?;
    let model = state.model()?;
    let mut choices = model.defaults.choices.clone();
    if let Some(n) = request.candidates {
        if !(1..=16).contains(&n) {
            return Err(ApiError::field(
                "candidates",
                "candidates: between 1 and 16",
            ));
        }
        choices.candidates = Candidates {
            n,
            ..choices.candidates
        };
    }
    if glossary.is_some() {
        choices.glossary = glossary;
    }
    if request.lines {
        choices.batch_sentences = 1;
    }
    let options = model.defaults.translate.clone();
    let permit = state.admit()?;
    let job_state = state.clone();
    let text = request.text;
    let lines = request.lines;
    let (answer, took) = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let began = Instant::now();
        let model = job_state.model().expect("loaded before admission");
        let answer = run_translation(
            model,
            &choices,
            &options,
            text,
            kind,
            format,
            lines,
            json_answer,
        );
        (answer, began.elapsed())
    })
    .await
    .map_err(ApiError::engine)?;
    let mut response = answer?;
    let overhead = start.elapsed().saturating_sub(took);
    state.metrics.overhead.observe(overhead.as_secs_f64());
    server_timing(&mut response, overhead, took);
    Ok(response)
}

/// Translates on the calling (blocking) thread and builds the answer.
#[allow(clippy::too_many_arguments)]
fn run_translation(
    model: &Model,
    choices: &tarjama_loader::ChatChoices,
    options: &TranslateOptions,
    text: String,
    kind: Kind,
    format: Format,
    lines: bool,
    json_answer: bool,
) -> Result<Response, ApiError> {
    let name = model.name.clone();
    if lines {
        let format = if json_answer { Format::Jsonl } else { format };
        let out = model.with_translator(choices, |t| {
            tarjama_batch::lines::translate_text(
                t,
                &text,
                options.normalizer.as_ref(),
                format,
                &name,
            )
        })?;
        let out = out.map_err(|e| ApiError::engine(format!("{e:#}")))?;
        if json_answer {
            let records: Vec<serde_json::Value> = out
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            let translation: Vec<&str> = records
                .iter()
                .map(|r| r["translation"].as_str().unwrap_or_default())
                .collect();
            return Ok(Json(json!({
                "model": name,
                "translation": translation.join("\n") + "\n",
                "lines": records,
            }))
            .into_response());
        }
        return Ok(([(header::CONTENT_TYPE, content_type(format))], out).into_response());
    }
    let rendered = model.with_translator(choices, |t| {
        tarjama_batch::document::translate(t, kind, text, options, format, "<request>", &name)
    })?;
    let rendered = rendered?;
    if !json_answer {
        return Ok((
            [(header::CONTENT_TYPE, content_type(format))],
            rendered.output,
        )
            .into_response());
    }
    let mut missing: Vec<&String> = rendered
        .doc
        .sentences
        .iter()
        .flat_map(|s| &s.glossary_missing)
        .collect();
    missing.sort();
    missing.dedup();
    Ok(Json(json!({
        "model": name,
        "tarjama": env!("CARGO_PKG_VERSION"),
        "translation": rendered.output,
        "sentences": rendered.doc.sentences,
        "notes": rendered.doc.events,
        "glossary_missing": missing,
    }))
    .into_response())
}

/// A summary request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummarizeRequest {
    text: String,
    /// At most this many sentences (default 3).
    sentences: Option<usize>,
    /// At most about this many words (instead of sentences).
    words: Option<usize>,
    /// `direct` (default) or `translate`.
    strategy: Option<String>,
    /// A glossary, as for `/v1/translate`.
    glossary: Option<String>,
    /// Stream the summary as it is written (default true).
    stream: Option<bool>,
}

/// `POST /v1/summarize`: events `text` (`{"text": piece}`) while the summary is written,
/// then `summary` with the whole report, or `error`.
pub async fn summarize(
    Shared(state): Shared<Arc<State>>,
    AuthorizedJson(request): AuthorizedJson<SummarizeRequest>,
) -> Result<Response, ApiError> {
    let length = match (request.sentences, request.words) {
        (Some(_), Some(_)) => {
            return Err(ApiError::field(
                "words",
                "words: give sentences or words, not both",
            ))
        }
        (_, Some(0)) | (Some(0), _) => {
            return Err(ApiError::field("sentences", "sentences: at least 1"))
        }
        (_, Some(w)) => SummaryLength::Words(w),
        (s, None) => SummaryLength::Sentences(s.unwrap_or(3)),
    };
    let strategy = match request.strategy.as_deref() {
        None | Some("direct") => Strategy::Direct,
        Some("translate") => Strategy::Translate,
        Some(other) => {
            return Err(ApiError::field(
                "strategy",
                format!("strategy: {other:?} is not direct or translate"),
            ))
        }
    };
    let glossary = parse_glossary(request.glossary.as_deref())?;
    let model = state.model()?;
    let chat = model.chat()?.clone();
    let name = model.name.clone();
    let options = SummaryOptions {
        strategy,
        length,
        sampling: model.defaults.params.clone(),
        normalizer: model.defaults.translate.normalizer.clone(),
        attribute: true,
        glossary,
        candidates: Candidates::default(),
    };
    let permit = state.admit()?;
    let (tx, rx) = mpsc::channel::<Event>(256);
    let text = request.text;
    let worker = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        // The client that stops listening (its stream, and so this channel, dropped)
        // ends the summary's model requests at their next token.
        let engine = Cancellable {
            inner: chat.engine.as_ref(),
            gone: &|| tx.is_closed(),
        };
        let report = tarjama_pipeline::summarize::summarize(
            &engine,
            &chat.prompts,
            &text,
            &options,
            &mut |piece| {
                let data = json!({ "text": piece }).to_string();
                let _ = tx.blocking_send(Event::default().event("text").data(data));
            },
        );
        let event = match &report {
            Ok(r) => Event::default()
                .event("summary")
                .data(json!({ "model": name, "report": r }).to_string()),
            Err(e) => Event::default()
                .event("error")
                .data(ApiError::from(clone_error(e)).body().to_string()),
        };
        let _ = tx.blocking_send(event);
        report.map(|r| json!({ "model": name, "report": r }))
    });
    if request.stream.unwrap_or(true) {
        let events = tokio_stream::StreamExt::map(ReceiverStream::new(rx), Ok::<_, Infallible>);
        return Ok(Sse::new(events).into_response());
    }
    // Held while the summary is made: a handler dropped with its client drops it too.
    let _listening = rx;
    let report = worker.await.map_err(ApiError::engine)?;
    Ok(Json(report.map_err(ApiError::from)?).into_response())
}

/// The pipeline's error as the engine API's (its message kept).
fn clone_error(e: &tarjama_chat::Error) -> tarjama_chat::Error {
    match e {
        tarjama_chat::Error::ContextOverflow { needed, max } => {
            tarjama_chat::Error::ContextOverflow {
                needed: *needed,
                max: *max,
            }
        }
        other => tarjama_chat::Error::Unsupported(other.to_string()),
    }
}

/// An engine whose requests end as soon as `gone` says the client went away: each
/// request runs through [`ChatEngine::chat_until`], which the batched engine honours at
/// the next token.
struct Cancellable<'a> {
    inner: &'a dyn ChatEngine,
    gone: &'a (dyn Fn() -> bool + Sync),
}

impl ChatEngine for Cancellable<'_> {
    fn chat(
        &self,
        messages: &[Message],
        params: &SamplingParams,
        on_text: &mut dyn FnMut(&str),
    ) -> tarjama_chat::Result<Completion> {
        self.chat_until(messages, params, &mut |text| {
            on_text(text);
            ControlFlow::Continue(())
        })
    }

    fn chat_until(
        &self,
        messages: &[Message],
        params: &SamplingParams,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> tarjama_chat::Result<Completion> {
        if (self.gone)() {
            return Err(tarjama_chat::Error::Cancelled);
        }
        self.inner.chat_until(messages, params, &mut |text| {
            if (self.gone)() {
                ControlFlow::Break(())
            } else {
                on_text(text)
            }
        })
    }

    fn count_tokens(&self, text: &str) -> tarjama_chat::Result<usize> {
        self.inner.count_tokens(text)
    }

    fn max_context(&self) -> usize {
        self.inner.max_context()
    }

    fn parallel(&self) -> usize {
        self.inner.parallel()
    }
}
