//! Arabic text preparation for tarjama: input decoding, normalization, sentence
//! splitting, chunking under a token budget and per-sentence script detection.
//!
//! The stages are independent and work on byte spans of the caller's text, so a later
//! stage (translation, summarization) can always point back at the source:
//!
//! ```
//! use tarjama_text::{split, Normalizer, Profile, Script};
//!
//! let text = "قال د. أحمد إن النمو بلغ 3.5 في المئة. Hello there!";
//! let paragraphs = split(text);
//! let sentences = &paragraphs[0].sentences;
//! assert_eq!(sentences.len(), 2);
//! assert_eq!(&text[sentences[1].span.clone()], "Hello there!");
//! assert_eq!(sentences[1].script, Script::Latin);
//!
//! let mt = Normalizer::new(Profile::Mt);
//! assert_eq!(mt.normalize("مـــرحبا\u{200F}  بكم"), "مرحبا بكم");
//! ```
#![deny(missing_docs)]

pub mod chunk;
mod error;
pub mod input;
mod links;
pub mod normalize;
pub mod script;
pub mod split;

pub use chunk::{chunk, Chunk, Piece};
pub use error::Error;
pub use input::{read_text, Block, Blocks, ReadOptions, Source};
pub use normalize::{Normalized, Normalizer, Position, Profile, Step};
pub use script::Script;
pub use split::{split, split_at, Paragraph, Sentence};

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
