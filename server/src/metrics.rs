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
    /// Pushes handed to the merge pipeline and not answered yet.
    pub merge_queue: Gauge,
    /// Time from handing a push to the merge pipeline until it is committed (or refused):
    /// the merge lag a phone waits for.
    pub merge_seconds: Histogram,
    /// Pushes answered "retry": another node wrote one of their documents first, or the
    /// database could not be reached.
    pub merge_retries: Family<Labels, Counter>,
    /// Database connection pool (PostgreSQL; set at each scrape).
    pub db_pool_idle: Gauge,
    /// Connections lent out.
    pub db_pool_in_use: Gauge,
    /// Connections opened since start (a reconnect after the database came back or its
    /// standby took over counts here).
    pub db_connections_opened: Gauge,
    /// Connection attempts that failed since start.
    pub db_connect_failures: Gauge,
    /// Connections found broken since start.
    pub db_connections_broken: Gauge,
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
            merge_queue: Gauge::default(),
            merge_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            merge_retries: Family::default(),
            db_pool_idle: Gauge::default(),
            db_pool_in_use: Gauge::default(),
            db_connections_opened: Gauge::default(),
            db_connect_failures: Gauge::default(),
            db_connections_broken: Gauge::default(),
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
        registry.register(
            "merge_queue",
            "Pushes waiting for the merge pipeline",
            m.merge_queue.clone(),
        );
        registry.register(
            "merge_seconds",
            "Time from handing a push to the merge pipeline until committed or refused",
            m.merge_seconds.clone(),
        );
        registry.register(
            "merge_retries",
            "Pushes answered retry-later, by reason (stale: another node wrote first; unavailable: the database)",
            m.merge_retries.clone(),
        );
        registry.register(
            "db_pool_idle",
            "Idle database connections",
            m.db_pool_idle.clone(),
        );
        registry.register(
            "db_pool_in_use",
            "Database connections in use",
            m.db_pool_in_use.clone(),
        );
        registry.register(
            "db_connections_opened",
            "Database connections opened since start",
            m.db_connections_opened.clone(),
        );
        registry.register(
            "db_connect_failures",
            "Failed database connection attempts since start",
            m.db_connect_failures.clone(),
        );
        registry.register(
            "db_connections_broken",
            "Database connections found broken since start",
            m.db_connections_broken.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Sets the pool figures from the store's (none for SQLite).
    pub fn set_pool(&self, pool: Option<crate::store::PoolStats>) {
        let Some(pool) = pool else { return };
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.db_pool_idle.set(n(pool.idle));
        self.db_pool_in_use.set(n(pool.in_use));
        self.db_connections_opened.set(n(pool.opened));
        self.db_connect_failures.set(n(pool.connect_failures));
        self.db_connections_broken.set(n(pool.broken));
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
