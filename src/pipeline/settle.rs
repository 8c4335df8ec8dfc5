//! Settlement: every row of a file gets exactly one fate. Batches finish out of order; the
//! report is written in source order as the settled prefix grows (the watermark).

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::progress::Progress;
use crate::report::{ErrorsFile, RowCounts};
use crate::row::{Failure, Outcome, SourceRow, Stage};

const PROGRESS_LOG_EVERY: Duration = Duration::from_secs(5);

/// What settlement produced for a file.
#[derive(Debug, Clone)]
pub struct Settled {
    pub counts: RowCounts,
    pub failed_by_stage: BTreeMap<String, u64>,
    pub report: Option<PathBuf>,
}

pub struct Settler {
    errors: ErrorsFile,
    /// Rows settled ahead of the watermark, waiting for the ones before them.
    ahead: BTreeMap<u64, (SourceRow, Outcome)>,
    /// Every row with a lower `seq` is settled and, if failed, in the report.
    watermark: u64,
    counts: RowCounts,
    by_stage: BTreeMap<Stage, u64>,
    progress: Arc<Progress>,
    last_log: Instant,
    label: String,
}

impl Settler {
    pub fn new(errors: ErrorsFile, progress: Arc<Progress>, label: String) -> Self {
        Self {
            errors,
            ahead: BTreeMap::new(),
            watermark: 0,
            counts: RowCounts::default(),
            by_stage: BTreeMap::new(),
            progress,
            last_log: Instant::now(),
            label,
        }
    }

    pub fn settle(&mut self, row: SourceRow, outcome: Outcome) -> io::Result<()> {
        self.ahead.insert(row.seq, (row, outcome));
        while let Some(entry) = self.ahead.first_entry() {
            if *entry.key() != self.watermark {
                break;
            }
            let (row, outcome) = entry.remove();
            self.apply(&row, &outcome)?;
            self.watermark += 1;
        }
        Ok(())
    }

    fn apply(&mut self, row: &SourceRow, outcome: &Outcome) -> io::Result<()> {
        self.counts.read += 1;
        match outcome {
            Outcome::Accepted => self.counts.accepted += 1,
            Outcome::Failed(f) => {
                if f.stage == Stage::Unprocessed {
                    self.counts.unprocessed += 1;
                } else {
                    self.counts.failed += 1;
                    *self.by_stage.entry(f.stage).or_default() += 1;
                }
                self.errors.write(row.line, &row.raw, f)?;
            }
        }
        self.progress.row_done();
        if self.last_log.elapsed() >= PROGRESS_LOG_EVERY {
            self.last_log = Instant::now();
            tracing::info!(file = %self.label, rows = self.counts.read, accepted = self.counts.accepted, failed = self.counts.failed, percent = self.progress.percent(), "progress");
        }
        Ok(())
    }

    /// Rows never settled (shutdown cut them off) are reported as `unprocessed`.
    pub fn finish(mut self) -> io::Result<Settled> {
        let left: Vec<(SourceRow, Outcome)> =
            std::mem::take(&mut self.ahead).into_values().collect();
        for (row, _) in left {
            let f = Failure::new(Stage::Unprocessed, None, "not settled before processing stopped");
            self.apply(&row, &Outcome::Failed(f))?;
        }
        let report = self.errors.finish()?;
        Ok(Settled {
            counts: self.counts,
            failed_by_stage: self
                .by_stage
                .into_iter()
                .map(|(s, n)| (s.as_str().to_string(), n))
                .collect(),
            report,
        })
    }
}

/// Runs a settler on a blocking thread (it writes files); rows arrive on the returned sender.
pub fn spawn(
    mut settler: Settler,
) -> (mpsc::Sender<(SourceRow, Outcome)>, tokio::task::JoinHandle<io::Result<Settled>>) {
    let (tx, mut rx) = mpsc::channel::<(SourceRow, Outcome)>(4096);
    let handle = tokio::task::spawn_blocking(move || {
        while let Some((row, outcome)) = rx.blocking_recv() {
            settler.settle(row, outcome)?;
        }
        settler.finish()
    });
    (tx, handle)
}
