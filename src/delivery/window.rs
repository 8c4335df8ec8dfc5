//! Batching and the in-flight window: rows become batches at `max_rows` or `max_wait`, up to
//! `size` batches are in flight at once, and each batch's outcomes go to the settler. A batch
//! task that panics is caught here: its rows are settled `unprocessed`, never lost.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use super::engine::{all, Engine};
use crate::row::{MappedRow, Outcome, SourceRow, Stage};

/// Where settled rows go (the file's settler).
pub type Settle = Arc<dyn Fn(Vec<(SourceRow, Outcome)>) -> BoxFuture<'static, ()> + Send + Sync>;

/// Rows of a job an earlier run created, to be followed rather than sent.
pub struct Earlier {
    pub id: String,
    pub status: String,
    pub rows: Vec<MappedRow>,
}

/// How a file's window ended.
#[derive(Debug, Default)]
pub struct WindowEnd {
    /// Rows were left unsettled (shutdown): the file resumes later.
    pub interrupted: bool,
    /// Batches that stopped on a bug; their rows were settled `unprocessed`.
    pub crashed_batches: u64,
}

pub struct Window {
    pub engine: Arc<Engine>,
    pub max_rows: usize,
    pub max_wait: Duration,
    /// Batches in flight at once.
    pub size: usize,
    pub settle: Settle,
    /// Stop taking new batches (shutdown).
    pub stop: CancellationToken,
    /// Give up on batches in flight (the shutdown deadline): left unsettled for resume.
    pub abort: CancellationToken,
    pub pipeline: String,
}

impl Window {
    /// Batches in flight for a connection of this many request slots: a batch spends most of
    /// its life waiting between polls, holding no slot.
    pub fn size_for(max_in_flight: usize) -> usize {
        max_in_flight * 4
    }

    pub async fn run(
        self,
        rows: mpsc::Receiver<MappedRow>,
        earlier: mpsc::Receiver<Earlier>,
    ) -> WindowEnd {
        let this = Arc::new(self);
        let max_rows =
            this.engine.adapter.max_rows().map_or(this.max_rows, |m| m.min(this.max_rows));
        let slots = Arc::new(Semaphore::new(this.size.max(1)));
        let mut batches = std::pin::pin!(tokio_stream::StreamExt::chunks_timeout(
            ReceiverStream::new(rows),
            max_rows.max(1),
            this.max_wait
        ));
        let mut earlier = ReceiverStream::new(earlier);
        let mut running = Running::default();
        let dropped = Arc::new(AtomicBool::new(false));
        loop {
            let (job, rows) = tokio::select! {
                Some(rows) = batches.next() => (Job::New, rows),
                Some(e) = earlier.next() => (Job::Earlier { id: e.id, status: e.status }, e.rows),
                Some(done) = running.tasks.join_next_with_id(), if !running.tasks.is_empty() => {
                    running.done(done, &this.settle).await;
                    continue;
                }
                else => break,
            };
            if this.stop.is_cancelled() {
                // Shutting down: batches in flight finish, new ones are not started.
                dropped.store(true, Ordering::Relaxed);
                continue;
            }
            let Ok(slot) = slots.clone().acquire_owned().await else { break };
            let rows = Arc::new(rows);
            let task = {
                let (this, rows, dropped) = (this.clone(), rows.clone(), dropped.clone());
                async move {
                    this.one(job, &rows, &dropped).await;
                    drop(slot);
                }
            };
            let handle = running.tasks.spawn(task);
            running.rows.insert(handle.id(), rows);
        }
        while let Some(done) = running.tasks.join_next_with_id().await {
            running.done(done, &this.settle).await;
        }
        WindowEnd {
            interrupted: dropped.load(Ordering::Relaxed) || this.abort.is_cancelled(),
            crashed_batches: running.crashed.load(Ordering::Relaxed),
        }
    }

    /// One batch to its outcomes; at the shutdown deadline it is left unsettled.
    async fn one(&self, job: Job, rows: &[MappedRow], dropped: &AtomicBool) {
        let metrics = crate::metrics::get();
        metrics.batch_in_flight(&self.pipeline, 1);
        let outcomes = tokio::select! {
            _ = self.abort.cancelled() => None,
            o = async {
                match &job {
                    Job::New => self.engine.deliver(rows).await,
                    Job::Earlier { id, status } => self.engine.resume(id, status, rows).await,
                }
            } => Some(o),
        };
        metrics.batch_in_flight(&self.pipeline, -1);
        match outcomes {
            Some(o) => (self.settle)(pair(rows, o)).await,
            None => dropped.store(true, Ordering::Relaxed),
        }
    }
}

/// What to do with a batch's rows.
enum Job {
    New,
    /// Follow the job an earlier run created for them.
    Earlier {
        id: String,
        status: String,
    },
}

/// Batches in flight, with their rows kept so a batch that panics can still be settled.
#[derive(Default)]
struct Running {
    tasks: JoinSet<()>,
    rows: HashMap<tokio::task::Id, Arc<Vec<MappedRow>>>,
    crashed: AtomicU64,
}

impl Running {
    async fn done(
        &mut self,
        done: Result<(tokio::task::Id, ()), tokio::task::JoinError>,
        settle: &Settle,
    ) {
        let (id, failed) = match done {
            Ok((id, ())) => (id, None),
            Err(e) => (e.id(), Some(e)),
        };
        let rows = self.rows.remove(&id);
        let (Some(e), Some(rows)) = (failed, rows) else { return };
        if e.is_cancelled() {
            return;
        }
        self.crashed.fetch_add(1, Ordering::Relaxed);
        tracing::error!(error = %e, rows = rows.len(), "a batch stopped on an internal error; its rows are reported unprocessed");
        let msg = format!("an internal error stopped this row's batch ({e}); whether it reached the CRM is not known: check before dropping it again");
        settle(pair(&rows, all(rows.len(), Stage::Unprocessed, &msg))).await;
    }
}

fn pair(rows: &[MappedRow], outcomes: Vec<Outcome>) -> Vec<(SourceRow, Outcome)> {
    rows.iter().map(|r| r.source.clone()).zip(outcomes).collect()
}
