//! What every request shares: the settings, the model once it is loaded, the keys, the
//! bounded queue, the metrics and the translated files waiting to be downloaded.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use tarjama_chat::SamplingParams;
use tarjama_loader::{ChatChoices, ChatParts, EngineReport, Translators};
use tarjama_pipeline::{TranslateOptions, Translator};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{parse_json, ApiError};
use crate::metrics::Metrics;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Keys a client must present (none: open).
    pub keys: Keys,
    /// The origin allowed to call from a browser page (none: CORS off).
    pub cors: Option<String>,
    /// The largest request body, in bytes.
    pub max_body: usize,
    /// Requests admitted at once (answering or waiting for the engine); more get 503.
    pub queue: usize,
    /// How long in-flight requests may run on after SIGTERM.
    pub drain: Duration,
    /// How long one request may take, answer included.
    pub timeout: Duration,
}

/// The API keys: compared in constant time, never logged.
#[derive(Clone, Default)]
pub struct Keys(Vec<String>);

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys({} set)", self.0.len())
    }
}

impl Keys {
    /// These keys (empty ones dropped).
    pub fn new(keys: impl IntoIterator<Item = String>) -> Self {
        Keys(keys.into_iter().filter(|k| !k.trim().is_empty()).collect())
    }

    /// Whether any key is required.
    pub fn required(&self) -> bool {
        !self.0.is_empty()
    }

    fn accepts(&self, given: &str) -> bool {
        // Every key is compared in full, so the time taken says nothing of how much of a
        // key was right.
        self.0.iter().fold(false, |ok, key| {
            ok | constant_time_eq(key.as_bytes(), given.as_bytes())
        })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a request is translated with when it does not say otherwise: the same defaults
/// as `tarjama translate`.
#[derive(Clone)]
pub struct Defaults {
    /// Sampling for translation requests.
    pub params: SamplingParams,
    /// Request sizes, candidates, examples (a request's glossary is added to these).
    pub choices: ChatChoices,
    /// Normalization and the glossary check.
    pub translate: TranslateOptions,
}

/// The loaded model.
pub struct Model {
    /// Its name, as `/v1/models` lists it and clients ask for it.
    pub name: String,
    /// Its context window in tokens.
    pub max_context: usize,
    /// The chat engine, for chat models (local GGUF or an upstream server).
    pub chat: Option<ChatParts>,
    /// An encoder-decoder's one translator (it batches sentences itself): requests take
    /// turns.
    pub seq2seq: Option<Mutex<Box<dyn Translator + Send>>>,
    /// Where the engine's statistics come from (none: the engine reports none).
    pub translators: Option<Mutex<Translators>>,
    /// Translation defaults.
    pub defaults: Defaults,
    /// Whether the engine counts its tokens itself (the local batched engine, whose
    /// totals `/metrics` reads); another engine's are counted from its answers.
    pub engine_counts_tokens: bool,
}

impl Model {
    /// Wraps what the loader built.
    pub fn new(mut translators: Translators, name: String, defaults: Defaults) -> Self {
        let chat = translators.chat().cloned();
        let seq2seq = match chat {
            Some(_) => None,
            None => translators.next().map(Mutex::new),
        };
        let max_context = chat.as_ref().map_or(0, |c| c.engine.max_context());
        let engine_counts_tokens = matches!(translators.stats(), Some(EngineReport::Local(_)));
        Model {
            name,
            max_context,
            chat,
            seq2seq,
            translators: Some(Mutex::new(translators)),
            defaults,
            engine_counts_tokens,
        }
    }

    /// A chat engine served as it is (an embedding application's, or a test's).
    pub fn from_chat(chat: ChatParts, defaults: Defaults) -> Self {
        Model {
            name: chat.name.clone(),
            max_context: chat.engine.max_context(),
            chat: Some(chat),
            seq2seq: None,
            translators: None,
            defaults,
            engine_counts_tokens: false,
        }
    }

    /// The engine's statistics now.
    pub fn stats(&self) -> Option<EngineReport> {
        let translators = self.translators.as_ref()?.lock().ok()?;
        translators.stats()
    }

    /// The chat engine, or a 400 saying this model is not one.
    pub fn chat(&self) -> Result<&ChatParts, ApiError> {
        self.chat.as_ref().ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "not_a_chat_model",
                format!(
                    "{} is an encoder-decoder translation model: it translates (/translate, \
                     /v1/translate) but does not chat or summarize",
                    self.name
                ),
            )
        })
    }

    /// Runs `f` with a translator that uses `choices` (a chat model: a translator of its
    /// own; an encoder-decoder: the shared one, in turn).
    pub fn with_translator<T>(
        &self,
        choices: &ChatChoices,
        f: impl FnOnce(&mut dyn Translator) -> T,
    ) -> Result<T, ApiError> {
        if let Some(chat) = &self.chat {
            let mut translator = chat.translator(self.defaults.params.clone(), choices);
            return Ok(f(translator.as_mut()));
        }
        let shared = self.seq2seq.as_ref().expect("a model is chat or seq2seq");
        let mut translator = shared
            .lock()
            .map_err(|_| ApiError::engine("the translator failed in another request"))?;
        Ok(f(translator.as_mut()))
    }
}

/// A file translated by `/translate_file`, kept for `/download_file`.
pub struct Download {
    /// Its name in the URL.
    pub name: String,
    /// Its content.
    pub bytes: Vec<u8>,
}

/// The files kept for download: the most recent ones, up to a total size.
const DOWNLOADS_KEPT: usize = 64;
const DOWNLOAD_BYTES_KEPT: usize = 64 << 20;

/// Everything the handlers share.
pub struct State {
    /// The settings.
    pub config: Config,
    /// The model, once loaded.
    pub model: OnceLock<Model>,
    /// Why loading failed, when it did.
    pub load_error: OnceLock<String>,
    queue: Arc<Semaphore>,
    /// The metrics.
    pub metrics: Metrics,
    downloads: Mutex<VecDeque<Download>>,
    ids: AtomicU64,
}

impl State {
    /// A server with nothing loaded yet.
    pub fn new(config: Config) -> Arc<Self> {
        Arc::new(State {
            queue: Arc::new(Semaphore::new(config.queue.max(1))),
            config,
            model: OnceLock::new(),
            load_error: OnceLock::new(),
            metrics: Metrics::new(),
            downloads: Mutex::new(VecDeque::new()),
            ids: AtomicU64::new(rand::random::<u32>() as u64),
        })
    }

    /// The model, or a 503 while it loads.
    pub fn model(&self) -> Result<&Model, ApiError> {
        if let Some(model) = self.model.get() {
            return Ok(model);
        }
        match self.load_error.get() {
            Some(e) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "model_failed",
                format!("the model failed to load: {e}"),
            )),
            None => Err(ApiError::unavailable(
                "loading",
                "the model is still loading; try again shortly",
                5,
            )),
        }
    }

    /// A place in the queue, or a 503 with `Retry-After` when it is full.
    pub fn admit(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.queue.clone().try_acquire_owned().map_err(|_| {
            self.metrics.refused.inc();
            ApiError::unavailable(
                "queue_full",
                format!(
                    "the server is busy: {} requests are already in flight; retry after the \
                     time in Retry-After",
                    self.config.queue
                ),
                1,
            )
        })
    }

    /// Requests admitted now.
    pub fn admitted(&self) -> usize {
        self.config.queue.max(1) - self.queue.available_permits()
    }

    /// Checks the client's key: `Authorization: Bearer KEY` (OpenAI clients) or the
    /// request's `api_key` field (LibreTranslate clients).
    pub fn authorize(&self, headers: &HeaderMap, api_key: Option<&str>) -> Result<(), ApiError> {
        if !self.config.keys.required() {
            return Ok(());
        }
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        match bearer.or(api_key.filter(|k| !k.is_empty())) {
            Some(key) if self.config.keys.accepts(key) => Ok(()),
            Some(_) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_api_key",
                "the API key is not valid",
            )),
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing_api_key",
                "an API key is required: send it as `Authorization: Bearer KEY` (or the \
                 `api_key` field of a LibreTranslate request)",
            )),
        }
    }

    /// A fresh id for responses and downloads.
    pub fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    /// Keeps a translated file for download; returns its name in the URL.
    pub fn keep_download(&self, file_name: &str, bytes: Vec<u8>) -> String {
        let clean: String = file_name
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || c == '.' || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let name = format!("{:016x}-{}", self.next_id() ^ rand::random::<u64>(), clean);
        if let Ok(mut kept) = self.downloads.lock() {
            kept.push_back(Download {
                name: name.clone(),
                bytes,
            });
            while kept.len() > DOWNLOADS_KEPT
                || kept.iter().map(|d| d.bytes.len()).sum::<usize>() > DOWNLOAD_BYTES_KEPT
            {
                kept.pop_front();
            }
        }
        name
    }

    /// A kept file.
    pub fn download(&self, name: &str) -> Option<Vec<u8>> {
        let kept = self.downloads.lock().ok()?;
        kept.iter()
            .find(|d| d.name == name)
            .map(|d| d.bytes.clone())
    }
}

/// The extractor of the routes whose key comes only in the `Authorization` header: the
/// request's body, read whole, then the key checked ([`State::authorize`]), then the body
/// parsed as JSON ([`parse_json`]). A body that cannot be read is answered as axum answers
/// it (the `observe` layer turns that into JSON).
pub struct AuthorizedJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<State>> for AuthorizedJson<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &Arc<State>) -> Result<Self, Response> {
        let headers = request.headers().clone();
        let body = Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        state
            .authorize(&headers, None)
            .and_then(|()| parse_json(&body))
            .map(AuthorizedJson)
            .map_err(IntoResponse::into_response)
    }
}
