//! A connected MCP client: the native driver of the core's [`SessionLifecycle`]. It feeds the
//! machine its inputs (API requests, the client's messages, its stream opening and closing, a
//! caller leaving, the timer), moves transmits to the client's pipe or current event stream
//! (bounded in bytes), hands events to the waiting API requests, and runs one timer task per
//! session at the machine's `poll_timeout`.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use sampling2api_core::ApiError;
use sampling2api_core::lifecycle::refusals::client_not_reading;
use sampling2api_core::lifecycle::{
    Event, KeyMap, LifecycleLimits, Millis, RequestKey, SessionLifecycle, StreamGeneration,
    Transmit,
};
use sampling2api_core::mcp::session::{McpSession, ServerInfo};
use sampling2api_core::mcp::streamable_http::EventId;
use tokio::sync::{Notify, oneshot};

use crate::outbox::{OutboxReceiver, OutboxSender, outbox};

/// What an API request waits on: the client's result, or why there is none.
use sampling2api_core::lifecycle::SamplingOutcome;

/// A message on its way to the client. Its bytes count against the session's queue bound
/// until the writer is done with it (drops it), or it is withdrawn from the outbox, or the
/// outbox holding it is dropped.
pub struct Outgoing {
    text: Arc<String>,
    /// Its SSE event id on an event stream (a pipe has none to write; its own replies have
    /// none). Empty text with an id: the stream's priming event.
    pub event: Option<EventId>,
    _counted: CountedBytes,
}

impl std::ops::Deref for Outgoing {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

struct CountedBytes {
    bytes: usize,
    total: Arc<AtomicUsize>,
}

impl Drop for CountedBytes {
    fn drop(&mut self) {
        self.total.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// The lifecycle's clock: milliseconds since the process's first look at it.
pub fn now() -> Millis {
    Millis(u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX))
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn instant_of(at: Millis) -> tokio::time::Instant {
    tokio::time::Instant::from_std(epoch() + Duration::from_millis(at.0))
}

/// What one session may hold, and how long things may take there.
#[derive(Debug, Clone)]
pub struct SessionLimits {
    pub lifecycle: LifecycleLimits,
    /// Bytes of messages waiting for a client that does not read them.
    pub max_queued_bytes: usize,
}

/// An API request waiting at its session.
struct Waiter {
    /// Told the JSON-RPC id once the request holds a slot (`None`: it had one at once).
    start: Option<oneshot::Sender<u64>>,
    done: oneshot::Sender<SamplingOutcome>,
}

struct Inner {
    machine: SessionLifecycle,
    waiters: KeyMap<Waiter>,
    /// The client's current stream: the pipe, or the open `GET` stream.
    stream: Option<(StreamGeneration, OutboxSender<Outgoing>)>,
    /// The machine said `Expired`; the timer task ends the session.
    expired: bool,
}

pub struct Session {
    /// The secret `Mcp-Session-Id`: the client's credential for `/mcp`. Never listed or logged.
    pub id: String,
    /// The public name `/sessions` lists and logs show (see `ids::session_handle`).
    pub handle: String,
    inner: Mutex<Inner>,
    /// A pipe: one stream, open from the start; its loss is a closed connection.
    pipe: bool,
    closed: AtomicBool,
    /// The instant (lifecycle ms) the timer task sleeps until; `u64::MAX`: none. Lowered only
    /// under `inner`'s lock, and the task is woken only when it moves earlier.
    armed: AtomicU64,
    rearm: Notify,
    /// The machine's stream state and queue length, readable without the lock (routing, and
    /// the status pages, which read them while holding `state()`).
    stream_open: AtomicBool,
    queued: AtomicUsize,
    /// Bytes of messages sent to the client and not yet written out (see `Outgoing`).
    queued_bytes: Arc<AtomicUsize>,
    max_queued_bytes: usize,
}

/// Read access to the session's lifecycle (never held across an `.await`).
pub struct StateGuard<'a>(MutexGuard<'a, Inner>);

impl std::ops::Deref for StateGuard<'_> {
    type Target = SessionLifecycle;
    fn deref(&self) -> &SessionLifecycle {
        &self.0.machine
    }
}

/// A request the session took (it holds a slot or waits in the queue). Dropped before its
/// outcome was read, it tells the session that the caller went away: a request already at the
/// client is cancelled there (`notifications/cancelled`).
pub struct Submitted {
    session: Arc<Session>,
    key: RequestKey,
    start: Start,
    done: Option<oneshot::Receiver<SamplingOutcome>>,
}

enum Start {
    Now(u64),
    Later(oneshot::Receiver<u64>),
    Taken,
}

impl Submitted {
    /// Waits for a slot; the request's JSON-RPC id. `Err`: the request ended meanwhile (queue
    /// timeout, session closed); [`Submitted::outcome`] says why.
    pub async fn slot(&mut self) -> Result<u64, ()> {
        match std::mem::replace(&mut self.start, Start::Taken) {
            Start::Now(id) => Ok(id),
            Start::Later(receiver) => receiver.await.map_err(|_| ()),
            Start::Taken => Err(()),
        }
    }

    /// Hands the encoded request to the session (or why encoding failed).
    pub fn encoded(&self, json: Result<String, ApiError>) {
        self.session.feed(|machine, now| match json {
            Ok(json) => machine.encoded(now, self.key, json),
            Err(err) => machine.encode_failed(now, self.key, err),
        });
    }

    /// How the request ended.
    pub async fn outcome(&mut self) -> SamplingOutcome {
        // The receiver stays in place while awaited: a caller that leaves meanwhile is still
        // reported by `Drop`.
        let outcome = match self.done.as_mut() {
            Some(done) => done.await.ok(),
            None => None,
        };
        self.done = None;
        outcome.unwrap_or_else(|| {
            Err(ApiError::unavailable(
                "the MCP session ended before the client answered",
            ))
        })
    }
}

impl Drop for Submitted {
    fn drop(&mut self) {
        if self.done.is_some() {
            self.session.caller_gone(self.key);
        }
    }
}

impl Session {
    /// A stdio session: `lines` is the pipe to the client, open from the start.
    pub fn over_pipe(
        id: String,
        lines: OutboxSender<Outgoing>,
        mut limits: SessionLimits,
    ) -> Arc<Self> {
        // A pipe is never resumed: nothing is kept to be sent again.
        limits.lifecycle.max_resend_bytes = 0;
        let session = Self::build(
            id,
            McpSession::new(ServerInfo::sampling2api()),
            true,
            limits,
        );
        {
            let now = now();
            let mut inner = session.lock();
            let generation = inner.machine.stream_opened(now, None);
            inner.stream = Some((generation, lines));
            session.drain(&mut inner, now);
        }
        session
    }

    /// An HTTP session whose `initialize` was already handled by `state`.
    pub fn over_event_stream(
        id: String,
        state: McpSession<RequestKey>,
        limits: SessionLimits,
    ) -> Arc<Self> {
        Self::build(id, state, false, limits)
    }

    fn build(
        id: String,
        state: McpSession<RequestKey>,
        pipe: bool,
        limits: SessionLimits,
    ) -> Arc<Self> {
        Arc::new(Session {
            handle: sampling2api_core::ids::session_handle(&id),
            id,
            inner: Mutex::new(Inner {
                machine: SessionLifecycle::new(state, limits.lifecycle, now()),
                waiters: KeyMap::default(),
                stream: None,
                expired: false,
            }),
            pipe,
            closed: AtomicBool::new(false),
            armed: AtomicU64::new(u64::MAX),
            rearm: Notify::new(),
            stream_open: AtomicBool::new(false),
            queued: AtomicUsize::new(0),
            queued_bytes: Arc::new(AtomicUsize::new(0)),
            max_queued_bytes: limits.max_queued_bytes,
        })
    }

    /// Starts the session's timer task (deadlines, queue and stream waits, idle expiry). It
    /// ends with the session; `on_expired` runs when the session sat idle without a stream.
    pub fn start_timer(self: &Arc<Self>, on_expired: impl FnOnce() + Send + 'static) {
        {
            // Arms it for whatever is already due (an HTTP session's idle expiry).
            let mut inner = self.lock();
            self.drain(&mut inner, now());
        }
        tokio::spawn(run_timer(self.clone(), on_expired));
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock would be a bug; the state stays usable either way.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Feeds one input to the machine and carries out what it produced.
    fn feed<T>(&self, input: impl FnOnce(&mut SessionLifecycle, Millis) -> T) -> T {
        let now = now();
        let mut inner = self.lock();
        let result = input(&mut inner.machine, now);
        self.drain(&mut inner, now);
        result
    }

    /// Counts `text` as waiting for the client, unless that would pass the session's bound.
    /// A message always fits an empty queue, so one request of any admitted size gets through.
    fn enqueue(&self, text: Arc<String>, event: Option<EventId>) -> Result<Outgoing, ApiError> {
        let bytes = text.len();
        let before = self.queued_bytes.fetch_add(bytes, Ordering::AcqRel);
        if before > 0 && before.saturating_add(bytes) > self.max_queued_bytes {
            self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            return Err(client_not_reading(before, self.max_queued_bytes));
        }
        Ok(Outgoing {
            text,
            event,
            _counted: CountedBytes {
                bytes,
                total: self.queued_bytes.clone(),
            },
        })
    }

    /// Moves everything the machine produced: transmits to the current stream, events to the
    /// waiters; then lowers the timer if the machine now needs it earlier.
    fn drain(&self, inner: &mut Inner, now: Millis) {
        loop {
            while let Some(transmit) = inner.machine.poll_transmit() {
                let (text, request, event) = match transmit {
                    // The client never saw the request (it did not read): the request's
                    // message goes, and the notice with it.
                    Transmit::Message {
                        cancels: Some(cancelled),
                        ..
                    } if withdraw(inner, cancelled) => continue,
                    Transmit::Message {
                        text,
                        request,
                        event,
                        ..
                    } => (text, request, event),
                    // A pipe has nothing to resume from; it carries messages only.
                    Transmit::Priming { event } if !self.pipe => {
                        (Arc::new(String::new()), None, event)
                    }
                    // Native streams keep themselves alive (SSE comments); no liveness asked.
                    Transmit::Priming { .. } | Transmit::Ping => continue,
                };
                if let Err(err) = self.transmit(inner, text, Some(event), request) {
                    match request {
                        Some(key) => inner.machine.undeliverable(now, key, err),
                        None => {
                            tracing::warn!(session = %self.handle, %err, "message to the MCP client dropped");
                        }
                    }
                }
            }
            let mut any = false;
            while let Some(event) = inner.machine.poll_event() {
                any = true;
                dispatch(inner, event);
            }
            if !any {
                break;
            }
        }
        self.stream_open
            .store(inner.machine.has_stream(), Ordering::Release);
        self.queued.store(inner.machine.queued(), Ordering::Release);
        if let Some(at) = inner.machine.poll_timeout()
            && self.armed.fetch_min(at.0, Ordering::AcqRel) > at.0
        {
            self.rearm.notify_one();
        }
    }

    /// Queues `text` on the current stream (`request`: the sampling request it carries).
    fn transmit(
        &self,
        inner: &Inner,
        text: Arc<String>,
        event: Option<EventId>,
        request: Option<RequestKey>,
    ) -> Result<(), ApiError> {
        let message = self.enqueue(text, event)?;
        let sent = inner
            .stream
            .as_ref()
            .is_some_and(|(_, sender)| sender.send(message, request).is_ok());
        match (sent, self.pipe) {
            (true, _) => Ok(()),
            (false, true) => Err(ApiError::unavailable(
                "the MCP client's connection is closed",
            )),
            (false, false) => Err(sampling2api_core::lifecycle::refusals::stream_closed()),
        }
    }

    /// Bytes of messages waiting for the client.
    #[cfg(test)]
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes.load(Ordering::Acquire)
    }

    /// Takes an API request that must end within `timeout`: it holds a slot now or waits in
    /// the queue; refused at once (429 when the queue is full, 503 when the session cannot
    /// sample).
    pub fn submit(self: &Arc<Self>, timeout: Duration) -> Result<Submitted, ApiError> {
        let (done_sender, done) = oneshot::channel();
        let now = now();
        let mut inner = self.lock();
        let key = inner.machine.submit(now, now.after(timeout))?;
        // Every drain empties the events, so an `Encode` now is this request's own slot.
        let start = match inner.machine.poll_event() {
            Some(Event::Encode { key: granted, id }) if granted == key => {
                inner.waiters.insert(
                    key,
                    Waiter {
                        start: None,
                        done: done_sender,
                    },
                );
                Start::Now(id)
            }
            other => {
                let (start_sender, start) = oneshot::channel();
                inner.waiters.insert(
                    key,
                    Waiter {
                        start: Some(start_sender),
                        done: done_sender,
                    },
                );
                if let Some(event) = other {
                    dispatch(&mut inner, event);
                }
                Start::Later(start)
            }
        };
        self.drain(&mut inner, now);
        drop(inner);
        Ok(Submitted {
            session: self.clone(),
            key,
            start,
            done: Some(done),
        })
    }

    fn caller_gone(&self, key: RequestKey) {
        let cancelled = self.feed(|machine, now| {
            let sent = machine.pending_count();
            machine.caller_gone(now, key);
            machine.pending_count() < sent
        });
        if cancelled {
            tracing::info!(session = %self.handle, "caller went away; cancelled at the client");
        }
    }

    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// The lifecycle, to read. Never held across an `.await`.
    pub fn state(&self) -> StateGuard<'_> {
        StateGuard(self.lock())
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub fn can_sample(&self) -> bool {
        self.lock().machine.can_sample()
    }

    /// Why API requests cannot be routed here now, if they cannot.
    pub fn unavailable_reason(&self) -> Option<ApiError> {
        self.lock().machine.unavailable_reason()
    }

    /// Feeds one message from the client; answers go to their waiters. Returns the reply
    /// body, if the message held requests.
    pub fn receive(&self, raw: &[u8]) -> Option<String> {
        self.feed(|machine, now| machine.client_message(now, raw))
    }

    /// Best effort, without waiting: a reply to the client's own request on the pipe. Dropped
    /// when the client is so far behind that it would pass the queue bound.
    pub fn deliver_now(&self, message: String) {
        let inner = self.lock();
        if let Err(err) = self.transmit(&inner, Arc::new(message), None, None) {
            tracing::warn!(session = %self.handle, %err, "message to the MCP client dropped");
        }
    }

    /// Installs a new event stream (a reconnecting client replaces its old one) and returns
    /// its generation and receiver. It opens with the priming event; requests the client did
    /// not see after `resume_after` (its `Last-Event-ID`) go out on it again, and requests
    /// waiting for a stream go out on it.
    pub fn open_stream(
        &self,
        resume_after: Option<EventId>,
    ) -> (StreamGeneration, OutboxReceiver<Outgoing>) {
        let (sender, receiver) = outbox();
        let now = now();
        let mut inner = self.lock();
        let generation = inner.machine.stream_opened(now, resume_after);
        if !inner.machine.is_closed() {
            inner.stream = Some((generation, sender));
        }
        self.drain(&mut inner, now);
        (generation, receiver)
    }

    /// The stream `generation` ended. If it was still the current one, requests already sent
    /// on it can no longer be trusted to be answered: they fail now rather than at the deadline.
    pub fn stream_closed(&self, generation: StreamGeneration) {
        let now = now();
        let mut inner = self.lock();
        inner.machine.stream_closed(now, generation);
        if inner
            .stream
            .as_ref()
            .is_some_and(|(current, _)| *current == generation)
        {
            inner.stream = None;
        }
        self.drain(&mut inner, now);
    }

    pub fn has_stream(&self) -> bool {
        self.stream_open.load(Ordering::Acquire)
    }

    /// Ends the session: its API requests fail at once with `why`, and the event stream closes.
    pub fn close(&self, why: &str) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        {
            let now = now();
            let mut inner = self.lock();
            inner.machine.close(now, why);
            inner.stream = None;
            self.drain(&mut inner, now);
        }
        self.rearm.notify_one();
    }
}

fn dispatch(inner: &mut Inner, event: Event) {
    match event {
        Event::Encode { key, id } => {
            if let Some(start) = inner
                .waiters
                .get_mut(&key)
                .and_then(|waiter| waiter.start.take())
            {
                let _ = start.send(id);
            }
        }
        Event::Done { key, outcome, .. } => {
            if let Err(ApiError {
                detail: Some(detail),
                ..
            }) = &outcome
            {
                tracing::debug!(detail, "the MCP client's failure in full");
            }
            // A request that ended before the client read it: its message need not wait.
            withdraw(inner, key);
            if let Some(waiter) = inner.waiters.remove(&key) {
                let _ = waiter.done.send(outcome);
            }
        }
        Event::Expired => inner.expired = true,
        Event::Sent { .. } => {}
    }
}

/// Takes `key`'s message back from the current stream's outbox if the client has not been
/// written it yet; whether it was there.
fn withdraw(inner: &Inner, key: RequestKey) -> bool {
    inner
        .stream
        .as_ref()
        .is_some_and(|(_, outbox)| outbox.withdraw(key))
}

/// The session's one timer: sleeps until the armed instant, or until woken because the machine
/// needs it earlier; ends with the session.
async fn run_timer(session: Arc<Session>, on_expired: impl FnOnce() + Send + 'static) {
    loop {
        let rearmed = session.rearm.notified();
        if session.is_closed() {
            return;
        }
        let armed = session.armed.load(Ordering::Acquire);
        if armed == u64::MAX {
            rearmed.await;
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep_until(instant_of(Millis(armed))) => {}
            () = rearmed => continue,
        }
        let expired = {
            let now = now();
            let mut inner = session.lock();
            // Whatever the machine needs next is armed afresh by the drain.
            session.armed.store(u64::MAX, Ordering::Release);
            inner.machine.handle_timeout(now);
            session.drain(&mut inner, now);
            std::mem::take(&mut inner.expired)
        };
        if expired {
            on_expired();
            return;
        }
    }
}

#[cfg(test)]
impl Session {
    /// The client's side of the handshake, declaring `sampling` (for tests here and in `api`).
    pub(crate) fn handshake_for_tests(&self) {
        self.receive(
            serde_json::json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
                "protocolVersion":"2025-11-25","capabilities":{"sampling":{}}}})
            .to_string()
            .as_bytes(),
        );
        self.receive(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert!(self.can_sample());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn limits(max_in_flight: usize, max_queued_bytes: usize) -> SessionLimits {
        SessionLimits {
            lifecycle: LifecycleLimits {
                max_in_flight,
                max_queued: 4,
                stream_wait: Duration::from_millis(100),
                session_idle: Duration::from_millis(150),
                liveness_interval: None,
                mcp_path: "/mcp".into(),
                max_resend_bytes: usize::MAX,
            },
            max_queued_bytes,
        }
    }

    async fn next_message(outgoing: &mut OutboxReceiver<Outgoing>) -> Value {
        let message = outgoing.recv().await.unwrap();
        serde_json::from_str(&message).unwrap()
    }

    #[tokio::test]
    async fn messages_waiting_for_a_client_are_bounded_in_bytes() {
        let (lines, mut outgoing) = outbox();
        let session = Session::over_pipe("s".into(), lines, limits(4, 100));
        session.start_timer(|| {});
        session.handshake_for_tests();
        // The initialize reply went out through `deliver_now` in stdio mode; here none did.
        assert_eq!(session.queued_bytes(), 0);
        let mut first = session.submit(Duration::from_secs(60)).unwrap();
        first.slot().await.unwrap();
        first.encoded(Ok("a".repeat(60)));
        assert_eq!(session.queued_bytes(), 60);
        // The client reads nothing: the next request would pass the bound and fails.
        let mut second = session.submit(Duration::from_secs(60)).unwrap();
        second.slot().await.unwrap();
        second.encoded(Ok("b".repeat(60)));
        let refused = second.outcome().await.unwrap_err();
        assert_eq!(refused.status(), 503);
        assert!(
            refused.message.contains("not reading"),
            "{}",
            refused.message
        );
        // Replies are dropped rather than queued past the bound.
        session.deliver_now("c".repeat(60));
        assert_eq!(session.queued_bytes(), 60);
        session.deliver_now("d".repeat(40));
        assert_eq!(session.queued_bytes(), 100);
        // Written out (taken and dropped by the writer): the bytes are free again.
        drop(outgoing.recv().await);
        drop(outgoing.recv().await);
        assert_eq!(session.queued_bytes(), 0);
        // Messages still queued when the channel goes are released with it.
        session.deliver_now("e".repeat(1000));
        assert_eq!(session.queued_bytes(), 1000);
        drop(outgoing);
        assert_eq!(session.queued_bytes(), 0);
        drop(first);
    }

    /// A client that stops reading: the messages of requests that ended (deadline, caller gone)
    /// leave the queue with them, so their bytes are free and the bound admits new requests;
    /// no notice goes out about a request the client never received.
    #[tokio::test]
    async fn a_request_that_ends_unwritten_takes_its_message_back() {
        let (lines, mut outgoing) = outbox();
        let session = Session::over_pipe("s".into(), lines, limits(4, 1_500_000));
        session.start_timer(|| {});
        session.handshake_for_tests();
        let mut timed = session.submit(Duration::from_millis(50)).unwrap();
        let id = timed.slot().await.unwrap();
        timed.encoded(Ok(json!({"id": id, "pad": "a".repeat(600_000)}).to_string()));
        let mut left = session.submit(Duration::from_secs(60)).unwrap();
        let left_id = left.slot().await.unwrap();
        left.encoded(Ok(
            json!({"id": left_id, "pad": "b".repeat(600_000)}).to_string()
        ));
        assert!(session.queued_bytes() > 1_200_000);
        // The bound is full: a third is refused.
        let mut third = session.submit(Duration::from_secs(60)).unwrap();
        third.slot().await.unwrap();
        third.encoded(Ok("c".repeat(600_000)));
        assert_eq!(third.outcome().await.unwrap_err().status(), 503);
        // One times out, the other's caller leaves: both messages leave the queue.
        assert_eq!(timed.outcome().await.unwrap_err().status(), 504);
        drop(left);
        assert_eq!(session.queued_bytes(), 0);
        // Room again, and the next message is the first the client reads: no notice about
        // requests it never saw.
        let mut next = session.submit(Duration::from_secs(60)).unwrap();
        let next_id = next.slot().await.unwrap();
        next.encoded(Ok(json!({"id": next_id}).to_string()));
        assert_eq!(next_message(&mut outgoing).await["id"], next_id);
        assert!(outgoing.is_empty());
        // Written out, then its caller leaves: the client is told.
        drop(next);
        let notice = next_message(&mut outgoing).await;
        assert_eq!(notice["method"], "notifications/cancelled");
        assert_eq!(notice["params"]["requestId"], next_id);
    }

    #[tokio::test]
    async fn the_timer_ends_a_request_at_its_deadline_and_cancels_it_at_the_client() {
        let (lines, mut outgoing) = outbox();
        let session = Session::over_pipe("s".into(), lines, limits(1, 1 << 20));
        session.start_timer(|| {});
        session.handshake_for_tests();
        let mut long = session.submit(Duration::from_secs(600)).unwrap();
        let long_id = long.slot().await.unwrap();
        long.encoded(Ok(json!({"id": long_id}).to_string()));
        // Queued behind it with a short deadline: the timer is moved earlier for it.
        let mut short = session.submit(Duration::from_millis(50)).unwrap();
        let started = Instant::now();
        assert!(short.slot().await.is_err());
        let err = short.outcome().await.unwrap_err();
        assert!(err.message.contains("waited 50 ms"), "{}", err.message);
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(next_message(&mut outgoing).await["id"], long_id);
        // The caller of the long one leaves while it waits for the answer: the client hears
        // of it at once.
        let waiting = tokio::spawn(async move { long.outcome().await });
        tokio::task::yield_now().await;
        waiting.abort();
        assert!(waiting.await.unwrap_err().is_cancelled());
        let notice = next_message(&mut outgoing).await;
        assert_eq!(notice["method"], "notifications/cancelled");
        assert_eq!(notice["params"]["requestId"], long_id);
        // A sent request whose deadline passes is cancelled with that reason.
        let mut timed = session.submit(Duration::from_millis(80)).unwrap();
        let id = timed.slot().await.unwrap();
        timed.encoded(Ok(json!({"id": id}).to_string()));
        assert_eq!(next_message(&mut outgoing).await["id"], id);
        assert_eq!(timed.outcome().await.unwrap_err().status(), 504);
        let notice = next_message(&mut outgoing).await;
        assert_eq!(notice["params"]["requestId"], id);
        assert!(
            notice["params"]["reason"]
                .as_str()
                .unwrap()
                .contains("deadline")
        );
    }

    #[tokio::test]
    async fn an_idle_event_stream_session_expires_and_a_stream_holds_it_off() {
        let session = Session::over_event_stream(
            "s".into(),
            McpSession::new(ServerInfo::sampling2api()),
            limits(1, 1 << 20),
        );
        let (expired_sender, mut expired) = oneshot::channel();
        session.start_timer(move || {
            let _ = expired_sender.send(());
        });
        let (generation, _messages) = session.open_stream(None);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(expired.try_recv().is_err(), "an open stream keeps it");
        let started = Instant::now();
        session.stream_closed(generation);
        tokio::time::timeout(Duration::from_secs(2), &mut expired)
            .await
            .unwrap()
            .unwrap();
        // The lifecycle's clock counts whole milliseconds (`now` rounds down), so the expiry
        // may fire up to 1 ms before 150 ms of `Instant` time have passed.
        assert!(started.elapsed() >= Duration::from_millis(149));
    }

    #[tokio::test]
    async fn a_resumed_event_stream_gets_the_request_the_client_missed() {
        let session = Session::over_event_stream(
            "s".into(),
            McpSession::new(ServerInfo::sampling2api()),
            limits(2, 1 << 20),
        );
        session.start_timer(|| {});
        session.handshake_for_tests();
        let (old, mut first) = session.open_stream(None);
        let priming = first.recv().await.unwrap();
        assert_eq!((&*priming, priming.event), ("", Some(EventId(1))));
        let mut request = session.submit(Duration::from_secs(60)).unwrap();
        let id = request.slot().await.unwrap();
        request.encoded(Ok(json!({"id": id}).to_string()));
        let sent = first.recv().await.unwrap();
        assert_eq!(sent.event, Some(EventId(2)));
        // The client lost that stream after the priming event and reconnects with its id.
        let (_, mut second) = session.open_stream(Some(EventId(1)));
        assert_eq!(second.recv().await.unwrap().event, Some(EventId(3)));
        let again = second.recv().await.unwrap();
        assert_eq!((&*again, again.event), (&*sent, Some(EventId(4))));
        // The old stream's late end fails nothing; the answer ends the request.
        session.stream_closed(old);
        session.receive(
            json!({"jsonrpc":"2.0","id":id,"result":{"role":"assistant",
                "content":{"type":"text","text":"hi"},"model":"m"}})
            .to_string()
            .as_bytes(),
        );
        assert_eq!(request.outcome().await.unwrap().model.as_deref(), Some("m"));
    }

    #[tokio::test]
    async fn closing_fails_waiting_requests_and_ends_the_timer() {
        let (lines, _outgoing) = outbox();
        let session = Session::over_pipe("s".into(), lines, limits(1, 1 << 20));
        session.start_timer(|| {});
        session.handshake_for_tests();
        let mut held = session.submit(Duration::from_secs(60)).unwrap();
        held.slot().await.unwrap();
        let mut queued = session.submit(Duration::from_secs(60)).unwrap();
        session.close("the MCP client disconnected");
        assert!(queued.slot().await.is_err());
        for submitted in [&mut held, &mut queued] {
            let err = submitted.outcome().await.unwrap_err();
            assert_eq!(err.message, "the MCP client disconnected");
        }
        assert_eq!(
            session
                .submit(Duration::from_secs(1))
                .err()
                .map(|e| e.status()),
            Some(503)
        );
        // The timer task let go of the session.
        tokio::time::timeout(Duration::from_secs(2), async {
            while Arc::strong_count(&session) > 3 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
    }
}
