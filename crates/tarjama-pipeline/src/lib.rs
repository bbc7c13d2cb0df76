//! The jobs tarjama does with a model: translating documents and summarizing articles.
//!
//! Both start from the text-prep crate's sentences, so every piece of output can be tied
//! back to the bytes of the source it came from. Chat models are reached only through
//! [`tarjama_chat::ChatEngine`], so the same pipeline runs on the local GGUF
//! engine, on a remote OpenAI-compatible server, or on a scripted fake in tests.
#![deny(missing_docs)]

pub mod concurrency;
pub mod glossary;
pub mod mbr;
pub mod prompts;
pub mod summarize;
pub mod translate;

#[cfg(test)]
mod testing;

pub use concurrency::run_concurrently;
pub use glossary::{Glossary, GlossaryError};
pub use summarize::{summarize, Strategy, SummaryLength, SummaryOptions, SummaryReport};
pub use translate::{
    plan_document, translate_document, translate_planned, Candidates, ChatTranslator, DocumentPlan,
    DocumentTranslation, SentenceOut, Seq2SeqAdapter, TranslateOptions, Translated, Translator,
};
