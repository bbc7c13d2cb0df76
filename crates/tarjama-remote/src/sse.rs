//! The streamed answer of `/v1/chat/completions` with `"stream": true`: server-sent
//! events, one JSON chunk per `data:` line, ended by `data: [DONE]`.
//!
//! An answer counts as complete only when a chunk carries a `finish_reason` (or the
//! `[DONE]` line arrives): a stream that ends before that was cut short, and the caller
//! retries it instead of keeping what came.

use serde_json::Value;

/// Token counts the server reported (the last chunk, when asked for, or a whole answer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Tokens of the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
}

/// What one line of the stream said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// Nothing to act on (a comment, an empty line, an event name, a chunk without text).
    Nothing,
    /// More text of the answer.
    Text(String),
    /// The stream's `[DONE]`.
    Done,
}

/// The answer as it streams in.
#[derive(Debug, Default)]
pub struct Stream {
    /// The text so far.
    pub text: String,
    /// The server's `finish_reason`, once given (`stop`, `length`, ...).
    pub finish: Option<String>,
    /// The server's counts, when given.
    pub usage: Option<Usage>,
    /// Chunks that carried text (about one per token on llama.cpp and vLLM).
    pub pieces: usize,
    /// Whether `[DONE]` arrived.
    pub done: bool,
    /// A tarjama server's own word for why it stopped (`tarjama_stop`: `loop`,
    /// `sentences`, ...), finer than `finish_reason`.
    pub tarjama_stop: Option<String>,
}

impl Stream {
    /// Takes one line of the event stream (without its line break).
    ///
    /// Errors: a `data:` line that is not JSON (a chunk cut in two), or an error the server
    /// sent inside the stream; the message says which.
    pub fn feed(&mut self, line: &str) -> Result<Line, String> {
        let line = line.trim_end_matches(['\r', '\n']);
        let Some(data) = line.strip_prefix("data:") else {
            // `event:`, `id:`, `retry:`, `: comment` and the blank line between events.
            return Ok(Line::Nothing);
        };
        let data = data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(Line::Done);
        }
        let chunk: Value =
            serde_json::from_str(data).map_err(|e| format!("a malformed stream chunk ({e})"))?;
        if let Some(error) = chunk.get("error") {
            return Err(format!("the server sent an error: {}", error_text(error)));
        }
        if let Some(usage) = usage(&chunk) {
            self.usage = Some(usage);
        }
        let Some(choice) = chunk.get("choices").and_then(|c| c.get(0)) else {
            return Ok(Line::Nothing);
        };
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(reason.to_string());
        }
        if let Some(reason) = choice.get("tarjama_stop").and_then(Value::as_str) {
            self.tarjama_stop = Some(reason.to_string());
        }
        // Chat chunks carry `delta.content`; a few servers send `text` (completions).
        let piece = choice
            .get("delta")
            .and_then(|d| d.get("content"))
            .or_else(|| choice.get("text"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if piece.is_empty() {
            return Ok(Line::Nothing);
        }
        self.text.push_str(piece);
        self.pieces += 1;
        Ok(Line::Text(piece.to_string()))
    }

    /// Whether the server finished the answer (a finish reason or `[DONE]`).
    pub fn complete(&self) -> bool {
        self.finish.is_some() || self.done
    }
}

/// A whole (not streamed) answer: `(text, finish_reason, usage)`. For servers that ignore
/// `"stream": true`.
pub fn whole(body: &str) -> Result<(String, Option<String>, Option<Usage>), String> {
    let value: Value =
        serde_json::from_str(body).map_err(|e| format!("an answer that is not JSON ({e})"))?;
    if let Some(error) = value.get("error") {
        return Err(format!("the server sent an error: {}", error_text(error)));
    }
    let choice = value
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or("an answer without choices")?;
    let text = choice
        .get("message")
        .and_then(|m| m.get("content"))
        .or_else(|| choice.get("text"))
        .and_then(Value::as_str)
        .ok_or("an answer without text")?;
    let finish = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok((text.to_string(), finish, usage(&value)))
}

fn usage(value: &Value) -> Option<Usage> {
    let usage = value.get("usage")?;
    let count = |key: &str| usage.get(key).and_then(Value::as_u64).map(|n| n as usize);
    Some(Usage {
        prompt_tokens: count("prompt_tokens")?,
        completion_tokens: count("completion_tokens").unwrap_or(0),
    })
}

/// The human part of an error value: `{"message": ...}`, a string, or the JSON itself.
pub fn error_text(error: &Value) -> String {
    match error {
        Value::String(s) => s.clone(),
        Value::Object(o) => o
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| error.to_string(), str::to_string),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(content: &str, finish: Option<&str>) -> String {
        let finish = finish.map_or("null".to_string(), |f| format!("\"{f}\""));
        format!(
            "data: {{\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\
             \"delta\":{{\"content\":{}}},\"finish_reason\":{finish}}}]}}",
            serde_json::to_string(content).unwrap()
        )
    }

    #[test]
    fn a_complete_stream_gives_its_text_reason_and_usage() {
        let mut s = Stream::default();
        let lines = [
            ": ping".to_string(),
            "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"},\"finish_reason\":null}]}"
                .to_string(),
            String::new(),
            chunk("The minister", None),
            chunk(" said «نعم».", None),
            chunk("", Some("stop")),
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":31,\"completion_tokens\":6}}"
                .to_string(),
            "data: [DONE]".to_string(),
        ];
        let mut pieces = Vec::new();
        for line in &lines {
            if let Line::Text(t) = s.feed(line).unwrap() {
                pieces.push(t);
            }
        }
        assert_eq!(pieces, ["The minister", " said «نعم»."]);
        assert_eq!(s.text, "The minister said «نعم».");
        assert_eq!(s.finish.as_deref(), Some("stop"));
        assert_eq!(
            s.usage,
            Some(Usage {
                prompt_tokens: 31,
                completion_tokens: 6
            })
        );
        assert!(s.complete() && s.done);
        assert_eq!(s.pieces, 2);
    }

    #[test]
    fn a_stream_without_a_finish_is_not_complete() {
        let mut s = Stream::default();
        s.feed(&chunk("The minister", None)).unwrap();
        assert!(!s.complete(), "cut before the finish reason");
    }

    #[test]
    fn a_chunk_cut_in_two_and_an_error_in_the_stream_are_errors() {
        let mut s = Stream::default();
        let cut = chunk("The minister", None);
        let err = s.feed(&cut[..cut.len() / 2]).unwrap_err();
        assert!(err.contains("malformed"), "{err}");
        let err = s
            .feed("data: {\"error\":{\"message\":\"out of memory\",\"code\":500}}")
            .unwrap_err();
        assert!(err.contains("out of memory"), "{err}");
    }

    #[test]
    fn a_whole_answer_is_read_too() {
        let body = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"Hello."},
            "finish_reason":"length"}],"usage":{"prompt_tokens":5,"completion_tokens":2}}"#;
        let (text, finish, usage) = whole(body).unwrap();
        assert_eq!(text, "Hello.");
        assert_eq!(finish.as_deref(), Some("length"));
        assert_eq!(usage.unwrap().completion_tokens, 2);
        assert!(whole("{\"error\":\"bad model\"}")
            .unwrap_err()
            .contains("bad model"));
        assert!(whole("<html>").is_err());
    }
}
