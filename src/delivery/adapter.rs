//! What a CRM target describes to the engine: how to create a job for a batch, the steps
//! before it runs, how to ask for its status, and how to read the answers. Batching,
//! write-ahead records, limits, retries, polling, splitting and reconciliation are the
//! engine's; an adapter never loops or waits.

use serde_json::{Map, Value};

use super::call::{Call, CallError, Reply};
use crate::row::{Failure, MappedRow};

/// How a row is named in a CRM's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum RowRef {
    /// By its upsert key (Repsly `Code`).
    Key(String),
    /// By the row number the client sent along (an unmapped correlation column).
    Seq(u64),
    /// By the data the CRM echoes (Plannr's failed rows), compared with what was sent.
    Data(Map<String, Value>),
    /// Not at all: the CRM says something failed but not which row.
    Unknown,
}

/// A row the CRM named, and what it said about it.
#[derive(Debug, Clone)]
pub struct RowNote {
    pub row: RowRef,
    pub failure: Failure,
}

/// What a finished job says about its rows. Counts are the CRM's own, where it gives them.
#[derive(Debug, Clone, Default)]
pub struct JobReport {
    /// The job's final status word, for the summary and the ledger.
    pub status: String,
    /// The job as a whole failed: rows it does not count as saved were not saved.
    pub failed: bool,
    /// Rows refused, as far as the CRM names them.
    pub refused: Vec<RowNote>,
    /// Rows saved with a warning.
    pub warned: Vec<RowNote>,
    /// Rows the CRM counts as saved (inserted + updated), when it counts them.
    pub saved: Option<u64>,
    /// Rows the CRM counts as refused, when it counts them.
    pub invalid: Option<u64>,
    /// The CRM's own count says `refused` names every refused row (Plannr: `failed_jobs` is 0
    /// and nothing is listed). A list being short is no proof of it; without it, rows
    /// `refused` does not name are in doubt unless the counts settle them.
    pub complete: bool,
    /// Where the full list of refused rows can be fetched (Plannr's error report).
    pub more: Option<Call>,
    /// That list, once fetched: it can only add refusals (see [`Fetched`]).
    pub fetched: Option<Fetched>,
    /// The id of the record a create made (a contact detail), kept in the ledger.
    pub record: Option<String>,
    /// The account's seats before and after (a Repsly user import), for the summary.
    pub seats: Option<crate::row::Seats>,
}

/// A list of refusals fetched after the job's answer (an error report). Reconciliation uses
/// it only to add refusals to the inline ones, and takes it as the whole list only when it
/// names at least one row and every row the inline list names: an empty or partial report
/// proves nothing, so it can lower confidence in a row but never raise it.
#[derive(Debug, Clone)]
pub struct Fetched(pub Vec<RowNote>);

/// A job's state as a status answer reads.
#[derive(Debug, Clone)]
pub enum JobState {
    /// Created but not started (a Plannr import before `start`).
    NotStarted,
    Running,
    Finished(Box<JobReport>),
}

/// What a create's answer (or refusal) means.
#[derive(Debug, Clone)]
pub enum Created {
    /// A job to follow.
    Job(String),
    /// The answer is final (a per-record target): the report for the batch.
    Done(Box<JobReport>),
    /// The batch was refused as a whole, maybe for one row's sake: split it to find out.
    Refused(String),
    /// The batch was refused for a reason splitting would not change.
    Failed(String),
    /// Not understood: whether the CRM took the batch is not known.
    Unclear(String),
}

/// A request between creating a job and polling it (Plannr: map, start).
#[derive(Debug, Clone)]
pub struct Step {
    /// Recorded in the ledger once the step is done, so a restart continues after it.
    pub name: &'static str,
    pub call: Call,
}

pub trait Adapter: Send + Sync {
    /// The most rows one create takes (a per-record target: 1).
    fn max_rows(&self) -> Option<usize> {
        None
    }

    /// Whether a create whose fate is unknown may be sent again without creating twice (an
    /// upsert by key, an import that does nothing until started).
    fn create_is_repeatable(&self) -> bool;

    /// The create request for a batch.
    fn create(&self, base: &str, rows: &[MappedRow]) -> Call;

    /// What the create's answer, or its refusal, means.
    fn created(&self, rows: &[MappedRow], answer: Result<&Reply, &CallError>) -> Created;

    /// The steps after the create, in order.
    fn steps(&self, _base: &str, _job: &str, _rows: &[MappedRow]) -> Vec<Step> {
        Vec::new()
    }

    /// The status request for a job.
    fn status(&self, base: &str, job: &str) -> Call;

    /// Reads a status answer.
    fn read_status(&self, base: &str, reply: &Reply) -> Result<JobState, String>;

    /// Reads the full list of refused rows fetched from [`JobReport::more`].
    fn read_more(&self, _reply: &Reply) -> Result<Fetched, String> {
        Err("this target has no list to fetch".into())
    }

    /// A row as the CRM would echo it back, by field name, for matching [`RowRef::Data`].
    fn echo(&self, _row: &MappedRow) -> Vec<(String, String)> {
        Vec::new()
    }
}
