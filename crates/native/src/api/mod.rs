//! The HTTP API. This module only assembles the router, from the core's route table
//! (`sampling2api_core::routes`); each route's handlers live in the module named after it.
//!
//! Layers, each using only those below it (no cycles):
//! - `error` (the one error type, rendering itself in the route's flavor);
//! - `context` (the layer around every route: request id, front checks, metrics, access log;
//!   handlers extract its `RequestId`);
//! - `flow` (the sampling request flow `messages` and `chat_completions` share);
//! - the route modules: `messages`, `chat_completions`, `models`, `health`, `sessions`,
//!   `metrics`, `status`, `root`, `mcp`;
//! - this module's `app`.

mod chat_completions;
mod context;
mod error;
mod flow;
mod health;
mod mcp;
mod messages;
mod metrics;
mod models;
mod root;
mod sessions;
mod status;

use std::sync::Arc;

use axum::Router;
use axum::routing::{MethodFilter, MethodRouter, on};
use sampling2api_core::routes::{Endpoint, Methods, ROUTES};

use crate::bridge::Bridge;
use context::Front;

/// The whole app: every route of the table (the MCP endpoint only with `mcp`, in http mode at
/// the bridge's `mcp_path`), under the request context layer.
pub fn app(bridge: Arc<Bridge>, mcp: bool) -> Router {
    let mcp_path: Arc<str> = if mcp {
        bridge.mcp_path.clone()
    } else {
        Arc::from("")
    };
    let mut router = Router::new();
    for route in &ROUTES {
        let filter = method_filter(route.methods);
        let handler: MethodRouter<Arc<Bridge>> = match route.endpoint {
            Endpoint::Messages => on(filter, messages::create_message),
            Endpoint::CountTokens => on(filter, messages::count_tokens),
            Endpoint::ChatCompletions => on(filter, chat_completions::chat_completions),
            Endpoint::ListModels => on(filter, models::list_models),
            Endpoint::GetModel => on(filter, models::get_model),
            Endpoint::Health => on(filter, health::health),
            Endpoint::Sessions => on(filter, sessions::list_sessions),
            Endpoint::Metrics => on(filter, metrics::metrics),
            Endpoint::Status => on(filter, status::status),
            Endpoint::Hello => on(filter, root::hello),
            Endpoint::Root => on(filter, root::root),
            Endpoint::Mcp if mcp => on(filter, mcp::endpoint),
            Endpoint::Mcp => continue,
        };
        router = router.route(route.path_at(&mcp_path), handler);
    }
    let front = Front {
        bridge: bridge.clone(),
        mcp_path,
    };
    router
        .fallback(context::not_found)
        .method_not_allowed_fallback(context::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            front,
            context::request_context,
        ))
        .with_state(bridge)
}

/// A `GET` filter answers `HEAD` too (axum strips the body).
fn method_filter(methods: Methods) -> MethodFilter {
    match methods {
        Methods::Get => MethodFilter::GET,
        Methods::Post => MethodFilter::POST,
        Methods::PostGetDelete => MethodFilter::POST
            .or(MethodFilter::GET)
            .or(MethodFilter::DELETE),
    }
}
