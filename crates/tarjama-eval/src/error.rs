//! The one error type of this crate.

/// Everything that can go wrong while scoring.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// Hypotheses and references do not pair up one to one.
    #[error("{hyps} hypotheses but {refs} references: each hypothesis needs one reference")]
    LengthMismatch {
        /// Number of hypothesis segments.
        hyps: usize,
        /// Number of reference segments.
        refs: usize,
    },
    /// A name that is not one of the known tokenizers, smoothing methods or ROUGE types.
    #[error("unknown {kind} {name:?}; expected one of: {expected}")]
    UnknownName {
        /// What was being named ("tokenizer", "smoothing method", "ROUGE type").
        kind: &'static str,
        /// The name given.
        name: String,
        /// The accepted names, comma-separated.
        expected: &'static str,
    },
    /// A configuration value out of its range (an n-gram order of 0, a bootstrap of 0 samples).
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
}
