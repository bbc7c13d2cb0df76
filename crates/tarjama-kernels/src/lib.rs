//! The CPU kernels under tarjama's model runtimes: which instructions this CPU has and
//! which kernel tier runs (chosen at run time, so one binary runs on every x86-64 CPU),
//! SIMD lanes over those tiers, small numeric helpers, and the thread pool the products
//! are spread over. The GGUF runtime (`tarjama-gguf`) and the encoder-decoder's int8
//! layers (`tarjama-seq2seq`) both run on these.
#![deny(missing_docs)]

pub mod cpu;
pub mod numerics;
pub mod runtime;
pub mod simd;
