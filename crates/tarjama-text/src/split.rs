//! Sentence splitting for Arabic and mixed Arabic/English text.
//!
//! A paragraph is a run of non-blank lines; blank lines separate paragraphs. Inside a
//! paragraph every line break ends a sentence (news text puts one sentence or one
//! heading on a line), and inside a line a sentence ends after `.` `!` `?` `؟` `…`
//! (and their runs, like `؟!` or `..`), with the closing quotes and brackets that
//! follow (`" » ” ’ ) ]`) kept with it, when whitespace or the end of the line comes
//! next. That last condition already keeps decimals (`3.5`, `٣٫٥`), times (`١٠:٠٨`),
//! dotted acronyms glued together and domain names whole; on top of it a period does
//! not end a sentence after:
//!
//! - a single letter, Latin or Arabic: an initial (`J. K.`, `د.` for doctor, `أ.` for
//!   professor), unless a number comes right before it (`عام 2020 م.`, year CE) or it
//!   is a Latin letter before an Arabic word (`من A إلى B. ثم`);
//! - a title or Latin abbreviation from [`LATIN_ABBREVIATIONS`] (`Dr.`, `Mr.`, `e.g.`);
//! - a dotted acronym (`U.S.`, `ق.م.`);
//! - the Arabic name of a Latin letter (`دي. كي.` for D. K.) that stands next to
//!   another initial;
//! - anything, when the next word starts with a lowercase Latin letter.
//!
//! An ellipsis ends a sentence only at the end of a line or before a Latin capital;
//! before Arabic it is a pause inside the sentence (`كان... ثم`). Nothing inside a URL
//! or e-mail address ends a sentence, and the Arabic comma `،` never does.
//!
//! Every sentence keeps its byte span in the original text and the text between
//! sentences is whitespace only, so no visible character is ever lost.

use std::ops::Range;

use serde::Serialize;

use crate::{links, normalize, Script};

/// A sentence: its byte span in the original text, its text and its script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sentence<'a> {
    /// Byte span in the original text (shifted by the `offset` given to [`split_at`]).
    pub span: Range<usize>,
    /// The sentence, exactly as in the original text, without surrounding whitespace.
    pub text: &'a str,
    /// The script of its letters.
    pub script: Script,
}

/// A paragraph: a run of non-blank lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Paragraph<'a> {
    /// Byte span from the first sentence's start to the last sentence's end.
    pub span: Range<usize>,
    /// The sentences, in order; never empty.
    pub sentences: Vec<Sentence<'a>>,
}

/// Titles and Latin abbreviations after which a period does not end a sentence.
/// Kept to words that almost never end one (`etc.` and `Inc.` often do).
pub const LATIN_ABBREVIATIONS: &[&str] = &[
    "Mr", "Mrs", "Ms", "Dr", "Prof", "St", "Jr", "Sr", "Gen", "Col", "Lt", "Sgt", "Capt", "Cpt",
    "Maj", "Adm", "Gov", "Sen", "Rep", "Rev", "Hon", "Pres", "Mt", "Ft", "No", "Nos", "Vol", "Fig",
    "vs", "approx", "cf", "ca", "Ave", "Blvd",
];

/// Arabic spellings of Latin letter names, which stand for initials (`دي. كي. أريا`).
const LETTER_NAMES: &[&str] = &[
    "إيه",
    "اي",
    "إي",
    "بي",
    "سي",
    "دي",
    "إف",
    "اف",
    "جي",
    "إتش",
    "اتش",
    "آي",
    "جاي",
    "كي",
    "إل",
    "ال",
    "إم",
    "ام",
    "إن",
    "ان",
    "أو",
    "كيو",
    "آر",
    "إس",
    "اس",
    "تي",
    "يو",
    "في",
    "دبليو",
    "إكس",
    "اكس",
    "واي",
    "زد",
    "زي",
];

/// Splits `text` into paragraphs of sentences; spans are offsets into `text`.
pub fn split(text: &str) -> Vec<Paragraph<'_>> {
    split_at(text, 0)
}

/// Splits `text`, a piece of a larger input that starts at byte `offset` of it, so the
/// spans are offsets into the whole input. The piece should start at the start of a
/// line.
pub fn split_at(text: &str, offset: usize) -> Vec<Paragraph<'_>> {
    let mut paragraphs = Vec::new();
    let mut current: Vec<Sentence<'_>> = Vec::new();
    for line in lines(text) {
        let content = &text[line.clone()];
        if content.trim().is_empty() {
            flush(&mut paragraphs, &mut current);
            continue;
        }
        for span in split_line(content) {
            let start = line.start + span.start;
            let end = line.start + span.end;
            let sentence = &text[start..end];
            current.push(Sentence {
                span: offset + start..offset + end,
                text: sentence,
                script: Script::detect(sentence),
            });
        }
    }
    flush(&mut paragraphs, &mut current);
    paragraphs
}

fn flush<'a>(paragraphs: &mut Vec<Paragraph<'a>>, current: &mut Vec<Sentence<'a>>) {
    if let (Some(first), Some(last)) = (current.first(), current.last()) {
        paragraphs.push(Paragraph {
            span: first.span.start..last.span.end,
            sentences: std::mem::take(current),
        });
    }
}

fn is_line_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{0085}' | '\u{2028}' | '\u{2029}')
}

/// Spans of the lines of `text`, without their line breaks (`\r\n` counts as one).
fn lines(text: &str) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= text.len() {
            return None;
        }
        let start = pos;
        match text[start..]
            .char_indices()
            .find(|&(_, c)| is_line_break(c))
        {
            Some((k, c)) => {
                let end = start + k;
                pos = end + c.len_utf8();
                if c == '\r' && text[pos..].starts_with('\n') {
                    pos += 1;
                }
                Some(start..end)
            }
            None => {
                pos = text.len();
                Some(start..text.len())
            }
        }
    })
}

fn is_terminator(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '؟' | '…' | '۔' | '‼' | '⁇' | '⁈' | '⁉')
}

fn is_closer(c: char) -> bool {
    matches!(c, '"' | '\'' | '»' | '”' | '’' | '›' | ')' | ']' | '}')
}

/// Bidi controls and zero-width characters: they take no room and carry no meaning for
/// where a sentence ends.
fn is_invisible(c: char) -> bool {
    normalize::is_bidi_control(c) || normalize::is_zero_width(c)
}

/// Sentence spans inside one line, trimmed of whitespace.
fn split_line(line: &str) -> Vec<Range<usize>> {
    let protected = links::find(line);
    let mut sentences = Vec::new();
    let mut start = 0;
    let mut links = protected.iter().peekable();
    let mut iter = line.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        if !is_terminator(c) {
            continue;
        }
        // Links are in order: drop those that end before this character.
        while links.next_if(|link| link.end <= i).is_some() {}
        if links.peek().is_some_and(|link| link.contains(&i)) {
            continue;
        }
        // The cluster: this terminator, the ones after it, closing quotes/brackets and
        // invisible marks (web text puts an RLM after Arabic punctuation).
        let mut end = i + c.len_utf8();
        while let Some(&(j, d)) = iter.peek() {
            if is_terminator(d) || is_closer(d) || is_invisible(d) {
                end = j + d.len_utf8();
                iter.next();
            } else {
                break;
            }
        }
        if ends_sentence(line, i, end) {
            push_trimmed(&mut sentences, line, start..end);
            start = end;
        }
    }
    push_trimmed(&mut sentences, line, start..line.len());
    sentences
}

fn push_trimmed(sentences: &mut Vec<Range<usize>>, line: &str, span: Range<usize>) {
    let piece = &line[span.clone()];
    let trimmed = piece.trim_start();
    let start = span.start + (piece.len() - trimmed.len());
    let end = start + trimmed.trim_end().len();
    if start < end {
        sentences.push(start..end);
    }
}

/// Whether the terminator cluster `line[at..end]` ends a sentence.
fn ends_sentence(line: &str, at: usize, end: usize) -> bool {
    let after = &line[end..];
    match after.chars().next() {
        None => return true,
        Some(c) if !c.is_whitespace() => return false,
        Some(_) => {}
    }
    let next = after.trim_start();
    let next_first = next.chars().next();
    if next_first.is_some_and(|c| c.is_lowercase()) {
        return false;
    }
    let cluster = &line[at..end];
    let terminators: String = cluster.chars().filter(|&c| is_terminator(c)).collect();
    if terminators.contains(['!', '?', '؟', '‼', '⁇', '⁈', '⁉']) {
        return true;
    }
    // `..".` closes a quoted trailing-off and then the sentence: a full stop.
    let stop_after_closer = cluster.ends_with(is_terminator) && cluster.contains(is_closer);
    if !stop_after_closer && (terminators.contains('…') || terminators.starts_with("..")) {
        // An ellipsis before more Arabic is a pause; before a Latin capital, a digit
        // or an opening quote it is taken as an end.
        return next_first.is_none_or(|c| !c.is_alphabetic() || c.is_uppercase());
    }
    // A lone period (or `۔`): look at the word it closes.
    let word = last_word(&line[..at]);
    if word.is_empty() {
        return true;
    }
    let letters = word.chars().count();
    if letters == 1 && word.chars().all(char::is_alphabetic) {
        // A Latin initial belongs to a Latin name; before Arabic it is a word of its
        // own (`من A إلى B. ثم`).
        let latin_before_arabic =
            word.is_ascii() && next_first.is_some_and(crate::script::is_arabic);
        return latin_before_arabic || follows_number(&line[..at - word.len()]);
    }
    if LATIN_ABBREVIATIONS.contains(&word) || is_dotted_acronym(word) {
        return false;
    }
    if LETTER_NAMES.contains(&word) {
        let before = last_word(line[..at - word.len()].trim_end());
        let after = next.split(char::is_whitespace).next().unwrap_or("");
        let is_initial = |w: &str| w.strip_suffix('.').is_some_and(is_initial_stem);
        return !(is_initial(before) || is_initial(after));
    }
    true
}

/// The word right before `at`: letters, digits and inner dots, after whitespace or an
/// opening bracket or quote.
fn last_word(text: &str) -> &str {
    let start = text
        .char_indices()
        .rev()
        .find(|&(_, c)| !(c.is_alphanumeric() || c == '.' || c == '\u{0640}'))
        .map_or(0, |(k, c)| k + c.len_utf8());
    &text[start..]
}

/// Whether `stem` (an initial without its period) is one letter or the Arabic name of
/// a Latin letter.
fn is_initial_stem(stem: &str) -> bool {
    (stem.chars().count() == 1 && stem.chars().all(char::is_alphabetic))
        || LETTER_NAMES.contains(&stem)
}

/// `U.S`, `e.g`, `ق.م`: letters in groups of one or two, joined by periods.
fn is_dotted_acronym(word: &str) -> bool {
    word.contains('.')
        && word.split('.').all(|part| {
            let n = part.chars().count();
            (1..=2).contains(&n) && part.chars().all(char::is_alphabetic)
        })
}

/// Whether the text before a single letter ends with a number (`2020 م`).
fn follows_number(before: &str) -> bool {
    before
        .trim_end()
        .chars()
        .next_back()
        .is_some_and(|c| c.is_numeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentences(text: &str) -> Vec<&str> {
        split(text)
            .into_iter()
            .flat_map(|p| p.sentences)
            .map(|s| s.text)
            .collect()
    }

    #[test]
    fn ends_at_arabic_and_latin_terminators() {
        assert_eq!(
            sentences("هل انتهى؟ نعم! انتهى. Really? Yes."),
            ["هل انتهى؟", "نعم!", "انتهى.", "Really?", "Yes."]
        );
    }

    #[test]
    fn ends_at_a_line_break_without_punctuation() {
        assert_eq!(
            sentences("ثالث لقاء مع بوتين\nوسيصبح هذا هو اللقاء الثالث."),
            ["ثالث لقاء مع بوتين", "وسيصبح هذا هو اللقاء الثالث."]
        );
    }

    #[test]
    fn closing_quotes_and_brackets_stay_with_their_sentence() {
        assert_eq!(
            sentences(
                "قال إنها \"مثمرة\". وأضاف: «انتهى.» ثم (غادر.) وقال \u{201C}نعم.\u{201D} Ok"
            ),
            [
                "قال إنها \"مثمرة\".",
                "وأضاف: «انتهى.»",
                "ثم (غادر.)",
                "وقال \u{201C}نعم.\u{201D}",
                "Ok"
            ]
        );
    }

    #[test]
    fn a_run_of_terminators_is_one_end() {
        assert_eq!(
            sentences("لا معنى لها..\". ماذا؟! حقاً..."),
            ["لا معنى لها..\".", "ماذا؟!", "حقاً..."]
        );
    }

    #[test]
    fn invisible_marks_after_the_terminator_stay_with_it() {
        assert_eq!(
            sentences("انتهى.\u{200F} ثم بدأ؟\u{200F}\u{200E} نعم"),
            ["انتهى.\u{200F}", "ثم بدأ؟\u{200F}\u{200E}", "نعم"]
        );
    }

    #[test]
    fn never_at_the_arabic_comma_or_semicolon() {
        assert_eq!(sentences("قال، ثم أضاف؛ وغادر."), ["قال، ثم أضاف؛ وغادر."]);
    }

    #[test]
    fn never_inside_numbers_or_times() {
        assert_eq!(
            sentences("بلغ النمو 3.5 في المئة و٣٫٥ أيضاً عند الساعة ١٠:٠٨ و10.30 صباحاً."),
            ["بلغ النمو 3.5 في المئة و٣٫٥ أيضاً عند الساعة ١٠:٠٨ و10.30 صباحاً."]
        );
    }

    #[test]
    fn never_after_arabic_initials_and_titles() {
        assert_eq!(
            sentences("اكتشف د. توني مول المرض. وقال أ. د. سامي إن ن. وين هالي محق."),
            [
                "اكتشف د. توني مول المرض.",
                "وقال أ. د. سامي إن ن. وين هالي محق."
            ]
        );
    }

    #[test]
    fn never_inside_arabic_spelled_initials() {
        assert_eq!(
            sentences("وقال نائب المفتش العام دي. كي. أريا، \"اعتقلنا خمسة.\" وانتهى."),
            [
                "وقال نائب المفتش العام دي. كي. أريا، \"اعتقلنا خمسة.\"",
                "وانتهى."
            ]
        );
    }

    #[test]
    fn a_letter_after_a_number_is_a_unit_not_an_initial() {
        assert_eq!(
            sentences("ولد عام 1990 م. ثم هاجر."),
            ["ولد عام 1990 م.", "ثم هاجر."]
        );
    }

    #[test]
    fn a_latin_letter_before_arabic_is_not_an_initial() {
        assert_eq!(
            sentences("رحلات من A إلى B. يمكن ذلك."),
            ["رحلات من A إلى B.", "يمكن ذلك."]
        );
    }

    #[test]
    fn never_after_latin_abbreviations_and_initials() {
        assert_eq!(
            sentences(
                "Dr. Smith met J. K. Rowling in the U.S. last year, e.g. in May. Then he left."
            ),
            [
                "Dr. Smith met J. K. Rowling in the U.S. last year, e.g. in May.",
                "Then he left."
            ]
        );
    }

    #[test]
    fn an_ellipsis_inside_a_sentence_does_not_end_it() {
        assert_eq!(
            sentences("كان مثلي... وربما أكثر… آمل ذلك. He paused... then spoke... Then left."),
            [
                "كان مثلي... وربما أكثر… آمل ذلك.",
                "He paused... then spoke...",
                "Then left."
            ]
        );
    }

    #[test]
    fn never_inside_urls_or_emails() {
        assert_eq!(
            sentences("راجع https://example.com/a.b?c=d و news@bbc.co.uk. انتهى."),
            [
                "راجع https://example.com/a.b?c=d و news@bbc.co.uk.",
                "انتهى."
            ]
        );
        assert_eq!(
            sentences("زر www.example.com. ثم عد"),
            ["زر www.example.com.", "ثم عد"]
        );
    }

    #[test]
    fn blank_lines_separate_paragraphs() {
        let text = "أولاً. ثانياً.\nثالثاً\n\n \r\n\r\nرابعاً.\r\n";
        let paragraphs = split(text);
        assert_eq!(paragraphs.len(), 2);
        assert_eq!(paragraphs[0].sentences.len(), 3);
        assert_eq!(&text[paragraphs[0].span.clone()], "أولاً. ثانياً.\nثالثاً");
        assert_eq!(&text[paragraphs[1].span.clone()], "رابعاً.");
    }

    #[test]
    fn spans_point_into_the_original_and_shift_with_the_offset() {
        let text = "  مرحبا.   Hello!  ";
        for (offset, paragraphs) in [(0, split(text)), (100, split_at(text, 100))] {
            for sentence in &paragraphs[0].sentences {
                let local = sentence.span.start - offset..sentence.span.end - offset;
                assert_eq!(&text[local], sentence.text);
            }
        }
        let spans: Vec<_> = split(text)[0]
            .sentences
            .iter()
            .map(|s| s.span.clone())
            .collect();
        assert_eq!(spans, [2..13, 16..22]);
    }

    #[test]
    fn sentences_carry_their_script() {
        let paragraphs = split("قال ترمب إن الحرب ستنتهي. The war will end. 2025.");
        let scripts: Vec<_> = paragraphs[0].sentences.iter().map(|s| s.script).collect();
        assert_eq!(scripts, [Script::Arabic, Script::Latin, Script::None]);
    }

    #[test]
    fn empty_and_blank_text_have_no_paragraphs() {
        assert!(split("").is_empty());
        assert!(split(" \n\t\n").is_empty());
    }
}
