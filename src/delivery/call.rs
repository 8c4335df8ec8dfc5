//! One request as an adapter describes it, and its answer. Each call says how safe it is to
//! send again, so retries are decided by what the call does, not by how it failed.

use bytes::Bytes;
use reqwest::header::HeaderMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

/// What sending a call twice would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Safety {
    /// A read: repeat at will.
    Read,
    /// A write the CRM makes harmless to repeat (an upsert by key, an import not yet started,
    /// a step that is a no-op the second time).
    Repeatable,
    /// A create the CRM does not de-duplicate (a Plannr contact detail): once it may have
    /// reached the server, it is never sent again; its outcome is then unknown.
    Once,
}

/// What a good answer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// An API answer: a 2xx body that is not JSON is a proxy's page, retried.
    Json,
    /// A file (an error report): any body is the answer.
    File,
}

/// One part of a multipart form.
#[derive(Debug, Clone)]
pub enum Part {
    Text { name: &'static str, value: String },
    File { name: &'static str, file_name: String, mime: &'static str, bytes: Bytes },
}

#[derive(Debug, Clone)]
pub enum Body {
    None,
    Json(Bytes),
    Multipart(Vec<Part>),
    /// `application/x-www-form-urlencoded` (the OAuth token endpoint).
    Form(Vec<(String, String)>),
}

/// A request, ready to send as often as its safety allows.
#[derive(Debug, Clone)]
pub struct Call {
    /// Names the call in logs, metrics and errors (`import/clientList`).
    pub endpoint: &'static str,
    pub method: Method,
    pub url: String,
    pub body: Body,
    pub safety: Safety,
    pub expect: Expect,
}

impl Call {
    pub fn get(endpoint: &'static str, url: String) -> Self {
        Self {
            endpoint,
            method: Method::Get,
            url,
            body: Body::None,
            safety: Safety::Read,
            expect: Expect::Json,
        }
    }

    /// A file to download (not an API call): any body is its content.
    pub fn download(endpoint: &'static str, url: String) -> Self {
        Self { expect: Expect::File, ..Self::get(endpoint, url) }
    }

    pub fn post(endpoint: &'static str, url: String, body: Body, safety: Safety) -> Self {
        Self { endpoint, method: Method::Post, url, body, safety, expect: Expect::Json }
    }

    pub fn post_json(endpoint: &'static str, url: String, json: Bytes, safety: Safety) -> Self {
        Self::post(endpoint, url, Body::Json(json), safety)
    }
}

/// An answer with a status, whatever the status.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn is_json(&self) -> bool {
        self.body.is_empty() || serde_json::from_slice::<serde::de::IgnoredAny>(&self.body).is_ok()
    }

    /// The body as JSON (an empty body is `null`).
    pub fn json(&self) -> Result<serde_json::Value, String> {
        if self.body.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&self.body).map_err(|e| format!("the answer is not JSON ({e})"))
    }
}

/// Why a call did not produce a usable answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// A definite refusal (4xx other than auth/408/429); the body says why.
    #[error("{endpoint} answered HTTP {status}: {message}")]
    Rejected { endpoint: &'static str, status: u16, body: Bytes, message: String },
    #[error("{endpoint} failed after {attempts} attempts; last error: {last}")]
    Exhausted { endpoint: &'static str, attempts: u32, last: String },
    /// A `Once` call that may have reached the server without an answer coming back.
    #[error("{endpoint}: the request went out but no answer came back ({detail}); it is not sent again, because the CRM would not know it is the same")]
    Unknown { endpoint: &'static str, detail: String },
    #[error("connection `{connection}` was refused authentication ({detail}); fix its credentials and reload")]
    Auth { connection: String, detail: String },
    #[error("stopped before {endpoint} could be sent: shutting down")]
    Cancelled { endpoint: &'static str },
}

/// The `message`/`Message` of a JSON error body, or the start of a non-JSON one.
pub fn message_of(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        for key in ["message", "Message", "error"] {
            if let Some(m) = v.get(key).and_then(|m| m.as_str()) {
                return m.to_string();
            }
        }
        let text = v.to_string();
        return text.chars().take(300).collect();
    }
    let text = String::from_utf8_lossy(body);
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.is_empty() {
        "(empty body)".into()
    } else {
        format!("non-JSON body: {}", flat.chars().take(200).collect::<String>())
    }
}

/// `scheme://host:port` of a URL, for telling the CRM's own origin from another host's.
pub fn origin(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    Some(format!("{}://{}:{}", u.scheme(), u.host_str()?, u.port_or_known_default()?))
}
