//! The delivery protocol, once for every CRM: a write-ahead record before each create, the
//! create, the steps before the job runs, one poll loop placed by what the CRM's pace was
//! learned to be ([`super::estimate`]), fetching a cut-short list of refusals,
//! reconciliation, and splitting a batch the CRM refused as a whole. Adapters only describe
//! their requests and read the answers ([`Adapter`]). The estimate only decides when polls
//! are sent: what a job's rows come to, and what a resume does, never depend on it.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::time::Instant;

use super::adapter::{Adapter, Created, JobReport, JobState};
use super::call::CallError;
use super::connection::Connection;
use super::estimate::{Following, Pacer};
use super::pace::Urgency;
use super::reconcile;
use crate::row::{Failure, MappedRow, Outcome, Stage};

/// The wait between reads of a job's status after a step failed.
const FIRST_POLL: Duration = Duration::from_millis(100);
/// Failed polls in a row (a 404, answers not understood, retries exhausted) before the rows
/// of a job are reported `unconfirmed`. A job that exists is never sent again.
const POLL_FAILURES: u32 = 3;
/// The status a job is recorded with when created, before any step.
pub const CREATED: &str = "created";
/// A record a create made (a contact detail): its rows are accepted on resume.
pub const RECORDED: &str = "recorded";

/// A write-ahead record's handle.
pub type Token = u64;

/// Where the engine records what it creates: the ledger, through the file's job list.
pub trait Journal: Send + Sync {
    /// Rows about to be sent in a create: durable before the create goes out, so a restart
    /// knows their fate is unknown. `Err` when it cannot be recorded (the create waits).
    fn sending<'a>(&'a self, seqs: &'a [u64]) -> BoxFuture<'a, Result<Token, String>>;
    /// The create made job (or record) `id` for those rows; durable before anything waits
    /// on the job. Ends the write-ahead record. `Err` when it cannot be recorded: the engine
    /// tries again and does not go on with the job until it holds.
    fn created<'a>(
        &'a self,
        token: Token,
        id: &'a str,
        seqs: &'a [u64],
        status: &'a str,
    ) -> BoxFuture<'a, Result<(), String>>;
    /// The create ended without anything remote to follow (refused, or settled).
    fn abandoned(&self, token: Token);
    /// A job's status changed (a step done, its end).
    fn status(&self, id: &str, status: &str, rows: usize);
    /// A finished answer, for what the file's summary shows of it (a user import's seats).
    fn answered(&self, _report: &JobReport) {}
}

pub struct Engine {
    pub conn: Arc<Connection>,
    pub adapter: Arc<dyn Adapter>,
    pub journal: Arc<dyn Journal>,
    /// The CRM's pace for this target on this connection ([`Connection::pacer`]).
    pub pacer: Arc<Pacer>,
}

/// One outcome per row of a batch, in order; `None` for a row left unsettled because the
/// connection's credentials were refused (the file holds at its checkpoint and resumes once
/// they are accepted: SPEC §6).
pub type Outcomes = Vec<Option<Outcome>>;

/// What a create came to.
enum Create {
    Adapter(Created),
    /// Outcomes the engine decides itself (fate unknown, retries out).
    Outcomes(Vec<Outcome>),
    /// The credentials were refused: nothing was created, the rows wait.
    Held,
}

/// Why following a job stopped before its report.
enum Stop {
    /// The credentials were refused: the job is in the ledger, a resume follows it.
    Held,
    /// Every row of the job ends so.
    Failed(Stage, String),
}

impl Engine {
    fn base(&self) -> String {
        self.conn.base_url()
    }

    /// Sends `rows`; every row gets exactly one outcome, in order (or is held). A batch the
    /// CRM refuses as a whole is halved until the refused row stands alone: at most
    /// ceil(log2(rows)) levels.
    pub fn deliver<'a>(&'a self, rows: &'a [MappedRow]) -> BoxFuture<'a, Outcomes> {
        self.deliver_within(rows, split_levels(rows.len()))
    }

    fn deliver_within<'a>(&'a self, rows: &'a [MappedRow], levels: u32) -> BoxFuture<'a, Outcomes> {
        async move {
            let (created, started) = self.create(rows).await;
            match created {
                Create::Held => vec![None; rows.len()],
                Create::Outcomes(o) => settled(o),
                Create::Adapter(Created::Job(id)) => self.follow(&id, CREATED, rows, started).await,
                Create::Adapter(Created::Done(report)) => {
                    self.journal.answered(&report);
                    settled(reconcile::outcomes("(record)", rows, &report, &|r| {
                        self.adapter.echo(r)
                    }))
                }
                Create::Adapter(Created::Refused(msg)) if rows.len() > 1 && levels > 0 => {
                    tracing::info!(connection = self.conn.name(), rows = rows.len(), reason = %msg, "batch refused as a whole; splitting it to isolate the row");
                    let (left, right) = rows.split_at(rows.len() / 2);
                    let (mut l, r) = futures::join!(
                        self.deliver_within(left, levels - 1),
                        self.deliver_within(right, levels - 1)
                    );
                    l.extend(r);
                    l
                }
                Create::Adapter(Created::Refused(msg) | Created::Failed(msg)) => {
                    settled(all(rows.len(), Stage::Remote, &msg))
                }
                Create::Adapter(Created::Unclear(msg)) => settled(all(
                    rows.len(),
                    Stage::Unconfirmed,
                    &format!("{msg}; the CRM may have taken this row: check it before dropping it again"),
                )),
            }
        }
        .boxed()
    }

    /// Finishes a job an earlier run created (found in the ledger with the last status it
    /// reached), without sending its rows again.
    pub async fn resume(&self, id: &str, status: &str, rows: &[MappedRow]) -> Outcomes {
        if status == RECORDED {
            return rows.iter().map(|_| Some(Outcome::Accepted)).collect();
        }
        self.follow(id, status, rows, None).await
    }

    /// The create, between its write-ahead record and the record of what it made; with when
    /// the CRM took it.
    async fn create(&self, rows: &[MappedRow]) -> (Create, Option<Instant>) {
        let _permit = self.conn.create_permit().await;
        let seqs: Vec<u64> = rows.iter().map(|r| r.source.seq).collect();
        let token = self.write_ahead(&seqs).await;
        let call = self.adapter.create(&self.base(), rows);
        let (answer, trip) = self.conn.call_timed(call, Urgency::Create).await;
        let n = rows.len();
        let created = match &answer {
            Err(CallError::Auth { .. }) => Create::Held,
            Err(e @ CallError::Unknown { .. }) => Create::Outcomes(all(
                n,
                Stage::Unconfirmed,
                &format!("{e}: check in the CRM whether this row arrived before dropping it again"),
            )),
            Err(e @ (CallError::Exhausted { .. } | CallError::Cancelled { .. })) => {
                Create::Outcomes(all(n, Stage::Remote, &e.to_string()))
            }
            Err(e @ CallError::Rejected { .. }) => {
                Create::Adapter(self.adapter.created(rows, Err(e)))
            }
            Ok(reply) => Create::Adapter(self.adapter.created(rows, Ok(reply))),
        };
        match &created {
            Create::Adapter(Created::Job(id)) => self.record(token, id, &seqs, CREATED).await,
            Create::Adapter(Created::Done(report)) if report.record.is_some() => {
                let id = report.record.as_deref().unwrap_or_default();
                self.record(token, id, &seqs, RECORDED).await
            }
            _ => self.journal.abandoned(token),
        }
        (created, trip.map(|t| t.moment()))
    }

    /// What a create made, recorded, tried until it holds: nothing waits on a job a restart
    /// would not know. Stopped at the shutdown deadline, the rows are left as a kill would
    /// leave them: the write-ahead record stands, and the resume decides.
    async fn record(&self, token: Token, id: &str, seqs: &[u64], status: &str) {
        let mut wait = Duration::from_millis(500);
        while let Err(e) = self.journal.created(token, id, seqs, status).await {
            tracing::error!(connection = self.conn.name(), job = id, error = %e, "cannot record the job just created; waiting before going on with it");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(30));
        }
    }

    /// The write-ahead record, tried until it holds: nothing is sent that a restart could
    /// not account for.
    async fn write_ahead(&self, seqs: &[u64]) -> Token {
        let mut wait = Duration::from_millis(500);
        loop {
            match self.journal.sending(seqs).await {
                Ok(token) => return token,
                Err(e) => {
                    tracing::warn!(connection = self.conn.name(), error = %e, "cannot record a batch before sending it; waiting");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// Runs the job's remaining steps, polls it to its end and reads each row's outcome.
    /// `started`: when the CRM took the create, if this run made it.
    async fn follow(
        &self,
        id: &str,
        done: &str,
        rows: &[MappedRow],
        started: Option<Instant>,
    ) -> Outcomes {
        let n = rows.len();
        let report = async {
            let started = self.steps(id, done, rows).await?.or(started);
            let mut report = self.poll(id, n, started).await?;
            self.fetch_more(id, &mut report).await?;
            Ok(report)
        };
        match report.await {
            Ok(report) => {
                self.journal.status(id, &report.status, n);
                self.journal.answered(&report);
                settled(reconcile::outcomes(id, rows, &report, &|r| self.adapter.echo(r)))
            }
            Err(Stop::Held) => vec![None; n],
            Err(Stop::Failed(stage, message)) => {
                self.journal.status(id, "unknown", n);
                settled(all(n, stage, &message))
            }
        }
    }

    /// The steps after `done` (all of them after the create). A step refused or unanswered is
    /// checked against the job's status: if the job runs, the step had taken effect (a
    /// retried start answered "already started"); if it never started, nothing was imported.
    /// Returns when the CRM took the last step, if one was sent and answered (the job runs
    /// from then).
    async fn steps(
        &self,
        id: &str,
        done: &str,
        rows: &[MappedRow],
    ) -> Result<Option<Instant>, Stop> {
        let n = rows.len();
        let steps = self.adapter.steps(&self.base(), id, rows);
        let from = match steps.iter().position(|s| s.name == done) {
            Some(i) => i + 1,
            None if done == CREATED || done.eq_ignore_ascii_case("pending") => 0,
            None => steps.len(),
        };
        let mut started = None;
        for step in steps.into_iter().skip(from) {
            let (answer, trip) = self.conn.call_timed(step.call, Urgency::Follow).await;
            started = None;
            let err = match answer {
                Ok(_) => {
                    self.journal.status(id, step.name, n);
                    started = trip.map(|t| t.moment());
                    continue;
                }
                Err(e) => e,
            };
            if let CallError::Auth { .. } = err {
                return Err(Stop::Held);
            }
            match self.status_settled(id).await {
                Ok(JobState::NotStarted) => {
                    let msg = format!(
                        "job {id} could not {}: {err}; nothing of it was imported",
                        step.name
                    );
                    return Err(Stop::Failed(Stage::Remote, msg));
                }
                Ok(_) => {
                    tracing::info!(job = id, step = step.name, error = %err, "the step had already taken effect");
                    self.journal.status(id, step.name, n);
                }
                Err(_) if self.conn.auth_failure().is_some() => return Err(Stop::Held),
                Err(e) => {
                    let msg = format!("job {id}: {} failed ({err}) and its status cannot be read ({e}); check it in the CRM before dropping this row again", step.name);
                    return Err(Stop::Failed(Stage::Unconfirmed, msg));
                }
            }
        }
        Ok(started)
    }

    /// The job's status, read up to [`POLL_FAILURES`] times when reading fails (a 404 right
    /// after a create can be the CRM catching up).
    async fn status_settled(&self, id: &str) -> Result<JobState, String> {
        let mut last = String::new();
        for _ in 0..POLL_FAILURES {
            match self.status_once(id).await {
                Ok(state) => return Ok(state),
                Err(e) => last = e,
            }
            tokio::time::sleep(FIRST_POLL.min(self.conn.settings().poll_interval)).await;
        }
        Err(last)
    }

    async fn status_once(&self, id: &str) -> Result<JobState, String> {
        let reply = self
            .conn
            .call(self.adapter.status(&self.base(), id))
            .await
            .map_err(|e| e.to_string())?;
        self.adapter.read_status(&self.base(), &reply)
    }

    /// Polls until the job ends, each poll placed by the estimate (a job whose start is not
    /// known, by the fixed schedule). A job that cannot be followed leaves its rows
    /// `unconfirmed`, never sent again.
    async fn poll(
        &self,
        id: &str,
        rows: usize,
        started: Option<Instant>,
    ) -> Result<JobReport, Stop> {
        let settings = self.conn.settings();
        let begun = Instant::now();
        let mut pace = match started {
            Some(at) => self.pacer.follow(rows, at),
            None => Following::fixed(begun),
        };
        let mut failures = 0;
        let mut last = String::new();
        // The last poll is made at the timeout, however late the estimate would place it: the
        // estimate never makes a job give up sooner than the fixed schedule would.
        let deadline = begun + settings.poll_timeout;
        loop {
            if Instant::now() >= deadline {
                let waited =
                    humantime::format_duration(Duration::from_secs(begun.elapsed().as_secs()));
                return Err(Stop::Failed(Stage::Unconfirmed, format!("job {id} was still running after {waited}; check in the CRM whether this row arrived before dropping it again")));
            }
            wait_for_poll(&mut pace, settings.poll_interval, deadline).await;
            let call = self.adapter.status(&self.base(), id);
            let (answer, trip) = self.conn.call_timed(call, Urgency::Poll).await;
            if let Some(trip) = trip {
                self.pacer.trip(trip);
            }
            let moment = trip.map_or_else(Instant::now, |t| t.moment());
            let state = answer
                .map_err(|e| e.to_string())
                .and_then(|r| self.adapter.read_status(&self.base(), &r));
            match state {
                Ok(JobState::Finished(report)) => {
                    pace.finished(moment);
                    return Ok(*report);
                }
                Ok(_) => {
                    failures = 0;
                    pace.running(moment);
                }
                Err(e) => {
                    failures += 1;
                    last = e;
                    pace.unanswered(moment);
                }
            }
            if self.conn.auth_failure().is_some() {
                return Err(Stop::Held);
            }
            if failures >= POLL_FAILURES {
                return Err(Stop::Failed(Stage::Unconfirmed, format!("job {id} was created but its status could not be read ({last}); it is not sent again: check in the CRM whether this row arrived before dropping it again")));
            }
        }
    }

    /// The full list of refusals, when the answer says where it is. It only adds to the inline
    /// one ([`super::Fetched`]); if it cannot be fetched, the rows no list names are
    /// `unconfirmed` unless the counts settle them.
    async fn fetch_more(&self, id: &str, report: &mut JobReport) -> Result<(), Stop> {
        let Some(call) = report.more.take() else { return Ok(()) };
        let read = match self.conn.call(call).await {
            Ok(reply) => self.adapter.read_more(&reply),
            Err(CallError::Auth { .. }) => return Err(Stop::Held),
            Err(e) => Err(e.to_string()),
        };
        match read {
            Ok(list) => report.fetched = Some(list),
            Err(e) => {
                tracing::warn!(job = id, error = %e, "could not read the job's full list of refused rows; the rows it does not name are reported unconfirmed")
            }
        }
        Ok(())
    }
}

/// Waits until the job's next poll is due, or `deadline`; the estimate may move it while it
/// waits (when other jobs end, or the CRM's pace changed).
async fn wait_for_poll(pace: &mut Following, poll_interval: Duration, deadline: Instant) {
    let Some(pacer) = pace.pacer() else {
        let at = pace.next_at(poll_interval).min(deadline);
        return tokio::time::sleep_until(at).await;
    };
    loop {
        let changed = pacer.changed();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let at = pace.next_at(poll_interval).min(deadline);
        if at <= Instant::now() {
            return;
        }
        tokio::select! {
            biased;
            _ = changed => {}
            _ = tokio::time::sleep_until(at) => {}
        }
    }
}

/// How many times a batch of `rows` may be halved: enough for every row to stand alone.
fn split_levels(rows: usize) -> u32 {
    rows.max(1).next_power_of_two().trailing_zeros()
}

fn settled(outcomes: Vec<Outcome>) -> Outcomes {
    outcomes.into_iter().map(Some).collect()
}

/// The same outcome for every row of a batch.
pub fn all(n: usize, stage: Stage, message: &str) -> Vec<Outcome> {
    (0..n).map(|_| Outcome::Failed(Failure::new(stage, None, message))).collect()
}
