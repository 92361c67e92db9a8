//! The one error type every API failure becomes, and its Anthropic wire shape.
//!
//! Each kind fixes the HTTP status, the Anthropic `error.type`, and whether an SDK should retry
//! (sent as `x-should-retry`), so that the native binary and the worker answer identically.

use serde::{Deserialize, Serialize};

/// What went wrong, in terms a client can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// Structurally broken request (bad JSON, missing or mistyped field): 400.
    InvalidRequest,
    /// Missing or wrong API key: 401.
    Authentication,
    /// Refused on purpose (the person at the MCP client declined, or a forbidden origin): 403.
    Permission,
    /// Unknown route or unknown MCP session: 404.
    NotFound,
    /// A known route asked with a method it does not answer: 405.
    MethodNotAllowed,
    /// The request's body did not arrive in time: 408.
    RequestTimeout,
    /// Body over the size cap: 413.
    RequestTooLarge,
    /// Headers over the bridge's bound (`request_headers`): 431, with the same error type as a
    /// body over its cap.
    HeadersTooLarge,
    /// Too many requests in flight: 429.
    RateLimit,
    /// The MCP client failed or sent something unusable: 500.
    Api,
    /// No MCP client able to sample is connected (or it went away): 503.
    Unavailable,
    /// The deadline passed before the MCP client answered: 504.
    Timeout,
    /// The bridge is saturated: 529.
    Overloaded,
}

impl ErrorKind {
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::InvalidRequest => 400,
            ErrorKind::Authentication => 401,
            ErrorKind::Permission => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::RequestTimeout => 408,
            ErrorKind::RequestTooLarge => 413,
            ErrorKind::HeadersTooLarge => 431,
            ErrorKind::RateLimit => 429,
            ErrorKind::Api => 500,
            ErrorKind::Unavailable => 503,
            ErrorKind::Timeout => 504,
            ErrorKind::Overloaded => 529,
        }
    }

    /// The Anthropic `error.type` string.
    pub fn type_name(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest | ErrorKind::MethodNotAllowed => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::Permission => "permission_error",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::RequestTooLarge | ErrorKind::HeadersTooLarge => "request_too_large",
            ErrorKind::RateLimit => "rate_limit_error",
            ErrorKind::Api | ErrorKind::Unavailable => "api_error",
            ErrorKind::Timeout | ErrorKind::RequestTimeout => "timeout_error",
            ErrorKind::Overloaded => "overloaded_error",
        }
    }

    /// Whether repeating the same request can succeed; SDKs read it from `x-should-retry`.
    pub fn default_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimit
                | ErrorKind::RequestTimeout
                | ErrorKind::Api
                | ErrorKind::Unavailable
                | ErrorKind::Timeout
                | ErrorKind::Overloaded
        )
    }
}

/// An API failure: kind, human message, retry hint. Serializable, so that a Durable Object can
/// hand it to the Worker that serves the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{} ({}): {message}", kind.type_name(), kind.status())]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    pub retryable: bool,
    /// Seconds for a `retry-after` header, where waiting is the fix.
    pub retry_after_secs: Option<u64>,
    /// What the caller is not shown (a client's error in full, with its stack trace): the
    /// runtime that ends the request logs it at debug level. Never in a body, never carried
    /// from a Durable Object to the Worker.
    #[serde(skip)]
    pub detail: Option<String>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            retryable: kind.default_retryable(),
            retry_after_secs: None,
            detail: None,
        }
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    pub fn api(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Api, message)
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Timeout, message)
    }

    /// A request body over the configured cap (413), in both runtimes' words.
    pub fn body_too_large(limit: usize) -> Self {
        Self::new(
            ErrorKind::RequestTooLarge,
            format!("request body is larger than the {limit}-byte limit"),
        )
    }

    /// A body that did not arrive within `timeout_secs` (slow or stalled sender).
    pub fn body_too_slow(timeout_secs: u64) -> Self {
        Self::new(
            ErrorKind::RequestTimeout,
            format!("the request body did not arrive within {timeout_secs} s"),
        )
    }

    /// The deadline passed before the client answered; both runtimes say it the same way.
    pub fn deadline_passed(timeout_ms: u64) -> Self {
        Self::timeout(format!(
            "the MCP client did not answer within {}",
            shown_millis(timeout_ms)
        ))
    }

    pub fn not_retryable(mut self) -> Self {
        self.retryable = false;
        self
    }

    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The JSON body: `{"type":"error","error":{"type","message"},"request_id"}`.
    pub fn to_body(&self, request_id: &str) -> String {
        let envelope = ErrorEnvelope {
            kind: "error",
            error: ErrorDetail {
                kind: self.kind.type_name(),
                message: &self.message,
            },
            request_id,
        };
        serde_json::to_string(&envelope).unwrap_or_else(|_| fallback_body(request_id))
    }

    /// The data of an SSE `event: error` frame (no request id: the headers already carried it).
    pub fn to_stream_data(&self) -> String {
        let frame = StreamErrorFrame {
            kind: "error",
            error: ErrorDetail {
                kind: self.kind.type_name(),
                message: &self.message,
            },
        };
        serde_json::to_string(&frame).unwrap_or_else(|_| {
            r#"{"type":"error","error":{"type":"api_error","message":"internal error"}}"#.into()
        })
    }

    /// Headers besides content-type and request-id that every runtime sets on this error.
    pub fn extra_headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![(
            "x-should-retry",
            if self.retryable { "true" } else { "false" }.to_string(),
        )];
        if let Some(secs) = self.retry_after_secs {
            headers.push(("retry-after", secs.to_string()));
        }
        headers
    }
}

fn fallback_body(request_id: &str) -> String {
    // Only reachable if serialising two strings fails, which serde_json does not do; kept so
    // that an error path can never itself panic.
    format!(
        r#"{{"type":"error","error":{{"type":"api_error","message":"internal error"}},"request_id":{}}}"#,
        serde_json::Value::String(request_id.to_string())
    )
}

#[derive(Serialize)]
struct ErrorEnvelope<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: ErrorDetail<'a>,
    request_id: &'a str,
}

#[derive(Serialize)]
struct StreamErrorFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
}

/// A duration in error texts, the same on both runtimes: whole seconds as "600 s", anything
/// finer as "1500 ms".
pub fn shown_millis(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn every_kind_has_the_documented_status_and_type() {
        let table = [
            (
                ErrorKind::InvalidRequest,
                400,
                "invalid_request_error",
                false,
            ),
            (
                ErrorKind::Authentication,
                401,
                "authentication_error",
                false,
            ),
            (ErrorKind::Permission, 403, "permission_error", false),
            (ErrorKind::NotFound, 404, "not_found_error", false),
            (
                ErrorKind::MethodNotAllowed,
                405,
                "invalid_request_error",
                false,
            ),
            (ErrorKind::RequestTooLarge, 413, "request_too_large", false),
            (ErrorKind::RateLimit, 429, "rate_limit_error", true),
            (ErrorKind::Api, 500, "api_error", true),
            (ErrorKind::Unavailable, 503, "api_error", true),
            (ErrorKind::Timeout, 504, "timeout_error", true),
            (ErrorKind::Overloaded, 529, "overloaded_error", true),
        ];
        for (kind, status, name, retry) in table {
            assert_eq!(kind.status(), status);
            assert_eq!(kind.type_name(), name);
            assert_eq!(kind.default_retryable(), retry, "{kind:?}");
        }
    }

    #[test]
    fn body_is_the_anthropic_envelope() {
        let err = ApiError::invalid_request("max_tokens: Field required");
        let body: Value = serde_json::from_str(&err.to_body("req_1")).unwrap();
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["message"], "max_tokens: Field required");
        assert_eq!(body["request_id"], "req_1");
        let frame: Value = serde_json::from_str(&err.to_stream_data()).unwrap();
        assert_eq!(frame["type"], "error");
        assert_eq!(frame["error"]["type"], "invalid_request_error");
    }

    #[test]
    fn deadlines_read_naturally() {
        assert_eq!(
            ApiError::deadline_passed(3000).message,
            "the MCP client did not answer within 3 s"
        );
        assert_eq!(
            ApiError::deadline_passed(2500).message,
            "the MCP client did not answer within 2500 ms"
        );
        assert_eq!(ApiError::deadline_passed(1).status(), 504);
    }

    #[test]
    fn retry_hints_become_headers() {
        let mut err = ApiError::new(ErrorKind::RateLimit, "slow down");
        err.retry_after_secs = Some(3);
        let headers = err.extra_headers();
        assert!(headers.contains(&("x-should-retry", "true".into())));
        assert!(headers.contains(&("retry-after", "3".into())));
        let declined = ApiError::new(ErrorKind::Permission, "declined");
        assert_eq!(
            declined.extra_headers(),
            vec![("x-should-retry", "false".into())]
        );
    }
}
