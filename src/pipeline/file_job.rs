//! The stream chain for one file: a reader task maps rows into a bounded channel, batches close
//! at `max_rows` or `max_wait`, up to `max_in_flight` batches are delivered at once, and every
//! outcome goes to the settler, which writes the report in source order. With a ledger, the
//! file resumes from its checkpoint and finishes the remote jobs an earlier run started.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use super::input::Input;
use super::progress::Progress;
use super::settle::{self, SettleMsg, Settled, Settler};
use crate::config::PipelineSettings;
use crate::csvio::{BlockPool, CsvFile, FileEncoding, FileError, RowBlock};
use crate::delivery::{driver, Connection};
use crate::ledger::{Ledger, Resume};
use crate::mapping::Mapper;
use crate::report::{self, atomic, ErrorsFile, RowCounts, Summary};
use crate::row::{Failure, Outcome, SourceRow};
use crate::schema::schema_for;
use crate::targets::{Escapes, JobSink, MappedRow, RemoteJob, ResumeJob, Target};

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
    /// Set when the file as a whole could not be processed: it belongs in `failed/`.
    pub file_error: Option<String>,
    /// Up to 3 payloads of valid rows, for `plan`.
    pub samples: Vec<serde_json::Value>,
    /// Stopped by shutdown before the end: no summary yet; the file is resumed at next start.
    pub interrupted: bool,
}

/// Jobs a file's batches created, newest status per id, in creation order; recorded in the
/// ledger before anything waits on them.
struct FileJobs {
    jobs: Mutex<Vec<RemoteJob>>,
    file: String,
    ledger: Option<(Arc<Ledger>, i64)>,
}

impl FileJobs {
    fn set(&self, id: &str, status: &str, rows: usize) {
        if let Ok(mut jobs) = self.jobs.lock() {
            let job = RemoteJob { id: id.to_string(), status: status.to_string(), rows };
            match jobs.iter_mut().find(|j| j.id == id) {
                Some(j) => *j = job,
                None => jobs.push(job),
            }
        }
    }
}

impl JobSink for FileJobs {
    fn started<'a>(&'a self, id: &'a str, rows: &'a [MappedRow]) -> BoxFuture<'a, ()> {
        async move {
            tracing::info!(file = %self.file, job = %id, rows = rows.len(), "remote job started");
            self.set(id, "Pending", rows.len());
            if let Some((ledger, file_id)) = &self.ledger {
                let seqs = rows.iter().map(|r| r.source.seq).collect();
                if let Err(e) = ledger.job_started(*file_id, id, seqs).await {
                    tracing::error!(file = %self.file, job = %id, error = %e, "could not record the job in the ledger");
                }
            }
        }
        .boxed()
    }

    fn created<'a>(&'a self, id: &'a str, rows: &'a [MappedRow]) -> BoxFuture<'a, ()> {
        async move {
            if let Some((ledger, file_id)) = &self.ledger {
                let seqs = rows.iter().map(|r| r.source.seq).collect();
                if let Err(e) = ledger.job_started(*file_id, id, seqs).await {
                    tracing::error!(file = %self.file, record = %id, error = %e, "could not record the created record in the ledger");
                }
            }
        }
        .boxed()
    }

    fn status(&self, id: &str, status: &str, rows: usize) {
        tracing::info!(file = %self.file, job = %id, status, rows, "remote job status");
        self.set(id, status, rows);
        if let Some((ledger, file_id)) = &self.ledger {
            ledger.job_status(*file_id, id, status);
        }
    }
}

/// Processes `path` end to end; reports are named after `display_name` in the context's dir.
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
    let (errors_path, summary_path) = report::report_names(&ctx.report_dir, &stem);
    if let Some(size) = input.size() {
        progress.bytes_total.store(size, Ordering::Relaxed);
    }
    let resume = ledger.as_ref().and_then(|l| l.resume.clone());
    let jobs = Arc::new(FileJobs {
        jobs: Mutex::new(
            resume
                .iter()
                .flat_map(|r| &r.jobs)
                .map(|j| RemoteJob {
                    id: j.id.clone(),
                    status: j.status.clone(),
                    rows: j.seqs.len(),
                })
                .collect(),
        ),
        file: display_name.to_string(),
        ledger: ledger.as_ref().map(|l| (l.ledger.clone(), l.file_id)),
    });
    let (settled, file_error, samples) = match open(ctx, input).await {
        Ok((file, mapper)) => {
            if let Ok(mut g) = progress.bytes_read.lock() {
                *g = Some(file.bytes_read.clone());
            }
            let settler = settler(
                ctx,
                &stem,
                errors_path.clone(),
                &file,
                progress.clone(),
                display_name,
                ledger.as_ref(),
            )?;
            let (samples, read_error, settled) =
                stream(ctx, file, mapper, settler, jobs.clone(), resume.as_ref()).await?;
            // A broken source connection is not the file's fault: it is read again later.
            let read_error = read_error.filter(|e| !matches!(e, FileError::Interrupted { .. }));
            (settled, read_error.map(|e| e.to_string()), samples)
        }
        Err(e) => {
            let settled = Settled {
                counts: RowCounts::default(),
                failed_by_stage: BTreeMap::new(),
                report: None,
                interrupted: false,
            };
            (settled, Some(e), Vec::new())
        }
    };
    let summary = Summary {
        file: display_name.to_string(),
        pipeline: ctx.pipeline.name.clone(),
        target: ctx.pipeline.target.name(),
        started_at,
        finished_at: report::now_rfc3339(),
        rows: settled.counts,
        failed_by_stage: settled.failed_by_stage,
        remote_jobs: jobs.jobs.lock().map(|j| j.clone()).unwrap_or_default(),
        report: settled
            .report
            .as_ref()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned()),
        error: file_error.clone(),
    };
    if !settled.interrupted {
        let json = serde_json::to_vec_pretty(&summary).map_err(std::io::Error::other)?;
        atomic::write_private(&summary_path, &json)?;
    }
    Ok(FileResult {
        summary,
        summary_path,
        errors_path: settled.report,
        file_error,
        samples,
        interrupted: settled.interrupted,
    })
}

/// The settler: a plain one, or with a ledger one that keeps its partial report across runs.
fn settler(
    ctx: &FileContext,
    stem: &str,
    errors_path: PathBuf,
    file: &CsvFile,
    progress: Arc<Progress>,
    label: &str,
    ledger: Option<&LedgerFile>,
) -> std::io::Result<Settler> {
    let Some(l) = ledger else {
        let errors = ErrorsFile::new(errors_path, file.dialect.clone());
        return Ok(Settler::new(errors, progress, &ctx.pipeline.name, label.to_string()));
    };
    let partial = report::partial_name(&ctx.report_dir, stem);
    let checkpoint = l.resume.as_ref().map(|r| &r.checkpoint);
    let bytes = checkpoint.map_or(0, |c| c.errors_bytes);
    let errors = ErrorsFile::resumable(errors_path, partial, file.dialect.clone(), bytes)?;
    let (store, file_id) = (l.ledger.clone(), l.file_id);
    let sink = Box::new(move |cp, wait| {
        if wait {
            store.checkpoint_committed(file_id, cp).map_err(std::io::Error::other)
        } else {
            store.checkpoint(file_id, cp);
            Ok(())
        }
    });
    Ok(Settler::new(errors, progress, &ctx.pipeline.name, label.to_string())
        .resuming(checkpoint, sink))
}

/// Opens the file and compiles the mapping against its header; an error fails the whole file.
async fn open(ctx: &FileContext, input: &Input) -> Result<(CsvFile, Mapper), String> {
    let file = input.open(&ctx.pipeline.csv).await?;
    let schema = schema_for(&ctx.pipeline.target.name());
    let mapper = Mapper::compile(&ctx.pipeline.fields, schema, &file.dialect.header)
        .map_err(|e| e.to_string())?;
    Ok((file, mapper))
}

type Streamed = (Vec<serde_json::Value>, Option<FileError>, Settled);

/// Rows of jobs an earlier run created, gathered as the file is read again.
struct ResumedJobs {
    by_seq: HashMap<u64, usize>,
    groups: Vec<(ResumeJob, usize, Vec<MappedRow>)>,
}

impl ResumedJobs {
    fn new(resume: Option<&Resume>) -> Self {
        let mut me = Self { by_seq: HashMap::new(), groups: Vec::new() };
        let Some(r) = resume else { return me };
        let watermark = r.checkpoint.watermark;
        for job in &r.jobs {
            let seqs: Vec<u64> = job.seqs.iter().copied().filter(|s| *s >= watermark).collect();
            if seqs.is_empty() {
                continue;
            }
            for s in &seqs {
                me.by_seq.insert(*s, me.groups.len());
            }
            me.groups.push((
                ResumeJob { id: job.id.clone(), status: job.status.clone() },
                seqs.len(),
                Vec::new(),
            ));
        }
        me
    }

    /// Takes the row if an earlier job holds it; returns the job's rows once all are read.
    fn take(&mut self, row: MappedRow) -> Result<Option<(ResumeJob, Vec<MappedRow>)>, MappedRow> {
        let Some(&g) = self.by_seq.get(&row.source.seq) else { return Err(row) };
        let (id, expected, rows) = &mut self.groups[g];
        rows.push(row);
        if rows.len() == *expected {
            return Ok(Some((id.clone(), std::mem::take(rows))));
        }
        Ok(None)
    }

    /// Jobs whose rows were not all read again (their other rows failed locally this time).
    fn leftovers(&mut self) -> Vec<(ResumeJob, Vec<MappedRow>)> {
        self.groups
            .iter_mut()
            .filter(|g| !g.2.is_empty())
            .map(|g| (g.0.clone(), std::mem::take(&mut g.2)))
            .collect()
    }
}

async fn stream(
    ctx: &FileContext,
    mut file: CsvFile,
    mapper: Mapper,
    settler: Settler,
    jobs: Arc<FileJobs>,
    resume: Option<&Resume>,
) -> std::io::Result<Streamed> {
    let (settle_tx, settled) = settle::spawn(settler);
    let batch = ctx.pipeline.batch;
    let (row_tx, row_rx) = mpsc::channel::<MappedRow>(batch.max_rows * 2);
    let (resume_tx, resume_rx) = mpsc::channel::<(ResumeJob, Vec<MappedRow>)>(4);
    let dry_run = ctx.connection.is_none();
    let encoding = file.dialect.encoding;
    let width = file.dialect.header.len();
    let target = ctx.target.clone();
    let watermark = resume.map_or(0, |r| r.checkpoint.watermark);
    let mut resumed = ResumedJobs::new(resume);
    let stop = ctx.stop.clone();

    let (block_tx, block_rx) = mpsc::channel::<RowBlock>(MAP_TASKS * 2);
    let pool = BlockPool::default();
    // Reading: rows below the watermark are skipped unmapped; the rest go out in blocks.
    let reader = {
        let pool = pool.clone();
        async move {
            loop {
                let (block, status) = tokio::select! {
                    biased;
                    _ = stop.cancelled() => return (None, true),
                    next = file.next_block(watermark, pool.take()) => next,
                };
                if !block.is_empty() && block_tx.send(block).await.is_err() {
                    return (None, false);
                }
                match status {
                    Ok(true) => {}
                    Ok(false) => return (None, false),
                    Err(e) => return (Some(e), false),
                }
            }
        }
    };

    // Mapping on both cores, block by block, the blocks' order kept; then each row goes to the
    // settler (failed locally), to a batch, or to the job an earlier run created for it.
    let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let router = {
        let settle_tx = settle_tx.clone();
        let mapper = Arc::new(mapper);
        let (stop, dropped) = (ctx.stop.clone(), dropped.clone());
        async move {
            let mut samples = Vec::new();
            let mut mapped = std::pin::pin!(ReceiverStream::new(block_rx)
                .map(|block| {
                    let (mapper, target, pool) = (mapper.clone(), target.clone(), pool.clone());
                    tokio::spawn(async move {
                        let mapped =
                            map_block(&mapper, target.as_ref(), encoding, width, &block, dry_run);
                        pool.give(block);
                        mapped
                    })
                })
                .buffered(MAP_TASKS));
            while let Some(done) = mapped.next().await {
                if stop.is_cancelled() {
                    // Shutting down: rows not yet routed stay unsettled, for the resume.
                    dropped.store(true, Ordering::Relaxed);
                    return samples;
                }
                let Ok(block) = done else {
                    tracing::error!("a mapping task stopped unexpectedly; the rest of the file is reported unprocessed");
                    break;
                };
                if dry_run {
                    // Nothing to send: the block settles as a whole, in one message.
                    let room = 3 - samples.len().min(3);
                    samples.extend(block.samples.iter().take(room).map(|b| target.preview(b)));
                    let msg = SettleMsg::Span {
                        first: block.first_seq,
                        count: block.count,
                        last_line: block.last_line,
                        failed: block.failed,
                    };
                    if settle_tx.send(msg).await.is_err() {
                        return samples;
                    }
                    continue;
                }
                if !block.failed.is_empty() {
                    let failed =
                        block.failed.into_iter().map(|(r, f)| (r, Outcome::Failed(f))).collect();
                    if settle_tx.send(SettleMsg::Rows(failed)).await.is_err() {
                        return samples;
                    }
                }
                for row in block.ready {
                    match resumed.take(row) {
                        Ok(Some(group)) => {
                            let _ = resume_tx.send(group).await;
                        }
                        Ok(None) => {}
                        Err(row) => {
                            if row_tx.send(row).await.is_err() {
                                return samples;
                            }
                        }
                    }
                }
            }
            for group in resumed.leftovers() {
                let _ = resume_tx.send(group).await;
            }
            samples
        }
    };
    let producer = async {
        let ((read_error, stopped), samples) = tokio::join!(reader, router);
        (samples, read_error, stopped)
    };

    let deliveries = async {
        let Some(conn) = ctx.connection.clone() else { return };
        let window = Arc::new(Semaphore::new(conn.settings.max_in_flight));
        let d = Deliverer {
            conn,
            target: ctx.target.clone(),
            jobs: jobs.clone(),
            abort: ctx.abort.clone(),
            settle_tx: settle_tx.clone(),
            pipeline: ctx.pipeline.name.clone(),
        };
        let mut batches = std::pin::pin!(tokio_stream::StreamExt::chunks_timeout(
            ReceiverStream::new(row_rx),
            batch.max_rows,
            batch.max_wait
        ));
        let mut earlier = ReceiverStream::new(resume_rx);
        let mut running = JoinSet::new();
        loop {
            let work = tokio::select! {
                Some(rows) = batches.next() => d.clone().batch(rows),
                Some((id, rows)) = earlier.next() => d.clone().earlier(id, rows),
                else => break,
            };
            if ctx.stop.is_cancelled() {
                // Shutting down: batches in flight finish, new ones are not started.
                dropped.store(true, Ordering::Relaxed);
                continue;
            }
            let Ok(slot) = window.clone().acquire_owned().await else { break };
            running.spawn(async move {
                work.await;
                drop(slot);
            });
            while running.try_join_next().is_some() {}
        }
        while let Some(done) = running.join_next().await {
            if let Err(e) = done {
                tracing::error!(error = %e, "a batch stopped unexpectedly; its rows are reported unprocessed");
            }
        }
    };

    let ((samples, read_error, stopped), ()) = tokio::join!(producer, deliveries);
    let broke = matches!(read_error, Some(FileError::Interrupted { .. }));
    if let Some(FileError::Interrupted { message, .. }) = &read_error {
        tracing::warn!(error = %message, "the source connection broke; the file will be read again from its checkpoint");
    }
    let interrupted =
        stopped || broke || dropped.load(Ordering::Relaxed) || ctx.abort.is_cancelled();
    let _ = settle_tx.send(SettleMsg::End { interrupted }).await;
    drop(settle_tx);
    let settled = settled.await.map_err(std::io::Error::other)??;
    Ok((samples, read_error, settled))
}

/// What a batch in flight needs; each batch owns a clone, so its future is `'static`.
#[derive(Clone)]
struct Deliverer {
    conn: Arc<Connection>,
    target: Arc<dyn Target>,
    jobs: Arc<FileJobs>,
    abort: CancellationToken,
    settle_tx: mpsc::Sender<SettleMsg>,
    pipeline: String,
}

impl Deliverer {
    /// Sends a new batch; at the shutdown deadline its rows are left unsettled (resumed later).
    fn batch(self, rows: Vec<MappedRow>) -> BoxFuture<'static, ()> {
        async move {
            let metrics = crate::metrics::get();
            metrics.batch_in_flight(&self.pipeline, 1);
            tokio::select! {
                _ = self.abort.cancelled() => {}
                outcomes = driver::deliver(self.target.as_ref(), &self.conn, &rows, self.jobs.as_ref()) => self.settle(rows, outcomes).await,
            }
            metrics.batch_in_flight(&self.pipeline, -1);
        }
        .boxed()
    }

    /// Finishes a job an earlier run created for these rows.
    fn earlier(self, job: ResumeJob, rows: Vec<MappedRow>) -> BoxFuture<'static, ()> {
        async move {
            tokio::select! {
                _ = self.abort.cancelled() => {}
                outcomes = driver::resume(self.target.as_ref(), &self.conn, &job, &rows, self.jobs.as_ref()) => self.settle(rows, outcomes).await,
            }
        }
        .boxed()
    }

    async fn settle(&self, rows: Vec<MappedRow>, outcomes: Vec<Outcome>) {
        let settled =
            rows.into_iter().zip(outcomes).map(|(row, outcome)| (row.source, outcome)).collect();
        let _ = self.settle_tx.send(SettleMsg::Rows(settled)).await;
    }
}

/// Blocks mapped at once. The machines have two cores, but with two the cores sat idle
/// while a finished block was routed and the next one spawned (`perf stat`: 1.65 of 2 CPUs
/// used); three keep 1.85 busy. Four used no more and took peak RSS from 42 to 47 MiB.
const MAP_TASKS: usize = 3;

/// A block after mapping: the seqs it covers, its local failures, and its valid rows.
struct MappedBlock {
    first_seq: u64,
    count: u64,
    last_line: u64,
    failed: Vec<(SourceRow, Failure)>,
    /// Valid rows, ready to send (empty in a dry run).
    ready: Vec<MappedRow>,
    /// A dry run's first few encoded rows, for `plan`'s sample payloads.
    samples: Vec<Vec<u8>>,
}

/// Maps, validates and encodes a block's rows. Valid rows are encoded into one reused buffer;
/// only rows that go on (to a batch, or to the report) get storage of their own.
fn map_block(
    mapper: &Mapper,
    target: &dyn Target,
    encoding: FileEncoding,
    width: usize,
    block: &RowBlock,
    dry_run: bool,
) -> MappedBlock {
    let rows = block.rows();
    let mut out = MappedBlock {
        first_seq: rows.first().map_or(0, |r| r.seq),
        count: rows.len() as u64,
        last_line: rows.last().map_or(0, |r| r.line),
        failed: Vec::new(),
        ready: Vec::with_capacity(if dry_run { 0 } else { rows.len() }),
        samples: Vec::new(),
    };
    let text = block.text(encoding);
    let fields = mapper.fields();
    let mut body = Vec::with_capacity(1024);
    let mut values = Vec::with_capacity(fields.len());
    for row in rows {
        let result = match block.ragged(row, width) {
            Some(problem) => Err(problem),
            None => {
                mapper.map_into(&block.cells(row, text, encoding), &mut values).and_then(|()| {
                    target.validate(fields, &values)?;
                    let escapes = if mapper.literals_plain() {
                        Escapes::of(block.row_bytes(row))
                    } else {
                        Escapes::Possible
                    };
                    body.clear();
                    target.encode(fields, &values, escapes, &mut body);
                    Ok((!dry_run).then(|| target.key(fields, &values)))
                })
            }
        };
        match result {
            Err(f) => out.failed.push((block.source_row(row), f)),
            Ok(Some(key)) => {
                out.ready.push(MappedRow { source: block.source_row(row), key, body: body.clone() })
            }
            Ok(None) if out.samples.len() < 3 => out.samples.push(body.clone()),
            Ok(None) => {}
        }
    }
    out
}

/// `NAME`, or `NAME.<timestamp>` when a report of that name is already there.
pub fn unique_stem(dir: &Path, stem: &str) -> String {
    let (_, summary) = report::report_names(dir, stem);
    if !summary.exists() {
        return stem.to_string();
    }
    format!("{stem}.{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"))
}
