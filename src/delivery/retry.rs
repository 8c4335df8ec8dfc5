//! Whether to retry a call, and how long to wait: pure functions, table-tested.

use std::time::{Duration, SystemTime};

pub use crate::config::RetryPolicy;

use super::call::{Expect, Safety};

/// A server asking for a longer pause than this is capped, so a bad header cannot stall us.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// What one attempt produced, reduced to what the decision needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// No answer: a refused or reset connection, a timeout, a body cut short. `maybe_sent`
    /// unless the connection was never made.
    NoAnswer {
        maybe_sent: bool,
    },
    Response {
        status: u16,
        json_body: bool,
        retry_after: Option<Duration>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A usable answer.
    Accept,
    /// Try again, after the server's requested wait when it gave one.
    Retry { after: Option<Duration> },
    /// 401: the credentials were refused (an OAuth token is refreshed once first).
    Unauthorized,
    /// 403: about this record, or about the credentials; a probe tells which.
    Forbidden,
    /// A definite refusal (other 4xx): give it to the adapter, do not retry.
    Reject,
    /// A `Once` call that may have been applied without an answer: never sent again.
    Unknown,
}

/// Whether and how to go on after an attempt, by what the call does (`safety`) and what its
/// answer should hold (`expect`).
pub fn classify(attempt: Attempt, safety: Safety, expect: Expect) -> Action {
    let once = safety == Safety::Once;
    match attempt {
        Attempt::NoAnswer { maybe_sent: true } if once => Action::Unknown,
        Attempt::NoAnswer { .. } => Action::Retry { after: None },
        Attempt::Response { status, json_body, retry_after } => match status {
            200..=299 if json_body || expect == Expect::File => Action::Accept,
            // A 2xx that is not JSON is a proxy's or a broken server's page.
            200..=299 if once => Action::Unknown,
            200..=299 => Action::Retry { after: retry_after },
            401 => Action::Unauthorized,
            403 => Action::Forbidden,
            // Refused before any work: safe to send again whatever the call.
            408 | 429 => Action::Retry { after: retry_after },
            // A server error may come after the work was done.
            500..=599 if once => Action::Unknown,
            500..=599 => Action::Retry { after: retry_after },
            _ => Action::Reject,
        },
    }
}

/// `Retry-After` as seconds or an HTTP date; `X-RateLimit-Reset` as seconds or a Unix time.
/// Whatever the server wrote, the answer is at most [`MAX_RETRY_AFTER`]: a number of any size
/// or form (`1e30`, past `u64`) is clamped before it becomes a duration; a negative or
/// non-finite one is no wait at all.
pub fn parse_wait(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let cap = MAX_RETRY_AFTER.as_secs_f64();
    if let Ok(n) = value.parse::<f64>() {
        if !n.is_finite() || n < 0.0 {
            return None;
        }
        let unix_now = now.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs_f64();
        // Large numbers are absolute Unix times (X-RateLimit-Reset), small ones are seconds.
        let secs = if n > 1_000_000_000.0 { (n - unix_now).max(0.0) } else { n };
        return Duration::try_from_secs_f64(secs.min(cap)).ok();
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO).min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, json_body: bool) -> Attempt {
        Attempt::Response { status, json_body, retry_after: None }
    }

    #[test]
    fn classification_table() {
        use Safety::*;
        let retry = Action::Retry { after: None };
        let sent = Attempt::NoAnswer { maybe_sent: true };
        let refused = Attempt::NoAnswer { maybe_sent: false };
        let table = [
            (resp(200, true), Repeatable, Expect::Json, Action::Accept),
            (resp(201, true), Once, Expect::Json, Action::Accept),
            (resp(200, false), Read, Expect::Json, retry),
            (resp(200, false), Read, Expect::File, Action::Accept),
            (resp(200, false), Once, Expect::Json, Action::Unknown),
            (resp(400, true), Repeatable, Expect::Json, Action::Reject),
            (resp(404, true), Read, Expect::Json, Action::Reject),
            (resp(422, true), Once, Expect::Json, Action::Reject),
            (resp(401, true), Read, Expect::Json, Action::Unauthorized),
            (resp(403, false), Once, Expect::Json, Action::Forbidden),
            (resp(408, true), Once, Expect::Json, retry),
            (resp(429, true), Once, Expect::Json, retry),
            (resp(500, false), Repeatable, Expect::Json, retry),
            (resp(502, false), Once, Expect::Json, Action::Unknown),
            (resp(503, true), Read, Expect::Json, retry),
            (sent, Repeatable, Expect::Json, retry),
            (sent, Once, Expect::Json, Action::Unknown),
            (refused, Once, Expect::Json, retry),
        ];
        for (attempt, safety, expect, want) in table {
            assert_eq!(
                classify(attempt, safety, expect),
                want,
                "{attempt:?} {safety:?} {expect:?}"
            );
        }
        let wait = Some(Duration::from_secs(3));
        assert_eq!(
            classify(
                Attempt::Response { status: 429, json_body: true, retry_after: wait },
                Read,
                Expect::Json
            ),
            Action::Retry { after: wait }
        );
    }

    #[test]
    fn wait_headers() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        assert_eq!(parse_wait("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_wait("0.5", now), Some(Duration::from_millis(500)));
        assert_eq!(parse_wait("2000000005", now), Some(Duration::from_secs(5)));
        assert_eq!(parse_wait("99999", now), Some(Duration::from_secs(3600)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(9));
        assert_eq!(parse_wait(&date, now), Some(Duration::from_secs(9)));
        assert_eq!(parse_wait("soon", now), None);
        assert_eq!(parse_wait("1e30", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_wait("99999999999999999999999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_wait("-5", now), None);
        assert_eq!(parse_wait("NaN", now), None);
    }

    proptest::proptest! {
        #[test]
        fn any_wait_header_is_read_without_panic_and_capped(value in ".{0,40}", unix in 0u64..4_000_000_000) {
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(unix);
            if let Some(wait) = parse_wait(&value, now) {
                proptest::prop_assert!(wait <= MAX_RETRY_AFTER);
            }
        }

        #[test]
        fn numbers_of_any_size_are_capped(n in proptest::num::f64::ANY, big in proptest::num::u128::ANY) {
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
            for text in [n.to_string(), format!("{n:e}"), big.to_string()] {
                if let Some(wait) = parse_wait(&text, now) {
                    proptest::prop_assert!(wait <= MAX_RETRY_AFTER, "{text}");
                }
            }
        }

        #[test]
        fn seconds_and_dates_round_trip(secs in 0u64..=3600, ahead in 0u64..=3600) {
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
            proptest::prop_assert_eq!(parse_wait(&secs.to_string(), now), Some(Duration::from_secs(secs)));
            let date = httpdate::fmt_http_date(now + Duration::from_secs(ahead));
            proptest::prop_assert_eq!(parse_wait(&date, now), Some(Duration::from_secs(ahead)));
            let reset = (2_000_000_000 + ahead).to_string();
            proptest::prop_assert_eq!(parse_wait(&reset, now), Some(Duration::from_secs(ahead)));
        }
    }
}
