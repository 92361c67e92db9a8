//! One request's journal: what its log line says and what it adds to its namespace's metrics.
//! Filled in while the request is served and written once it is answered; a stream's sampling
//! outcome and tokens arrive when the stream ends.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use futures::channel::oneshot;
use sampling2api_core::metrics::{MetricTotals, RequestRecord, SamplingRecord, route_label};
use sampling2api_core::routes::{self, DEFAULT_MCP_PATH};
use sampling2api_core::status::RecentRequest;
use serde_json::json;
use worker::{Context, Env, Method};

use crate::http::call;
use crate::mcp_endpoint::registry_stub;
use crate::tenancy::Namespace;

thread_local! {
    /// Records not yet sent to their namespaces' registries, by namespace.
    static PENDING: RefCell<HashMap<String, MetricTotals>> = RefCell::new(HashMap::new());
    /// Finished sampling requests not yet sent to their namespaces' registries (status page).
    static PENDING_RECENT: RefCell<HashMap<String, Vec<RecentRequest>>> = RefCell::new(HashMap::new());
    /// Whether a request of this isolate is sending batches now.
    static FLUSHING: Cell<bool> = const { Cell::new(false) };
}

/// Sends pending records, one batch per namespace per round trip. Requests that finish while a
/// batch is on its way only add to the next one, so under load a namespace's registry sees a
/// few writes per isolate instead of one per request; with no load, each request is sent at once.
async fn flush(env: &Env) {
    if FLUSHING.with(|flushing| flushing.replace(true)) {
        return;
    }
    loop {
        let batches = PENDING.with(|pending| std::mem::take(&mut *pending.borrow_mut()));
        let recent = PENDING_RECENT.with(|pending| std::mem::take(&mut *pending.borrow_mut()));
        if batches.is_empty() && recent.is_empty() {
            break;
        }
        for (namespace, requests) in recent {
            let Ok(body) = serde_json::to_vec(&requests) else {
                continue;
            };
            if let Ok(stub) = registry_stub(env, &Namespace(namespace)) {
                let _ = call(&stub, Method::Post, "/recent", Some(&body)).await;
            }
        }
        for (namespace, batch) in batches {
            let Ok(body) = serde_json::to_vec(&batch) else {
                continue;
            };
            if let Ok(stub) = registry_stub(env, &Namespace(namespace)) {
                // Metrics are best effort: a failed write must not fail or delay a request.
                let _ = call(&stub, Method::Post, "/metrics", Some(&body)).await;
            }
        }
    }
    FLUSHING.with(|flushing| flushing.set(false));
}

/// What sampling contributed to a request.
#[derive(Debug, Default, Clone, Copy)]
pub struct Usage {
    pub sampling: Option<SamplingRecord>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The status of the error a stream ended with (its HTTP status was 200 already).
    pub error_status: Option<u16>,
}

pub struct Journal {
    pub request_id: String,
    method: String,
    path: String,
    started_ms: f64,
    log_prompts: bool,
    /// Known once the token is; requests without one count nowhere.
    pub namespace: Option<String>,
    pub session: Option<String>,
    pub model: Option<String>,
    /// The prompt's start, for the status page (`LOG_PROMPTS` only).
    pub prompt: Option<String>,
    pub usage: Usage,
    /// A stream's usage, sent by its task when the stream ends.
    pub stream_usage: Option<oneshot::Receiver<Usage>>,
}

impl Journal {
    pub fn start(request_id: String, method: &Method, path: &str) -> Journal {
        Journal {
            request_id,
            method: method.to_string(),
            path: path.to_string(),
            started_ms: worker::Date::now().as_millis() as f64,
            log_prompts: false,
            namespace: None,
            session: None,
            model: None,
            prompt: None,
            usage: Usage::default(),
            stream_usage: None,
        }
    }

    pub fn route(&self) -> &'static str {
        route_label(&self.path)
    }

    pub fn started_unix_ms(&self) -> u64 {
        self.started_ms as u64
    }

    pub fn set_log_prompts(&mut self, log_prompts: bool) {
        self.log_prompts = log_prompts;
    }

    /// Logs a request body (the prompt) when the deployment asks for it (`LOG_PROMPTS`).
    pub fn body_read(&self, body: &[u8]) {
        if self.log_prompts {
            worker::console_log!(
                "{}",
                json!({
                    "message": "request body",
                    "request_id": self.request_id,
                    "body": String::from_utf8_lossy(body),
                })
            );
        }
    }

    /// One structured line per API request (Workers Logs indexes JSON fields), then the
    /// request's metrics record, added to its namespace's totals after the response is out.
    pub fn finish(self, status: u16, env: &Env, ctx: &Context) {
        let latency_ms = worker::Date::now().as_millis() as f64 - self.started_ms;
        if self.path.starts_with("/v1/") {
            worker::console_log!(
                "{}",
                json!({
                    "message": "api request",
                    "request_id": self.request_id,
                    "method": self.method,
                    "path": self.path,
                    "status": status,
                    "latency_ms": latency_ms,
                    "session": self.session,
                    "model": self.model,
                })
            );
        }
        let Some(namespace) = self.namespace else {
            return;
        };
        let env = env.clone();
        let route = route_label(&self.path).to_string();
        let samples =
            routes::find(&self.path, DEFAULT_MCP_PATH).is_some_and(|(route, _)| route.samples);
        let listed = samples.then(|| RecentRequest {
            request_id: self.request_id.clone(),
            unix_ms: self.started_ms as u64,
            route: route.clone(),
            model: self.model.clone(),
            session: self.session.clone(),
            status,
            latency_ms: 0,
            input_tokens: 0,
            output_tokens: 0,
            prompt: self.prompt.clone(),
        });
        let started_ms = self.started_ms;
        let usage = self.usage;
        let stream_usage = self.stream_usage;
        ctx.wait_until(async move {
            let usage = match stream_usage {
                Some(tail) => tail.await.unwrap_or_default(),
                None => usage,
            };
            if let Some(listed) = listed {
                let listed = RecentRequest {
                    status: usage.error_status.unwrap_or(listed.status),
                    latency_ms: (worker::Date::now().as_millis() as f64 - started_ms).max(0.0)
                        as u64,
                    input_tokens: usage.input_tokens,
                    output_tokens: usage.output_tokens,
                    ..listed
                };
                PENDING_RECENT.with(|pending| {
                    pending
                        .borrow_mut()
                        .entry(namespace.clone())
                        .or_default()
                        .push(listed)
                });
            }
            let record = RequestRecord {
                route,
                status,
                sampling: usage.sampling,
                input_tokens: usage.input_tokens,
                output_tokens: usage.output_tokens,
            };
            PENDING.with(|pending| {
                pending
                    .borrow_mut()
                    .entry(namespace)
                    .or_default()
                    .add(&record)
            });
            flush(&env).await;
        });
    }
}
