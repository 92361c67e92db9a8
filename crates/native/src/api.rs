//! The HTTP API router: `/v1/messages`, `/health`, `HEAD /`, and Anthropic-shaped errors for
//! everything else. Every response carries a `request-id` header.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sampling2api_core::health::{Health, SessionInfo, health_body, sessions_body};
use sampling2api_core::{ApiError, ErrorKind, browser_guard, ids};
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
        .route("/status", get(crate::status::status))
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
    let refusal = browser_refusal(&bridge, &request)
        .or_else(|| check_key(&bridge, &path, request.headers()).err())
        .or_else(|| not_json_body(&request, route != "unmatched"));
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
    // Accepted requests are on the status board already (their handlers add a RequestLog).
    if crate::status::is_sampling_route(&path)
        && response.extensions().get::<RequestLog>().is_none()
    {
        crate::status::record_refused(&bridge, request_id.clone(), &path, status, started);
    }
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

/// What a web page in the user's browser must not do (see `browser_guard` in the core): reach
/// the bridge under a rebound name (`Host`), or call it from a foreign origin.
fn browser_refusal(bridge: &Bridge, request: &Request) -> Option<ApiError> {
    let headers = request.headers();
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Some(ApiError::invalid_request(
            "the request has more than one Host header",
        ));
    }
    let host = match host {
        Some(value) => Some(value.to_str().unwrap_or("\u{fffd}")),
        // HTTP/2 carries the host as `:authority`; HTTP/1.0 may omit it.
        None => request
            .uri()
            .authority()
            .map(|authority| authority.as_str()),
    };
    let host_required = request.version() >= axum::http::Version::HTTP_11;
    if (host.is_some() || host_required)
        && let Err(err) = bridge.host_policy.check(host)
    {
        return Some(err);
    }
    // An absolute-form target names the host too, and wins over the header.
    if let Some(authority) = request.uri().authority()
        && let Err(err) = bridge.host_policy.check(Some(authority.as_str()))
    {
        return Some(err);
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let allowed = origin.to_str().is_ok_and(|origin| {
            browser_guard::origin_allowed(origin, &bridge.settings.allow_origins)
        });
        if !allowed {
            return Some(browser_guard::origin_error());
        }
    }
    None
}

/// A POST to a JSON route whose body is not declared JSON: a cross-site form or text POST
/// needs no preflight, so this is refused even from pages the other checks let through.
fn not_json_body(request: &Request, matched: bool) -> Option<ApiError> {
    if !matched || request.method() != Method::POST {
        return None;
    }
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|value| value.to_str().unwrap_or("\u{fffd}"));
    (!browser_guard::is_json_content_type(content_type))
        .then(|| browser_guard::not_json_error(content_type))
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
    let health = Health::with_sessions(
        bridge.mode,
        sessions.len() as u64,
        sessions.iter().filter(|s| s.can_sample()).count() as u64,
        bridge.in_flight(),
        sessions
            .iter()
            .map(|s| s.state().pending_count() as u64)
            .sum(),
    );
    json_response(StatusCode::OK, health_body(&health))
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
    let sessions = bridge
        .sessions()
        .iter()
        .map(|session| {
            let state = session.state();
            let client = state.client();
            let support = client.and_then(|c| c.sampling);
            SessionInfo {
                id: session.handle.clone(),
                client_name: client.and_then(|c| c.client_name.clone()),
                client_version: client.and_then(|c| c.client_version.clone()),
                protocol_version: client.map(|c| c.protocol_version.clone()),
                sampling: support.is_some(),
                sampling_tools: support.is_some_and(|s| s.tools),
                tools: support.map(|s| bridge.settings.tool_mode.delivery(s).as_str()),
                ready: state.can_sample(),
                event_stream_open: session.has_stream(),
                pending: Some(state.pending_count() as u64),
            }
        })
        .collect();
    json_response(StatusCode::OK, sessions_body(sessions))
}

/// `GET`/`HEAD /api/hello`: 200, no key needed (axum answers `HEAD` without the body).
async fn hello() -> Response {
    json_response(StatusCode::OK, r#"{"status":"ok"}"#.to_string())
}

/// Claude Code probes `HEAD /` at start-up; any answer will do, so say what this is. A
/// browser gets the status page (it holds no data, so it needs no key; `/status` does).
async fn root(method: Method, headers: HeaderMap) -> Response {
    if method == Method::HEAD {
        return StatusCode::OK.into_response();
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok());
    if sampling2api_core::status::wants_html(accept) {
        return crate::status::page();
    }
    json_response(
        StatusCode::OK,
        json!({"name": "sampling2api", "version": env!("CARGO_PKG_VERSION"), "api": "/v1/messages"})
            .to_string(),
    )
}
