//! The one set of error texts for everything that refuses a sampling request or ends its
//! lifecycle early: over the session's in-flight and queue limits (429), a client that does not
//! read, the queue's timeout, no event stream, the session or its stream ending, the caller
//! leaving. [`crate::lifecycle::SessionLifecycle`] owns the slots and the queue. Also
//! [`LargeEvents`]: a session's memory of the events its client's stream closed under.

use crate::api_error::{ApiError, ErrorKind, shown_millis};

/// The 429 a caller gets when the session's in-flight and queue limits are both reached.
pub fn too_busy() -> ApiError {
    let mut err = ApiError::new(
        ErrorKind::RateLimit,
        "this MCP session has as many requests in flight and queued as it allows; retry shortly",
    );
    err.retry_after_secs = Some(1);
    err
}

/// The 503 a caller gets when messages already waiting for the MCP client (which does not read
/// its stdout or its event stream) would exceed the session's bound with this one: the request
/// is refused instead of growing the queue. Retryable: a client that catches up drains it.
pub fn client_not_reading(queued_bytes: usize, limit: usize) -> ApiError {
    let mut err = ApiError::unavailable(format!(
        "the MCP client is not reading the messages sent to it: {queued_bytes} bytes wait for it \
         and this request would pass the limit of {limit} bytes; retry when it catches up"
    ));
    err.retry_after_secs = Some(1);
    err
}

/// The deadline (`timeout_ms`, the request's whole deadline) passed while the request was still
/// waiting for a slot.
pub fn queue_timeout(timeout_ms: u64) -> ApiError {
    ApiError::timeout(format!(
        "the request waited {} for the MCP session's in-flight limit",
        shown_millis(timeout_ms)
    ))
}

/// The 503 when a client over Streamable HTTP has had no event stream open (`GET mcp_path`)
/// for the whole stream wait.
pub fn no_event_stream(mcp_path: &str, waited_ms: u64) -> ApiError {
    ApiError::unavailable(format!(
        "the MCP client has no open event stream (GET {mcp_path}) to receive sampling requests; waited {}",
        shown_millis(waited_ms)
    ))
}

/// `err` (a deadline that passed while the request waited on the client or behind requests
/// that do) with where to look, for a client that asks a person first and has not answered
/// anything yet: VS Code's consent notification holds this request and every later one.
pub fn consent_may_be_waiting(mut err: ApiError) -> ApiError {
    err.message.push_str(&format!(
        ". VS Code has not answered any request of this session yet: a notification in VS Code \
         may be waiting for someone to allow this MCP server to use a model (\"Allow in this \
         Session\" or \"Always\"), and it holds every sampling request until it is answered. \
         `{}` allows it ahead of time (the `{}` setting)",
        crate::mcp::failures::CONNECT_VSCODE,
        crate::mcp::failures::VS_CODE_SAMPLING_SETTING
    ));
    err
}

/// A request refused or failed because its session ended (closed, expired, or `DELETE`d).
pub fn session_ended() -> ApiError {
    ApiError::unavailable("the MCP session has ended")
}

/// The client's current event stream closed while a request sent on it waited for its answer.
pub fn stream_closed() -> ApiError {
    ApiError::unavailable("the MCP client's event stream closed before it answered")
}

/// The SSE event size some MCP clients cap one event at: the Python MCP SDK drops its event
/// stream on a larger event (`max_sse_event_size`, 1 MiB by default). The bridge cannot know a
/// client's cap; a stream that closes under an event past this one most likely hit it.
pub const COMMON_SSE_EVENT_CAP: usize = 1024 * 1024;

/// What an SSE event adds to its JSON message (the `id:`, `event: message` and `data: `
/// lines, with room to spare): clients count a whole event against their cap.
pub const SSE_FRAMING_BYTES: usize = 64;

/// The size of the SSE event that carries a message of `json_bytes`.
pub const fn event_size(json_bytes: usize) -> usize {
    json_bytes.saturating_add(SSE_FRAMING_BYTES)
}

/// A stream that closes this long after a large event went out is taken to have closed under
/// it; a later close (a request the client had been working on for a while) is not blamed on
/// the event's size.
pub const LARGE_EVENT_CLOSE_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

/// One session's memory of the events its client's stream closed under. The Python MCP SDK
/// reconnects its event stream after such a close, but gives it up for good after two in a
/// row (its reconnection count is reset only by a stream the server ends): a second large
/// request would cost the session its stream, and every later request would wait for one in
/// vain. So once a stream closed under an event past [`COMMON_SSE_EVENT_CAP`], requests at
/// least that large are refused at once instead of being sent. Held by the session's
/// lifecycle (`lifecycle.rs`), which knows each event's size and when its stream closed; the
/// worker stores it with the session's facts, so hibernation does not forget it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LargeEvents {
    /// The smallest event (bytes, [`event_size`] of its message) the client's stream closed
    /// under.
    #[serde(default)]
    closed_under: Option<usize>,
}

impl LargeEvents {
    /// Refuses (413, not retryable) a request whose event is at least as large as one the
    /// client's stream already closed under.
    pub fn check(&self, event_bytes: usize) -> Result<(), ApiError> {
        match self.closed_under {
            Some(closed_under) if event_bytes >= closed_under => Err(ApiError::new(
                ErrorKind::RequestTooLarge,
                format!(
                    "this request ({} as one SSE event) is not sent to the MCP client: its event \
                     stream closed under a request of {} earlier in this session, most likely \
                     over its cap on one event (the Python MCP SDK: 1 MiB unless its \
                     max_sse_event_size is raised), and another close would cost the session its \
                     stream. Send a smaller request, or reconnect the client with a higher limit",
                    shown_mib(event_bytes),
                    shown_mib(closed_under)
                ),
            )),
            _ => Ok(()),
        }
    }

    /// `err`, the outcome of a request sent as an event of `event_bytes`: when it is
    /// [`stream_closed`] and the event was past [`COMMON_SSE_EVENT_CAP`], the likely cause and
    /// the client setting are named, the error is not retryable (the same event would close the
    /// stream again), and the size is remembered for [`LargeEvents::check`]. Any other error is
    /// returned as it is.
    pub fn outcome(&mut self, err: ApiError, event_bytes: usize) -> ApiError {
        if event_bytes <= COMMON_SSE_EVENT_CAP || err != stream_closed() {
            return err;
        }
        self.closed_under = Some(
            self.closed_under
                .map_or(event_bytes, |s| s.min(event_bytes)),
        );
        ApiError::unavailable(format!(
            "the MCP client's event stream closed while this request ({} as one SSE event) was \
             on it: clients that cap an event's size drop their stream on a larger one (the \
             Python MCP SDK at 1 MiB unless its max_sse_event_size is raised); not retryable, \
             since the same event would close the stream again. Raise the client's limit, send \
             a smaller request, or connect the client over stdio",
            shown_mib(event_bytes)
        ))
        .not_retryable()
    }
}

fn shown_mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The outcome recorded for a request whose API caller went away (nobody reads it; it keeps
/// the rule that every request ends exactly once).
pub fn caller_left() -> ApiError {
    ApiError::api("the API caller disconnected before the answer")
}

/// The `reason` of the `notifications/cancelled` sent when the API caller went away.
pub const CANCELLED_CALLER_LEFT: &str = "sampling2api: the API caller disconnected";
/// The `reason` of the `notifications/cancelled` sent when the request's deadline passed.
pub const CANCELLED_DEADLINE: &str = "sampling2api: the API request's deadline passed";

/// Why a session's requests end when its client sends `DELETE` on `/mcp` (both runtimes).
pub const ENDED_BY_CLIENT: &str = "the MCP client ended its session";
/// Why a session's requests end when it expires: no open stream, no requests, for the whole
/// idle period (both runtimes).
pub const EXPIRED_IDLE: &str = "the MCP session timed out (no stream, no requests)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_texts_name_real_values() {
        assert!(queue_timeout(600_000).message.contains("waited 600 s for"));
        assert!(queue_timeout(1_500).message.contains("waited 1500 ms for"));
        let err = no_event_stream("/custom", 300);
        assert_eq!(err.status(), 503);
        assert!(err.message.contains("(GET /custom)") && err.message.contains("waited 300 ms"));
        let busy = too_busy();
        assert_eq!(busy.status(), 429);
        assert_eq!(busy.retry_after_secs, Some(1));
    }

    #[test]
    fn a_stream_closed_under_a_large_event_is_explained_and_remembered() {
        let mut events = LargeEvents::default();
        // Small events, and other errors, change nothing.
        assert_eq!(
            events.outcome(stream_closed(), COMMON_SSE_EVENT_CAP),
            stream_closed()
        );
        assert_eq!(events.outcome(session_ended(), 5_000_000), session_ended());
        assert!(events.check(50_000_000).is_ok());
        // A stream closed under 2.7 MiB: explained, not retryable, remembered.
        let err = events.outcome(stream_closed(), 2_800_000);
        assert_eq!(err.status(), 503);
        assert!(!err.retryable);
        assert!(
            err.message.contains("(2.7 MiB as one SSE event)"),
            "{}",
            err.message
        );
        assert!(err.message.contains("max_sse_event_size"));
        assert!(stream_closed().retryable);
        // Requests as large are refused; smaller ones still go.
        let refused = events.check(2_800_000).unwrap_err();
        assert_eq!(refused.status(), 413);
        assert!(!refused.retryable);
        assert!(
            refused
                .message
                .contains("closed under a request of 2.7 MiB"),
            "{}",
            refused.message
        );
        assert!(events.check(2_799_999).is_ok());
        // A close under a smaller event lowers the bar; a larger one does not raise it.
        events.outcome(stream_closed(), 2_000_000);
        events.outcome(stream_closed(), 9_000_000);
        assert!(events.check(2_000_000).is_err());
        assert!(events.check(1_999_999).is_ok());
    }
}
