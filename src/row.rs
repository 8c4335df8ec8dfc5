//! The units that flow between stages: a source row, its fate, and the stages that decide it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One data record of a source file, as read.
#[derive(Debug, Clone)]
pub struct SourceRow {
    /// 0-based index among the file's data records; settlement is tracked by it.
    pub seq: u64,
    /// Line in the source where the record starts (the header is line 1).
    pub line: u64,
    /// The record's fields as raw bytes, so a failed row is reported verbatim in the
    /// source's own encoding.
    pub raw: csv_async::ByteRecord,
}

/// Where a row failed; the `_stage` column of the errors report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    Parse,
    Map,
    Validate,
    Remote,
    /// The CRM's answer leaves the row's fate in doubt: it may or may not have arrived.
    Unconfirmed,
    Unprocessed,
    /// Saved, with a warning (the warnings report, not the errors one).
    Warning,
}

impl Stage {
    pub const ALL: [Stage; 7] = [
        Stage::Parse,
        Stage::Map,
        Stage::Validate,
        Stage::Remote,
        Stage::Unconfirmed,
        Stage::Unprocessed,
        Stage::Warning,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Parse => "parse",
            Stage::Map => "map",
            Stage::Validate => "validate",
            Stage::Remote => "remote",
            Stage::Unconfirmed => "unconfirmed",
            Stage::Unprocessed => "unprocessed",
            Stage::Warning => "warning",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a row failed: the stage, the target field(s) involved and every reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub stage: Stage,
    pub fields: Vec<String>,
    pub messages: Vec<String>,
}

impl Failure {
    pub fn new(stage: Stage, field: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            stage,
            fields: field.map(|f| vec![f.to_string()]).unwrap_or_default(),
            messages: vec![message.into()],
        }
    }
}

/// The fate of one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    /// Saved, with a warning the user should see: counts as accepted.
    Warned(Failure),
    Failed(Failure),
}

/// A row ready to send: the source row (for the report) plus its encoded form.
#[derive(Debug, Clone)]
pub struct MappedRow {
    pub source: SourceRow,
    /// The value the CRM reports failures by (Repsly `Code`).
    pub key: String,
    /// The row as the target sends it (a JSON object for Repsly).
    pub body: Vec<u8>,
    /// Rows of one group can share a create (see `Target::group`).
    pub group: u64,
}

/// A remote job or import the CRM created for a batch; recorded before it is polled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteJob {
    pub id: String,
    pub status: String,
    pub rows: usize,
}
