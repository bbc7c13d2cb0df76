//! End-to-end tests of `--endpoint`: the binary against OpenAI-compatible servers on
//! loopback. The scripted server of the test kit answers instantly and predictably (the
//! cluster and fault tests need many runs); llama-cpp-python's server runs a real model
//! (translate FLORES articles through faults, summarize, refuse a wrong key). Every server
//! and proxy is stopped when its test ends.

mod common;
use common::{
    flores_articles, last_json_line as json_line, outputs, stdout_of, summary_of, KillOnDrop,
};

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use assert_cmd::assert::OutputAssertExt;

use tarjama_testkit::http::{closed_port, socket_addr, FakeServer, Fault, FaultProxy};
use tarjama_testkit::{require_flores, require_llama_server, require_model};

const QWEN: &str = "qwen2.5-coder-0.5b-instruct";

/// `n` small Arabic documents, each with its own sentences.
fn documents(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let text = format!(
            "قال الوزير إن الاجتماع رقم {i} كان مثمرا.\n\nوأضاف أن المحادثات ستستمر غدا في المدينة {i}.\n"
        );
        std::fs::write(dir.join(format!("doc-{i:02}.txt")), text).unwrap();
    }
}

fn translate(endpoint: &str, model: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tarjama"));
    cmd.args([
        "translate",
        "--endpoint",
        endpoint,
        "--model",
        model,
        "--quiet",
    ])
    .args(args)
    .env_remove("TARJAMA_ENDPOINT")
    .env_remove("TARJAMA_MODEL");
    cmd
}

#[test]
fn shards_run_at_once_into_one_folder_give_what_one_process_gives() {
    let server = FakeServer::start("fake", None);
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    documents(&input, 24);
    let input = input.to_str().unwrap();

    let one = tmp.path().join("one");
    translate(
        &server.endpoint(),
        "fake",
        &[input, "-o", one.to_str().unwrap()],
    )
    .assert()
    .success();

    // Three shard processes at once, as a Kubernetes Indexed Job or a Slurm array runs
    // them (deploy/), writing into one folder.
    let many = tmp.path().join("many");
    let shards: Vec<Child> = (1..=3)
        .map(|k| {
            translate(
                &server.endpoint(),
                "fake",
                &[
                    input,
                    "-o",
                    many.to_str().unwrap(),
                    "--shard",
                    &format!("{k}/3"),
                ],
            )
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for child in shards {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let (a, b) = (outputs(&one), outputs(&many));
    assert_eq!(a.len(), 24);
    assert_eq!(a, b, "the shards together wrote what one process wrote");
    for k in 1..=3 {
        assert!(many
            .join(format!(".tarjama-manifest.{k}-of-3.jsonl"))
            .is_file());
    }

    // The merged folder is complete: a run without --shard finds nothing left to do.
    let o = translate(
        &server.endpoint(),
        "fake",
        &[input, "-o", many.to_str().unwrap(), "--json"],
    )
    .output()
    .unwrap();
    let summary = json_line(&o.stdout);
    assert_eq!(summary["done"], 0);
    assert_eq!(summary["skipped"], 24);
}

#[test]
fn faults_between_tarjama_and_the_server_change_no_output_byte() {
    let server = FakeServer::start("fake", None);
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    documents(&input, 6);
    let input = input.to_str().unwrap();
    let clean = tmp.path().join("clean");
    translate(
        &server.endpoint(),
        "fake",
        &[input, "-o", clean.to_str().unwrap()],
    )
    .assert()
    .success();

    let proxy = FaultProxy::start(socket_addr(&server.endpoint()), schedule(4));
    let faulty = tmp.path().join("faulty");
    let summary = summary_of(
        translate(
            &proxy.endpoint(),
            "fake",
            &[input, "-o", faulty.to_str().unwrap(), "--json"],
        )
        .args(["--timeout", "2", "--parallel", "2"]),
    );
    assert_eq!(outputs(&clean), outputs(&faulty));
    assert_retries_counted(&summary, proxy.applied().len());
}

/// One of each fault, and a second drop; the slow answer comes `slow` seconds late.
fn schedule(slow: u64) -> Vec<Fault> {
    vec![
        Fault::Drop,
        Fault::ServerError,
        Fault::RateLimited(1),
        Fault::Slow(Duration::from_secs(slow)),
        Fault::Cut,
        Fault::Drop,
    ]
}

fn assert_retries_counted(summary: &serde_json::Value, applied: usize) {
    assert_eq!(applied, schedule(0).len(), "every fault was met");
    let retries = &summary["remote"]["retries"];
    let count = |k: &str| retries[k].as_u64().unwrap();
    assert_eq!(count("connection"), 2, "{retries}");
    assert_eq!(count("server_error"), 1, "{retries}");
    assert_eq!(count("rate_limited"), 1, "{retries}");
    // The slow fault's timeout, and on a loaded machine perhaps a real answer that took
    // longer than --timeout too: retried, it changes no byte either.
    assert!(count("timeout") >= 1, "{retries}");
    assert_eq!(count("cut_short"), 1, "{retries}");
    assert_eq!(summary["remote"]["failed"], 0);
}

#[test]
fn a_server_that_is_down_fails_fast_with_exit_code_1() {
    let tmp = tempfile::tempdir().unwrap();
    documents(&tmp.path().join("in"), 1);
    let endpoint = format!("http://127.0.0.1:{}/v1", closed_port());
    let start = Instant::now();
    let o = translate(
        &endpoint,
        "fake",
        &[tmp.path().join("in").to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("cannot reach the server at"), "{stderr}");
    assert!(stderr.contains(&endpoint), "{stderr}");
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn the_api_key_comes_from_the_variable_named_and_never_from_the_command_line() {
    let server = FakeServer::start("fake", Some("s3cret"));
    let tmp = tempfile::tempdir().unwrap();
    documents(&tmp.path().join("in"), 1);
    let input = tmp.path().join("in");
    let run = |var: Option<&str>| {
        let mut cmd = translate(&server.endpoint(), "fake", &[input.to_str().unwrap()]);
        if let Some(value) = var {
            cmd.args(["--api-key-env", "TEST_KEY"])
                .env("TEST_KEY", value);
        }
        cmd.output().unwrap()
    };
    let o = run(Some("wrong"));
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("401") && stderr.contains("Invalid API key"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("wrong"),
        "the key is never printed: {stderr}"
    );
    assert_eq!(server.refused(), 1, "one refusal, no retries");
    let o = run(Some("s3cret"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Sentence"));
    let o = run(None);
    assert_eq!(o.status.code(), Some(1), "no key sent, refused");
}

/// One llama-cpp-python server at a time: two would share the 2 cores, and a port one of
/// them was given could be taken by the other before it listens.
static ONE_SERVER: Mutex<()> = Mutex::new(());

/// llama-cpp-python's server on a loopback port, stopped when dropped.
struct LlamaServer {
    child: KillOnDrop,
    endpoint: String,
    /// [`ONE_SERVER`], released after the child is killed (fields drop in order).
    _one: MutexGuard<'static, ()>,
}

impl LlamaServer {
    fn start(python: &Path, model: &Path, api_key: Option<&str>) -> LlamaServer {
        let one = ONE_SERVER.lock().unwrap_or_else(|e| e.into_inner());
        let port = closed_port();
        let mut cmd = Command::new(python);
        cmd.args(["-m", "llama_cpp.server", "--model"])
            .arg(model)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--n_ctx", "4096", "--n_threads", "2", "--model_alias", QWEN])
            // Prompts evaluated a token at a time: llama.cpp's batched prompt kernels sum
            // in another order than its one-token ones, so a request repeated after a cut
            // (its prompt then cached but for the last token) could otherwise answer
            // differently, and "byte-identical" would test the server, not tarjama.
            .args(["--n_batch", "1"])
            // By default a new request interrupts the one being streamed, which then
            // ends, "finished", with whatever text it had.
            .args(["--interrupt_requests", "False"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(key) = api_key {
            cmd.args(["--api_key", key]);
        }
        let mut server = LlamaServer {
            child: KillOnDrop(cmd.spawn().expect("starting llama-cpp-python's server")),
            endpoint: format!("http://127.0.0.1:{port}/v1"),
            _one: one,
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("llama-cpp-python's server exited: {status}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(180),
                "the server never listened"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        server
    }
}

#[test]
#[ignore = "needs llama-cpp-python's server (scripts/install_llama_server.sh) and model qwen2.5-coder-0.5b-instruct (tarjama models pull)"]
fn llama_cpp_python_server_translates_flores_through_faults_and_summarizes() {
    let (Some(python), Some(model), Some(flores)) = (
        require_llama_server(),
        require_model(QWEN),
        require_flores(),
    ) else {
        return;
    };
    let server = LlamaServer::start(&python, &model, None);
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("flores");
    let articles = flores_articles(&flores, &input, 10);
    let input = input.to_str().unwrap();
    // The server answers one request at a time: more in flight would only queue there
    // (and count against the per-request timeout).
    let common = [
        "--max-context",
        "4096",
        "--max-tokens",
        "256",
        "--parallel",
        "1",
        "--json",
    ];

    let clean = tmp.path().join("clean");
    let summary = summary_of(
        translate(
            &server.endpoint,
            QWEN,
            &[input, "-o", clean.to_str().unwrap()],
        )
        .args(common),
    );
    assert_eq!(summary["done"], 10);
    assert_eq!(summary["remote"]["token_counting"], "llama_cpp_python");
    let translated = outputs(&clean);
    assert_eq!(translated.len(), 10);
    for (name, bytes) in &translated {
        let text = String::from_utf8_lossy(bytes);
        let latin = text.chars().filter(char::is_ascii_alphabetic).count();
        let letters = text.chars().filter(|c| c.is_alphabetic()).count();
        assert!(
            latin * 2 > letters,
            "{name}: {latin} of {letters} letters Latin: {text:?}\nsource: {:?}\nrun: {summary}",
            std::fs::read_to_string(Path::new(input).join(name)).unwrap_or_default()
        );
    }

    // The same folder through every kind of fault, from the very first request (the
    // start-up probes of the model list and the tokenizer routes): the same bytes, the
    // same token counting, the retries counted. The timeout must pass every real answer
    // (prompts are evaluated a token at a time) and fall short of the slow one.
    let proxy = FaultProxy::start_on_every_request(socket_addr(&server.endpoint), schedule(75));
    let faulty = tmp.path().join("faulty");
    let faulty_summary = summary_of(
        translate(
            &proxy.endpoint(),
            QWEN,
            &[input, "-o", faulty.to_str().unwrap()],
        )
        .args(common)
        .args(["--timeout", "60"]),
    );
    assert_eq!(
        translated,
        outputs(&faulty),
        "byte-identical to the fault-free run"
    );
    assert_eq!(
        faulty_summary["remote"]["token_counting"], "llama_cpp_python",
        "a fault at start must not switch to another way of counting tokens"
    );
    assert_retries_counted(&faulty_summary, proxy.applied().len());

    // A summary of one article, through the server.
    let summary = stdout_of(
        Command::new(env!("CARGO_BIN_EXE_tarjama"))
            .args(["summarize", "--endpoint", &server.endpoint, "--model", QWEN])
            .args(["--max-context", "4096", "--sentences", "2", "--quiet"])
            .arg(&articles[0]),
    );
    let summary = String::from_utf8_lossy(&summary);
    assert!(summary.split_whitespace().count() >= 8, "{summary}");
    assert!(
        summary.chars().any(|c| c.is_ascii_alphabetic()),
        "{summary}"
    );
}

#[test]
#[ignore = "needs llama-cpp-python's server (scripts/install_llama_server.sh) and model qwen2.5-coder-0.5b-instruct (tarjama models pull)"]
fn llama_cpp_python_server_with_a_key_refuses_a_wrong_one_once() {
    let (Some(python), Some(model)) = (require_llama_server(), require_model(QWEN)) else {
        return;
    };
    let server = LlamaServer::start(&python, &model, Some("right-key"));
    let tmp = tempfile::tempdir().unwrap();
    documents(&tmp.path().join("in"), 1);
    let o = translate(
        &server.endpoint,
        QWEN,
        &[tmp.path().join("in").to_str().unwrap()],
    )
    .args(["--api-key-env", "TEST_KEY"])
    .env("TEST_KEY", "wrong-key")
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("401"), "{stderr}");
    assert_eq!(stderr.matches("401").count(), 1, "reported once: {stderr}");
}
