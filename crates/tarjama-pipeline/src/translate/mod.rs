//! Document translation: split into paragraphs and sentences, pass through what is not
//! Arabic, translate the rest with any [`Translator`], and keep every output sentence tied
//! to its source span.
//!
//! A document is planned once ([`plan_document`]: its sentences and the normalized texts
//! to translate) and the plan is translated ([`translate_planned`]); the folder engine
//! plans inputs ahead of the model and hands the plans on. The translators live apart:
//! [`ChatTranslator`] drives a chat model, whose answers go through the guards (module
//! `guards`, [`clean_answer`] among them); [`Seq2SeqAdapter`] drives an encoder-decoder.

use std::ops::Range;
use std::sync::Arc;

use serde::Serialize;
use tarjama_chat::Result;
use tarjama_text::{Normalizer, Script};

use crate::glossary::Glossary;

mod chat;
pub(crate) mod guards;
mod seq2seq;

pub use chat::{Candidates, ChatTranslator};
pub use guards::clean_answer;
pub use seq2seq::Seq2SeqAdapter;

/// One translated sentence.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Translated {
    /// The English text.
    pub text: String,
    /// Mean log-probability of the output tokens, when the model gives one.
    pub score: Option<f32>,
    /// With candidates: how many passed the guards and were compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidates: Option<usize>,
    /// With candidates: the winner's mean utility against the others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utility: Option<f64>,
}

impl Translated {
    /// A translation with nothing known about it but its text.
    pub fn new(text: String) -> Self {
        Translated {
            text,
            ..Translated::default()
        }
    }
}

/// Anything that turns Arabic sentences into English ones, one output per input, in order.
pub trait Translator {
    /// A name for reports (the model).
    fn name(&self) -> String;
    /// Translates `sentences` (already normalized).
    fn translate(&mut self, sentences: &[&str]) -> Result<Vec<Translated>>;
    /// What went wrong and was repaired since the last call, for the report.
    fn take_events(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// The glossary this translator follows, if any: the one its prompts name (or its
    /// beam search enforces), and so the one its translations are checked against.
    fn glossary(&self) -> Option<Arc<Glossary>> {
        None
    }
}

/// How to prepare a document for translation.
#[derive(Debug, Clone)]
pub struct TranslateOptions {
    /// Normalization applied to Arabic sentences before translation (`None`: as is).
    pub normalizer: Option<Normalizer>,
    /// Check the translations against the translator's glossary ([`Translator::glossary`]):
    /// each sentence reports the entries of its source whose English its translation
    /// lacks, with a note. On by default; a summary, which reports what it leaves out its
    /// own way, turns it off.
    pub check_glossary: bool,
}

impl Default for TranslateOptions {
    fn default() -> Self {
        TranslateOptions {
            normalizer: None,
            check_glossary: true,
        }
    }
}

/// One sentence of a translated document.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SentenceOut {
    /// Paragraph index in the document.
    pub paragraph: usize,
    /// Sentence index in the document.
    pub index: usize,
    /// Byte span of the source sentence.
    pub span: Range<usize>,
    /// The source sentence.
    pub source: String,
    /// Its translation (the source itself when passed through).
    pub translation: String,
    /// Whether it was passed through untouched (not Arabic).
    pub passthrough: bool,
    /// Mean log-probability, when known.
    pub score: Option<f32>,
    /// With candidates: how many were compared, and the winner's mean utility.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidates: Option<usize>,
    /// The winner's mean utility against the other candidates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utility: Option<f64>,
    /// With a glossary: the English of the entries in the source that the translation
    /// lacks.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub glossary_missing: Vec<String>,
}

/// A translated document.
#[derive(Debug, Clone, Serialize)]
pub struct DocumentTranslation {
    /// Every sentence, in order.
    pub sentences: Vec<SentenceOut>,
    /// Failures that were detected and repaired.
    pub events: Vec<String>,
}

impl DocumentTranslation {
    /// The translation as text: sentences of a paragraph joined by a space, paragraphs by a
    /// blank line, each translation on one line ([`one_line`]), so the output has exactly
    /// the source's paragraphs whatever the model wrote.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let mut last_paragraph = None;
        for s in &self.sentences {
            match last_paragraph {
                None => {}
                Some(p) if p == s.paragraph => out.push(' '),
                Some(_) => out.push_str("\n\n"),
            }
            out.push_str(&one_line(&s.translation));
            last_paragraph = Some(s.paragraph);
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out
    }
}

/// A translation on one line: every whitespace run that holds a line break becomes one
/// space, and the ends are trimmed.
///
/// Writers put each translation through this. A model can answer one sentence with a
/// blank line inside (a lead-in the guard missed, a note); written as is, it would add a
/// paragraph to the output, and every later paragraph would no longer face its source.
pub fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    let text = text.trim();
    if !text.contains(['\n', '\r']) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    for c in text.chars() {
        if c.is_whitespace() {
            run.push(c);
            continue;
        }
        if run.contains(['\n', '\r']) {
            out.push(' ');
        } else {
            out.push_str(&run);
        }
        run.clear();
        out.push(c);
    }
    std::borrow::Cow::Owned(out)
}

/// A document split for translation, before any model sees it: every sentence, and the
/// texts the translator is to be given (those of the Arabic sentences, normalized).
///
/// Made by [`plan_document`], translated by [`translate_planned`]: whoever needs to know
/// a document's sentences ahead of the model (the folder engine schedules inputs by them)
/// plans it once and hands the plan on.
#[derive(Debug, Clone, Default)]
pub struct DocumentPlan {
    /// Every sentence, its source standing in as its translation until one comes.
    sentences: Vec<SentenceOut>,
    /// The texts to translate, one per sentence that is not passed through, in order.
    to_translate: Vec<String>,
}

impl DocumentPlan {
    /// The texts [`translate_planned`] hands the translator (the Arabic sentences,
    /// normalized), in order.
    pub fn to_translate(&self) -> &[String] {
        &self.to_translate
    }

    /// Every sentence of the document, the ones passed through with their translation
    /// (their source) already in place.
    pub fn sentences(&self) -> &[SentenceOut] {
        &self.sentences
    }
}

/// Plans the translation of `text`: splits it into paragraphs and sentences, marks what
/// is not Arabic to pass through, and normalizes the rest with `options.normalizer`.
pub fn plan_document(text: &str, options: &TranslateOptions) -> DocumentPlan {
    let paragraphs = tarjama_text::split(text);
    let mut plan = DocumentPlan::default();
    for (p, paragraph) in paragraphs.iter().enumerate() {
        for sentence in &paragraph.sentences {
            let arabic = matches!(sentence.script, Script::Arabic | Script::Mixed);
            if arabic {
                plan.to_translate.push(match &options.normalizer {
                    Some(n) => n.normalize(sentence.text).into_owned(),
                    None => sentence.text.to_string(),
                });
            }
            plan.sentences.push(SentenceOut {
                paragraph: p,
                index: plan.sentences.len(),
                span: sentence.span.clone(),
                source: sentence.text.to_string(),
                translation: sentence.text.to_string(),
                passthrough: !arabic,
                score: None,
                candidates: None,
                utility: None,
                glossary_missing: Vec::new(),
            });
        }
    }
    plan
}

/// Translates a planned document; the translator's glossary, if any, checks the
/// translations (unless `options.check_glossary` is off).
pub fn translate_planned(
    translator: &mut dyn Translator,
    plan: DocumentPlan,
    options: &TranslateOptions,
) -> Result<DocumentTranslation> {
    let DocumentPlan {
        mut sentences,
        to_translate,
    } = plan;
    let todo_index: Vec<usize> = sentences
        .iter()
        .filter(|s| !s.passthrough)
        .map(|s| s.index)
        .collect();
    let refs: Vec<&str> = to_translate.iter().map(String::as_str).collect();
    let translated = if refs.is_empty() {
        Vec::new()
    } else {
        translator.translate(&refs)?
    };
    for (i, t) in todo_index.into_iter().zip(translated) {
        sentences[i].translation = t.text;
        sentences[i].score = t.score;
        sentences[i].candidates = t.candidates;
        sentences[i].utility = t.utility;
    }
    let mut events = translator.take_events();
    let glossary = translator.glossary().filter(|_| options.check_glossary);
    if let Some(glossary) = glossary {
        for s in sentences.iter_mut().filter(|s| !s.passthrough) {
            s.glossary_missing = glossary.missing(&s.source, &s.translation);
            if !s.glossary_missing.is_empty() {
                events.push(format!(
                    "glossary: {} missing from the translation of \"{}\"",
                    s.glossary_missing.join(", "),
                    guards::preview(&s.source)
                ));
            }
        }
    }
    Ok(DocumentTranslation { sentences, events })
}

/// Translates a whole document: [`plan_document`], then [`translate_planned`].
pub fn translate_document(
    translator: &mut dyn Translator,
    text: &str,
    options: &TranslateOptions,
) -> Result<DocumentTranslation> {
    translate_planned(translator, plan_document(text, options), options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_joins_lines_and_keeps_other_spacing() {
        assert_eq!(
            one_line("Putin met\n\n  Witkoff.\r\n"),
            "Putin met Witkoff."
        );
        assert_eq!(one_line(" a  b "), "a  b");
        assert!(matches!(one_line("a b"), std::borrow::Cow::Borrowed(_)));
    }

    struct Upper;
    impl Translator for Upper {
        fn name(&self) -> String {
            "upper".into()
        }
        fn translate(&mut self, s: &[&str]) -> Result<Vec<Translated>> {
            Ok(s.iter()
                .map(|t| Translated::new(format!("<{}>", t.chars().count())))
                .collect())
        }
    }

    #[test]
    fn documents_keep_structure_and_pass_english_through() {
        let text = "قال بوتين إن المحادثات مثمرة. Hello there.\n\nوأضاف ليفيت.";
        let doc = translate_document(&mut Upper, text, &TranslateOptions::default()).unwrap();
        assert_eq!(doc.sentences.len(), 3);
        assert!(doc.sentences[1].passthrough);
        assert_eq!(doc.sentences[1].translation, "Hello there.");
        assert_eq!(&text[doc.sentences[2].span.clone()], "وأضاف ليفيت.");
        assert_eq!(doc.text(), "<29> Hello there.\n\n<12>\n");
    }

    #[test]
    fn a_plan_lists_the_arabic_to_translate_and_translates_as_the_document_does() {
        let text = "قال بوتين إن المحادثات مثمرة. Hello there.\n\nوأضاف ليفيت.";
        let options = TranslateOptions::default();
        let plan = plan_document(text, &options);
        assert_eq!(
            plan.to_translate(),
            ["قال بوتين إن المحادثات مثمرة.", "وأضاف ليفيت."]
        );
        assert_eq!(plan.sentences().len(), 3);
        assert!(plan.sentences()[1].passthrough);
        assert_eq!(plan.sentences()[2].paragraph, 1);
        let planned = translate_planned(&mut Upper, plan, &options).unwrap();
        let direct = translate_document(&mut Upper, text, &options).unwrap();
        assert_eq!(planned.text(), direct.text());
        assert_eq!(
            debug_lines(&planned.sentences),
            debug_lines(&direct.sentences)
        );
    }

    #[test]
    fn an_empty_plan_asks_the_translator_nothing() {
        struct Refuses;
        impl Translator for Refuses {
            fn name(&self) -> String {
                "refuses".into()
            }
            fn translate(&mut self, _: &[&str]) -> Result<Vec<Translated>> {
                panic!("nothing to translate")
            }
        }
        let options = TranslateOptions::default();
        let plan = plan_document("Only English here.", &options);
        assert!(plan.to_translate().is_empty());
        let doc = translate_planned(&mut Refuses, plan, &options).unwrap();
        assert_eq!(doc.text(), "Only English here.\n");
    }

    /// Each sentence as its debug text, to compare (`SentenceOut` has no `PartialEq`).
    fn debug_lines(sentences: &[SentenceOut]) -> Vec<String> {
        sentences.iter().map(|s| format!("{s:?}")).collect()
    }

    /// Answers every sentence with a blank line inside, as a chat model that writes a
    /// lead-in the guard does not know would.
    struct Chatty;
    impl Translator for Chatty {
        fn name(&self) -> String {
            "chatty".into()
        }
        fn translate(&mut self, s: &[&str]) -> Result<Vec<Translated>> {
            Ok(s.iter()
                .map(|_| Translated::new("Well then:\n\nA sentence.\nMore.".into()))
                .collect())
        }
    }

    #[test]
    fn text_has_the_source_paragraphs_whatever_the_model_writes() {
        let text = "قال بوتين إن المحادثات مثمرة.\nHello there.\n\nوأضاف ليفيت.\n\nEnd.";
        let doc = translate_document(&mut Chatty, text, &TranslateOptions::default()).unwrap();
        assert_eq!(
            doc.text(),
            "Well then: A sentence. More. Hello there.\n\nWell then: A sentence. More.\n\nEnd.\n"
        );
        assert_eq!(doc.text().matches("\n\n").count(), 2);
    }
}
