//! GGUF chat models: reading the file, building its tokenizer and chat template from the
//! metadata, running the quantized transformer (candle's tensors, tarjama's own Q4_K and
//! Q6_K kernels), and answering many requests at once with the continuous-batching
//! [`Engine`]. The engine, and one [`ChatModel`] as [`Serial`], are
//! `tarjama_chat::ChatEngine`s.
#![deny(missing_docs)]

mod api;

mod attend;
pub mod block32;
pub mod chat;
pub mod chat_template;
mod config;
pub mod engine;
pub mod error;
pub mod kv;
mod layers;
mod linear;
mod loading;
pub mod model;
pub mod panel;
pub mod q4k;
pub mod q6k;
pub mod sampling;
mod step;
pub mod tokenizer;

pub use api::Serial;
pub use chat::{ChatModel, LoadOptions};
pub use chat_template::ChatTemplate;
pub use engine::{auto_parallel, Engine, EngineOptions, EngineStats};
pub use error::{Error, Result};
pub use tokenizer::GgufTokenizer;
