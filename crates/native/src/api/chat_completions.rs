//! `POST /v1/chat/completions`: OpenAI's shape around the same flow as `/v1/messages`.

use std::future::Future;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sampling2api_core::api::openai::{parse_chat_request, to_messages_request};
use sampling2api_core::api::stream_framing::StreamFraming;
use sampling2api_core::flow::answer::json_body;
use sampling2api_core::http::routes::{self, Endpoint};

use super::context::RequestId;
use super::error::{HttpError, json_response};
use super::flow::{complete, receive, stream_response};
use crate::bridge::{Bridge, unix_now};

/// Not an `async fn`: see `flow::receive`.
pub fn chat_completions(
    State(bridge): State<Arc<Bridge>>,
    request_id: RequestId,
    request: Request,
) -> impl Future<Output = Result<Response, HttpError>> + Send {
    let tag = (
        request_id.clone(),
        routes::path_of(Endpoint::ChatCompletions),
    );
    let receiving = receive(bridge.clone(), request, tag, |body| {
        let chat = parse_chat_request(body)?;
        let (stream, include_usage) = (chat.wants_stream(), chat.wants_stream_usage());
        Ok(((stream, include_usage), to_messages_request(chat)?))
    });
    async move {
        let fail = |err| request_id.error(err);
        let ((stream, include_usage), accepted) = receiving.await.map_err(fail)?;
        let log = accepted.log();
        let framing = StreamFraming::OpenAi {
            created: unix_now(),
            include_usage,
        };
        let mut response = if stream {
            stream_response(bridge, accepted, framing)
        } else {
            let body = complete(&bridge, accepted, move |response| {
                json_body(framing, &response)
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
