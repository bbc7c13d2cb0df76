//! tarjama's default prompts, and the fill-in of a manifest's overrides.

use tarjama_models::registry::Prompts;

/// System message: what the model is for.
pub const SYSTEM: &str = "You are a professional translator and editor for Arabic news. \
You render Arabic faithfully in English, keeping names, places, numbers and dates exact, \
and you never add commentary.";

/// One piece of Arabic to translate.
pub const TRANSLATE: &str = "Translate this Arabic text into English. \
Output only the English translation, nothing else.\n\n{text}";

/// Several numbered sentences to translate, numbered back.
pub const TRANSLATE_NUMBERED: &str = "Translate each numbered Arabic sentence into English. \
Keep the numbering: write one line per sentence, as `N. translation`, and nothing else.\n\n{text}";

/// An Arabic article to summarize in English.
pub const SUMMARIZE: &str = "Summarize the following Arabic news article in English in {length}. \
Say who did or said what, where and when, naming the people, places and organizations of the \
article. Output only the summary.\n\n{text}";

/// An English text (a translation, or partial summaries) to summarize.
pub const SUMMARIZE_ENGLISH: &str = "Summarize the following English news text in {length}. \
Say who did or said what, where and when, naming the people, places and organizations of the \
text. Output only the summary.\n\n{text}";

/// A glossary's entries found in a request, put before its instruction.
pub const GLOSSARY: &str = "Write these names and terms in English exactly as given here \
wherever the Arabic has them:\n{entries}";

/// The prompts in force for one model: its manifest's overrides over the defaults.
#[derive(Debug, Clone)]
pub struct PromptSet {
    /// System message.
    pub system: String,
    /// Translation of one piece.
    pub translate: String,
    /// Translation of numbered sentences.
    pub translate_numbered: String,
    /// Summary of Arabic.
    pub summarize: String,
    /// Summary of English.
    pub summarize_english: String,
    /// A glossary's entries (`{entries}`: one `Arabic = English` per line).
    pub glossary: String,
}

impl Default for PromptSet {
    fn default() -> Self {
        PromptSet {
            system: SYSTEM.into(),
            translate: TRANSLATE.into(),
            translate_numbered: TRANSLATE_NUMBERED.into(),
            summarize: SUMMARIZE.into(),
            summarize_english: SUMMARIZE_ENGLISH.into(),
            glossary: GLOSSARY.into(),
        }
    }
}

impl PromptSet {
    /// Defaults with a manifest's overrides applied.
    pub fn with_overrides(overrides: &Prompts) -> Self {
        let mut set = PromptSet::default();
        if let Some(s) = &overrides.system {
            set.system = s.clone();
        }
        if let Some(s) = &overrides.translate {
            set.translate = s.clone();
        }
        if let Some(s) = &overrides.summarize {
            set.summarize = s.clone();
        }
        set
    }
}

/// Replaces `{name}` placeholders.
pub fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (name, value) in vars {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}
