//! `NamespaceRegistry`: one Durable Object per token namespace, listing its sessions (for
//! routing without `x-mcp-session-id`) and the models its clients answered with, and keeping
//! the namespace's metric totals (each isolate sends batches of its requests' records).
//! Everything lives in storage; the object holds no connection, so it sleeps between calls.

use sampling2api_core::api::models::remember_reported;
use sampling2api_core::ops::metrics::MetricTotals;
use sampling2api_core::ops::status::RequestHistory;
use worker::{DurableObject, Env, Request, Response, Result, State, durable_object};

use crate::config::Settings;
use crate::http::request_json;
use crate::registry_client::{
    Records, RegistryRoute, Removed, ReportedModel, SessionEntry, SessionStatus,
};

const SESSIONS: &str = "sessions";
const MODELS: &str = "models";
const METRICS: &str = "metrics";
/// The status page's recent requests and totals per model.
const HISTORY: &str = "history";

#[durable_object]
pub struct NamespaceRegistry {
    state: State,
    max_reported_models: usize,
}

impl DurableObject for NamespaceRegistry {
    fn new(state: State, env: Env) -> Self {
        NamespaceRegistry {
            state,
            max_reported_models: Settings::from_env(&env).max_reported_models,
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let storage = self.state.storage();
        let Some(route) = RegistryRoute::parse(&req.method(), &req.path()) else {
            return Response::error("not found", 404);
        };
        match route {
            RegistryRoute::Sessions => {
                let sessions: Vec<SessionEntry> = storage.get(SESSIONS).await?.unwrap_or_default();
                Response::from_json(&sessions)
            }
            RegistryRoute::AddSession => {
                let entry: SessionEntry = request_json(&mut req).await?;
                let mut sessions: Vec<SessionEntry> =
                    storage.get(SESSIONS).await?.unwrap_or_default();
                sessions.retain(|known| known.id != entry.id);
                sessions.push(entry);
                storage.put(SESSIONS, &sessions).await?;
                Response::empty()
            }
            RegistryRoute::SessionStatus => {
                let status: SessionStatus = request_json(&mut req).await?;
                let mut sessions: Vec<SessionEntry> =
                    storage.get(SESSIONS).await?.unwrap_or_default();
                if status.apply(&mut sessions) {
                    storage.put(SESSIONS, &sessions).await?;
                }
                Response::empty()
            }
            RegistryRoute::RemoveSession { id } => {
                let mut sessions: Vec<SessionEntry> =
                    storage.get(SESSIONS).await?.unwrap_or_default();
                let before = sessions.len();
                sessions.retain(|known| known.id != id);
                storage.put(SESSIONS, &sessions).await?;
                Response::from_json(&Removed {
                    removed: before != sessions.len(),
                })
            }
            RegistryRoute::Models => {
                let models: Vec<(String, u64)> = storage.get(MODELS).await?.unwrap_or_default();
                Response::from_json(&models)
            }
            RegistryRoute::ReportModel => {
                let reported: ReportedModel = request_json(&mut req).await?;
                let mut models: Vec<(String, u64)> = storage.get(MODELS).await?.unwrap_or_default();
                // The same bound and eviction as the native catalog: a client reporting a new
                // name per answer cannot grow the namespace's list forever.
                if remember_reported(
                    &mut models,
                    &reported.model,
                    reported.unix,
                    self.max_reported_models,
                ) {
                    storage.put(MODELS, &models).await?;
                }
                Response::empty()
            }
            RegistryRoute::Metrics => {
                let totals: MetricTotals = storage.get(METRICS).await?.unwrap_or_default();
                Response::from_json(&totals)
            }
            RegistryRoute::History => {
                let history: RequestHistory = storage.get(HISTORY).await?.unwrap_or_default();
                Response::from_json(&history)
            }
            RegistryRoute::AddRecords => {
                let records: Records = request_json(&mut req).await?;
                let mut totals: MetricTotals = storage.get(METRICS).await?.unwrap_or_default();
                totals.merge(&records.metrics);
                storage.put(METRICS, &totals).await?;
                if !records.recent.is_empty() {
                    let mut history: RequestHistory =
                        storage.get(HISTORY).await?.unwrap_or_default();
                    for request in records.recent {
                        history.record(request);
                    }
                    storage.put(HISTORY, &history).await?;
                }
                Response::empty()
            }
        }
    }
}
