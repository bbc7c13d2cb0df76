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

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::chat::{ChatModel, Decoding, LoadOptions, Next};
use super::chat_template::ChatTemplate;
use super::kv::SeqCache;
use super::model::{Step, Transformer};
use super::tokenizer::GgufTokenizer;
use crate::{Error, Result};
use tarjama_chat::{Completion, Message, SamplingParams, StopReason};

/// How an [`Engine`] schedules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineOptions {
    /// Sequences advanced together in one step, at most (at least 1; [`auto_parallel`]
    /// gives a number that suits the model, the budget and the threads). Answers to one
    /// prompt started
    /// together ride on one sequence without a slot of their own; one whose tokens
    /// differ takes a sequence even past this number (its memory is reserved already),
    /// and no new request starts until the running ones are back under it.
    pub parallel: usize,
    /// Bytes of keys and values the running requests may reserve together (shared
    /// prompt prefixes included). A request that alone needs more runs alone.
    pub kv_budget: usize,
    /// Prompt tokens fed per step, over all requests still reading their prompt.
    pub prefill_chunk: usize,
    /// Prompts kept for later requests that start the same way.
    pub prefixes: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            parallel: 8,
            kv_budget: 2 << 30,
            prefill_chunk: 256,
            prefixes: 4,
        }
    }
}

/// Positions (prompt and answer) of a typical request: a translation request of a few
/// sentences with its few-shot examples, or a short article to summarize.
const TYPICAL_POSITIONS: usize = 1024;

/// The number of sequences to run at once when the user names none.
///
/// - Compute: a decoding step reads every weight once whatever the batch, so on a CPU
///   more sequences per step are nearly free until the arithmetic catches up with the
///   memory traffic. On 2 cores, 8 sequences decode about 4x the tokens of one (the 1.5B
///   3.99x, the 0.5B 4.27x, README); each core takes more rows per weight read, so the
///   count grows with the threads: 4 per thread, between 4 and 16.
/// - Memory: as many requests of [`TYPICAL_POSITIONS`] as the KV budget holds, at the
///   model's bytes per position (so a big model with little memory runs fewer; the
///   engine still holds every request to the budget, whatever it is given).
pub fn auto_parallel(bytes_per_position: usize, kv_budget: usize, threads: usize) -> usize {
    let compute = (4 * threads).clamp(4, 16);
    let memory = kv_budget / (bytes_per_position * TYPICAL_POSITIONS).max(1);
    compute.min(memory).max(1)
}

/// What an engine has done so far.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EngineStats {
    /// Requests answered (or failed).
    pub requests: usize,
    /// Forward steps run.
    pub steps: usize,
    /// Rows fed over all steps (prompt and generated tokens).
    pub rows: usize,
    /// Tokens generated.
    pub generated: usize,
    /// Prompt tokens read from a shared prefix instead of computed.
    pub reused: usize,
    /// Rows not fed because a request rode on another sequence that had chosen the same
    /// tokens (its logits served both).
    pub rode: usize,
    /// Most sequences running in one step.
    pub peak_running: usize,
    /// Most bytes of keys and values held at once (running sequences and kept prefixes).
    pub peak_kv_bytes: usize,
    /// The budget they were held to.
    pub kv_budget: usize,
    /// Sequences allowed at once (`EngineOptions::parallel`, resolved).
    pub parallel: usize,
    /// Time spent in forward steps.
    pub busy: Duration,
}

/// What the engine thread sends back to a waiting caller.
enum Event {
    Text(String),
    Done(Result<Completion>),
}

/// A request waiting for a slot.
struct Request {
    ids: Vec<u32>,
    params: SamplingParams,
    tx: mpsc::Sender<Event>,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Request>,
    shutdown: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    stats: Mutex<EngineStats>,
}

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

    /// What the engine has done so far.
    pub fn stats(&self) -> EngineStats {
        self.shared
            .stats
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
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

/// A request being answered.
struct Running<'t> {
    ids: Vec<u32>,
    /// Prompt tokens whose keys and values the cache holds.
    fed: usize,
    /// The token to feed next, once the prompt is in.
    next: u32,
    cache: SeqCache,
    decoding: Decoding<'t>,
    tx: mpsc::Sender<Event>,
    /// Bytes reserved against the budget.
    reserved: usize,
    reused: usize,
    /// A queued request waits for this prompt: keep it once computed.
    wanted: bool,
    admitted: Instant,
    first_token: Option<Instant>,
    /// Requests with the same prompt that have chosen the same tokens so far.
    riders: Vec<Rider<'t>>,
}

impl Running<'_> {
    /// Bytes reserved by this sequence and its riders.
    fn reserved(&self) -> usize {
        self.reserved + self.riders.iter().map(|r| r.reserved).sum::<usize>()
    }
}

/// A request answered from another's sequence: same prompt, same tokens so far, so that
/// sequence's keys, values and logits are its own too. It samples with its own settings
/// from those logits, and leaves with a copy of the cache when it chooses another token.
struct Rider<'t> {
    decoding: Decoding<'t>,
    tx: mpsc::Sender<Event>,
    /// Bytes reserved against the budget (its own sequence's, once it leaves).
    reserved: usize,
    admitted: Instant,
    first_token: Option<Instant>,
}

/// How a request ended, for [`Scheduler::finish`].
enum Outcome {
    Stopped(StopReason),
    Failed(Error),
    /// The caller is gone: nobody to answer.
    Abandoned,
}

/// How many positions a request with prompt `ids` can read from a cache of prompt
/// `other`: their common start, short of the whole of `ids` (its last token must be fed
/// for logits).
fn readable(other: &[u32], ids: &[u32]) -> usize {
    let common = other.iter().zip(ids).take_while(|(a, b)| a == b).count();
    common.min(ids.len() - 1)
}

/// Prompts kept for requests that start the same way.
struct Prefixes {
    kept: VecDeque<(Vec<u32>, Arc<SeqCache>)>,
    capacity: usize,
}

impl Prefixes {
    /// The kept cache sharing the longest prefix with `ids` (at least 16 tokens, and
    /// short of the whole prompt, see [`readable`]), and that length.
    fn best(&self, ids: &[u32]) -> Option<(Arc<SeqCache>, usize)> {
        self.kept
            .iter()
            .map(|(toks, cache)| (cache, readable(toks, ids)))
            .filter(|&(_, n)| n >= 16)
            .max_by_key(|&(_, n)| n)
            .map(|(c, n)| (c.clone(), n))
    }

    fn bytes(&self) -> usize {
        self.kept.iter().map(|(_, c)| c.own_bytes()).sum()
    }

    /// How many positions a prompt could read from the longest kept one.
    fn longest(&self, ids: &[u32]) -> usize {
        self.best(ids).map_or(0, |(_, n)| n)
    }

    /// Keeps the prompt of a request that got less than half of it from a kept one, or
    /// that a queued request waits for.
    fn offer(&mut self, r: &Running<'_>) {
        if self.capacity == 0 || (r.reused * 2 >= r.ids.len() && !r.wanted) {
            return;
        }
        if self.kept.len() == self.capacity {
            self.kept.pop_front();
        }
        let frozen = Arc::new(r.cache.freeze(r.ids.len()));
        self.kept.push_back((r.ids.clone(), frozen));
    }
}

/// The engine thread's state.
struct Scheduler<'m> {
    model: &'m Transformer,
    tokenizer: &'m GgufTokenizer,
    options: EngineOptions,
    shared: Arc<Shared>,
    running: Vec<Running<'m>>,
    prefixes: Prefixes,
    bytes_per_position: usize,
}

impl<'m> Scheduler<'m> {
    fn new(
        model: &'m Transformer,
        tokenizer: &'m GgufTokenizer,
        options: EngineOptions,
        shared: Arc<Shared>,
    ) -> Self {
        let bytes_per_position = model.new_cache().bytes_per_position();
        Scheduler {
            model,
            tokenizer,
            prefixes: Prefixes {
                kept: VecDeque::new(),
                capacity: options.prefixes,
            },
            options,
            shared,
            running: Vec::new(),
            bytes_per_position,
        }
    }

    fn run(mut self) {
        while self.admit() {
            let start = Instant::now();
            let rows = self.step();
            let mut stats = self.shared.stats.lock().expect("stats lock");
            stats.steps += 1;
            stats.rows += rows;
            stats.busy += start.elapsed();
            stats.peak_running = stats.peak_running.max(self.running.len());
            let held: usize = self
                .running
                .iter()
                .map(|r| r.cache.own_bytes())
                .sum::<usize>()
                + self.prefixes.bytes();
            stats.peak_kv_bytes = stats.peak_kv_bytes.max(held);
        }
    }

    /// Waits for work and starts queued requests while slots and budget allow; false
    /// when the engine is to stop.
    fn admit(&mut self) -> bool {
        let shared = self.shared.clone();
        let mut q = shared.queue.lock().expect("queue lock");
        while self.running.is_empty() && q.waiting.is_empty() {
            if q.shutdown {
                return false;
            }
            q = shared.wake.wait(q).expect("queue lock");
        }
        let mut reserved: usize =
            self.running.iter().map(Running::reserved).sum::<usize>() + self.prefixes.bytes();
        while let Some(front) = q.waiting.front() {
            let positions =
                (front.ids.len() + front.params.max_new_tokens).min(self.model.max_context());
            let need = positions * self.bytes_per_position;
            if !self.running.is_empty() && reserved + need > self.options.kv_budget {
                break;
            }
            // A sequence with the same prompt that has chosen no token yet: ride on it
            // (it takes no slot until it leaves).
            let host = self
                .running
                .iter()
                .position(|r| r.fed < r.ids.len() && r.ids == front.ids);
            if host.is_none()
                && (self.running.len() >= self.options.parallel.max(1)
                    || self.wait_for_prompt(&front.ids))
            {
                break;
            }
            let req = q.waiting.pop_front().expect("front exists");
            reserved += need;
            match host {
                Some(h) => self.ride(h, req, need),
                None => self.start(req, need),
            }
        }
        true
    }

    /// Makes `req` a rider of running sequence `host` (same prompt, no token yet).
    fn ride(&mut self, host: usize, req: Request, reserved: usize) {
        let decoding = Decoding::new(
            self.tokenizer,
            &req.ids,
            &req.params,
            self.model.max_context(),
        );
        self.running[host].riders.push(Rider {
            decoding,
            tx: req.tx,
            reserved,
            admitted: Instant::now(),
            first_token: None,
        });
    }

    /// Whether a request with prompt `ids` should wait for a running sequence whose
    /// prompt is still being computed and would give it at least 16 more positions than
    /// the kept prompts do; marks that sequence's prompt to be kept.
    fn wait_for_prompt(&mut self, ids: &[u32]) -> bool {
        if self.prefixes.capacity == 0 {
            return false;
        }
        let kept = self.prefixes.longest(ids);
        let computing = self
            .running
            .iter_mut()
            .filter(|r| r.fed < r.ids.len())
            .map(|r| (readable(&r.ids, ids), r))
            .max_by_key(|&(n, _)| n);
        match computing {
            Some((n, r)) if n >= kept + 16 => {
                r.wanted = true;
                true
            }
            _ => false,
        }
    }

    fn start(&mut self, req: Request, reserved: usize) {
        let (mut cache, reused) = match self.prefixes.best(&req.ids) {
            Some((prefix, n)) => (SeqCache::with_prefix(prefix, n), n),
            None => (self.model.new_cache(), 0),
        };
        cache.reserve((reserved / self.bytes_per_position.max(1)).saturating_sub(reused));
        let decoding = Decoding::new(
            self.tokenizer,
            &req.ids,
            &req.params,
            self.model.max_context(),
        );
        self.running.push(Running {
            fed: reused,
            next: 0,
            cache,
            decoding,
            tx: req.tx,
            reserved,
            reused,
            wanted: false,
            ids: req.ids,
            admitted: Instant::now(),
            first_token: None,
            riders: Vec::new(),
        });
    }

    /// One forward step over every running sequence that has something to feed; returns
    /// the rows fed.
    fn step(&mut self) -> usize {
        let mut prefill_left = self.options.prefill_chunk.max(1);
        let mut steps = Vec::with_capacity(self.running.len());
        let mut which = Vec::with_capacity(self.running.len());
        for (i, r) in self.running.iter_mut().enumerate() {
            let Running {
                ids,
                fed,
                next,
                cache,
                ..
            } = r;
            let tokens: &[u32] = if *fed < ids.len() {
                if prefill_left == 0 {
                    continue;
                }
                let n = (ids.len() - *fed).min(prefill_left);
                prefill_left -= n;
                &ids[*fed..*fed + n]
            } else {
                std::slice::from_ref(next)
            };
            steps.push(Step { cache, tokens });
            which.push(i);
        }
        let fed: Vec<usize> = steps.iter().map(|s| s.tokens.len()).collect();
        let rows = fed.iter().sum();
        let result = self.model.forward_batch(&mut steps);
        drop(steps);
        let logits = match result {
            Ok(l) => l,
            Err(e) => {
                // Unexpected (contexts are checked before): the step's sequences fail.
                let msg = e.to_string();
                let failed = || Error::Unsupported(format!("generation failed: {msg}"));
                for &i in which.iter().rev() {
                    let r = self.running.swap_remove(i);
                    for rider in r.riders {
                        self.count_done(0, 0);
                        let _ = rider.tx.send(Event::Done(Err(failed())));
                    }
                    self.count_done(0, 0);
                    let _ = r.tx.send(Event::Done(Err(failed())));
                }
                return rows;
            }
        };
        let mut finished = Vec::new();
        let mut riders_done = Vec::new();
        let mut leaving = Vec::new();
        let mut rode = 0;
        for ((&i, n), logits) in which.iter().zip(fed).zip(logits) {
            let r = &mut self.running[i];
            let prompt_done_before = r.fed >= r.ids.len();
            if !prompt_done_before {
                r.fed += n;
                if r.fed < r.ids.len() {
                    continue;
                }
                r.first_token = Some(Instant::now());
                self.prefixes.offer(r);
            }
            let tx = &r.tx;
            let mut gone = false;
            let mut send = |t: &str| gone |= tx.send(Event::Text(t.to_string())).is_err();
            let next = r.decoding.next(&logits, &mut send);
            let stays = match next {
                Ok(Next::Feed(t)) if !gone => Some(t),
                _ => None,
            };
            // The riders choose from the same logits; one whose token differs leaves,
            // with a copy of the cache (riders that chose alike leave together).
            rode += r.riders.len();
            let mut left: Vec<(u32, Running<'m>)> = Vec::new();
            for mut rider in std::mem::take(&mut r.riders) {
                rider
                    .first_token
                    .get_or_insert(r.first_token.unwrap_or_else(Instant::now));
                let tx = &rider.tx;
                let mut gone = false;
                let mut send = |t: &str| gone |= tx.send(Event::Text(t.to_string())).is_err();
                match rider.decoding.next(&logits, &mut send) {
                    Ok(Next::Feed(t)) if !gone && stays == Some(t) => r.riders.push(rider),
                    Ok(Next::Feed(t)) if !gone => match left.iter_mut().find(|(u, _)| *u == t) {
                        Some((_, own)) => own.riders.push(rider),
                        None => {
                            let mut cache = r.cache.clone();
                            let positions = rider.reserved / self.bytes_per_position.max(1);
                            cache.reserve(positions.saturating_sub(cache.len()));
                            left.push((
                                t,
                                Running {
                                    ids: r.ids.clone(),
                                    fed: r.ids.len(),
                                    next: t,
                                    cache,
                                    decoding: rider.decoding,
                                    tx: rider.tx,
                                    reserved: rider.reserved,
                                    reused: r.ids.len() - 1,
                                    wanted: false,
                                    admitted: rider.admitted,
                                    first_token: rider.first_token,
                                    riders: Vec::new(),
                                },
                            ));
                        }
                    },
                    Ok(Next::Feed(_)) => riders_done.push((rider, r.ids.len(), Outcome::Abandoned)),
                    Ok(Next::Stop(reason)) => {
                        riders_done.push((rider, r.ids.len(), Outcome::Stopped(reason)))
                    }
                    Err(e) => riders_done.push((rider, r.ids.len(), Outcome::Failed(e))),
                }
            }
            leaving.extend(left.into_iter().map(|(_, own)| own));
            match next {
                Ok(Next::Feed(t)) if !gone => r.next = t,
                Ok(Next::Feed(_)) => finished.push((i, Outcome::Abandoned)),
                Ok(Next::Stop(reason)) => finished.push((i, Outcome::Stopped(reason))),
                Err(e) => finished.push((i, Outcome::Failed(e))),
            }
        }
        // Highest index first, so swap_remove leaves the others' indices valid.
        finished.sort_by_key(|&(i, _)| std::cmp::Reverse(i));
        for (i, outcome) in finished {
            let r = self.running.swap_remove(i);
            debug_assert!(r.riders.is_empty(), "riders leave a finished sequence");
            let prompt = r.ids.len();
            self.finish(
                r.decoding,
                &r.tx,
                prompt,
                r.reused,
                r.admitted,
                r.first_token,
                outcome,
            );
        }
        for (rider, prompt, outcome) in riders_done {
            self.finish(
                rider.decoding,
                &rider.tx,
                prompt,
                prompt - 1,
                rider.admitted,
                rider.first_token,
                outcome,
            );
        }
        self.running.extend(leaving);
        self.shared.stats.lock().expect("stats lock").rode += rode;
        rows
    }

    /// Answers a request that has stopped (or failed, or whose caller is gone).
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        decoding: Decoding<'_>,
        tx: &mpsc::Sender<Event>,
        prompt_tokens: usize,
        reused: usize,
        admitted: Instant,
        first_token: Option<Instant>,
        outcome: Outcome,
    ) {
        let generated = decoding.generated();
        match outcome {
            Outcome::Stopped(stop) => {
                let first = first_token.unwrap_or_else(Instant::now);
                let (text, generated) =
                    decoding.finish(stop, &mut |t| drop(tx.send(Event::Text(t.to_string()))));
                // Counted before the caller hears back, so its next look at the
                // statistics includes its own request.
                self.count_done(generated, reused);
                let _ = tx.send(Event::Done(Ok(Completion {
                    text,
                    prompt_tokens,
                    reused_tokens: reused,
                    generated_tokens: generated,
                    stop,
                    prefill: first - admitted,
                    decode: first.elapsed(),
                })));
            }
            Outcome::Failed(e) => {
                self.count_done(generated, reused);
                let _ = tx.send(Event::Done(Err(e)));
            }
            Outcome::Abandoned => self.count_done(generated, reused),
        }
    }

    fn count_done(&self, generated: usize, reused: usize) {
        let mut stats = self.shared.stats.lock().expect("stats lock");
        stats.requests += 1;
        stats.generated += generated;
        stats.reused += reused;
    }
}

#[cfg(test)]
mod tests {
    use super::auto_parallel;

    #[test]
    fn the_default_parallel_follows_threads_and_memory() {
        // Qwen2.5 1.5B: 28 layers x 2 KV heads x 128 x (K and V) x 4 bytes a position.
        let qwen_1_5b = 28 * 2 * 128 * 2 * 4;
        assert_eq!(auto_parallel(qwen_1_5b, 4 << 30, 2), 8);
        assert_eq!(auto_parallel(qwen_1_5b, 4 << 30, 1), 4);
        assert_eq!(auto_parallel(qwen_1_5b, 4 << 30, 16), 16);
        // 256 MiB holds four requests of 1024 positions, not eight.
        assert_eq!(auto_parallel(qwen_1_5b, 256 << 20, 2), 4);
        // Never none.
        assert_eq!(auto_parallel(qwen_1_5b, 1 << 20, 2), 1);
    }
}
