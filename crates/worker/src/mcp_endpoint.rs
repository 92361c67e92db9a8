//! `/mcp`: MCP Streamable HTTP, handshake era, as in native http mode. The Worker holds the
//! client's `GET` stream and feeds it from the session object over a hibernatable WebSocket.

use std::time::Duration;

use futures::channel::mpsc;
use futures::{FutureExt, SinkExt, StreamExt};
use sampling2api_core::mcp::session::{McpSession, ServerInfo};
use sampling2api_core::mcp::streamable_http::EventId;
use sampling2api_core::mcp::streamable_http::{
    self, LAST_EVENT_ID_HEADER, McpAction, McpAnswer, McpHeaders, McpMethod,
    PROTOCOL_VERSION_HEADER, SESSION_ID_HEADER,
};
use sampling2api_core::{ApiError, http::routes, ids};
use worker::worker_sys::web_sys;
use worker::{Delay, Env, Method, Request, Response, WebsocketEvent};

use crate::config::Settings;
use crate::http::{self, internal};
use crate::random::random_u128;
use crate::registry_client::{RegistryClient, SessionEntry};
use crate::session_client::{MessageReply, SessionObjectClient};
use crate::session_protocol::LIVENESS_PING;
use crate::tenancy::Namespace;

/// How often the stream writes to its client to learn whether it is still there.
const LIVENESS_CHECK: Duration = Duration::from_secs(1);

fn answered(answer: McpAnswer) -> Result<Response, ApiError> {
    http::json(answer.status, answer.body)
}

/// What the core's `streamable_http` decides for the request, carried out with the session's
/// object.
pub async fn handle(
    mut req: Request,
    env: &Env,
    namespace: &Namespace,
    settings: &Settings,
) -> Result<Response, ApiError> {
    let method = match req.method() {
        Method::Post => McpMethod::Post,
        Method::Get => McpMethod::Get,
        Method::Delete => McpMethod::Delete,
        // The route table sends no other method here.
        method => {
            return Err(routes::method_not_allowed(
                method.as_ref(),
                routes::DEFAULT_MCP_PATH,
            ));
        }
    };
    let header = |name: &str| req.headers().get(name).ok().flatten();
    let (session_id, accept, protocol_version, last_event_id) = (
        header(SESSION_ID_HEADER),
        header("accept"),
        header(PROTOCOL_VERSION_HEADER),
        header(LAST_EVENT_ID_HEADER),
    );
    let decided = streamable_http::decide(
        method,
        &McpHeaders {
            session_id: session_id.as_deref(),
            accept: accept.as_deref(),
            protocol_version: protocol_version.as_deref(),
            last_event_id: last_event_id.as_deref(),
        },
    );
    match decided {
        McpAction::Refuse(answer) => answered(answer),
        McpAction::Start => {
            let body = http::read_limited(&mut req, settings.max_body_bytes).await?;
            start_session(env, namespace, settings, &body).await
        }
        McpAction::Deliver(id) => {
            let body = http::read_limited(&mut req, settings.max_body_bytes).await?;
            match SessionObjectClient::new(env, namespace, id)?
                .message(&body)
                .await?
            {
                MessageReply::UnknownSession => answered(streamable_http::unknown_session()),
                MessageReply::Accepted => Ok(Response::empty().map_err(internal)?.with_status(202)),
                MessageReply::Reply { status, body } => http::json(status, body),
            }
        }
        McpAction::OpenStream { id, resume_after } => {
            open_stream(env, namespace, id, resume_after, &req.inner().signal()).await
        }
        McpAction::End(id) => {
            let existed = SessionObjectClient::new(env, namespace, id)?.end().await?;
            RegistryClient::new(env, namespace)?
                .remove_session(id)
                .await?;
            if existed {
                Ok(Response::empty().map_err(internal)?)
            } else {
                answered(streamable_http::unknown_session())
            }
        }
    }
}

/// `initialize` opens a session; anything else without a session (a dual-era client's
/// `server/discover` probe, say) gets the JSON-RPC error that sends it to `initialize`.
async fn start_session(
    env: &Env,
    namespace: &Namespace,
    settings: &Settings,
    body: &[u8],
) -> Result<Response, ApiError> {
    let mut probe = McpSession::<()>::new(ServerInfo::sampling2api());
    let handled = probe.handle_incoming(body);
    if !handled.initialized {
        return answered(streamable_http::refused_start(handled.reply_body()));
    }
    let id = ids::session_id(random_u128());
    // The object reports to its registry itself (readiness, stream, idle drop).
    let reply = SessionObjectClient::new(env, namespace, &id)?
        .init(namespace, &id, body)
        .await?;
    if !reply.started {
        return http::json(400, reply.body);
    }
    let reply = reply.body;
    let client = probe.client().cloned();
    if let Some(client) = &client {
        let tools = client
            .sampling
            .map_or("-", |support| settings.tool_mode.delivery(support).as_str());
        worker::console_log!(
            "MCP client connected session={id} client={} protocol={} sampling={} sampling_tools={} tools={tools}",
            client.client_name.as_deref().unwrap_or("unknown"),
            client.protocol_version,
            client.sampling.is_some(),
            client.sampling.is_some_and(|s| s.tools),
        );
    }
    let entry = SessionEntry {
        id: id.clone(),
        client_name: client.as_ref().and_then(|c| c.client_name.clone()),
        client_version: client.as_ref().and_then(|c| c.client_version.clone()),
        protocol_version: client
            .as_ref()
            .map(|c| c.protocol_version.clone())
            .unwrap_or_default(),
        sampling: client.and_then(|c| c.sampling),
        ready: false,
        stream_open: false,
    };
    RegistryClient::new(env, namespace)?
        .add_session(&entry)
        .await?;
    let response = http::json(200, reply)?;
    response
        .headers()
        .set(SESSION_ID_HEADER, &id)
        .map_err(internal)?;
    Ok(response)
}

/// The client's `GET` stream, fed by the session object: it sends finished SSE events (ids
/// and framing from core, see the object), written out unchanged.
async fn open_stream(
    env: &Env,
    namespace: &Namespace,
    id: &str,
    resume_after: Option<EventId>,
    caller: &web_sys::AbortSignal,
) -> Result<Response, ApiError> {
    let Some(socket) = SessionObjectClient::new(env, namespace, id)?
        .connect(resume_after)
        .await?
    else {
        return answered(streamable_http::unknown_session());
    };
    socket.accept().map_err(internal)?;
    let (mut frames, body) = mpsc::channel::<Result<Vec<u8>, worker::Error>>(16);
    // The client's disconnect, as workerd signals it; its writes alone would not fail soon.
    let mut gone = http::aborted(caller).fuse();
    worker::wasm_bindgen_futures::spawn_local(async move {
        let Ok(mut events) = socket.events() else {
            return;
        };
        loop {
            let mut tick = Delay::from(LIVENESS_CHECK).fuse();
            let event = futures::select! {
                event = events.next().fuse() => event,
                _ = gone => break,
                () = tick => {
                    // A comment the client ignores: workerd notices a client that vanished only
                    // when a write to it fails (then the request's signal aborts). It also keeps
                    // Cloudflare's edge from cutting an idle stream.
                    if frames.try_send(Ok(b":\n\n".to_vec())).is_err_and(|err| err.is_disconnected()) {
                        break;
                    }
                    continue;
                }
            };
            match event {
                Some(Ok(WebsocketEvent::Message(message))) => {
                    let Some(text) = message.text() else { continue };
                    let frame = if text == LIVENESS_PING {
                        // A write the client ignores; if the client is gone, it fails, and the
                        // runtime cancels this stream.
                        b": ping\n\n".to_vec()
                    } else {
                        text.into_bytes()
                    };
                    if frames.send(Ok(frame)).await.is_err() {
                        break;
                    }
                }
                // The session ended or a newer stream replaced this one.
                Some(Ok(WebsocketEvent::Close(_))) | Some(Err(_)) | None => break,
            }
        }
        // Tells the session object its client's stream is gone.
        let _ = socket.close(Some(1000), Some("client stream closed"));
    });
    http::event_stream(body)
}
