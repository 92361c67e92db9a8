//! Prometheus metrics for `GET /metrics`: requests by route and status, sampling latency,
//! tokens in and out; in-flight, queued and session gauges are read from the bridge at scrape.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Point-in-time values the bridge reports at each scrape.
pub struct Snapshot {
    pub in_flight: u64,
    pub queued: u64,
    pub sessions: u64,
    pub sampling_sessions: u64,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    sampling_seconds: Family<OutcomeLabels, Histogram>,
    tokens: Family<TokenLabels, Counter>,
    in_flight: Gauge,
    queued: Gauge,
    sessions: Gauge,
    sampling_sessions: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sampling2api");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        let sampling_seconds = Family::<OutcomeLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
                300.0, 600.0,
            ])
        });
        registry.register(
            "sampling_duration_seconds",
            "Time from sending sampling/createMessage to its outcome",
            sampling_seconds.clone(),
        );
        let tokens = Family::<TokenLabels, Counter>::default();
        registry.register(
            "tokens",
            "Tokens in responses' usage (reported or estimated)",
            tokens.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "in_flight",
            "Sampling requests sent and not yet answered",
            in_flight.clone(),
        );
        let queued = Gauge::default();
        registry.register(
            "queued",
            "Requests waiting for a session's in-flight limit",
            queued.clone(),
        );
        let sessions = Gauge::default();
        registry.register("sessions", "Connected MCP sessions", sessions.clone());
        let sampling_sessions = Gauge::default();
        registry.register(
            "sampling_sessions",
            "Connected MCP sessions that can sample",
            sampling_sessions.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            requests,
            sampling_seconds,
            tokens,
            in_flight,
            queued,
            sessions,
            sampling_sessions,
        }
    }

    pub fn record_request(&self, route: &str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                status,
            })
            .inc();
    }

    pub fn record_sampling(&self, elapsed: Duration, outcome: &'static str) {
        self.sampling_seconds
            .get_or_create(&OutcomeLabels { outcome })
            .observe(elapsed.as_secs_f64());
    }

    pub fn record_tokens(&self, input: u64, output: u64) {
        self.tokens
            .get_or_create(&TokenLabels { direction: "input" })
            .inc_by(input);
        self.tokens
            .get_or_create(&TokenLabels {
                direction: "output",
            })
            .inc_by(output);
    }

    /// The text exposition format.
    pub fn render(&self, snapshot: Snapshot) -> String {
        let as_gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        self.in_flight.set(as_gauge(snapshot.in_flight));
        self.queued.set(as_gauge(snapshot.queued));
        self.sessions.set(as_gauge(snapshot.sessions));
        self.sampling_sessions
            .set(as_gauge(snapshot.sampling_sessions));
        let mut text = String::new();
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
            text.clear();
        }
        text
    }
}
