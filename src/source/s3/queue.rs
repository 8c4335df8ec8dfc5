//! SQS discovery (`queue_url`): S3 event notifications name new objects, so a bucket of any
//! size is not listed to find them. Each message is kept invisible to other replicas while
//! its object is worked on here, and deleted once the object is finished; a message about
//! another bucket, prefix or pattern, a removal, or an object already gone is deleted
//! without sending anything.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_sqs::Client;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::secret::redact_url;

/// How long a received message stays invisible; renewed every third of it while its
/// object is worked on.
pub const VISIBILITY: Duration = Duration::from_secs(120);
/// Long-poll wait per receive.
const LONG_POLL_SECS: i32 = 20;
/// A message whose object another replica holds comes back this soon, to be checked again.
pub const RECHECK: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Queue {
    pub client: Client,
    pub url: String,
}

/// One object an event names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub bucket: String,
    /// URL-decoded.
    pub key: String,
    pub created: bool,
}

/// A received message, shared by the objects it names: deleted when the last of them is
/// finished; left to come back when one is not.
pub struct Notice {
    queue: Queue,
    receipt: String,
    pending: AtomicUsize,
    keep: AtomicBool,
    /// Stops the visibility renewer.
    done: CancellationToken,
}

impl Drop for Notice {
    fn drop(&mut self) {
        self.done.cancel();
    }
}

impl Notice {
    /// A message with `objects` objects to finish; its visibility is renewed until then.
    pub fn new(queue: &Queue, receipt: &str, objects: usize) -> std::sync::Arc<Self> {
        let done = CancellationToken::new();
        tokio::spawn(renew(queue.clone(), receipt.to_string(), done.clone()));
        std::sync::Arc::new(Self {
            queue: queue.clone(),
            receipt: receipt.to_string(),
            pending: AtomicUsize::new(objects),
            keep: AtomicBool::new(false),
            done,
        })
    }

    /// One of its objects is finished (or needs nothing): the last one deletes the message.
    pub async fn finished(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 && !self.keep.load(Ordering::Acquire) {
            self.done.cancel();
            self.queue.delete(&self.receipt).await;
        }
    }

    /// One of its objects was not finished here: the message comes back after `after`.
    pub async fn put_back(&self, after: Duration) {
        self.keep.store(true, Ordering::Release);
        self.done.cancel();
        self.queue.hide(&self.receipt, after).await;
    }
}

/// Keeps a message invisible while its objects are worked on.
async fn renew(queue: Queue, receipt: String, done: CancellationToken) {
    loop {
        tokio::select! {
            _ = done.cancelled() => return,
            _ = tokio::time::sleep(VISIBILITY / 3) => queue.hide(&receipt, VISIBILITY).await,
        }
    }
}

/// A received message: its receipt and the objects it names (`None`: not an S3 event).
pub struct Received {
    pub id: String,
    pub receipt: String,
    pub events: Option<Vec<Event>>,
}

impl Queue {
    /// Long-polls for up to `max` messages (1..=10).
    pub async fn receive(&self, max: i32) -> Result<Vec<Received>, String> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10))
            .wait_time_seconds(LONG_POLL_SECS)
            .visibility_timeout(VISIBILITY.as_secs() as i32)
            .send()
            .await
            .map_err(|e| {
                let full = aws_sdk_sqs::error::DisplayErrorContext(&e).to_string();
                format!(
                    "cannot receive from {}: {}",
                    redact_url(&self.url),
                    full.replace('\n', " ")
                )
            })?;
        Ok(out
            .messages()
            .iter()
            .filter_map(|m| {
                Some(Received {
                    id: m.message_id().unwrap_or_default().to_string(),
                    receipt: m.receipt_handle()?.to_string(),
                    events: parse(m.body().unwrap_or_default()),
                })
            })
            .collect())
    }

    /// One harmless call, for `check --connect`.
    pub async fn probe(&self) -> Result<(), String> {
        self.client.get_queue_attributes().queue_url(&self.url).send().await.map(|_| ()).map_err(
            |e| {
                let full = aws_sdk_sqs::error::DisplayErrorContext(&e).to_string();
                format!("{}: {}", redact_url(&self.url), full.replace('\n', " "))
            },
        )
    }

    pub async fn delete(&self, receipt: &str) {
        let sent =
            self.client.delete_message().queue_url(&self.url).receipt_handle(receipt).send().await;
        if let Err(e) = sent {
            let e = aws_sdk_sqs::error::DisplayErrorContext(&e).to_string().replace('\n', " ");
            tracing::warn!(queue = %redact_url(&self.url), error = %e, "could not delete a message; it comes back and is found finished");
        }
    }

    /// Makes a message invisible for `after` from now.
    async fn hide(&self, receipt: &str, after: Duration) {
        let sent = self
            .client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(after.as_secs() as i32)
            .send()
            .await;
        if let Err(e) = sent {
            let e = aws_sdk_sqs::error::DisplayErrorContext(&e).to_string().replace('\n', " ");
            tracing::debug!(queue = %redact_url(&self.url), error = %e, "could not change a message's visibility");
        }
    }
}

#[derive(Deserialize)]
struct Notification {
    #[serde(rename = "Records", default)]
    records: Option<Vec<Record>>,
    /// `s3:TestEvent`, sent once when the notification is set up.
    #[serde(rename = "Event")]
    event: Option<String>,
    /// Through SNS: the S3 event is the `Message` string.
    #[serde(rename = "Message")]
    message: Option<String>,
}

#[derive(Deserialize)]
struct Record {
    #[serde(rename = "eventName", default)]
    event_name: String,
    s3: RecordS3,
}

#[derive(Deserialize)]
struct RecordS3 {
    bucket: Named,
    object: Key,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
struct Key {
    key: String,
}

/// The objects an S3 event message names (an SNS envelope unwrapped); `Some(vec![])` for
/// a test event, `None` when the body is no S3 event at all.
pub fn parse(body: &str) -> Option<Vec<Event>> {
    let n: Notification = serde_json::from_str(body).ok()?;
    if let Some(inner) = n.message.filter(|_| n.records.is_none()) {
        return parse(&inner);
    }
    if n.event.is_some_and(|e| e == "s3:TestEvent") {
        return Some(Vec::new());
    }
    let records = n.records?;
    Some(
        records
            .into_iter()
            .map(|r| Event {
                bucket: r.s3.bucket.name,
                key: decode_key(&r.s3.object.key),
                created: r.event_name.starts_with("ObjectCreated"),
            })
            .collect(),
    )
}

/// `scheme://host:port` of a queue URL.
pub fn origin(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    let host = u.host_str()?;
    Some(match u.port() {
        Some(port) => format!("{}://{host}:{port}", u.scheme()),
        None => format!("{}://{host}", u.scheme()),
    })
}

/// Event keys are form-encoded: `+` is a space, `%2B` a plus.
fn decode_key(key: &str) -> String {
    let spaced = key.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_events_are_read_with_their_keys_decoded() {
        let body = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"drop"},"object":{"key":"in/Client+List+%282%29+%2B+more.csv","size":10,"eTag":"x"}}}]}"#;
        let events = parse(body).unwrap();
        assert_eq!(
            events,
            [Event {
                bucket: "drop".into(),
                key: "in/Client List (2) + more.csv".into(),
                created: true
            }]
        );
        let removed = body.replace("ObjectCreated:Put", "ObjectRemoved:Delete");
        assert!(!parse(&removed).unwrap()[0].created);
        let sns = serde_json::json!({"Type": "Notification", "Message": body}).to_string();
        assert_eq!(parse(&sns).unwrap(), events);
        assert_eq!(parse(r#"{"Service":"Amazon S3","Event":"s3:TestEvent"}"#), Some(vec![]));
        assert_eq!(parse("not json"), None);
    }

    #[test]
    fn a_queue_is_served_from_its_own_origin() {
        let url = "http://elasticmq:9324/000000000000/drops";
        assert_eq!(origin(url).as_deref(), Some("http://elasticmq:9324"));
        let aws = "https://sqs.eu-west-2.amazonaws.com/123456789012/drops";
        assert_eq!(origin(aws).as_deref(), Some("https://sqs.eu-west-2.amazonaws.com"));
    }
}
