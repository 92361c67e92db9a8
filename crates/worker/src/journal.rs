//! One request's journal: what its log line says and what it adds to its namespace's metrics.
//! Filled in while the request is served and written once it is answered; a stream's sampling
//! outcome and tokens arrive when the stream ends.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use futures::channel::oneshot;
use sampling2api_core::http::routes::{self, DEFAULT_MCP_PATH};
use sampling2api_core::ops::metrics::{MetricTotals, RequestRecord, SamplingRecord, route_label};
use sampling2api_core::ops::status::RecentRequest;
use serde_json::json;
use worker::{Context, Env, Method};

use crate::registry_client::{Records, RegistryClient};
use crate::tenancy::Namespace;

thread_local! {
    /// Records not yet sent to their namespaces' registries, by namespace.
    static PENDING: RefCell<HashMap<String, MetricTotals>> = RefCell::new(HashMap::new());
    /// Finished sampling requests not yet sent to their namespaces' registries (status page).
    static PENDING_RECENT: RefCell<HashMap<String, Vec<RecentRequest>>> = RefCell::new(HashMap::new());
    /// Whether a request of this isolate is sending batches now.
    static FLUSHING: Cell<bool> = const { Cell::new(false) };
}

/// Adds a finished request to its namespace's pending batches.
fn enqueue(namespace: String, record: &RequestRecord, recent: Option<RecentRequest>) {
    if let Some(recent) = recent {
        PENDING_RECENT.with(|pending| {
            pending
                .borrow_mut()
                .entry(namespace.clone())
                .or_default()
                .push(recent)
        });
    }
    PENDING.with(|pending| {
        pending
            .borrow_mut()
            .entry(namespace)
            .or_default()
            .add(record)
    });
}

/// Every pending batch: metric totals and finished requests, by namespace.
type Batches = (
    HashMap<String, MetricTotals>,
    HashMap<String, Vec<RecentRequest>>,
);

fn take_batches() -> Batches {
    (
        PENDING.with(|pending| std::mem::take(&mut *pending.borrow_mut())),
        PENDING_RECENT.with(|pending| std::mem::take(&mut *pending.borrow_mut())),
    )
}

/// Sends pending records, one batch per namespace per round trip. Requests that finish while a
/// batch is on its way only add to the next one, so under load a namespace's registry sees a
/// few writes per isolate instead of one per request; with no load, each request is sent at once.
async fn flush(env: &Env) {
    if FLUSHING.with(|flushing| flushing.replace(true)) {
        return;
    }
    loop {
        let (batches, recent) = take_batches();
        if batches.is_empty() && recent.is_empty() {
            break;
        }
        // One call per namespace carries both (they were two calls per request when idle).
        let mut records: HashMap<String, Records> = HashMap::new();
        for (namespace, metrics) in batches {
            records.entry(namespace).or_default().metrics = metrics;
        }
        for (namespace, requests) in recent {
            records.entry(namespace).or_default().recent = requests;
        }
        // Metrics are best effort: a failed write must not fail or delay a request.
        for (namespace, records) in records {
            if let Ok(registry) = RegistryClient::new(env, &Namespace(namespace)) {
                let _ = registry.add_records(&records).await;
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
        Journal::started_at(
            request_id,
            method,
            path,
            worker::Date::now().as_millis() as f64,
        )
    }

    /// A journal for a request that arrived at `started_ms` (Unix milliseconds).
    pub fn started_at(request_id: String, method: &Method, path: &str, started_ms: f64) -> Journal {
        Journal {
            request_id,
            method: method.to_string(),
            path: path.to_string(),
            started_ms,
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

    /// The structured log line of an API request (Workers Logs indexes JSON fields); other
    /// routes log none.
    fn log_line(&self, status: u16, latency_ms: f64) -> Option<serde_json::Value> {
        self.path.starts_with("/v1/").then(|| {
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
        })
    }

    /// The status page's entry for a finished sampling request (`None` for other routes):
    /// `status` as answered, unless a stream ended with an error after its 200.
    fn recent(&self, status: u16, usage: &Usage, finished_ms: f64) -> Option<RecentRequest> {
        is_sampling_route(&self.path).then(|| RecentRequest {
            request_id: self.request_id.clone(),
            unix_ms: self.started_ms as u64,
            route: self.route().to_string(),
            model: self.model.clone(),
            session: self.session.clone(),
            status: usage.error_status.unwrap_or(status),
            latency_ms: (finished_ms - self.started_ms).max(0.0) as u64,
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            prompt: self.prompt.clone(),
        })
    }

    /// What the request adds to its namespace's metrics (its HTTP status as sent).
    fn record(&self, status: u16, usage: &Usage) -> RequestRecord {
        RequestRecord {
            route: self.route().to_string(),
            status,
            sampling: usage.sampling,
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
        }
    }

    /// Writes the log line, then adds the request to its namespace's totals after the response
    /// is out (a stream's once it ends).
    pub fn finish(mut self, status: u16, env: &Env, ctx: &Context) {
        let latency_ms = worker::Date::now().as_millis() as f64 - self.started_ms;
        if let Some(line) = self.log_line(status, latency_ms) {
            worker::console_log!("{line}");
        }
        if self.namespace.is_none() {
            return;
        }
        let env = env.clone();
        ctx.wait_until(async move {
            if let Some(tail) = self.stream_usage.take() {
                self.usage = tail.await.unwrap_or_default();
            }
            let now = worker::Date::now().as_millis() as f64;
            let recent = self.recent(status, &self.usage, now);
            let record = self.record(status, &self.usage);
            if let Some(namespace) = self.namespace {
                enqueue(namespace, &record, recent);
            }
            flush(&env).await;
        });
    }
}

/// The routes whose requests the status page lists (the ones that sample).
/// Whether `path` is a route that samples (from the core's route table).
fn is_sampling_route(path: &str) -> bool {
    routes::find(path, DEFAULT_MCP_PATH).is_some_and(|(route, _)| route.samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sampling2api_core::ops::metrics::{Gauges, OutcomeLabel};

    fn journal(path: &str) -> Journal {
        let mut journal = Journal::started_at("req_1".into(), &Method::Post, path, 1_000.0);
        journal.model = Some("claude-x".into());
        journal.session = Some("mcps_1".into());
        journal
    }

    #[test]
    fn only_api_routes_log_a_line() {
        let line = journal("/v1/messages").log_line(200, 12.0).unwrap();
        assert_eq!(line["request_id"], "req_1");
        assert_eq!(line["method"], "POST");
        assert_eq!(line["status"], 200);
        assert_eq!(line["model"], "claude-x");
        assert!(journal("/mcp").log_line(200, 1.0).is_none());
        assert!(journal("/health").log_line(200, 1.0).is_none());
    }

    #[test]
    fn the_status_page_lists_sampling_requests_with_a_streams_late_error() {
        let usage = Usage {
            input_tokens: 7,
            output_tokens: 3,
            error_status: Some(504),
            ..Usage::default()
        };
        let recent = journal("/v1/messages")
            .recent(200, &usage, 1_250.0)
            .unwrap();
        assert_eq!(recent.status, 504, "the stream's 200 ended in an error");
        assert_eq!(recent.latency_ms, 250);
        assert_eq!(recent.unix_ms, 1_000);
        assert_eq!((recent.input_tokens, recent.output_tokens), (7, 3));
        assert_eq!(recent.route, "/v1/messages");
        let plain = journal("/v1/chat/completions")
            .recent(429, &Usage::default(), 900.0)
            .unwrap();
        assert_eq!(plain.status, 429);
        assert_eq!(
            plain.latency_ms, 0,
            "a clock step back is no negative latency"
        );
        assert!(
            journal("/v1/messages/count_tokens")
                .recent(200, &usage, 2_000.0)
                .is_none()
        );
        assert!(journal("/v1/models").recent(200, &usage, 2_000.0).is_none());
    }

    #[test]
    fn records_count_the_status_sent_and_batch_per_namespace() {
        let usage = Usage {
            sampling: Some(SamplingRecord {
                outcome: OutcomeLabel::of::<()>(&Ok(())),
                seconds: 0.5,
            }),
            input_tokens: 10,
            output_tokens: 2,
            error_status: None,
        };
        let _ = take_batches();
        let record = journal("/v1/messages").record(200, &usage);
        assert_eq!(
            (record.route.as_str(), record.status),
            ("/v1/messages", 200)
        );
        enqueue("a".into(), &record, None);
        enqueue(
            "a".into(),
            &record,
            journal("/v1/messages").recent(200, &usage, 1_001.0),
        );
        enqueue(
            "b".into(),
            &journal("/v1/models").record(200, &Usage::default()),
            None,
        );
        let (totals, recent) = take_batches();
        assert_eq!(totals.len(), 2);
        assert_eq!(recent.len(), 1);
        assert_eq!(recent["a"].len(), 1);
        let mut expected = MetricTotals::default();
        expected.add(&record);
        expected.add(&record);
        assert_eq!(totals["a"], expected);
        let rendered = totals["a"].clone().render(Gauges::default());
        assert!(
            rendered.contains("sampling2api_tokens_total{direction=\"input\"} 20"),
            "{rendered}"
        );
        assert!(take_batches().0.is_empty(), "taken batches are gone");
    }
}
