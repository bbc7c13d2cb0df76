//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while finding, loading or running a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
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
    /// A registry manifest could not be parsed.
    #[error("{path}: bad model manifest: {reason}")]
    BadManifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// No source could provide a model file.
    #[error("{0}")]
    Unavailable(String),
    /// The model named on the command line is not known.
    #[error("unknown model `{0}`: not a registry name (see `tarjama models list`), a .gguf file, or a model folder")]
    UnknownModel(String),
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
    /// The encoder-decoder runner failed.
    #[error(transparent)]
    Seq2seq(#[from] crate::seq2seq::Error),
    /// A chat engine outside this crate failed (a remote server, say); its message says
    /// where and why.
    #[error(transparent)]
    Engine(Box<dyn std::error::Error + Send + Sync>),
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
