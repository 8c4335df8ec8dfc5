//! `GET /api/v1/account`: the clients the sandbox holds (imported, or seeded with
//! `plannr_accounts`), filtered as the docs say (`filter[primary_email]` is a partial match,
//! `filter[type]`), `include=primary_email` adding the email as a contact-detail resource,
//! paginated (`per_page` up to 500, default 15) as `{data, links, meta}`.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{check_auth, host, message};
use crate::sandbox::Sandbox;

const DEFAULT_PER_PAGE: usize = 15;
const MAX_PER_PAGE: usize = 500;

pub async fn list_accounts(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = check_auth(&sb, &headers) {
        return *r;
    }
    let Ok(state) = sb.state.lock() else {
        return message(StatusCode::INTERNAL_SERVER_ERROR, "state");
    };
    let email = query.get("filter[primary_email]").map(|e| e.to_lowercase());
    let types = query.get("filter[type]");
    let include_email =
        query.get("include").is_some_and(|i| i.split(',').any(|x| x == "primary_email"));
    let per_page = query
        .get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(DEFAULT_PER_PAGE)
        .clamp(1, MAX_PER_PAGE);
    let page = query.get("page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(1).max(1);
    let clients = state.plannr.records.get("clients").cloned().unwrap_or_default();
    let matching: Vec<Value> = clients
        .iter()
        .filter(|_| types.is_none_or(|t| t.split(',').any(|t| t == "client")))
        .filter(|c| {
            let mail = c.get("email").and_then(Value::as_str).unwrap_or_default().to_lowercase();
            email.as_ref().is_none_or(|e| !mail.is_empty() && mail.contains(e.as_str()))
        })
        .map(|c| account(c, include_email))
        .collect();
    let total = matching.len();
    let last_page = total.div_ceil(per_page).max(1);
    let data: Vec<Value> =
        matching.into_iter().skip((page - 1) * per_page).take(per_page).collect();
    let next = (page < last_page).then(|| {
        format!("http://{}/api/v1/account?page={}&per_page={per_page}", host(&headers), page + 1)
    });
    axum::Json(json!({
        "data": data,
        "links": {"next": next},
        "meta": {"current_page": page, "last_page": last_page, "per_page": per_page, "total": total},
    }))
    .into_response()
}

/// A stored client as the account resource shows it.
fn account(c: &Value, include_email: bool) -> Value {
    let email = c.get("email").cloned().unwrap_or(Value::Null);
    let mut a = json!({
        "uuid": c.get("uuid"),
        "type": "client",
        "role": "individual",
        "first_name": c.get("first_name"),
        "last_name": c.get("last_name"),
        "email": email,
    });
    if include_email && !email.is_null() {
        a["primary_email"] = json!({"type": "email", "name": "Email", "value": email});
    }
    a
}
