//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while loading or running a GGUF model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A model file is malformed, truncated or of an unsupported kind.
    #[error("{path}: {reason}")]
    BadModelFile {
        /// The file involved.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
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
        Error::Io {
            path: path.into(),
            source,
        }
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
