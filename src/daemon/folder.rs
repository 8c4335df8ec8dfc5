//! A claimed local file: identity, the shared file runner, then `processed/` or `failed/`.
//! A disk that refuses writes pauses the file (and intake) until writes work again; a file
//! that cannot be finished for any other reason goes to `failed/`, never stays claimed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::file::{self, FileRun, Ran};
use super::finished::Ended;
use super::Shared;
use crate::ledger::FileState;
use crate::ops::health::is_disk_error;
use crate::pipeline::{unique_stem, FileContext, Input};
use crate::report;
use crate::source::{identity, Claimed, Disposition, FolderSource};

/// Waits between attempts at a file blocked by the disk: from the first to the last.
const BLOCKED_RETRY: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));

pub async fn handle(ctx: FileContext, source: FolderSource, claimed: Claimed, shared: Shared) {
    let Claimed { path, name, permit, left_by_earlier_run } = claimed;
    let _permit = permit;
    let pipeline = ctx.pipeline.name.clone();
    let id = match identity::of_file(&pipeline, &name, &path).await {
        Ok(id) => id,
        Err(e) => {
            tracing::warn!(pipeline = %pipeline, file = %name, error = %e, "cannot read the file to identify it");
            let why = format!("cannot read the file: {e}");
            file::write_failure_summary(&ctx, &shared, Ended::failed(None), &name, &why, None);
            file_away(&source, &path, &name, Disposition::Failed);
            return;
        }
    };
    let stem = unique_stem(&ctx.report_dir, &report::stem_of(&name));
    let mut wait = BLOCKED_RETRY.0;
    loop {
        let run = FileRun {
            ctx: &ctx,
            input: Input::Local(path.clone()),
            name: &name,
            identity: id.clone(),
            stem: stem.clone(),
            left_by_earlier_run,
        };
        let blocked = match file::run(run, &shared).await {
            Ran::Blocked { what, error } => Some((what, error)),
            ran => finish(&ctx, &source, &shared, &path, &name, ran, id.size).await.err(),
        };
        let Some((what, error)) = blocked else { return };
        shared.health.problem(&what, &error);
        tokio::select! {
            _ = ctx.stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(BLOCKED_RETRY.1);
        // Cleared optimistically: the next attempt records it again if it still fails.
        shared.health.cleared(&what);
    }
}

/// Files a run away; `Err((what, error))` when the disk refused and the file must wait.
async fn finish(
    ctx: &FileContext,
    source: &FolderSource,
    shared: &Shared,
    path: &Path,
    name: &str,
    ran: Ran,
    claimed_size: u64,
) -> Result<(), (String, String)> {
    let pipeline = &ctx.pipeline.name;
    match ran {
        Ran::AlreadyDone { finished_at } => {
            tracing::info!(pipeline = %pipeline, file = %name, finished_at = %finished_at, "already imported (same name, size and content): moving it to processed/ without sending anything");
            move_or_wait(source, path, name, Disposition::Processed).map(drop)
        }
        Ran::Finished { result, file_id } => {
            if let Some((size, hash)) = grew(path, claimed_size).await {
                shared.ledger.set_identity(file_id, size, hash).await;
            }
            let failed = result.file_error.is_some();
            let state = if failed { FileState::Failed } else { FileState::Finished };
            if let Err(e) = shared.ledger.finish(file_id, state).await {
                return Err((shared.ledger.path.display().to_string(), e.to_string()));
            }
            let how = if failed { Disposition::Failed } else { Disposition::Processed };
            let to = move_or_wait(source, path, name, how)?;
            file::log_done(ctx, shared, file_id, name, &result, &to.display().to_string());
            Ok(())
        }
        Ran::Interrupted => {
            tracing::info!(pipeline = %pipeline, file = %name, "stopped before the end; resumes at the next start");
            Ok(())
        }
        Ran::Crashed { file_id } => {
            let _ = shared.ledger.finish(file_id, FileState::Failed).await;
            move_or_wait(source, path, name, Disposition::Failed).map(drop)
        }
        Ran::SetAside { file_id: Some(file_id), why } => {
            tracing::error!(pipeline = %pipeline, file = %name, error = %why, "the file cannot be finished; it goes to failed/");
            let _ = shared.ledger.finish(file_id, FileState::Failed).await;
            move_or_wait(source, path, name, Disposition::Failed).map(drop)
        }
        Ran::SetAside { file_id: None, why } => {
            file::write_failure_summary(ctx, shared, Ended::set_aside(None), name, &why, None);
            move_or_wait(source, path, name, Disposition::Failed).map(drop)
        }
        Ran::Blocked { what, error } => Err((what, error)),
    }
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

/// Moves the file out of `.processing/`. A disk error waits and is tried again; any other
/// error sends the file to `failed/` instead, so nothing stays claimed for ever.
fn move_or_wait(
    source: &FolderSource,
    path: &Path,
    name: &str,
    how: Disposition,
) -> Result<PathBuf, (String, String)> {
    match source.finish(path, name, how) {
        Ok(to) => Ok(to),
        Err(e) if is_disk_error(&e) => {
            Err((source.settings.path.display().to_string(), e.to_string()))
        }
        Err(e) => {
            tracing::error!(file = %name, error = %e, "could not move the file; moving it to failed/ instead");
            file_away(source, path, name, Disposition::Failed)
                .ok_or_else(|| (source.settings.path.display().to_string(), e.to_string()))
        }
    }
}

fn file_away(source: &FolderSource, path: &Path, name: &str, how: Disposition) -> Option<PathBuf> {
    match source.finish(path, name, how) {
        Ok(to) => Some(to),
        Err(e) => {
            tracing::error!(file = %name, error = %e, "could not move the file out of .processing/");
            None
        }
    }
}
