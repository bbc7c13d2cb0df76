//! The remote engine against a scripted server and a fault-injecting proxy, on loopback.

use std::time::{Duration, Instant};

use tarjama_chat::{ChatEngine, Message, SamplingParams};
use tarjama_remote::retry::Policy;
use tarjama_remote::{Error, RemoteEngine, RemoteOptions, TokenCounting};
use tarjama_testkit::http::{closed_port, socket_addr, FakeServer, Fault, FaultProxy};

fn options(endpoint: String) -> RemoteOptions {
    RemoteOptions {
        endpoint,
        model: "fake".into(),
        api_key: None,
        parallel: 2,
        timeout: Duration::from_millis(1500),
        policy: Policy {
            retries: 3,
            base: Duration::from_millis(10),
            cap: Duration::from_secs(5),
        },
        max_context: 4096,
    }
}

fn ask(engine: &RemoteEngine, text: &str) -> tarjama_chat::Result<String> {
    let messages = [Message::new("user", text)];
    let mut shown = String::new();
    let c = engine.chat(&messages, &SamplingParams::greedy(64), &mut |t| {
        shown.push_str(t)
    })?;
    assert_eq!(shown, c.text, "the caller sees exactly the final text");
    Ok(c.text)
}

#[test]
fn every_kind_of_fault_is_retried_to_the_same_answer() {
    let server = FakeServer::start("fake", None);
    let clean = RemoteEngine::connect(options(server.endpoint()), None).unwrap();
    assert_eq!(clean.token_counting(), TokenCounting::Estimate);
    let questions: Vec<String> = (0..6).map(|i| format!("question {i}")).collect();
    let expected: Vec<String> = questions.iter().map(|q| ask(&clean, q).unwrap()).collect();

    let proxy = FaultProxy::start(
        socket_addr(&server.endpoint()),
        vec![
            Fault::Drop,
            Fault::ServerError,
            Fault::RateLimited(1),
            Fault::Slow(Duration::from_secs(3)),
            Fault::Cut,
        ],
    );
    // The first question meets all five faults in a row.
    let mut patient = options(proxy.endpoint());
    patient.policy.retries = 5;
    let engine = RemoteEngine::connect(patient, None).unwrap();
    let start = Instant::now();
    let got: Vec<String> = questions.iter().map(|q| ask(&engine, q).unwrap()).collect();
    assert_eq!(got, expected);
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    let stats = engine.stats();
    let r = &stats.retries;
    assert_eq!(
        (
            r.connection,
            r.server_error,
            r.rate_limited,
            r.timeout,
            r.cut_short
        ),
        (1, 1, 1, 1, 1),
        "{stats:?}"
    );
    assert_eq!((stats.requests, stats.failed), (6, 0));
    assert_eq!(proxy.applied().len(), 5);
}

#[test]
fn retries_run_out_with_the_last_failure_named() {
    let server = FakeServer::start("fake", None);
    let proxy = FaultProxy::start(socket_addr(&server.endpoint()), vec![Fault::ServerError; 4]);
    let engine = RemoteEngine::connect(options(proxy.endpoint()), None).unwrap();
    let err = ask(&engine, "question").unwrap_err().to_string();
    assert!(err.contains("gave up after 4 attempts"), "{err}");
    assert!(err.contains("injected failure"), "{err}");
    assert_eq!(engine.stats().failed, 1);
}

#[test]
fn a_server_that_is_down_fails_at_once() {
    let start = Instant::now();
    let endpoint = format!("http://127.0.0.1:{}/v1", closed_port());
    let err = RemoteEngine::connect(options(endpoint.clone()), None).unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains(&endpoint), "{message}");
    assert!(start.elapsed() < Duration::from_secs(5), "no retries");
}

#[test]
fn a_wrong_key_gives_the_servers_message_once() {
    let server = FakeServer::start("fake", Some("right"));
    let mut wrong = options(server.endpoint());
    wrong.api_key = Some("wrong".into());
    let err = RemoteEngine::connect(wrong, None).unwrap_err();
    assert!(matches!(err, Error::Refused { status: 401, .. }), "{err}");
    assert!(err.to_string().contains("Invalid API key"), "{err}");
    assert_eq!(server.refused(), 1, "asked once, not retried");

    let mut right = options(server.endpoint());
    right.api_key = Some("right".into());
    let engine = RemoteEngine::connect(right, None).unwrap();
    assert!(ask(&engine, "question").unwrap().starts_with("Sentence"));
    assert_eq!(server.chats(), 1);
}

#[test]
fn a_bad_endpoint_is_refused_before_any_request() {
    let err = RemoteEngine::connect(options("localhost:8000/v1".into()), None).unwrap_err();
    assert!(err.to_string().contains("not an http"), "{err}");
}
