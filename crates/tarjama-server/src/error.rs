//! Every error a client gets is JSON it can act on: a status, a message naming the field
//! or the limit, and for a full queue a `Retry-After`.
//!
//! The OpenAI-style routes answer `{"error": {"message", "type", "param", "code"}}`;
//! LibreTranslate's routes answer `{"error": "message"}`, as LibreTranslate does, so
//! each dialect's clients read the message where they look for it.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, in words a user can act on.
    pub message: String,
    /// The request field at fault, when one is.
    pub param: Option<String>,
    /// A short machine-readable code (`context_length_exceeded`, `queue_full`, ...).
    pub code: &'static str,
    /// Seconds to wait before trying again (503).
    pub retry_after: Option<u64>,
    /// LibreTranslate's shape instead of OpenAI's.
    pub libre: bool,
}

impl ApiError {
    /// An error with a status, a code and a message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            param: None,
            code,
            retry_after: None,
            libre: false,
        }
    }

    /// 400: a field of the request is wrong.
    pub fn field(param: &str, message: impl Into<String>) -> Self {
        ApiError {
            param: Some(param.to_string()),
            ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
        }
    }

    /// 503 with `Retry-After`.
    pub fn unavailable(code: &'static str, message: impl Into<String>, retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }

    /// 500: the engine failed.
    pub fn engine(e: impl std::fmt::Display) -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "engine_error",
            e.to_string(),
        )
    }

    /// The same error in LibreTranslate's shape.
    pub fn libre(mut self) -> Self {
        self.libre = true;
        self
    }

    /// OpenAI's `type` for the status.
    fn kind(&self) -> &'static str {
        match self.status.as_u16() {
            401 => "authentication_error",
            404 => "not_found_error",
            413 | 400 | 422 => "invalid_request_error",
            429 | 503 => "overloaded_error",
            _ => "server_error",
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        if self.libre {
            return json!({ "error": self.message });
        }
        json!({
            "error": {
                "message": self.message,
                "type": self.kind(),
                "param": self.param,
                "code": self.code,
            }
        })
    }
}

impl From<tarjama_chat::Error> for ApiError {
    fn from(e: tarjama_chat::Error) -> Self {
        match e {
            tarjama_chat::Error::ContextOverflow { .. } => ApiError::new(
                StatusCode::BAD_REQUEST,
                "context_length_exceeded",
                e.to_string(),
            ),
            tarjama_chat::Error::Unsupported(m) => {
                ApiError::new(StatusCode::BAD_REQUEST, "unsupported", m)
            }
            other => ApiError::engine(other),
        }
    }
}

impl From<tarjama_batch::document::Error> for ApiError {
    fn from(e: tarjama_batch::document::Error) -> Self {
        use tarjama_batch::document::Error;
        match e {
            Error::Input(message) => ApiError::field("text", message),
            Error::Translation { source, .. } => ApiError::from(source),
            Error::Render(message) => ApiError::engine(message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Parses a JSON body into `T`, naming the field at fault: `messages[0].role: missing
/// field`, not "failed to deserialize".
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::field("body", format!("the body is not valid JSON: {inner}"));
        }
        if path == "." {
            ApiError::field("body", format!("the body: {inner}"))
        } else {
            ApiError::field(&path, format!("{path}: {inner}"))
        }
    })
}
