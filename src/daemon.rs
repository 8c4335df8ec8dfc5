//! The daemon: every pipeline's source watched, files processed concurrently within limits,
//! until the shutdown token fires; then claiming stops and in-flight files get
//! `shutdown_timeout` to finish.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{PipelineSettings, Settings, SourceSettings};
use crate::delivery::Connection;
use crate::pipeline::{process_file, FileContext, Progress};
use crate::source::{Claimed, Disposition, FolderSource};
use crate::targets;

/// One [`Connection`] per configured connection, shared by the pipelines naming it.
pub fn connections(settings: &Settings) -> anyhow::Result<BTreeMap<String, Arc<Connection>>> {
    settings
        .connections
        .iter()
        .map(|(name, c)| {
            let conn = Connection::new(c.clone())
                .with_context(|| format!("connection `{name}`: cannot build its HTTP client"))?;
            Ok((name.clone(), Arc::new(conn)))
        })
        .collect()
}

/// Runs until `shutdown` is cancelled, then drains.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let connections = connections(&settings)?;
    let tracker = TaskTracker::new();
    let global = Arc::new(Semaphore::new(settings.max_files_in_flight));
    let mut sources = Vec::new();
    for pipeline in &settings.pipelines {
        let conn = connections.get(&pipeline.connection.name).cloned();
        let ctx_target = targets::build(&pipeline.target);
        match &pipeline.source {
            SourceSettings::Folder(f) => {
                let source = FolderSource::new(f.clone());
                source.prepare().with_context(|| {
                    format!(
                        "pipeline `{}`: cannot prepare folder {}",
                        pipeline.name,
                        f.path.display()
                    )
                })?;
                let report_dir =
                    pipeline.default_report_dir().unwrap_or_else(|| f.path.join("reports"));
                let ctx = FileContext {
                    pipeline: pipeline.clone(),
                    target: ctx_target,
                    connection: conn,
                    report_dir,
                };
                sources.push((pipeline.clone(), source, ctx));
            }
            SourceSettings::S3(s) => {
                tracing::error!(pipeline = %pipeline.name, bucket = %s.bucket, "the S3 source is not available in this build; this pipeline does not run");
            }
        }
    }
    for (pipeline, source, ctx) in sources {
        tracing::info!(pipeline = %pipeline.name, source = %source.settings.path.display(), target = %pipeline.target.name(), connection = %pipeline.connection.name, "watching");
        let (tx, rx) = mpsc::channel::<Claimed>(1);
        let slots = Arc::new(Semaphore::new(pipeline.files_in_flight));
        tracker.spawn(source.clone().watch(slots, tx, shutdown.clone()));
        tracker.spawn(dispatch(pipeline, source, ctx, rx, global.clone(), tracker.clone()));
    }
    shutdown.cancelled().await;
    tracing::info!(timeout = ?settings.shutdown_timeout, "shutting down: no new files are claimed; finishing the ones in flight");
    tracker.close();
    if tokio::time::timeout(settings.shutdown_timeout, tracker.wait()).await.is_err() {
        tracing::warn!("shutdown_timeout reached with files still in flight; they stay in .processing/ and are processed again at the next start");
    }
    Ok(())
}

/// Takes claimed files and processes each on its own task, within the global file limit.
async fn dispatch(
    pipeline: Arc<PipelineSettings>,
    source: FolderSource,
    ctx: FileContext,
    mut rx: mpsc::Receiver<Claimed>,
    global: Arc<Semaphore>,
    tracker: TaskTracker,
) {
    while let Some(claimed) = rx.recv().await {
        let Ok(global_permit) = global.clone().acquire_owned().await else { return };
        let ctx = ctx.clone();
        let source = source.clone();
        let name = pipeline.name.clone();
        tracker.spawn(async move {
            let _held = (global_permit, &claimed.permit);
            let outcome = tokio::spawn(handle(ctx, source, claimed.path.clone(), claimed.name.clone())).await;
            if let Err(e) = outcome {
                tracing::error!(pipeline = %name, file = %claimed.name, error = %e, "processing this file stopped unexpectedly; it stays in .processing/");
            }
        });
    }
}

async fn handle(ctx: FileContext, source: FolderSource, path: std::path::PathBuf, name: String) {
    let progress = Arc::new(Progress::default());
    let pipeline = ctx.pipeline.name.clone();
    match process_file(&ctx, &path, &name, progress).await {
        Ok(result) => {
            let how = if result.file_error.is_some() {
                Disposition::Failed
            } else {
                Disposition::Processed
            };
            let rows = &result.summary.rows;
            match source.finish(&path, &name, how) {
                Ok(to) => tracing::info!(
                    pipeline = %pipeline, file = %name, read = rows.read, accepted = rows.accepted, failed = rows.failed,
                    unprocessed = rows.unprocessed, moved_to = %to.display(), summary = %result.summary_path.display(),
                    error = result.file_error.as_deref().unwrap_or(""), "file done"
                ),
                Err(e) => {
                    tracing::error!(pipeline = %pipeline, file = %name, error = %e, "file done but could not be moved out of .processing/")
                }
            }
        }
        Err(e) => {
            tracing::error!(pipeline = %pipeline, file = %name, error = %e, "could not write this file's report; it stays in .processing/ and is retried at the next start");
        }
    }
}
