//! A chat engine on a remote OpenAI-compatible server: vLLM, llama.cpp's `llama-server`,
//! llama-cpp-python, TGI, Ollama, LM Studio, or a hosted API.
//!
//! [`RemoteEngine`] implements [`ChatEngine`], so tarjama's pipelines run on it unchanged.
//! It keeps up to `parallel` requests in flight (the server batches them), streams every
//! answer (`"stream": true`) so that a stop condition can end a request early and an
//! answer cut short is noticed, and retries what can pass ([`retry`]) while reporting at
//! once what cannot (a 401 with the server's own message, say). Text reaches the caller
//! only from a complete answer: nothing of a failed attempt is ever passed on.
//!
//! Token budgets need token counts. [`RemoteEngine::connect`] looks for the server's
//! tokenizer endpoint (llama.cpp's and vLLM's `/tokenize`, llama-cpp-python's
//! `/extras/tokenize/count`); without one it uses a local tokenizer for the model when
//! given one, else an estimate that errs on the high side ([`TokenCounting`]). The way of
//! counting shapes how sentences are grouped, so a fault must never change it: the
//! start-up probes are retried like any request, a route counts as missing only when the
//! server says so (404, 405, 400, 422, 501, an answer without a count), and a probe whose
//! faults do not pass stops the start rather than fall back to another way of counting.
#![deny(missing_docs)]

mod probe;
pub mod retry;
pub mod sse;

use std::io::{BufRead, BufReader, Read};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};
use tarjama_chat::{
    find_stop, has_sentences, repeats_earlier, ChatEngine, Completion, Message, SamplingParams,
    StopReason, TokenCounter,
};

use retry::{parse_retry_after, Cause, Policy, Retries};
use sse::Stream;

/// What can go wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server cannot be reached at all.
    #[error("cannot reach the server at {endpoint}: {reason}")]
    Unreachable {
        /// The base URL.
        endpoint: String,
        /// What the connection attempt said.
        reason: String,
    },
    /// The server refused the request for a reason a retry would not change.
    #[error("{url}: the server answered {status}: {message}")]
    Refused {
        /// The URL asked.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// Every attempt failed in a way worth retrying.
    #[error("{url}: gave up after {attempts} attempts; the last: {last}")]
    GaveUp {
        /// The URL asked.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// What the last one said.
        last: String,
    },
    /// A tokenizer route kept failing in ways that pass (dropped, 5xx, 429, cut short):
    /// counting tokens another way would change the output, so the engine does not start.
    #[error(
        "{url}: finding how the server counts tokens, gave up after {attempts} attempts \
         (the last: {last}); rather than count tokens differently from a run without \
         faults, the remote engine does not start (try again, or raise --retries)"
    )]
    TokenizerProbe {
        /// The tokenizer route asked.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// What the last one said.
        last: String,
    },
    /// The settings cannot work (a missing key, a bad URL).
    #[error("{0}")]
    Config(String),
}

impl From<Error> for tarjama_chat::Error {
    fn from(e: Error) -> Self {
        tarjama_chat::Error::engine(e)
    }
}

/// How to reach the server and how to treat it.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// The OpenAI-compatible base URL, such as `http://127.0.0.1:8000/v1`.
    pub endpoint: String,
    /// The model as the server knows it (`"model"` of each request).
    pub model: String,
    /// Sent as `Authorization: Bearer KEY` when set.
    pub api_key: Option<String>,
    /// Requests in flight at once.
    pub parallel: usize,
    /// The longest one attempt may take, answer included.
    pub timeout: Duration,
    /// Retries and their waits.
    pub policy: Policy,
    /// The context window to plan for, in tokens (lowered to the server's when it says).
    pub max_context: usize,
}

/// How token counts are had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenCounting {
    /// llama.cpp's `POST /tokenize` (`{"content"}` → `{"tokens"}`).
    LlamaCpp,
    /// vLLM's `POST /tokenize` (`{"model", "prompt"}` → `{"count"}`).
    Vllm,
    /// llama-cpp-python's `POST /extras/tokenize/count` (`{"input"}` → `{"count"}`).
    LlamaCppPython,
    /// A local tokenizer for the same model.
    Local,
    /// No tokenizer: one token per two characters, more than these models' Arabic (about
    /// 2.5-3.5 characters a token) and English (about 4) take, so budgets stay safe.
    Estimate,
}

impl TokenCounting {
    /// Words for notes and reports.
    pub fn describe(self) -> &'static str {
        match self {
            TokenCounting::LlamaCpp => "the server's /tokenize (llama.cpp)",
            TokenCounting::Vllm => "the server's /tokenize (vLLM)",
            TokenCounting::LlamaCppPython => {
                "the server's /extras/tokenize/count (llama-cpp-python)"
            }
            TokenCounting::Local => "a local tokenizer for the model",
            TokenCounting::Estimate => "an estimate (one token per two characters)",
        }
    }
}

/// What the engine did, for `--json` reports.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RemoteStats {
    /// The base URL.
    pub endpoint: String,
    /// The model asked for.
    pub model: String,
    /// How token counts were had.
    pub token_counting: Option<TokenCounting>,
    /// Chat requests answered.
    pub requests: u64,
    /// Retries made, by cause.
    pub retries: Retries,
    /// Chat requests that failed for good.
    pub failed: u64,
    /// Time spent in tarjama per answered request (building it, reading and checking the
    /// stream), excluding the wait for the server, in microseconds: tarjama's own overhead.
    pub client_overhead_us: f64,
    /// Seconds from sending to the first text, summed over answered requests.
    pub first_text_s: f64,
    /// Tokens generated, as the server counted them (else the streamed pieces).
    pub generated_tokens: u64,
}

/// A chat engine on a remote server.
pub struct RemoteEngine {
    agent: ureq::Agent,
    options: RemoteOptions,
    /// `endpoint` without its `/v1`, where the tokenizer routes live.
    root: String,
    counting: TokenCounting,
    local: Option<Box<dyn TokenCounter>>,
    stats: Mutex<(RemoteStats, Duration)>,
    /// The server is `tarjama serve` (its model list says `owned_by: tarjama`): it takes
    /// every stop condition of [`SamplingParams`] and applies it as the local engine does,
    /// so answers are the local engine's to the byte.
    tarjama: bool,
}

impl std::fmt::Debug for RemoteEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteEngine")
            .field("endpoint", &self.options.endpoint)
            .field("model", &self.options.model)
            .field("counting", &self.counting)
            .finish_non_exhaustive()
    }
}

/// The outcome of one failed attempt.
enum Failure {
    /// Worth another try: why, the server's `Retry-After`, what happened.
    Retry(Cause, Option<Duration>, String),
    /// Not worth another try.
    Fatal(Error),
}

impl RemoteEngine {
    /// Checks that the server answers (`GET /models`: a server that is still down after
    /// the retries is [`Error::Unreachable`], a wrong key gives the server's 401 message
    /// at once), reads its context window when it says it, and finds how to count tokens:
    /// the server's tokenizer endpoint, else `local`, else an estimate. Every probe is
    /// retried like a chat request, and its retries are counted in [`RemoteStats`].
    pub fn connect(
        mut options: RemoteOptions,
        local: Option<Box<dyn TokenCounter>>,
    ) -> Result<Self, Error> {
        let endpoint = options.endpoint.trim_end_matches('/').to_string();
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(Error::Config(format!(
                "--endpoint {endpoint}: not an http:// or https:// URL"
            )));
        }
        options.endpoint = endpoint.clone();
        options.parallel = options.parallel.max(1);
        let root = endpoint
            .strip_suffix("/v1")
            .unwrap_or(&endpoint)
            .to_string();
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10).min(options.timeout))
            .max_idle_connections_per_host(options.parallel.max(4))
            .user_agent(concat!("tarjama/", env!("CARGO_PKG_VERSION")))
            .build();
        let mut engine = RemoteEngine {
            agent,
            root,
            counting: TokenCounting::Estimate,
            local: None,
            tarjama: false,
            stats: Mutex::new((
                RemoteStats {
                    endpoint: endpoint.clone(),
                    model: options.model.clone(),
                    ..RemoteStats::default()
                },
                Duration::ZERO,
            )),
            options,
        };
        engine.probe_models()?;
        engine.counting = match engine.find_tokenizer()? {
            Some(server) => server,
            None if local.is_some() => {
                engine.local = local;
                TokenCounting::Local
            }
            None => TokenCounting::Estimate,
        };
        engine.stats.lock().expect("fresh").0.token_counting = Some(engine.counting);
        Ok(engine)
    }

    /// How token counts are had.
    pub fn token_counting(&self) -> TokenCounting {
        self.counting
    }

    /// The settings in force (endpoint normalized, context lowered to the server's).
    pub fn options(&self) -> &RemoteOptions {
        &self.options
    }

    /// What the engine did so far.
    pub fn stats(&self) -> RemoteStats {
        let (mut stats, overhead) = self.stats.lock().map(|s| s.clone()).unwrap_or_default();
        stats.client_overhead_us = if stats.requests == 0 {
            0.0
        } else {
            overhead.as_secs_f64() * 1e6 / stats.requests as f64
        };
        stats
    }

    fn request(&self, method: &str, url: &str) -> ureq::Request {
        let mut request = self
            .agent
            .request(method, url)
            .timeout(self.options.timeout);
        if let Some(key) = &self.options.api_key {
            request = request.set("Authorization", &format!("Bearer {key}"));
        }
        request
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retries run out.
    fn with_retries<T>(
        &self,
        url: &str,
        mut attempt: impl FnMut() -> Result<T, Failure>,
    ) -> Result<T, Error> {
        let policy = self.options.policy;
        let mut retry = 0;
        loop {
            match attempt() {
                Ok(value) => return Ok(value),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry(cause, after, what)) => {
                    if retry >= policy.retries {
                        return Err(Error::GaveUp {
                            url: url.to_string(),
                            attempts: retry + 1,
                            last: what,
                        });
                    }
                    let wait = policy.wait(retry, after, rand::random::<f64>());
                    tracing::info!(
                        "{url}: {what} ({}); retry {} in {:.1}s",
                        cause.name(),
                        retry + 1,
                        wait.as_secs_f64()
                    );
                    if let Ok(mut s) = self.stats.lock() {
                        s.0.retries.add(cause);
                    }
                    std::thread::sleep(wait);
                    retry += 1;
                }
            }
        }
    }

    fn body(&self, messages: &[Message], params: &SamplingParams) -> Value {
        let mut body = json!({
            "model": self.options.model,
            "messages": messages,
            "stream": true,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "seed": params.seed,
        });
        let fields = body.as_object_mut().expect("an object");
        if let Some(top_p) = params.top_p {
            fields.insert("top_p".into(), json!(top_p));
        }
        if let Some(top_k) = params.top_k {
            // Not OpenAI's, but vLLM, llama.cpp, TGI and Ollama take it.
            fields.insert("top_k".into(), json!(top_k));
        }
        if params.repetition_penalty != 1.0 {
            // vLLM's name and llama.cpp's name for the same penalty.
            fields.insert(
                "repetition_penalty".into(),
                json!(params.repetition_penalty),
            );
            fields.insert("repeat_penalty".into(), json!(params.repetition_penalty));
        }
        let stops: Vec<&String> = params.stop.iter().filter(|s| !s.is_empty()).collect();
        if self.tarjama {
            // tarjama's own fields: the server stops as the local engine would.
            fields.insert("stop_on_loop".into(), json!(params.stop_on_loop));
            fields.insert(
                "stop_after_sentences".into(),
                json!(params.stop_after_sentences),
            );
            if params.epsilon.is_some() {
                fields.insert("epsilon".into(), json!(params.epsilon));
            }
            fields.insert("repeat_last_n".into(), json!(params.repeat_last_n));
            if !stops.is_empty() {
                fields.insert("stop".into(), json!(stops));
            }
        } else if !stops.is_empty() {
            // OpenAI takes at most four; the rest are applied here, on the stream.
            fields.insert("stop".into(), json!(stops[..stops.len().min(4)]));
        }
        body
    }

    /// One attempt at a chat answer: the complete text and why it stopped, with the time
    /// to the first text and the time spent in tarjama rather than waiting.
    fn attempt(&self, url: &str, body: &str, params: &SamplingParams) -> Result<Answer, Failure> {
        let start = Instant::now();
        let response = self
            .request("POST", url)
            .set("Content-Type", "application/json")
            .set("Accept", "text/event-stream")
            .send_string(body)
            .map_err(|e| classify(url, e))?;
        let mut waited = start.elapsed();
        let event_stream = response
            .header("Content-Type")
            .is_some_and(|t| t.starts_with("text/event-stream"));
        if !event_stream {
            let mut text = String::new();
            let read = Instant::now();
            response
                .into_reader()
                .read_to_string(&mut text)
                .map_err(|e| read_failure(&e))?;
            waited += read.elapsed();
            let (text, finish, usage) =
                sse::whole(&text).map_err(|e| Failure::Retry(Cause::CutShort, None, e))?;
            let stream = Stream {
                pieces: usize::from(!text.is_empty()),
                text,
                finish,
                usage,
                done: true,
                tarjama_stop: None,
            };
            return Ok(finish_answer(stream, None, start, start.elapsed(), waited));
        }
        let mut reader = BufReader::new(response.into_reader());
        let mut stream = Stream::default();
        let mut first_text = None;
        let mut line = String::new();
        let mut chars: Vec<char> = Vec::new();
        // A tarjama server applies the loop and sentence stops itself, on tokens as the
        // local engine does; anything else is told them here, on the text.
        let loop_window = if self.tarjama {
            0
        } else {
            params.stop_on_loop * 4
        };
        let sentences = if self.tarjama {
            0
        } else {
            params.stop_after_sentences
        };
        loop {
            line.clear();
            let read = Instant::now();
            let n = reader.read_line(&mut line);
            waited += read.elapsed();
            match n {
                Ok(0) => break,
                Ok(_) => {}
                // An error after the finish reason loses nothing.
                Err(_) if stream.complete() => break,
                Err(e) => return Err(read_failure(&e)),
            }
            let piece = match stream.feed(&line) {
                Ok(sse::Line::Text(piece)) => piece,
                Ok(sse::Line::Done) => break,
                Ok(sse::Line::Nothing) => continue,
                Err(e) if e.starts_with("the server sent an error") => {
                    return Err(Failure::Retry(Cause::ServerError, None, e))
                }
                Err(e) => return Err(Failure::Retry(Cause::CutShort, None, e)),
            };
            first_text.get_or_insert_with(|| start.elapsed());
            // The stop conditions the server does not know are applied here; meeting one
            // ends the request (the connection is dropped, the server stops generating).
            if loop_window > 0 {
                chars.extend(piece.chars());
            }
            let stopped = if let Some(cut) = find_stop(&stream.text, &params.stop) {
                stream.text.truncate(cut);
                Some(StopReason::StopString)
            } else if loop_window > 0 && repeats_earlier(&chars, loop_window) {
                Some(StopReason::Loop)
            } else if has_sentences(&stream.text, sentences) {
                Some(StopReason::Sentences)
            } else {
                None
            };
            if stopped.is_some() {
                let first = first_text.unwrap_or_default();
                return Ok(finish_answer(stream, stopped, start, first, waited));
            }
        }
        if !stream.complete() {
            return Err(Failure::Retry(
                Cause::CutShort,
                None,
                format!(
                    "the answer stopped after {} characters without being finished",
                    stream.text.len()
                ),
            ));
        }
        let first = first_text.unwrap_or_else(|| start.elapsed());
        Ok(finish_answer(stream, None, start, first, waited))
    }
}

/// A complete answer of one attempt.
struct Answer {
    completion: Completion,
    /// Time spent in tarjama, not waiting for the server.
    own: Duration,
}

fn finish_answer(
    stream: Stream,
    stopped: Option<StopReason>,
    start: Instant,
    first_text: Duration,
    waited: Duration,
) -> Answer {
    let elapsed = start.elapsed();
    let stop = stopped.unwrap_or(
        match (stream.tarjama_stop.as_deref(), stream.finish.as_deref()) {
            (Some("loop"), _) => StopReason::Loop,
            (Some("sentences"), _) => StopReason::Sentences,
            (Some("stop_string"), _) => StopReason::StopString,
            (Some("context"), _) => StopReason::Context,
            (_, Some("length")) => StopReason::Length,
            _ => StopReason::EndOfTurn,
        },
    );
    let usage = stream.usage.unwrap_or_default();
    Answer {
        completion: Completion {
            generated_tokens: if usage.completion_tokens > 0 {
                usage.completion_tokens
            } else {
                stream.pieces
            },
            prompt_tokens: usage.prompt_tokens,
            reused_tokens: 0,
            stop,
            prefill: first_text,
            decode: elapsed.saturating_sub(first_text),
            text: stream.text,
        },
        own: elapsed.saturating_sub(waited),
    }
}

/// What a ureq error means for the attempt.
fn classify(url: &str, error: ureq::Error) -> Failure {
    match error {
        ureq::Error::Status(status, response) => {
            let after = response.header("Retry-After").and_then(parse_retry_after);
            let message = server_message(response);
            match status {
                429 => Failure::Retry(Cause::RateLimited, after, format!("429: {message}")),
                408 => Failure::Retry(Cause::Timeout, after, format!("408: {message}")),
                500..=599 => {
                    Failure::Retry(Cause::ServerError, after, format!("{status}: {message}"))
                }
                _ => Failure::Fatal(Error::Refused {
                    url: url.to_string(),
                    status,
                    message,
                }),
            }
        }
        ureq::Error::Transport(t) => {
            let reason = transport_reason(&t);
            let cause = if reason.contains("timed out") {
                Cause::Timeout
            } else {
                Cause::Connection
            };
            Failure::Retry(cause, None, reason)
        }
    }
}

fn read_failure(e: &std::io::Error) -> Failure {
    let cause = match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => Cause::Timeout,
        _ => Cause::CutShort,
    };
    Failure::Retry(cause, None, format!("reading the answer: {e}"))
}

fn transport_reason(t: &ureq::Transport) -> String {
    let mut reason = t
        .message()
        .map_or_else(|| t.kind().to_string(), str::to_string);
    if let Some(source) = std::error::Error::source(t) {
        let source = source.to_string();
        if !reason.contains(&source) {
            reason = format!("{reason}: {source}");
        }
    }
    reason
}

/// The server's own words for an error status: the `error.message` (or `detail`) of a
/// JSON body, else the body's start.
fn server_message(response: ureq::Response) -> String {
    let status_text = response.status_text().to_string();
    let body = response.into_string().unwrap_or_default();
    let from_json = serde_json::from_str::<Value>(&body).ok().and_then(|v| {
        v.get("error")
            .map(sse::error_text)
            .or_else(|| v.get("detail").map(sse::error_text))
            .or_else(|| v.get("message").map(sse::error_text))
    });
    let message = from_json.unwrap_or_else(|| body.trim().chars().take(300).collect());
    if message.is_empty() {
        status_text
    } else {
        message
    }
}

impl ChatEngine for RemoteEngine {
    fn chat(
        &self,
        messages: &[Message],
        params: &SamplingParams,
        on_text: &mut dyn FnMut(&str),
    ) -> tarjama_chat::Result<Completion> {
        let url = format!("{}/chat/completions", self.options.endpoint);
        let body = self.body(messages, params).to_string();
        let result = self.with_retries(&url, || self.attempt(&url, &body, params));
        let mut stats = self.stats.lock().map_err(|_| {
            tarjama_chat::Error::Unsupported("the remote engine failed in another thread".into())
        })?;
        match result {
            Ok(answer) => {
                stats.0.requests += 1;
                stats.0.first_text_s += answer.completion.prefill.as_secs_f64();
                stats.0.generated_tokens += answer.completion.generated_tokens as u64;
                stats.1 += answer.own;
                drop(stats);
                // Only a complete answer is passed on: a failed attempt showed nothing.
                if !answer.completion.text.is_empty() {
                    on_text(&answer.completion.text);
                }
                Ok(answer.completion)
            }
            Err(e) => {
                stats.0.failed += 1;
                Err(e.into())
            }
        }
    }

    fn count_tokens(&self, text: &str) -> tarjama_chat::Result<usize> {
        match self.counting {
            TokenCounting::Local => {
                let tokenizer = self.local.as_ref().expect("set with Local");
                tokenizer.count_tokens(text)
            }
            TokenCounting::Estimate => Ok(text.chars().count().div_ceil(2)),
            server => {
                let url = self.tokenizer_url(server);
                Ok(self.with_retries(&url, || self.server_count(server, text))?)
            }
        }
    }

    fn max_context(&self) -> usize {
        self.options.max_context
    }

    fn parallel(&self) -> usize {
        self.options.parallel
    }
}
