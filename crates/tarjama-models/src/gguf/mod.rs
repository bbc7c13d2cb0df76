//! GGUF chat models: reading the file, building its tokenizer and chat template from the
//! metadata, and running the quantized transformer through candle.

pub mod chat_template;
pub mod tokenizer;
