//! One CRM account: its transport, rate limiter, in-flight slots, credentials and retry loop,
//! shared by every pipeline that names it, and what it learned of the CRM's pace per target.
//! Every request of every target goes through [`Connection::call_timed`]; how often a call is
//! retried depends on what it does ([`Safety`]); requests about jobs already made wait less
//! than new creates ([`Urgency`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::auth::Credentials;
use super::call::{message_of, origin, Call, CallError, Reply};
use super::estimate::{PaceStore, Pacer, Trip};
use super::hold::Hold;
use super::pace::{Pace, Queue, Urgency};
use super::retry::{classify, parse_wait, Action, Attempt};
use super::signals::{Seen, ServerBudget, Verdict};
use super::transport::{Http, Transport};
use crate::config::{ConnectionSettings, CrmKind};
use crate::metrics::Metrics;

/// How long a probe's verdict on the credentials holds, so many 403s cost one probe.
const PROBE_VALID: Duration = Duration::from_secs(30);

/// Counters for tests and the operator endpoints.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub throttled: AtomicU64,
    /// Microseconds spent waiting for the rate limiter.
    pub limiter_wait_us: AtomicU64,
}

pub struct Connection {
    name: String,
    /// What the config says now, with what is built from it; replaced on reload (a call in
    /// flight keeps the one it started with).
    setup: RwLock<Arc<Setup>>,
    /// One rate budget for the connection's whole life: reloads keep it (a changed rate
    /// replaces what is inside, for every file at once).
    pace: RwLock<Arc<Pace>>,
    /// Requests waiting for a slot and the budget, follow-ups first.
    queue: Queue,
    slots: Arc<Semaphore>,
    /// Held from a batch's write-ahead record until its job id is recorded: after a
    /// `kill -9`, at most `max_in_flight` batches per connection have an unknown outcome.
    creates: Arc<Semaphore>,
    /// How many permits `slots` and `creates` hold now (`max_in_flight`).
    in_flight: Mutex<usize>,
    /// A server-requested pause (Retry-After, exhausted rate budget) for the whole connection.
    paused_until: Mutex<Option<Instant>>,
    /// What the CRM's budget headers said; a gap between requests while its budget runs low.
    server_budget: Mutex<ServerBudget>,
    /// Refused credentials: the latch, the probes that lift it, and who waits for that.
    pub(super) hold: Hold,
    /// The last probe of the credentials after a 403: when, and whether they were refused.
    probed: tokio::sync::Mutex<Option<(Instant, bool)>>,
    metrics: &'static Metrics,
    pub stats: ConnectionStats,
    /// The CRM's pace per target, and where it is kept.
    paces: Mutex<Paces>,
}

#[derive(Default)]
struct Paces {
    store: Option<Arc<dyn PaceStore>>,
    /// Saved estimates not asked for yet, by target.
    saved: HashMap<String, String>,
    pacers: HashMap<String, Arc<Pacer>>,
}

/// A connection's settings and what is built from them.
struct Setup {
    settings: Arc<ConnectionSettings>,
    transport: Arc<dyn Transport>,
    /// The transport is this connection's own HTTP client (rebuilt when `timeout` changes).
    http: bool,
    credentials: Arc<Credentials>,
    own_origin: Option<String>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Connection {
    /// A connection over HTTP.
    pub fn new(
        settings: Arc<ConnectionSettings>,
        metrics: &'static Metrics,
    ) -> Result<Self, reqwest::Error> {
        let http = Http::new(settings.timeout)?;
        Ok(Self::build(settings, Arc::new(http), true, metrics))
    }

    /// A connection over any transport (the engine's tests script one).
    pub fn with_transport(
        settings: Arc<ConnectionSettings>,
        transport: Arc<dyn Transport>,
        metrics: &'static Metrics,
    ) -> Self {
        Self::build(settings, transport, false, metrics)
    }

    fn build(
        settings: Arc<ConnectionSettings>,
        transport: Arc<dyn Transport>,
        http: bool,
        metrics: &'static Metrics,
    ) -> Self {
        let n = settings.max_in_flight;
        Self {
            name: settings.name.clone(),
            pace: RwLock::new(Arc::new(Pace::new(&settings))),
            queue: Queue::default(),
            slots: Arc::new(Semaphore::new(n)),
            creates: Arc::new(Semaphore::new(n)),
            in_flight: Mutex::new(n),
            paused_until: Mutex::new(None),
            server_budget: Mutex::default(),
            hold: Hold::default(),
            probed: tokio::sync::Mutex::new(None),
            metrics,
            stats: ConnectionStats::default(),
            paces: Mutex::default(),
            setup: RwLock::new(Arc::new(Setup {
                credentials: Arc::new(Credentials::new(&settings.auth)),
                own_origin: origin(&settings.base_url),
                transport,
                http,
                settings,
            })),
        }
    }

    fn current(&self) -> Arc<Setup> {
        match self.setup.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn pace(&self) -> Arc<Pace> {
        match self.pace.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The settings in force now.
    pub fn settings(&self) -> Arc<ConnectionSettings> {
        self.current().settings.clone()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn base_url(&self) -> String {
        self.current().settings.base_url.clone()
    }

    /// Takes the settings of a reloaded config, keeping this connection's limiter, in-flight
    /// slots and pauses: files in flight and new ones share them. Only what changed is
    /// rebuilt: the HTTP client for a new `timeout`, the credentials for new ones, the rate
    /// budget's quota for a new rate.
    pub fn reconfigure(&self, new: Arc<ConnectionSettings>) -> Result<(), reqwest::Error> {
        let old = self.current();
        if *old.settings == *new {
            return Ok(());
        }
        let transport: Arc<dyn Transport> = match old.http && old.settings.timeout != new.timeout {
            true => Arc::new(Http::new(new.timeout)?),
            false => old.transport.clone(),
        };
        let credentials = match old.settings.auth != new.auth {
            true => Arc::new(Credentials::new(&new.auth)),
            false => old.credentials.clone(),
        };
        let o = &old.settings;
        if (o.rate_limit, o.burst, &o.shared_limit)
            != (new.rate_limit, new.burst, &new.shared_limit)
        {
            if let Ok(mut p) = self.pace.write() {
                *p = Arc::new(Pace::new(&new));
            }
        }
        self.resize(new.max_in_flight);
        let setup = Setup {
            own_origin: origin(&new.base_url),
            settings: new,
            transport,
            http: old.http,
            credentials,
        };
        if let Ok(mut s) = self.setup.write() {
            *s = Arc::new(setup);
        }
        Ok(())
    }

    /// `max_in_flight` changed: the slots follow (permits in use are taken back as they
    /// come free).
    fn resize(&self, to: usize) {
        let Ok(mut now) = self.in_flight.lock() else { return };
        let from = std::mem::replace(&mut *now, to);
        for sem in [&self.slots, &self.creates] {
            if to > from {
                sem.add_permits(to - from);
            } else if to < from {
                let owed = (from - to).saturating_sub(sem.forget_permits(from - to));
                let Ok(owed) = u32::try_from(owed) else { continue };
                if owed > 0 {
                    let sem = sem.clone();
                    tokio::spawn(async move {
                        if let Ok(p) = sem.acquire_many_owned(owed).await {
                            p.forget();
                        }
                    });
                }
            }
        }
    }

    /// Where this connection's estimates of the CRM's pace are kept, and what was kept
    /// (target, estimate). The first call counts; later ones (a reload) change nothing.
    pub fn remember(&self, store: Arc<dyn PaceStore>, saved: Vec<(String, String)>) {
        let mut paces = self.paces.lock().unwrap_or_else(PoisonError::into_inner);
        if paces.store.is_some() {
            return;
        }
        paces.store = Some(store);
        paces.saved.extend(saved);
    }

    /// Whether [`Connection::remember`] was called.
    pub fn remembers(&self) -> bool {
        self.paces.lock().unwrap_or_else(PoisonError::into_inner).store.is_some()
    }

    /// The CRM's pace for `target` on this connection, shared by every file.
    pub fn pacer(&self, target: &str) -> Arc<Pacer> {
        let mut paces = self.paces.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = paces.pacers.get(target) {
            return p.clone();
        }
        let saved = paces.saved.remove(target);
        let pacer = Arc::new(Pacer::new(&self.name, target, saved.as_deref(), paces.store.clone()));
        paces.pacers.insert(target.to_string(), pacer.clone());
        pacer
    }

    /// The right to create one remote job; hold it until the job's id is recorded.
    pub async fn create_permit(&self) -> Option<OwnedSemaphorePermit> {
        self.creates.clone().acquire_owned().await.ok()
    }

    /// One harmless authenticated read: a refusal of the credentials (or no answer at all)
    /// is an error, any other answer means the connection works.
    pub async fn probe(&self) -> Result<(), String> {
        match self.call(self.probe_call()).await {
            Ok(_) | Err(CallError::Rejected { .. }) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    pub(super) fn probe_call(&self) -> Call {
        let setup = self.current();
        let base = &setup.settings.base_url;
        let url = match setup.settings.kind {
            CrmKind::Plannr => format!("{base}/api/v1/import?per_page=1"),
            CrmKind::Repsly => format!("{base}/export/importStatus/0"),
        };
        Call::get("probe", url)
    }

    /// The credentials problem that stopped this connection, if any.
    pub fn auth_failure(&self) -> Option<String> {
        self.hold.failure()
    }

    /// Why this connection sends nothing now: refused credentials, or a shared budget that
    /// cannot be reached.
    pub fn problem(&self) -> Option<String> {
        self.auth_failure().or_else(|| self.pace().problem())
    }

    /// Sends `call` within the connection's limits, retrying what its safety allows.
    pub async fn call(&self, call: Call) -> Result<Reply, CallError> {
        self.call_timed(call, Urgency::Follow).await.0
    }

    /// [`Connection::call`], waiting as `urgency` says; with when the last attempt was sent
    /// and answered.
    pub async fn call_timed(
        &self,
        call: Call,
        urgency: Urgency,
    ) -> (Result<Reply, CallError>, Option<Trip>) {
        let mut trip = None;
        let result = self.retried(&call, urgency, &mut trip).await;
        (result, trip)
    }

    async fn retried(
        &self,
        call: &Call,
        urgency: Urgency,
        trip: &mut Option<Trip>,
    ) -> Result<Reply, CallError> {
        let policy = self.settings().retry;
        let mut last = String::new();
        let mut refreshed = false;
        let mut attempt = 0;
        while attempt < policy.max_attempts {
            attempt += 1;
            if let Some(detail) = self.auth_failure() {
                return Err(CallError::Auth { connection: self.name.clone(), detail });
            }
            let (reply, action, sent) = self.attempt_as(call, urgency).await;
            *trip = sent.or(*trip);
            let server_wait = match (action, reply) {
                (Action::Accept, Ok(reply)) => return Ok(reply),
                (Action::Unauthorized, Ok(reply)) => {
                    if !refreshed && self.refresh_after_401().await {
                        refreshed = true;
                        attempt -= 1;
                        continue;
                    }
                    return Err(self.refused(call.endpoint, &reply));
                }
                (Action::Forbidden, Ok(reply)) => return Err(self.forbidden(call, reply).await),
                (Action::Reject, Ok(reply)) => return Err(rejected(call.endpoint, reply)),
                (Action::Unknown, reply) => {
                    let detail = match reply {
                        Ok(r) => format!("HTTP {}: {}", r.status, message_of(&r.body)),
                        Err(e) => e,
                    };
                    return Err(CallError::Unknown { endpoint: call.endpoint, detail });
                }
                (Action::Retry { after }, reply) => {
                    last = match reply {
                        Ok(r) => format!("HTTP {}: {}", r.status, message_of(&r.body)),
                        Err(e) => e,
                    };
                    after
                }
                (_, Err(e)) => {
                    last = e;
                    None
                }
            };
            if attempt == policy.max_attempts {
                break;
            }
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            self.metrics.retry(&self.name, call.endpoint);
            let wait = match server_wait {
                Some(w) => {
                    self.pause_for(w);
                    w
                }
                None => policy.backoff(attempt),
            };
            tracing::warn!(connection = %self.name, endpoint = call.endpoint, attempt, wait_ms = wait.as_millis() as u64, error = %last, "retrying");
            tokio::time::sleep(wait).await;
        }
        Err(CallError::Exhausted { endpoint: call.endpoint, attempts: policy.max_attempts, last })
    }

    /// A 401 with credentials that can be renewed (OAuth): renewed, and the call tried once
    /// more before the 401 counts as a refusal.
    async fn refresh_after_401(&self) -> bool {
        let setup = self.current();
        let pace = self.pace();
        match setup.credentials.refresh(setup.transport.as_ref(), &pace, &self.name).await {
            Some(Ok(())) => true,
            Some(Err(e)) => {
                tracing::warn!(connection = %self.name, error = %e, "could not refresh the access token");
                false
            }
            None => false,
        }
    }

    /// A 403 is about this record unless the connection's own probe is refused too.
    async fn forbidden(&self, call: &Call, reply: Reply) -> CallError {
        let mut probed = self.probed.lock().await;
        let fresh = probed.filter(|(at, _)| at.elapsed() < PROBE_VALID);
        let refused = match fresh {
            Some((_, refused)) => refused,
            None => {
                let (probe, action) = self.attempt(&self.probe_call()).await;
                let refused =
                    probe.is_ok() && matches!(action, Action::Unauthorized | Action::Forbidden);
                *probed = Some((Instant::now(), refused));
                refused
            }
        };
        if refused {
            return self.refused(call.endpoint, &reply);
        }
        rejected(call.endpoint, reply)
    }

    /// Records a credentials refusal so no further request is sent (the connection holds its
    /// files until a probe is accepted), and says so once.
    fn refused(&self, endpoint: &'static str, reply: &Reply) -> CallError {
        let detail =
            format!("{endpoint} answered HTTP {}: {}", reply.status, message_of(&reply.body));
        if self.hold.refuse(&detail) {
            tracing::error!(connection = %self.name, endpoint, status = reply.status, "authentication refused; this connection holds its files and sends nothing until its credentials are accepted (probed every auth_retry, and on SIGHUP)");
        }
        CallError::Auth { connection: self.name.clone(), detail }
    }

    /// One request, as a follow-up ([`Connection::attempt_as`]).
    pub(super) async fn attempt(&self, call: &Call) -> (Result<Reply, String>, Action) {
        let (reply, action, _) = self.attempt_as(call, Urgency::Follow).await;
        (reply, action)
    }

    /// One request: wait for its turn (follow-ups first), a slot, any pause, the rate
    /// limiter; then send and read the answer. The error side is a description of why no
    /// answer came. With when it was sent and answered, if it was sent.
    async fn attempt_as(
        &self,
        call: &Call,
        urgency: Urgency,
    ) -> (Result<Reply, String>, Action, Option<Trip>) {
        let turn = self.queue.turn(urgency).await;
        let Ok(_slot) = self.slots.acquire().await else {
            return (Err("connection closed".into()), Action::Retry { after: None }, None);
        };
        self.wait_for_pause().await;
        let setup = self.current();
        let pace = self.pace();
        let started = Instant::now();
        pace.until_ready(&self.name).await;
        drop(turn);
        let waited = started.elapsed();
        self.stats.limiter_wait_us.fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
        self.metrics.limiter_wait(&self.name, waited);
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        // Credentials go only to the CRM's own origin: a presigned storage URL refuses a
        // second auth mechanism, and a token must never reach another host.
        let same_origin = setup.own_origin.is_some() && origin(&call.url) == setup.own_origin;
        let auth = if same_origin {
            match setup.credentials.current(setup.transport.as_ref(), &pace, &self.name).await {
                Ok(a) => Some(a),
                Err(e) => return (Err(e), Action::Retry { after: None }, None),
            }
        } else {
            None
        };
        let sent = Instant::now();
        let result = setup.transport.send(call, auth.as_ref()).await;
        let trip = Some(Trip { sent, answered: Instant::now() });
        let took = sent.elapsed();
        match result {
            Err(no) => {
                self.metrics.request(&self.name, call.endpoint, None, took);
                let attempt = Attempt::NoAnswer { maybe_sent: no.maybe_sent };
                (Err(no.message), classify(attempt, call.safety, call.expect), trip)
            }
            Ok(reply) => {
                self.metrics.request(&self.name, call.endpoint, Some(reply.status), took);
                let action = match self.judge(call, &reply, &setup.settings) {
                    // Sent without credentials (another origin, e.g. a report's storage
                    // URL): a 401/403 refuses this one request, not the connection's
                    // credentials.
                    Action::Unauthorized | Action::Forbidden if auth.is_none() => Action::Reject,
                    action => action,
                };
                (Ok(reply), action, trip)
            }
        }
    }

    /// The retry decision for an answer, noting what it says about the budget.
    fn judge(&self, call: &Call, reply: &Reply, settings: &ConnectionSettings) -> Action {
        let now = SystemTime::now();
        let status = reply.status;
        let headers = &reply.headers;
        let retry_after = headers
            .get("retry-after")
            .or_else(|| if status == 429 { headers.get("x-ratelimit-reset") } else { None })
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_wait(v, now));
        if status == 429 {
            self.stats.throttled.fetch_add(1, Ordering::Relaxed);
        }
        self.note_remaining(headers, now, settings);
        let json_body = reply.is_json();
        classify(Attempt::Response { status, json_body, retry_after }, call.safety, call.expect)
    }

    /// `X-Ratelimit-Remaining`: at 0 the next call would be refused, so wait for the window;
    /// running low, keep a gap that spreads what is left to the reset.
    fn note_remaining(&self, headers: &HeaderMap, now: SystemTime, s: &ConnectionSettings) {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let number = |name: &str| header(name).and_then(|v| v.trim().parse::<u64>().ok());
        let Some(remaining) = number("x-ratelimit-remaining") else { return };
        let seen = Seen {
            remaining,
            reset: header("x-ratelimit-reset").and_then(|v| parse_wait(v, now)),
            limit: number("x-ratelimit-limit"),
        };
        let verdict = self.server_budget.lock().map(|mut b| {
            let own_gap = s.rate_limit.interval();
            b.observe(seen, s.rate_limit.per, own_gap, s.max_in_flight as u64, Instant::now())
        });
        if let Ok(Verdict::Exhausted(wait)) = verdict {
            self.pause_for(wait);
        }
    }

    fn pause_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        if let Ok(mut g) = self.paused_until.lock() {
            if g.is_none_or(|u| u < until) {
                *g = Some(until);
            }
        }
    }

    /// Waits out a pause, then this request's slot while a gap is kept.
    async fn wait_for_pause(&self) {
        loop {
            let until = self.paused_until.lock().ok().and_then(|g| *g);
            match until {
                Some(u) if u > Instant::now() => tokio::time::sleep_until(u).await,
                _ => break,
            }
        }
        let slot = self.server_budget.lock().ok().and_then(|mut b| b.claim_slot(Instant::now()));
        if let Some(at) = slot {
            tokio::time::sleep_until(at).await;
        }
    }
}

fn rejected(endpoint: &'static str, reply: Reply) -> CallError {
    let message = match reply.status {
        300..=399 => {
            let to = reply.headers.get("location").and_then(|l| l.to_str().ok());
            format!(
                "a redirect to {}; it is not followed, since it would send the request (its rows, its credentials) to another address: set base_url to the address the CRM answers at",
                to.unwrap_or("an address not given")
            )
        }
        _ => message_of(&reply.body),
    };
    CallError::Rejected { endpoint, status: reply.status, message, body: reply.body }
}
