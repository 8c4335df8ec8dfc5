//! How a call reaches the CRM: HTTP through reqwest in the daemon, a script in the engine's
//! tests (so they run on paused time with no socket).

use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;

use super::call::{Body, Call, Method, Part, Reply};

/// The largest answer read: an API answer or an error report is far smaller, and a body past
/// this (a broken or hostile server) fails the call instead of filling memory.
pub const MAX_BODY: usize = 64 << 20;

/// The credentials a call carries; only sent to the CRM's own origin.
#[derive(Clone)]
pub enum Authorization {
    Bearer { token: String, account: String },
    Basic { username: String, password: String },
}

/// A call that produced no answer.
#[derive(Debug, Clone)]
pub struct NoAnswer {
    /// Whether the request may have reached the server (false: it surely did not, e.g. the
    /// connection was refused).
    pub maybe_sent: bool,
    pub message: String,
}

pub trait Transport: Send + Sync {
    fn send<'a>(
        &'a self,
        call: &'a Call,
        auth: Option<&'a Authorization>,
    ) -> BoxFuture<'a, Result<Reply, NoAnswer>>;
}

/// The real thing.
pub struct Http {
    client: reqwest::Client,
}

impl Http {
    pub fn new(timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("crm-ingest/", env!("CARGO_PKG_VERSION")))
            // A redirect would send the rows (307/308) and the account header to another
            // address: it is answered as it comes, and the call fails on it.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { client })
    }

    fn request(&self, call: &Call, auth: Option<&Authorization>) -> reqwest::RequestBuilder {
        let mut r = match call.method {
            Method::Get => self.client.get(&call.url),
            Method::Post => self.client.post(&call.url),
        };
        r = r.header("Accept", "application/json");
        r = match auth {
            Some(Authorization::Bearer { token, account }) => {
                r.bearer_auth(token).header("X-PLANNR-ACCOUNT-UUID", account)
            }
            Some(Authorization::Basic { username, password }) => {
                r.basic_auth(username, Some(password))
            }
            None => r,
        };
        match &call.body {
            Body::None => r,
            Body::Json(bytes) => r.header("Content-Type", "application/json").body(bytes.clone()),
            Body::Multipart(parts) => r.multipart(form(parts)),
            Body::Form(pairs) => r.form(pairs),
        }
    }
}

fn form(parts: &[Part]) -> reqwest::multipart::Form {
    let mut form = reqwest::multipart::Form::new();
    for p in parts {
        form = match p {
            Part::Text { name, value } => form.text(*name, value.clone()),
            Part::File { name, file_name, mime, bytes } => {
                let part =
                    reqwest::multipart::Part::stream(bytes.clone()).file_name(file_name.clone());
                match part.mime_str(mime) {
                    Ok(part) => form.part(*name, part),
                    Err(_) => form,
                }
            }
        };
    }
    form
}

impl Transport for Http {
    fn send<'a>(
        &'a self,
        call: &'a Call,
        auth: Option<&'a Authorization>,
    ) -> BoxFuture<'a, Result<Reply, NoAnswer>> {
        async move {
            let mut response =
                self.request(call, auth).send().await.map_err(|e| no_answer(call, &e))?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let too_large = || NoAnswer {
                maybe_sent: true,
                message: format!(
                    "{} answered with a body of more than {} MiB; it was not read",
                    call.endpoint,
                    MAX_BODY >> 20
                ),
            };
            if response.content_length().is_some_and(|n| n > MAX_BODY as u64) {
                return Err(too_large());
            }
            let mut body = bytes::BytesMut::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| no_answer(call, &e))? {
                if body.len().saturating_add(chunk.len()) > MAX_BODY {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Reply { status, headers, body: body.freeze() })
        }
        .boxed()
    }
}

fn no_answer(call: &Call, e: &reqwest::Error) -> NoAnswer {
    let kind = if e.is_connect() {
        "could not connect"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_body() || e.is_decode() {
        "connection broke while reading the response"
    } else {
        "request failed"
    };
    let mut message = format!("{} {kind}", call.endpoint);
    if let Some(s) = std::error::Error::source(e) {
        message.push_str(&format!(": {s}"));
    }
    // Only a refused connection proves the request never left.
    NoAnswer { maybe_sent: !e.is_connect(), message }
}
