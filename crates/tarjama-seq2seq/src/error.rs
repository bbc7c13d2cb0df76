//! The errors of the encoder-decoder runner; wrapped whole by the crate's
//! [`crate::Error::Seq2seq`] variant.

use std::path::PathBuf;

/// The dynamic error type `tokenizers` returns.
pub type TokenizersError = Box<dyn std::error::Error + Send + Sync>;

/// Everything that can go wrong while loading or running an encoder-decoder model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file the model needs is not in its directory.
    #[error("{dir}: no {file} in the model directory")]
    MissingFile {
        /// The model directory.
        dir: PathBuf,
        /// The file name(s) looked for.
        file: String,
    },
    /// Reading a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file (config, generation config, vocabulary) could not be parsed.
    #[error("{path}: {source}")]
    Json {
        /// The file involved.
        path: PathBuf,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// `config.json` names an architecture this runner does not implement.
    #[error("{path}: unsupported architecture {arch:?} (supported: MarianMTModel, M2M100ForConditionalGeneration)")]
    UnsupportedArchitecture {
        /// The config file.
        path: PathBuf,
        /// What it names.
        arch: String,
    },
    /// The config holds a value the runner cannot work with.
    #[error("{path}: {reason}")]
    BadConfig {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A weight tensor is missing, of the wrong shape, or the weights file is unreadable.
    #[error("{path}: {error}")]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// candle's error, which names the tensor. Part of the message rather than a
        /// `source()`, so printing the chain does not say it twice.
        error: candle_core::Error,
    },
    /// A SentencePiece `.spm`/`.model` file is malformed.
    #[error("{path}: not a valid SentencePiece model: {reason}")]
    BadSentencePiece {
        /// The file involved.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Building or running a tokenizer failed.
    #[error("{context}: {source}")]
    Tokenizer {
        /// The file or step involved.
        context: String,
        /// What `tokenizers` said.
        #[source]
        source: TokenizersError,
    },
    /// A token the model needs (language code, special token) is not in its vocabulary.
    #[error("{path}: token {token:?} is not in the vocabulary")]
    UnknownToken {
        /// The vocabulary file.
        path: PathBuf,
        /// The token.
        token: String,
    },
    /// A model could not be fetched from the Hugging Face hub.
    #[error("{reason}")]
    Hub {
        /// The repository id.
        repo: String,
        /// The file asked for.
        file: String,
        /// Why, in one line (naming repository and file).
        reason: String,
    },
    /// The model is neither a local directory nor reachable because the hub is off.
    #[error("{0}: not a local model directory, and HF_HUB_OFFLINE is set")]
    Offline(String),
    /// Generation options that cannot be honoured.
    #[error("bad generation options: {0}")]
    BadOptions(String),
    /// A tensor operation failed while running the model.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// The result type of the seq2seq runner.
pub type Result<T, E = Error> = std::result::Result<T, E>;
