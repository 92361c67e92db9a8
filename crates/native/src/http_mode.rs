//! http mode: MCP Streamable HTTP (2025-11-25, handshake era) at `--mcp-path`, and the API on
//! the same port. Each `initialize` makes a session with an unguessable `Mcp-Session-Id`;
//! sampling requests travel on the client's `GET` stream; answers arrive as `POST`s.

use std::convert::Infallible;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use sampling2api_core::mcp_session::{McpSession, ServerInfo};
use serde_json::json;
use tokio::net::TcpListener;

use crate::api::{self, json_response};
use crate::batching::StepBack;
use crate::bridge::Bridge;
use crate::config::{ApiSettings, HttpArgs};
use crate::cpu_work;
use crate::ids::session_id;
use crate::request_body::read_body;
use crate::session::Session;

const SESSION_ID_HEADER: &str = "mcp-session-id";
/// An SSE comment this often keeps proxies from cutting an idle stream.
const KEEPALIVE: Duration = Duration::from_secs(25);

pub async fn run(args: HttpArgs) -> ExitCode {
    if !args.mcp_path.starts_with('/') || args.mcp_path.starts_with("/v1/") {
        tracing::error!(path = %args.mcp_path, "--mcp-path must start with / and not lie under /v1/");
        return ExitCode::FAILURE;
    }
    let listener = match TcpListener::bind(args.common.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(address = %args.common.listen, %err, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let address = listener.local_addr().unwrap_or(args.common.listen);
    let mut bridge = Bridge::new(ApiSettings::from(&args.common), "http");
    bridge.stream_wait = args.stream_wait();
    bridge.mcp_path = Arc::from(args.mcp_path.as_str());
    bridge.host_policy.port = address.port();
    bridge.max_sessions = args.max_sessions as usize;
    let bridge = Arc::new(bridge);
    let mcp_routes = Router::new().route(
        &args.mcp_path,
        post(mcp_post).get(mcp_get).delete(mcp_delete),
    );
    let app = api::app(bridge.clone(), Some(mcp_routes));
    tokio::spawn(reap_idle_sessions(bridge.clone(), args.session_idle()));
    tracing::info!(
        "sampling2api {} listening on http://{address} (http mode: MCP at http://{address}{}; tools: {})",
        env!("CARGO_PKG_VERSION"),
        args.mcp_path,
        bridge.settings.tool_mode.as_str()
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    crate::server::serve(listener, app, &args.common.front, shutdown).await;
    ExitCode::SUCCESS
}

/// Drops sessions whose client has no open stream and has sent nothing for `idle`.
async fn reap_idle_sessions(bridge: Arc<Bridge>, idle: Duration) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1).min(idle));
    loop {
        ticks.tick().await;
        for session in bridge.sessions() {
            if !session.has_stream() && session.idle_for() >= idle {
                tracing::info!(session = %session.handle, "MCP session idle without a stream; dropped");
                bridge.end_session(
                    &session.id,
                    "the MCP session timed out (no stream, no requests)",
                );
            }
        }
    }
}

fn session_header(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(SESSION_ID_HEADER)
        .and_then(|value| value.to_str().ok())
}

fn rpc_error(status: StatusCode, code: i64, message: &str) -> Response {
    json_response(
        status,
        json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}})
            .to_string(),
    )
}

fn unknown_session() -> Response {
    rpc_error(
        StatusCode::NOT_FOUND,
        -32001,
        "session not found; send initialize to start a new one",
    )
}

async fn mcp_post(State(bridge): State<Arc<Bridge>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let content_length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok());
    let body = match read_body(body, &bridge.body_limits, content_length).await {
        Ok(body) => body,
        Err(err) => {
            let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST);
            return rpc_error(status, -32600, &err.message);
        }
    };
    match session_header(&parts.headers) {
        Some(id) => {
            let Some(session) = bridge.session(id) else {
                return unknown_session();
            };
            let received = cpu_work::run(body.len(), move || Ok(session.receive(&body))).await;
            match received {
                Ok(Some(reply)) => json_response(StatusCode::OK, reply),
                Ok(None) => StatusCode::ACCEPTED.into_response(),
                Err(err) => rpc_error(StatusCode::INTERNAL_SERVER_ERROR, -32603, &err.message),
            }
        }
        None => start_session(&bridge, &body),
    }
}

/// A POST without a session: `initialize` opens one; anything else (a dual-era client's
/// `server/discover` probe, say) gets the JSON-RPC error that sends it to `initialize`.
fn start_session(bridge: &Bridge, body: &Bytes) -> Response {
    let mut state = McpSession::new(ServerInfo::sampling2api());
    let handled = state.handle_incoming(body);
    let reply = handled.reply_body();
    if !handled.initialized {
        return match reply {
            Some(reply) => json_response(StatusCode::BAD_REQUEST, reply),
            None => rpc_error(
                StatusCode::BAD_REQUEST,
                -32600,
                "no Mcp-Session-Id header: send initialize first",
            ),
        };
    }
    let id = session_id();
    let session = Session::over_event_stream(
        id.clone(),
        state,
        bridge.stream_wait,
        bridge.mcp_path.clone(),
        bridge.session_limits(),
    );
    if !bridge.add_session_within(session.clone(), bridge.max_sessions) {
        tracing::warn!(
            limit = bridge.max_sessions,
            "MCP session refused: --max-sessions are open"
        );
        return rpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            -32000,
            &format!(
                "{} MCP sessions are open, as many as --max-sessions allows; end one (DELETE) or retry later",
                bridge.max_sessions
            ),
        );
    }
    if let Some(client) = session.state().client() {
        bridge.log_client_connected(&session.handle, client);
    }
    let mut response = json_response(StatusCode::OK, reply.unwrap_or_default());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(SESSION_ID_HEADER, value);
    }
    response
}

async fn mcp_get(State(bridge): State<Arc<Bridge>>, headers: HeaderMap) -> Response {
    let Some(id) = session_header(&headers) else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            -32600,
            "GET needs the Mcp-Session-Id header",
        );
    };
    let Some(session) = bridge.session(id) else {
        return unknown_session();
    };
    let accepts_sse = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_none_or(|accept| accept.contains("text/event-stream") || accept.contains("*/*"));
    if !accepts_sse {
        return rpc_error(
            StatusCode::NOT_ACCEPTABLE,
            -32600,
            "GET must accept text/event-stream",
        );
    }
    let (generation, messages) = session.open_stream();
    let stream = EventStream {
        session,
        generation,
        messages,
        keepalive: tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE),
        step_back: StepBack::default(),
    };
    let mut response = (StatusCode::OK, axum::body::Body::from_stream(stream)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn mcp_delete(State(bridge): State<Arc<Bridge>>, headers: HeaderMap) -> Response {
    let Some(id) = session_header(&headers) else {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            -32600,
            "DELETE needs the Mcp-Session-Id header",
        );
    };
    if let Some(session) = bridge.session(id)
        && bridge.end_session(id, "the MCP client ended its session")
    {
        tracing::info!(session = %session.handle, "MCP session ended by the client");
        StatusCode::OK.into_response()
    } else {
        unknown_session()
    }
}

/// The client's standalone stream. When it is dropped (the client went away), the session
/// learns of it and fails the requests it carried.
struct EventStream {
    session: Arc<Session>,
    generation: u64,
    messages: tokio::sync::mpsc::UnboundedReceiver<crate::session::Outgoing>,
    keepalive: tokio::time::Interval,
    step_back: StepBack,
}

/// Messages taken from the channel into one frame, at most: a bound on the frame's size in
/// messages so that one poll cannot hold the connection for long.
const MESSAGES_PER_FRAME: usize = 256;

impl EventStream {
    /// Every message waiting in the channel, as one chunk of SSE events.
    fn frame(&mut self, first: crate::session::Outgoing) -> Bytes {
        let mut frame = String::with_capacity(first.len() + 24);
        push_event(&mut frame, &first);
        for _ in 1..MESSAGES_PER_FRAME {
            match self.messages.try_recv() {
                Ok(message) => push_event(&mut frame, &message),
                Err(_) => break,
            }
        }
        Bytes::from(frame)
    }
}

fn push_event(frame: &mut String, message: &str) {
    frame.push_str("event: message\ndata: ");
    frame.push_str(message);
    frame.push_str("\n\n");
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
