//! sampling2api as a Cloudflare Worker: the same API and `/mcp` as the native binary, built on
//! the same core. Each MCP session is a Durable Object (`McpSessionObject`); each token's
//! sessions are listed by a `NamespaceRegistry` object; the Worker itself authenticates, serves
//! the API, and holds clients' SSE streams, fed from their session objects over hibernatable
//! WebSockets.
//!
//! Modules: `tenancy` (token → namespace), `config` (settings from vars), `api` (the API
//! routes), `mcp_endpoint` (`/mcp` and the client's SSE stream), `journal` (log line and
//! metrics), `http` (responses, calls to objects); the objects `session_object` and
//! `registry_object`, each with its typed client (`session_client`, `registry_client`: routes
//! and messages), which the rest of the Worker calls them through.
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
mod tenancy;

pub use registry_object::NamespaceRegistry;
pub use session_object::McpSessionObject;

use journal::Journal;
use sampling2api_core::flavor::Flavor;
use sampling2api_core::{ApiError, browser_guard, ids};
use worker::{Context, Env, Method, Request, Response, Result, event};

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let request_id = ids::request_id(random::random_u128());
    let path = req.path();
    let flavor = Flavor::of(&path, api::speaks_anthropic(&req));
    let mut journal = Journal::start(request_id.clone(), &req.method(), &path);
    let mut response = match route(req, &env, &ctx, &mut journal).await {
        Ok(response) => response,
        Err(err) => http::error(flavor, &err, &request_id)?,
    };
    let _ = response.headers_mut().set("request-id", &request_id);
    journal.finish(response.status_code(), &env, &ctx);
    Ok(response)
}

async fn route(
    req: Request,
    env: &Env,
    ctx: &Context,
    journal: &mut Journal,
) -> std::result::Result<Response, ApiError> {
    let request_id = journal.request_id.clone();
    let request_id = request_id.as_str();
    let path = req.path();
    let has_token = req.headers().has("authorization").unwrap_or(false)
        || req.headers().has("x-api-key").unwrap_or(false);
    match (req.method(), path.as_str()) {
        // Liveness needs no token; with one, it also reports that namespace's sessions.
        (Method::Get, "/health") if !has_token => {
            let alive = sampling2api_core::health::Health::alive("worker");
            return http::json(200, sampling2api_core::health::health_body(&alive));
        }
        // Claude Code's preconnect probe: no token.
        (Method::Get | Method::Head, "/api/hello") => {
            return http::json(200, r#"{"status":"ok"}"#.into());
        }
        // A browser gets the status page; it holds no data, so it needs no token (`/status` does).
        (Method::Get, "/")
            if sampling2api_core::status::wants_html(
                req.headers().get("accept").ok().flatten().as_deref(),
            ) =>
        {
            return http::status_page();
        }
        (Method::Get | Method::Head, "/") => {
            return http::json(
                200,
                r#"{"name":"sampling2api","runtime":"worker","api":"/v1/messages"}"#.into(),
            );
        }
        _ => {}
    }
    let namespace = tenancy::namespace_of(&req, env)?;
    // A cross-site POST with a form or text body needs no preflight: JSON routes take JSON
    // only, checked after the token as natively.
    if req.method() == Method::Post
        && matches!(
            path.as_str(),
            "/mcp" | "/v1/messages" | "/v1/messages/count_tokens" | "/v1/chat/completions"
        )
    {
        let content_type = req.headers().get("content-type").ok().flatten();
        if !browser_guard::is_json_content_type(content_type.as_deref()) {
            return Err(browser_guard::not_json_error(content_type.as_deref()));
        }
    }
    let settings = config::Settings::from_env(env);
    journal.namespace = Some(namespace.0.clone());
    journal.set_log_prompts(settings.log_prompts);
    match (req.method(), path.as_str()) {
        (_, "/mcp") => mcp_endpoint::handle(req, env, &namespace, &settings).await,
        (Method::Post, "/v1/messages") => {
            api::messages(req, env, ctx, &namespace, &settings, journal).await
        }
        (Method::Post, "/v1/messages/count_tokens") => {
            api::count_tokens(req, &settings, journal).await
        }
        (Method::Post, "/v1/chat/completions") => {
            api::chat_completions(req, env, ctx, &namespace, &settings, journal).await
        }
        (Method::Get, "/v1/models") => api::list_models(req, env, &namespace, &settings).await,
        (Method::Get, path) if path.starts_with("/v1/models/") => {
            api::get_model(
                &req,
                env,
                &namespace,
                &settings,
                &path["/v1/models/".len()..],
            )
            .await
        }
        (Method::Get, "/sessions") => api::list_sessions(env, &namespace, &settings).await,
        (Method::Get, "/health") => api::namespace_health(env, &namespace).await,
        (Method::Get, "/metrics") => api::metrics(env, &namespace).await,
        (Method::Get, "/status") => api::status(env, &namespace, &settings).await,
        (method, path) => {
            let known = [
                "/v1/messages",
                "/v1/messages/count_tokens",
                "/v1/chat/completions",
                "/v1/models",
                "/sessions",
                "/metrics",
                "/status",
            ];
            let shown: String = path.chars().take(200).collect();
            if known.contains(&path) || path.starts_with("/v1/models/") {
                let err = ApiError::invalid_request(format!(
                    "method {method:?} is not allowed on {shown}"
                ));
                let flavor = Flavor::of(path, true);
                Ok(http::error(flavor, &err, request_id)
                    .map_err(http::internal)?
                    .with_status(405))
            } else {
                Err(ApiError::not_found(format!(
                    "no route for {method:?} {shown}"
                )))
            }
        }
    }
}
