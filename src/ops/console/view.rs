//! What the pages and the JSON API show, built once for both: files in flight, history
//! lines, pipelines and connections with their state, and a file's full page.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::reports::{self, Which};
use super::rows;
use super::Web;
use crate::config::{Settings, SinkKind, SourceSettings};
use crate::ledger::{HistoryEntry, Outcome};
use crate::ops::server::OpsState;

/// Failed and warned rows a file's page shows at most.
pub const ROWS_SHOWN: usize = 500;

/// Files in flight, every pipeline's, oldest first.
pub fn in_flight() -> Vec<Value> {
    let mut out = Vec::new();
    for (pipeline, p) in crate::ops::status::get().snapshot() {
        for f in p.in_flight {
            let percent = (f.rows_done.saturating_mul(100)).checked_div(f.rows_total).unwrap_or(0);
            let eta = f
                .eta_seconds
                .map(|s| humantime::format_duration(std::time::Duration::from_secs(s)).to_string());
            out.push(json!({
                "pipeline": pipeline,
                "file": f.file,
                "started_at": f.started_at,
                "rows_done": f.rows_done,
                "rows_total": f.rows_total,
                "percent": percent.min(100),
                "rows_per_second": f.rows_per_second,
                "eta": eta,
                "bytes_done": f.bytes_done,
                "bytes_total": f.bytes_total,
            }));
        }
    }
    out.sort_by(|a, b| a["started_at"].as_str().cmp(&b["started_at"].as_str()));
    out
}

pub fn outcome_label(outcome: &str) -> &'static str {
    match Outcome::parse(outcome) {
        Some(Outcome::Processed) => "processed",
        Some(Outcome::RowsFailed) => "rows failed",
        Some(Outcome::Failed) => "failed",
        Some(Outcome::SetAside) => "set aside",
        None => "unknown",
    }
}

fn retryable(e: &HistoryEntry) -> bool {
    Outcome::parse(&e.outcome).is_some_and(Outcome::in_failed)
}

/// One line of the history.
pub fn entry_line(e: &HistoryEntry) -> Value {
    let s = &e.summary;
    json!({
        "id": e.id,
        "url": format!("/files/{}", e.id),
        "pipeline": e.pipeline,
        "file": e.file,
        "outcome": e.outcome,
        "outcome_label": outcome_label(&e.outcome),
        "finished_at": e.finished_at,
        "rows": s.get("rows").cloned().unwrap_or(Value::Null),
        "report": s.get("report").cloned().unwrap_or(Value::Null),
        "error": s.get("error").cloned().unwrap_or(Value::Null),
        "retryable": retryable(e),
    })
}

fn source_text(p: &crate::config::PipelineSettings) -> String {
    match &p.source {
        SourceSettings::Folder(f) => f.path.display().to_string(),
        SourceSettings::S3(s) => format!("s3://{}/{}", s.bucket, s.prefix),
    }
}

/// Each pipeline, its source and target, and whether its files move.
pub fn pipelines(ops: &OpsState, settings: &Settings, flying: &[Value]) -> Vec<Value> {
    let problems = connection_problems(ops);
    let disk = ops.health.problems();
    settings
        .pipelines
        .iter()
        .map(|p| {
            let (state, why) = match problems.get(&p.connection.name) {
                Some(why) => ("held", format!("connection {}: {why}", p.connection.name)),
                None if !disk.is_empty() => ("paused", disk.join("; ")),
                None => ("running", String::new()),
            };
            json!({
                "name": p.name,
                "source": source_text(p),
                "target": p.target.name(),
                "connection": p.connection.name,
                "state": state,
                "why": why,
                "in_flight": flying.iter().filter(|f| f["pipeline"] == p.name.as_str()).count(),
            })
        })
        .collect()
}

fn connection_problems(ops: &OpsState) -> BTreeMap<String, String> {
    let current = ops.connections.read().map(|c| c.clone()).unwrap_or_default();
    current.iter().filter_map(|c| c.problem().map(|p| (c.name().to_string(), p))).collect()
}

pub fn connections(ops: &OpsState, settings: &Settings) -> Vec<Value> {
    let problems = connection_problems(ops);
    settings
        .connections
        .values()
        .map(|c| {
            let problem = problems.get(&c.name);
            json!({
                "name": c.name,
                "kind": c.kind.as_str(),
                "base_url": c.base_url,
                "rate_limit": c.rate_limit.to_string(),
                "state": if problem.is_some() { "stopped" } else { "ok" },
                "problem": problem,
            })
        })
        .collect()
}

/// The `[[notify]]` destinations, as a log would name them (no URL paths, no secrets).
pub fn notifications(settings: &Settings) -> Vec<Value> {
    settings
        .notify
        .iter()
        .map(|s| {
            let events: Vec<&str> = s.events.iter().map(|e| e.as_str()).collect();
            let signed = matches!(&s.kind, SinkKind::Webhook { secret: Some(_), .. });
            json!({ "to": s.describe(), "events": events, "signed": signed,
                    "pipelines": s.pipelines.as_ref().map(|p| p.iter().cloned().collect::<Vec<_>>()) })
        })
        .collect()
}

/// A file's page: its summary, remote jobs, failed and warned rows, downloads.
pub async fn detail(web: &Web, e: &HistoryEntry) -> Value {
    let s = &e.summary;
    let jobs = match e.file_id {
        Some(id) => web.ops.read(move |r| r.jobs(id)).await.unwrap_or_default(),
        None => Vec::new(),
    };
    let jobs: Vec<Value> = jobs
        .iter()
        .take(ROWS_SHOWN)
        .map(|j| json!({ "id": j.id, "status": j.status, "rows": j.seqs.len() }))
        .collect();
    let mut downloads = serde_json::Map::new();
    for which in [Which::Errors, Which::Warnings, Which::Summary] {
        if reports::name(e, which).is_some() {
            downloads
                .insert(which.key().into(), format!("/api/files/{}/{}", e.id, which.file()).into());
        }
    }
    let failed = rows_of(web, e, Which::Errors).await;
    let warned = rows_of(web, e, Which::Warnings).await;
    let mut out = entry_line(e);
    if let Some(map) = out.as_object_mut() {
        for key in ["target", "started_at", "failed_by_stage", "remote_jobs", "warnings"] {
            map.insert(key.into(), s.get(key).cloned().unwrap_or(Value::Null));
        }
        map.insert("jobs".into(), jobs.into());
        map.insert("downloads".into(), downloads.into());
        map.insert("failed_rows".into(), failed);
        map.insert("warned_rows".into(), warned);
    }
    out
}

async fn rows_of(web: &Web, e: &HistoryEntry, which: Which) -> Value {
    match reports::read(web, e, which).await {
        Ok(Some(bytes)) => {
            let table = rows::read(&bytes, ROWS_SHOWN);
            serde_json::to_value(table).unwrap_or(Value::Null)
        }
        Ok(None) => Value::Null,
        Err(why) => json!({ "error": why }),
    }
}
