//! A local simulator of the CRM APIs (SPEC §9), for the demo, the tests and the benchmarks:
//! auth, validation, async jobs, a rate limit with `Retry-After`, and injected faults.

mod faults;
mod plannr;
mod repsly;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;

use crate::config::rate::RateLimit;

/// How the sandbox behaves.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Requests over this budget get `429` with `Retry-After`.
    pub rate_limit: Option<RateLimit>,
    /// Share of requests (0..1) answered with a fault: HTML 500, 503, or a broken connection.
    pub fail_rate: f64,
    /// Added to every answer.
    pub latency: Duration,
    /// Status polls a job answers `Pending` before it completes.
    pub pending_polls: u32,
    pub repsly_username: String,
    pub repsly_password: String,
    /// A client whose any value contains this text makes its whole batch fail with 400.
    pub poison: Option<String>,
    /// A client whose any value contains this text is refused in the job's `Errors[]`,
    /// naming that field (a CRM rule the daemon cannot check locally).
    pub refuse: Option<String>,
    /// The Bearer token and account uuid the Plannr API accepts.
    pub plannr_token: String,
    pub plannr_account: String,
    /// The status a finished import reports (`complete`; try `completed`, `finished`).
    pub plannr_terminal_status: String,
    /// Wrap Plannr resources in `{"data": ...}`.
    pub plannr_wrap_data: bool,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            rate_limit: None,
            fail_rate: 0.0,
            latency: Duration::ZERO,
            pending_polls: 1,
            repsly_username: "sandbox".into(),
            repsly_password: "sandbox".into(),
            poison: None,
            refuse: None,
            plannr_token: "sandbox-token".into(),
            plannr_account: "9b2f6a4e-3c1d-4e5f-8a7b-6c5d4e3f2a1b".into(),
            plannr_terminal_status: "complete".into(),
            plannr_wrap_data: false,
        }
    }
}

/// One request as the sandbox saw it, for tests of rate and retries.
#[derive(Debug, Clone, Serialize)]
pub struct RequestLog {
    /// Milliseconds since the sandbox started.
    pub at_ms: u64,
    pub method: String,
    pub path: String,
    pub status: u16,
}

#[derive(Debug, Default)]
pub struct State {
    pub repsly: repsly::RepslyState,
    pub plannr: plannr::PlannrState,
    pub requests: Vec<RequestLog>,
    pub window: faults::Window,
}

#[derive(Clone)]
pub struct Sandbox {
    pub options: Arc<SandboxOptions>,
    pub state: Arc<Mutex<State>>,
    pub started: tokio::time::Instant,
}

/// What `GET /_sandbox/records` shows.
#[derive(Debug, Serialize)]
struct Records {
    repsly: RepslyRecords,
    plannr: PlannrRecords,
    requests: usize,
    throttled: usize,
}

#[derive(Debug, Serialize)]
struct PlannrRecords {
    /// Rows stored by imports, by import type.
    records: BTreeMap<String, Vec<serde_json::Value>>,
    contact_details: Vec<serde_json::Value>,
    imports: usize,
}

#[derive(Debug, Serialize)]
struct RepslyRecords {
    clients: BTreeMap<String, serde_json::Value>,
    /// How many times each Code was received in a valid request.
    received: BTreeMap<String, u64>,
    jobs: usize,
}

impl Sandbox {
    pub fn new(options: SandboxOptions) -> Self {
        Self {
            options: Arc::new(options),
            state: Arc::default(),
            started: tokio::time::Instant::now(),
        }
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/v3/import/clientList", post(repsly::client_list))
            .route("/v3/import/client", post(repsly::client_one))
            .route("/v3/export/importStatus/{id}", get(repsly::import_status))
            .route("/api/v1/import", post(plannr::create_import).get(plannr::list_imports))
            .route("/api/v1/import/map/{uuid}", post(plannr::map_import))
            .route("/api/v1/import/start/{uuid}", post(plannr::start_import))
            .route("/api/v1/import/{uuid}", get(plannr::get_import))
            .route("/api/v1/import/{uuid}/error-report", get(plannr::error_report))
            .route("/api/v2/contact-details", post(plannr::contact_details))
            .layer(axum::middleware::from_fn_with_state(self.clone(), faults::gate))
            .route("/_sandbox/records", get(records))
            .route("/_sandbox/requests", get(requests))
            .with_state(self.clone())
    }

    /// Serves on `listener` until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router()).with_graceful_shutdown(shutdown).await
    }

    /// Binds `addr` and serves in the background; returns the bound address.
    pub async fn spawn(
        self,
        addr: &str,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        tokio::spawn(async move {
            if let Err(e) = self.serve(listener, async move { shutdown.cancelled().await }).await {
                tracing::error!(error = %e, "sandbox stopped");
            }
        });
        Ok(local)
    }
}

async fn records(
    axum::extract::State(sb): axum::extract::State<Sandbox>,
) -> axum::Json<serde_json::Value> {
    let state = sb.state.lock().map(|s| {
        let r = &s.repsly;
        let records = Records {
            repsly: RepslyRecords {
                clients: r.clients.clone(),
                received: r.received.clone(),
                jobs: r.jobs.len(),
            },
            plannr: PlannrRecords {
                records: s.plannr.records.clone(),
                contact_details: s.plannr.contact_details.clone(),
                imports: s.plannr.imports.len(),
            },
            requests: s.requests.len(),
            throttled: s.requests.iter().filter(|q| q.status == 429).count(),
        };
        serde_json::to_value(records).unwrap_or_default()
    });
    axum::Json(state.unwrap_or_default())
}

async fn requests(
    axum::extract::State(sb): axum::extract::State<Sandbox>,
) -> axum::Json<Vec<RequestLog>> {
    axum::Json(sb.state.lock().map(|s| s.requests.clone()).unwrap_or_default())
}
