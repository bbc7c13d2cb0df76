//! Property tests: splitting loses nothing and keeps exact spans, normalization is
//! idempotent, pieces normalize like the whole, nothing panics, on arbitrary Unicode
//! and on Arabic-heavy text built from the characters that trip the rules up.
//!
//! `PROPTEST_CASES=200000 cargo test -p tarjama-text --test properties` for a long run.

use proptest::prelude::*;
use tarjama_text::input::{decode, ReadOptions};
use tarjama_text::{chunk, split, split_at, Block, Blocks, Normalizer, Position, Profile, Step};

/// Pieces of Arabic news text and of what breaks it: marks, invisible characters,
/// odd whitespace, terminators, abbreviations, numbers, URLs, emails.
const POOL: &[&str] = &[
    "ا",
    "ب",
    "ت",
    "ة",
    "ج",
    "د",
    "س",
    "ق",
    "ل",
    "م",
    "ن",
    "ه",
    "و",
    "ي",
    "ى",
    "أ",
    "إ",
    "آ",
    "ٱ",
    "ئ",
    "ؤ",
    "ء",
    "ی",
    "قال",
    "الرئيس",
    "ترمب",
    " ",
    " ",
    " ",
    " ",
    "\u{00A0}",
    "\t",
    "\u{2009}",
    "\n",
    "\n\n",
    "\r\n",
    "\r",
    "\u{2028}",
    "\u{2029}",
    "\u{0085}",
    ".",
    ".",
    "!",
    "?",
    "؟",
    "…",
    "...",
    "..",
    "،",
    "؛",
    ",",
    ":",
    "\"",
    "«",
    "»",
    "“",
    "”",
    "(",
    ")",
    "'",
    "\u{064B}",
    "\u{064E}",
    "\u{0650}",
    "\u{0651}",
    "\u{0652}",
    "\u{0653}",
    "\u{0654}",
    "\u{0655}",
    "\u{0670}",
    "\u{0610}",
    "\u{0301}",
    "e",
    "\u{0640}",
    "\u{200B}",
    "\u{200C}",
    "\u{200D}",
    "\u{200E}",
    "\u{200F}",
    "\u{061C}",
    "\u{202B}",
    "\u{2067}",
    "\u{2069}",
    "\u{FEFF}",
    "\u{00AD}",
    "٠",
    "١",
    "٣",
    "٩",
    "۴",
    "٫",
    "٬",
    "0",
    "3",
    "5",
    "د.",
    "أ.",
    "دي.",
    "كي.",
    "U.S.",
    "Dr.",
    "J.",
    "e.g.",
    "A",
    "The",
    "said",
    "http://",
    "https://",
    "www.",
    "example.com",
    "/",
    "@",
    "news",
    ".net",
    "👨",
    "\u{1F469}",
    "م",
    "2020",
];

fn arabic_heavy() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(POOL), 0..120).prop_map(|parts| parts.concat())
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![arabic_heavy(), any::<String>(), "[\\PC\\s]{0,80}"]
}

fn without_whitespace(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

fn normalizers() -> Vec<Normalizer> {
    let mut all = vec![
        Normalizer::new(Profile::Mt),
        Normalizer::new(Profile::Search),
        Normalizer::new(Profile::Search).with_step(Step::Digits),
        Normalizer::new(Profile::Mt).with_step(Step::Digits),
    ];
    all.extend(Step::ALL.into_iter().map(|s| Normalizer::from_steps([s])));
    all
}

fn check_split(text: &str) -> Result<(), TestCaseError> {
    let paragraphs = split(text);
    let mut joined = String::new();
    let mut last_end = 0;
    for p in &paragraphs {
        prop_assert!(!p.sentences.is_empty());
        prop_assert_eq!(p.span.start, p.sentences[0].span.start);
        prop_assert_eq!(p.span.end, p.sentences[p.sentences.len() - 1].span.end);
        for s in &p.sentences {
            prop_assert!(s.span.start >= last_end, "spans overlap or go back");
            prop_assert!(s.span.start < s.span.end, "empty sentence");
            prop_assert!(text.is_char_boundary(s.span.start));
            prop_assert!(text.is_char_boundary(s.span.end));
            prop_assert_eq!(&text[s.span.clone()], s.text);
            prop_assert_eq!(s.text.trim(), s.text, "sentence not trimmed");
            // Only whitespace lies between sentences.
            prop_assert!(text[last_end..s.span.start].trim().is_empty());
            last_end = s.span.end;
            joined.push_str(s.text);
        }
    }
    prop_assert!(text[last_end..].trim().is_empty());
    prop_assert_eq!(without_whitespace(&joined), without_whitespace(text));
    Ok(())
}

proptest! {
    #[test]
    fn split_loses_nothing_and_keeps_exact_spans(text in any_text()) {
        check_split(&text)?;
    }

    #[test]
    fn split_at_shifts_spans(text in arabic_heavy(), offset in 0usize..1_000_000) {
        let plain = split(&text);
        let shifted = split_at(&text, offset);
        prop_assert_eq!(plain.len(), shifted.len());
        for (a, b) in plain.iter().flat_map(|p| &p.sentences).zip(shifted.iter().flat_map(|p| &p.sentences)) {
            prop_assert_eq!(a.span.start + offset, b.span.start);
            prop_assert_eq!(a.text, b.text);
        }
    }

    #[test]
    fn normalize_is_idempotent(text in any_text()) {
        for normalizer in normalizers() {
            let once = normalizer.normalize(&text).into_owned();
            let twice = normalizer.normalize(&once).into_owned();
            prop_assert_eq!(&once, &twice, "steps {:?}", normalizer.steps());
        }
    }

    #[test]
    fn normalized_text_splits_cleanly(text in arabic_heavy()) {
        let normalized = Normalizer::new(Profile::Search).normalize(&text).into_owned();
        check_split(&normalized)?;
    }

    #[test]
    fn pieces_cut_at_a_line_start_normalize_like_the_whole(
        head in arabic_heavy(),
        first in prop::sample::select(&["ق", "a", "٣", "7"][..]),
        tail in arabic_heavy(),
    ) {
        // Cut where a stream would: before a line that starts with a letter or digit.
        let first_part = format!("{head}\n");
        let second_part = format!("{first}{tail}");
        let text = format!("{first_part}{second_part}");
        let rest = Position { starts_text: false, ..Position::WHOLE };
        for normalizer in normalizers() {
            let whole = normalizer.normalize(&text).into_owned();
            let joined = normalizer.normalize_piece(&first_part, Position::WHOLE).into_owned()
                + &normalizer.normalize_piece(&second_part, rest);
            prop_assert_eq!(&whole, &joined, "steps {:?}", normalizer.steps());
        }
    }

    #[test]
    fn chunks_keep_every_sentence_and_the_budget(text in arabic_heavy(), budget in 1usize..60) {
        let sentences: Vec<_> = split(&text).into_iter().flat_map(|p| p.sentences).collect();
        let chunks = chunk(&sentences, budget, |s: &str| s.chars().count());
        let mut joined = String::new();
        let mut last_end = 0;
        for c in &chunks {
            prop_assert!(!c.pieces.is_empty());
            if c.pieces.len() > 1 {
                prop_assert!(c.text().chars().count() <= budget);
            }
            for piece in &c.pieces {
                prop_assert!(piece.span.start >= last_end);
                prop_assert_eq!(&text[piece.span.clone()], piece.text);
                last_end = piece.span.end;
                joined.push_str(piece.text);
            }
        }
        let all: String = sentences.iter().map(|s| s.text).collect();
        prop_assert_eq!(without_whitespace(&joined), without_whitespace(&all));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400), lossy in any::<bool>()) {
        let options = ReadOptions { lossy, ..ReadOptions::default() };
        if let Ok(text) = decode(&bytes, "x", &options) {
            if !lossy {
                let expected = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
                prop_assert_eq!(text.as_bytes(), expected);
            }
        }
    }
}

/// A few MB of text from [`POOL`], with words at line starts so that blocks get cut,
/// built by a fixed linear congruential generator (reproducible, no dependency).
fn large_pool_text(seed: u64, bytes: usize) -> String {
    let mut state = seed;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    let mut text = String::new();
    while text.len() < bytes {
        let piece = POOL[next() % POOL.len()];
        text.push_str(piece);
        if piece.ends_with('\n') && next() % 2 == 0 {
            text.push_str("قال");
        }
    }
    text
}

/// `text` read in blocks, as a long input is.
fn read_blocks(text: &str) -> Vec<Block> {
    Blocks::new(text.as_bytes(), "x", &ReadOptions::default())
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Each block normalized as a piece where it stands, joined: what normalizing the whole
/// text must give.
fn normalize_by_block(normalizer: &Normalizer, blocks: &[Block]) -> String {
    let mut joined = String::new();
    for (i, block) in blocks.iter().enumerate() {
        let position = Position {
            starts_text: i == 0,
            starts_line: block.starts_line,
            ends_line: block.ends_line,
        };
        joined.push_str(&normalizer.normalize_piece(&block.text, position));
    }
    joined
}

#[test]
fn streamed_blocks_split_and_normalize_like_the_whole() {
    for seed in [1, 2] {
        let text = large_pool_text(seed, 2 * 1024 * 1024);
        let blocks = read_blocks(&text);
        assert!(blocks.len() > 4, "{} blocks", blocks.len());

        // Splitting: same sentences, same spans, same paragraph breaks.
        let whole: Vec<(std::ops::Range<usize>, bool)> = split(&text)
            .iter()
            .flat_map(|p| {
                p.sentences
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (s.span.clone(), i == 0))
            })
            .collect();
        let mut streamed = Vec::new();
        for block in &blocks {
            for (k, p) in split_at(&block.text, block.offset).iter().enumerate() {
                for (i, s) in p.sentences.iter().enumerate() {
                    let starts = i == 0 && (k > 0 || block.starts_paragraph);
                    streamed.push((s.span.clone(), starts));
                }
            }
        }
        assert_eq!(whole, streamed, "seed {seed}");

        // Normalizing: the pieces add up to the whole.
        for normalizer in normalizers() {
            assert!(
                normalize_by_block(&normalizer, &blocks) == normalizer.normalize(&text),
                "seed {seed}, steps {:?}",
                normalizer.steps()
            );
        }
    }
}

#[test]
fn a_line_cut_inside_normalizes_like_the_whole() {
    // One line longer than a block's maximum: the reader must cut inside it.
    let text: String = large_pool_text(3, Blocks::<&[u8]>::MAX_BLOCK + 512 * 1024)
        .chars()
        .map(|c| {
            if matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}') {
                ' '
            } else {
                c
            }
        })
        .collect();
    let blocks = read_blocks(&text);
    assert!(blocks.len() > 1 && !blocks[1].starts_line);
    for normalizer in [
        Normalizer::new(Profile::Mt),
        Normalizer::new(Profile::Search).with_step(Step::Digits),
    ] {
        assert!(
            normalize_by_block(&normalizer, &blocks) == normalizer.normalize(&text),
            "steps {:?}",
            normalizer.steps()
        );
    }
}
