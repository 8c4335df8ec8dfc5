//! Delivers one batch through a target and isolates a bad row when the CRM refuses the whole.

use futures::future::BoxFuture;
use futures::FutureExt;

use super::Connection;
use crate::row::{Failure, Outcome, Stage};
use crate::targets::{BatchError, JobSink, MappedRow, ResumeJob, Target};

/// Sends `rows`; every row gets exactly one outcome, in order. A batch the CRM rejects as a
/// whole is halved until the rejected row stands alone, so one bad row never sinks the rest.
pub fn deliver<'a>(
    target: &'a dyn Target,
    conn: &'a Connection,
    rows: &'a [MappedRow],
    jobs: &'a dyn JobSink,
) -> BoxFuture<'a, Vec<Outcome>> {
    async move {
        match target.deliver(conn, rows, jobs).await {
            Ok(outcomes) if outcomes.len() == rows.len() => outcomes,
            Ok(outcomes) => fail_all(
                rows.len(),
                Stage::Remote,
                &format!("the CRM answered for {} of {} rows", outcomes.len(), rows.len()),
            ),
            Err(BatchError::Rejected(msg)) if rows.len() > 1 => {
                tracing::info!(connection = conn.name(), rows = rows.len(), reason = %msg, "batch refused as a whole; splitting it to isolate the row");
                let (left, right) = rows.split_at(rows.len() / 2);
                let mut out = deliver(target, conn, left, jobs).await;
                out.extend(deliver(target, conn, right, jobs).await);
                out
            }
            Err(BatchError::Rejected(msg)) | Err(BatchError::Failed(msg)) => fail_all(rows.len(), Stage::Remote, &msg),
            Err(BatchError::Auth(msg)) => fail_all(rows.len(), Stage::Unprocessed, &msg),
        }
    }
    .boxed()
}

fn fail_all(n: usize, stage: Stage, message: &str) -> Vec<Outcome> {
    (0..n).map(|_| Outcome::Failed(Failure::new(stage, None, message))).collect()
}

/// Finishes a job an earlier run created (from the ledger) without resending its rows; if the
/// CRM no longer knows the job, the rows are sent again (an upsert, so harmless).
pub fn resume<'a>(
    target: &'a dyn Target,
    conn: &'a Connection,
    job: &'a ResumeJob,
    rows: &'a [MappedRow],
    jobs: &'a dyn JobSink,
) -> BoxFuture<'a, Vec<Outcome>> {
    async move {
        let job_id = job.id.as_str();
        match target.resume(conn, job, rows, jobs).await {
            Ok(outcomes) if outcomes.len() == rows.len() => outcomes,
            Ok(_) | Err(BatchError::Rejected(_)) => {
                tracing::warn!(
                    connection = conn.name(),
                    job = job_id,
                    "the CRM no longer knows this job; sending its rows again"
                );
                deliver(target, conn, rows, jobs).await
            }
            Err(BatchError::Failed(msg)) => fail_all(rows.len(), Stage::Remote, &msg),
            Err(BatchError::Auth(msg)) => fail_all(rows.len(), Stage::Unprocessed, &msg),
        }
    }
    .boxed()
}
