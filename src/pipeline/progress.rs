//! How far a file has got, in rows settled: read by progress bars and lines, logs and
//! `/status`. The total is estimated from the bytes read so far until the file is read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Progress {
    /// Rows settled (accepted, failed or unprocessed).
    pub rows_done: AtomicU64,
    pub bytes_total: AtomicU64,
    /// Bytes and rows the reader has read, shared with it.
    pub bytes_read: Mutex<Option<Arc<AtomicU64>>>,
    pub rows_read: Mutex<Option<Arc<AtomicU64>>>,
}

/// A snapshot: rows settled of about how many, at what pace, how long left.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub done: u64,
    /// Rows the file holds: exact once read, else read rows scaled by bytes.
    pub total: u64,
    pub exact: bool,
    pub per_second: f64,
    pub left: Option<Duration>,
}

impl Progress {
    pub fn rows_done(&self, rows: u64) {
        self.rows_done.fetch_add(rows, Ordering::Relaxed);
    }

    fn shared(cell: &Mutex<Option<Arc<AtomicU64>>>) -> u64 {
        cell.lock().ok().and_then(|g| g.as_ref().map(|b| b.load(Ordering::Relaxed))).unwrap_or(0)
    }

    pub fn bytes_done(&self) -> u64 {
        Self::shared(&self.bytes_read)
    }

    /// The file's rows, estimated: rows read so far, scaled by the bytes left to read.
    pub fn rows_total(&self) -> (u64, bool) {
        let (read, bytes, total) = (
            Self::shared(&self.rows_read),
            self.bytes_done(),
            self.bytes_total.load(Ordering::Relaxed),
        );
        if total == 0 || bytes >= total || bytes == 0 {
            return (read.max(self.rows_done.load(Ordering::Relaxed)), bytes >= total && total > 0);
        }
        ((read as f64 * total as f64 / bytes as f64) as u64, false)
    }

    /// Percent of the rows settled (0 until there is an estimate).
    pub fn percent(&self) -> u64 {
        let (total, _) = self.rows_total();
        if total == 0 {
            return 0;
        }
        (self.rows_done.load(Ordering::Relaxed) * 100 / total).min(100)
    }

    /// Where the file stands after `elapsed`.
    pub fn estimate(&self, elapsed: Duration) -> Estimate {
        let done = self.rows_done.load(Ordering::Relaxed);
        let (total, exact) = self.rows_total();
        let per_second = if elapsed.is_zero() { 0.0 } else { done as f64 / elapsed.as_secs_f64() };
        let left = (per_second > 0.0 && total > done)
            .then(|| Duration::from_secs_f64((total - done) as f64 / per_second));
        Estimate { done, total: total.max(done), exact, per_second, left }
    }
}

impl std::fmt::Display for Estimate {
    /// `120000 of ~300000 rows settled (40 %), 1950 rows/s, about 1m 32s left`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let about = if self.exact { "" } else { "~" };
        let pct = (self.done * 100).checked_div(self.total).unwrap_or(0);
        write!(
            f,
            "{} of {about}{} rows settled ({pct} %), {:.0} rows/s",
            self.done, self.total, self.per_second
        )?;
        if let Some(left) = self.left {
            write!(
                f,
                ", about {} left",
                humantime::format_duration(Duration::from_secs(left.as_secs()))
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_is_estimated_from_bytes_until_the_file_is_read() {
        let p = Progress::default();
        p.bytes_total.store(1000, Ordering::Relaxed);
        let (bytes, rows) = (Arc::new(AtomicU64::new(250)), Arc::new(AtomicU64::new(100)));
        *p.bytes_read.lock().unwrap() = Some(bytes.clone());
        *p.rows_read.lock().unwrap() = Some(rows.clone());
        p.rows_done(40);
        assert_eq!(p.rows_total(), (400, false));
        assert_eq!(p.percent(), 10, "rows settled, not bytes read ahead");
        let e = p.estimate(Duration::from_secs(4));
        assert_eq!((e.per_second, e.left), (10.0, Some(Duration::from_secs(36))));
        assert!(
            e.to_string().starts_with("40 of ~400 rows settled (10 %), 10 rows/s, about 36s left"),
            "{e}"
        );
        bytes.store(1000, Ordering::Relaxed);
        rows.store(390, Ordering::Relaxed);
        assert_eq!(p.rows_total(), (390, true));
    }

    /// A settler over a one-line CSV's dialect, reporting into `dir`.
    async fn settler(
        dir: &std::path::Path,
        progress: Arc<Progress>,
    ) -> super::super::settle::Settler {
        use super::super::settle::{Reports, Settler};
        let csv = dir.join("in.csv");
        std::fs::write(&csv, "Code\nA\n").unwrap();
        let input = crate::pipeline::Input::Local(csv);
        let settings = crate::config::CsvSettings::default();
        let dialect = input.open(&settings, &|_: &[String]| true).await.unwrap().dialect;
        let file = |n: &str| crate::report::ErrorsFile::new(dir.join(n), dialect.clone());
        let reports = Reports { errors: file("e.csv"), warnings: file("w.csv") };
        Settler::new(reports, progress, "p", "in.csv".into())
    }

    fn row(seq: u64) -> crate::row::SourceRow {
        crate::row::SourceRow { seq, line: seq + 2, raw: csv_async::ByteRecord::new() }
    }

    /// Rows count as settled once their fate is known, even while an earlier batch is still
    /// out (the reports wait for it, the progress does not).
    #[tokio::test]
    async fn rows_settled_ahead_of_a_slow_batch_count() {
        let dir = tempfile::tempdir().unwrap();
        let progress = Arc::new(Progress::default());
        let mut s = settler(dir.path(), progress.clone()).await;
        for seq in 10..40 {
            s.settle(row(seq), crate::row::Outcome::Accepted).unwrap();
        }
        s.settle_span(40, 60, 101, Vec::new(), 0).unwrap();
        assert_eq!(progress.rows_done.load(Ordering::Relaxed), 90, "rows 0..10 are still out");
        for seq in 0..10 {
            s.settle(row(seq), crate::row::Outcome::Accepted).unwrap();
        }
        assert_eq!(progress.rows_done.load(Ordering::Relaxed), 100, "each row once");
    }

    /// After a restart the rows settled before it count from the start.
    #[tokio::test]
    async fn a_resumed_file_counts_the_rows_settled_before_the_restart() {
        let dir = tempfile::tempdir().unwrap();
        let progress = Arc::new(Progress::default());
        let checkpoint = crate::ledger::Checkpoint { watermark: 500, ..Default::default() };
        let mut s = settler(dir.path(), progress.clone())
            .await
            .resuming(Some(&checkpoint), Box::new(|_, _| Ok(())));
        assert_eq!(progress.rows_done.load(Ordering::Relaxed), 500);
        s.settle(row(3), crate::row::Outcome::Accepted).unwrap();
        assert_eq!(
            progress.rows_done.load(Ordering::Relaxed),
            500,
            "a row below the watermark is not counted twice"
        );
        s.settle(row(500), crate::row::Outcome::Accepted).unwrap();
        assert_eq!(progress.rows_done.load(Ordering::Relaxed), 501);
    }
}
