//! `POST /v1/messages` and `POST /v1/messages/count_tokens`.

use sampling2api_core::ApiError;
use sampling2api_core::api::anthropic::parse_messages_request;
use sampling2api_core::api::stream_framing::StreamFraming;
use sampling2api_core::convert::tokens;
use serde_json::json;
use worker::{Env, Request, Response};

use super::flow::{read_body, sample};
use crate::config::Settings;
use crate::http;
use crate::journal::Journal;
use crate::tenancy::Namespace;

pub async fn messages(
    mut req: Request,
    env: &Env,
    namespace: &Namespace,
    settings: &Settings,
    journal: &mut Journal,
) -> Result<Response, ApiError> {
    let body = read_body(&mut req, settings, journal).await?;
    let request = parse_messages_request(&body, true)?;
    drop(body);
    let stream = request.wants_stream();
    sample(
        &req,
        (env, namespace, settings),
        request,
        (stream, StreamFraming::Anthropic),
        journal,
    )
    .await
}

/// Tools count as the prompt that emulation renders for them (no client is involved).
pub async fn count_tokens(
    mut req: Request,
    settings: &Settings,
    journal: &mut Journal,
) -> Result<Response, ApiError> {
    let body = read_body(&mut req, settings, journal).await?;
    let request = parse_messages_request(&body, false)?;
    journal.model = Some(request.model.clone());
    http::json(
        200,
        json!({"input_tokens": tokens::estimate_request(&request).max(1)}).to_string(),
    )
}
