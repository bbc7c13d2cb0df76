//! End-to-end tests of `tarjama serve`: the real binary on a loopback port with a real
//! model, called by the clients people use with it (the official `openai` Python client,
//! LibreTranslate's `libretranslatepy`, tarjama's own `--endpoint`) and by hand-made HTTP
//! for the faults no client makes on purpose: a client cut mid-stream, bodies too large
//! or malformed, wrong keys, a full queue, SIGTERM with requests in flight.
//!
//! Every test starts its own server (`--port 0`) and stops it when it ends, passing or
//! not ([`Serve`] kills and reaps it on drop, and holds [`ONE_SERVER`] until then). The
//! Python clients live in `tests/serve_clients/`; `scripts/install_clients.sh` installs
//! them and prints the Python that `TARJAMA_CLIENT_PYTHON` names.
//!
//! Why one file of over 700 lines: every test shares the server guard, the hand-written
//! HTTP client (the test crate has none) and the one-server-at-a-time lock; split, each
//! part would carry a copy of them.

mod common;
use common::{flores_articles, outputs, summary_of, KillOnDrop};

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tarjama_testkit::{require_flores, require_model, workspace_root};

const QWEN: &str = "qwen2.5-coder-0.5b-instruct";

/// The key the servers that want one are started with (through `--api-key-env`).
const KEY: &str = "serve-test-key";
const KEY_VAR: &str = "TARJAMA_SERVE_TEST_KEY";
/// [`KEY`] as OpenAI clients send it.
const BEARER: &str = "Bearer serve-test-key";

/// One server at a time: the tests time requests against each other and share 2 cores.
static ONE_SERVER: Mutex<()> = Mutex::new(());

/// A `tarjama serve` child on a loopback port, killed and reaped when dropped.
struct Serve {
    child: KillOnDrop,
    port: u16,
    /// Everything it printed on stderr so far.
    log: Arc<Mutex<String>>,
    /// The thread that reads stderr: joined once the process exits, so that the log
    /// holds its last line.
    reader: Option<std::thread::JoinHandle<()>>,
    /// [`ONE_SERVER`], released after the child is killed (fields drop in order).
    _one: MutexGuard<'static, ()>,
}

impl Serve {
    /// Starts `tarjama serve --model QWEN --port 0 EXTRA...` and waits until `/health`
    /// says the model is loaded. Before that, `/health` must answer 503 "loading".
    fn start(extra: &[&str]) -> Serve {
        let mut serve = Serve::spawn(extra);
        serve.wait_ready();
        serve
    }

    /// Starts `tarjama serve --model QWEN --port 0 EXTRA...`; returns once it says where
    /// it listens (the model is then still loading).
    fn spawn(extra: &[&str]) -> Serve {
        let one = ONE_SERVER.lock().unwrap_or_else(|e| e.into_inner());
        let mut child = Command::new(env!("CARGO_BIN_EXE_tarjama"))
            .args(["serve", "--model", QWEN, "--port", "0"])
            .args(extra)
            .env(KEY_VAR, KEY)
            .env_remove("TARJAMA_ENDPOINT")
            .env_remove("TARJAMA_MODEL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting tarjama serve");
        let pipe = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(String::new()));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = listening_port(&line) {
                    let _ = port_tx.send(port);
                }
                let mut log = sink.lock().unwrap_or_else(|e| e.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        // The guard exists before anything can panic, so the child never outlives a test.
        let mut serve = Serve {
            child: KillOnDrop(child),
            port: 0,
            log,
            reader: Some(reader),
            _one: one,
        };
        serve.port = port_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no `listening on` line: {}", serve.log()));
        serve
    }

    /// Waits until `/health` says the model is loaded; until then it must say 503
    /// "loading".
    fn wait_ready(&mut self) {
        let start = Instant::now();
        let limit = Duration::from_secs(180);
        loop {
            let health = request(self.port, "GET", "/health", &[], b"");
            if health.status == 200 {
                assert_eq!(health.json()["model"], QWEN, "{}", health.text());
                break;
            }
            assert_eq!(
                health.status,
                503,
                "/health before ready: {}",
                health.text()
            );
            assert_eq!(health.json()["status"], "loading", "{}", health.text());
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("tarjama serve exited ({status}): {}", self.log());
            }
            assert!(start.elapsed() < limit, "never loaded: {}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        // The line is printed before /health turns 200, but read from the pipe by
        // another thread.
        while !self.log().contains("tarjama serve: ready: ") {
            assert!(start.elapsed() < limit, "no ready line: {}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sends the server SIGTERM.
    fn terminate(&self) {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
    }

    /// The process's exit status once it exits, or `None` after `limit`.
    fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait().expect("waiting for the server") {
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

/// The port of `tarjama serve: listening on http://127.0.0.1:PORT (loading ...)`.
fn listening_port(line: &str) -> Option<u16> {
    let rest = line
        .strip_prefix("tarjama serve: listening on http://127.0.0.1:")?
        .split(|c: char| !c.is_ascii_digit())
        .next()?;
    rest.parse().ok()
}

/// The Python that runs the clients (`$TARJAMA_CLIENT_PYTHON`, as
/// `scripts/install_clients.sh` prints it), when it imports them; `None` after a note
/// otherwise, a panic under `TARJAMA_REQUIRE_TOOLS=1`, as the test kit's `require_*` do.
#[track_caller]
fn require_client_python() -> Option<PathBuf> {
    let python = std::env::var_os("TARJAMA_CLIENT_PYTHON")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let missing = match &python {
        None => "TARJAMA_CLIENT_PYTHON is not set".to_string(),
        Some(p) => format!("{} cannot import openai and libretranslatepy", p.display()),
    };
    let found = python.filter(|p| {
        Command::new(p)
            .args(["-c", "import openai, libretranslatepy"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        let hint = "TARJAMA_CLIENT_PYTHON=$(scripts/install_clients.sh)";
        if std::env::var("TARJAMA_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("{missing}; TARJAMA_REQUIRE_TOOLS=1 requires it ({hint})");
        }
        eprintln!(
            "note: test skipped: {missing} ({hint}; set TARJAMA_REQUIRE_TOOLS=1 to fail instead)"
        );
    }
    found
}

/// With the model and the clients' Python: a server that wants [`KEY`], and the JSON
/// object that `tests/serve_clients/SCRIPT BASE ARGS...` prints last after talking to it
/// (BASE: the server's address). `None` (after a note) without them.
fn client_against_serve(script: &str, args: &[&str]) -> Option<(Serve, Value)> {
    let (Some(_), Some(python)) = (require_model(QWEN), require_client_python()) else {
        return None;
    };
    let serve = Serve::start(&["--api-key-env", KEY_VAR]);
    let seen = summary_of(
        Command::new(python)
            .arg(workspace_root().join("tests/serve_clients").join(script))
            .arg(serve.base())
            .args(args)
            .env("TARJAMA_TEST_KEY", KEY),
    );
    Some((serve, seen))
}

/// An HTTP answer as it came off the wire.
struct Answer {
    status: u16,
    /// Names in lower case.
    headers: Vec<(String, String)>,
    /// The body, de-chunked.
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text()))
    }

    /// The `data:` payloads of a server-sent-event stream.
    fn events(&self) -> Vec<String> {
        self.text()
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(str::to_string)
            .collect()
    }
}

/// Opens a connection and sends one request (`Connection: close`). The body is written
/// whole even when the server answers before reading it (413): a failed write is left to
/// the read of the answer to report.
fn send(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connecting to the server");
    stream
        .set_read_timeout(Some(Duration::from_secs(300)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(body);
    stream
}

/// Reads an answer to its end and parses it.
fn read_answer(mut stream: TcpStream) -> Answer {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 << 10];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            // A server that answered without reading the whole body resets the connection
            // after its answer; what came before the reset is the answer.
            Err(_) if !raw.is_empty() => break,
            Err(e) => panic!("reading the answer: {e}"),
        }
    }
    parse_answer(&raw)
}

fn parse_answer(raw: &[u8]) -> Answer {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end: {}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Answer {
        status,
        headers,
        body,
    }
}

/// A chunked body's content (as much as came).
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&raw[..end]);
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or_else(|_| panic!("a bad chunk size: {size:?}"));
        if size == 0 {
            break;
        }
        let start = end + 2;
        let stop = (start + size).min(raw.len());
        body.extend_from_slice(&raw[start..stop]);
        raw = &raw[(stop + 2).min(raw.len())..];
    }
    body
}

fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    read_answer(send(port, method, path, headers, body))
}

/// A JSON POST with the right key.
fn post(port: u16, path: &str, body: &Value) -> Answer {
    request(
        port,
        "POST",
        path,
        &[
            ("Content-Type", "application/json"),
            ("Authorization", BEARER),
        ],
        body.to_string().as_bytes(),
    )
}

/// A chat request for a short answer.
fn short_chat(stream: bool) -> Value {
    json!({
        "model": QWEN,
        "messages": [{ "role": "user", "content": "Count from 1 to 10, separated by commas." }],
        "max_tokens": 40,
        "temperature": 0,
        "stream": stream,
    })
}

/// A chat request that would write for minutes if nobody stopped it.
fn long_chat() -> Value {
    json!({
        "model": QWEN,
        "messages": [{
            "role": "user",
            "content": "Write a very long story about a dragon and a village, at least 3000 words, \
                        with many chapters."
        }],
        "max_tokens": 2000,
        "temperature": 0,
        "stream": true,
    })
}

/// Checks that the server answers a short chat whole.
fn assert_serves(port: u16) {
    let answer = post(port, "/v1/chat/completions", &short_chat(false));
    assert_eq!(answer.status, 200, "{}", answer.text());
    let answer = answer.json();
    let content = answer["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or("");
    assert!(content.contains('1'), "{answer}");
}

/// Starts a streamed chat and reads until `events` data events have come: the request is
/// then admitted and generating. Dropping the stream cuts the connection.
fn open_stream(port: u16, body: &Value, events: usize) -> TcpStream {
    let mut stream = send(
        port,
        "POST",
        "/v1/chat/completions",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", BEARER),
        ],
        body.to_string().as_bytes(),
    );
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while count(&seen, b"data: ") < events {
        let n = stream.read(&mut buf).expect("reading the stream");
        assert!(
            n > 0,
            "the stream ended: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(
        seen.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    stream
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

/// The value of an unlabelled metric in `/metrics`.
fn metric(port: u16, name: &str) -> f64 {
    let answer = request(port, "GET", "/metrics", &[], b"");
    assert_eq!(answer.status, 200);
    let text = answer.text();
    metric_in(&text, name).unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

/// Polls `/metrics` until `done` holds of it, or panics after `limit`.
fn wait_for_metrics(port: u16, limit: Duration, what: &str, done: impl Fn(&str) -> bool) {
    let start = Instant::now();
    loop {
        let text = request(port, "GET", "/metrics", &[], b"").text();
        if done(&text) {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "{what} within {limit:?}; /metrics:\n{}",
            text.lines()
                .filter(|l| l.starts_with("tarjama:") && !l.contains("_bucket"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The value of an unlabelled metric in a `/metrics` text.
fn metric_in(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// No Arabic letter left, and some Latin ones.
fn is_english(text: &str) -> bool {
    text.chars().any(|c| c.is_ascii_alphabetic())
        && !text.chars().any(|c| ('\u{0600}'..='\u{06FF}').contains(&c))
}

#[test]
#[ignore = "needs a model and the client venv (scripts/install_clients.sh)"]
fn openai_client_streamed_and_not() {
    let Some((serve, seen)) = client_against_serve("openai_client.py", &[QWEN]) else {
        return;
    };

    let plain = seen["plain"].as_str().unwrap_or_default();
    assert!(is_english(plain), "{seen}");
    assert_eq!(seen["streamed"], seen["plain"], "greedy: streamed as whole");
    assert_eq!(seen["plain_finish"], "stop", "{seen}");
    assert_eq!(seen["streamed_finish"], "stop", "{seen}");
    assert_eq!(seen["plain_model"], QWEN);
    // The role chunk, one per piece of text, the last one: more than the text's tokens.
    let generated = seen["plain_usage"]["completion_tokens"].as_u64().unwrap();
    assert!(generated > 0 && generated <= 32, "{seen}");
    assert!(
        seen["chunks"].as_u64().unwrap() > generated,
        "streamed a piece at a time: {seen}"
    );
    assert_eq!(seen["streamed_usage"], seen["plain_usage"], "{seen}");

    let models = seen["models"].as_array().unwrap();
    assert_eq!(models.len(), 1, "{seen}");
    assert_eq!(models[0]["id"], QWEN);
    assert!(
        models[0]["max_model_len"].as_u64().unwrap() >= 2048,
        "{seen}"
    );

    let wrong = &seen["wrong_key"];
    assert_eq!(wrong["class"], "AuthenticationError", "{seen}");
    assert_eq!(wrong["status"], 401);
    assert_eq!(wrong["code"], "invalid_api_key");
    let unknown = &seen["unknown_model"];
    assert_eq!(unknown["class"], "NotFoundError", "{seen}");
    assert_eq!(unknown["code"], "model_not_found");
    assert_serves(serve.port);
}

#[test]
#[ignore = "needs a model and the client venv (scripts/install_clients.sh)"]
fn libretranslate_client() {
    let Some((serve, seen)) = client_against_serve("libre_client.py", &[]) else {
        return;
    };

    let arabic = seen["languages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["code"] == "ar")
        .unwrap_or_else(|| panic!("no ar in /languages: {seen}"));
    assert!(arabic["targets"].as_array().unwrap().contains(&json!("en")));
    assert_eq!(seen["detect"][0]["language"], "ar", "{seen}");
    assert!(seen["detect"][0]["confidence"].as_f64().unwrap() > 50.0);
    for key in ["translate", "translate_auto"] {
        let text = seen[key].as_str().unwrap_or_default();
        assert!(is_english(text), "{key}: {seen}");
    }
    assert_eq!(seen["wrong_key"]["status"], 401, "{seen}");
    assert!(
        seen["wrong_key"]["body"]["error"].is_string(),
        "LibreTranslate's shape: {seen}"
    );

    let array = seen["array"]["translatedText"].as_array().unwrap();
    assert_eq!(array.len(), 2, "one translation per q: {seen}");
    assert!(
        array.iter().all(|t| is_english(t.as_str().unwrap())),
        "{seen}"
    );
    assert_eq!(
        seen["array"]["detectedLanguage"].as_array().map(Vec::len),
        Some(2),
        "source auto: one detection per q: {seen}"
    );

    let html = seen["html"]["translatedText"].as_str().unwrap();
    assert!(html.starts_with("<p>") && html.ends_with("</p>"), "{html}");
    assert!(html.contains("<b>") && html.contains("</b>"), "{html}");
    assert!(is_english(html), "{html}");

    let url = seen["translate_file"]["translatedFileUrl"]
        .as_str()
        .unwrap();
    assert!(
        url.starts_with(&format!("{}/download_file/", serve.base())) && url.ends_with(".srt"),
        "{url}"
    );
    let download = &seen["download"];
    assert_eq!(download["status"], 200);
    assert!(
        download["disposition"]
            .as_str()
            .unwrap()
            .contains("news.srt"),
        "{download}"
    );
    let srt_in = seen["srt_in"].as_str().unwrap();
    let srt_out = download["text"].as_str().unwrap();
    let frame = |srt: &str| -> Vec<String> {
        srt.lines()
            .filter(|l| l.contains("-->") || l.parse::<u32>().is_ok() || l.is_empty())
            .map(str::to_string)
            .collect()
    };
    assert_eq!(frame(srt_in), frame(srt_out), "numbers and timestamps kept");
    assert!(is_english(srt_out), "{srt_out}");
    assert_eq!(
        srt_in.lines().count(),
        srt_out.lines().count(),
        "one text line per text line: {srt_out}"
    );
}

#[test]
#[ignore = "needs a model"]
fn translate_through_serve_is_byte_identical_to_local() {
    let (Some(_), Some(flores)) = (require_model(QWEN), require_flores()) else {
        return;
    };
    // The server first: it holds [`ONE_SERVER`], which keeps the local run too from sharing
    // the cores with another test's server.
    let serve = Serve::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    flores_articles(&flores, &input, 3);
    let translate = |out: &Path, endpoint: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tarjama"));
        cmd.arg("translate")
            .arg(&input)
            .arg("-o")
            .arg(out)
            .args(["--model", QWEN, "--quiet", "--no-cache", "--json"])
            .env_remove("TARJAMA_ENDPOINT")
            .env_remove("TARJAMA_MODEL");
        if let Some(endpoint) = endpoint {
            cmd.args(["--endpoint", endpoint]);
        }
        summary_of(&mut cmd)
    };

    let local = tmp.path().join("local");
    let summary = translate(&local, None);
    assert_eq!(summary["done"], 3, "{summary}");

    let remote = tmp.path().join("remote");
    let summary = translate(&remote, Some(&format!("{}/v1", serve.base())));
    assert_eq!(summary["done"], 3, "{summary}");
    assert_eq!(
        summary["remote"]["token_counting"], "llama_cpp",
        "counted with the server's own /tokenize: {summary}"
    );
    assert_eq!(summary["remote"]["failed"], 0, "{summary}");
    let requests = summary["remote"]["requests"].as_u64().unwrap();
    assert!(requests >= 3, "{summary}");

    let (local, remote) = (outputs(&local), outputs(&remote));
    assert_eq!(local.len(), 3);
    for ((name, a), (_, b)) in local.iter().zip(&remote) {
        // The 0.5B model leaves a word of Arabic here and there: mostly English will do.
        let text = String::from_utf8_lossy(a);
        let latin = text.chars().filter(char::is_ascii_alphabetic).count();
        let letters = text.chars().filter(|c| c.is_alphabetic()).count();
        assert!(latin * 10 > letters * 9, "{name}: {text}");
        assert_eq!(
            String::from_utf8_lossy(a),
            String::from_utf8_lossy(b),
            "{name}: through tarjama serve as translated locally"
        );
    }
    assert_eq!(local, remote);
    // The server saw the client's chats: as many as the client counted.
    let chats = request(serve.port, "GET", "/metrics", &[], b"").text();
    let line = format!(
        "tarjama:http_requests_total{{route=\"/v1/chat/completions\",status=\"200\"}} {requests}"
    );
    assert!(chats.contains(&line), "{line} in:\n{chats}");
}

#[test]
#[ignore = "needs a model"]
fn a_client_cut_mid_stream_frees_its_sequence() {
    let Some(_) = require_model(QWEN) else { return };
    let serve = Serve::start(&["--api-key-env", KEY_VAR]);
    let port = serve.port;
    let stream = open_stream(port, &long_chat(), 6);
    assert_eq!(metric(port, "tarjama:requests_admitted"), 1.0);
    assert_eq!(metric(port, "tarjama:requests_cancelled_total"), 0.0);
    let cut = Instant::now();
    drop(stream);
    // 2000 tokens at tens a second would take minutes; the cut ends it at its next token.
    wait_for_metrics(
        port,
        Duration::from_secs(60),
        "the cut request cancelled and its sequence freed",
        |m| {
            metric_in(m, "tarjama:num_requests_running") == Some(0.0)
                && metric_in(m, "tarjama:requests_admitted") == Some(0.0)
                && metric_in(m, "tarjama:requests_cancelled_total").is_some_and(|c| c >= 1.0)
        },
    );
    eprintln!("freed {:.2} s after the cut", cut.elapsed().as_secs_f64());
    assert_serves(port);
    assert_eq!(metric(port, "tarjama:requests_cancelled_total"), 1.0);
}

#[test]
#[ignore = "needs a model"]
fn bad_requests_get_json_errors_and_the_server_serves_on() {
    let Some(_) = require_model(QWEN) else { return };
    let serve = Serve::start(&["--api-key-env", KEY_VAR, "--max-body", "2048"]);
    let port = serve.port;
    let json_type = ("Content-Type", "application/json");
    let chat = |headers: &[(&str, &str)], body: &[u8]| {
        request(port, "POST", "/v1/chat/completions", headers, body)
    };
    /// The OpenAI-shaped error of `answer`: (status, code, param).
    fn openai_error(answer: &Answer) -> (u16, String, Value) {
        assert!(
            answer
                .header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{:?} {}",
            answer.headers,
            answer.text()
        );
        let body = answer.json();
        let error = &body["error"];
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        assert!(error["type"].is_string(), "{body}");
        (
            answer.status,
            error["code"].as_str().unwrap_or_default().to_string(),
            error["param"].clone(),
        )
    }
    let with_key = [json_type, ("Authorization", BEARER)];

    // 10 KB against a 2 KB limit, on either dialect's route.
    let big = json!({
        "messages": [{ "role": "user", "content": "x".repeat(10_000) }],
        "max_tokens": 4,
    })
    .to_string();
    let answer = chat(&with_key, big.as_bytes());
    assert_eq!(
        openai_error(&answer),
        (413, "body_too_large".into(), Value::Null)
    );
    assert!(answer.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("2048"));
    let big = json!({ "q": "x".repeat(10_000), "source": "ar", "target": "en", "api_key": KEY });
    let answer = request(
        port,
        "POST",
        "/translate",
        &[json_type],
        big.to_string().as_bytes(),
    );
    assert_eq!(answer.status, 413, "{}", answer.text());
    assert!(answer.json()["error"].is_string(), "{}", answer.text());

    // Not JSON: the body is at fault.
    let answer = chat(&with_key, br#"{"messages": [{"role": "user", "#);
    assert_eq!(
        openai_error(&answer),
        (400, "invalid_request".into(), json!("body"))
    );
    // A field of the wrong type is named, nested ones by their path.
    let answer = chat(
        &with_key,
        br#"{"messages": [{"role": "user", "content": "hi"}], "max_tokens": "many"}"#,
    );
    assert_eq!(
        openai_error(&answer),
        (400, "invalid_request".into(), json!("max_tokens"))
    );
    let answer = chat(
        &with_key,
        br#"{"messages": [{"role": 7, "content": "hi"}]}"#,
    );
    assert_eq!(
        openai_error(&answer),
        (400, "invalid_request".into(), json!("messages[0].role"))
    );

    // Keys: wrong and missing, as a bearer token and as LibreTranslate's field.
    let good = short_chat(false).to_string();
    let answer = chat(
        &[json_type, ("Authorization", "Bearer not-the-key")],
        good.as_bytes(),
    );
    assert_eq!(
        openai_error(&answer),
        (401, "invalid_api_key".into(), Value::Null)
    );
    assert_eq!(answer.json()["error"]["type"], "authentication_error");
    let answer = chat(&[json_type], good.as_bytes());
    assert_eq!(
        openai_error(&answer),
        (401, "missing_api_key".into(), Value::Null)
    );
    let answer = request(
        port,
        "GET",
        "/v1/models",
        &[("Authorization", "Bearer not-the-key")],
        b"",
    );
    assert_eq!(answer.status, 401, "{}", answer.text());
    for key in [Some("not-the-key"), None] {
        let mut body = json!({ "q": "مرحبا", "source": "ar", "target": "en" });
        if let Some(key) = key {
            body["api_key"] = json!(key);
        }
        let answer = request(
            port,
            "POST",
            "/translate",
            &[json_type],
            body.to_string().as_bytes(),
        );
        assert_eq!(answer.status, 401, "{key:?}: {}", answer.text());
        let error = &answer.json()["error"];
        assert!(
            error.as_str().is_some_and(|m| m.contains("key")),
            "LibreTranslate's shape: {}",
            answer.text()
        );
    }

    // None of it hurt: a normal request is answered, and every refusal was counted.
    assert_serves(port);
    let metrics = request(port, "GET", "/metrics", &[], b"").text();
    for (route, status, n) in [
        ("/v1/chat/completions", 413, 1),
        ("/v1/chat/completions", 400, 3),
        ("/v1/chat/completions", 401, 2),
        ("/v1/chat/completions", 200, 1),
        ("/translate", 413, 1),
        ("/translate", 401, 2),
    ] {
        let line =
            format!("tarjama:http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
        assert!(metrics.contains(&line), "{line} in:\n{metrics}");
    }
}

#[test]
#[ignore = "needs a model"]
fn a_full_queue_answers_503_with_retry_after() {
    let Some(_) = require_model(QWEN) else { return };
    let serve = Serve::start(&["--api-key-env", KEY_VAR, "--queue", "1", "--parallel", "1"]);
    let port = serve.port;
    let long = open_stream(port, &long_chat(), 2);

    let answer = post(port, "/v1/chat/completions", &short_chat(false));
    assert_eq!(answer.status, 503, "{}", answer.text());
    let retry: u64 = answer
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After in {:?}", answer.headers));
    assert!(retry >= 1);
    let error = answer.json()["error"].clone();
    assert_eq!(error["code"], "queue_full", "{error}");
    assert_eq!(error["type"], "overloaded_error", "{error}");
    let body = json!({ "q": "مرحبا", "source": "ar", "target": "en", "api_key": KEY });
    let answer = post(port, "/translate", &body);
    assert_eq!(answer.status, 503, "{}", answer.text());
    assert!(
        answer.header("retry-after").is_some(),
        "{:?}",
        answer.headers
    );
    assert!(answer.json()["error"].is_string(), "{}", answer.text());
    assert_eq!(metric(port, "tarjama:requests_refused_total"), 2.0);

    // The place frees when the long request goes: the next one is served.
    drop(long);
    wait_for_metrics(port, Duration::from_secs(60), "the place freed", |m| {
        metric_in(m, "tarjama:requests_admitted") == Some(0.0)
    });
    assert_serves(port);
}

#[test]
#[ignore = "needs a model"]
fn sigterm_under_load_finishes_in_flight_requests() {
    let Some(_) = require_model(QWEN) else { return };
    let mut serve = Serve::start(&["--drain", "60"]);
    let port = serve.port;
    // Two streamed, two whole, each finished when it returns.
    let clients: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let mut body = short_chat(i % 2 == 0);
                body["max_tokens"] = json!(48);
                body["messages"][0]["content"] = json!(format!(
                    "Count from {} to {}, separated by commas.",
                    i + 1,
                    i + 40
                ));
                let answer = post(port, "/v1/chat/completions", &body);
                (answer, Instant::now())
            })
        })
        .collect();
    wait_for_metrics(port, Duration::from_secs(60), "4 requests in flight", |m| {
        metric_in(m, "tarjama:requests_admitted").is_some_and(|n| n >= 4.0)
    });

    let term = Instant::now();
    serve.terminate();
    // It stops accepting at once, while the requests in flight go on.
    let refused_at = loop {
        if TcpStream::connect(("127.0.0.1", port)).is_err() {
            break Instant::now();
        }
        assert!(
            term.elapsed() < Duration::from_secs(10),
            "still accepting 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };

    let mut last = term;
    for (i, client) in clients.into_iter().enumerate() {
        let (answer, finished) = client.join().unwrap();
        last = last.max(finished);
        assert_eq!(answer.status, 200, "request {i}: {}", answer.text());
        if i % 2 == 0 {
            let events = answer.events();
            assert_eq!(
                events.last().map(String::as_str),
                Some("[DONE]"),
                "{events:?}"
            );
            let finish = serde_json::from_str::<Value>(&events[events.len() - 2]).unwrap();
            let reason = &finish["choices"][0]["finish_reason"];
            assert!(reason == "stop" || reason == "length", "{events:?}");
        } else {
            let body = answer.json();
            let reason = &body["choices"][0]["finish_reason"];
            assert!(reason == "stop" || reason == "length", "{body}");
            assert!(
                body["choices"][0]["message"]["content"]
                    .as_str()
                    .is_some_and(|c| c.contains(&format!("{}", i + 1))),
                "{body}"
            );
        }
    }
    assert!(
        refused_at < last,
        "new connections were refused while requests were still being answered"
    );
    let status = serve
        .wait_exit(Duration::from_secs(70))
        .unwrap_or_else(|| panic!("still running after the drain: {}", serve.log()));
    assert!(status.success(), "{status}: {}", serve.log());
    assert!(
        last.duration_since(term) < Duration::from_secs(60),
        "answered within the drain"
    );
    let log = serve.log();
    assert!(log.contains("tarjama serve: stopped"), "{log}");
    assert!(!log.contains("still in flight"), "nothing was cut: {log}");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
#[ignore = "needs a model"]
fn sigterm_while_the_model_loads_stops_without_waiting_for_it() {
    let Some(_) = require_model(QWEN) else { return };
    let mut serve = Serve::spawn(&[]);
    let health = request(serve.port, "GET", "/health", &[], b"");
    let term = Instant::now();
    serve.terminate();
    let status = serve
        .wait_exit(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("still running a minute after SIGTERM: {}", serve.log()));
    let took = term.elapsed();
    let log = serve.log();
    assert!(status.success(), "{status}: {log}");
    assert!(log.contains("tarjama serve: stopped"), "{log}");
    // Where the model was still loading at the signal (it takes seconds), the server stops
    // without it: nothing is printed after "stopped", least of all "ready".
    let after = log
        .split("tarjama serve: stopped")
        .nth(1)
        .unwrap_or_default();
    assert_eq!(after.trim(), "", "printed after stopping: {log}");
    eprintln!(
        "/health {} at the signal; exited {:.2} s after it",
        health.status,
        took.as_secs_f64()
    );
}
