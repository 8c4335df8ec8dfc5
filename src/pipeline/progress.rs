//! How far a file has got: read by progress bars, logs and `/status`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct Progress {
    pub rows_done: AtomicU64,
    pub bytes_total: AtomicU64,
    /// Bytes read from the source, shared with the reader.
    pub bytes_read: std::sync::Mutex<Option<Arc<AtomicU64>>>,
}

impl Progress {
    pub fn rows_done(&self, rows: u64) {
        self.rows_done.fetch_add(rows, Ordering::Relaxed);
    }

    pub fn bytes_done(&self) -> u64 {
        self.bytes_read
            .lock()
            .ok()
            .and_then(|g| g.as_ref().map(|b| b.load(Ordering::Relaxed)))
            .unwrap_or(0)
    }

    pub fn percent(&self) -> u64 {
        let total = self.bytes_total.load(Ordering::Relaxed);
        if total == 0 {
            return 0;
        }
        (self.bytes_done() * 100 / total).min(100)
    }
}
