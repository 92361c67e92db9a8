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

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use sampling2api_core::routes::Convention;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;
    use crate::config::{ApiSettings, Invocation, Mode};

    fn bridge() -> Arc<Bridge> {
        let argv = ["sampling2api", "http", "--allow-host", "*"];
        let Ok(Invocation::Bridge(cli)) = Invocation::try_parse_from(argv) else {
            panic!("the test's command line parses");
        };
        let Mode::Http(args) = cli.mode else {
            panic!("http mode");
        };
        Arc::new(Bridge::new(ApiSettings::from(&args.common), "http"))
    }

    async fn call(app: &Router, method: &str, path: &str) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        assert!(
            response.headers()["request-id"]
                .to_str()
                .unwrap()
                .starts_with("req_")
        );
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn the_router_serves_every_route_of_the_table_and_only_its_methods() {
        let app = app(bridge(), true);
        for route in &ROUTES {
            let path = route.path.replace("{id}", "claude-x");
            for method in ["GET", "POST", "DELETE", "PUT"] {
                let (status, body) = call(&app, method, &path).await;
                if route.methods.allows(method) {
                    assert!(
                        status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
                        "{method} {path}: {status}"
                    );
                    continue;
                }
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                let message = match route.convention {
                    Convention::Mcp => {
                        assert_eq!(body["error"]["code"], -32600);
                        &body["error"]["message"]
                    }
                    Convention::OpenAi | Convention::EitherByCaller => {
                        assert_eq!(body["error"]["type"], "invalid_request_error");
                        &body["error"]["message"]
                    }
                    Convention::Anthropic => {
                        assert_eq!(body["type"], "error", "{method} {path}");
                        &body["error"]["message"]
                    }
                };
                assert_eq!(
                    message.as_str(),
                    Some(format!("method {method} is not allowed on {path}").as_str())
                );
            }
        }
        let (status, body) = call(&app, "GET", "/nothing").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["type"], "not_found_error");
    }

    #[tokio::test]
    async fn without_mcp_the_mcp_path_is_no_route() {
        let app = app(bridge(), false);
        let (status, body) = call(&app, "POST", "/mcp").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["type"], "not_found_error");
    }
}

#[cfg(test)]
mod size_probe {
    use std::future::Future;
    use std::sync::Arc;

    use axum::extract::{Request, State};
    use axum::middleware::Next;

    use super::context::{Front, RequestId, request_context};
    use super::flow::{Accepted, complete};
    use crate::bridge::Bridge;

    fn future_size<A, F: Future>(_: impl FnOnce(A) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    #[test]
    fn print_future_sizes() {
        println!(
            "create_message {}",
            future_size(|(b, r, q): (State<Arc<Bridge>>, RequestId, Request)| {
                super::messages::create_message(b, r, q)
            })
        );
        println!(
            "chat {}",
            future_size(|(b, r, q): (State<Arc<Bridge>>, RequestId, Request)| {
                super::chat_completions::chat_completions(b, r, q)
            })
        );
        println!(
            "request_context {}",
            future_size(|(s, r, n): (State<Front>, Request, Next)| request_context(s, r, n))
        );
        println!(
            "complete {}",
            future_size(|(b, a): (Arc<Bridge>, Accepted)| async move { complete(&b, a).await })
        );
        println!("accepted {}", std::mem::size_of::<Accepted>());
        println!("request {}", std::mem::size_of::<Request>());
        use sampling2api_core::sampling::CreateMessageParams;
        println!("params {}", std::mem::size_of::<CreateMessageParams>());
        println!("plan {}", std::mem::size_of::<sampling2api_core::to_sampling::AnswerPlan>());
        println!("submitted {}", std::mem::size_of::<crate::session::Submitted>());
        println!("ticket {}", std::mem::size_of::<crate::status::StatusTicket<'static>>());
        println!("response {}", std::mem::size_of::<sampling2api_core::anthropic::MessagesResponse>());
        println!("result {}", std::mem::size_of::<sampling2api_core::sampling::CreateMessageResult>());
        println!(
            "sample {}",
            future_size(|(b, p, s, t): (Arc<Bridge>, Box<CreateMessageParams>, crate::session::Submitted, &crate::status::StatusTicket<'static>)| async move { b.sample(p, s, t).await })
        );
        println!(
            "outcome {}",
            future_size(|mut s: crate::session::Submitted| async move { s.outcome().await })
        );
        println!(
            "slot {}",
            future_size(|mut s: crate::session::Submitted| async move { s.slot().await })
        );
    }
}
