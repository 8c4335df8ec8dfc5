//! A connection whose credentials were refused holds: nothing is sent on it, its files wait
//! (the one in flight at its checkpoint, new ones in the inbox), and it probes the credentials
//! again every `auth_retry` (doubling up to 15 minutes) and at once on a reload, reading
//! `*_file` secrets afresh. Once a probe is accepted, everything that waited goes on.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::connection::Connection;
use super::retry::Action;
use crate::config::ConnectionSettings;

/// The longest wait between two probes of refused credentials.
pub const MAX_AUTH_RETRY: Duration = Duration::from_secs(15 * 60);

/// The latch: why the credentials were refused, followed by whoever waits for them.
pub struct Hold {
    failure: Mutex<Option<String>>,
    held: watch::Sender<bool>,
    probe_now: Notify,
}

impl Default for Hold {
    fn default() -> Self {
        Self { failure: Mutex::new(None), held: watch::channel(false).0, probe_now: Notify::new() }
    }
}

impl Hold {
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|g| g.clone())
    }

    /// Latches a refusal; `true` the first time (say it once).
    pub fn refuse(&self, detail: &str) -> bool {
        let Ok(mut g) = self.failure.lock() else { return false };
        let first = g.is_none();
        *g = Some(detail.to_string());
        self.held.send_replace(true);
        first
    }

    fn lift(&self) {
        if let Ok(mut g) = self.failure.lock() {
            *g = None;
        }
        self.held.send_replace(false);
    }
}

/// What a probe of the credentials came to.
enum Probe {
    Accepted,
    Refused(String),
    /// No answer that tells (no connection, a 5xx, a 429): try again later.
    Unclear(String),
}

impl Connection {
    /// `true` while the credentials are refused, followed.
    pub fn held(&self) -> watch::Receiver<bool> {
        self.hold.held.subscribe()
    }

    /// Returns once the credentials are not (or no longer) refused.
    pub async fn until_accepted(&self) {
        let _ = self.held().wait_for(|held| !*held).await;
    }

    /// A held connection probes its credentials now (a reload); otherwise nothing.
    pub fn probe_now(&self) {
        if self.auth_failure().is_some() {
            self.hold.probe_now.notify_one();
        }
    }

    /// For the connection's life (until `stop`): whenever its credentials are refused,
    /// probes them every `auth_retry` (doubling up to [`MAX_AUTH_RETRY`]) and on
    /// [`Connection::probe_now`], with the credentials `fresh` reads (the config file again,
    /// `*_file` secrets included), and lifts the hold once one is accepted.
    pub async fn recover<F>(self: Arc<Self>, fresh: F, stop: CancellationToken)
    where
        F: Fn() -> Option<Arc<ConnectionSettings>> + Send,
    {
        let mut held = self.held();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                r = held.wait_for(|h| *h) => if r.is_err() { return },
            }
            let mut wait = self.settings().auth_retry;
            while self.auth_failure().is_some() {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                    _ = self.hold.probe_now.notified() => {}
                }
                wait = wait.saturating_mul(2).min(MAX_AUTH_RETRY);
                if let Some(new) = fresh() {
                    let mut now = (*self.settings()).clone();
                    now.auth = new.auth.clone();
                    if let Err(e) = self.reconfigure(Arc::new(now)) {
                        tracing::warn!(connection = self.name(), error = %e, "cannot rebuild the connection's HTTP client");
                    }
                }
                match self.probe_credentials().await {
                    Probe::Accepted => {
                        tracing::info!(
                            connection = self.name(),
                            "credentials accepted again; the files this connection held go on"
                        );
                        self.hold.lift();
                    }
                    Probe::Refused(why) => {
                        tracing::warn!(connection = self.name(), error = %why, next_probe_s = wait.as_secs(), "credentials still refused; the connection keeps holding its files")
                    }
                    Probe::Unclear(why) => {
                        tracing::warn!(connection = self.name(), error = %why, next_probe_s = wait.as_secs(), "the credentials probe got no answer that tells")
                    }
                }
            }
        }
    }

    /// One probe, past the latch (it is what lifts it), through the connection's limits.
    async fn probe_credentials(&self) -> Probe {
        let call = self.probe_call();
        let (reply, action) = self.attempt(&call).await;
        match (reply, action) {
            (Ok(r), Action::Unauthorized | Action::Forbidden) => {
                Probe::Refused(format!("the probe answered HTTP {}", r.status))
            }
            (Ok(_), Action::Accept | Action::Reject) => Probe::Accepted,
            (Ok(r), _) => Probe::Unclear(format!("the probe answered HTTP {}", r.status)),
            (Err(e), _) => Probe::Unclear(e),
        }
    }
}
