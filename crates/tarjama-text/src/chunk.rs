//! Groups sentences into chunks under a token budget, for models with a bounded input.
//!
//! The budget is counted by a length function the caller passes (a tokenizer's token
//! count, or characters), so this crate stays tokenizer-agnostic. Sentences are never
//! split unless one alone is over the budget; such a sentence is cut after clause
//! punctuation (`،` `؛` `,` `;`), and a clause still over the budget between words.
//! A single word over the budget becomes a piece of its own: it cannot be cut without
//! changing it.

use std::ops::Range;

use crate::Sentence;

/// A run of consecutive sentences (or pieces of one long sentence) that fits the budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk<'a> {
    /// Byte span from the first piece's start to the last piece's end, in the same
    /// coordinates as the sentences' spans.
    pub span: Range<usize>,
    /// The pieces, in order: whole sentences, or the parts of one sentence.
    pub pieces: Vec<Piece<'a>>,
}

/// A sentence, or part of one, inside a [`Chunk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece<'a> {
    /// Byte span, in the same coordinates as the sentences' spans.
    pub span: Range<usize>,
    /// The text of the piece.
    pub text: &'a str,
    /// Index of the sentence it comes from in the slice given to [`chunk`].
    pub sentence: usize,
}

impl Chunk<'_> {
    /// The chunk's text: its pieces joined by one space, the form a model is given.
    pub fn text(&self) -> String {
        let texts: Vec<&str> = self.pieces.iter().map(|p| p.text).collect();
        texts.join(" ")
    }
}

/// Groups `sentences` into chunks whose [`Chunk::text`] measures at most `budget` by
/// `len` (a single word longer than the budget is the only exception).
///
/// `len` is called on the growing chunk text after each sentence, since token counts
/// are not additive across a join; a call costs up to one chunk's length, which is
/// small for the budgets models take (hundreds of tokens).
///
/// Chunks never cross the slice given: pass one [`crate::Paragraph`]'s sentences to
/// keep chunks inside paragraphs, or all of them to let chunks run across.
pub fn chunk<'a>(
    sentences: &[Sentence<'a>],
    budget: usize,
    len: impl Fn(&str) -> usize,
) -> Vec<Chunk<'a>> {
    let mut chunks = Vec::new();
    let mut current: Vec<Piece<'a>> = Vec::new();
    for (index, sentence) in sentences.iter().enumerate() {
        let whole = Piece {
            span: sentence.span.clone(),
            text: sentence.text,
            sentence: index,
        };
        let pieces = if len(sentence.text) <= budget {
            vec![whole]
        } else {
            split_long(&whole, budget, &len)
        };
        for piece in pieces {
            current.push(piece);
            if current.len() > 1 && len(&joined(&current)) > budget {
                let piece = current.pop().expect("just pushed");
                chunks.push(make_chunk(std::mem::take(&mut current)));
                current.push(piece);
            }
        }
    }
    if !current.is_empty() {
        chunks.push(make_chunk(current));
    }
    chunks
}

fn joined(pieces: &[Piece<'_>]) -> String {
    let texts: Vec<&str> = pieces.iter().map(|p| p.text).collect();
    texts.join(" ")
}

fn make_chunk(pieces: Vec<Piece<'_>>) -> Chunk<'_> {
    let span = pieces[0].span.start..pieces[pieces.len() - 1].span.end;
    Chunk { span, pieces }
}

/// Cuts a sentence over the budget into pieces: clauses first, then words, each run
/// grouped back greedily up to the budget.
fn split_long<'a>(
    sentence: &Piece<'a>,
    budget: usize,
    len: &impl Fn(&str) -> usize,
) -> Vec<Piece<'a>> {
    let mut pieces = Vec::new();
    for clause in cut(sentence, |c| matches!(c, '،' | '؛' | ',' | ';')) {
        if len(clause.text) <= budget {
            pieces.push(clause);
        } else {
            pieces.extend(cut(&clause, char::is_whitespace));
        }
    }
    // Glue neighbours back together while they fit: the model gets the longest
    // pieces the budget allows, and each glued piece is a contiguous slice.
    let mut merged: Vec<Piece<'a>> = Vec::new();
    for piece in pieces {
        if let Some(last) = merged.last_mut() {
            let start = last.span.start - sentence.span.start;
            let end = piece.span.end - sentence.span.start;
            let candidate = &sentence.text[start..end];
            if len(candidate) <= budget {
                last.span.end = piece.span.end;
                last.text = candidate;
                continue;
            }
        }
        merged.push(piece);
    }
    merged
}

/// Cuts `piece` after every character matching `at` (the character stays on the left),
/// trimming whitespace around each part.
fn cut<'a>(piece: &Piece<'a>, at: impl Fn(char) -> bool) -> Vec<Piece<'a>> {
    let mut parts = Vec::new();
    let mut start = 0;
    let text = piece.text;
    let mut push = |from: usize, to: usize| {
        let part = &text[from..to];
        let trimmed = part.trim_start();
        let from = from + (part.len() - trimmed.len());
        let to = from + trimmed.trim_end().len();
        if from < to {
            parts.push(Piece {
                span: piece.span.start + from..piece.span.start + to,
                text: &text[from..to],
                sentence: piece.sentence,
            });
        }
    };
    for (i, c) in text.char_indices() {
        if at(c) {
            let end = i + c.len_utf8();
            push(start, end);
            start = end;
        }
    }
    push(start, text.len());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::split;

    fn chars(s: &str) -> usize {
        s.chars().count()
    }

    #[test]
    fn sentences_are_grouped_under_the_budget() {
        let text = "جملة أولى. جملة ثانية. جملة ثالثة.";
        let sentences = &split(text)[0].sentences;
        let chunks = chunk(sentences, 25, chars);
        let texts: Vec<String> = chunks.iter().map(Chunk::text).collect();
        assert_eq!(texts, ["جملة أولى. جملة ثانية.", "جملة ثالثة."]);
        assert_eq!(&text[chunks[1].span.clone()], "جملة ثالثة.");
        assert!(chunks.iter().all(|c| chars(&c.text()) <= 25));
    }

    #[test]
    fn a_sentence_that_fits_is_never_split() {
        let text = "قصيرة. هذه جملة أطول قليلاً، فيها فاصلة.";
        let sentences = &split(text)[0].sentences;
        let chunks = chunk(sentences, 35, chars);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[1].pieces.len(), 1);
        assert_eq!(chunks[1].pieces[0].text, sentences[1].text);
    }

    #[test]
    fn a_long_sentence_is_cut_at_clauses_then_words() {
        let text =
            "قال المتحدث، في بيان طويل جداً عن المفاوضات الجارية بين الطرفين، إن الاجتماع مثمر.";
        let sentences = &split(text)[0].sentences;
        let chunks = chunk(sentences, 20, chars);
        let texts: Vec<String> = chunks.iter().map(Chunk::text).collect();
        assert_eq!(
            texts,
            [
                "قال المتحدث، في بيان",
                "طويل جداً عن",
                "المفاوضات الجارية",
                "بين الطرفين،",
                "إن الاجتماع مثمر."
            ]
        );
        for piece in chunks.iter().flat_map(|c| &c.pieces) {
            assert_eq!(&text[piece.span.clone()], piece.text);
            assert_eq!(piece.sentence, 0);
        }
    }

    #[test]
    fn a_word_over_the_budget_stands_alone() {
        let text = "كلمةطويلةجداجدا قصيرة";
        let sentences = &split(text)[0].sentences;
        let texts: Vec<String> = chunk(sentences, 5, chars).iter().map(Chunk::text).collect();
        assert_eq!(texts, ["كلمةطويلةجداجدا", "قصيرة"]);
    }

    #[test]
    fn no_sentences_no_chunks() {
        assert!(chunk(&[], 10, chars).is_empty());
    }
}
