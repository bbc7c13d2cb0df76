//! The encoder-decoder runner against `transformers`: tiny random-weight Marian and
//! M2M100 (NLLB-style) checkpoints and the reference numbers `transformers` computed for
//! them, made by `scripts/gen_seq2seq_fixtures.py`.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde_json::Value;
use tarjama_seq2seq::{
    EarlyStopping, EncoderDecoder, GenerateOptions, LoadOptions, Seq2SeqTranslator,
};

/// Encoder states and logits may differ from PyTorch's by float rounding only.
const TOL: f32 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/seq2seq")
        .join(name)
}

fn load(name: &str) -> Seq2SeqTranslator {
    Seq2SeqTranslator::load(fixture(name).to_str().unwrap(), &Device::Cpu).unwrap()
}

fn reference(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(name).join("reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The fixture model `name` and what `transformers` computed with it.
fn load_with_reference(name: &str) -> (Seq2SeqTranslator, Value) {
    (load(name), reference(name))
}

/// The error loading `model` gives, as its message.
fn load_error(model: &str) -> String {
    Seq2SeqTranslator::load(model, &Device::Cpu)
        .err()
        .unwrap()
        .to_string()
}

/// Each element of the JSON array `v`, through `f`.
fn array<'a, T>(v: &'a Value, f: impl FnMut(&'a Value) -> T) -> Vec<T> {
    v.as_array().unwrap().iter().map(f).collect()
}

fn ids(v: &Value) -> Vec<u32> {
    array(v, |x| x.as_u64().unwrap() as u32)
}

fn floats(v: &Value) -> Vec<f32> {
    array(v, |x| x.as_f64().unwrap() as f32)
}

fn strs(v: &Value) -> Vec<&str> {
    array(v, |x| x.as_str().unwrap())
}

/// All the values of `t`, flattened.
fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// `got` equals `want` but for float rounding ([`TOL`]).
fn assert_close(got: &Tensor, want: &[f32], what: &str) {
    let diff = max_abs_diff(&values(got), want);
    assert!(diff < TOL, "{what} differ by {diff}");
}

fn check_flores_ids(name: &str) {
    let Some(flores) = tarjama_testkit::require_flores() else {
        return;
    };
    let t = load(name);
    let text = std::fs::read_to_string(flores.join("arb_Arab.devtest")).unwrap();
    let expected = std::fs::read_to_string(fixture(name).join("flores_arb_ids.txt")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let expected: Vec<&str> = expected.lines().collect();
    assert_eq!(lines.len(), 1012);
    assert_eq!(expected.len(), lines.len());
    let mut bad = Vec::new();
    for (i, (line, want)) in lines.iter().zip(&expected).enumerate() {
        let got = t.encode_source(line, &GenerateOptions::default()).unwrap();
        let want: Vec<u32> = want.split(' ').map(|x| x.parse().unwrap()).collect();
        if got != want {
            if bad.is_empty() {
                eprintln!("{name}: line {i}\n got  {got:?}\n want {want:?}");
            }
            bad.push(i);
        }
    }
    assert!(
        bad.is_empty(),
        "{name}: ids differ on {} FLORES lines, first {:?}",
        bad.len(),
        &bad[..bad.len().min(10)]
    );
}

#[test]
fn marian_tokenizer_matches_transformers_on_all_flores_lines() {
    check_flores_ids("marian");
}

#[test]
fn nllb_tokenizer_matches_transformers_on_all_flores_lines() {
    check_flores_ids("nllb");
}

fn check_fixture_ids(name: &str) {
    let (t, r) = load_with_reference(name);
    for (text, want) in r["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .zip(r["tokenized"].as_array().unwrap())
    {
        let got = t
            .encode_source(text.as_str().unwrap(), &GenerateOptions::default())
            .unwrap();
        assert_eq!(got, ids(want), "{name}: {text}");
    }
}

#[test]
fn tokenizers_match_transformers_on_fixture_inputs() {
    check_fixture_ids("marian");
    check_fixture_ids("nllb");
}

/// The padded two-sentence batch of the reference, unpadded again.
fn reference_batch(r: &Value) -> Vec<Vec<u32>> {
    let enc = &r["encoder"];
    enc["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .zip(enc["attention_mask"].as_array().unwrap())
        .map(|(row, mask)| {
            let n = ids(mask).iter().filter(|&&m| m == 1).count();
            ids(row)[..n].to_vec()
        })
        .collect()
}

fn check_encoder(name: &str) {
    let (t, r) = load_with_reference(name);
    let (encoded, _) = t.encode_batch(&reference_batch(&r)).unwrap();
    let want = floats(&r["encoder"]["values"]);
    let shape: Vec<usize> = array(&r["encoder"]["shape"], |x| x.as_u64().unwrap() as usize);
    assert_eq!(encoded.dims(), &shape[..]);
    assert_close(&encoded, &want, &format!("{name}: encoder states"));
}

#[test]
fn encoder_states_match_transformers() {
    check_encoder("marian");
    check_encoder("nllb");
}

fn check_step_logits(name: &str) {
    let (t, r) = load_with_reference(name);
    let (encoded, mask) = t.encode_batch(&reference_batch(&r)).unwrap();
    let dec: Vec<Vec<u32>> = array(&r["step_logits"]["decoder_input_ids"], ids);
    let want = floats(&r["step_logits"]["values"]);
    let (b, steps) = (dec.len(), dec[0].len());
    let flat: Vec<u32> = dec.concat();

    // All steps at once (causal mask) ...
    let mut state = t.model().start(&encoded, &mask).unwrap();
    let ids_t = Tensor::from_vec(flat.clone(), (b, steps), &Device::Cpu).unwrap();
    let logits = t.model().step(&ids_t, &mut state).unwrap();
    assert_close(&logits, &want, &format!("{name}: teacher-forced logits"));

    // ... and one step at a time through the cache give the reference logits.
    let mut state = t.model().start(&encoded, &mask).unwrap();
    let mut per_step = Vec::new();
    for s in 0..steps {
        let col: Vec<u32> = dec.iter().map(|row| row[s]).collect();
        let ids_t = Tensor::from_vec(col, (b, 1), &Device::Cpu).unwrap();
        per_step.push(t.model().step(&ids_t, &mut state).unwrap());
    }
    let cat = Tensor::cat(&per_step, 1).unwrap();
    assert_close(&cat, &want, &format!("{name}: cached step logits"));
}

#[test]
fn first_step_logits_match_transformers() {
    check_step_logits("marian");
    check_step_logits("nllb");
}

fn options(settings: &Value) -> GenerateOptions {
    let get_f = |k: &str| settings.get(k).and_then(Value::as_f64).map(|x| x as f32);
    let get_u = |k: &str| settings.get(k).and_then(Value::as_u64).map(|x| x as usize);
    GenerateOptions {
        beam: get_u("num_beams"),
        max_tokens: get_u("max_new_tokens"),
        min_length: get_u("min_length"),
        length_penalty: get_f("length_penalty"),
        early_stopping: settings.get("early_stopping").map(|v| match v {
            Value::Bool(true) => EarlyStopping::True,
            Value::Bool(false) => EarlyStopping::False,
            _ => EarlyStopping::Never,
        }),
        no_repeat_ngram: get_u("no_repeat_ngram_size"),
        repetition_penalty: get_f("repetition_penalty"),
        nbest: get_u("num_return_sequences").unwrap_or(1),
        ..GenerateOptions::default()
    }
}

/// transformers' output row without the decoder start token and the padding after EOS.
fn generated(row: &[u32], eos: u32, pad: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for &t in &row[1..] {
        out.push(t);
        if t == eos {
            break;
        }
    }
    while out.len() > 1 && out.last() == Some(&pad) && !row[1..].contains(&eos) {
        out.pop();
    }
    out
}

fn check_generation(name: &str, eos: u32, pad: u32) {
    let (t, r) = load_with_reference(name);
    let inputs = strs(&r["inputs"]);
    let mut failures = Vec::new();
    for case in r["cases"].as_array().unwrap() {
        let case_name = case["name"].as_str().unwrap();
        let opts = options(&case["settings"]);
        let params = t.search_params(&opts).unwrap();
        for (i, (text, out)) in inputs
            .iter()
            .zip(case["outputs"].as_array().unwrap())
            .enumerate()
        {
            let src = t.encode_source(text, &opts).unwrap();
            let hyps = t.generate_ids(&[src], &params).unwrap().remove(0);
            let want = array(&out["ids"], |r| generated(&ids(r), eos, pad));
            let got: Vec<Vec<u32>> = hyps.iter().map(|h| h.tokens.clone()).collect();
            if got != want {
                failures.push(format!("{case_name}[{i}]: got {got:?}\n   want {want:?}"));
                continue;
            }
            if let Some(scores) = out["scores"].as_array() {
                for (h, s) in hyps.iter().zip(scores) {
                    let s = s.as_f64().unwrap() as f32;
                    if (h.score - s).abs() > TOL {
                        failures.push(format!("{case_name}[{i}]: score {} vs {s}", h.score));
                    }
                }
            }
            let texts = out["texts"].as_array().unwrap();
            for (h, want_text) in hyps.iter().zip(texts) {
                let got_text = t.tokenizer().decode(&h.tokens).unwrap();
                if got_text != want_text.as_str().unwrap() {
                    failures.push(format!(
                        "{case_name}[{i}]: text {got_text:?} vs {want_text}"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn marian_generation_matches_transformers() {
    check_generation("marian", 0, reference_pad("marian"));
}

#[test]
fn nllb_generation_matches_transformers() {
    check_generation("nllb", 2, 1);
}

fn reference_pad(name: &str) -> u32 {
    let text = std::fs::read_to_string(fixture(name).join("config.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["pad_token_id"].as_u64().unwrap() as u32
}

fn check_batched(name: &str, eos: u32) {
    let (t, r) = load_with_reference(name);
    let inputs = strs(&r["inputs"]);
    let pad = reference_pad(name);
    let want = array(&r["batched_beam4"], |row| generated(&ids(row), eos, pad));
    // All sentences of different lengths in one batch, and in small batches of the
    // length-sorted order: every sentence gets what it gets alone (the reference).
    for budget in [10_000, 60] {
        let opts = GenerateOptions {
            beam: Some(4),
            batch_tokens: budget,
            ..GenerateOptions::default()
        };
        let out = t.translate(&inputs, &opts).unwrap();
        let got: Vec<Vec<u32>> = out.iter().map(|tr| tr.tokens.clone()).collect();
        assert_eq!(got, want, "{name}: batch budget {budget}");
    }
}

#[test]
fn batched_beam_search_equals_each_sentence_alone() {
    check_batched("marian", 0);
    check_batched("nllb", 2);
}

#[test]
fn translate_returns_transformers_text_and_scores() {
    for name in ["marian", "nllb"] {
        let (t, r) = load_with_reference(name);
        let inputs = strs(&r["inputs"]);
        let case = r["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "beam4_nbest")
            .unwrap();
        let opts = GenerateOptions {
            beam: Some(4),
            nbest: 4,
            ..GenerateOptions::default()
        };
        let out = t.translate(&inputs, &opts).unwrap();
        for (tr, want) in out.iter().zip(case["outputs"].as_array().unwrap()) {
            let texts = strs(&want["texts"]);
            let got: Vec<&str> = tr.nbest.iter().map(|c| c.text.as_str()).collect();
            assert_eq!(got, texts, "{name}");
            assert_eq!(tr.text, texts[0]);
            // Length penalty 1.0: transformers' score is the mean log-probability.
            let s0 = want["scores"][0].as_f64().unwrap() as f32;
            assert!((tr.score - s0).abs() < TOL, "{name}: {} vs {s0}", tr.score);
            assert!(tr.score < 0.0);
        }
    }
}

#[test]
fn int8_weights_stay_close_to_f32() {
    let f32_model = load("marian");
    let q = Seq2SeqTranslator::load_with(
        fixture("marian").to_str().unwrap(),
        &Device::Cpu,
        LoadOptions { int8: true },
    )
    .unwrap();
    let r = reference("marian");
    let batch = reference_batch(&r);
    let (a, _) = f32_model.encode_batch(&batch).unwrap();
    let (b, _) = q.encode_batch(&batch).unwrap();
    let diff = max_abs_diff(&values(&a), &values(&b));
    // 8-bit weights (per row with VNNI, per 32-block with Q8_0) keep ~2-3 significant
    // digits; on unit-scale activations after layer norm the encoder states move by a few
    // hundredths at most.
    assert!(diff > 0.0 && diff < 0.1, "int8 encoder differs by {diff}");

    // Quality loss on the fixture: how often greedy int8 output equals f32 output.
    let inputs = strs(&r["inputs"]);
    let opts = GenerateOptions {
        beam: Some(1),
        ..GenerateOptions::default()
    };
    let a = f32_model.translate(&inputs, &opts).unwrap();
    let b = q.translate(&inputs, &opts).unwrap();
    let (mut same, mut total) = (0usize, 0usize);
    for (x, y) in a.iter().zip(&b) {
        total += x.tokens.len().max(y.tokens.len());
        same += x
            .tokens
            .iter()
            .zip(&y.tokens)
            .take_while(|(p, q)| p == q)
            .count();
    }
    let agreement = same as f32 / total as f32;
    eprintln!("int8 vs f32 greedy on the fixture: {same}/{total} tokens agree before the first divergence");
    assert!(
        agreement > AGREEMENT_FLOOR,
        "int8 greedy agrees on only {agreement:.2} of tokens"
    );
}

/// Lowest acceptable share of greedy tokens (up to the first divergence) that int8
/// weights reproduce on the fixture model. A random 32-wide model has far smaller logit
/// margins than a trained one, so this is a floor against a broken quantizer (which
/// would agree on almost nothing), not a quality claim.
const AGREEMENT_FLOOR: f32 = 0.3;

#[test]
fn offline_hub_ids_fail_with_one_line() {
    let home = tempfile::tempdir().unwrap();
    std::env::set_var("HF_HOME", home.path());
    std::env::set_var("HF_HUB_OFFLINE", "1");
    let msg = load_error("no-such-org/no-such-model");
    assert!(
        msg.contains("no-such-org/no-such-model") && msg.contains("HF_HUB_OFFLINE"),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
}

/// Copies a Marian checkpoint's files but its weights (`model.safetensors`) from `from` to `to`.
fn copy_all_but_weights(from: &Path, to: &Path) {
    for f in [
        "config.json",
        "generation_config.json",
        "source.spm",
        "target.spm",
        "vocab.json",
        "tokenizer_config.json",
    ] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
}

#[test]
fn bad_model_directories_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let err = load_error(path);
    assert!(err.contains("no config.json"), "{err}");

    std::fs::write(dir.path().join("config.json"), r#"{"architectures":["BertModel"],"vocab_size":10,"d_model":8,"encoder_layers":1,"decoder_layers":1,"encoder_attention_heads":2,"decoder_attention_heads":2,"encoder_ffn_dim":8,"decoder_ffn_dim":8,"pad_token_id":0,"eos_token_id":1}"#).unwrap();
    let err = load_error(path);
    assert!(
        err.contains("unsupported architecture \"BertModel\""),
        "{err}"
    );

    // A real config with weights of the wrong shape: the error names file and tensor.
    copy_all_but_weights(&fixture("marian"), dir.path());
    std::fs::copy(
        fixture("nllb").join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    let msg = load_error(path);
    assert!(
        msg.contains("model.safetensors") && msg.contains("shape"),
        "{msg}"
    );
}

#[test]
fn missing_embeddings_and_lm_head_are_tied_to_shared() {
    // Real OPUS-MT/NLLB checkpoints store one matrix, `model.shared.weight`, for the
    // encoder and decoder embeddings and the output projection. Build such a checkpoint
    // from the fixture, and the same one with the three copies written out: both must
    // compute the same logits.
    let src = fixture("marian");
    let mut tensors =
        candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let w = tensors["lm_head.weight"].clone();
    let make = |explicit: bool| {
        let dir = tempfile::tempdir().unwrap();
        copy_all_but_weights(&src, dir.path());
        let mut t = tensors.clone();
        t.insert("model.shared.weight".into(), w.clone());
        for k in [
            "lm_head.weight",
            "model.encoder.embed_tokens.weight",
            "model.decoder.embed_tokens.weight",
        ] {
            if explicit {
                t.insert(k.into(), w.clone());
            } else {
                t.remove(k);
            }
        }
        candle_core::safetensors::save(&t, dir.path().join("model.safetensors")).unwrap();
        dir
    };
    let (tied, explicit) = (make(false), make(true));
    tensors.clear();
    let logits = |dir: &Path| {
        let t = Seq2SeqTranslator::load(dir.to_str().unwrap(), &Device::Cpu).unwrap();
        let src = t
            .encode_source("ارتفعت الأسعار.", &GenerateOptions::default())
            .unwrap();
        let (enc, mask) = t.encode_batch(&[src]).unwrap();
        let mut state = t.model().start(&enc, &mask).unwrap();
        let ids = Tensor::from_vec(vec![5u32, 9, 11], (1, 3), &Device::Cpu).unwrap();
        values(&t.model().step(&ids, &mut state).unwrap())
    };
    let (a, b) = (logits(tied.path()), logits(explicit.path()));
    assert_eq!(a, b);
}

#[test]
fn constrained_beam_writes_every_term_and_leaves_other_sentences_alone() {
    for name in ["marian", "nllb"] {
        let (t, r) = load_with_reference(name);
        let inputs = &strs(&r["inputs"])[..3];
        let opts = GenerateOptions {
            beam: Some(2),
            max_tokens: Some(24),
            ..GenerateOptions::default()
        };
        let plain = t.translate(inputs, &opts).unwrap();
        let terms = ["Bush", "nuclear"];
        for term in terms {
            let ids = t.tokenizer().encode_target(term).unwrap();
            assert!(!ids.is_empty(), "{name}: {term}");
        }
        assert!(
            plain
                .iter()
                .any(|p| terms.iter().any(|w| !p.text.contains(w))),
            "{name}: the plain decode already has every term, so the test shows nothing"
        );
        // The first two sentences must contain the terms; the third is free.
        let wanted: Vec<Vec<String>> = vec![
            terms.iter().map(|s| s.to_string()).collect(),
            vec!["nuclear".into()],
            vec![],
        ];
        let out = t.translate_constrained(inputs, &opts, &wanted).unwrap();
        assert_eq!(out.len(), 3);
        for (tr, must) in out.iter().zip(&wanted) {
            for w in must {
                assert!(
                    tr.text.contains(w.as_str()),
                    "{name}: no {w} in {:?}",
                    tr.text
                );
            }
        }
        assert_eq!(
            out[2], plain[2],
            "{name}: a sentence without terms decodes as before"
        );
    }
}
