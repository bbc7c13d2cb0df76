//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while finding or fetching a model.
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
    /// A model file is malformed, truncated, of an unsupported kind or not the one the
    /// manifest names.
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
