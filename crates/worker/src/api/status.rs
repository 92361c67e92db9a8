//! `GET /status`: what the status page shows.

use sampling2api_core::ops::status::{ClientStatus, InFlightRequest, StatusSnapshot};
use sampling2api_core::{ApiError, ids};
use worker::{Env, Response};

use super::loads;
use crate::config::Settings;
use crate::http;
use crate::registry_client::RegistryClient;
use crate::tenancy::Namespace;

/// `/status` for the caller's namespace: its sessions, the requests their objects hold now,
/// and the registry's recent requests and totals per model.
pub async fn status(
    env: &Env,
    namespace: &Namespace,
    settings: &Settings,
) -> Result<Response, ApiError> {
    let registry = RegistryClient::new(env, namespace)?;
    let history = registry.history().await?;
    let listed = registry.sessions().await?;
    let loads = loads(env, namespace, &listed).await;
    let clients = listed
        .iter()
        .zip(&loads)
        .map(|(entry, load)| ClientStatus {
            session: ids::session_handle(&entry.id),
            client_name: entry.client_name.clone(),
            client_version: None,
            protocol_version: Some(entry.protocol_version.clone()),
            sampling: entry.sampling.is_some(),
            tools: entry
                .sampling
                .map(|support| settings.tool_mode.delivery(support).as_str().to_string()),
            event_stream_open: None,
            in_flight: load.as_ref().map_or(0, |load| load.in_flight),
            queued: load.as_ref().map_or(0, |load| load.queued),
            consent_may_be_pending: load
                .as_ref()
                .is_some_and(|load| load.consent_may_be_pending),
        })
        .collect();
    let in_flight: Vec<InFlightRequest> = loads
        .into_iter()
        .flatten()
        .flat_map(|load| load.requests)
        .collect();
    let mut snapshot = StatusSnapshot::new(
        "worker",
        worker::Date::now().as_millis(),
        settings.log_prompts,
        clients,
        &in_flight,
        &history,
    );
    snapshot.notes.push(
        "On the worker, a client's version and whether its event stream is open are not shown \
         (the session objects do not report them)."
            .to_string(),
    );
    http::json(200, snapshot.to_json())
}
