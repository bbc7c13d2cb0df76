//! SentencePiece's unigram encoder, reproduced exactly: its normalization (the compiled
//! charsmap, whitespace clean-up, `▁` for spaces) and its Viterbi search
//! (`EncodeOptimized` in `unigram_model.cc`).
//!
//! `tokenizers`' `Unigram` finds the same segmentation except on ties, which it breaks
//! differently: SentencePiece sums scores in f32, left to right, and keeps the first of
//! equal candidates, so `"000"` may come out as `00|0` there and `0|00` in `tokenizers`.
//! Marian's ids must equal MarianTokenizer's on every sentence, hence this copy.

use std::collections::HashMap;

use tokenizers::normalizers::precompiled::Precompiled;
use tokenizers::{NormalizedString, Normalizer};

use super::spm::{PieceType, SentencePieceModel};

/// SentencePiece's penalty below the lowest piece score for an unknown character.
const UNK_PENALTY: f32 = 10.0;

/// A SentencePiece unigram model ready to encode text into piece strings.
#[derive(Debug, Clone)]
pub struct SpmUnigram {
    /// Matchable pieces: text -> (score, user-defined).
    pieces: HashMap<String, (f32, bool)>,
    max_piece_len: usize,
    max_score: f32,
    unk_score: f32,
    charsmap: Option<Precompiled>,
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
    escape_whitespaces: bool,
}

/// A piece of the output: its text, and whether it is unknown to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpmPiece {
    /// The piece text (for unknown pieces, the surface characters).
    pub text: String,
    /// The model has no such piece.
    pub unknown: bool,
}

impl SpmUnigram {
    /// Builds the encoder; `Err` carries the reason the charsmap is unusable.
    pub fn new(model: &SentencePieceModel) -> Result<Self, String> {
        let mut pieces = HashMap::new();
        let mut max_score = f32::NEG_INFINITY;
        let mut min_score = f32::INFINITY;
        for p in &model.pieces {
            // Only normal and user-defined pieces are in SentencePiece's trie; unknown,
            // control and byte pieces are reached otherwise, unused ones never.
            match p.kind {
                PieceType::Normal => {
                    max_score = max_score.max(p.score);
                    min_score = min_score.min(p.score);
                    pieces.insert(p.piece.clone(), (p.score, false));
                }
                PieceType::UserDefined => {
                    pieces.insert(p.piece.clone(), (0.0, true));
                }
                _ => {}
            }
        }
        let charsmap = if model.precompiled_charsmap.is_empty() {
            None
        } else {
            Some(
                Precompiled::from(&model.precompiled_charsmap)
                    .map_err(|e| format!("precompiled charsmap: {e}"))?,
            )
        };
        Ok(SpmUnigram {
            max_piece_len: pieces.keys().map(String::len).max().unwrap_or(0),
            pieces,
            max_score: if max_score.is_finite() {
                max_score
            } else {
                0.0
            },
            unk_score: if min_score.is_finite() {
                min_score - UNK_PENALTY
            } else {
                -UNK_PENALTY
            },
            charsmap,
            add_dummy_prefix: model.add_dummy_prefix,
            remove_extra_whitespaces: model.remove_extra_whitespaces,
            escape_whitespaces: model.escape_whitespaces,
        })
    }

    /// SentencePiece's normalization of `text`.
    pub fn normalize(&self, text: &str) -> tokenizers::Result<String> {
        let mut n = NormalizedString::from(text);
        if let Some(map) = &self.charsmap {
            map.normalize(&mut n)?;
        }
        let mut s = n.get().to_string();
        if self.remove_extra_whitespaces {
            s = s
                .split(' ')
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
        }
        if s.is_empty() {
            return Ok(s);
        }
        if self.add_dummy_prefix {
            s.insert(0, ' ');
        }
        if self.escape_whitespaces {
            s = s.replace(' ', "\u{2581}");
        }
        Ok(s)
    }

    /// Pieces of `text`, as `SentencePieceProcessor.encode(text, out_type=str)` gives them.
    pub fn encode(&self, text: &str) -> tokenizers::Result<Vec<SpmPiece>> {
        let s = self.normalize(text)?;
        Ok(self.viterbi(&s))
    }

    fn viterbi(&self, s: &str) -> Vec<SpmPiece> {
        #[derive(Clone, Copy)]
        struct Best {
            score: f32,
            start: usize,
            unknown: bool,
            set: bool,
        }
        let len = s.len();
        let mut best = vec![
            Best {
                score: 0.0,
                start: 0,
                unknown: false,
                set: false,
            };
            len + 1
        ];
        best[0].set = true;
        let bounds: Vec<usize> = s.char_indices().map(|(i, _)| i).chain([len]).collect();
        for (bi, &start) in bounds.iter().enumerate().take(bounds.len() - 1) {
            let base = best[start].score;
            let one_char_end = bounds[bi + 1];
            let mut has_single = false;
            for &end in &bounds[bi + 1..] {
                if end - start > self.max_piece_len {
                    break;
                }
                let Some(&(score, user)) = self.pieces.get(&s[start..end]) else {
                    continue;
                };
                let score = if user {
                    (end - start) as f32 * self.max_score - 0.1
                } else {
                    score
                };
                let cand = score + base;
                let target = &mut best[end];
                if !target.set || cand > target.score {
                    *target = Best {
                        score: cand,
                        start,
                        unknown: false,
                        set: true,
                    };
                }
                if end == one_char_end {
                    has_single = true;
                }
            }
            if !has_single {
                let cand = self.unk_score + base;
                let target = &mut best[one_char_end];
                if !target.set || cand > target.score {
                    *target = Best {
                        score: cand,
                        start,
                        unknown: true,
                        set: true,
                    };
                }
            }
        }
        let mut out: Vec<SpmPiece> = Vec::new();
        let mut end = len;
        while end > 0 {
            let node = best[end];
            out.push(SpmPiece {
                text: s[node.start..end].to_string(),
                unknown: node.unknown,
            });
            end = node.start;
        }
        out.reverse();
        // Consecutive unknown characters come out as one unknown piece.
        let mut merged: Vec<SpmPiece> = Vec::with_capacity(out.len());
        for p in out {
            match merged.last_mut() {
                Some(last) if last.unknown && p.unknown => last.text.push_str(&p.text),
                _ => merged.push(p),
            }
        }
        merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spm::{ModelType, Piece};

    fn model(pieces: &[(&str, f32)]) -> SentencePieceModel {
        let mut all = vec![Piece {
            piece: "<unk>".into(),
            score: 0.0,
            kind: PieceType::Unknown,
        }];
        all.extend(pieces.iter().map(|&(p, s)| Piece {
            piece: p.into(),
            score: s,
            kind: PieceType::Normal,
        }));
        SentencePieceModel {
            pieces: all,
            model_type: ModelType::Unigram,
            byte_fallback: false,
            normalizer_name: "identity".into(),
            precompiled_charsmap: Vec::new(),
            add_dummy_prefix: true,
            remove_extra_whitespaces: true,
            escape_whitespaces: true,
        }
    }

    fn texts(p: Vec<SpmPiece>) -> Vec<String> {
        p.into_iter().map(|p| p.text).collect()
    }

    #[test]
    fn picks_the_best_path_and_fuses_unknowns() {
        let m = SpmUnigram::new(&model(&[
            ("\u{2581}", -1.0),
            ("a", -2.0),
            ("b", -2.0),
            ("ab", -3.0),
            ("\u{2581}ab", -3.5),
        ]))
        .unwrap();
        assert_eq!(texts(m.encode("  ab  ab ").unwrap()), ["▁ab", "▁ab"]);
        let p = m.encode("aXYb").unwrap();
        assert_eq!(texts(p.clone()), ["▁", "a", "XY", "b"]);
        assert!(p[2].unknown && !p[1].unknown);
        assert!(m.encode("   ").unwrap().is_empty());
    }

    #[test]
    fn ties_go_to_the_first_candidate_found() {
        // "000": 0|00 and 00|0 score the same; the path through the earlier start wins
        // for the end node, as in SentencePiece.
        let m = SpmUnigram::new(&model(&[("\u{2581}", -1.0), ("0", -2.0), ("00", -3.0)])).unwrap();
        let got = texts(m.encode("000").unwrap());
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], "▁");
    }
}
