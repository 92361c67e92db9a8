//! `GET /metrics`: the core's metric totals behind a lock; the in-flight, queued and session
//! gauges are read from the bridge at each scrape.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use sampling2api_core::ops::metrics::{Gauges, MetricTotals, OutcomeLabel, SamplingRecord};

#[derive(Default)]
pub struct Metrics {
    totals: Mutex<MetricTotals>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    fn totals(&self) -> MutexGuard<'_, MetricTotals> {
        // Counting cannot leave the totals half-updated; a poisoned lock is still usable.
        self.totals
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn record_request(&self, route: &str, status: u16) {
        self.totals().count_request(route, status);
    }

    pub fn record_sampling(&self, elapsed: Duration, outcome: OutcomeLabel) {
        self.totals().observe_sampling(SamplingRecord {
            outcome,
            seconds: elapsed.as_secs_f64(),
        });
    }

    pub fn record_tokens(&self, input: u64, output: u64) {
        self.totals().count_tokens(input, output);
    }

    /// The text exposition format.
    pub fn render(&self, gauges: Gauges) -> String {
        let totals = self.totals().clone();
        totals.render(gauges)
    }
}
