//! `POST /v1/messages` and `POST /v1/messages/count_tokens`.

use std::future::Future;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use sampling2api_core::api::anthropic::parse_messages_request;
use sampling2api_core::api::stream_framing::StreamFraming;
use sampling2api_core::convert::tokens;
use sampling2api_core::flow::answer::json_body;
use sampling2api_core::http::routes::{self, Endpoint};
use serde_json::json;

use super::context::RequestId;
use super::error::{HttpError, json_response};
use super::flow::{complete, read_json, receive, stream_response};
use crate::bridge::Bridge;

/// Not an `async fn`, which would keep its arguments (the whole request) for as long as the
/// request waits for its answer: see `flow::receive`.
pub fn create_message(
    State(bridge): State<Arc<Bridge>>,
    request_id: RequestId,
    request: Request,
) -> impl Future<Output = Result<Response, HttpError>> + Send {
    let tag = (request_id.clone(), routes::path_of(Endpoint::Messages));
    let receiving = receive(bridge.clone(), request, tag, |body| {
        parse_messages_request(body, true).map(|request| ((), request))
    });
    async move {
        let fail = |err| request_id.error(err);
        let ((), accepted) = receiving.await.map_err(fail)?;
        let log = accepted.log();
        // Inline, not a shared `async fn`: one would keep the accepted request in its state
        // while the answer is awaited (see `waiting` in api/mod.rs, which measures it).
        let mut response = if accepted.stream {
            stream_response(bridge, accepted, StreamFraming::Anthropic)
        } else {
            let body = complete(&bridge, accepted, |response| {
                json_body(StreamFraming::Anthropic, &response)
            })
            .await;
            match body {
                Ok(body) => json_response(StatusCode::OK, body),
                Err(err) => fail(err).into_response(),
            }
        };
        response.extensions_mut().insert(log);
        Ok(response)
    }
}

/// `count_tokens`: the same estimator as `usage`, no client involved (tools count as the
/// prompt that emulation renders for them).
pub async fn count_tokens(
    State(bridge): State<Arc<Bridge>>,
    request_id: RequestId,
    request: Request,
) -> Result<Response, HttpError> {
    // Taken apart rather than extracted piecewise: a `HeaderMap` extractor copies the map.
    let (Parts { headers, .. }, body) = request.into_parts();
    let (input_tokens, _) = read_json(&bridge, &headers, body, |body| {
        parse_messages_request(body, false).map(|request| tokens::estimate_request(&request).max(1))
    })
    .await
    .map_err(|err| request_id.error(err))?;
    Ok(json_response(
        StatusCode::OK,
        json!({"input_tokens": input_tokens}).to_string(),
    ))
}
