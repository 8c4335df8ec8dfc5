//! The files in flight with their progress, for `/status` and the console. What finished is
//! read from the ledger's history, so a restart forgets nothing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use serde::Serialize;

use crate::pipeline::Progress;

struct Entry {
    pipeline: String,
    file: String,
    started_at: String,
    started: Instant,
    progress: Arc<Progress>,
}

#[derive(Default)]
struct Inner {
    in_flight: BTreeMap<u64, Entry>,
}

#[derive(Default)]
pub struct Board {
    inner: Mutex<Inner>,
    next: AtomicU64,
}

/// Removes its file from the board when dropped.
pub struct Registered {
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut g) = get().inner.lock() {
            g.in_flight.remove(&self.id);
        }
    }
}

#[derive(Debug, Serialize)]
pub struct FileStatus {
    pub file: String,
    pub started_at: String,
    /// Rows settled so far.
    pub rows_done: u64,
    /// Rows the file holds: exact once it is read, else estimated from its bytes.
    pub rows_total: u64,
    pub rows_per_second: f64,
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// Seconds left at the pace so far, once there is a pace.
    pub eta_seconds: Option<u64>,
}

#[derive(Debug, Serialize, Default)]
pub struct PipelineStatus {
    pub in_flight: Vec<FileStatus>,
    /// The last files finished, newest first: their summaries, from the history.
    pub finished: Vec<serde_json::Value>,
}

impl Board {
    pub fn register(&self, pipeline: &str, file: &str, progress: Arc<Progress>) -> Registered {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut g) = self.inner.lock() {
            let entry = Entry {
                pipeline: pipeline.into(),
                file: file.into(),
                started_at: crate::report::now_rfc3339(),
                started: Instant::now(),
                progress,
            };
            g.in_flight.insert(id, entry);
        }
        Registered { id }
    }

    /// Per pipeline, what is in flight (`finished` is left for the caller to fill).
    pub fn snapshot(&self) -> BTreeMap<String, PipelineStatus> {
        let mut out: BTreeMap<String, PipelineStatus> = BTreeMap::new();
        let Ok(g) = self.inner.lock() else { return out };
        for e in g.in_flight.values() {
            let est = e.progress.estimate(e.started.elapsed());
            out.entry(e.pipeline.clone()).or_default().in_flight.push(FileStatus {
                file: e.file.clone(),
                started_at: e.started_at.clone(),
                rows_done: est.done,
                rows_total: est.total,
                rows_per_second: (est.per_second * 10.0).round() / 10.0,
                bytes_done: e.progress.bytes_done(),
                bytes_total: e.progress.bytes_total.load(Ordering::Relaxed),
                eta_seconds: est.left.map(|d| d.as_secs()),
            });
        }
        out
    }
}

static BOARD: OnceLock<Board> = OnceLock::new();

pub fn get() -> &'static Board {
    BOARD.get_or_init(Board::default)
}
