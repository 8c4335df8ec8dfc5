//! `NAME.summary.json`: always written, for every file, good or bad.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::row::RemoteJob;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RowCounts {
    pub read: u64,
    pub accepted: u64,
    pub failed: u64,
    pub unprocessed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub file: String,
    pub pipeline: String,
    pub target: String,
    pub started_at: String,
    pub finished_at: String,
    pub rows: RowCounts,
    /// Failed rows per stage (`parse`, `map`, `validate`, `remote`); sums to `rows.failed`.
    pub failed_by_stage: BTreeMap<String, u64>,
    pub remote_jobs: Vec<RemoteJob>,
    /// The errors file's name, or null when no row failed.
    pub report: Option<String>,
    /// Why the file as a whole could not be processed (it went to `failed/`), else null.
    pub error: Option<String>,
}

/// RFC 3339 UTC timestamp with milliseconds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
