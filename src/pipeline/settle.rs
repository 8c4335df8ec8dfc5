//! Settlement: every row of a file gets exactly one fate. Batches finish out of order; the
//! report is written in source order as the settled prefix grows (the watermark), and the
//! watermark is checkpointed only after the report rows before it are flushed to the file.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::progress::Progress;
use crate::ledger::Checkpoint;
use crate::report::{ErrorsFile, RowCounts};
use crate::row::{Failure, Outcome, SourceRow, Stage};

const PROGRESS_LOG_EVERY: Duration = Duration::from_secs(5);
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Where checkpoints go (the ledger); called on the settler's thread. With `wait`, it returns
/// once the checkpoint is committed: the file's last checkpoint must be durable before its
/// report is published, or a kill between the two would lose the report's first rows.
pub type CheckpointSink = Box<dyn FnMut(Checkpoint, bool) -> io::Result<()> + Send>;

/// What settlement produced for a file.
#[derive(Debug, Clone)]
pub struct Settled {
    pub counts: RowCounts,
    pub failed_by_stage: BTreeMap<String, u64>,
    pub report: Option<PathBuf>,
    /// Stopped before the end: the report stays partial, the file is resumed later.
    pub interrupted: bool,
}

pub struct Settler {
    errors: ErrorsFile,
    /// Rows settled ahead of the watermark, waiting for the ones before them.
    ahead: BTreeMap<u64, Parked>,
    /// Every row with a lower `seq` is settled and, if failed, in the report.
    watermark: u64,
    counts: RowCounts,
    by_stage: BTreeMap<String, u64>,
    progress: Arc<Progress>,
    checkpoints: Option<CheckpointSink>,
    last_checkpoint: Instant,
    last_log: Instant,
    /// Rows applied since the clock was last read.
    since_clock: u64,
    label: String,
    counters: RowCounters,
}

/// The row counters of one pipeline, looked up once: a lookup per row would cost more than
/// the rest of settling.
struct RowCounters {
    pipeline: String,
    accepted: prometheus_client::metrics::counter::Counter,
    by_stage: BTreeMap<Stage, prometheus_client::metrics::counter::Counter>,
}

impl RowCounters {
    fn new(pipeline: &str) -> Self {
        let accepted = crate::metrics::get().row_counter(pipeline, "accepted", "");
        Self { pipeline: pipeline.to_string(), accepted, by_stage: BTreeMap::new() }
    }

    fn failed(&mut self, f: &Failure) {
        let pipeline = &self.pipeline;
        let kind = if f.stage == Stage::Unprocessed { "unprocessed" } else { "failed" };
        self.by_stage
            .entry(f.stage)
            .or_insert_with(|| crate::metrics::get().row_counter(pipeline, kind, f.stage.as_str()))
            .inc();
    }
}

/// Settled ahead of the watermark: one row, or a span of them.
enum Parked {
    Row(SourceRow, Outcome),
    Span { count: u64, last_line: u64, failed: Vec<(SourceRow, Failure)> },
}

/// What the settler's thread receives.
pub enum SettleMsg {
    Row(SourceRow, Outcome),
    /// Many at once (a block's local failures, a batch's outcomes): one hand-off, not many.
    Rows(Vec<(SourceRow, Outcome)>),
    /// Consecutive rows `first..first + count` at once: the ones in `failed` (in order) failed,
    /// the rest were accepted. A dry run settles a whole block this way.
    Span {
        first: u64,
        count: u64,
        last_line: u64,
        failed: Vec<(SourceRow, Failure)>,
    },
    /// No more rows; `interrupted` when the file did not reach its end.
    End {
        interrupted: bool,
    },
}

impl Settler {
    pub fn new(errors: ErrorsFile, progress: Arc<Progress>, pipeline: &str, label: String) -> Self {
        Self {
            errors,
            ahead: BTreeMap::new(),
            watermark: 0,
            counts: RowCounts::default(),
            by_stage: BTreeMap::new(),
            progress,
            checkpoints: None,
            last_checkpoint: Instant::now(),
            last_log: Instant::now(),
            since_clock: 0,
            label,
            counters: RowCounters::new(pipeline),
        }
    }

    /// Continues from an earlier run's checkpoint, recording new ones in `sink`.
    pub fn resuming(mut self, from: Option<&Checkpoint>, sink: CheckpointSink) -> Self {
        if let Some(cp) = from {
            self.watermark = cp.watermark;
            self.counts = cp.counts.clone();
            self.by_stage = cp.failed_by_stage.clone();
        }
        self.checkpoints = Some(sink);
        self
    }

    pub fn settle(&mut self, row: SourceRow, outcome: Outcome) -> io::Result<()> {
        if row.seq < self.watermark {
            return Ok(());
        }
        self.park_or_apply(row.seq, Parked::Row(row, outcome))
    }

    /// Settles consecutive rows at once (see [`SettleMsg::Span`]).
    pub fn settle_span(
        &mut self,
        first: u64,
        count: u64,
        last_line: u64,
        failed: Vec<(SourceRow, Failure)>,
    ) -> io::Result<()> {
        if count == 0 || first + count <= self.watermark {
            return Ok(());
        }
        self.park_or_apply(first, Parked::Span { count, last_line, failed })
    }

    fn park_or_apply(&mut self, seq: u64, parked: Parked) -> io::Result<()> {
        if seq == self.watermark && self.ahead.is_empty() {
            // In order, as most rows are: no need to park it.
            self.apply_parked(parked)?;
        } else {
            self.ahead.insert(seq, parked);
        }
        while let Some(entry) = self.ahead.first_entry() {
            if *entry.key() != self.watermark {
                break;
            }
            let parked = entry.remove();
            self.apply_parked(parked)?;
        }
        if self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            self.checkpoint(false)?;
        }
        Ok(())
    }

    /// Applies what was settled at the watermark and moves the watermark past it.
    fn apply_parked(&mut self, parked: Parked) -> io::Result<()> {
        match parked {
            Parked::Row(row, outcome) => {
                self.apply(&row, &outcome)?;
                self.watermark += 1;
            }
            Parked::Span { count, last_line, failed } => {
                let accepted = count - failed.len() as u64;
                for (row, f) in &failed {
                    self.fail(row, f)?;
                }
                self.counts.read += accepted;
                self.counts.accepted += accepted;
                self.counters.accepted.inc_by(accepted);
                self.done(count, last_line);
                self.watermark += count;
            }
        }
        Ok(())
    }

    fn apply(&mut self, row: &SourceRow, outcome: &Outcome) -> io::Result<()> {
        match outcome {
            Outcome::Accepted => {
                self.counts.read += 1;
                self.counts.accepted += 1;
                self.counters.accepted.inc();
            }
            Outcome::Failed(f) => self.fail(row, f)?,
        }
        self.done(1, row.line);
        Ok(())
    }

    /// A failed row: counted and written to the report.
    fn fail(&mut self, row: &SourceRow, f: &Failure) -> io::Result<()> {
        self.counts.read += 1;
        self.counters.failed(f);
        if f.stage == Stage::Unprocessed {
            self.counts.unprocessed += 1;
        } else {
            self.counts.failed += 1;
            *self.by_stage.entry(f.stage.as_str().to_string()).or_default() += 1;
        }
        self.errors.write(row.line, &row.raw, f)
    }

    /// Progress after `rows` more rows, the last on `line`; a progress line every few seconds.
    fn done(&mut self, rows: u64, line: u64) {
        self.progress.rows_done(rows);
        // The clock is read every 1024 rows or so, not for each.
        self.since_clock += rows;
        if self.since_clock >= 1024 {
            self.since_clock = 0;
            if self.last_log.elapsed() >= PROGRESS_LOG_EVERY {
                self.last_log = Instant::now();
                tracing::info!(file = %self.label, line, rows = self.counts.read, accepted = self.counts.accepted, failed = self.counts.failed, percent = self.progress.percent(), "progress");
            }
        }
    }

    /// Flushes the report, then records the watermark: never the other way round. With
    /// `wait`, returns once the ledger committed it.
    fn checkpoint(&mut self, wait: bool) -> io::Result<()> {
        self.last_checkpoint = Instant::now();
        let Some(sink) = self.checkpoints.as_mut() else { return Ok(()) };
        let errors_bytes = self.errors.flush()?;
        let cp = Checkpoint {
            watermark: self.watermark,
            errors_bytes,
            counts: self.counts.clone(),
            failed_by_stage: self.by_stage.clone(),
        };
        sink(cp, wait)
    }

    /// Ends the file. Complete: rows never settled are reported `unprocessed` and the report is
    /// published. Interrupted: a last checkpoint, and the partial report is kept for resume.
    pub fn finish(mut self, interrupted: bool) -> io::Result<Settled> {
        if interrupted {
            self.checkpoint(true)?;
            return Ok(Settled {
                counts: self.counts,
                failed_by_stage: self.by_stage,
                report: None,
                interrupted,
            });
        }
        // Only a bug leaves rows parked here: whatever waited for a gap is reported, not lost.
        let left: Vec<Parked> = std::mem::take(&mut self.ahead).into_values().collect();
        let f = Failure::new(Stage::Unprocessed, None, "not settled before processing stopped");
        for parked in left {
            match parked {
                Parked::Row(row, _) => self.apply(&row, &Outcome::Failed(f.clone()))?,
                Parked::Span { failed, .. } => {
                    for (row, _) in failed {
                        self.apply(&row, &Outcome::Failed(f.clone()))?;
                    }
                }
            }
        }
        // Committed before the report is published: after a kill between the two, the resumed
        // run finds the published report and takes it as its partial (see `ErrorsFile`).
        self.checkpoint(true)?;
        let report = self.errors.finish()?;
        Ok(Settled { counts: self.counts, failed_by_stage: self.by_stage, report, interrupted })
    }
}

/// Runs a settler on a blocking thread (it writes files); rows arrive on the returned sender.
/// A channel closed without [`SettleMsg::End`] counts as interrupted.
pub fn spawn(
    mut settler: Settler,
) -> (mpsc::Sender<SettleMsg>, tokio::task::JoinHandle<io::Result<Settled>>) {
    let (tx, mut rx) = mpsc::channel::<SettleMsg>(4096);
    let handle = tokio::task::spawn_blocking(move || {
        while let Some(msg) = rx.blocking_recv() {
            match msg {
                SettleMsg::Row(row, outcome) => settler.settle(row, outcome)?,
                SettleMsg::Rows(rows) => {
                    for (row, outcome) in rows {
                        settler.settle(row, outcome)?;
                    }
                }
                SettleMsg::Span { first, count, last_line, failed } => {
                    settler.settle_span(first, count, last_line, failed)?
                }
                SettleMsg::End { interrupted } => return settler.finish(interrupted),
            }
        }
        settler.finish(true)
    });
    (tx, handle)
}
