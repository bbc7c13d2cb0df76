//! The routes against a scripted engine, in process (no model, no socket): what each
//! answers, its errors, keys, limits, the queue and cancellation. The same server on a
//! real model, over loopback HTTP with clients nobody here wrote, is `tests/serve.rs`.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};
use tarjama_chat::{ChatEngine, Completion, Error, Message, Result, SamplingParams, StopReason};
use tarjama_loader::{ChatChoices, ChatParts};
use tarjama_pipeline::prompts::PromptSet;
use tarjama_pipeline::TranslateOptions;
use tarjama_server::{router, Config, Defaults, Keys, Model, State};
use tower::ServiceExt;

/// Answers with the words of the last message, one "token" at a time, `delay` apart;
/// counts the requests running now.
struct Echo {
    delay: Duration,
    running: AtomicUsize,
    cancelled: AtomicUsize,
}

impl ChatEngine for Echo {
    fn chat(
        &self,
        messages: &[Message],
        params: &SamplingParams,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion> {
        self.chat_until(messages, params, &mut |t| {
            on_text(t);
            ControlFlow::Continue(())
        })
    }

    fn chat_until(
        &self,
        messages: &[Message],
        params: &SamplingParams,
        on_text: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Completion> {
        self.running.fetch_add(1, Ordering::SeqCst);
        let words: Vec<String> = messages
            .last()
            .map(|m| {
                m.content
                    .split_whitespace()
                    .map(|w| format!("{w} "))
                    .collect()
            })
            .unwrap_or_default();
        let mut text = String::new();
        let mut outcome = Ok(StopReason::EndOfTurn);
        for (i, w) in words.iter().enumerate() {
            if i == params.max_new_tokens {
                outcome = Ok(StopReason::Length);
                break;
            }
            std::thread::sleep(self.delay);
            text.push_str(w);
            if on_text(w).is_break() {
                self.cancelled.fetch_add(1, Ordering::SeqCst);
                outcome = Err(Error::Cancelled);
                break;
            }
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
        let generated = text.split_whitespace().count();
        outcome.map(|stop| Completion {
            text,
            prompt_tokens: 7,
            reused_tokens: 0,
            generated_tokens: generated,
            stop,
            prefill: Duration::ZERO,
            decode: Duration::ZERO,
        })
    }

    fn count_tokens(&self, text: &str) -> Result<usize> {
        Ok(text.split_whitespace().count())
    }

    fn max_context(&self) -> usize {
        4096
    }
}

impl Echo {
    /// Waits until a request is running.
    async fn busy(&self) {
        while self.running.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Whether every request has ended within `limit`.
    async fn idle_within(&self, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        while self.running.load(Ordering::SeqCst) > 0 {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
}

fn echo(delay_ms: u64) -> Arc<Echo> {
    Arc::new(Echo {
        delay: Duration::from_millis(delay_ms),
        running: AtomicUsize::new(0),
        cancelled: AtomicUsize::new(0),
    })
}

fn config() -> Config {
    Config {
        keys: Keys::default(),
        cors: None,
        max_body: 4096,
        queue: 4,
        drain: Duration::from_secs(5),
        timeout: Duration::from_secs(30),
    }
}

/// The scripted engine as the served model.
fn model(engine: Arc<Echo>) -> Model {
    let parts = ChatParts {
        engine,
        prompts: PromptSet::default(),
        name: "echo".into(),
    };
    let defaults = Defaults {
        params: SamplingParams::greedy(64),
        choices: ChatChoices::default(),
        translate: TranslateOptions::default(),
    };
    Model::from_chat(parts, defaults)
}

fn server(engine: Arc<Echo>, config: Config) -> axum::Router {
    let state = State::new(config);
    let _ = state.model.set(model(engine));
    router(state)
}

async fn call(
    app: &axum::Router,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

fn post(uri: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap()
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

/// A client that goes away: sends `request`, and once the engine runs it, drops the
/// response unread (the body, and its channel, with it). Whether every request of
/// `engine` then ends within `limit`.
async fn hang_up_once_running(
    app: &axum::Router,
    engine: &Echo,
    request: Request<Body>,
    limit: Duration,
) -> bool {
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    engine.busy().await;
    drop(response);
    engine.idle_within(limit).await
}

fn chat(content: &str) -> String {
    json!({ "model": "echo", "messages": [{ "role": "user", "content": content }] }).to_string()
}

#[tokio::test]
async fn a_chat_answers_as_openai_does_streamed_and_not() {
    let app = server(echo(0), config());
    let (status, headers, body) =
        call(&app, post("/v1/chat/completions", chat("one two three"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "one two three ");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["completion_tokens"], 3);
    assert!(headers["server-timing"]
        .to_str()
        .unwrap()
        .starts_with("overhead;dur="));

    let mut request: Value = serde_json::from_str(&chat("one two three")).unwrap();
    request["stream"] = json!(true);
    request["max_tokens"] = json!(2);
    let (status, headers, body) =
        call(&app, post("/v1/chat/completions", request.to_string())).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let data: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "one two ");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "length");
    assert_eq!(last["usage"]["completion_tokens"], 2);
}

#[tokio::test]
async fn bad_requests_are_json_naming_the_field() {
    let app = server(echo(0), config());
    let cases = [
        ("{bad", "body"),
        (r#"{"messages": 5}"#, "messages"),
        (r#"{"messages": [{"role": "user"}]}"#, "messages[0]"),
        (
            r#"{"messages": [{"role": "robot", "content": "x"}]}"#,
            "messages[0].role",
        ),
        (
            r#"{"messages": [{"role": "user", "content": "x"}], "temperature": 9}"#,
            "temperature",
        ),
        (r#"{"messages": [], "n": 1}"#, "messages"),
    ];
    for (body, param) in cases {
        let (status, _, answer) = call(&app, post("/v1/chat/completions", body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        let v: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(v["error"]["param"], param, "{body}: {answer}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    }
    let (status, _, answer) = call(
        &app,
        post(
            "/v1/chat/completions",
            r#"{"model": "gpt-4", "messages": [{"role": "user", "content": "x"}]}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        answer.contains("model_not_found") && answer.contains("echo"),
        "{answer}"
    );
    let (status, _, answer) = call(&app, get("/nowhere")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(answer.contains("no such route"), "{answer}");
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_json() {
    let app = server(echo(0), config());
    let big = chat(&"كلمة ".repeat(2000));
    let (status, _, answer) = call(&app, post("/v1/chat/completions", big.clone())).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let v: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v["error"]["code"], "body_too_large");
    assert!(v["error"]["message"].as_str().unwrap().contains("4096"));
    // LibreTranslate's route answers in its own shape.
    let (status, _, answer) = call(&app, post("/translate", big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let v: Value = serde_json::from_str(&answer).unwrap();
    assert!(v["error"].as_str().unwrap().contains("4096"), "{answer}");
}

#[tokio::test]
async fn keys_are_required_when_set_and_never_echoed() {
    let mut config = config();
    config.keys = Keys::new(["s3cret-key".to_string(), "other".to_string()]);
    let app = server(echo(0), config);
    let (status, _, answer) = call(&app, post("/v1/chat/completions", chat("a"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(answer.contains("missing_api_key"), "{answer}");
    let wrong = Request::post("/v1/chat/completions")
        .header(header::AUTHORIZATION, "Bearer s3cret-kez")
        .body(Body::from(chat("a")))
        .unwrap();
    let (status, _, answer) = call(&app, wrong).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        answer.contains("invalid_api_key") && !answer.contains("s3cret"),
        "{answer}"
    );
    let right = Request::post("/v1/chat/completions")
        .header(header::AUTHORIZATION, "Bearer other")
        .body(Body::from(chat("a")))
        .unwrap();
    assert_eq!(call(&app, right).await.0, StatusCode::OK);
    // LibreTranslate clients send the key in the body.
    let (status, _, answer) = call(
        &app,
        post("/detect", r#"{"q": "مرحبا", "api_key": "nope"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap()["error"],
        "the API key is not valid"
    );
    let (status, _, _) = call(
        &app,
        post("/detect", r#"{"q": "مرحبا", "api_key": "s3cret-key"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // The page, health and languages need none.
    for open in ["/", "/health", "/languages", "/metrics"] {
        let (status, _, _) = call(&app, get(open)).await;
        assert_eq!(status, StatusCode::OK, "{open}");
    }
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after() {
    let engine = echo(300);
    let mut config = config();
    config.queue = 1;
    let app = server(engine.clone(), config);
    let slow = tokio::spawn({
        let app = app.clone();
        async move { call(&app, post("/v1/chat/completions", chat("a b c"))).await }
    });
    engine.busy().await;
    let (status, headers, answer) = call(&app, post("/v1/chat/completions", chat("x"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::RETRY_AFTER], "1");
    assert!(answer.contains("queue_full"), "{answer}");
    assert_eq!(slow.await.unwrap().0, StatusCode::OK);
    // The place is free again.
    assert_eq!(
        call(&app, post("/v1/chat/completions", chat("x"))).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_client_that_goes_away_mid_stream_ends_its_request() {
    let engine = echo(20);
    let app = server(engine.clone(), config());
    let mut request: Value = serde_json::from_str(&chat(&"word ".repeat(500))).unwrap();
    request["stream"] = json!(true);
    request["max_tokens"] = json!(500);
    let request = post("/v1/chat/completions", request.to_string());
    assert!(
        hang_up_once_running(&app, &engine, request, Duration::from_secs(5)).await,
        "the request ran on (500 words x 20 ms)"
    );
    assert_eq!(engine.cancelled.load(Ordering::SeqCst), 1);
    let (_, _, metrics) = call(&app, get("/metrics")).await;
    assert!(
        metrics.contains("tarjama:requests_cancelled_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn libretranslate_pairs_detection_and_languages() {
    let app = server(echo(0), config());
    // Only Arabic into English: another source or target is refused, and named.
    for (body, refused) in [
        (r#"{"q": "x", "source": "fr", "target": "en"}"#, "fr"),
        (r#"{"q": "x", "source": "ar", "target": "de"}"#, "de"),
    ] {
        let (status, _, answer) = call(&app, post("/translate", body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(serde_json::from_str::<Value>(&answer).unwrap()["error"]
            .as_str()
            .unwrap()
            .contains(&format!("{refused} is not supported")));
    }
    let form = Request::post("/detect")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("q=%D9%85%D8%B1%D8%AD%D8%A8%D8%A7%20Apple"))
        .unwrap();
    let (status, _, answer) = call(&app, form).await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v[0]["language"], "ar");
    let (_, _, answer) = call(&app, post("/detect", r#"{"q": "The talks went well."}"#)).await;
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap()[0]["language"],
        "en"
    );
    let (_, _, answer) = call(&app, get("/languages")).await;
    let v: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v[0]["code"], "ar");
    assert_eq!(v[0]["targets"], json!(["en"]));
}

#[tokio::test]
async fn health_is_503_until_the_model_is_in() {
    let state = State::new(config());
    let app = router(state.clone());
    let (status, _, answer) = call(&app, get("/health")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(answer.contains("\"loading\""), "{answer}");
    let (status, headers, _) = call(&app, post("/v1/chat/completions", chat("x"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.contains_key(header::RETRY_AFTER));
    let _ = state.model.set(model(echo(0)));
    let (status, _, answer) = call(&app, get("/health")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(answer.contains("echo"));
}

#[tokio::test]
async fn a_summary_whose_client_goes_away_ends_its_model_requests() {
    let engine = echo(20);
    let app = server(engine.clone(), config());
    let text = "قال الوزير إن المحادثات كانت مثمرة وستستمر غدا. ".repeat(20);
    let body = json!({ "text": text, "sentences": 2 }).to_string();
    let request = post("/v1/summarize", body);
    // The summary would take over 3 s more (160 tokens x 20 ms).
    assert!(
        hang_up_once_running(&app, &engine, request, Duration::from_secs(1)).await,
        "the summary's request ran on after its client left"
    );
    assert!(engine.cancelled.load(Ordering::SeqCst) >= 1);
}
