//! `GET /sessions`: the connected MCP clients, so a caller can pick one with
//! `x-mcp-session-id` (by public handle; the secret `Mcp-Session-Id` is never listed).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use sampling2api_core::ops::health::{SessionInfo, sessions_body};

use super::error::json_response;
use crate::bridge::Bridge;

pub async fn list_sessions(State(bridge): State<Arc<Bridge>>) -> Response {
    let sessions = bridge
        .sessions()
        .iter()
        .map(|session| {
            let state = session.state();
            let client = state.client();
            let support = client.and_then(|c| c.sampling);
            SessionInfo {
                id: session.handle.clone(),
                client_name: client.and_then(|c| c.client_name.clone()),
                client_version: client.and_then(|c| c.client_version.clone()),
                protocol_version: client.map(|c| c.protocol_version.clone()),
                sampling: support.is_some(),
                sampling_tools: support.is_some_and(|s| s.tools),
                tools: support.map(|s| bridge.settings.tool_mode.delivery(s).as_str()),
                ready: state.can_sample(),
                event_stream_open: session.has_stream(),
                pending: Some(state.pending_count() as u64),
            }
        })
        .collect();
    json_response(StatusCode::OK, sessions_body(sessions))
}
