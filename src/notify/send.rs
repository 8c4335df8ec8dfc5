//! One delivery attempt of one outbox row to its destination. Errors are phrased without the
//! URL (reqwest's own messages name it, and a webhook's URL is often its secret).

use std::time::Duration;

use serde_json::Value;

use crate::config::{SinkKind, SinkSettings};
use crate::ledger::Due;

/// How long one attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(ATTEMPT_TIMEOUT)
        // A redirect could carry the signed body (or the URL's secret) to another host.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("crm-ingest/", env!("CARGO_PKG_VERSION")))
        .build()
}

pub async fn deliver(
    client: &reqwest::Client,
    sink: &SinkSettings,
    row: &Due,
) -> Result<(), String> {
    match &sink.kind {
        SinkKind::Webhook { url, secret } => {
            let mut request = client
                .post(url.expose())
                .header("content-type", "application/json")
                .header("x-crm-ingest-event", &row.kind)
                .header("x-crm-ingest-id", &row.event_id);
            if let Some(secret) = secret {
                let t = super::sender::unix_now();
                let signature =
                    super::sign::sign(secret.expose().as_bytes(), t, row.body.as_bytes());
                request = request.header(super::sign::HEADER, signature);
            }
            answered(request.body(row.body.clone()).send().await).await
        }
        SinkKind::Slack { url } => {
            let body = serde_json::json!({ "text": slack_text(&row.body) });
            answered(client.post(url.expose()).json(&body).send().await).await
        }
        SinkKind::Email { smtp_url, from, to } => {
            email(smtp_url.expose(), from, to, &row.body).await
        }
    }
}

async fn answered(sent: Result<reqwest::Response, reqwest::Error>) -> Result<(), String> {
    let reply = sent.map_err(|e| e.without_url().to_string())?;
    let status = reply.status();
    if status.is_success() {
        return Ok(());
    }
    let text = reply.text().await.unwrap_or_default();
    let text: String = text.chars().take(200).collect();
    Err(format!("the receiver answered HTTP {}: {}", status.as_u16(), text.trim()))
}

/// A line a person reads in Slack: what, where, and a link to the console.
pub fn slack_text(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_default();
    let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
    let mut text = format!("*crm-ingest* `{}`", field("type"));
    if !field("pipeline").is_empty() {
        text.push_str(&format!(" · pipeline {}", field("pipeline")));
    }
    text.push_str(&format!("\n{}", field("message")));
    if !field("console_url").is_empty() {
        text.push_str(&format!("\n<{}|Open in the console>", field("console_url")));
    }
    text
}

/// The subject and plain-text body of an event's email.
pub fn email_text(body: &str) -> (String, String) {
    let v: Value = serde_json::from_str(body).unwrap_or_default();
    let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
    let message = field("message");
    let short: String = message.chars().take(100).collect();
    let subject = format!("crm-ingest {}: {short}", field("type"));
    let mut text = format!("{message}\n\n");
    for key in ["type", "pipeline", "connection", "file", "report", "at", "id"] {
        if !field(key).is_empty() {
            text.push_str(&format!("{key}: {}\n", field(key)));
        }
    }
    if let Some(rows) = v.get("rows").filter(|r| r.is_object()) {
        text.push_str(&format!("rows: {rows}\n"));
    }
    if !field("console_url").is_empty() {
        text.push_str(&format!("\nOpen in the console: {}\n", field("console_url")));
    }
    (subject, text)
}

async fn email(smtp_url: &str, from: &str, to: &[String], body: &str) -> Result<(), String> {
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    let (subject, text) = email_text(body);
    let mut message = Message::builder().subject(subject);
    message = message.from(from.parse().map_err(|_| "`from` is not an address".to_string())?);
    for t in to {
        message = message.to(t.parse().map_err(|_| "`to` is not an address".to_string())?);
    }
    let message = message.body(text).map_err(|e| format!("cannot build the message: {e}"))?;
    // The URL holds the SMTP password: its parse error is not quoted.
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url)
        .map_err(|_| "`smtp_url` is not a valid SMTP URL".to_string())?
        .timeout(Some(ATTEMPT_TIMEOUT))
        .build();
    transport.send(message).await.map(drop).map_err(|e| format!("SMTP: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_and_email_texts_read_well() {
        let body = r#"{"type":"file.rows_failed","pipeline":"clients","file":"a.csv","message":"a.csv: 1 of 3 rows did not arrive","console_url":"http://c/files/4","rows":{"read":3}}"#;
        let slack = slack_text(body);
        assert!(slack.contains("file.rows_failed") && slack.contains("1 of 3 rows"), "{slack}");
        assert!(slack.contains("<http://c/files/4|Open in the console>"), "{slack}");
        let (subject, text) = email_text(body);
        assert!(subject.starts_with("crm-ingest file.rows_failed: a.csv"), "{subject}");
        assert!(text.contains("pipeline: clients") && text.contains("http://c/files/4"), "{text}");
        assert_eq!(slack_text("not json"), "*crm-ingest* ``\n");
    }
}
