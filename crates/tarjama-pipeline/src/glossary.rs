//! Glossaries: a newsroom's list of how names and terms are written in English.
//!
//! A glossary file has one entry per line, the Arabic term and its English, separated by a
//! tab (TSV) or a comma (CSV, with `"` quoting as RFC 4180 has it). Blank lines and lines
//! starting with `#` are skipped, and so is a first line whose first field holds no Arabic
//! (a header such as `arabic<TAB>english`).
//!
//! An entry applies to a text when its Arabic occurs there: both are compared folded
//! letter by letter (no diacritics or tatweel, one alef, ya for alef maqsura, ha for ta
//! marbuta, as the `search` normalization does), and the term must start a word, after at
//! most the clitics Arabic writes onto a word (و, ف, ب, ل, ك and the article ال). Whether
//! a translation honours an entry is whether its English occurs in the translation,
//! compared case-insensitively with whitespace runs as one space.
//!
//! A chat model is given the entries twice: listed before the instruction ([`Glossary::hint`])
//! and written into the Arabic in place of each term ([`Glossary::annotate`]). Small models
//! copy a Latin name they see far more reliably than they follow a list: on the seed
//! article, Qwen2.5 1.5B's summary went from "Kerry Demetrief", "Stephen Tsikov" and "Colin
//! Lefit" to Kirill Dmitriev, Steve Witkoff and Karoline Leavitt.

use std::fmt;
use std::path::{Path, PathBuf};

/// One glossary line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The Arabic term as written in the file.
    pub arabic: String,
    /// Its English.
    pub english: String,
    /// The Arabic term normalized for matching.
    key: String,
}

/// A glossary that could not be read.
#[derive(Debug)]
pub enum GlossaryError {
    /// The file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not an entry.
    Line {
        /// The file.
        path: PathBuf,
        /// Its 1-based line number.
        line: usize,
        /// What is wrong with it.
        problem: String,
    },
    /// The file has no entry.
    Empty(PathBuf),
}

impl fmt::Display for GlossaryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GlossaryError::Io { path, source } => {
                write!(f, "{}: cannot read the glossary: {source}", path.display())
            }
            GlossaryError::Line {
                path,
                line,
                problem,
            } => write!(f, "{}:{line}: {problem}", path.display()),
            GlossaryError::Empty(path) => {
                write!(f, "{}: the glossary has no entry", path.display())
            }
        }
    }
}

impl std::error::Error for GlossaryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GlossaryError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Entries in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Glossary {
    entries: Vec<Entry>,
}

/// The letters Arabic writes onto the front of a word: conjunctions, prepositions, and
/// the article after them.
const PROCLITICS: [char; 5] = ['و', 'ف', 'ب', 'ل', 'ك'];

/// A letter as matching sees it (`None`: not seen at all).
fn fold_char(c: char) -> Option<char> {
    match c {
        // Harakat, tanwin, shadda, sukun, dagger alef, Quranic marks, tatweel.
        '\u{064B}'..='\u{065F}' | '\u{0670}' | '\u{06D6}'..='\u{06ED}' | '\u{0640}' => None,
        'أ' | 'إ' | 'آ' | 'ٱ' => Some('ا'),
        'ى' => Some('ي'),
        'ة' => Some('ه'),
        c if c.is_whitespace() => Some(' '),
        c => Some(c),
    }
}

/// `text` folded, with the byte offset in `text` of each folded byte that starts a
/// character (and of the end).
fn fold(text: &str) -> (String, Vec<usize>) {
    let mut folded = String::with_capacity(text.len());
    let mut map = Vec::with_capacity(text.len() + 1);
    for (at, c) in text.char_indices() {
        if let Some(f) = fold_char(c) {
            map.resize(folded.len(), usize::MAX);
            map.push(at);
            folded.push(f);
        }
    }
    map.resize(folded.len(), usize::MAX);
    map.push(text.len());
    (folded, map)
}

/// The folded form of a term: whitespace runs as one space.
fn fold_term(term: &str) -> String {
    fold(&term.split_whitespace().collect::<Vec<_>>().join(" ")).0
}

fn has_arabic(s: &str) -> bool {
    s.chars().any(|c| ('\u{0600}'..='\u{06FF}').contains(&c))
}

/// Lowercase with every whitespace run one space, for comparing English.
fn fold_english(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

impl Glossary {
    /// Reads a TSV or CSV glossary.
    pub fn load(path: &Path) -> Result<Glossary, GlossaryError> {
        let bytes = std::fs::read(path).map_err(|source| GlossaryError::Io {
            path: path.to_owned(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            GlossaryError::Line {
                path: path.to_owned(),
                line,
                problem: "not valid UTF-8".into(),
            }
        })?;
        let glossary = Glossary::parse(&text).map_err(|(line, problem)| GlossaryError::Line {
            path: path.to_owned(),
            line,
            problem,
        })?;
        if glossary.entries.is_empty() {
            return Err(GlossaryError::Empty(path.to_owned()));
        }
        Ok(glossary)
    }

    /// Parses a glossary's text; an error is (1-based line, problem).
    pub fn parse(text: &str) -> Result<Glossary, (usize, String)> {
        let mut entries = Vec::new();
        let mut first = true;
        for (i, raw) in text.trim_start_matches('\u{feff}').lines().enumerate() {
            // Only the line break is cut: a trailing tab still separates an empty field.
            let line = raw.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let fields = split_fields(line).map_err(|p| (i + 1, p))?;
            let header = first && !has_arabic(&fields[0]);
            first = false;
            if header {
                continue;
            }
            if fields.len() != 2 {
                return Err((
                    i + 1,
                    format!(
                        "expected 2 fields (the Arabic term, then its English) separated by a \
                         tab or a comma, found {}",
                        fields.len()
                    ),
                ));
            }
            let (arabic, english) = (fields[0].trim(), fields[1].trim());
            if arabic.is_empty() || english.is_empty() {
                return Err((i + 1, "an empty term".into()));
            }
            if !has_arabic(arabic) {
                return Err((i + 1, format!("the first field \"{arabic}\" has no Arabic")));
            }
            entries.push(Entry {
                arabic: arabic.to_string(),
                english: english.to_string(),
                key: fold_term(arabic),
            });
        }
        // Longer terms first, so that a full name is offered before a part of it.
        entries.sort_by_key(|e| std::cmp::Reverse(e.key.chars().count()));
        Ok(Glossary { entries })
    }

    /// Every entry, longest Arabic first.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entries whose Arabic occurs in `text`.
    pub fn entries_in(&self, text: &str) -> Vec<&Entry> {
        let text = fold(text).0;
        self.entries
            .iter()
            .filter(|e| !starts(&text, &e.key).is_empty())
            .collect()
    }

    /// `text` with each term written in its English, longer terms first (so a full name
    /// is replaced whole); the clitics glued to a term stay.
    pub fn annotate(&self, text: &str) -> String {
        let (folded, map) = fold(text);
        // Byte ranges of `folded` taken so far, and what replaces each.
        let mut taken: Vec<(usize, usize, &str)> = Vec::new();
        for e in &self.entries {
            for at in starts(&folded, &e.key) {
                let end = at + e.key.len();
                if taken.iter().all(|&(a, b, _)| end <= a || at >= b) {
                    taken.push((at, end, &e.english));
                }
            }
        }
        taken.sort_unstable_by_key(|&(a, _, _)| a);
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for (a, b, english) in taken {
            out.push_str(&text[last..map[a]]);
            out.push_str(english);
            last = map[b];
        }
        out.push_str(&text[last..]);
        out
    }

    /// The English of the entries that occur in `source` and are missing from
    /// `translation`.
    pub fn missing(&self, source: &str, translation: &str) -> Vec<String> {
        let english = fold_english(translation);
        self.entries_in(source)
            .into_iter()
            .filter(|e| !english.contains(&fold_english(&e.english)))
            .map(|e| e.english.clone())
            .collect()
    }

    /// What identifies the glossary's effect on a translation: its entries, in order
    /// (comments, header and layout of the file do not count).
    pub fn fingerprint(&self) -> String {
        self.entries
            .iter()
            .map(|e| format!("{}\t{}\n", e.arabic, e.english))
            .collect()
    }

    /// The lines that tell a chat model how to write the entries of `text`, or `None`
    /// when none occurs there.
    pub fn hint(&self, text: &str) -> Option<String> {
        let found = self.entries_in(text);
        if found.is_empty() {
            return None;
        }
        let lines: Vec<String> = found
            .iter()
            .map(|e| format!("{} = {}", e.arabic, e.english))
            .collect();
        Some(lines.join("\n"))
    }
}

/// Where `key` occurs in `text` at the start of a word, after at most the proclitics
/// (byte offsets, in order).
fn starts(text: &str, key: &str) -> Vec<usize> {
    if key.is_empty() {
        return Vec::new();
    }
    let word_start = |at: usize| {
        // Walk back over the letters glued to the front of the term: they must all be
        // proclitics (at most two, then optionally the article).
        let before: Vec<char> = text[..at]
            .chars()
            .rev()
            .take_while(|c| c.is_alphabetic())
            .collect();
        let mut word: Vec<char> = before.into_iter().rev().collect();
        if word.ends_with(&['ا', 'ل']) && !key.starts_with("ال") {
            word.truncate(word.len() - 2);
        }
        word.len() <= 2 && word.iter().all(|c| PROCLITICS.contains(c))
    };
    text.match_indices(key)
        .map(|(at, _)| at)
        .filter(|&at| word_start(at))
        .collect()
}

/// The fields of one line: tab-separated when it has a tab, else comma-separated with
/// `"` quoting.
fn split_fields(line: &str) -> Result<Vec<String>, String> {
    if line.contains('\t') {
        return Ok(line.split('\t').map(|f| f.trim().to_string()).collect());
    }
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.trim().is_empty() && !was_quoted => {
                field.clear();
                quoted = true;
                was_quoted = true;
            }
            (false, ',') => {
                fields.push(std::mem::take(&mut field).trim().to_string());
                was_quoted = false;
            }
            (false, c) => {
                if was_quoted && !c.is_whitespace() {
                    return Err("text after a closing quote".into());
                }
                field.push(c);
            }
        }
    }
    if quoted {
        return Err("a quote is not closed".into());
    }
    fields.push(field.trim().to_string());
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "# people of the seed article\n\
        arabic\tenglish\n\
        كيريل ديمترييف\tKirill Dmitriev\n\
        ويتكوف\tWitkoff\n\
        بيسكوف\tPeskov\n";

    #[test]
    fn tsv_with_comment_and_header() {
        let g = Glossary::parse(SEED).unwrap();
        assert_eq!(g.entries().len(), 3);
        assert_eq!(g.entries()[0].english, "Kirill Dmitriev");
    }

    #[test]
    fn csv_with_quotes() {
        let g = Glossary::parse("\"البيت الأبيض\",\"the White House\"\nترمب, \"Trump, Donald\"\n")
            .unwrap();
        let english: Vec<&str> = g.entries().iter().map(|e| e.english.as_str()).collect();
        assert_eq!(english, ["the White House", "Trump, Donald"]);
    }

    #[test]
    fn malformed_lines_name_their_number() {
        let err = Glossary::parse("ويتكوف\tWitkoff\nبيسكوف\n").unwrap_err();
        assert_eq!(err.0, 2);
        assert!(err.1.contains("expected 2 fields"), "{}", err.1);
        let err = Glossary::parse("ويتكوف\tWitkoff\nبيسكوف\tPeskov\textra\n").unwrap_err();
        assert_eq!(err.0, 2);
        let err = Glossary::parse("ويتكوف\tWitkoff\n\"بيسكوف,Peskov\n").unwrap_err();
        assert_eq!(err, (2, "a quote is not closed".to_string()));
        let err = Glossary::parse("ويتكوف\t\n").unwrap_err();
        assert_eq!(err, (1, "an empty term".to_string()));
        // Only the first line may be a header.
        let err = Glossary::parse("ويتكوف\tWitkoff\nPeskov\tPeskov\n").unwrap_err();
        assert_eq!(err.0, 2);
        assert!(err.1.contains("has no Arabic"), "{}", err.1);
    }

    #[test]
    fn load_names_the_file() {
        let dir = std::env::temp_dir().join(format!("tarjama-glossary-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.tsv");
        std::fs::write(&bad, "ويتكوف\tWitkoff\nwrong line\n").unwrap();
        let message = Glossary::load(&bad).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!("{}:2: ", bad.display())),
            "{message}"
        );
        let empty = dir.join("empty.tsv");
        std::fs::write(&empty, "# nothing\n").unwrap();
        let message = Glossary::load(&empty).unwrap_err().to_string();
        assert!(message.contains("no entry"), "{message}");
        let binary = dir.join("binary.tsv");
        std::fs::write(&binary, b"\xff\xfe\x00").unwrap();
        let message = Glossary::load(&binary).unwrap_err().to_string();
        assert!(message.contains(":1: not valid UTF-8"), "{message}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn terms_match_after_clitics_and_normalization() {
        let g = Glossary::parse(SEED).unwrap();
        // With the conjunction glued on, and the preposition and conjunction together.
        let text = "واجتمع بوتين مع ويتكوف. وقال إن لويتكوف دوراً.";
        let found: Vec<&str> = g
            .entries_in(text)
            .iter()
            .map(|e| e.english.as_str())
            .collect();
        assert_eq!(found, ["Witkoff"]);
        // Inside another word: no match.
        assert!(g.entries_in("كتبيسكوفات").is_empty());
        // Diacritics in the text do not hide the term.
        assert_eq!(g.entries_in("قال بِيسْكوف").len(), 1);
    }

    #[test]
    fn missing_terms_are_reported() {
        let g = Glossary::parse(SEED).unwrap();
        let source = "قال كيريل ديمترييف إن ويتكوف وصل.";
        let missing = g.missing(source, "Kirill  dmitriev said that Whitkoff arrived.");
        assert_eq!(missing, ["Witkoff"]);
        assert_eq!(
            g.hint(source).unwrap(),
            "كيريل ديمترييف = Kirill Dmitriev\nويتكوف = Witkoff"
        );
        assert!(g.hint("لا شيء هنا").is_none());
    }

    #[test]
    fn annotate_writes_the_english_in_place() {
        let g = Glossary::parse(SEED).unwrap();
        // The full name whole, the clitic kept, diacritics inside a term covered, and a
        // term inside another word left alone.
        assert_eq!(
            g.annotate("قال كيريل ديمترييف إن لِوِيتْكوفَ دوراً، وكتبيسكوفات."),
            "قال Kirill Dmitriev إن لِWitkoff دوراً، وكتبيسكوفات."
        );
        assert_eq!(g.annotate("لا شيء هنا"), "لا شيء هنا");
    }
}
