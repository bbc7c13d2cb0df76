//! Process-wide settings that inference speed depends on. A binary calls [`tune`] once
//! at start, before it starts threads; a library never changes them by itself.

/// Everything below, in one call.
pub fn tune() {
    tune_allocator();
    tune_thread_pool();
}

/// How many times an idle worker of candle's thread pool spins before it sleeps, unless
/// `CANDLE_BARRIER_POOL_SPIN_LIMIT` is set.
const SPIN_LIMIT: &str = "2000";

/// Shortens the busy-wait of candle's own thread pool.
///
/// candle runs element-wise and quantized ops on its pool and f32 matmuls on rayon's
/// (through `gemm`). After each op its idle worker spins 25,000 times before sleeping,
/// and with as many threads as cores it then takes a core from the rayon threads doing
/// the next matmul: a fifth of an encoder-decoder beam search was that spinning. 2,000
/// spins still bridge the gap between back-to-back quantized matmuls. Measured on 2
/// cores (`seq2seq_bench`, 64 sentences, f32): 365 -> 470 target tokens/s; GGUF 0.5B
/// decode (`gguf_speed`) 55 -> 58 tokens/s.
pub fn tune_thread_pool() {
    const VAR: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";
    if std::env::var_os(VAR).is_none() {
        // Read once, when candle first builds its pool; set before any thread starts.
        std::env::set_var(VAR, SPIN_LIMIT);
    }
}

/// Keeps glibc's malloc from returning big buffers to the OS after every use.
///
/// glibc serves allocations above a threshold (at most 32 MiB, adapting) with their own
/// `mmap` and unmaps them on `free`. A decoder step allocates and frees buffers of that
/// size every time (beam-search logits over a 62k vocabulary: 31 MB), so each step paid
/// for fresh pages: page faults, zeroing and unmapping were a third of an encoder-decoder
/// run's time. With the thresholds raised, freed memory stays in the heap for the next
/// step: `scripts/bench_ct2.py`-shaped runs went from 115 to 174 target tokens/s (f32)
/// and 149 to 288 (int8), peak memory unchanged. Other allocators and platforms: no-op.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // Values in bytes; `mallopt` takes an int.
        const KEEP: libc::c_int = libc::c_int::MAX;
        // SAFETY: mallopt only changes allocator parameters; called before threads start
        // or at any time, it is thread-safe in glibc.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, KEEP);
            libc::mallopt(libc::M_TRIM_THRESHOLD, KEEP);
        }
    }
}

/// Runs `f` over `0..n` in chunks of at least `min_chunk` items, spread over candle's
/// thread pool, the calling thread included; runs it inline when there is only one chunk
/// or when called from inside that pool.
///
/// The quantized products of a decoding step (about 130 a token for a 1.5B model) run
/// between candle's element-wise ops, on a thread that candle's pool worker has just
/// spun for. On rayon's pool instead, each product woke two sleeping rayon workers while
/// the calling thread slept, and candle's worker took a core of its own: the hand-overs
/// cost Qwen2.5 1.5B a tenth of a decoding step.
///
/// Each thread takes half its share of what is left (at least `min_chunk`): the first
/// chunks are long, so each thread streams one long stretch of a matrix's panels, and the
/// last are short, so neither thread waits long for the other at the end. With eight
/// equal chunks instead, the 1.5B decoded 0-4% slower (8 of 12 interleaved rounds).
pub fn parallel_chunks(n: usize, min_chunk: usize, f: impl Fn(std::ops::Range<usize>) + Sync) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let min_chunk = min_chunk.max(1);
    if n <= min_chunk {
        f(0..n);
        return;
    }
    let pool = candle_core::utils::barrier_pool();
    let threads = pool.n_workers() + 1;
    let end_from = |start: usize| n.min(start + (n - start).div_ceil(2 * threads).max(min_chunk));
    let next = AtomicUsize::new(0);
    pool.execute(|_| {
        let claim = |start: usize| (start < n).then(|| end_from(start));
        while let Ok(start) = next.fetch_update(Ordering::Relaxed, Ordering::Relaxed, claim) {
            f(start..end_from(start));
        }
    });
}
