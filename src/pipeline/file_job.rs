//! One file end to end: open it, compile the mapping against its header, run the stages
//! (reader -> router -> window of batches -> settler), and write its summary. With a ledger,
//! the file resumes from its checkpoint and finishes the remote jobs an earlier run started.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::budget::RowBudget;
use super::input::{Input, OpenError};
use super::journal::FileJobs;
use super::progress::Progress;
use super::resume::ResumedJobs;
use super::settle::{self, Reports, SettleMsg, Settled, Settler};
use super::stages::{self, Mapping, ReadEnd, RouteEnd, Routes, MAP_TASKS};
use crate::config::{Duplicates, ImportMode, PipelineSettings, TargetSpec};
use crate::csvio::{BlockPool, CsvFile, FileError, LineCounts, BLOCK_ROWS};
use crate::delivery::{Adapter, Connection, Engine, Settle, Window, WindowEnd};
use crate::ledger::{Ledger, Resume};
use crate::mapping::Mapper;
use crate::report::{self, atomic, ErrorsFile, Summary};
use crate::targets::Target;

/// Everything a file needs besides itself.
#[derive(Clone)]
pub struct FileContext {
    pub pipeline: Arc<PipelineSettings>,
    pub target: Arc<dyn Target>,
    /// `None` is a dry run (`plan`): nothing is sent, valid rows count as accepted.
    pub connection: Option<Arc<Connection>>,
    pub report_dir: PathBuf,
    /// Fires when the daemon stops taking work: the file stops reading new rows.
    pub stop: CancellationToken,
    /// Fires at the shutdown deadline: batches still in flight are left unsettled for resume.
    pub abort: CancellationToken,
}

/// The ledger's view of this file, when the daemon runs with one.
#[derive(Clone)]
pub struct LedgerFile {
    pub ledger: Arc<Ledger>,
    pub file_id: i64,
    pub report_stem: String,
    pub started_at: String,
    pub resume: Option<Resume>,
}

/// What became of a file.
#[derive(Debug, Clone)]
pub struct FileResult {
    pub summary: Summary,
    pub summary_path: PathBuf,
    pub errors_path: Option<PathBuf>,
    pub warnings_path: Option<PathBuf>,
    /// Set when the file as a whole could not be processed: it belongs in `failed/`.
    pub file_error: Option<String>,
    /// Up to 3 payloads of valid rows, for `plan`.
    pub samples: Vec<serde_json::Value>,
    /// Stopped by shutdown before the end: no summary yet; the file is resumed at next start.
    pub interrupted: bool,
    /// Stopped because the connection's credentials were refused: no summary yet; the file
    /// resumes once they are accepted.
    pub held: bool,
}

/// Processes `input` end to end; reports are named after `display_name` in the context's dir.
pub async fn process_file(
    ctx: &FileContext,
    input: &Input,
    display_name: &str,
    progress: Arc<Progress>,
    ledger: Option<LedgerFile>,
) -> std::io::Result<FileResult> {
    let stem = match &ledger {
        Some(l) => l.report_stem.clone(),
        None => unique_stem(&ctx.report_dir, &report::stem_of(display_name)),
    };
    let started_at = ledger.as_ref().map_or_else(report::now_rfc3339, |l| l.started_at.clone());
    if let Some(size) = input.size() {
        progress.bytes_total.store(size, Ordering::Relaxed);
    }
    let resume = ledger.as_ref().and_then(|l| l.resume.clone());
    let on_ledger = ledger.as_ref().map(|l| (l.ledger.clone(), l.file_id));
    let jobs = Arc::new(FileJobs::new(display_name, on_ledger, resume.as_ref()));
    let mut lines = LineCounts::default();
    let mut held = false;
    let (ran, samples) = match open(ctx, input).await {
        Ok((file, mapper)) => {
            if let Ok(mut g) = progress.bytes_read.lock() {
                *g = Some(file.bytes_read.clone());
            }
            if let Ok(mut g) = progress.rows_read.lock() {
                *g = Some(file.rows_seen.clone());
            }
            let settler =
                settler(ctx, &stem, &file, progress.clone(), display_name, ledger.as_ref())?;
            let holds = ledger.is_some();
            let run = Run { ctx, jobs: jobs.clone(), resume: resume.as_ref(), holds };
            let (settled, read_end, samples, window) = run.stream(file, mapper, settler).await?;
            lines = read_end.lines;
            held = window.held;
            let read_error = read_end.error;
            // A broken source connection is not the file's fault: it is read again later.
            let read_error = read_error.filter(|e| !matches!(e, FileError::Interrupted { .. }));
            let error = settled.gap.clone().or(read_error.map(|e| e.to_string()));
            ((settled, error), samples)
        }
        // The source's connection broke before the header: read again later, not failed.
        Err(OpenError::SourceBroke(e)) => {
            tracing::warn!(file = %display_name, error = %e, "the source connection broke before the header; the file will be read again");
            ((Settled { interrupted: true, ..Settled::default() }, None), Vec::new())
        }
        Err(OpenError::File(e)) => ((Settled::default(), Some(e)), Vec::new()),
    };
    let (settled, file_error) = ran;
    let (_, summary_path) = report::report_names(&ctx.report_dir, &stem);
    let summary = Summary {
        file: display_name.to_string(),
        pipeline: ctx.pipeline.name.clone(),
        target: ctx.pipeline.target.name(),
        started_at,
        finished_at: report::now_rfc3339(),
        rows: settled.counts,
        lines,
        failed_by_stage: settled.failed_by_stage,
        remote_jobs: jobs.summary(),
        seats: jobs.seats(),
        report: settled.report.as_deref().map(report::file_name),
        warnings: settled.warnings.as_deref().map(report::file_name),
        error: file_error.clone(),
    };
    if !settled.interrupted {
        let json = serde_json::to_vec_pretty(&summary).map_err(std::io::Error::other)?;
        atomic::write_private(&summary_path, &json, ctx.pipeline.report_mode)?;
    }
    Ok(FileResult {
        summary,
        summary_path,
        errors_path: settled.report,
        warnings_path: settled.warnings,
        file_error,
        samples,
        interrupted: settled.interrupted,
        held,
    })
}

/// The settler: a plain one, or with a ledger one that keeps its partial reports across runs.
fn settler(
    ctx: &FileContext,
    stem: &str,
    file: &CsvFile,
    progress: Arc<Progress>,
    label: &str,
    ledger: Option<&LedgerFile>,
) -> std::io::Result<Settler> {
    let (errors_path, _) = report::report_names(&ctx.report_dir, stem);
    let warnings_path = ctx.report_dir.join(format!("{stem}.warnings.csv"));
    let warnings_partial = report::warnings_partial_name(&ctx.report_dir, stem);
    let dialect = &file.dialect;
    let pipeline = &ctx.pipeline.name;
    let mode = ctx.pipeline.report_mode;
    let Some(l) = ledger else {
        let reports = Reports {
            errors: ErrorsFile::new(errors_path, dialect.clone()).with_mode(mode),
            warnings: ErrorsFile::new(warnings_path, dialect.clone()).with_mode(mode),
        };
        return Ok(Settler::new(reports, progress, pipeline, label.to_string()));
    };
    let checkpoint = l.resume.as_ref().map(|r| &r.checkpoint);
    let partial = report::partial_name(&ctx.report_dir, stem);
    let (eb, wb) = checkpoint.map_or((0, 0), |c| (c.errors_bytes, c.warnings_bytes));
    let reports = Reports {
        errors: ErrorsFile::resumable(errors_path, partial, dialect.clone(), eb)?.with_mode(mode),
        warnings: ErrorsFile::resumable(warnings_path, warnings_partial, dialect.clone(), wb)?
            .with_mode(mode),
    };
    let (store, file_id) = (l.ledger.clone(), l.file_id);
    let sink = Box::new(move |cp, wait| {
        if wait {
            store.checkpoint_committed(file_id, cp).map_err(std::io::Error::other)
        } else {
            store.checkpoint(file_id, cp);
            Ok(())
        }
    });
    Ok(Settler::new(reports, progress, pipeline, label.to_string()).resuming(checkpoint, sink))
}

/// Opens the file and compiles the mapping against its header; an error fails the whole file.
async fn open(ctx: &FileContext, input: &Input) -> Result<(CsvFile, Mapper), OpenError> {
    let schema = ctx.pipeline.target.schema();
    let fields = &ctx.pipeline.fields;
    // `header_row = "auto"`: the line whose cells serve the whole mapping.
    let is_header = |cells: &[String]| Mapper::compile(fields, schema, cells).is_ok();
    let file = input.open(&ctx.pipeline.csv, &is_header).await?;
    let mapper = Mapper::compile(&ctx.pipeline.fields, schema, &file.dialect.header)
        .map_err(|e| OpenError::File(e.to_string()))?;
    Ok((file, mapper))
}

/// One run of a file's stages.
struct Run<'a> {
    ctx: &'a FileContext,
    jobs: Arc<FileJobs>,
    resume: Option<&'a Resume>,
    /// With a ledger: rows held by refused credentials wait for the resume.
    holds: bool,
}

impl Run<'_> {
    /// Runs the stages to the end (or shutdown) and settles the file.
    async fn stream(
        &self,
        file: CsvFile,
        mapper: Mapper,
        settler: Settler,
    ) -> std::io::Result<(Settled, ReadEnd, Vec<serde_json::Value>, WindowEnd)> {
        let ctx = self.ctx;
        // The file's own stop: the daemon's, or the window's when the connection holds.
        let stop = ctx.stop.child_token();
        let budget = RowBudget::new(self.budget_units());
        let (settle_tx, settled) = settle::spawn(settler.with_budget(budget.clone()));
        let (block_tx, block_rx) = mpsc::channel(MAP_TASKS * 2);
        let (row_tx, row_rx) = mpsc::channel(ctx.pipeline.batch.max_rows * 2);
        let (earlier_tx, earlier_rx) = mpsc::channel(4);
        let pool = BlockPool::default();
        let skip_below = self.resume.map_or(0, |r| r.checkpoint.watermark);
        let repeatable = ctx.target.create_is_repeatable();
        let mapping = Arc::new(Mapping {
            encoding: file.dialect.encoding,
            width: file.dialect.header.len(),
            sheet_rows: file.dialect.from_workbook,
            persons: refuses_repeated_persons(&ctx.pipeline)
                .then(|| crate::mapping::PersonFields::of(mapper.fields()))
                .flatten(),
            mapper,
            target: ctx.target.clone(),
            dry_run: ctx.connection.is_none(),
            lookups: ctx
                .connection
                .clone()
                .and_then(|conn| crate::targets::Lookups::new(ctx.target.clone(), conn)),
        });
        let routes = Routes { settle: settle_tx.clone(), rows: row_tx, earlier: earlier_tx };
        let resumed = ResumedJobs::new(self.resume, repeatable);
        let from = stages::ReadFrom { skip_below, held_below: resumed.held_below() };
        let reader = stages::read(file, from, pool.clone(), block_tx, budget.clone(), stop.clone());
        let router = stages::route(block_rx, mapping, pool, resumed, routes, budget, stop.clone());
        let window = self.window(settle_tx.clone(), row_rx, earlier_rx, stop);
        let (read, route, window): (ReadEnd, RouteEnd, WindowEnd) =
            tokio::join!(reader, router, window);
        let broke = matches!(read.error, Some(FileError::Interrupted { .. }));
        if let Some(FileError::Interrupted { message, .. }) = &read.error {
            tracing::warn!(error = %message, "the source connection broke; the file will be read again from its checkpoint");
        }
        let interrupted = read.stopped
            || broke
            || route.stopped
            || window.interrupted
            || ctx.abort.is_cancelled();
        let _ = settle_tx.send(SettleMsg::End { interrupted, rows_read: read.rows_read }).await;
        drop(settle_tx);
        let mut settled = settled.await.map_err(std::io::Error::other)??;
        if !interrupted && (route.crashed || window.crashed_batches > 0) && settled.gap.is_none() {
            settled.gap = Some("an internal error stopped the processing of some rows; they are in the errors report (unconfirmed where their batch may have reached the CRM), and the file is kept in failed/".into());
        }
        Ok((settled, read, route.samples, window))
    }

    /// The window of batches in flight, when there is a connection (not a dry run).
    async fn window(
        &self,
        settle_tx: mpsc::Sender<SettleMsg>,
        rows: mpsc::Receiver<crate::row::MappedRow>,
        earlier: mpsc::Receiver<crate::delivery::Earlier>,
        stop: CancellationToken,
    ) -> WindowEnd {
        let ctx = self.ctx;
        let Some(conn) = ctx.connection.clone() else {
            // A dry run routes nothing here; the channels just close.
            drop((rows, earlier));
            return WindowEnd::default();
        };
        let adapter: Arc<dyn Adapter> = ctx.target.clone();
        let target = ctx.pipeline.target.name();
        let pacer = conn.pacer(&target);
        let engine =
            Arc::new(Engine { conn: conn.clone(), adapter, journal: self.jobs.clone(), pacer });
        let settle: Settle = Arc::new(move |rows| {
            let tx = settle_tx.clone();
            Box::pin(async move {
                let _ = tx.send(SettleMsg::Rows(rows)).await;
            })
        });
        let window = Window {
            engine,
            max_rows: ctx.pipeline.batch.max_rows,
            max_wait: ctx.pipeline.batch.max_wait,
            size: Window::size_for(&conn, &target, ctx.pipeline.batch.max_rows),
            settle,
            stop,
            abort: ctx.abort.clone(),
            holds: self.holds,
            pipeline: ctx.pipeline.name.clone(),
        };
        window.run(rows, earlier).await
    }

    /// Rows allowed between the reader and the watermark: room for every batch of the
    /// window twice over, and for the blocks being mapped. (A block larger than the whole
    /// budget still passes, alone.)
    fn budget_units(&self) -> usize {
        let ctx = self.ctx;
        let (target, max_rows) = (ctx.pipeline.target.name(), ctx.pipeline.batch.max_rows);
        let window = ctx.connection.as_ref().map_or(0, |c| Window::size_for(c, &target, max_rows));
        let batches = 2 * window * ctx.pipeline.batch.max_rows;
        batches.max((MAP_TASKS + 1) * BLOCK_ROWS)
    }
}

/// Plannr `store` imports of clients refuse a row naming the person an earlier row of the
/// file named (Plannr would flag a duplicate and has no merge), unless `duplicates = "allow"`.
fn refuses_repeated_persons(pipeline: &PipelineSettings) -> bool {
    let store_clients = matches!(
        &pipeline.target,
        TargetSpec::PlannrImport { import_type, mode: ImportMode::Store } if import_type == "clients"
    );
    store_clients && pipeline.duplicates == Duplicates::Refuse
}

/// `NAME`, or `NAME.<timestamp>` when a report of that name is already there.
pub fn unique_stem(dir: &Path, stem: &str) -> String {
    let (_, summary) = report::report_names(dir, stem);
    // A report dropped back in is named after its original, always with a timestamp: the
    // original may still be in flight, its summary not yet written.
    let original = report::redropped(stem);
    if original.is_none() && !summary.exists() {
        return stem.to_string();
    }
    format!("{}.{}", original.unwrap_or(stem), chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"))
}
