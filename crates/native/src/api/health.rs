//! `GET /health`: liveness and the bridge's sessions, no key needed.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use sampling2api_core::ops::health::{Health, health_body};

use super::error::json_response;
use crate::bridge::Bridge;

pub async fn health(State(bridge): State<Arc<Bridge>>) -> Response {
    let sessions = bridge.sessions();
    let health = Health::with_sessions(
        bridge.mode,
        sessions.len() as u64,
        sessions.iter().filter(|s| s.can_sample()).count() as u64,
        bridge.in_flight(),
        sessions
            .iter()
            .map(|s| s.state().pending_count() as u64)
            .sum(),
    );
    json_response(StatusCode::OK, health_body(&health))
}
