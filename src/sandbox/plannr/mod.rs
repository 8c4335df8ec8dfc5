//! Plannr as documented in `api/plannr.md`: Bearer token + account header, the four-step
//! import (create -> map -> start -> poll) with row validation, store and update modes,
//! inline errors capped at 25 plus an error report file, and contact details with Laravel
//! 422s; with the real-API switches of [`super::RealApi`].

mod contacts;
mod imports;
mod report;

use std::collections::BTreeMap;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::Sandbox;

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
        .and_then(|v| v.strip_prefix("Bearer "));
    if token != Some(sb.options.plannr_token.as_str()) {
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
