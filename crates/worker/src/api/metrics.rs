//! `GET /metrics`.

use sampling2api_core::ApiError;
use sampling2api_core::ops::metrics::Gauges;
use worker::{Env, Response};

use super::{loads, unavailable_reason};
use crate::http::internal;
use crate::registry_client::RegistryClient;
use crate::session_protocol::SessionLoad;
use crate::tenancy::Namespace;

/// `/metrics` for the caller's namespace: the registry's totals, plus in-flight and queued
/// counts asked of each of its sessions at scrape time.
pub async fn metrics(env: &Env, namespace: &Namespace) -> Result<Response, ApiError> {
    let registry = RegistryClient::new(env, namespace)?;
    let totals = registry.metrics().await?;
    let listed = registry.sessions().await?;
    let loads: Vec<SessionLoad> = loads(env, namespace, &listed)
        .await
        .into_iter()
        .flatten()
        .collect();
    let gauges = Gauges {
        in_flight: loads.iter().map(|load| load.in_flight).sum(),
        queued: loads.iter().map(|load| load.queued).sum(),
        sessions: listed.len() as u64,
        sampling_sessions: listed
            .iter()
            .filter(|entry| unavailable_reason(entry).is_none())
            .count() as u64,
    };
    let headers = worker::Headers::new();
    headers
        .set("content-type", "text/plain; version=0.0.4; charset=utf-8")
        .map_err(internal)?;
    Ok(Response::ok(totals.render(gauges))
        .map_err(internal)?
        .with_headers(headers))
}
