//! Input formats: plain text goes to the translator as is; a SubRip (`.srt`) file is taken
//! apart so that only the subtitle text is translated and cue numbers, timestamps, blank
//! lines and line endings come back byte for byte.

use std::fmt::Write as _;

use tarjama_pipeline::DocumentTranslation;

use super::inputs::Kind;

/// A document ready for translation.
#[derive(Debug)]
pub struct Prepared {
    /// The text handed to the translator.
    pub text: String,
    layout: Layout,
}

#[derive(Debug)]
enum Layout {
    Plain,
    Srt(Srt),
}

/// A parsed subtitle file: verbatim pieces between the cues' text.
#[derive(Debug)]
struct Srt {
    /// Everything of the file except the cue texts, in order: `verbatim[i]` comes before
    /// cue `i`'s text, the last one after the last cue.
    verbatim: Vec<String>,
    cues: Vec<Cue>,
}

#[derive(Debug)]
struct Cue {
    /// Byte offset of the text in the file.
    file_start: usize,
    /// Byte offset of the text in [`Prepared::text`].
    joined_start: usize,
    /// The text as in the file.
    text: String,
}

impl Prepared {
    /// Prepares `text` (already decoded) of the given kind.
    pub fn new(kind: Kind, text: String) -> anyhow::Result<Prepared> {
        match kind {
            Kind::Text => Ok(Prepared {
                text,
                layout: Layout::Plain,
            }),
            Kind::Srt => {
                let mut srt = parse_srt(&text)?;
                // Cues become paragraphs (a blank line between them), so the translator
                // never joins two cues and every sentence maps back to one cue.
                let mut joined = String::new();
                for cue in &mut srt.cues {
                    if !joined.is_empty() {
                        joined.push_str("\n\n");
                    }
                    cue.joined_start = joined.len();
                    joined.push_str(&cue.text);
                }
                Ok(Prepared {
                    text: joined,
                    layout: Layout::Srt(srt),
                })
            }
        }
    }

    /// Rewrites the translation's paragraphs and spans to refer to the original file:
    /// for subtitles, paragraph = cue number (0-based) and spans are file offsets.
    pub fn map_back(&self, doc: &mut DocumentTranslation) {
        let Layout::Srt(srt) = &self.layout else {
            return;
        };
        for s in &mut doc.sentences {
            let cue = srt
                .cues
                .iter()
                .rposition(|c| c.joined_start <= s.span.start)
                .unwrap_or(0);
            let c = &srt.cues[cue];
            s.paragraph = cue;
            s.span = c.file_start + (s.span.start - c.joined_start)
                ..c.file_start + (s.span.end - c.joined_start);
        }
    }

    /// The translated document in the source's own format (`txt` output): plain text with
    /// the source's paragraphs, or the subtitle file with its text replaced.
    pub fn render_native(&self, doc: &DocumentTranslation) -> String {
        let Layout::Srt(srt) = &self.layout else {
            return doc.text();
        };
        let mut out = String::new();
        for (i, cue) in srt.cues.iter().enumerate() {
            out.push_str(&srt.verbatim[i]);
            let sentences: Vec<_> = doc.sentences.iter().filter(|s| s.paragraph == i).collect();
            if sentences.iter().all(|s| s.passthrough) {
                // Nothing was translated: keep the lines exactly as they were.
                out.push_str(&cue.text);
            } else {
                for (k, s) in sentences.iter().enumerate() {
                    if k > 0 {
                        out.push(' ');
                    }
                    // A line break in a translation would end the cue early (a blank
                    // line) or shift the lines; subtitle text stays on one line.
                    let one_line = s.translation.split_whitespace().collect::<Vec<_>>();
                    let _ = write!(out, "{}", one_line.join(" "));
                }
            }
        }
        out.push_str(&srt.verbatim[srt.cues.len()]);
        out
    }
}

/// Lines of `text` as (start, end of content, end with the line break).
fn lines(text: &str) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < text.len() {
        let rest = &text[pos..];
        match rest.find('\n') {
            Some(k) => {
                let content_end = if k > 0 && rest.as_bytes()[k - 1] == b'\r' {
                    pos + k - 1
                } else {
                    pos + k
                };
                out.push((pos, content_end, pos + k + 1));
                pos += k + 1;
            }
            None => {
                out.push((pos, text.len(), text.len()));
                pos = text.len();
            }
        }
    }
    out
}

fn parse_srt(text: &str) -> anyhow::Result<Srt> {
    let lines = lines(text);
    let blank = |i: usize| text[lines[i].0..lines[i].1].trim().is_empty();
    let mut verbatim = Vec::new();
    let mut cues = Vec::new();
    // Start of the verbatim piece being collected.
    let mut piece_start = 0;
    let mut i = 0;
    while i < lines.len() {
        if blank(i) {
            i += 1;
            continue;
        }
        // A cue: number, timestamp line, text lines up to a blank line.
        let block_start = i;
        let mut j = i;
        while j < lines.len() && !blank(j) {
            j += 1;
        }
        let Some(ts) = (block_start..j).find(|&k| text[lines[k].0..lines[k].1].contains("-->"))
        else {
            anyhow::bail!(
                "not a valid .srt file: the block at line {} has no `-->` timestamp line",
                block_start + 1
            );
        };
        if ts + 1 < j {
            let start = lines[ts + 1].0;
            let end = lines[j - 1].1;
            verbatim.push(text[piece_start..start].to_string());
            cues.push(Cue {
                file_start: start,
                joined_start: 0,
                text: text[start..end].to_string(),
            });
            piece_start = end;
        }
        i = j;
    }
    verbatim.push(text[piece_start..].to_string());
    Ok(Srt { verbatim, cues })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tarjama_pipeline::SentenceOut;

    const SRT: &str = "1\r\n00:00:01,000 --> 00:00:02,500\r\nمرحبا بكم.\r\n\r\n2\r\n00:00:03,000 --> 00:00:04,000\r\nهذا سطر\r\nوهذا آخر.\r\n\r\n3\r\n00:00:05,000 --> 00:00:06,000\r\n\r\n";

    #[test]
    fn srt_keeps_everything_but_the_text() {
        let p = Prepared::new(Kind::Srt, SRT.to_string()).unwrap();
        assert_eq!(p.text, "مرحبا بكم.\n\nهذا سطر\r\nوهذا آخر.");
        // A fake translation: one sentence per cue.
        let cue2 = p.text.find("هذا").unwrap();
        let mut doc = DocumentTranslation {
            sentences: vec![
                SentenceOut {
                    paragraph: 0,
                    index: 0,
                    span: 0.."مرحبا بكم.".len(),
                    source: "مرحبا بكم.".into(),
                    translation: "Welcome.".into(),
                    passthrough: false,
                    score: None,
                    ..SentenceOut::default()
                },
                SentenceOut {
                    paragraph: 1,
                    index: 1,
                    span: cue2..p.text.len(),
                    source: p.text[cue2..].into(),
                    translation: "This line and that one.".into(),
                    passthrough: false,
                    score: None,
                    ..SentenceOut::default()
                },
            ],
            events: vec![],
        };
        p.map_back(&mut doc);
        let s = &doc.sentences[1];
        assert_eq!(s.paragraph, 1);
        assert_eq!(&SRT[s.span.clone()], "هذا سطر\r\nوهذا آخر.");
        assert_eq!(
            p.render_native(&doc),
            "1\r\n00:00:01,000 --> 00:00:02,500\r\nWelcome.\r\n\r\n2\r\n00:00:03,000 --> 00:00:04,000\r\nThis line and that one.\r\n\r\n3\r\n00:00:05,000 --> 00:00:06,000\r\n\r\n"
        );
    }

    #[test]
    fn srt_without_timestamps_is_refused() {
        let err = Prepared::new(Kind::Srt, "1\nhello\n".into()).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
