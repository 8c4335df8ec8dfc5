//! Laravel-style rules for the Plannr import types the sandbox knows, each row as mapped
//! (`null` for an empty cell), written from Plannr's import schemas apart from the client's:
//! clients, plans, premiums and charges; any other type accepts every row. Dates follow the
//! docs' examples, `d/m/Y`; a `*_uuid` that names a record must name one the sandbox holds.

use serde_json::{json, Map, Value};

use super::PlannrState;
use crate::sandbox::rules;

type Errors = Map<String, Value>;

/// The errors of one row of a `kind` import in `mode`.
pub fn row_errors(kind: &str, mode: &str, r: &Map<String, Value>, plannr: &PlannrState) -> Errors {
    let mut e = Map::new();
    let creating = mode != "update";
    match kind {
        "clients" => clients(r, creating, &mut e),
        "plans" => plans(r, plannr, &mut e),
        "premiums" => premiums(r, plannr, &mut e),
        "charges" => charges(r, plannr, &mut e),
        _ => {}
    }
    e
}

fn text<'a>(r: &'a Map<String, Value>, k: &str) -> &'a str {
    r.get(k).and_then(Value::as_str).map(str::trim).unwrap_or("")
}

/// "The first name field is required." for `first_name`.
fn label(field: &str) -> String {
    field.replace('_', " ")
}

fn required(r: &Map<String, Value>, e: &mut Errors, fields: &[&str]) {
    for f in fields {
        if text(r, f).is_empty() {
            e.insert(f.to_string(), json!([format!("The {} field is required.", label(f))]));
        }
    }
}

/// Laravel's `date_format:d/m/Y`.
fn dates(r: &Map<String, Value>, e: &mut Errors, fields: &[&str]) {
    for f in fields {
        let t = text(r, f);
        let ok = t.is_empty() || {
            let parts: Vec<&str> = t.split('/').collect();
            parts.len() == 3
                && parts[2].len() == 4
                && chrono::NaiveDate::parse_from_str(t, "%d/%m/%Y").is_ok()
        };
        if !ok {
            e.insert(
                f.to_string(),
                json!([format!("The {} does not match the format d/m/Y.", label(f))]),
            );
        }
    }
}

fn one_of(r: &Map<String, Value>, e: &mut Errors, field: &str, allowed: &[&str]) {
    let t = text(r, field);
    if !t.is_empty() && !allowed.contains(&t) {
        e.insert(field.into(), json!([format!("The selected {} is invalid.", label(field))]));
    }
}

fn numeric(r: &Map<String, Value>, e: &mut Errors, fields: &[&str], whole: bool) {
    for f in fields {
        let t = text(r, f);
        let ok = t.is_empty()
            || if whole {
                t.parse::<i64>().is_ok()
            } else {
                t.parse::<f64>().is_ok_and(f64::is_finite)
            };
        if !ok {
            let what = if whole { "an integer" } else { "a number" };
            e.insert(f.to_string(), json!([format!("The {} must be {what}.", label(f))]));
        }
    }
}

/// A uuid that, when given, names a record of `kind` the sandbox holds.
fn exists(r: &Map<String, Value>, e: &mut Errors, field: &str, plannr: &PlannrState, kind: &str) {
    let t = text(r, field);
    if t.is_empty() {
        return;
    }
    let known = rules::uuid(t)
        && plannr
            .records
            .get(kind)
            .is_some_and(|rs| rs.iter().any(|x| x.get("uuid").and_then(Value::as_str) == Some(t)));
    if !known {
        e.insert(field.into(), json!([format!("The selected {} is invalid.", label(field))]));
    }
}

fn clients(r: &Map<String, Value>, creating: bool, e: &mut Errors) {
    if creating {
        required(r, e, &["first_name", "last_name", "send_welcome_email"]);
    }
    let welcome = text(r, "send_welcome_email");
    if !welcome.is_empty() && !["0", "1"].contains(&welcome) {
        e.insert(
            "send_welcome_email".into(),
            json!(["The send welcome email field must be true or false."]),
        );
    }
    let email = text(r, "email");
    if !email.is_empty() && !rules::email(email) {
        e.insert("email".into(), json!(["The email must be a valid email address."]));
    }
    dates(r, e, &["date_of_birth"]);
}

fn plans(r: &Map<String, Value>, plannr: &PlannrState, e: &mut Errors) {
    required(r, e, &["client_uuid"]);
    exists(r, e, "client_uuid", plannr, "clients");
    numeric(r, e, &["value"], true);
    dates(r, e, &["opened_at", "inactive_at"]);
}

fn premiums(r: &Map<String, Value>, plannr: &PlannrState, e: &mut Errors) {
    exists(r, e, "plan_uuid", plannr, "plans");
    one_of(r, e, "transfer_type", &["switch", "transfer"]);
    one_of(
        r,
        e,
        "payment_method",
        &[
            "salary sacrifice",
            "salary deduction",
            "direct debit",
            "standing order",
            "bank transfer",
        ],
    );
    numeric(r, e, &["amount", "percentage", "pensionable_salary"], false);
    dates(r, e, &["date_advice_given", "start_date", "end_date"]);
}

fn charges(r: &Map<String, Value>, plannr: &PlannrState, e: &mut Errors) {
    required(r, e, &["adviser_uuid", "payment_origin"]);
    if text(r, "client_uuid").is_empty() && text(r, "plan_uuid").is_empty() {
        e.insert("client_uuid".into(), json!(["A client uuid or a plan uuid is required."]));
    }
    exists(r, e, "client_uuid", plannr, "clients");
    exists(r, e, "plan_uuid", plannr, "plans");
    one_of(r, e, "payment_origin", &["client", "provider", "unknown"]);
    let adviser = text(r, "adviser_uuid");
    if !adviser.is_empty() && !rules::uuid(adviser) {
        e.insert("adviser_uuid".into(), json!(["The adviser uuid must be a valid UUID."]));
    }
}
