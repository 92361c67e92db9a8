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
