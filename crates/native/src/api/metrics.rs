//! `GET /metrics`: the Prometheus text exposition of the bridge's metrics.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::bridge::Bridge;

pub async fn metrics(State(bridge): State<Arc<Bridge>>) -> Response {
    let mut response = (StatusCode::OK, bridge.metrics_text()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
