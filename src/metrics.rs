//! Prometheus metrics, one registry for the process, recorded where things happen and
//! rendered by `/metrics`.

use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RowLabels {
    pub pipeline: String,
    /// accepted | failed | unprocessed
    pub outcome: String,
    /// The failure stage; empty for accepted rows.
    pub stage: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FileLabels {
    pub pipeline: String,
    /// processed | failed | already_imported
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub connection: String,
    pub endpoint: String,
    /// The HTTP status, or `error` when no response came.
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub connection: String,
    pub endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabels {
    pub connection: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PipelineLabels {
    pub pipeline: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BucketLabels {
    pub bucket: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    /// taken | finished | ignored (already finished, gone, foreign) | malformed
    pub outcome: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    pub rows: Family<RowLabels, Counter>,
    pub files: Family<FileLabels, Counter>,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: Histograms<EndpointLabels>,
    pub retries: Family<EndpointLabels, Counter>,
    pub limiter_wait_seconds: Family<ConnectionLabels, Counter<f64, AtomicU64>>,
    pub files_in_flight: Family<PipelineLabels, Gauge>,
    pub batches_in_flight: Family<PipelineLabels, Gauge>,
    pub ledger_write_seconds: Histogram,
    /// Listings of an S3 prefix (one per poll or rescan).
    pub s3_listings: Family<BucketLabels, Counter>,
    /// LIST calls (pages) those listings made.
    pub s3_list_calls: Family<BucketLabels, Counter>,
    pub queue_messages: Family<QueueLabels, Counter>,
}

fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("crm_ingest");
        let m = Self {
            rows: Family::default(),
            files: Family::default(),
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency),
            retries: Family::default(),
            limiter_wait_seconds: Family::default(),
            files_in_flight: Family::default(),
            batches_in_flight: Family::default(),
            ledger_write_seconds: latency(),
            s3_listings: Family::default(),
            s3_list_calls: Family::default(),
            queue_messages: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "rows",
            "Rows settled, by pipeline, outcome and failure stage",
            m.rows.clone(),
        );
        registry.register("files", "Files finished, by pipeline and outcome", m.files.clone());
        registry.register(
            "requests",
            "CRM requests by connection, endpoint and status",
            m.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "CRM request latency",
            m.request_seconds.clone(),
        );
        registry.register("retries", "CRM requests retried", m.retries.clone());
        registry.register(
            "rate_limiter_wait_seconds",
            "Time spent waiting for the rate limiter",
            m.limiter_wait_seconds.clone(),
        );
        registry.register("files_in_flight", "Files being processed", m.files_in_flight.clone());
        registry.register(
            "batches_in_flight",
            "Batches being delivered",
            m.batches_in_flight.clone(),
        );
        registry.register(
            "ledger_write_duration_seconds",
            "Ledger transaction latency",
            m.ledger_write_seconds.clone(),
        );
        registry.register("s3_listings", "Listings of an S3 prefix", m.s3_listings.clone());
        registry.register(
            "s3_list_calls",
            "S3 LIST calls (pages) made by the listings",
            m.s3_list_calls.clone(),
        );
        registry.register(
            "queue_messages",
            "S3 event messages received from SQS, by what became of them",
            m.queue_messages.clone(),
        );
        Self { registry, ..m }
    }

    /// The Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The row counter for these labels, to keep and `inc()` without looking it up again.
    pub fn row_counter(&self, pipeline: &str, outcome: &str, stage: &str) -> Counter {
        let labels =
            RowLabels { pipeline: pipeline.into(), outcome: outcome.into(), stage: stage.into() };
        self.rows.get_or_create(&labels).clone()
    }

    pub fn file(&self, pipeline: &str, outcome: &str) {
        self.files
            .get_or_create(&FileLabels { pipeline: pipeline.into(), outcome: outcome.into() })
            .inc();
    }

    pub fn request(&self, connection: &str, endpoint: &str, status: Option<u16>, took: Duration) {
        let status = status.map_or_else(|| "error".to_string(), |s| s.to_string());
        self.requests
            .get_or_create(&RequestLabels {
                connection: connection.into(),
                endpoint: endpoint.into(),
                status,
            })
            .inc();
        self.request_seconds
            .get_or_create(&EndpointLabels {
                connection: connection.into(),
                endpoint: endpoint.into(),
            })
            .observe(took.as_secs_f64());
    }

    pub fn retry(&self, connection: &str, endpoint: &str) {
        self.retries
            .get_or_create(&EndpointLabels {
                connection: connection.into(),
                endpoint: endpoint.into(),
            })
            .inc();
    }

    pub fn limiter_wait(&self, connection: &str, waited: Duration) {
        self.limiter_wait_seconds
            .get_or_create(&ConnectionLabels { connection: connection.into() })
            .inc_by(waited.as_secs_f64());
    }

    /// A file of `pipeline` started (`+1`) or ended (`-1`).
    pub fn file_in_flight(&self, pipeline: &str, delta: i64) {
        self.files_in_flight
            .get_or_create(&PipelineLabels { pipeline: pipeline.into() })
            .inc_by(delta);
    }

    /// A batch of `pipeline` went out (`+1`) or came back (`-1`).
    pub fn batch_in_flight(&self, pipeline: &str, delta: i64) {
        self.batches_in_flight
            .get_or_create(&PipelineLabels { pipeline: pipeline.into() })
            .inc_by(delta);
    }
}

impl Metrics {
    /// A listing of `bucket` made `calls` LIST calls.
    pub fn s3_listing(&self, bucket: &str, calls: u64) {
        let labels = BucketLabels { bucket: bucket.into() };
        self.s3_listings.get_or_create(&labels).inc();
        self.s3_list_calls.get_or_create(&labels).inc_by(calls);
    }

    pub fn queue_message(&self, outcome: &str) {
        self.queue_messages.get_or_create(&QueueLabels { outcome: outcome.into() }).inc();
    }
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// The process's metrics.
pub fn get() -> &'static Metrics {
    METRICS.get_or_init(Metrics::new)
}
