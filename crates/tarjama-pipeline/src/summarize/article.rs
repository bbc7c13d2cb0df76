//! The article as the model reads it: its sentences, normalized and, with a glossary,
//! with the glossary's English written in; or, for the `translate` strategy and for
//! checking candidates, its translation sentence by sentence.

use std::ops::Range;

use tarjama_chat::{ChatEngine, Result, SamplingParams};
use tarjama_text::Script;

use super::SummaryOptions;
use crate::prompts::PromptSet;
use crate::translate::{translate_document, ChatTranslator, TranslateOptions};

/// The article as the model reads it.
pub(super) struct Article {
    /// (span, normalized text) of every sentence.
    pub(super) sentences: Vec<(Range<usize>, String)>,
}

impl Article {
    /// The sentences of `text`, normalized; with a glossary, the glossary's English is
    /// written in place of each of its terms (spans unchanged).
    pub(super) fn new(text: &str, options: &SummaryOptions) -> Self {
        let sentences = tarjama_text::split(text)
            .iter()
            .flat_map(|p| p.sentences.iter())
            .map(|s| {
                let t = match &options.normalizer {
                    Some(n) => n.normalize(s.text).into_owned(),
                    None => s.text.to_string(),
                };
                let t = match &options.glossary {
                    Some(glossary) => glossary.annotate(&t),
                    None => t,
                };
                (s.span.clone(), t)
            })
            .collect();
        Article { sentences }
    }

    /// Whether any sentence is in Arabic (or mixed).
    pub(super) fn has_arabic(&self) -> bool {
        self.sentences
            .iter()
            .any(|(_, t)| matches!(Script::detect(t), Script::Arabic | Script::Mixed))
    }

    pub(super) fn numbered(&self, range: Range<usize>) -> String {
        self.sentences[range.clone()]
            .iter()
            .zip(range)
            .map(|((_, t), i)| format!("[{}] {t}", i + 1))
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub(super) fn plain(&self, range: Range<usize>) -> String {
        self.sentences[range]
            .iter()
            .map(|(_, t)| t.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The article translated sentence by sentence.
pub(super) struct Translation {
    /// Each sentence's English.
    pub(super) sentences: Vec<String>,
    /// The whole translation, paragraphs kept.
    pub(super) text: String,
}

/// The article translated sentence by sentence.
pub(super) fn translate_article(
    model: &dyn ChatEngine,
    prompts: &PromptSet,
    text: &str,
    options: &SummaryOptions,
    events: &mut Vec<String>,
) -> Result<Translation> {
    let mut translator = ChatTranslator::new(
        model,
        "summarize".into(),
        prompts.clone(),
        SamplingParams {
            max_new_tokens: 512.min(options.sampling.max_new_tokens),
            ..options.sampling.clone()
        },
    );
    if let Some(glossary) = &options.glossary {
        translator = translator.with_glossary(glossary.clone());
    }
    let doc = translate_document(
        &mut translator,
        text,
        &TranslateOptions {
            normalizer: options.normalizer.clone(),
            // The summary reports the glossary terms it leaves out itself.
            check_glossary: false,
        },
    )?;
    events.extend(doc.events.iter().cloned());
    Ok(Translation {
        sentences: doc
            .sentences
            .iter()
            .map(|s| s.translation.clone())
            .collect(),
        text: doc.text(),
    })
}
