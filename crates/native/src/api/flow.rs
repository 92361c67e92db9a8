//! The flow of a sampling request that `/v1/messages` and `/v1/chat/completions` share: accept
//! (route to a session, admit, convert), sample, answer as JSON or as a stream.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use sampling2api_core::api::anthropic::{MessagesRequest, MessagesResponse};
use sampling2api_core::api::stream_framing::StreamFraming;
use sampling2api_core::flow::answer::answer;
use sampling2api_core::flow::prepare::{Answering, Conversion, Prepared, prepare};
use sampling2api_core::lifecycle::session_choice::SESSION_HEADER;
use sampling2api_core::mcp::sampling::CreateMessageParams;
use sampling2api_core::ops::status::{self, InFlightRequest, Stage};
use sampling2api_core::{ApiError, ids};

use super::context::{RequestId, RequestLog};
use crate::answer_stream::AnswerStream;
use crate::bridge::Bridge;
use crate::cpu_work;
use crate::ids::random_u128;
use crate::request_body::read_body;
use crate::session::{Session, Submitted};
use crate::status::unix_ms;

/// A request that passed every check before sampling starts.
pub struct Accepted {
    pub stream: bool,
    pub session: Arc<Session>,
    /// Boxed: see `Bridge::sample`.
    pub params: Box<CreateMessageParams>,
    /// What the answer needs (the core's `flow::prepare`).
    pub answering: Answering,
    pub admission: Submitted,
    /// For the status page: the request's id and route, and its prompt's start
    /// (`--log-prompts` only).
    pub request_id: String,
    pub route: &'static str,
    pub prompt: Option<String>,
}

impl Accepted {
    pub fn log(&self) -> RequestLog {
        RequestLog {
            session: Some(self.session.handle.clone()),
            model: Some(self.answering.model.clone()),
        }
    }
}

/// A request being received: what the route's parser returned besides the request, and the
/// request accepted.
pub type Receiving<R> = Pin<Box<dyn Future<Output = Result<(R, Accepted), ApiError>> + Send>>;

/// Receives a sampling request: reads and parses its body with `parse` (which also returns
/// what the route needs besides the request), then routes, admits and converts it (`accept`).
///
/// The returned future is boxed and owns the request: when it completes, the request's head
/// and body are dropped and its memory is freed, before the answer is waited for. That matters
/// on HTTP/1.1: hyper parses the head and the body as slices of its connection's 8 KB read
/// buffer, so anything of them kept while the request waits (a header map, the URI) would keep
/// that buffer, and hyper, which reads on meanwhile, allocates another. The future's own state
/// (body reading, parsing, image fetching) is freed with it too.
pub fn receive<R: Send + 'static>(
    bridge: Arc<Bridge>,
    request: Request,
    (request_id, route): (RequestId, &'static str),
    parse: impl FnOnce(&[u8]) -> Result<(R, MessagesRequest), ApiError> + Send + 'static,
) -> Receiving<R> {
    Box::pin(async move {
        let (Parts { headers, .. }, body) = request.into_parts();
        let ((extra, parsed), body_bytes) = read_json(&bridge, &headers, body, parse).await?;
        let accepted = accept(
            &bridge,
            &headers,
            parsed,
            body_bytes,
            (request_id.as_str(), route),
        )
        .await?;
        Ok((extra, accepted))
    })
}

/// Reads a request's body and parses it with `parse`, off the runtime thread if it is large.
/// Returns the parsed request and the body's size, which decides how later work on it runs.
pub async fn read_json<T: Send + 'static>(
    bridge: &Bridge,
    headers: &HeaderMap,
    body: Body,
    parse: impl FnOnce(&[u8]) -> Result<T, ApiError> + Send + 'static,
) -> Result<(T, usize), ApiError> {
    let content_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok());
    let body = read_body(body, &bridge.body_limits, content_length).await?;
    if bridge.settings.log_prompts {
        tracing::info!(body = %String::from_utf8_lossy(&body), "request body");
    }
    let body_bytes = body.len();
    let parsed = cpu_work::run(body_bytes, move || parse(&body)).await?;
    Ok((parsed, body_bytes))
}

/// Routes, admits and converts a parsed request. Everything that can fail before sampling
/// fails here, so that streaming callers get a proper status, not an error frame.
/// `body_bytes` is the size of the request's body, for how to run its conversion.
pub async fn accept(
    bridge: &Bridge,
    headers: &HeaderMap,
    mut request: MessagesRequest,
    body_bytes: usize,
    (request_id, route): (&str, &'static str),
) -> Result<Accepted, ApiError> {
    let requested_session = match headers.get(SESSION_HEADER) {
        Some(value) => Some(value.to_str().map_err(|_| {
            ApiError::invalid_request(format!("{SESSION_HEADER}: not a valid header value"))
        })?),
        None => None,
    };
    let session = bridge.route(requested_session)?;
    let support = session.state().support()?;
    bridge.images.inline_url_images(&mut request).await?;
    let prompt = bridge
        .settings
        .log_prompts
        .then(|| status::prompt_preview(&request))
        .flatten();
    let hints = bridge.catalog().hints_for(&request.model);
    let conversion = Conversion {
        tool_mode: bridge.settings.tool_mode,
        max_emulated_tool_calls: bridge.settings.max_emulated_tool_calls,
    };
    let message_id = ids::message_id(random_u128());
    let Prepared {
        params,
        answering,
        stream,
    } = cpu_work::run(body_bytes, move || {
        prepare(request, support, hints, conversion, message_id)
    })
    .await?;
    let admission = session.submit(bridge.settings.request_timeout)?;
    Ok(Accepted {
        stream,
        session,
        params: Box::new(params),
        answering,
        admission,
        request_id: request_id.to_string(),
        route,
        prompt,
    })
}

/// Samples, builds the Anthropic response and hands it to `encode` (the route's JSON body or
/// stream ending). Not an `async fn`: the request is put on the status board here, and the
/// future returned, which lives until the client answers, holds only what the answer needs
/// (an `async fn` would also keep the whole `Accepted` it was given).
///
/// Converting and encoding an answer costs CPU in proportion to its size (parsing emulated
/// tool calls, finding a structured value, writing JSON or SSE), so a large answer is handled
/// on the blocking pool, as a large request body is, and the runtime thread goes on serving
/// `/health` and every other session meanwhile.
pub fn complete<T: Send + 'static>(
    bridge: &Bridge,
    accepted: Accepted,
    encode: impl FnOnce(MessagesResponse) -> Result<T, ApiError> + Send + 'static,
) -> impl Future<Output = Result<T, ApiError>> + Send + '_ {
    let Accepted {
        stream: _,
        session,
        params,
        answering,
        admission,
        request_id,
        route,
        prompt,
    } = accepted;
    let ticket = bridge.status.begin(
        InFlightRequest {
            request_id,
            route: route.to_string(),
            model: Some(answering.model.clone()),
            session: Some(session.handle.clone()),
            started_unix_ms: unix_ms(),
            stage: Stage::Queued,
        },
        prompt,
    );
    async move {
        let converted = match bridge.sample(params, admission, &ticket).await {
            Ok(result) => {
                cpu_work::run(result.size_hint(), move || {
                    let response = answer(answering, result, || ids::tool_use_id(random_u128()))?;
                    let usage = (response.usage.input_tokens, response.usage.output_tokens);
                    Ok((usage, encode(response)?))
                })
                .await
            }
            Err(err) => Err(err),
        };
        let ((input, output), encoded) = match converted {
            Ok(converted) => converted,
            Err(err) => {
                ticket.finish(err.status(), 0, 0);
                return Err(err);
            }
        };
        ticket.finish(200, input, output);
        bridge.metrics.record_tokens(input, output);
        Ok(encoded)
    }
}

/// The opening goes out at once, keep-alives follow while the client works, then the ending
/// (see `answer_stream`).
pub fn stream_response(
    bridge: Arc<Bridge>,
    accepted: Accepted,
    framing: StreamFraming,
) -> Response {
    let answering = &accepted.answering;
    let opening = Bytes::from(framing.opening(
        &answering.message_id,
        &answering.model,
        answering.input_tokens,
    ));
    let model = answering.model.clone();
    let ping_interval = bridge.settings.ping_interval;
    let ending_model = model.clone();
    let completion = Box::pin(async move {
        complete(&bridge, accepted, move |response| {
            Ok(framing.ending(Ok(response), &ending_model))
        })
        .await
    });
    let body = Body::from_stream(AnswerStream::new(
        opening,
        completion,
        framing,
        model,
        ping_interval,
    ));
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
