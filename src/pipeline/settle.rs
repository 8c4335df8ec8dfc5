//! Settlement: every row of a file gets exactly one fate. Batches finish out of order; the
//! reports are written in source order as the settled prefix grows (the watermark), and the
//! watermark is checkpointed only after the report rows before it are flushed to the file.
//! At the end, every row read must have settled: a gap is the file's error, never silence.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::budget::RowBudget;
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
#[derive(Debug, Clone, Default)]
pub struct Settled {
    pub counts: RowCounts,
    pub failed_by_stage: BTreeMap<String, u64>,
    pub report: Option<PathBuf>,
    pub warnings: Option<PathBuf>,
    /// Stopped before the end: the reports stay partial, the file is resumed later.
    pub interrupted: bool,
    /// Rows read that never settled (a bug): the file's error.
    pub gap: Option<String>,
}

/// The errors report and the warnings report of a file.
pub struct Reports {
    pub errors: ErrorsFile,
    pub warnings: ErrorsFile,
}

pub struct Settler {
    reports: Reports,
    /// Rows settled ahead of the watermark, waiting for the ones before them.
    ahead: BTreeMap<u64, Parked>,
    /// Every row with a lower `seq` is settled and, if failed, in the report.
    watermark: u64,
    counts: RowCounts,
    by_stage: BTreeMap<String, u64>,
    progress: Arc<Progress>,
    checkpoints: Option<CheckpointSink>,
    /// Given back as rows settle, so the reader can go on.
    budget: Option<RowBudget>,
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

    fn count(&mut self, f: &Failure) {
        let pipeline = &self.pipeline;
        let kind = match f.stage {
            Stage::Unprocessed => "unprocessed",
            Stage::Warning => "accepted",
            _ => "failed",
        };
        self.by_stage
            .entry(f.stage)
            .or_insert_with(|| crate::metrics::get().row_counter(pipeline, kind, f.stage.as_str()))
            .inc();
    }
}

/// Settled ahead of the watermark: one row, or a span of them.
enum Parked {
    Row(SourceRow, Outcome),
    Span { count: u64, last_line: u64, failed: Vec<(SourceRow, Failure)>, units: u32 },
}

/// What the settler's thread receives.
pub enum SettleMsg {
    /// Many at once (a block's local failures, a batch's outcomes): one hand-off, not many.
    Rows(Vec<(SourceRow, Outcome)>),
    /// Consecutive rows `first..first + count` at once: the ones in `failed` (in order) failed,
    /// the rest were accepted; they held `units` of the budget. A dry run settles a whole
    /// block this way.
    Span { first: u64, count: u64, last_line: u64, failed: Vec<(SourceRow, Failure)>, units: u32 },
    /// No more rows; `interrupted` when the file did not reach its end; `rows_read` is how
    /// many data rows the file had.
    End { interrupted: bool, rows_read: u64 },
}

impl Settler {
    pub fn new(reports: Reports, progress: Arc<Progress>, pipeline: &str, label: String) -> Self {
        Self {
            reports,
            ahead: BTreeMap::new(),
            watermark: 0,
            counts: RowCounts::default(),
            by_stage: BTreeMap::new(),
            progress,
            checkpoints: None,
            budget: None,
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
            // Rows settled before the restart count as settled in the progress too.
            self.progress.rows_done(cp.watermark);
            self.watermark = cp.watermark;
            self.counts = cp.counts.clone();
            self.by_stage = cp.failed_by_stage.clone();
        }
        self.checkpoints = Some(sink);
        self
    }

    /// Gives `budget` back as rows settle.
    pub fn with_budget(mut self, budget: RowBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    pub fn settle(&mut self, row: SourceRow, outcome: Outcome) -> io::Result<()> {
        if row.seq < self.watermark {
            self.give(RowBudget::units_of(row.raw.as_slice().len()));
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
        units: u32,
    ) -> io::Result<()> {
        if count == 0 || first + count <= self.watermark {
            self.give(units);
            return Ok(());
        }
        self.park_or_apply(first, Parked::Span { count, last_line, failed, units })
    }

    fn give(&self, units: u32) {
        if let Some(b) = &self.budget {
            b.give(units);
        }
    }

    fn park_or_apply(&mut self, seq: u64, parked: Parked) -> io::Result<()> {
        // Progress counts a row once its fate is known, whether or not the rows before it
        // have settled yet (the reports and the checkpoint wait for those).
        self.progress.rows_done(match &parked {
            Parked::Row(..) => 1,
            Parked::Span { count, .. } => *count,
        });
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
        Ok(())
    }

    /// A checkpoint when one is due. Called between messages, never inside one: the rows of
    /// one batch are settled by one message, so a checkpoint never splits a remote job's rows
    /// (its counts are then always compared with all of them on resume).
    pub fn tick(&mut self) -> io::Result<()> {
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
                self.give(RowBudget::units_of(row.raw.as_slice().len()));
                self.watermark += 1;
            }
            Parked::Span { count, last_line, failed, units } => {
                let accepted = count - failed.len() as u64;
                for (row, f) in &failed {
                    self.fail(row, f)?;
                }
                self.counts.read += accepted;
                self.counts.accepted += accepted;
                self.counters.accepted.inc_by(accepted);
                self.done(count, last_line);
                self.give(units);
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
            Outcome::Warned(w) => {
                self.counts.read += 1;
                self.counts.accepted += 1;
                self.counts.warned += 1;
                self.counters.count(w);
                self.reports.warnings.write(row.line, &row.raw, w)?;
            }
            Outcome::Failed(f) => self.fail(row, f)?,
        }
        self.done(1, row.line);
        Ok(())
    }

    /// A failed row: counted and written to the report.
    fn fail(&mut self, row: &SourceRow, f: &Failure) -> io::Result<()> {
        if let Some(b) = &self.budget {
            b.give_failed(1);
        }
        self.counts.read += 1;
        self.counters.count(f);
        if f.stage == Stage::Unprocessed {
            self.counts.unprocessed += 1;
        } else {
            self.counts.failed += 1;
            *self.by_stage.entry(f.stage.as_str().to_string()).or_default() += 1;
        }
        self.reports.errors.write(row.line, &row.raw, f)
    }

    /// `rows` more rows past the watermark, the last on `line`; a progress line every few
    /// seconds.
    fn done(&mut self, rows: u64, line: u64) {
        // The clock is read every 1024 rows or so, not for each.
        self.since_clock += rows;
        if self.since_clock >= 1024 {
            self.since_clock = 0;
            if self.last_log.elapsed() >= PROGRESS_LOG_EVERY {
                self.last_log = Instant::now();
                tracing::info!(file = %self.label, line, rows = self.counts.read, accepted = self.counts.accepted, failed = self.counts.failed, percent = self.progress.percent(), "progress (percent of the rows settled)");
            }
        }
    }

    /// Flushes the reports, then records the watermark: never the other way round. With
    /// `wait`, returns once the ledger committed it.
    fn checkpoint(&mut self, wait: bool) -> io::Result<()> {
        self.last_checkpoint = Instant::now();
        let Some(sink) = self.checkpoints.as_mut() else { return Ok(()) };
        let errors_bytes = self.reports.errors.flush()?;
        let warnings_bytes = self.reports.warnings.flush()?;
        let cp = Checkpoint {
            watermark: self.watermark,
            errors_bytes,
            warnings_bytes,
            counts: self.counts.clone(),
            failed_by_stage: self.by_stage.clone(),
        };
        sink(cp, wait)
    }

    /// Ends the file. Complete: every row read must have settled (rows parked behind a gap,
    /// which only a bug leaves, are reported `unprocessed` and the gap is the file's error),
    /// and the reports are published. Interrupted: a last checkpoint, and the partial reports
    /// are kept for the resume.
    pub fn finish(mut self, interrupted: bool, rows_read: u64) -> io::Result<Settled> {
        if interrupted {
            self.checkpoint(true)?;
            return Ok(self.settled(None, None, true, None));
        }
        let gap = self.close_gaps(rows_read)?;
        // Committed before the reports are published: after a kill between the two, the
        // resumed run finds them published and takes them back as its partials.
        self.checkpoint(true)?;
        let report = self.reports.errors.finish()?;
        let warnings = self.reports.warnings.finish()?;
        Ok(self.settled(report, warnings, false, gap))
    }

    fn close_gaps(&mut self, rows_read: u64) -> io::Result<Option<String>> {
        let missing_before = self.watermark;
        if self.ahead.is_empty() && self.watermark >= rows_read {
            return Ok(None);
        }
        let f = Failure::new(Stage::Unprocessed, None, "not settled before processing stopped (an internal error); whether it reached the CRM is not known");
        let left: Vec<Parked> = std::mem::take(&mut self.ahead).into_values().collect();
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
        let settled = self.counts.read;
        tracing::error!(file = %self.label, rows_read, settled, "rows read were not all settled");
        Ok(Some(format!(
            "an internal error left rows unsettled: {settled} of {rows_read} rows settled, the first gap after data row {missing_before}; the file is kept in failed/ so no row is lost"
        )))
    }

    fn settled(
        self,
        report: Option<PathBuf>,
        warnings: Option<PathBuf>,
        interrupted: bool,
        gap: Option<String>,
    ) -> Settled {
        Settled {
            counts: self.counts,
            failed_by_stage: self.by_stage,
            report,
            warnings,
            interrupted,
            gap,
        }
    }
}

/// Runs a settler on a blocking thread (it writes files); rows arrive on the returned sender.
/// A channel closed without [`SettleMsg::End`] counts as interrupted. The channel's length
/// is bounded in messages; what they hold is bounded by the row budget.
pub fn spawn(
    settler: Settler,
) -> (mpsc::Sender<SettleMsg>, tokio::task::JoinHandle<io::Result<Settled>>) {
    let (tx, mut rx) = mpsc::channel::<SettleMsg>(256);
    let budget = settler.budget.clone();
    let handle = tokio::task::spawn_blocking(move || {
        let settled = run(settler, &mut rx);
        // Stopped (done, or a write failed): the reader must not wait for rows to settle.
        if let Some(b) = budget {
            b.close();
        }
        settled
    });
    (tx, handle)
}

fn run(mut settler: Settler, rx: &mut mpsc::Receiver<SettleMsg>) -> io::Result<Settled> {
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            SettleMsg::Rows(rows) => {
                for (row, outcome) in rows {
                    settler.settle(row, outcome)?;
                }
            }
            SettleMsg::Span { first, count, last_line, failed, units } => {
                settler.settle_span(first, count, last_line, failed, units)?
            }
            SettleMsg::End { interrupted, rows_read } => {
                return settler.finish(interrupted, rows_read)
            }
        }
        settler.tick()?;
    }
    settler.finish(true, 0)
}
