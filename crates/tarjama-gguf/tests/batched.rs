//! Many sequences per step give each request exactly what it gets alone.
//!
//! 16 translation requests of different lengths (FLORES-200 devtest sentences in the
//! pipeline's prompt, so they share a system prompt and instructions) go through the
//! batched engine one at a time, all together, and together in a shuffled order with
//! fewer slots and a small prefill chunk (so prompts are fed in pieces beside other
//! sequences' decoding, and later requests start from kept prompt prefixes). Greedy
//! outputs must be token-identical in all three, and equal to the single-sequence
//! [`ChatModel`]'s; a seeded sampled request must give the same text alone and batched.
//!
//! Needs Qwen2.5-Coder 0.5B in the model folder (`tarjama models pull
//! qwen2.5-coder-0.5b-instruct`); skipped with a note without it, unless
//! `TARJAMA_REQUIRE_MODELS=1` (CI).

use tarjama_chat::Message;
use tarjama_chat::SamplingParams;
use tarjama_gguf::{ChatModel, Engine, EngineOptions, LoadOptions};

const MODEL: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";

/// 16 Arabic sentences of different lengths (FLORES-200 devtest lines 1-16, shortened or
/// joined so that prompts range from a few words to a paragraph).
fn sentences() -> Vec<String> {
    let lines = [
        "قال بوتين إن المحادثات كانت مثمرة.",
        "وصل الوفد إلى القاهرة صباح اليوم.",
        "أعلنت وزارة الصحة عن تسجيل حالات جديدة في العاصمة، وقالت إن الوضع تحت السيطرة.",
        "الطقس حار.",
        "قال العلماء إن الاكتشاف قد يغير فهمنا لتاريخ الأرض، وإن المزيد من الأبحاث مطلوب قبل التوصل إلى نتائج نهائية.",
        "افتتح الرئيس المعرض الدولي للكتاب.",
        "ارتفعت أسعار النفط بنسبة ثلاثة في المئة يوم الاثنين بعد تقارير عن تراجع المخزونات الأمريكية.",
        "فاز الفريق بالبطولة للمرة الثانية.",
        "أكد المتحدث باسم الحكومة أن الانتخابات ستجرى في موعدها المحدد رغم الصعوبات الأمنية في بعض المناطق الحدودية.",
        "انخفضت درجات الحرارة في الشمال.",
        "وقالت الشرطة إنها ألقت القبض على ثلاثة أشخاص.",
        "تستمر المفاوضات بين الطرفين منذ أكثر من عام دون التوصل إلى اتفاق نهائي بشأن القضايا العالقة، بما في ذلك الحدود والمياه واللاجئين.",
        "نشرت الصحيفة مقالا عن التعليم.",
        "سيعقد المؤتمر في باريس الشهر المقبل.",
        "قال المدرب إن اللاعبين قدموا أداء رائعا رغم الإصابات.",
        "شكرا.",
    ];
    lines.iter().map(|s| s.to_string()).collect()
}

/// A translation request as the pipeline's default prompts make it (the engine is tested
/// here, so the prompts are written out rather than taken from the pipeline crate).
fn messages(sentence: &str) -> Vec<Message> {
    vec![
        Message::new(
            "system",
            "You are a professional translator and editor for Arabic news. You render Arabic \
             faithfully in English, keeping names, places, numbers and dates exact, and you \
             never add commentary.",
        ),
        Message::new(
            "user",
            format!(
                "Translate this Arabic text into English. Output only the English \
                 translation, nothing else.\n\n{sentence}"
            ),
        ),
    ]
}

/// How every test here loads the model.
fn load_options() -> LoadOptions {
    LoadOptions {
        max_context: 2048,
        chat_template: None,
    }
}

/// Every request's text, sent from one thread each (all queued at once) in `order`.
fn run_all(engine: &Engine, order: &[usize], params: &SamplingParams) -> Vec<String> {
    let sentences = sentences();
    let mut out = vec![String::new(); sentences.len()];
    std::thread::scope(|scope| {
        let handles: Vec<_> = order
            .iter()
            .map(|&i| {
                let m = messages(&sentences[i]);
                let h = scope.spawn(move || engine.chat(&m, params, &mut |_| {}).unwrap().text);
                // Submit in this order: each thread queues its request before the next starts.
                std::thread::sleep(std::time::Duration::from_millis(5));
                (i, h)
            })
            .collect();
        for (i, h) in handles {
            out[i] = h.join().unwrap();
        }
    });
    out
}

#[test]
#[ignore = "needs model qwen2.5-coder-0.5b-instruct (tarjama models pull)"]
fn outputs_do_not_depend_on_the_batch() {
    let Some(path) = tarjama_testkit::require_model_file(MODEL) else {
        return;
    };
    let params = SamplingParams::greedy(24);
    let load = load_options();

    // The single-sequence model, one request after the other.
    let mut single = ChatModel::load(&path, &load).unwrap();
    let sentences = sentences();
    let reference: Vec<String> = sentences
        .iter()
        .map(|s| {
            single
                .chat(&messages(s), &params, &mut |_| {})
                .unwrap()
                .text
        })
        .collect();
    drop(single);
    assert!(reference.iter().all(|t| !t.is_empty()));

    let engine = |parallel: usize, prefill_chunk: usize| {
        let options = EngineOptions {
            parallel,
            prefill_chunk,
            ..EngineOptions::default()
        };
        Engine::load(&path, &load, options).unwrap()
    };
    let in_order: Vec<usize> = (0..sentences.len()).collect();

    let alone = engine(1, 512);
    let one_by_one: Vec<String> = in_order
        .iter()
        .map(|&i| run_all(&alone, &[i], &params).swap_remove(i))
        .collect();
    assert_eq!(one_by_one, reference, "engine alone vs ChatModel");
    drop(alone);

    let wide = engine(16, 512);
    let together = run_all(&wide, &in_order, &params);
    let stats = wide.stats();
    assert!(stats.peak_running >= 8, "requests ran together: {stats:?}");
    for (i, (got, want)) in together.iter().zip(&reference).enumerate() {
        assert_eq!(got, want, "request {i}: batched of 16 vs alone");
    }
    drop(wide);

    let shuffled_order = [11, 3, 15, 0, 8, 5, 13, 1, 10, 6, 2, 14, 4, 9, 7, 12];
    let narrow = engine(5, 7);
    let shuffled = run_all(&narrow, &shuffled_order, &params);
    let stats = narrow.stats();
    assert!(
        stats.reused > 0,
        "later requests start from kept prefixes: {stats:?}"
    );
    for (i, (got, want)) in shuffled.iter().zip(&reference).enumerate() {
        assert_eq!(
            got, want,
            "request {i}: shuffled, 5 slots, prompts in 7-token pieces"
        );
    }

    // A seeded sampled request: the same text alone and among the others.
    let sampled = SamplingParams {
        temperature: 0.9,
        top_p: Some(0.95),
        seed: 7,
        ..SamplingParams::greedy(24)
    };
    let m = messages(&sentences[4]);
    let alone = narrow.chat(&m, &sampled, &mut |_| {}).unwrap().text;
    let among = std::thread::scope(|scope| {
        let others: Vec<_> = (0..4)
            .map(|i| {
                let m = messages(&sentences[i]);
                let params = &params;
                let narrow = &narrow;
                scope.spawn(move || narrow.chat(&m, params, &mut |_| {}).unwrap())
            })
            .collect();
        let text = narrow.chat(&m, &sampled, &mut |_| {}).unwrap().text;
        for h in others {
            h.join().unwrap();
        }
        text
    });
    assert_eq!(alone, among, "a seeded sampled request alone vs batched");
}

#[test]
#[ignore = "needs model qwen2.5-coder-0.5b-instruct (tarjama models pull)"]
fn answers_to_one_prompt_compute_it_once() {
    let Some(path) = tarjama_testkit::require_model_file(MODEL) else {
        return;
    };
    let load = load_options();
    let options = EngineOptions {
        parallel: 8,
        ..EngineOptions::default()
    };
    // Four answers to one prompt, as `--candidates 4` asks: the greedy one and three
    // seeded samples.
    let all_params: Vec<SamplingParams> = (0..4u64)
        .map(|k| match k {
            0 => SamplingParams::greedy(16),
            _ => SamplingParams {
                temperature: 0.7,
                seed: k,
                ..SamplingParams::greedy(16)
            },
        })
        .collect();
    let m = messages(&sentences()[2]);
    let alone = Engine::load(&path, &load, options.clone()).unwrap();
    let want: Vec<String> = all_params
        .iter()
        .map(|p| alone.chat(&m, p, &mut |_| {}).unwrap().text)
        .collect();
    drop(alone);

    let engine = Engine::load(&path, &load, options).unwrap();
    let prompt = engine.prompt_tokens(&m).unwrap().len();
    let got: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = all_params
            .iter()
            .map(|p| {
                let (engine, m) = (&engine, &m);
                scope.spawn(move || engine.chat(m, p, &mut |_| {}).unwrap().text)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(got, want, "the same answers as one at a time");
    let stats = engine.stats();
    // The first computes the prompt; the other three read all of it but its last token.
    assert!(
        stats.reused >= 3 * (prompt - 1),
        "{prompt}-token prompt computed once: {stats:?}"
    );
    assert!(
        stats.rows <= prompt + 3 + stats.generated,
        "rows fed: {stats:?}"
    );
}

#[test]
#[ignore = "needs model qwen2.5-coder-0.5b-instruct (tarjama models pull)"]
fn candidates_ride_on_one_sequence_until_their_tokens_differ() {
    let Some(path) = tarjama_testkit::require_model_file(MODEL) else {
        return;
    };
    let load = load_options();
    // The greedy answer and five seeded samples at a low temperature (mostly the greedy
    // token), one with a shorter limit and one with a stop string: each must be what it
    // is alone, whichever sequence it rode on and whenever it left.
    let all_params: Vec<SamplingParams> = (0..6u64)
        .map(|k| match k {
            0 => SamplingParams::greedy(24),
            _ => SamplingParams {
                temperature: 0.3,
                seed: k,
                max_new_tokens: if k == 4 { 9 } else { 24 },
                stop: if k == 5 { vec![",".into()] } else { Vec::new() },
                ..SamplingParams::greedy(24)
            },
        })
        .collect();
    let m = messages(&sentences()[4]);
    let alone = Engine::load(&path, &load, EngineOptions::default()).unwrap();
    let want: Vec<String> = all_params
        .iter()
        .map(|p| alone.chat(&m, p, &mut |_| {}).unwrap().text)
        .collect();
    drop(alone);

    let engine = Engine::load(&path, &load, EngineOptions::default()).unwrap();
    let prompt = engine.prompt_tokens(&m).unwrap().len();
    let got: Vec<String> = engine
        .chat_many(&m, &all_params)
        .into_iter()
        .map(|c| c.unwrap().text)
        .collect();
    assert_eq!(got, want, "the same answers as one at a time");
    let stats = engine.stats();
    // Each step a rider spent on another sequence is a row it did not feed: the rows
    // fed and ridden add up to what six sequences of their own would have fed.
    assert!(stats.rode > 0, "no answer rode: {stats:?}");
    assert!(
        stats.rows + stats.rode <= prompt + 5 + stats.generated,
        "rows fed and ridden: {stats:?}"
    );
    assert!(
        stats.rows < prompt + stats.generated,
        "fewer rows than tokens: {stats:?}"
    );
    assert_eq!(stats.requests, 6);
}

#[test]
#[ignore = "needs model qwen2.5-coder-0.5b-instruct (tarjama models pull)"]
fn streaming_stop_strings_and_budget() {
    let Some(path) = tarjama_testkit::require_model_file(MODEL) else {
        return;
    };
    let load = load_options();
    // A budget that fits one request at a time: the others wait, none fails.
    let per_position = 24 * 2 * 128 * 4; // Qwen2.5 0.5B: 24 layers, 2 kv heads of 64 x 2
    let options = EngineOptions {
        parallel: 8,
        kv_budget: per_position * 200,
        ..EngineOptions::default()
    };
    let engine = Engine::load(&path, &load, options).unwrap();
    let sentences = sentences();
    let params = SamplingParams {
        stop: vec![".".into()],
        ..SamplingParams::greedy(40)
    };
    let results: Vec<(String, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = sentences[..4]
            .iter()
            .map(|s| {
                let m = messages(s);
                let (engine, params) = (&engine, &params);
                scope.spawn(move || {
                    let mut streamed = String::new();
                    let c = engine
                        .chat(&m, params, &mut |t| streamed.push_str(t))
                        .unwrap();
                    (c.text, streamed)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (text, streamed) in &results {
        assert_eq!(text, streamed, "the streamed pieces make up the text");
        assert!(
            !text.contains('.'),
            "stopped before the stop string: {text:?}"
        );
    }
    let stats = engine.stats();
    assert_eq!(
        stats.peak_running, 1,
        "the budget let one request run at a time"
    );
    assert_eq!(stats.requests, 4);
}
