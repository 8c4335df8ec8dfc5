//! Who may see and do what. Once `[server] token` is set, every route but `/healthz`,
//! `/readyz` and `/metrics` needs it: as `Authorization: Bearer`, or through the sign-in
//! form, which opens a session kept in memory and named by a random cookie (HttpOnly,
//! SameSite=Strict; never the token). Writes from a session also need its CSRF token, in the
//! `x-csrf-token` header or a form's `csrf` field. Without a token set the console only reads:
//! uploads and retries are refused. Tokens are compared by their SHA-256, in constant time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use sha2::{Digest, Sha256};

use super::Web;
use crate::notify::sign::constant_time_eq;
use crate::secret::Secret;

pub const SESSION_COOKIE: &str = "crm_ingest_session";
/// The routes that need no token: health checks and Prometheus.
pub const OPEN: [&str; 3] = ["/healthz", "/readyz", "/metrics"];
const SESSION_LIFE: Duration = Duration::from_secs(12 * 3600);
const MAX_SESSIONS: usize = 256;
/// A wrong token waits this long before its answer, to slow guessing down.
const WRONG_TOKEN_DELAY: Duration = Duration::from_millis(400);

/// The signed-in browsers, by the SHA-256 of their cookie.
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<[u8; 32], Session>>);

#[derive(Clone)]
struct Session {
    csrf: String,
    /// The token it signed in with: a new token (reload) ends the session.
    token: [u8; 32],
    expires: Instant,
}

/// Who is asking; the guard puts it in the request for the handlers.
#[derive(Debug, Clone)]
pub enum Who {
    /// No token is set: anyone may read, nobody may write.
    Anyone,
    /// `Authorization: Bearer` with the token.
    Bearer,
    /// A signed-in browser; `checked` once its CSRF header matched.
    Session { csrf: String, checked: bool },
}

/// Why a write is refused.
#[derive(Debug)]
pub struct Refused(pub StatusCode, pub String);

impl Who {
    /// The CSRF token pages put into their forms.
    pub fn csrf(&self) -> Option<&str> {
        match self {
            Who::Session { csrf, .. } => Some(csrf),
            _ => None,
        }
    }

    pub fn signed_in(&self) -> bool {
        matches!(self, Who::Session { .. })
    }

    /// Whether writes can be allowed at all (a token is set).
    pub fn may_write(&self) -> bool {
        !matches!(self, Who::Anyone)
    }

    /// May this request write? `form_csrf` is the form's `csrf` field, if it had one.
    pub fn write(&self, form_csrf: Option<&str>) -> Result<(), Refused> {
        match self {
            Who::Anyone => Err(Refused(
                StatusCode::FORBIDDEN,
                "uploads and retries are off: set [server] token (or token_file) to allow them"
                    .into(),
            )),
            Who::Bearer | Who::Session { checked: true, .. } => Ok(()),
            Who::Session { csrf, checked: false } => match form_csrf {
                Some(given) if constant_time_eq(given.as_bytes(), csrf.as_bytes()) => Ok(()),
                _ => Err(Refused(
                    StatusCode::FORBIDDEN,
                    "the request lacks this session's CSRF token (reload the page and try again)"
                        .into(),
                )),
            },
        }
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    if getrandom::fill(&mut bytes).is_err() {
        // Never seen on Linux; a session id must not be guessable, so refuse to make one.
        return String::new();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    /// A new session for `token`: the cookie's value, or `None` without OS randomness.
    fn open(&self, token: &Secret) -> Option<(String, String)> {
        let (id, csrf) = (random_hex(), random_hex());
        if id.is_empty() || csrf.is_empty() {
            return None;
        }
        let mut all = self.0.lock().ok()?;
        let now = Instant::now();
        all.retain(|_, s| s.expires > now);
        if all.len() >= MAX_SESSIONS {
            let oldest = all.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k);
            if let Some(k) = oldest {
                all.remove(&k);
            }
        }
        let session = Session {
            csrf: csrf.clone(),
            token: digest(token.expose().as_bytes()),
            expires: now + SESSION_LIFE,
        };
        all.insert(digest(id.as_bytes()), session);
        Some((id, csrf))
    }

    fn find(&self, cookie: &str, token: &Secret) -> Option<String> {
        let all = self.0.lock().ok()?;
        let s = all.get(&digest(cookie.as_bytes()))?;
        let same_token = constant_time_eq(&s.token, &digest(token.expose().as_bytes()));
        (same_token && s.expires > Instant::now()).then(|| s.csrf.clone())
    }

    fn close(&self, cookie: &str) {
        if let Ok(mut all) = self.0.lock() {
            all.remove(&digest(cookie.as_bytes()));
        }
    }
}

/// The session cookie's value in a `Cookie` header.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|line| {
        line.split(';').find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == SESSION_COOKIE
                && value.len() == 64
                && value.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| value.to_string())
        })
    })
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Who the request is from, when `token` is set; `None`: nobody we know.
fn identify(sessions: &Sessions, token: &Secret, req: &Request) -> Option<Who> {
    let headers = req.headers();
    if let Some(given) = bearer(headers) {
        let ok = constant_time_eq(&digest(given.as_bytes()), &digest(token.expose().as_bytes()));
        return ok.then_some(Who::Bearer);
    }
    let cookie = session_cookie(headers)?;
    let csrf = sessions.find(&cookie, token)?;
    let checked = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|given| constant_time_eq(given.as_bytes(), csrf.as_bytes()));
    Some(Who::Session { csrf, checked })
}

/// A write from another site: its `Origin` names a different host than the request's.
fn foreign_origin(req: &Request) -> bool {
    let headers = req.headers();
    let (Some(origin), Some(host)) = (headers.get(header::ORIGIN), headers.get(header::HOST))
    else {
        return false;
    };
    let origin = origin.to_str().unwrap_or("");
    let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
    origin_host != host.to_str().unwrap_or("")
}

/// Every request but the open ones: identified, or refused with 401 (a sign-in page for a
/// browser). Console answers are never cached and never framed.
pub async fn guard(State(web): State<Web>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if OPEN.contains(&path.as_str()) {
        return next.run(req).await;
    }
    let token = web.ops.settings().server.as_ref().and_then(|s| s.token.clone());
    let who = match &token {
        None => Some(Who::Anyone),
        Some(t) => identify(&web.sessions, t, &req),
    };
    let writes = !matches!(*req.method(), Method::GET | Method::HEAD);
    let sign_in = req.method() == Method::POST && path == "/login";
    let mut response = match who {
        _ if writes && !sign_in && foreign_origin(&req) => {
            (StatusCode::FORBIDDEN, "a write from another site is refused\n").into_response()
        }
        Some(who) => {
            req.extensions_mut().insert(who);
            next.run(req).await
        }
        None if sign_in => next.run(req).await,
        None => refuse(&req),
    };
    secure(response.headers_mut());
    response
}

/// 401: JSON with `WWW-Authenticate` for the API and scripts, the sign-in form for a browser.
fn refuse(req: &Request) -> Response {
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    let path = req.uri().path();
    if !wants_html || path.starts_with("/api/") || path == "/status" {
        let body =
            serde_json::json!({ "error": "sign in: send Authorization: Bearer <[server] token>" });
        let mut r = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"crm-ingest\""),
        );
        return r;
    }
    let next = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
    super::render::sign_in_page(StatusCode::UNAUTHORIZED, &next, None)
}

fn secure(headers: &mut HeaderMap) {
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(headers, header::CACHE_CONTROL, "no-store");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    // `same-origin`, not `no-referrer`: with the latter a browser sends `Origin: null` on
    // its own forms, which the Origin check would take for another site.
    set(headers, header::REFERRER_POLICY, "same-origin");
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        set(
            headers,
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        );
    }
}

#[derive(serde::Deserialize)]
pub struct SignIn {
    token: String,
    #[serde(default)]
    next: String,
}

/// `POST /login` (field `token`): a session cookie and back to where the browser was going.
pub async fn sign_in(State(web): State<Web>, Form(form): Form<SignIn>) -> Response {
    let next = safe_next(&form.next);
    let Some(token) = web.ops.settings().server.as_ref().and_then(|s| s.token.clone()) else {
        return Redirect::to("/").into_response();
    };
    let right =
        constant_time_eq(&digest(form.token.as_bytes()), &digest(token.expose().as_bytes()));
    if !right {
        tokio::time::sleep(WRONG_TOKEN_DELAY).await;
        return super::render::sign_in_page(
            StatusCode::UNAUTHORIZED,
            next,
            Some("That is not the console's token."),
        );
    }
    let Some((id, _)) = web.sessions.open(&token) else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no randomness to make a session from\n")
            .into_response();
    };
    let cookie = format!(
        "{SESSION_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        SESSION_LIFE.as_secs()
    );
    let mut r = Redirect::to(next).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[derive(serde::Deserialize)]
pub struct SignOut {
    #[serde(default)]
    csrf: Option<String>,
}

/// `POST /logout`: the session ends, the cookie is cleared.
pub async fn sign_out(
    State(web): State<Web>,
    axum::Extension(who): axum::Extension<Who>,
    headers: HeaderMap,
    Form(form): Form<SignOut>,
) -> Response {
    if let Err(Refused(code, why)) = who.write(form.csrf.as_deref()) {
        return (code, why).into_response();
    }
    if let Some(cookie) = session_cookie(&headers) {
        web.sessions.close(&cookie);
    }
    let mut r = Redirect::to("/").into_response();
    let clear = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    if let Ok(v) = HeaderValue::from_str(&clear) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// Only a path of this site: never `//host` or `https://...`.
fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sessions_are_random_bound_to_the_token_and_end() {
        let s = Sessions::default();
        let token = Secret::new("a-long-console-token");
        let (id, csrf) = s.open(&token).unwrap();
        assert_eq!(id.len(), 64);
        assert_ne!(id, csrf);
        assert!(!id.contains("a-long-console-token"));
        assert_eq!(s.find(&id, &token).as_deref(), Some(csrf.as_str()));
        assert_eq!(s.find(&id, &Secret::new("another-token-now")), None, "a new token ends it");
        s.close(&id);
        assert_eq!(s.find(&id, &token), None);
    }

    #[test]
    fn writes_need_a_token_and_a_session_needs_its_csrf() {
        assert!(Who::Anyone.write(None).is_err());
        assert!(Who::Bearer.write(None).is_ok());
        let s = Who::Session { csrf: "abc".into(), checked: false };
        assert!(s.write(None).is_err());
        assert!(s.write(Some("abd")).is_err());
        assert!(s.write(Some("abc")).is_ok());
        assert!(Who::Session { csrf: "abc".into(), checked: true }.write(None).is_ok());
    }

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next("/files/3"), "/files/3");
        for bad in ["//evil.example", "https://evil.example/", "\\\\x", "files"] {
            assert_eq!(safe_next(bad), "/", "{bad}");
        }
    }

    proptest! {
        #[test]
        fn any_cookie_header_parses_without_panic(value in "\\PC{0,200}") {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(header::COOKIE, v);
                if let Some(c) = session_cookie(&h) {
                    prop_assert_eq!(c.len(), 64);
                }
            }
        }
    }
}
