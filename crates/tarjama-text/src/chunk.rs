//! Groups sentences into chunks under a token budget, for models with a bounded input.
//!
//! The budget is counted by a length function the caller passes (a tokenizer's token
//! count, or characters), so this crate stays tokenizer-agnostic. Sentences are never
//! split unless one alone is over the budget; such a sentence is cut after clause
//! punctuation (`،` `؛` `,` `;`), and a clause still over the budget between words.
//! A single word over the budget becomes a piece of its own: it cannot be cut without
//! changing it.
//!
//! The grouping rule itself is [`group`]: items go into a group in order while it has
//! room and they fit, and an item that does not fit alone is a group of its own. The
//! pipelines group whole sentences into requests with it ([`group_by_cost`], with token
//! counts); [`chunk`] groups the pieces of sentences with it, measuring the joined text.

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
    let mut pieces: Vec<Piece<'a>> = Vec::new();
    for (index, sentence) in sentences.iter().enumerate() {
        let whole = Piece {
            span: sentence.span.clone(),
            text: sentence.text,
            sentence: index,
        };
        if len(sentence.text) <= budget {
            pieces.push(whole);
        } else {
            pieces.extend(split_long(&whole, budget, &len));
        }
    }
    group(pieces.len(), usize::MAX, |r| {
        len(&joined(&pieces[r])) <= budget
    })
    .into_iter()
    .map(|r| make_chunk(pieces[r].to_vec()))
    .collect()
}

/// Cuts the items `0..n` into runs of consecutive items, in order, greedily: a run takes
/// the next item while it holds fewer than `max_items` and `fits` says the run with that
/// item still fits. A run's first item is never measured alone, so an item that does not
/// fit by itself is a run of its own rather than dropped or cut.
///
/// `fits` is asked about ranges of two items or more, each the last accepted range
/// grown by one item. `max_items` 0 counts as 1. No items, no runs.
pub fn group(
    n: usize,
    max_items: usize,
    mut fits: impl FnMut(Range<usize>) -> bool,
) -> Vec<Range<usize>> {
    let mut groups = Vec::new();
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && end - start < max_items && fits(start..end + 1) {
            end += 1;
        }
        groups.push(start..end);
        start = end;
    }
    groups
}

/// [`group`] with a cost per item that adds up: a run fits while the sum of its items'
/// `costs` is at most `budget` (a run that hits the budget exactly fits).
///
/// The caller puts whatever a run costs beyond its items into the costs (a separator
/// between items: one more per item).
pub fn group_by_cost(costs: &[usize], budget: usize, max_items: usize) -> Vec<Range<usize>> {
    group(costs.len(), max_items, |r| {
        costs[r].iter().sum::<usize>() <= budget
    })
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
// Runs are compared as lists of ranges; a list of one range is meant.
#[allow(clippy::single_range_in_vec_init)]
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

    #[test]
    fn a_run_that_hits_the_budget_exactly_fits() {
        assert_eq!(group_by_cost(&[3, 4, 3, 5], 7, 10), [0..2, 2..3, 3..4]);
        assert_eq!(group_by_cost(&[7, 1], 7, 10), [0..1, 1..2]);
        assert_eq!(group_by_cost(&[2, 2, 3], 7, 10), [0..3]);
    }

    #[test]
    fn an_item_over_the_budget_is_a_run_of_its_own() {
        assert_eq!(group_by_cost(&[2, 10, 2, 2], 5, 10), [0..1, 1..2, 2..4]);
        assert_eq!(group_by_cost(&[10, 1, 1], 5, 10), [0..1, 1..3]);
        assert_eq!(group_by_cost(&[1, 1, 10], 5, 10), [0..2, 2..3]);
    }

    #[test]
    fn a_run_closes_at_max_items() {
        assert_eq!(group_by_cost(&[1; 5], 100, 2), [0..2, 2..4, 4..5]);
        assert_eq!(group_by_cost(&[1; 3], 100, 1), [0..1, 1..2, 2..3]);
        assert_eq!(group_by_cost(&[1; 3], 100, 0), [0..1, 1..2, 2..3]);
        // Whichever comes first closes the run: here the budget, then the count.
        assert_eq!(group_by_cost(&[3, 3, 1, 1, 1, 1], 6, 3), [0..2, 2..5, 5..6]);
    }

    #[test]
    fn no_items_no_runs() {
        assert!(group_by_cost(&[], 5, 3).is_empty());
        assert!(group(0, 3, |_| true).is_empty());
    }

    #[test]
    fn fits_is_asked_about_growing_ranges_only() {
        let mut asked = Vec::new();
        let runs = group(4, usize::MAX, |r| {
            asked.push(r.clone());
            r.end != 3
        });
        assert_eq!(runs, [0..2, 2..4]);
        assert_eq!(asked, [0..2, 0..3, 2..4]);
    }
}
