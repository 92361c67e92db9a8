//! `GET /` (what this is; a browser gets the status page) and `GET /api/hello` (Claude Code's
//! preconnect probe). Neither needs a key: the page holds no data, `/status` does.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sampling2api_core::ops::status;
use serde_json::json;

use super::error::json_response;

/// Claude Code probes `HEAD /` at start-up; any answer will do, so say what this is.
pub async fn root(method: Method, headers: HeaderMap) -> Response {
    if method == Method::HEAD {
        return StatusCode::OK.into_response();
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok());
    if status::wants_html(accept) {
        return page();
    }
    json_response(
        StatusCode::OK,
        json!({"name": "sampling2api", "version": env!("CARGO_PKG_VERSION"), "api": "/v1/messages"})
            .to_string(),
    )
}

/// `GET`/`HEAD /api/hello`: 200 (axum answers `HEAD` without the body).
pub async fn hello() -> Response {
    json_response(StatusCode::OK, r#"{"status":"ok"}"#.to_string())
}

/// The page, with its Content-Security-Policy and friends.
fn page() -> Response {
    let mut response = (StatusCode::OK, status::PAGE).into_response();
    let headers = response.headers_mut();
    for (name, value) in status::page_headers() {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    response
}
