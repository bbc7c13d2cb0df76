//! LibreTranslate's `format: "html"`: the text between tags is translated, the tags and
//! the contents of `<script>`, `<style>` and comments come back byte for byte.

/// A piece of an HTML fragment.
#[derive(Debug, PartialEq)]
pub enum Piece {
    /// Markup kept as it is (tags, comments, script and style contents).
    Markup(String),
    /// Text between tags, entities still escaped.
    Text(String),
}

/// Cuts `html` into markup and text.
pub fn split(html: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut rest = html;
    while !rest.is_empty() {
        let Some(open) = rest.find('<') else {
            pieces.push(Piece::Text(rest.to_string()));
            break;
        };
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_string()));
            rest = &rest[open..];
        }
        let end = if rest.starts_with("<!--") {
            rest.find("-->").map_or(rest.len(), |e| e + 3)
        } else {
            rest.find('>').map_or(rest.len(), |e| e + 1)
        };
        let tag = &rest[..end];
        rest = &rest[end..];
        let mut markup = tag.to_string();
        // Raw-text elements: everything up to the closing tag is markup.
        let name: String = tag
            .trim_start_matches('<')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if name == "script" || name == "style" {
            let close = format!("</{name}");
            let at = rest.to_ascii_lowercase().find(&close).unwrap_or(rest.len());
            markup.push_str(&rest[..at]);
            rest = &rest[at..];
        }
        pieces.push(Piece::Markup(markup));
    }
    pieces
}

/// Decodes the entities of a text piece.
pub fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(semi) = rest[..rest.len().min(12)].find(';') else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" | "#39" => Some('\''),
            "nbsp" => Some('\u{a0}'),
            e if e.starts_with("#x") || e.starts_with("#X") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Escapes text for element content.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Rebuilds the fragment with each text piece passed through `translate` (its entities
/// decoded first, and its leading and trailing whitespace kept).
pub fn translate(
    html: &str,
    translate: &mut dyn FnMut(&str) -> Result<String, crate::error::ApiError>,
) -> Result<String, crate::error::ApiError> {
    let mut out = String::with_capacity(html.len() * 2);
    for piece in split(html) {
        match piece {
            Piece::Markup(m) => out.push_str(&m),
            Piece::Text(t) => {
                let text = unescape(&t);
                let core = text.trim();
                if core.is_empty() || !core.chars().any(tarjama_text::script::is_arabic) {
                    out.push_str(&t);
                    continue;
                }
                let lead = &text[..text.len() - text.trim_start().len()];
                let trail = &text[text.trim_end().len()..];
                out.push_str(lead);
                out.push_str(&escape(translate(core)?.trim()));
                out.push_str(trail);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_scripts_and_comments_are_kept() {
        let html = "<p class=\"x\">نص &amp; آخر</p><!-- <b>تعليق</b> --><script>var a = '<b>';</script> <b>كلمة</b>";
        let out = translate(html, &mut |t| Ok(format!("[{t}]"))).unwrap();
        assert_eq!(
            out,
            "<p class=\"x\">[نص &amp; آخر]</p><!-- <b>تعليق</b> --><script>var a = '<b>';</script> <b>[كلمة]</b>"
        );
    }

    #[test]
    fn entities_decode() {
        assert_eq!(
            unescape("a &lt;b&gt; &#1575; &#x627; &bogus; &"),
            "a <b> ا ا &bogus; &"
        );
    }
}
