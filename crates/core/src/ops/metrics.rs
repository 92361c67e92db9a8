//! What `GET /metrics` reports, in both runtimes: totals that can be stored and summed (the
//! worker keeps one set per token namespace in a Durable Object), rendered in Prometheus' text
//! format by `prometheus-client`.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use crate::api_error::{ApiError, ErrorKind};

/// Upper bounds (seconds) of the sampling latency histogram: a model answers in a second or
/// in ten minutes.
pub const SAMPLING_BUCKETS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// How a sampling round trip ended, as the histogram's `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutcomeLabel {
    Ok,
    Timeout,
    Error,
}

impl OutcomeLabel {
    pub fn of<T>(outcome: &Result<T, ApiError>) -> Self {
        Self::of_error(outcome.as_ref().err())
    }

    /// The outcome of a round trip that ended with `error`, or well without one.
    pub fn of_error(error: Option<&ApiError>) -> Self {
        match error {
            None => OutcomeLabel::Ok,
            Some(err) if err.kind == ErrorKind::Timeout => OutcomeLabel::Timeout,
            Some(_) => OutcomeLabel::Error,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            OutcomeLabel::Ok => "ok",
            OutcomeLabel::Timeout => "timeout",
            OutcomeLabel::Error => "error",
        }
    }
}

/// The route label of a request path: the route's pattern, so ids never become labels.
pub fn route_label(path: &str) -> &'static str {
    crate::http::routes::label(path, crate::http::routes::DEFAULT_MCP_PATH)
}

/// One sampling round trip's contribution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SamplingRecord {
    pub outcome: OutcomeLabel,
    pub seconds: f64,
}

/// One API request's contribution, as the worker sends it to its namespace's registry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub route: String,
    pub status: u16,
    #[serde(default)]
    pub sampling: Option<SamplingRecord>,
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RequestCount {
    route: String,
    status: u16,
    count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Histogram {
    outcome: OutcomeLabel,
    sum: f64,
    count: u64,
    /// Observations per bucket of `SAMPLING_BUCKETS`, then above the last bound.
    buckets: Vec<u64>,
}

/// Point-in-time values the runtime reads at each scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gauges {
    /// Sampling requests holding a slot (sent, or about to be sent, and not yet answered).
    pub in_flight: u64,
    /// Requests waiting for a session's in-flight limit.
    pub queued: u64,
    pub sessions: u64,
    pub sampling_sessions: u64,
}

/// Counters since start (native) or since the namespace's first request (worker).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricTotals {
    requests: Vec<RequestCount>,
    sampling: Vec<Histogram>,
    input_tokens: u64,
    output_tokens: u64,
}

impl MetricTotals {
    pub fn count_request(&mut self, route: &str, status: u16) {
        self.count_requests(route, status, 1);
    }

    fn count_requests(&mut self, route: &str, status: u16, count: u64) {
        match self
            .requests
            .iter_mut()
            .find(|known| known.status == status && known.route == route)
        {
            Some(known) => known.count += count,
            None => self.requests.push(RequestCount {
                route: route.to_string(),
                status,
                count,
            }),
        }
    }

    pub fn observe_sampling(&mut self, record: SamplingRecord) {
        let index = match self
            .sampling
            .iter()
            .position(|known| known.outcome == record.outcome)
        {
            Some(index) => index,
            None => {
                self.sampling.push(Histogram {
                    outcome: record.outcome,
                    sum: 0.0,
                    count: 0,
                    buckets: vec![0; SAMPLING_BUCKETS.len() + 1],
                });
                self.sampling.len() - 1
            }
        };
        let Some(histogram) = self.sampling.get_mut(index) else {
            return;
        };
        let seconds = if record.seconds.is_finite() {
            record.seconds.max(0.0)
        } else {
            0.0
        };
        let bucket = SAMPLING_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(SAMPLING_BUCKETS.len());
        if let Some(slot) = histogram.buckets.get_mut(bucket) {
            *slot += 1;
        }
        histogram.sum += seconds;
        histogram.count += 1;
    }

    pub fn count_tokens(&mut self, input: u64, output: u64) {
        self.input_tokens = self.input_tokens.saturating_add(input);
        self.output_tokens = self.output_tokens.saturating_add(output);
    }

    pub fn add(&mut self, record: &RequestRecord) {
        self.count_request(&record.route, record.status);
        if let Some(sampling) = record.sampling {
            self.observe_sampling(sampling);
        }
        self.count_tokens(record.input_tokens, record.output_tokens);
    }

    /// Adds another set of totals (a batch of records) to these.
    pub fn merge(&mut self, other: &MetricTotals) {
        for known in &other.requests {
            self.count_requests(&known.route, known.status, known.count);
        }
        for theirs in &other.sampling {
            match self
                .sampling
                .iter_mut()
                .find(|mine| mine.outcome == theirs.outcome)
            {
                Some(mine) if mine.buckets.len() == theirs.buckets.len() => {
                    for (mine, theirs) in mine.buckets.iter_mut().zip(&theirs.buckets) {
                        *mine += theirs;
                    }
                    mine.sum += theirs.sum;
                    mine.count += theirs.count;
                }
                // A layout this build does not know cannot be summed bucket by bucket.
                Some(_) => {}
                None => self.sampling.push(theirs.clone()),
            }
        }
        self.count_tokens(other.input_tokens, other.output_tokens);
    }

    /// The text exposition format, metric names prefixed `sampling2api_`. Takes the totals by
    /// value: the registry owns what it encodes, and callers hold a copy or their own anyway.
    pub fn render(self, gauges: Gauges) -> String {
        let mut registry = Registry::with_prefix("sampling2api");
        registry.register_collector(Box::new(Scrape {
            totals: self,
            gauges,
        }));
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
            text.clear();
        }
        text
    }
}

#[derive(Debug)]
struct Scrape {
    totals: MetricTotals,
    gauges: Gauges,
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let totals = &self.totals;
        let mut requests = encoder.encode_descriptor(
            "requests",
            "HTTP requests by route and status",
            None,
            MetricType::Counter,
        )?;
        for known in &totals.requests {
            let labels = [
                ("route", known.route.clone()),
                ("status", known.status.to_string()),
            ];
            ConstCounter::new(known.count).encode(requests.encode_family(&labels)?)?;
        }
        let mut sampling = encoder.encode_descriptor(
            "sampling_duration_seconds",
            "Time from sending sampling/createMessage to its outcome",
            None,
            MetricType::Histogram,
        )?;
        for histogram in &totals.sampling {
            let labels = [("outcome", histogram.outcome.label())];
            let buckets: Vec<(f64, u64)> = SAMPLING_BUCKETS
                .iter()
                .copied()
                .chain([f64::INFINITY])
                .zip(histogram.buckets.iter().copied())
                .collect();
            sampling
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(histogram.sum, histogram.count, &buckets, None)?;
        }
        let mut tokens = encoder.encode_descriptor(
            "tokens",
            "Tokens in responses' usage (reported or estimated)",
            None,
            MetricType::Counter,
        )?;
        for (direction, count) in [
            ("input", totals.input_tokens),
            ("output", totals.output_tokens),
        ] {
            ConstCounter::new(count).encode(tokens.encode_family(&[("direction", direction)])?)?;
        }
        let gauges = [
            (
                "in_flight",
                "Sampling requests sent and not yet answered",
                self.gauges.in_flight,
            ),
            (
                "queued",
                "Requests waiting for a session's in-flight limit",
                self.gauges.queued,
            ),
            ("sessions", "Connected MCP sessions", self.gauges.sessions),
            (
                "sampling_sessions",
                "Connected MCP sessions that can sample",
                self.gauges.sampling_sessions,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histogram_and_gauges() {
        let mut totals = MetricTotals::default();
        totals.count_request("/v1/messages", 200);
        totals.count_request("/v1/messages", 200);
        totals.count_request("/v1/messages", 400);
        totals.observe_sampling(SamplingRecord {
            outcome: OutcomeLabel::Ok,
            seconds: 0.02,
        });
        totals.observe_sampling(SamplingRecord {
            outcome: OutcomeLabel::Ok,
            seconds: 1_000.0,
        });
        totals.count_tokens(12, 5);
        let text = totals.render(Gauges {
            in_flight: 2,
            queued: 1,
            sessions: 3,
            sampling_sessions: 2,
        });
        for line in [
            "sampling2api_requests_total{route=\"/v1/messages\",status=\"200\"} 2",
            "sampling2api_requests_total{route=\"/v1/messages\",status=\"400\"} 1",
            "sampling2api_sampling_duration_seconds_count{outcome=\"ok\"} 2",
            "sampling2api_sampling_duration_seconds_bucket{le=\"0.01\",outcome=\"ok\"} 0",
            "sampling2api_sampling_duration_seconds_bucket{le=\"0.025\",outcome=\"ok\"} 1",
            "sampling2api_sampling_duration_seconds_bucket{le=\"600.0\",outcome=\"ok\"} 1",
            "sampling2api_sampling_duration_seconds_bucket{le=\"+Inf\",outcome=\"ok\"} 2",
            "sampling2api_tokens_total{direction=\"input\"} 12",
            "sampling2api_tokens_total{direction=\"output\"} 5",
            "sampling2api_in_flight 2",
            "sampling2api_queued 1",
            "sampling2api_sessions 3",
            "sampling2api_sampling_sessions 2",
            "# TYPE sampling2api_sampling_duration_seconds histogram",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn records_sum_and_survive_a_storage_round_trip() {
        let mut totals = MetricTotals::default();
        let record = RequestRecord {
            route: route_label("/v1/models/claude-x").to_string(),
            status: 200,
            sampling: Some(SamplingRecord {
                outcome: OutcomeLabel::of::<()>(&Err(ApiError::timeout("late"))),
                seconds: f64::NAN,
            }),
            input_tokens: 3,
            output_tokens: 4,
        };
        totals.add(&record);
        totals.add(&record);
        let stored = serde_json::to_string(&totals).unwrap();
        let restored: MetricTotals = serde_json::from_str(&stored).unwrap();
        assert_eq!(restored, totals);
        let text = restored.render(Gauges::default());
        assert!(
            text.contains("route=\"/v1/models/{id}\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("sampling2api_sampling_duration_seconds_count{outcome=\"timeout\"} 2")
        );
        assert!(text.contains("sampling2api_tokens_total{direction=\"output\"} 8"));
    }

    #[test]
    fn merged_batches_equal_the_records_added_one_by_one() {
        let records: Vec<RequestRecord> = (0..6u32)
            .map(|i| RequestRecord {
                route: "/v1/messages".into(),
                status: if i % 3 == 0 { 504 } else { 200 },
                sampling: Some(SamplingRecord {
                    outcome: if i % 3 == 0 {
                        OutcomeLabel::Timeout
                    } else {
                        OutcomeLabel::Ok
                    },
                    seconds: f64::from(i) * 0.3,
                }),
                input_tokens: 10,
                output_tokens: i.into(),
            })
            .collect();
        let mut one_by_one = MetricTotals::default();
        records.iter().for_each(|record| one_by_one.add(record));
        let (mut first, mut second) = (MetricTotals::default(), MetricTotals::default());
        records[..2].iter().for_each(|record| first.add(record));
        records[2..].iter().for_each(|record| second.add(record));
        let mut merged = MetricTotals::default();
        merged.merge(&first);
        merged.merge(&second);
        assert_eq!(
            merged.render(Gauges::default()),
            one_by_one.render(Gauges::default())
        );
    }

    #[test]
    fn unknown_paths_share_one_label() {
        assert_eq!(route_label("/v1/models"), "/v1/models");
        assert_eq!(route_label("/secret/abc123"), "unmatched");
        assert_eq!(
            route_label("/v1/messages/count_tokens"),
            "/v1/messages/count_tokens"
        );
    }
}
