//! Why a sampling request produced no result, read from the client's JSON-RPC error, and the
//! API error a caller gets for it, in words a person can act on.
//!
//! What clients send (VS Code's from `mcpTypes.ts` and `mcpSamplingService.ts`):
//! - a person declined: code -1 "User rejected sampling request" (the SDKs' convention), or
//!   VS Code's `-32000` "The user has denied permission to call this method." (a "Not Now" or
//!   "Never" on its notification, a closed notification, a `false` setting, no allowed model);
//!   → 403 `permission_error`, not retryable; for VS Code the message names the setting and the
//!   command that writes it;
//! - the client is going away: "Connection closed", a cancellation → 503;
//! - the model failed: VS Code wraps any error as `-32603` "Unknown error: <JavaScript stack>".
//!   A stack trace is never passed on: callers get the message's first line, and the rest goes
//!   to the runtime's debug log ([`ApiError::detail`]). Rate limits and exhausted quotas arrive
//!   this way too (Copilot's texts: "Sorry, you have been rate-limited. Please wait 42 seconds
//!   before trying again.", "You've exhausted your premium model quota…"): → 429, with
//!   `retry-after` when the text names a wait; a quota is not retryable (waiting seconds does
//!   not renew it);
//! - anything else → 500.

use crate::api_error::{ApiError, ErrorKind};
use crate::mcp::session::ClientFacts;

/// What commonly answers a person declining a sampling request.
const USER_REJECTED: i64 = -1;
/// VS Code's refusal (`McpError.notAllowed()`), code -32000.
pub const VS_CODE_DENIAL: &str = "The user has denied permission to call this method.";
/// The VS Code setting that allows a server to sample, and which models it may use.
pub const VS_CODE_SAMPLING_SETTING: &str = "chat.mcp.serverSampling";
/// The command that writes that setting for the bridge.
pub const CONNECT_VSCODE: &str = "sampling2api connect vscode --write";
/// How much of a client's error message a caller sees (its first line, cut here).
pub const MAX_SHOWN_MESSAGE_BYTES: usize = 1_000;
/// A `retry-after` read from a client's text is capped here (a day).
pub const MAX_RETRY_AFTER_SECS: u64 = 86_400;

/// Why a sampling request did not produce a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SamplingFailure {
    /// The client (or the person at it) refused.
    Declined { message: String },
    /// The client is shutting down or dropped the request ("Connection closed").
    ClientGone { message: String },
    /// The client's model is rate-limited (`quota`: its quota is used up).
    RateLimited {
        message: String,
        retry_after_secs: Option<u64>,
        quota: bool,
    },
    /// The client answered with another JSON-RPC error.
    ClientError { code: i64, message: String },
    /// The client answered with a result that is not a valid `CreateMessageResult`.
    InvalidResult { detail: String },
}

/// Whether a client asks a person before it samples for a server, so that an unanswered
/// prompt can hold requests: VS Code (`clientInfo.name` is its product name: "Visual Studio
/// Code", "Visual Studio Code - Insiders"; "Code - OSS" and "VSCodium" are builds of the same
/// source).
pub fn prompts_for_consent(client: Option<&ClientFacts>) -> bool {
    client
        .and_then(|client| client.client_name.as_deref())
        .is_some_and(is_vscode)
}

fn is_vscode(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("visual studio code") || lower == "code - oss" || lower == "vscodium"
}

impl SamplingFailure {
    /// Reads a client's JSON-RPC error.
    pub fn from_error(code: i64, message: String) -> Self {
        let head = error_head(&message).to_ascii_lowercase();
        let first = first_line(&message).to_ascii_lowercase();
        if code == USER_REJECTED || message.trim() == VS_CODE_DENIAL {
            return SamplingFailure::Declined { message };
        }
        let quota = [
            "quota",
            "exhausted your",
            "credit limit",
            "allowance",
            "usage limit",
        ]
        .iter()
        .any(|words| head.contains(words));
        let rate_limited = [
            "rate limit",
            "rate-limit",
            "ratelimit",
            "rate_limit",
            "too many requests",
        ]
        .iter()
        .any(|words| head.contains(words));
        if quota || rate_limited {
            return SamplingFailure::RateLimited {
                retry_after_secs: retry_after(&head),
                quota,
                message,
            };
        }
        if [
            "connection closed",
            "cancelled",
            "canceled",
            "shutting down",
            "disconnect",
        ]
        .iter()
        .any(|words| first.contains(words))
        {
            return SamplingFailure::ClientGone { message };
        }
        if ["reject", "declin", "denied"]
            .iter()
            .any(|word| first.contains(word))
        {
            return SamplingFailure::Declined { message };
        }
        SamplingFailure::ClientError { code, message }
    }

    /// The API error a caller gets; `client` (who answered) decides the advice.
    pub fn to_api_error(&self, client: Option<&ClientFacts>) -> ApiError {
        match self {
            SamplingFailure::Declined { message } => {
                let mut text = format!(
                    "the MCP client declined the sampling request: {}",
                    shown(message)
                );
                if message.trim() == VS_CODE_DENIAL || prompts_for_consent(client) {
                    text.push_str(&format!(
                        ". VS Code lets an MCP server sample only once a person allows it, and \
                         the bridge's requests take its path for requests outside a tool call: \
                         allow it in the user setting `{VS_CODE_SAMPLING_SETTING}` (the \
                         server's entry with \"allowedOutsideChat\": true and \"allowedModels\" \
                         naming models VS Code has), which `{CONNECT_VSCODE}` writes, or answer \
                         VS Code's notification with \"Allow in this Session\" or \"Always\""
                    ));
                }
                with_detail(ApiError::new(ErrorKind::Permission, text), message).not_retryable()
            }
            SamplingFailure::ClientGone { message } => with_detail(
                ApiError::unavailable(format!(
                    "the MCP client went away before answering: {}",
                    shown(message)
                )),
                message,
            ),
            SamplingFailure::RateLimited {
                message,
                retry_after_secs,
                quota,
            } => {
                let what = if *quota {
                    "the MCP client's model quota is used up"
                } else {
                    "the MCP client's model is rate-limited"
                };
                let mut err = with_detail(
                    ApiError::new(ErrorKind::RateLimit, format!("{what}: {}", shown(message))),
                    message,
                );
                err.retry_after_secs = *retry_after_secs;
                if *quota {
                    err = err.not_retryable();
                }
                err
            }
            SamplingFailure::ClientError { code, message } => with_detail(
                ApiError::api(format!(
                    "the MCP client failed to sample (JSON-RPC error {code}): {}",
                    shown(message)
                )),
                message,
            ),
            SamplingFailure::InvalidResult { detail } => ApiError::api(format!(
                "the MCP client returned an invalid sampling result: {}",
                shown(detail)
            ))
            .not_retryable(),
        }
    }
}

/// The first line of a client's message, bounded.
fn shown(message: &str) -> &str {
    crate::mcp::session::truncate_on_char_boundary(first_line(message), MAX_SHOWN_MESSAGE_BYTES)
}

fn first_line(message: &str) -> &str {
    message.trim().lines().next().unwrap_or_default().trim_end()
}

/// The message part of an error text, before a JavaScript stack's first frame (`    at …`).
fn error_head(message: &str) -> &str {
    let mut end = message.len();
    let mut offset = 0;
    for line in message.split_inclusive('\n') {
        if line.trim_start().starts_with("at ") && offset > 0 {
            end = offset;
            break;
        }
        offset += line.len();
    }
    message.get(..end).unwrap_or(message)
}

/// `err` with the message in full as its detail, when the caller sees less of it.
fn with_detail(mut err: ApiError, message: &str) -> ApiError {
    if message.trim() != shown(message) {
        err.detail = Some(message.to_string());
    }
    err
}

/// The wait a rate-limit text names: "wait 42 seconds", "try again in 2 minutes", "retry
/// after 30", "retry-after: 5", "1 hours 30 minutes", in seconds (a bare number is seconds).
fn retry_after(lowered: &str) -> Option<u64> {
    const CUES: [&str; 6] = [
        "retry-after",
        "retry after",
        "try again in",
        "retry in",
        "wait",
        "reset in",
    ];
    let at = CUES
        .iter()
        .filter_map(|cue| lowered.find(cue).map(|at| at + cue.len()))
        .min()?;
    let rest = lowered.get(at..)?;
    let mut words = rest
        .split(|c: char| c.is_whitespace() || c == ':' || c == ',')
        .filter(|word| !word.is_empty())
        .peekable();
    let mut total: Option<u64> = None;
    while let Some(word) = words.peek().copied() {
        let digits: String = word.chars().take_while(char::is_ascii_digit).collect();
        let Ok(number) = digits.parse::<u64>() else {
            break;
        };
        words.next();
        // A unit may be glued to the number (`30s`) or follow it.
        let glued = word.get(digits.len()..).unwrap_or_default();
        let unit = if glued.is_empty() {
            match words.peek().copied().map(unit_seconds) {
                Some(Some(unit)) => {
                    words.next();
                    unit
                }
                _ => 1,
            }
        } else {
            unit_seconds(glued.trim_end_matches('.')).unwrap_or(1)
        };
        total = Some(
            total
                .unwrap_or(0)
                .saturating_add(number.saturating_mul(unit)),
        );
    }
    total.map(|secs| secs.clamp(1, MAX_RETRY_AFTER_SECS))
}

fn unit_seconds(word: &str) -> Option<u64> {
    match word.trim_end_matches(['.', ')']) {
        "s" | "sec" | "secs" | "second" | "seconds" => Some(1),
        "m" | "min" | "mins" | "minute" | "minutes" => Some(60),
        "h" | "hr" | "hrs" | "hour" | "hours" => Some(3600),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vscode() -> ClientFacts {
        ClientFacts {
            protocol_version: "2025-11-25".into(),
            sampling: None,
            client_name: Some("Visual Studio Code".into()),
            client_version: Some("1.108.0".into()),
        }
    }

    const STACK: &str = "    at McpSamplingService.sample (vscode-file://vscode-app/out/vs/workbench/workbench.desktop.main.js:1:2)\n    at async McpServerRequestHandler.handleServerRequest (file:///x.js:3:4)";

    #[test]
    fn a_vscode_denial_names_the_setting_and_the_fix() {
        let failure = SamplingFailure::from_error(-32000, VS_CODE_DENIAL.into());
        assert!(matches!(failure, SamplingFailure::Declined { .. }));
        for client in [None, Some(vscode())] {
            let err = failure.to_api_error(client.as_ref());
            assert_eq!(err.status(), 403);
            assert_eq!(err.kind.type_name(), "permission_error");
            assert!(!err.retryable);
            assert!(
                err.message.contains("chat.mcp.serverSampling"),
                "{}",
                err.message
            );
            assert!(err.message.contains("sampling2api connect vscode --write"));
            assert!(err.message.contains(VS_CODE_DENIAL));
        }
        // Another client's refusal: no VS Code advice.
        let err = SamplingFailure::from_error(-1, "User rejected sampling request".into())
            .to_api_error(None);
        assert_eq!(err.status(), 403);
        assert!(!err.message.contains("chat.mcp"), "{}", err.message);
    }

    #[test]
    fn a_stack_trace_never_reaches_the_caller() {
        let message = format!("Unknown error: Error: Response contained no choices.\n{STACK}");
        let err =
            SamplingFailure::from_error(-32603, message.clone()).to_api_error(Some(&vscode()));
        assert_eq!(err.status(), 500);
        assert!(err.retryable);
        assert_eq!(
            err.message,
            "the MCP client failed to sample (JSON-RPC error -32603): Unknown error: Error: Response contained no choices."
        );
        assert_eq!(err.detail.as_deref(), Some(message.as_str()));
        // The body carries the message only.
        assert!(!err.to_body("req_1").contains("McpSamplingService"));
        // A one-line message has nothing more to log.
        let err = SamplingFailure::from_error(-32603, "model crashed".into()).to_api_error(None);
        assert_eq!(err.detail, None);
        // A megabyte-long line is cut.
        let err = SamplingFailure::from_error(1, "x".repeat(1 << 20)).to_api_error(None);
        assert!(err.message.len() < MAX_SHOWN_MESSAGE_BYTES + 100);
    }

    #[test]
    fn rate_limits_and_quotas_are_429() {
        let table: &[(&str, Option<u64>, bool)] = &[
            (
                "Unknown error: ChatRateLimited: Sorry, you have been rate-limited. Please wait 42 seconds before trying again.",
                Some(42),
                true,
            ),
            (
                "Unknown error: Error: You've hit the rate limit for this model. Please try again in 2 minutes.",
                Some(120),
                true,
            ),
            (
                "Unknown error: Error: Sorry, your request was rate-limited. Please wait a moment before trying again.",
                None,
                true,
            ),
            (
                "Unknown error: Error: Request Failed: 429 Too Many Requests (retry-after: 7)",
                Some(7),
                true,
            ),
            (
                "Unknown error: Error: rate limited, retry after 1 hours 30 minutes",
                Some(5400),
                true,
            ),
            (
                "Unknown error: ChatQuotaExceeded: You've exhausted your premium model quota. Please enable additional paid premium requests or wait for your allowance to renew.",
                None,
                false,
            ),
            (
                "Unknown error: ChatQuotaExceeded: You've reached your monthly chat messages quota. Upgrade to Copilot Pro or wait for your allowance to renew.",
                None,
                false,
            ),
        ];
        for (text, retry_after, retryable) in table {
            let message = format!("{text}\n{STACK}");
            let err = SamplingFailure::from_error(-32603, message).to_api_error(Some(&vscode()));
            assert_eq!(err.status(), 429, "{text}");
            assert_eq!(err.kind.type_name(), "rate_limit_error");
            assert_eq!(err.retry_after_secs, *retry_after, "{text}");
            assert_eq!(err.retryable, *retryable, "{text}");
            assert!(err.message.ends_with(text), "{}", err.message);
        }
        // Words in a stack frame do not count.
        let err = SamplingFailure::from_error(
            -32603,
            "Unknown error: Error: boom\n    at rateLimiter.quota (x.js:1:1)".into(),
        )
        .to_api_error(None);
        assert_eq!(err.status(), 500);
    }

    #[test]
    fn other_failures_keep_their_classes() {
        for (code, message, status) in [
            (-32000, "Connection closed", 503),
            (-32800, "Request cancelled", 503),
            (-32603, "Unknown error: Canceled: Canceled", 503),
            (1, "user declined", 403),
            (-32603, "model crashed", 500),
        ] {
            let err = SamplingFailure::from_error(code, message.into()).to_api_error(None);
            assert_eq!(err.status(), status, "{message}");
        }
    }

    #[test]
    fn clients_that_prompt_are_vs_code_builds() {
        let named = |name: &str| ClientFacts {
            client_name: Some(name.into()),
            ..vscode()
        };
        for name in [
            "Visual Studio Code",
            "Visual Studio Code - Insiders",
            "Code - OSS",
            "VSCodium",
        ] {
            assert!(prompts_for_consent(Some(&named(name))), "{name}");
        }
        for name in ["mcp", "Cursor", "fast-agent", "Visual Studio"] {
            assert!(!prompts_for_consent(Some(&named(name))), "{name}");
        }
        assert!(!prompts_for_consent(None));
    }
}
