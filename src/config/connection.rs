//! `[connections.NAME]` -> [`ConnectionSettings`]: kind, URL, credentials, limits.

use std::ops::Range;

use super::rate::RateLimit;
use super::raw::{RawConnection, RawOAuth};
use super::retry::RetryPolicy;
use super::settings::*;
use super::validate::Ctx;
use crate::secret::Secret;

impl Ctx<'_> {
    /// A connection's settings; with problems recorded, still settings (with empty
    /// credentials), so pipelines naming it get no follow-on "unknown connection" error.
    pub(super) fn connection(
        &mut self,
        name: &str,
        raw: &RawConnection,
    ) -> Option<ConnectionSettings> {
        let kind = match raw.kind.get_ref().as_str() {
            "plannr" => CrmKind::Plannr,
            "repsly" => CrmKind::Repsly,
            other => {
                self.problem(
                    raw.kind.span(),
                    format!("connection `{name}`: kind `{other}` is not plannr or repsly"),
                );
                return None;
            }
        };
        let (default_url, default_rate) = match kind {
            CrmKind::Plannr => (
                "https://api.plannrcrm.com",
                RateLimit { count: 500, per: std::time::Duration::from_secs(60) },
            ),
            CrmKind::Repsly => (
                "https://api.repsly.com/v3",
                RateLimit { count: 120, per: std::time::Duration::from_secs(60) },
            ),
        };
        let base_url = self.base_url(name, raw, default_url);
        let base_url = base_url.trim_end_matches('/').to_string();
        self.misplaced(name, kind, raw);
        let auth = match kind {
            CrmKind::Plannr => self.plannr_auth(name, raw, &base_url),
            CrmKind::Repsly => self.repsly_auth(name, raw),
        };
        let key = |k: &str| format!("connections.{name}.{k}");
        let rate_limit = self.value(&key("rate_limit"), &raw.rate_limit).unwrap_or(default_rate);
        let never = "would never let a request be sent";
        let max_in_flight = self
            .at_least_one(&key("max_in_flight"), &raw.max_in_flight, never)
            .unwrap_or_else(|| default_in_flight(&rate_limit));
        let burst = self.at_least_one(&key("burst"), &raw.burst, never).unwrap_or(1);
        let timeout = self.nonzero_duration(
            &key("timeout"),
            &raw.timeout,
            DEFAULT_TIMEOUT,
            "would time every request out at once",
        );
        let poll_interval = self.nonzero_duration(
            &key("poll_interval"),
            &raw.poll_interval,
            DEFAULT_POLL_INTERVAL,
            "would poll jobs without a pause",
        );
        let poll_timeout = self.nonzero_duration(
            &key("poll_timeout"),
            &raw.poll_timeout,
            DEFAULT_POLL_TIMEOUT,
            "would give every job up at once",
        );
        let retry = self.retry(&key("retry"), raw.retry.as_ref());
        let auth_retry = self.duration(&key("auth_retry"), &raw.auth_retry, DEFAULT_AUTH_RETRY);
        let shared_limit = raw.shared_limit.as_ref().map(|s| self.shared_limit(name, s));
        Some(ConnectionSettings {
            name: name.to_string(),
            kind,
            base_url,
            auth,
            rate_limit,
            burst,
            max_in_flight,
            timeout,
            retry,
            poll_interval,
            poll_timeout,
            auth_retry,
            shared_limit,
        })
    }

    /// `base_url`, or the CRM's own; a plain `http://` one off this machine is warned.
    fn base_url(&mut self, name: &str, raw: &RawConnection, default_url: &str) -> String {
        match &raw.base_url {
            Some(u) => {
                let url = self.expand("base_url", u);
                match reqwest::Url::parse(&url) {
                    Err(_) => self.problem(
                        u.span(),
                        format!(
                            "connection `{name}`: base_url `{}` is not a URL",
                            crate::secret::redact_url(&url)
                        ),
                    ),
                    Ok(parsed) if in_clear(&parsed) => self.warn(
                        u.span(),
                        format!("connection `{name}`: base_url `{}` is plain http:// to a host that is not this machine: the credentials would travel in clear; use https://", crate::secret::redact_url(&url)),
                    ),
                    Ok(_) => {}
                }
                url
            }
            None => default_url.to_string(),
        }
    }

    /// `shared_limit`: a `redis://` URL (its password may come from a variable) and the key.
    fn shared_limit(&mut self, name: &str, raw: &super::raw::RawSharedLimit) -> SharedLimit {
        let url = self.credential("shared_limit.redis", &raw.redis);
        let scheme = url.split_once("://").map(|(s, _)| s);
        if !url.is_empty() && !matches!(scheme, Some("redis")) {
            self.problem(
                raw.redis.span(),
                format!("connection `{name}`: shared_limit.redis must be a redis://host:port/ URL (TLS is not built in: reach Redis over a private network)"),
            );
        }
        let key = match &raw.key {
            Some(k) => self.expand("shared_limit.key", k),
            None => format!("crm-ingest:rate:{name}"),
        };
        SharedLimit { redis: Secret::new(url), key }
    }

    fn retry(&mut self, key: &str, raw: Option<&super::raw::RawRetry>) -> RetryPolicy {
        let d = RetryPolicy::default();
        let Some(r) = raw else { return d };
        let no_pause = "would retry without a pause";
        RetryPolicy {
            max_attempts: self
                .at_least_one(
                    &format!("{key}.max_attempts"),
                    &r.max_attempts,
                    "would never send a request",
                )
                .unwrap_or(d.max_attempts),
            initial_backoff: self.nonzero_duration(
                &format!("{key}.initial_backoff"),
                &r.initial_backoff,
                d.initial_backoff,
                no_pause,
            ),
            max_backoff: self.nonzero_duration(
                &format!("{key}.max_backoff"),
                &r.max_backoff,
                d.max_backoff,
                no_pause,
            ),
        }
    }

    /// Keys of the other CRM's credentials.
    fn misplaced(&mut self, name: &str, kind: CrmKind, raw: &RawConnection) {
        let misplaced: &[(&str, bool)] = match kind {
            CrmKind::Plannr => &[
                ("username", raw.username.is_some()),
                ("password", raw.password.is_some() || raw.password_file.is_some()),
            ],
            CrmKind::Repsly => &[
                ("token", raw.token.is_some() || raw.token_file.is_some()),
                ("account_uuid", raw.account_uuid.is_some()),
                ("oauth", raw.oauth.is_some()),
            ],
        };
        for (key, present) in misplaced {
            if *present {
                self.problem(
                    raw.kind.span(),
                    format!(
                        "connection `{name}`: `{key}` does not apply to kind {}",
                        kind.as_str()
                    ),
                );
            }
        }
    }

    fn plannr_auth(&mut self, name: &str, raw: &RawConnection, base_url: &str) -> Auth {
        let anchor = raw.kind.span();
        let account_uuid = match &raw.account_uuid {
            Some(a) => self.credential("account_uuid", a),
            None => {
                self.problem(
                    anchor.clone(),
                    format!("connection `{name}`: `account_uuid` is required for plannr"),
                );
                String::new()
            }
        };
        match (&raw.oauth, raw.token.is_some() || raw.token_file.is_some()) {
            (Some(_), true) => {
                self.problem(
                    anchor,
                    format!("connection `{name}`: give `token` or `oauth`, not both"),
                );
                Auth::Bearer { token: Secret::new(""), account_uuid }
            }
            (Some(o), false) => self.oauth(o, base_url, account_uuid, anchor),
            (None, _) => {
                let token = self.secret("token", &raw.token, &raw.token_file, anchor);
                Auth::Bearer { token: token.unwrap_or_else(|| Secret::new("")), account_uuid }
            }
        }
    }

    fn oauth(
        &mut self,
        o: &RawOAuth,
        base_url: &str,
        account_uuid: String,
        anchor: Range<usize>,
    ) -> Auth {
        let token_url = match &o.token_url {
            Some(u) => {
                let url = self.expand("oauth.token_url", u);
                if reqwest::Url::parse(&url).is_ok_and(|p| in_clear(&p)) {
                    self.warn(
                        u.span(),
                        format!("oauth.token_url `{}` is plain http:// to a host that is not this machine: the client secret and tokens would travel in clear; use https://", crate::secret::redact_url(&url)),
                    );
                }
                url
            }
            None => format!("{base_url}/oauth/token"),
        };
        let client_id = self.credential("oauth.client_id", &o.client_id);
        let secret = self.secret(
            "oauth.client_secret",
            &o.client_secret,
            &o.client_secret_file,
            anchor.clone(),
        );
        let refresh =
            self.secret("oauth.refresh_token", &o.refresh_token, &o.refresh_token_file, anchor);
        Auth::OAuth {
            token_url,
            client_id,
            client_secret: secret.unwrap_or_else(|| Secret::new("")),
            refresh_token: refresh.unwrap_or_else(|| Secret::new("")),
            account_uuid,
        }
    }

    fn repsly_auth(&mut self, name: &str, raw: &RawConnection) -> Auth {
        let anchor = raw.kind.span();
        let username = match &raw.username {
            Some(u) => self.credential("username", u),
            None => {
                self.problem(
                    anchor.clone(),
                    format!("connection `{name}`: `username` is required for repsly"),
                );
                String::new()
            }
        };
        let password = self.secret("password", &raw.password, &raw.password_file, anchor);
        Auth::Basic { username, password: password.unwrap_or_else(|| Secret::new("")) }
    }
}

/// Whether credentials sent to `url` would cross a network unencrypted: plain `http://` to
/// a host other than this machine (loopback addresses and `localhost`).
fn in_clear(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']);
    let local = host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    url.scheme() == "http" && !local
}

/// Requests in flight when `max_in_flight` is not set: enough to fill the budget at up to
/// half a second of CRM latency (Little's law: rate x latency), at least 4, at most 64.
pub fn default_in_flight(rate: &RateLimit) -> usize {
    ((rate.per_second() * 0.5).ceil() as usize).clamp(DEFAULT_MAX_IN_FLIGHT, 64)
}
