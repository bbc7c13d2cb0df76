//! The pipeline's repairs on a scripted chat engine: answers are written by the test, so
//! each path (retry, batch repair, map-reduce) is taken for certain and checked exactly.

use std::sync::{Arc, Mutex};

use tarjama_chat::{ChatEngine, Completion, Message, SamplingParams, StopReason};
use tarjama_pipeline::prompts::PromptSet;
use tarjama_pipeline::{
    summarize, translate_document, Candidates, ChatTranslator, Glossary, Strategy, SummaryLength,
    SummaryOptions, TranslateOptions, Translator,
};

type Script = Box<dyn Fn(&str, &SamplingParams) -> String + Send + Sync>;

/// A chat engine whose answer to a request is `script(last user message, its sampling)`.
struct Scripted {
    script: Script,
    max_context: usize,
    asked: Mutex<Vec<(String, SamplingParams)>>,
    /// Every request's whole conversation.
    conversations: Mutex<Vec<Vec<Message>>>,
}

impl Scripted {
    fn new(script: fn(&str) -> String) -> Self {
        Scripted::sampled(move |user, _| script(user))
    }

    /// An engine whose answers also depend on the sampling (for candidates).
    fn sampled(script: impl Fn(&str, &SamplingParams) -> String + Send + Sync + 'static) -> Self {
        Scripted {
            script: Box::new(script),
            max_context: 8192,
            asked: Mutex::new(Vec::new()),
            conversations: Mutex::new(Vec::new()),
        }
    }

    fn asked(&self) -> Vec<String> {
        self.asked
            .lock()
            .unwrap()
            .iter()
            .map(|(u, _)| u.clone())
            .collect()
    }

    fn params(&self) -> Vec<SamplingParams> {
        self.asked
            .lock()
            .unwrap()
            .iter()
            .map(|(_, p)| p.clone())
            .collect()
    }
}

impl ChatEngine for Scripted {
    fn chat(
        &self,
        messages: &[Message],
        params: &SamplingParams,
        on_text: &mut dyn FnMut(&str),
    ) -> tarjama_chat::Result<Completion> {
        let user = &messages.last().expect("a message").content;
        self.conversations.lock().unwrap().push(messages.to_vec());
        self.asked
            .lock()
            .unwrap()
            .push((user.clone(), params.clone()));
        let text = (self.script)(user, params);
        on_text(&text);
        Ok(Completion {
            text,
            prompt_tokens: 0,
            reused_tokens: 0,
            generated_tokens: 1,
            stop: StopReason::EndOfTurn,
            prefill: Default::default(),
            decode: Default::default(),
        })
    }

    fn count_tokens(&self, text: &str) -> tarjama_chat::Result<usize> {
        Ok(text.chars().count().div_ceil(3))
    }

    fn max_context(&self) -> usize {
        self.max_context
    }
}

const S1: &str = "قال الوزير إن الاجتماع كان مثمرا.";
const S2: &str = "وأضاف أن المحادثات ستستمر غدا.";
const S3: &str = "ولم يذكر تفاصيل أخرى عن الاتفاق.";

fn translator(engine: &Scripted, sentences_per_request: usize) -> ChatTranslator<&Scripted> {
    ChatTranslator::new(
        engine,
        "scripted".into(),
        PromptSet::default(),
        SamplingParams::greedy(64),
    )
    .with_chunking(10_000, sentences_per_request)
}

#[test]
fn worked_examples_come_before_the_request_in_its_shape() {
    let engine = Scripted::new(|user| {
        if user.contains("1. ") {
            "1. The minister said the meeting was fruitful.\n2. He added that talks go on.".into()
        } else {
            "The minister said the meeting was fruitful.".into()
        }
    });
    let examples = PromptSet::default().examples;
    let mut t = translator(&engine, 2).with_examples(2);
    t.translate(&[S1, S2]).unwrap();
    t.translate(&[S1]).unwrap();
    let conversations = engine.conversations.lock().unwrap().clone();
    assert_eq!(conversations.len(), 2);
    let roles = |c: &[Message]| c.iter().map(|m| m.role.clone()).collect::<Vec<_>>();

    // A numbered request: one numbered exchange of both examples first.
    let numbered = &conversations[0];
    assert_eq!(
        roles(numbered),
        ["system", "user", "assistant", "user"],
        "{numbered:?}"
    );
    assert!(numbered[1]
        .content
        .contains(&format!("1. {}\n2. {}", examples[0].0, examples[1].0)));
    assert_eq!(
        numbered[2].content,
        format!("1. {}\n2. {}", examples[0].1, examples[1].1)
    );
    assert!(numbered[3].content.contains(&format!("1. {S1}\n2. {S2}")));

    // One sentence: an exchange per example, each one sentence.
    let single = &conversations[1];
    assert_eq!(
        roles(single),
        ["system", "user", "assistant", "user", "assistant", "user"],
        "{single:?}"
    );
    assert!(single[1].content.ends_with(&examples[0].0));
    assert_eq!(single[4].content, examples[1].1);
    assert!(single[5].content.ends_with(S1));

    // None asked for, none shown.
    let engine = Scripted::new(|_| "The minister said the meeting was fruitful.".into());
    translator(&engine, 1).translate(&[S1]).unwrap();
    assert_eq!(
        roles(&engine.conversations.lock().unwrap()[0]),
        ["system", "user"]
    );
}

#[test]
fn an_answer_still_in_arabic_is_retried_with_a_reminder() {
    let engine = Scripted::new(|user| {
        if user.ends_with("Answer in English only.") {
            "The minister said the meeting was fruitful.".into()
        } else {
            "قال الوزير إن الاجتماع كان مثمرا".into()
        }
    });
    let mut t = translator(&engine, 1);
    let out = t.translate(&[S1]).unwrap();
    assert_eq!(out[0].text, "The minister said the meeting was fruitful.");
    assert_eq!(engine.asked().len(), 2, "one retry");
    let events = t.take_events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].contains("retried"), "{events:?}");
    assert!(!events[0].contains("still wrong"), "{events:?}");
}

#[test]
fn a_batch_with_a_sentence_missing_is_redone_one_by_one() {
    let engine = Scripted::new(|user| {
        if user.contains("1. ") && user.contains("3. ") {
            // Three numbered sentences in, two lines out: one was merged away.
            "1. The minister said the meeting was fruitful.\n2. He added that talks go on.".into()
        } else if user.contains(S1) {
            "The minister said the meeting was fruitful.".into()
        } else if user.contains(S2) {
            "He added that the talks would continue tomorrow.".into()
        } else {
            "He gave no other details of the deal.".into()
        }
    });
    let mut t = translator(&engine, 3);
    let out: Vec<String> = t
        .translate(&[S1, S2, S3])
        .unwrap()
        .into_iter()
        .map(|t| t.text)
        .collect();
    assert_eq!(
        out,
        [
            "The minister said the meeting was fruitful.",
            "He added that the talks would continue tomorrow.",
            "He gave no other details of the deal.",
        ]
    );
    assert_eq!(engine.asked().len(), 4, "the batch, then each sentence");
    let events = t.take_events();
    assert!(
        events.iter().any(|e| e.contains("one by one")),
        "{events:?}"
    );
}

#[test]
fn a_whole_batch_answered_well_is_one_request() {
    let engine = Scripted::new(|_| "1. One.\n2. Two.\n3. Three.".into());
    let mut t = translator(&engine, 3);
    let out = t.translate(&[S1, S2, S3]).unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(out[2].text, "Three.");
    assert_eq!(engine.asked().len(), 1);
    assert!(t.take_events().is_empty());
}

#[test]
fn an_article_longer_than_the_context_is_summarized_in_parts_then_together() {
    let mut engine = Scripted::new(|user| {
        if user.contains("English news text") {
            // The reduce step: partial summaries in, one summary out.
            "The minister met the envoy. They agreed to meet again.".into()
        } else {
            "The minister spoke about the meeting.".into()
        }
    });
    engine.max_context = 1200;
    let article: String = (0..60)
        .map(|i| format!("قال الوزير في الاجتماع رقم {i} إن المحادثات كانت مثمرة جدا. "))
        .collect();
    let options = SummaryOptions {
        strategy: Strategy::Direct,
        length: SummaryLength::Sentences(2),
        sampling: SamplingParams::default(),
        normalizer: None,
        attribute: false,
        glossary: None,
        candidates: Candidates::default(),
    };
    let report = summarize(
        &engine,
        &PromptSet::default(),
        &article,
        &options,
        &mut |_| {},
    )
    .unwrap();
    let asked = engine.asked();
    let parts = asked.len() - 1;
    assert!(parts >= 2, "{} requests", asked.len());
    assert!(
        report
            .events
            .iter()
            .any(|e| e.contains(&format!("summarized in {parts} parts"))),
        "{:?}",
        report.events
    );
    // Every part carries its own sentences and the last request the parts' summaries.
    let last = asked.last().unwrap();
    assert_eq!(
        last.matches("The minister spoke about the meeting.")
            .count(),
        parts,
        "{last}"
    );
    assert_eq!(
        report.summary.trim(),
        "The minister met the envoy. They agreed to meet again."
    );
}

/// The n-th candidate of a request: 0 is the greedy one, the others are told apart by
/// their seed.
fn candidate(params: &SamplingParams) -> u64 {
    if params.temperature == 0.0 {
        0
    } else {
        params.seed - SamplingParams::default().seed
    }
}

fn four_candidates() -> Candidates {
    Candidates {
        n: 4,
        ..Candidates::default()
    }
}

#[test]
fn candidates_are_drawn_together_and_the_consensus_wins() {
    let engine = Scripted::sampled(|_, params| {
        match candidate(params) {
            0 => "Putin met Witkoff in Petersburg on Friday.",
            1 | 2 => "Putin met Witkoff in St. Petersburg on Friday.",
            // Dropped by the guards before the choice.
            _ => "قال بوتين إن المحادثات كانت مثمرة",
        }
        .into()
    });
    let mut t = translator(&engine, 1).with_candidates(four_candidates());
    let out = t.translate(&[S1]).unwrap();
    assert_eq!(
        out[0].text,
        "Putin met Witkoff in St. Petersburg on Friday."
    );
    assert_eq!(out[0].candidates, Some(3), "the Arabic one is dropped");
    let utility = out[0].utility.unwrap();
    assert!(utility > 80.0 && utility < 100.0, "{utility}");
    // One greedy request and three sampled ones, epsilon sampling with distinct seeds.
    let params = engine.params();
    assert_eq!(params.len(), 4);
    let mut seeds: Vec<u64> = params.iter().map(candidate).collect();
    seeds.sort_unstable();
    assert_eq!(seeds, [0, 1, 2, 3]);
    for p in params.iter().filter(|p| p.temperature > 0.0) {
        assert_eq!(p.temperature, Candidates::default().temperature);
        assert_eq!(p.epsilon, Some(0.02));
    }
    assert!(t.take_events().is_empty());
}

#[test]
fn every_candidate_failing_the_guards_falls_back_to_the_retry() {
    let engine = Scripted::sampled(|user, _| {
        if user.ends_with("Answer in English only.") {
            "The minister said the meeting was fruitful.".into()
        } else {
            "".into()
        }
    });
    let mut t = translator(&engine, 1).with_candidates(four_candidates());
    let out = t.translate(&[S1]).unwrap();
    assert_eq!(out[0].text, "The minister said the meeting was fruitful.");
    assert_eq!(out[0].candidates, None);
    assert_eq!(engine.asked().len(), 5, "four candidates, then the retry");
    let events = t.take_events();
    assert!(events[0].starts_with("an empty answer"), "{events:?}");
}

#[test]
fn batch_candidates_are_chosen_sentence_by_sentence() {
    let engine = Scripted::sampled(|_, params| {
        match candidate(params) {
            0 => "1. The minister said the talks were fruitful.\n2. قال\n3. No details.",
            1 => "1. The minister said the talks had been fruitful.\n2. He added talks go on.\n3. No details.",
            2 => "1. The minister said the talks were fruitful.\n2. He added the talks go on.\n3. No details were given.",
            // Two lines for three sentences: no line of it is used.
            _ => "1. The minister said the talks were fruitful.\n2. He added the talks go on.",
        }
        .into()
    });
    let mut t = translator(&engine, 3).with_candidates(four_candidates());
    let out = t.translate(&[S1, S2, S3]).unwrap();
    let counts: Vec<Option<usize>> = out.iter().map(|t| t.candidates).collect();
    assert_eq!(counts, [Some(3), Some(2), Some(3)]);
    assert_eq!(out[0].text, "The minister said the talks were fruitful.");
    assert_eq!(out[2].text, "No details.");
    assert_eq!(engine.asked().len(), 4, "no sentence needed redoing");
}

const GLOSSARY: &str = "ويتكوف\tWitkoff\nبيسكوف\tPeskov\n";
const S_WITKOFF: &str = "واجتمع بوتين مع ويتكوف في سانت بطرسبرغ.";

#[test]
fn the_glossary_goes_into_the_prompt_and_its_followers_win() {
    let engine = Scripted::sampled(|_, params| {
        match candidate(params) {
            3 => "Putin met Witkoff in Saint Petersburg.",
            _ => "Putin met Whitkoff in Saint Petersburg.",
        }
        .into()
    });
    let glossary = Arc::new(Glossary::parse(GLOSSARY).unwrap());
    let mut t = translator(&engine, 1)
        .with_candidates(four_candidates())
        .with_glossary(glossary.clone());
    let out = t.translate(&[S_WITKOFF, S1]).unwrap();
    // The majority misspells the name; the one candidate that follows the glossary wins.
    assert_eq!(out[0].text, "Putin met Witkoff in Saint Petersburg.");
    let asked = engine.asked();
    let witkoff = asked.iter().find(|u| u.contains("بطرسبرغ")).unwrap();
    // Listed first, and written into the Arabic in place of the term.
    assert!(witkoff.contains("ويتكوف = Witkoff"), "{witkoff}");
    assert!(witkoff.contains("واجتمع بوتين مع Witkoff في"), "{witkoff}");
    assert!(
        !witkoff.contains("Peskov"),
        "only the entries found: {witkoff}"
    );
    let other = asked.iter().find(|u| u.contains(S1)).unwrap();
    assert!(!other.contains(" = "), "no entry, no glossary: {other}");
}

#[test]
fn a_translation_that_misses_a_glossary_term_is_asked_for_again() {
    // The numbered batch respells the name; asked again with the term named, the model
    // writes it as the glossary says.
    let engine = Scripted::new(|user| {
        if user.contains("must contain: Witkoff.") {
            "Putin met Witkoff in Saint Petersburg.".into()
        } else if user.contains("1. ") {
            "1. Putin met Whitkoff in Saint Petersburg.\n2. The minister said the meeting was fruitful."
                .into()
        } else {
            "Putin met Whitkoff in Saint Petersburg.".into()
        }
    });
    let glossary = Arc::new(Glossary::parse(GLOSSARY).unwrap());
    let mut t = translator(&engine, 2).with_glossary(glossary);
    let out = t.translate(&[S_WITKOFF, S1]).unwrap();
    assert_eq!(out[0].text, "Putin met Witkoff in Saint Petersburg.");
    assert_eq!(out[1].text, "The minister said the meeting was fruitful.");
    let asked = engine.asked();
    assert_eq!(
        asked.len(),
        2,
        "the batch, then the one sentence: {asked:?}"
    );
    assert!(
        !asked[1].contains(S1),
        "only the sentence that missed: {}",
        asked[1]
    );
    let events = t.take_events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].contains("Witkoff missing"), "{events:?}");

    // An answer that is no better is not taken.
    let engine = Scripted::new(|_| "Putin met Whitkoff in Saint Petersburg.".into());
    let glossary = Arc::new(Glossary::parse(GLOSSARY).unwrap());
    let mut t = translator(&engine, 1).with_glossary(glossary);
    let out = t.translate(&[S_WITKOFF]).unwrap();
    assert_eq!(out[0].text, "Putin met Whitkoff in Saint Petersburg.");
    assert_eq!(engine.asked().len(), 2);
    assert!(t.take_events()[0].ends_with("kept the first answer"));
}

#[test]
fn a_document_reports_the_glossary_terms_its_translation_lacks() {
    let engine = Scripted::new(|_| "Putin met Whitkoff in Saint Petersburg.".into());
    let glossary = Arc::new(Glossary::parse(GLOSSARY).unwrap());
    let mut t = translator(&engine, 1).with_glossary(glossary);
    let text = format!("{S_WITKOFF} {S1}");
    let doc = translate_document(&mut t, &text, &TranslateOptions::default()).unwrap();
    assert_eq!(doc.sentences[0].glossary_missing, ["Witkoff"]);
    assert!(doc.sentences[1].glossary_missing.is_empty());
    let missing: Vec<&String> = doc
        .events
        .iter()
        .filter(|e| e.starts_with("glossary: Witkoff missing") && e.ends_with('"'))
        .collect();
    // The document's check, beside the translator's own note on asking again.
    assert_eq!(missing.len(), 1, "{:?}", doc.events);
    // Checked against the translator's own glossary, and only when asked.
    let unchecked = TranslateOptions {
        check_glossary: false,
        ..TranslateOptions::default()
    };
    let doc = translate_document(&mut t, &text, &unchecked).unwrap();
    assert!(doc.sentences[0].glossary_missing.is_empty());
}

#[test]
fn summary_candidates_lose_for_names_the_source_lacks() {
    let engine = Scripted::sampled(|user, params| {
        if user.starts_with("Translate") {
            return "Putin met Witkoff in St. Petersburg.".into();
        }
        // The greedy summary garbles a name; the samples mostly agree on the right one.
        let sample = params.seed.wrapping_sub(SamplingParams::default().seed);
        match (params.temperature > 0.0, sample) {
            (false, _) => "Putin met Whitkoff and Kerry Demetrief in St. Petersburg.",
            (true, 1) => "Putin met Witkoff in St. Petersburg.",
            (true, 2) => "بوتين التقى ويتكوف.",
            _ => "Putin met Witkoff in St. Petersburg.",
        }
        .into()
    });
    let options = SummaryOptions {
        strategy: Strategy::Direct,
        length: SummaryLength::Sentences(1),
        sampling: SamplingParams::default(),
        normalizer: None,
        attribute: false,
        glossary: None,
        candidates: Candidates {
            n: 4,
            ..Candidates::default()
        },
    };
    let mut streamed = String::new();
    let report = summarize(
        &engine,
        &PromptSet::default(),
        S_WITKOFF,
        &options,
        &mut |t| streamed.push_str(t),
    )
    .unwrap();
    assert_eq!(report.summary, "Putin met Witkoff in St. Petersburg.");
    assert_eq!(streamed, report.summary, "the winner alone is streamed");
    let choice = report.choice.expect("a choice among candidates");
    assert_eq!(choice.compared, 3, "the Arabic candidate is dropped");
    assert_eq!(choice.faithfulness, 1.0);
    assert!(choice.unsupported.is_empty());
    assert!(
        choice.consensus > 0.5 && choice.consensus < 1.0,
        "{choice:?}"
    );
    // One translation for the evidence, four candidates.
    let asked = engine.asked();
    assert_eq!(asked.len(), 5, "{asked:?}");
    assert_eq!(
        asked.iter().filter(|u| u.starts_with("Translate")).count(),
        1
    );
}
