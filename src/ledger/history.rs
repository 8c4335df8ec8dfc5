//! The history: every finished file's summary, kept `history_keep`, newest first. What
//! `crm-ingest history`, `/status` and the console show, and what `retry` finds files by.

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Transaction};
use serde::Serialize;

use super::outbox::{self, OutboxRow};
use super::{Ledger, LedgerError, Msg, Reader};

/// How a file ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every row was accepted.
    Processed,
    /// It ran to its end, but some rows failed, are unconfirmed or were not processed.
    RowsFailed,
    /// The file as a whole could not be processed.
    Failed,
    /// It could not be finished and was put in `failed/`.
    SetAside,
}

impl Outcome {
    pub const ALL: [Outcome; 4] =
        [Outcome::Processed, Outcome::RowsFailed, Outcome::Failed, Outcome::SetAside];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Processed => "processed",
            Outcome::RowsFailed => "rows_failed",
            Outcome::Failed => "failed",
            Outcome::SetAside => "set_aside",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == text)
    }

    /// The file itself sits in `failed/` (a `retry` can put it back).
    pub fn in_failed(self) -> bool {
        matches!(self, Outcome::Failed | Outcome::SetAside)
    }
}

/// A finished file, to record.
#[derive(Debug, Clone)]
pub struct NewHistory {
    /// The ledger's `files` row, when the file got one.
    pub file_id: Option<i64>,
    pub pipeline: String,
    pub file: String,
    pub outcome: Outcome,
    pub finished_at: String,
    /// Where its reports are: a local folder, or `s3://bucket/prefix/reports/`.
    pub reports: String,
    /// The summary's file name there (`NAME.summary.json`).
    pub summary_file: String,
    /// The summary, as JSON.
    pub summary: String,
}

/// A finished file, as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub id: i64,
    pub file_id: Option<i64>,
    pub pipeline: String,
    pub file: String,
    pub outcome: String,
    pub finished_at: String,
    pub reports: String,
    pub summary_file: String,
    pub summary: serde_json::Value,
}

/// Which entries to read; empty fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    pub pipeline: Option<String>,
    /// Finished at or after this RFC 3339 time.
    pub since: Option<String>,
    pub outcomes: Vec<Outcome>,
    /// Only this file name.
    pub file: Option<String>,
    pub limit: Option<usize>,
}

fn insert(tx: &Transaction<'_>, e: &NewHistory) -> rusqlite::Result<i64> {
    tx.execute(
        "INSERT INTO history (file_id, pipeline, file, outcome, finished_at, reports, summary_file, summary)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            e.file_id,
            e.pipeline,
            e.file,
            e.outcome.as_str(),
            e.finished_at,
            e.reports,
            e.summary_file,
            e.summary
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

impl Ledger {
    /// Records a finished file without waiting; `events` makes its notifications from the
    /// entry's id, queued in the same transaction (both are kept, or neither); `committed`
    /// runs once they are.
    pub fn record_finished(
        &self,
        entry: NewHistory,
        events: impl FnOnce(i64) -> Vec<OutboxRow> + Send + 'static,
        committed: impl FnOnce() + Send + 'static,
    ) {
        let (pipeline, file) = (entry.pipeline.clone(), entry.file.clone());
        let sent = self.send(Msg::Work(Box::new(move |tx| {
            let id = insert(tx, &entry)?;
            outbox::insert(tx, &events(id))?;
            Ok(Box::new(move |err: Option<String>| {
                match err {
                    Some(e) => tracing::error!(pipeline = %pipeline, file = %file, error = %e, "could not record the file in the history"),
                    None => committed(),
                }
            }))
        })));
        if sent.is_err() {
            tracing::warn!("the ledger is closed: a finished file was not recorded in the history");
        }
    }

    /// Forgets entries finished before `cutoff` (RFC 3339).
    pub async fn prune_history(&self, cutoff: String) -> Result<(), LedgerError> {
        self.apply(move |tx| {
            tx.execute("DELETE FROM history WHERE finished_at < ?1", params![cutoff]).map(drop)
        })
        .await
    }
}

const COLUMNS: &str =
    "id, file_id, pipeline, file, outcome, finished_at, reports, summary_file, summary";

fn entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<HistoryEntry> {
    let summary: String = r.get(8)?;
    Ok(HistoryEntry {
        id: r.get(0)?,
        file_id: r.get(1)?,
        pipeline: r.get(2)?,
        file: r.get(3)?,
        outcome: r.get(4)?,
        finished_at: r.get(5)?,
        reports: r.get(6)?,
        summary_file: r.get(7)?,
        summary: serde_json::from_str(&summary).unwrap_or(serde_json::Value::Null),
    })
}

impl Reader {
    /// Entries that pass `filter`, newest first.
    pub fn history(&self, filter: &HistoryFilter) -> Result<Vec<HistoryEntry>, LedgerError> {
        let mut clauses = Vec::new();
        let mut values: Vec<SqlValue> = Vec::new();
        if let Some(p) = &filter.pipeline {
            values.push(p.clone().into());
            clauses.push(format!("pipeline = ?{}", values.len()));
        }
        if let Some(f) = &filter.file {
            values.push(f.clone().into());
            clauses.push(format!("file = ?{}", values.len()));
        }
        if let Some(s) = &filter.since {
            values.push(s.clone().into());
            clauses.push(format!("finished_at >= ?{}", values.len()));
        }
        if !filter.outcomes.is_empty() {
            let mut marks = Vec::new();
            for o in &filter.outcomes {
                values.push(o.as_str().to_string().into());
                marks.push(format!("?{}", values.len()));
            }
            clauses.push(format!("outcome IN ({})", marks.join(", ")));
        }
        let filter_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let limit = filter.limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let sql = format!(
            "SELECT {COLUMNS} FROM history {filter_sql} ORDER BY finished_at DESC, id DESC LIMIT {limit}"
        );
        self.with(|c| {
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(params_from_iter(values), entry)?;
            rows.collect()
        })
    }

    pub fn history_entry(&self, id: i64) -> Result<Option<HistoryEntry>, LedgerError> {
        use rusqlite::OptionalExtension;
        self.with(|c| {
            c.query_row(&format!("SELECT {COLUMNS} FROM history WHERE id = ?1"), [id], entry)
                .optional()
        })
    }

    /// How many files ended each way since `since` (RFC 3339), by outcome.
    pub fn outcome_counts(
        &self,
        since: &str,
    ) -> Result<std::collections::BTreeMap<String, u64>, LedgerError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT outcome, COUNT(*) FROM history WHERE finished_at >= ?1 GROUP BY outcome",
            )?;
            let rows = stmt.query_map([since], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }
}
