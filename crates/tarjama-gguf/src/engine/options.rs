//! How an [`Engine`](super::Engine) schedules ([`EngineOptions`], with [`auto_parallel`]
//! for the number of sequences at once) and what it has done ([`EngineStats`]).

use std::time::Duration;

use serde::Serialize;

/// How an [`Engine`](super::Engine) schedules.
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
    /// Prompt tokens of the requests admitted (computed or read from a shared prefix).
    pub prompt: usize,
    /// Prompt tokens read from a shared prefix instead of computed.
    pub reused: usize,
    /// Rows not fed because a request rode on another sequence that had chosen the same
    /// tokens (its logits served both).
    pub rode: usize,
    /// Most sequences running in one step.
    pub peak_running: usize,
    /// Sequences running after the last step.
    pub running: usize,
    /// Requests waiting for a slot now.
    pub waiting: usize,
    /// Bytes of keys and values held after the last step.
    pub kv_bytes: usize,
    /// Requests whose caller stopped listening before they were complete.
    pub abandoned: usize,
    /// Most bytes of keys and values held at once (running sequences and kept prefixes).
    pub peak_kv_bytes: usize,
    /// The budget they were held to.
    pub kv_budget: usize,
    /// Sequences allowed at once (`EngineOptions::parallel`, resolved).
    pub parallel: usize,
    /// Time spent in forward steps.
    pub busy: Duration,
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
