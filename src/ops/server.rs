//! The operator endpoints on `[server] listen`: `/healthz`, `/readyz`, `/metrics`, `/status`,
//! and the console (`/`, `/api/...`). Every route but the first three is behind the
//! console's guard: the `[server] token`, once it is set.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use tokio_util::sync::CancellationToken;

use super::console::{self, Web};
use crate::config::Settings;
use crate::delivery::Connection;
use crate::ledger::{HistoryFilter, Ledger, LedgerError, Reader};

/// How many finished files `/status` shows.
const STATUS_FINISHED: usize = 20;

/// What the endpoints look at; the daemon swaps the connections and settings on reload.
#[derive(Clone)]
pub struct OpsState {
    pub ledger: Arc<Ledger>,
    pub connections: Arc<RwLock<Vec<Arc<Connection>>>>,
    pub health: Arc<crate::health::Health>,
    /// The ledger's read side: the history, remote jobs, the outbox.
    pub reader: Arc<Reader>,
    pub settings: Arc<RwLock<Arc<Settings>>>,
    pub notify: Arc<crate::notify::Notifier>,
}

impl OpsState {
    /// The config now running.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings.read().map(|s| s.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Runs a ledger read on a blocking thread.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Reader) -> Result<T, LedgerError> + Send + 'static,
    ) -> Result<T, LedgerError> {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || f(&reader)).await.map_err(|_| LedgerError::Closed)?
    }
}

pub fn router(state: OpsState) -> Router {
    let web = Web { ops: state, sessions: Default::default() };
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .merge(console::routes())
        .fallback(console::not_found)
        .layer(axum::middleware::from_fn_with_state(web.clone(), console::auth::guard))
        .with_state(web)
}

/// Binds `listen` and serves until `shutdown`; a bind failure is returned, naming the address.
pub async fn spawn(
    listen: &str,
    state: OpsState,
    shutdown: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("[server] listen = {listen}: cannot bind: {e}"))?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let serve = axum::serve(listener, router(state))
            .with_graceful_shutdown(async move { shutdown.cancelled().await });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "operator endpoints stopped");
        }
    });
    Ok(addr)
}

/// Ready: the ledger commits, no disk refuses writes, and every connection can send (its
/// credentials were not refused and its shared budget's Redis answers).
async fn readyz(State(s): State<OpsState>) -> impl IntoResponse {
    let mut problems = Vec::new();
    match tokio::time::timeout(Duration::from_secs(2), s.ledger.sync()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => problems.push(format!("ledger: {e}")),
        Err(_) => problems.push("ledger: no commit within 2s".into()),
    }
    problems.extend(s.health.problems());
    let connections = s.connections.read().map(|c| c.clone()).unwrap_or_default();
    for c in connections {
        if let Some(why) = c.problem() {
            problems.push(format!("connection {}: {why}", c.name()));
        }
    }
    let ready = problems.is_empty();
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(serde_json::json!({ "ready": ready, "problems": problems })))
}

async fn metrics() -> impl IntoResponse {
    (
        [("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        crate::metrics::get().render(),
    )
}

/// Per pipeline the files in flight and the last finished (from the history, newest first);
/// per connection, what stops it from sending (refused credentials holding its files, an
/// unreachable shared budget).
async fn status(State(s): State<OpsState>) -> impl IntoResponse {
    let mut pipelines = super::status::get().snapshot();
    let filter = HistoryFilter { limit: Some(STATUS_FINISHED), ..Default::default() };
    match s.read(move |r| r.history(&filter)).await {
        Ok(entries) => {
            for e in entries {
                pipelines.entry(e.pipeline.clone()).or_default().finished.push(e.summary);
            }
        }
        Err(e) => tracing::warn!(error = %e, "/status: cannot read the history"),
    }
    let connections = s.connections.read().map(|c| c.clone()).unwrap_or_default();
    let connections: Vec<serde_json::Value> = connections
        .iter()
        .map(|c| serde_json::json!({ "name": c.name(), "problem": c.problem() }))
        .collect();
    Json(serde_json::json!({ "pipelines": pipelines, "connections": connections }))
}
