//! A local simulator of the CRM APIs (SPEC §9), for the demo, the tests and the benchmarks:
//! auth, validation, async jobs, a rate limit with `Retry-After`, injected faults, and a switch
//! for each way the real APIs are known to answer ([`RealApi`], from `api/*.md`). It is a
//! second, independent implementation: it shares no validator, encoder or parser with the
//! client ([`rules`]).

mod faults;
mod plannr;
mod repsly;
pub mod rules;
mod storage;
pub mod timed;
pub mod xlsx;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;

pub use rules::Budget;

/// How the sandbox behaves.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Requests over this budget get `429` with `Retry-After`.
    pub rate_limit: Option<Budget>,
    /// Share of requests (0..1) answered with a fault: HTML 500, 503, or a broken connection.
    pub fail_rate: f64,
    /// Added to every answer.
    pub latency: Duration,
    /// Status polls a job answers `Pending` before it completes.
    pub pending_polls: u32,
    /// Jobs take this long instead ([`timed`]): `pending_polls` is then not used.
    pub job_time: Option<timed::JobTime>,
    pub repsly_username: String,
    pub repsly_password: String,
    /// A client whose any value contains this text makes its whole batch fail with 400.
    pub poison: Option<String>,
    /// A client whose any value contains this text is refused in the job's `Errors[]`,
    /// naming that field (a CRM rule the daemon cannot check locally).
    pub refuse: Option<String>,
    /// A Repsly job holding a client whose any value contains this text stays `Pending`.
    pub stall: Option<String>,
    /// The Bearer token and account uuid the Plannr API accepts.
    pub plannr_token: String,
    pub plannr_account: String,
    /// The status a finished import reports (`complete`; try `completed`, `finished`).
    pub plannr_terminal_status: String,
    /// Wrap Plannr resources in `{"data": ...}`.
    pub plannr_wrap_data: bool,
    /// OAuth2 at `/oauth/token`: the refresh token it takes (with `client_id`/`client_secret`
    /// `sandbox`), and how long the access tokens it issues really last (it always says an
    /// hour, so a client must also refresh after a 401).
    pub oauth_refresh_token: String,
    pub oauth_token_ttl: Duration,
    /// How the real APIs answer where our first guesses differed.
    pub real: RealApi,
    /// The Repsly account's price lists: items go only into these.
    pub repsly_pricelists: Vec<String>,
    /// The Repsly account's package codes: a product's `Packaging` may name only these.
    pub repsly_packages: Vec<String>,
    /// The Repsly account's custom product attributes: title, and the options of a
    /// multiselect one (none: free text).
    pub repsly_attributes: Vec<(String, Vec<String>)>,
    /// Active Repsly users before any import (the account's own).
    pub repsly_active_users: u64,
    /// Plannr clients the account has before any import (`uuid`, `first_name`, `last_name`,
    /// `email`): what `GET /api/v1/account` finds, and what a plan's `client_uuid` may name.
    pub plannr_accounts: Vec<serde_json::Value>,
}

/// The format of Plannr's error report file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReportFormat {
    #[default]
    Json,
    Csv,
    Xlsx,
}

/// Real-API behaviours, each off by default (the sandbox then answers as the docs show).
#[derive(Debug, Clone, Default)]
pub struct RealApi {
    /// Plannr's error report is this kind of file.
    pub plannr_report_format: ReportFormat,
    /// The error report is on another origin (file storage, a presigned URL) that refuses a
    /// request carrying an Authorization header.
    pub plannr_report_elsewhere: bool,
    /// Inline `errors` as an object keyed by index (PHP's list with gaps).
    pub plannr_errors_object: bool,
    /// `failed_jobs` counts jobs (one per import with failures), not rows.
    pub plannr_failed_jobs_count_jobs: bool,
    /// A finished import looks like the seed's: `processing`, progress 100,
    /// `jobs_remaining` = `failed_jobs`.
    pub plannr_seed_shape: bool,
    /// The first start of each import is applied, then its answer is lost (connection reset).
    pub plannr_start_reset: bool,
    /// The first status poll of each import answers 404.
    pub plannr_poll_404_once: bool,
    /// A contact detail whose value contains this text is created, then its answer is lost.
    pub contact_lost_reply: Option<String>,
    /// A contact detail whose account uuids contain this text is refused with a 403 (an
    /// account that is not a client); the credentials are fine.
    pub contact_forbidden: Option<String>,
    /// Repsly's status answers `null` for whatever is empty or zero.
    pub repsly_nulls: bool,
    /// Repsly counts refused rows in `RowsInvalid` but leaves `Errors` empty.
    pub repsly_invalid_without_errors: bool,
    /// Repsly's `ItemID` is its internal ClientID, not the client's Code.
    pub repsly_item_id_not_code: bool,
    /// A client whose any value contains this text is saved with a `Warnings` entry.
    pub repsly_warn: Option<String>,
    /// Repsly no longer knows any job: every status poll answers 404.
    pub repsly_forget_jobs: bool,
    /// Repsly's create answer says this (`{id}` is the job id).
    pub repsly_job_message: Option<String>,
}

impl RealApi {
    /// The names `crm-ingest sandbox --behave NAME` takes.
    pub const NAMES: &'static [&'static str] = &[
        "plannr-report-csv",
        "plannr-report-xlsx",
        "plannr-report-elsewhere",
        "plannr-errors-object",
        "plannr-failed-jobs-count-jobs",
        "plannr-seed-shape",
        "plannr-start-reset",
        "plannr-poll-404-once",
        "repsly-nulls",
        "repsly-invalid-without-errors",
        "repsly-item-id-not-code",
        "repsly-forget-jobs",
    ];

    /// Turns on the behaviour called `name` (see [`RealApi::NAMES`]).
    pub fn set(&mut self, name: &str) -> Result<(), String> {
        match name {
            "plannr-report-csv" => self.plannr_report_format = ReportFormat::Csv,
            "plannr-report-xlsx" => self.plannr_report_format = ReportFormat::Xlsx,
            "plannr-report-elsewhere" => self.plannr_report_elsewhere = true,
            "plannr-errors-object" => self.plannr_errors_object = true,
            "plannr-failed-jobs-count-jobs" => self.plannr_failed_jobs_count_jobs = true,
            "plannr-seed-shape" => self.plannr_seed_shape = true,
            "plannr-start-reset" => self.plannr_start_reset = true,
            "plannr-poll-404-once" => self.plannr_poll_404_once = true,
            "repsly-nulls" => self.repsly_nulls = true,
            "repsly-invalid-without-errors" => self.repsly_invalid_without_errors = true,
            "repsly-item-id-not-code" => self.repsly_item_id_not_code = true,
            "repsly-forget-jobs" => self.repsly_forget_jobs = true,
            other => {
                return Err(format!(
                    "unknown behaviour `{other}` (known: {})",
                    Self::NAMES.join(", ")
                ))
            }
        }
        Ok(())
    }
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            rate_limit: None,
            fail_rate: 0.0,
            latency: Duration::ZERO,
            pending_polls: 1,
            job_time: None,
            repsly_username: "sandbox".into(),
            repsly_password: "sandbox".into(),
            poison: None,
            refuse: None,
            stall: None,
            plannr_token: "sandbox-token".into(),
            plannr_account: "9b2f6a4e-3c1d-4e5f-8a7b-6c5d4e3f2a1b".into(),
            plannr_terminal_status: "complete".into(),
            plannr_wrap_data: false,
            oauth_refresh_token: "sandbox-refresh".into(),
            oauth_token_ttl: Duration::from_secs(3600),
            real: RealApi::default(),
            repsly_pricelists: ["Standard", "Retail", "Wholesale"].map(String::from).into(),
            repsly_packages: ["BOX6", "BOX12", "CASE24"].map(String::from).into(),
            repsly_attributes: vec![
                ("Colour".into(), Vec::new()),
                ("Allergens".into(), ["Gluten", "Nuts", "Milk", "Soy"].map(String::from).into()),
            ],
            repsly_active_users: 3,
            plannr_accounts: Vec::new(),
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
    /// The request carried an Authorization header.
    pub authorized: bool,
}

#[derive(Debug, Default)]
pub struct State {
    pub repsly: repsly::RepslyState,
    pub plannr: plannr::PlannrState,
    pub requests: Vec<RequestLog>,
    pub window: faults::Window,
    pub timed: timed::TimedJobs,
    /// Files the storage origin serves, by name.
    pub files: BTreeMap<String, (String, Vec<u8>)>,
}

#[derive(Clone)]
pub struct Sandbox {
    pub options: Arc<SandboxOptions>,
    pub state: Arc<Mutex<State>>,
    pub started: tokio::time::Instant,
    /// The origin error reports are served from when they live elsewhere.
    storage: Arc<Mutex<Option<String>>>,
}

/// What `GET /_sandbox/records` shows.
#[derive(Debug, Serialize)]
struct Records {
    repsly: serde_json::Value,
    plannr: serde_json::Value,
    requests: usize,
    throttled: usize,
}

impl Sandbox {
    pub fn new(options: SandboxOptions) -> Self {
        let mut state = State::default();
        if !options.plannr_accounts.is_empty() {
            state.plannr.records.insert("clients".into(), options.plannr_accounts.clone());
        }
        Self {
            options: Arc::new(options),
            state: Arc::new(Mutex::new(state)),
            started: tokio::time::Instant::now(),
            storage: Arc::default(),
        }
    }

    pub fn router(&self) -> Router {
        self.repsly_imports(Router::new())
            .route("/v3/export/importStatus/{id}", get(repsly::import_status))
            .route("/api/v1/account", get(plannr::list_accounts))
            .route("/api/v1/import", post(plannr::create_import).get(plannr::list_imports))
            .route("/api/v1/import/map/{uuid}", post(plannr::map_import))
            .route("/api/v1/import/start/{uuid}", post(plannr::start_import))
            .route("/api/v1/import/{uuid}", get(plannr::get_import))
            .route("/api/v1/import/{uuid}/error-report", get(plannr::error_report))
            .route("/api/v2/contact-details", post(plannr::contact_details))
            .route("/oauth/token", post(plannr::oauth_token))
            .layer(axum::middleware::from_fn_with_state(self.clone(), faults::gate))
            .route("/_sandbox/records", get(records))
            .route("/_sandbox/requests", get(requests))
            .route("/_sandbox/jobs", get(timed_jobs))
            .with_state(self.clone())
    }

    /// Each Repsly entity's list and single import routes.
    fn repsly_imports(&self, mut router: Router<Sandbox>) -> Router<Sandbox> {
        for entity in repsly::ENTITIES {
            let endpoints = entity.list.map(|(path, wrapper)| (path, Some(wrapper)));
            for (path, wrapper) in endpoints.into_iter().chain([(entity.single, None)]) {
                let handler = move |axum::extract::State(sb): axum::extract::State<Sandbox>,
                                    headers,
                                    body| {
                    repsly::import_request(sb, headers, body, entity, wrapper)
                };
                router = router.route(path, post(handler));
            }
        }
        router
    }

    /// Serves on `listener` until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router()).with_graceful_shutdown(shutdown).await
    }

    /// Binds `addr` and serves in the background; returns the bound address. With
    /// `plannr_report_elsewhere`, a second listener on the same host plays file storage.
    pub async fn spawn(
        self,
        addr: &str,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        if self.options.real.plannr_report_elsewhere {
            let storage = tokio::net::TcpListener::bind((local.ip(), 0)).await?;
            let at = storage.local_addr()?;
            if let Ok(mut s) = self.storage.lock() {
                *s = Some(format!("http://{at}"));
            }
            let (router, stop) = (storage::router(self.clone()), shutdown.clone());
            tokio::spawn(async move {
                let _ = axum::serve(storage, router)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await;
            });
        }
        tokio::spawn(async move {
            if let Err(e) = self.serve(listener, async move { shutdown.cancelled().await }).await {
                tracing::error!(error = %e, "sandbox stopped");
            }
        });
        Ok(local)
    }

    /// The storage origin's base URL, when reports live elsewhere.
    fn storage_url(&self) -> Option<String> {
        self.storage.lock().ok().and_then(|s| s.clone())
    }
}

async fn records(
    axum::extract::State(sb): axum::extract::State<Sandbox>,
) -> axum::Json<serde_json::Value> {
    let state = sb.state.lock().map(|s| {
        let records = Records {
            repsly: s.repsly.snapshot(),
            plannr: s.plannr.snapshot(),
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

async fn timed_jobs(
    axum::extract::State(sb): axum::extract::State<Sandbox>,
) -> axum::Json<Vec<timed::TimedJob>> {
    axum::Json(sb.state.lock().map(|s| s.timed.list()).unwrap_or_default())
}

/// A response whose body breaks off after the request was applied: the client sees the
/// connection reset and cannot know the outcome.
pub(crate) fn lost_answer() -> axum::response::Response {
    let chunks = futures::stream::iter(vec![
        Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"{\"uuid\":")),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset by sandbox",
        )),
    ]);
    let mut r = axum::response::Response::new(axum::body::Body::from_stream(chunks));
    r.headers_mut()
        .insert("content-type", axum::http::HeaderValue::from_static("application/json"));
    r
}
