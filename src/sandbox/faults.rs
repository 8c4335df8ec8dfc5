//! The gate every CRM request passes: latency, the rate limit (429 + Retry-After), injected
//! faults; and the request log.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use super::{RequestLog, Sandbox};

/// A fixed window counter: at most `count` requests per window of `per`.
#[derive(Debug, Default)]
pub struct Window {
    start: Option<Instant>,
    used: u32,
}

impl Window {
    /// Requests left in the current window, for `X-Ratelimit-Remaining`.
    fn remaining(&self, limit: super::Budget) -> u32 {
        limit.count.saturating_sub(self.used)
    }

    /// How long until the current window ends.
    fn resets_in(&self, now: Instant, limit: super::Budget) -> std::time::Duration {
        self.start
            .map_or(std::time::Duration::ZERO, |s| (s + limit.per).saturating_duration_since(now))
    }

    /// `Ok` if the request fits, else how long until the window resets.
    fn admit(&mut self, now: Instant, limit: super::Budget) -> Result<(), std::time::Duration> {
        let start = *self.start.get_or_insert(now);
        if now.duration_since(start) >= limit.per {
            self.start = Some(now);
            self.used = 0;
        }
        if self.used >= limit.count {
            let reset = self.start.unwrap_or(now) + limit.per;
            return Err(reset.saturating_duration_since(now));
        }
        self.used += 1;
        Ok(())
    }
}

pub async fn gate(State(sb): State<Sandbox>, request: Request, next: Next) -> Response {
    let authorized = request.headers().contains_key("authorization");
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    // Half the latency before the request is handled, half after: a client that gives up
    // (or is killed) in the second half has had its request applied without seeing the answer.
    let half = sb.options.latency / 2;
    if !half.is_zero() {
        tokio::time::sleep(half).await;
    }
    let now = Instant::now();
    let throttled = match sb.options.rate_limit {
        Some(limit) => {
            sb.state.lock().map(|mut s| s.window.admit(now, limit).err()).unwrap_or(None)
        }
        None => None,
    };
    let response = if let Some(wait) = throttled {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        let mut r = (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(serde_json::json!({"message": "Too Many Attempts."})),
        )
            .into_response();
        r.headers_mut().insert("retry-after", HeaderValue::from(secs));
        r.headers_mut().insert("x-ratelimit-remaining", HeaderValue::from(0));
        r
    } else if sb.options.fail_rate > 0.0 && fastrand::f64() < sb.options.fail_rate {
        fault()
    } else {
        let response = next.run(request).await;
        if !half.is_zero() {
            tokio::time::sleep(half).await;
        }
        response
    };
    let mut response = response;
    if path.starts_with("/api/") {
        // Plannr sends its remaining budget on every response.
        let (remaining, resets_in) = match sb.options.rate_limit {
            Some(limit) => sb
                .state
                .lock()
                .map(|s| (s.window.remaining(limit), s.window.resets_in(Instant::now(), limit)))
                .unwrap_or((0, std::time::Duration::ZERO)),
            None => (500, std::time::Duration::ZERO),
        };
        response.headers_mut().insert("x-ratelimit-remaining", HeaderValue::from(remaining));
        if remaining == 0 {
            // Laravel's reset: the Unix time the window ends.
            let at = std::time::SystemTime::now() + resets_in;
            let secs = at
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64().ceil() as u64)
                .unwrap_or(0);
            response.headers_mut().insert("x-ratelimit-reset", HeaderValue::from(secs));
        }
    }
    let status = response.status().as_u16();
    if let Ok(mut s) = sb.state.lock() {
        let at_ms = now.duration_since(sb.started).as_millis() as u64;
        s.requests.push(RequestLog { at_ms, method, path, status, authorized });
    }
    response
}

/// One of the failures real CRMs produce, chosen at random; none has any effect.
fn fault() -> Response {
    match fastrand::u8(0..3) {
        0 => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "text/html")],
            "<html><body><h1>500 Internal Server Error</h1></body></html>",
        )
            .into_response(),
        1 => {
            let mut r =
                (StatusCode::SERVICE_UNAVAILABLE, "<html><body>Service Unavailable</body></html>")
                    .into_response();
            r.headers_mut().insert("retry-after", HeaderValue::from(1));
            r
        }
        _ => {
            // A body that breaks off: the client sees the connection reset mid-response.
            let chunks = futures::stream::iter(vec![
                Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"{\"Code\":")),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "connection reset by sandbox",
                )),
            ]);
            let mut r = Response::new(Body::from_stream(chunks));
            r.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
            r
        }
    }
}
