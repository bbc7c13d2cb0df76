//! Builds a `tokenizers` tokenizer from GGUF metadata alone and tokenizes the way
//! llama.cpp does.
//!
//! A GGUF file carries its tokenizer as metadata (`tokenizer.ggml.*`): the token texts,
//! their types, BPE merges or SentencePiece scores, the special-token ids and the name
//! of the pre-tokenizer. This module turns that into a [`tokenizers::Tokenizer`] and
//! wraps it in [`GgufTokenizer`], whose [`GgufTokenizer::encode`] has the semantics of
//! llama.cpp's `llama_tokenize(text, add_special, parse_special)` (what
//! llama-cpp-python's `Llama.tokenize(text, add_bos, special)` calls):
//!
//! 1. Special tokens are cut out of the text first, longest text first, exactly as
//!    llama.cpp's `tokenizer_st_partition`: user-defined tokens always, control and
//!    unknown tokens only when `parse_special` is set. This is done here rather than by
//!    the `tokenizers` added vocabulary, which matches leftmost-longest and cannot tell
//!    control tokens from user-defined ones per call.
//! 2. Each remaining piece of text goes through the tokenizer's own normalizer,
//!    pre-tokenizer and model:
//!    - `gpt2` vocabularies (Qwen2, Llama 3): the pre-tokenizer regex that llama.cpp
//!      uses for `tokenizer.ggml.pre`, GPT-2 byte-level mapping, and BPE with the
//!      file's merges;
//!    - `llama` (SentencePiece) vocabularies (Gemma): spaces become `▁`, no
//!      pre-tokenizer, and llama.cpp's SPM algorithm (repeatedly join the adjacent pair
//!      whose joined text is the vocabulary entry with the highest score, leftmost
//!      first, bytes as `<0xXX>` for characters outside the vocabulary). That is a BPE
//!      whose merges are every split of every token into two tokens, ranked by the
//!      joined token's score, with byte fallback.
//! 3. BOS/EOS are added when `add_special` is set and the file asks for them.
//!
//! Decoding follows llama.cpp's `token_to_piece`/`llama_detokenize` on raw bytes, and
//! [`TokenStream`] decodes token by token without ever emitting half a character.
//!
//! The module is split by job: this file holds the types and encoding, `metadata.rs`
//! builds a [`GgufTokenizer`] from the file's metadata ([`GgufTokenizer::from_gguf`]), and
//! `decode.rs` turns ids back into text. Each is checked against llama.cpp's own
//! tokenization in `tests/tokenizer.rs`.

use tokenizers::{
    Model, Normalizer, OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer, Tokenizer,
};

use crate::{Error, Result};

mod decode;
mod metadata;

/// SentencePiece's visible space, which `llama` vocabularies use in place of ' '.
const SPM_SPACE: &str = "\u{2581}";

/// The type llama.cpp gives each token (`tokenizer.ggml.token_type`), which decides how
/// it is matched in text and how it is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    /// Type 0 or a value llama.cpp does not know; never printed.
    Undefined,
    /// An ordinary piece of text.
    Normal,
    /// The unknown token; matched in text only when special tokens are parsed.
    Unknown,
    /// A control token (BOS, EOS, `<|im_start|>`...); matched in text only when special
    /// tokens are parsed, printed only when asked.
    Control,
    /// A user-defined token; always matched in text before anything else.
    UserDefined,
    /// A placeholder that is never produced nor printed.
    Unused,
    /// A raw byte, written `<0xXX>`.
    Byte,
}

impl TokenType {
    fn from_gguf(value: i32) -> Self {
        match value {
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => TokenType::Undefined,
        }
    }

    /// Control and unknown tokens are the "special" ones that `parse_special` and
    /// `skip_special` are about.
    fn is_special(self) -> bool {
        matches!(self, TokenType::Control | TokenType::Unknown)
    }
}

/// How text between special tokens is turned into ids.
#[derive(Debug, Clone, PartialEq, Eq)]
enum VocabKind {
    /// `gpt2`: byte-level BPE after a regex split.
    Bpe,
    /// `llama`: SentencePiece-style merging by score.
    Spm {
        /// Put a space before text that starts the input or follows a special token.
        add_space_prefix: bool,
    },
}

/// A tokenizer read from a GGUF file, with llama.cpp's encoding and decoding rules.
pub struct GgufTokenizer {
    /// The tokenizer built from the metadata (model, normalizer, pre-tokenizer,
    /// decoder, special tokens). [`GgufTokenizer::encode`] uses its parts; calling its
    /// own `encode` gives the same ids except where special tokens overlap.
    pub tokenizer: Tokenizer,
    /// Beginning-of-sequence token.
    pub bos: Option<u32>,
    /// End-of-sequence token.
    pub eos: Option<u32>,
    /// Whether `encode(.., add_special = true, ..)` starts with BOS.
    pub add_bos: bool,
    /// Whether `encode(.., add_special = true, ..)` ends with EOS.
    pub add_eos: bool,
    /// Tokens that end an assistant turn: EOS, the file's end-of-turn token and any of
    /// `<|im_end|>`, `<end_of_turn>`, `<|eot_id|>`, `<|endoftext|>`... present, sorted.
    pub end_of_turn: Vec<u32>,
    kind: VocabKind,
    /// llama.cpp's pre-tokenizer name for `gpt2` vocabularies, `default` otherwise.
    pre: String,
    token_types: Vec<TokenType>,
    /// What each token prints as (llama.cpp's `token_to_piece` with `special = true`).
    pieces: Vec<Box<[u8]>>,
    /// Control, user-defined and unknown tokens, longest text first: the order in which
    /// llama.cpp cuts them out of the input.
    specials: Vec<(u32, String)>,
    /// llama.cpp's `clean_spaces` detokenizer option (" ," -> "," and the like).
    clean_spaces: bool,
}

impl std::fmt::Debug for GgufTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufTokenizer")
            .field("kind", &self.kind)
            .field("pre", &self.pre)
            .field("vocab_size", &self.token_types.len())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("add_bos", &self.add_bos)
            .field("add_eos", &self.add_eos)
            .field("end_of_turn", &self.end_of_turn)
            .finish_non_exhaustive()
    }
}

/// A piece of input: text still to tokenize, or a special token already cut out.
#[derive(Debug, Clone, Copy)]
enum Fragment {
    Text(usize, usize),
    Token(u32),
}

impl GgufTokenizer {
    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.token_types.len()
    }

    /// The type of a token, `None` outside the vocabulary.
    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.token_types.get(id as usize).copied()
    }

    /// The id of the token whose text is exactly `text` (special tokens included).
    pub fn token_to_id(&self, text: &str) -> Option<u32> {
        self.tokenizer.token_to_id(text)
    }

    /// Whether generating `id` ends the assistant's turn.
    pub fn is_end_of_turn(&self, id: u32) -> bool {
        self.end_of_turn.binary_search(&id).is_ok()
    }

    /// Tokenizes `text` like llama.cpp's `llama_tokenize(text, add_special,
    /// parse_special)`: `add_special` adds BOS/EOS as the file asks, `parse_special`
    /// turns the text of control tokens (`<|im_start|>`, `<start_of_turn>`...) into
    /// those tokens instead of spelling it out. User-defined tokens are always matched.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Result<Vec<u32>> {
        let fragments = self.partition(text, parse_special);
        let mut ids = Vec::with_capacity(text.len() / 2 + 2);
        if add_special && self.add_bos {
            ids.extend(self.bos);
        }
        match self.kind {
            VocabKind::Spm { add_space_prefix } => {
                let mut prev_special = true;
                for fragment in fragments {
                    match fragment {
                        Fragment::Text(start, end) => {
                            let piece = &text[start..end];
                            if add_space_prefix && prev_special {
                                self.encode_raw(&format!(" {piece}"), &mut ids)?;
                            } else {
                                self.encode_raw(piece, &mut ids)?;
                            }
                            prev_special = false;
                        }
                        Fragment::Token(id) => {
                            ids.push(id);
                            prev_special = true;
                        }
                    }
                }
            }
            VocabKind::Bpe => {
                for fragment in fragments {
                    match fragment {
                        Fragment::Text(start, end) => {
                            self.encode_raw(&text[start..end], &mut ids)?
                        }
                        Fragment::Token(id) => ids.push(id),
                    }
                }
            }
        }
        if add_special && self.add_eos {
            ids.extend(self.eos);
        }
        Ok(ids)
    }

    /// Cuts special tokens out of `text`, as llama.cpp's `tokenizer_st_partition`: one
    /// special token at a time, longest first, every occurrence in every text fragment.
    fn partition(&self, text: &str, parse_special: bool) -> Vec<Fragment> {
        if text.is_empty() {
            return Vec::new();
        }
        let mut fragments = vec![Fragment::Text(0, text.len())];
        for (id, special) in &self.specials {
            if !parse_special && self.token_types[*id as usize].is_special() {
                continue;
            }
            if !text.contains(special.as_str()) {
                continue;
            }
            let mut next = Vec::with_capacity(fragments.len() + 2);
            for fragment in fragments {
                let Fragment::Text(mut start, end) = fragment else {
                    next.push(fragment);
                    continue;
                };
                while let Some(at) = text[start..end].find(special.as_str()) {
                    let at = start + at;
                    if at > start {
                        next.push(Fragment::Text(start, at));
                    }
                    next.push(Fragment::Token(*id));
                    start = at + special.len();
                }
                if start < end {
                    next.push(Fragment::Text(start, end));
                }
            }
            fragments = next;
        }
        fragments
    }

    /// Tokenizes text that holds no special token with the tokenizer's normalizer,
    /// pre-tokenizer and model, bypassing its added vocabulary.
    fn encode_raw(&self, text: &str, ids: &mut Vec<u32>) -> Result<()> {
        let tk = &self.tokenizer;
        let fail = |e: tokenizers::Error| Error::Tokenizer(format!("encoding {text:?}: {e}"));
        let mut pretok = PreTokenizedString::from(text);
        if let Some(normalizer) = tk.get_normalizer() {
            pretok
                .normalize(|s| normalizer.normalize(s))
                .map_err(fail)?;
        }
        if let Some(pre_tokenizer) = tk.get_pre_tokenizer() {
            pre_tokenizer.pre_tokenize(&mut pretok).map_err(fail)?;
        }
        let model = tk.get_model();
        pretok.tokenize(|s| model.tokenize(s.get())).map_err(fail)?;
        for (_, _, tokens) in pretok.get_splits(OffsetReferential::Original, OffsetType::Byte) {
            if let Some(tokens) = tokens {
                ids.extend(tokens.iter().map(|t| t.id));
            }
        }
        Ok(())
    }
}

/// Decodes tokens one at a time for streaming output. Text comes out as soon as it is
/// complete UTF-8: a character split over several byte tokens (or several byte-level BPE
/// tokens) is held back until its last byte arrives, so nothing half-printed is ever
/// emitted. Concatenating every [`TokenStream::push`] and [`TokenStream::finish`] gives
/// [`GgufTokenizer::decode`]'s text, except for llama.cpp's `clean_spaces` rewriting,
/// which needs the whole text.
#[derive(Debug)]
pub struct TokenStream<'a> {
    tokenizer: &'a GgufTokenizer,
    skip_special: bool,
    pending: Vec<u8>,
    first: bool,
}
