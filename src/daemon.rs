//! The daemon: every pipeline's source watched, files processed concurrently within limits,
//! progress kept in the ledger. SIGHUP swaps in a new config without dropping in-flight files;
//! shutdown stops claiming, lets in-flight batches finish within `shutdown_timeout`, then
//! leaves what is left to resume from the ledger at the next start.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{PipelineSettings, Settings, SourceSettings};
use crate::delivery::Connection;
use crate::ledger::{Claim, FileState, Ledger};
use crate::pipeline::{process_file, unique_stem, FileContext, LedgerFile, Progress};
use crate::report::{self, atomic, Summary};
use crate::source::{identity, Claimed, Disposition, FolderSource};
use crate::targets;

/// How long aborted files get to write their last checkpoint after the deadline.
const ABORT_GRACE: Duration = Duration::from_secs(5);

/// What drives a running daemon from outside: shutdown, and config reloads (SIGHUP).
pub struct Control {
    pub shutdown: CancellationToken,
    pub reload: Option<mpsc::Receiver<()>>,
}

type Connections = BTreeMap<String, Arc<Connection>>;

/// One [`Connection`] per configured connection, shared by the pipelines naming it. A
/// connection whose settings did not change keeps its limiter and in-flight slots.
pub fn connections(settings: &Settings) -> anyhow::Result<Connections> {
    reuse_connections(settings, &BTreeMap::new())
}

fn reuse_connections(settings: &Settings, old: &Connections) -> anyhow::Result<Connections> {
    settings
        .connections
        .iter()
        .map(|(name, c)| {
            if let Some(existing) = old.get(name).filter(|o| *o.settings == **c) {
                return Ok((name.clone(), existing.clone()));
            }
            let conn = Connection::new(c.clone())
                .with_context(|| format!("connection `{name}`: cannot build its HTTP client"))?;
            Ok((name.clone(), Arc::new(conn)))
        })
        .collect()
}

/// Runs until `shutdown` is cancelled, then drains.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    run_with(settings, Control { shutdown, reload: None }).await
}

/// Shared by every generation of watchers: the ledger, limits, shutdown tokens, file tasks.
#[derive(Clone)]
struct Shared {
    ledger: Arc<Ledger>,
    files: TaskTracker,
    global: Arc<Semaphore>,
    stop: CancellationToken,
    abort: CancellationToken,
}

/// The watchers of one config; cancelled on reload, while their files finish.
struct Generation {
    cancel: CancellationToken,
    connections: Connections,
}

pub async fn run_with(mut settings: Settings, mut control: Control) -> anyhow::Result<()> {
    let ledger = Arc::new(Ledger::open(&settings.state_dir).context("cannot open the ledger")?);
    let shared = Shared {
        ledger: ledger.clone(),
        files: TaskTracker::new(),
        global: Arc::new(Semaphore::new(settings.max_files_in_flight)),
        stop: CancellationToken::new(),
        abort: CancellationToken::new(),
    };
    let mut generation = start(&settings, &shared, &BTreeMap::new(), true)?;
    loop {
        let reload = async {
            match control.reload.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = control.shutdown.cancelled() => break,
            Some(()) = reload => {
                match crate::config::load(&settings.path) {
                    Ok(new) => match start(&new, &shared, &generation.connections, false) {
                        Ok(next) => {
                            generation.cancel.cancel();
                            generation = next;
                            settings = new;
                            tracing::info!(config = %settings.path.display(), pipelines = settings.pipelines.len(), "config reloaded");
                        }
                        Err(e) => tracing::error!(error = %format!("{e:#}"), "config reload refused; the old config keeps running"),
                    },
                    Err(e) => tracing::error!(error = %e.to_string().replace('\n', "; "), "config reload refused; the old config keeps running"),
                }
            }
        }
    }
    tracing::info!(timeout = ?settings.shutdown_timeout, "shutting down: no new files are claimed; finishing the batches in flight");
    generation.cancel.cancel();
    shared.stop.cancel();
    shared.files.close();
    if tokio::time::timeout(settings.shutdown_timeout, shared.files.wait()).await.is_err() {
        tracing::warn!("shutdown_timeout reached: batches still in flight are left to resume at the next start");
        shared.abort.cancel();
        let _ = tokio::time::timeout(ABORT_GRACE, shared.files.wait()).await;
    }
    if let Err(e) = ledger.sync().await {
        tracing::error!(error = %e, "the ledger's last writes failed");
    }
    ledger.close();
    Ok(())
}

/// Starts watchers and dispatchers for every pipeline of `settings`.
fn start(
    settings: &Settings,
    shared: &Shared,
    old: &Connections,
    first: bool,
) -> anyhow::Result<Generation> {
    let connections = reuse_connections(settings, old)?;
    let cancel = CancellationToken::new();
    let mut ready = Vec::new();
    for pipeline in &settings.pipelines {
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
                let ctx = FileContext {
                    pipeline: pipeline.clone(),
                    target: targets::build(pipeline),
                    connection: connections.get(&pipeline.connection.name).cloned(),
                    report_dir: pipeline
                        .default_report_dir()
                        .unwrap_or_else(|| f.path.join("reports")),
                    stop: shared.stop.clone(),
                    abort: shared.abort.clone(),
                };
                ready.push((pipeline.clone(), source, ctx));
            }
            SourceSettings::S3(s) => {
                tracing::error!(pipeline = %pipeline.name, bucket = %s.bucket, "the S3 source is not available in this build; this pipeline does not run");
            }
        }
    }
    for (pipeline, source, ctx) in ready {
        tracing::info!(pipeline = %pipeline.name, source = %source.settings.path.display(), target = %pipeline.target.name(), connection = %pipeline.connection.name, "watching");
        let (tx, rx) = mpsc::channel::<Claimed>(1);
        let slots = Arc::new(Semaphore::new(pipeline.files_in_flight));
        tokio::spawn(source.clone().watch(slots, tx, cancel.clone(), first));
        tokio::spawn(dispatch(pipeline, source, ctx, rx, shared.clone()));
    }
    Ok(Generation { cancel, connections })
}

/// Takes claimed files and processes each on its own task, within the global file limit.
async fn dispatch(
    pipeline: Arc<PipelineSettings>,
    source: FolderSource,
    ctx: FileContext,
    mut rx: mpsc::Receiver<Claimed>,
    shared: Shared,
) {
    while let Some(claimed) = rx.recv().await {
        let Ok(global_permit) = shared.global.clone().acquire_owned().await else { return };
        let (ctx, source, shared2) = (ctx.clone(), source.clone(), shared.clone());
        let name = pipeline.name.clone();
        shared.files.spawn(async move {
            let _held = global_permit;
            handle(ctx, source, claimed, shared2).await;
            tracing::debug!(pipeline = %name, "file slot released");
        });
    }
}

/// One claimed file: identity, ledger claim, processing, filing away.
async fn handle(ctx: FileContext, source: FolderSource, claimed: Claimed, shared: Shared) {
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
    let lf = match shared.ledger.claim(id, stem.clone()).await {
        Ok(Claim::Finished { finished_at, .. }) => {
            tracing::info!(pipeline = %pipeline, file = %name, finished_at = %finished_at, "already imported (same name, size and content): moving it to processed/ without sending anything");
            file_away(&source, &path, &name, Disposition::Processed);
            return;
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
            tracing::error!(pipeline = %pipeline, file = %name, error = %e, "the ledger cannot record this file; it stays in .processing/ until the next start");
            return;
        }
    };
    let (file_id, report_dir) = (lf.file_id, ctx.report_dir.clone());
    let task = {
        let (ctx, path, name) = (ctx.clone(), path.clone(), name.clone());
        tokio::spawn(async move {
            process_file(&ctx, &path, &name, Arc::new(Progress::default()), Some(lf)).await
        })
    };
    match task.await {
        Ok(Ok(result)) if result.interrupted => {
            tracing::info!(pipeline = %pipeline, file = %name, rows = result.summary.rows.read, "stopped for shutdown; resumes at the next start");
        }
        Ok(Ok(result)) => {
            let how = if result.file_error.is_some() {
                Disposition::Failed
            } else {
                Disposition::Processed
            };
            let state =
                if how == Disposition::Failed { FileState::Failed } else { FileState::Finished };
            if let Err(e) = shared.ledger.finish(file_id, state).await {
                tracing::error!(pipeline = %pipeline, file = %name, error = %e, "cannot record the file as finished; it stays in .processing/");
                return;
            }
            let rows = &result.summary.rows;
            let to = file_away(&source, &path, &name, how);
            tracing::info!(
                pipeline = %pipeline, file = %name, read = rows.read, accepted = rows.accepted, failed = rows.failed,
                unprocessed = rows.unprocessed, moved_to = %to.map(|p| p.display().to_string()).unwrap_or_default(),
                summary = %result.summary_path.display(), error = result.file_error.as_deref().unwrap_or(""), "file done"
            );
        }
        Ok(Err(e)) => {
            tracing::error!(pipeline = %pipeline, file = %name, error = %e, "could not write this file's report; it stays in .processing/ and is retried at the next start");
        }
        Err(e) => {
            // A bug in processing this file: it must not stop the daemon or the other files.
            let why = format!("internal error while processing the file: {e}");
            tracing::error!(pipeline = %pipeline, file = %name, error = %why, "file failed");
            write_failure_summary(&ctx.pipeline, &report_dir, &name, &why);
            let _ = shared.ledger.finish(file_id, FileState::Failed).await;
            file_away(&source, &path, &name, Disposition::Failed);
        }
    }
}

fn file_away(
    source: &FolderSource,
    path: &std::path::Path,
    name: &str,
    how: Disposition,
) -> Option<PathBuf> {
    match source.finish(path, name, how) {
        Ok(to) => Some(to),
        Err(e) => {
            tracing::error!(file = %name, error = %e, "could not move the file out of .processing/");
            None
        }
    }
}

fn write_failure_summary(
    pipeline: &PipelineSettings,
    dir: &std::path::Path,
    name: &str,
    why: &str,
) {
    let stem = unique_stem(dir, &report::stem_of(name));
    let (_, path) = report::report_names(dir, &stem);
    let now = report::now_rfc3339();
    let summary = Summary {
        file: name.to_string(),
        pipeline: pipeline.name.clone(),
        target: pipeline.target.name(),
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
