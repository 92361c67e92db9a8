//! The one set of error texts for everything that refuses a sampling request or ends its
//! lifecycle early: over the session's in-flight and queue limits (429), a client that does not
//! read, the queue's timeout, no event stream, the session or its stream ending, the caller
//! leaving. [`crate::lifecycle::SessionLifecycle`] owns the slots and the queue.

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

/// A request refused or failed because its session ended (closed, expired, or `DELETE`d).
pub fn session_ended() -> ApiError {
    ApiError::unavailable("the MCP session has ended")
}

/// The client's current event stream closed while a request sent on it waited for its answer.
pub fn stream_closed() -> ApiError {
    ApiError::unavailable("the MCP client's event stream closed before it answered")
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
}
