//! tarjama as a service for a team: one machine that everybody's tools call.
//!
//! `tarjama serve` puts the shared engine behind HTTP with the APIs existing clients
//! speak: OpenAI's chat completions (so `tarjama translate --endpoint` and the `openai`
//! client work unchanged), LibreTranslate's (its clients and browser extensions),
//! tarjama's own translate and summarize routes, a web page, `/health` and `/metrics`.
//! Every request is one call of the same engine, so requests from different clients are
//! decoded together in its batches.
//!
//! Built from the ecosystem's pieces: tokio and axum for HTTP, tower-http for the body
//! limit, the timeout, CORS and request tracing, the `prometheus` crate for `/metrics`.
//! The model work runs on blocking threads; the async side only parses, admits, streams
//! and answers.
//!
//! - [`state`]: settings, the loaded model, keys, the bounded queue, kept downloads.
//! - [`openai`], [`libre`], [`native`]: the three API families; [`page`]: the page.
//! - [`error`]: every error as JSON a client can act on.
//! - [`metrics`]: the Prometheus registry.
#![deny(missing_docs)]

pub mod error;
mod html;
pub mod libre;
pub mod metrics;
pub mod native;
pub mod openai;
pub mod page;
pub mod state;

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Request, State as Shared};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;
pub use state::{Config, Defaults, Keys, Model, State};

/// The routes, with the layers every request goes through.
pub fn router(state: Arc<State>) -> Router {
    let config = &state.config;
    let mut app = Router::new()
        .route("/", get(page::index))
        .route("/health", get(health))
        .route("/metrics", get(metrics_route))
        .route("/v1/models", get(openai::models))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/tokenize", post(openai::tokenize))
        .route("/v1/translate", post(native::translate))
        .route("/v1/summarize", post(native::summarize))
        .route("/translate", post(libre::translate))
        .route("/detect", post(libre::detect_route))
        .route("/languages", get(libre::languages))
        .route("/frontend/settings", get(libre::settings))
        .route("/translate_file", post(libre::translate_file))
        .route("/download_file/{name}", get(libre::download_file))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(config.max_body))
        .layer(RequestBodyLimitLayer::new(config.max_body))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.timeout,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), observe));
    if let Some(origin) = &config.cors {
        let origin = if origin == "*" {
            AllowOrigin::any()
        } else {
            AllowOrigin::exact(
                HeaderValue::from_str(origin).unwrap_or(HeaderValue::from_static("null")),
            )
        };
        app = app.layer(
            CorsLayer::new()
                .allow_origin(origin)
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]),
        );
    }
    // Failed requests are answered with their error as JSON; in the log they are detail
    // (`-v`), not alarms: a 503 while the model loads is expected.
    let trace = TraceLayer::new_for_http()
        .on_failure(tower_http::trace::DefaultOnFailure::new().level(tracing::Level::INFO));
    app.layer(trace).with_state(state)
}

/// Serves on `listener` until SIGTERM or Ctrl-C, loading the model with `load` meanwhile
/// (`/health` says 503 until it is in). On the signal, stops accepting, lets the requests
/// in flight finish for up to [`Config::drain`], and returns. A model that fails to load
/// stops the server with its error.
pub async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    load: impl FnOnce() -> anyhow::Result<Model> + Send + 'static,
) -> anyhow::Result<()> {
    let (failed_tx, mut failed_rx) = tokio::sync::mpsc::channel::<String>(1);
    let loading = state.clone();
    tokio::task::spawn_blocking(move || match load() {
        Ok(model) => {
            tracing::info!("ready: {} loaded", model.name);
            let _ = loading.model.set(model);
        }
        Err(e) => {
            let message = format!("{e:#}");
            let _ = loading.load_error.set(message.clone());
            let _ = failed_tx.blocking_send(message);
        }
    });
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let app = router(state.clone());
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!("stopping: no new connections; finishing the requests in flight");
        let _ = stop_tx.send(true);
    });
    let drain = state.config.drain;
    tokio::select! {
        result = server.into_future() => result?,
        _ = async {
            let _ = stop_rx.changed().await;
            tokio::time::sleep(drain).await;
        } => {
            tracing::warn!(
                "stopping: {} requests still in flight after {:.0} s; they are cut",
                state.admitted(),
                drain.as_secs_f64()
            );
        }
        Some(message) = failed_rx.recv() => {
            anyhow::bail!("the model failed to load: {message}");
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// `GET /health`: 200 once the model is loaded, 503 before (and if it failed).
async fn health(Shared(state): Shared<Arc<State>>) -> Response {
    match state.model() {
        Ok(model) => Json(json!({ "status": "ok", "model": model.name })).into_response(),
        Err(e) => {
            let status = if state.load_error.get().is_some() {
                "failed"
            } else {
                "loading"
            };
            let mut body = e.body();
            body["status"] = json!(status);
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

/// `GET /metrics`.
async fn metrics_route(Shared(state): Shared<Arc<State>>) -> Response {
    let engine = state.model.get().and_then(Model::stats);
    let text = state.metrics.render(state.admitted(), engine);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "{} {}: no such route",
            request.method(),
            request.uri().path()
        ),
    )
}

/// The route a path counts under in the metrics (a bounded set).
fn route_label(path: &str) -> &'static str {
    const ROUTES: &[&str] = &[
        "/",
        "/health",
        "/metrics",
        "/v1/models",
        "/v1/chat/completions",
        "/tokenize",
        "/v1/translate",
        "/v1/summarize",
        "/translate",
        "/detect",
        "/languages",
        "/frontend/settings",
        "/translate_file",
    ];
    if path.starts_with("/download_file/") {
        return "/download_file";
    }
    ROUTES
        .iter()
        .find(|r| **r == path)
        .copied()
        .unwrap_or("other")
}

/// Counts every request by route and status, times it, and turns an error that a layer
/// answered in plain text (413 from the body limit, 408 from the timeout, a malformed
/// request) into JSON.
async fn observe(Shared(state): Shared<Arc<State>>, request: Request, next: Next) -> Response {
    let route = route_label(request.uri().path());
    let start = Instant::now();
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    let response = if (status.is_client_error() || status.is_server_error()) && !is_json {
        let text = axum::body::to_bytes(response.into_body(), 64 << 10)
            .await
            .map(|b| String::from_utf8_lossy(&b).trim().to_string())
            .unwrap_or_default();
        plain_error(status, text, route, state.config.max_body)
    } else {
        response
    };
    let m = &state.metrics;
    m.http_requests
        .with_label_values(&[route, status.as_str()])
        .inc();
    m.latency
        .with_label_values(&[route])
        .observe(start.elapsed().as_secs_f64());
    response
}

/// A layer's or an extractor's plain-text error as JSON, in the route's dialect.
fn plain_error(status: StatusCode, text: String, route: &str, max_body: usize) -> Response {
    let (code, message) = match status.as_u16() {
        413 => (
            "body_too_large",
            format!("the request body is larger than the limit of {max_body} bytes"),
        ),
        408 => (
            "timeout",
            "the request took longer than the server's timeout".to_string(),
        ),
        405 => ("method_not_allowed", format!("{route}: method not allowed")),
        415 => ("unsupported_media_type", format!("{route}: {text}")),
        _ => (
            "invalid_request",
            if text.is_empty() {
                status.to_string()
            } else {
                text
            },
        ),
    };
    let error = ApiError::new(status, code, message);
    let libre = matches!(route, "/translate" | "/detect" | "/translate_file");
    let mut response = if libre { error.libre() } else { error }.into_response();
    *response.status_mut() = status;
    response
}
