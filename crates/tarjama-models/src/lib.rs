//! The model runner of tarjama: where models come from (the registry and its sources),
//! how their weights and tokenizers are loaded, and how text is generated. What an
//! application asks of a chat model, whichever engine runs it, is [`chat::ChatEngine`];
//! the translate and summarize pipelines built on it live in `tarjama-pipeline`.
#![deny(missing_docs)]

pub mod chat;
pub mod cpu;
pub mod error;
pub mod gguf;
mod numerics;
pub mod paths;
pub mod registry;
pub mod resolve;
pub mod runtime;
pub mod sampling;
pub mod seq2seq;
mod simd;
pub mod source;

pub use error::{Error, Result};
