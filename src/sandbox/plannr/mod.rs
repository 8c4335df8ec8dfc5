//! Plannr as documented in `api/plannr.md`: Bearer token + account header, the four-step
//! import (create -> map -> start -> poll) with row validation, store and update modes,
//! inline errors capped at 25 plus an error report file, and contact details with Laravel
//! 422s; with the real-API switches of [`super::RealApi`].

mod accounts;
mod contacts;
mod imports;
mod report;
mod rules;

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::Sandbox;

pub use accounts::list_accounts;
pub use contacts::contact_details;
pub use imports::{
    create_import, error_report, get_import, list_imports, map_import, start_import,
};

#[derive(Debug, Default)]
pub struct PlannrState {
    pub imports: BTreeMap<String, imports::Import>,
    /// Records stored by imports (not `validate` ones), by import type, each with a `uuid`.
    pub records: BTreeMap<String, Vec<Value>>,
    pub contact_details: Vec<Value>,
    next: u64,
    /// OAuth access tokens issued, with when they stop working.
    tokens: BTreeMap<String, tokio::time::Instant>,
}

impl PlannrState {
    pub fn snapshot(&self) -> Value {
        json!({
            "records": self.records,
            "contact_details": self.contact_details,
            "imports": self.imports.len(),
        })
    }

    fn next_uuid(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}-0000-4000-8000-{:012x}", self.next)
    }
}

fn message(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({ "message": text }))).into_response()
}

fn invalid(errors: Map<String, Value>) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        axum::Json(json!({"message": "The given data was invalid.", "errors": errors})),
    )
        .into_response()
}

/// `Err` holds the refusal to send back (boxed: a response is large).
fn check_auth(sb: &Sandbox, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let issued = sb.state.lock().ok().and_then(|s| s.plannr.tokens.get(token).copied());
    let live = issued.is_some_and(|until| tokio::time::Instant::now() < until);
    if token != sb.options.plannr_token && !live {
        return Err(Box::new(message(StatusCode::UNAUTHORIZED, "Unauthenticated.")));
    }
    let account = headers.get("x-plannr-account-uuid").and_then(|v| v.to_str().ok());
    if account != Some(sb.options.plannr_account.as_str()) {
        return Err(Box::new(message(StatusCode::FORBIDDEN, "This action is unauthorized.")));
    }
    Ok(())
}

fn wrap(sb: &Sandbox, v: Value) -> Response {
    let body = if sb.options.plannr_wrap_data { json!({ "data": v }) } else { v };
    axum::Json(body).into_response()
}

fn host(headers: &HeaderMap) -> String {
    headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1").to_string()
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `POST /oauth/token` with `grant_type=refresh_token`: a new access token.
pub async fn oauth_token(State(sb): State<Sandbox>, body: axum::body::Bytes) -> Response {
    let form: BTreeMap<String, String> = form_urlencoded(&body);
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let good = field("grant_type") == "refresh_token"
        && field("refresh_token") == sb.options.oauth_refresh_token
        && field("client_id") == "sandbox"
        && field("client_secret") == "sandbox";
    if !good {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant", "error_description": "The refresh token is invalid."}))).into_response();
    }
    let Ok(mut state) = sb.state.lock() else {
        return message(StatusCode::INTERNAL_SERVER_ERROR, "state");
    };
    let token = state.plannr.next_uuid("access");
    let until = tokio::time::Instant::now() + sb.options.oauth_token_ttl;
    state.plannr.tokens.insert(token.clone(), until);
    axum::Json(json!({"token_type": "Bearer", "access_token": token, "expires_in": 3600, "refresh_token": sb.options.oauth_refresh_token})).into_response()
}

/// `a=b&c=d`, percent-decoded.
fn form_urlencoded(body: &[u8]) -> BTreeMap<String, String> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        let mut out = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match (
                b[i],
                b.get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok()),
            ) {
                (b'%', Some(v)) => {
                    out.push(v);
                    i += 3;
                }
                (c, _) => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}
