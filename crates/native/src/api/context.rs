//! The layer around every route: it names the request (its id, and its route from the core's
//! table), refuses what the front must refuse (headers past the bridge's bound, foreign hosts
//! and origins, missing keys, bodies not declared JSON), counts and logs the request. Handlers
//! take the [`RequestId`] it leaves.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sampling2api_core::http::flavor::Flavor;
use sampling2api_core::http::routes::{self, Route};
use sampling2api_core::{
    ApiError, ErrorKind, http::auth, http::browser_guard, http::request_headers, ids,
};

use super::error::HttpError;
use crate::bridge::Bridge;
use crate::ids::random_u128;

/// The request's id, and the flavor of its route (which shape its errors take), as the
/// context layer assigned them. Errors made with [`RequestId::error`] carry both.
#[derive(Debug, Clone)]
pub struct RequestId {
    id: Arc<str>,
    flavor: Flavor,
}

impl RequestId {
    pub fn as_str(&self) -> &str {
        &self.id
    }

    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    #[cfg(test)]
    pub fn for_tests(id: &str) -> Self {
        RequestId {
            id: Arc::from(id),
            flavor: Flavor::Anthropic,
        }
    }

    pub fn error(&self, error: ApiError) -> HttpError {
        HttpError {
            flavor: self.flavor,
            request_id: self.id.clone(),
            error,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // The layer wraps every route, so the id is always there.
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId {
                id: Arc::from(""),
                flavor: Flavor::Anthropic,
            }))
    }
}

/// What a handler tells the access log about the request it served.
#[derive(Debug, Clone, Default)]
pub struct RequestLog {
    pub session: Option<String>,
    pub model: Option<String>,
}

/// The layer's state: the bridge, and where the MCP endpoint is (empty: none, in stdio mode).
#[derive(Clone)]
pub struct Front {
    pub bridge: Arc<Bridge>,
    pub mcp_path: Arc<str>,
}

/// Assigns the request id, refuses foreign browser origins, missing keys and non-JSON bodies,
/// counts the request in the metrics, and logs one line per API request.
///
/// Not an `async fn`: the checks run here, and the future returned, which lives as long as
/// the request (seconds, for one waiting for its client), holds the route's boxed future and
/// what the log line needs, not the request an `async fn` would keep as its argument.
pub fn request_context(
    State(front): State<Front>,
    mut request: Request,
    mut next: Next,
) -> impl Future<Output = Response> + Send {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let route = routes::find(&path, &front.mcp_path).map(|(route, _)| route);
    let headers = request.headers();
    let speaks_anthropic =
        headers.contains_key("anthropic-version") || headers.contains_key("x-api-key");
    let flavor = match route {
        Some(route) => route.flavor(speaks_anthropic),
        None => routes::flavor_of(&path, &front.mcp_path, speaks_anthropic),
    };
    let request_id = RequestId {
        id: Arc::from(ids::request_id(random_u128())),
        flavor,
    };
    let bridge = &front.bridge;
    let refusal = headers_too_large(request.headers())
        .or_else(|| browser_refusal(bridge, &request))
        .or_else(|| check_key(bridge, route, request.headers()).err())
        .or_else(|| not_json_body(route, &request));
    let refused_at_front = refusal.is_some();
    let answer = match refusal {
        Some(err) => Err(request_id.error(err).into_response()),
        None => {
            request.extensions_mut().insert(request_id.clone());
            // `Next::run` is an `async fn` that would keep the request in its future too.
            Ok(tower::Service::call(&mut next, request))
        }
    };
    async move {
        let mut response = match answer {
            Ok(running) => match running.await {
                Ok(response) => response,
                Err(never) => match never {},
            },
            Err(refused) => refused,
        };
        let bridge = &front.bridge;
        let request_id = request_id.as_str();
        if let Ok(value) = HeaderValue::from_str(request_id) {
            response.headers_mut().insert("request-id", value);
        }
        let status = response.status().as_u16();
        let label = route.map_or("unmatched", |route| route.path_at(&front.mcp_path));
        bridge.metrics.record_request(label, status);
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        // Accepted requests are on the status board already (their handlers add a RequestLog);
        // what the front refused is only counted (see `StatusBoard::record_refused_at_front`).
        if route.is_some_and(|route| route.samples) {
            if refused_at_front {
                bridge.status.record_refused_at_front();
            } else if response.extensions().get::<RequestLog>().is_none() {
                bridge
                    .status
                    .record_refused(request_id.to_string(), &path, status, started);
            }
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
}

/// Headers past the bridge's bound (core `request_headers`; hyper's hard limit is higher,
/// see `server/mod.rs`), refused before anything reads them.
fn headers_too_large(headers: &HeaderMap) -> Option<ApiError> {
    let fields = headers
        .iter()
        .map(|(name, value)| (name.as_str().len(), value.len()));
    request_headers::check(fields).err()
}

/// With keys configured, every route but the keyless ones (liveness, the page) needs one; so
/// does every path that is no route.
fn check_key(bridge: &Bridge, route: Option<&Route>, headers: &HeaderMap) -> Result<(), ApiError> {
    let keys = &bridge.settings.api_keys;
    if keys.is_empty() || route.is_some_and(|route| !route.needs_key) {
        return Ok(());
    }
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let presented = auth::presented_keys(header("x-api-key"), header("authorization"));
    if auth::authorized(&presented, keys) {
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
fn not_json_body(route: Option<&Route>, request: &Request) -> Option<ApiError> {
    if !route.is_some_and(|route| route.json_body) || request.method() != Method::POST {
        return None;
    }
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|value| value.to_str().unwrap_or("\u{fffd}"));
    (!browser_guard::is_json_content_type(content_type))
        .then(|| browser_guard::not_json_error(content_type))
}

/// Paths that are no route, and routes asked with another method: the request's flavor of
/// 404 and 405.
pub async fn not_found(request_id: RequestId, method: Method, uri: axum::http::Uri) -> HttpError {
    request_id.error(routes::not_found(method.as_str(), uri.path()))
}

pub async fn method_not_allowed(
    request_id: RequestId,
    method: Method,
    uri: axum::http::Uri,
) -> HttpError {
    request_id.error(routes::method_not_allowed(method.as_str(), uri.path()))
}
