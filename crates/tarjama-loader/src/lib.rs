//! From model flags to a running model: the one place where tarjama's commands (and any
//! server over the same libraries) turn `--model`, `--endpoint`, `--parallel` and the
//! other run flags into an engine and the translators that use it.
//!
//! - [`ModelArgs`] and [`RunArgs`] are the flags, shared by every command that runs a
//!   model.
//! - [`target`] finds the model: a server for `--endpoint`, else a local model resolved
//!   through the registry (downloaded on first use).
//! - [`chat_engine`] and [`load_translator`] build what a command runs: the batched GGUF
//!   engine, an encoder-decoder, or the remote engine. How many requests are worth having
//!   in flight is decided here, once ([`Translators::parallel`], [`RunArgs::engine_options`]),
//!   and what the engine did is read back through one method ([`Translators::stats`]).
#![deny(missing_docs)]

mod args;
mod build;
mod target;

pub use args::{set_threads, ModelArgs, RunArgs};
pub use build::{
    chat_engine, load_chat, load_translator, ChatChoices, ChatParts, EngineReport, LoadedChat,
    Seq2SeqChoices, Translators,
};
pub use target::{resolve_model, target, Target};
/// What the engines report, as [`EngineReport`] carries it.
pub use tarjama_gguf::EngineStats;
pub use tarjama_remote::RemoteStats;
