//! The crate's one error type.

/// Everything that can go wrong while preparing text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input could not be opened or read.
    #[error("{input}: cannot read")]
    Io {
        /// The file name, or `<stdin>`.
        input: String,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The input is not valid UTF-8 and lossy decoding was not asked for.
    #[error("{input}: invalid UTF-8 at byte offset {offset}")]
    InvalidUtf8 {
        /// The file name, or `<stdin>`.
        input: String,
        /// Offset of the first bad byte, counted in the raw input (a BOM included).
        offset: u64,
    },
    /// The input holds a NUL byte, which text never does.
    #[error("{input}: NUL byte at byte offset {offset}: this looks like a binary file, not text")]
    Binary {
        /// The file name, or `<stdin>`.
        input: String,
        /// Offset of the first NUL byte in the raw input.
        offset: u64,
    },
    /// Most of the input's first bytes are control characters.
    #[error("{input}: {percent}% of the first {sampled} bytes are control characters: this looks like a binary file, not text")]
    ControlBytes {
        /// The file name, or `<stdin>`.
        input: String,
        /// Share of control bytes in the sample, in percent.
        percent: u32,
        /// How many bytes were looked at.
        sampled: usize,
    },
    /// The input starts with a UTF-16 byte-order mark.
    #[error(
        "{input}: this file is UTF-16; convert it to UTF-8 first (e.g. `iconv -f UTF-16 -t UTF-8`)"
    )]
    Utf16 {
        /// The file name, or `<stdin>`.
        input: String,
    },
    /// The input is larger than the reader's limit.
    #[error("{input}: larger than the limit of {limit} bytes")]
    TooLarge {
        /// The file name, or `<stdin>`.
        input: String,
        /// The limit that was passed.
        limit: u64,
    },
    /// A profile name that is not `mt`, `search` or `none`.
    #[error("unknown normalization profile {0:?} (expected mt, search or none)")]
    UnknownProfile(String),
    /// A step name that is not one of [`crate::Step::ALL`].
    #[error("unknown normalization step {name:?} (known steps: {known})")]
    UnknownStep {
        /// The name that was given.
        name: String,
        /// The known names, comma separated.
        known: String,
    },
}
