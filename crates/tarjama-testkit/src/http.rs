//! HTTP stand-ins for the remote-engine tests, on loopback only, stopped when dropped:
//!
//! - [`FakeServer`]: an OpenAI-compatible chat server whose answers are a pure function
//!   of the request (numbered lines are answered line by line), so a run's outputs can be
//!   compared byte for byte without a model; it can also count tokens as llama.cpp or
//!   llama-cpp-python do ([`Tokenizer`]);
//! - [`FaultProxy`]: sits in front of any server and spoils chat requests (or every
//!   request) on a schedule (dropped connections, 500s, 429 with `Retry-After`, answers
//!   too slow, answers cut in the middle), counting what it did.
//!
//! Both speak just enough HTTP/1.1 for a client that sends `Content-Length` bodies, and
//! answer every request with `Connection: close`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One HTTP request as read off the wire.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, such as `/v1/chat/completions`.
    pub path: String,
    /// Header lines as `(lower-case name, value)`.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The request as bytes, with `Connection: close`.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.path).into_bytes();
        for (name, value) in &self.headers {
            if name != "connection" && name != "content-length" {
                out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
            }
        }
        out.extend_from_slice(
            format!(
                "content-length: {}\r\nconnection: close\r\n\r\n",
                self.body.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(&self.body);
        out
    }
}

/// Reads one request; `None` when the peer closed or sent something else.
pub fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

/// An answer with a body of `content_type`, closing the connection.
pub fn response(status: u16, reason: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {reason}\r\n").into_bytes();
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
    out
}

/// A loopback listener with one thread per connection, stopped on drop.
struct Listener {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Listener {
    fn start(handle: impl Fn(TcpStream) + Send + Sync + 'static) -> Listener {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
        let addr = listener.local_addr().expect("a bound address");
        let stop = Arc::new(AtomicBool::new(false));
        let handle = Arc::new(handle);
        let flag = stop.clone();
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let handle = handle.clone();
                std::thread::spawn(move || handle(stream));
            }
        });
        Listener {
            addr,
            stop,
            accept: Some(accept),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// The tokenizer route a [`FakeServer`] offers; it counts a token per three characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tokenizer {
    /// llama.cpp's `POST /tokenize` (`{"content"}` → `{"tokens"}`; 400 without `content`).
    LlamaCpp,
    /// llama-cpp-python's `POST /extras/tokenize/count` (`{"input"}` → `{"count"}`); its
    /// `/tokenize` is a 404, as in llama-cpp-python.
    LlamaCppPython,
}

/// The context window a [`FakeServer`] states in its model list, as vLLM does.
pub const MAX_MODEL_LEN: usize = 2048;

/// An OpenAI-compatible chat server without a model: each answer is a function of the
/// request's last message. A message of numbered lines (`1. ...`) is answered with as
/// many numbered lines; anything else with one sentence. Every answer is English.
pub struct FakeServer {
    listener: Listener,
    chats: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    paths: Arc<Mutex<Vec<String>>>,
}

impl FakeServer {
    /// Starts a server for `model`, asking for `key` as a bearer token when given, with no
    /// tokenizer route.
    pub fn start(model: &str, key: Option<&str>) -> FakeServer {
        FakeServer::start_with(model, key, None)
    }

    /// Starts a server like [`FakeServer::start`] that also offers `tokenizer`.
    pub fn start_with(model: &str, key: Option<&str>, tokenizer: Option<Tokenizer>) -> FakeServer {
        let chats = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let paths = Arc::new(Mutex::new(Vec::new()));
        let (model, key) = (model.to_string(), key.map(str::to_string));
        let (c, r, p) = (chats.clone(), refused.clone(), paths.clone());
        let listener = Listener::start(move |mut stream| {
            let Some(request) = read_request(&stream) else {
                return;
            };
            p.lock().expect("paths").push(request.path.clone());
            let authorized = key.as_ref().is_none_or(|k| {
                request.header("authorization") == Some(format!("Bearer {k}").as_str())
            });
            let answer = if !authorized {
                r.fetch_add(1, Ordering::SeqCst);
                response(
                    401,
                    "Unauthorized",
                    &[("content-type", "application/json".into())],
                    br#"{"error":{"message":"Invalid API key","type":"invalid_request_error"}}"#,
                )
            } else if request.path.ends_with("/models") {
                let body = format!(
                    r#"{{"object":"list","data":[{{"id":"{model}","object":"model","max_model_len":{MAX_MODEL_LEN}}}]}}"#
                );
                response(
                    200,
                    "OK",
                    &[("content-type", "application/json".into())],
                    body.as_bytes(),
                )
            } else if request.path.ends_with("/chat/completions") {
                c.fetch_add(1, Ordering::SeqCst);
                chat_answer(&request.body)
            } else if let Some(answer) = tokenize_answer(tokenizer, &request) {
                answer
            } else {
                response(404, "Not Found", &[], b"not found")
            };
            let _ = stream.write_all(&answer);
        });
        FakeServer {
            listener,
            chats,
            refused,
            paths,
        }
    }

    /// The `/v1` base URL.
    pub fn endpoint(&self) -> String {
        format!("http://{}/v1", self.listener.addr)
    }

    /// Chat requests answered so far.
    pub fn chats(&self) -> usize {
        self.chats.load(Ordering::SeqCst)
    }

    /// Requests refused for a wrong or missing key.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    /// The paths of the requests received so far, in order.
    pub fn paths(&self) -> Vec<String> {
        self.paths.lock().expect("paths").clone()
    }
}

/// The answer of `tokenizer`'s route to `request`; `None` when it is not that route.
fn tokenize_answer(tokenizer: Option<Tokenizer>, request: &Request) -> Option<Vec<u8>> {
    let field = match (tokenizer?, request.path.as_str()) {
        (Tokenizer::LlamaCpp, "/tokenize") => "content",
        (Tokenizer::LlamaCppPython, "/extras/tokenize/count") => "input",
        _ => return None,
    };
    // The field's string as sent, escapes and all: enough for a count that is a function
    // of the request.
    let body = String::from_utf8_lossy(&request.body);
    let Some(text) = body
        .split_once(&format!("\"{field}\":\""))
        .and_then(|(_, rest)| rest.split('"').next())
    else {
        let message = format!(r#"{{"error":{{"message":"'{field}' is required"}}}}"#);
        return Some(response(400, "Bad Request", &[], message.as_bytes()));
    };
    let count = text.chars().count().div_ceil(3);
    let answer = match tokenizer? {
        Tokenizer::LlamaCpp => {
            let ids: Vec<String> = (0..count).map(|i| i.to_string()).collect();
            format!(r#"{{"tokens":[{}]}}"#, ids.join(","))
        }
        Tokenizer::LlamaCppPython => format!(r#"{{"count":{count}}}"#),
    };
    Some(response(
        200,
        "OK",
        &[("content-type", "application/json".into())],
        answer.as_bytes(),
    ))
}

/// The fake's answer to a chat request body, streamed in several events.
fn chat_answer(body: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    // The last `"content":"..."` of the request, unescaped enough to find its lines.
    let content = text
        .rsplit("\"content\":\"")
        .next()
        .and_then(|rest| rest.split("\"}").next())
        .unwrap_or("")
        .replace("\\n", "\n");
    let numbered: Vec<&str> = content
        .lines()
        .filter(|l| {
            let digits = l.chars().take_while(char::is_ascii_digit).count();
            digits > 0 && l[digits..].starts_with(". ")
        })
        .collect();
    let answer = if numbered.is_empty() {
        format!("Sentence {:08x}.", fnv(content.as_bytes()))
    } else {
        numbered
            .iter()
            .enumerate()
            .map(|(i, l)| format!("{}. Sentence {:08x}.", i + 1, fnv(l.as_bytes())))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut events = String::new();
    let words: Vec<&str> = answer.split_inclusive(' ').collect();
    for word in words {
        let piece = word.replace('\n', "\\n");
        events.push_str(&format!(
            "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{piece}\"}},\"finish_reason\":null}}]}}\n\n"
        ));
    }
    events.push_str(
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
    );
    response(
        200,
        "OK",
        &[("content-type", "text/event-stream".into())],
        events.as_bytes(),
    )
}

fn fnv(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// What the proxy does to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Passes the request on untouched: a gap in the schedule, so that a later request is
    /// the one spoiled. Not counted in [`FaultProxy::applied`].
    Pass,
    /// Closes the connection without an answer.
    Drop,
    /// Answers 500 without asking the server.
    ServerError,
    /// Answers 429 with `Retry-After` of this many seconds.
    RateLimited(u64),
    /// Waits this long before passing the request on (past the client's timeout).
    Slow(Duration),
    /// Passes the request on, then sends the answer's head and only the first half of its
    /// body.
    Cut,
}

/// A proxy in front of `upstream` that spoils chat requests (`/chat/completions`), or
/// every request, as its schedule says, in the order they arrive; other requests and
/// requests past the schedule pass through.
pub struct FaultProxy {
    listener: Listener,
    done: Arc<Mutex<Vec<Fault>>>,
}

impl FaultProxy {
    /// Starts the proxy, spoiling chat requests; `upstream` is the server's `host:port`.
    pub fn start(upstream: SocketAddr, schedule: Vec<Fault>) -> FaultProxy {
        FaultProxy::start_on(upstream, schedule, false)
    }

    /// Starts the proxy, spoiling every request whatever its path (start-up probes
    /// included); `upstream` is the server's `host:port`.
    pub fn start_on_every_request(upstream: SocketAddr, schedule: Vec<Fault>) -> FaultProxy {
        FaultProxy::start_on(upstream, schedule, true)
    }

    fn start_on(upstream: SocketAddr, schedule: Vec<Fault>, every: bool) -> FaultProxy {
        let schedule = Arc::new(Mutex::new(schedule.into_iter()));
        let done = Arc::new(Mutex::new(Vec::new()));
        let record = done.clone();
        let listener = Listener::start(move |mut client| {
            let Some(request) = read_request(&client) else {
                return;
            };
            let spoiled = every || request.path.ends_with("/chat/completions");
            let fault = spoiled
                .then(|| schedule.lock().expect("schedule").next())
                .flatten()
                .filter(|&f| f != Fault::Pass);
            if let Some(fault) = fault {
                record.lock().expect("record").push(fault);
            }
            let forward = |request: &Request| -> Option<Vec<u8>> {
                let mut server = TcpStream::connect(upstream).ok()?;
                server.write_all(&request.to_bytes()).ok()?;
                let mut answer = Vec::new();
                server.read_to_end(&mut answer).ok()?;
                Some(answer)
            };
            let answer = match fault {
                Some(Fault::Drop) => return,
                Some(Fault::ServerError) => response(
                    500,
                    "Internal Server Error",
                    &[("content-type", "application/json".into())],
                    br#"{"error":{"message":"injected failure"}}"#,
                ),
                Some(Fault::RateLimited(seconds)) => response(
                    429,
                    "Too Many Requests",
                    &[("retry-after", seconds.to_string())],
                    br#"{"error":{"message":"slow down"}}"#,
                ),
                Some(Fault::Slow(wait)) => {
                    std::thread::sleep(wait);
                    match forward(&request) {
                        Some(a) => a,
                        None => return,
                    }
                }
                Some(Fault::Cut) => match forward(&request) {
                    Some(mut a) => {
                        let head = a
                            .windows(4)
                            .position(|w| w == b"\r\n\r\n")
                            .map_or(0, |at| at + 4);
                        a.truncate(head + (a.len() - head) / 2);
                        a
                    }
                    None => return,
                },
                Some(Fault::Pass) | None => match forward(&request) {
                    Some(a) => a,
                    None => return,
                },
            };
            let _ = client.write_all(&answer);
            let _ = client.flush();
        });
        FaultProxy { listener, done }
    }

    /// The `/v1` base URL of the proxy.
    pub fn endpoint(&self) -> String {
        format!("http://{}/v1", self.listener.addr)
    }

    /// The faults applied so far, in order.
    pub fn applied(&self) -> Vec<Fault> {
        self.done.lock().expect("record").clone()
    }
}

/// The `host:port` of a `http://host:port/...` URL.
pub fn socket_addr(url: &str) -> SocketAddr {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let host = rest.split('/').next().expect("a host");
    std::net::ToSocketAddrs::to_socket_addrs(host)
        .expect("a resolvable address")
        .next()
        .expect("an address")
}

/// A loopback port with nothing listening on it (bound, then released).
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
    listener.local_addr().expect("an address").port()
}
