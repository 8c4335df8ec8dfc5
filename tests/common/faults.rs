//! A fault-injecting HTTP proxy on 127.0.0.1 in front of an S3 server (moto): requests pass
//! through one per connection (`Connection: close` both ways), except those a [`Rule`]
//! picks, which get a connection reset part-way through the answer's body or an S3 error
//! answer (`503 SlowDown`, `403 AccessDenied`) without reaching the server. Every request
//! is logged with when it arrived (Unix ms), so a proxy with no rules in front of the CRM
//! sandbox shows when one daemon sent what.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// The answer's head and this many bytes of its body pass, then the connection is reset.
    Reset { after: usize },
    /// `503 Slow Down` with S3's `SlowDown` error body.
    SlowDown,
    /// `403 Forbidden` with S3's `AccessDenied` error body.
    AccessDenied,
}

/// Requests with this method and path (path-style: `/bucket/key`, before any `?`) get
/// `fault`, `times` times.
#[derive(Debug, Clone)]
struct Rule {
    method: String,
    path: String,
    fault: Fault,
    times: usize,
}

#[derive(Clone)]
pub struct FaultProxy {
    pub endpoint: String,
    rules: Arc<Mutex<Vec<Rule>>>,
    /// Each fault injected: `METHOD path fault`.
    injected: Arc<Mutex<Vec<String>>>,
    /// Every request that arrived.
    log: Arc<Mutex<Vec<Arrived>>>,
}

/// A request as it arrived at the proxy.
#[derive(Debug, Clone)]
pub struct Arrived {
    /// Unix time in milliseconds.
    pub at_ms: u64,
    pub method: String,
    /// Without the query.
    pub path: String,
}

pub fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

impl FaultProxy {
    /// Listens on a free loopback port, forwarding to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let me =
            Self { endpoint, rules: Arc::default(), injected: Arc::default(), log: Arc::default() };
        let upstream = upstream.trim_start_matches("http://").to_string();
        let proxy = me.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (proxy, upstream) = (proxy.clone(), upstream.clone());
                tokio::spawn(async move { proxy.serve(client, &upstream).await });
            }
        });
        me
    }

    /// The next `times` requests `method path` (`/drop/incoming/a.csv`) get `fault`.
    pub fn add(&self, method: &str, path: &str, fault: Fault, times: usize) {
        let rule = Rule { method: method.into(), path: path.into(), fault, times };
        self.rules.lock().unwrap().push(rule);
    }

    /// Every request so far, in the order they arrived.
    pub fn arrived(&self) -> Vec<Arrived> {
        self.log.lock().unwrap().clone()
    }

    /// The faults injected so far, one line each.
    pub fn injected(&self) -> Vec<String> {
        self.injected.lock().unwrap().clone()
    }

    fn take(&self, method: &str, path: &str) -> Option<Fault> {
        let mut rules = self.rules.lock().unwrap();
        let rule =
            rules.iter_mut().find(|r| r.times > 0 && r.method == method && r.path == path)?;
        rule.times -= 1;
        let fault = rule.fault;
        self.injected.lock().unwrap().push(format!("{method} {path} {fault:?}"));
        Some(fault)
    }

    async fn serve(&self, mut client: TcpStream, upstream: &str) {
        let Some((head, rest)) = read_head(&mut client).await else { return };
        let text = String::from_utf8_lossy(&head).into_owned();
        let mut words = text.split_whitespace();
        let method = words.next().unwrap_or_default().to_string();
        let target = words.next().unwrap_or_default();
        let path = target.split('?').next().unwrap_or_default().to_string();
        let arrived = Arrived { at_ms: unix_ms(), method: method.clone(), path: path.clone() };
        self.log.lock().unwrap().push(arrived);
        let fault = self.take(&method, &path);
        let answer = match fault {
            Some(Fault::SlowDown) => Some(s3_error(503, "Slow Down", "SlowDown")),
            Some(Fault::AccessDenied) => Some(s3_error(403, "Forbidden", "AccessDenied")),
            _ => None,
        };
        if let Some(answer) = answer {
            let _ = client.write_all(answer.as_bytes()).await;
            let _ = client.shutdown().await;
            return;
        }
        let Ok(mut server) = TcpStream::connect(upstream).await else { return };
        if server.write_all(&with_close(&head)).await.is_err()
            || server.write_all(&rest).await.is_err()
        {
            return;
        }
        let cut = match fault {
            Some(Fault::Reset { after }) => Some(after),
            _ => None,
        };
        if cut.is_some() {
            // Closed with SO_LINGER 0: a reset rather than a clean end.
            let _ = client.set_zero_linger();
        }
        let (mut sr, mut sw) = server.into_split();
        let (mut cr, mut cw) = client.into_split();
        // The rest of the request body, as it comes.
        let up = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut cr, &mut sw).await;
        });
        let Some((head, mut body)) = read_head(&mut sr).await else { return };
        if cw.write_all(&with_close(&head)).await.is_err() {
            return;
        }
        let mut sent = 0usize;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            if body.is_empty() {
                match sr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => body.extend_from_slice(&buf[..n]),
                }
            }
            let take = match cut {
                Some(after) => body.len().min(after.saturating_sub(sent)),
                None => body.len(),
            };
            if cw.write_all(&body[..take]).await.is_err() {
                break;
            }
            sent += take;
            body.drain(..take);
            if cut.is_some_and(|after| sent >= after) {
                up.abort();
                let _ = up.await;
                drop(cw);
                return;
            }
        }
        let _ = cw.shutdown().await;
        up.abort();
    }
}

/// An HTTP message head (through the blank line) and whatever came after it.
async fn read_head(stream: &mut (impl AsyncReadExt + Unpin)) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = data.split_off(end + 4);
            return Some((data, rest));
        }
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    }
}

/// The head with `Connection: close` in place of any `Connection` header it had.
fn with_close(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut lines: Vec<&str> = text
        .trim_end_matches("\r\n")
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    lines.push("Connection: close");
    format!("{}\r\n\r\n", lines.join("\r\n")).into_bytes()
}

fn s3_error(status: u16, reason: &str, code: &str) -> String {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the test proxy</Message><RequestId>fault</RequestId></Error>"
    );
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}
