//! The bodies of `/health` and `/sessions`, one type each, so both runtimes report the same
//! fields. A figure a runtime cannot know cheaply is `null` (see each field).

use serde::Serialize;

/// `GET /health`.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub status: &'static str,
    /// `stdio`, `http` or `worker`.
    pub mode: &'static str,
    pub version: &'static str,
    /// MCP sessions open. `null` on the worker without a token (liveness only: sessions
    /// belong to a token's namespace).
    pub sessions: Option<u64>,
    /// Sessions that can sample now. `null` as `sessions`.
    pub sampling_sessions: Option<u64>,
    /// Sampling requests sent to clients and not answered yet. `null` as `sessions`.
    pub in_flight: Option<u64>,
    /// Requests the sessions' state machines wait on. `null` as `sessions`.
    pub pending: Option<u64>,
    /// Who starts the bridge, or connects to it, and what a person does when it is not there:
    /// Claude Code meets a bridge that is not running as "connection refused".
    pub mcp_client_start: ClientStart,
}

/// How the MCP client comes to the bridge in this mode (see docs/clients.md, "When VS Code
/// starts the bridge"): VS Code starts an MCP server by itself only at the first chat message
/// after its entry is new or changed (`chat.mcp.autostart`), and never in a new window for a
/// server that offers no tools, which this bridge does not.
#[derive(Debug, Clone, Serialize)]
pub struct ClientStart {
    /// `mcp_client`: the client launched this bridge over stdio and ends it when it closes.
    /// `operator`: the bridge runs on its own and clients connect to its `/mcp`.
    pub by: &'static str,
    /// The one action that starts (or connects) the client's side in VS Code.
    pub action: &'static str,
}

/// VS Code's command for a server it does not start by itself.
const START_BY_HAND: &str = "in VS Code: run \"MCP: List Servers\", pick sampling2api, then \
     Start Server (in each new window; `sampling2api connect vscode --write` sets it up)";

impl ClientStart {
    pub fn for_mode(mode: &str) -> Self {
        ClientStart {
            by: if mode == "stdio" {
                "mcp_client"
            } else {
                "operator"
            },
            action: START_BY_HAND,
        }
    }
}

impl Health {
    /// Liveness without the session figures.
    pub fn alive(mode: &'static str) -> Self {
        Health {
            status: "ok",
            mode,
            version: env!("CARGO_PKG_VERSION"),
            sessions: None,
            sampling_sessions: None,
            in_flight: None,
            pending: None,
            mcp_client_start: ClientStart::for_mode(mode),
        }
    }

    pub fn with_sessions(
        mode: &'static str,
        sessions: u64,
        sampling_sessions: u64,
        in_flight: u64,
        pending: u64,
    ) -> Self {
        Health {
            sessions: Some(sessions),
            sampling_sessions: Some(sampling_sessions),
            in_flight: Some(in_flight),
            pending: Some(pending),
            ..Health::alive(mode)
        }
    }
}

/// One entry of `GET /sessions`.
#[derive(Debug, Clone, Serialize)]
pub struct SessionInfo {
    /// The public handle (`mcps_…`), never the secret `Mcp-Session-Id`.
    pub id: String,
    pub client_name: Option<String>,
    pub client_version: Option<String>,
    pub protocol_version: Option<String>,
    /// The client declared `sampling`.
    pub sampling: bool,
    /// The client declared `sampling.tools`.
    pub sampling_tools: bool,
    /// How tools reach this client (`native` or `emulated`); `null` without `sampling`.
    pub tools: Option<&'static str>,
    /// Initialized with `sampling`: API requests can go here.
    pub ready: bool,
    /// Its event stream (`GET /mcp`) is open; stdio: always.
    pub event_stream_open: bool,
    /// Sampling requests sent and not answered yet; `null` on the worker (it would cost a
    /// call to every session object per listing).
    pub pending: Option<u64>,
}

/// The `/sessions` body: `{"data": [...]}`, sorted by id so listings are stable.
pub fn sessions_body(mut sessions: Vec<SessionInfo>) -> String {
    sessions.sort_by(|a, b| a.id.cmp(&b.id));
    #[derive(Serialize)]
    struct Body {
        data: Vec<SessionInfo>,
    }
    serde_json::to_string(&Body { data: sessions }).unwrap_or_else(|_| r#"{"data":[]}"#.into())
}

/// The `/health` body.
pub fn health_body(health: &Health) -> String {
    serde_json::to_string(health).unwrap_or_else(|_| r#"{"status":"ok"}"#.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_has_every_field_even_when_unknown() {
        let alive: serde_json::Value =
            serde_json::from_str(&health_body(&Health::alive("worker"))).unwrap();
        let full: serde_json::Value =
            serde_json::from_str(&health_body(&Health::with_sessions("http", 2, 1, 3, 3))).unwrap();
        let keys = |v: &serde_json::Value| {
            let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            keys.sort();
            keys
        };
        assert_eq!(keys(&alive), keys(&full));
        assert!(alive["sessions"].is_null());
        assert_eq!(full["sampling_sessions"], 1);
        assert_eq!(full["mcp_client_start"]["by"], "operator");
        assert!(
            full["mcp_client_start"]["action"]
                .as_str()
                .unwrap()
                .contains("MCP: List Servers")
        );
        let stdio: serde_json::Value =
            serde_json::from_str(&health_body(&Health::alive("stdio"))).unwrap();
        assert_eq!(stdio["mcp_client_start"]["by"], "mcp_client");
    }

    #[test]
    fn sessions_are_sorted_by_id() {
        let info = |id: &str| SessionInfo {
            id: id.into(),
            client_name: None,
            client_version: None,
            protocol_version: None,
            sampling: false,
            sampling_tools: false,
            tools: None,
            ready: false,
            event_stream_open: false,
            pending: None,
        };
        let body: serde_json::Value =
            serde_json::from_str(&sessions_body(vec![info("b"), info("a")])).unwrap();
        assert_eq!(body["data"][0]["id"], "a");
        assert!(body["data"][1]["pending"].is_null());
    }
}
