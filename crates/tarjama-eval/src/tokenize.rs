//! sacreBLEU's BLEU tokenizers: `13a` (mteval-v13a, the default), `intl` (mteval-v14
//! international), `char` and `none`.
//!
//! Each reproduces the regular-expression passes of sacreBLEU's `tokenizers/` module in the
//! same order; the `regex` crate's `replace_all` is leftmost-first and non-overlapping, the
//! same as Python's `re.sub`, so a character consumed by one match is not seen by the next
//! match of the same pass, exactly as in the reference.
//!
//! `flores200`/`flores101` (SentencePiece) are not offered: they need Meta's SentencePiece
//! model, which no package we can depend on ships.

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;

use crate::pytext;
use crate::EvalError;

/// A BLEU tokenizer, named as sacreBLEU names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Tokenizer {
    /// mteval-v13a: separates punctuation and symbols, keeps decimal points and separators
    /// inside numbers. sacreBLEU's default.
    #[default]
    #[serde(rename = "13a")]
    Mteval13a,
    /// mteval-v14 international: Unicode punctuation and symbols are separated.
    #[serde(rename = "intl")]
    Intl,
    /// Every character is a token.
    #[serde(rename = "char")]
    Char,
    /// The text is split on whitespace only.
    #[serde(rename = "none")]
    None,
}

const TOKENIZER_NAMES: &str = "13a, intl, char, none";

impl Tokenizer {
    /// The name in sacreBLEU's signature (`tok:13a`).
    pub fn signature(self) -> &'static str {
        match self {
            Tokenizer::Mteval13a => "13a",
            Tokenizer::Intl => "intl",
            Tokenizer::Char => "char",
            Tokenizer::None => "none",
        }
    }

    /// Tokenizes one segment; tokens in the result are separated by single spaces.
    pub fn tokenize<'a>(self, line: &'a str) -> Cow<'a, str> {
        match self {
            Tokenizer::Mteval13a => Cow::Owned(tokenize_13a(line)),
            Tokenizer::Intl => Cow::Owned(tokenize_intl(line)),
            Tokenizer::Char => Cow::Owned(tokenize_char(line)),
            Tokenizer::None => Cow::Borrowed(line),
        }
    }
}

impl FromStr for Tokenizer {
    type Err = EvalError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "13a" => Ok(Tokenizer::Mteval13a),
            "intl" => Ok(Tokenizer::Intl),
            "char" => Ok(Tokenizer::Char),
            "none" => Ok(Tokenizer::None),
            _ => Err(EvalError::UnknownName {
                kind: "tokenizer",
                name: s.to_string(),
                expected: TOKENIZER_NAMES,
            }),
        }
    }
}

impl std::fmt::Display for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.signature())
    }
}

fn compile(pattern: &str) -> Regex {
    // The patterns are literals of this file and covered by tests; failing here is a bug.
    Regex::new(pattern).expect("tokenizer pattern is valid")
}

/// sacreBLEU `TokenizerRegexp`, the post-processing shared by `13a` and `zh`.
static RE_13A: LazyLock<[(Regex, &str); 4]> = LazyLock::new(|| {
    [
        // Language-dependent part (assuming Western languages): the ASCII ranges
        // `{-~`, `[-``, ` -&`, `(-+`, `:-@` and `/`.
        (compile(r"([\{-\~\[-\` -\&\(-\+\:-\@/])"), " ${1} "),
        // Tokenize period and comma unless preceded by a digit.
        (compile(r"([^0-9])([\.,])"), "${1} ${2} "),
        // Tokenize period and comma unless followed by a digit.
        (compile(r"([\.,])([^0-9])"), " ${1} ${2}"),
        // Tokenize dash when preceded by a digit.
        (compile(r"([0-9])(-)"), "${1} ${2} "),
    ]
});

fn tokenize_13a(line: &str) -> String {
    let mut line = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let mut line = format!(" {line} ");
    for (re, replacement) in RE_13A.iter() {
        if let Cow::Owned(replaced) = re.replace_all(&line, *replacement) {
            line = replaced;
        }
    }
    pytext::collapse_spaces(&line)
}

/// sacreBLEU `TokenizerV14International`.
static RE_INTL: LazyLock<[(Regex, &str); 3]> = LazyLock::new(|| {
    [
        // Separate out punctuation preceded by a non-digit.
        (compile(r"(\P{N})(\p{P})"), "${1} ${2} "),
        // Separate out punctuation followed by a non-digit.
        (compile(r"(\p{P})(\P{N})"), " ${1} ${2}"),
        // Separate out symbols.
        (compile(r"(\p{S})"), " ${1} "),
    ]
});

fn tokenize_intl(line: &str) -> String {
    let mut line = line.to_string();
    for (re, replacement) in RE_INTL.iter() {
        if let Cow::Owned(replaced) = re.replace_all(&line, *replacement) {
            line = replaced;
        }
    }
    pytext::collapse_spaces(&line)
}

fn tokenize_char(line: &str) -> String {
    let mut out = String::with_capacity(line.len() * 2);
    for (i, c) in line.chars().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirteen_a_keeps_numbers_together() {
        let t = Tokenizer::Mteval13a;
        assert_eq!(
            t.tokenize("It costs $1,000.50, ok."),
            "It costs $ 1,000.50 , ok ."
        );
        assert_eq!(t.tokenize("1990-2000 &amp; (x)"), "1990 - 2000 & ( x )");
        assert_eq!(t.tokenize("Hello world"), "Hello world");
    }

    #[test]
    fn intl_splits_unicode_punctuation() {
        let t = Tokenizer::Intl;
        assert_eq!(t.tokenize("«Bonjour», dit-il."), "« Bonjour » , dit - il .");
        assert_eq!(t.tokenize("3.14 and €5"), "3.14 and € 5");
    }

    #[test]
    fn char_and_none() {
        assert_eq!(Tokenizer::Char.tokenize("ab c"), "a b   c");
        assert_eq!(Tokenizer::None.tokenize(" a  b "), " a  b ");
    }
}
