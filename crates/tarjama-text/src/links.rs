//! Finds URLs and e-mail addresses, the spans that normalization leaves verbatim and
//! sentence splitting never cuts.
//!
//! A URL runs from `http://`, `https://`, `ftp://` or `www.` to the next whitespace,
//! minus trailing punctuation that belongs to the sentence (`.`, `،`, a closing quote,
//! an unbalanced `)`). The rule only looks at the link's own characters and at
//! whitespace, which is what keeps normalization idempotent: no normalization step
//! touches either.

use std::ops::Range;

const SCHEMES: [&str; 4] = ["http://", "https://", "ftp://", "www."];

/// Byte spans of URLs and e-mail addresses in `text`, in order, not overlapping.
pub(crate) fn find(text: &str) -> Vec<Range<usize>> {
    let urls = urls(text);
    // Both lists are in order: merge them, dropping e-mails that overlap a URL
    // (`http://user@host.com`), in one pass.
    let mut spans = Vec::with_capacity(urls.len());
    let mut pending = urls.into_iter().peekable();
    for email in emails(text) {
        while let Some(url) = pending.next_if(|url| url.end <= email.start) {
            spans.push(url);
        }
        let overlaps = pending.peek().is_some_and(|url| url.start < email.end)
            || spans
                .last()
                .is_some_and(|last: &Range<usize>| last.end > email.start);
        if !overlaps {
            spans.push(email);
        }
    }
    spans.extend(pending);
    spans
}

fn urls(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        let is_start = SCHEMES.iter().any(|scheme| {
            rest.len() > scheme.len()
                && rest[..scheme.len()].eq_ignore_ascii_case(scheme.as_bytes())
        });
        if !is_start {
            i += 1;
            continue;
        }
        let end = text[i..]
            .char_indices()
            .find(|&(_, c)| c.is_whitespace())
            .map_or(text.len(), |(k, _)| i + k);
        let end = i + trim_trailing(&text[i..end]);
        let scheme_len = SCHEMES
            .iter()
            .find(|s| rest[..s.len().min(rest.len())].eq_ignore_ascii_case(s.as_bytes()))
            .map_or(0, |s| s.len());
        if end > i + scheme_len {
            spans.push(i..end);
            i = end;
        } else {
            i += scheme_len.max(1);
        }
    }
    spans
}

/// Length of `url` once sentence punctuation is taken off its end.
fn trim_trailing(url: &str) -> usize {
    // Brackets are counted once, up front: recounting per stripped character would
    // be quadratic on a URL that ends in a long run of `)`.
    let count = |c: char| url.chars().filter(|&d| d == c).count();
    let (open_paren, mut close_paren) = (count('('), count(')'));
    let (open_bracket, mut close_bracket) = (count('['), count(']'));
    let mut end = url.len();
    while let Some(c) = url[..end].chars().next_back() {
        let strip = match c {
            ')' => open_paren < close_paren,
            ']' => open_bracket < close_bracket,
            '.' | ',' | ';' | ':' | '!' | '?' | '\'' | '"' | '»' | '”' | '’' | '،' | '؛' | '؟'
            | '…' | '>' | '}' => true,
            _ => false,
        };
        if !strip {
            break;
        }
        match c {
            ')' => close_paren -= 1,
            ']' => close_bracket -= 1,
            _ => {}
        }
        end -= c.len_utf8();
    }
    end
}

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')
}

fn emails(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    for at in memchr::memchr_iter(b'@', bytes) {
        let mut start = at;
        while start > 0 && is_local(bytes[start - 1]) {
            start -= 1;
        }
        let mut end = at + 1;
        while end < bytes.len() && is_domain(bytes[end]) {
            end += 1;
        }
        while end > at + 1 && matches!(bytes[end - 1], b'.' | b'-') {
            end -= 1;
        }
        let domain = &text[at + 1..end];
        let has_tld = domain
            .rsplit_once('.')
            .is_some_and(|(host, tld)| !host.is_empty() && tld.len() >= 2);
        if start < at && has_tld {
            spans.push(start..end);
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<&str> {
        find(text).into_iter().map(|s| &text[s]).collect()
    }

    #[test]
    fn urls_stop_at_whitespace_and_sentence_punctuation() {
        assert_eq!(
            found("زوروا https://example.com/a?b=1. ثم"),
            ["https://example.com/a?b=1"]
        );
        assert_eq!(
            found("(see www.bbc.co.uk/arabic)"),
            ["www.bbc.co.uk/arabic"]
        );
        assert_eq!(
            found("https://en.wikipedia.org/wiki/Foo_(bar)، هنا"),
            ["https://en.wikipedia.org/wiki/Foo_(bar)"]
        );
        assert_eq!(
            found("موقع «http://مثال.مصر/صفحة»"),
            ["http://مثال.مصر/صفحة"]
        );
    }

    #[test]
    fn an_email_inside_a_url_is_part_of_the_url() {
        assert_eq!(
            found("a@b.com http://user@host.com/x c@d.org"),
            ["a@b.com", "http://user@host.com/x", "c@d.org"]
        );
    }

    #[test]
    fn a_bare_scheme_is_not_a_url() {
        assert!(found("http:// و www.").is_empty());
    }

    #[test]
    fn emails_need_a_local_part_and_a_domain() {
        assert_eq!(
            found("راسلونا على news@aljazeera.net."),
            ["news@aljazeera.net"]
        );
        assert!(found("@user و a@b و @").is_empty());
    }
}
