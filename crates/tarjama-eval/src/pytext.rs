//! The few Python `str` behaviours the reference metrics depend on.
//!
//! sacreBLEU and rouge-score are Python; their `str.split()` and `str.rstrip()` treat a
//! slightly larger set of characters as whitespace than Rust's [`char::is_whitespace`]:
//! Python's `str.isspace` also accepts the ASCII information separators U+001C..U+001F
//! (bidirectional class B/S). A segment containing one of those would tokenize differently
//! if we used Rust's definition.

/// Python's `str.isspace` for one character.
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.split()` with no arguments: split on runs of whitespace, drop empty pieces.
pub(crate) fn split(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_space).filter(|piece| !piece.is_empty())
}

/// Python's `str.rstrip()` with no arguments.
pub(crate) fn rstrip(s: &str) -> &str {
    s.trim_end_matches(is_space)
}

/// Python's `' '.join(s.split())`: collapse whitespace runs to one space, trim both ends.
pub(crate) fn collapse_spaces(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for piece in split(s) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn information_separators_are_python_whitespace() {
        assert_eq!(
            split("a\u{1f}b\u{a0}c  d").collect::<Vec<_>>(),
            ["a", "b", "c", "d"]
        );
        assert_eq!(rstrip("x \u{1c}\t"), "x");
        assert_eq!(collapse_spaces("  a \n b\u{3000}"), "a b");
        // Zero-width space is not whitespace in Python either.
        assert_eq!(split("a\u{200b}b").count(), 1);
    }
}
