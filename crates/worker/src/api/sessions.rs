//! `GET /sessions`.

use sampling2api_core::ops::health::{SessionInfo, sessions_body};
use sampling2api_core::{ApiError, ids};
use worker::{Env, Response};

use super::{sessions, unavailable_reason};
use crate::config::Settings;
use crate::http;
use crate::tenancy::Namespace;

/// `/sessions`: the same fields as natively; `pending` is `null` (it would cost a call to
/// every session object per listing).
pub async fn list_sessions(
    env: &Env,
    namespace: &Namespace,
    settings: &Settings,
) -> Result<Response, ApiError> {
    let listed = sessions(env, namespace).await?;
    let data = listed
        .iter()
        .map(|entry| SessionInfo {
            id: ids::session_handle(&entry.id),
            client_name: entry.client_name.clone(),
            client_version: entry.client_version.clone(),
            protocol_version: Some(entry.protocol_version.clone()),
            sampling: entry.sampling.is_some(),
            sampling_tools: entry.sampling.is_some_and(|s| s.tools),
            tools: entry
                .sampling
                .map(|support| settings.tool_mode.delivery(support).as_str()),
            ready: unavailable_reason(entry).is_none(),
            event_stream_open: entry.stream_open,
            pending: None,
        })
        .collect();
    http::json(200, sessions_body(data))
}
