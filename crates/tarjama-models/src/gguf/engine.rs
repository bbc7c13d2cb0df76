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
//! one waits for it (a few steps at most): N candidate answers to one prompt compute it
//! once, not N times.
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
use crate::chat::{Completion, Message};
use crate::sampling::SamplingParams;
use crate::{Error, Result};

/// How an [`Engine`] schedules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineOptions {
    /// Sequences advanced together in one step, at most; 0: chosen from the model, the
    /// budget and the threads ([`auto_parallel`]).
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
        if options.parallel == 0 {
            options.parallel = auto_parallel(
                transformer.new_cache().bytes_per_position(),
                options.kv_budget,
                candle_core::utils::get_num_threads(),
            );
        }
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
        super::chat::check_prompt(ids, self.max_context)?;
        let (tx, rx) = mpsc::channel();
        {
            let mut q = self.shared.queue.lock().map_err(|_| stopped())?;
            if q.shutdown {
                return Err(stopped());
            }
            q.waiting.push_back(Request {
                ids: ids.to_vec(),
                params: params.clone(),
                tx,
            });
        }
        self.shared.wake.notify_one();
        for event in rx {
            match event {
                Event::Text(t) => on_text(&t),
                Event::Done(result) => return result,
            }
        }
        Err(stopped())
    }
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
            self.running.iter().map(|r| r.reserved).sum::<usize>() + self.prefixes.bytes();
        while self.running.len() < self.options.parallel.max(1) {
            let Some(front) = q.waiting.front() else {
                break;
            };
            let positions =
                (front.ids.len() + front.params.max_new_tokens).min(self.model.max_context());
            let need = positions * self.bytes_per_position;
            if !self.running.is_empty() && reserved + need > self.options.kv_budget {
                break;
            }
            if self.wait_for_prompt(&front.ids) {
                break;
            }
            let req = q.waiting.pop_front().expect("front exists");
            reserved += need;
            self.start(req, need);
        }
        true
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
                for &i in which.iter().rev() {
                    let r = self.running.swap_remove(i);
                    self.count_done(0, 0);
                    let _ = r.tx.send(Event::Done(Err(Error::Unsupported(format!(
                        "generation failed: {msg}"
                    )))));
                }
                return rows;
            }
        };
        let mut finished = Vec::new();
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
            match r.decoding.next(&logits, &mut send) {
                Ok(Next::Feed(t)) if !gone => r.next = t,
                // The caller is gone: nobody to answer.
                Ok(Next::Feed(_)) => finished.push((i, Err(None))),
                Ok(Next::Stop(reason)) => finished.push((i, Ok(reason))),
                Err(e) => finished.push((i, Err(Some(e)))),
            }
        }
        // Highest index first, so swap_remove leaves the others' indices valid.
        finished.sort_by_key(|&(i, _)| std::cmp::Reverse(i));
        for (i, outcome) in finished {
            let r = self.running.swap_remove(i);
            let generated = r.decoding.generated();
            let reused = r.reused;
            if let Ok(stop) = outcome {
                let first = r.first_token.unwrap_or_else(Instant::now);
                let tx = r.tx.clone();
                let (prompt_tokens, admitted) = (r.ids.len(), r.admitted);
                let (text, generated) = r
                    .decoding
                    .finish(stop, &mut |t| drop(tx.send(Event::Text(t.to_string()))));
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
            } else {
                self.count_done(generated, reused);
                if let Err(Some(e)) = outcome {
                    let _ = r.tx.send(Event::Done(Err(e)));
                }
            }
        }
        rows
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
