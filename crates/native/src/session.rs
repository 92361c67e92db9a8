//! A connected MCP client: the core session state machine plus the way messages reach it
//! (a stdio pipe, or the client's open `GET /mcp` stream).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sampling2api_core::ApiError;
use sampling2api_core::mcp_session::{McpSession, ServerInfo};
use sampling2api_core::sampling::CreateMessageResult;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc, oneshot};

/// What an API request waits on: the client's result, or why there is none.
pub type SamplingReply = Result<CreateMessageResult, ApiError>;
pub type Waiter = oneshot::Sender<SamplingReply>;

/// A message on its way to the client. Its bytes count against the session's queue bound
/// until the writer is done with it (drops it), or the channel holding it is dropped.
pub struct Outgoing {
    text: String,
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

/// How messages travel to the client.
enum Outbound {
    /// Lines written to the client's stdin (or our stdout) by a writer task.
    Pipe(mpsc::UnboundedSender<Outgoing>),
    /// The client's current `GET /mcp` stream, if one is open.
    EventStream {
        current: Mutex<Option<StreamSlot>>,
        opened: Notify,
        wait: Duration,
        /// Where the client opens its stream, for the error when it has none.
        mcp_path: Arc<str>,
    },
}

struct StreamSlot {
    generation: u64,
    sender: mpsc::UnboundedSender<Outgoing>,
}

pub struct Session {
    /// The secret `Mcp-Session-Id`: the client's credential for `/mcp`. Never listed or logged.
    pub id: String,
    /// The public name `/sessions` lists and logs show (see `ids::session_handle`).
    pub handle: String,
    state: Mutex<McpSession<Waiter>>,
    outbound: Outbound,
    closed: AtomicBool,
    stream_generation: AtomicU64,
    last_activity: Mutex<Instant>,
    /// One permit per sampling request this session may have in flight.
    permits: Arc<Semaphore>,
    queued: AtomicUsize,
    /// Bytes of messages sent to the client and not yet written out (see `Outgoing`).
    queued_bytes: Arc<AtomicUsize>,
    max_queued_bytes: usize,
}

/// What one session may hold.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Sampling requests in flight at the client at once.
    pub max_in_flight: usize,
    /// Bytes of messages waiting for a client that does not read them.
    pub max_queued_bytes: usize,
}

/// A request's place at a session: it may send now, or waits for a permit.
pub enum Admission {
    Granted(OwnedSemaphorePermit),
    Queued(QueueTicket),
}

/// Counts a waiting request in its session's queue until dropped.
pub struct QueueTicket {
    session: Arc<Session>,
}

impl Drop for QueueTicket {
    fn drop(&mut self) {
        self.session.queued.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    /// Waits for the permit to send (no wait if it was granted at once).
    pub async fn permit(self) -> Result<OwnedSemaphorePermit, ApiError> {
        match self {
            Admission::Granted(permit) => Ok(permit),
            Admission::Queued(ticket) => {
                let permit = ticket.session.permits.clone().acquire_owned().await;
                drop(ticket);
                permit.map_err(|_| {
                    ApiError::unavailable("the MCP session ended while the request waited")
                })
            }
        }
    }
}

impl Session {
    pub fn over_pipe(
        id: String,
        lines: mpsc::UnboundedSender<Outgoing>,
        limits: SessionLimits,
    ) -> Arc<Self> {
        Self::build(
            id,
            McpSession::new(ServerInfo::sampling2api()),
            Outbound::Pipe(lines),
            limits,
        )
    }

    /// An HTTP session whose `initialize` was already handled by `state`.
    pub fn over_event_stream(
        id: String,
        state: McpSession<Waiter>,
        wait: Duration,
        mcp_path: Arc<str>,
        limits: SessionLimits,
    ) -> Arc<Self> {
        Self::build(
            id,
            state,
            Outbound::EventStream {
                current: Mutex::new(None),
                opened: Notify::new(),
                wait,
                mcp_path,
            },
            limits,
        )
    }

    fn build(
        id: String,
        state: McpSession<Waiter>,
        outbound: Outbound,
        limits: SessionLimits,
    ) -> Arc<Self> {
        Arc::new(Session {
            handle: sampling2api_core::ids::session_handle(&id),
            id,
            state: Mutex::new(state),
            outbound,
            closed: AtomicBool::new(false),
            stream_generation: AtomicU64::new(0),
            last_activity: Mutex::new(Instant::now()),
            permits: Arc::new(Semaphore::new(
                limits.max_in_flight.min(Semaphore::MAX_PERMITS),
            )),
            queued: AtomicUsize::new(0),
            queued_bytes: Arc::new(AtomicUsize::new(0)),
            max_queued_bytes: limits.max_queued_bytes,
        })
    }

    /// Counts `text` as waiting for the client, unless that would pass the session's bound.
    /// A message always fits an empty queue, so one request of any admitted size gets through.
    fn enqueue(&self, text: String) -> Result<Outgoing, ApiError> {
        let bytes = text.len();
        let before = self.queued_bytes.fetch_add(bytes, Ordering::AcqRel);
        if before > 0 && before.saturating_add(bytes) > self.max_queued_bytes {
            self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            return Err(sampling2api_core::admission::client_not_reading(
                before,
                self.max_queued_bytes,
            ));
        }
        Ok(Outgoing {
            text,
            _counted: CountedBytes {
                bytes,
                total: self.queued_bytes.clone(),
            },
        })
    }

    /// Bytes of messages waiting for the client.
    #[cfg(test)]
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes.load(Ordering::Acquire)
    }

    /// Admits a request: a permit now, a place in the queue, or 429 when the queue is full.
    pub fn admit(self: &Arc<Self>, max_queued: usize) -> Result<Admission, ApiError> {
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => Ok(Admission::Granted(permit)),
            Err(TryAcquireError::Closed) => Err(ApiError::unavailable("the MCP session has ended")),
            Err(TryAcquireError::NoPermits) => {
                if self.queued.fetch_add(1, Ordering::AcqRel) >= max_queued {
                    self.queued.fetch_sub(1, Ordering::AcqRel);
                    return Err(sampling2api_core::admission::too_busy());
                }
                Ok(Admission::Queued(QueueTicket {
                    session: self.clone(),
                }))
            }
        }
    }

    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// The state machine. Never held across an `.await`.
    pub fn state(&self) -> MutexGuard<'_, McpSession<Waiter>> {
        // A panic while holding this lock would be a bug; the state stays usable either way.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub fn can_sample(&self) -> bool {
        !self.is_closed() && self.state().can_sample()
    }

    /// Why API requests cannot be routed here now, if they cannot.
    pub fn unavailable_reason(&self) -> Option<ApiError> {
        if self.is_closed() {
            return Some(ApiError::unavailable("the MCP session has ended"));
        }
        self.state().support().err()
    }

    /// Feeds one message from the client; answers go to their waiters. Returns the reply
    /// body, if the message held requests.
    pub fn receive(&self, raw: &[u8]) -> Option<String> {
        self.touch();
        let handled = self.state().handle_incoming(raw);
        let reply = handled.reply_body();
        for (waiter, outcome) in handled.answers {
            let _ = waiter.send(outcome.map_err(|failure| failure.to_api_error()));
        }
        reply
    }

    pub fn touch(&self) {
        *self
            .last_activity
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Instant::now();
    }

    pub fn idle_for(&self) -> Duration {
        self.last_activity
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .elapsed()
    }

    /// Sends a message to the client, waiting briefly for an event stream if none is open.
    pub async fn deliver(&self, message: String) -> Result<(), ApiError> {
        let message = self.enqueue(message)?;
        match &self.outbound {
            Outbound::Pipe(lines) => lines
                .send(message)
                .map_err(|_| ApiError::unavailable("the MCP client's connection is closed")),
            Outbound::EventStream {
                current,
                opened,
                wait,
                mcp_path,
            } => {
                let deadline = tokio::time::Instant::now() + *wait;
                let mut message = message;
                loop {
                    // Register interest before checking, so an opening in between is not missed.
                    let notified = opened.notified();
                    if self.is_closed() {
                        return Err(ApiError::unavailable("the MCP session has ended"));
                    }
                    if let Some(slot) = lock(current).as_ref() {
                        match slot.sender.send(message) {
                            Ok(()) => return Ok(()),
                            Err(mpsc::error::SendError(returned)) => message = returned,
                        }
                    }
                    if tokio::time::timeout_at(deadline, notified).await.is_err() {
                        return Err(sampling2api_core::admission::no_event_stream(
                            mcp_path,
                            wait.as_millis() as u64,
                        ));
                    }
                }
            }
        }
    }

    /// Best effort, without waiting: used for cancellation notices and replies. Dropped when
    /// the client is so far behind that it would pass the queue bound.
    pub fn deliver_now(&self, message: String) {
        let message = match self.enqueue(message) {
            Ok(message) => message,
            Err(err) => {
                tracing::warn!(session = %self.id, %err, "message to the MCP client dropped");
                return;
            }
        };
        match &self.outbound {
            Outbound::Pipe(lines) => {
                let _ = lines.send(message);
            }
            Outbound::EventStream { current, .. } => {
                if let Some(slot) = lock(current).as_ref() {
                    let _ = slot.sender.send(message);
                }
            }
        }
    }

    /// Installs a new event stream (a reconnecting client replaces its old one) and returns
    /// its receiver and generation.
    pub fn open_stream(&self) -> (u64, mpsc::UnboundedReceiver<Outgoing>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let generation = self.stream_generation.fetch_add(1, Ordering::AcqRel) + 1;
        if let Outbound::EventStream {
            current, opened, ..
        } = &self.outbound
        {
            *lock(current) = Some(StreamSlot { generation, sender });
            opened.notify_waiters();
        }
        self.touch();
        (generation, receiver)
    }

    /// The stream `generation` ended. If it was still the current one, requests already sent
    /// on it can no longer be trusted to be answered: fail them now rather than at the deadline.
    pub fn stream_closed(&self, generation: u64) {
        let Outbound::EventStream { current, .. } = &self.outbound else {
            return;
        };
        let was_current = {
            let mut slot = lock(current);
            if slot.as_ref().is_some_and(|s| s.generation == generation) {
                *slot = None;
                true
            } else {
                false
            }
        };
        if was_current {
            self.touch();
            let waiters = self.state().take_pending();
            fail_all(
                waiters,
                "the MCP client's event stream closed before it answered",
            );
        }
    }

    pub fn has_stream(&self) -> bool {
        match &self.outbound {
            Outbound::Pipe(_) => true,
            Outbound::EventStream { current, .. } => lock(current).is_some(),
        }
    }

    /// Ends the session: pending API requests fail at once, and the event stream closes.
    pub fn close(&self, why: &str) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let waiters = self.state().close();
        fail_all(waiters, why);
        self.permits.close();
        if let Outbound::EventStream {
            current, opened, ..
        } = &self.outbound
        {
            *lock(current) = None;
            opened.notify_waiters();
        }
    }
}

fn fail_all(waiters: Vec<Waiter>, why: &str) {
    for waiter in waiters {
        let _ = waiter.send(Err(ApiError::unavailable(why.to_string())));
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_waiting_for_a_client_are_bounded_in_bytes() {
        let (lines, mut outgoing) = mpsc::unbounded_channel();
        let limits = SessionLimits {
            max_in_flight: 4,
            max_queued_bytes: 100,
        };
        let session = Session::over_pipe("s".into(), lines, limits);
        session.deliver("a".repeat(60)).await.unwrap();
        assert_eq!(session.queued_bytes(), 60);
        // The client reads nothing: the next message would pass the bound.
        let refused = session.deliver("b".repeat(60)).await.unwrap_err();
        assert_eq!(refused.status(), 503);
        assert!(
            refused.message.contains("not reading"),
            "{}",
            refused.message
        );
        // Notices are dropped rather than queued past the bound.
        session.deliver_now("c".repeat(60));
        assert_eq!(session.queued_bytes(), 60);
        session.deliver("d".repeat(40)).await.unwrap();
        assert_eq!(session.queued_bytes(), 100);
        // Written out (taken and dropped by the writer): the bytes are free again.
        drop(outgoing.recv().await);
        drop(outgoing.recv().await);
        assert_eq!(session.queued_bytes(), 0);
        // An empty queue takes one message of any size.
        session.deliver("e".repeat(1000)).await.unwrap();
        assert_eq!(session.queued_bytes(), 1000);
        // Messages still queued when the channel goes are released with it.
        drop(outgoing);
        assert_eq!(session.queued_bytes(), 0);
    }
}
