//! Sentence-boundary F1 on FLORES-200 devtest, through the library.
//!
//! The consecutive Arabic lines that share a URL in `metadata_devtest.tsv` are joined
//! with a space into documents; splitting a document should find every line start
//! again. A sentence start inside a line counts as a false boundary only when the
//! English reference line is a single sentence (by the rule in [`english_sentences`]),
//! because some FLORES lines hold two sentences. `scripts/flores_split_score.py`
//! computes the same figure through the `tarjama` binary.
//!
//! Reads the repository's `tests/data/flores200`, or the folder in `TARJAMA_FLORES`
//! (see `tarjama_testkit::require_flores`).

use std::collections::BTreeSet;
use std::path::PathBuf;

const TITLES: &[&str] = &[
    "Mr", "Mrs", "Ms", "Dr", "St", "Jr", "Sr", "Prof", "Gen", "Lt", "Col", "Sgt", "Capt", "Gov",
    "Sen", "Rep", "Rev", "Mt", "No", "vs",
];

/// Whether an English line holds more than one sentence. The rule: a `.`, `!` or `?`,
/// then any closing quotes or brackets, then whitespace, then at most one opening quote
/// or bracket, then an uppercase ASCII letter or a digit (or a lowercase letter, when the
/// word before has at least four letters: FLORES has `their own style. one of`); for a
/// `.`, the word before it must not be a single letter, a title from [`TITLES`] or a
/// dotted acronym (`U.S.`, `p.m.`).
fn english_is_multi_sentence(line: &str) -> bool {
    let chars: Vec<char> = line.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if !matches!(c, '.' | '!' | '?') {
            continue;
        }
        let mut j = i + 1;
        while j < chars.len() && matches!(chars[j], '"' | '\'' | '”' | '’' | ')' | ']') {
            j += 1;
        }
        if j >= chars.len() || !chars[j].is_whitespace() {
            continue;
        }
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        if j < chars.len() && matches!(chars[j], '"' | '“' | '\'' | '‘' | '(') {
            j += 1;
        }
        let Some(&next) = chars.get(j) else {
            continue;
        };
        let before: String = chars[..i].iter().collect();
        let word = before
            .rsplit(char::is_whitespace)
            .next()
            .unwrap_or("")
            .trim_start_matches(['"', '“', '\'', '‘', '(']);
        let letters = word.chars().filter(|c| c.is_alphabetic()).count();
        let starts_sentence = next.is_ascii_uppercase()
            || next.is_ascii_digit()
            || (next.is_lowercase() && letters >= 4);
        if !starts_sentence {
            continue;
        }
        let single_letter = word.chars().count() == 1 && letters == 1;
        if c == '.' && (single_letter || TITLES.contains(&word) || word.contains('.')) {
            continue;
        }
        return true;
    }
    false
}

/// Exposed for the sanity checks below.
fn english_sentences(line: &str) -> usize {
    if english_is_multi_sentence(line) {
        2
    } else {
        1
    }
}

fn read_lines(path: PathBuf) -> Vec<String> {
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::to_owned)
        .collect()
}

#[derive(Debug, Default)]
struct Score {
    tp: usize,
    fp: usize,
    fn_: usize,
}

impl Score {
    fn f1(&self) -> f64 {
        let p = self.tp as f64 / (self.tp + self.fp) as f64;
        let r = self.tp as f64 / (self.tp + self.fn_) as f64;
        2.0 * p * r / (p + r)
    }
}

#[test]
fn english_rule_sanity() {
    assert_eq!(english_sentences("He left. She stayed."), 2);
    assert_eq!(
        english_sentences("Dr. Smith met J. K. Rowling in the U.S. Army."),
        1
    );
    assert_eq!(english_sentences("\"Is it over?\" He asked."), 2);
    assert_eq!(english_sentences("It grew 3.5 percent."), 1);
    assert_eq!(
        english_sentences("He read it on July 9. A copy reached London."),
        2
    );
    assert_eq!(
        english_sentences("at 10:08 p.m. on Monday, e.g. the Wilds."),
        1
    );
}

#[test]
fn flores_sentence_boundary_f1() {
    let Some(dir) = tarjama_testkit::require_flores() else {
        return;
    };
    let arabic = read_lines(dir.join("arb_Arab.devtest"));
    let english = read_lines(dir.join("eng_Latn.devtest"));
    let urls: Vec<String> = read_lines(dir.join("metadata_devtest.tsv"))
        .into_iter()
        .skip(1)
        .map(|row| row.split('\t').next().unwrap_or("").to_owned())
        .collect();
    assert_eq!(arabic.len(), english.len());
    assert_eq!(arabic.len(), urls.len());

    let mut score = Score::default();
    let mut i = 0;
    while i < arabic.len() {
        let mut j = i + 1;
        while j < arabic.len() && urls[j] == urls[i] {
            j += 1;
        }
        // Join lines i..j; remember where each line starts (its first visible byte).
        let mut doc = String::new();
        let mut line_starts = Vec::new();
        for line in &arabic[i..j] {
            if !doc.is_empty() {
                doc.push(' ');
            }
            let lead = line.len() - line.trim_start().len();
            line_starts.push(doc.len() + lead);
            doc.push_str(line);
        }
        let gold: BTreeSet<usize> = line_starts[1..].iter().copied().collect();
        let predicted: Vec<usize> = tarjama_text::split(&doc)
            .iter()
            .flat_map(|p| &p.sentences)
            .map(|s| s.span.start)
            .skip(1)
            .collect();
        for &start in &predicted {
            if gold.contains(&start) {
                score.tp += 1;
            } else {
                let line = line_starts.partition_point(|&s| s <= start) - 1;
                if !english_is_multi_sentence(&english[i + line]) {
                    score.fp += 1;
                    let end = line_starts.get(line + 1).copied().unwrap_or(doc.len());
                    eprintln!(
                        "false split: {} | {}",
                        &doc[line_starts[line]..start],
                        &doc[start..end]
                    );
                }
            }
        }
        let found: BTreeSet<usize> = predicted.into_iter().collect();
        for &g in &gold {
            if !found.contains(&g) {
                score.fn_ += 1;
                let from = doc.floor_char_boundary(g.saturating_sub(80));
                eprintln!("missed boundary after: {}", &doc[from..g]);
            }
        }
        i = j;
    }
    let f1 = score.f1();
    eprintln!("FLORES devtest sentence boundaries: {score:?}, F1 = {f1:.4}");
    assert!(f1 >= 0.993, "F1 {f1:.4} < 0.993 ({score:?})");
}
