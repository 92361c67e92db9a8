//! One MCP session's request lifecycle as a sans-I/O state machine, in the style of
//! quinn-proto: every input carries the time (`now`, on the runtime's monotonic clock in
//! milliseconds), outputs are polled, and nothing here sleeps, spawns or does I/O. The native
//! runtime and the worker are drivers: they feed inputs, write out transmits, hand events to
//! the API callers, and call [`SessionLifecycle::handle_timeout`] at
//! [`SessionLifecycle::poll_timeout`].
//!
//! A request's way through it: `Queued` (no slot yet) → `Encoding` (holds one of
//! `max_in_flight` slots and a JSON-RPC id; the driver encodes it, outside any lock) →
//! `WaitingForStream` (encoded; no event stream is open, waits up to `stream_wait`) → `Sent`
//! (on a stream generation; waits for the answer until its deadline) → done. Every request ends
//! with exactly one [`Event::Done`], and a freed slot goes to the first queued request at once.
//!
//! The API, as drivers use it:
//! - construct: [`SessionLifecycle::new`] (a session whose `initialize` may already have been
//!   handled), [`SessionLifecycle::resume`] (rebuilt from stored facts, the worker).
//! - inputs: [`submit`](SessionLifecycle::submit), [`encoded`](SessionLifecycle::encoded),
//!   [`encode_failed`](SessionLifecycle::encode_failed),
//!   [`undeliverable`](SessionLifecycle::undeliverable),
//!   [`client_message`](SessionLifecycle::client_message),
//!   [`stream_opened`](SessionLifecycle::stream_opened),
//!   [`stream_closed`](SessionLifecycle::stream_closed),
//!   [`caller_gone`](SessionLifecycle::caller_gone),
//!   [`handle_timeout`](SessionLifecycle::handle_timeout), [`close`](SessionLifecycle::close).
//! - outputs: [`poll_transmit`](SessionLifecycle::poll_transmit) ([`Transmit`]),
//!   [`poll_event`](SessionLifecycle::poll_event) ([`Event`]),
//!   [`poll_timeout`](SessionLifecycle::poll_timeout).
//! - queries: `client`, `support`, `can_sample`, `unavailable_reason`, `has_stream`,
//!   `in_flight`, `queued`, `pending_count` (sent, awaiting the answer), `is_closed`,
//!   `next_request_id`, `next_event_id`, `session` (the protocol state).
//!
//! A stdio pipe is one stream that is open from the start: its driver calls `stream_opened`
//! once, and `close` when the pipe ends.
//!
//! Resumability (Streamable HTTP, 2025-11-25): every message the machine transmits carries an
//! [`EventId`], one session-wide count that keeps rising across stream generations, which the
//! HTTP drivers write as the SSE `id:`. A new stream opens with a priming event (an id, no
//! message) for clients of 2025-11-25 or later, so that even a client that saw nothing else can
//! reconnect with `Last-Event-ID`. Given that id, `stream_opened` sends again, on the new stream,
//! every request still unanswered whose message came after it: the client provably never saw
//! those. Requests at or below it keep waiting for their answers (the client has them).
//! Without `Last-Event-ID` nothing is sent again: a client that does not resume may well hold
//! the request already (an editor showing its approval prompt), and a copy would ask twice.
//!
//! Files: this one holds the machine; `types` its clock, handles, limits and outputs; `resend`
//! event ids and resending on a resumed stream; `refusals` the texts of every refusal and
//! failure (and `LargeEvents`); `session_choice` which session an API request goes to;
//! `tests` the simulated-clock tests.

pub mod refusals;
mod resend;
pub mod session_choice;
#[cfg(test)]
mod tests;
mod types;

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

pub use types::{
    Event, KeyHasher, KeyMap, LifecycleLimits, Millis, RESEND_MAX_EVENT_BYTES, RequestKey,
    ResumedFacts, SamplingOutcome, StreamGeneration, Transmit,
};

use crate::api_error::ApiError;
use crate::lifecycle::refusals::{
    CANCELLED_CALLER_LEFT, CANCELLED_DEADLINE, LargeEvents, caller_left, consent_may_be_waiting,
    event_size, no_event_stream, queue_timeout, session_ended, too_busy,
};
use crate::lifecycle::types::millis_of;
use crate::mcp::failures::prompts_for_consent;
use crate::mcp::sampling::ClientSupport;
use crate::mcp::session::{ClientFacts, McpSession, ServerInfo};
use crate::mcp::streamable_http::EventId;

/// The first protocol version whose clients take an event without data (the priming event):
/// older ones may try to parse its empty data as JSON.
const PRIMING_SINCE: &str = "2025-11-25";

#[derive(Debug)]
enum Stage {
    Queued,
    Encoding {
        id: u64,
    },
    WaitingForStream {
        id: u64,
        json: String,
    },
    /// On the client's stream as event `event` (the latest copy, if it was sent again); `text`
    /// is kept to send it again on a resumed stream, when it fits [`RESEND_MAX_EVENT_BYTES`]
    /// and the session's [`LifecycleLimits::max_resend_bytes`].
    Sent {
        id: u64,
        at: Millis,
        event: EventId,
        /// The message's length, for [`LargeEvents`].
        bytes: usize,
        text: Option<Arc<String>>,
    },
}

#[derive(Debug)]
struct Request {
    stage: Stage,
    deadline: Millis,
    /// The whole deadline's length, named in timeout errors.
    timeout_ms: u64,
    /// When `handle_timeout` must look at this request next (its entry in `timers`).
    timer: Millis,
}

/// One session's protocol state and request lifecycle.
pub struct SessionLifecycle {
    session: McpSession<RequestKey>,
    limits: LifecycleLimits,
    requests: KeyMap<Request>,
    /// Waiting for a slot, in arrival order (keys increase with arrival).
    queue: BTreeSet<RequestKey>,
    /// Encoded, waiting for an event stream, in arrival order.
    waiting: BTreeSet<RequestKey>,
    /// Every request's next instant of interest.
    timers: BTreeSet<(Millis, RequestKey)>,
    in_flight: usize,
    sent: usize,
    next_key: u64,
    stream: Option<StreamGeneration>,
    next_generation: u64,
    /// The next [`EventId`] to hand out.
    next_event: u64,
    /// Bytes of sent messages kept to be sent again (at most `limits.max_resend_bytes`).
    kept_bytes: usize,
    /// The events the client's stream closed under (see [`LargeEvents`]).
    large_events: LargeEvents,
    last_activity: Millis,
    next_ping: Option<Millis>,
    expired: bool,
    closed: bool,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

impl SessionLifecycle {
    /// A session with no stream open yet (a pipe's driver opens its one stream at once).
    pub fn new(session: McpSession<RequestKey>, limits: LifecycleLimits, now: Millis) -> Self {
        let limits = LifecycleLimits {
            max_in_flight: limits.max_in_flight.max(1),
            ..limits
        };
        SessionLifecycle {
            session,
            limits,
            requests: KeyMap::default(),
            queue: BTreeSet::new(),
            waiting: BTreeSet::new(),
            timers: BTreeSet::new(),
            in_flight: 0,
            sent: 0,
            next_key: 1,
            stream: None,
            next_generation: 1,
            next_event: 1,
            kept_bytes: 0,
            large_events: LargeEvents::default(),
            last_activity: now,
            next_ping: None,
            expired: false,
            closed: false,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// A session rebuilt from stored facts after its process was evicted: no requests, no
    /// stream; see [`ResumedFacts`].
    pub fn resume(
        server: ServerInfo,
        facts: ResumedFacts,
        limits: LifecycleLimits,
        now: Millis,
    ) -> Self {
        let mut machine = Self::new(
            McpSession::resume(
                server,
                facts.client,
                facts.ready,
                facts.next_request_id,
                facts.answered,
            ),
            limits,
            now,
        );
        machine.next_event = facts.next_event_id.max(1);
        machine.large_events = facts.large_events;
        machine
    }

    // ---- inputs ----

    /// An API request that must end by `deadline`. Refused at once when the session cannot
    /// take it (ended, not initialised, no `sampling`) or with 429 when slots and queue are
    /// full; otherwise it holds a slot ([`Event::Encode`] is queued) or waits in the queue.
    pub fn submit(&mut self, now: Millis, deadline: Millis) -> Result<RequestKey, ApiError> {
        self.support()?;
        let slot_free = self.in_flight < self.limits.max_in_flight && self.queue.is_empty();
        if !slot_free && self.queue.len() >= self.limits.max_queued {
            return Err(too_busy());
        }
        let key = RequestKey(self.next_key);
        self.next_key += 1;
        self.last_activity = now;
        let stage = if slot_free {
            let id = self.session.reserve_sampling_id()?;
            self.in_flight += 1;
            self.events.push_back(Event::Encode { key, id });
            Stage::Encoding { id }
        } else {
            self.queue.insert(key);
            Stage::Queued
        };
        self.requests.insert(
            key,
            Request {
                stage,
                deadline,
                timeout_ms: deadline.since(now),
                timer: deadline,
            },
        );
        self.timers.insert((deadline, key));
        Ok(key)
    }

    /// The encoded `sampling/createMessage` for `key` (with the id from [`Event::Encode`]): it
    /// goes out on the open stream, or waits for one. Dropped if the request is gone.
    pub fn encoded(&mut self, now: Millis, key: RequestKey, json: String) {
        let Some(request) = self.requests.get_mut(&key) else {
            return;
        };
        let Stage::Encoding { id } = request.stage else {
            return;
        };
        if self.stream.is_some() {
            self.send(now, key, id, json);
        } else {
            let until = request.deadline.min(now.after(self.limits.stream_wait));
            request.stage = Stage::WaitingForStream { id, json };
            self.waiting.insert(key);
            self.set_timer(key, until);
        }
    }

    /// Encoding `key` failed: it ends with `error`.
    pub fn encode_failed(&mut self, now: Millis, key: RequestKey, error: ApiError) {
        if self
            .requests
            .get(&key)
            .is_some_and(|request| matches!(request.stage, Stage::Encoding { .. }))
        {
            self.finish(now, key, Err(error), None);
        }
    }

    /// The driver could not hand `key`'s message on (a queue bound, a closed pipe): it ends
    /// with `error`, without a cancellation notice (the client never saw it).
    pub fn undeliverable(&mut self, now: Millis, key: RequestKey, error: ApiError) {
        let Some(request) = self.requests.get(&key) else {
            return;
        };
        if let Stage::Sent { id, .. } = request.stage {
            self.session.cancel(id, "undelivered");
        }
        self.finish(now, key, Err(error), None);
    }

    /// One message (or batch) from the client. Answers end their requests; the returned text is
    /// the reply to the client's own requests, if any.
    pub fn client_message(&mut self, now: Millis, raw: &[u8]) -> Option<String> {
        self.last_activity = now;
        let mut handled = self.session.handle_incoming(raw);
        let reply = handled.reply_body();
        for (key, outcome) in std::mem::take(&mut handled.answers) {
            let sampling = match self.requests.get(&key).map(|request| &request.stage) {
                Some(Stage::Sent { at, .. }) => Some(Duration::from_millis(now.since(*at))),
                // Only sent requests are registered for answers.
                _ => continue,
            };
            self.finish(
                now,
                key,
                outcome.map_err(|failure| failure.to_api_error(self.session.client())),
                sampling,
            );
        }
        reply
    }

    /// The client opened an event stream (replacing any open one). It opens with a priming
    /// event (clients of [`PRIMING_SINCE`] or later). `resume_after`: the client's
    /// `Last-Event-ID`; every request still waiting for its answer whose message came after
    /// that event is sent again on this stream (same JSON-RPC id, a new event id), as the
    /// client never saw it. An id this session has not handed out yet is ignored (treated as
    /// absent): it names no event of ours. Then requests waiting for a stream go out on it.
    pub fn stream_opened(
        &mut self,
        now: Millis,
        resume_after: Option<EventId>,
    ) -> StreamGeneration {
        self.open_stream(now, resume_after, true)
    }

    /// A stream that was open before the driver's process slept (a hibernated Durable Object's
    /// socket) is the current one again: no priming event (the client holds ids already) and
    /// nothing to send again (no request outlived the sleep). Requests waiting for a stream go
    /// out on it.
    pub fn stream_reattached(&mut self, now: Millis) -> StreamGeneration {
        self.open_stream(now, None, false)
    }

    fn open_stream(
        &mut self,
        now: Millis,
        resume_after: Option<EventId>,
        prime: bool,
    ) -> StreamGeneration {
        let generation = StreamGeneration(self.next_generation);
        self.next_generation += 1;
        self.last_activity = now;
        if self.closed {
            return generation;
        }
        self.stream = Some(generation);
        if prime
            && self
                .session
                .client()
                .is_some_and(|client| client.protocol_version.as_str() >= PRIMING_SINCE)
        {
            let event = self.take_event_id();
            self.transmits.push_back(Transmit::Priming { event });
        }
        if let Some(last_seen) = resume_after.filter(|id| id.0 < self.next_event) {
            self.resend_after(now, last_seen);
        }
        for key in std::mem::take(&mut self.waiting) {
            let Some(request) = self.requests.get_mut(&key) else {
                continue;
            };
            if let Stage::WaitingForStream { id, json } =
                std::mem::replace(&mut request.stage, Stage::Encoding { id: 0 })
            {
                let deadline = request.deadline;
                self.set_timer(key, deadline);
                self.send(now, key, id, json);
            }
        }
        generation
    }

    /// Stream `generation` ended. If it was the current one, every sent request fails (its
    /// answer can no longer be trusted to come); requests not sent yet keep waiting for a new
    /// stream. An older generation changes nothing.
    pub fn stream_closed(&mut self, now: Millis, generation: StreamGeneration) {
        if self.stream != Some(generation) {
            return;
        }
        self.stream = None;
        self.last_activity = now;
        self.next_ping = None;
        let mut sent: Vec<(RequestKey, u64, Millis, usize)> = self
            .requests
            .iter()
            .filter_map(|(key, request)| match request.stage {
                Stage::Sent { id, at, bytes, .. } => Some((*key, id, at, bytes)),
                _ => None,
            })
            .collect();
        sent.sort_unstable();
        for (key, id, at, bytes) in sent {
            self.session.cancel(id, "stream closed");
            let error = self.closed_under(now, at, bytes);
            self.finish(now, key, Err(error), None);
        }
    }

    /// Nobody waits for `key` any more. A sent request is cancelled at the client
    /// (`notifications/cancelled`); the request ends with [`caller_left`] either way.
    pub fn caller_gone(&mut self, now: Millis, key: RequestKey) {
        let Some(request) = self.requests.get(&key) else {
            return;
        };
        if let Stage::Sent { id, .. } = request.stage {
            self.cancel_at_client(key, id, CANCELLED_CALLER_LEFT);
        }
        self.finish(now, key, Err(caller_left()), None);
    }

    /// Everything due by `now`: queue timeouts, stream-wait expiry, deadlines (a sent request
    /// is cancelled at the client), liveness pings, idle expiry.
    pub fn handle_timeout(&mut self, now: Millis) {
        let consent_may_be_pending = self.consent_may_be_pending();
        while let Some(&(at, key)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            let Some(request) = self.requests.get_mut(&key) else {
                continue;
            };
            // The entry is consumed; `finish` must not look for it again.
            request.timer = Millis(u64::MAX);
            let timeout_ms = request.timeout_ms;
            let past_deadline = request.deadline <= now;
            // Sent, or queued behind sent ones: waiting on the client.
            let on_client = matches!(request.stage, Stage::Queued | Stage::Sent { .. });
            let consent = on_client && consent_may_be_pending;
            let error = match request.stage {
                Stage::Queued => queue_timeout(timeout_ms),
                Stage::WaitingForStream { .. } if !past_deadline => {
                    no_event_stream(&self.limits.mcp_path, millis_of(self.limits.stream_wait))
                }
                Stage::Sent { id, .. } => {
                    self.cancel_at_client(key, id, CANCELLED_DEADLINE);
                    ApiError::deadline_passed(timeout_ms)
                }
                Stage::Encoding { .. } | Stage::WaitingForStream { .. } => {
                    ApiError::deadline_passed(timeout_ms)
                }
            };
            // Queued or sent behind a prompt nobody answered: say where to look.
            let error = if consent {
                consent_may_be_waiting(error)
            } else {
                error
            };
            self.finish(now, key, Err(error), None);
        }
        if let Some(at) = self.next_ping
            && at <= now
        {
            match self.limits.liveness_interval {
                Some(interval) if self.sent > 0 && self.stream.is_some() => {
                    self.transmits.push_back(Transmit::Ping);
                    self.next_ping = Some(now.after(interval));
                }
                _ => self.next_ping = None,
            }
        }
        if let Some(at) = self.idle_expiry()
            && at <= now
        {
            self.expired = true;
            self.events.push_back(Event::Expired);
        }
    }

    /// Ends the session: every request ends with an unavailable error saying `why`, and
    /// further submits are refused.
    pub fn close(&mut self, now: Millis, why: &str) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.stream = None;
        self.next_ping = None;
        self.session.close();
        self.queue.clear();
        self.waiting.clear();
        self.timers.clear();
        let mut keys: Vec<RequestKey> = self.requests.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            self.requests.remove(&key);
            self.events.push_back(Event::Done {
                key,
                outcome: Err(ApiError::unavailable(why.to_string())),
                sampling: None,
            });
        }
        self.in_flight = 0;
        self.sent = 0;
        self.kept_bytes = 0;
        self.last_activity = now;
    }

    // ---- outputs ----

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest instant at which [`SessionLifecycle::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Millis> {
        let request = self.timers.first().map(|(at, _)| *at);
        [request, self.next_ping, self.idle_expiry()]
            .into_iter()
            .flatten()
            .min()
    }

    // ---- queries ----

    pub fn session(&self) -> &McpSession<RequestKey> {
        &self.session
    }

    pub fn client(&self) -> Option<&ClientFacts> {
        self.session.client()
    }

    /// What the client can take, or why no request may be submitted now.
    pub fn support(&self) -> Result<ClientSupport, ApiError> {
        if self.closed {
            return Err(session_ended());
        }
        self.session.support()
    }

    pub fn can_sample(&self) -> bool {
        !self.closed && self.session.can_sample()
    }

    /// The client asks a person before it samples (VS Code) and has not answered any request
    /// of this session yet: a consent prompt may be holding them all.
    pub fn consent_may_be_pending(&self) -> bool {
        !self.session.answered() && prompts_for_consent(self.session.client())
    }

    pub fn unavailable_reason(&self) -> Option<ApiError> {
        self.support().err()
    }

    pub fn has_stream(&self) -> bool {
        self.stream.is_some()
    }

    /// Requests holding a slot.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Requests sent to the client and waiting for its answer.
    pub fn pending_count(&self) -> usize {
        self.sent
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    pub fn next_request_id(&self) -> u64 {
        self.session.next_request_id()
    }

    /// The events the client's stream closed under, for a driver that stores the session's
    /// facts (see [`SessionLifecycle::resume`]).
    pub fn large_events(&self) -> LargeEvents {
        self.large_events
    }

    /// The event id the next message will get: every id handed out so far is below it.
    pub fn next_event_id(&self) -> u64 {
        self.next_event
    }

    // ---- internals ----

    /// Puts `key`'s message on the current stream and registers it for its answer. A message
    /// at least as large as one the client's stream closed under is refused instead (413).
    fn send(&mut self, now: Millis, key: RequestKey, id: u64, json: String) {
        if let Err(error) = self.large_events.check(event_size(json.len())) {
            self.finish(now, key, Err(error), None);
            return;
        }
        if let Err(error) = self.session.expect_answer(id, key) {
            self.finish(now, key, Err(error), None);
            return;
        }
        let text = Arc::new(json);
        let event = self.take_event_id();
        let keep = event_size(text.len()) <= RESEND_MAX_EVENT_BYTES
            && self.kept_bytes + text.len() <= self.limits.max_resend_bytes;
        if keep {
            self.kept_bytes += text.len();
        }
        if let Some(request) = self.requests.get_mut(&key) {
            request.stage = Stage::Sent {
                id,
                at: now,
                event,
                bytes: text.len(),
                text: keep.then(|| text.clone()),
            };
        }
        self.sent += 1;
        self.transmits.push_back(Transmit::Message {
            text,
            request: Some(key),
            cancels: None,
            event,
        });
        self.events.push_back(Event::Sent { key });
        if self.next_ping.is_none()
            && let Some(interval) = self.limits.liveness_interval
        {
            self.next_ping = Some(now.after(interval));
        }
    }

    /// Tells the client to stop working on `key` (JSON-RPC `id`); the notice names `key` so
    /// that a driver still holding the request's message unwritten drops both.
    fn cancel_at_client(&mut self, key: RequestKey, id: u64, reason: &str) {
        if let Some((_, notice)) = self.session.cancel(id, reason) {
            let event = self.take_event_id();
            self.transmits.push_back(Transmit::Message {
                text: Arc::new(notice),
                request: None,
                cancels: Some(key),
                event,
            });
        }
    }

    fn set_timer(&mut self, key: RequestKey, at: Millis) {
        if let Some(request) = self.requests.get_mut(&key) {
            self.timers.remove(&(request.timer, key));
            request.timer = at;
            self.timers.insert((at, key));
        }
    }

    /// Ends `key` with `outcome`; a slot it held goes to the first queued request.
    fn finish(
        &mut self,
        now: Millis,
        key: RequestKey,
        outcome: SamplingOutcome,
        sampling: Option<Duration>,
    ) {
        let Some(request) = self.requests.remove(&key) else {
            return;
        };
        self.timers.remove(&(request.timer, key));
        self.last_activity = now;
        match request.stage {
            Stage::Queued => {
                self.queue.remove(&key);
            }
            Stage::Encoding { .. } => self.in_flight -= 1,
            Stage::WaitingForStream { .. } => {
                self.waiting.remove(&key);
                self.in_flight -= 1;
            }
            Stage::Sent { id, text, .. } => {
                if let Some(text) = text {
                    self.kept_bytes -= text.len();
                }
                // Already removed by an answer, a cancel, or a stream's end; harmless if not.
                self.session.cancel(id, "done");
                self.sent -= 1;
                self.in_flight -= 1;
            }
        }
        self.events.push_back(Event::Done {
            key,
            outcome,
            sampling,
        });
        self.grant_slots();
    }

    /// Free slots go to queued requests, oldest first.
    fn grant_slots(&mut self) {
        while self.in_flight < self.limits.max_in_flight {
            let Some(key) = self.queue.pop_first() else {
                return;
            };
            let Some(request) = self.requests.get_mut(&key) else {
                continue;
            };
            match self.session.reserve_sampling_id() {
                Ok(id) => {
                    request.stage = Stage::Encoding { id };
                    self.in_flight += 1;
                    self.events.push_back(Event::Encode { key, id });
                }
                Err(error) => {
                    // The session stopped being able to sample: the waiting request fails.
                    let timer = request.timer;
                    self.requests.remove(&key);
                    self.timers.remove(&(timer, key));
                    self.events.push_back(Event::Done {
                        key,
                        outcome: Err(error),
                        sampling: None,
                    });
                }
            }
        }
    }

    /// When the session expires if nothing happens: only without an open stream and requests.
    fn idle_expiry(&self) -> Option<Millis> {
        (!self.closed && !self.expired && self.stream.is_none() && self.requests.is_empty())
            .then(|| self.last_activity.after(self.limits.session_idle))
    }
}
