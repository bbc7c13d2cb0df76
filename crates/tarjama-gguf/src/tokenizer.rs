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
//! Why one file of over 1,000 lines: the BPE and SentencePiece builders share the metadata
//! reading and the special-token handling, and each is checked against llama.cpp's own
//! tokenization in `tests/gguf_tokenizer.rs`.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::replace::Replace;
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{
    AddedToken, Model, Normalizer, OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer,
    SplitDelimiterBehavior, Tokenizer,
};

use crate::{Error, Result};

/// `tokenizer.ggml.model`: the kind of vocabulary.
const KEY_MODEL: &str = "tokenizer.ggml.model";
/// `tokenizer.ggml.pre`: which pre-tokenizer a `gpt2` vocabulary uses.
const KEY_PRE: &str = "tokenizer.ggml.pre";
const KEY_TOKENS: &str = "tokenizer.ggml.tokens";
const KEY_TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
const KEY_SCORES: &str = "tokenizer.ggml.scores";
const KEY_MERGES: &str = "tokenizer.ggml.merges";
const KEY_BOS: &str = "tokenizer.ggml.bos_token_id";
const KEY_EOS: &str = "tokenizer.ggml.eos_token_id";
const KEY_EOT: &str = "tokenizer.ggml.eot_token_id";
const KEY_EOM: &str = "tokenizer.ggml.eom_token_id";
const KEY_UNK: &str = "tokenizer.ggml.unknown_token_id";
const KEY_PAD: &str = "tokenizer.ggml.padding_token_id";
const KEY_ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
const KEY_ADD_EOS: &str = "tokenizer.ggml.add_eos_token";
const KEY_ADD_SPACE_PREFIX: &str = "tokenizer.ggml.add_space_prefix";

/// SentencePiece's visible space, which `llama` vocabularies use in place of ' '.
const SPM_SPACE: &str = "\u{2581}";

/// llama.cpp's Qwen2 pre-tokenizer regex (`LLAMA_VOCAB_PRE_TYPE_QWEN2`): GPT-4o style
/// splitting with single digits. The `(?i:...)` of the original is spelled out, as
/// llama.cpp does.
const REGEX_QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// llama.cpp's Llama 3 pre-tokenizer regex (`LLAMA_VOCAB_PRE_TYPE_LLAMA3`): digits in
/// groups of up to three.
const REGEX_LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// The GPT-2 regex, llama.cpp's `LLAMA_VOCAB_PRE_TYPE_GPT2`.
const REGEX_GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";

/// Texts of tokens that end an assistant turn in the chat formats we know.
const END_OF_TURN_TEXTS: &[&str] = &[
    "<|im_end|>",
    "<end_of_turn>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<|end|>",
];

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
    /// Builds the tokenizer from the `tokenizer.ggml.*` metadata of a GGUF file. `path`
    /// only names the file in errors.
    pub fn from_gguf(content: &Content, path: &Path) -> Result<GgufTokenizer> {
        let md = Metadata {
            map: &content.metadata,
            path,
        };
        let model = md.req_str(KEY_MODEL)?;
        let mut tokens: Vec<String> = md.req_str_array(KEY_TOKENS)?;
        if tokens.is_empty() {
            return Err(md.bad(format!("`{KEY_TOKENS}` is empty")));
        }
        let n = tokens.len();
        // llama.cpp renames empty tokens so that they can never match empty text.
        for (i, t) in tokens.iter_mut().enumerate() {
            if t.is_empty() {
                *t = format!("[EMPTY_{i}]");
            }
        }
        let mut token_types = match md.opt_i32_array(KEY_TOKEN_TYPE)? {
            Some(types) if types.len() < n => {
                return Err(md.bad(format!(
                    "`{KEY_TOKEN_TYPE}` has {} entries for {n} tokens",
                    types.len()
                )))
            }
            Some(types) => types[..n]
                .iter()
                .map(|&t| TokenType::from_gguf(t))
                .collect(),
            None => vec![TokenType::Normal; n],
        };

        // tokenizers' own map type (ahash): hashed faster than std's, and moved into the
        // BPE model at the end instead of copied.
        let mut vocab = Vocab::default();
        vocab.reserve(n);
        for (i, t) in tokens.iter().enumerate() {
            if vocab.insert(t.clone(), i as u32).is_some() {
                return Err(md.bad(format!("`{KEY_TOKENS}` holds {t:?} twice")));
            }
        }

        // llama.cpp forces these to control type whatever the file says, so that they
        // are never matched as plain text.
        for text in
            END_OF_TURN_TEXTS
                .iter()
                .chain(&["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"])
        {
            if let Some(&id) = vocab.get(*text) {
                let t = &mut token_types[id as usize];
                if *t != TokenType::Control && *t != TokenType::Unused {
                    *t = TokenType::Control;
                }
            }
        }

        let (kind, pre, default_add_bos, default_bos, default_eos, clean_spaces) = match model {
            "gpt2" => {
                let pre = md.opt_str(KEY_PRE)?.unwrap_or("default").to_string();
                let add_bos = pre_tokenizer_regex(&pre)
                    .ok_or_else(|| {
                        md.bad(format!(
                            "unsupported pre-tokenizer `{KEY_PRE}` = {pre:?} (supported: qwen2, \
                             llama3/llama-bpe, gpt-2/default)"
                        ))
                    })?
                    .1;
                let clean_spaces = !matches!(pre.as_str(), "qwen2" | "deepseek-r1-qwen");
                (VocabKind::Bpe, pre, add_bos, None, None, clean_spaces)
            }
            "llama" => {
                let add_space_prefix = md.opt_bool(KEY_ADD_SPACE_PREFIX)?.unwrap_or(true);
                (
                    VocabKind::Spm { add_space_prefix },
                    "default".to_string(),
                    true,
                    Some(1),
                    Some(2),
                    false,
                )
            }
            other => {
                return Err(md.bad(format!(
                    "unsupported tokenizer `{KEY_MODEL}` = {other:?} (supported: gpt2, llama)"
                )))
            }
        };

        // llama.cpp's SentencePiece defaults (BOS 1, EOS 2) apply only inside the vocabulary.
        let in_vocab = |id: Option<u32>| id.filter(|&id| (id as usize) < n);
        let bos = md.opt_token_id(KEY_BOS, n)?.or(in_vocab(default_bos));
        let eos = md.opt_token_id(KEY_EOS, n)?.or(in_vocab(default_eos));
        let unk = md.opt_token_id(KEY_UNK, n)?;
        let _pad = md.opt_token_id(KEY_PAD, n)?;
        let add_bos = md.opt_bool(KEY_ADD_BOS)?.unwrap_or(default_add_bos);
        let add_eos = md.opt_bool(KEY_ADD_EOS)?.unwrap_or(false);
        if add_bos && bos.is_none() {
            return Err(md.bad(format!(
                "`{KEY_ADD_BOS}` is set but there is no `{KEY_BOS}`"
            )));
        }
        if add_eos && eos.is_none() {
            return Err(md.bad(format!(
                "`{KEY_ADD_EOS}` is set but there is no `{KEY_EOS}`"
            )));
        }

        let mut end_of_turn: Vec<u32> = eos.into_iter().collect();
        for key in [KEY_EOT, KEY_EOM] {
            end_of_turn.extend(md.opt_token_id(key, n)?);
        }
        end_of_turn.extend(
            END_OF_TURN_TEXTS
                .iter()
                .filter_map(|t| vocab.get(*t).copied()),
        );
        end_of_turn.sort_unstable();
        end_of_turn.dedup();

        let bpe = match &kind {
            VocabKind::Bpe => {
                let merges = md.bpe_merges(&vocab)?;
                let ignore_merges = pre_tokenizer_regex(&pre).is_some_and(|(_, _, ig)| ig);
                BPE::builder()
                    .vocab_and_merges(vocab, merges)
                    .ignore_merges(ignore_merges)
                    .build()
            }
            VocabKind::Spm { .. } => {
                let scores = md.scores(n)?;
                let merges = spm_merges(&tokens, &scores, &vocab);
                let mut builder = BPE::builder()
                    .vocab_and_merges(vocab, merges)
                    .byte_fallback(true);
                if let Some(unk) = unk {
                    builder = builder.unk_token(tokens[unk as usize].clone());
                }
                builder.build()
            }
        }
        .map_err(|e| md.bad(format!("cannot build the tokenizer: {e}")))?;

        let mut tokenizer = Tokenizer::new(bpe);
        match &kind {
            VocabKind::Bpe => {
                let regex = pre_tokenizer_regex(&pre)
                    .map(|(r, _, _)| r)
                    .unwrap_or(REGEX_GPT2);
                let split = Split::new(
                    SplitPattern::Regex(regex.to_string()),
                    SplitDelimiterBehavior::Isolated,
                    false,
                )
                .map_err(|e| Error::Tokenizer(format!("pre-tokenizer regex: {e}")))?;
                let byte_level =
                    tokenizers::pre_tokenizers::byte_level::ByteLevel::new(false, false, false);
                tokenizer.with_pre_tokenizer(Some(PreTokenizerWrapper::Sequence(
                    PreTokenizerSequence::new(vec![split.into(), byte_level.into()]),
                )));
                tokenizer.with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevel::default())));
            }
            VocabKind::Spm { add_space_prefix } => {
                let escape = Replace::new(" ", SPM_SPACE)
                    .map_err(|e| Error::Tokenizer(format!("normalizer: {e}")))?;
                tokenizer.with_normalizer(Some(NormalizerWrapper::Replace(escape)));
                let unescape = Replace::new(SPM_SPACE, " ")
                    .map_err(|e| Error::Tokenizer(format!("decoder: {e}")))?;
                let mut decoders = vec![
                    DecoderWrapper::Replace(unescape),
                    DecoderWrapper::ByteFallback(ByteFallback::new()),
                    DecoderWrapper::Fuse(Fuse::new()),
                ];
                if *add_space_prefix {
                    decoders.push(DecoderWrapper::Strip(Strip::new(' ', 1, 0)));
                }
                tokenizer.with_decoder(Some(DecoderWrapper::Sequence(DecoderSequence::new(
                    decoders,
                ))));
            }
        }
        // Register the special tokens so that `tokenizer` alone knows them (decoding
        // with `skip_special_tokens`, `token_to_id`); their ids are the model's own.
        let added: Vec<AddedToken> = tokens
            .iter()
            .zip(&token_types)
            .filter(|(_, t)| {
                matches!(
                    t,
                    TokenType::Control | TokenType::Unknown | TokenType::UserDefined
                )
            })
            .map(|(text, t)| AddedToken::from(text.clone(), t.is_special()).normalized(false))
            .collect();
        tokenizer.add_tokens(&added);

        let pieces = tokens
            .iter()
            .zip(&token_types)
            .map(|(text, &ty)| token_piece(text, ty, &kind))
            .collect();

        let mut specials: Vec<(u32, String)> = tokens
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                matches!(
                    token_types[*i],
                    TokenType::Control | TokenType::Unknown | TokenType::UserDefined
                )
            })
            .map(|(i, t)| (i as u32, t.clone()))
            .collect();
        specials.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));

        Ok(GgufTokenizer {
            tokenizer,
            bos,
            eos,
            add_bos,
            add_eos,
            end_of_turn,
            kind,
            pre,
            token_types,
            pieces,
            specials,
            clean_spaces,
        })
    }

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

    /// The bytes token `id` prints as: its text for user-defined tokens, and for control
    /// and unknown tokens only when `special` is set; nothing for unused ones.
    pub fn token_bytes(&self, id: u32, special: bool) -> Result<&[u8]> {
        let ty = self.token_type(id).ok_or_else(|| self.out_of_vocab(id))?;
        if !special && ty.is_special() {
            return Ok(&[]);
        }
        Ok(&self.pieces[id as usize])
    }

    fn out_of_vocab(&self, id: u32) -> Error {
        Error::Tokenizer(format!(
            "token id {id} is outside the vocabulary of {} tokens",
            self.vocab_size()
        ))
    }

    /// Whether the first printed piece loses one leading space (SentencePiece files
    /// with `add_space_prefix`), given whether the leading BOS was dropped: llama.cpp's
    /// `llama_detokenize` keeps the space when it drops the BOS.
    fn strips_leading_space(&self, dropped_bos: bool) -> bool {
        matches!(
            self.kind,
            VocabKind::Spm {
                add_space_prefix: true
            }
        ) && !dropped_bos
    }

    /// Turns ids back into text like llama.cpp's `llama_detokenize(tokens,
    /// remove_special = skip_special, unparse_special = !skip_special)`. Bytes that do
    /// not form valid UTF-8 become U+FFFD.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        let mut ids = ids;
        let mut dropped_bos = false;
        if skip_special && self.add_bos && !ids.is_empty() && Some(ids[0]) == self.bos {
            ids = &ids[1..];
            dropped_bos = true;
        }
        if skip_special && self.add_eos && !ids.is_empty() && ids.last().copied() == self.eos {
            ids = &ids[..ids.len() - 1];
        }
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        let mut strip = self.strips_leading_space(dropped_bos);
        for &id in ids {
            let mut piece = self.token_bytes(id, !skip_special)?;
            if strip {
                piece = piece.strip_prefix(b" ").unwrap_or(piece);
                strip = false;
            }
            bytes.extend_from_slice(piece);
        }
        if self.clean_spaces {
            bytes = clean_spaces(&bytes);
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Starts decoding a stream of generated tokens (see [`TokenStream`]).
    pub fn stream(&self, skip_special: bool) -> TokenStream<'_> {
        TokenStream {
            tokenizer: self,
            skip_special,
            pending: Vec::new(),
            first: true,
        }
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

impl TokenStream<'_> {
    /// Feeds one token; returns the text that became complete, if any.
    pub fn push(&mut self, id: u32) -> Result<Option<String>> {
        let tk = self.tokenizer;
        let mut piece = tk.token_bytes(id, !self.skip_special)?;
        if self.first {
            self.first = false;
            let is_bos = self.skip_special && tk.add_bos && Some(id) == tk.bos;
            if is_bos {
                return Ok(None);
            }
            if tk.strips_leading_space(false) {
                piece = piece.strip_prefix(b" ").unwrap_or(piece);
            }
        }
        self.pending.extend_from_slice(piece);
        let text = self.take_complete(false);
        Ok((!text.is_empty()).then_some(text))
    }

    /// Ends the stream: returns what is still held back, incomplete characters as
    /// U+FFFD.
    pub fn finish(&mut self) -> Option<String> {
        let text = self.take_complete(true);
        (!text.is_empty()).then_some(text)
    }

    /// Removes from `pending` and returns its longest prefix that can be printed: valid
    /// UTF-8, and invalid bytes as U+FFFD (as `String::from_utf8_lossy` would). A
    /// trailing incomplete character stays unless `flush`.
    fn take_complete(&mut self, flush: bool) -> String {
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match e.error_len() {
                        Some(bad) => {
                            out.push('\u{FFFD}');
                            self.pending.drain(..valid + bad);
                        }
                        None => {
                            self.pending.drain(..valid);
                            if flush {
                                out.push('\u{FFFD}');
                                self.pending.clear();
                            }
                            return out;
                        }
                    }
                }
            }
        }
    }
}

/// The regex llama.cpp splits text with before BPE, for a `tokenizer.ggml.pre` name,
/// with whether that pre-tokenizer adds BOS by default and ignores merges for words
/// that are whole tokens.
fn pre_tokenizer_regex(pre: &str) -> Option<(&'static str, bool, bool)> {
    match pre {
        "qwen2" | "deepseek-r1-qwen" => Some((REGEX_QWEN2, false, false)),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "pixtral" => {
            Some((REGEX_LLAMA3, true, true))
        }
        "default" | "gpt-2" | "gpt2" => Some((REGEX_GPT2, false, false)),
        _ => None,
    }
}

/// llama.cpp's SPM merging as BPE merges: every way of writing a token as two tokens,
/// ranked by the joined token's score (higher first). Equal scores are ranked by token
/// id; llama.cpp breaks such ties by position instead, which only matters when two
/// different tokens of equal score compete for the same characters.
fn spm_merges(tokens: &[String], scores: &[f32], vocab: &Vocab) -> Vec<(String, String)> {
    // llama.cpp compares scores as floats, so -0.0 and 0.0 tie (adding 0.0 turns -0.0
    // into 0.0) and ties go by token id. A NaN from a damaged file ranks last.
    let key = |i: usize| {
        let s = scores[i];
        if s.is_nan() {
            f32::NEG_INFINITY
        } else {
            s + 0.0
        }
    };
    let mut order: Vec<usize> = (0..tokens.len()).collect();
    order.sort_by(|&a, &b| key(b).total_cmp(&key(a)).then(a.cmp(&b)));
    let mut merges = Vec::new();
    for i in order {
        let text = &tokens[i];
        for (split, _) in text.char_indices().skip(1) {
            let (left, right) = text.split_at(split);
            if vocab.contains_key(left) && vocab.contains_key(right) {
                merges.push((left.to_string(), right.to_string()));
            }
        }
    }
    merges
}

/// What a token prints as under llama.cpp's `token_to_piece(special = true)`.
fn token_piece(text: &str, ty: TokenType, kind: &VocabKind) -> Box<[u8]> {
    match ty {
        TokenType::Control | TokenType::Unknown | TokenType::UserDefined => text.as_bytes().into(),
        TokenType::Normal => match kind {
            VocabKind::Spm { .. } => text.replace(SPM_SPACE, " ").into_bytes().into(),
            VocabKind::Bpe => byte_level_decode(text).into(),
        },
        TokenType::Byte => match parse_byte_token(text) {
            Some(b) => Box::new([b]),
            None => byte_level_decode(text).into(),
        },
        TokenType::Unused | TokenType::Undefined => Box::new([]),
    }
}

/// `<0x0A>` -> 0x0A.
fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    u8::from_str_radix(hex, 16).ok()
}

/// Undoes GPT-2's byte-to-character mapping. Characters outside the mapping are kept
/// as their UTF-8 (llama.cpp prints an `[UNK_BYTE_..]` marker instead).
fn byte_level_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match byte_level_char_to_byte(c) {
            Some(b) => out.push(b),
            None => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out
}

/// GPT-2's `bytes_to_unicode`, inverted: printable bytes stand for themselves, the
/// other 68 are shifted to U+0100.. in byte order.
fn byte_level_char_to_byte(c: char) -> Option<u8> {
    let printable =
        |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let cp = c as u32;
    if cp < 256 {
        return printable(cp).then_some(cp as u8);
    }
    let k = cp.checked_sub(256)?;
    (0u32..256)
        .filter(|&b| !printable(b))
        .nth(k as usize)
        .map(|b| b as u8)
}

/// llama.cpp's `clean_spaces` pass of `llama_detokenize`: " ?", " !", " .", " ," lose
/// their space, a lone " ' " its spaces, and " 's", " 'm", " 're", " 've" their space.
fn clean_spaces(text: &[u8]) -> Vec<u8> {
    let mut t = text.to_vec();
    // first pass: space before ?!.,
    let mut out = Vec::with_capacity(t.len());
    for (i, &x) in t.iter().enumerate() {
        if i > 0 && t[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            out.pop();
        }
        out.push(x);
    }
    t = out;
    // second pass: a single apostrophe between spaces
    let mut out = Vec::with_capacity(t.len());
    let mut i = 0;
    while i < t.len() {
        let x = t[i];
        if i > 0 && x == b'\'' && i + 1 < t.len() && t[i - 1] == b' ' && t[i + 1] == b' ' {
            out.pop();
            out.push(x);
            i += 2;
            continue;
        }
        out.push(x);
        i += 1;
    }
    t = out;
    // third pass: contractions
    let mut out = Vec::with_capacity(t.len());
    for i in 0..t.len() {
        let x = t[i];
        if i > 0 && t[i - 1] == b' ' && x == b'\'' && i + 1 < t.len() {
            let x1 = t[i + 1];
            let x2 = t.get(i + 2).copied();
            let drop = matches!(x1, b's' | b'm')
                || (i + 2 < t.len() && matches!((x1, x2), (b'r', Some(b'e')) | (b'v', Some(b'e'))));
            if drop {
                out.pop();
            }
        }
        out.push(x);
    }
    out
}

/// Typed access to GGUF metadata with errors that name the file and the key.
struct Metadata<'a> {
    map: &'a HashMap<String, Value>,
    path: &'a Path,
}

impl Metadata<'_> {
    fn bad(&self, reason: String) -> Error {
        Error::BadModelFile {
            path: self.path.to_path_buf(),
            reason,
        }
    }

    fn wrong_type(&self, key: &str, want: &str, got: &Value) -> Error {
        self.bad(format!(
            "`{key}` should be {want}, found {:?}",
            got.value_type()
        ))
    }

    fn req(&self, key: &str) -> Result<&Value> {
        self.map
            .get(key)
            .ok_or_else(|| self.bad(format!("missing metadata key `{key}`")))
    }

    fn req_str(&self, key: &str) -> Result<&str> {
        let v = self.req(key)?;
        v.to_string()
            .map(|s| s.as_str())
            .map_err(|_| self.wrong_type(key, "a string", v))
    }

    fn opt_str(&self, key: &str) -> Result<Option<&str>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(_) => self.req_str(key).map(Some),
        }
    }

    fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(v) => v
                .to_bool()
                .map(Some)
                .map_err(|_| self.wrong_type(key, "a bool", v)),
        }
    }

    /// A token id key; present but outside the vocabulary is an error.
    fn opt_token_id(&self, key: &str, n_tokens: usize) -> Result<Option<u32>> {
        let Some(v) = self.map.get(key) else {
            return Ok(None);
        };
        let id = value_as_i64(v).ok_or_else(|| self.wrong_type(key, "an integer", v))?;
        if id < 0 || id as usize >= n_tokens {
            return Err(self.bad(format!(
                "`{key}` = {id} is outside the vocabulary of {n_tokens} tokens"
            )));
        }
        Ok(Some(id as u32))
    }

    fn req_str_array(&self, key: &str) -> Result<Vec<String>> {
        let v = self.req(key)?;
        let items = v
            .to_vec()
            .map_err(|_| self.wrong_type(key, "an array", v))?;
        items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(self.wrong_type(key, "an array of strings", other)),
            })
            .collect()
    }

    fn opt_i32_array(&self, key: &str) -> Result<Option<Vec<i32>>> {
        let Some(v) = self.map.get(key) else {
            return Ok(None);
        };
        let items = v
            .to_vec()
            .map_err(|_| self.wrong_type(key, "an array", v))?;
        items
            .iter()
            .map(|item| {
                value_as_i64(item)
                    .and_then(|x| i32::try_from(x).ok())
                    .ok_or_else(|| self.wrong_type(key, "an array of integers", item))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// `tokenizer.ggml.scores`, required for SentencePiece vocabularies.
    fn scores(&self, n_tokens: usize) -> Result<Vec<f32>> {
        let v = self.req(KEY_SCORES)?;
        let items = v
            .to_vec()
            .map_err(|_| self.wrong_type(KEY_SCORES, "an array", v))?;
        if items.len() < n_tokens {
            return Err(self.bad(format!(
                "`{KEY_SCORES}` has {} entries for {n_tokens} tokens",
                items.len()
            )));
        }
        items[..n_tokens]
            .iter()
            .map(|item| match item {
                Value::F32(x) => Ok(*x),
                Value::F64(x) => Ok(*x as f32),
                other => value_as_i64(other)
                    .map(|x| x as f32)
                    .ok_or_else(|| self.wrong_type(KEY_SCORES, "an array of numbers", other)),
            })
            .collect()
    }

    /// `tokenizer.ggml.merges` as pairs. Like llama.cpp, a merge is split at its first
    /// space after the first byte and the first occurrence of a pair sets its rank.
    /// Merges whose parts or result are not tokens can never produce a token id and are
    /// left out.
    fn bpe_merges(&self, vocab: &Vocab) -> Result<Vec<(String, String)>> {
        let v = self.req(KEY_MERGES)?;
        let items = v
            .to_vec()
            .map_err(|_| self.wrong_type(KEY_MERGES, "an array", v))?;
        let mut seen: HashSet<(&str, &str)> = HashSet::with_capacity(items.len());
        let mut merges = Vec::with_capacity(items.len());
        for item in items {
            let Value::String(merge) = item else {
                return Err(self.wrong_type(KEY_MERGES, "an array of strings", item));
            };
            let space = merge
                .as_bytes()
                .iter()
                .skip(1)
                .position(|&b| b == b' ')
                .map(|p| p + 1)
                .ok_or_else(|| self.bad(format!("`{KEY_MERGES}` entry {merge:?} has no space")))?;
            let (left, right) = (&merge[..space], &merge[space + 1..]);
            if !seen.insert((left, right)) {
                continue;
            }
            if vocab.contains_key(left)
                && vocab.contains_key(right)
                && vocab.contains_key(&format!("{left}{right}"))
            {
                merges.push((left.to_string(), right.to_string()));
            }
        }
        Ok(merges)
    }
}

fn value_as_i64(v: &Value) -> Option<i64> {
    match *v {
        Value::U8(x) => Some(x.into()),
        Value::I8(x) => Some(x.into()),
        Value::U16(x) => Some(x.into()),
        Value::I16(x) => Some(x.into()),
        Value::U32(x) => Some(x.into()),
        Value::I32(x) => Some(x.into()),
        Value::U64(x) => i64::try_from(x).ok(),
        Value::I64(x) => Some(x),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_map_inverts_gpt2() {
        // 'Ġ' (U+0120) is the space, 'Ċ' (U+010A) the newline of GPT-2's byte map.
        assert_eq!(byte_level_decode("Ġhello"), b" hello");
        assert_eq!(byte_level_decode("Ċ"), b"\n");
        assert_eq!(byte_level_char_to_byte('!'), Some(b'!'));
        assert_eq!(byte_level_char_to_byte('\u{100}'), Some(0));
        assert_eq!(byte_level_char_to_byte('\u{143}'), Some(0xAD));
        assert_eq!(byte_level_char_to_byte('\u{144}'), None);
    }

    #[test]
    fn byte_tokens_parse() {
        assert_eq!(parse_byte_token("<0x0A>"), Some(b'\n'));
        assert_eq!(parse_byte_token("<0xff>"), Some(0xFF));
        assert_eq!(parse_byte_token("<0x0A"), None);
    }

    #[test]
    fn clean_spaces_matches_llama_cpp() {
        assert_eq!(clean_spaces(b"Hello , world !"), b"Hello, world!");
        assert_eq!(clean_spaces(b"it 's a ' b"), b"it's a'b");
        assert_eq!(clean_spaces(b"we 're , they 'll"), b"we're, they 'll");
    }
}
