//! The model runner of tarjama: where models come from (the registry and its sources),
//! how their weights and tokenizers are loaded, how text is generated, and the translate
//! and summarize pipelines built on top.
#![deny(missing_docs)]

pub mod cpu;
pub mod error;
pub mod gguf;
mod numerics;
pub mod paths;
pub mod pipeline;
pub mod registry;
pub mod resolve;
pub mod runtime;
pub mod sampling;
pub mod seq2seq;
mod simd;
pub mod source;

pub use error::{Error, Result};
