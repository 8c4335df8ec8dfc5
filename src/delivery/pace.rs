//! The rate budget a connection's requests wait for: a GCRA in this process (governor), or
//! with `shared_limit` one kept in Redis for every process on the connection, so N replicas
//! together stay within `rate_limit`. When Redis cannot be reached nothing is sent: the
//! budget is never exceeded for want of a way to share it. Requests wait their turn in a
//! [`Queue`] where a job's polls go first, then the other requests about jobs already made
//! (steps, lists of refusals), then new creates.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use redis::aio::MultiplexedConnection;
use tokio::sync::oneshot;

use crate::config::{ConnectionSettings, SharedLimit};

/// How long one Redis round trip (connecting included) may take before Redis counts as
/// unreachable.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// Wait between tries while Redis is unreachable.
const REDIS_RETRY: Duration = Duration::from_secs(1);

/// Reserves the next slot of the budget: the theoretical arrival time (TAT) moves one
/// interval on, and the caller waits until its slot (less the burst tolerance). Redis's
/// clock is used, so the replicas' clocks do not matter. Times are microseconds; a double
/// holds them exactly (2^53 µs is 285 years).
///
/// `ARGV[3]` is the latest TAT this process has seen and `ARGV[4]` when it saw it: slots
/// reserved before a FLUSHALL or a Redis restart still fire. A key only expires a second
/// after its TAT, so a key missing while the TAT seen lies ahead was lost: the budget then
/// restarts past the TAT seen, plus the time since (the other replicas' reservations moved
/// it on at most that fast while they were being paced), not from now; and the key is
/// written back for the others. Returns the wait, the new TAT and Redis's time.
const GCRA: &str = r"
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local seen = tonumber(ARGV[3])
local seen_at = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local stored = redis.call('GET', KEYS[1])
-- A TAT seen more than a minute ahead is another clock's (Redis moved): not this budget's.
if seen > now + 60000000 or seen_at > now then seen = 0 end
if not stored and seen > now then seen = seen + (now - seen_at) end
local tat = tonumber(stored or 0)
if tat < seen then tat = seen end
if tat < now then tat = now end
local next_tat = tat + interval
local ttl = math.ceil((next_tat - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', ttl)
local wait = tat - tolerance - now
if wait < 0 then wait = 0 end
return {wait, next_tat, now}
";

pub enum Pace {
    Local(DefaultDirectRateLimiter),
    Shared(Box<SharedPace>),
}

impl Pace {
    /// 1 % under the configured rate: exactly at it, network jitter can put one request
    /// more into a server's window than it allows.
    pub fn new(settings: &ConnectionSettings) -> Self {
        let interval = (settings.rate_limit.interval() * 101 / 100).max(Duration::from_nanos(1));
        let burst = settings.burst.max(1);
        match &settings.shared_limit {
            Some(shared) => Pace::Shared(Box::new(SharedPace::new(shared, interval, burst))),
            None => {
                let quota = Quota::with_period(interval)
                    .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
                    .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
                Pace::Local(RateLimiter::direct(quota))
            }
        }
    }

    /// Waits for this request's slot in the budget.
    pub async fn until_ready(&self, connection: &str) {
        match self {
            Pace::Local(limiter) => limiter.until_ready().await,
            Pace::Shared(shared) => shared.until_ready(connection).await,
        }
    }

    /// Why no request can be sent now (the shared budget's Redis is unreachable).
    pub fn problem(&self) -> Option<String> {
        match self {
            Pace::Local(_) => None,
            Pace::Shared(shared) => shared.problem.lock().ok().and_then(|p| p.clone()),
        }
    }
}

pub struct SharedPace {
    client: Result<redis::Client, String>,
    connection: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    key: String,
    interval_us: u64,
    tolerance_us: u64,
    script: redis::Script,
    problem: Mutex<Option<String>>,
    /// The latest TAT Redis answered and Redis's time then (µs, Redis's clock): where the
    /// budget stands even if Redis loses the key.
    seen: Mutex<(u64, u64)>,
}

impl SharedPace {
    fn new(shared: &SharedLimit, interval: Duration, burst: u32) -> Self {
        let interval_us = u64::try_from(interval.as_micros()).unwrap_or(u64::MAX).max(1);
        Self {
            client: redis::Client::open(shared.redis.expose())
                .map_err(|e| format!("shared_limit.redis is not usable: {}", describe(e))),
            connection: tokio::sync::Mutex::new(None),
            key: shared.key.clone(),
            interval_us,
            tolerance_us: interval_us.saturating_mul(u64::from(burst.saturating_sub(1))),
            script: redis::Script::new(GCRA),
            problem: Mutex::new(None),
            seen: Mutex::new((0, 0)),
        }
    }

    async fn until_ready(&self, connection: &str) {
        loop {
            match tokio::time::timeout(REDIS_TIMEOUT, self.reserve()).await {
                Ok(Ok(wait)) => {
                    self.set_problem(connection, None);
                    tokio::time::sleep(wait).await;
                    return;
                }
                Ok(Err(e)) => self.set_problem(connection, Some(e)),
                Err(_) => self.set_problem(
                    connection,
                    Some(format!("no answer within {}s", REDIS_TIMEOUT.as_secs())),
                ),
            }
            if let Ok(mut c) = self.connection.try_lock() {
                *c = None;
            }
            tokio::time::sleep(REDIS_RETRY).await;
        }
    }

    /// One slot reserved; how long to wait for it.
    async fn reserve(&self) -> Result<Duration, String> {
        let client = self.client.as_ref().map_err(Clone::clone)?;
        let mut guard = self.connection.lock().await;
        let mut connection = match guard.as_ref() {
            Some(c) => c.clone(),
            None => {
                let c = client.get_multiplexed_async_connection().await.map_err(describe)?;
                *guard = Some(c.clone());
                c
            }
        };
        drop(guard);
        let (seen, seen_at) = match self.seen.lock() {
            Ok(s) => *s,
            Err(_) => (0, 0),
        };
        let (wait, tat, now): (u64, u64, u64) = self
            .script
            .key(&self.key)
            .arg(self.interval_us)
            .arg(self.tolerance_us)
            .arg(seen)
            .arg(seen_at)
            .invoke_async(&mut connection)
            .await
            .map_err(describe)?;
        if let Ok(mut s) = self.seen.lock() {
            if tat > s.0 {
                *s = (tat, now);
            }
        }
        Ok(Duration::from_micros(wait))
    }

    /// Records (once, at WARN) that Redis is unreachable, or (once, at INFO) that it is back.
    fn set_problem(&self, connection: &str, problem: Option<String>) {
        let Ok(mut p) = self.problem.lock() else { return };
        match (&*p, &problem) {
            (None, Some(e)) => {
                tracing::warn!(connection, error = %e, "the shared rate budget's Redis cannot be reached: nothing is sent on this connection until it can")
            }
            (Some(_), None) => {
                tracing::info!(connection, "the shared rate budget's Redis answers again")
            }
            _ => {}
        }
        *p = problem.map(|e| format!("shared rate budget (Redis) unreachable: {e}"));
    }
}

/// A Redis error in one line, without the URL (it may hold a password).
fn describe(e: redis::RedisError) -> String {
    let detail = e.detail().map(|d| format!(": {d}")).unwrap_or_default();
    match e.kind() {
        redis::ErrorKind::Io => format!("cannot connect{detail}"),
        kind => format!("{kind:?}{detail}"),
    }
}

/// Which requests go first when several wait for the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    /// A job's status poll: a finished job's rows, and the file's end, wait on it.
    Poll,
    /// Another request about a job already made (a step, its list of refusals).
    Follow,
    /// A new create: it can wait for the others.
    Create,
}

/// The line in front of a connection's slots and rate budget: one request at a time waits
/// for them (the rate lets one through at a time anyway), and the next is the oldest poll if
/// any, else the oldest [`Urgency::Follow`] one, else the oldest create. Polls cannot starve
/// the others: a job is polled about once, and only after its steps.
#[derive(Default)]
pub struct Queue {
    state: Mutex<Line>,
}

#[derive(Default)]
struct Line {
    /// A request holds the turn.
    busy: bool,
    poll: VecDeque<oneshot::Sender<()>>,
    follow: VecDeque<oneshot::Sender<()>>,
    create: VecDeque<oneshot::Sender<()>>,
}

/// The turn: while held, the holder waits for its slot and the budget; dropped, the next
/// request goes.
pub struct Turn<'a> {
    queue: &'a Queue,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.queue.pass();
    }
}

/// A request waiting for its turn; dropped (the request given up) after being handed the
/// turn, it passes it on.
struct Waiting<'a> {
    queue: &'a Queue,
    turn: oneshot::Receiver<()>,
    taken: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.taken {
            return;
        }
        self.turn.close();
        if self.turn.try_recv().is_ok() {
            self.queue.pass();
        }
    }
}

impl Queue {
    fn line(&self) -> std::sync::MutexGuard<'_, Line> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for this request's turn.
    pub async fn turn(&self, urgency: Urgency) -> Turn<'_> {
        let turn = {
            let mut line = self.line();
            if !line.busy {
                line.busy = true;
                return Turn { queue: self };
            }
            let (tx, rx) = oneshot::channel();
            match urgency {
                Urgency::Poll => line.poll.push_back(tx),
                Urgency::Follow => line.follow.push_back(tx),
                Urgency::Create => line.create.push_back(tx),
            }
            rx
        };
        let mut waiting = Waiting { queue: self, turn, taken: false };
        // The sender is only dropped unsent by `pass`, which then hands the turn on to
        // someone else: a closed channel cannot happen while this request waits.
        let _ = (&mut waiting.turn).await;
        waiting.taken = true;
        Turn { queue: self }
    }

    /// Hands the turn to the next request waiting: polls, then follow-ups, then creates.
    fn pass(&self) {
        let mut line = self.line();
        loop {
            let next = line.poll.pop_front().or_else(|| line.follow.pop_front());
            let Some(next) = next.or_else(|| line.create.pop_front()) else { break };
            if next.send(()).is_ok() {
                return;
            }
        }
        line.busy = false;
    }
}
