//! The in-flight window: rows become batches ([`Batcher`]: by partition, at `max_rows` or
//! `max_wait`, never one upsert key twice), up to `size` batches are in flight at once, and
//! each batch's outcomes go to the settler. A batch task that panics is caught here: its
//! rows are settled `unconfirmed` (its create may have gone out), never lost.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::batcher::{Batch, Batcher};
use super::connection::Connection;
use super::engine::{all, Engine, Outcomes};
use crate::row::{Failure, MappedRow, Outcome, SourceRow, Stage};

/// Rows a file holds in flight at most once the CRM's pace is known, however slow its jobs:
/// they wait in memory (20,000 rows of a kilobyte: 20 MB). The least is 4 batches a slot.
pub const MOST_ROWS_IN_FLIGHT: usize = 20_000;

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
    /// Batches that stopped on a bug; their rows were settled `unconfirmed`.
    pub crashed_batches: u64,
    /// The connection's credentials were refused: rows were left unsettled, and the file
    /// holds at its checkpoint until they are accepted.
    pub held: bool,
}

/// What the batches in flight tell the window.
#[derive(Default)]
struct Flags {
    /// Rows were left unsettled (shutdown, or held).
    dropped: AtomicBool,
    held: AtomicBool,
}

pub struct Window {
    pub engine: Arc<Engine>,
    pub max_rows: usize,
    pub max_wait: Duration,
    /// Batches in flight at once.
    pub size: usize,
    pub settle: Settle,
    /// Stop taking new batches (shutdown). Cancelled by the window itself when the
    /// connection holds (refused credentials), so the file's reader stops too.
    pub stop: CancellationToken,
    /// Give up on batches in flight (the shutdown deadline): left unsettled for resume.
    pub abort: CancellationToken,
    /// Rows held by refused credentials can wait for a resume (the daemon, with its ledger).
    /// Without one (`once`), they are settled `unprocessed`, saying why.
    pub holds: bool,
    pub pipeline: String,
}

impl Window {
    /// Batches in flight at once on `conn` for `target`: at least four per request slot (a
    /// batch spends most of its life waiting for its job, holding no slot). Once the CRM's
    /// pace is known, as many as keep the rate busy when each job costs a create and one
    /// poll (Little's law: the creates' share of the rate times a job's life, a quarter more
    /// for the spread): polls not made are spent on creates. At most
    /// [`MOST_ROWS_IN_FLIGHT`] rows: they wait in memory.
    pub fn size_for(conn: &Connection, target: &str, max_rows: usize) -> usize {
        let settings = conn.settings();
        let least = settings.max_in_flight.saturating_mul(4).max(1);
        let most = (MOST_ROWS_IN_FLIGHT / max_rows.max(1)).max(least);
        let pacer = conn.pacer(target);
        let estimate = pacer.estimate();
        if !estimate.known() {
            return least;
        }
        let trip = 2.0 * pacer.half_trip().as_secs_f64();
        let life = estimate.quantile(max_rows as f64) + 3.0 * trip;
        let creates_per_s = settings.rate_limit.per_second() / 2.0;
        let wanted = (creates_per_s * life * 1.25).ceil();
        match wanted.is_finite() && wanted > 0.0 {
            true => (wanted.min(most as f64) as usize).clamp(least, most),
            false => least,
        }
    }

    pub async fn run(
        self,
        mut rows: mpsc::Receiver<MappedRow>,
        mut earlier: mpsc::Receiver<Earlier>,
    ) -> WindowEnd {
        let this = Arc::new(self);
        let max_rows =
            this.engine.adapter.max_rows().map_or(this.max_rows, |m| m.min(this.max_rows));
        let mut batcher = Batcher::new(max_rows, this.max_wait);
        let slots = Arc::new(Semaphore::new(this.size.max(1)));
        let mut running = Running::default();
        let flags = Arc::new(Flags::default());
        let mut reading = true;
        loop {
            let close_at = batcher.next_close();
            let ready: Vec<Job> = tokio::select! {
                row = rows.recv(), if reading => match row {
                    Some(row) => batcher.push(row, Instant::now()).map(Job::New).into_iter().collect(),
                    None => {
                        reading = false;
                        batcher.drain().into_iter().map(Job::New).collect()
                    }
                },
                _ = tokio::time::sleep_until(close_at.unwrap_or_else(Instant::now)), if close_at.is_some() => {
                    batcher.due(Instant::now()).into_iter().map(Job::New).collect()
                }
                Some(e) = earlier.recv() => vec![Job::Earlier { id: e.id, status: e.status, rows: e.rows }],
                Some(done) = running.tasks.join_next_with_id(), if !running.tasks.is_empty() => {
                    running.done(done, &this.settle).await;
                    continue;
                }
                else => break,
            };
            for job in ready {
                if this.stop.is_cancelled() {
                    // Shutting down: batches in flight finish, new ones are not started.
                    flags.dropped.store(true, Ordering::Relaxed);
                    continue;
                }
                let Ok(slot) = slots.clone().acquire_owned().await else { break };
                running.spawn(job, slot, &this, &flags);
            }
        }
        while let Some(done) = running.tasks.join_next_with_id().await {
            running.done(done, &this.settle).await;
        }
        this.engine.pacer.flush();
        WindowEnd {
            interrupted: flags.dropped.load(Ordering::Relaxed) || this.abort.is_cancelled(),
            crashed_batches: running.crashed.load(Ordering::Relaxed),
            held: flags.held.load(Ordering::Relaxed),
        }
    }

    /// One batch to its outcomes; at the shutdown deadline it is left unsettled.
    async fn one(&self, job: &Job, waits: Vec<CancellationToken>, flags: &Flags) {
        let metrics = crate::metrics::get();
        metrics.batch_in_flight(&self.pipeline, 1);
        let rows = job.rows();
        let outcomes = tokio::select! {
            _ = self.abort.cancelled() => None,
            o = async {
                for w in waits {
                    w.cancelled().await;
                }
                match job {
                    Job::New(batch) => with_repeats(batch, self.engine.deliver(&batch.rows).await),
                    Job::Earlier { id, status, rows } => self.engine.resume(id, status, rows).await,
                }
            } => Some(o),
        };
        metrics.batch_in_flight(&self.pipeline, -1);
        let Some(outcomes) = outcomes else {
            flags.dropped.store(true, Ordering::Relaxed);
            return;
        };
        let held = outcomes.iter().any(Option::is_none);
        if held && !self.holds {
            let why = self.engine.conn.auth_failure().unwrap_or_default();
            let msg = format!("connection `{}` was refused authentication ({why}); fix its credentials and drop this row again", self.engine.conn.name());
            let unprocessed = Outcome::Failed(Failure::new(Stage::Unprocessed, None, msg));
            let settled = rows.iter().zip(outcomes);
            let settled =
                settled.map(|(r, o)| (r.source.clone(), o.unwrap_or(unprocessed.clone())));
            return (self.settle)(settled.collect()).await;
        }
        let settled: Vec<(SourceRow, Outcome)> =
            rows.iter().zip(outcomes).filter_map(|(r, o)| Some((r.source.clone(), o?))).collect();
        if !settled.is_empty() {
            (self.settle)(settled).await;
        }
        if held {
            // Refused credentials: the rest of the file waits with these rows.
            flags.held.store(true, Ordering::Relaxed);
            flags.dropped.store(true, Ordering::Relaxed);
            self.stop.cancel();
        }
    }
}

/// What to do with a batch's rows.
enum Job {
    New(Batch),
    /// Follow the job an earlier run created for them.
    Earlier {
        id: String,
        status: String,
        rows: Vec<MappedRow>,
    },
}

impl Job {
    fn rows(&self) -> &[MappedRow] {
        match self {
            Job::New(batch) => &batch.rows,
            Job::Earlier { rows, .. } => rows,
        }
    }
}

/// A repeated key's row that arrived is saved with a warning naming the earlier line.
fn with_repeats(batch: &Batch, mut outcomes: Outcomes) -> Outcomes {
    for &(seq, first_line) in &batch.repeats {
        let Some(i) = batch.rows.iter().position(|r| r.source.seq == seq) else { continue };
        let Some(Some(outcome)) = outcomes.get_mut(i) else { continue };
        let note = format!(
            "the same key `{}` as line {first_line}: both were sent, this row after that one, so its values are the ones kept",
            batch.rows[i].key
        );
        *outcome = match std::mem::replace(outcome, Outcome::Accepted) {
            Outcome::Accepted => Outcome::Warned(Failure::new(Stage::Warning, None, note)),
            Outcome::Warned(mut w) => {
                w.messages.push(note);
                Outcome::Warned(w)
            }
            failed => failed,
        };
    }
    outcomes
}

/// Batches in flight, with their rows kept so a batch that panics can still be settled.
#[derive(Default)]
struct Running {
    tasks: JoinSet<()>,
    rows: HashMap<tokio::task::Id, Arc<Job>>,
    /// New batches not yet ended, by number: fired when each ends.
    open: BTreeMap<u64, CancellationToken>,
    crashed: AtomicU64,
}

impl Running {
    fn spawn(
        &mut self,
        job: Job,
        slot: tokio::sync::OwnedSemaphorePermit,
        window: &Arc<Window>,
        flags: &Arc<Flags>,
    ) {
        self.open.retain(|_, ended| !ended.is_cancelled());
        let (waits, ended) = match &job {
            Job::New(batch) => {
                let waits = match batch.repeats.is_empty() {
                    true => Vec::new(),
                    false => self.open.range(..batch.number).map(|(_, t)| t.clone()).collect(),
                };
                let ended = CancellationToken::new();
                self.open.insert(batch.number, ended.clone());
                (waits, Some(ended))
            }
            Job::Earlier { .. } => (Vec::new(), None),
        };
        let job = Arc::new(job);
        let task = {
            let (window, job, flags) = (window.clone(), job.clone(), flags.clone());
            async move {
                // Fires however the task ends, a panic included.
                let _ended = ended.map(CancellationToken::drop_guard);
                window.one(&job, waits, &flags).await;
                drop(slot);
            }
        };
        let handle = self.tasks.spawn(task);
        self.rows.insert(handle.id(), job);
    }

    async fn done(
        &mut self,
        done: Result<(tokio::task::Id, ()), tokio::task::JoinError>,
        settle: &Settle,
    ) {
        let (id, failed) = match done {
            Ok((id, ())) => (id, None),
            Err(e) => (e.id(), Some(e)),
        };
        let job = self.rows.remove(&id);
        let (Some(e), Some(job)) = (failed, job) else { return };
        if e.is_cancelled() {
            return;
        }
        let rows = job.rows();
        self.crashed.fetch_add(1, Ordering::Relaxed);
        tracing::error!(error = %e, rows = rows.len(), "a batch stopped on an internal error; its rows are reported unconfirmed");
        let msg = format!("an internal error stopped this row's batch ({e}); it may have reached the CRM: check before dropping it again");
        settle(pair(rows, all(rows.len(), Stage::Unconfirmed, &msg))).await;
    }
}

fn pair(rows: &[MappedRow], outcomes: Vec<Outcome>) -> Vec<(SourceRow, Outcome)> {
    rows.iter().map(|r| r.source.clone()).zip(outcomes).collect()
}
