//! The web page of `tarjama serve` in a real browser: the binary serves a real model on a
//! loopback port, and `scripts/page_test.py` drives headless Chromium through Selenium
//! over it: it translates the seed article and checks that every row shows the API's
//! Arabic sentence beside that sentence's English, looks at the layout at desktop and
//! phone width (screenshots kept in `target/page-test/`), streams a summary, and reads the
//! API's error messages off the page.
//!
//! Needs the model `qwen2.5-coder-0.5b-instruct`, `chromium`, `chromedriver` and the
//! client venv of `scripts/install_clients.sh` (its python in `$TARJAMA_CLIENT_PYTHON`,
//! else the venv the script makes by default), hence `#[ignore]`: `scripts/test.sh` runs
//! it with `--include-ignored`, where `TARJAMA_REQUIRE_TOOLS=1` turns a missing program
//! into a failure.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tarjama_testkit::{require_model, require_program, workspace_root};

const QWEN: &str = "qwen2.5-coder-0.5b-instruct";

/// `tarjama serve` on a loopback port, killed (and waited for) when dropped, whatever
/// the test did before.
struct Server {
    child: Child,
    base: String,
    /// Everything the server wrote on stderr, for the failure messages.
    log: Arc<Mutex<String>>,
}

impl Server {
    fn start() -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tarjama"))
            .args([
                "serve",
                "--model",
                QWEN,
                "--host",
                "127.0.0.1",
                "--port",
                "0",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting tarjama serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        // The pipe is drained to the end, or a chatty server would block on a full pipe.
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or_default();
                    let _ = port_tx.send(addr.to_string());
                }
                let mut log = sink.lock().expect("log");
                log.push_str(&line);
                log.push('\n');
            }
        });
        // Guarded from here on: a panic below still kills the child.
        let mut server = Server {
            child,
            base: String::new(),
            log,
        };
        let addr = port_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no `listening on` line:\n{}", server.log()));
        assert!(
            addr.starts_with("127.0.0.1:"),
            "the server listens on {addr}, not loopback"
        );
        server.base = format!("http://{addr}");
        server
    }

    /// The last lines the server wrote on stderr.
    fn log(&self) -> String {
        let log = self.log.lock().expect("log");
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Waits until `/health` answers 200 (the model loaded).
    fn wait_ready(&mut self, limit: Duration) {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("tarjama serve exited ({status}):\n{}", self.log());
            }
            if http_status(&self.base, "/health") == Some(200) {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "/health never answered 200 in {limit:?}:\n{}",
                self.log()
            );
            // Each 503 is an error line in the server's log: not too many.
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status of `GET path`, by hand: one request, `Connection: close`.
fn http_status(base: &str, path: &str) -> Option<u16> {
    let addr = base.strip_prefix("http://")?;
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split_whitespace().nth(1)?.parse().ok()
}

/// The Python of the client venv (`scripts/install_clients.sh`) when it has Selenium:
/// `$TARJAMA_CLIENT_PYTHON`, else the script's default venv under the tarjama home.
/// `None` after a note when there is none, a panic under `TARJAMA_REQUIRE_TOOLS=1`.
fn client_python() -> Option<PathBuf> {
    let python = std::env::var_os("TARJAMA_CLIENT_PYTHON")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let models = tarjama_testkit::models_dir();
            let home = models.parent().expect("the models folder has a parent");
            home.join("client-venv/bin/python")
        });
    let found = Command::new(&python)
        .args(["-c", "import selenium"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some(python);
    }
    let missing = format!(
        "the client venv's python ({}) with Selenium is not installed",
        python.display()
    );
    let hint = "scripts/install_clients.sh installs it and prints the path for \
                TARJAMA_CLIENT_PYTHON";
    if std::env::var("TARJAMA_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("{missing}; TARJAMA_REQUIRE_TOOLS=1 requires it ({hint})");
    }
    eprintln!(
        "note: test skipped: {missing} ({hint}; set TARJAMA_REQUIRE_TOOLS=1 to fail instead)"
    );
    None
}

/// The seed article: the first `seeds/*.txt` of the repository.
fn seed_article(root: &Path) -> PathBuf {
    let mut seeds: Vec<PathBuf> = std::fs::read_dir(root.join("seeds"))
        .expect("the repository's seeds/ folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    seeds.sort();
    seeds.into_iter().next().expect("a seeds/*.txt article")
}

#[test]
#[ignore = "needs a model, chromium and the client venv"]
fn the_page_shows_each_arabic_sentence_beside_its_english() {
    let Some(_model) = require_model(QWEN) else {
        return;
    };
    let (Some(chromium), Some(chromedriver)) =
        (require_program("chromium"), require_program("chromedriver"))
    else {
        return;
    };
    let Some(python) = client_python() else {
        return;
    };
    let root = workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|v| !v.is_empty())
        .map_or_else(|| root.join("target"), PathBuf::from);
    // Kept after the test: the screenshots are its artifacts.
    let out = target.join("page-test");
    std::fs::create_dir_all(&out).expect("creating target/page-test");

    let mut server = Server::start();
    server.wait_ready(Duration::from_secs(300));
    let run = Command::new(&python)
        .arg(root.join("scripts/page_test.py"))
        .arg(&server.base)
        .arg(seed_article(&root))
        .arg(&out)
        .env("CHROMIUM", &chromium)
        .env("CHROMEDRIVER", &chromedriver)
        .stdin(Stdio::null())
        .output()
        .expect("running scripts/page_test.py");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    println!("{stdout}");
    assert!(
        run.status.success(),
        "the page test failed ({}):\n{stdout}\n{stderr}\nserver log:\n{}",
        run.status,
        server.log()
    );
    for shot in ["desktop.png", "phone.png"] {
        let path = out.join(shot);
        assert!(
            std::fs::metadata(&path).is_ok_and(|m| m.len() > 0),
            "no screenshot {}",
            path.display()
        );
    }
}
