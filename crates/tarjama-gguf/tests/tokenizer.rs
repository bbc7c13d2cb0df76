//! Parity of the GGUF tokenizer and chat templates with their references.
//!
//! The expected ids come from llama.cpp (llama-cpp-python, `vocab_only`) and the
//! expected prompts from Python's jinja2, both written by
//! `scripts/gguf_tokenizer_parity.py` into `tests/fixtures/gguf/`.
//!
//! The tokenizer tests need the real GGUF files in the model folder
//! (`$TARJAMA_HOME/models`, by default `~/.cache/tarjama/models`; `tarjama models pull
//! NAME`) and the FLORES-200 devtest (the repository's `tests/data/flores200`, or
//! `$TARJAMA_FLORES`). The ones that need a model are marked `#[ignore]`; `scripts/test.sh`
//! runs them with `TARJAMA_REQUIRE_MODELS=1` and `TARJAMA_REQUIRE_FLORES=1`, where a
//! missing file fails them.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::Content;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use tarjama_chat::Message;
use tarjama_gguf::chat_template::ChatTemplate;
use tarjama_gguf::tokenizer::GgufTokenizer;
use tarjama_testkit::{require_flores, require_model_file};

/// The Qwen2.5 1.5B file shares the 0.5B's tokenizer: it is checked against the 0.5B's
/// fixtures when present.
const QWEN_15B_FILE: &str = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf";
const QWEN_05B: &str = "qwen2.5-coder-0.5b-instruct";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf")
}

fn read_json(name: &str) -> Json {
    let path = fixtures().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn sha256_file(path: &Path) -> String {
    let mut file = File::open(path).unwrap();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hex::encode(hasher.finalize())
}

fn load(path: &Path) -> (Content, GgufTokenizer) {
    let mut file = File::open(path).unwrap();
    let content = Content::read(&mut file).unwrap();
    let start = std::time::Instant::now();
    let tok = GgufTokenizer::from_gguf(&content, path).unwrap();
    eprintln!(
        "{}: tokenizer built in {:.2?}",
        path.file_name().unwrap().to_string_lossy(),
        start.elapsed()
    );
    (content, tok)
}

fn read_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    lines.pop(); // after the last "\n"
    lines
}

fn parse_ids(line: &str) -> Vec<u32> {
    line.split_ascii_whitespace()
        .map(|x| x.parse().unwrap())
        .collect()
}

/// Tokenizes every FLORES line with `tok` and compares with llama.cpp's ids; checks the
/// decode round trip and the streaming decoder on the way. Returns (identical, total).
fn check_flores(flores: &Path, name: &str, model: &Json, tok: &GgufTokenizer) -> (usize, usize) {
    let start = std::time::Instant::now();
    let mut identical = 0;
    let mut total = 0;
    let mut first_diffs = Vec::new();
    let files = model["ids_files"].as_object().unwrap();
    for (lang, file) in files {
        let lines = read_lines(&flores.join(format!("{lang}.devtest")));
        let expected = read_lines(&fixtures().join(file.as_str().unwrap()));
        assert_eq!(lines.len(), expected.len(), "{name} {lang}: line counts");
        for (i, (line, want)) in lines.iter().zip(&expected).enumerate() {
            let want = parse_ids(want);
            let got = tok.encode(line, true, false).unwrap();
            total += 1;
            if got == want {
                identical += 1;
            } else if first_diffs.len() < 5 {
                first_diffs.push(format!(
                    "{lang}:{}: {line:?}\n  ours {got:?}\n  llama.cpp {want:?}",
                    i + 1
                ));
            }
            // The ids give back the text exactly, whole or streamed.
            let decoded = tok.decode(&got, true).unwrap();
            assert_eq!(&decoded, line, "{name} {lang}:{}: round trip", i + 1);
            let mut stream = tok.stream(true);
            let mut streamed = String::new();
            for &id in &got {
                if let Some(piece) = stream.push(id).unwrap() {
                    streamed.push_str(&piece);
                }
            }
            streamed.extend(stream.finish());
            assert_eq!(&streamed, line, "{name} {lang}:{}: streamed", i + 1);
        }
    }
    eprintln!(
        "{name}: {identical}/{total} FLORES lines tokenized identically to llama.cpp \
         (encode + decode + stream in {:.2?})",
        start.elapsed()
    );
    assert!(
        first_diffs.is_empty(),
        "{name}: {identical}/{total} identical; first differences:\n{}",
        first_diffs.join("\n")
    );
    (identical, total)
}

fn check_special_cases(name: &str, model: &Json, tok: &GgufTokenizer) {
    for case in model["special"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let add_special = case["add_special"].as_bool().unwrap();
        let parse_special = case["parse_special"].as_bool().unwrap();
        let want: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        let got = tok.encode(text, add_special, parse_special).unwrap();
        assert_eq!(
            got, want,
            "{name}: encode({text:?}, add_special={add_special}, parse_special={parse_special})"
        );
        let shown = tok.decode(&want, false).unwrap();
        assert_eq!(
            shown,
            case["pieces_special"].as_str().unwrap(),
            "{name}: decode({want:?}, skip_special=false)"
        );
        let plain = tok.decode(&want, true).unwrap();
        assert_eq!(
            plain,
            case["pieces_plain"].as_str().unwrap(),
            "{name}: decode({want:?}, skip_special=true)"
        );
    }
}

#[test]
#[ignore = "needs the FLORES-200 devtest and models qwen2.5-coder-0.5b-instruct, gemma-3-270m (tarjama models pull)"]
fn gguf_tokenizers_match_llama_cpp() {
    let cases = read_json("tokenizer_cases.json");
    let models = cases["models"].as_object().unwrap();
    assert!(!models.is_empty(), "tokenizer_cases.json lists no model");
    let Some(flores) = require_flores() else {
        return;
    };
    let mut summary = BTreeMap::new();
    for (name, model) in models {
        let Some(path) = require_model_file(model["file"].as_str().unwrap()) else {
            continue;
        };
        assert_eq!(
            sha256_file(&path),
            model["sha256"].as_str().unwrap(),
            "{}: not the file the fixtures were made from",
            path.display()
        );
        let (_, tok) = load(&path);
        check_special_cases(name, model, &tok);
        summary.insert(name.clone(), check_flores(&flores, name, model, &tok));
    }
    // The 1.5B Qwen shares the 0.5B's tokenizer; check it when it is there.
    if let Some(path) = require_model_file(QWEN_15B_FILE) {
        let (_, tok) = load(&path);
        let model = &models[QWEN_05B];
        check_special_cases("qwen2.5-coder-1.5b-instruct", model, &tok);
        summary.insert(
            "qwen2.5-coder-1.5b-instruct".into(),
            check_flores(&flores, "qwen2.5-coder-1.5b-instruct", model, &tok),
        );
    }
    eprintln!("summary: {summary:?}");
}

#[test]
#[ignore = "needs models qwen2.5-coder-0.5b-instruct and gemma-3-270m (tarjama models pull)"]
fn gguf_metadata_gives_special_tokens_and_template() {
    let (Some(qwen), Some(gemma)) = (
        require_model_file("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
        require_model_file("gemma-3-270m-q4_k_m.gguf"),
    ) else {
        return;
    };
    let (content, tok) = load(&qwen);
    let im_end = tok.token_to_id("<|im_end|>").unwrap();
    assert_eq!(tok.eos, Some(im_end));
    assert!(!tok.add_bos);
    assert!(tok.is_end_of_turn(im_end));
    assert!(tok.is_end_of_turn(tok.token_to_id("<|endoftext|>").unwrap()));
    let template = ChatTemplate::from_gguf(&content, &tok, &qwen)
        .unwrap()
        .unwrap();
    let chat = read_json("chat_templates.json");
    assert_eq!(
        template.source(),
        chat["templates"]["qwen2.5"]["source"].as_str().unwrap()
    );
    let prompt = template
        .render(&[Message::new("user", "مرحبا")], true)
        .unwrap();
    let ids = tok.encode(&prompt, true, true).unwrap();
    assert_eq!(ids[0], tok.token_to_id("<|im_start|>").unwrap());
    assert_eq!(ids.iter().filter(|&&id| id == im_end).count(), 2);

    let (content, tok) = load(&gemma);
    assert_eq!((tok.bos, tok.eos, tok.add_bos), (Some(2), Some(1), true));
    let end_of_turn = tok.token_to_id("<end_of_turn>").unwrap();
    assert!(tok.is_end_of_turn(end_of_turn) && tok.is_end_of_turn(1));
    // The 270M base model ships without a chat template.
    assert!(ChatTemplate::from_gguf(&content, &tok, &gemma)
        .unwrap()
        .is_none());
}

#[test]
fn bad_metadata_is_reported_with_the_key() {
    use candle_core::quantized::gguf_file::Value;
    let path = Path::new("broken.gguf");
    let mut content = Content {
        magic: candle_core::quantized::gguf_file::VersionedMagic::GgufV3,
        metadata: Default::default(),
        tensor_infos: Default::default(),
        tensor_data_offset: 0,
    };
    let err = GgufTokenizer::from_gguf(&content, path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("broken.gguf") && err.contains("tokenizer.ggml.model"),
        "{err}"
    );

    content
        .metadata
        .insert("tokenizer.ggml.model".into(), Value::String("gpt2".into()));
    content
        .metadata
        .insert("tokenizer.ggml.pre".into(), Value::String("qwen2".into()));
    content.metadata.insert(
        "tokenizer.ggml.tokens".into(),
        Value::Array(vec![
            Value::String("a".into()),
            Value::String("b".into()),
            Value::String("ab".into()),
        ]),
    );
    let err = GgufTokenizer::from_gguf(&content, path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("tokenizer.ggml.merges"), "{err}");

    content.metadata.insert(
        "tokenizer.ggml.merges".into(),
        Value::Array(vec![Value::String("a b".into())]),
    );
    content
        .metadata
        .insert("tokenizer.ggml.eos_token_id".into(), Value::U32(7));
    let err = GgufTokenizer::from_gguf(&content, path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tokenizer.ggml.eos_token_id") && err.contains('7'),
        "{err}"
    );

    content
        .metadata
        .insert("tokenizer.ggml.eos_token_id".into(), Value::U32(2));
    let tok = GgufTokenizer::from_gguf(&content, path).unwrap();
    assert_eq!(tok.encode("abba", true, false).unwrap(), vec![2, 1, 0]);
    assert_eq!(tok.decode(&[2, 1, 0], true).unwrap(), "abba");

    content
        .metadata
        .insert("tokenizer.ggml.pre".into(), Value::String("made-up".into()));
    let err = GgufTokenizer::from_gguf(&content, path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tokenizer.ggml.pre") && err.contains("made-up"),
        "{err}"
    );
}

#[test]
fn chat_templates_match_jinja2() {
    let chat = read_json("chat_templates.json");
    let templates = chat["templates"].as_object().unwrap();
    for name in ["qwen2.5", "gemma3", "llama3"] {
        assert!(
            templates.contains_key(name),
            "chat_templates.json lacks {name}"
        );
    }
    let compiled: BTreeMap<&str, ChatTemplate> = templates
        .iter()
        .map(|(name, t)| {
            let template = ChatTemplate::from_source(
                t["source"].as_str().unwrap().to_string(),
                t["bos_token"].as_str().unwrap().to_string(),
                t["eos_token"].as_str().unwrap().to_string(),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            (name.as_str(), template)
        })
        .collect();
    let cases = chat["cases"].as_array().unwrap();
    for case in cases {
        let name = case["template"].as_str().unwrap();
        let messages: Vec<Message> = case["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| Message::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
            .collect();
        let add = case["add_generation_prompt"].as_bool().unwrap();
        let got = compiled[name].render(&messages, add);
        match (&case["expected"], &case["error"]) {
            (Json::String(want), _) => {
                assert_eq!(
                    got.unwrap_or_else(|e| panic!("{name}: {e:#}")),
                    *want,
                    "{name}: {messages:?}"
                )
            }
            (_, Json::String(message)) => {
                let err = got
                    .expect_err("jinja2 refused this conversation")
                    .to_string();
                assert!(
                    err.contains(message.as_str()),
                    "{name}: {err} lacks {message}"
                );
            }
            _ => panic!("case without expected or error: {case}"),
        }
    }
    eprintln!(
        "{} chat-template renderings identical to jinja2",
        cases.len()
    );
}

/// A SentencePiece-style (`llama`) vocabulary small enough to check by hand.
fn tiny_spm() -> GgufTokenizer {
    use candle_core::quantized::gguf_file::Value;
    let mut tokens = vec![("<unk>", 2, 0.0), ("<s>", 3, 0.0), ("</s>", 3, 0.0)];
    let bytes: Vec<String> = (0..=255u8).map(|b| format!("<0x{b:02X}>")).collect();
    tokens.extend(bytes.iter().map(|b| (b.as_str(), 6, 0.0)));
    // Higher score merges first: "▁a" beats "ab".
    tokens.extend([
        ("▁", 1, -1.0),
        ("a", 1, -2.0),
        ("b", 1, -3.0),
        ("▁a", 1, -4.0),
        ("ab", 1, -5.0),
        ("▁ab", 1, -6.0),
        ("<u>", 4, 0.0),
    ]);
    let mut md = std::collections::HashMap::new();
    let s = |x: &str| Value::String(x.to_string());
    md.insert("tokenizer.ggml.model".to_string(), s("llama"));
    md.insert(
        "tokenizer.ggml.tokens".to_string(),
        Value::Array(tokens.iter().map(|t| s(t.0)).collect()),
    );
    md.insert(
        "tokenizer.ggml.token_type".to_string(),
        Value::Array(tokens.iter().map(|t| Value::I32(t.1)).collect()),
    );
    md.insert(
        "tokenizer.ggml.scores".to_string(),
        Value::Array(tokens.iter().map(|t| Value::F32(t.2)).collect()),
    );
    md.insert(
        "tokenizer.ggml.add_space_prefix".to_string(),
        Value::Bool(false),
    );
    let content = Content {
        magic: candle_core::quantized::gguf_file::VersionedMagic::GgufV3,
        metadata: md,
        tensor_infos: Default::default(),
        tensor_data_offset: 0,
    };
    GgufTokenizer::from_gguf(&content, Path::new("tiny.gguf")).unwrap()
}

#[test]
fn spm_merges_by_score_and_falls_back_to_bytes() {
    let tok = tiny_spm();
    let id = |t: &str| tok.token_to_id(t).unwrap();
    let (space, a, b, space_a, ab, user) =
        (id("▁"), id("a"), id("b"), id("▁a"), id("ab"), id("<u>"));
    let (bos, c3, a9) = (id("<s>"), id("<0xC3>"), id("<0xA9>"));
    assert_eq!(tok.bos, Some(bos));
    assert!(tok.add_bos);
    // "ab": one merge. " ab": "▁a" outranks "ab", and "▁a"+"b" = "▁ab" follows.
    assert_eq!(tok.encode("ab", false, false).unwrap(), vec![ab]);
    assert_eq!(
        tok.encode(" ab", true, false).unwrap(),
        vec![bos, id("▁ab")]
    );
    // "bab": "ab" at 1 is the only pair in the vocabulary.
    assert_eq!(tok.encode("bab", false, false).unwrap(), vec![b, ab]);
    // "é" is not in the vocabulary: its two UTF-8 bytes.
    assert_eq!(tok.encode("aé", false, false).unwrap(), vec![a, c3, a9]);
    // User-defined tokens are always matched, control tokens only when asked.
    assert_eq!(
        tok.encode("a<u> a", false, false).unwrap(),
        vec![a, user, space_a]
    );
    assert_eq!(tok.encode("<s>", false, true).unwrap(), vec![bos]);
    assert_ne!(tok.encode("<s>", false, false).unwrap(), vec![bos]);
    let _ = space;

    // Decoding and streaming: the two bytes of "é" only print together.
    let ids = tok.encode(" ab aé", true, false).unwrap();
    assert_eq!(tok.decode(&ids, true).unwrap(), " ab aé");
    assert_eq!(tok.decode(&ids, false).unwrap(), "<s> ab aé");
    let mut stream = tok.stream(true);
    let pieces: Vec<Option<String>> = ids.iter().map(|&i| stream.push(i).unwrap()).collect();
    assert_eq!(
        pieces,
        vec![
            None,
            Some(" ab".into()),
            Some(" a".into()),
            None,
            Some("é".into())
        ]
    );
    assert_eq!(stream.finish(), None);
    // A stream cut inside a character ends with U+FFFD, never half a character.
    let mut stream = tok.stream(true);
    assert_eq!(stream.push(c3).unwrap(), None);
    assert_eq!(stream.finish().as_deref(), Some("\u{FFFD}"));
    assert!(tok.decode(&[u32::MAX], true).is_err());
}
