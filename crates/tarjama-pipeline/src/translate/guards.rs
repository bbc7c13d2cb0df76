//! The guards on a chat model's answer: what small models wrap around a translation is
//! stripped ([`clean_answer`]), and what a check can see is wrong with the rest (empty,
//! still Arabic, a repetition loop, a label, far too long or short) is named
//! ([`problem`]), so the translator retries or redoes it. Numbered answers to a batch are
//! parsed back into their sentences ([`parse_numbered`]).
//!
//! The summaries check their answers with [`arabic_share`] too.

/// Removes what small chat models wrap around a translation: a lead-in ("Here is the
/// translation:", "The text translates to English as:") on a line of its own or before the
/// translation on the same line, a `Translation:` label, code fences, enclosing quotes,
/// and notes after the translation ("Note: ...", "(Note: ...)", "This translation ...").
///
/// A line that ends with a colon is real content as often as not ("He said:" before a
/// quote): it is taken for a lead-in only when it talks about the translation itself
/// (`is_lead_in`), and a note only when it comes after the translation's first line.
pub fn clean_answer(raw: &str) -> String {
    let mut lines: Vec<&str> = raw.trim().lines().collect();
    let is_fence = |l: &str| l.trim().starts_with("```");
    while let Some(first) = lines.first() {
        let followed = lines[1..]
            .iter()
            .any(|l| !l.trim().is_empty() && !is_fence(l));
        let first = first.trim();
        if first.is_empty() || is_fence(first) || is_lead_in(first, followed) {
            lines.remove(0);
        } else {
            break;
        }
    }
    // A note ends the answer: it and everything after it go.
    if let Some(k) = (1..lines.len()).find(|&k| is_note(lines[k], lines[k - 1].trim().is_empty())) {
        lines.truncate(k);
    }
    while lines
        .last()
        .is_some_and(|l| is_fence(l) || l.trim().is_empty())
    {
        lines.pop();
    }
    let mut text = lines.join("\n").trim().to_string();
    if let Some(rest) = strip_inline_lead_in(&text) {
        text = rest.to_string();
    }
    for label in ["Translation:", "English:", "English translation:"] {
        if let Some(rest) = text.strip_prefix(label) {
            text = rest.trim().to_string();
        }
    }
    // "(Note: ...)" after the translation on the same line.
    if let Some(k) = text.rfind('(').filter(|&k| k > 0 && text.ends_with(')')) {
        let tail = text[k + 1..].to_lowercase();
        let notes = [
            "note:",
            "notes:",
            "note that",
            "translator's note",
            "translator’s note",
            "translation note",
        ];
        if notes.iter().any(|n| tail.starts_with(n)) {
            text = text[..k].trim_end().to_string();
        }
    }
    let quoted = |o: char, c: char| text.starts_with(o) && text.ends_with(c) && text.len() > 2;
    if quoted('"', '"') || quoted('“', '”') {
        let inner: String = {
            let mut cs = text.chars();
            cs.next();
            cs.next_back();
            cs.collect()
        };
        if !inner.contains(['"', '“', '”']) {
            text = inner;
        }
    }
    text
}

/// Lowercase words of `text` (letters and digits; `here's` gives `here`, `s`).
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// A word about the act of translating: `translation`, `translates`, ... (not
/// `translator`, a person a news sentence may well quote).
fn is_translate_word(w: &str) -> bool {
    w.starts_with("translat") && !w.starts_with("translator")
}

/// Whether the words open with a reply's courtesy: "Here is", "Sure", "Of course", ...
fn opens_a_reply(w: &[String]) -> bool {
    let first = w.first().map_or("", String::as_str);
    matches!(
        first,
        "here" | "sure" | "certainly" | "okay" | "ok" | "absolutely" | "below"
    ) || (first == "of" && w.get(1).is_some_and(|s| s == "course"))
}

/// Whether the words name the text being translated.
fn names_the_text(w: &[String]) -> bool {
    w.iter()
        .any(|w| matches!(w.as_str(), "text" | "sentence" | "arabic" | "english"))
}

/// Whether a line ending with `:` introduces the translation rather than being part of
/// it; `followed`: whether text comes after it.
///
/// It must talk about the translation: a translating word or "English" anywhere ("The
/// text translates to English as:"), or, with text after it, a reply's opening ("Here it
/// is:", "Sure:") or a short line about the text ("The Arabic text says:", "The sentence
/// reads as follows:"). "He said:", "The plan is as follows:" or "The text of the
/// agreement reads:" are content and stay.
fn is_lead_in(line: &str, followed: bool) -> bool {
    let line = line.trim().trim_matches(['*', '_', '#']).trim();
    let Some(body) = line.strip_suffix(':').or_else(|| line.strip_suffix('：')) else {
        return false;
    };
    let w = words(body);
    if w.is_empty() || w.len() > 15 {
        return false;
    }
    if w.iter().any(|w| is_translate_word(w) || w == "english") {
        // Even with nothing after it: the answer is then empty, which is retried.
        return true;
    }
    if !followed {
        return false;
    }
    let joined = w.join(" ");
    let points_ahead = ["as follows", "the following", "below"]
        .iter()
        .any(|p| joined.contains(p));
    opens_a_reply(&w) || (names_the_text(&w) && (points_ahead || w.len() <= 4))
}

/// The translation after a lead-in on the same line ("The text translates to English as:
/// Putin met ..."), if there is one. Stricter than [`is_lead_in`]: "He told the English
/// paper: ..." is content, so "English" alone does not count here.
fn strip_inline_lead_in(text: &str) -> Option<&str> {
    let colon = text.find(": ")?;
    let (head, rest) = (&text[..colon], text[colon + 1..].trim_start());
    let first_line_ends = text.find('\n').unwrap_or(text.len());
    if colon > first_line_ends || rest.is_empty() {
        return None;
    }
    let w = words(head);
    if w.is_empty() || w.len() > 12 {
        return None;
    }
    let label = w.iter().all(|w| {
        matches!(
            w.as_str(),
            "in" | "into" | "to" | "the" | "english" | "version" | "text" | "arabic"
        )
    });
    let lead_in = w.iter().any(|w| is_translate_word(w))
        || (opens_a_reply(&w) && names_the_text(&w))
        || (label && w.iter().any(|w| w == "english"));
    lead_in.then_some(rest)
}

/// Whether `line` starts a note about the translation. "Note:" does wherever it stands
/// after the first line; softer openings ("This translation ...", "Please note") only
/// after a blank line, where the translation has ended.
fn is_note(line: &str, after_blank: bool) -> bool {
    let l = line
        .trim()
        .trim_start_matches(['*', '_', '(', '[', '#', ' '])
        .to_lowercase();
    let strong = [
        "note:",
        "notes:",
        "note -",
        "n.b.",
        "translator's note",
        "translator’s note",
        "translation note",
    ];
    if strong.iter().any(|p| l.starts_with(p)) {
        return true;
    }
    let soft = [
        "note ",
        "this translation",
        "the translation",
        "in this translation",
        "the above",
        "please note",
        "i hope",
        "let me know",
        "if you",
        "explanation",
    ];
    after_blank && soft.iter().any(|p| l.starts_with(p))
}

/// What is wrong with a translation, if anything a check can see.
pub(crate) fn problem(translation: &str, source: &str) -> Option<&'static str> {
    if translation.trim().is_empty() {
        return Some("an empty answer");
    }
    if arabic_share(translation) > 0.2 {
        return Some("an answer still in Arabic");
    }
    if is_looping(translation) {
        return Some("a repetition loop");
    }
    let w = words(translation);
    if !w.is_empty()
        && w.iter()
            .all(|w| is_translate_word(w) || matches!(w.as_str(), "english" | "text" | "the"))
    {
        // "English translation", "Translated text": a label in place of the text.
        return Some("a label instead of a translation");
    }
    let (src, out) = (source.chars().count(), translation.chars().count());
    if out > src * 4 + 80 {
        return Some("an answer far longer than the source");
    }
    // Written Arabic leaves out short vowels: its English is rarely much shorter.
    if src >= 40 && out * 3 < src {
        return Some("an answer far shorter than the source");
    }
    None
}

/// Whether a translation passes every guard ([`problem`] sees nothing wrong).
pub(crate) fn problem_free(translation: &str, source: &str) -> bool {
    problem(translation, source).is_none()
}

/// Share of letters that are Arabic.
pub(crate) fn arabic_share(text: &str) -> f32 {
    let (mut arabic, mut letters) = (0usize, 0usize);
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        letters += 1;
        if matches!(c, '\u{0600}'..='\u{06FF}' | '\u{0750}'..='\u{077F}' | '\u{08A0}'..='\u{08FF}' | '\u{FB50}'..='\u{FDFF}' | '\u{FE70}'..='\u{FEFF}')
        {
            arabic += 1;
        }
    }
    if letters == 0 {
        0.0
    } else {
        arabic as f32 / letters as f32
    }
}

/// A word 4-gram that occurs 3 times or more: the signature of a model stuck in a loop.
fn is_looping(text: &str) -> bool {
    let words: Vec<String> = text.split_whitespace().map(|w| w.to_lowercase()).collect();
    if words.len() < 12 {
        return false;
    }
    let mut counts = std::collections::HashMap::new();
    for gram in words.windows(4) {
        let c = counts.entry(gram).or_insert(0);
        *c += 1;
        if *c >= 3 {
            return true;
        }
    }
    false
}

/// Parses `N. text` lines; None unless exactly the numbers 1..=n come back, in order.
pub(crate) fn parse_numbered(raw: &str, n: usize) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for line in raw.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let digits: String = line.chars().take_while(|c| c.is_ascii_digit()).collect();
        let rest = &line[digits.len()..];
        match digits.parse::<usize>() {
            Ok(k) if k == out.len() + 1 && (rest.starts_with('.') || rest.starts_with(')')) => {
                out.push(clean_answer(rest[1..].trim()));
            }
            // A line without a number continues the previous sentence.
            _ if !out.is_empty() && digits.is_empty() => {
                let last = out.last_mut().expect("not empty");
                last.push(' ');
                last.push_str(line);
            }
            _ if out.is_empty() && digits.is_empty() => {} // a lead-in line
            _ => return None,
        }
    }
    (out.len() == n).then_some(out)
}

/// The first 40 characters of `s`, for a report (`…` when cut).
pub(crate) fn preview(s: &str) -> String {
    let mut p: String = s.chars().take(40).collect();
    if p.len() < s.len() {
        p.push('…');
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commentary_is_stripped() {
        assert_eq!(
            clean_answer("Here is the translation:\n\n\"Putin met Witkoff.\""),
            "Putin met Witkoff."
        );
        assert_eq!(clean_answer("Translation: Hello."), "Hello.");
        assert_eq!(clean_answer("```\nHello.\n```"), "Hello.");
        assert_eq!(
            clean_answer("He said \"no\" twice."),
            "He said \"no\" twice."
        );
    }

    #[test]
    fn lead_ins_about_the_translation_are_stripped() {
        // Seen on held-out news with the default model: the lead-in, a blank line, then
        // the translation. Kept, it added a paragraph to the txt output.
        assert_eq!(
            clean_answer("The text translates to English as:\n\nPutin met Witkoff in Moscow."),
            "Putin met Witkoff in Moscow."
        );
        for lead_in in [
            "Sure! Here is the translation:",
            "Here's the English version:",
            "Certainly:",
            "Of course, here it is:",
            "The Arabic text says:",
            "The sentence reads as follows:",
            "**Translation:**",
            "Translated into English, the sentence is:",
        ] {
            assert_eq!(
                clean_answer(&format!("{lead_in}\nThe talks were fruitful.")),
                "The talks were fruitful.",
                "{lead_in}"
            );
        }
        // On the translation's own line.
        assert_eq!(
            clean_answer("The text translates to English as: The talks were fruitful."),
            "The talks were fruitful."
        );
        assert_eq!(
            clean_answer("In English: The talks were fruitful."),
            "The talks were fruitful."
        );
        // A lead-in with nothing after it leaves nothing: `problem` sees an empty answer.
        assert_eq!(clean_answer("Here is the translation:"), "");
    }

    #[test]
    fn colons_that_belong_to_the_translation_stay() {
        for content in [
            "He said:\n\"We will not give up.\"",
            "The plan is as follows:\nfirst a ceasefire, then talks.",
            "The text of the agreement reads:\n\"Both sides shall withdraw.\"",
            "The minister said the following:\nthe talks will go on.",
        ] {
            assert_eq!(clean_answer(content), content);
        }
        for content in [
            "He said: \"We will not give up.\"",
            "He told the English newspaper: the talks will go on.",
            "The translator said: the book is finished.",
            "The results were as follows:",
            "Here are the main points:",
            "He bought a laptop (notebook)",
        ] {
            assert_eq!(clean_answer(content), content);
        }
    }

    #[test]
    fn notes_after_the_translation_are_stripped() {
        assert_eq!(
            clean_answer("Putin met Witkoff.\n\nNote: the names are transliterated."),
            "Putin met Witkoff."
        );
        assert_eq!(
            clean_answer("Putin met Witkoff.\n(Note: Witkoff is a US envoy.)"),
            "Putin met Witkoff."
        );
        assert_eq!(
            clean_answer("Putin met Witkoff. (Note: Witkoff is a US envoy.)"),
            "Putin met Witkoff."
        );
        assert_eq!(
            clean_answer(
                "Here is the translation:\n\nPutin met Witkoff.\n\nThis translation keeps the names as written."
            ),
            "Putin met Witkoff."
        );
        // Softer openings count only after a blank line, and never on the first line.
        assert_eq!(
            clean_answer("This translation was approved.\nThe council met."),
            "This translation was approved.\nThe council met."
        );
        assert_eq!(
            clean_answer("Note: the office is closed."),
            "Note: the office is closed."
        );
    }

    #[test]
    fn problems_are_seen() {
        assert_eq!(problem("", "x"), Some("an empty answer"));
        assert_eq!(problem("قال بوتين", "x"), Some("an answer still in Arabic"));
        let looping = "the talks were fruitful ".repeat(5);
        assert_eq!(
            problem(&looping, &"x".repeat(200)),
            Some("a repetition loop")
        );
        assert_eq!(
            problem("Putin met Witkoff in Saint Petersburg.", "قال"),
            None
        );
        // Seen on FLORES with a glossary: every line of a batch answered with a label.
        let source = "أُنشئت طرق العربات في إنجلترا في وقت يرجع إلى القرن السادس عشر.";
        assert_eq!(
            problem("English translation", source),
            Some("a label instead of a translation")
        );
        assert_eq!(
            problem("Wagonways.", source),
            Some("an answer far shorter than the source")
        );
        assert_eq!(
            problem(
                "Wagonways were built in England as early as the 16th century.",
                source
            ),
            None
        );
    }

    #[test]
    fn numbered_answers_parse_or_fail() {
        let raw = "Sure:\n1. First.\n2. Second\ncontinued.\n3) Third.";
        assert_eq!(
            parse_numbered(raw, 3).unwrap(),
            vec!["First.", "Second continued.", "Third."]
        );
        assert!(parse_numbered("1. A\n3. C", 3).is_none());
        assert!(parse_numbered("1. A\n2. B", 3).is_none());
    }
}
