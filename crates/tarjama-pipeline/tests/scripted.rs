//! The pipeline's repairs on a scripted chat engine: answers are written by the test, so
//! each path (retry, batch repair, map-reduce) is taken for certain and checked exactly.

use std::sync::Mutex;

use tarjama_models::chat::{ChatEngine, Completion, Message, StopReason};
use tarjama_models::sampling::SamplingParams;
use tarjama_pipeline::prompts::PromptSet;
use tarjama_pipeline::{
    summarize, ChatTranslator, Strategy, SummaryLength, SummaryOptions, Translator,
};

/// A chat engine whose answer to a request is `script(last user message)`.
struct Scripted {
    script: fn(&str) -> String,
    max_context: usize,
    asked: Mutex<Vec<String>>,
}

impl Scripted {
    fn new(script: fn(&str) -> String) -> Self {
        Scripted {
            script,
            max_context: 8192,
            asked: Mutex::new(Vec::new()),
        }
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

impl ChatEngine for Scripted {
    fn chat(
        &self,
        messages: &[Message],
        _params: &SamplingParams,
        on_text: &mut dyn FnMut(&str),
    ) -> tarjama_models::Result<Completion> {
        let user = &messages.last().expect("a message").content;
        self.asked.lock().unwrap().push(user.clone());
        let text = (self.script)(user);
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

    fn count_tokens(&self, text: &str) -> tarjama_models::Result<usize> {
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
