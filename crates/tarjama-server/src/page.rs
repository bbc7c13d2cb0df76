//! `GET /`: the web page, one file embedded in the binary (no CDN, no build step).

use axum::http::header;
use axum::response::IntoResponse;

const PAGE: &str = include_str!("page/index.html");

/// The page.
pub async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
}
