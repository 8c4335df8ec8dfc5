//! SQS discovery against a real S3 and SQS server on loopback (moto): two replicas fed only
//! through the bucket's event notifications, with duplicate and foreign messages added.

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

mod common;

use std::time::{Duration, Instant};

use common::moto::{self, s3_config, Moto, AWS_ENV};
use common::*;
use crm_ingest::sandbox::SandboxOptions;

const BUCKET: &str = "drop";
const PREFIX: &str = "incoming/";

fn sqs(endpoint: &str) -> aws_sdk_sqs::Client {
    let creds = aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "tests");
    let conf = aws_sdk_sqs::config::Builder::new()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .credentials_provider(creds)
        .endpoint_url(endpoint)
        .build();
    aws_sdk_sqs::Client::from_conf(conf)
}

/// An S3 `ObjectCreated:Put` (or other) event for `key`, form-encoded as S3 sends it.
fn event(bucket: &str, key: &str, name: &str) -> String {
    let encoded: String = key
        .bytes()
        .map(|b| match b {
            b' ' => "+".to_string(),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    serde_json::json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventName": name,
        "s3": {"bucket": {"name": bucket}, "object": {"key": encoded, "size": 1, "eTag": "x"}}
    }]})
    .to_string()
}

/// Sends the bucket's `ObjectCreated` events to the queue, as an operator would set it up.
async fn notify(c: &aws_sdk_s3::Client, q: &aws_sdk_sqs::Client, url: &str) {
    use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
    let attrs = q
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    let arn =
        attrs.attributes().unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone();
    let to_queue = QueueConfiguration::builder()
        .queue_arn(arn)
        .events(Event::from("s3:ObjectCreated:*"))
        .build()
        .unwrap();
    let config = NotificationConfiguration::builder().queue_configurations(to_queue).build();
    c.put_bucket_notification_configuration()
        .bucket(BUCKET)
        .notification_configuration(config)
        .send()
        .await
        .unwrap();
}

const LISTINGS: &str = r#"crm_ingest_s3_listings_total{bucket="drop"}"#;

async fn queue_is_empty(q: &aws_sdk_sqs::Client, url: &str) -> bool {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = q
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    let attrs = out.attributes().cloned().unwrap_or_default();
    [A::ApproximateNumberOfMessages, A::ApproximateNumberOfMessagesNotVisible]
        .iter()
        .all(|a| attrs.get(a).map(String::as_str) == Some("0"))
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_fed_by_s3_events_import_each_object_once_and_empty_the_queue() {
    let Some(moto) = Moto::start_or_skip().await else { return };
    let c = moto.bucket(BUCKET).await;
    let q = sqs(&moto.endpoint);
    let url = q.create_queue().queue_name("drops").send().await.unwrap();
    let url = url.queue_url().unwrap().to_string();
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    notify(&c, &q, &url).await;
    let configs: Vec<_> = dirs
        .iter()
        .map(|d| s3_config(d.path(), &sb.url, &moto.endpoint, &format!(", queue_url = \"{url}\"")))
        .collect();
    let ops: Vec<String> = configs.iter().map(|c| with_server(c)).collect();
    let daemons: Vec<_> = configs.iter().map(|c| Daemon::start_with(c, AWS_ENV)).collect();
    // Both have made their start-up listing: from now on only the events can find objects
    // (the next listing is `rescan_interval`, 10 minutes, away).
    let started = Instant::now();
    for o in &ops {
        while count(&get(&format!("{o}/metrics")).await.1, LISTINGS) < 1 {
            assert!(started.elapsed() < Duration::from_secs(20), "no start-up listing");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let names: Vec<String> = (0..6)
        .map(|i| if i == 0 { "Client List (0).csv".into() } else { format!("c{i}.csv") })
        .collect();
    for (i, name) in names.iter().enumerate() {
        moto::put(&c, BUCKET, &format!("{PREFIX}{name}"), clean_rows(&format!("Q{i}-"), 5)).await;
    }
    moto::put(&c, BUCKET, &format!("{PREFIX}notes.md"), "not a csv").await;
    // The bucket's own notifications name each object once (and the moves, reports and
    // leases below the prefix, which are not to be taken); each is sent once more by hand.
    let mut bodies: Vec<String> = names
        .iter()
        .map(|name| event(BUCKET, &format!("{PREFIX}{name}"), "ObjectCreated:Put"))
        .collect();
    bodies.push(event("another-bucket", &format!("{PREFIX}c1.csv"), "ObjectCreated:Put"));
    bodies.push(event(BUCKET, "elsewhere/c1.csv", "ObjectCreated:Put"));
    bodies.push(event(BUCKET, &format!("{PREFIX}notes.md"), "ObjectCreated:Put"));
    bodies.push(event(BUCKET, &format!("{PREFIX}processed/old.csv"), "ObjectCreated:Copy"));
    bodies.push(event(BUCKET, &format!("{PREFIX}c2.csv"), "ObjectRemoved:Delete"));
    bodies.push(r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"drop"}"#.into());
    bodies.push("not an event".into());
    for body in bodies {
        q.send_message().queue_url(&url).message_body(body).send().await.unwrap();
    }
    let processed = format!("{PREFIX}processed/");
    let done = {
        let started = Instant::now();
        loop {
            let k = moto::keys(&c, BUCKET, &processed).await;
            if k.len() >= 6 || started.elapsed() > Duration::from_secs(60) {
                break k;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let started = Instant::now();
    while !queue_is_empty(&q, &url).await && started.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let empty = queue_is_empty(&q, &url).await;
    let mut taken = 0;
    for o in &ops {
        let m = get(&format!("{o}/metrics")).await.1;
        assert_eq!(count(&m, LISTINGS), 1, "one listing, at start: {m}");
        taken += count(&m, r#"crm_ingest_queue_messages_total{outcome="taken"}"#);
    }
    let logs: Vec<String> = daemons.into_iter().map(|d| d.terminate().2).collect();
    assert_eq!(done.len(), 6, "{done:?} {logs:?}");
    assert!(done.contains(&format!("{processed}Client List (0).csv")), "URL-decoded key: {done:?}");
    let received = sb.received().await;
    assert_eq!(received.len(), 30, "every row of the six objects");
    assert!(received.values().all(|n| *n == 1), "each Code sent once: {received:?}");
    assert!(empty, "every message deleted, foreign and duplicate ones included");
    assert_eq!(taken, 6, "each object taken once, through its event");
    let all = moto::keys(&c, BUCKET, PREFIX).await;
    assert!(all.contains(&format!("{PREFIX}notes.md")), "a foreign object is left alone");
    assert!(!all.iter().any(|k| k.contains(".leases/")), "leases released: {all:?}");
}
