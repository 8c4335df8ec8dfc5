//! One file through the ledger and the pipeline, the same for every source: claim its
//! identity, process (resuming if the ledger says so), and say what became of it.

use std::sync::Arc;

use crate::ledger::{Claim, Identity};
use crate::pipeline::{process_file, FileContext, FileResult, Input, LedgerFile, Progress};
use crate::report::{self, atomic, Summary};

use super::Shared;

/// What running a file came to.
pub enum Ran {
    /// Its identity was already imported: nothing was sent.
    AlreadyDone { finished_at: String },
    /// Every row settled (or the file failed as a whole): the caller files it away.
    Finished { result: Box<FileResult>, file_id: i64 },
    /// Stopped before the end (shutdown, lost lease, broken source): resumable.
    Interrupted,
    /// A bug stopped this file; a summary saying so was written.
    Crashed { file_id: i64 },
    /// The ledger could not record it; nothing was sent.
    NotRecorded,
}

pub async fn run(
    ctx: &FileContext,
    input: Input,
    name: &str,
    identity: Identity,
    stem: String,
    shared: &Shared,
) -> Ran {
    let pipeline = ctx.pipeline.name.clone();
    let lf = match shared.ledger.claim(identity, stem.clone()).await {
        Ok(Claim::Finished { finished_at, .. }) => {
            crate::ops::metrics::get().file(&pipeline, "already_imported");
            return Ran::AlreadyDone { finished_at };
        }
        Ok(Claim::Fresh { file_id, started_at }) => LedgerFile {
            ledger: shared.ledger.clone(),
            file_id,
            report_stem: stem,
            started_at,
            resume: None,
        },
        Ok(Claim::Resume(r)) => {
            tracing::info!(pipeline = %pipeline, file = %name, rows_settled = r.checkpoint.watermark, jobs = r.jobs.len(), "resuming where an earlier run stopped");
            LedgerFile {
                ledger: shared.ledger.clone(),
                file_id: r.file_id,
                report_stem: r.report_stem.clone(),
                started_at: r.started_at.clone(),
                resume: Some(r),
            }
        }
        Err(e) => {
            tracing::error!(pipeline = %pipeline, file = %name, error = %e, "the ledger cannot record this file; it is left for the next start");
            return Ran::NotRecorded;
        }
    };
    let file_id = lf.file_id;
    let progress = Arc::new(Progress::default());
    let _on_board = crate::ops::status::get().register(&pipeline, name, progress.clone());
    let metrics = crate::ops::metrics::get();
    metrics.file_in_flight(&pipeline, 1);
    let task = {
        let (ctx, name) = (ctx.clone(), name.to_string());
        tokio::spawn(async move { process_file(&ctx, &input, &name, progress, Some(lf)).await })
    };
    let joined = task.await;
    metrics.file_in_flight(&pipeline, -1);
    match joined {
        Ok(Ok(result)) if result.interrupted => Ran::Interrupted,
        Ok(Ok(result)) => Ran::Finished { result: Box::new(result), file_id },
        Ok(Err(e)) => {
            tracing::error!(pipeline = %pipeline, file = %name, error = %e, "could not write this file's report; it is left for the next start");
            Ran::Interrupted
        }
        Err(e) => {
            // A bug in processing this file: it must not stop the daemon or the other files.
            let why = format!("internal error while processing the file: {e}");
            tracing::error!(pipeline = %pipeline, file = %name, error = %why, "file failed");
            write_failure_summary(ctx, name, &why);
            Ran::Crashed { file_id }
        }
    }
}

fn write_failure_summary(ctx: &FileContext, name: &str, why: &str) {
    let stem = crate::pipeline::unique_stem(&ctx.report_dir, &report::stem_of(name));
    let (_, path) = report::report_names(&ctx.report_dir, &stem);
    let now = report::now_rfc3339();
    let summary = Summary {
        file: name.to_string(),
        pipeline: ctx.pipeline.name.clone(),
        target: ctx.pipeline.target.name(),
        started_at: now.clone(),
        finished_at: now,
        rows: Default::default(),
        failed_by_stage: Default::default(),
        remote_jobs: Vec::new(),
        report: None,
        error: Some(why.to_string()),
    };
    if let Ok(json) = serde_json::to_vec_pretty(&summary) {
        let _ = atomic::write_private(&path, &json);
    }
}

/// Logs a finished file the same way for every source, and counts it.
pub fn log_done(ctx: &FileContext, name: &str, result: &FileResult, moved_to: &str) {
    let outcome = if result.file_error.is_some() { "failed" } else { "processed" };
    crate::ops::metrics::get().file(&ctx.pipeline.name, outcome);
    crate::ops::status::get().finished(result.summary.clone());
    let rows = &result.summary.rows;
    tracing::info!(
        pipeline = %ctx.pipeline.name, file = %name, read = rows.read, accepted = rows.accepted, failed = rows.failed,
        unprocessed = rows.unprocessed, moved_to, summary = %result.summary_path.display(),
        error = result.file_error.as_deref().unwrap_or(""), "file done"
    );
}
