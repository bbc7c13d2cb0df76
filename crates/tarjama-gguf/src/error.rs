//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while loading or running a GGUF model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A model file could not be read, or is malformed, truncated or of an unsupported
    /// kind: [`tarjama_registry::Error::Io`] or [`tarjama_registry::Error::BadModelFile`].
    #[error(transparent)]
    File(#[from] tarjama_registry::Error),
    /// The model or engine cannot do what was asked.
    #[error("{0}")]
    Unsupported(String),
    /// The tokenizer stored in a model file could not be built.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The chat template could not be parsed or rendered.
    #[error("chat template: {0}")]
    ChatTemplate(#[from] minijinja::Error),
    /// The prompt and output do not fit in the model's context window.
    #[error("the input needs {needed} tokens but the model's context holds {max}")]
    ContextOverflow {
        /// Tokens needed.
        needed: usize,
        /// Tokens available.
        max: usize,
    },
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::File(tarjama_registry::Error::io(path, source))
    }

    /// A model file at `path` that is malformed, truncated or of an unsupported kind.
    pub fn bad_file(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::File(tarjama_registry::Error::BadModelFile {
            path: path.into(),
            reason: reason.into(),
        })
    }
}

/// What the engine API reports: the two kinds a pipeline acts on keep their variant,
/// the rest travel whole as the engine's error.
impl From<Error> for tarjama_chat::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::ContextOverflow { needed, max } => {
                tarjama_chat::Error::ContextOverflow { needed, max }
            }
            Error::Unsupported(what) => tarjama_chat::Error::Unsupported(what),
            e => tarjama_chat::Error::engine(e),
        }
    }
}
