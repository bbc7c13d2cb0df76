//! Which script a piece of text is written in, from the share of its letters, so later
//! stages can pass English or empty segments through untouched.

use serde::Serialize;

/// The script of a sentence, decided from its letters (digits, punctuation and
/// symbols do not count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Script {
    /// At least [`Script::ARABIC_SHARE`] of the letters are Arabic.
    Arabic,
    /// No more than [`Script::STRAY_SHARE`] of the letters are Arabic and most of the
    /// others are Latin.
    Latin,
    /// Arabic and other letters, neither dominating.
    Mixed,
    /// No more than [`Script::STRAY_SHARE`] of the letters are Arabic and most of the
    /// others are neither Latin nor Arabic (Cyrillic, Han, ...).
    Other,
    /// No letters at all: numbers, punctuation, symbols, whitespace.
    None,
}

impl Script {
    /// Share of Arabic letters from which a text counts as Arabic.
    ///
    /// Arabic news quotes names and brands in Latin letters ("قالت شركة Apple إن"),
    /// so a sentence that is mostly Arabic is still Arabic.
    pub const ARABIC_SHARE: f64 = 0.7;
    /// Share of Arabic letters under which a text counts as not Arabic at all.
    pub const STRAY_SHARE: f64 = 0.1;

    /// Detects the script of `text`.
    pub fn detect(text: &str) -> Script {
        let (mut arabic, mut latin, mut other) = (0usize, 0usize, 0usize);
        for c in text.chars().filter(|c| c.is_alphabetic()) {
            if is_arabic(c) {
                arabic += 1;
            } else if is_latin(c) {
                latin += 1;
            } else {
                other += 1;
            }
        }
        let letters = arabic + latin + other;
        if letters == 0 {
            return Script::None;
        }
        let share = arabic as f64 / letters as f64;
        if share >= Self::ARABIC_SHARE {
            Script::Arabic
        } else if share <= Self::STRAY_SHARE {
            if latin >= other {
                Script::Latin
            } else {
                Script::Other
            }
        } else {
            Script::Mixed
        }
    }

    /// The lowercase name used in JSON output (`arabic`, `latin`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Script::Arabic => "arabic",
            Script::Latin => "latin",
            Script::Mixed => "mixed",
            Script::Other => "other",
            Script::None => "none",
        }
    }
}

/// Whether `c` belongs to one of Unicode's Arabic blocks (base, supplement, extended,
/// presentation forms).
pub fn is_arabic(c: char) -> bool {
    matches!(c,
        '\u{0600}'..='\u{06FF}'
        | '\u{0750}'..='\u{077F}'
        | '\u{0870}'..='\u{08FF}'
        | '\u{FB50}'..='\u{FDFF}'
        | '\u{FE70}'..='\u{FEFF}')
}

fn is_latin(c: char) -> bool {
    matches!(c,
        'A'..='Z' | 'a'..='z'
        | '\u{00C0}'..='\u{024F}'
        | '\u{1E00}'..='\u{1EFF}'
        | '\u{FF21}'..='\u{FF3A}' | '\u{FF41}'..='\u{FF5A}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arabic_with_a_latin_name_is_arabic() {
        assert_eq!(
            Script::detect("قالت شركة Apple إن المبيعات ارتفعت."),
            Script::Arabic
        );
    }

    #[test]
    fn english_is_latin() {
        assert_eq!(
            Script::detect("The talks were \"productive\"."),
            Script::Latin
        );
        assert_eq!(Script::detect("Café déjà vu"), Script::Latin);
    }

    #[test]
    fn half_and_half_is_mixed() {
        assert_eq!(Script::detect("Reuters رويترز News أخبار"), Script::Mixed);
    }

    #[test]
    fn no_letters_is_none() {
        assert_eq!(Script::detect("١٠:٠٨ — 3.5% «»"), Script::None);
        assert_eq!(Script::detect(""), Script::None);
    }

    #[test]
    fn cyrillic_is_other() {
        assert_eq!(Script::detect("Привет, мир"), Script::Other);
    }

    #[test]
    fn arabic_digits_and_tatweel_are_not_letters_that_tip_the_balance() {
        // U+0640 tatweel is a letter (Lm) in Unicode, and Arabic; digits are not letters.
        assert_eq!(Script::detect("٢٠٢٥ ـ"), Script::Arabic);
        assert_eq!(Script::detect("٢٠٢٥"), Script::None);
    }
}
