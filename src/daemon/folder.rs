//! A claimed local file: identity, the shared file runner, then `processed/` or `failed/`.

use std::path::Path;

use super::file::{self, Ran};
use super::Shared;
use crate::ledger::FileState;
use crate::pipeline::{unique_stem, FileContext, Input};
use crate::report;
use crate::source::{identity, Claimed, Disposition, FolderSource};

pub async fn handle(ctx: FileContext, source: FolderSource, claimed: Claimed, shared: Shared) {
    let Claimed { path, name, permit } = claimed;
    let _permit = permit;
    let pipeline = ctx.pipeline.name.clone();
    let id = match identity::of_file(&pipeline, &name, &path).await {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(pipeline = %pipeline, file = %name, error = %e, "cannot read the file to identify it");
            file_away(&source, &path, &name, Disposition::Failed);
            return;
        }
    };
    let stem = unique_stem(&ctx.report_dir, &report::stem_of(&name));
    match file::run(&ctx, Input::Local(path.clone()), &name, id, stem, &shared).await {
        Ran::AlreadyDone { finished_at } => {
            tracing::info!(pipeline = %pipeline, file = %name, finished_at = %finished_at, "already imported (same name, size and content): moving it to processed/ without sending anything");
            file_away(&source, &path, &name, Disposition::Processed);
        }
        Ran::Finished { result, file_id } => {
            let failed = result.file_error.is_some();
            let state = if failed { FileState::Failed } else { FileState::Finished };
            if let Err(e) = shared.ledger.finish(file_id, state).await {
                tracing::error!(pipeline = %pipeline, file = %name, error = %e, "cannot record the file as finished; it stays in .processing/");
                return;
            }
            let how = if failed { Disposition::Failed } else { Disposition::Processed };
            let to = file_away(&source, &path, &name, how)
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            file::log_done(&ctx, &name, &result, &to);
        }
        Ran::Interrupted => {
            tracing::info!(pipeline = %pipeline, file = %name, "stopped before the end; resumes at the next start")
        }
        Ran::Crashed { file_id } => {
            let _ = shared.ledger.finish(file_id, FileState::Failed).await;
            file_away(&source, &path, &name, Disposition::Failed);
        }
        Ran::NotRecorded => {}
    }
}

fn file_away(
    source: &FolderSource,
    path: &Path,
    name: &str,
    how: Disposition,
) -> Option<std::path::PathBuf> {
    match source.finish(path, name, how) {
        Ok(to) => Some(to),
        Err(e) => {
            tracing::error!(file = %name, error = %e, "could not move the file out of .processing/");
            None
        }
    }
}
