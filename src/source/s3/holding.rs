//! A lease held while its object is processed: the object's progress travels with it, and it
//! decides how long this daemon may send for the object (SPEC §7).
//!
//! - **Progress.** The ledger hands the holding every record of the object ([`Mirror`]); one
//!   writer task writes them into the lease, always conditionally (`If-Match` on the ETag it
//!   last wrote), so only the holder can. Writes are coalesced: one write carries everything
//!   recorded before it, and a write happens only when something waits on it (the
//!   write-ahead record of a create, a job before its steps, a checkpoint that moved the
//!   settled line, the last checkpoint), or when the lease is due for renewal (every third
//!   of `lease_ttl`). So the lease has every checkpoint the ledger takes (one every 250 ms
//!   at most while rows settle), one write at a time. A create goes out only once
//!   its write-ahead record is in the bucket, so a takeover always knows what may have been
//!   sent.
//! - **Fencing.** The lease is valid until `t0 + lease_ttl - margin`, `t0` being when its
//!   last successful write was sent (this machine's monotonic clock). At that deadline, or
//!   as soon as a write finds the lease taken (a failed condition), the object's tokens are
//!   cancelled: no create leaves after it, the batches in flight are dropped, and nothing
//!   waiting on the holding is released. The daemon then abandons the object quietly.
//!
//! A write-ahead record is kept until the settled line passes its rows, even once its create
//! ended: between that end and the checkpoint that settles the rows, a takeover still treats
//! them as in flight rather than as never sent.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::lease::{self, LeaseStore, Refused, PARTS};
use super::progress::{
    fold_earlier, max_of, to_ranges, Job, Pending, Progress, Ranges, ReportPart, Segment,
};
use crate::ledger::{Checkpoint, Mirror, Resume};
use crate::report::RemoteJobs;
use crate::row::RemoteJob;

/// A report tail longer than this goes into a segment object of its own, so the lease stays
/// small (each write carries the tail).
pub const TAIL_MAX: usize = 16 << 10;
/// Bytes of a local partial report read at once.
const READ_CHUNK: u64 = 1 << 20;
/// How long a stopping file (shutdown) waits for its last checkpoint to reach the lease; the
/// ledger has it either way.
const STOPPING_WAIT: Duration = Duration::from_secs(5);

/// Why the holding ended before the object was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// A write found the lease taken: another daemon holds it now.
    Lost,
    /// No write succeeded before the deadline: another daemon may take it once it expires.
    Fenced,
}

impl Ended {
    pub fn message(self) -> &'static str {
        match self {
            Ended::Lost => "the lease was taken by another daemon",
            Ended::Fenced => "the lease could not be renewed before its deadline",
        }
    }
}

/// What the holding needs to know of the object.
pub struct Holder {
    pub store: Arc<dyn LeaseStore>,
    pub lease: lease::Lease,
    /// When the write that took the lease was sent.
    pub taken_at: Instant,
    pub owner: String,
    pub ttl: Duration,
    /// The object's own ETag (the version its progress is for).
    pub object_etag: String,
    /// The progress the lease carried when taken: written back as it is until a run
    /// [begins](Holding::begin), so that renewals never replace it with an empty record.
    pub carried: Option<Progress>,
    /// Where the object's partial reports are kept locally.
    pub report_dir: PathBuf,
    /// The target's jobs have steps after their create (a Plannr import is mapped, then
    /// started): a job's record is in the lease before them, or a takeover could create and
    /// start the import again. Without steps (a Repsly job) the record goes with the next
    /// write; until then a takeover sends the rows again, which an upsert makes harmless.
    pub jobs_have_steps: bool,
    /// The object's file tokens: cancelled when the holding ends.
    pub stop: CancellationToken,
    pub abort: CancellationToken,
}

pub struct Holding {
    store: Arc<dyn LeaseStore>,
    key: String,
    owner: String,
    ttl: Duration,
    margin: Duration,
    report_dir: PathBuf,
    jobs_have_steps: bool,
    state: Mutex<State>,
    parts: tokio::sync::Mutex<[Part; 2]>,
    wake: Notify,
    /// The version of the record last written.
    durable: watch::Sender<u64>,
    ended: CancellationToken,
    why: Arc<Mutex<Option<Ended>>>,
    stop: CancellationToken,
    abort: CancellationToken,
    /// The daemon is done with the object: the writer stops.
    closed: CancellationToken,
}

struct State {
    etag: String,
    /// Bumped by every change of the record.
    version: u64,
    /// The highest version something waits on.
    wanted: u64,
    last_ok: Instant,
    valid_until: Instant,
    /// Written as it is until [`Holding::begin`] (see [`Holder::carried`]).
    carried: Option<Progress>,
    record: Record,
}

/// The object's progress as recorded here.
#[derive(Default)]
struct Record {
    object_etag: String,
    report_stem: String,
    started_at: String,
    attempts: u32,
    /// The settled line this run started from: attempts go back to 0 once it moves.
    start_watermark: u64,
    checkpoint: Checkpoint,
    jobs: BTreeMap<String, (String, Ranges)>,
    pending: BTreeMap<u64, Ranges>,
    /// Jobs all of whose rows are settled: counted for the summary.
    earlier: RemoteJobs,
}

/// A partial report as the lease holds it: segments written, then the tail.
struct Part {
    path: PathBuf,
    which: &'static str,
    /// Names this run's segments (a run that starts again may write other bytes).
    run: u64,
    segments: Vec<Segment>,
    tail: Vec<u8>,
}

impl Part {
    fn held(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum::<u64>() + self.tail.len() as u64
    }

    fn to_part(&self) -> ReportPart {
        ReportPart {
            bytes: self.held(),
            segments: self.segments.clone(),
            tail: base64::engine::general_purpose::STANDARD.encode(&self.tail),
        }
    }
}

/// How a run of the object starts: from an earlier run's record, if any, with the report
/// parts the lease already holds when they are of that record.
pub struct Start<'a> {
    pub resume: Option<&'a Resume>,
    pub parts: Option<&'a Progress>,
    pub report_stem: &'a str,
    pub started_at: &'a str,
}

impl Holding {
    /// Holds `lease` from now on: its writer task runs until [`Holding::close`].
    pub fn start(h: Holder) -> Arc<Self> {
        let margin = h.ttl / 6;
        let part = |which| Part {
            path: PathBuf::new(),
            which,
            run: fastrand::u64(..),
            segments: Vec::new(),
            tail: Vec::new(),
        };
        let me = Arc::new(Self {
            store: h.store,
            key: h.lease.key,
            owner: h.owner,
            ttl: h.ttl,
            margin,
            report_dir: h.report_dir,
            jobs_have_steps: h.jobs_have_steps,
            state: Mutex::new(State {
                etag: h.lease.etag,
                version: 0,
                wanted: 0,
                last_ok: h.taken_at,
                valid_until: h.taken_at + h.ttl.saturating_sub(margin),
                carried: h.carried,
                record: Record { object_etag: h.object_etag, ..Record::default() },
            }),
            parts: tokio::sync::Mutex::new([part("errors"), part("warnings")]),
            wake: Notify::new(),
            durable: watch::Sender::new(0),
            ended: CancellationToken::new(),
            why: Arc::default(),
            stop: h.stop,
            abort: h.abort,
            closed: CancellationToken::new(),
        });
        tokio::spawn(me.clone().write_loop());
        me
    }

    /// Sets the record a run starts from (see [`Start`]).
    pub async fn begin(&self, start: Start<'_>) {
        let cp = start.resume.map(|r| r.checkpoint.clone()).unwrap_or_default();
        let mut parts = self.parts.lock().await;
        let limits = [cp.errors_bytes, cp.warnings_bytes];
        let given = start.parts.map(|p| [&p.errors, &p.warnings]);
        let paths = [
            crate::report::partial_name(&self.report_dir, start.report_stem),
            crate::report::warnings_partial_name(&self.report_dir, start.report_stem),
        ];
        for (i, (part, path)) in parts.iter_mut().zip(paths).enumerate() {
            part.run = fastrand::u64(..);
            part.path = path;
            match given.map(|g| g[i]).filter(|g| g.bytes <= limits[i]) {
                Some(g) => {
                    part.segments = g.segments.clone();
                    part.tail = g.tail_bytes().unwrap_or_default();
                }
                None if part.held() <= limits[i] => {}
                None => {
                    part.segments.clear();
                    part.tail.clear();
                }
            }
        }
        let mut s = self.lock();
        s.carried = None;
        let r = &mut s.record;
        r.report_stem = start.report_stem.to_string();
        r.started_at = start.started_at.to_string();
        r.attempts = start.resume.map_or(1, |r| r.attempts);
        r.start_watermark = cp.watermark;
        r.checkpoint = cp;
        r.jobs = start
            .resume
            .iter()
            .flat_map(|r| &r.jobs)
            .map(|j| (j.id.clone(), (j.status.clone(), to_ranges(&j.seqs))))
            .collect();
        r.pending = start
            .resume
            .iter()
            .flat_map(|r| &r.pending)
            .map(|(t, seqs)| (*t, to_ranges(seqs)))
            .collect();
        r.earlier = start.resume.map(|r| r.earlier_jobs.clone()).unwrap_or_default();
        s.version += 1;
    }

    /// Why the holding ended, if it did (the object must then be left alone).
    pub fn ended(&self) -> Option<Ended> {
        self.why.lock().ok().and_then(|w| *w)
    }

    /// Whether this daemon may still act for the object: it holds the lease by its deadline.
    pub fn valid(&self) -> bool {
        self.ended().is_none() && Instant::now() < self.lock().valid_until
    }

    /// Stops the writer (the object is done with; its lease is released or left to expire).
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// The lease key and the ETag last written (to release it).
    pub fn lease(&self) -> lease::Lease {
        lease::Lease { key: self.key.clone(), etag: self.lock().etag.clone() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Changes the record; with `wait`, the next write is wanted now. Returns the version.
    fn change(&self, wait: bool, f: impl FnOnce(&mut Record)) -> u64 {
        let version = {
            let mut s = self.lock();
            f(&mut s.record);
            s.version += 1;
            if wait {
                s.wanted = s.version;
            }
            s.version
        };
        if wait {
            self.wake.notify_one();
        }
        version
    }

    /// Resolves once `version` is written; never, if the holding ends first.
    fn until_written(&self, version: u64) -> BoxFuture<'static, ()> {
        let written = self.written(version);
        async move {
            if written.await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        .boxed()
    }

    /// `Ok` once `version` is written, `Err` if the holding ends first.
    fn written(&self, version: u64) -> BoxFuture<'static, Result<(), Ended>> {
        let mut rx = self.durable.subscribe();
        let (ended, why) = (self.ended.clone(), self.why.clone());
        async move {
            let done = tokio::select! {
                biased;
                _ = ended.cancelled() => false,
                r = rx.wait_for(|d| *d >= version) => r.is_ok(),
            };
            match why.lock().ok().and_then(|w| *w) {
                Some(e) => Err(e),
                None if done => Ok(()),
                // The holding was dropped: nothing will be written any more.
                None => Err(Ended::Lost),
            }
        }
        .boxed()
    }

    /// Ends the holding (the first reason stays): the object's tokens are cancelled.
    fn end(&self, why: Ended) {
        if let Ok(mut w) = self.why.lock() {
            if w.is_some() {
                return;
            }
            *w = Some(why);
        }
        match why {
            Ended::Lost => {
                tracing::error!(lease = %self.key, "the lease was taken by another daemon: stopping this object, which is resumed by the daemon that holds it now")
            }
            Ended::Fenced => {
                tracing::error!(lease = %self.key, "the lease could not be renewed before its deadline: stopped sending for this object (another daemon may take it over once the lease expires)")
            }
        }
        self.ended.cancel();
        self.stop.cancel();
        self.abort.cancel();
    }

    /// The next write's due time and the deadline, and whether something waits on a write.
    fn schedule(&self) -> (Instant, Instant, bool) {
        let s = self.lock();
        let behind = s.wanted > *self.durable.borrow();
        (s.last_ok + self.ttl / 3, s.valid_until, behind)
    }

    /// Writes the lease whenever something waits on it or it is due, until closed or ended.
    async fn write_loop(self: Arc<Self>) {
        let mut failures = 0u32;
        loop {
            let (due, deadline, behind) = self.schedule();
            if !behind && Instant::now() < due {
                tokio::select! {
                    biased;
                    _ = self.closed.cancelled() => return,
                    _ = self.ended.cancelled() => return,
                    _ = tokio::time::sleep_until(deadline) => {}
                    _ = tokio::time::sleep_until(due) => {}
                    _ = self.wake.notified() => {}
                }
                // Woken: by what, is seen at the top.
                continue;
            }
            let deadline = self.lock().valid_until;
            if self.closed.is_cancelled() || self.ended.is_cancelled() {
                return;
            }
            if Instant::now() >= deadline {
                return self.end(Ended::Fenced);
            }
            let written = tokio::select! {
                biased;
                _ = self.closed.cancelled() => return,
                _ = tokio::time::sleep_until(deadline) => return self.end(Ended::Fenced),
                w = self.write_once() => w,
            };
            match written {
                Ok(()) => failures = 0,
                Err(Refused::Taken) => return self.end(Ended::Lost),
                Err(Refused::Failed(e)) => {
                    failures += 1;
                    tracing::warn!(lease = %self.key, attempt = failures, error = %e, "could not write the lease; trying again before its deadline");
                    let next = (Instant::now() + retry_wait(failures)).min(self.lock().valid_until);
                    tokio::select! {
                        _ = self.closed.cancelled() => return,
                        _ = tokio::time::sleep_until(next) => {}
                    }
                }
            }
        }
    }

    /// One conditional write of the lease with the record as it is now.
    async fn write_once(&self) -> Result<(), Refused> {
        let mut parts = self.parts.lock().await;
        let (version, carried, mut progress, etag) = {
            let mut s = self.lock();
            let progress = self.snapshot(&mut s.record);
            (s.version, s.carried.clone(), progress, s.etag.clone())
        };
        if let Some(carried) = carried {
            drop(parts);
            return self.put(version, &carried, &etag).await;
        }
        let wanted = [progress.errors.bytes, progress.warnings.bytes];
        for (part, want) in parts.iter_mut().zip(wanted) {
            self.fill(part, want).await.map_err(Refused::Failed)?;
        }
        progress.errors = parts[0].to_part();
        progress.warnings = parts[1].to_part();
        drop(parts);
        self.put(version, &progress, &etag).await
    }

    /// Writes `progress` into the lease if it still has `etag`; then it is valid for
    /// another `lease_ttl - margin` from when the write was sent.
    async fn put(&self, version: u64, progress: &Progress, etag: &str) -> Result<(), Refused> {
        let body = lease::body(&self.owner, self.ttl, Some(progress));
        let sent = Instant::now();
        let etag = self.store.replace(&self.key, etag, body).await?;
        {
            let mut s = self.lock();
            s.etag = etag;
            s.last_ok = sent;
            s.valid_until = sent + self.ttl.saturating_sub(self.margin);
        }
        self.durable.send_if_modified(|d| {
            let newer = version > *d;
            if newer {
                *d = version;
            }
            newer
        });
        Ok(())
    }

    /// The record as a progress (report parts still to fill in); jobs and write-ahead
    /// records wholly below the settled line are dropped from the record for good.
    fn snapshot(&self, r: &mut Record) -> Progress {
        let cp = &r.checkpoint;
        let line = cp.watermark;
        let settled: Vec<String> = r
            .jobs
            .iter()
            .filter(|(_, (_, seqs))| max_of(seqs).is_none_or(|m| m < line))
            .map(|(id, _)| id.clone())
            .collect();
        for id in settled {
            if let Some((status, seqs)) = r.jobs.remove(&id) {
                let rows = super::progress::from_ranges(&seqs).len();
                fold_earlier(&mut r.earlier, RemoteJob { id, status, rows });
            }
        }
        r.pending.retain(|_, seqs| max_of(seqs).is_some_and(|m| m >= line));
        Progress {
            writer: self.owner.clone(),
            etag: r.object_etag.clone(),
            report_stem: r.report_stem.clone(),
            started_at: r.started_at.clone(),
            attempts: r.attempts,
            watermark: line,
            counts: cp.counts.clone(),
            failed_by_stage: cp.failed_by_stage.clone(),
            jobs: r
                .jobs
                .iter()
                .map(|(id, (status, seqs))| Job {
                    id: id.clone(),
                    status: status.clone(),
                    seqs: seqs.clone(),
                })
                .collect(),
            pending: r
                .pending
                .iter()
                .map(|(token, seqs)| Pending { token: *token, seqs: seqs.clone() })
                .collect(),
            errors: ReportPart { bytes: cp.errors_bytes, ..ReportPart::default() },
            warnings: ReportPart { bytes: cp.warnings_bytes, ..ReportPart::default() },
            earlier_jobs: r.earlier.clone(),
        }
    }

    /// Brings a report part up to `want` bytes from its local file; a tail past
    /// [`TAIL_MAX`] becomes a segment object. A local report shorter than the checkpoint
    /// says (removed by hand) is said, and the part stays as it is.
    async fn fill(&self, part: &mut Part, want: u64) -> Result<(), String> {
        while part.held() < want {
            let from = part.held();
            let chunk = match read_at(&part.path, from, (want - from).min(READ_CHUNK)).await {
                Ok(c) if !c.is_empty() => c,
                Ok(_) | Err(_) => {
                    tracing::warn!(report = %part.path.display(), bytes = want, "the partial report is shorter than its checkpoint; the lease keeps what it has of it");
                    return Ok(());
                }
            };
            part.tail.extend_from_slice(&chunk);
            while part.tail.len() >= TAIL_MAX {
                // Always TAIL_MAX bytes from where the last one ended, named by this run: a
                // write tried again writes the same bytes under the same name.
                let start = part.held() - part.tail.len() as u64;
                let key = format!(
                    "{}{PARTS}{}/{:016x}/{}-{start:020}",
                    self.key, self.owner, part.run, part.which
                );
                self.store.create_part(&key, part.tail[..TAIL_MAX].to_vec()).await?;
                part.segments.push(Segment { key, len: TAIL_MAX as u64 });
                part.tail.drain(..TAIL_MAX);
            }
        }
        Ok(())
    }
}

/// `len` bytes of `path` from `from` (fewer at its end).
async fn read_at(path: &std::path::Path, from: u64, len: u64) -> std::io::Result<Vec<u8>> {
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(std::io::SeekFrom::Start(from)).await?;
    let mut out = Vec::new();
    file.take(len).read_to_end(&mut out).await?;
    Ok(out)
}

/// The wait before trying a failed write again: 250 ms doubling to 4 s (the deadline, not
/// the count of tries, ends the trying).
fn retry_wait(failures: u32) -> Duration {
    Duration::from_millis(250).saturating_mul(1 << failures.saturating_sub(1).min(4))
}

impl Mirror for Holding {
    fn sending(&self, token: u64, seqs: &[u64]) -> BoxFuture<'static, ()> {
        let ranges = to_ranges(seqs);
        let version = self.change(true, |r| {
            r.pending.insert(token, ranges);
        });
        self.until_written(version)
    }

    /// The record stays until the settled line passes its rows (see the module's header).
    fn abandoned(&self, _token: u64) {}

    fn job_started(
        &self,
        token: Option<u64>,
        job: &str,
        seqs: &[u64],
        status: &str,
    ) -> BoxFuture<'static, ()> {
        // Only a step depends on the record (see `Holder::jobs_have_steps`); a record of a
        // contact detail goes with the next write, and until then a takeover counts its row
        // as in flight (unconfirmed), never sent again.
        let wait = self.jobs_have_steps && status != crate::delivery::engine::RECORDED;
        let entry = (status.to_string(), to_ranges(seqs));
        let version = self.change(wait, |r| {
            if let Some(t) = token {
                r.pending.remove(&t);
            }
            r.jobs.insert(job.to_string(), entry);
        });
        if wait {
            self.until_written(version)
        } else {
            std::future::ready(()).boxed()
        }
    }

    fn job_status(&self, job: &str, status: &str) {
        self.change(false, |r| {
            if let Some(j) = r.jobs.get_mut(job) {
                j.0 = status.to_string();
            }
        });
    }

    fn checkpoint(&self, cp: &Checkpoint) {
        // Written as often as the ledger's own checkpoint (coalesced with any write under way).
        let moved = cp.watermark > self.lock().record.checkpoint.watermark;
        self.change(moved, |r| record_checkpoint(r, cp));
    }

    fn checkpoint_committed(&self, cp: &Checkpoint) -> Result<(), String> {
        if let Some(why) = self.ended() {
            return Err(why.message().to_string());
        }
        let version = self.change(true, |r| record_checkpoint(r, cp));
        let written = self.written(version);
        let stopping = self.stop.is_cancelled();
        let handle = tokio::runtime::Handle::try_current().map_err(|e| e.to_string())?;
        let result = handle.block_on(async move {
            if !stopping {
                return written.await;
            }
            // Stopping (shutdown): the ledger has the checkpoint; the lease gets it if it can
            // be written soon, else keeps the one before (any checkpoint is one to resume from).
            tokio::time::timeout(STOPPING_WAIT, written).await.unwrap_or(Ok(()))
        });
        result.map_err(|e| e.message().to_string())
    }
}

fn record_checkpoint(r: &mut Record, cp: &Checkpoint) {
    if cp.watermark > r.start_watermark {
        r.attempts = 0;
    }
    r.checkpoint = cp.clone();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::JobRecord;

    /// A lease store in memory: each write takes `latency`, then succeeds, fails or finds
    /// the lease taken, as set.
    #[derive(Default)]
    struct FakeStore {
        writes: Mutex<Vec<(Instant, serde_json::Value)>>,
        parts: Mutex<BTreeMap<String, Vec<u8>>>,
        answer: Mutex<Answer>,
        latency: Duration,
    }

    #[derive(Default, Clone, Copy, PartialEq)]
    enum Answer {
        #[default]
        Ok,
        Fail,
        Taken,
    }

    impl FakeStore {
        fn set(&self, a: Answer) {
            *self.answer.lock().unwrap() = a;
        }
        fn writes(&self) -> Vec<(Instant, serde_json::Value)> {
            self.writes.lock().unwrap().clone()
        }
        fn last(&self) -> serde_json::Value {
            self.writes().last().unwrap().1.clone()
        }
    }

    impl LeaseStore for FakeStore {
        fn replace<'a>(
            &'a self,
            _key: &'a str,
            _etag: &'a str,
            body: Vec<u8>,
        ) -> BoxFuture<'a, Result<String, Refused>> {
            async move {
                tokio::time::sleep(self.latency).await;
                match *self.answer.lock().unwrap() {
                    Answer::Ok => {}
                    Answer::Fail => return Err(Refused::Failed("injected".into())),
                    Answer::Taken => return Err(Refused::Taken),
                }
                let mut w = self.writes.lock().unwrap();
                w.push((Instant::now(), serde_json::from_slice(&body).unwrap()));
                Ok(format!("etag-{}", w.len()))
            }
            .boxed()
        }

        fn create_part<'a>(
            &'a self,
            key: &'a str,
            body: Vec<u8>,
        ) -> BoxFuture<'a, Result<(), String>> {
            self.parts.lock().unwrap().entry(key.to_string()).or_insert(body);
            std::future::ready(Ok(())).boxed()
        }
    }

    const TTL: Duration = Duration::from_secs(6);

    fn holding(store: &Arc<FakeStore>, dir: &std::path::Path) -> (Arc<Holding>, CancellationToken) {
        holding_of(store, dir, true)
    }

    fn holding_of(
        store: &Arc<FakeStore>,
        dir: &std::path::Path,
        jobs_have_steps: bool,
    ) -> (Arc<Holding>, CancellationToken) {
        let stop = CancellationToken::new();
        let h = Holding::start(Holder {
            store: store.clone(),
            lease: lease::Lease { key: "in/.leases/a.csv".into(), etag: "etag-0".into() },
            taken_at: Instant::now(),
            owner: "me".into(),
            ttl: TTL,
            object_etag: "\"obj\"".into(),
            carried: None,
            report_dir: dir.to_path_buf(),
            jobs_have_steps,
            stop: stop.clone(),
            abort: CancellationToken::new(),
        });
        (h, stop)
    }

    async fn begun(h: &Holding, resume: Option<&Resume>) {
        h.begin(Start { resume, parts: None, report_stem: "a", started_at: "t" }).await;
    }

    /// Whether `f` resolves within `d` (of paused time).
    async fn resolves<F: std::future::Future>(d: Duration, f: F) -> bool {
        tokio::time::timeout(d, f).await.is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn creates_in_flight_together_share_one_write_and_wait_for_it() {
        let store =
            Arc::new(FakeStore { latency: Duration::from_millis(40), ..Default::default() });
        let dir = tempfile::tempdir().unwrap();
        let (h, _) = holding(&store, dir.path());
        begun(&h, None).await;
        let waits: Vec<_> = (0..8u64).map(|t| h.sending(t, &[t * 10, t * 10 + 1])).collect();
        assert!(store.writes().is_empty(), "nothing written yet");
        let before = Instant::now();
        futures::future::join_all(waits).await;
        assert!(Instant::now() >= before + Duration::from_millis(40), "each waited for a write");
        assert_eq!(store.writes().len(), 1, "eight records, one write");
        let pending = store.last()["progress"]["pending"].as_array().unwrap().len();
        assert_eq!(pending, 8);
        // A job before its steps waits too; a contact detail's record does not.
        let mut job = h.job_started(Some(0), "job-1", &[0, 1], "created");
        assert!(!resolves(Duration::from_millis(10), &mut job).await, "not before its write");
        job.await;
        assert_eq!(store.writes().len(), 2);
        assert!(resolves(Duration::ZERO, h.job_started(None, "rec", &[5], "recorded")).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_without_steps_after_it_goes_with_the_next_write() {
        let store =
            Arc::new(FakeStore { latency: Duration::from_millis(40), ..Default::default() });
        let dir = tempfile::tempdir().unwrap();
        let (h, _) = holding_of(&store, dir.path(), false);
        begun(&h, None).await;
        h.sending(1, &[0, 1]).await;
        assert!(resolves(Duration::ZERO, h.job_started(Some(1), "1001", &[0, 1], "created")).await);
        h.sending(2, &[2]).await;
        let p = &store.last()["progress"];
        assert_eq!(p["jobs"][0]["id"], "1001", "carried by the next write: {p}");
        assert_eq!(p["pending"].as_array().unwrap().len(), 1, "{p}");
    }

    #[tokio::test(start_paused = true)]
    async fn each_checkpoint_that_moves_the_settled_line_is_written_one_write_at_a_time() {
        let store =
            Arc::new(FakeStore { latency: Duration::from_millis(40), ..Default::default() });
        let dir = tempfile::tempdir().unwrap();
        let (h, _) = holding(&store, dir.path());
        begun(&h, None).await;
        for line in 1..=4 {
            h.checkpoint(&Checkpoint { watermark: line, ..Default::default() });
            // One that does not move the line is not written by itself.
            h.checkpoint(&Checkpoint { watermark: line, ..Default::default() });
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Moves made while nothing was written yet go out together, in one write.
        for line in 5..=7 {
            h.checkpoint(&Checkpoint { watermark: line, ..Default::default() });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let lines: Vec<u64> =
            store.writes().iter().map(|w| w.1["progress"]["watermark"].as_u64().unwrap()).collect();
        assert_eq!(lines, [1, 2, 3, 4, 7], "every move written, before any renewal");
    }

    #[tokio::test(start_paused = true)]
    async fn renewals_that_keep_failing_stop_the_object_at_its_deadline() {
        let store = Arc::new(FakeStore::default());
        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let (h, stop) = holding(&store, dir.path());
        begun(&h, None).await;
        tokio::time::sleep(TTL / 3 + Duration::from_millis(10)).await;
        assert_eq!(store.writes().len(), 1, "renewed at a third of the ttl");
        let renewed = store.writes()[0].0;
        store.set(Answer::Fail);
        let deadline = renewed + TTL - TTL / 6;
        tokio::time::sleep_until(deadline - Duration::from_millis(20)).await;
        assert!(!stop.is_cancelled() && h.valid(), "still valid just before the deadline");
        assert!(started < renewed);
        tokio::time::sleep_until(deadline + Duration::from_millis(1)).await;
        assert!(stop.is_cancelled(), "stopped at the deadline");
        assert_eq!(h.ended(), Some(Ended::Fenced));
        assert!(!h.valid());
        // Past it, no create is let out.
        assert!(!resolves(Duration::from_secs(60), h.sending(9, &[90])).await);
        store.set(Answer::Ok);
        tokio::time::sleep(TTL).await;
        assert_eq!(store.writes().len(), 1, "nothing written after the deadline");
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_that_finds_the_lease_taken_ends_the_holding() {
        let store = Arc::new(FakeStore::default());
        let dir = tempfile::tempdir().unwrap();
        let (h, stop) = holding(&store, dir.path());
        begun(&h, None).await;
        store.set(Answer::Taken);
        assert!(!resolves(Duration::from_secs(1), h.sending(1, &[1])).await);
        assert!(stop.is_cancelled());
        assert_eq!(h.ended(), Some(Ended::Lost));
        let h2 = h.clone();
        let committed =
            tokio::task::spawn_blocking(move || h2.checkpoint_committed(&Checkpoint::default()));
        let err = committed.await.unwrap().unwrap_err();
        assert!(err.contains("taken by another daemon"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_taken_over_progress_is_written_back_as_it_was_until_a_run_begins() {
        let store = Arc::new(FakeStore::default());
        let dir = tempfile::tempdir().unwrap();
        let carried = Progress {
            writer: "dead".into(),
            watermark: 40,
            pending: vec![Pending { token: 3, seqs: vec![[40, 49]] }],
            ..Progress::default()
        };
        let stop = CancellationToken::new();
        let h = Holding::start(Holder {
            store: store.clone(),
            lease: lease::Lease { key: "k".into(), etag: "e".into() },
            taken_at: Instant::now(),
            owner: "me".into(),
            ttl: TTL,
            object_etag: String::new(),
            carried: Some(carried.clone()),
            report_dir: dir.path().to_path_buf(),
            jobs_have_steps: true,
            stop,
            abort: CancellationToken::new(),
        });
        tokio::time::sleep(TTL / 3 + Duration::from_millis(1)).await;
        let written: Progress = serde_json::from_value(store.last()["progress"].clone()).unwrap();
        assert_eq!(written, carried, "a renewal before the run keeps the earlier holder's record");
        let resume = carried.to_resume(7);
        h.begin(Start {
            resume: Some(&resume),
            parts: Some(&carried),
            report_stem: "a",
            started_at: "t",
        })
        .await;
        tokio::time::sleep(TTL / 3 + Duration::from_millis(1)).await;
        let written: Progress = serde_json::from_value(store.last()["progress"].clone()).unwrap();
        assert_eq!(written.writer, "me");
        assert_eq!((written.watermark, written.pending), (40, carried.pending));
    }

    #[tokio::test(start_paused = true)]
    async fn the_partial_report_goes_into_segments_and_a_short_tail() {
        let store = Arc::new(FakeStore::default());
        let dir = tempfile::tempdir().unwrap();
        let report: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(crate::report::partial_name(dir.path(), "a"), &report).unwrap();
        let (h, _) = holding(&store, dir.path());
        let resume = Resume {
            file_id: 1,
            attempts: 1,
            report_stem: "a".into(),
            started_at: "t".into(),
            checkpoint: Checkpoint { watermark: 100, errors_bytes: 40_000, ..Default::default() },
            jobs: vec![
                JobRecord { id: "old".into(), status: "completed".into(), seqs: vec![1, 2] },
                JobRecord { id: "open".into(), status: "started".into(), seqs: vec![99, 100] },
            ],
            pending: vec![(5, vec![3]), (6, vec![101])],
            earlier_jobs: RemoteJobs::default(),
        };
        begun(&h, Some(&resume)).await;
        let h2 = h.clone();
        let cp = resume.checkpoint.clone();
        tokio::task::spawn_blocking(move || h2.checkpoint_committed(&cp)).await.unwrap().unwrap();
        let p: Progress = serde_json::from_value(store.last()["progress"].clone()).unwrap();
        p.check().unwrap();
        assert_eq!(p.errors.segments.len(), 2);
        assert!(p.errors.tail_bytes().unwrap().len() < TAIL_MAX);
        let parts = store.parts.lock().unwrap().clone();
        let mut whole: Vec<u8> =
            p.errors.segments.iter().flat_map(|s| parts[&s.key].clone()).collect();
        whole.extend(p.errors.tail_bytes().unwrap());
        assert_eq!(whole, report);
        let jobs: Vec<&str> = p.jobs.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(jobs, ["open"], "jobs below the settled line are left out");
        assert_eq!((p.earlier_jobs.count, p.earlier_jobs.jobs[0].rows), (1, 2), "but counted");
        assert_eq!(p.pending, vec![Pending { token: 6, seqs: vec![[101, 101]] }]);
    }
}
