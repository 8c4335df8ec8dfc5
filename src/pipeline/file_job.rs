//! The stream chain for one file: a reader task maps rows into a bounded channel, batches close
//! at `max_rows` or `max_wait`, up to `max_in_flight` batches are delivered at once, and every
//! outcome goes to the settler, which writes the report in source order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt as _;

use super::progress::Progress;
use super::settle::{self, Settled, Settler};
use crate::config::PipelineSettings;
use crate::csvio::{CsvFile, FileError, RowCells};
use crate::delivery::{driver, Connection};
use crate::mapping::Mapper;
use crate::report::{self, atomic, ErrorsFile, RowCounts, Summary};
use crate::row::Outcome;
use crate::targets::schema::schema_for;
use crate::targets::{JobSink, MappedRow, RemoteJob, Target};

/// Everything a file needs besides itself.
#[derive(Clone)]
pub struct FileContext {
    pub pipeline: Arc<PipelineSettings>,
    pub target: Arc<dyn Target>,
    /// `None` is a dry run (`plan`): nothing is sent, valid rows count as accepted.
    pub connection: Option<Arc<Connection>>,
    pub report_dir: PathBuf,
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
}

/// Jobs a file's batches created, newest status per id, in creation order.
#[derive(Default)]
struct FileJobs {
    jobs: Mutex<Vec<RemoteJob>>,
    file: String,
}

impl JobSink for FileJobs {
    fn record(&self, job: RemoteJob) {
        tracing::info!(file = %self.file, job = %job.id, status = %job.status, rows = job.rows, "remote job");
        if let Ok(mut jobs) = self.jobs.lock() {
            match jobs.iter_mut().find(|j| j.id == job.id) {
                Some(j) => *j = job,
                None => jobs.push(job),
            }
        }
    }
}

/// Processes `path` end to end; reports are named after `display_name` in the context's dir.
pub async fn process_file(
    ctx: &FileContext,
    path: &Path,
    display_name: &str,
    progress: Arc<Progress>,
) -> std::io::Result<FileResult> {
    let started_at = report::now_rfc3339();
    let stem = unique_stem(&ctx.report_dir, &report::stem_of(display_name));
    let (errors_path, summary_path) = report::report_names(&ctx.report_dir, &stem);
    if let Ok(meta) = std::fs::metadata(path) {
        progress.bytes_total.store(meta.len(), Ordering::Relaxed);
    }
    let jobs = Arc::new(FileJobs { jobs: Mutex::default(), file: display_name.to_string() });
    let (settled, file_error, samples) = match open(ctx, path).await {
        Ok((file, mapper)) => {
            if let Ok(mut g) = progress.bytes_read.lock() {
                *g = Some(file.bytes_read.clone());
            }
            let errors = ErrorsFile::new(errors_path.clone(), file.dialect.clone());
            let settler = Settler::new(errors, progress.clone(), display_name.to_string());
            let (samples, read_error, settled) =
                stream(ctx, file, mapper, settler, jobs.clone()).await?;
            (settled, read_error.map(|e| e.to_string()), samples)
        }
        Err(e) => {
            let settled = Settled {
                counts: RowCounts::default(),
                failed_by_stage: BTreeMap::new(),
                report: None,
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
    let json = serde_json::to_vec_pretty(&summary).map_err(std::io::Error::other)?;
    atomic::write_private(&summary_path, &json)?;
    Ok(FileResult { summary, summary_path, errors_path: settled.report, file_error, samples })
}

/// Opens the file and compiles the mapping against its header; an error fails the whole file.
async fn open(ctx: &FileContext, path: &Path) -> Result<(CsvFile, Mapper), String> {
    let file = CsvFile::open(path, &ctx.pipeline.csv).await.map_err(|e| e.to_string())?;
    let schema = schema_for(&ctx.pipeline.target);
    let mapper = Mapper::compile(&ctx.pipeline.fields, schema, &file.dialect.header)
        .map_err(|e| e.to_string())?;
    Ok((file, mapper))
}

type Streamed = (Vec<serde_json::Value>, Option<FileError>, Settled);

async fn stream(
    ctx: &FileContext,
    mut file: CsvFile,
    mapper: Mapper,
    settler: Settler,
    jobs: Arc<FileJobs>,
) -> std::io::Result<Streamed> {
    let (settle_tx, settled) = settle::spawn(settler);
    let batch = ctx.pipeline.batch;
    let (row_tx, row_rx) = mpsc::channel::<MappedRow>(batch.max_rows * 2);
    let dry_run = ctx.connection.is_none();
    let encoding = file.dialect.encoding;
    let target = ctx.target.clone();

    let producer = {
        let settle_tx = settle_tx.clone();
        async move {
            let mut samples = Vec::new();
            while let Some(next) = file.next().await {
                let read = match next {
                    Ok(r) => r,
                    Err(e) => return (samples, Some(e)),
                };
                let row = read.row;
                let result = match read.problem {
                    Some(p) => Err(p),
                    None => mapper.map(&RowCells { raw: &row.raw, encoding }),
                };
                let values = match result {
                    Ok(v) => v,
                    Err(f) => {
                        if settle_tx.send((row, Outcome::Failed(f))).await.is_err() {
                            break;
                        }
                        continue;
                    }
                };
                let (key, body) = target.encode(mapper.fields(), &values);
                if dry_run {
                    if samples.len() < 3 {
                        samples
                            .push(serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null));
                    }
                    if settle_tx.send((row, Outcome::Accepted)).await.is_err() {
                        break;
                    }
                } else if row_tx.send(MappedRow { source: row, key, body }).await.is_err() {
                    break;
                }
            }
            (samples, None)
        }
    };

    let consumer = async {
        let Some(conn) = ctx.connection.clone() else { return };
        let window = conn.settings.max_in_flight;
        ReceiverStream::new(row_rx)
            .chunks_timeout(batch.max_rows, batch.max_wait)
            .for_each_concurrent(window, |rows| {
                let conn = conn.clone();
                let settle_tx = settle_tx.clone();
                let target = ctx.target.clone();
                let jobs = jobs.clone();
                async move {
                    let outcomes =
                        driver::deliver(target.as_ref(), &conn, &rows, jobs.as_ref()).await;
                    for (row, outcome) in rows.into_iter().zip(outcomes) {
                        let MappedRow { source, .. } = row;
                        let _ = settle_tx.send((source, outcome)).await;
                    }
                }
            })
            .await;
    };

    let ((samples, read_error), ()) = tokio::join!(producer, consumer);
    drop(settle_tx);
    let settled = settled.await.map_err(std::io::Error::other)??;
    Ok((samples, read_error, settled))
}

/// `NAME`, or `NAME.<timestamp>` when a report of that name is already there.
fn unique_stem(dir: &Path, stem: &str) -> String {
    let (_, summary) = report::report_names(dir, stem);
    if !summary.exists() {
        return stem.to_string();
    }
    format!("{stem}.{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"))
}
