//! What both Plannr targets share: resources optionally wrapped in `data`, Laravel 422 bodies,
//! and finding a client by its primary email.

use serde_json::{Map, Value};

use crate::delivery::{Call, Reply};
use crate::row::{Failure, Stage};

/// Clients asked for per page of a lookup (Plannr's most).
const LOOKUP_PER_PAGE: u32 = 500;

/// Page `page` of the clients whose primary email holds `email`:
/// `GET /api/v1/account?filter[primary_email]=...&filter[type]=client&include=primary_email`.
/// The filter is a partial match: [`read_clients_by_email`] keeps the exact ones.
pub fn clients_by_email(base: &str, email: &str, page: u32) -> Call {
    let query: String = [
        ("filter[primary_email]", email.to_string()),
        ("filter[type]", "client".into()),
        ("include", "primary_email".into()),
        ("per_page", LOOKUP_PER_PAGE.to_string()),
        ("page", page.to_string()),
    ]
    .iter()
    .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
    .collect::<Vec<_>>()
    .join("&");
    Call::get("account/lookup", format!("{base}/api/v1/account?{query}"))
}

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The uuids of the clients on a page whose primary email is `email` (compared without
/// case), and whether a later page follows (`meta.current_page < meta.last_page`, or a
/// `links.next`).
pub fn read_clients_by_email(email: &str, reply: &Reply) -> Result<(Vec<String>, bool), String> {
    let v = reply.json()?;
    let Some(data) = v.get("data").and_then(Value::as_array) else {
        return Err("the account list has no `data`".into());
    };
    let exact = |a: &&Value| {
        let primary = a.get("primary_email");
        let address = primary
            .and_then(|p| p.get("value").or(Some(p)))
            .and_then(Value::as_str)
            .or_else(|| a.get("email").and_then(Value::as_str));
        address.is_some_and(|m| m.trim().eq_ignore_ascii_case(email.trim()))
    };
    let uuids = data
        .iter()
        .filter(exact)
        .filter_map(|a| a.get("uuid").and_then(Value::as_str).map(String::from))
        .collect();
    let page = |k: &str| v.get("meta").and_then(|m| m.get(k)).and_then(Value::as_u64);
    let more = match (page("current_page"), page("last_page")) {
        (Some(current), Some(last)) => current < last,
        _ => v.get("links").and_then(|l| l.get("next")).is_some_and(|n| !n.is_null()),
    };
    Ok((uuids, more))
}

/// Plannr's resources may come as `{"data": {...}}` or bare; both are accepted.
pub fn unwrap_data(v: Value) -> Value {
    match v {
        Value::Object(mut m)
            if !m.contains_key("uuid")
                && m.get("data").is_some_and(|d| d.is_object() || d.is_array()) =>
        {
            m.remove("data").unwrap_or(Value::Null)
        }
        other => other,
    }
}

/// An answer's resource object, unwrapped.
pub fn resource(reply: &Reply) -> Result<Map<String, Value>, String> {
    match unwrap_data(reply.json()?) {
        Value::Object(m) => Ok(m),
        other => Err(format!(
            "Plannr's answer is not a resource: {}",
            other.to_string().chars().take(200).collect::<String>()
        )),
    }
}

/// A JSON string's text; anything else (null included) is empty.
pub fn text_of(v: Option<&Value>) -> &str {
    v.and_then(Value::as_str).unwrap_or_default()
}

/// `{"field": ["msg", ...], ...}` as a row failure naming every field and message.
pub fn failure_from_errors(errors: &Map<String, Value>) -> Failure {
    let mut fields = Vec::new();
    let mut messages = Vec::new();
    for (field, msgs) in errors {
        fields.push(field.clone());
        match msgs {
            Value::Array(list) => {
                for m in list {
                    messages.push(format!(
                        "{field}: {}",
                        m.as_str().map_or_else(|| m.to_string(), String::from)
                    ));
                }
            }
            Value::String(m) => messages.push(format!("{field}: {m}")),
            Value::Null => messages.push(format!("{field}: refused")),
            other => messages.push(format!("{field}: {other}")),
        }
    }
    if messages.is_empty() {
        messages.push("refused by Plannr".into());
    }
    Failure { stage: Stage::Remote, fields, messages }
}

/// A Laravel validation body (`{"message": ..., "errors": {...}}`) as a row failure.
pub fn failure_from_422(body: &[u8], fallback: &str) -> Failure {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    match parsed.as_ref().and_then(|v| v.get("errors")).and_then(Value::as_object) {
        Some(errors) if !errors.is_empty() => failure_from_errors(errors),
        _ => {
            let msg = parsed
                .as_ref()
                .and_then(|v| v.get("message"))
                .and_then(Value::as_str)
                .unwrap_or(fallback);
            Failure::new(Stage::Remote, None, msg)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reply(v: Value) -> Reply {
        Reply { status: 200, headers: Default::default(), body: v.to_string().into() }
    }

    #[test]
    fn a_lookup_keeps_only_exact_emails_and_follows_pages() {
        let call = clients_by_email("http://x", "ann+1@example.com", 2);
        assert_eq!(
            call.url,
            "http://x/api/v1/account?filter%5Bprimary%5Femail%5D=ann%2B1%40example%2Ecom&filter%5Btype%5D=client&include=primary%5Femail&per%5Fpage=500&page=2"
        );
        let page = json!({"data": [
            {"uuid": "u1", "primary_email": {"value": "Ann@Example.com"}},
            {"uuid": "u2", "primary_email": {"value": "joann@example.com"}},
            {"uuid": "u3", "email": "ann@example.com"},
            {"uuid": "u4", "primary_email": "ann@example.com"}
        ], "meta": {"current_page": 1, "last_page": 2}});
        let (found, more) = read_clients_by_email("ann@example.com", &reply(page)).unwrap();
        assert_eq!((found, more), (vec!["u1".to_string(), "u3".into(), "u4".into()], true));
        let last = json!({"data": [], "links": {"next": null}});
        assert_eq!(read_clients_by_email("a@b.c", &reply(last)).unwrap(), (vec![], false));
        assert!(read_clients_by_email("a@b.c", &reply(json!({"x": 1}))).is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_account_list_is_read_without_panic(text in ".{0,200}", n in proptest::num::u64::ANY) {
            let body = Reply { status: 200, headers: Default::default(), body: text.clone().into() };
            let _ = read_clients_by_email("a@b.c", &body);
            let wild = json!({"data": [{"uuid": n, "primary_email": {"value": n}}, text], "meta": {"current_page": n, "last_page": "x"}});
            let _ = read_clients_by_email("a@b.c", &reply(wild));
        }
    }

    #[test]
    fn data_wrapper_is_optional() {
        assert_eq!(unwrap_data(json!({"data": {"uuid": "u"}})), json!({"uuid": "u"}));
        assert_eq!(unwrap_data(json!({"uuid": "u", "data": {}})), json!({"uuid": "u", "data": {}}));
    }

    #[test]
    fn laravel_bodies() {
        let f = failure_from_422(br#"{"message":"bad","errors":{"value":["The value must be a valid email."],"name":["Too long."]}}"#, "x");
        assert_eq!(f.fields, vec!["name", "value"]);
        assert_eq!(f.messages.len(), 2);
        assert_eq!(failure_from_422(b"<html>", "fallback").messages, vec!["fallback"]);
    }
}
