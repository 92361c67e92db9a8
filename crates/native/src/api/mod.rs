//! The HTTP API. This module only assembles the router, from the core's route table
//! (`sampling2api_core::http::routes`); each route's handlers live in the module named after it.
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
use sampling2api_core::http::routes::{Endpoint, Methods, ROUTES};

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
    use sampling2api_core::http::routes::Convention;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;
    use crate::config::{ApiSettings, Invocation, Mode};

    pub(super) fn bridge() -> Arc<Bridge> {
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

    /// Whoever can reach the port without the key must not be able to rewrite the owner's list
    /// of recent requests: the front's refusals are counted, only requests past it are listed.
    #[tokio::test]
    async fn the_fronts_refusals_are_counted_and_not_listed() {
        let argv = [
            "sampling2api",
            "http",
            "--allow-host",
            "*",
            "--api-key",
            "k",
        ];
        let Ok(Invocation::Bridge(cli)) = Invocation::try_parse_from(argv) else {
            panic!("the test's command line parses");
        };
        let Mode::Http(args) = cli.mode else {
            panic!("http mode");
        };
        let bridge = Arc::new(Bridge::new(ApiSettings::from(&args.common), "http"));
        let app = app(bridge.clone(), true);
        let send = |headers: &[(&str, &str)], body: &'static str| {
            let mut request = Request::builder()
                .method("POST")
                .uri("/v1/messages")
                .header("host", "localhost");
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            app.clone().oneshot(request.body(Body::from(body)).unwrap())
        };
        let json = ("content-type", "application/json");
        for (headers, status) in [
            (vec![json], 401),
            (vec![json, ("x-api-key", "wrong")], 401),
            (
                vec![json, ("x-api-key", "k"), ("origin", "http://evil.example")],
                403,
            ),
            (
                vec![("content-type", "text/plain"), ("x-api-key", "k")],
                400,
            ),
        ] {
            let response = send(&headers, "{}").await.unwrap();
            assert_eq!(response.status().as_u16(), status, "{headers:?}");
        }
        assert_eq!(bridge.status.history().recent().count(), 0);
        assert_eq!(bridge.status.refused_at_front(), 4);
        // Past the front, a refusal is the owner's to see.
        let response = send(&[json, ("x-api-key", "k")], "{not json")
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let statuses: Vec<u16> = bridge.status.history().recent().map(|r| r.status).collect();
        assert_eq!(statuses, [400]);
        assert_eq!(bridge.status.refused_at_front(), 4);
    }

    #[tokio::test]
    async fn without_mcp_the_mcp_path_is_no_route() {
        let app = app(bridge(), false);
        let (status, body) = call(&app, "POST", "/mcp").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["type"], "not_found_error");
    }
}

/// What a sampling request holds while it waits for its client (seconds, and thousands of
/// them at once): not its head or body, and futures without the request inside.
#[cfg(test)]
mod waiting {
    use std::future::Future;
    use std::sync::Arc;

    use axum::body::Body;
    use axum::extract::{Request, State};
    use axum::http::{HeaderValue, Uri};
    use axum::middleware::Next;
    use bytes::Bytes;
    use sampling2api_core::api::anthropic::parse_messages_request;
    use serde_json::json;

    use super::context::{Front, RequestId, request_context};
    use super::flow::{Accepted, complete, receive};
    use crate::bridge::Bridge;
    use crate::session::Session;

    /// The size of the future `f` returns, without calling it.
    fn future_size<A, F: Future>(_: impl FnOnce(A) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// A bridge with one stdio client that can sample.
    fn bridge_with_client() -> (
        Arc<Bridge>,
        crate::outbox::OutboxReceiver<crate::session::Outgoing>,
    ) {
        let bridge = super::tests::bridge();
        let (lines, outgoing) = crate::outbox::outbox();
        let session = Session::over_pipe("s".into(), lines, bridge.session_limits());
        session.handshake_for_tests();
        bridge.add_session(session);
        (bridge, outgoing)
    }

    /// hyper hands a request over as slices of its connection's read buffer (the target, the
    /// header values, the body). Once the request is accepted, none of them may be kept: a
    /// request waiting for its answer would keep hyper's whole 8 KB buffer alive, and hyper
    /// would allocate another for the connection.
    #[tokio::test]
    async fn an_accepted_request_keeps_nothing_of_the_buffer_it_was_read_from() {
        let (bridge, _outgoing) = bridge_with_client();
        let body = json!({"model": "m", "max_tokens": 5,
            "messages": [{"role": "user", "content": "hi"}]})
        .to_string();
        let wire = Bytes::from(format!(
            "/v1/messages|application/json|{}|{body}",
            body.len()
        ));
        let parts: Vec<(usize, usize)> = {
            let mut start = 0;
            let mut ranges = Vec::new();
            for piece in wire.split(|byte| *byte == b'|') {
                ranges.push((start, start + piece.len()));
                start += piece.len() + 1;
            }
            ranges
        };
        let slice = |index: usize| wire.slice(parts[index].0..parts[index].1);
        let request = Request::builder()
            .method("POST")
            .uri(Uri::from_maybe_shared(slice(0)).unwrap())
            .header(
                "content-type",
                HeaderValue::from_maybe_shared(slice(1)).unwrap(),
            )
            .header(
                "content-length",
                HeaderValue::from_maybe_shared(slice(2)).unwrap(),
            )
            .body(Body::from(slice(3)))
            .unwrap();
        assert!(!wire.is_unique());
        let receiving = receive(
            bridge.clone(),
            request,
            (RequestId::for_tests("req_x"), "/v1/messages"),
            |body| parse_messages_request(body, true).map(|request| ((), request)),
        );
        let Ok(((), accepted)) = receiving.await else {
            panic!("the request is accepted");
        };
        assert!(
            wire.is_unique(),
            "an accepted request still holds part of the buffer it was read from"
        );
        assert_eq!(accepted.answering.model, "m");
    }

    /// The futures a waiting request keeps hold what the wait needs, not the request they
    /// started from (an `async fn` keeps its arguments to its end): the handler's is the
    /// sampling future's plus a little, the request layer's is smaller than two requests.
    #[test]
    fn a_waiting_request_s_futures_do_not_hold_the_request() {
        let request = std::mem::size_of::<Request>();
        let completing =
            future_size(|(b, a): (Arc<Bridge>, Accepted)| async move { complete(&b, a, Ok).await });
        let handler = future_size(|(b, r, q): (State<Arc<Bridge>>, RequestId, Request)| {
            super::messages::create_message(b, r, q)
        });
        let chat = future_size(|(b, r, q): (State<Arc<Bridge>>, RequestId, Request)| {
            super::chat_completions::chat_completions(b, r, q)
        });
        let layer =
            future_size(|(s, r, n): (State<Front>, Request, Next)| request_context(s, r, n));
        assert!(handler < completing + request, "{handler} vs {completing}");
        assert!(chat < completing + request, "{chat} vs {completing}");
        assert!(layer < 2 * request, "{layer}");
        assert!(
            completing < std::mem::size_of::<Accepted>() * 4,
            "{completing}"
        );
    }
}
