//! The seed article splits into its real sentences.
//!
//! Decided by reading the article: every line is one sentence (one of them the
//! unpunctuated heading `ثالث لقاء مع بوتين`), except two lines that hold two each:
//! Rubio's quote (`... أم لا.` then `وآمل أن تكون كذلك".`) and the last line (`... منذ 3
//! سنوات.` then `وأضاف عقب ...`). The trailing-off `..".` inside Trump's quote ends
//! its sentence once, and no split falls at the many `،`, inside `(الناتو)` or after
//! `لـ"أكسيوس"`.

use tarjama_text::{split, Script};

/// (first two words, last word) of each sentence, in order.
const EXPECTED: &[(&str, &str)] = &[
    ("قال كيريل", "\"مثمرة\"."),
    ("واجتمع بوتين", "الروسية."),
    ("ونقلت وكالة", "ويتكوف."),
    ("ولم يقدم", "للمكالمة."),
    ("في المقابل،", "وأوكرانيا."),
    ("وأضافت ليفيت:", "الحرب\"."),
    ("ومع بدء", "لها..\"."),
    ("وكان المتحدث", "ترمب\"."),
    ("ولفت إلى", "المرحلة."),
    ("وأكد المتحدث", "\"تاس\"."),
    ("ثالث لقاء", "بوتين"),
    ("وسيصبح هذا", "واشنطن."),
    ("وأعرب ترمب", "يحكمهم."),
    ("وقال مصدر", "للعقوبات."),
    ("وقال وزير", "لا."),
    ("وآمل أن", "كذلك\"."),
    ("والتقى ويتكوف", "المفاوضات."),
    ("وقال ديميترييف", "سنوات."),
    ("وأضاف عقب", "الأمد\"."),
];

#[test]
fn seed_article_splits_into_its_sentences() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../seeds/000_34bb1b6fbb72ba1f.txt"
    );
    let text = std::fs::read_to_string(path).expect("the seed article is in seeds/");
    let paragraphs = split(&text);
    // Lines are separated by single line breaks: one paragraph.
    assert_eq!(paragraphs.len(), 1);
    let sentences = &paragraphs[0].sentences;
    let got: Vec<(String, &str)> = sentences
        .iter()
        .map(|s| {
            let words: Vec<&str> = s.text.split_whitespace().collect();
            (
                words[..2.min(words.len())].join(" "),
                words[words.len() - 1],
            )
        })
        .collect();
    let want: Vec<(String, &str)> = EXPECTED.iter().map(|&(a, b)| (a.to_owned(), b)).collect();
    assert_eq!(got, want);
    for s in sentences {
        assert_eq!(&text[s.span.clone()], s.text);
        assert_eq!(s.script, Script::Arabic);
    }
    assert_eq!(
        sentences[10].text, "ثالث لقاء مع بوتين",
        "the heading is a sentence of its own"
    );
}
