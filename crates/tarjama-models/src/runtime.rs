//! Process-wide settings that inference speed depends on. A binary calls
//! [`tune_allocator`] once at start; a library never changes them by itself.

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
