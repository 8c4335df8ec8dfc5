//! Receivers of notifications for the tests: an HTTP one (webhooks and Slack) on
//! 127.0.0.1 that records every request and can refuse the first few, and a tiny SMTP server
//! that takes messages the way a mail relay would.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
    /// What the receiver answered.
    pub status: u16,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }
}

#[derive(Clone, Default)]
struct Shared {
    seen: Arc<Mutex<Vec<Received>>>,
    /// Requests still to refuse with 500.
    refuse: Arc<Mutex<u32>>,
}

pub struct Receiver {
    pub url: String,
    shared: Shared,
    stop: CancellationToken,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Receiver {
    /// Listens on `addr` (`127.0.0.1:0` for any port); the first `refuse` requests get 500.
    pub async fn start(addr: &str, refuse: u32) -> Self {
        let shared = Shared { refuse: Arc::new(Mutex::new(refuse)), ..Default::default() };
        let app = axum::Router::new().fallback(record).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let until = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { until.cancelled().await })
                .await
                .unwrap();
        });
        Self { url, shared, stop }
    }

    pub fn seen(&self) -> Vec<Received> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// The bodies answered 2xx on `path`.
    pub fn accepted(&self, path: &str) -> Vec<serde_json::Value> {
        self.seen()
            .iter()
            .filter(|r| r.path == path && r.status < 300)
            .map(Received::json)
            .collect()
    }
}

async fn record(State(s): State<Shared>, uri: Uri, headers: HeaderMap, body: Bytes) -> StatusCode {
    let status = {
        let mut refuse = s.refuse.lock().unwrap();
        if *refuse > 0 {
            *refuse -= 1;
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        }
    };
    let headers = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    s.seen.lock().unwrap().push(Received {
        path: uri.path().to_string(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        status: status.as_u16(),
    });
    status
}

/// A mail relay that says yes to everything and keeps each message's envelope and data.
pub struct SmtpReceiver {
    pub port: u16,
    pub messages: Arc<Mutex<Vec<Mail>>>,
    stop: CancellationToken,
}

#[derive(Debug, Clone, Default)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
    /// The `AUTH` line's argument, if the client signed in.
    pub auth: Option<String>,
}

impl Drop for SmtpReceiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl SmtpReceiver {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let messages: Arc<Mutex<Vec<Mail>>> = Arc::default();
        let stop = CancellationToken::new();
        let (kept, until) = (messages.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = until.cancelled() => return,
                    a = listener.accept() => a,
                };
                let Ok((socket, _)) = accepted else { continue };
                let kept = kept.clone();
                tokio::spawn(async move {
                    let _ = session(socket, kept).await;
                });
            }
        });
        Self { port, messages, stop }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.messages.lock().unwrap().clone()
    }
}

/// One SMTP session (RFC 5321's happy path, with AUTH PLAIN).
async fn session(
    socket: tokio::net::TcpStream,
    kept: Arc<Mutex<Vec<Mail>>>,
) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 test relay ESMTP\r\n").await?;
    let mut mail = Mail::default();
    while let Some(line) = lines.next_line().await? {
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-test relay\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("AUTH PLAIN") {
            mail.auth = Some(line[10..].trim().to_string());
            b"235 2.7.0 ok\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            mail.from = line[10..].trim().to_string();
            b"250 ok\r\n"
        } else if upper.starts_with("RCPT TO:") {
            mail.to.push(line[8..].trim().to_string());
            b"250 ok\r\n"
        } else if upper == "DATA" {
            write.write_all(b"354 go ahead\r\n").await?;
            while let Some(data) = lines.next_line().await? {
                if data == "." {
                    break;
                }
                mail.data.push_str(&data);
                mail.data.push('\n');
            }
            kept.lock().unwrap().push(std::mem::take(&mut mail));
            b"250 queued\r\n"
        } else if upper == "QUIT" {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            b"250 ok\r\n"
        };
        write.write_all(reply).await?;
    }
    Ok(())
}
