//! Plannr as documented in `api/plannr.md`: Bearer token + account header, the four-step
//! import (create -> map -> start -> poll) with client row validation, inline errors capped
//! at 25 plus a downloadable error report, and contact details with Laravel 422s.

use std::collections::BTreeMap;

use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::Sandbox;
use crate::mapping::{is_email, is_uuid};

const TYPES: &[&str] = &[
    "business_staff_members",
    "charges",
    "clients",
    "group_scheme_members",
    "notes",
    "plans",
    "premiums",
    "tasks",
    "valuations",
    "circles",
    "incomes",
    "seccl_valuations",
    "expenses",
    "provider_statement",
];
/// Inline `errors` hold at most this many rows; the rest are in the error report.
const INLINE_ERRORS: usize = 25;

#[derive(Debug, Default)]
pub struct PlannrState {
    pub imports: BTreeMap<String, Import>,
    /// Rows stored by imports (not `validate` ones), by import type.
    pub records: BTreeMap<String, Vec<Value>>,
    pub contact_details: Vec<Value>,
    next: u64,
}

#[derive(Debug, Clone)]
pub struct Import {
    uuid: String,
    kind: String,
    mode: String,
    status: String,
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    mapping: Option<Map<String, Value>>,
    polls_left: u32,
    failures: Vec<Value>,
    created_at: String,
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

impl Import {
    fn resource(&self, host: &str) -> Value {
        let failed = self.failures.len();
        let done = self.status != "processing" && self.status != "pending";
        let report = (done && failed > 0).then(|| {
            json!({"filename": format!("{}-errors.json", self.uuid), "download_url": format!("http://{host}/api/v1/import/{}/error-report", self.uuid)})
        });
        json!({
            "uuid": self.uuid,
            "type": self.kind,
            "mode": self.mode,
            "status": self.status,
            "headers": self.headers,
            "mapping": self.mapping.clone().unwrap_or_default(),
            "total_jobs": self.rows.len(),
            "progress": if done { 100 } else { 0 },
            "jobs_remaining": if done { 0 } else { self.rows.len() },
            "failed_jobs": if done { failed } else { 0 },
            "errors": if done { self.failures.iter().take(INLINE_ERRORS).cloned().collect::<Vec<_>>() } else { Vec::new() },
            "error_report": report,
            "created_at": self.created_at,
            "updated_at": self.created_at,
            "account": {"uuid": "sandbox-account"},
        })
    }
}

fn host(headers: &HeaderMap) -> String {
    headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1").to_string()
}

pub async fn create_import(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Response {
    if let Err(r) = check_auth(&sb, &headers) {
        return *r;
    }
    let (mut kind, mut mode, mut file) = (String::new(), String::new(), None);
    while let Ok(Some(field)) = form.next_field().await {
        match field.name().unwrap_or("") {
            "type" => kind = field.text().await.unwrap_or_default(),
            "mode" => mode = field.text().await.unwrap_or_default(),
            "file" => file = field.bytes().await.ok(),
            _ => {}
        }
    }
    let mut errors = Map::new();
    if !TYPES.contains(&kind.as_str()) {
        errors.insert("type".into(), json!(["The selected type is invalid."]));
    }
    if !["store", "update", "validate"].contains(&mode.as_str()) {
        errors.insert("mode".into(), json!(["The selected mode is invalid."]));
    }
    let Some(file) = file else {
        errors.insert("file".into(), json!(["The file field is required."]));
        return invalid(errors);
    };
    if !errors.is_empty() {
        return invalid(errors);
    }
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(file.as_ref());
    let headers_row: Vec<String> =
        reader.headers().map(|h| h.iter().map(String::from).collect()).unwrap_or_default();
    let rows: Vec<Vec<String>> =
        reader.records().flatten().map(|r| r.iter().map(String::from).collect()).collect();
    let Ok(mut state) = sb.state.lock() else {
        return message(StatusCode::INTERNAL_SERVER_ERROR, "state");
    };
    state.plannr.next += 1;
    let uuid = format!("00000000-0000-4000-8000-{:012x}", state.plannr.next);
    let import = Import {
        uuid: uuid.clone(),
        kind,
        mode,
        status: "pending".into(),
        headers: headers_row,
        rows,
        mapping: None,
        polls_left: 0,
        failures: Vec::new(),
        created_at: crate::report::now_rfc3339(),
    };
    let body = import.resource(&host(&headers));
    state.plannr.imports.insert(uuid, import);
    wrap(&sb, body)
}

pub async fn map_import(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = check_auth(&sb, &headers) {
        return *r;
    }
    let Ok(parsed) = serde_json::from_slice::<Value>(&body) else {
        return message(StatusCode::BAD_REQUEST, "Malformed JSON.");
    };
    let Some(mapping) = parsed.get("headers").and_then(Value::as_object).cloned() else {
        return invalid(Map::from_iter([(
            "headers".to_string(),
            json!(["The headers field is required."]),
        )]));
    };
    let Ok(mut state) = sb.state.lock() else {
        return message(StatusCode::INTERNAL_SERVER_ERROR, "state");
    };
    let Some(import) = state.plannr.imports.get_mut(&uuid) else {
        return message(StatusCode::NOT_FOUND, "Not found.");
    };
    let missing: Vec<&str> = mapping
        .values()
        .filter_map(Value::as_str)
        .filter(|c| !import.headers.iter().any(|h| h == c))
        .collect();
    if !missing.is_empty() {
        return invalid(Map::from_iter([(
            "headers".to_string(),
            json!([format!("Columns not in the file: {}", missing.join(", "))]),
        )]));
    }
    import.mapping = Some(mapping);
    let body = import.resource(&host(&headers));
    wrap(&sb, body)
}

pub async fn start_import(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> Response {
    if let Err(r) = check_auth(&sb, &headers) {
        return *r;
    }
    let Ok(mut guard) = sb.state.lock() else {
        return message(StatusCode::INTERNAL_SERVER_ERROR, "state");
    };
    let state = &mut *guard;
    let Some(import) = state.plannr.imports.get_mut(&uuid) else {
        return message(StatusCode::NOT_FOUND, "Not found.");
    };
    let Some(mapping) = import.mapping.clone() else {
        return message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The import must be mapped before it can be started.",
        );
    };
    if import.status != "pending" {
        return message(StatusCode::UNPROCESSABLE_ENTITY, "The import has already been started.");
    }
    import.status = "processing".into();
    import.polls_left = sb.options.pending_polls;
    let singular = import.kind.trim_end_matches('s').to_string();
    for row in &import.rows {
        let mut record = Map::new();
        for (field, column) in &mapping {
            let idx = column.as_str().and_then(|c| import.headers.iter().position(|h| h == c));
            let value = idx.and_then(|i| row.get(i)).cloned().unwrap_or_default();
            // Laravel's ConvertEmptyStringsToNull.
            record.insert(
                field.clone(),
                if value.is_empty() { Value::Null } else { Value::String(value) },
            );
        }
        let errors = row_errors(&import.kind, &record, sb.options.refuse.as_deref());
        if errors.is_empty() {
            if import.mode != "validate" {
                state
                    .plannr
                    .records
                    .entry(import.kind.clone())
                    .or_default()
                    .push(Value::Object(record));
            }
        } else {
            import.failures.push(json!({ singular.clone(): record, "errors": errors }));
        }
    }
    let body = import.resource(&host(&headers));
    wrap(&sb, body)
}

/// Laravel-style rules for the import types the sandbox knows (clients); others accept all.
fn row_errors(kind: &str, r: &Map<String, Value>, refuse: Option<&str>) -> Map<String, Value> {
    let mut e = Map::new();
    let text = |k: &str| r.get(k).and_then(Value::as_str).map(str::trim).unwrap_or("");
    if kind == "clients" {
        for (field, label) in [
            ("first_name", "first name"),
            ("last_name", "last name"),
            ("send_welcome_email", "send welcome email"),
        ] {
            if text(field).is_empty() {
                e.insert(field.into(), json!([format!("The {label} field is required.")]));
            }
        }
        let welcome = text("send_welcome_email");
        if !welcome.is_empty() && !["0", "1"].contains(&welcome) {
            e.insert(
                "send_welcome_email".into(),
                json!(["The send welcome email field must be true or false."]),
            );
        }
        let email = text("email");
        if !email.is_empty() && !is_email(email) {
            e.insert("email".into(), json!(["The email must be a valid email address."]));
        }
    }
    if let Some(t) = refuse {
        for (k, v) in r {
            if v.as_str().is_some_and(|s| s.contains(t)) {
                e.insert(
                    k.clone(),
                    json!([format!("The {k} was refused by the account's rules.")]),
                );
            }
        }
    }
    e
}

pub async fn get_import(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> Response {
    if let Err(r) = check_auth(&sb, &headers) {
        return *r;
    }
    let Ok(mut state) = sb.state.lock() else {
        return message(StatusCode::INTERNAL_SERVER_ERROR, "state");
    };
    let Some(import) = state.plannr.imports.get_mut(&uuid) else {
        return message(StatusCode::NOT_FOUND, "Not found.");
    };
    if import.status == "processing" {
        if import.polls_left > 0 {
            import.polls_left -= 1;
        } else {
            let all_failed = !import.rows.is_empty() && import.failures.len() == import.rows.len();
            import.status = if all_failed {
                "failed".into()
            } else {
                sb.options.plannr_terminal_status.clone()
            };
        }
    }
    let body = import.resource(&host(&headers));
    wrap(&sb, body)
}

pub async fn error_report(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    Path(uuid): Path<String>,
) -> Response {
    if let Err(r) = check_auth(&sb, &headers) {
        return *r;
    }
    let Ok(state) = sb.state.lock() else {
        return message(StatusCode::INTERNAL_SERVER_ERROR, "state");
    };
    match state.plannr.imports.get(&uuid) {
        Some(i) => axum::Json(Value::Array(i.failures.clone())).into_response(),
        None => message(StatusCode::NOT_FOUND, "Not found."),
    }
}

pub async fn list_imports(State(sb): State<Sandbox>, headers: HeaderMap) -> Response {
    if let Err(r) = check_auth(&sb, &headers) {
        return *r;
    }
    let Ok(state) = sb.state.lock() else {
        return message(StatusCode::INTERNAL_SERVER_ERROR, "state");
    };
    let h = host(&headers);
    let data: Vec<Value> = state.plannr.imports.values().map(|i| i.resource(&h)).collect();
    let total = data.len();
    axum::Json(json!({"data": data, "links": {}, "meta": {"current_page": 1, "last_page": 1, "per_page": total.max(1), "total": total}})).into_response()
}

pub async fn contact_details(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = check_auth(&sb, &headers) {
        return *r;
    }
    let Ok(Value::Object(d)) = serde_json::from_slice::<Value>(&body) else {
        return message(StatusCode::BAD_REQUEST, "Malformed JSON.");
    };
    let mut e = Map::new();
    let kind = d.get("type").and_then(Value::as_str).unwrap_or("");
    if !["email", "phone_number"].contains(&kind) {
        e.insert("type".into(), json!(["The selected type is invalid."]));
    }
    match d.get("name").and_then(Value::as_str) {
        Some(n) if !n.trim().is_empty() && n.chars().count() <= 255 => {}
        Some(n) if !n.trim().is_empty() => {
            e.insert("name".into(), json!(["The name may not be greater than 255 characters."]));
        }
        _ => {
            e.insert("name".into(), json!(["The name field is required."]));
        }
    }
    let value = d.get("value").and_then(Value::as_str).unwrap_or("");
    let value_ok = match kind {
        "email" => is_email(value),
        "phone_number" => {
            crate::mapping::phone::to_e164(value, crate::mapping::phone::GB).is_some()
        }
        _ => true,
    };
    if value.is_empty() {
        e.insert("value".into(), json!(["The value field is required."]));
    } else if !value_ok {
        e.insert(
            "value".into(),
            json!([format!(
                "The value must be a valid {}.",
                if kind == "email" { "email address" } else { "phone number" }
            )]),
        );
    }
    for key in ["account_uuids", "primary_account_uuids"] {
        match d.get(key) {
            Some(Value::Array(items))
                if items.iter().all(|u| u.as_str().is_some_and(is_uuid))
                    && (key != "account_uuids" || !items.is_empty()) => {}
            None if key == "primary_account_uuids" => {}
            _ => {
                e.insert(
                    key.into(),
                    json!([format!(
                        "The {} must be an array of account UUIDs.",
                        key.replace('_', " ")
                    )]),
                );
            }
        }
    }
    if let Some(t) = sb.options.refuse.as_deref() {
        if value.contains(t) {
            e.insert("value".into(), json!(["The value was refused by the account's rules."]));
        }
    }
    if !e.is_empty() {
        return invalid(e);
    }
    let Ok(mut state) = sb.state.lock() else {
        return message(StatusCode::INTERNAL_SERVER_ERROR, "state");
    };
    state.plannr.next += 1;
    let now = crate::report::now_rfc3339();
    let created = json!({
        "uuid": format!("10000000-0000-4000-8000-{:012x}", state.plannr.next),
        "created_at": now, "updated_at": now,
        "type": kind, "name": d.get("name"), "value": value,
        "phone_number_meta": if kind == "phone_number" { json!({"country": "GB", "formatted": value}) } else { Value::Null },
        "accounts": d.get("account_uuids"),
        "is_primary": d.get("is_primary").cloned().unwrap_or(Value::Bool(false)),
    });
    state.plannr.contact_details.push(created.clone());
    let body = if sb.options.plannr_wrap_data { json!({ "data": created }) } else { created };
    (StatusCode::CREATED, axum::Json(body)).into_response()
}
