//! The jobs tarjama does with a model: translating documents and summarizing articles.
//!
//! Both start from the text-prep crate's sentences, so every piece of output can be tied
//! back to the bytes of the source it came from.

pub mod engine;
pub mod prompts;
pub mod summarize;
pub mod translate;

pub use engine::ChatEngine;
pub use summarize::{summarize, Strategy, SummaryLength, SummaryOptions, SummaryReport};
pub use translate::{
    run_concurrently, sentences_to_translate, translate_document, DocumentTranslation,
    GgufTranslator, SentenceOut, Seq2SeqAdapter, TranslateOptions, Translated, Translator,
};
