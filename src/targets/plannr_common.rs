//! What both Plannr targets share: resources optionally wrapped in `data`, Laravel 422 bodies.

use serde_json::{Map, Value};

use crate::delivery::Reply;
use crate::row::{Failure, Stage};

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
