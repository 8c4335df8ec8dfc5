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
    /// Only rows of one partition share a create (see `Target::partition`).
    pub partition: Partition,
}

/// Which rows may share one create: the engine never puts rows of two partitions in one
/// batch. Plannr update imports partition rows by the set of fields they carry (an import's
/// columns are the same for all its rows, and an empty cell would clear the field); every
/// other target has one partition. A bit set, exact for any number of fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Partition(Box<[u64]>);

impl Partition {
    /// The partition of the fields whose positions `carried` yields (in any order).
    pub fn of_fields(carried: impl Iterator<Item = usize>) -> Self {
        let mut words: Vec<u64> = Vec::new();
        for i in carried {
            let (word, bit) = (i / 64, i % 64);
            if words.len() <= word {
                words.resize(word + 1, 0);
            }
            words[word] |= 1 << bit;
        }
        Self(words.into_boxed_slice())
    }

    /// Whether field `i` is in this partition's set.
    pub fn carries(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
}

/// A Repsly account's active users (what it is billed for) before and after an import, as
/// the user import's answer gives them; a file's summary shows the first "before" and the
/// last "after".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Seats {
    pub before: u64,
    pub after: u64,
}

/// A remote job or import the CRM created for a batch; recorded before it is polled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteJob {
    pub id: String,
    pub status: String,
    pub rows: usize,
}
