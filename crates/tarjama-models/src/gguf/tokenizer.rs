//! Builds a `tokenizers` tokenizer from GGUF metadata.
