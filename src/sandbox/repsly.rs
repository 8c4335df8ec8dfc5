//! Repsly v3 as documented in `api/repsly.md`: Basic auth, `import/clientList` with
//! `{"Clients": [...]}`, an async job per request, `export/importStatus/{id}`.
//!
//! Whole-request 400s (`{"Code": n, "Message": ...}`) are for what makes the body unusable:
//! a client that is not an object, a missing Code, a wrong JSON type, a Code twice in one
//! request, or the configured poison text. Field rules (lengths, Name) fail one client in
//! the job's `Errors[]`, keyed by its Code.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::Sandbox;

#[derive(Debug, Default)]
pub struct RepslyState {
    pub clients: BTreeMap<String, Value>,
    /// How many times each Code was saved (inserted or updated) by a job.
    pub received: BTreeMap<String, u64>,
    pub jobs: BTreeMap<u64, Job>,
    next_job: u64,
    /// Repsly's own ids for clients (what `ItemID` may be instead of the Code).
    client_ids: BTreeMap<String, u64>,
}

impl RepslyState {
    pub fn snapshot(&self) -> Value {
        json!({"clients": self.clients, "received": self.received, "jobs": self.jobs.len()})
    }

    fn client_id(&mut self, code: &str) -> u64 {
        let next = 50_000 + self.client_ids.len() as u64;
        *self.client_ids.entry(code.to_string()).or_insert(next)
    }
}

#[derive(Debug, Clone)]
pub struct Job {
    polls_left: u32,
    inserted: u64,
    updated: u64,
    /// Refused clients: `(Code, field, reason)`.
    errors: Vec<(String, String, String)>,
    /// Saved with a warning: `(Code, field, text)`.
    warnings: Vec<(String, String, String)>,
}

const LIMITS: &[(&str, usize)] = &[
    ("Code", 50),
    ("Name", 255),
    ("RepresentativeCode", 20),
    ("RepresentativeName", 80),
    ("StreetAddress", 255),
    ("ZIP", 20),
    ("ZIPExt", 20),
    ("City", 255),
    ("State", 255),
    ("Country", 255),
    ("Email", 128),
    ("Phone", 128),
    ("Mobile", 128),
    ("Website", 255),
    ("ContactName", 255),
    ("ContactTitle", 50),
    ("Note", 255),
];

fn authorised(sb: &Sandbox, headers: &HeaderMap) -> bool {
    use base64::Engine;
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(encoded) = value.strip_prefix("Basic ") else { return false };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    decoded == format!("{}:{}", sb.options.repsly_username, sb.options.repsly_password).into_bytes()
}

fn unauthorised() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [("www-authenticate", "Basic realm=\"Repsly\"")],
        axum::Json(
            json!({"Code": 401, "Message": "Authorization has been denied for this request."}),
        ),
    )
        .into_response()
}

fn bad_request(code: i64, message: String) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(json!({"Code": code, "Message": message}))).into_response()
}

pub async fn client_list(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !authorised(&sb, &headers) {
        return unauthorised();
    }
    let Ok(parsed) = serde_json::from_slice::<Value>(&body) else {
        return html_error();
    };
    let Some(clients) = parsed.get("Clients").and_then(Value::as_array) else {
        return bad_request(1, "The request body must be {\"Clients\": [...]}".into());
    };
    import(&sb, clients)
}

pub async fn client_one(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !authorised(&sb, &headers) {
        return unauthorised();
    }
    let Ok(parsed) = serde_json::from_slice::<Value>(&body) else {
        return html_error();
    };
    import(&sb, std::slice::from_ref(&parsed))
}

/// Malformed bodies get an HTML page, as the real service's error handler does.
fn html_error() -> Response {
    (
        StatusCode::BAD_REQUEST,
        [("content-type", "text/html")],
        "<html><body><h2>Bad Request</h2><p>The request could not be read.</p></body></html>",
    )
        .into_response()
}

fn import(sb: &Sandbox, clients: &[Value]) -> Response {
    let mut seen = std::collections::HashSet::new();
    for (i, c) in clients.iter().enumerate() {
        if let Err(msg) = structural(c, sb.options.poison.as_deref()) {
            return bad_request(2, format!("Clients[{i}]: {msg}"));
        }
        let code = c.get("Code").and_then(Value::as_str).unwrap_or_default();
        if !seen.insert(code.to_string()) {
            return bad_request(
                3,
                format!("Clients[{i}]: Code {code} appears more than once in the request"),
            );
        }
    }
    let Ok(mut state) = sb.state.lock() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "state poisoned").into_response();
    };
    let repsly = &mut state.repsly;
    let stalled = sb
        .options
        .stall
        .as_deref()
        .is_some_and(|t| clients.iter().any(|c| c.to_string().contains(t)));
    let mut job = Job {
        polls_left: if stalled { u32::MAX } else { sb.options.pending_polls },
        inserted: 0,
        updated: 0,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    for c in clients {
        let code = c.get("Code").and_then(Value::as_str).unwrap_or_default().to_string();
        let problems = field_problems(c, sb.options.refuse.as_deref());
        if !problems.is_empty() {
            for (field, msg) in problems {
                job.errors.push((code.clone(), field, msg));
            }
            continue;
        }
        if let Some(text) = sb.options.real.repsly_warn.as_deref() {
            for (k, v) in c.as_object().into_iter().flatten() {
                if v.as_str().is_some_and(|s| s.contains(text)) {
                    job.warnings.push((
                        code.clone(),
                        k.clone(),
                        format!("{k} was saved but looks wrong"),
                    ));
                }
            }
        }
        *repsly.received.entry(code.clone()).or_default() += 1;
        match repsly.clients.get_mut(&code) {
            Some(existing) => {
                if let (Some(old), Some(new)) = (existing.as_object_mut(), c.as_object()) {
                    for (k, v) in new {
                        old.insert(k.clone(), v.clone());
                    }
                }
                job.updated += 1;
            }
            None => {
                repsly.clients.insert(code, c.clone());
                job.inserted += 1;
            }
        }
    }
    repsly.next_job += 1;
    let id = 1000 + repsly.next_job;
    repsly.jobs.insert(id, job);
    if !stalled {
        state.timed.start(sb.options.job_time, sb.started, id.to_string(), clients.len());
    }
    let template = sb.options.real.repsly_job_message.as_deref();
    let message = template.unwrap_or("Client import job started asynchronously under ID: {id}");
    axum::Json(json!({"Code": 0, "Message": message.replace("{id}", &id.to_string())}))
        .into_response()
}

/// Problems that make the request unusable as a whole.
fn structural(c: &Value, poison: Option<&str>) -> Result<(), String> {
    let obj = c.as_object().ok_or("a client must be an object")?;
    match obj.get("Code") {
        Some(Value::String(s)) if !s.trim().is_empty() => {}
        _ => return Err("Code is required".into()),
    }
    for (k, v) in obj {
        match (k.as_str(), v) {
            ("Active", Value::Bool(_) | Value::Null) => {}
            ("Active", _) => return Err("Active must be a boolean".into()),
            ("CustomFields", Value::Array(items)) => {
                if !items.iter().all(|i| i.get("Field").is_some_and(Value::is_string)) {
                    return Err("CustomFields entries need a Field name".into());
                }
            }
            ("PriceLists", Value::Array(items)) => {
                if !items.iter().all(|i| i.get("Name").is_some_and(Value::is_string)) {
                    return Err("PriceLists entries need a Name".into());
                }
            }
            ("CustomFields" | "PriceLists", Value::Null) => {}
            ("CustomFields" | "PriceLists", _) => return Err(format!("{k} must be an array")),
            (_, Value::String(_) | Value::Null) => {}
            (_, _) => return Err(format!("{k} must be a string")),
        }
    }
    if let Some(p) = poison {
        if c.to_string().contains(p) {
            return Err("the client could not be imported".into());
        }
    }
    Ok(())
}

/// Field rules: each failure rejects only this client.
fn field_problems(c: &Value, refuse: Option<&str>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let (Some(text), Some(obj)) = (refuse, c.as_object()) {
        for (k, v) in obj {
            if v.as_str().is_some_and(|s| s.contains(text)) {
                out.push((k.clone(), format!("{k} was refused by the account's rules")));
            }
        }
    }
    match c.get("Name").and_then(Value::as_str) {
        Some(n) if !n.trim().is_empty() => {}
        _ => out.push(("Name".into(), "Name is required".into())),
    }
    for (field, max) in LIMITS {
        if let Some(s) = c.get(*field).and_then(Value::as_str) {
            if s.chars().count() > *max {
                out.push((field.to_string(), format!("{field} is longer than {max} characters")));
            }
        }
    }
    if let Some(t) = c.get("Territory").and_then(Value::as_str) {
        if t.split('>').any(|level| level.chars().count() > 80) {
            out.push(("Territory".into(), "Territory level is longer than 80 characters".into()));
        }
    }
    if let Some(e) = c.get("Email").and_then(Value::as_str) {
        if !e.is_empty() && !super::rules::email(e) {
            out.push(("Email".into(), "Email is not valid".into()));
        }
    }
    out
}

pub async fn import_status(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !authorised(&sb, &headers) {
        return unauthorised();
    }
    let Ok(mut guard) = sb.state.lock() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "state poisoned").into_response();
    };
    let state = &mut *guard;
    let job = id.parse::<u64>().ok().and_then(|id| state.repsly.jobs.get_mut(&id));
    let Some(job) = job.filter(|_| !sb.options.real.repsly_forget_jobs) else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"Code": 404, "Message": format!("Import job {id} not found")})),
        )
            .into_response();
    };
    let running = state.timed.running(sb.started, &id);
    if running.unwrap_or(job.polls_left > 0) {
        job.polls_left = job.polls_left.saturating_sub(1);
        return axum::Json(json!({"ImportStatus": "Pending", "RowsInserted": 0, "RowsUpdated": 0, "RowsInvalid": 0, "RowsTotal": 0, "Warnings": [], "Errors": []})).into_response();
    }
    let job = job.clone();
    let body = completed(&sb.options.real, &job, &mut state.repsly);
    axum::Json(body).into_response()
}

/// A finished job's status, as the switches say Repsly answers it.
fn completed(real: &super::RealApi, job: &Job, repsly: &mut RepslyState) -> Value {
    let mut item = |(code, field, text): &(String, String, String)| {
        let id =
            if real.repsly_item_id_not_code { json!(repsly.client_id(code)) } else { json!(code) };
        json!({"ItemID": id, "ItemName": field, "ItemStatus": text})
    };
    let invalid: std::collections::BTreeSet<&String> = job.errors.iter().map(|e| &e.0).collect();
    let errors: Vec<Value> = if real.repsly_invalid_without_errors {
        Vec::new()
    } else {
        job.errors.iter().map(&mut item).collect()
    };
    let warnings: Vec<Value> = job.warnings.iter().map(&mut item).collect();
    let mut body = json!({
        "ImportStatus": "Completed",
        "RowsInserted": job.inserted,
        "RowsUpdated": job.updated,
        "RowsInvalid": invalid.len(),
        "RowsTotal": job.inserted + job.updated,
        "Warnings": warnings,
        "Errors": errors,
    });
    if real.repsly_nulls {
        // What is empty or zero comes back as null.
        if let Some(m) = body.as_object_mut() {
            for v in m.values_mut() {
                let empty = v.as_u64() == Some(0) || v.as_array().is_some_and(Vec::is_empty);
                if empty {
                    *v = Value::Null;
                }
            }
        }
    }
    body
}
