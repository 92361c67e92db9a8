//! `POST /v1/chat/completions`: OpenAI's shape around the same flow as `/v1/messages`.

use std::future::Future;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use sampling2api_core::api::openai::{parse_chat_request, to_messages_request};
use sampling2api_core::api::stream_framing::StreamFraming;
use sampling2api_core::http::routes::{self, Endpoint};

use super::context::RequestId;
use super::error::HttpError;
use super::flow::{receive, respond};
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
        let ((stream, include_usage), accepted) =
            receiving.await.map_err(|err| request_id.error(err))?;
        let framing = StreamFraming::OpenAi {
            created: unix_now(),
            include_usage,
        };
        Ok(respond(bridge, accepted, (stream, framing), &request_id).await)
    }
}
