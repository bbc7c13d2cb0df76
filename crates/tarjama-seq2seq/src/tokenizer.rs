//! Tokenizers of encoder-decoder checkpoints: Marian's (two SentencePiece models plus a
//! joint `vocab.json`, rebuilt here without Python) and NLLB/M2M100's (`tokenizer.json`
//! plus language-code tokens).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tokenizers::Tokenizer;

use super::config::read_json;
use super::error::{Error, Result};
use super::spm::{ModelType, SentencePieceModel};
use super::unigram::SpmUnigram;

/// A tokenizer of an encoder-decoder checkpoint.
#[derive(Debug, Clone)]
pub enum Seq2SeqTokenizer {
    /// Marian / OPUS-MT.
    Marian(Box<MarianTokenizer>),
    /// NLLB / M2M100 (`tokenizer.json`).
    Nllb(Box<NllbTokenizer>),
}

impl Seq2SeqTokenizer {
    /// Token ids of one source sentence, special tokens included, as the reference
    /// tokenizer gives them. `src_lang` overrides the NLLB source language.
    pub fn encode(&self, text: &str, src_lang: Option<&str>) -> Result<Vec<u32>> {
        match self {
            Seq2SeqTokenizer::Marian(t) => t.encode(text),
            Seq2SeqTokenizer::Nllb(t) => t.encode(text, src_lang),
        }
    }

    /// Text of generated ids, special tokens skipped (`batch_decode(skip_special_tokens=True)`).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        match self {
            Seq2SeqTokenizer::Marian(t) => Ok(t.decode(ids)),
            Seq2SeqTokenizer::Nllb(t) => t.decode(ids),
        }
    }

    /// Target-side token ids of a piece of English as it reads inside a sentence, after a
    /// space (no special tokens): what the decoder must write to put it in the output.
    pub fn encode_target(&self, text: &str) -> Result<Vec<u32>> {
        match self {
            Seq2SeqTokenizer::Marian(t) => t.encode_target(text),
            Seq2SeqTokenizer::Nllb(t) => t.encode_target(text),
        }
    }

    /// Id of a token (e.g. a language code), if the vocabulary has it.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        match self {
            Seq2SeqTokenizer::Marian(t) => t.vocab.get(token).copied(),
            Seq2SeqTokenizer::Nllb(t) => t.tokenizer.token_to_id(token),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct MarianTokenizerConfig {
    #[serde(default)]
    separate_vocabs: bool,
    #[serde(default)]
    unk_token: Option<String>,
    #[serde(default)]
    eos_token: Option<String>,
    #[serde(default)]
    pad_token: Option<String>,
}

/// Marian's tokenizer (`MarianTokenizer`): the source SentencePiece model cuts the text
/// into pieces (see [`SpmUnigram`]), and each piece's *text* is looked up in `vocab.json` (unknown pieces map to
/// `<unk>`), then `</s>` is appended. The lookup goes by text, not by SentencePiece id,
/// because the joint vocabulary is ordered differently from either `.spm`.
#[derive(Debug, Clone)]
pub struct MarianTokenizer {
    pieces: SpmUnigram,
    /// `target.spm`, when the checkpoint has it (to write glossary terms as the decoder
    /// would).
    target_pieces: Option<SpmUnigram>,
    target_vocab: HashMap<String, u32>,
    vocab: HashMap<String, u32>,
    id_to_piece: HashMap<u32, String>,
    special: HashSet<u32>,
    unk_id: u32,
    eos_id: u32,
}

impl MarianTokenizer {
    /// Loads `source.spm`, `vocab.json` (and `target_vocab.json` with separate
    /// vocabularies) from a model directory.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let config: MarianTokenizerConfig = match existing(dir, "tokenizer_config.json") {
            Some(path) => read_json(&path)?,
            None => MarianTokenizerConfig::default(),
        };
        let spm_path = require(dir, "source.spm")?;
        let vocab_path = require(dir, "vocab.json")?;
        let spm = SentencePieceModel::from_file(&spm_path)?;
        let vocab: HashMap<String, u32> = read_json(&vocab_path)?;
        let target_vocab: HashMap<String, u32> = if config.separate_vocabs {
            read_json(&require(dir, "target_vocab.json")?)?
        } else {
            vocab.clone()
        };
        let lookup = |token: Option<&String>, default: &str| -> Result<u32> {
            let token = token.map(String::as_str).unwrap_or(default);
            vocab
                .get(token)
                .copied()
                .ok_or_else(|| Error::UnknownToken {
                    path: vocab_path.clone(),
                    token: token.to_string(),
                })
        };
        let unk_id = lookup(config.unk_token.as_ref(), "<unk>")?;
        let eos_id = lookup(config.eos_token.as_ref(), "</s>")?;
        let pad_id = lookup(config.pad_token.as_ref(), "<pad>")?;
        if spm.model_type != ModelType::Unigram {
            return Err(Error::BadSentencePiece {
                path: spm_path,
                reason: format!(
                    "model type {:?} (Marian uses unigram models)",
                    spm.model_type
                ),
            });
        }
        let pieces = SpmUnigram::new(&spm).map_err(|reason| Error::BadSentencePiece {
            path: spm_path.clone(),
            reason,
        })?;
        let target_pieces = match existing(dir, "target.spm") {
            Some(path) => {
                let spm = SentencePieceModel::from_file(&path)?;
                Some(
                    SpmUnigram::new(&spm)
                        .map_err(|reason| Error::BadSentencePiece { path, reason })?,
                )
            }
            None => None,
        };
        Ok(MarianTokenizer {
            pieces,
            target_pieces,
            id_to_piece: target_vocab.iter().map(|(k, &v)| (v, k.clone())).collect(),
            target_vocab,
            vocab,
            special: [unk_id, eos_id, pad_id].into_iter().collect(),
            unk_id,
            eos_id,
        })
    }

    /// Token ids of a sentence, `</s>` appended.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        // A leading `>>xx<<` target-language code (multilingual OPUS-MT) is a token of its
        // own, kept out of SentencePiece, as MarianTokenizer.remove_language_code does.
        let (code, text) = match (text.strip_prefix(">>"), text.find("<<")) {
            (Some(_), Some(end)) => (Some(&text[..end + 2]), &text[end + 2..]),
            _ => (None, text),
        };
        let pieces = self
            .pieces
            .encode(text)
            .map_err(|source| Error::Tokenizer {
                context: "source.spm".into(),
                source,
            })?;
        let mut ids = Vec::with_capacity(pieces.len() + 2);
        ids.extend(code.map(|c| self.vocab.get(c).copied().unwrap_or(self.unk_id)));
        // By text, unknown pieces included: a piece SentencePiece does not know may still
        // be in the joint vocabulary (from the target side), and MarianTokenizer maps it.
        ids.extend(
            pieces
                .iter()
                .map(|p| self.vocab.get(&p.text).copied().unwrap_or(self.unk_id)),
        );
        ids.push(self.eos_id);
        Ok(ids)
    }

    /// Target ids of `text` (`target.spm` pieces looked up in the target vocabulary),
    /// as the decoder writes it after a space. Fails when the checkpoint has no
    /// `target.spm` or a piece is not in the target vocabulary.
    pub fn encode_target(&self, text: &str) -> Result<Vec<u32>> {
        let Some(spm) = &self.target_pieces else {
            return Err(Error::BadOptions(
                "the model has no target.spm to write target text with".into(),
            ));
        };
        let pieces = spm.encode(text).map_err(|source| Error::Tokenizer {
            context: "target.spm".into(),
            source,
        })?;
        pieces
            .iter()
            .map(|p| {
                self.target_vocab.get(&p.text).copied().ok_or_else(|| {
                    Error::BadOptions(format!(
                        "\"{text}\": the piece \"{}\" is not in the target vocabulary",
                        p.text
                    ))
                })
            })
            .collect()
    }

    /// Text of target ids, special tokens (`</s>`, `<unk>`, `<pad>`) skipped.
    ///
    /// MarianTokenizer hands the pieces to SentencePiece's `decode_pieces` and then replaces
    /// `▁` by spaces and strips; for pieces that are not control or unknown symbols (those
    /// are skipped here already) that is the plain concatenation, which is what this does.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut out = String::new();
        for id in ids {
            if self.special.contains(id) {
                continue;
            }
            if let Some(piece) = self.id_to_piece.get(id) {
                out.push_str(piece);
            }
        }
        out.replace('\u{2581}', " ").trim().to_string()
    }
}

#[derive(Debug, Default, Deserialize)]
struct NllbTokenizerConfig {
    #[serde(default)]
    src_lang: Option<String>,
    #[serde(default)]
    legacy_behaviour: bool,
    #[serde(default)]
    eos_token: Option<String>,
}

/// NLLB / M2M100's tokenizer: `tokenizer.json` for the pieces, and the source language
/// code placed as NllbTokenizer does — `[lang] pieces </s>`, or with
/// `legacy_behaviour` `pieces </s> [lang]`.
#[derive(Debug, Clone)]
pub struct NllbTokenizer {
    tokenizer: Tokenizer,
    path: PathBuf,
    src_lang: Option<String>,
    legacy_behaviour: bool,
    eos_id: u32,
}

impl NllbTokenizer {
    /// Loads `tokenizer.json` and `tokenizer_config.json` from a model directory.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = require(dir, "tokenizer.json")?;
        let tokenizer = Tokenizer::from_file(&path).map_err(|source| Error::Tokenizer {
            context: path.display().to_string(),
            source,
        })?;
        let config: NllbTokenizerConfig = match existing(dir, "tokenizer_config.json") {
            Some(p) => read_json(&p)?,
            None => NllbTokenizerConfig::default(),
        };
        let eos = config.eos_token.as_deref().unwrap_or("</s>");
        let eos_id = tokenizer
            .token_to_id(eos)
            .ok_or_else(|| Error::UnknownToken {
                path: path.clone(),
                token: eos.into(),
            })?;
        Ok(NllbTokenizer {
            tokenizer,
            path,
            src_lang: config.src_lang,
            legacy_behaviour: config.legacy_behaviour,
            eos_id,
        })
    }

    /// Token ids of a sentence with its language code and `</s>`.
    pub fn encode(&self, text: &str, src_lang: Option<&str>) -> Result<Vec<u32>> {
        let pieces = self.encode_target(text)?;
        let lang = match src_lang.or(self.src_lang.as_deref()) {
            Some(lang) => Some(self.lang_id(lang)?),
            None => None,
        };
        let mut ids = Vec::with_capacity(pieces.len() + 2);
        if !self.legacy_behaviour {
            ids.extend(lang);
        }
        ids.extend(pieces);
        ids.push(self.eos_id);
        if self.legacy_behaviour {
            ids.extend(lang);
        }
        Ok(ids)
    }

    /// Ids of `text` as it reads after a space, no language code or `</s>` (the pieces
    /// of a source sentence, and of a target term: the vocabulary is shared).
    pub fn encode_target(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|source| Error::Tokenizer {
                context: self.path.display().to_string(),
                source,
            })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Id of a language code such as `eng_Latn`.
    pub fn lang_id(&self, lang: &str) -> Result<u32> {
        self.tokenizer
            .token_to_id(lang)
            .ok_or_else(|| Error::UnknownToken {
                path: self.path.clone(),
                token: lang.into(),
            })
    }

    /// Text of ids, special tokens skipped.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|source| Error::Tokenizer {
                context: self.path.display().to_string(),
                source,
            })
    }
}

pub(crate) fn existing(dir: &Path, file: &str) -> Option<PathBuf> {
    let path = dir.join(file);
    path.is_file().then_some(path)
}

pub(crate) fn require(dir: &Path, file: &str) -> Result<PathBuf> {
    existing(dir, file).ok_or_else(|| Error::MissingFile {
        dir: dir.to_path_buf(),
        file: file.into(),
    })
}
