//! sampling2api as a Cloudflare Worker: the same API and `/mcp` as the native binary, built on
//! the same core. Each MCP session is a Durable Object (`McpSessionObject`); each token's
//! sessions are listed by a `NamespaceRegistry` object; the Worker itself authenticates, serves
//! the API, and holds clients' SSE streams, fed from their session objects over hibernatable
//! WebSockets.
//!
//! Modules: `tenancy` (token → namespace), `config` (settings from vars), `api` (the API
//! routes), `mcp_endpoint` (`/mcp` and the client's SSE stream), `journal` (log line and
//! metrics), `http` (responses, calls to objects); the objects `session_object` and
//! `registry_object`, each with its typed client (`session_client`, `registry_client`), which
//! the rest of the Worker calls them through; the session object's wire protocol (routes and
//! messages) is `session_protocol`, which its client and the object both import.
//!
//! An API request: `fetch` → `tenancy` → `api` (parse, route to a session through the
//! registry's list, convert) → `SessionObjectClient::sample` → the session object (its
//! `SessionLifecycle` admits, queues, sends on the client's stream, waits) → the outcome → the
//! response; `journal` records it.

mod api;
mod config;
mod http;
mod journal;
mod mcp_endpoint;
mod random;
mod registry_client;
mod registry_object;
mod session_client;
mod session_object;
mod session_protocol;
mod tenancy;

pub use registry_object::NamespaceRegistry;
pub use session_object::McpSessionObject;

use journal::Journal;
use sampling2api_core::http::routes::{self, DEFAULT_MCP_PATH, Endpoint, Resolved};
use sampling2api_core::{ApiError, http::browser_guard, http::request_headers, ids};
use worker::{Context, Env, Method, Request, Response, Result, event};

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let request_id = ids::request_id(random::random_u128());
    let path = req.path();
    let flavor = routes::flavor_of(&path, DEFAULT_MCP_PATH, api::speaks_anthropic(&req));
    let mut journal = Journal::start(request_id.clone(), &req.method(), &path);
    let mut response = match route(req, &env, &mut journal).await {
        Ok(response) => response,
        Err(err) => http::error(flavor, &err, &request_id)?,
    };
    let _ = response.headers_mut().set("request-id", &request_id);
    journal.finish(response.status_code(), &env, &ctx);
    Ok(response)
}

/// Dispatches by the core's route table (`sampling2api_core::http::routes`), as the native router
/// does: keyless routes first, then the token, the JSON body check, and the route's handler.
async fn route(
    req: Request,
    env: &Env,
    journal: &mut Journal,
) -> std::result::Result<Response, ApiError> {
    // The bridge's own bound on headers, as natively; Cloudflare's (or workerd's) own limits
    // apply before the Worker runs and answer without it.
    request_headers::check(
        req.headers()
            .entries()
            .map(|(name, value)| (name.len(), value.len())),
    )?;
    let path = req.path();
    let method = req.method();
    let resolved = routes::resolve(method.as_ref(), &path, DEFAULT_MCP_PATH);
    let has_token = req.headers().has("authorization").unwrap_or(false)
        || req.headers().has("x-api-key").unwrap_or(false);
    match resolved {
        // With a token, liveness also reports that namespace's sessions (below).
        Resolved::Route(route, _) if route.endpoint == Endpoint::Health && has_token => {}
        Resolved::Route(route, _) if !route.needs_key => return keyless(route.endpoint, &req),
        Resolved::MethodNotAllowed(route) if !route.needs_key => {
            return Err(routes::method_not_allowed(method.as_ref(), &path));
        }
        _ => {}
    }
    let namespace = tenancy::namespace_of(&req, env)?;
    let (route, id) = match resolved {
        Resolved::Route(route, id) => (route, id),
        Resolved::MethodNotAllowed(_) => {
            return Err(routes::method_not_allowed(method.as_ref(), &path));
        }
        Resolved::NotFound => return Err(routes::not_found(method.as_ref(), &path)),
    };
    // A cross-site POST with a form or text body needs no preflight: JSON routes take JSON
    // only, checked after the token as natively.
    if route.json_body && method == Method::Post {
        let content_type = req.headers().get("content-type").ok().flatten();
        if !browser_guard::is_json_content_type(content_type.as_deref()) {
            return Err(browser_guard::not_json_error(content_type.as_deref()));
        }
    }
    let settings = config::Settings::from_env(env);
    journal.namespace = Some(namespace.0.clone());
    journal.set_log_prompts(settings.log_prompts);
    match route.endpoint {
        Endpoint::Mcp => mcp_endpoint::handle(req, env, &namespace, &settings).await,
        Endpoint::Messages => api::messages(req, env, &namespace, &settings, journal).await,
        Endpoint::CountTokens => api::count_tokens(req, &settings, journal).await,
        Endpoint::ChatCompletions => {
            api::chat_completions(req, env, &namespace, &settings, journal).await
        }
        Endpoint::ListModels => api::list_models(req, env, &namespace, &settings).await,
        Endpoint::GetModel => {
            let id = id.unwrap_or_default().to_string();
            api::get_model(&req, env, &namespace, &settings, &id).await
        }
        Endpoint::Sessions => api::list_sessions(env, &namespace, &settings).await,
        Endpoint::Health => api::namespace_health(env, &namespace).await,
        Endpoint::Metrics => api::metrics(env, &namespace).await,
        Endpoint::Status => api::status(env, &namespace, &settings).await,
        Endpoint::Hello | Endpoint::Root => keyless(route.endpoint, &req),
    }
}

/// The routes that need no token: liveness, Claude Code's preconnect probe, and what this is
/// (a browser gets the status page; it holds no data, `/status` does).
fn keyless(endpoint: Endpoint, req: &Request) -> std::result::Result<Response, ApiError> {
    match endpoint {
        Endpoint::Health => {
            let alive = sampling2api_core::ops::health::Health::alive("worker");
            http::json(200, sampling2api_core::ops::health::health_body(&alive))
        }
        Endpoint::Hello => http::json(200, r#"{"status":"ok"}"#.into()),
        Endpoint::Root
            if req.method() == Method::Get
                && sampling2api_core::ops::status::wants_html(
                    req.headers().get("accept").ok().flatten().as_deref(),
                ) =>
        {
            http::status_page()
        }
        _ => http::json(
            200,
            r#"{"name":"sampling2api","runtime":"worker","api":"/v1/messages"}"#.into(),
        ),
    }
}
