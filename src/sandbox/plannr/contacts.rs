//! `POST /api/v2/contact-details`: Laravel validation (422), a 403 for an account that is not
//! a client, and, switched on, an answer lost after the detail was created.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::{check_auth, invalid, message, now};
use crate::sandbox::{rules, Sandbox};

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
    let e = problems(&d, sb.options.refuse.as_deref());
    if !e.is_empty() {
        return invalid(e);
    }
    let real = &sb.options.real;
    let accounts = d.get("account_uuids").map(Value::to_string).unwrap_or_default();
    if real.contact_forbidden.as_deref().is_some_and(|t| accounts.contains(t)) {
        return message(StatusCode::FORBIDDEN, "This action is unauthorized.");
    }
    let value = d.get("value").and_then(Value::as_str).unwrap_or("").to_string();
    let Ok(mut state) = sb.state.lock() else {
        return message(StatusCode::INTERNAL_SERVER_ERROR, "state");
    };
    let kind = d.get("type").and_then(Value::as_str).unwrap_or("");
    let created = json!({
        "uuid": state.plannr.next_uuid("10000000"),
        "created_at": now(), "updated_at": now(),
        "type": kind, "name": d.get("name"), "value": value,
        "phone_number_meta": if kind == "phone_number" { json!({"country": "GB", "formatted": value}) } else { Value::Null },
        "accounts": d.get("account_uuids"),
        "is_primary": d.get("is_primary").cloned().unwrap_or(Value::Bool(false)),
    });
    state.plannr.contact_details.push(created.clone());
    if real.contact_lost_reply.as_deref().is_some_and(|t| value.contains(t)) {
        return crate::sandbox::lost_answer();
    }
    let body = if sb.options.plannr_wrap_data { json!({ "data": created }) } else { created };
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

/// Plannr's rules for a contact detail, as Laravel would phrase them.
fn problems(d: &Map<String, Value>, refuse: Option<&str>) -> Map<String, Value> {
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
        "email" => rules::email(value),
        "phone_number" => rules::phone(value),
        _ => true,
    };
    if value.is_empty() {
        e.insert("value".into(), json!(["The value field is required."]));
    } else if !value_ok {
        let what = if kind == "email" { "email address" } else { "phone number" };
        e.insert("value".into(), json!([format!("The value must be a valid {what}.")]));
    }
    for key in ["account_uuids", "primary_account_uuids"] {
        match d.get(key) {
            Some(Value::Array(items))
                if items.iter().all(|u| u.as_str().is_some_and(rules::uuid))
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
    if refuse.is_some_and(|t| value.contains(t)) {
        e.insert("value".into(), json!(["The value was refused by the account's rules."]));
    }
    e
}
