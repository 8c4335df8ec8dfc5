//! One CRM account: its HTTP client, rate limiter, in-flight slots and retry loop, shared by
//! every pipeline that names it. Every request of every target goes through [`Connection::call`].

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::HeaderMap;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::retry::{classify, parse_wait, Action, Attempt};
use crate::config::{Auth, ConnectionSettings};

/// The longest pause for an exhausted budget whose reset time the server did not give.
const MAX_UNKNOWN_RESET: Duration = Duration::from_secs(60);

/// A usable answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// What the retry decision saw.
    pub attempt: Attempt,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// A definite refusal (4xx other than auth/408/429); the body says why.
    #[error("{endpoint} answered HTTP {status}: {message}")]
    Rejected { endpoint: &'static str, status: u16, body: Bytes, message: String },
    #[error("{endpoint} failed after {attempts} attempts; last error: {last}")]
    Exhausted { endpoint: &'static str, attempts: u32, last: String },
    #[error("connection `{connection}` was refused authentication ({detail}); fix its credentials and reload")]
    Auth { connection: String, detail: String },
    #[error("stopped before {endpoint} could be sent: shutting down")]
    Cancelled { endpoint: &'static str },
}

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
    pub settings: Arc<ConnectionSettings>,
    client: reqwest::Client,
    limiter: DefaultDirectRateLimiter,
    slots: Semaphore,
    /// A server-requested pause (Retry-After, exhausted rate budget) for the whole connection.
    paused_until: Mutex<Option<Instant>>,
    /// Set when the CRM refused the credentials: no further request is sent.
    auth_failure: Mutex<Option<String>>,
    /// Held while a request that creates something remote is in flight and until its id is in
    /// the ledger: after a `kill -9`, at most one batch per connection has an unknown outcome.
    creating: tokio::sync::Mutex<()>,
    pub stats: ConnectionStats,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("name", &self.settings.name).finish_non_exhaustive()
    }
}

impl Connection {
    pub fn new(settings: Arc<ConnectionSettings>) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("crm-ingest/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let rate = &settings.rate_limit;
        // 1 % under the configured rate: exactly at it, network jitter can put one request
        // more into a server's window than it allows.
        let period = (rate.interval() * 101 / 100).max(Duration::from_nanos(1));
        let burst = NonZeroU32::new(settings.burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        Ok(Self {
            limiter: RateLimiter::direct(quota),
            slots: Semaphore::new(settings.max_in_flight),
            client,
            paused_until: Mutex::new(None),
            auth_failure: Mutex::new(None),
            creating: tokio::sync::Mutex::new(()),
            stats: ConnectionStats::default(),
            settings,
        })
    }

    pub fn name(&self) -> &str {
        &self.settings.name
    }

    pub fn base_url(&self) -> &str {
        &self.settings.base_url
    }

    /// One harmless authenticated call, for `check --connect`: any answer but a refusal of the
    /// credentials (or no answer at all) means the connection works.
    pub async fn probe(&self) -> Result<(), String> {
        let url = match self.settings.kind {
            crate::config::CrmKind::Plannr => {
                format!("{}/api/v1/import?per_page=1", self.base_url())
            }
            crate::config::CrmKind::Repsly => format!("{}/export/importStatus/0", self.base_url()),
        };
        match self.call("probe", |c| c.get(&url)).await {
            Ok(_) | Err(CallError::Rejected { .. }) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Waits for the right to create a remote job; hold the guard until the job's id is
    /// recorded. Status polls do not need it.
    pub async fn creating(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.creating.lock().await
    }

    /// The credentials problem that stopped this connection, if any.
    pub fn auth_failure(&self) -> Option<String> {
        self.auth_failure.lock().ok().and_then(|g| g.clone())
    }

    /// Sends a request built by `make`, within the connection's limits, retrying what is
    /// worth retrying. `endpoint` labels logs and errors (`import/clientList`).
    pub async fn call<F>(&self, endpoint: &'static str, make: F) -> Result<Reply, CallError>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        let policy = self.settings.retry;
        let mut last = String::new();
        for attempt in 1..=policy.max_attempts {
            if let Some(detail) = self.auth_failure() {
                return Err(CallError::Auth { connection: self.settings.name.clone(), detail });
            }
            let mut server_wait = None;
            match self.attempt(endpoint, &make).await {
                Ok(reply) => match classify(reply.attempt) {
                    Action::Accept => return Ok(reply),
                    Action::AuthFailed => return Err(self.refused(endpoint, &reply)),
                    Action::Reject => {
                        return Err(CallError::Rejected {
                            endpoint,
                            status: reply.status,
                            message: message_of(&reply.body),
                            body: reply.body,
                        })
                    }
                    Action::Retry { after } => {
                        last = format!("HTTP {}: {}", reply.status, message_of(&reply.body));
                        server_wait = after;
                    }
                },
                Err(transport) => last = transport,
            }
            if attempt == policy.max_attempts {
                break;
            }
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            crate::metrics::get().retry(&self.settings.name, endpoint);
            let wait = match server_wait {
                Some(w) => {
                    self.pause_for(w);
                    w
                }
                None => policy.backoff(attempt),
            };
            tracing::warn!(connection = %self.settings.name, endpoint, attempt, wait_ms = wait.as_millis() as u64, error = %last, "retrying");
            tokio::time::sleep(wait).await;
        }
        Err(CallError::Exhausted { endpoint, attempts: policy.max_attempts, last })
    }

    /// Records a credentials refusal so no further request is sent, and says so once.
    fn refused(&self, endpoint: &'static str, reply: &Reply) -> CallError {
        let detail =
            format!("{endpoint} answered HTTP {}: {}", reply.status, message_of(&reply.body));
        if let Ok(mut g) = self.auth_failure.lock() {
            if g.is_none() {
                tracing::error!(connection = %self.settings.name, endpoint, status = reply.status, "authentication refused; no more requests are sent on this connection until the config is fixed and reloaded");
            }
            *g = Some(detail.clone());
        }
        CallError::Auth { connection: self.settings.name.clone(), detail }
    }

    /// One request: wait for a slot, any pause, the rate limiter; then send and read the body.
    async fn attempt<F>(&self, endpoint: &'static str, make: &F) -> Result<Reply, String>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        let _slot = self.slots.acquire().await.map_err(|_| "connection closed".to_string())?;
        self.wait_for_pause().await;
        let metrics = crate::metrics::get();
        let started = Instant::now();
        self.limiter.until_ready().await;
        let waited = started.elapsed();
        self.stats.limiter_wait_us.fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
        metrics.limiter_wait(&self.settings.name, waited);
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let request = self.authorise(make(&self.client));
        let sent = Instant::now();
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                metrics.request(&self.settings.name, endpoint, None, sent.elapsed());
                return Err(describe_transport(endpoint, &e));
            }
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| describe_transport(endpoint, &e));
        let seen = if body.is_ok() { Some(status) } else { None };
        metrics.request(&self.settings.name, endpoint, seen, sent.elapsed());
        let body = body?;
        let now = SystemTime::now();
        let retry_after = headers
            .get("retry-after")
            .or_else(|| if status == 429 { headers.get("x-ratelimit-reset") } else { None })
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_wait(v, now));
        if status == 429 {
            self.stats.throttled.fetch_add(1, Ordering::Relaxed);
        }
        self.note_remaining(&headers, now);
        let json_body =
            body.is_empty() || serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok();
        let attempt = Attempt::Response { status, json_body, retry_after };
        Ok(Reply { status, headers, body, attempt })
    }

    fn authorise(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let request = request.header("Accept", "application/json");
        match &self.settings.auth {
            Auth::Bearer { token, account_uuid } => {
                request.bearer_auth(token.expose()).header("X-PLANNR-ACCOUNT-UUID", account_uuid)
            }
            Auth::Basic { username, password } => {
                request.basic_auth(username, Some(password.expose()))
            }
        }
    }

    /// `X-Ratelimit-Remaining: 0` means the next call would be refused: wait for the window.
    fn note_remaining(&self, headers: &HeaderMap, now: SystemTime) {
        let remaining = headers
            .get("x-ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if remaining != Some(0) {
            return;
        }
        let wait = headers
            .get("x-ratelimit-reset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_wait(v, now))
            .unwrap_or(self.settings.rate_limit.per.min(MAX_UNKNOWN_RESET));
        self.pause_for(wait);
    }

    fn pause_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        if let Ok(mut g) = self.paused_until.lock() {
            if g.is_none_or(|u| u < until) {
                *g = Some(until);
            }
        }
    }

    async fn wait_for_pause(&self) {
        loop {
            let until = self.paused_until.lock().ok().and_then(|g| *g);
            match until {
                Some(u) if u > Instant::now() => tokio::time::sleep_until(u).await,
                _ => return,
            }
        }
    }
}

fn describe_transport(endpoint: &str, e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "connection broke while reading the response"
    } else {
        "request failed"
    };
    let mut msg = format!("{endpoint} {kind}");
    let mut source = std::error::Error::source(e);
    if let Some(s) = source.take() {
        msg.push_str(&format!(": {s}"));
    }
    msg
}

/// The `message`/`Message` of a JSON error body, or the start of a non-JSON one.
pub fn message_of(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        for key in ["message", "Message", "error"] {
            if let Some(m) = v.get(key).and_then(|m| m.as_str()) {
                return m.to_string();
            }
        }
        let text = v.to_string();
        return text.chars().take(300).collect();
    }
    let text = String::from_utf8_lossy(body);
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.is_empty() {
        "(empty body)".into()
    } else {
        format!("non-JSON body: {}", flat.chars().take(200).collect::<String>())
    }
}
