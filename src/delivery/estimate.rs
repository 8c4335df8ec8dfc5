//! How long the CRM takes over a job, learned per connection and target, and when to ask
//! about a job. An optimisation only: a job is followed the same way whatever the estimate
//! says, and nothing of it decides a row's outcome or a resume.
//!
//! The estimate is a fit of `base + per_row * rows` with a spread, over the last
//! [`WINDOW`] jobs. Polls do not see a job end; they bound it. The last poll that saw a job
//! running says it ended later than that poll's moment at the CRM, the first that saw it
//! finished that it ended earlier (a moment is the middle of the poll's round trip, counted
//! from the middle of the create's, or of the last step's: when the CRM started the job).
//! Such censored intervals are fitted by expectation-maximisation (a normal model, weighted
//! as a Student t so that one odd job does not move the fit), newer jobs weighing more.
//! Fitting only the upper bounds would drift: each poll would teach that the job took as long
//! as the poll waited.
//!
//! A job is first asked about at the estimate's upper quantile (`mean + k * spread`, `k`
//! steered so that about [`HIT_RATE`] of first polls find the job finished), then quickly a
//! couple of times, then backing off as the engine always has (a wait of half the time
//! waited so far), so a job far past its estimate is never asked about more often than
//! before. Three jobs in a row far from the estimate are a new level and restart the fit;
//! while other jobs run far past their estimate, a new job's first poll waits for them (every
//! [`SENTINEL_EVERY`]th still asks at the estimate, and one found finished lifts the wait);
//! now and then a job is asked about early, so that a CRM grown faster is noticed.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::futures::Notified;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Jobs the fit remembers.
pub const WINDOW: usize = 24;
/// How much less each older job of the window weighs than the next.
const DECAY: f64 = 0.92;
/// Passes of expectation-maximisation per refit.
const PASSES: usize = 8;
/// Degrees of freedom of the Student t weights: one job far off weighs little.
const NU: f64 = 4.0;
/// The spread is never taken as less than this, nor less than [`MIN_SPREAD_SHARE`] of the
/// mean: polls and their answers have a resolution of their own.
const MIN_SPREAD: f64 = 0.02;
const MIN_SPREAD_SHARE: f64 = 0.03;
/// The share of first polls meant to find the job finished.
pub const HIT_RATE: f64 = 0.85;
/// How fast `k` follows the first polls' outcomes, and its bounds.
const K_GAIN: f64 = 0.1;
const K_START: f64 = 1.3;
const K_MIN: f64 = 0.5;
const K_MAX: f64 = 4.0;
/// Quick polls after a first poll that found the job running, and their least gap.
const QUICK_POLLS: u32 = 2;
const QUICK_GAP: f64 = 0.05;
/// Past its estimate by this many spreads, a job is "far past" it.
const FAR: f64 = 3.0;
/// A job whose bounds lie beyond these shares of the estimate is far from it; three in a
/// row on one side are a new level.
const LEVEL_UP: f64 = 1.5;
const LEVEL_DOWN: f64 = 0.67;
const LEVEL_JOBS: usize = 3;
/// Jobs far past their estimate that make new jobs wait (one while nothing is known yet).
const SHIFT_JOBS: usize = 3;
/// While jobs run far past their estimate, a new job is expected at least this many times
/// the time they have run so far (less their own estimate).
const SHIFT_FACTOR: f64 = 1.5;
/// Every this many jobs made to wait, one asks at the estimate all the same.
pub const SENTINEL_EVERY: u64 = 8;
/// A job asked about early (at this share of the estimate) every this many jobs, to notice
/// a CRM grown faster; after an early poll found its job finished, the next job is too.
const EXPLORE_EVERY: u32 = 20;
const EXPLORE_AT: f64 = 0.5;
/// With a spread wider than this many times its least, after this many first polls in a
/// row that found their job finished, one job is asked about at the mean.
const WIDE: f64 = 2.0;
const WIDE_AFTER: u32 = 3;
/// The engine's fixed schedule, used while nothing is known and for the back-off: the first
/// poll this long after the start, then a wait of half the time waited so far plus this
/// (every wait at most `poll_interval`, [`Estimate::next_poll`]).
pub const FIRST_POLL: f64 = 0.1;
/// A fit grown past this many times what it was when it was last trusted (started, or
/// started again) is not trusted: new jobs are then followed on the fixed schedule until one
/// of them ends; one that ended by the estimate's mean starts it again from that job, another
/// trusts it again as it stands. A CRM whose jobs end when they are polled, not after a time,
/// would otherwise teach it that every job takes as long as its first poll waited, and push
/// each first poll later than the last. (A CRM that really slowed down shows it by three jobs
/// in a row far slower, a new level, long before.)
const GROWTH: f64 = 1.25;

/// A job's bounds: it ended after `lo` (when a poll saw it running) and by `hi`, in seconds
/// since it started.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bounds {
    pub rows: f64,
    pub lo: Option<f64>,
    pub hi: f64,
}

/// What is kept (in the ledger): the window, the fit and the quantile's `k`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Saved {
    k: f64,
    fit: (f64, f64, f64),
    jobs: Vec<Bounds>,
}

/// How a job's first poll is placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// At the upper quantile.
    Quantile,
    /// At the mean: the spread is wide, learn it.
    Mean,
    /// Early: is the CRM faster now?
    Early,
    /// On the fixed schedule: the estimate is not trusted.
    Fixed,
}

/// One job being followed, as the estimate sees it.
#[derive(Debug, Clone)]
pub struct Job {
    /// Order of creation, for telling older jobs from newer.
    pub order: u64,
    pub rows: f64,
    pub probe: Probe,
    /// Polls answered, whatever they said.
    pub polls: u32,
    /// Quick polls since the estimate last moved past this job.
    quick: u32,
    /// The last moment a poll saw the job running.
    pub lo: Option<f64>,
    /// The last poll's moment, whatever it said (the back-off counts from it).
    anchor: Option<f64>,
    /// Where the first poll was placed, if at the quantile and not made to wait.
    at_quantile: Option<f64>,
    /// `Some(true)`: asks at the estimate although others make jobs wait.
    sentinel: Option<bool>,
}

/// The estimate for one connection and target.
#[derive(Debug, Clone)]
pub struct Estimate {
    jobs: VecDeque<Bounds>,
    a: f64,
    b: f64,
    spread: f64,
    k: f64,
    /// Jobs far from the estimate, all on one side (`true`: slower), not fitted yet.
    pending: Vec<(u64, Bounds)>,
    pending_up: bool,
    hits_in_a_row: u32,
    until_early: u32,
    /// Jobs being followed that a poll saw running: rows, last running moment, order.
    live: HashMap<u64, (f64, f64)>,
    next_order: u64,
    made_to_wait: u64,
    /// Jobs far past their estimate that are older than this make no job wait.
    lifted_before: u64,
    /// The fit grew too much ([`GROWTH`]): new jobs go on the fixed schedule.
    distrust: bool,
    /// The fit (base, per-row time) when it was last trusted.
    trusted: (f64, f64),
    /// The per-row time before the fit last started again: kept while the window's rows do
    /// not vary enough to tell it.
    prior_b: f64,
}

impl Default for Estimate {
    fn default() -> Self {
        Self {
            jobs: VecDeque::with_capacity(WINDOW),
            a: 0.0,
            b: 0.0,
            spread: 0.0,
            k: K_START,
            pending: Vec::new(),
            pending_up: false,
            hits_in_a_row: 0,
            until_early: EXPLORE_EVERY,
            live: HashMap::new(),
            next_order: 0,
            made_to_wait: 0,
            lifted_before: 0,
            distrust: false,
            trusted: (0.0, 0.0),
            prior_b: 0.0,
        }
    }
}

impl Estimate {
    /// Whether anything is known yet.
    pub fn known(&self) -> bool {
        !self.jobs.is_empty()
    }

    pub fn mean(&self, rows: f64) -> f64 {
        (self.a + self.b * rows).max(0.0)
    }

    fn least_spread(&self, rows: f64) -> f64 {
        MIN_SPREAD.max(MIN_SPREAD_SHARE * self.mean(rows))
    }

    pub fn spread(&self, rows: f64) -> f64 {
        self.spread.max(self.least_spread(rows))
    }

    /// When a job of `rows` is likely finished: the upper quantile.
    pub fn quantile(&self, rows: f64) -> f64 {
        self.mean(rows) + self.k * self.spread(rows)
    }

    /// The fitted base and per-row time, and the spread (seconds), for logs and tests.
    pub fn fit(&self) -> (f64, f64, f64) {
        (self.a, self.b, self.spread)
    }

    /// What to keep in the ledger.
    pub fn save(&self) -> String {
        let fit = (self.a, self.b, self.spread);
        let saved = Saved { k: self.k, fit, jobs: self.jobs.iter().copied().collect() };
        serde_json::to_string(&saved).unwrap_or_default()
    }

    /// An estimate read back from [`Estimate::save`]'s text; `None` if it is not one (a
    /// newer format, a damaged row): the estimate then starts from nothing.
    pub fn load(text: &str) -> Option<Self> {
        let saved: Saved = serde_json::from_str(text).ok()?;
        let sane = |x: f64| x.is_finite() && (0.0..=1e7).contains(&x);
        let jobs: Vec<Bounds> = saved
            .jobs
            .into_iter()
            .filter(|j| sane(j.rows) && sane(j.hi) && j.lo.is_none_or(|lo| sane(lo) && lo <= j.hi))
            .collect();
        let mut e = Estimate { k: saved.k.clamp(K_MIN, K_MAX), ..Estimate::default() };
        if !saved.k.is_finite() {
            e.k = K_START;
        }
        let skip = jobs.len().saturating_sub(WINDOW);
        e.jobs.extend(jobs.into_iter().skip(skip));
        let (a, b, spread) = saved.fit;
        if [a, b, spread].iter().all(|x| x.is_finite() && x.abs() <= 1e7)
            && b >= 0.0
            && spread >= 0.0
        {
            (e.a, e.b, e.spread) = (a, b, spread);
        } else if e.known() {
            e.refit();
        }
        e.trusted = (e.a, e.b);
        Some(e)
    }

    /// A job starts being followed.
    pub fn begin(&mut self, rows: usize) -> Job {
        let rows = rows as f64;
        let order = self.next_order;
        self.next_order += 1;
        let mut probe = Probe::Quantile;
        if self.distrust {
            probe = Probe::Fixed;
        } else if self.known() {
            self.until_early = self.until_early.saturating_sub(1);
            if self.until_early == 0 {
                probe = Probe::Early;
                self.until_early = EXPLORE_EVERY;
            } else if self.spread(rows) > WIDE * self.least_spread(rows)
                && self.hits_in_a_row >= WIDE_AFTER
            {
                probe = Probe::Mean;
                self.hits_in_a_row = 0;
            }
        }
        Job {
            order,
            rows,
            probe,
            polls: 0,
            quick: 0,
            lo: None,
            anchor: None,
            at_quantile: None,
            sentinel: None,
        }
    }

    /// When the job's next poll should reach the CRM, in seconds since the job started:
    /// never more than `poll_interval` after the last poll (or the start), as documented.
    pub fn next_poll(&mut self, job: &mut Job, poll_interval: f64) -> f64 {
        let latest = job.anchor.unwrap_or(0.0) + poll_interval;
        let at = self.placed(job, poll_interval);
        if at > latest {
            job.at_quantile = None;
        }
        at.min(latest)
    }

    /// Where the estimate places the job's next poll, before `poll_interval` caps it.
    fn placed(&mut self, job: &mut Job, poll_interval: f64) -> f64 {
        let backoff = |at: f64| at + (at / 2.0 + FIRST_POLL).min(poll_interval);
        let fixed = !self.known() || job.probe == Probe::Fixed;
        let own = match (fixed, job.anchor, job.lo) {
            (true, None, _) => FIRST_POLL,
            (true, Some(at), _) => backoff(at),
            (false, None, _) => {
                let (q, m) = (self.quantile(job.rows), self.mean(job.rows));
                job.at_quantile = (job.probe == Probe::Quantile).then_some(q);
                match job.probe {
                    Probe::Quantile => q,
                    Probe::Mean => m,
                    Probe::Early => m * EXPLORE_AT,
                    Probe::Fixed => FIRST_POLL,
                }
            }
            (false, Some(at), lo) => self.after_first(job, at, lo.unwrap_or(0.0), backoff),
        };
        if job.probe == Probe::Fixed {
            return own;
        }
        match self.shift(job) {
            Some(wait) if wait > own => {
                job.at_quantile = None;
                wait
            }
            _ => own,
        }
    }

    /// The next poll of a job already asked about once: at the estimate if it has moved past
    /// the last poll, else quickly a couple of times near it, then backing off.
    fn after_first(&self, job: &mut Job, at: f64, lo: f64, backoff: impl Fn(f64) -> f64) -> f64 {
        let (q, s) = (self.quantile(job.rows), self.spread(job.rows));
        if lo < q - FIRST_POLL / 2.0 && at < q {
            job.quick = 0;
            return q;
        }
        if job.quick < QUICK_POLLS && lo < q + FAR * s {
            return at + s.max(QUICK_GAP);
        }
        backoff(at)
    }

    /// How long older jobs running far past their estimate (or that ended so, until they
    /// make a new level) make this one wait: its own estimate, plus how far the
    /// [`SHIFT_JOBS`]th of them is past its own ([`SHIFT_FACTOR`] times what it ran so far,
    /// or when it ended). A job is not expected to end before the older ones; only older ones
    /// count, so no two jobs make each other wait.
    fn shift(&mut self, job: &mut Job) -> Option<f64> {
        let first = job.anchor.is_none();
        let need = if self.known() { SHIFT_JOBS } else { 1 };
        let mut past: Vec<f64> = self
            .live
            .iter()
            .filter(|(order, (rows, lo))| {
                **order < job.order && **order >= self.lifted_before && self.far(*rows, *lo)
            })
            .map(|(_, (rows, lo))| SHIFT_FACTOR * lo - self.mean(*rows))
            .collect();
        // Older jobs that ended far past their estimate, held back until a new level is
        // sure: they ended by their upper bound.
        if self.pending_up {
            let ended = self
                .pending
                .iter()
                .filter(|(order, _)| *order < job.order && *order >= self.lifted_before);
            past.extend(ended.map(|(_, b)| b.hi - self.mean(b.rows)));
        }
        if past.len() < need {
            return None;
        }
        past.sort_by(|x, y| y.total_cmp(x));
        if first && job.sentinel.is_none() {
            self.made_to_wait += 1;
            job.sentinel = Some(self.made_to_wait.is_multiple_of(SENTINEL_EVERY));
        }
        if first && job.sentinel == Some(true) {
            return None;
        }
        Some(self.mean(job.rows) + past[need - 1])
    }

    fn far(&self, rows: f64, lo: f64) -> bool {
        !self.known() || lo > self.quantile(rows) + FAR * self.spread(rows)
    }

    /// A poll at `moment` saw the job running.
    pub fn running(&mut self, job: &mut Job, moment: f64) {
        job.polls += 1;
        job.quick += 1;
        job.anchor = Some(moment);
        let lo = job.lo.map_or(moment, |lo| lo.max(moment));
        job.lo = Some(lo);
        self.live.insert(job.order, (job.rows, lo));
    }

    /// A poll at `moment` could not tell (an error): the schedule goes on from it.
    pub fn unanswered(&mut self, job: &mut Job, moment: f64) {
        job.anchor = Some(job.anchor.map_or(moment, |a| a.max(moment)));
    }

    /// The job is no longer followed without its end being seen (an error, a shutdown).
    /// Returns whether jobs waiting on it should look again.
    pub fn dropped(&mut self, job: &Job) -> bool {
        match self.live.remove(&job.order) {
            Some((rows, lo)) => self.far(rows, lo),
            None => false,
        }
    }

    /// A poll at `moment` saw the job finished. Returns whether jobs waiting for their first
    /// poll should look again (the estimate moved a lot, or a wait was lifted).
    pub fn finished(&mut self, job: &Job, moment: f64) -> bool {
        let first = !self.known();
        let mut wake = self.dropped(job) || first;
        let first_hit = job.polls == 0;
        let seen = Bounds { rows: job.rows, lo: job.lo, hi: moment.max(job.lo.unwrap_or(0.0)) };
        if self.distrust && job.probe == Probe::Fixed {
            if seen.hi <= self.mean(job.rows) {
                tracing::debug!("the estimate starts again from a job on the fixed schedule");
                self.start_again(vec![seen]);
                return true;
            }
            self.trust_again();
        }
        if self.known() {
            let (q, s) = (self.quantile(job.rows), self.spread(job.rows));
            if job.sentinel == Some(true) && moment <= q + FAR * s {
                self.lifted_before = self.lifted_before.max(job.order);
                wake = true;
            }
            self.steer(job, first_hit, moment, s, q);
            if self.level(job.order, seen) {
                return true;
            }
        }
        if self.jobs.len() == WINDOW {
            self.jobs.pop_front();
        }
        self.jobs.push_back(seen);
        self.refit();
        match first {
            true => self.trust_again(),
            false => self.check_growth(job.rows),
        }
        wake
    }

    /// `k` follows the first polls: down a little for each that found its job finished
    /// near where it was placed, up for each that found it running but it ended near. Hits
    /// far after the quantile (the poll waited for the budget), misses far before the end
    /// (the estimate was off, not its spread) and misses that the quantile as it stands now
    /// would not make (jobs placed together miss together; the first of them moved the fit)
    /// say nothing of `k`.
    fn steer(&mut self, job: &Job, first_hit: bool, moment: f64, spread: f64, now: f64) {
        if job.probe != Probe::Quantile {
            if job.probe == Probe::Early && first_hit {
                self.until_early = 1;
            }
            return;
        }
        self.hits_in_a_row = if first_hit { self.hits_in_a_row + 1 } else { 0 };
        let Some(placed) = job.at_quantile else { return };
        let near = if first_hit { spread.max(QUICK_GAP) } else { FAR * spread };
        if moment <= placed + near && (first_hit || moment > now) {
            let hit = if first_hit { 1.0 } else { 0.0 };
            self.k = (self.k - K_GAIN * (hit - HIT_RATE)).clamp(K_MIN, K_MAX);
        }
    }

    /// Holds back a job far from the estimate; the [`LEVEL_JOBS`]th in a row on one side
    /// restarts the window from them. Returns whether the job was held back or restarted
    /// the fit (it is then not fitted again). A job whose bounds allow the estimate (an
    /// upper bound only, after a poll at the quantile) breaks no run.
    fn level(&mut self, order: u64, seen: Bounds) -> bool {
        let m = self.mean(seen.rows);
        let up = seen.lo.unwrap_or(0.0) >= LEVEL_UP * m;
        let down = seen.hi <= LEVEL_DOWN * m;
        if !(up || down) {
            let breaks = match self.pending_up {
                true => seen.hi <= LEVEL_UP * m,
                false => seen.lo.unwrap_or(0.0) >= LEVEL_DOWN * m,
            };
            if breaks {
                self.pending.clear();
            }
            return false;
        }
        if self.pending_up != up {
            self.pending.clear();
        }
        self.pending_up = up;
        self.pending.push((order, seen));
        if self.pending.len() < LEVEL_JOBS {
            return true;
        }
        tracing::info!(
            from_s = m,
            slower = up,
            "the CRM's pace changed: the estimate starts again from the last jobs"
        );
        let jobs: Vec<Bounds> = self.pending.drain(..).map(|(_, b)| b).collect();
        self.start_again(jobs);
        if up {
            self.until_early = 2;
        }
        true
    }

    /// The fit starts again from `jobs` alone (keeping the per-row time until their rows
    /// tell it), and is trusted.
    fn start_again(&mut self, jobs: Vec<Bounds>) {
        self.jobs.clear();
        self.jobs.extend(jobs);
        self.pending.clear();
        self.spread = 0.0;
        self.k = K_START;
        self.hits_in_a_row = 0;
        self.prior_b = self.b;
        self.refit();
        self.trust_again();
    }

    /// Jobs begun from now on follow the estimate again; its growth counts from here.
    fn trust_again(&mut self) {
        self.distrust = false;
        self.trusted = (self.a, self.b);
    }

    /// After a refit: whether the fit grew past [`GROWTH`] times the trusted one, for a job
    /// of `rows`.
    fn check_growth(&mut self, rows: f64) {
        let (a, b) = self.trusted;
        let was = (a + b * rows).max(0.0);
        if !self.distrust && self.jobs.len() > 1 && self.mean(rows) > GROWTH * was {
            tracing::debug!(
                was_s = was,
                now_s = self.mean(rows),
                "the estimate grew fast: following new jobs on the fixed schedule"
            );
            self.distrust = true;
        }
    }

    /// Expectation-maximisation over the window, from the current fit (or, with none, from
    /// the intervals' middles).
    fn refit(&mut self) {
        let n = self.jobs.len();
        if n == 0 {
            return;
        }
        let weights: Vec<f64> = (0..n).map(|i| DECAY.powi((n - 1 - i) as i32)).collect();
        if self.spread <= 0.0 {
            let middles: Vec<f64> =
                self.jobs.iter().map(|j| (j.lo.unwrap_or(0.0) + j.hi) / 2.0).collect();
            self.regress(&middles, &weights);
            let last = self.jobs[n - 1];
            let width = last.hi - last.lo.unwrap_or(0.0);
            self.spread = (width / 12f64.sqrt()).max(self.least_spread(last.rows));
        }
        for _ in 0..PASSES {
            let mut ys = Vec::with_capacity(n);
            let mut vs = Vec::with_capacity(n);
            let mut ws = Vec::with_capacity(n);
            for (j, w) in self.jobs.iter().zip(&weights) {
                let s = self.spread(j.rows);
                let (y, v) = moments(self.mean(j.rows), s, j.lo, j.hi);
                ys.push(y);
                vs.push(v);
                ws.push(w * (NU + 1.0) / (NU + v / (s * s)));
            }
            self.regress(&ys, &ws);
            let total: f64 = ws.iter().sum();
            let var = ws.iter().zip(&vs).map(|(w, v)| w * v).sum::<f64>() / total;
            if var.is_finite() {
                self.spread = var.sqrt();
            }
        }
    }

    /// Weighted least squares of `ys` on the window's rows; the per-row time is shrunk
    /// towards none when the rows hardly vary, kept from before the fit last started again
    /// when they do not vary at all, and never negative.
    fn regress(&mut self, ys: &[f64], ws: &[f64]) {
        let total: f64 = ws.iter().sum();
        if total.is_nan() || total <= 0.0 {
            return;
        }
        let xs: Vec<f64> = self.jobs.iter().map(|j| j.rows).collect();
        let x_mean = xs.iter().zip(ws).map(|(x, w)| x * w).sum::<f64>() / total;
        let y_mean = ys.iter().zip(ws).map(|(y, w)| y * w).sum::<f64>() / total;
        let (mut sxx, mut sxy) = (0.0, 0.0);
        for ((x, y), w) in xs.iter().zip(ys).zip(ws) {
            sxx += w * (x - x_mean) * (x - x_mean);
            sxy += w * (x - x_mean) * (y - y_mean);
        }
        let (sxx, sxy) = (sxx / total, sxy / total);
        let b = if sxx > 0.0 {
            (sxy / (sxx + 0.01 * (x_mean * x_mean + 1.0))).max(0.0)
        } else {
            self.prior_b
        };
        let a = y_mean - b * x_mean;
        if a.is_finite() && b.is_finite() {
            (self.a, self.b) = (a, b);
        }
    }
}

/// The mean of a normal `(m, s)` between `lo` (or below `hi` only) and `hi`, and its mean
/// square distance from `m`. An interval the model puts no weight on is taken at its middle.
fn moments(m: f64, s: f64, lo: Option<f64>, hi: f64) -> (f64, f64) {
    let beta = (hi - m) / s;
    let (cdf_lo, pdf_lo, apdf_lo) = match lo {
        Some(lo) => {
            let alpha = (lo - m) / s;
            (cdf(alpha), pdf(alpha), alpha * pdf(alpha))
        }
        None => (0.0, 0.0, 0.0),
    };
    let mass = cdf(beta) - cdf_lo;
    if mass.is_nan() || mass <= 1e-9 {
        let y = match lo {
            Some(lo) => (lo.max(0.0) + hi) / 2.0,
            None => hi,
        };
        return (y, (y - m) * (y - m));
    }
    let d = (pdf_lo - pdf(beta)) / mass;
    let y = m + s * d;
    let var = s * s * (1.0 + (apdf_lo - beta * pdf(beta)) / mass - d * d);
    (y, var.max(0.0) + (y - m) * (y - m))
}

fn pdf(z: f64) -> f64 {
    (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

fn cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// The complementary error function (Numerical Recipes' `erfcc`: error below 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// Where estimates are kept between runs (the ledger): a restart starts warm.
pub trait PaceStore: Send + Sync {
    fn save(&self, connection: &str, target: &str, estimate: &str);
}

/// How often an estimate is written out at most (and at the end of each file).
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// One connection and target's estimate, shared by every file that follows its jobs.
pub struct Pacer {
    connection: String,
    target: String,
    state: Mutex<Shared>,
    /// Fired when jobs waiting for their first poll should look again.
    changed: Notify,
    store: Option<Arc<dyn PaceStore>>,
}

struct Shared {
    estimate: Estimate,
    /// Half a poll's round trip (a decaying mean): a poll is sent this long before it
    /// should reach the CRM.
    half_trip: Option<f64>,
    saved_at: Option<Instant>,
    unsaved: bool,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("connection", &self.connection)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Pacer {
    /// An estimate from its saved text (or from nothing), written back to `store`.
    pub fn new(
        connection: &str,
        target: &str,
        saved: Option<&str>,
        store: Option<Arc<dyn PaceStore>>,
    ) -> Self {
        let estimate = match saved.map(|t| (t, Estimate::load(t))) {
            Some((_, Some(e))) => e,
            Some((_, None)) => {
                tracing::warn!(
                    connection,
                    target,
                    "the saved estimate of the CRM's pace is not readable; learning it again"
                );
                Estimate::default()
            }
            None => Estimate::default(),
        };
        let state = Shared { estimate, half_trip: None, saved_at: None, unsaved: false };
        Self {
            connection: connection.to_string(),
            target: target.to_string(),
            state: Mutex::new(state),
            changed: Notify::new(),
            store,
        }
    }

    fn shared(&self) -> MutexGuard<'_, Shared> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The estimate as it stands (a copy), for the window's size and for tests.
    pub fn estimate(&self) -> Estimate {
        self.shared().estimate.clone()
    }

    /// Half the round trip of polls lately (zero before any).
    pub fn half_trip(&self) -> Duration {
        duration(self.shared().half_trip.unwrap_or(0.0))
    }

    /// A request's round trip, for placing polls.
    pub fn trip(&self, trip: Trip) {
        let half = trip.answered.saturating_duration_since(trip.sent).as_secs_f64() / 2.0;
        let mut s = self.shared();
        s.half_trip = Some(s.half_trip.map_or(half, |h| 0.9 * h + 0.1 * half));
    }

    /// Starts following a job of `rows` the CRM started at `started`.
    pub fn follow(self: &Arc<Self>, rows: usize, started: Instant) -> Following {
        let job = self.shared().estimate.begin(rows);
        Following { pacer: Some(self.clone()), own: None, job, started, done: false }
    }

    /// Resolves when jobs waiting for their poll should look again.
    pub fn changed(&self) -> Notified<'_> {
        self.changed.notified()
    }

    /// Writes the estimate out if it changed since it was last written.
    pub fn flush(&self) {
        let text = {
            let mut s = self.shared();
            if !s.unsaved {
                return;
            }
            s.unsaved = false;
            s.saved_at = Some(Instant::now());
            s.estimate.save()
        };
        if let Some(store) = &self.store {
            store.save(&self.connection, &self.target, &text);
        }
    }

    fn learned(&self, wake: bool) {
        let due = {
            let mut s = self.shared();
            s.unsaved = true;
            s.saved_at.is_none_or(|at| at.elapsed() >= SAVE_EVERY)
        };
        if due {
            self.flush();
        }
        if wake {
            self.changed.notify_waiters();
        }
    }
}

/// One job being followed: when to poll it, and what its polls saw. Dropped before its end
/// was seen, it is forgotten (the estimate learns nothing from it).
pub struct Following {
    pacer: Option<Arc<Pacer>>,
    /// A job whose start is not known (one an earlier run created): the fixed schedule.
    own: Option<Estimate>,
    job: Job,
    started: Instant,
    done: bool,
}

impl Following {
    /// The fixed schedule from `started`, learning nothing (a resumed job).
    pub fn fixed(started: Instant) -> Self {
        let mut own = Estimate::default();
        let job = own.begin(0);
        Self { pacer: None, own: Some(own), job, started, done: false }
    }

    fn with<T>(&mut self, f: impl FnOnce(&mut Estimate, &mut Job) -> T) -> T {
        match (&mut self.own, &self.pacer) {
            (Some(own), _) => f(own, &mut self.job),
            (None, Some(p)) => f(&mut p.shared().estimate, &mut self.job),
            (None, None) => f(&mut Estimate::default(), &mut self.job),
        }
    }

    fn moment(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.started).as_secs_f64()
    }

    /// When the next poll should be sent: when it should reach the CRM, less half a trip.
    pub fn next_at(&mut self, poll_interval: Duration) -> Instant {
        let interval = poll_interval.as_secs_f64();
        let at = self.with(|e, job| e.next_poll(job, interval));
        let half = self.pacer.as_ref().map_or(Duration::ZERO, |p| p.half_trip());
        (self.started + duration(at)).checked_sub(half).unwrap_or(self.started)
    }

    /// The shared estimate this job counts in (none for the fixed schedule).
    pub fn pacer(&self) -> Option<Arc<Pacer>> {
        self.pacer.clone()
    }

    /// A poll that reached the CRM at `at` saw the job running.
    pub fn running(&mut self, at: Instant) {
        let m = self.moment(at);
        self.with(|e, job| e.running(job, m));
    }

    /// A poll at `at` could not tell.
    pub fn unanswered(&mut self, at: Instant) {
        let m = self.moment(at);
        self.with(|e, job| e.unanswered(job, m));
    }

    /// A poll that reached the CRM at `at` saw the job finished.
    pub fn finished(mut self, at: Instant) {
        self.done = true;
        let m = self.moment(at);
        if let Some(p) = self.pacer.clone() {
            let wake = p.shared().estimate.finished(&self.job, m);
            p.learned(wake);
        }
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Some(p) = &self.pacer {
            if p.shared().estimate.dropped(&self.job) {
                p.changed.notify_waiters();
            }
        }
    }
}

/// When a request was sent and when its answer came (or it failed).
#[derive(Debug, Clone, Copy)]
pub struct Trip {
    pub sent: Instant,
    pub answered: Instant,
}

impl Trip {
    /// When the CRM most likely handled it: the middle of the round trip.
    pub fn moment(&self) -> Instant {
        self.sent + self.answered.saturating_duration_since(self.sent) / 2
    }
}

/// Seconds as a wait: negative, NaN or huge values are bounded (they are the estimate's own
/// numbers, but never trusted to be sane).
pub fn duration(seconds: f64) -> Duration {
    const MOST: f64 = 86_400.0;
    if seconds.is_nan() || seconds <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(seconds.min(MOST)).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_error_function_is_right_where_it_matters() {
        assert!((cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((cdf(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((cdf(-2.0) - 0.022_750_1).abs() < 1e-6);
    }

    #[test]
    fn an_interval_pulls_the_fit_inside_it() {
        let (y, _) = moments(1.0, 0.1, Some(1.2), 1.4);
        assert!((1.2..1.4).contains(&y), "{y}");
        let (y, _) = moments(1.0, 0.1, None, 0.9);
        assert!(y < 0.9, "{y}");
        let (y, _) = moments(1.0, 0.001, Some(5.0), 6.0);
        assert_eq!(y, 5.5, "no weight on the interval: its middle");
    }

    #[test]
    fn a_saved_estimate_reads_back_the_same() {
        let mut e = Estimate::default();
        for i in 0..30 {
            let mut job = e.begin(50);
            let _ = e.next_poll(&mut job, 5.0);
            e.running(&mut job, 0.55 + f64::from(i % 3) * 0.01);
            e.finished(&job, 0.65);
        }
        let back = Estimate::load(&e.save()).unwrap();
        assert_eq!(back.jobs, e.jobs);
        assert!((back.quantile(50.0) - e.quantile(50.0)).abs() < 1e-9);
    }

    /// A CRM whose jobs end at the poll after the first, wherever it is placed, followed
    /// `together` at a time: the estimate must not chase its own polls. The first polls.
    fn polls_in_a_world_where_the_second_poll_ends_the_job(
        jobs: usize,
        together: usize,
    ) -> Vec<f64> {
        let mut e = Estimate::default();
        let mut firsts = Vec::new();
        while firsts.len() < jobs {
            let mut batch: Vec<Job> = (0..together).map(|_| e.begin(1)).collect();
            let mut seconds = Vec::new();
            for job in &mut batch {
                let first = e.next_poll(job, 5.0);
                firsts.push(first);
                e.running(job, first);
                seconds.push(e.next_poll(job, 5.0));
            }
            for (job, second) in batch.iter().zip(seconds) {
                e.finished(job, second);
            }
        }
        firsts
    }

    #[test]
    fn jobs_that_end_at_their_second_poll_do_not_push_the_first_poll_later_and_later() {
        for together in [1, 8] {
            let firsts = polls_in_a_world_where_the_second_poll_ends_the_job(400, together);
            // (Past the first jobs: while nothing is known, a job waits for the older ones
            // still running, 1.5 times as long as they ran.)
            let late = firsts.iter().skip(40).cloned().fold(0.0, f64::max);
            let mean = firsts.iter().sum::<f64>() / firsts.len() as f64;
            // The fixed schedule would see each job finished at its second poll, 0.25 s in.
            assert!(
                late < 0.5 && mean < 0.3,
                "{together} at a time, first polls drift: most {late} s, mean {mean} s"
            );
        }
    }

    #[test]
    fn no_wait_between_polls_is_longer_than_poll_interval() {
        let mut e = Estimate::default();
        for _ in 0..30 {
            let mut job = e.begin(50);
            let _ = e.next_poll(&mut job, 5.0);
            e.running(&mut job, 2.9);
            e.finished(&job, 3.1);
        }
        assert!(e.quantile(50.0) > 3.0, "the estimate learned jobs of 3 s");
        let mut job = e.begin(50);
        let mut last = 0.0;
        for _ in 0..6 {
            let at = e.next_poll(&mut job, 0.5);
            assert!(at > last && at <= last + 0.5 + 1e-9, "a poll at {at} s after one at {last} s");
            e.running(&mut job, at);
            last = at;
        }
        let mut fixed = Estimate::default().begin(1);
        assert_eq!(
            Estimate::default().next_poll(&mut fixed, 0.02),
            0.02,
            "the first fixed poll too"
        );
    }

    proptest! {
        #[test]
        fn any_saved_text_loads_or_is_refused_without_panicking(text in ".{0,200}") {
            let _ = Estimate::load(&text);
        }

        #[test]
        fn any_numbers_in_a_saved_estimate_give_a_usable_one(
            k in proptest::num::f64::ANY,
            jobs in proptest::collection::vec(
                (proptest::num::f64::ANY, proptest::option::of(proptest::num::f64::ANY), proptest::num::f64::ANY),
                0..40,
            ),
        ) {
            let jobs: Vec<Bounds> = jobs.into_iter().map(|(rows, lo, hi)| Bounds { rows, lo, hi }).collect();
            let text = serde_json::to_string(&Saved { k, fit: (k, -k, k), jobs }).unwrap_or_default();
            if let Some(mut e) = Estimate::load(&text) {
                let mut job = e.begin(50);
                let at = e.next_poll(&mut job, 5.0);
                prop_assert!(at.is_finite() && at >= 0.0, "{at}");
                let _ = duration(at);
            }
        }
    }
}
