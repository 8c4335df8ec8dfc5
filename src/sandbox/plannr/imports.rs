//! Imports: create (a CSV upload), map, start (rows applied: stored, updated or only
//! validated), poll, and the error report.

use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::report::{self, Report};
use super::{check_auth, host, invalid, message, now, wrap, PlannrState};
use crate::sandbox::Sandbox;

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
    /// Refused rows: the row as uploaded (every column) and Plannr's errors.
    failures: Vec<(Map<String, Value>, Map<String, Value>)>,
    created_at: String,
    started_once: bool,
    polled_once: bool,
    /// Where its error report is served, once it has one.
    report_url: Option<String>,
}

impl Import {
    fn done(&self) -> bool {
        self.status != "processing" && self.status != "pending"
    }

    fn resource(&self, sb: &Sandbox) -> Value {
        let real = &sb.options.real;
        let (done, failed) = (self.done(), self.failures.len());
        let failed_jobs = match (done, real.plannr_failed_jobs_count_jobs) {
            (false, _) => 0,
            (true, true) => usize::from(failed > 0),
            (true, false) => failed,
        };
        let inline: Vec<Value> = if done {
            self.failures.iter().take(INLINE_ERRORS).map(|f| self.entry(f)).collect()
        } else {
            Vec::new()
        };
        let errors = if real.plannr_errors_object {
            // PHP's list with gaps: keyed by index.
            Value::Object(
                inline.into_iter().enumerate().map(|(i, e)| ((i * 2).to_string(), e)).collect(),
            )
        } else {
            Value::Array(inline)
        };
        let report = self
            .report_url
            .as_ref()
            .map(|u| json!({"filename": "error-report", "download_url": u}));
        let (status, progress, remaining) = match (done, real.plannr_seed_shape) {
            (false, _) => (self.status.clone(), json!(0), json!(self.rows.len().max(1))),
            (true, true) => ("processing".to_string(), json!(100), json!(failed_jobs)),
            (true, false) => (self.status.clone(), json!(100), json!(0)),
        };
        json!({
            "uuid": self.uuid, "type": self.kind, "mode": self.mode, "status": status,
            "headers": self.headers, "mapping": self.mapping.clone().unwrap_or_default(),
            "total_jobs": self.rows.len().max(1), "progress": progress,
            "jobs_remaining": remaining, "failed_jobs": failed_jobs, "errors": errors,
            "error_report": report, "created_at": self.created_at, "updated_at": self.created_at,
            "account": {"uuid": "sandbox-account"},
        })
    }

    /// An inline entry: `{"<type singular>": {mapped row}, "errors": {...}}`.
    fn entry(&self, (row, errors): &(Map<String, Value>, Map<String, Value>)) -> Value {
        let singular = self.kind.trim_end_matches('s').to_string();
        let mapped: Map<String, Value> = self
            .mapping
            .iter()
            .flatten()
            .map(|(field, column)| {
                (
                    field.clone(),
                    column.as_str().and_then(|c| row.get(c)).cloned().unwrap_or(Value::Null),
                )
            })
            .collect();
        json!({ singular: mapped, "errors": errors })
    }
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
    let uuid = state.plannr.next_uuid("00000000");
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
        created_at: now(),
        started_once: false,
        polled_once: false,
        report_url: None,
    };
    let body = import.resource(&sb);
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
        let why = format!("Columns not in the file: {}", missing.join(", "));
        return invalid(Map::from_iter([("headers".to_string(), json!([why]))]));
    }
    import.mapping = Some(mapping);
    let body = import.resource(&sb);
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
    if import.mapping.is_none() {
        return message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The import must be mapped before it can be started.",
        );
    }
    if import.status != "pending" {
        return message(StatusCode::UNPROCESSABLE_ENTITY, "The import has already been started.");
    }
    import.status = "processing".into();
    import.polls_left = sb.options.pending_polls;
    state.timed.start(sb.options.job_time, sb.started, uuid.clone(), import.rows.len());
    let mut import = import.clone();
    apply(&mut import, &mut state.plannr, &sb);
    let lose = sb.options.real.plannr_start_reset && !import.started_once;
    import.started_once = true;
    let body = import.resource(&sb);
    state.plannr.imports.insert(uuid, import);
    if lose {
        return crate::sandbox::lost_answer();
    }
    wrap(&sb, body)
}

/// Each row of a started import: validated, then stored (store), applied to the record its
/// `uuid` names (update: a mapped column's empty cell clears that field), or neither
/// (validate).
fn apply(import: &mut Import, plannr: &mut PlannrState, sb: &Sandbox) {
    let mapping = import.mapping.clone().unwrap_or_default();
    for row in &import.rows {
        let uploaded: Map<String, Value> = import
            .headers
            .iter()
            .cloned()
            .zip(row.iter().map(|c| Value::String(c.clone())))
            .collect();
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
        let kind = (import.kind.as_str(), import.mode.as_str());
        let mut errors = row_errors(plannr, kind, &record, sb.options.refuse.as_deref());
        if errors.is_empty() {
            match import.mode.as_str() {
                "store" => {
                    let uuid = plannr.next_uuid("20000000");
                    record.insert("uuid".into(), Value::String(uuid));
                    plannr
                        .records
                        .entry(import.kind.clone())
                        .or_default()
                        .push(Value::Object(record));
                }
                "update" => {
                    if let Err(e) = update(plannr, &import.kind, &record) {
                        errors.insert("uuid".into(), json!([e]));
                    }
                }
                _ => {}
            }
        }
        if !errors.is_empty() {
            import.failures.push((uploaded, errors));
        }
    }
}

fn update(plannr: &mut PlannrState, kind: &str, record: &Map<String, Value>) -> Result<(), String> {
    let uuid = record.get("uuid").and_then(Value::as_str).unwrap_or_default();
    let stored = plannr.records.entry(kind.to_string()).or_default();
    let Some(Value::Object(existing)) =
        stored.iter_mut().find(|r| r.get("uuid").and_then(Value::as_str) == Some(uuid))
    else {
        return Err("The selected uuid is invalid.".into());
    };
    for (k, v) in record {
        existing.insert(k.clone(), v.clone());
    }
    Ok(())
}

/// The type's own rules ([`super::rules`]), and the configured refusal text.
fn row_errors(
    plannr: &PlannrState,
    (kind, mode): (&str, &str),
    r: &Map<String, Value>,
    refuse: Option<&str>,
) -> Map<String, Value> {
    let mut e = super::rules::row_errors(kind, mode, r, plannr);
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
    let Ok(mut guard) = sb.state.lock() else {
        return message(StatusCode::INTERNAL_SERVER_ERROR, "state");
    };
    let state = &mut *guard;
    let Some(import) = state.plannr.imports.get_mut(&uuid) else {
        return message(StatusCode::NOT_FOUND, "Not found.");
    };
    if sb.options.real.plannr_poll_404_once && import.status != "pending" && !import.polled_once {
        import.polled_once = true;
        return message(StatusCode::NOT_FOUND, "Not found.");
    }
    if import.status == "processing" {
        let running = state.timed.running(sb.started, &uuid);
        if running.unwrap_or(import.polls_left > 0) {
            import.polls_left = import.polls_left.saturating_sub(1);
        } else {
            let all_failed = !import.rows.is_empty() && import.failures.len() == import.rows.len();
            import.status = if all_failed {
                "failed".into()
            } else {
                sb.options.plannr_terminal_status.clone()
            };
            if !import.failures.is_empty() {
                import.report_url =
                    Some(report::publish(&sb, &mut state.files, import, &host(&headers)));
            }
        }
    }
    let body = import.resource(&sb);
    wrap(&sb, body)
}

impl Report for Import {
    fn uuid(&self) -> &str {
        &self.uuid
    }
    fn headers(&self) -> &[String] {
        &self.headers
    }
    fn failures(&self) -> Vec<(Map<String, Value>, Map<String, Value>)> {
        self.failures.clone()
    }
    fn entries(&self) -> Vec<Value> {
        self.failures.iter().map(|f| self.entry(f)).collect()
    }
}

/// The error report on the API's own origin (JSON, CSV or XLSX as switched).
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
        Some(i) => {
            let (mime, bytes) = report::render(sb.options.real.plannr_report_format, i);
            ([("content-type", mime)], bytes).into_response()
        }
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
    let data: Vec<Value> = state.plannr.imports.values().map(|i| i.resource(&sb)).collect();
    let total = data.len();
    axum::Json(json!({"data": data, "links": {}, "meta": {"current_page": 1, "last_page": 1, "per_page": total.max(1), "total": total}})).into_response()
}
