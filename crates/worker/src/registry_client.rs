//! The typed client of a namespace's registry (`NamespaceRegistry`): its routes
//! ([`RegistryRoute`], which the object matches on too) and the messages they carry. The Worker
//! and the session objects call it.

use sampling2api_core::ApiError;
use sampling2api_core::mcp::sampling::ClientSupport;
use sampling2api_core::ops::metrics::MetricTotals;
use sampling2api_core::ops::status::{RecentRequest, RequestHistory};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use worker::{Env, Method, Response, Stub};

use crate::http::{call, read_json};
use crate::tenancy::Namespace;

/// The registry's routes, as the client builds them and the object matches them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryRoute {
    /// `GET /sessions`: every [`SessionEntry`].
    Sessions,
    /// `POST /sessions`: a new [`SessionEntry`] (replacing one with its id).
    AddSession,
    /// `POST /sessions/status`: a session's [`SessionStatus`].
    SessionStatus,
    /// `DELETE /sessions/{id}`.
    RemoveSession { id: String },
    /// `GET /models`: the models clients answered with, `(name, unix time)`.
    Models,
    /// `POST /models`: a [`ReportedModel`].
    ReportModel,
    /// `GET /metrics`: the namespace's `MetricTotals`.
    Metrics,
    /// `GET /history`: the status page's `RequestHistory`.
    History,
    /// `POST /records`: an isolate's batch of finished requests ([`Records`]): their metric
    /// totals and their lines for the history, in one call (they were two).
    AddRecords,
}

const SESSIONS_PREFIX: &str = "/sessions/";

impl RegistryRoute {
    pub fn parse(method: &Method, path: &str) -> Option<RegistryRoute> {
        Some(match (method, path) {
            (Method::Get, "/sessions") => RegistryRoute::Sessions,
            (Method::Post, "/sessions") => RegistryRoute::AddSession,
            (Method::Post, "/sessions/status") => RegistryRoute::SessionStatus,
            (Method::Delete, path) => {
                let id = path.strip_prefix(SESSIONS_PREFIX)?;
                if id.is_empty() || id.contains('/') {
                    return None;
                }
                RegistryRoute::RemoveSession { id: id.to_string() }
            }
            (Method::Get, "/models") => RegistryRoute::Models,
            (Method::Post, "/models") => RegistryRoute::ReportModel,
            (Method::Get, "/metrics") => RegistryRoute::Metrics,
            (Method::Get, "/history") => RegistryRoute::History,
            (Method::Post, "/records") => RegistryRoute::AddRecords,
            _ => return None,
        })
    }

    pub fn method(&self) -> Method {
        match self {
            RegistryRoute::Sessions
            | RegistryRoute::Models
            | RegistryRoute::Metrics
            | RegistryRoute::History => Method::Get,
            RegistryRoute::AddSession
            | RegistryRoute::SessionStatus
            | RegistryRoute::ReportModel
            | RegistryRoute::AddRecords => Method::Post,
            RegistryRoute::RemoveSession { .. } => Method::Delete,
        }
    }

    pub fn path(&self) -> String {
        match self {
            RegistryRoute::Sessions | RegistryRoute::AddSession => "/sessions".into(),
            RegistryRoute::SessionStatus => "/sessions/status".into(),
            RegistryRoute::RemoveSession { id } => format!("{SESSIONS_PREFIX}{id}"),
            RegistryRoute::Models | RegistryRoute::ReportModel => "/models".into(),
            RegistryRoute::Metrics => "/metrics".into(),
            RegistryRoute::History => "/history".into(),
            RegistryRoute::AddRecords => "/records".into(),
        }
    }
}

/// A session as the namespace registry lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionEntry {
    pub id: String,
    pub client_name: Option<String>,
    #[serde(default)]
    pub client_version: Option<String>,
    pub protocol_version: String,
    /// `None`: the client did not declare `sampling`.
    pub sampling: Option<ClientSupport>,
    /// The client sent `notifications/initialized` (reported by its session object).
    #[serde(default)]
    pub ready: bool,
    /// Its event stream is open (reported by its session object). Entries stored before this
    /// field existed read as closed: their streams dropped with that deployment anyway.
    #[serde(default)]
    pub stream_open: bool,
}

/// What a session object reports to its registry when readiness or its stream changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionStatus {
    pub id: String,
    pub ready: bool,
    pub stream_open: bool,
}

impl SessionStatus {
    /// Applies the report to its entry; false: no entry has its id.
    pub fn apply(&self, sessions: &mut [SessionEntry]) -> bool {
        match sessions.iter_mut().find(|entry| entry.id == self.id) {
            Some(entry) => {
                entry.ready = self.ready;
                entry.stream_open = self.stream_open;
                true
            }
            None => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportedModel {
    pub model: String,
    pub unix: u64,
}

/// Finished requests of one namespace, sent together after their responses went out.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Records {
    pub metrics: MetricTotals,
    /// The requests the status page lists (the ones that sample).
    pub recent: Vec<RecentRequest>,
}

/// What `DELETE /sessions/{id}` answers.
#[derive(Debug, Serialize, Deserialize)]
pub struct Removed {
    pub removed: bool,
}

/// Calls one namespace's registry.
pub struct RegistryClient {
    stub: Stub,
}

impl RegistryClient {
    pub fn new(env: &Env, namespace: &Namespace) -> Result<Self, ApiError> {
        Ok(RegistryClient {
            stub: crate::http::stub(env, "REGISTRY", &namespace.0)?,
        })
    }

    async fn call(&self, route: RegistryRoute, body: Option<&[u8]>) -> Result<Response, ApiError> {
        call(&self.stub, route.method(), &route.path(), body, None).await
    }

    async fn get<T: DeserializeOwned>(&self, route: RegistryRoute) -> Result<T, ApiError> {
        let mut response = self.call(route, None).await?;
        read_json(&mut response).await
    }

    async fn post<T: Serialize + ?Sized>(
        &self,
        route: RegistryRoute,
        body: &T,
    ) -> Result<(), ApiError> {
        let body = serde_json::to_vec(body).map_err(|err| ApiError::api(err.to_string()))?;
        self.call(route, Some(&body)).await.map(drop)
    }

    pub async fn sessions(&self) -> Result<Vec<SessionEntry>, ApiError> {
        self.get(RegistryRoute::Sessions).await
    }

    pub async fn add_session(&self, entry: &SessionEntry) -> Result<(), ApiError> {
        self.post(RegistryRoute::AddSession, entry).await
    }

    pub async fn report_status(&self, status: &SessionStatus) -> Result<(), ApiError> {
        self.post(RegistryRoute::SessionStatus, status).await
    }

    pub async fn remove_session(&self, id: &str) -> Result<(), ApiError> {
        let route = RegistryRoute::RemoveSession { id: id.to_string() };
        self.call(route, None).await.map(drop)
    }

    pub async fn models(&self) -> Result<Vec<(String, u64)>, ApiError> {
        self.get(RegistryRoute::Models).await
    }

    pub async fn report_model(&self, model: &ReportedModel) -> Result<(), ApiError> {
        self.post(RegistryRoute::ReportModel, model).await
    }

    pub async fn metrics(&self) -> Result<MetricTotals, ApiError> {
        self.get(RegistryRoute::Metrics).await
    }

    pub async fn history(&self) -> Result<RequestHistory, ApiError> {
        self.get(RegistryRoute::History).await
    }

    pub async fn add_records(&self, records: &Records) -> Result<(), ApiError> {
        self.post(RegistryRoute::AddRecords, records).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_parses_back_from_its_method_and_path() {
        for route in [
            RegistryRoute::Sessions,
            RegistryRoute::AddSession,
            RegistryRoute::SessionStatus,
            RegistryRoute::RemoveSession {
                id: "0123456789abcdef0123456789abcdef".into(),
            },
            RegistryRoute::Models,
            RegistryRoute::ReportModel,
            RegistryRoute::Metrics,
            RegistryRoute::History,
            RegistryRoute::AddRecords,
        ] {
            assert_eq!(
                RegistryRoute::parse(&route.method(), &route.path()),
                Some(route.clone()),
                "{route:?}"
            );
        }
    }

    #[test]
    fn other_methods_and_paths_are_no_route() {
        for (method, path) in [
            (Method::Delete, "/sessions"),
            (Method::Delete, "/sessions/"),
            (Method::Delete, "/sessions/a/b"),
            (Method::Delete, "/models"),
            (Method::Get, "/sessions/status"),
            (Method::Put, "/sessions"),
            (Method::Get, "/records"),
            (Method::Post, "/metrics"),
            (Method::Post, "/recent"),
            (Method::Post, "/history"),
            (Method::Get, "/"),
        ] {
            assert_eq!(
                RegistryRoute::parse(&method, path),
                None,
                "{method:?} {path}"
            );
        }
    }

    fn entry(id: &str) -> SessionEntry {
        SessionEntry {
            id: id.into(),
            client_name: Some("client".into()),
            client_version: Some("1.0".into()),
            protocol_version: "2025-11-25".into(),
            sampling: Some(ClientSupport {
                tools: true,
                multi_block_messages: true,
            }),
            ready: false,
            stream_open: false,
        }
    }

    #[test]
    fn entries_round_trip_and_older_entries_read_as_not_ready_and_closed() {
        let sent = entry("a");
        let back: SessionEntry =
            serde_json::from_slice(&serde_json::to_vec(&sent).unwrap()).unwrap();
        assert_eq!(back, sent);
        let old: SessionEntry = serde_json::from_str(
            r#"{"id":"b","client_name":null,"protocol_version":"2025-06-18","sampling":null}"#,
        )
        .unwrap();
        assert_eq!(
            (old.ready, old.stream_open, old.client_version),
            (false, false, None)
        );
    }

    #[test]
    fn a_status_report_updates_only_its_own_entry() {
        let mut sessions = vec![entry("a"), entry("b")];
        let report = SessionStatus {
            id: "b".into(),
            ready: true,
            stream_open: true,
        };
        assert!(report.apply(&mut sessions));
        assert_eq!((sessions[0].ready, sessions[0].stream_open), (false, false));
        assert_eq!((sessions[1].ready, sessions[1].stream_open), (true, true));
        let unknown = SessionStatus {
            id: "c".into(),
            ready: true,
            stream_open: true,
        };
        assert!(!unknown.apply(&mut sessions));
        assert_eq!(sessions, vec![entry("a"), sessions[1].clone()]);
    }
}
