//! `POST /v1/chat/completions`: OpenAI's shape around the same flow as `/v1/messages`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use sampling2api_core::openai::{self, parse_chat_request, to_messages_request};
use sampling2api_core::stream_framing::StreamFraming;

use crate::api::{json_response, openai_error_response};
use crate::bridge::{Bridge, unix_now};
use crate::messages::{accept, complete, read_json, request_id_of, stream_response};

pub async fn chat_completions(State(bridge): State<Arc<Bridge>>, request: Request) -> Response {
    let request_id = request_id_of(&request);
    let (parts, body) = request.into_parts();
    let parsed = read_json(&bridge, &parts.headers, body, |body| {
        let chat = parse_chat_request(body)?;
        let (stream, include_usage) = (chat.wants_stream(), chat.wants_stream_usage());
        Ok((stream, include_usage, to_messages_request(chat)?))
    })
    .await;
    let ((stream, include_usage, request), body_bytes) = match parsed {
        Ok(parsed) => parsed,
        Err(err) => return openai_error_response(&err, &request_id),
    };
    let tag = (request_id.as_str(), "/v1/chat/completions");
    let accepted = accept(&bridge, &parts.headers, request, body_bytes, tag).await;
    let accepted = match accepted {
        Ok(accepted) => accepted,
        Err(err) => return openai_error_response(&err, &request_id),
    };
    let log = accepted.log();
    let created = unix_now();
    let mut response = if stream {
        stream_response(
            bridge,
            accepted,
            StreamFraming::OpenAi {
                created,
                include_usage,
            },
        )
    } else {
        match complete(&bridge, accepted).await {
            Ok(response) => json_response(
                StatusCode::OK,
                openai::to_chat_completion(&response, created).to_string(),
            ),
            Err(err) => openai_error_response(&err, &request_id),
        }
    };
    response.extensions_mut().insert(log);
    response
}
