//! The live status page natively: `GET /` for browsers, `GET /status` (the core's snapshot),
//! and the board the request flow writes to (requests in flight, the last ones, totals).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sampling2api_core::status::{
    self, ClientStatus, InFlightRequest, RecentRequest, RequestHistory, Stage, StatusSnapshot,
};

use crate::api::json_response;
use crate::bridge::Bridge;

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// The routes whose requests the page lists (the ones that sample).
pub fn is_sampling_route(path: &str) -> bool {
    matches!(path, "/v1/messages" | "/v1/chat/completions")
}

#[derive(Default)]
pub struct StatusBoard {
    history: Mutex<RequestHistory>,
    in_flight: Mutex<HashMap<String, InFlightRequest>>,
}

impl StatusBoard {
    fn history(&self) -> MutexGuard<'_, RequestHistory> {
        // Recording cannot leave the history half-updated; a poisoned lock is still usable.
        self.history
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn in_flight(&self) -> MutexGuard<'_, HashMap<String, InFlightRequest>> {
        self.in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A request that ended before it was accepted (bad input, no client, no key…).
    pub fn record(&self, request: RecentRequest) {
        self.history().record(request);
    }

    /// Tracks an accepted request until the returned ticket is finished or dropped.
    pub fn begin(&self, request: InFlightRequest, prompt: Option<String>) -> StatusTicket<'_> {
        let ticket = StatusTicket {
            board: self,
            started: Instant::now(),
            request_id: request.request_id.clone(),
            prompt,
            done: false,
        };
        self.in_flight().insert(request.request_id.clone(), request);
        ticket
    }

    fn set_stage(&self, request_id: &str, stage: Stage) {
        if let Some(request) = self.in_flight().get_mut(request_id) {
            request.stage = stage;
        }
    }

    fn end(&self, ticket: &StatusTicket<'_>, status: u16, tokens: (u64, u64)) {
        let Some(request) = self.in_flight().remove(&ticket.request_id) else {
            return;
        };
        self.history().record(RecentRequest {
            request_id: request.request_id,
            unix_ms: request.started_unix_ms,
            route: request.route,
            model: request.model,
            session: request.session,
            status,
            latency_ms: ticket.started.elapsed().as_millis() as u64,
            input_tokens: tokens.0,
            output_tokens: tokens.1,
            prompt: ticket.prompt.clone(),
        });
    }
}

/// An accepted request on the board; dropped unfinished, the caller went away (499, as
/// proxies log it).
pub struct StatusTicket<'a> {
    board: &'a StatusBoard,
    started: Instant,
    request_id: String,
    prompt: Option<String>,
    done: bool,
}

impl StatusTicket<'_> {
    pub fn set_stage(&self, stage: Stage) {
        self.board.set_stage(&self.request_id, stage);
    }

    pub fn finish(mut self, status: u16, input_tokens: u64, output_tokens: u64) {
        self.done = true;
        self.board.end(&self, status, (input_tokens, output_tokens));
    }
}

impl Drop for StatusTicket<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.board.end(self, 499, (0, 0));
        }
    }
}

/// `GET /status`: the snapshot the page polls (needs a key when keys are configured).
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
            }
        })
        .collect();
    let in_flight: Vec<InFlightRequest> = bridge.status.in_flight().values().cloned().collect();
    let snapshot = StatusSnapshot::new(
        bridge.mode,
        unix_ms(),
        bridge.settings.log_prompts,
        clients,
        &in_flight,
        &bridge.status.history(),
    );
    let mut response = json_response(StatusCode::OK, snapshot.to_json());
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The page, with its Content-Security-Policy and friends.
pub fn page() -> Response {
    let mut response = (StatusCode::OK, status::PAGE).into_response();
    let headers = response.headers_mut();
    for (name, value) in status::page_headers() {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    response
}

/// A sampling request answered before it was accepted, listed with its status.
pub fn record_refused(
    bridge: &Bridge,
    request_id: String,
    path: &str,
    status: u16,
    started: Instant,
) {
    let latency = started.elapsed();
    bridge.status.record(RecentRequest {
        request_id,
        unix_ms: unix_ms().saturating_sub(latency.as_millis() as u64),
        route: path.to_string(),
        status,
        latency_ms: latency.as_millis() as u64,
        ..RecentRequest::default()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(id: &str) -> InFlightRequest {
        InFlightRequest {
            request_id: id.into(),
            route: "/v1/messages".into(),
            model: Some("m".into()),
            session: Some("mcps_x".into()),
            started_unix_ms: 1,
            stage: Stage::Queued,
        }
    }

    #[test]
    fn a_ticket_is_in_flight_until_finished_then_listed_with_its_tokens() {
        let board = StatusBoard::default();
        let ticket = board.begin(request("req_a"), Some("hi".into()));
        ticket.set_stage(Stage::WaitingForClient);
        assert_eq!(
            board.in_flight().get("req_a").map(|r| r.stage),
            Some(Stage::WaitingForClient)
        );
        ticket.finish(200, 7, 9);
        assert!(board.in_flight().is_empty());
        let history = board.history();
        let listed = history.recent().next().unwrap();
        assert_eq!(
            (listed.status, listed.input_tokens, listed.output_tokens),
            (200, 7, 9)
        );
        assert_eq!(listed.prompt.as_deref(), Some("hi"));
    }

    #[test]
    fn a_ticket_dropped_unfinished_is_listed_as_the_caller_going_away() {
        let board = StatusBoard::default();
        drop(board.begin(request("req_b"), None));
        assert!(board.in_flight().is_empty());
        assert_eq!(board.history().recent().next().unwrap().status, 499);
    }
}
