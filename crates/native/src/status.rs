//! The status board the request flow writes to: requests in flight and the last ones, which
//! `GET /status` (`api::status`) shows.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use sampling2api_core::ops::status::{InFlightRequest, RecentRequest, RequestHistory, Stage};

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

#[derive(Default)]
pub struct StatusBoard {
    history: Mutex<RequestHistory>,
    in_flight: Mutex<HashMap<String, InFlightRequest>>,
    /// Sampling requests the front refused (see `record_refused_at_front`).
    refused_at_front: AtomicU64,
}

impl StatusBoard {
    /// The last requests and the totals.
    pub fn history(&self) -> MutexGuard<'_, RequestHistory> {
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

    /// A sampling request the front refused before any route ran (a foreign `Host` or
    /// `Origin`, a missing or wrong key, a body not declared JSON): counted, not listed, since
    /// anyone who can reach the port can send those, and listing them would push the owner's
    /// requests out of the recent list.
    pub fn record_refused_at_front(&self) {
        self.refused_at_front.fetch_add(1, Ordering::Relaxed);
    }

    /// How many sampling requests the front refused so far.
    pub fn refused_at_front(&self) -> u64 {
        self.refused_at_front.load(Ordering::Relaxed)
    }

    /// A sampling request that passed the front but was answered before it was accepted (bad
    /// input, no client, a full queue…), listed with its status.
    pub fn record_refused(&self, request_id: String, route: &str, status: u16, started: Instant) {
        let latency = started.elapsed();
        self.history().record(RecentRequest {
            request_id,
            unix_ms: unix_ms().saturating_sub(latency.as_millis() as u64),
            route: route.to_string(),
            status,
            latency_ms: latency.as_millis() as u64,
            ..RecentRequest::default()
        });
    }

    /// The requests in flight, as the status page lists them.
    pub fn in_flight_requests(&self) -> Vec<InFlightRequest> {
        self.in_flight().values().cloned().collect()
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
        self.in_flight()
            .insert(request.request_id.clone(), request.bounded());
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
