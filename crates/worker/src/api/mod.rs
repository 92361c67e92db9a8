//! The API routes, served by the Worker with the core; sampling round trips go through the
//! session's Durable Object. One file per route group, as natively (`crates/native/src/api/`):
//! `flow` (a sampling request: accept, admit at the session object, answer or stream),
//! `messages` (with `count_tokens`), `chat_completions`, `models`, `health`, `sessions`,
//! `metrics`, `status`; here, what several of them read (the registry's list of sessions, the
//! model catalog, why a session cannot take requests, each session object's load).

mod chat_completions;
mod flow;
mod health;
mod messages;
mod metrics;
mod models;
mod sessions;
mod status;

pub use chat_completions::chat_completions;
pub use health::namespace_health;
pub use messages::{count_tokens, messages};
pub use metrics::metrics;
pub use models::{get_model, list_models};
pub use sessions::list_sessions;
pub use status::status;

use sampling2api_core::ApiError;
use sampling2api_core::api::models::ModelCatalog;
use worker::{Env, Request};

use crate::config::Settings;
use crate::registry_client::{RegistryClient, SessionEntry};
use crate::session_client::SessionObjectClient;
use crate::session_protocol::SessionLoad;
use crate::tenancy::Namespace;

pub(crate) async fn sessions(
    env: &Env,
    namespace: &Namespace,
) -> Result<Vec<SessionEntry>, ApiError> {
    RegistryClient::new(env, namespace)?.sessions().await
}

pub(crate) fn catalog(settings: &Settings, reported: Vec<(String, u64)>) -> ModelCatalog {
    let mut catalog = ModelCatalog::new(
        settings.model_aliases.clone(),
        settings.default_model_hint.clone(),
        0,
    )
    .with_max_reported(settings.max_reported_models);
    for (model, unix) in reported {
        catalog.record_reported(&model, unix);
    }
    catalog
}

/// `anthropic-version` or `x-api-key`: every Anthropic SDK sends both.
pub fn speaks_anthropic(req: &Request) -> bool {
    let headers = req.headers();
    headers.has("anthropic-version").unwrap_or(false) || headers.has("x-api-key").unwrap_or(false)
}

/// Why API requests cannot go to a listed session, as natively (`Session::unavailable_reason`).
pub(crate) fn unavailable_reason(entry: &SessionEntry) -> Option<ApiError> {
    if entry.sampling.is_none() {
        return Some(
            ApiError::unavailable(format!(
                "the connected MCP client{} did not declare the `sampling` capability, so it cannot answer API requests",
                entry.client_name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default()
            ))
            .not_retryable(),
        );
    }
    (!entry.ready).then(|| {
        ApiError::unavailable(
            "the MCP client has not finished initializing (notifications/initialized)",
        )
    })
}

/// Each listed session object's admission and pending counts, asked at call time (`None`
/// where an object could not be asked), in the listing's order.
pub(crate) async fn loads(
    env: &Env,
    namespace: &Namespace,
    listed: &[SessionEntry],
) -> Vec<Option<SessionLoad>> {
    futures::future::join_all(listed.iter().map(|entry| async move {
        SessionObjectClient::new(env, namespace, &entry.id)
            .ok()?
            .load()
            .await
    }))
    .await
}
