//! The one error type of the engine API.

/// What a chat engine reports when it cannot answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The engine cannot do what was asked.
    #[error("{0}")]
    Unsupported(String),
    /// The prompt and output do not fit in the model's context window.
    #[error("the input needs {needed} tokens but the model's context holds {max}")]
    ContextOverflow {
        /// Tokens needed.
        needed: usize,
        /// Tokens available.
        max: usize,
    },
    /// The engine failed (a model file, a kernel, a remote server); its message says
    /// where and why.
    #[error(transparent)]
    Engine(Box<dyn std::error::Error + Send + Sync>),
    /// The caller gave up on the request ([`crate::ChatEngine::chat_until`]) before it
    /// was complete.
    #[error("the request was cancelled before it was complete")]
    Cancelled,
}

/// The engine API's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps any engine's error.
    pub fn engine(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Engine(Box::new(e))
    }
}
