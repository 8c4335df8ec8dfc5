//! `NAME.summary.json`: always written, for every file, good or bad.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RowCounts {
    pub read: u64,
    pub accepted: u64,
    pub failed: u64,
    pub unprocessed: u64,
    /// Accepted rows the CRM saved with a warning (in `NAME.warnings.csv`).
    #[serde(default)]
    pub warned: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub file: String,
    pub pipeline: String,
    pub target: String,
    pub started_at: String,
    pub finished_at: String,
    pub rows: RowCounts,
    /// Lines that are not records: above the header, and blank ones (SPEC §4).
    pub lines: crate::csvio::LineCounts,
    /// Failed rows per stage (`parse`, `map`, `validate`, `remote`); sums to `rows.failed`.
    pub failed_by_stage: BTreeMap<String, u64>,
    /// The remote jobs (imports) the file's batches created, by final status.
    pub remote_jobs: RemoteJobs,
    /// The errors file's name, or null when no row failed.
    pub report: Option<String>,
    /// The warnings file's name, or null when no row was saved with a warning.
    pub warnings: Option<String>,
    /// Why the file as a whole could not be processed (it went to `failed/`), else null.
    pub error: Option<String>,
    /// A Repsly user import's active users before the file and after it (what the account
    /// is billed for); absent for other targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seats: Option<crate::row::Seats>,
}

/// `remote_jobs` in a summary: how many, how many per final status, and the jobs themselves
/// (all of them when there are few, else those that did not complete).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RemoteJobs {
    pub count: usize,
    pub by_status: BTreeMap<String, usize>,
    pub jobs: Vec<crate::row::RemoteJob>,
}

/// RFC 3339 UTC timestamp with milliseconds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
