//! The MCP endpoint (`--mcp-path`, http mode): Streamable HTTP, handshake era. The core's
//! `streamable_http` decides what each request gets; this carries it out: sessions made by
//! `initialize` (with an unguessable `Mcp-Session-Id`), messages handed to them, and the
//! client's `GET` stream, on which sampling requests travel.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use sampling2api_core::lifecycle::StreamGeneration;
use sampling2api_core::lifecycle::refusals;
use sampling2api_core::mcp::session::{McpSession, ServerInfo};
use sampling2api_core::mcp::streamable_http::EventId;
use sampling2api_core::mcp::streamable_http::{
    self, LAST_EVENT_ID_HEADER, McpAction, McpAnswer, McpHeaders, McpMethod,
    PROTOCOL_VERSION_HEADER, SESSION_ID_HEADER,
};
use sampling2api_core::{http::routes, ids};

use super::context::RequestId;
use super::error::{HttpError, json_response};
use crate::batching::StepBack;
use crate::bridge::Bridge;
use crate::cpu_work;
use crate::ids::os_random_u128;
use crate::request_body::read_body;
use crate::session::Session;

/// An SSE comment this often keeps proxies from cutting an idle stream.
const KEEPALIVE: Duration = Duration::from_secs(25);

/// `POST`, `GET` and `DELETE` at the MCP path.
pub async fn endpoint(
    State(bridge): State<Arc<Bridge>>,
    request_id: RequestId,
    request: Request,
) -> Result<Response, HttpError> {
    // Taken apart rather than extracted piecewise: a `HeaderMap` extractor copies the map.
    let (
        Parts {
            method, headers, ..
        },
        body,
    ) = request.into_parts();
    let mcp_method = match method {
        Method::POST => McpMethod::Post,
        Method::GET => McpMethod::Get,
        Method::DELETE => McpMethod::Delete,
        // The router sends no other method here.
        _ => {
            return Err(request_id.error(routes::method_not_allowed(
                method.as_str(),
                &bridge.mcp_path,
            )));
        }
    };
    let text = |name: &str| {
        headers
            .get(name)
            .map(|value| value.to_str().unwrap_or("\u{fffd}"))
    };
    let decided = streamable_http::decide(
        mcp_method,
        &McpHeaders {
            session_id: text(SESSION_ID_HEADER),
            accept: text(header::ACCEPT.as_str()),
            protocol_version: text(PROTOCOL_VERSION_HEADER),
            last_event_id: text(LAST_EVENT_ID_HEADER),
        },
    );
    match decided {
        McpAction::Refuse(answer) => Ok(answered(answer)),
        McpAction::Start => {
            let body = read(&bridge, &headers, body).await;
            Ok(start_session(
                &bridge,
                &body.map_err(|err| request_id.error(err))?,
            ))
        }
        McpAction::Deliver(id) => {
            let Some(session) = bridge.session(id) else {
                return Ok(answered(streamable_http::unknown_session()));
            };
            let body = read(&bridge, &headers, body)
                .await
                .map_err(|err| request_id.error(err))?;
            let received = cpu_work::run(body.len(), move || Ok(session.receive(&body))).await;
            Ok(match received {
                Ok(Some(reply)) => json_response(StatusCode::OK, reply),
                Ok(None) => StatusCode::ACCEPTED.into_response(),
                Err(err) => answered(streamable_http::internal_error(&err)),
            })
        }
        McpAction::OpenStream { id, resume_after } => Ok(match bridge.session(id) {
            Some(session) => open_stream(session, resume_after),
            None => answered(streamable_http::unknown_session()),
        }),
        McpAction::End(id) => Ok(match bridge.session(id) {
            Some(session) if bridge.end_session(id, refusals::ENDED_BY_CLIENT) => {
                tracing::info!(session = %session.handle, "MCP session ended by the client");
                StatusCode::OK.into_response()
            }
            _ => answered(streamable_http::unknown_session()),
        }),
    }
}

fn answered(answer: McpAnswer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_REQUEST);
    json_response(status, answer.body)
}

async fn read(
    bridge: &Bridge,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, sampling2api_core::ApiError> {
    let content_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok());
    read_body(body, &bridge.body_limits, content_length).await
}

/// A POST without a session: `initialize` opens one; anything else gets the core's refusal.
fn start_session(bridge: &Arc<Bridge>, body: &Bytes) -> Response {
    let mut state = McpSession::new(ServerInfo::sampling2api());
    let handled = state.handle_incoming(body);
    let reply = handled.reply_body();
    if !handled.initialized {
        return answered(streamable_http::refused_start(reply));
    }
    let id = ids::session_id(os_random_u128());
    let session = Session::over_event_stream(id.clone(), state, bridge.session_limits());
    if !bridge.add_session_within(session.clone(), bridge.max_sessions) {
        tracing::warn!(
            limit = bridge.max_sessions,
            "MCP session refused: --max-sessions are open"
        );
        return answered(streamable_http::too_many_sessions(bridge.max_sessions));
    }
    if let Some(client) = session.state().client() {
        bridge.log_client_connected(&session.handle, client);
    }
    // No open stream and no requests for --session-idle-secs: the session is dropped.
    let owner = Arc::downgrade(bridge);
    let expiring = session.clone();
    session.start_timer(move || {
        if let Some(bridge) = owner.upgrade() {
            tracing::info!(session = %expiring.handle, "MCP session idle without a stream; dropped");
            bridge.end_session(
                &expiring.id,
                refusals::EXPIRED_IDLE,
            );
        }
    });
    let mut response = json_response(StatusCode::OK, reply.unwrap_or_default());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(SESSION_ID_HEADER, value);
    }
    response
}

/// The client's `GET` stream: the session's messages to the client, as SSE events with ids
/// (`resume_after`: the client's `Last-Event-ID`, see `Session::open_stream`).
fn open_stream(session: Arc<Session>, resume_after: Option<EventId>) -> Response {
    let (generation, messages) = session.open_stream(resume_after);
    let stream = EventStream {
        session,
        generation,
        messages,
        keepalive: tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE),
        step_back: StepBack::default(),
    };
    let mut response = (StatusCode::OK, Body::from_stream(stream)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The client's standalone stream. When it is dropped (the client went away), the session
/// learns of it and fails the requests it carried.
struct EventStream {
    session: Arc<Session>,
    generation: StreamGeneration,
    messages: crate::outbox::OutboxReceiver<crate::session::Outgoing>,
    keepalive: tokio::time::Interval,
    step_back: StepBack,
}

/// Messages taken from the channel into one frame, at most: a bound on the frame's size in
/// messages so that one poll cannot hold the connection for long.
const MESSAGES_PER_FRAME: usize = 256;
/// A frame takes no further messages once it holds this many bytes.
const FRAME_BYTES: usize = 256 * 1024;

impl EventStream {
    /// Every message waiting in the channel, as one chunk of SSE events.
    fn frame(&mut self, first: crate::session::Outgoing) -> Bytes {
        let mut frame = String::with_capacity(first.len() + 48);
        push_event(&mut frame, &first);
        for _ in 1..MESSAGES_PER_FRAME {
            // A frame handed to hyper is out of the queue's count until it is written: large
            // messages go one per frame, so at most one of them is held outside the bound.
            if frame.len() >= FRAME_BYTES {
                break;
            }
            match self.messages.try_recv() {
                Some(message) => push_event(&mut frame, &message),
                None => break,
            }
        }
        Bytes::from(frame)
    }
}

fn push_event(frame: &mut String, message: &crate::session::Outgoing) {
    match message.event {
        Some(id) => streamable_http::push_event(frame, id, message),
        // Only a pipe's own replies have no id, and a pipe has no event stream.
        None => tracing::warn!("a message without an event id skipped on an event stream"),
    }
}

impl futures::Stream for EventStream {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        // Other API requests ready in the same instant get to add their messages first, so
        // that a burst leaves in one chunk and one write (see `batching`).
        if !self.messages.is_empty() && self.step_back.poll(cx).is_pending() {
            return Poll::Pending;
        }
        let received = self.messages.poll_recv(cx);
        // What waited is taken now, or nothing waits: the next message steps back again.
        self.step_back.reset();
        match received {
            Poll::Ready(Some(first)) => {
                let frame = self.frame(first);
                return Poll::Ready(Some(Ok(frame)));
            }
            // Replaced by a newer stream, or the session closed.
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        if self.keepalive.poll_tick(cx).is_ready() {
            return Poll::Ready(Some(Ok(Bytes::from_static(b": keepalive\n\n"))));
        }
        Poll::Pending
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.session.stream_closed(self.generation);
    }
}
