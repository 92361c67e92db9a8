//! `GET /status`: the snapshot the status page polls (needs a key when keys are configured).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use sampling2api_core::ops::status::{ClientStatus, StatusSnapshot};

use super::error::json_response;
use crate::bridge::Bridge;
use crate::status::unix_ms;

pub async fn status(State(bridge): State<Arc<Bridge>>) -> Response {
    let clients = bridge
        .sessions()
        .iter()
        .map(|session| {
            let state = session.state();
            let client = state.client();
            ClientStatus {
                session: session.handle.clone(),
                client_name: client.and_then(|c| c.client_name.clone()),
                client_version: client.and_then(|c| c.client_version.clone()),
                protocol_version: client.map(|c| c.protocol_version.clone()),
                sampling: client.is_some_and(|c| c.sampling.is_some()),
                tools: client
                    .and_then(|c| c.sampling)
                    .map(|support| bridge.settings.tool_mode.delivery(support).as_str().into()),
                event_stream_open: Some(session.has_stream()),
                in_flight: state.pending_count() as u64,
                queued: session.queued() as u64,
                consent_may_be_pending: state.consent_may_be_pending(),
            }
        })
        .collect();
    let in_flight = bridge.status.in_flight_requests();
    let mut snapshot = StatusSnapshot::new(
        bridge.mode,
        unix_ms(),
        bridge.settings.log_prompts,
        clients,
        &in_flight,
        &bridge.status.history(),
    );
    snapshot.refused_at_front = Some(bridge.status.refused_at_front());
    let mut response = json_response(StatusCode::OK, snapshot.to_json());
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
