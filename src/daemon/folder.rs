//! A claimed local file: identity, the shared file runner, the ledger told, then `processed/`
//! or `failed/`. A disk that refuses writes pauses the file (and intake) until writes work
//! again. A file that is done but cannot be moved (a `processed/` that is not writable) stays
//! in `.processing/` with `/readyz` naming the problem, and is moved once it can be: it is
//! never sent to `failed/` for it. A file removed from `.processing/` by hand is said once and
//! left alone.

use std::path::Path;
use std::time::Duration;

use super::file::{self, FileRun, Ran};
use super::finished::Ended;
use super::Shared;
use crate::ledger::FileState;
use crate::pipeline::{unique_stem, FileContext, FileResult, Input};
use crate::report;
use crate::source::{identity, Claimed, Disposition, Filed, FolderSource};

/// Waits between attempts at a blocked file (disk, or the move): from the first to the last.
const BLOCKED_RETRY: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));

/// Where a run left the file: to move, and how to tell of it once moved.
struct Filing {
    how: Disposition,
    done: Option<(i64, Box<FileResult>)>,
}

/// A problem that makes the file wait: what it concerns, and the error.
type Blocked = (String, String);

pub async fn handle(ctx: FileContext, source: FolderSource, claimed: Claimed, shared: Shared) {
    let Claimed { path, name, permit, left_by_earlier_run } = claimed;
    let _permit = permit;
    let pipeline = ctx.pipeline.name.clone();
    let id = match identity::of_file(&pipeline, &name, &path).await {
        Ok(id) => id,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return removed(&ctx, &name),
        Err(e) => {
            tracing::warn!(pipeline = %pipeline, file = %name, error = %e, "cannot read the file to identify it");
            let why = format!("cannot read the file: {e}");
            file::write_failure_summary(&ctx, &shared, Ended::failed(None), &name, &why, None);
            let filing = Filing { how: Disposition::Failed, done: None };
            return move_when_possible(&ctx, &source, &shared, &path, &name, filing).await;
        }
    };
    let stem = unique_stem(&ctx.report_dir, &report::stem_of(&name));
    let mut wait = BLOCKED_RETRY.0;
    let filing = loop {
        let run = FileRun {
            ctx: &ctx,
            input: Input::Local(path.clone()),
            name: &name,
            identity: id.clone(),
            stem: stem.clone(),
            left_by_earlier_run,
        };
        let blocked = match file::run(run, &shared).await {
            Ran::Blocked { what, error } => (what, error),
            ran => match record(&ctx, &shared, (&path, &name), ran, id.size).await {
                Ok(Some(filing)) => break filing,
                Ok(None) => return,
                Err(blocked) => blocked,
            },
        };
        if !wait_out(&ctx, &shared, &blocked, &mut wait).await {
            return;
        }
        // Cleared optimistically: the next attempt records it again if it still fails.
        shared.health.cleared(&blocked.0);
    };
    move_when_possible(&ctx, &source, &shared, &path, &name, filing).await;
}

/// Records in the ledger how a run ended and says where the file goes (`None`: nowhere, it
/// resumes later); `Err` when the ledger's disk refused and the run must wait.
async fn record(
    ctx: &FileContext,
    shared: &Shared,
    (path, name): (&Path, &str),
    ran: Ran,
    claimed_size: u64,
) -> Result<Option<Filing>, Blocked> {
    let pipeline = &ctx.pipeline.name;
    let failed = |done| Ok(Some(Filing { how: Disposition::Failed, done }));
    match ran {
        Ran::AlreadyDone { finished_at } => {
            tracing::info!(pipeline = %pipeline, file = %name, finished_at = %finished_at, "already imported (same name, size and content): moving it to processed/ without sending anything");
            Ok(Some(Filing { how: Disposition::Processed, done: None }))
        }
        Ran::Finished { result, file_id } => {
            if let Some((size, hash)) = grew(path, claimed_size).await {
                shared.ledger.set_identity(file_id, size, hash).await;
            }
            let is_failed = result.file_error.is_some();
            let state = if is_failed { FileState::Failed } else { FileState::Finished };
            if let Err(e) = shared.ledger.finish(file_id, state).await {
                return Err((shared.ledger.path.display().to_string(), e.to_string()));
            }
            let how = if is_failed { Disposition::Failed } else { Disposition::Processed };
            Ok(Some(Filing { how, done: Some((file_id, result)) }))
        }
        Ran::Interrupted => {
            tracing::info!(pipeline = %pipeline, file = %name, "stopped before the end; resumes at the next start");
            Ok(None)
        }
        Ran::Crashed { file_id } => {
            let _ = shared.ledger.finish(file_id, FileState::Failed).await;
            failed(None)
        }
        Ran::SetAside { file_id: Some(file_id), why } => {
            tracing::error!(pipeline = %pipeline, file = %name, error = %why, "the file cannot be finished; it goes to failed/");
            let _ = shared.ledger.finish(file_id, FileState::Failed).await;
            failed(None)
        }
        Ran::SetAside { file_id: None, why } => {
            file::write_failure_summary(ctx, shared, Ended::set_aside(None), name, &why, None);
            failed(None)
        }
        Ran::Blocked { what, error } => Err((what, error)),
    }
}

/// Moves the file out of `.processing/`, waiting (with `/readyz` naming the problem) for as
/// long as the move fails: a file that is done is never sent elsewhere for it.
async fn move_when_possible(
    ctx: &FileContext,
    source: &FolderSource,
    shared: &Shared,
    path: &Path,
    name: &str,
    filing: Filing,
) {
    let mut wait = BLOCKED_RETRY.0;
    let mut waited: Option<String> = None;
    loop {
        let blocked = match source.finish(path, name, filing.how) {
            Ok(filed) => {
                if let Some(what) = &waited {
                    shared.health.cleared(what);
                }
                return filed_away(ctx, shared, name, filed, filing.done.as_ref());
            }
            Err(e) => {
                let dir = match filing.how {
                    Disposition::Processed => crate::source::folder::PROCESSED,
                    Disposition::Failed => crate::source::folder::FAILED,
                };
                let what = source.dir(dir).display().to_string();
                (
                    what,
                    format!("cannot move {name} out of .processing/ into it (it waits there): {e}"),
                )
            }
        };
        waited = Some(blocked.0.clone());
        if !wait_out(ctx, shared, &blocked, &mut wait).await {
            return;
        }
    }
}

/// Tells what became of a file once it is moved (or found gone).
fn filed_away(
    ctx: &FileContext,
    shared: &Shared,
    name: &str,
    filed: Filed,
    done: Option<&(i64, Box<FileResult>)>,
) {
    match (filed, done) {
        (Filed::Gone, _) => removed(ctx, name),
        (Filed::To(to), Some((file_id, result))) => {
            file::log_done(ctx, shared, *file_id, name, result, &to.display().to_string());
        }
        (Filed::To(_), None) => {}
    }
}

/// The file is no longer in `.processing/` (someone removed it): said once; its ledger entry
/// is already closed, and intake goes on.
fn removed(ctx: &FileContext, name: &str) {
    tracing::warn!(pipeline = %ctx.pipeline.name, file = %name, "the file was removed from .processing/ (by hand?) before it was filed away: nothing more is done with it");
}

/// Records `blocked` (`/readyz`, intake paused) and waits, doubling `wait`; `false` when the
/// daemon stops meanwhile.
async fn wait_out(
    ctx: &FileContext,
    shared: &Shared,
    blocked: &Blocked,
    wait: &mut Duration,
) -> bool {
    shared.health.problem(&blocked.0, &blocked.1);
    let waited = tokio::select! {
        _ = ctx.stop.cancelled() => false,
        _ = tokio::time::sleep(*wait) => true,
    };
    *wait = (*wait * 2).min(BLOCKED_RETRY.1);
    waited
}

/// The file's size and hash now, when it is no longer the size it was claimed at: a writer
/// appended to it after the claim, and the rows it added were read too.
async fn grew(path: &Path, claimed_size: u64) -> Option<(u64, String)> {
    let size = std::fs::metadata(path).ok()?.len();
    if size == claimed_size {
        return None;
    }
    let id = identity::of_file("", "", path).await.ok()?;
    Some((id.size, id.hash))
}
