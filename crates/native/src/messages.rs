//! `POST /v1/messages`: parse, route, convert, sample, answer as JSON or as an SSE stream.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use sampling2api_core::anthropic::{MessagesRequest, MessagesResponse, parse_messages_request};
use sampling2api_core::from_sampling::{ResponseContext, to_messages_response};
use sampling2api_core::routing::SESSION_HEADER;
use sampling2api_core::sampling::{CreateMessageParams, CreateMessageResult};
use sampling2api_core::to_sampling::to_create_message_params;
use sampling2api_core::{ApiError, ids, sse, tokens};
use tokio::sync::mpsc;

use crate::api::{RequestId, error_response, json_response, read_body};
use crate::bridge::Bridge;
use crate::ids::random_u128;
use crate::session::Session;

/// A request that passed every check before sampling starts.
struct Accepted {
    request: MessagesRequest,
    session: Arc<Session>,
    params: CreateMessageParams,
    input_tokens: u64,
    message_id: String,
}

pub async fn create_message(State(bridge): State<Arc<Bridge>>, request: Request) -> Response {
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map(|id| id.0.clone())
        .unwrap_or_default();
    let (parts, body) = request.into_parts();
    let accepted = match accept(&bridge, &parts.headers, body).await {
        Ok(accepted) => accepted,
        Err(err) => return error_response(&err, &request_id),
    };
    if accepted.request.wants_stream() {
        stream_response(bridge, accepted)
    } else {
        let result = bridge.sample(&accepted.session, &accepted.params).await;
        match result.and_then(|result| build_response(&accepted, result)) {
            Ok(response) => match serde_json::to_string(&response) {
                Ok(body) => json_response(StatusCode::OK, body),
                Err(err) => error_response(
                    &ApiError::api(format!("could not encode the response: {err}")),
                    &request_id,
                ),
            },
            Err(err) => error_response(&err, &request_id),
        }
    }
}

async fn accept(bridge: &Bridge, headers: &HeaderMap, body: Body) -> Result<Accepted, ApiError> {
    let content_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok());
    let body = read_body(body, bridge.settings.max_body_bytes, content_length).await?;
    let mut request = parse_messages_request(&body, true)?;
    drop(body);
    let requested_session = match headers.get(SESSION_HEADER) {
        Some(value) => Some(value.to_str().map_err(|_| {
            ApiError::invalid_request(format!("{SESSION_HEADER}: not a valid header value"))
        })?),
        None => None,
    };
    let session = bridge.route(requested_session)?;
    let support = session.state().support()?;
    bridge.images.inline_url_images(&mut request).await?;
    let params = to_create_message_params(&request, support)?;
    let input_tokens = tokens::estimate_request(&request).max(1);
    Ok(Accepted {
        request,
        session,
        params,
        input_tokens,
        message_id: ids::message_id(random_u128()),
    })
}

fn build_response(
    accepted: &Accepted,
    result: CreateMessageResult,
) -> Result<MessagesResponse, ApiError> {
    to_messages_response(
        result,
        ResponseContext {
            message_id: accepted.message_id.clone(),
            requested_model: &accepted.request.model,
            estimated_input_tokens: accepted.input_tokens,
        },
        || ids::tool_use_id(random_u128()),
    )
}

/// `message_start` and a `ping` go out at once; pings follow while the client works; then the
/// content, or an `error` frame. If the caller disconnects, the body is dropped, the task sees
/// its channel close, and dropping the sampling future cancels the request at the client.
fn stream_response(bridge: Arc<Bridge>, accepted: Accepted) -> Response {
    let (frames, mut receiver) = mpsc::channel::<Bytes>(8);
    tokio::spawn(async move {
        let opening = sse::message_start(
            &accepted.message_id,
            &accepted.request.model,
            accepted.input_tokens,
        ) + sse::PING;
        if frames.send(Bytes::from(opening)).await.is_err() {
            return;
        }
        let ping_interval = bridge.settings.ping_interval;
        let mut pings =
            tokio::time::interval_at(tokio::time::Instant::now() + ping_interval, ping_interval);
        let sampling = bridge.sample(&accepted.session, &accepted.params);
        tokio::pin!(sampling);
        let outcome = loop {
            tokio::select! {
                outcome = &mut sampling => break outcome,
                _ = pings.tick() => {
                    if frames.send(Bytes::from_static(sse::PING.as_bytes())).await.is_err() {
                        return;
                    }
                }
                () = frames.closed() => return,
            }
        };
        let tail = match outcome.and_then(|result| build_response(&accepted, result)) {
            Ok(response) => sse::response_frames(&response),
            Err(err) => sse::error(&err),
        };
        let _ = frames.send(Bytes::from(tail)).await;
    });
    let body = Body::from_stream(futures::stream::poll_fn(move |cx| {
        receiver
            .poll_recv(cx)
            .map(|frame| frame.map(Ok::<_, Infallible>))
    }));
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}
