//! `plannr.import.<type>`: each batch is one Plannr import: create (CSV upload) -> map ->
//! start -> poll to its end. Each step is recorded in the ledger, so a restart continues the
//! same import. Failed rows come back by their data (25 inline, all in the error report).

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::{Map, Value};

use super::correlate::{self, SentRow, CORRELATION};
use super::plannr_common::{failure_from_errors, unwrap_data};
use super::{BatchError, JobSink, MappedRow, ResumeJob, Target};
use crate::config::{ImportMode, TargetSpec};
use crate::delivery::{CallError, Connection};
use crate::mapping::{CompiledField, Mapped, Value as Cell};
use crate::row::{Failure, Outcome, Stage};
use crate::schema::FieldType;

/// Statuses after which an import does no more work (the docs show only `processing`).
const TERMINAL: &[&str] = &[
    "complete",
    "completed",
    "failed",
    "finished",
    "done",
    "cancelled",
    "canceled",
    "error",
    "errored",
];
const RUNNING: &[&str] = &[
    "pending",
    "processing",
    "queued",
    "mapped",
    "importing",
    "running",
    "started",
    "in_progress",
    "validating",
];
/// The ledger status after each step; a resumed import continues from the next one.
const CREATED: &str = "Pending";
const MAPPED: &str = "mapped";
const STARTED: &str = "started";

pub struct PlannrImport {
    spec: TargetSpec,
    import_type: String,
    mode: ImportMode,
    /// Target field names in mapper order: the uploaded CSV's columns.
    fields: Vec<String>,
}

impl PlannrImport {
    pub fn new(
        spec: TargetSpec,
        import_type: String,
        mode: ImportMode,
        fields: Vec<String>,
    ) -> Self {
        Self { spec, import_type, mode, fields }
    }

    /// The CSV of a batch: the field names plus the correlation column, then each row.
    fn csv(&self, rows: &[MappedRow]) -> Bytes {
        let mut out =
            Vec::with_capacity(rows.iter().map(|r| r.body.len() + 12).sum::<usize>() + 256);
        let mut w = csv::Writer::from_writer(&mut out);
        let mut header: Vec<&str> = self.fields.iter().map(String::as_str).collect();
        header.push(CORRELATION);
        let _ = w.write_record(&header);
        drop(w);
        for r in rows {
            out.extend_from_slice(&r.body);
            out.push(b',');
            out.extend_from_slice(r.source.seq.to_string().as_bytes());
            out.push(b'\n');
        }
        Bytes::from(out)
    }

    fn sent(&self, rows: &[MappedRow]) -> Vec<SentRow> {
        rows.iter()
            .map(|r| {
                let mut cells: HashMap<String, String> = parse_line(&r.body)
                    .into_iter()
                    .zip(&self.fields)
                    .map(|(v, k)| (k.clone(), v))
                    .collect();
                cells.insert(CORRELATION.into(), r.source.seq.to_string());
                SentRow { seq: r.source.seq, cells }
            })
            .collect()
    }

    async fn create(&self, conn: &Connection, rows: &[MappedRow]) -> Result<String, BatchError> {
        let url = format!("{}/api/v1/import", conn.base_url());
        let file = self.csv(rows);
        let (kind, mode) = (self.import_type.clone(), self.mode.as_str().to_string());
        let reply = conn
            .call("import/create", |c| {
                let part = reqwest::multipart::Part::stream(file.clone())
                    .file_name("batch.csv")
                    .mime_str("text/csv");
                let form = reqwest::multipart::Form::new()
                    .text("type", kind.clone())
                    .text("mode", mode.clone());
                let form = match part {
                    Ok(p) => form.part("file", p),
                    Err(_) => form,
                };
                c.post(&url).multipart(form)
            })
            .await
            .map_err(batch_error)?;
        let import = resource(&reply.body)?;
        import.get("uuid").and_then(Value::as_str).map(String::from).ok_or_else(|| {
            BatchError::Failed("Plannr created an import but its reply has no uuid".into())
        })
    }

    /// Continues an import from the step after `from` to its end; reads each row's outcome.
    async fn run_from(
        &self,
        conn: &Connection,
        uuid: &str,
        from: &str,
        rows: &[MappedRow],
        jobs: &dyn JobSink,
    ) -> Result<Vec<Outcome>, BatchError> {
        let base = conn.base_url().to_string();
        if from == CREATED {
            let url = format!("{base}/api/v1/import/map/{uuid}");
            let headers: Map<String, Value> =
                self.fields.iter().map(|f| (f.clone(), Value::String(f.clone()))).collect();
            let body = serde_json::json!({ "headers": headers });
            conn.call("import/map", |c| c.post(&url).json(&body)).await.map_err(batch_error)?;
            jobs.status(uuid, MAPPED, rows.len());
        }
        if from == CREATED || from == MAPPED {
            let url = format!("{base}/api/v1/import/start/{uuid}");
            match conn.call("import/start", |c| c.post(&url)).await {
                Ok(_) => {}
                // Started already (a restart after the start was sent but not recorded).
                Err(CallError::Rejected { status: 422, .. }) if from == MAPPED => {}
                Err(e) => return Err(batch_error(e)),
            }
            jobs.status(uuid, STARTED, rows.len());
        }
        let import = self.poll(conn, uuid).await;
        let import = match import {
            Ok(i) => i,
            Err(e) => {
                jobs.status(uuid, "unknown", rows.len());
                return Err(e);
            }
        };
        let status = import.get("status").and_then(Value::as_str).unwrap_or("").to_string();
        let outcomes = self.outcomes(conn, uuid, &status, &import, rows).await?;
        jobs.status(uuid, &status, rows.len());
        Ok(outcomes)
    }

    async fn poll(&self, conn: &Connection, uuid: &str) -> Result<Map<String, Value>, BatchError> {
        let url = format!("{}/api/v1/import/{uuid}", conn.base_url());
        let started = tokio::time::Instant::now();
        let interval = conn.settings.poll_interval;
        loop {
            tokio::time::sleep(interval).await;
            let reply = conn.call("import/status", |c| c.get(&url)).await.map_err(batch_error)?;
            let import = resource(&reply.body)?;
            if is_terminal(&import) {
                return Ok(import);
            }
            tracing::debug!(import = uuid, progress = %import.get("progress").map(|p| p.to_string()).unwrap_or_default(), "import running");
            if started.elapsed() + interval > conn.settings.poll_timeout {
                return Err(BatchError::Failed(format!(
                    "Plannr import {uuid} was still running after {}",
                    humantime::format_duration(Duration::from_secs(started.elapsed().as_secs()))
                )));
            }
        }
    }

    async fn outcomes(
        &self,
        conn: &Connection,
        uuid: &str,
        status: &str,
        import: &Map<String, Value>,
        rows: &[MappedRow],
    ) -> Result<Vec<Outcome>, BatchError> {
        let mut entries = error_entries(import.get("errors"));
        let reported =
            import.get("failed_jobs").and_then(Value::as_u64).unwrap_or(entries.len() as u64)
                as usize;
        if reported > entries.len() {
            if let Some(url) = import
                .get("error_report")
                .and_then(|r| r.get("download_url"))
                .and_then(Value::as_str)
            {
                let all = download(conn, url).await?;
                if all.len() >= entries.len() {
                    entries = all;
                }
            }
        }
        let listed = entries.len();
        let (by_seq, unmatched) = correlate::assign(&self.sent(rows), entries);
        if unmatched > 0 {
            tracing::warn!(
                import = uuid,
                unmatched,
                "Plannr reported failed rows that match no row sent"
            );
        }
        let failed_import = ["failed", "error", "errored", "cancelled", "canceled"]
            .contains(&status.to_ascii_lowercase().as_str());
        let unknown = reported.saturating_sub(listed) + unmatched;
        let message = import.get("message").and_then(Value::as_str).unwrap_or("");
        Ok(rows
            .iter()
            .map(|r| match by_seq.get(&r.source.seq) {
                Some(f) => Outcome::Failed(f.clone()),
                None if failed_import => Outcome::Failed(Failure::new(Stage::Remote, None, format!("Plannr import {uuid} ended {status} {message}").trim_end())),
                None if unknown > 0 => Outcome::Failed(Failure::new(
                    Stage::Remote,
                    None,
                    format!("Plannr import {uuid} reported {} failed rows but identified only {}; this row may not have been imported", reported.max(listed), by_seq.len()),
                )),
                None => Outcome::Accepted,
            })
            .collect())
    }
}

fn resource(body: &[u8]) -> Result<Map<String, Value>, BatchError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| BatchError::Failed(format!("Plannr's reply was not understood: {e}")))?;
    match unwrap_data(v) {
        Value::Object(m) => Ok(m),
        other => Err(BatchError::Failed(format!(
            "Plannr's reply was not an import: {}",
            other.to_string().chars().take(200).collect::<String>()
        ))),
    }
}

fn is_terminal(import: &Map<String, Value>) -> bool {
    let status = import.get("status").and_then(Value::as_str).unwrap_or("").to_ascii_lowercase();
    let remaining = import.get("jobs_remaining").and_then(Value::as_u64);
    if TERMINAL.contains(&status.as_str()) {
        return remaining.is_none_or(|r| r == 0);
    }
    !status.is_empty() && !RUNNING.contains(&status.as_str()) && remaining == Some(0)
}

/// `[{"client": {row}, "errors": {field: [msg]}}, ...]`: the row is the entry's object that is
/// not `errors`, whatever the import type calls it.
fn error_entries(v: Option<&Value>) -> Vec<(Map<String, Value>, Failure)> {
    let Some(Value::Array(list)) = v.cloned().map(unwrap_data) else { return Vec::new() };
    list.iter()
        .filter_map(|e| {
            let obj = e.as_object()?;
            let row = obj
                .iter()
                .find(|(k, v)| k.as_str() != "errors" && v.is_object())
                .and_then(|(_, v)| v.as_object())
                .cloned()
                .unwrap_or_default();
            let failure = match obj.get("errors") {
                Some(Value::Object(errs)) => failure_from_errors(errs),
                Some(Value::String(m)) => Failure::new(Stage::Remote, None, m.clone()),
                Some(Value::Array(list)) => Failure {
                    stage: Stage::Remote,
                    fields: Vec::new(),
                    messages: list
                        .iter()
                        .map(|m| m.as_str().map_or_else(|| m.to_string(), String::from))
                        .collect(),
                },
                _ => Failure::new(Stage::Remote, None, "refused by Plannr"),
            };
            Some((row, failure))
        })
        .collect()
}

/// The full error report: JSON (a list of entries, maybe wrapped) or CSV with an errors column.
async fn download(
    conn: &Connection,
    url: &str,
) -> Result<Vec<(Map<String, Value>, Failure)>, BatchError> {
    let reply = conn.call("import/error_report", |c| c.get(url)).await.map_err(batch_error)?;
    if let Ok(v) = serde_json::from_slice::<Value>(&reply.body) {
        let v = unwrap_data(v);
        let list = match &v {
            Value::Array(_) => Some(v.clone()),
            Value::Object(m) => m.get("errors").or_else(|| m.get("rows")).cloned(),
            _ => None,
        };
        return Ok(error_entries(list.as_ref()));
    }
    let mut r = csv::ReaderBuilder::new().flexible(true).from_reader(reply.body.as_ref());
    let header: Vec<String> =
        r.headers().map(|h| h.iter().map(String::from).collect()).unwrap_or_default();
    let errors_col = header.iter().position(|h| {
        ["errors", "error", "messages", "message"].contains(&h.to_ascii_lowercase().as_str())
    });
    Ok(r.records()
        .flatten()
        .map(|rec| {
            let mut row = Map::new();
            for (i, (h, v)) in header.iter().zip(rec.iter()).enumerate() {
                if Some(i) != errors_col {
                    row.insert(h.clone(), Value::String(v.to_string()));
                }
            }
            let msg = errors_col.and_then(|i| rec.get(i)).unwrap_or("refused by Plannr");
            (row, Failure::new(Stage::Remote, None, msg))
        })
        .collect())
}

fn batch_error(e: CallError) -> BatchError {
    super::batch_error("Plannr", "import", e)
}

fn parse_line(body: &[u8]) -> Vec<String> {
    let mut r = csv::ReaderBuilder::new().has_headers(false).from_reader(body);
    r.records()
        .next()
        .and_then(Result::ok)
        .map(|rec| rec.iter().map(String::from).collect())
        .unwrap_or_default()
}

impl Target for PlannrImport {
    fn spec(&self) -> &TargetSpec {
        &self.spec
    }

    /// One CSV record (no newline) in field order; booleans as `1`/`0`, which Laravel's
    /// `boolean` rule accepts (it refuses the text `true`).
    fn encode(
        &self,
        fields: &[CompiledField],
        values: &Mapped,
        _escapes: super::Escapes,
        out: &mut Vec<u8>,
    ) {
        let cells: Vec<String> = fields
            .iter()
            .zip(values)
            .map(|(f, v)| match (f.def.map(|d| d.ty), v) {
                (_, None) => String::new(),
                (Some(FieldType::Bool), Some(Cell::Text(t))) => {
                    if t == "true" {
                        "1".into()
                    } else {
                        "0".into()
                    }
                }
                (_, Some(v)) => v.display().replace('|', ","),
            })
            .collect();
        {
            let mut w = csv::WriterBuilder::new()
                .terminator(csv::Terminator::Any(b'\n'))
                .from_writer(&mut *out);
            let _ = w.write_record(&cells);
        }
        if out.last() == Some(&b'\n') {
            out.pop();
        }
    }

    fn preview(&self, body: &[u8]) -> Value {
        Value::Object(
            self.fields
                .iter()
                .cloned()
                .zip(parse_line(body).into_iter().map(Value::String))
                .collect(),
        )
    }

    fn deliver<'a>(
        &'a self,
        conn: &'a Connection,
        rows: &'a [MappedRow],
        jobs: &'a dyn JobSink,
    ) -> BoxFuture<'a, Result<Vec<Outcome>, BatchError>> {
        async move {
            let uuid = {
                let _creating = conn.creating().await;
                let uuid = self.create(conn, rows).await?;
                jobs.started(&uuid, rows).await;
                uuid
            };
            self.run_from(conn, &uuid, CREATED, rows, jobs).await
        }
        .boxed()
    }

    fn resume<'a>(
        &'a self,
        conn: &'a Connection,
        job: &'a ResumeJob,
        rows: &'a [MappedRow],
        jobs: &'a dyn JobSink,
    ) -> BoxFuture<'a, Result<Vec<Outcome>, BatchError>> {
        async move {
            let from = if job.status == CREATED || job.status == MAPPED {
                job.status.as_str()
            } else {
                STARTED
            };
            self.run_from(conn, &job.id, from, rows, jobs).await
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn terminal_statuses() {
        assert!(!is_terminal(&obj(json!({"status": "processing", "jobs_remaining": 3}))));
        assert!(!is_terminal(&obj(json!({"status": "processing", "jobs_remaining": 0}))));
        assert!(is_terminal(&obj(json!({"status": "complete", "jobs_remaining": 0}))));
        assert!(is_terminal(&obj(json!({"status": "Completed"}))));
        assert!(is_terminal(&obj(json!({"status": "finished", "jobs_remaining": 0}))));
        assert!(is_terminal(&obj(json!({"status": "failed"}))));
        assert!(!is_terminal(&obj(json!({"status": "completed", "jobs_remaining": 2}))));
        assert!(is_terminal(&obj(json!({"status": "imported", "jobs_remaining": 0}))));
    }

    #[test]
    fn entries_whatever_the_row_is_called() {
        let e = error_entries(Some(&json!([
            {"client": {"first_name": "A"}, "errors": {"last_name": ["The last name field is required."]}},
            {"plan": {"name": "P"}, "errors": "bad plan"}
        ])));
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].0["first_name"], "A");
        assert_eq!(e[0].1.fields, vec!["last_name"]);
        assert_eq!(e[1].1.messages, vec!["bad plan"]);
    }
}
