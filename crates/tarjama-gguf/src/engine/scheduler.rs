//! The engine thread: admits queued requests while slots and the memory budget allow
//! (riding on a running sequence with the same prompt, or reading a kept prompt's
//! cache), advances every running sequence in one forward step, lets each choose its
//! next token, and answers the requests that stop.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use candle_core::Tensor;
use tarjama_chat::{Completion, StopReason};

use super::options::EngineOptions;
use super::queue::{Event, Request, Shared};
use crate::chat::{Decoding, Next};
use crate::kv::SeqCache;
use crate::model::Transformer;
use crate::step::Step;
use crate::tokenizer::GgufTokenizer;
use crate::Error;

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

impl<'t> Running<'t> {
    /// Bytes reserved by this sequence and its riders.
    fn reserved(&self) -> usize {
        self.reserved + self.riders.iter().map(|r| r.reserved).sum::<usize>()
    }

    /// This sequence's riders choose from its `logits`: one that chose `stays` (the
    /// sequence's own next token) rides on; one that chose another token leaves with a
    /// copy of the cache, in the returned sequences by token (riders that chose alike
    /// leave together); one that stopped goes to `riders_done`.
    fn riders_choose(
        &mut self,
        logits: &Tensor,
        stays: Option<u32>,
        bytes_per_position: usize,
        riders_done: &mut Vec<(Rider<'t>, usize, Outcome)>,
    ) -> Vec<(u32, Running<'t>)> {
        let r = self;
        let mut left: Vec<(u32, Running<'t>)> = Vec::new();
        for mut rider in std::mem::take(&mut r.riders) {
            rider
                .first_token
                .get_or_insert(r.first_token.unwrap_or_else(Instant::now));
            let tx = &rider.tx;
            let mut gone = false;
            let mut send = |t: &str| gone |= tx.send(Event::Text(t.to_string())).is_err();
            match rider.decoding.next(logits, &mut send) {
                Ok(Next::Feed(t)) if !gone && stays == Some(t) => r.riders.push(rider),
                Ok(Next::Feed(t)) if !gone => match left.iter_mut().find(|(u, _)| *u == t) {
                    Some((_, own)) => own.riders.push(rider),
                    None => {
                        let mut cache = r.cache.clone();
                        let positions = rider.reserved / bytes_per_position.max(1);
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
        left
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
pub(super) struct Scheduler<'m> {
    model: &'m Transformer,
    tokenizer: &'m GgufTokenizer,
    options: EngineOptions,
    shared: Arc<Shared>,
    running: Vec<Running<'m>>,
    prefixes: Prefixes,
    bytes_per_position: usize,
}

impl<'m> Scheduler<'m> {
    pub(super) fn new(
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

    pub(super) fn run(mut self) {
        while self.admit() {
            let start = Instant::now();
            let rows = self.step();
            let mut stats = self.shared.stats.lock().expect("stats lock");
            stats.steps += 1;
            stats.rows += rows;
            stats.busy += start.elapsed();
            stats.peak_running = stats.peak_running.max(self.running.len());
            stats.running = self.running.iter().map(|r| 1 + r.riders.len()).sum();
            let held: usize = self
                .running
                .iter()
                .map(|r| r.cache.own_bytes())
                .sum::<usize>()
                + self.prefixes.bytes();
            stats.peak_kv_bytes = stats.peak_kv_bytes.max(held);
            stats.kv_bytes = held;
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
            self.shared.stats.lock().expect("stats lock").prompt += req.ids.len();
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
        let prefill_left = self.options.prefill_chunk.max(1);
        let (mut steps, which) = feeds(&mut self.running, prefill_left);
        let fed: Vec<usize> = steps.iter().map(|s| s.tokens.len()).collect();
        let rows = fed.iter().sum();
        let result = self.model.forward_batch(&mut steps);
        drop(steps);
        let logits = match result {
            Ok(l) => l,
            Err(e) => {
                self.fail(&which, e);
                return rows;
            }
        };
        let mut ended = Ended::default();
        for ((&i, n), logits) in which.iter().zip(fed).zip(logits) {
            self.advance(i, n, &logits, &mut ended);
        }
        self.retire(ended);
        rows
    }

    /// Fails the sequences `which` of a step whose forward pass failed, riders included.
    fn fail(&mut self, which: &[usize], e: Error) {
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
    }

    /// Running sequence `i` after feeding `n` rows, the last of which gave `logits`: once
    /// its prompt is in, it and its riders choose their next tokens. What ends goes to
    /// `ended`.
    fn advance(&mut self, i: usize, n: usize, logits: &Tensor, ended: &mut Ended<'m>) {
        let r = &mut self.running[i];
        let prompt_done_before = r.fed >= r.ids.len();
        if !prompt_done_before {
            r.fed += n;
            if r.fed < r.ids.len() {
                return;
            }
            r.first_token = Some(Instant::now());
            self.prefixes.offer(r);
        }
        let tx = &r.tx;
        let mut gone = false;
        let mut send = |t: &str| gone |= tx.send(Event::Text(t.to_string())).is_err();
        let next = r.decoding.next(logits, &mut send);
        let stays = match next {
            Ok(Next::Feed(t)) if !gone => Some(t),
            _ => None,
        };
        // The riders choose from the same logits; one whose token differs leaves,
        // with a copy of the cache (riders that chose alike leave together).
        ended.rode += r.riders.len();
        let left = r.riders_choose(
            logits,
            stays,
            self.bytes_per_position,
            &mut ended.riders_done,
        );
        ended.leaving.extend(left.into_iter().map(|(_, own)| own));
        match next {
            Ok(Next::Feed(t)) if !gone => r.next = t,
            Ok(Next::Feed(_)) => ended.finished.push((i, Outcome::Abandoned)),
            Ok(Next::Stop(reason)) => ended.finished.push((i, Outcome::Stopped(reason))),
            Err(e) => ended.finished.push((i, Outcome::Failed(e))),
        }
    }

    /// Answers the requests a step ended, and runs the riders that left as sequences of
    /// their own.
    fn retire(&mut self, ended: Ended<'m>) {
        let Ended {
            mut finished,
            riders_done,
            leaving,
            rode,
        } = ended;
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
            Outcome::Abandoned => {
                self.count_done(generated, reused);
                self.shared.stats.lock().expect("stats lock").abandoned += 1;
            }
        }
    }

    fn count_done(&self, generated: usize, reused: usize) {
        let mut stats = self.shared.stats.lock().expect("stats lock");
        stats.requests += 1;
        stats.generated += generated;
        stats.reused += reused;
    }
}

/// The rows each running sequence feeds in a step: the next piece of its prompt while
/// the step's `prefill_left` prompt tokens last, else its next token. Returns them with
/// the indices of the sequences that feed.
fn feeds<'a>(
    running: &'a mut [Running<'_>],
    mut prefill_left: usize,
) -> (Vec<Step<'a>>, Vec<usize>) {
    let mut steps = Vec::with_capacity(running.len());
    let mut which = Vec::with_capacity(running.len());
    for (i, r) in running.iter_mut().enumerate() {
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
    (steps, which)
}

/// What a step ended: sequences that stopped (by index), riders that stopped (with their
/// prompt's length), riders that left with a sequence of their own, and rows that rode.
#[derive(Default)]
struct Ended<'t> {
    finished: Vec<(usize, Outcome)>,
    riders_done: Vec<(Rider<'t>, usize, Outcome)>,
    leaving: Vec<Running<'t>>,
    rode: usize,
}
