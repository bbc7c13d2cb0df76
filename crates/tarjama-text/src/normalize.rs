//! Normalization: named, documented steps grouped into profiles.
//!
//! Two profiles cover the two uses: [`Profile::Mt`] only removes what carries no
//! meaning (invisible characters, tatweel, odd whitespace) so a translation model sees
//! the text as written, and [`Profile::Search`] also folds the spelling variants that
//! search and deduplication want to treat as one (diacritics, hamza forms of alef,
//! alef maqsura, ta marbuta). Steps that are off by default, such as [`Step::Digits`],
//! are turned on by name.
//!
//! URLs and e-mail addresses are copied verbatim: no step changes a character inside
//! them. Numbers keep their meaning: [`Step::Digits`] rewrites `٣٫٥` as `3.5`, never
//! joining or splitting digits. Steps run in the fixed order of [`Step::ALL`], with
//! NFC last, so that removing a character between a letter and a combining mark
//! cannot leave a sequence that a second run would compose: `normalize` is idempotent.
//!
//! Why one file of over 700 lines: a quarter of it is the tests that pin each step on real
//! text, and the steps are one table meant to be read in order.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use unicode_normalization::UnicodeNormalization;

use crate::{links, Error};

/// Declares [`Step`] from one list of its variants and their names, so that the enum,
/// [`Step::ALL`] (its order, which is also the order of `Ord`) and [`Step::name`] cannot
/// disagree.
macro_rules! steps {
    ($($(#[doc = $doc:literal])* $step:ident => $name:literal,)*) => {
        /// One normalization step.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(rename_all = "kebab-case")]
        #[non_exhaustive]
        pub enum Step {
            $($(#[doc = $doc])* $step,)*
        }

        impl Step {
            /// Every step, in the order a [`Normalizer`] applies them.
            pub const ALL: [Step; [$($name),*].len()] = [$(Step::$step),*];

            /// The step's name on the command line and in JSON.
            pub fn name(self) -> &'static str {
                match self {
                    $(Step::$step => $name,)*
                }
            }
        }
    };
}

steps! {
    /// `bom`: drops byte-order marks (U+FEFF) at the very start of the text.
    Bom => "bom",
    /// `line-endings`: turns `\r\n`, `\r`, U+0085, U+2028 and U+2029 into `\n`.
    LineEndings => "line-endings",
    /// `bidi`: removes bidirectional controls (U+061C, U+200E/F, U+202A–E, U+2066–9),
    /// which editors insert around mixed Arabic/Latin runs and which split tokens.
    Bidi => "bidi",
    /// `zero-width`: removes zero-width space, non-joiner and joiner, word joiner,
    /// soft hyphen and U+FEFF inside the text. A joiner between two emoji is kept,
    /// since it is part of the emoji.
    ZeroWidth => "zero-width",
    /// `tatweel`: removes the kashida U+0640 (`مـــرحبا` → `مرحبا`), a justification
    /// stretch with no meaning.
    Tatweel => "tatweel",
    /// `diacritics`: removes harakat, tanwin, shadda, sukun, dagger alef and Quranic
    /// annotation marks (`مُحَمَّد` → `محمد`). Off in `mt`: vowel marks disambiguate.
    Diacritics => "diacritics",
    /// `alef`: folds alef with hamza or madda and alef wasla (`أ إ آ ٱ`) to bare `ا`.
    Alef => "alef",
    /// `ya`: folds alef maqsura `ى` and Farsi yeh `ی` to `ي`.
    Ya => "ya",
    /// `ta-marbuta`: folds `ة` to `ه`.
    TaMarbuta => "ta-marbuta",
    /// `digits`: writes Arabic-Indic (`٠–٩`) and extended Arabic-Indic (`۰–۹`) digits as
    /// ASCII, and the Arabic decimal and thousands separators between digits as `.` and
    /// `,` (`٣٫٥` → `3.5`, `١٬٠٠٠` → `1,000`). Off by default in every profile.
    Digits => "digits",
    /// `whitespace`: turns every other whitespace character (tab, no-break and thin
    /// spaces, ...) into a space, collapses runs of spaces, trims spaces at the start
    /// and end of lines, and collapses more than one blank line into one.
    Whitespace => "whitespace",
    /// `nfc`: Unicode canonical composition (NFC), so equal text has equal bytes.
    Nfc => "nfc",
}

impl Step {
    /// Applies this step to one stretch of text that holds no URL or e-mail address.
    fn apply<'a>(self, s: &'a str, at: Position) -> Cow<'a, str> {
        match self {
            // All of them: a file concatenated from BOM-marked files can start with two.
            Step::Bom => match s.trim_start_matches('\u{FEFF}') {
                rest if at.starts_text && rest.len() < s.len() => Cow::Owned(rest.to_owned()),
                _ => Cow::Borrowed(s),
            },
            Step::LineEndings => line_endings(s),
            Step::Bidi => remove_chars(s, is_bidi_control),
            Step::ZeroWidth => zero_width(s),
            Step::Tatweel => remove_chars(s, |c| c == '\u{0640}'),
            Step::Diacritics => remove_chars(s, is_diacritic),
            Step::Alef => map_chars(s, |c| match c {
                'أ' | 'إ' | 'آ' | 'ٱ' | '\u{0672}' | '\u{0673}' => Some('ا'),
                _ => None,
            }),
            Step::Ya => map_chars(s, |c| match c {
                'ى' | 'ی' => Some('ي'),
                _ => None,
            }),
            Step::TaMarbuta => map_chars(s, |c| (c == 'ة').then_some('ه')),
            Step::Digits => digits(s),
            Step::Whitespace => whitespace(s, at.starts_line, at.ends_line),
            Step::Nfc => {
                if unicode_normalization::is_nfc_quick(s.chars())
                    == unicode_normalization::IsNormalized::Yes
                {
                    Cow::Borrowed(s)
                } else {
                    let composed: String = s.nfc().collect();
                    if composed == s {
                        Cow::Borrowed(s)
                    } else {
                        Cow::Owned(composed)
                    }
                }
            }
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Step {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self, Error> {
        Step::ALL
            .into_iter()
            .find(|step| step.name() == name)
            .ok_or_else(|| Error::UnknownStep {
                name: name.to_owned(),
                known: Step::ALL.map(Step::name).join(", "),
            })
    }
}

/// A named set of steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Profile {
    /// No step: only what is added by name.
    None,
    /// Safe for translation models: `bom`, `line-endings`, `bidi`, `zero-width`,
    /// `tatweel`, `whitespace`, `nfc`. No letter, vowel mark or digit is changed.
    Mt,
    /// For search and deduplication: `mt` plus `diacritics`, `alef`, `ya`, `ta-marbuta`.
    Search,
}

impl Profile {
    /// The steps of this profile, in application order.
    pub fn steps(self) -> &'static [Step] {
        use Step::*;
        match self {
            Profile::None => &[],
            Profile::Mt => &[Bom, LineEndings, Bidi, ZeroWidth, Tatweel, Whitespace, Nfc],
            Profile::Search => &[
                Bom,
                LineEndings,
                Bidi,
                ZeroWidth,
                Tatweel,
                Diacritics,
                Alef,
                Ya,
                TaMarbuta,
                Whitespace,
                Nfc,
            ],
        }
    }

    /// The profile's name (`none`, `mt`, `search`).
    pub fn name(self) -> &'static str {
        match self {
            Profile::None => "none",
            Profile::Mt => "mt",
            Profile::Search => "search",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Profile {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self, Error> {
        match name {
            "none" => Ok(Profile::None),
            "mt" => Ok(Profile::Mt),
            "search" => Ok(Profile::Search),
            _ => Err(Error::UnknownProfile(name.to_owned())),
        }
    }
}

/// Where a piece of text sits in a larger text, for normalizing it piece by piece
/// (see [`Normalizer::normalize_piece`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The piece starts the whole text (a BOM here is dropped).
    pub starts_text: bool,
    /// The piece starts at the start of a line (leading spaces are trimmed).
    pub starts_line: bool,
    /// The piece ends at the end of a line or of the text (trailing spaces are trimmed).
    pub ends_line: bool,
}

impl Position {
    /// A whole text.
    pub const WHOLE: Position = Position {
        starts_text: true,
        starts_line: true,
        ends_line: true,
    };
}

/// Normalized text together with the steps that changed something in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// The normalized text.
    pub text: String,
    /// The steps that changed at least one character, in application order.
    pub changed: Vec<Step>,
}

/// Applies a set of steps, in the fixed order of [`Step::ALL`].
///
/// Cheap to clone and to share between threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalizer {
    steps: Vec<Step>,
}

impl Normalizer {
    /// The normalizer of a profile.
    pub fn new(profile: Profile) -> Self {
        Self::from_steps(profile.steps().iter().copied())
    }

    /// A normalizer with exactly these steps (in any order, repeats ignored).
    pub fn from_steps(steps: impl IntoIterator<Item = Step>) -> Self {
        let mut steps: Vec<Step> = steps.into_iter().collect();
        steps.sort();
        steps.dedup();
        Self { steps }
    }

    /// This normalizer plus `step`.
    pub fn with_step(self, step: Step) -> Self {
        Self::from_steps(self.steps.into_iter().chain([step]))
    }

    /// This normalizer without `step`.
    pub fn without_step(mut self, step: Step) -> Self {
        self.steps.retain(|&s| s != step);
        self
    }

    /// The steps this normalizer applies, in order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Normalizes `text`; borrows it back when nothing changes.
    pub fn normalize<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.normalize_piece(text, Position::WHOLE)
    }

    /// Normalizes a piece of a larger text, such as a [`crate::Block`] of a stream.
    /// Pieces cut at line breaks, or inside a line right before a word, normalize to
    /// the same text as the whole.
    pub fn normalize_piece<'a>(&self, text: &'a str, position: Position) -> Cow<'a, str> {
        let mut changed = Vec::new();
        let out = self.run(text, position, &mut changed);
        if changed.is_empty() {
            Cow::Borrowed(text)
        } else {
            Cow::Owned(out)
        }
    }

    /// Normalizes `text` and says which steps changed something.
    pub fn normalize_traced(&self, text: &str) -> Normalized {
        self.normalize_piece_traced(text, Position::WHOLE)
    }

    /// [`Normalizer::normalize_piece`] that says which steps changed something.
    pub fn normalize_piece_traced(&self, text: &str, position: Position) -> Normalized {
        let mut changed = Vec::new();
        let text = self.run(text, position, &mut changed);
        changed.sort();
        changed.dedup();
        Normalized { text, changed }
    }

    fn run(&self, text: &str, position: Position, changed: &mut Vec<Step>) -> String {
        let mut out = String::with_capacity(text.len());
        let mut pos = 0;
        let protected = links::find(text);
        for link in protected
            .iter()
            .cloned()
            .chain(std::iter::once(text.len()..text.len()))
        {
            let segment = &text[pos..link.start];
            // A stretch that does not start the piece follows a URL, so it is not at
            // the start of a line; one that does not end it comes right before one.
            let at = Position {
                starts_text: pos == 0 && position.starts_text,
                starts_line: pos == 0 && position.starts_line,
                ends_line: link.start == text.len() && position.ends_line,
            };
            let mut current = Cow::Borrowed(segment);
            for &step in &self.steps {
                if let Cow::Owned(next) = step.apply(&current, at) {
                    if !changed.contains(&step) {
                        changed.push(step);
                    }
                    current = Cow::Owned(next);
                }
            }
            out.push_str(&current);
            out.push_str(&text[link.clone()]);
            pos = link.end;
        }
        out
    }
}

impl Default for Normalizer {
    /// The `mt` profile.
    fn default() -> Self {
        Self::new(Profile::Mt)
    }
}

/// Whether some step may remove `c` altogether.
pub(crate) fn may_vanish(c: char) -> bool {
    c == '\u{0640}' || is_diacritic(c) || is_bidi_control(c) || is_zero_width(c)
}

/// Zero-width characters, soft hyphen and U+FEFF: see [`Step::ZeroWidth`].
pub(crate) fn is_zero_width(c: char) -> bool {
    matches!(
        c,
        '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{00AD}' | '\u{FEFF}'
    )
}

/// Bidirectional controls: see [`Step::Bidi`].
pub(crate) fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn is_diacritic(c: char) -> bool {
    matches!(c,
        '\u{0610}'..='\u{061A}'
        | '\u{064B}'..='\u{065F}'
        | '\u{0670}'
        | '\u{06D6}'..='\u{06DC}'
        | '\u{06DF}'..='\u{06E4}'
        | '\u{06E7}'..='\u{06E8}'
        | '\u{06EA}'..='\u{06ED}'
        | '\u{08D3}'..='\u{08E1}'
        | '\u{08E3}'..='\u{08FF}')
}

fn is_emoji(c: char) -> bool {
    matches!(c, '\u{2600}'..='\u{27BF}' | '\u{1F000}'..='\u{1FAFF}')
}

fn remove_chars(s: &str, remove: impl Fn(char) -> bool) -> Cow<'_, str> {
    if s.chars().any(&remove) {
        Cow::Owned(s.chars().filter(|&c| !remove(c)).collect())
    } else {
        Cow::Borrowed(s)
    }
}

fn map_chars(s: &str, map: impl Fn(char) -> Option<char>) -> Cow<'_, str> {
    if s.chars().any(|c| map(c).is_some()) {
        Cow::Owned(s.chars().map(|c| map(c).unwrap_or(c)).collect())
    } else {
        Cow::Borrowed(s)
    }
}

fn line_endings(s: &str) -> Cow<'_, str> {
    if !s.contains(['\r', '\u{0085}', '\u{2028}', '\u{2029}']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                chars.next_if_eq(&'\n');
                out.push('\n');
            }
            '\u{0085}' | '\u{2028}' | '\u{2029}' => out.push('\n'),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn zero_width(s: &str) -> Cow<'_, str> {
    let is_zw = is_zero_width;
    if !s.chars().any(is_zw) {
        return Cow::Borrowed(s);
    }
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    for (i, &c) in chars.iter().enumerate() {
        let emoji_joiner = c == '\u{200D}'
            && i > 0
            && is_emoji(chars[i - 1])
            && chars.get(i + 1).copied().is_some_and(is_emoji);
        if !is_zw(c) || emoji_joiner {
            out.push(c);
        }
    }
    if out.len() == s.len() {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(out)
    }
}

fn ascii_digit(c: char) -> Option<char> {
    match c {
        '\u{0660}'..='\u{0669}' => char::from_digit(c as u32 - 0x0660, 10),
        '\u{06F0}'..='\u{06F9}' => char::from_digit(c as u32 - 0x06F0, 10),
        _ => None,
    }
}

fn is_any_digit(c: char) -> bool {
    c.is_ascii_digit() || ascii_digit(c).is_some()
}

fn digits(s: &str) -> Cow<'_, str> {
    if !s
        .chars()
        .any(|c| ascii_digit(c).is_some() || c == '٫' || c == '٬')
    {
        return Cow::Borrowed(s);
    }
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    for (i, &c) in chars.iter().enumerate() {
        let between_digits = || {
            i > 0
                && is_any_digit(chars[i - 1])
                && chars.get(i + 1).copied().is_some_and(is_any_digit)
        };
        let mapped = match c {
            '٫' if between_digits() => '.',
            '٬' if between_digits() => ',',
            c => ascii_digit(c).unwrap_or(c),
        };
        out.push(mapped);
    }
    if out == s {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(out)
    }
}

/// See [`Step::Whitespace`]; spaces at the edges of `s` are trimmed only where `s`
/// starts or ends a line.
fn whitespace(s: &str, at_start: bool, at_end: bool) -> Cow<'_, str> {
    let mut out = String::with_capacity(s.len());
    let mut line_start = at_start;
    let mut pending_space = false;
    let mut newlines = 0usize;
    for c in s.chars() {
        if c == '\n' {
            pending_space = false;
            newlines += 1;
        } else if c.is_whitespace() {
            pending_space = true;
        } else {
            if newlines > 0 {
                out.extend(std::iter::repeat_n('\n', newlines.min(2)));
                newlines = 0;
                line_start = true;
            }
            if pending_space && !line_start {
                out.push(' ');
            }
            pending_space = false;
            line_start = false;
            out.push(c);
        }
    }
    if newlines > 0 {
        out.extend(std::iter::repeat_n('\n', newlines.min(2)));
    } else if pending_space && !at_end && !line_start {
        out.push(' ');
    }
    if out == s {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(step: Step, text: &str) -> String {
        Normalizer::from_steps([step]).normalize(text).into_owned()
    }

    #[test]
    fn bom_only_at_the_start() {
        assert_eq!(step(Step::Bom, "\u{FEFF}سلام"), "سلام");
        assert_eq!(step(Step::Bom, "سلام\u{FEFF}"), "سلام\u{FEFF}");
    }

    #[test]
    fn line_endings_become_newlines() {
        assert_eq!(
            step(Step::LineEndings, "a\r\nb\rc\u{2028}d\r\n\r\ne"),
            "a\nb\nc\nd\n\ne"
        );
    }

    #[test]
    fn bidi_controls_are_removed() {
        assert_eq!(
            step(
                Step::Bidi,
                "\u{200F}قال\u{200E} \u{2067}CNN\u{2069}\u{061C}"
            ),
            "قال CNN"
        );
    }

    #[test]
    fn zero_width_characters_are_removed_but_emoji_joiners_stay() {
        assert_eq!(
            step(Step::ZeroWidth, "بي\u{200C}بي\u{200B}سي\u{00AD}\u{FEFF}"),
            "بيبيسي"
        );
        let family = "👨\u{200D}👩\u{200D}👧";
        assert_eq!(step(Step::ZeroWidth, family), family);
    }

    #[test]
    fn tatweel_is_removed() {
        assert_eq!(step(Step::Tatweel, "مـــرحبـا"), "مرحبا");
    }

    #[test]
    fn diacritics_are_removed() {
        assert_eq!(step(Step::Diacritics, "مُحَمَّدٌ ذٰلِكَ"), "محمد ذلك");
    }

    #[test]
    fn alef_ya_and_ta_marbuta_fold() {
        assert_eq!(step(Step::Alef, "أحمد إلى آمال ٱلله"), "احمد الى امال الله");
        assert_eq!(step(Step::Ya, "مصطفى ی"), "مصطفي ي");
        assert_eq!(step(Step::TaMarbuta, "مدرسة"), "مدرسه");
    }

    #[test]
    fn digits_keep_the_number() {
        assert_eq!(
            step(Step::Digits, "٣٫٥ و١٬٠٠٠ و١٠:٠٨ و۱۴۰۲"),
            "3.5 و1,000 و10:08 و1402"
        );
        // A separator that is not between digits is not a separator: left alone.
        assert_eq!(step(Step::Digits, "٫ ٬"), "٫ ٬");
    }

    #[test]
    fn whitespace_is_unified() {
        assert_eq!(
            step(
                Step::Whitespace,
                "  قال\u{00A0}\t ترمب  \n\n\n\n  إن \u{2009}"
            ),
            "قال ترمب\n\nإن"
        );
        assert_eq!(step(Step::Whitespace, "a\n"), "a\n");
    }

    #[test]
    fn nfc_composes() {
        assert_eq!(step(Step::Nfc, "\u{0627}\u{0653}"), "\u{0622}");
        assert_eq!(step(Step::Nfc, "e\u{0301}"), "é");
    }

    #[test]
    fn mt_keeps_diacritics_and_letters() {
        let mt = Normalizer::new(Profile::Mt);
        assert_eq!(
            mt.normalize("\u{FEFF}مُحَمَّد ــ أحمد\u{200F}\r\n"),
            "مُحَمَّد أحمد\n"
        );
    }

    #[test]
    fn search_folds() {
        let search = Normalizer::new(Profile::Search);
        assert_eq!(search.normalize("إلى مُدرّسةِ أحمد"), "الي مدرسه احمد");
    }

    #[test]
    fn digits_are_opt_in() {
        assert_eq!(Normalizer::new(Profile::Mt).normalize("٣٫٥"), "٣٫٥");
        let mt = Normalizer::new(Profile::Mt).with_step("digits".parse().unwrap());
        assert_eq!(mt.normalize("٣٫٥"), "3.5");
    }

    #[test]
    fn links_are_left_verbatim() {
        let search = Normalizer::new(Profile::Search).with_step(Step::Digits);
        let text =
            "زوروا http://مثال.مصر/أخبار/٢٠٢٥ أو اكتبوا إلى info@example.com٣ «www.موقع.com/إلى»";
        assert_eq!(
            search.normalize(text),
            "زوروا http://مثال.مصر/أخبار/٢٠٢٥ او اكتبوا الي info@example.com3 «www.موقع.com/إلى»"
        );
    }

    #[test]
    fn pieces_normalize_like_the_whole() {
        let mt = Normalizer::new(Profile::Mt);
        let whole = "\u{FEFF}قال  ترمب \n\n\n  إن   الحرب";
        let first = Position {
            ends_line: false,
            ..Position::WHOLE
        };
        let second = Position {
            starts_text: false,
            starts_line: false,
            ends_line: true,
        };
        let pieces = [
            ("\u{FEFF}قال  ", first),
            ("ترمب \n\n\n  إن   ", first),
            ("الحرب", second),
        ];
        let mut joined = String::new();
        for (i, (piece, position)) in pieces.into_iter().enumerate() {
            let position = if i == 1 {
                Position {
                    starts_text: false,
                    starts_line: false,
                    ..position
                }
            } else {
                position
            };
            joined.push_str(&mt.normalize_piece(piece, position));
        }
        assert_eq!(joined, mt.normalize(whole));
        assert_eq!(joined, "قال ترمب\n\nإن الحرب");
    }

    #[test]
    fn traced_reports_steps_that_changed_something() {
        let out = Normalizer::new(Profile::Mt).normalize_traced("مـرحبا  بكم");
        assert_eq!(out.text, "مرحبا بكم");
        assert_eq!(out.changed, [Step::Tatweel, Step::Whitespace]);
    }

    #[test]
    fn names_parse_back() {
        for step in Step::ALL {
            assert_eq!(step.name().parse::<Step>().unwrap(), step);
        }
        for profile in [Profile::None, Profile::Mt, Profile::Search] {
            assert_eq!(profile.name().parse::<Profile>().unwrap(), profile);
        }
        assert!(matches!(
            "nope".parse::<Step>(),
            Err(Error::UnknownStep { .. })
        ));
        assert!(matches!(
            "nope".parse::<Profile>(),
            Err(Error::UnknownProfile(_))
        ));
    }

    #[test]
    fn english_only_changes_in_whitespace() {
        let mt = Normalizer::new(Profile::Search);
        assert_eq!(
            mt.normalize("The  U.S. economy grew 3.5%.\n"),
            "The U.S. economy grew 3.5%.\n"
        );
    }
}
