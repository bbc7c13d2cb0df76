//! Building a [`GgufTokenizer`] from the `tokenizer.ggml.*` metadata of a GGUF file: the
//! token texts and types, the BPE merges or SentencePiece scores, the special-token ids
//! and the pre-tokenizer, read with errors that name the file and the key.

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
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use super::decode::token_piece;
use super::{GgufTokenizer, TokenType, VocabKind, SPM_SPACE};
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

impl GgufTokenizer {
    /// Builds the tokenizer from the `tokenizer.ggml.*` metadata of a GGUF file. `path`
    /// only names the file in errors.
    pub fn from_gguf(content: &Content, path: &Path) -> Result<GgufTokenizer> {
        let md = Metadata {
            map: &content.metadata,
            path,
        };
        let model = md.req_str(KEY_MODEL)?;
        let tokens = read_tokens(&md)?;
        let n = tokens.len();
        let mut token_types = read_token_types(&md, n)?;
        let vocab = read_vocab(&md, &tokens)?;
        force_control(&vocab, &mut token_types);
        let flavor = flavor(&md, model)?;
        let ids = special_ids(&md, n, &flavor)?;
        let (kind, pre) = (flavor.kind, flavor.pre);
        let end_of_turn = end_of_turn(&md, n, ids.eos, &vocab)?;
        let bpe = bpe_model(&md, &kind, &pre, vocab, &tokens, ids.unk)?;
        let mut tokenizer = Tokenizer::new(bpe);
        set_pipeline(&mut tokenizer, &kind, &pre)?;
        add_special_tokens(&mut tokenizer, &tokens, &token_types);

        let pieces = tokens
            .iter()
            .zip(&token_types)
            .map(|(text, &ty)| token_piece(text, ty, &kind))
            .collect();

        let specials = specials_longest_first(&tokens, &token_types);

        Ok(GgufTokenizer {
            tokenizer,
            bos: ids.bos,
            eos: ids.eos,
            add_bos: ids.add_bos,
            add_eos: ids.add_eos,
            end_of_turn,
            kind,
            pre,
            token_types,
            pieces,
            specials,
            clean_spaces: flavor.clean_spaces,
        })
    }
}

/// `tokenizer.ggml.tokens`, every empty token renamed.
fn read_tokens(md: &Metadata<'_>) -> Result<Vec<String>> {
    let mut tokens: Vec<String> = md.req_str_array(KEY_TOKENS)?;
    if tokens.is_empty() {
        return Err(md.bad(format!("`{KEY_TOKENS}` is empty")));
    }
    // llama.cpp renames empty tokens so that they can never match empty text.
    for (i, t) in tokens.iter_mut().enumerate() {
        if t.is_empty() {
            *t = format!("[EMPTY_{i}]");
        }
    }
    Ok(tokens)
}

/// `tokenizer.ggml.token_type` for the `n` tokens (all normal when the file has none).
fn read_token_types(md: &Metadata<'_>, n: usize) -> Result<Vec<TokenType>> {
    Ok(match md.opt_i32_array(KEY_TOKEN_TYPE)? {
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
    })
}

/// Each token's id by its text; a text twice is an error.
fn read_vocab(md: &Metadata<'_>, tokens: &[String]) -> Result<Vocab> {
    let n = tokens.len();
    // tokenizers' own map type (ahash): hashed faster than std's, and moved into the
    // BPE model at the end instead of copied.
    let mut vocab = Vocab::default();
    vocab.reserve(n);
    for (i, t) in tokens.iter().enumerate() {
        if vocab.insert(t.clone(), i as u32).is_some() {
            return Err(md.bad(format!("`{KEY_TOKENS}` holds {t:?} twice")));
        }
    }
    Ok(vocab)
}

/// Makes the end-of-turn and fill-in-the-middle tokens control tokens.
fn force_control(vocab: &Vocab, token_types: &mut [TokenType]) {
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
}

/// What the kind of vocabulary (`tokenizer.ggml.model`) decides: how text is tokenized,
/// the defaults for BOS and EOS, and llama.cpp's `clean_spaces` option.
struct Flavor {
    kind: VocabKind,
    /// llama.cpp's pre-tokenizer name (`default` for SentencePiece vocabularies).
    pre: String,
    /// Whether BOS is added when the file does not say.
    default_add_bos: bool,
    /// BOS when the file names none (if inside the vocabulary).
    default_bos: Option<u32>,
    /// EOS when the file names none (if inside the vocabulary).
    default_eos: Option<u32>,
    clean_spaces: bool,
}

/// The [`Flavor`] of a `gpt2` or `llama` vocabulary; others are unsupported.
fn flavor(md: &Metadata<'_>, model: &str) -> Result<Flavor> {
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
    Ok(Flavor {
        kind,
        pre,
        default_add_bos,
        default_bos,
        default_eos,
        clean_spaces,
    })
}

/// The special-token ids and whether encoding adds BOS and EOS.
struct SpecialIds {
    bos: Option<u32>,
    eos: Option<u32>,
    unk: Option<u32>,
    add_bos: bool,
    add_eos: bool,
}

/// The file's special-token ids, the vocabulary kind's defaults where it names none, and
/// whether BOS and EOS are added (an error when one is to be added but there is none).
fn special_ids(md: &Metadata<'_>, n: usize, flavor: &Flavor) -> Result<SpecialIds> {
    // llama.cpp's SentencePiece defaults (BOS 1, EOS 2) apply only inside the vocabulary.
    let in_vocab = |id: Option<u32>| id.filter(|&id| (id as usize) < n);
    let bos = md
        .opt_token_id(KEY_BOS, n)?
        .or(in_vocab(flavor.default_bos));
    let eos = md
        .opt_token_id(KEY_EOS, n)?
        .or(in_vocab(flavor.default_eos));
    let unk = md.opt_token_id(KEY_UNK, n)?;
    let _pad = md.opt_token_id(KEY_PAD, n)?;
    let add_bos = md.opt_bool(KEY_ADD_BOS)?.unwrap_or(flavor.default_add_bos);
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
    Ok(SpecialIds {
        bos,
        eos,
        unk,
        add_bos,
        add_eos,
    })
}

/// The tokens that end an assistant turn, sorted: EOS, the file's end-of-turn and
/// end-of-message tokens, and those of [`END_OF_TURN_TEXTS`] in the vocabulary.
fn end_of_turn(md: &Metadata<'_>, n: usize, eos: Option<u32>, vocab: &Vocab) -> Result<Vec<u32>> {
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
    Ok(end_of_turn)
}

/// The BPE model: the file's merges for a `gpt2` vocabulary, the merges of
/// [`spm_merges`] with byte fallback for a SentencePiece one.
fn bpe_model(
    md: &Metadata<'_>,
    kind: &VocabKind,
    pre: &str,
    vocab: Vocab,
    tokens: &[String],
    unk: Option<u32>,
) -> Result<BPE> {
    let n = tokens.len();
    let bpe = match kind {
        VocabKind::Bpe => {
            let merges = md.bpe_merges(&vocab)?;
            let ignore_merges = pre_tokenizer_regex(pre).is_some_and(|(_, _, ig)| ig);
            BPE::builder()
                .vocab_and_merges(vocab, merges)
                .ignore_merges(ignore_merges)
                .build()
        }
        VocabKind::Spm { .. } => {
            let scores = md.scores(n)?;
            let merges = spm_merges(tokens, &scores, &vocab);
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
    Ok(bpe)
}

/// The tokenizer's normalizer, pre-tokenizer and decoder for the kind of vocabulary:
/// the pre-tokenizer regex and byte-level mapping of a `gpt2` vocabulary, the `▁`
/// spaces and byte fallback of a SentencePiece one.
fn set_pipeline(tokenizer: &mut Tokenizer, kind: &VocabKind, pre: &str) -> Result<()> {
    match kind {
        VocabKind::Bpe => {
            let regex = pre_tokenizer_regex(pre)
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
    Ok(())
}

/// Registers the control, unknown and user-defined tokens with `tokenizer`.
fn add_special_tokens(tokenizer: &mut Tokenizer, tokens: &[String], token_types: &[TokenType]) {
    // Register the special tokens so that `tokenizer` alone knows them (decoding
    // with `skip_special_tokens`, `token_to_id`); their ids are the model's own.
    let added: Vec<AddedToken> = tokens
        .iter()
        .zip(token_types)
        .filter(|(_, t)| {
            matches!(
                t,
                TokenType::Control | TokenType::Unknown | TokenType::UserDefined
            )
        })
        .map(|(text, t)| AddedToken::from(text.clone(), t.is_special()).normalized(false))
        .collect();
    tokenizer.add_tokens(&added);
}

/// Control, unknown and user-defined tokens with their texts, longest text first (then
/// by id): the order in which llama.cpp cuts them out of the input.
fn specials_longest_first(tokens: &[String], token_types: &[TokenType]) -> Vec<(u32, String)> {
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
    specials
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

/// Typed access to GGUF metadata with errors that name the file and the key.
struct Metadata<'a> {
    map: &'a HashMap<String, Value>,
    path: &'a Path,
}

impl Metadata<'_> {
    fn bad(&self, reason: String) -> Error {
        Error::bad_file(self.path, reason)
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
