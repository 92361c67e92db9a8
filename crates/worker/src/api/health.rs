//! `GET /health` with a token.

use sampling2api_core::ApiError;
use sampling2api_core::ops::health::{Health, health_body};
use worker::{Env, Response};

use super::{loads, sessions, unavailable_reason};
use crate::http;
use crate::session_protocol::SessionLoad;
use crate::tenancy::Namespace;

/// `/health` with a token: liveness plus that namespace's sessions (without one, the same
/// fields with the session figures `null`: see `lib.rs`).
pub async fn namespace_health(env: &Env, namespace: &Namespace) -> Result<Response, ApiError> {
    let listed = sessions(env, namespace).await?;
    let loads: Vec<SessionLoad> = loads(env, namespace, &listed)
        .await
        .into_iter()
        .flatten()
        .collect();
    let health = Health::with_sessions(
        "worker",
        listed.len() as u64,
        listed
            .iter()
            .filter(|entry| unavailable_reason(entry).is_none())
            .count() as u64,
        loads.iter().map(|load| load.in_flight).sum(),
        loads.iter().map(|load| load.pending).sum(),
    );
    http::json(200, health_body(&health))
}
