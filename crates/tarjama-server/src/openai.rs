//! The OpenAI-compatible routes: `POST /v1/chat/completions` (streamed as server-sent
//! events or not), `GET /v1/models`, and `POST /tokenize` (llama.cpp's and vLLM's
//! shapes), so that the `openai` client, tarjama's own `--endpoint` and other
//! OpenAI-speaking tools work against this server unchanged.
//!
//! Every request is one call of the shared engine on a blocking thread; its text comes
//! back over a channel. A client that goes away closes the channel, and the engine drops
//! the request at its next token ([`tarjama_chat::ChatEngine::chat_until`]).

use std::convert::Infallible;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State as Shared;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tarjama_chat::{Completion, Message, SamplingParams, StopReason};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use crate::error::ApiError;
use crate::state::{AuthorizedJson, State};

/// Tokens generated when a request does not say (`max_tokens`).
pub const DEFAULT_MAX_TOKENS: usize = 1024;

/// `GET /v1/models`.
pub async fn models(Shared(state): Shared<Arc<State>>, headers: HeaderMap) -> Response {
    if let Err(e) = state.authorize(&headers, None) {
        return e.into_response();
    }
    let model = match state.model() {
        Ok(m) => m,
        Err(e) => return e.into_response(),
    };
    Json(json!({
        "object": "list",
        "data": [{
            "id": model.name,
            "object": "model",
            "created": 0,
            "owned_by": "tarjama",
            // vLLM's name: tarjama's remote engine plans its requests to fit.
            "max_model_len": model.max_context,
        }]
    }))
    .into_response()
}

/// A chat request, as OpenAI defines it, with the sampling fields other servers take.
/// Unknown fields are ignored, as OpenAI-compatible servers do.
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    model: Option<String>,
    messages: Vec<InMessage>,
    #[serde(default)]
    stream: bool,
    max_tokens: Option<usize>,
    max_completion_tokens: Option<usize>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<usize>,
    seed: Option<u64>,
    stop: Option<Stop>,
    repetition_penalty: Option<f32>,
    repeat_penalty: Option<f32>,
    n: Option<usize>,
    /// tarjama's own: stop when the last this-many tokens repeat earlier output.
    stop_on_loop: Option<usize>,
    /// tarjama's own: stop after this many complete sentences.
    stop_after_sentences: Option<usize>,
    /// tarjama's own: epsilon sampling.
    epsilon: Option<f64>,
    /// tarjama's own: how many recent tokens the repetition penalty looks at.
    repeat_last_n: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct InMessage {
    role: String,
    content: Content,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

impl ChatRequest {
    /// The messages and sampling settings, or a 400 naming the field.
    fn into_parts(self) -> Result<(Vec<Message>, SamplingParams), ApiError> {
        if self.messages.is_empty() {
            return Err(ApiError::field(
                "messages",
                "messages: at least one is needed",
            ));
        }
        if self.n.is_some_and(|n| n != 1) {
            return Err(ApiError::field(
                "n",
                "n: only one choice per request is served",
            ));
        }
        let mut messages = Vec::with_capacity(self.messages.len());
        for (i, m) in self.messages.into_iter().enumerate() {
            if !matches!(
                m.role.as_str(),
                "system" | "user" | "assistant" | "developer"
            ) {
                return Err(ApiError::field(
                    &format!("messages[{i}].role"),
                    format!(
                        "messages[{i}].role: {:?} is not system, user, assistant or developer",
                        m.role
                    ),
                ));
            }
            let content = match m.content {
                Content::Text(t) => t,
                Content::Parts(parts) => {
                    let mut text = String::new();
                    for (j, p) in parts.into_iter().enumerate() {
                        match (p.kind.as_str(), p.text) {
                            ("text", Some(t)) => text.push_str(&t),
                            (kind, _) => {
                                return Err(ApiError::field(
                                    &format!("messages[{i}].content[{j}]"),
                                    format!(
                                        "messages[{i}].content[{j}]: only text parts are \
                                         served, not {kind:?}"
                                    ),
                                ))
                            }
                        }
                    }
                    text
                }
            };
            let role = if m.role == "developer" {
                "system".to_string()
            } else {
                m.role
            };
            messages.push(Message::new(role, content));
        }
        let temperature = self.temperature.unwrap_or(0.0);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(ApiError::field(
                "temperature",
                "temperature: must be between 0 and 2",
            ));
        }
        if self.top_p.is_some_and(|p| !(p > 0.0 && p <= 1.0)) {
            return Err(ApiError::field("top_p", "top_p: must be in (0, 1]"));
        }
        let max_tokens = self
            .max_completion_tokens
            .or(self.max_tokens)
            .unwrap_or(DEFAULT_MAX_TOKENS);
        if max_tokens == 0 {
            return Err(ApiError::field(
                "max_tokens",
                "max_tokens: must be at least 1",
            ));
        }
        let defaults = SamplingParams::default();
        let params = SamplingParams {
            temperature,
            top_p: self.top_p,
            top_k: self.top_k.filter(|&k| k > 0),
            seed: self.seed.unwrap_or(defaults.seed),
            repetition_penalty: self
                .repetition_penalty
                .or(self.repeat_penalty)
                .unwrap_or(1.0),
            max_new_tokens: max_tokens,
            stop: match self.stop {
                None => Vec::new(),
                Some(Stop::One(s)) => vec![s],
                Some(Stop::Many(v)) => v,
            },
            stop_on_loop: self.stop_on_loop.unwrap_or(0),
            stop_after_sentences: self.stop_after_sentences.unwrap_or(0),
            epsilon: self.epsilon.filter(|&e| e > 0.0),
            repeat_last_n: self.repeat_last_n.unwrap_or(defaults.repeat_last_n),
        };
        Ok((messages, params))
    }
}

/// What the engine's thread sends the handler.
pub enum Piece {
    /// Generated text.
    Text(String),
    /// The end: the completion (or why not), and the time spent in the engine.
    End(Result<Completion, ApiError>, Duration),
}

/// Runs one chat on a blocking thread; its pieces arrive on the returned channel. The
/// request ends early when the receiver is dropped.
fn spawn_chat(
    state: &Arc<State>,
    messages: Vec<Message>,
    params: SamplingParams,
) -> Result<mpsc::Receiver<Piece>, ApiError> {
    let model = state.model()?;
    let engine = model.chat()?.engine.clone();
    // The local engine counts tokens itself (every route's); another engine's tokens are
    // counted here, from the answers.
    let count_tokens = !model.engine_counts_tokens;
    let permit = state.admit()?;
    let (tx, rx) = mpsc::channel(256);
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let start = Instant::now();
        let mut first = None;
        let result = engine.chat_until(&messages, &params, &mut |text| {
            first.get_or_insert_with(|| start.elapsed());
            match tx.blocking_send(Piece::Text(text.to_string())) {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()),
            }
        });
        let took = start.elapsed();
        let m = &state.metrics;
        match &result {
            Ok(c) => {
                if count_tokens {
                    m.prompt_tokens.inc_by(c.prompt_tokens as u64);
                    m.generated_tokens.inc_by(c.generated_tokens as u64);
                }
                if let Some(first) = first {
                    m.first_token.observe(first.as_secs_f64());
                }
            }
            Err(tarjama_chat::Error::Cancelled) => m.cancelled.inc(),
            Err(_) => {}
        }
        let _ = tx.blocking_send(Piece::End(result.map_err(ApiError::from), took));
    });
    Ok(rx)
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    Shared(state): Shared<Arc<State>>,
    AuthorizedJson(request): AuthorizedJson<ChatRequest>,
) -> Result<Response, ApiError> {
    let start = Instant::now();
    let model = state.model()?;
    if let Some(asked) = request.model.as_deref().filter(|m| *m != model.name) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "model_not_found",
            format!(
                "the model {asked:?} is not served here; this server runs {:?}",
                model.name
            ),
        ));
    }
    let name = model.name.clone();
    let stream = request.stream;
    let (messages, params) = request.into_parts()?;
    let rx = spawn_chat(&state, messages, params)?;
    let id = format!("chatcmpl-{:x}", state.next_id());
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if stream {
        return Ok(stream_answer(state, rx, id, created, name, start));
    }
    let (text, completion, took) = collect(rx).await?;
    let overhead = start.elapsed().saturating_sub(took);
    state.metrics.overhead.observe(overhead.as_secs_f64());
    let body = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": name,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": text },
            "finish_reason": finish_reason(completion.stop),
            "tarjama_stop": completion.stop,
        }],
        "usage": usage(&completion),
    });
    let mut response = Json(body).into_response();
    server_timing(&mut response, overhead, took);
    Ok(response)
}

/// Waits for the whole answer.
async fn collect(
    mut rx: mpsc::Receiver<Piece>,
) -> Result<(String, Completion, Duration), ApiError> {
    let mut text = String::new();
    while let Some(piece) = rx.recv().await {
        match piece {
            Piece::Text(t) => text.push_str(&t),
            Piece::End(result, took) => return result.map(|c| (text, c, took)),
        }
    }
    Err(ApiError::engine("the engine stopped before answering"))
}

/// The answer as server-sent events: a first chunk with the role, one per piece of text,
/// a last one with the finish reason (and the usage), then `[DONE]`.
fn stream_answer(
    state: Arc<State>,
    rx: mpsc::Receiver<Piece>,
    id: String,
    created: u64,
    model: String,
    start: Instant,
) -> Response {
    let chunk = move |delta: Value, finish: Option<&str>| {
        json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
        })
    };
    let first = chunk(json!({ "role": "assistant", "content": "" }), None);
    let events = ReceiverStream::new(rx).map(move |piece| {
        let data = match piece {
            Piece::Text(t) => chunk(json!({ "content": t }), None),
            Piece::End(Ok(c), took) => {
                let overhead = start.elapsed().saturating_sub(took);
                state.metrics.overhead.observe(overhead.as_secs_f64());
                let mut last = chunk(json!({}), Some(finish_reason(c.stop)));
                // tarjama's own word for the stop (`loop`, `sentences`, ...), which
                // tarjama's remote engine reads.
                last["choices"][0]["tarjama_stop"] = json!(c.stop);
                // llama.cpp puts the usage in the last chunk; OpenAI, when asked
                // (`stream_options.include_usage`), in one more. Clients read it from
                // either, so it goes in the last one always.
                last["usage"] = usage(&c);
                last
            }
            Piece::End(Err(e), _) => e.body(),
        };
        Ok::<_, Infallible>(Event::default().data(data.to_string()))
    });
    let done = tokio_stream::once(Ok(Event::default().data("[DONE]")));
    let events = tokio_stream::once(Ok(Event::default().data(first.to_string())))
        .chain(events)
        .chain(done);
    Sse::new(events).into_response()
}

fn finish_reason(stop: StopReason) -> &'static str {
    match stop {
        StopReason::Length | StopReason::Context => "length",
        _ => "stop",
    }
}

fn usage(c: &Completion) -> Value {
    json!({
        "prompt_tokens": c.prompt_tokens,
        "completion_tokens": c.generated_tokens,
        "total_tokens": c.prompt_tokens + c.generated_tokens,
    })
}

/// `Server-Timing`: the server's own time and the engine's, per request.
pub fn server_timing(response: &mut Response, overhead: Duration, engine: Duration) {
    let value = format!(
        "overhead;dur={:.3}, engine;dur={:.3}",
        overhead.as_secs_f64() * 1e3,
        engine.as_secs_f64() * 1e3
    );
    if let Ok(v) = value.parse() {
        response.headers_mut().insert("server-timing", v);
    }
}

/// The body of `POST /tokenize`: llama.cpp's `content` or vLLM's `prompt`.
#[derive(Debug, Deserialize)]
pub struct TokenizeRequest {
    content: Option<String>,
    prompt: Option<String>,
}

/// `POST /tokenize`: llama.cpp's body (`{"content"}`) or vLLM's (`{"prompt"}`); the
/// answer carries both dialects' fields (`tokens`, `count`, `max_model_len`).
pub async fn tokenize(
    Shared(state): Shared<Arc<State>>,
    AuthorizedJson(request): AuthorizedJson<TokenizeRequest>,
) -> Result<Response, ApiError> {
    let text = request.content.or(request.prompt).ok_or_else(|| {
        ApiError::field(
            "content",
            "content: the text to tokenize (or `prompt`) is missing",
        )
    })?;
    let model = state.model()?;
    let engine = model.chat()?.engine.clone();
    let max_model_len = model.max_context;
    let answer = tokio::task::spawn_blocking(move || match engine.tokenize(&text) {
        Ok(tokens) => Ok(json!({
            "count": tokens.len(),
            "tokens": tokens,
            "max_model_len": max_model_len,
        })),
        Err(tarjama_chat::Error::Unsupported(_)) => engine
            .count_tokens(&text)
            .map(|count| json!({ "count": count, "max_model_len": max_model_len })),
        Err(e) => Err(e),
    })
    .await
    .map_err(ApiError::engine)??;
    Ok(Json(answer).into_response())
}
