//! Repsly v3 as documented in `api/repsly.md`: Basic auth, each entity's list import
//! (`import/clientList` with `{"Clients": [...]}`, products, price-list items, accounts,
//! users) and single import (`import/schedule`, ...), an async job per request polled on
//! `export/importStatus/{id}`, except users, answered inline with a `Summary` of the
//! account's seats.
//!
//! Whole-request 400s (`{"Code": n, "Message": ...}`) are for what makes the body unusable:
//! a record that is not an object, a missing key, a wrong JSON type, a key twice in one
//! request, or the configured poison text. Field rules ([`entities`]) fail one record in the
//! job's `Errors[]` (or the users' `ValidationErrors`), keyed by its key.

pub mod entities;

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::Sandbox;
pub use entities::{Answer, Entity, ENTITIES};

#[derive(Debug, Default)]
pub struct RepslyState {
    /// Records by entity (`clients`, `products`, ...) and key.
    pub records: BTreeMap<&'static str, BTreeMap<String, Value>>,
    /// How many times each key was saved (inserted or updated), by entity.
    pub received: BTreeMap<&'static str, BTreeMap<String, u64>>,
    pub jobs: BTreeMap<u64, Job>,
    next_job: u64,
    /// Repsly's own ids for records (what `ItemID` may be instead of the key).
    record_ids: BTreeMap<String, u64>,
    /// Schedule codes made up for schedules imported without one.
    made_up: u64,
}

impl RepslyState {
    pub fn snapshot(&self) -> Value {
        let mut out = json!({
            "clients": self.records.get("clients").cloned().unwrap_or_default(),
            "received": self.received.get("clients").cloned().unwrap_or_default(),
            "received_by": self.received,
            "jobs": self.jobs.len(),
        });
        for e in ENTITIES.iter().filter(|e| e.name != "clients") {
            out[e.name] = json!(self.records.get(e.name).cloned().unwrap_or_default());
        }
        out
    }

    fn record_id(&mut self, key: &str) -> u64 {
        let next = 50_000 + self.record_ids.len() as u64;
        *self.record_ids.entry(key.to_string()).or_insert(next)
    }
}

#[derive(Debug, Clone)]
pub struct Job {
    polls_left: u32,
    inserted: u64,
    updated: u64,
    /// Refused records: `(key, field, reason)`.
    errors: Vec<(Option<String>, String, String)>,
    /// Saved with a warning: `(key, field, text)`.
    warnings: Vec<(Option<String>, String, String)>,
}

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

/// Malformed bodies get an HTML page, as the real service's error handler does.
fn html_error() -> Response {
    (
        StatusCode::BAD_REQUEST,
        [("content-type", "text/html")],
        "<html><body><h2>Bad Request</h2><p>The request could not be read.</p></body></html>",
    )
        .into_response()
}

/// `POST` of an entity's import: its list endpoint's `{"<Wrapper>": [...]}` when `wrapper`
/// names the member, else its single endpoint's one record, bare.
pub async fn import_request(
    sb: Sandbox,
    headers: HeaderMap,
    body: axum::body::Bytes,
    entity: &'static Entity,
    wrapper: Option<&'static str>,
) -> Response {
    if !authorised(&sb, &headers) {
        return unauthorised();
    }
    let Ok(parsed) = serde_json::from_slice::<Value>(&body) else {
        return html_error();
    };
    let Some(wrapper) = wrapper else {
        return import(&sb, entity, std::slice::from_ref(&parsed));
    };
    let Some(records) = parsed.get(wrapper).and_then(Value::as_array) else {
        return bad_request(1, format!("The request body must be {{\"{wrapper}\": [...]}}"));
    };
    import(&sb, entity, records)
}

/// The request as a whole: objects, types, keys present and not repeated, no poison.
fn usable<'a>(
    sb: &Sandbox,
    entity: &Entity,
    records: &'a [Value],
) -> Result<Vec<&'a Map<String, Value>>, Box<Response>> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let at = |msg: String| {
            Box::new(bad_request(2, format!("{}[{i}]: {msg}", entity.list.map_or("", |l| l.1))))
        };
        let Some(obj) = r.as_object() else { return Err(at("a record must be an object".into())) };
        (entity.shape)(obj).map_err(at)?;
        let key = (entity.key)(obj);
        match &key {
            None if entity.name != "schedules" => return Err(at("its key is required".into())),
            Some(k) if !seen.insert(k.clone()) => {
                return Err(Box::new(bad_request(
                    3,
                    format!("record {i}: {k} appears more than once in the request"),
                )))
            }
            _ => {}
        }
        if sb.options.poison.as_deref().is_some_and(|p| r.to_string().contains(p)) {
            return Err(at("the record could not be imported".into()));
        }
        out.push(obj);
    }
    Ok(out)
}

fn import(sb: &Sandbox, entity: &'static Entity, records: &[Value]) -> Response {
    let records = match usable(sb, entity, records) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    let Ok(mut guard) = sb.state.lock() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "state poisoned").into_response();
    };
    let state = &mut *guard;
    let repsly = &mut state.repsly;
    let seats_before = active_users(sb, repsly);
    let stalled = sb.options.stall.as_deref().is_some_and(|t| {
        records.iter().any(|c| Value::Object((*c).clone()).to_string().contains(t))
    });
    let mut job = Job {
        polls_left: if stalled { u32::MAX } else { sb.options.pending_polls },
        inserted: 0,
        updated: 0,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let count = records.len();
    for r in records {
        save(sb, entity, r, repsly, &mut job);
    }
    match entity.answer {
        Answer::Inline => users_answer(&job, seats_before, active_users(sb, repsly)),
        Answer::Job => {
            repsly.next_job += 1;
            let id = 1000 + repsly.next_job;
            repsly.jobs.insert(id, job);
            if !stalled {
                state.timed.start(sb.options.job_time, sb.started, id.to_string(), count);
            }
            let template = sb.options.real.repsly_job_message.clone();
            let message = template.unwrap_or_else(|| {
                format!("{} import job started asynchronously under ID: {{id}}", entity.word)
            });
            axum::Json(json!({"Code": 0, "Message": message.replace("{id}", &id.to_string())}))
                .into_response()
        }
    }
}

/// One record: refused with its problems, or saved (inserted, updated; a schedule with
/// `Active: false` deleted), maybe with a warning.
fn save(
    sb: &Sandbox,
    entity: &'static Entity,
    r: &Map<String, Value>,
    repsly: &mut RepslyState,
    job: &mut Job,
) {
    let key = (entity.key)(r);
    let mut problems = (entity.rules)(r, &sb.options);
    if let Some(text) = sb.options.refuse.as_deref() {
        for (k, v) in r {
            if v.as_str().is_some_and(|s| s.contains(text)) {
                problems.push((k.clone(), format!("{k} was refused by the account's rules")));
            }
        }
    }
    if !problems.is_empty() {
        for (field, msg) in problems {
            job.errors.push((key.clone(), field, msg));
        }
        return;
    }
    let key = key.unwrap_or_else(|| {
        repsly.made_up += 1;
        format!("SCH-{:06}", repsly.made_up)
    });
    if let Some(text) = sb.options.real.repsly_warn.as_deref() {
        for (k, v) in r {
            if v.as_str().is_some_and(|s| s.contains(text)) {
                job.warnings.push((
                    Some(key.clone()),
                    k.clone(),
                    format!("{k} was saved but looks wrong"),
                ));
            }
        }
    }
    *repsly.received.entry(entity.name).or_default().entry(key.clone()).or_default() += 1;
    let stored = repsly.records.entry(entity.name).or_default();
    let delete = entity.name == "schedules" && r.get("Active") == Some(&Value::Bool(false));
    match stored.get_mut(&key) {
        Some(_) if delete => {
            stored.remove(&key);
            job.updated += 1;
        }
        Some(Value::Object(old)) => {
            for (k, v) in r {
                old.insert(k.clone(), v.clone());
            }
            job.updated += 1;
        }
        _ => {
            let mut record = r.clone();
            if entity.name == "schedules" {
                record.insert("ScheduleCode".into(), Value::String(key.clone()));
            }
            stored.insert(key, Value::Object(record));
            job.inserted += 1;
        }
    }
}

/// Active users: the account's own plus those imported active.
fn active_users(sb: &Sandbox, repsly: &RepslyState) -> u64 {
    let imported = repsly.records.get("users").map_or(0, |u| {
        u.values().filter(|u| u.get("Active") != Some(&Value::Bool(false))).count() as u64
    });
    sb.options.repsly_active_users + imported
}

/// The user import's inline answer.
fn users_answer(job: &Job, before: u64, after: u64) -> Response {
    let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, _, msg) in &job.errors {
        errors.entry(key.clone().unwrap_or_default()).or_default().push(msg.clone());
    }
    axum::Json(json!({
        "Code": 0,
        "Message": "Users imported",
        "Value": null,
        "Summary": {
            "CurrentUsersActive": before,
            "NewUsersActive": after,
            "RowsTotal": job.inserted + job.updated,
            "RowsInsert": job.inserted,
            "RowsUpdate": job.updated,
            "RowsInvalid": errors.len(),
            "ValidationErrors": errors,
        }
    }))
    .into_response()
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
    let mut item = |(key, field, text): &(Option<String>, String, String)| {
        let id = match key {
            Some(k) if real.repsly_item_id_not_code => json!(repsly.record_id(k)),
            Some(k) => json!(k),
            None => Value::Null,
        };
        json!({"ItemID": id, "ItemName": field, "ItemStatus": text})
    };
    let invalid: std::collections::BTreeSet<String> =
        job.errors.iter().map(|e| format!("{:?}", e.0)).collect();
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
