//! `POST /v1/chat/completions`: OpenAI's shape around the same flow as `/v1/messages`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use sampling2api_core::openai::{self, parse_chat_request, to_messages_request};
use sampling2api_core::routes::{self, Endpoint};
use sampling2api_core::stream_framing::StreamFraming;

use super::context::RequestId;
use super::error::{HttpError, json_response};
use super::flow::{accept, complete, read_json, stream_response};
use crate::bridge::{Bridge, unix_now};

pub async fn chat_completions(
    State(bridge): State<Arc<Bridge>>,
    request_id: RequestId,
    request: Request,
) -> Result<Response, HttpError> {
    // Taken apart rather than extracted piecewise: a `HeaderMap` extractor copies the map.
    let (Parts { headers, .. }, body) = request.into_parts();
    let fail = |err| request_id.error(err);
    let ((stream, include_usage, request), body_bytes) =
        read_json(&bridge, &headers, body, |body| {
            let chat = parse_chat_request(body)?;
            let (stream, include_usage) = (chat.wants_stream(), chat.wants_stream_usage());
            Ok((stream, include_usage, to_messages_request(chat)?))
        })
        .await
        .map_err(fail)?;
    let tag = (
        request_id.as_str(),
        routes::path_of(Endpoint::ChatCompletions),
    );
    let accepted = accept(&bridge, &headers, request, body_bytes, tag)
        .await
        .map_err(fail)?;
    let log = accepted.log();
    let created = unix_now();
    let mut response = if stream {
        let framing = StreamFraming::OpenAi {
            created,
            include_usage,
        };
        stream_response(bridge, accepted, framing)
    } else {
        match complete(&bridge, accepted).await {
            Ok(response) => json_response(
                StatusCode::OK,
                openai::to_chat_completion(&response, created).to_string(),
            ),
            Err(err) => fail(err).into_response(),
        }
    };
    response.extensions_mut().insert(log);
    Ok(response)
}
