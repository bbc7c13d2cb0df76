//! The names and numbers of an English text, and which of them another text backs: how
//! a summary is checked against its source's translation. A summary that names someone
//! or gives a figure the source does not have has invented it (or garbled it: "Kerry
//! Demetrief" for Kirill Dmitriev), and no overlap metric sees that.
//!
//! A *name* is a capitalized word (possessive `'s` dropped): `Putin`, `NASA`, `St`. A
//! capitalized word that opens a sentence is a name only when it is not one of the
//! function words that start sentences (`The`, `According`, ...); such a word is backed
//! by the same word in any case, since a backing text may use it mid-sentence. A *number*
//! is a run of digits, with the thousands commas dropped and a decimal point or a time's
//! colon kept as a point (`1,245` and `1245` are the same number, `12:00` and `12.00` the
//! same time).
//!
//! ```
//! use tarjama_eval::facts::{facts, Backing};
//!
//! let summary = "Putin met Witkoff in St. Petersburg on 11 April, with 1,200 guests.";
//! let names: Vec<_> = facts(summary).into_iter().map(|f| f.text).collect();
//! assert_eq!(names, ["Putin", "Witkoff", "St", "Petersburg", "11", "April", "1200"]);
//!
//! let source = "Vladimir Putin received Steve Witkoff in St. Petersburg on April 11.";
//! let backing = Backing::new([source]);
//! let unbacked: Vec<_> = facts(summary)
//!     .into_iter()
//!     .filter(|f| !backing.backs(f))
//!     .map(|f| f.text)
//!     .collect();
//! assert_eq!(unbacked, ["1200"]);
//! ```

use std::collections::HashSet;

/// A name or a number of a text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fact {
    /// The name as written, or the number normalized.
    pub text: String,
    /// A number (else a name).
    pub number: bool,
    /// The word opens a sentence, so its capital may be the sentence's.
    pub opens_sentence: bool,
}

/// Capitalized words that open sentences without being names.
const OPENERS: &[&str] = &[
    "A",
    "About",
    "According",
    "After",
    "Afterwards",
    "Again",
    "Also",
    "Although",
    "An",
    "And",
    "Another",
    "Any",
    "As",
    "At",
    "Because",
    "Before",
    "Both",
    "But",
    "By",
    "Despite",
    "During",
    "Each",
    "Earlier",
    "Either",
    "Even",
    "Every",
    "For",
    "From",
    "Further",
    "Furthermore",
    "He",
    "Her",
    "Here",
    "His",
    "However",
    "I",
    "If",
    "In",
    "It",
    "Its",
    "Later",
    "Meanwhile",
    "Moreover",
    "Most",
    "Many",
    "Much",
    "My",
    "Neither",
    "No",
    "Nor",
    "Not",
    "Now",
    "Of",
    "On",
    "Once",
    "One",
    "Only",
    "Or",
    "Other",
    "Our",
    "Over",
    "She",
    "Since",
    "So",
    "Some",
    "Such",
    "That",
    "The",
    "Their",
    "Then",
    "There",
    "These",
    "They",
    "This",
    "Those",
    "Though",
    "Thus",
    "To",
    "Two",
    "Under",
    "Until",
    "Upon",
    "We",
    "What",
    "When",
    "Where",
    "Whether",
    "Which",
    "While",
    "Who",
    "With",
    "Within",
    "Without",
    "Yet",
    "You",
    "Your",
];

/// The names and numbers of `text`, in order, repeats kept.
pub fn facts(text: &str) -> Vec<Fact> {
    let mut out = Vec::new();
    let mut opens = true;
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() {
            // A number: digits, with commas and points between digits.
            let mut number = String::new();
            while i < chars.len() {
                let c = chars[i];
                let between = (c == ',' || c == '.' || c == ':')
                    && chars.get(i + 1).is_some_and(char::is_ascii_digit)
                    && !number.is_empty();
                if c.is_ascii_digit() {
                    number.push(c);
                } else if between {
                    // Thousands commas go; a decimal point and a time's colon
                    // ("12:00", also written "12.00") are kept as a point.
                    if c != ',' {
                        number.push('.');
                    }
                } else {
                    break;
                }
                i += 1;
            }
            out.push(Fact {
                text: number,
                number: true,
                opens_sentence: opens,
            });
            opens = false;
        } else if c.is_alphabetic() {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric()
                    || ((chars[i] == '-' || chars[i] == '\'' || chars[i] == '’')
                        && chars.get(i + 1).is_some_and(|c| c.is_alphabetic())))
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let word = word
                .strip_suffix("'s")
                .or_else(|| word.strip_suffix("’s"))
                .unwrap_or(&word)
                .to_string();
            let capital = word.chars().next().is_some_and(char::is_uppercase);
            if capital && word.chars().count() > 1 && !(opens && OPENERS.contains(&word.as_str())) {
                out.push(Fact {
                    text: word,
                    number: false,
                    opens_sentence: opens,
                });
            }
            opens = false;
        } else {
            if matches!(c, '.' | '!' | '?' | '\n' | ':' | '"' | '“') {
                // A point after one capital letter is an initial ("St.", "J."), not an end.
                let initial = c == '.'
                    && i >= 1
                    && chars[i - 1].is_uppercase()
                    && (i < 2 || !chars[i - 2].is_alphanumeric());
                let abbreviation = c == '.' && i >= 2 && is_abbreviation(&chars[..i]);
                if !initial && !abbreviation {
                    opens = true;
                }
            }
            i += 1;
        }
    }
    out
}

/// Whether the word before a point is a title or abbreviation that does not end a
/// sentence.
fn is_abbreviation(before: &[char]) -> bool {
    let word: String = before
        .iter()
        .rev()
        .take_while(|c| c.is_alphabetic())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    matches!(
        word.as_str(),
        "St" | "Mr"
            | "Mrs"
            | "Ms"
            | "Dr"
            | "Prof"
            | "Gen"
            | "Sen"
            | "Rep"
            | "Gov"
            | "Lt"
            | "Col"
            | "Capt"
            | "Jr"
            | "Sr"
            | "vs"
            | "Mt"
            | "Ft"
            | "No"
    )
}

/// The texts that can back a fact: their names (as written and lowercased) and numbers.
#[derive(Debug, Clone, Default)]
pub struct Backing {
    words: HashSet<String>,
    lower: HashSet<String>,
    numbers: HashSet<String>,
}

impl Backing {
    /// Everything the `texts` name or number.
    pub fn new<'a>(texts: impl IntoIterator<Item = &'a str>) -> Self {
        let mut backing = Backing::default();
        for text in texts {
            backing.add(text);
        }
        backing
    }

    /// Adds a text's words and numbers.
    pub fn add(&mut self, text: &str) {
        for word in text.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’')) {
            let word = word
                .strip_suffix("'s")
                .or_else(|| word.strip_suffix("’s"))
                .unwrap_or(word);
            if !word.is_empty() {
                self.lower.insert(word.to_lowercase());
                self.words.insert(word.to_string());
            }
        }
        for fact in facts(text) {
            if fact.number {
                self.numbers.insert(fact.text);
            }
        }
    }

    /// Whether the fact is in the backing texts: a number as the same number, a name as
    /// the same word (in any case when it opens a sentence).
    pub fn backs(&self, fact: &Fact) -> bool {
        if fact.number {
            self.numbers.contains(&fact.text)
        } else if fact.opens_sentence {
            self.lower.contains(&fact.text.to_lowercase())
        } else {
            self.words.contains(&fact.text)
        }
    }
}

/// How many of the facts of `text` `backing` backs: (backed, all).
pub fn backed(text: &str, backing: &Backing) -> (usize, usize) {
    let all = facts(text);
    let backed = all.iter().filter(|f| backing.backs(f)).count();
    (backed, all.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(text: &str) -> Vec<String> {
        facts(text).into_iter().map(|f| f.text).collect()
    }

    #[test]
    fn names_and_numbers_are_found() {
        assert_eq!(
            texts("The Kremlin said Dmitriev's visit cost $2.5 million, or 1,000,000 euros."),
            ["Kremlin", "Dmitriev", "2.5", "1000000"]
        );
        // Sentence openers are not names; a name opening a sentence is.
        assert_eq!(
            texts("According to NASA, it rained. Putin agreed. However, Trump did not."),
            ["NASA", "Putin", "Trump"]
        );
        // A point after a title or an initial does not open a sentence.
        assert_eq!(texts("Dr. The Hague"), ["Dr", "The", "Hague"]);
        assert_eq!(texts("In 2016, J. The"), ["2016", "The"]);
        assert_eq!(texts("one-third of U.S. Senate votes"), ["Senate"]);
    }

    #[test]
    fn backing_is_by_word_and_by_number() {
        let backing = Backing::new(["Officials met Kirill Dmitriev on 3 May; 1200 attended."]);
        let check = |t: &str| -> Vec<bool> { facts(t).iter().map(|f| backing.backs(f)).collect() };
        assert_eq!(check("Kirill Dmitriev"), [true, true]);
        assert_eq!(check("Kerry Demetrief"), [false, false]);
        assert_eq!(check("About 1,200 came on May 4"), [true, true, false]);
        let backing = Backing::new(["at 12.00 GMT"]);
        assert_eq!(backed("At 12:00 GMT.", &backing), (2, 2));
        // An opener's capital may be the sentence's: "Officials" backs "officials" too.
        let backing = Backing::new(["the officials left"]);
        assert_eq!(
            facts("Officials left.")
                .iter()
                .map(|f| backing.backs(f))
                .collect::<Vec<_>>(),
            [true]
        );
        // Mid-sentence, case counts: "may" does not back the month.
        let backing = Backing::new(["it may rain"]);
        assert_eq!(backed("It rained in May.", &backing), (0, 1));
    }
}
