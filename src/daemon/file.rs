//! One file through the ledger and the pipeline, the same for every source: claim its
//! identity, process (resuming if the ledger says so), and say what became of it.

use std::sync::Arc;

use crate::health::is_disk_error;
use crate::ledger::{Claim, Identity, LedgerError, Resume};
use crate::pipeline::{process_file, FileContext, FileResult, Input, LedgerFile, Progress};
use crate::report::{self, atomic, Summary};

use super::finished::{self, Ended};
use super::Shared;

/// Starts in a row without the watermark moving before a file is set aside: a file that
/// stops the daemon each time (a crash) must not stop it for ever.
pub const MAX_STARTS: u32 = 3;

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
    /// A write failed for want of disk (reports or ledger): try again once space is back.
    Blocked { what: String, error: String },
    /// The file cannot be finished (a write failed for another reason than the disk, or it
    /// was started too often without progress): it goes to `failed/`; a summary says why.
    SetAside { file_id: Option<i64>, why: String },
}

/// Where and how a file runs: the source's name for it and what the ledger knows it by.
pub struct FileRun<'a> {
    pub ctx: &'a FileContext,
    pub input: Input,
    pub name: &'a str,
    pub identity: Identity,
    pub stem: String,
    /// It was in `.processing/` at start-up: the ledger should know it.
    pub left_by_earlier_run: bool,
}

/// Runs the file; while its connection holds (refused credentials) the file waits at its
/// checkpoint, claimed, and goes on by itself once they are accepted.
pub async fn run(file: FileRun<'_>, shared: &Shared) -> Ran {
    loop {
        let again = FileRun {
            input: file.input.clone(),
            identity: file.identity.clone(),
            stem: file.stem.clone(),
            ..file
        };
        let claim = shared.ledger.claim(file.identity.clone(), file.stem.clone()).await;
        if let Some(ran) = run_claimed(again, claim, shared).await {
            return ran;
        }
        if !until_accepted(file.ctx, file.name).await {
            return Ran::Interrupted;
        }
    }
}

/// Waits while the file's connection holds; false when the file stops first (or it has no
/// connection to wait for).
pub async fn until_accepted(ctx: &FileContext, name: &str) -> bool {
    let Some(conn) = &ctx.connection else { return false };
    tracing::warn!(pipeline = %ctx.pipeline.name, file = %name, connection = conn.name(), "the connection's credentials were refused: the file waits at its checkpoint until they are accepted");
    tokio::select! {
        _ = ctx.stop.cancelled() => false,
        _ = conn.until_accepted() => true,
    }
}

/// One run of a file the ledger was asked about (`claim` is its answer); `None` when it
/// stopped because its connection holds.
pub async fn run_claimed(
    file: FileRun<'_>,
    claim: Result<Claim, LedgerError>,
    shared: &Shared,
) -> Option<Ran> {
    let FileRun { ctx, input, name, identity: _, stem, left_by_earlier_run } = file;
    let pipeline = ctx.pipeline.name.clone();
    let lf = match claimed(ctx, shared, name, claim, stem, left_by_earlier_run) {
        Ok(lf) => lf,
        Err(ran) => return Some(ran),
    };
    let file_id = lf.file_id;
    let progress = Arc::new(Progress::default());
    let _on_board = crate::ops::status::get().register(&pipeline, name, progress.clone());
    let metrics = crate::metrics::get();
    metrics.file_in_flight(&pipeline, 1);
    let task = {
        let (ctx, name) = (ctx.clone(), name.to_string());
        tokio::spawn(async move { process_file(&ctx, &input, &name, progress, Some(lf)).await })
    };
    let joined = task.await;
    metrics.file_in_flight(&pipeline, -1);
    Some(match joined {
        Ok(Ok(result)) if result.interrupted => {
            // Stopped in good order (shutdown, a lost lease, a source that broke off, a
            // connection that holds): not a crash, so it never counts towards setting the
            // file aside.
            shared.ledger.stopped(file_id);
            let stopping = ctx.stop.is_cancelled() || ctx.abort.is_cancelled();
            if result.held && !stopping {
                return None;
            }
            Ran::Interrupted
        }
        Ok(Ok(result)) => Ran::Finished { result: Box::new(result), file_id },
        Ok(Err(e)) if is_disk_error(&e) => {
            // Waiting for disk space is no crash: the next try must not count towards
            // setting the file aside.
            shared.ledger.stopped(file_id);
            Ran::Blocked { what: ctx.report_dir.display().to_string(), error: e.to_string() }
        }
        Ok(Err(e)) if ctx.stop.is_cancelled() || ctx.abort.is_cancelled() => {
            // Stopped while its last checkpoint was written (shutdown, or an S3 lease lost:
            // its checkpoint could not reach the lease): resumed later, no summary from here.
            tracing::info!(pipeline = %pipeline, file = %name, error = %e, "stopped while its checkpoint was written");
            shared.ledger.stopped(file_id);
            Ran::Interrupted
        }
        Ok(Err(e)) => {
            let why =
                format!("its report could not be written in {}: {e}", ctx.report_dir.display());
            write_failure_summary(ctx, shared, Ended::set_aside(Some(file_id)), name, &why, None);
            Ran::SetAside { file_id: Some(file_id), why }
        }
        Err(e) => {
            // A bug in processing this file: it must not stop the daemon or the other files.
            let why = format!("internal error while processing the file: {e}");
            tracing::error!(pipeline = %pipeline, file = %name, error = %why, "file failed");
            write_failure_summary(ctx, shared, Ended::failed(Some(file_id)), name, &why, None);
            Ran::Crashed { file_id }
        }
    })
}

/// The file's place in the ledger by its answer `claim`: new, resumed, or (`Err`) nothing to
/// run (already imported, set aside, the ledger unwritable).
fn claimed(
    ctx: &FileContext,
    shared: &Shared,
    name: &str,
    claim: Result<Claim, LedgerError>,
    stem: String,
    left_by_earlier_run: bool,
) -> Result<LedgerFile, Ran> {
    let pipeline = &ctx.pipeline.name;
    match claim {
        Ok(Claim::Finished { finished_at, .. }) => {
            crate::metrics::get().file(pipeline, "already_imported");
            Err(Ran::AlreadyDone { finished_at })
        }
        Ok(Claim::Fresh { file_id, started_at }) => {
            if left_by_earlier_run {
                tracing::warn!(pipeline = %pipeline, file = %name, "an earlier run claimed this file but the ledger does not know it (was the state_dir deleted or replaced?); it is sent again from its first row");
            }
            let ledger = shared.ledger.clone();
            Ok(LedgerFile { ledger, file_id, report_stem: stem, started_at, resume: None })
        }
        Ok(Claim::Resume(r)) if r.attempts > MAX_STARTS => Err(set_aside(ctx, shared, name, &r)),
        Ok(Claim::Resume(r)) => {
            tracing::info!(pipeline = %pipeline, file = %name, rows_settled = r.checkpoint.watermark, jobs = r.jobs.len(), "resuming where an earlier run stopped");
            Ok(LedgerFile {
                ledger: shared.ledger.clone(),
                file_id: r.file_id,
                report_stem: r.report_stem.clone(),
                started_at: r.started_at.clone(),
                resume: Some(r),
            })
        }
        Err(e) => Err(Ran::Blocked {
            what: shared.ledger.path.display().to_string(),
            error: e.to_string(),
        }),
    }
}

/// A file started too often without progress: whatever report it has is published, and a
/// summary says why it was set aside.
fn set_aside(ctx: &FileContext, shared: &Shared, name: &str, r: &Resume) -> Ran {
    let why = format!(
        "processing stopped {} times in a row without progress (the daemon was killed or crashed while on this file); it was set aside so the daemon can go on. Rows before line {line} are counted in this summary; rows from line {line} on are not: some of them may have reached the CRM ({} batch(es) were in flight), so check them there before dropping the file again",
        r.attempts - 1,
        r.jobs.len() + r.pending.len(),
        line = r.checkpoint.watermark + 2
    );
    tracing::error!(pipeline = %ctx.pipeline.name, file = %name, "{why}");
    let (errors, _) = report::report_names(&ctx.report_dir, &r.report_stem);
    let partial = report::partial_name(&ctx.report_dir, &r.report_stem);
    let published = r.checkpoint.errors_bytes > 0 && std::fs::rename(&partial, &errors).is_ok()
        || errors.exists();
    let counts = (r.checkpoint.counts.clone(), r.checkpoint.failed_by_stage.clone());
    let report = published.then(|| report::file_name(&errors));
    let known = Some((counts, report, r.report_stem.as_str()));
    write_failure_summary(ctx, shared, Ended::set_aside(Some(r.file_id)), name, &why, known);
    Ran::SetAside { file_id: Some(r.file_id), why }
}

type KnownCounts<'a> =
    ((report::RowCounts, std::collections::BTreeMap<String, u64>), Option<String>, &'a str);

/// A summary for a file that did not run to its end: why, and what is known of its rows;
/// recorded in the history as `ended`.
pub fn write_failure_summary(
    ctx: &FileContext,
    shared: &Shared,
    ended: Ended,
    name: &str,
    why: &str,
    known: Option<KnownCounts<'_>>,
) {
    let ((rows, failed_by_stage), report, stem) = match known {
        Some((counts, report, stem)) => (counts, report, stem.to_string()),
        None => (
            Default::default(),
            None,
            crate::pipeline::unique_stem(&ctx.report_dir, &report::stem_of(name)),
        ),
    };
    let (_, path) = report::report_names(&ctx.report_dir, &stem);
    let now = report::now_rfc3339();
    let summary = Summary {
        file: name.to_string(),
        pipeline: ctx.pipeline.name.clone(),
        target: ctx.pipeline.target.name(),
        started_at: now.clone(),
        finished_at: now,
        rows,
        lines: Default::default(),
        failed_by_stage,
        remote_jobs: Default::default(),
        report,
        warnings: None,
        error: Some(why.to_string()),
        seats: None,
    };
    if let Ok(json) = serde_json::to_vec_pretty(&summary) {
        if let Err(e) = atomic::write_private(&path, &json, ctx.pipeline.report_mode) {
            tracing::error!(file = %name, error = %e, "cannot write the summary");
        }
    }
    finished::record(shared, ctx, &summary, &path, ended);
}

/// Logs a finished file the same way for every source, counts it, and records it in the
/// history: WARN when it failed as a whole or some rows did not arrive, INFO when every row did.
pub fn log_done(
    ctx: &FileContext,
    shared: &Shared,
    file_id: i64,
    name: &str,
    result: &FileResult,
    moved_to: &str,
) {
    let outcome = if result.file_error.is_some() { "failed" } else { "processed" };
    crate::metrics::get().file(&ctx.pipeline.name, outcome);
    finished::ran(shared, ctx, file_id, result);
    let rows = &result.summary.rows;
    let summary = result.summary_path.display().to_string();
    let error = result.file_error.as_deref().unwrap_or("");
    if result.file_error.is_some() {
        tracing::warn!(pipeline = %ctx.pipeline.name, file = %name, read = rows.read, accepted = rows.accepted, failed = rows.failed, unprocessed = rows.unprocessed, moved_to, summary, error, "file failed as a whole");
    } else if rows.accepted < rows.read {
        tracing::warn!(pipeline = %ctx.pipeline.name, file = %name, read = rows.read, accepted = rows.accepted, failed = rows.failed, unprocessed = rows.unprocessed, moved_to, summary, "file done; some rows did not arrive (see the errors report)");
    } else {
        tracing::info!(pipeline = %ctx.pipeline.name, file = %name, read = rows.read, accepted = rows.accepted, moved_to, summary, "file done");
    }
}
