//! The HTTP API router: `/v1/messages`, `/health`, `HEAD /`, and Anthropic-shaped errors for
//! everything else. Every response carries a `request-id` header.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use sampling2api_core::{ApiError, ErrorKind, ids};
use serde_json::json;

use crate::bridge::Bridge;
use crate::ids::random_u128;
use crate::messages::{count_tokens, create_message};
use crate::models::{get_model, list_models};
use crate::openai::chat_completions;

/// The id of the request being served, for error bodies and logs.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// What a handler tells the access log about the request it served.
#[derive(Debug, Clone, Default)]
pub struct RequestLog {
    pub session: Option<String>,
    pub model: Option<String>,
}

pub use sampling2api_core::flavor::Flavor;

/// The flavor of a request, from its path and headers.
pub fn flavor_of(request: &Request) -> Flavor {
    let headers = request.headers();
    Flavor::of(
        request.uri().path(),
        headers.contains_key("anthropic-version") || headers.contains_key("x-api-key"),
    )
}

pub fn flavored_error(flavor: Flavor, err: &ApiError, request_id: &str) -> Response {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(status, flavor.error_body(err, request_id));
    if flavor != Flavor::Mcp {
        for (name, value) in err.extra_headers() {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
    }
    response
}

pub fn openai_error_response(err: &ApiError, request_id: &str) -> Response {
    flavored_error(Flavor::OpenAi, err, request_id)
}

/// The whole app: the API routes, `extra` (the /mcp endpoint in http mode), and the request
/// context layer over all of them.
pub fn app(bridge: Arc<Bridge>, extra: Option<Router<Arc<Bridge>>>) -> Router {
    let mut routes = Router::new()
        .route("/v1/messages", post(create_message))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(list_models))
        .route("/v1/models/{id}", get(get_model))
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/sessions", get(list_sessions))
        .route("/api/hello", get(hello))
        .route("/", get(root));
    if let Some(extra) = extra {
        routes = routes.merge(extra);
    }
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            bridge.clone(),
            request_context,
        ))
        .with_state(bridge)
}

pub fn error_response(err: &ApiError, request_id: &str) -> Response {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, err.to_body(request_id)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in err.extra_headers() {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}

pub fn json_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Assigns the request id, refuses foreign browser origins and missing keys, counts the request
/// in the metrics, and logs one line per API request.
async fn request_context(
    State(bridge): State<Arc<Bridge>>,
    mut request: Request,
    next: Next,
) -> Response {
    let request_id = ids::request_id(random_u128());
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |matched| matched.as_str())
        .to_string();
    let flavor = flavor_of(&request);
    let refusal = match request.headers().get(header::ORIGIN) {
        Some(origin) if !origin_allowed(origin, &bridge.settings.allow_origins) => {
            Some(ApiError::new(
                ErrorKind::Permission,
                "requests from this browser origin are not allowed (see --allow-origin)",
            ))
        }
        _ => check_key(&bridge, &path, request.headers()).err(),
    };
    let mut response = match refusal {
        Some(err) => flavored_error(flavor, &err, &request_id),
        None => {
            request
                .extensions_mut()
                .insert(RequestId(request_id.clone()));
            next.run(request).await
        }
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("request-id", value);
    }
    let status = response.status().as_u16();
    bridge.metrics.record_request(&route, status);
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    if path.starts_with("/v1/") {
        let log = response
            .extensions()
            .get::<RequestLog>()
            .cloned()
            .unwrap_or_default();
        tracing::info!(
            request_id,
            %method,
            path,
            status,
            latency_ms,
            session = log.session.as_deref().unwrap_or("-"),
            model = log.model.as_deref().unwrap_or("-"),
            "api request"
        );
    } else {
        tracing::debug!(request_id, %method, path, status, latency_ms, "request");
    }
    response
}

/// Claude Code's unauthenticated preconnect probe (`HEAD`, and `GET`, of this path).
const HELLO_PATH: &str = "/api/hello";

/// With keys configured, every route but the liveness ones needs one.
fn check_key(bridge: &Bridge, path: &str, headers: &HeaderMap) -> Result<(), ApiError> {
    let keys = &bridge.settings.api_keys;
    if keys.is_empty() || path == "/health" || path == "/" || path == HELLO_PATH {
        return Ok(());
    }
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let presented =
        sampling2api_core::auth::presented_keys(header("x-api-key"), header("authorization"));
    if sampling2api_core::auth::authorized(&presented, keys) {
        Ok(())
    } else if presented.is_empty() {
        Err(ApiError::new(
            ErrorKind::Authentication,
            "an API key is required: send it as x-api-key or Authorization: Bearer",
        ))
    } else {
        Err(ApiError::new(ErrorKind::Authentication, "invalid API key"))
    }
}

/// Loopback origins are the user's own tools; other sites must be allowed explicitly, so a
/// web page cannot spend the user's LLM (or drive /mcp) through their browser.
fn origin_allowed(origin: &HeaderValue, allowed: &[String]) -> bool {
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if allowed
        .iter()
        .any(|entry| entry == "*" || entry.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some((_, rest)) = origin.split_once("://") else {
        return false;
    };
    let host = if rest.starts_with('[') {
        rest.split(']')
            .next()
            .map(|h| format!("{h}]"))
            .unwrap_or_default()
    } else {
        rest.split(':').next().unwrap_or_default().to_string()
    };
    matches!(host.as_str(), "localhost" | "127.0.0.1" | "[::1]") || host.starts_with("127.")
}

fn request_id_of(request: &Request) -> String {
    request
        .extensions()
        .get::<RequestId>()
        .map(|id| id.0.clone())
        .unwrap_or_default()
}

async fn not_found(request: Request) -> Response {
    let path: String = request.uri().path().chars().take(200).collect();
    flavored_error(
        flavor_of(&request),
        &ApiError::not_found(format!("no route for {} {path}", request.method())),
        &request_id_of(&request),
    )
}

async fn method_not_allowed(request: Request) -> Response {
    let path: String = request.uri().path().chars().take(200).collect();
    let mut response = flavored_error(
        flavor_of(&request),
        &ApiError::invalid_request(format!(
            "method {} is not allowed on {path}",
            request.method()
        )),
        &request_id_of(&request),
    );
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response
}

async fn health(State(bridge): State<Arc<Bridge>>) -> Response {
    let sessions = bridge.sessions();
    let ready = sessions.iter().filter(|s| s.can_sample()).count();
    let body = json!({
        "status": "ok",
        "mode": bridge.mode,
        "version": env!("CARGO_PKG_VERSION"),
        "sessions": sessions.len(),
        "sampling_sessions": ready,
        "in_flight": bridge.in_flight(),
        "pending": sessions.iter().map(|s| s.state().pending_count()).sum::<usize>(),
    });
    json_response(StatusCode::OK, body.to_string())
}

async fn metrics(State(bridge): State<Arc<Bridge>>) -> Response {
    let mut response = (StatusCode::OK, bridge.metrics_text()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// The connected MCP clients, so a caller can pick one with `x-mcp-session-id`.
async fn list_sessions(State(bridge): State<Arc<Bridge>>) -> Response {
    let mut sessions: Vec<serde_json::Value> = bridge
        .sessions()
        .iter()
        .map(|session| {
            let state = session.state();
            let client = state.client();
            json!({
                "id": session.id,
                "client_name": client.and_then(|c| c.client_name.clone()),
                "client_version": client.and_then(|c| c.client_version.clone()),
                "protocol_version": client.map(|c| c.protocol_version.clone()),
                "sampling": client.is_some_and(|c| c.sampling.is_some()),
                "sampling_tools": client.and_then(|c| c.sampling).is_some_and(|s| s.tools),
                "tools": client
                    .and_then(|c| c.sampling)
                    .map(|support| bridge.settings.tool_mode.delivery(support).as_str()),
                "ready": state.can_sample(),
                "event_stream_open": session.has_stream(),
                "pending": state.pending_count(),
            })
        })
        .collect();
    sessions.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    json_response(StatusCode::OK, json!({"data": sessions}).to_string())
}

/// `GET`/`HEAD /api/hello`: 200, no key needed (axum answers `HEAD` without the body).
async fn hello() -> Response {
    json_response(StatusCode::OK, r#"{"status":"ok"}"#.to_string())
}

/// Claude Code probes `HEAD /` at start-up; any answer will do, so say what this is.
async fn root(method: Method) -> Response {
    if method == Method::HEAD {
        return StatusCode::OK.into_response();
    }
    json_response(
        StatusCode::OK,
        json!({"name": "sampling2api", "version": env!("CARGO_PKG_VERSION"), "api": "/v1/messages"})
            .to_string(),
    )
}

/// Reads a body up to `limit` bytes; over it is 413 before more is read.
pub async fn read_body(
    mut body: Body,
    limit: usize,
    content_length: Option<u64>,
) -> Result<bytes::Bytes, ApiError> {
    let too_large = || ApiError::body_too_large(limit);
    if content_length.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    // One buffer of the declared size, filled frame by frame: collecting the frames first and
    // joining them would hold a large body twice.
    let declared = content_length.map_or(0, |length| length as usize);
    let mut collected = Vec::with_capacity(declared.min(limit));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| {
            ApiError::invalid_request(format!("could not read the request body: {err}"))
        })?;
        if let Ok(data) = frame.into_data() {
            if collected.len() + data.len() > limit {
                return Err(too_large());
            }
            collected.extend_from_slice(&data);
        }
    }
    Ok(bytes::Bytes::from(collected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let ok = |o: &str, allowed: &[&str]| {
            let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
            origin_allowed(&HeaderValue::from_str(o).unwrap(), &allowed)
        };
        assert!(ok("http://localhost:3000", &[]));
        assert!(ok("http://127.0.0.1", &[]));
        assert!(ok("http://[::1]:8080", &[]));
        assert!(ok("vscode-webview://abc", &["vscode-webview://abc"]));
        assert!(!ok("https://evil.example", &[]));
        assert!(!ok("http://localhost.evil.example", &[]));
        assert!(!ok("null", &[]));
        assert!(ok("https://evil.example", &["*"]));
    }
}
