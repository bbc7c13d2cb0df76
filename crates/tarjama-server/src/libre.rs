//! The LibreTranslate-compatible routes, so its clients, scripts and browser extensions
//! work against this server unchanged: `POST /translate` (`q` a string or an array,
//! JSON or form body), `POST /detect`, `GET /languages`, `GET /frontend/settings`,
//! `POST /translate_file` with `GET /download_file/NAME` (txt and srt files, answered in
//! the same format). Errors are `{"error": "..."}`, as LibreTranslate's.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Multipart, Path, State as Shared};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tarjama_batch::inputs::Kind;
use tarjama_batch::render::Format;
use tarjama_text::script::is_arabic;

use crate::error::{parse_json, ApiError};
use crate::state::{Model, State};

/// The most characters one request may carry (LibreTranslate's `charLimit`).
const CHAR_LIMIT: usize = 100_000;

/// `GET /languages`.
pub async fn languages() -> Json<Value> {
    Json(json!([
        { "code": "ar", "name": "Arabic", "targets": ["en"] },
        { "code": "en", "name": "English", "targets": [] },
    ]))
}

/// `GET /frontend/settings`: what LibreTranslate's own page and extensions ask first.
pub async fn settings(Shared(state): Shared<Arc<State>>) -> Json<Value> {
    Json(json!({
        "charLimit": CHAR_LIMIT,
        "frontendTimeout": 500,
        "apiKeys": state.config.keys.required(),
        "keyRequired": state.config.keys.required(),
        "suggestions": false,
        "filesTranslation": true,
        "supportedFilesFormat": [".txt", ".srt"],
        "language": {
            "source": { "code": "ar", "name": "Arabic" },
            "target": { "code": "en", "name": "English" },
        },
    }))
}

/// `q` is a string or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Query {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct TranslateRequest {
    q: Query,
    source: String,
    target: String,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    api_key: Option<String>,
}

/// A request's fields from a JSON body, or from a form
/// (`application/x-www-form-urlencoded`), where repeated `q` fields make a list, as
/// LibreTranslate takes both.
fn parse_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, ApiError> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return parse_json(body).map_err(ApiError::libre);
    }
    let mut fields = serde_json::Map::new();
    let mut qs = Vec::new();
    for (key, value) in form_urlencoded::parse(body) {
        if key == "q" {
            qs.push(Value::String(value.into_owned()));
        } else {
            fields.insert(key.into_owned(), Value::String(value.into_owned()));
        }
    }
    match qs.len() {
        0 => {}
        1 => {
            fields.insert("q".into(), qs.remove(0));
        }
        _ => {
            fields.insert("q".into(), Value::Array(qs));
        }
    }
    let value = Value::Object(fields);
    parse_json(value.to_string().as_bytes()).map_err(ApiError::libre)
}

/// Checks the language pair: Arabic (or `auto`) into English.
fn check_pair(source: &str, target: &str) -> Result<(), ApiError> {
    if source != "ar" && source != "auto" {
        return Err(ApiError::field(
            "source",
            format!("{source} is not supported as a source language: this server translates ar (or auto)"),
        )
        .libre());
    }
    if target != "en" {
        return Err(ApiError::field(
            "target",
            format!(
                "{target} is not supported as a target language: this server translates into en"
            ),
        )
        .libre());
    }
    Ok(())
}

/// The language of `text` as LibreTranslate reports it: Arabic when its letters are
/// mostly Arabic, else English (the only other language this server knows), with the
/// share of letters that decided it as the confidence.
fn detect(text: &str) -> Value {
    let letters: Vec<char> = text.chars().filter(|c| c.is_alphabetic()).collect();
    let arabic = letters.iter().filter(|c| is_arabic(**c)).count();
    let share = if letters.is_empty() {
        0.0
    } else {
        arabic as f64 / letters.len() as f64
    };
    let (language, confidence) = if share >= 0.5 {
        ("ar", share)
    } else {
        ("en", 1.0 - share)
    };
    json!({ "language": language, "confidence": (confidence * 1000.0).round() / 10.0 })
}

/// One text translated as a document (paragraphs kept), or an HTML fragment's text.
fn translate_one(model: &Model, text: &str, html: bool) -> Result<String, ApiError> {
    let choices = model.defaults.choices.clone();
    let options = model.defaults.translate.clone();
    let mut one = |text: &str| -> Result<String, ApiError> {
        let rendered = model.with_translator(&choices, |t| {
            tarjama_batch::document::translate(
                t,
                Kind::Text,
                text.to_string(),
                &options,
                Format::Txt,
                "<request>",
                &model.name,
            )
        })?;
        let out = rendered.map_err(|e| ApiError::from(e).libre())?;
        // A text without a final line break comes back without one.
        Ok(if text.ends_with('\n') {
            out.output
        } else {
            out.output.trim_end_matches('\n').to_string()
        })
    };
    if html {
        crate::html::translate(text, &mut one)
    } else {
        one(text)
    }
}

/// `POST /translate`.
pub async fn translate(
    Shared(state): Shared<Arc<State>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: TranslateRequest = parse_body(&headers, &body)?;
    state
        .authorize(&headers, request.api_key.as_deref())
        .map_err(ApiError::libre)?;
    check_pair(&request.source, &request.target)?;
    let html = match request.format.as_deref() {
        None | Some("text") => false,
        Some("html") => true,
        Some(other) => {
            return Err(
                ApiError::field("format", format!("format {other:?} is not text or html")).libre(),
            )
        }
    };
    let (texts, many) = match request.q {
        Query::One(q) => (vec![q], false),
        Query::Many(qs) => (qs, true),
    };
    if texts.iter().map(|t| t.chars().count()).sum::<usize>() > CHAR_LIMIT {
        return Err(ApiError::field(
            "q",
            format!("q is longer than the limit of {CHAR_LIMIT} characters"),
        )
        .libre());
    }
    state.model().map_err(ApiError::libre)?;
    let permit = state.admit().map_err(ApiError::libre)?;
    let worker = state.clone();
    let detected: Vec<Value> = texts.iter().map(|t| detect(t)).collect();
    let translated = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let model = worker.model()?;
        texts
            .iter()
            .map(|t| translate_one(model, t, html))
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| ApiError::engine(e).libre())?
    .map_err(ApiError::libre)?;
    let mut answer = if many {
        json!({ "translatedText": translated })
    } else {
        json!({ "translatedText": translated[0] })
    };
    if request.source == "auto" {
        answer["detectedLanguage"] = if many {
            Value::Array(detected)
        } else {
            detected[0].clone()
        };
    }
    Ok(Json(answer).into_response())
}

/// `POST /detect`.
pub async fn detect_route(
    Shared(state): Shared<Arc<State>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    #[derive(Deserialize)]
    struct Request {
        q: String,
        #[serde(default)]
        api_key: Option<String>,
    }
    let request: Request = parse_body(&headers, &body)?;
    state
        .authorize(&headers, request.api_key.as_deref())
        .map_err(ApiError::libre)?;
    Ok(Json(json!([detect(&request.q)])).into_response())
}

/// `POST /translate_file`: a multipart form with `file`, `source`, `target` (and
/// `api_key`); the translation is kept for `GET /download_file/NAME`.
pub async fn translate_file(
    Shared(state): Shared<Arc<State>>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Result<Response, ApiError> {
    let bad = |e: axum::extract::multipart::MultipartError| {
        let status = e.status();
        let message = e.body_text();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(status, "body_too_large", message).libre()
        } else {
            ApiError::field("file", format!("the form cannot be read: {message}")).libre()
        }
    };
    let (mut file, mut source, mut target, mut key) = (None, None, None, None);
    while let Some(field) = form.next_field().await.map_err(bad)? {
        match field.name().unwrap_or_default() {
            "file" => {
                let name = field.file_name().unwrap_or("file.txt").to_string();
                file = Some((name, field.bytes().await.map_err(bad)?));
            }
            "source" => source = Some(field.text().await.map_err(bad)?),
            "target" => target = Some(field.text().await.map_err(bad)?),
            "api_key" => key = Some(field.text().await.map_err(bad)?),
            _ => {}
        }
    }
    state
        .authorize(&headers, key.as_deref())
        .map_err(ApiError::libre)?;
    let (name, bytes) =
        file.ok_or_else(|| ApiError::field("file", "file: no file was sent").libre())?;
    check_pair(
        source.as_deref().unwrap_or("auto"),
        target.as_deref().unwrap_or("en"),
    )?;
    let kind = tarjama_batch::inputs::Kind::of(std::path::Path::new(&name)).ok_or_else(|| {
        ApiError::field(
            "file",
            format!("{name}: not a file format this server translates (.txt, .srt)"),
        )
        .libre()
    })?;
    let text = tarjama_text::input::decode(&bytes, &name, &tarjama_text::ReadOptions::default())
        .map_err(|e| ApiError::field("file", e.to_string()).libre())?;
    state.model().map_err(ApiError::libre)?;
    let permit = state.admit().map_err(ApiError::libre)?;
    let worker = state.clone();
    let file_name = name.clone();
    let output = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let model = worker.model()?;
        let choices = model.defaults.choices.clone();
        let options = model.defaults.translate.clone();
        let rendered = model.with_translator(&choices, |t| {
            tarjama_batch::document::translate(
                t,
                kind,
                text,
                &options,
                Format::Txt,
                &file_name,
                &model.name,
            )
        })?;
        rendered.map(|r| r.output).map_err(|e| match e {
            tarjama_batch::document::Error::Input(m) => ApiError::field("file", m),
            other => ApiError::from(other),
        })
    })
    .await
    .map_err(|e| ApiError::engine(e).libre())?
    .map_err(ApiError::libre)?;
    let kept = state.keep_download(&name, output.into_bytes());
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    Ok(
        Json(json!({ "translatedFileUrl": format!("http://{host}/download_file/{kept}") }))
            .into_response(),
    )
}

/// `GET /download_file/NAME`.
pub async fn download_file(
    Shared(state): Shared<Arc<State>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let bytes = state.download(&name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{name}: no such file (translated files are kept for a while, then dropped)"),
        )
        .libre()
    })?;
    let original = name.split_once('-').map_or(name.as_str(), |(_, n)| n);
    let disposition = format!("attachment; filename=\"{}\"", original.replace('"', "_"));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "text/plain; charset=utf-8".to_string(),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}
