//! `POST /v1/messages` and `POST /v1/messages/count_tokens`.

use sampling2api_core::ApiError;
use sampling2api_core::api::anthropic::parse_messages_request;
use sampling2api_core::api::stream_framing::StreamFraming;
use sampling2api_core::convert::tokens;
use sampling2api_core::flow::answer::json_body;
use serde_json::json;
use worker::{Env, Request, Response};

use super::flow::{accept_and_admit, complete_into, read_body, stream};
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
    let (accepted, admitted) =
        accept_and_admit(&req, env, namespace, settings, request, journal).await?;
    if accepted.stream {
        return stream(
            env.clone(),
            Namespace(namespace.0.clone()),
            accepted,
            admitted,
            StreamFraming::Anthropic,
            &req.inner().signal(),
            journal,
        );
    }
    let response = complete_into(env, namespace, accepted, admitted, journal).await?;
    http::json(200, json_body(StreamFraming::Anthropic, &response)?)
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
