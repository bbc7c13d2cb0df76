//! tarjama's default prompts, and the fill-in of a manifest's overrides.

use tarjama_registry::registry::Prompts;

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

/// Worked examples shown to the model before each request to translate, as earlier turns
/// of the chat: Arabic news, encyclopedia and travel sentences (the kinds of text tarjama
/// is for) written for tarjama, with their English. They show the register wanted:
/// idiomatic English that keeps every name, number and date. The first `n` are used
/// (`ChatTranslator::with_examples`).
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "قال رئيس بلدية المدينة، يوسف الحداد، يوم الأربعاء إن أعمال ترميم الجسر القديم ستنتهي قبل نهاية شهر مارس/آذار.",
        "The city's mayor, Youssef al-Haddad, said on Wednesday that the restoration of the old bridge would be finished before the end of March.",
    ),
    (
        "وأضاف أن المشروع كلّف نحو 12 مليون دولار، وأن الجسر سيُفتح أمام المشاة فقط.",
        "He added that the project had cost about $12 million and that the bridge would be open to pedestrians only.",
    ),
    (
        "تعيش معظم أنواع البطاريق في نصف الكرة الجنوبي، ولا يستطيع أيٌّ منها الطيران.",
        "Most species of penguin live in the Southern Hemisphere, and none of them can fly.",
    ),
    (
        "إذا كنت تخطط لزيارة الصحراء في الصيف، فاحمل معك ما يكفي من الماء وتجنّب المشي في منتصف النهار.",
        "If you plan to visit the desert in summer, take enough water with you and avoid walking in the middle of the day.",
    ),
    (
        "فاز المنتخب الياباني على نظيره الأسترالي بنتيجة 3-1 في المباراة التي أقيمت في طوكيو مساء الأحد.",
        "Japan beat Australia 3-1 in the match played in Tokyo on Sunday evening.",
    ),
    (
        "وأكدت وكالة الفضاء الأوروبية أن المسبار أرسل أول صوره من مدار المريخ بعد رحلة استمرت سبعة أشهر.",
        "The European Space Agency confirmed that the probe had sent its first images from Mars orbit after a seven-month journey.",
    ),
];

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
    /// Worked examples: (Arabic sentence, English) pairs.
    pub examples: Vec<(String, String)>,
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
            examples: EXAMPLES
                .iter()
                .map(|&(ar, en)| (ar.into(), en.into()))
                .collect(),
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
        if let Some(s) = &overrides.translate_numbered {
            set.translate_numbered = s.clone();
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use tarjama_registry::registry::Manifest;

    #[test]
    fn a_manifest_overrides_each_prompt_it_names() {
        // A user's copy of a shipped manifest with prompts of its own.
        let text = format!(
            "{}\n[prompts]\nsystem = 'Be brief.'\n\
             translate_numbered = \"Arabic, numbered:\\n{{text}}\\nEnglish, numbered:\"\n",
            include_str!("../../../models/qwen2.5-coder-0.5b-instruct.toml")
        );
        let manifest = Manifest::parse(&text, Path::new("x.toml")).unwrap();
        let set = PromptSet::with_overrides(&manifest.prompts);
        assert_eq!(set.system, "Be brief.");
        assert_eq!(
            fill(&set.translate_numbered, &[("text", "1. نص")]),
            "Arabic, numbered:\n1. نص\nEnglish, numbered:"
        );
        // What it does not name keeps tarjama's default.
        assert_eq!(set.translate, TRANSLATE);
        assert_eq!(set.summarize, SUMMARIZE);
    }
}
