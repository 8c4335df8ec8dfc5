//! `[[notify]]`: where events go (a signed webhook, a Slack incoming webhook, or email), which
//! events and which pipelines. URLs and secrets are [`Secret`]s: they reach no log.

use std::collections::BTreeSet;
use std::time::Duration;

use sha2::{Digest, Sha256};
use toml::Spanned;

use super::raw::{RawNotify, RawNotifyRetry};
use super::validate::Ctx;
use crate::secret::Secret;

/// The first retry of an undelivered event waits this long; each next one twice as long.
pub const DEFAULT_NOTIFY_INITIAL_BACKOFF: Duration = Duration::from_secs(10);
pub const DEFAULT_NOTIFY_MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// What happened; the `type` of an event's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    /// A file ran to its end and every row was accepted.
    FileFinished,
    /// A file ran to its end, but some rows failed, are unconfirmed or were not processed.
    FileRowsFailed,
    /// The file as a whole could not be processed (it went to `failed/`).
    FileFailed,
    /// The file could not be finished (its reports could not be written, or it was started
    /// too often without progress): set aside in `failed/`.
    FileSetAside,
    ConnectionStopped,
    ConnectionRecovered,
    DiskBlocked,
    BudgetUnreachable,
}

impl EventKind {
    pub const ALL: [EventKind; 8] = [
        EventKind::FileFinished,
        EventKind::FileRowsFailed,
        EventKind::FileFailed,
        EventKind::FileSetAside,
        EventKind::ConnectionStopped,
        EventKind::ConnectionRecovered,
        EventKind::DiskBlocked,
        EventKind::BudgetUnreachable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::FileFinished => "file.finished",
            EventKind::FileRowsFailed => "file.rows_failed",
            EventKind::FileFailed => "file.failed",
            EventKind::FileSetAside => "file.set_aside",
            EventKind::ConnectionStopped => "connection.stopped",
            EventKind::ConnectionRecovered => "connection.recovered",
            EventKind::DiskBlocked => "disk.blocked",
            EventKind::BudgetUnreachable => "budget.unreachable",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// How an event travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkKind {
    /// POST of the JSON body; signed when `secret` is set.
    Webhook { url: Secret, secret: Option<Secret> },
    /// POST of `{"text": ...}` to a Slack incoming webhook.
    Slack { url: Secret },
    /// One message per event over SMTP (`smtp://`, STARTTLS with `?tls=required`, `smtps://`).
    Email { smtp_url: Secret, from: String, to: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkSettings {
    /// Names this destination in the outbox: a hash of where it sends, never the URL, so an
    /// event waits for the same receiver across restarts and reloads.
    pub key: String,
    pub kind: SinkKind,
    /// The events it takes (all unless `events` says otherwise).
    pub events: BTreeSet<EventKind>,
    /// Only these pipelines' events (and their connections'); `None`: every pipeline.
    pub pipelines: Option<BTreeSet<String>>,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl SinkSettings {
    /// Where it sends, fit for a log line: the scheme and host, never a path or password.
    pub fn describe(&self) -> String {
        match &self.kind {
            SinkKind::Webhook { url, .. } => format!("webhook to {}", redact_url(url.expose())),
            SinkKind::Slack { url } => format!("slack webhook at {}", redact_url(url.expose())),
            SinkKind::Email { to, .. } => format!("email to {}", to.join(", ")),
        }
    }
}

/// `scheme://host[:port]/…`: what a log may say of a URL that may hold a secret.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{}{port}/…", u.scheme(), u.host_str().unwrap_or(""))
        }
        Err(_) => "(an invalid URL)".into(),
    }
}

impl Ctx<'_> {
    /// Every `[[notify]]` table; `pipelines` names what the file defines.
    pub(super) fn notify(&mut self, raw: &[RawNotify], pipelines: &[String]) -> Vec<SinkSettings> {
        let mut sinks: Vec<SinkSettings> = Vec::new();
        let mut bases: Vec<String> = Vec::new();
        for (i, n) in raw.iter().enumerate() {
            let Some(mut sink) = self.sink(i + 1, n, pipelines) else { continue };
            // The same destination twice: each gets its own rows.
            let same = bases.iter().filter(|b| **b == sink.key).count();
            bases.push(sink.key.clone());
            if same > 0 {
                sink.key = format!("{}-{}", sink.key, same + 1);
            }
            sinks.push(sink);
        }
        sinks
    }

    fn sink(&mut self, n: usize, raw: &RawNotify, pipelines: &[String]) -> Option<SinkSettings> {
        let at = format!("[[notify]] #{n}");
        let kind = match raw.kind.get_ref().as_str() {
            "webhook" => {
                let url = self.notify_url(&at, raw)?;
                let secret = match (&raw.secret, &raw.secret_file) {
                    (None, None) => None,
                    (inline, file) => self.secret("secret", inline, file, raw.kind.span()),
                };
                SinkKind::Webhook { url, secret }
            }
            "slack" => SinkKind::Slack { url: self.notify_url(&at, raw)? },
            "email" => self.email(&at, raw)?,
            other => {
                self.problem(
                    raw.kind.span(),
                    format!("{at}: kind `{other}` is not webhook, slack or email"),
                );
                return None;
            }
        };
        self.not_for_kind(&at, raw);
        let (initial_backoff, max_backoff) = self.notify_retry(raw.retry.as_ref());
        Some(SinkSettings {
            key: sink_key(&kind),
            kind,
            events: self.events(&at, raw.events.as_ref()),
            pipelines: self.pipeline_filter(&at, raw.pipelines.as_ref(), pipelines),
            initial_backoff,
            max_backoff,
        })
    }

    /// `url` of a webhook or Slack table: `${VAR}` expanded, http or https.
    fn notify_url(&mut self, at: &str, raw: &RawNotify) -> Option<Secret> {
        let Some(url) = &raw.url else {
            self.problem(raw.kind.span(), format!("{at}: `url` is required"));
            return None;
        };
        let text = self.credential("url", url);
        if !text.contains("${") {
            let ok = reqwest::Url::parse(&text)
                .map(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
                .unwrap_or(false);
            if !ok {
                self.problem(url.span(), format!("{at}: `url` is not an http:// or https:// URL"));
            }
        }
        Some(Secret::new(text))
    }

    fn email(&mut self, at: &str, raw: &RawNotify) -> Option<SinkKind> {
        let (Some(smtp_url), Some(from), Some(to)) = (&raw.smtp_url, &raw.from, &raw.to) else {
            self.problem(raw.kind.span(), format!("{at}: email needs `smtp_url`, `from` and `to`"));
            return None;
        };
        let url = self.credential("smtp_url", smtp_url);
        if !url.contains("${") && !smtp_url_ok(&url) {
            self.problem(
                smtp_url.span(),
                format!("{at}: `smtp_url` is not an smtp:// or smtps:// URL"),
            );
        }
        let mut mailbox = |key: &str, value: &str, span: std::ops::Range<usize>| {
            if value.parse::<lettre::message::Mailbox>().is_err() {
                self.problem(span, format!("{at}: `{key}` = `{value}` is not an email address"));
            }
            value.to_string()
        };
        let from = mailbox("from", from.get_ref(), from.span());
        let to: Vec<String> =
            to.get_ref().clone().into_vec().iter().map(|t| mailbox("to", t, to.span())).collect();
        Some(SinkKind::Email { smtp_url: Secret::new(url), from, to })
    }

    /// Keys that another kind takes: a mistake worth naming.
    fn not_for_kind(&mut self, at: &str, raw: &RawNotify) {
        let kind = raw.kind.get_ref().as_str();
        let spans = |v: Option<std::ops::Range<usize>>, key: &'static str| v.map(|s| (s, key));
        let misplaced = match kind {
            "email" => vec![
                spans(raw.url.as_ref().map(Spanned::span), "url"),
                spans(raw.secret.as_ref().map(Spanned::span), "secret"),
                spans(raw.secret_file.as_ref().map(Spanned::span), "secret_file"),
            ],
            _ => vec![
                spans(raw.smtp_url.as_ref().map(Spanned::span), "smtp_url"),
                spans(raw.from.as_ref().map(Spanned::span), "from"),
                spans(raw.to.as_ref().map(Spanned::span), "to"),
            ],
        };
        for (span, key) in misplaced.into_iter().flatten() {
            self.problem(span, format!("{at}: `{key}` does not apply to kind `{kind}`"));
        }
        if kind == "slack" {
            if let Some(s) = raw.secret.as_ref().or(raw.secret_file.as_ref()) {
                self.problem(
                    s.span(),
                    format!(
                        "{at}: Slack webhooks are not signed; `secret` applies to kind `webhook`"
                    ),
                );
            }
        }
    }

    fn events(
        &mut self,
        at: &str,
        raw: Option<&Spanned<Vec<Spanned<String>>>>,
    ) -> BTreeSet<EventKind> {
        let Some(list) = raw else { return EventKind::ALL.into_iter().collect() };
        let mut out = BTreeSet::new();
        for e in list.get_ref() {
            match EventKind::parse(e.get_ref()) {
                Some(k) => {
                    out.insert(k);
                }
                None => {
                    let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                    self.problem(
                        e.span(),
                        format!(
                            "{at}: unknown event `{}` (known: {})",
                            e.get_ref(),
                            known.join(", ")
                        ),
                    );
                }
            }
        }
        if list.get_ref().is_empty() {
            self.problem(list.span(), format!("{at}: `events` is empty: nothing would be sent"));
        }
        out
    }

    fn pipeline_filter(
        &mut self,
        at: &str,
        raw: Option<&Spanned<Vec<Spanned<String>>>>,
        defined: &[String],
    ) -> Option<BTreeSet<String>> {
        let list = raw?;
        for p in list.get_ref() {
            if !defined.contains(p.get_ref()) {
                self.problem(
                    p.span(),
                    format!(
                        "{at}: unknown pipeline `{}` (defined: {})",
                        p.get_ref(),
                        defined.join(", ")
                    ),
                );
            }
        }
        Some(list.get_ref().iter().map(|p| p.get_ref().clone()).collect())
    }

    fn notify_retry(&mut self, raw: Option<&RawNotifyRetry>) -> (Duration, Duration) {
        let Some(r) = raw else {
            return (DEFAULT_NOTIFY_INITIAL_BACKOFF, DEFAULT_NOTIFY_MAX_BACKOFF);
        };
        let initial = self.duration(
            "notify.retry.initial_backoff",
            &r.initial_backoff,
            DEFAULT_NOTIFY_INITIAL_BACKOFF,
        );
        let max =
            self.duration("notify.retry.max_backoff", &r.max_backoff, DEFAULT_NOTIFY_MAX_BACKOFF);
        (initial.max(Duration::from_millis(100)), max.max(initial))
    }
}

/// Whether lettre takes the URL (its scheme, host, port and options).
fn smtp_url_ok(url: &str) -> bool {
    (url.starts_with("smtp://") || url.starts_with("smtps://"))
        && lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url).is_ok()
}

/// A short hash of where a sink sends.
fn sink_key(kind: &SinkKind) -> String {
    let mut h = Sha256::new();
    match kind {
        SinkKind::Webhook { url, .. } => h.update(format!("webhook\0{}", url.expose())),
        SinkKind::Slack { url } => h.update(format!("slack\0{}", url.expose())),
        SinkKind::Email { smtp_url, to, .. } => {
            h.update(format!("email\0{}\0{}", smtp_url.expose(), to.join("\0")))
        }
    }
    h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted_to_scheme_and_host() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T0/B0/SECRETPART"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(redact_url("http://u:pw@127.0.0.1:8080/x?k=v"), "http://127.0.0.1:8080/…");
        assert!(!redact_url("not a url with SECRET").contains("SECRET"));
    }

    #[test]
    fn event_names_round_trip() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(EventKind::parse("file.done"), None);
    }
}
