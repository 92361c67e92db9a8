//! The lifecycle's value types: its clock ([`Millis`]), its handles ([`RequestKey`],
//! [`StreamGeneration`]), its limits, and what it outputs ([`Transmit`], [`Event`]).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::Duration;

use crate::api_error::ApiError;
use crate::lifecycle::refusals::{COMMON_SSE_EVENT_CAP, LargeEvents};
use crate::mcp::sampling::CreateMessageResult;
use crate::mcp::session::ClientFacts;
use crate::mcp::streamable_http::EventId;

/// How a sampling request ended, as its API caller sees it: the client's result, or why there
/// is none. The one name for it in every crate (the client's raw answer, before its failures
/// become API errors, is [`crate::mcp::session::ClientAnswer`]).
pub type SamplingOutcome = Result<CreateMessageResult, ApiError>;

/// A point on the runtime's monotonic clock, in milliseconds (native: since process start;
/// worker: `Date.now()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub u64);

impl Millis {
    /// `self` plus `duration`, saturating.
    pub fn after(self, duration: Duration) -> Millis {
        Millis(self.0.saturating_add(millis_of(duration)))
    }

    /// Milliseconds from `earlier` to `self` (0 if `earlier` is later).
    pub fn since(self, earlier: Millis) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

pub(super) fn millis_of(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The machine's handle for one API request, assigned by [`SessionLifecycle::submit`]. Not the
/// JSON-RPC id, which the request gets when it is to be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestKey(pub(super) u64);

impl RequestKey {
    pub fn get(self) -> u64 {
        self.0
    }
}

/// Hashes [`RequestKey`]s, which this machine assigns (counting up), so no caller can choose
/// colliding ones: one multiplication instead of SipHash on the per-request path.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u64(u64::from(*byte));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A map keyed by [`RequestKey`] (the machine's requests; a driver's waiters).
pub type KeyMap<V> = HashMap<RequestKey, V, BuildHasherDefault<KeyHasher>>;

/// Which of the client's event streams (HTTP: each `GET` opens a new one, replacing the last).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamGeneration(pub(super) u64);

impl StreamGeneration {
    pub fn get(self) -> u64 {
        self.0
    }
}

/// What one session allows and how long things may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleLimits {
    /// Requests holding a slot (encoding, waiting for a stream, or sent) at once; at least 1.
    pub max_in_flight: usize,
    /// Requests waiting for a slot beyond that; more are refused with 429.
    pub max_queued: usize,
    /// How long an encoded request waits for an event stream to open.
    pub stream_wait: Duration,
    /// A session with no open stream and no request for this long expires.
    pub session_idle: Duration,
    /// While a request waits for its answer on an open stream, a [`Transmit::Ping`] this often
    /// (`None`: never; the driver keeps the stream alive its own way).
    pub liveness_interval: Option<Duration>,
    /// Where the client opens its event stream, named in the no-stream error.
    pub mcp_path: String,
    /// Bytes of sent requests' messages kept, all together, to send them again on a resumed
    /// stream (see [`SessionLifecycle::stream_opened`]); a message that does not fit is not
    /// kept, and fails if the client later shows it never received it.
    pub max_resend_bytes: usize,
}

/// A sent message whose event is larger than this is never kept to be sent again: a stream that broke while
/// such an event was on it most likely broke because of it (clients that cap one SSE event drop
/// their stream on a larger one, see [`COMMON_SSE_EVENT_CAP`]), and the same event would break
/// the resumed stream again. Such a request fails with [`stream_closed`] instead, which the
/// runtimes' [`crate::lifecycle::refusals::LargeEvents`] then explains.
pub const RESEND_MAX_EVENT_BYTES: usize = COMMON_SSE_EVENT_CAP;

/// Bytes for the driver to write to the client's current stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// A JSON-RPC message, as event `event` of the stream. `request`: the sampling request it
    /// carries, if it is one; the driver reports a failure to hand it on through
    /// [`SessionLifecycle::undeliverable`]. (Shared: the machine keeps a sent request's text
    /// until its answer, to send it again on a resumed stream.)
    ///
    /// `cancels`: the message is the `notifications/cancelled` for that request (which ended
    /// by its deadline or because its caller left). A driver that still holds that request's
    /// message unwritten (a client that is not reading) withdraws it and drops the notice: the
    /// client never saw the request, and its bytes need not wait for a reader.
    Message {
        text: Arc<String>,
        request: Option<RequestKey>,
        cancels: Option<RequestKey>,
        event: EventId,
    },
    /// The first event of a newly opened HTTP stream: an id and no message (SSE: empty data),
    /// so that the client has an id to resume from. A pipe's driver skips it.
    Priming { event: EventId },
    /// Something that shows the stream is alive (the driver chooses the bytes).
    Ping,
}

/// What the driver tells API callers (or itself).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Request `key` holds a slot: encode it as `sampling/createMessage` with this JSON-RPC id
    /// and feed the text to [`SessionLifecycle::encoded`].
    Encode { key: RequestKey, id: u64 },
    /// Request `key` went out to the client.
    Sent { key: RequestKey },
    /// Request `key` ended: the client's result, or why there is none. `sampling`: the time from
    /// `Sent` to the answer, for requests that were sent.
    Done {
        key: RequestKey,
        outcome: SamplingOutcome,
        sampling: Option<Duration>,
    },
    /// No open stream and no requests for `session_idle`: the driver drops the session.
    Expired,
}

/// What a driver stored of a session, to rebuild its lifecycle after its process was evicted.
#[derive(Debug, Clone)]
pub struct ResumedFacts {
    pub client: ClientFacts,
    /// Whether the client had finished the handshake.
    pub ready: bool,
    /// Request ids continue from here (see [`McpSession::resume`]).
    pub next_request_id: u64,
    /// Event ids continue from here: the driver stores a value above every id it wrote out,
    /// so that an event id never repeats within the session.
    pub next_event_id: u64,
    pub large_events: LargeEvents,
    /// The client had answered a sampling request (see [`crate::mcp::session::McpSession::answered`]).
    pub answered: bool,
}
