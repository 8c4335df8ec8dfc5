//! CRM targets behind one small trait: encode a mapped row, deliver a batch, read its outcome.
//! Batching, limits, retries and splitting live once, in [`crate::delivery`].

mod correlate;
mod plannr_common;
pub mod plannr_contacts;
pub mod plannr_import;
pub mod repsly;

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::config::{PipelineSettings, TargetSpec};
use crate::delivery::Connection;
use crate::mapping::{CompiledField, Mapped};
use crate::row::{Failure, Outcome};
pub use crate::row::{MappedRow, RemoteJob};

pub use crate::mapping::json::Escapes;

/// Where a target reports the jobs it creates and their progress.
pub trait JobSink: Send + Sync {
    /// A job was created for `rows`; resolves once that is durably recorded, so a restart
    /// polls this job instead of sending its rows again.
    fn started<'a>(&'a self, id: &'a str, rows: &'a [MappedRow]) -> BoxFuture<'a, ()>;
    /// A job's status changed (`Completed`, `Failed`, ...).
    fn status(&self, id: &str, status: &str, rows: usize);
    /// A record created for `rows` with no job to follow (a contact detail): recorded like a
    /// started job, but not listed in the summary.
    fn created<'a>(&'a self, id: &'a str, rows: &'a [MappedRow]) -> BoxFuture<'a, ()>;
}

/// Why a batch as a whole did not go through.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BatchError {
    /// The CRM refused the batch as a whole (often for one bad row): split it to find out.
    #[error("{0}")]
    Rejected(String),
    /// The batch failed and splitting would not help (retries exhausted, job failed).
    #[error("{0}")]
    Failed(String),
    /// Credentials refused: the rows stay unprocessed, to be sent after a fix.
    #[error("{0}")]
    Auth(String),
}

pub trait Target: Send + Sync {
    fn spec(&self) -> &TargetSpec;

    /// Appends one mapped row, encoded, to `out`; `fields` are the mapper's, in the order of
    /// `values`; `escapes` says whether its text was found free of bytes JSON must escape.
    /// The caller reuses `out` across rows: encoding allocates nothing per row.
    fn encode(
        &self,
        fields: &[CompiledField],
        values: &Mapped,
        escapes: Escapes,
        out: &mut Vec<u8>,
    );

    /// The value the CRM reports a row's failures by (Repsly `Code`); empty for targets that
    /// match rows another way.
    fn key(&self, _fields: &[CompiledField], _values: &Mapped) -> String {
        String::new()
    }

    /// Rules across fields that the schema cannot state (a contact detail's value must suit
    /// its type); a failure is a `validate` failure of the row.
    fn validate(&self, _fields: &[CompiledField], _values: &Mapped) -> Result<(), Failure> {
        Ok(())
    }

    /// An encoded row as JSON, for `plan`'s sample payloads.
    fn preview(&self, body: &[u8]) -> serde_json::Value {
        serde_json::from_slice(body).unwrap_or(serde_json::Value::Null)
    }

    /// Sends a batch and waits for its outcome: one [`Outcome`] per row, in order.
    fn deliver<'a>(
        &'a self,
        conn: &'a Connection,
        rows: &'a [MappedRow],
        jobs: &'a dyn JobSink,
    ) -> BoxFuture<'a, Result<Vec<Outcome>, BatchError>>;

    /// Finishes a job an earlier run created for `rows` (found in the ledger with the last
    /// `status` recorded for it): continues it to its end and reads the rows' outcomes,
    /// without sending them again.
    fn resume<'a>(
        &'a self,
        conn: &'a Connection,
        job: &'a ResumeJob,
        rows: &'a [MappedRow],
        jobs: &'a dyn JobSink,
    ) -> BoxFuture<'a, Result<Vec<Outcome>, BatchError>>;
}

/// A failed call as a batch failure: a refusal may be one row's fault (so the batch is split),
/// refused credentials keep the rows unprocessed, anything else fails the batch.
pub(crate) fn batch_error(crm: &str, what: &str, e: crate::delivery::CallError) -> BatchError {
    use crate::delivery::CallError;
    match e {
        CallError::Rejected { status, message, .. } => {
            BatchError::Rejected(format!("{crm} refused the {what} (HTTP {status}): {message}"))
        }
        CallError::Auth { .. } => BatchError::Auth(e.to_string()),
        other => BatchError::Failed(other.to_string()),
    }
}

/// A job an earlier run recorded: its id and the last step it reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeJob {
    pub id: String,
    pub status: String,
}

/// The target for a pipeline.
pub fn build(pipeline: &PipelineSettings) -> Arc<dyn Target> {
    match &pipeline.target {
        TargetSpec::RepslyClients => Arc::new(repsly::RepslyClients::new()),
        TargetSpec::PlannrImport { import_type, mode } => {
            let fields = pipeline.fields.iter().map(|f| f.target.clone()).collect();
            Arc::new(plannr_import::PlannrImport::new(
                pipeline.target.clone(),
                import_type.clone(),
                mode.clone(),
                fields,
            ))
        }
        TargetSpec::PlannrContactDetails => Arc::new(plannr_contacts::ContactDetails::new()),
    }
}
