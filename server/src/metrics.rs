//! Prometheus metrics, served as text at `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Sync requests by outcome (`ok` or an error code).
    pub sync_requests: Family<Labels, Counter>,
    /// Documents merged (accepted with new changes).
    pub docs_merged: Counter,
    /// Documents refused, by reason.
    pub docs_rejected: Family<Labels, Counter>,
    /// Documents sent to devices.
    pub docs_pulled: Counter,
    /// Request bytes received on the sync endpoint.
    pub bytes_in: Counter,
    /// Response bytes sent from the sync endpoint.
    pub bytes_out: Counter,
    /// Sync requests being handled now.
    pub in_flight: Gauge,
    /// Time to handle a sync request, seconds.
    pub sync_seconds: Histogram,
    /// Enrollments by outcome.
    pub enrollments: Family<Labels, Counter>,
    /// Requests refused by the rate limits.
    pub rate_limited: Counter,
    /// Blob bytes written (chunks, including resent ones).
    pub blob_bytes_in: Counter,
    /// Blobs completed and verified.
    pub blobs_completed: Counter,
    /// Citizen reports that became cases.
    pub citizen_reports: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("gridlink");
        let m = Metrics {
            sync_requests: Family::default(),
            docs_merged: Counter::default(),
            docs_rejected: Family::default(),
            docs_pulled: Counter::default(),
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
            in_flight: Gauge::default(),
            sync_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            enrollments: Family::default(),
            rate_limited: Counter::default(),
            blob_bytes_in: Counter::default(),
            blobs_completed: Counter::default(),
            citizen_reports: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "sync_requests",
            "Sync requests by outcome",
            m.sync_requests.clone(),
        );
        registry.register(
            "docs_merged",
            "Pushed documents merged",
            m.docs_merged.clone(),
        );
        registry.register(
            "docs_rejected",
            "Pushed documents refused, by reason",
            m.docs_rejected.clone(),
        );
        registry.register(
            "docs_pulled",
            "Documents sent to devices",
            m.docs_pulled.clone(),
        );
        registry.register("sync_bytes_in", "Sync request bytes", m.bytes_in.clone());
        registry.register(
            "rate_limited",
            "Requests refused by the rate limits",
            m.rate_limited.clone(),
        );
        registry.register(
            "blob_bytes_in",
            "Blob chunk bytes written",
            m.blob_bytes_in.clone(),
        );
        registry.register(
            "blobs_completed",
            "Blobs completed and verified",
            m.blobs_completed.clone(),
        );
        registry.register(
            "citizen_reports",
            "Citizen reports that became cases",
            m.citizen_reports.clone(),
        );
        registry.register("sync_bytes_out", "Sync response bytes", m.bytes_out.clone());
        registry.register(
            "sync_in_flight",
            "Sync requests being handled",
            m.in_flight.clone(),
        );
        registry.register(
            "sync_seconds",
            "Time to handle a sync request",
            m.sync_seconds.clone(),
        );
        registry.register(
            "enrollments",
            "Device enrollments by outcome",
            m.enrollments.clone(),
        );
        Metrics { registry, ..m }
    }

    /// A label set of one pair.
    pub fn label(key: &str, value: &str) -> Labels {
        vec![(key.to_owned(), value.to_owned())]
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
