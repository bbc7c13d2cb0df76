//! Output formats: the translation alone, one JSON record per sentence, a side-by-side
//! TSV, or a bilingual HTML page a person can read in a browser.

use serde::Serialize;
use tarjama_pipeline::translate::one_line;
use tarjama_pipeline::DocumentTranslation;

use super::formats::Prepared;

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// The translation in the source's shape: paragraphs kept; a subtitle file stays a
    /// subtitle file.
    #[default]
    Txt,
    /// One JSON record per sentence: file, paragraph, sentence, span, source, translation,
    /// passthrough, score, model.
    Jsonl,
    /// Source and translation side by side, one sentence per line, tab-separated.
    Tsv,
    /// A bilingual page: Arabic right-to-left beside the English, one row per paragraph.
    Html,
}

impl Format {
    /// File extension of outputs in this format.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Txt => "txt",
            Format::Jsonl => "jsonl",
            Format::Tsv => "tsv",
            Format::Html => "html",
        }
    }

    /// Its name in settings and summaries.
    pub fn name(self) -> &'static str {
        self.extension()
    }
}

/// One line of the `jsonl` format, for a document's sentence or a line of `--lines`:
/// where its source is, then what became of it.
#[derive(Serialize)]
pub(crate) struct Record<'a, At> {
    pub file: &'a str,
    #[serde(flatten)]
    pub at: At,
    pub source: &'a str,
    pub translation: &'a str,
    pub passthrough: bool,
    pub score: Option<f32>,
    /// With --candidates: how many passed the guards, and the winner's mean utility.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidates: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utility: Option<f64>,
    /// With --glossary: the terms of the source whose English the translation lacks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub glossary_missing: Option<&'a [String]>,
    pub model: &'a str,
}

/// Where a document's sentence is.
#[derive(Serialize)]
struct InDocument {
    paragraph: usize,
    sentence: usize,
    /// Byte span in the input.
    span: [usize; 2],
}

/// Renders one translated document. `file` names it in records and titles.
///
/// Every format writes each translation on one line ([`one_line`]): one output paragraph
/// per source paragraph, one record or row per sentence, whatever the model wrote.
pub fn render(
    prepared: &Prepared,
    doc: &DocumentTranslation,
    format: Format,
    file: &str,
    model: &str,
) -> anyhow::Result<String> {
    Ok(match format {
        Format::Txt => prepared.render_native(doc),
        Format::Jsonl => {
            let mut out = String::new();
            for s in &doc.sentences {
                let record = Record {
                    file,
                    at: InDocument {
                        paragraph: s.paragraph,
                        sentence: s.index,
                        span: [s.span.start, s.span.end],
                    },
                    source: &s.source,
                    translation: &one_line(&s.translation),
                    passthrough: s.passthrough,
                    score: s.score,
                    candidates: s.candidates,
                    utility: s.utility,
                    // Listed only when some term is missing.
                    glossary_missing: (!s.glossary_missing.is_empty())
                        .then_some(s.glossary_missing.as_slice()),
                    model,
                };
                out.push_str(&serde_json::to_string(&record)?);
                out.push('\n');
            }
            out
        }
        Format::Tsv => {
            // Tabs and line breaks inside a field would break the columns.
            let clean = |s: &str| one_line(s).replace('\t', " ");
            let mut out = String::from("source\ttranslation\n");
            for s in &doc.sentences {
                out.push_str(&clean(&s.source));
                out.push('\t');
                out.push_str(&clean(&s.translation));
                out.push('\n');
            }
            out
        }
        Format::Html => html(doc, file, model),
    })
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "
:root { color-scheme: light dark; }
body { margin: 0 auto; max-width: 72rem; padding: 1.5rem; font: 16px/1.6 system-ui, sans-serif; }
h1 { font-size: 1.25rem; margin: 0 0 .25rem; overflow-wrap: anywhere; }
.meta { color: #777; margin: 0 0 1rem; font-size: .875rem; }
table { width: 100%; border-collapse: collapse; table-layout: fixed; }
th, td { vertical-align: top; padding: .6rem .9rem; border-bottom: 1px solid #8884; }
th { font-size: .875rem; color: #777; }
td.ar, th.ar { text-align: right; }
td.ar { font-family: 'Noto Naskh Arabic', 'Noto Sans Arabic', 'Amiri', 'DejaVu Sans', serif; font-size: 1.15rem; line-height: 1.9; }
td.en, th.en { text-align: left; }
span.s:hover { background: #ff04; }
";

fn html(doc: &DocumentTranslation, file: &str, model: &str) -> String {
    let mut rows = String::new();
    let mut i = 0;
    while i < doc.sentences.len() {
        let p = doc.sentences[i].paragraph;
        let mut j = i;
        while j < doc.sentences.len() && doc.sentences[j].paragraph == p {
            j += 1;
        }
        let para = &doc.sentences[i..j];
        // One span per sentence on both sides, with the same id, so a reader can match
        // a sentence to its translation.
        let side = |pick: fn(&tarjama_pipeline::SentenceOut) -> &str| {
            para.iter()
                .map(|s| {
                    format!(
                        "<span class=\"s\" title=\"{}\">{}</span>",
                        s.index + 1,
                        escape(&one_line(pick(s)))
                    )
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        rows.push_str(&format!(
            "<tr id=\"p{p}\"><td class=\"ar\" dir=\"rtl\" lang=\"ar\">{}</td><td class=\"en\" dir=\"ltr\" lang=\"en\">{}</td></tr>\n",
            side(|s| &s.source),
            side(|s| &s.translation),
        ));
        i = j;
    }
    let file = escape(file);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<meta name=\"generator\" content=\"tarjama\">\n<title>{file} — tarjama</title>\n<style>{CSS}</style>\n</head>\n<body>\n\
<h1>{file}</h1>\n<p class=\"meta\">Machine translation by {model}. Check important facts against the source.</p>\n\
<table>\n<colgroup><col style=\"width:50%\"><col style=\"width:50%\"></colgroup>\n\
<thead><tr><th class=\"ar\" dir=\"rtl\" lang=\"ar\">العربية</th><th class=\"en\" dir=\"ltr\" lang=\"en\">English</th></tr></thead>\n\
<tbody>\n{rows}</tbody>\n</table>\n</body>\n</html>\n",
        model = escape(model),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::Kind;
    use tarjama_pipeline::SentenceOut;

    fn doc() -> DocumentTranslation {
        let s = |p, i, src: &str, tr: &str| SentenceOut {
            paragraph: p,
            index: i,
            span: 0..src.len(),
            source: src.into(),
            translation: tr.into(),
            passthrough: false,
            score: Some(-0.5),
            ..SentenceOut::default()
        };
        DocumentTranslation {
            sentences: vec![
                s(0, 0, "قال <رئيس>.", "He said <x> & \"y\"."),
                s(0, 1, "ثم\tغادر.", "Then\tleft."),
                s(1, 2, "انتهى.", "The end."),
            ],
            events: vec![],
        }
    }

    #[test]
    fn html_escapes_and_marks_directions() {
        let p = Prepared::new(Kind::Text, String::new()).unwrap();
        let page = render(&p, &doc(), Format::Html, "a<b>.txt", "m&m").unwrap();
        assert!(page.contains("He said &lt;x&gt; &amp; &quot;y&quot;."));
        assert!(page.contains("قال &lt;رئيس&gt;."));
        assert!(page.contains("<title>a&lt;b&gt;.txt — tarjama</title>"));
        assert!(!page.contains("<x>"));
        assert_eq!(
            page.matches("<td class=\"ar\" dir=\"rtl\" lang=\"ar\">")
                .count(),
            2
        );
        assert_eq!(
            page.matches("<td class=\"en\" dir=\"ltr\" lang=\"en\">")
                .count(),
            2
        );
    }

    #[test]
    fn no_format_adds_a_paragraph_or_a_line() {
        // What a chat model can answer for one sentence: a lead-in, a blank line, the
        // translation, a note.
        let chatty = "Well then:\n\nHe said <x>.\r\n\nNote: y";
        let mut d = doc();
        for s in &mut d.sentences {
            s.translation = chatty.into();
        }
        let flat = "Well then: He said <x>. Note: y";
        let p = Prepared::new(Kind::Text, String::new()).unwrap();
        let txt = render(&p, &d, Format::Txt, "f", "m").unwrap();
        assert_eq!(txt, format!("{flat} {flat}\n\n{flat}\n"));
        let tsv = render(&p, &d, Format::Tsv, "f", "m").unwrap();
        assert_eq!(tsv.lines().count(), 4);
        assert_eq!(tsv.lines().nth(3).unwrap(), format!("انتهى.\t{flat}"));
        let jsonl = render(&p, &d, Format::Jsonl, "f", "m").unwrap();
        assert_eq!(jsonl.lines().count(), 3);
        let rec: serde_json::Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
        assert_eq!(rec["translation"], flat);
        let page = render(&p, &d, Format::Html, "f", "m").unwrap();
        assert!(page.contains("Well then: He said &lt;x&gt;. Note: y"));
        assert!(!page.contains("Well then:\n"));
    }

    #[test]
    fn tsv_and_jsonl_one_line_per_sentence() {
        let p = Prepared::new(Kind::Text, String::new()).unwrap();
        let tsv = render(&p, &doc(), Format::Tsv, "f", "m").unwrap();
        let lines: Vec<_> = tsv.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[2], "ثم غادر.\tThen left.");
        let jsonl = render(&p, &doc(), Format::Jsonl, "f", "m").unwrap();
        let recs: Vec<serde_json::Value> = jsonl
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[2]["paragraph"], 1);
        assert_eq!(recs[2]["translation"], "The end.");
        assert_eq!(recs[0]["model"], "m");
    }
}
