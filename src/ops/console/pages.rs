//! The console's pages: the dashboard, the history, a file's page.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use minijinja::Value;
use serde::Deserialize;
use serde_json::json;

use super::auth::Who;
use super::render::{message, page};
use super::{view, Web};
use crate::ledger::{HistoryFilter, Outcome};

/// What the dashboard lists of the history.
const RECENT: usize = 20;
const FAILURES: usize = 10;
/// The history page's default length.
const HISTORY_PAGE: usize = 100;

/// A note carried to the next page by a redirect after an action.
#[derive(Debug, Default, Deserialize)]
pub struct Flash {
    pub done: Option<String>,
    pub error: Option<String>,
}

impl Flash {
    fn value(&self) -> serde_json::Value {
        match (&self.done, &self.error) {
            (_, Some(e)) => json!({ "kind": "error", "text": e }),
            (Some(d), None) => json!({ "kind": "done", "text": d }),
            (None, None) => serde_json::Value::Null,
        }
    }
}

/// The page for a ledger that cannot be read.
fn unreadable(who: &Who, e: &crate::ledger::LedgerError) -> Response {
    message(StatusCode::SERVICE_UNAVAILABLE, who, "The ledger cannot be read", &e.to_string())
}

fn since(hours: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::hours(hours))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub async fn dashboard(
    State(web): State<Web>,
    Extension(who): Extension<Who>,
    Query(flash): Query<Flash>,
) -> Response {
    let settings = web.ops.settings();
    let day = since(24);
    let read = web
        .ops
        .read(move |r| {
            let counts = r.outcome_counts(&day)?;
            let recent = r.history(&HistoryFilter { limit: Some(RECENT), ..Default::default() })?;
            let failures = r.history(&HistoryFilter {
                outcomes: vec![Outcome::RowsFailed, Outcome::Failed, Outcome::SetAside],
                limit: Some(FAILURES),
                ..Default::default()
            })?;
            Ok((counts, recent, failures, r.outbox_waiting()?))
        })
        .await;
    let (counts, recent, failures, waiting) = match read {
        Ok(r) => r,
        Err(e) => return unreadable(&who, &e),
    };
    let flying = view::in_flight();
    let data = json!({
        "nav": "dashboard",
        "flash": flash.value(),
        "counts": {
            "processed": counts.get("processed").copied().unwrap_or(0),
            "rows_failed": counts.get("rows_failed").copied().unwrap_or(0),
            "failed": counts.get("failed").copied().unwrap_or(0),
            "set_aside": counts.get("set_aside").copied().unwrap_or(0),
            "in_flight": flying.len(),
            "waiting_events": waiting,
        },
        "pipelines": view::pipelines(&web.ops, &settings, &flying),
        "connections": view::connections(&web.ops, &settings),
        "problems": web.ops.health.problems(),
        "in_flight": flying,
        "recent": recent.iter().map(view::entry_line).collect::<Vec<_>>(),
        "failures": failures.iter().map(view::entry_line).collect::<Vec<_>>(),
        "notify": view::notifications(&settings),
    });
    page("dashboard.html", &who, Value::from(minijinja::value::Serde(&data)))
}

#[derive(Debug, Default, Deserialize)]
pub struct HistoryQuery {
    pub pipeline: Option<String>,
    /// An outcome, or `failed` for every outcome but `processed`.
    pub outcome: Option<String>,
    pub limit: Option<usize>,
}

impl HistoryQuery {
    pub fn filter(&self) -> HistoryFilter {
        let outcomes = match self.outcome.as_deref().unwrap_or("") {
            "" => Vec::new(),
            "failed" => vec![Outcome::RowsFailed, Outcome::Failed, Outcome::SetAside],
            "failed_file" => vec![Outcome::Failed],
            other => Outcome::parse(other).into_iter().collect(),
        };
        HistoryFilter {
            pipeline: self.pipeline.clone().filter(|p| !p.is_empty()),
            outcomes,
            limit: Some(self.limit.unwrap_or(HISTORY_PAGE).clamp(1, 1000)),
            ..Default::default()
        }
    }
}

pub async fn history(
    State(web): State<Web>,
    Extension(who): Extension<Who>,
    Query(q): Query<HistoryQuery>,
) -> Response {
    let filter = q.filter();
    let entries = match web.ops.read(move |r| r.history(&filter)).await {
        Ok(e) => e,
        Err(e) => return unreadable(&who, &e),
    };
    let settings = web.ops.settings();
    let outcomes: Vec<serde_json::Value> =
        [("", "any outcome"), ("failed", "did not fully arrive")]
            .into_iter()
            .map(|(v, l)| json!({ "value": v, "label": l }))
            .chain(
                Outcome::ALL.iter().map(
                    |o| json!({ "value": o.as_str(), "label": view::outcome_label(o.as_str()) }),
                ),
            )
            .collect();
    let data = json!({
        "nav": "history",
        "pipelines": settings.pipelines.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
        "outcomes": outcomes,
        "chosen": { "pipeline": q.pipeline.unwrap_or_default(), "outcome": q.outcome.unwrap_or_default() },
        "entries": entries.iter().map(view::entry_line).collect::<Vec<_>>(),
    });
    page("history.html", &who, Value::from(minijinja::value::Serde(&data)))
}

pub async fn file(
    State(web): State<Web>,
    Extension(who): Extension<Who>,
    Path(id): Path<i64>,
    Query(flash): Query<Flash>,
) -> Response {
    let entry = match web.ops.read(move |r| r.history_entry(id)).await {
        Ok(Some(e)) => e,
        Ok(None) => {
            return message(
                StatusCode::NOT_FOUND,
                &who,
                "No such file",
                &format!(
                    "The history has no file {id} (it may have been pruned after history_keep)."
                ),
            )
        }
        Err(e) => return unreadable(&who, &e),
    };
    let mut detail = view::detail(&web, &entry).await;
    if let Some(map) = detail.as_object_mut() {
        map.insert("nav".into(), "history".into());
        map.insert("flash".into(), flash.value());
    }
    page("file.html", &who, Value::from(minijinja::value::Serde(&detail)))
}

/// `GET /login` once signed in (or with no token set): the dashboard.
pub async fn signed_in() -> impl IntoResponse {
    Redirect::to("/")
}
