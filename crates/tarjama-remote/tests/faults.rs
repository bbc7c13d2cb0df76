//! The remote engine against a scripted server and a fault-injecting proxy, on loopback.

use std::time::{Duration, Instant};

use tarjama_chat::{ChatEngine, Message, SamplingParams, TokenCounter};
use tarjama_remote::retry::{Policy, Retries};
use tarjama_remote::{Error, RemoteEngine, RemoteOptions, TokenCounting};
use tarjama_testkit::http::{
    closed_port, socket_addr, FakeServer, Fault, FaultProxy, Tokenizer, MAX_MODEL_LEN,
};

/// A text to count: its count tells the server's tokenizer (a token per three
/// characters) from the estimate (per two) and from [`Words`].
const TEXT: &str = "Sentences are grouped by their token counts.";

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

/// [`options`] with five retries: enough for one fault of each kind in a row.
fn patient(endpoint: String) -> RemoteEngine {
    let mut patient = options(endpoint);
    patient.policy.retries = 5;
    RemoteEngine::connect(patient, None).unwrap()
}

/// One fault of each kind, in this order: a dropped connection, a 500, a 429 whose
/// Retry-After is `retry_after` seconds, an answer `slow` in coming (past the timeout),
/// an answer cut short.
fn each_fault_once(retry_after: u64, slow: Duration) -> [Fault; 5] {
    [
        Fault::Drop,
        Fault::ServerError,
        Fault::RateLimited(retry_after),
        Fault::Slow(slow),
        Fault::Cut,
    ]
}

/// One retry counted of each kind that [`each_fault_once`] causes.
fn assert_one_retry_of_each_kind(r: &Retries, context: &dyn std::fmt::Debug) {
    assert_eq!(
        (
            r.connection,
            r.server_error,
            r.rate_limited,
            r.timeout,
            r.cut_short
        ),
        (1, 1, 1, 1, 1),
        "{context:?}"
    );
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
        each_fault_once(1, Duration::from_secs(3)).to_vec(),
    );
    // The first question meets all five faults in a row.
    let engine = patient(proxy.endpoint());
    let start = Instant::now();
    let got: Vec<String> = questions.iter().map(|q| ask(&engine, q).unwrap()).collect();
    assert_eq!(got, expected);
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    let stats = engine.stats();
    assert_one_retry_of_each_kind(&stats.retries, &stats);
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
    // Nothing listening at the first contact is a wrong URL or a server not started:
    // said at once, not after the retries (a server that answered and then drops is
    // retried: `a_model_list_that_keeps_failing_is_reported_after_the_retries`).
    let start = Instant::now();
    let endpoint = format!("http://127.0.0.1:{}/v1", closed_port());
    let mut slow = options(endpoint.clone());
    slow.policy.base = Duration::from_secs(5);
    let err = RemoteEngine::connect(slow, None).unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains(&endpoint), "{message}");
    assert!(!message.contains("attempts"), "{message}");
    assert!(start.elapsed() < Duration::from_secs(4), "no retry waits");
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

/// What a run depends on from the start-up probes, and a chat answer.
fn outcome(engine: &RemoteEngine) -> (TokenCounting, usize, usize, String) {
    (
        engine.token_counting(),
        engine.count_tokens(TEXT).unwrap(),
        engine.options().max_context,
        ask(engine, "question").unwrap(),
    )
}

#[test]
fn a_fault_at_any_start_up_probe_changes_nothing() {
    let servers = [
        (Some(Tokenizer::LlamaCpp), TokenCounting::LlamaCpp),
        (
            Some(Tokenizer::LlamaCppPython),
            TokenCounting::LlamaCppPython,
        ),
        (None, TokenCounting::Estimate),
    ];
    for (tokenizer, counting) in servers {
        let server = FakeServer::start_with("fake", None, tokenizer);
        let clean = RemoteEngine::connect(options(server.endpoint()), None).unwrap();
        let probes = server.paths();
        let expected = outcome(&clean);
        assert_eq!(
            (expected.0, expected.2),
            (counting, MAX_MODEL_LEN),
            "{probes:?}"
        );
        // Each fault, alone, at each probe in turn.
        for (at, probe) in probes.iter().enumerate() {
            for fault in [
                Fault::Drop,
                Fault::ServerError,
                Fault::RateLimited(0),
                Fault::Cut,
            ] {
                let case = format!("{fault:?} at probe {at} ({probe}) of {tokenizer:?}");
                let mut schedule = vec![Fault::Pass; at];
                schedule.push(fault);
                let proxy =
                    FaultProxy::start_on_every_request(socket_addr(&server.endpoint()), schedule);
                let engine = RemoteEngine::connect(options(proxy.endpoint()), None)
                    .unwrap_or_else(|e| panic!("{case}: {e}"));
                assert_eq!(outcome(&engine), expected, "{case}");
                assert_eq!(proxy.applied(), [fault], "{case}");
                // A cut in the body of a 404 leaves its status whole, and that is the
                // answer: the route is missing. Every other fault costs one retry.
                let missing_route = at > 0 && (tokenizer.is_none() || at + 1 < probes.len());
                let retries = usize::from(!(fault == Fault::Cut && missing_route));
                assert_eq!(engine.stats().retries.total(), retries as u64, "{case}");
            }
        }
    }
}

#[test]
fn faults_in_a_row_are_retried_on_the_route_that_met_them() {
    // llama-cpp-python answers /tokenize with 404 twice (the llama.cpp and vLLM bodies),
    // then meets every kind of fault on its own route.
    let server = FakeServer::start_with("fake", None, Some(Tokenizer::LlamaCppPython));
    let expected = outcome(&RemoteEngine::connect(options(server.endpoint()), None).unwrap());
    let mut schedule = vec![Fault::Pass; 3];
    schedule.extend(each_fault_once(0, Duration::from_secs(2)));
    let proxy = FaultProxy::start_on_every_request(socket_addr(&server.endpoint()), schedule);
    let engine = patient(proxy.endpoint());
    assert_eq!(outcome(&engine), expected);
    assert_eq!(engine.token_counting(), TokenCounting::LlamaCppPython);
    let r = engine.stats().retries;
    assert_one_retry_of_each_kind(&r, &r);
}

#[test]
fn a_tokenizer_route_that_keeps_failing_stops_the_start() {
    let server = FakeServer::start_with("fake", None, Some(Tokenizer::LlamaCpp));
    let mut schedule = vec![Fault::Pass];
    schedule.extend([Fault::ServerError; 4]);
    let proxy = FaultProxy::start_on_every_request(socket_addr(&server.endpoint()), schedule);
    let err = RemoteEngine::connect(options(proxy.endpoint()), None).unwrap_err();
    assert!(
        matches!(err, Error::TokenizerProbe { attempts: 4, .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(message.contains("/tokenize"), "{message}");
    assert!(message.contains("injected failure"), "{message}");
    assert_eq!(proxy.applied().len(), 4);
    assert_eq!(server.paths(), ["/v1/models"], "no other route was tried");
}

#[test]
fn a_model_list_that_keeps_failing_is_reported_after_the_retries() {
    let server = FakeServer::start("fake", None);
    let upstream = socket_addr(&server.endpoint());

    let proxy = FaultProxy::start_on_every_request(upstream, vec![Fault::ServerError; 4]);
    let err = RemoteEngine::connect(options(proxy.endpoint()), None).unwrap_err();
    assert!(matches!(err, Error::GaveUp { attempts: 4, .. }), "{err}");
    assert!(err.to_string().contains("/v1/models"), "{err}");

    let proxy = FaultProxy::start_on_every_request(upstream, vec![Fault::Drop; 4]);
    let err = RemoteEngine::connect(options(proxy.endpoint()), None).unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("(4 attempts)"), "{err}");
    assert!(server.paths().is_empty(), "{:?}", server.paths());
}

/// A local tokenizer: a token per word.
struct Words;

impl TokenCounter for Words {
    fn count_tokens(&self, text: &str) -> tarjama_chat::Result<usize> {
        Ok(text.split_whitespace().count())
    }
}

#[test]
fn a_server_without_a_tokenizer_route_is_asked_each_route_once() {
    let server = FakeServer::start("fake", None);
    let engine = RemoteEngine::connect(options(server.endpoint()), None).unwrap();
    assert_eq!(engine.token_counting(), TokenCounting::Estimate);
    assert_eq!(engine.count_tokens(TEXT).unwrap(), TEXT.len().div_ceil(2));
    let probes = [
        "/v1/models",
        "/tokenize",
        "/tokenize",
        "/extras/tokenize/count",
    ];
    assert_eq!(server.paths(), probes);
    assert_eq!(engine.stats().retries.total(), 0);

    let local = RemoteEngine::connect(options(server.endpoint()), Some(Box::new(Words))).unwrap();
    assert_eq!(local.token_counting(), TokenCounting::Local);
    assert_eq!(local.count_tokens(TEXT).unwrap(), 7);
    assert_eq!(server.paths().len(), 2 * probes.len());
}
