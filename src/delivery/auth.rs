//! The credentials a connection sends: a static token or password, or an OAuth2 access token
//! refreshed before it expires (and once after a 401, before that counts as a refusal).

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::call::{Body, Call, Safety};
use super::pace::Pace;
use super::transport::{Authorization, Transport};
use crate::config::Auth;
use crate::secret::Secret;

/// A token is refreshed this long before it expires.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// Lifetime assumed when the token endpoint does not say (`expires_in`).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// The longest lifetime believed, whatever `expires_in` says: the token is renewed by then.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

pub enum Credentials {
    Fixed(Authorization),
    OAuth(OAuth),
}

pub struct OAuth {
    token_url: String,
    client_id: String,
    client_secret: Secret,
    account: String,
    /// The refresh token, replaced when the server rotates it.
    refresh_token: Mutex<Secret>,
    current: Mutex<Option<(Secret, Instant)>>,
}

impl Credentials {
    pub fn new(auth: &Auth) -> Self {
        match auth {
            Auth::Bearer { token, account_uuid } => Credentials::Fixed(Authorization::Bearer {
                token: token.expose().to_string(),
                account: account_uuid.clone(),
            }),
            Auth::Basic { username, password } => Credentials::Fixed(Authorization::Basic {
                username: username.clone(),
                password: password.expose().to_string(),
            }),
            Auth::OAuth { token_url, client_id, client_secret, refresh_token, account_uuid } => {
                Credentials::OAuth(OAuth {
                    token_url: token_url.clone(),
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                    account: account_uuid.clone(),
                    refresh_token: Mutex::new(refresh_token.clone()),
                    current: Mutex::new(None),
                })
            }
        }
    }

    /// What to send now; an OAuth token close to its expiry is refreshed first (the refresh
    /// is a request like any other: it waits for `pace`, the connection's rate budget).
    pub async fn current(
        &self,
        transport: &dyn Transport,
        pace: &Pace,
        connection: &str,
    ) -> Result<Authorization, String> {
        match self {
            Credentials::Fixed(a) => Ok(a.clone()),
            Credentials::OAuth(o) => o.current(Via { transport, pace, connection }, false).await,
        }
    }

    /// After a 401: a new access token, if these credentials can get one.
    pub async fn refresh(
        &self,
        transport: &dyn Transport,
        pace: &Pace,
        connection: &str,
    ) -> Option<Result<(), String>> {
        match self {
            Credentials::Fixed(_) => None,
            Credentials::OAuth(o) => {
                Some(o.current(Via { transport, pace, connection }, true).await.map(drop))
            }
        }
    }
}

/// How a token request is sent: on the connection's transport, within its rate budget.
#[derive(Clone, Copy)]
struct Via<'a> {
    transport: &'a dyn Transport,
    pace: &'a Pace,
    connection: &'a str,
}

impl OAuth {
    async fn current(&self, send: Via<'_>, force: bool) -> Result<Authorization, String> {
        let mut current = self.current.lock().await;
        let fresh = current.as_ref().filter(|(_, until)| Instant::now() + REFRESH_MARGIN < *until);
        if let (Some((token, _)), false) = (fresh, force) {
            return Ok(self.bearer(token));
        }
        let (token, lifetime) = self.fetch(send).await?;
        let auth = self.bearer(&token);
        *current = Some((token, Instant::now() + lifetime));
        Ok(auth)
    }

    fn bearer(&self, token: &Secret) -> Authorization {
        Authorization::Bearer { token: token.expose().to_string(), account: self.account.clone() }
    }

    /// `grant_type=refresh_token` at the token endpoint (standard OAuth2).
    async fn fetch(&self, send: Via<'_>) -> Result<(Secret, Duration), String> {
        let mut refresh = self.refresh_token.lock().await;
        let form = vec![
            ("grant_type".to_string(), "refresh_token".to_string()),
            ("refresh_token".to_string(), refresh.expose().to_string()),
            ("client_id".to_string(), self.client_id.clone()),
            ("client_secret".to_string(), self.client_secret.expose().to_string()),
        ];
        let call =
            Call::post("oauth/token", self.token_url.clone(), Body::Form(form), Safety::Repeatable);
        send.pace.until_ready(send.connection).await;
        let reply = send.transport.send(&call, None).await.map_err(|e| e.message)?;
        let body = reply.json().unwrap_or_default();
        let token = body.get("access_token").and_then(|t| t.as_str());
        let Some(token) = token.filter(|_| (200..300).contains(&reply.status)) else {
            let why = body.get("error_description").or_else(|| body.get("error"));
            return Err(format!(
                "the token endpoint refused the refresh token (HTTP {}: {})",
                reply.status,
                why.and_then(|w| w.as_str()).unwrap_or("no reason given")
            ));
        };
        if let Some(next) = body.get("refresh_token").and_then(|t| t.as_str()) {
            *refresh = Secret::new(next);
        }
        let lifetime = lifetime_of(body.get("expires_in"));
        tracing::debug!(expires_in_s = lifetime.as_secs(), "OAuth access token refreshed");
        Ok((Secret::new(token), lifetime))
    }
}

/// `expires_in` as the server wrote it (seconds, a number or numeric text), within
/// [`MAX_LIFETIME`]; absent or not a number of seconds: [`DEFAULT_LIFETIME`].
fn lifetime_of(v: Option<&serde_json::Value>) -> Duration {
    let secs = match v {
        Some(serde_json::Value::Number(n)) => n.as_u64().or_else(|| {
            n.as_f64().filter(|f| f.is_finite() && *f >= 0.0).map(|f| f.min(u64::MAX as f64) as u64)
        }),
        Some(serde_json::Value::String(s)) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    secs.map_or(DEFAULT_LIFETIME, |s| Duration::from_secs(s).min(MAX_LIFETIME))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expires_in_of_any_size() {
        assert_eq!(lifetime_of(Some(&json!(300))), Duration::from_secs(300));
        assert_eq!(lifetime_of(Some(&json!("300"))), Duration::from_secs(300));
        assert_eq!(lifetime_of(Some(&json!(1e300))), MAX_LIFETIME);
        assert_eq!(lifetime_of(Some(&json!(u64::MAX))), MAX_LIFETIME);
        assert_eq!(lifetime_of(Some(&json!(-1))), DEFAULT_LIFETIME);
        assert_eq!(lifetime_of(None), DEFAULT_LIFETIME);
    }

    proptest::proptest! {
        #[test]
        fn any_expires_in_is_a_lifetime_that_fits(text in ".{0,30}", n in proptest::num::f64::ANY) {
            let answers = [serde_json::from_str(&text).ok(), serde_json::Number::from_f64(n).map(serde_json::Value::Number), Some(json!(text))];
            for v in answers {
                let lifetime = lifetime_of(v.as_ref());
                proptest::prop_assert!(lifetime <= MAX_LIFETIME);
                proptest::prop_assert!(Instant::now().checked_add(lifetime).is_some());
            }
        }
    }
}
