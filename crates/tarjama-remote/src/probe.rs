//! The start-up probes: the model list (reachable, authorized, the context window, a
//! tarjama server) and the tokenizer route, each retried like any request, so a fault at
//! start never changes how tokens are counted (and so how sentences are grouped).

use serde_json::{json, Value};

use crate::retry::Cause;
use crate::{classify, read_failure, server_message, transport_reason, Error, Failure};
use crate::{RemoteEngine, TokenCounting};

impl RemoteEngine {
    /// `GET /models`: reachable, authorized, and the context window when given.
    pub(crate) fn probe_models(&mut self) -> Result<(), Error> {
        let url = format!("{}/models", self.options.endpoint);
        // Set while the last attempt did not reach the server at all.
        let mut unreached = None;
        let mut first = true;
        let body = self.with_retries(&url, || {
            unreached = None;
            let first = std::mem::replace(&mut first, false);
            let response = match self.request("GET", &url).call() {
                Ok(response) => response,
                // Some servers have no model list; answering at all is enough.
                Err(ureq::Error::Status(404 | 405, _)) => return Ok(None),
                // Nothing listens there (or the name does not resolve) at the very first
                // contact: a wrong URL or a server not started, said at once. A server
                // that answered once and then drops is retried like any request.
                Err(ureq::Error::Transport(t))
                    if first
                        && matches!(
                            t.kind(),
                            ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::Dns
                        ) =>
                {
                    return Err(Failure::Fatal(Error::Unreachable {
                        endpoint: self.options.endpoint.clone(),
                        reason: transport_reason(&t),
                    }));
                }
                Err(ureq::Error::Transport(t)) => {
                    unreached = Some(transport_reason(&t));
                    return Err(classify(&url, ureq::Error::Transport(t)));
                }
                Err(e) => return Err(classify(&url, e)),
            };
            let body = response.into_string().map_err(|e| read_failure(&e))?;
            match serde_json::from_str::<Value>(&body) {
                Ok(list) => Ok(Some(list)),
                // A list that stops early was cut short; one that is not JSON says nothing.
                Err(e) if e.is_eof() => Err(Failure::Retry(Cause::CutShort, None, e.to_string())),
                Err(_) => Ok(None),
            }
        });
        let list = match (body, unreached) {
            (Ok(Some(list)), _) => list,
            (Ok(None), _) => return Ok(()),
            (Err(Error::GaveUp { attempts, .. }), Some(reason)) => {
                return Err(Error::Unreachable {
                    endpoint: self.options.endpoint.clone(),
                    reason: format!("{reason} ({attempts} attempts)"),
                })
            }
            (Err(e), _) => return Err(e),
        };
        let models = list.get("data").and_then(Value::as_array);
        let ours = models.and_then(|m| {
            m.iter()
                .find(|m| m.get("id").and_then(Value::as_str) == Some(self.options.model.as_str()))
        });
        if let (Some(models), None) = (models, ours) {
            let ids: Vec<&str> = models
                .iter()
                .filter_map(|m| m.get("id").and_then(Value::as_str))
                .collect();
            tracing::warn!(
                "the server lists no model {:?} (it has {}); asking for it anyway",
                self.options.model,
                ids.join(", ")
            );
        }
        self.tarjama =
            ours.and_then(|m| m.get("owned_by")).and_then(Value::as_str) == Some("tarjama");
        // vLLM says how long a context it serves.
        if let Some(len) = ours
            .and_then(|m| m.get("max_model_len"))
            .and_then(Value::as_u64)
        {
            self.options.max_context = self.options.max_context.min(len as usize);
        }
        Ok(())
    }

    /// The first tokenizer route of the server that counts a test string. A route the
    /// server says it lacks (a status a retry would not change, an answer without a
    /// count) is passed over; a fault is retried on the same route, and a route whose
    /// faults do not pass is an error rather than a reason to count some other way.
    pub(crate) fn find_tokenizer(&self) -> Result<Option<TokenCounting>, Error> {
        for how in [
            TokenCounting::LlamaCpp,
            TokenCounting::Vllm,
            TokenCounting::LlamaCppPython,
        ] {
            let url = self.tokenizer_url(how);
            let count = self.with_retries(&url, || self.probe_count(how));
            match count {
                Ok(0) => {}
                Ok(_) => return Ok(Some(how)),
                Err(Error::GaveUp {
                    url,
                    attempts,
                    last,
                }) => {
                    return Err(Error::TokenizerProbe {
                        url,
                        attempts,
                        last,
                    })
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// One try of tokenizer route `how` on a test string: 0 where the server says it has
    /// no such route, a retry where it failed in a way that can pass.
    fn probe_count(&self, how: TokenCounting) -> Result<usize, Failure> {
        match self.server_count(how, "مرحبا بالعالم") {
            Err(Failure::Fatal(e)) => {
                tracing::debug!("no {}: {e}", how.describe());
                Ok(0)
            }
            answer => answer,
        }
    }

    /// The URL of the server's tokenizer route `how`.
    pub(crate) fn tokenizer_url(&self, how: TokenCounting) -> String {
        let path = match how {
            TokenCounting::LlamaCpp | TokenCounting::Vllm => "/tokenize",
            TokenCounting::LlamaCppPython => "/extras/tokenize/count",
            TokenCounting::Local | TokenCounting::Estimate => unreachable!("not a server route"),
        };
        format!("{}{path}", self.root)
    }

    /// One token count from the server's tokenizer route `how`.
    pub(crate) fn server_count(&self, how: TokenCounting, text: &str) -> Result<usize, Failure> {
        let body = match how {
            TokenCounting::LlamaCpp => json!({ "content": text }),
            TokenCounting::Vllm => {
                json!({ "model": self.options.model, "prompt": text, "add_special_tokens": false })
            }
            _ => json!({ "model": self.options.model, "input": text }),
        };
        let url = self.tokenizer_url(how);
        let response = self
            .request("POST", &url)
            .set("Content-Type", "application/json")
            .send_string(&body.to_string())
            .map_err(|e| classify_route(&url, e))?;
        let answer = response.into_string().map_err(|e| read_failure(&e))?;
        count_in(how, &url, &answer)
    }
}

/// What a failed request to a tokenizer route means: as [`classify`], except that 501
/// (Not Implemented) says the route is missing, however often it is asked.
fn classify_route(url: &str, error: ureq::Error) -> Failure {
    match error {
        ureq::Error::Status(501, response) => Failure::Fatal(Error::Refused {
            url: url.to_string(),
            status: 501,
            message: server_message(response),
        }),
        e => classify(url, e),
    }
}

/// The token count in the answer `body` of tokenizer route `how`: a retry when the JSON
/// stops early (an answer cut short, an empty one included), fatal when it is whole but
/// holds no count.
fn count_in(how: TokenCounting, url: &str, body: &str) -> Result<usize, Failure> {
    let value: Value = match serde_json::from_str(body) {
        Ok(value) => value,
        Err(e) if e.is_eof() => {
            return Err(Failure::Retry(
                Cause::CutShort,
                None,
                format!("the answer stopped early: {e}"),
            ))
        }
        Err(e) => {
            return Err(Failure::Fatal(Error::Refused {
                url: url.to_string(),
                status: 200,
                message: format!("not a token count: {e}"),
            }))
        }
    };
    let count = match how {
        TokenCounting::LlamaCpp => value.get("tokens").and_then(Value::as_array).map(Vec::len),
        _ => value
            .get("count")
            .and_then(Value::as_u64)
            .map(|n| n as usize),
    };
    count.ok_or_else(|| {
        Failure::Fatal(Error::Refused {
            url: url.to_string(),
            status: 200,
            message: "no token count in the answer".into(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://127.0.0.1:1/tokenize";

    fn status(code: u16) -> Failure {
        let response =
            ureq::Response::new(code, "status", r#"{"error":"no"}"#).expect("a response");
        classify_route(URL, ureq::Error::Status(code, response))
    }

    #[test]
    fn a_route_that_is_not_there_is_told_from_one_that_failed() {
        for code in [400, 401, 403, 404, 405, 422, 501] {
            assert!(matches!(status(code), Failure::Fatal(_)), "{code}");
        }
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(matches!(status(code), Failure::Retry(..)), "{code}");
        }
    }

    #[test]
    fn a_count_cut_short_is_retried_and_an_answer_without_one_is_not() {
        let count = |how, body| count_in(how, URL, body);
        assert!(matches!(
            count(TokenCounting::LlamaCpp, r#"{"tokens":[5,6,7]}"#),
            Ok(3)
        ));
        assert!(matches!(
            count(TokenCounting::Vllm, r#"{"count":4}"#),
            Ok(4)
        ));
        for cut in [r#"{"tokens":[5,6"#, r#"{"count""#, ""] {
            assert!(
                matches!(
                    count(TokenCounting::LlamaCpp, cut),
                    Err(Failure::Retry(Cause::CutShort, ..))
                ),
                "{cut:?}"
            );
        }
        for whole in [
            r#"{"detail":"Not Found"}"#,
            r#"{"count":4}"#,
            "<html>not here</html>",
        ] {
            assert!(
                matches!(
                    count(TokenCounting::LlamaCpp, whole),
                    Err(Failure::Fatal(_))
                ),
                "{whole:?}"
            );
        }
    }
}
