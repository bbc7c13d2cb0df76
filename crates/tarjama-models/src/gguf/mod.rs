//! GGUF chat models: reading the file, building its tokenizer and chat template from the
//! metadata, and running the quantized transformer through candle.

pub mod block32;
pub mod chat;
pub mod chat_template;
mod config;
pub mod engine;
pub mod kv;
mod layers;
mod linear;
mod loading;
pub mod model;
pub mod panel;
pub mod q4k;
pub mod q6k;
pub mod tokenizer;

pub use chat::{ChatModel, LoadOptions};
pub use chat_template::ChatTemplate;
pub use engine::{Engine, EngineOptions, EngineStats};
pub use tokenizer::GgufTokenizer;
