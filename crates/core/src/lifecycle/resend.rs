//! Resuming a client's event stream (`Last-Event-ID`, Streamable HTTP 2025-11-25): event ids,
//! and sending again what the client provably missed. See the module doc of
//! [`crate::lifecycle`] for the rules.

use super::{Request, SessionLifecycle, Stage};
use crate::api_error::ApiError;
use crate::lifecycle::refusals::{LARGE_EVENT_CLOSE_WINDOW, event_size, stream_closed};
use crate::lifecycle::types::{Millis, RequestKey, Transmit, millis_of};
use crate::mcp::streamable_http::EventId;

impl SessionLifecycle {
    pub(super) fn take_event_id(&mut self) -> EventId {
        let event = EventId(self.next_event);
        self.next_event = self.next_event.saturating_add(1);
        event
    }

    /// Sends again, in their first order, the requests still waiting for their answers whose
    /// latest copy went out after event `last_seen`. One whose message was not kept (too
    /// large) fails now: the client has shown it never received it, so no answer will come.
    pub(super) fn resend_after(&mut self, now: Millis, last_seen: EventId) {
        let mut unseen: Vec<(EventId, RequestKey)> = self
            .requests
            .iter()
            .filter_map(|(key, request)| match request.stage {
                Stage::Sent { event, .. } if event > last_seen => Some((event, *key)),
                _ => None,
            })
            .collect();
        unseen.sort_unstable();
        for (_, key) in unseen {
            let (kept, at, bytes) = match self.requests.get(&key).map(|request| &request.stage) {
                Some(Stage::Sent {
                    text, at, bytes, ..
                }) => (text.clone(), *at, *bytes),
                _ => continue,
            };
            let Some(text) = kept else {
                let error = self.closed_under(now, at, bytes);
                self.finish(now, key, Err(error), None);
                continue;
            };
            let event = self.take_event_id();
            if let Some(Request {
                stage: Stage::Sent { event: latest, .. },
                ..
            }) = self.requests.get_mut(&key)
            {
                *latest = event;
            }
            self.transmits.push_back(Transmit::Message {
                text,
                request: Some(key),
                cancels: None,
                event,
            });
        }
    }

    /// The error of a sent request (first sent at `at`, `bytes` long) whose stream closed
    /// before the client answered: [`stream_closed`], explained and remembered by
    /// [`LargeEvents`] when the close came soon after a large event.
    pub(super) fn closed_under(&mut self, now: Millis, at: Millis, bytes: usize) -> ApiError {
        if now.since(at) > millis_of(LARGE_EVENT_CLOSE_WINDOW) {
            return stream_closed();
        }
        self.large_events
            .outcome(stream_closed(), event_size(bytes))
    }
}
