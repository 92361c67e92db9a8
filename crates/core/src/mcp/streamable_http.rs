//! The MCP endpoint's rules (Streamable HTTP, handshake era) as pure decisions: from a request's
//! method and headers to what the endpoint does, and the JSON-RPC error bodies it answers with.
//!
//! Both runtimes ask [`decide`] first and carry out the action (look the session up, hand it
//! the body, open its stream, end it); they keep only the I/O, so `/mcp` answers the same on
//! both. Methods other than `POST`, `GET` and `DELETE` never get here: the route table answers
//! them 405.
//!
//! The standalone `GET` stream's SSE events are framed here too ([`push_event`]), once for both
//! runtimes: every event has an `id:` (the lifecycle's [`EventId`]), so that a client whose
//! stream broke reconnects with `Last-Event-ID` and gets again what it missed (see
//! [`crate::lifecycle`]).

use serde_json::json;

use crate::api_error::ApiError;
use crate::ids;
use crate::mcp::session::SUPPORTED_PROTOCOL_VERSIONS;

/// The secret that names a session (see [`ids::session_id`]).
pub const SESSION_ID_HEADER: &str = "mcp-session-id";
/// The version a client negotiated, sent on every request after `initialize`.
pub const PROTOCOL_VERSION_HEADER: &str = "mcp-protocol-version";
/// The last event id a reconnecting client saw on its stream.
pub const LAST_EVENT_ID_HEADER: &str = "last-event-id";

const INVALID_REQUEST: i64 = -32600;
const INTERNAL_ERROR: i64 = -32603;
/// The server-defined codes the endpoint uses.
const SESSION_NOT_FOUND: i64 = -32001;
const SERVER_BUSY: i64 = -32000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum McpMethod {
    Post,
    Get,
    Delete,
}

/// The headers the endpoint decides by. A runtime passes a value that is not visible ASCII as
/// `"\u{fffd}"`, so that it fails every check rather than counting as absent.
#[derive(Debug, Clone, Copy, Default)]
pub struct McpHeaders<'a> {
    pub session_id: Option<&'a str>,
    pub accept: Option<&'a str>,
    pub protocol_version: Option<&'a str>,
    pub last_event_id: Option<&'a str>,
}

/// What the endpoint does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McpAction<'a> {
    /// `POST` without a session: the body may open one (see [`refused_start`]).
    Start,
    /// `POST` in session `id`: hand it the body.
    Deliver(&'a str),
    /// `GET`: open session `id`'s event stream; `resume_after`: the client's `Last-Event-ID`,
    /// if it is one of ours (the spec lets a server ignore the header, and a value that is not
    /// an id this server writes is ignored rather than refused).
    OpenStream {
        id: &'a str,
        resume_after: Option<EventId>,
    },
    /// `DELETE`: end session `id`.
    End(&'a str),
    /// Answer this and nothing else.
    Refuse(McpAnswer),
}

/// A JSON response of the endpoint's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpAnswer {
    pub status: u16,
    pub body: String,
}

pub fn decide<'a>(method: McpMethod, headers: &McpHeaders<'a>) -> McpAction<'a> {
    let Some(id) = headers.session_id else {
        return match method {
            McpMethod::Post => McpAction::Start,
            McpMethod::Get => {
                McpAction::Refuse(invalid(400, "GET needs the Mcp-Session-Id header"))
            }
            McpMethod::Delete => {
                McpAction::Refuse(invalid(400, "DELETE needs the Mcp-Session-Id header"))
            }
        };
    };
    // An id of another format names no session; nothing is looked up.
    if !ids::is_session_id(id) {
        return McpAction::Refuse(unknown_session());
    }
    // In a session the client negotiated a handshake-era version; a request naming another
    // is from a client that lost track of it (and a request without a session may be a
    // dual-era client's probe, answered by the session state machine).
    if let Some(version) = headers.protocol_version
        && !SUPPORTED_PROTOCOL_VERSIONS.contains(&version)
    {
        return McpAction::Refuse(invalid(
            400,
            &format!(
                "unsupported MCP-Protocol-Version `{}`: this server speaks {}",
                printable(version),
                SUPPORTED_PROTOCOL_VERSIONS.join(", ")
            ),
        ));
    }
    match method {
        McpMethod::Post => McpAction::Deliver(id),
        McpMethod::Get if !accepts_event_stream(headers.accept) => {
            McpAction::Refuse(invalid(406, "GET must accept text/event-stream"))
        }
        McpMethod::Get => McpAction::OpenStream {
            id,
            resume_after: headers.last_event_id.and_then(EventId::parse),
        },
        McpMethod::Delete => McpAction::End(id),
    }
}

/// No `Accept` is anything; otherwise it must name the event stream or `*/*`.
fn accepts_event_stream(accept: Option<&str>) -> bool {
    accept.is_none_or(|accept| accept.contains("text/event-stream") || accept.contains("*/*"))
}

/// Appends one SSE event of the standalone stream: `id:`, the `message` type, and `data` (a
/// JSON-RPC message; empty for the priming event, which clients of 2025-11-25 take as an id
/// without a message). A line break in `data` (JSON whitespace) starts another `data:` line,
/// which the client joins back with a line feed, so no text can end the event early.
pub fn push_event(out: &mut String, id: EventId, data: &str) {
    use std::fmt::Write;
    out.reserve(data.len() + 40);
    // Writing to a String cannot fail.
    let _ = write!(out, "id: {id}\nevent: message\n");
    // Byte searches (memchr, optimised even in a debug build's std): a char-set pattern
    // walked a 4 MB message character by character, 200 ms in a debug build.
    let bytes = data.as_bytes();
    if bytes.contains(&b'\n') || bytes.contains(&b'\r') {
        for line in data.split(['\n', '\r']) {
            out.push_str("data: ");
            out.push_str(line);
            out.push('\n');
        }
    } else {
        out.push_str("data: ");
        out.push_str(data);
        out.push('\n');
    }
    out.push('\n');
}

/// [`push_event`] into a new string.
pub fn event(id: EventId, data: &str) -> String {
    let mut out = String::new();
    push_event(&mut out, id, data);
    out
}

/// A JSON-RPC error with no id, the body of every refusal here.
pub fn error_body(code: i64, message: &str) -> String {
    json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}}).to_string()
}

fn answer(status: u16, code: i64, message: &str) -> McpAnswer {
    McpAnswer {
        status,
        body: error_body(code, message),
    }
}

fn invalid(status: u16, message: &str) -> McpAnswer {
    answer(status, INVALID_REQUEST, message)
}

/// A session id that names no session (never was, ended, or timed out): the client starts
/// over with `initialize`.
pub fn unknown_session() -> McpAnswer {
    answer(
        404,
        SESSION_NOT_FOUND,
        "session not found; send initialize to start a new one",
    )
}

/// A `POST` without a session that did not initialize one (a dual-era client's
/// `server/discover` probe, say): the session state machine's reply if it made one (the error
/// that sends such a client to `initialize`), else this endpoint's.
pub fn refused_start(reply: Option<String>) -> McpAnswer {
    match reply {
        Some(body) => McpAnswer { status: 400, body },
        None => invalid(400, "no Mcp-Session-Id header: send initialize first"),
    }
}

/// `initialize` while `limit` sessions are open.
pub fn too_many_sessions(limit: usize) -> McpAnswer {
    answer(
        503,
        SERVER_BUSY,
        &format!(
            "{limit} MCP sessions are open, as many as --max-sessions allows; end one (DELETE) or retry later"
        ),
    )
}

/// The session failed to handle a message for reasons of its own.
pub fn internal_error(err: &ApiError) -> McpAnswer {
    answer(500, INTERNAL_ERROR, &err.message)
}

/// A header value echoed in an error: short and without control characters.
fn printable(value: &str) -> String {
    value.chars().filter(|c| !c.is_control()).take(40).collect()
}

/// The number of one message event the session sent on its event stream: the SSE `id:`, and
/// what a reconnecting client names in `Last-Event-ID`. Rises by one per event across the
/// whole session, whichever stream carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(pub u64);

impl EventId {
    /// A `Last-Event-ID` header value as this server writes ids: decimal digits that fit a
    /// `u64` (at most 20 of them). Anything else is `None`, and the header counts as absent.
    pub fn parse(value: &str) -> Option<EventId> {
        let value = value.trim_matches([' ', '\t']);
        if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        value.parse().ok().map(EventId)
    }
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    fn headers(session_id: Option<&str>) -> McpHeaders<'_> {
        McpHeaders {
            session_id,
            ..McpHeaders::default()
        }
    }

    fn refused(action: McpAction<'_>) -> (u16, i64, String) {
        let McpAction::Refuse(answer) = action else {
            panic!("not refused: {action:?}");
        };
        let body: Value = serde_json::from_str(&answer.body).unwrap();
        assert_eq!(body["jsonrpc"], "2.0");
        assert_eq!(body["id"], Value::Null);
        (
            answer.status,
            body["error"]["code"].as_i64().unwrap(),
            body["error"]["message"].as_str().unwrap().to_string(),
        )
    }

    #[test]
    fn without_a_session_post_starts_and_the_rest_is_refused() {
        assert_eq!(decide(McpMethod::Post, &headers(None)), McpAction::Start);
        let (status, code, message) = refused(decide(McpMethod::Get, &headers(None)));
        assert_eq!((status, code), (400, -32600));
        assert_eq!(message, "GET needs the Mcp-Session-Id header");
        let (status, _, message) = refused(decide(McpMethod::Delete, &headers(None)));
        assert_eq!(status, 400);
        assert!(message.starts_with("DELETE"));
    }

    #[test]
    fn a_session_id_of_another_format_is_an_unknown_session() {
        for id in ["", "abc", &ID.to_uppercase(), &format!("{ID}0"), "\u{fffd}"] {
            for method in [McpMethod::Post, McpMethod::Get, McpMethod::Delete] {
                let (status, code, message) = refused(decide(method, &headers(Some(id))));
                assert_eq!((status, code), (404, -32001), "{id:?}");
                assert!(message.contains("send initialize"));
            }
        }
    }

    #[test]
    fn a_valid_id_reaches_its_action() {
        assert_eq!(
            decide(McpMethod::Post, &headers(Some(ID))),
            McpAction::Deliver(ID)
        );
        assert_eq!(
            decide(McpMethod::Get, &headers(Some(ID))),
            McpAction::OpenStream {
                id: ID,
                resume_after: None
            }
        );
        assert_eq!(
            decide(McpMethod::Delete, &headers(Some(ID))),
            McpAction::End(ID)
        );
    }

    #[test]
    fn get_must_accept_the_event_stream() {
        for accept in [
            "text/event-stream",
            "application/json, text/event-stream",
            "*/*",
        ] {
            let with = McpHeaders {
                accept: Some(accept),
                ..headers(Some(ID))
            };
            assert_eq!(
                decide(McpMethod::Get, &with),
                McpAction::OpenStream {
                    id: ID,
                    resume_after: None
                }
            );
        }
        let json_only = McpHeaders {
            accept: Some("application/json"),
            ..headers(Some(ID))
        };
        let (status, code, _) = refused(decide(McpMethod::Get, &json_only));
        assert_eq!((status, code), (406, -32600));
        // POST and DELETE are not about the stream.
        assert_eq!(decide(McpMethod::Post, &json_only), McpAction::Deliver(ID));
    }

    #[test]
    fn an_unsupported_protocol_version_in_a_session_is_400() {
        let with = |version| McpHeaders {
            protocol_version: Some(version),
            ..headers(Some(ID))
        };
        for version in SUPPORTED_PROTOCOL_VERSIONS {
            assert_eq!(
                decide(McpMethod::Post, &with(version)),
                McpAction::Deliver(ID)
            );
        }
        let (status, code, message) = refused(decide(McpMethod::Get, &with("2099-01-01\n")));
        assert_eq!((status, code), (400, -32600));
        assert!(message.contains("`2099-01-01`") && message.contains("2025-11-25"));
        // Without a session it is the state machine's to answer (a dual-era probe).
        let probe = McpHeaders {
            protocol_version: Some("2026-07-28"),
            ..headers(None)
        };
        assert_eq!(decide(McpMethod::Post, &probe), McpAction::Start);
    }

    #[test]
    fn last_event_id_is_passed_on_when_it_is_one_of_ours_and_ignored_otherwise() {
        let with = |last| McpHeaders {
            last_event_id: Some(last),
            ..headers(Some(ID))
        };
        assert_eq!(
            decide(McpMethod::Get, &with("41")),
            McpAction::OpenStream {
                id: ID,
                resume_after: Some(EventId(41))
            }
        );
        for foreign in [
            "",
            "abc",
            "-3",
            "4.5",
            "99999999999999999999999",
            "\u{fffd}",
        ] {
            assert_eq!(
                decide(McpMethod::Get, &with(foreign)),
                McpAction::OpenStream {
                    id: ID,
                    resume_after: None
                },
                "{foreign:?}"
            );
        }
        // Only a GET resumes.
        assert_eq!(decide(McpMethod::Post, &with("41")), McpAction::Deliver(ID));
    }

    #[test]
    fn events_carry_their_id_and_no_data_can_end_them_early() {
        assert_eq!(
            event(EventId(7), r#"{"a":1}"#),
            "id: 7\nevent: message\ndata: {\"a\":1}\n\n"
        );
        // The priming event: an id, empty data.
        assert_eq!(event(EventId(1), ""), "id: 1\nevent: message\ndata: \n\n");
        // JSON with line breaks as whitespace: every line is a data line.
        assert_eq!(
            event(EventId(2), "{\n\"a\":\r\n1}"),
            "id: 2\nevent: message\ndata: {\ndata: \"a\":\ndata: \ndata: 1}\n\n"
        );
        let mut out = String::from(": keepalive\n\n");
        push_event(&mut out, EventId(3), "x");
        assert_eq!(out, ": keepalive\n\nid: 3\nevent: message\ndata: x\n\n");
    }

    #[test]
    fn answers() {
        assert_eq!(refused_start(Some("{}".into())).body, "{}");
        let refused = refused_start(None);
        assert_eq!(refused.status, 400);
        assert!(refused.body.contains("send initialize first"));
        let busy = too_many_sessions(3);
        assert_eq!(busy.status, 503);
        assert!(busy.body.contains("-32000") && busy.body.contains("3 MCP sessions"));
        let failed = internal_error(&ApiError::api("boom"));
        assert_eq!(failed.status, 500);
        assert!(failed.body.contains("-32603") && failed.body.contains("boom"));
        assert!(unknown_session().body.contains("-32001"));
    }
}
