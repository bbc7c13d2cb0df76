//! Many sequences per step: a GGUF chat model behind a request queue, with continuous
//! batching.
//!
//! A decoding step streams every weight from memory to produce one token, so one
//! sequence at a time leaves the arithmetic units mostly waiting. The [`Engine`] keeps up
//! to [`EngineOptions::parallel`] sequences running and advances them all in one
//! [`Transformer::forward_batch`]: every row of the step goes through each projection
//! together, and each sequence attends over its own cache. A finished sequence frees its
//! slot at once and the next queued request starts; the prompts of new requests are fed
//! in chunks of at most [`EngineOptions::prefill_chunk`] tokens a step, beside the
//! running sequences' next tokens, so a long prompt never stalls the others for long.
//!
//! A prompt prefix that requests share (the system prompt and instructions) is computed
//! once: the engine keeps the caches of a few recent prompts and a new request whose
//! prompt starts the same way reads those positions from there ([`SeqCache::with_prefix`]).
//! A request whose prompt shares more with one still being computed than with any kept
//! one waits for it (a few steps at most). Answers to the same prompt started together
//! ([`Engine::generate_many`], as `--candidates` asks) go further: they ride on one
//! sequence, each choosing its tokens from that sequence's logits with its own sampler,
//! and a rider gets a sequence of its own (a copy of the cache so far) only once it
//! chooses a token the sequence did not. Until then its tokens cost no row: at a low
//! temperature, most of a sample's tokens are the greedy one's.
//!
//! Memory is bounded: each running request reserves the keys and values of its prompt
//! and its longest answer, and a request waits in the queue while the reservations would
//! go over [`EngineOptions::kv_budget`].
//!
//! Callers on any number of threads call [`Engine::chat`], which blocks until their
//! answer is complete and streams its text meanwhile. A request's greedy output is the
//! same whatever else runs beside it (see [`Transformer::forward_batch`]), and a sampled
//! one the same for the same seed.
//!
//! The engine is split by job: this file is the callers' side (queueing a request and
//! waiting for its answer), `scheduler.rs` the engine thread (admitting requests,
//! stepping the model, answering), `queue.rs` what the two share, and `options.rs` the
//! settings and statistics.
//!
//! [`Transformer::forward_batch`]: crate::model::Transformer::forward_batch
//! [`SeqCache::with_prefix`]: crate::kv::SeqCache::with_prefix

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::chat::{ChatModel, LoadOptions};
use super::chat_template::ChatTemplate;
use super::tokenizer::GgufTokenizer;
use crate::{Error, Result};
use tarjama_chat::{Completion, Message, SamplingParams};

mod options;
mod queue;
mod scheduler;

pub use options::{auto_parallel, EngineOptions, EngineStats};
use queue::{Event, Queue, Request, Shared};
use scheduler::Scheduler;

/// A GGUF chat model serving many requests at once. Share it between threads (`&Engine`
/// is enough); dropping it finishes the requests already queued, then stops its thread.
pub struct Engine {
    shared: Arc<Shared>,
    tokenizer: Arc<GgufTokenizer>,
    template: ChatTemplate,
    max_context: usize,
    options: EngineOptions,
    path: PathBuf,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("path", &self.path)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Loads a GGUF chat model and starts its engine.
    pub fn load(path: &Path, load: &LoadOptions, options: EngineOptions) -> Result<Self> {
        Self::new(ChatModel::load(path, load)?, options)
    }

    /// Starts an engine on a loaded model.
    pub fn new(model: ChatModel, mut options: EngineOptions) -> Result<Self> {
        let (transformer, tokenizer, template, path) = model.into_parts();
        options.parallel = options.parallel.max(1);
        let tokenizer = Arc::new(tokenizer);
        let max_context = transformer.max_context();
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            stats: Mutex::new(EngineStats {
                kv_budget: options.kv_budget,
                parallel: options.parallel,
                ..EngineStats::default()
            }),
        });
        let thread = {
            let (shared, tokenizer, options) = (shared.clone(), tokenizer.clone(), options.clone());
            std::thread::Builder::new()
                .name("tarjama-engine".into())
                .spawn(move || Scheduler::new(&transformer, &tokenizer, options, shared).run())
                .map_err(|e| Error::Unsupported(format!("cannot start the engine thread: {e}")))?
        };
        Ok(Engine {
            shared,
            tokenizer,
            template,
            max_context,
            options,
            path,
            thread: Some(thread),
        })
    }

    /// The file the model came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &GgufTokenizer {
        &self.tokenizer
    }

    /// The scheduling settings.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// The context window in tokens.
    pub fn max_context(&self) -> usize {
        self.max_context
    }

    /// What the engine has done so far, and what it holds now.
    pub fn stats(&self) -> EngineStats {
        let mut stats = self
            .shared
            .stats
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        stats.waiting = self.shared.queue.lock().map_or(0, |q| q.waiting.len());
        stats
    }

    /// How many tokens `text` takes (no special tokens).
    pub fn count_tokens(&self, text: &str) -> Result<usize> {
        Ok(self.tokenizer.encode(text, false, false)?.len())
    }

    /// The prompt token ids for `messages`, ready for the assistant's turn.
    pub fn prompt_tokens(&self, messages: &[Message]) -> Result<Vec<u32>> {
        super::chat::prompt_tokens(&self.template, &self.tokenizer, messages)
    }

    /// Generates the assistant's answer to `messages`, calling `on_text` with each piece
    /// of text as soon as it is complete. Blocks until the answer is complete.
    pub fn chat(
        &self,
        messages: &[Message],
        params: &SamplingParams,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion> {
        let ids = self.prompt_tokens(messages)?;
        self.generate(&ids, params, on_text)
    }

    /// Generates from raw prompt token ids.
    pub fn generate(
        &self,
        ids: &[u32],
        params: &SamplingParams,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion> {
        let rx = self.enqueue(ids, std::slice::from_ref(params))?.remove(0);
        wait(rx, on_text)
    }

    /// [`Engine::chat`] for a caller that may stop listening: when `on_text` answers
    /// `Break`, the request is abandoned (its sequence is freed at its next token) and
    /// `Ok(None)` returned.
    pub fn chat_until(
        &self,
        messages: &[Message],
        params: &SamplingParams,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Option<Completion>> {
        let ids = self.prompt_tokens(messages)?;
        let rx = self.enqueue(&ids, std::slice::from_ref(params))?.remove(0);
        for event in rx {
            match event {
                Event::Text(t) => {
                    if on_text(&t).is_break() {
                        // Dropping the receiver is the signal: the engine's next send to
                        // it fails and the sequence ends.
                        return Ok(None);
                    }
                }
                Event::Done(result) => return result.map(Some),
            }
        }
        Err(stopped())
    }

    /// Several answers to one prompt, one per entry of `params`, started together: they
    /// compute the prompt once and share every step until their tokens differ (see the
    /// module docs). Each answer is the one [`Engine::generate`] gives for its settings.
    pub fn generate_many(&self, ids: &[u32], params: &[SamplingParams]) -> Vec<Result<Completion>> {
        match self.enqueue(ids, params) {
            Ok(rxs) => rxs.into_iter().map(|rx| wait(rx, &mut |_| {})).collect(),
            Err(e) => every_one_fails(e, params.len()),
        }
    }

    /// [`Engine::generate_many`] for chat messages.
    pub fn chat_many(
        &self,
        messages: &[Message],
        params: &[SamplingParams],
    ) -> Vec<Result<Completion>> {
        match self.prompt_tokens(messages) {
            Ok(ids) => self.generate_many(&ids, params),
            Err(e) => every_one_fails(e, params.len()),
        }
    }

    /// Queues one request per entry of `params`, together (no other request comes
    /// between them); returns where each one's events arrive.
    fn enqueue(
        &self,
        ids: &[u32],
        params: &[SamplingParams],
    ) -> Result<Vec<mpsc::Receiver<Event>>> {
        super::chat::check_prompt(ids, self.max_context)?;
        let mut receivers = Vec::with_capacity(params.len());
        {
            let mut q = self.shared.queue.lock().map_err(|_| stopped())?;
            if q.shutdown {
                return Err(stopped());
            }
            for params in params {
                let (tx, rx) = mpsc::channel();
                q.waiting.push_back(Request {
                    ids: ids.to_vec(),
                    params: params.clone(),
                    tx,
                });
                receivers.push(rx);
            }
        }
        self.shared.wake.notify_one();
        Ok(receivers)
    }
}

/// `n` answers that all failed with `e` (the first gets `e` itself).
fn every_one_fails(e: Error, n: usize) -> Vec<Result<Completion>> {
    let msg = e.to_string();
    let mut all = vec![Err(e)];
    all.extend((1..n).map(|_| Err(Error::Unsupported(msg.clone()))));
    all.truncate(n);
    all
}

/// Streams a request's text to `on_text` and returns its outcome.
fn wait(rx: mpsc::Receiver<Event>, on_text: &mut dyn FnMut(&str)) -> Result<Completion> {
    for event in rx {
        match event {
            Event::Text(t) => on_text(&t),
            Event::Done(result) => return result,
        }
    }
    Err(stopped())
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Ok(mut q) = self.shared.queue.lock() {
            q.shutdown = true;
        }
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn stopped() -> Error {
    Error::Unsupported("the engine stopped (its thread failed)".into())
}
