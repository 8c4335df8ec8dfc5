//! The S3 source against a real S3 server on loopback (moto): pick-up, placement, pagination,
//! two daemons on one bucket, lease takeover, missing credentials.

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

mod common;

use std::time::Duration;

use common::moto::{self, s3_config, Moto, AWS_ENV};
use common::*;
use crm_ingest::sandbox::SandboxOptions;

const BUCKET: &str = "drop";
const PREFIX: &str = "incoming/";

async fn wait_for_keys(
    c: &aws_sdk_s3::Client,
    prefix: &str,
    n: usize,
    limit: Duration,
) -> Vec<String> {
    moto::wait_for_keys(c, BUCKET, prefix, n, limit).await
}

#[tokio::test(flavor = "multi_thread")]
async fn objects_are_imported_moved_and_reported() {
    let Some(moto) = Moto::start_or_skip().await else { return };
    let c = moto.bucket(BUCKET).await;
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = s3_config(dir.path(), &sb.url, &moto.endpoint, "");
    moto::put(&c, BUCKET, "incoming/good.csv", clean_rows("G", 60)).await;
    moto::put(
        &c,
        BUCKET,
        "incoming/mixed.csv",
        format!("{HEADER}\nM1,One,yes,m1@example.com,,,\nM2,,yes,m2@example.com,,,\n"),
    )
    .await;
    moto::put(&c, BUCKET, "incoming/garbage.csv", vec![0u8, 1, 2, 3]).await;
    moto::put(&c, BUCKET, "incoming/notes.md", "ignored").await;
    moto::put(&c, BUCKET, "incoming/deeper/nested.csv", clean_rows("N", 2)).await;
    let daemon = Daemon::start_with(&cfg, AWS_ENV);
    let done = wait_for_keys(&c, "incoming/processed/", 2, Duration::from_secs(30)).await;
    let failed = wait_for_keys(&c, "incoming/failed/", 1, Duration::from_secs(10)).await;
    let (code, _, err) = daemon.terminate();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(done, vec!["incoming/processed/good.csv", "incoming/processed/mixed.csv"], "{err}");
    assert_eq!(failed, vec!["incoming/failed/garbage.csv"]);
    let all = moto::keys(&c, BUCKET, PREFIX).await;
    assert!(!all.contains(&"incoming/good.csv".to_string()), "moved, not copied: {all:?}");
    assert!(
        all.contains(&"incoming/notes.md".to_string())
            && all.contains(&"incoming/deeper/nested.csv".to_string()),
        "{all:?}"
    );
    assert!(!all.iter().any(|k| k.contains(".leases/")), "leases released: {all:?}");
    let summary: serde_json::Value =
        serde_json::from_slice(&moto::get(&c, BUCKET, "incoming/reports/mixed.summary.json").await)
            .unwrap();
    assert_eq!(summary["rows"]["accepted"], 1);
    assert_eq!(summary["rows"]["failed"], 1);
    let errors =
        String::from_utf8(moto::get(&c, BUCKET, "incoming/reports/mixed.errors.csv").await)
            .unwrap();
    assert!(errors.contains("M2,,yes") && errors.contains(",3,validate,Name,"), "{errors}");
    let garbage: serde_json::Value = serde_json::from_slice(
        &moto::get(&c, BUCKET, "incoming/reports/garbage.summary.json").await,
    )
    .unwrap();
    assert!(garbage["error"].as_str().unwrap().contains("binary"), "{garbage}");
    let received = sb.received().await;
    assert_eq!(received.len(), 61);
    assert!(received.values().all(|n| *n == 1), "each row once");
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_follows_pages_past_a_thousand_keys() {
    let Some(moto) = Moto::start_or_skip().await else { return };
    let c = moto.bucket(BUCKET).await;
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = s3_config(dir.path(), &sb.url, &moto.endpoint, "");
    let puts: Vec<_> = (0..1100)
        .map(|i| {
            let c = c.clone();
            async move { moto::put(&c, BUCKET, &format!("incoming/aa-{i:04}.md"), "x").await }
        })
        .collect();
    futures::future::join_all(puts).await;
    moto::put(&c, BUCKET, "incoming/zz-last.csv", clean_rows("Z", 3)).await;
    let daemon = Daemon::start_with(&cfg, AWS_ENV);
    let done = wait_for_keys(&c, "incoming/processed/", 1, Duration::from_secs(30)).await;
    let (code, _, err) = daemon.terminate();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(done, vec!["incoming/processed/zz-last.csv"], "{err}");
    assert_eq!(sb.received().await.len(), 3);
}

/// Puts `n` objects at once-ish (moto takes about a millisecond each).
async fn put_many(c: &aws_sdk_s3::Client, keys: impl Iterator<Item = String>) {
    use futures::StreamExt;
    futures::stream::iter(keys)
        .for_each_concurrent(32, |k| {
            let c = c.clone();
            async move { moto::put(&c, BUCKET, &k, "x").await }
        })
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_costs_about_one_call_per_poll_whatever_the_archive_holds() {
    let Some(moto) = Moto::start_or_skip().await else { return };
    let c = moto.bucket(BUCKET).await;
    put_many(&c, (0..2500).map(|i| format!("{PREFIX}processed/old-{i:05}.csv"))).await;
    put_many(&c, (0..500).map(|i| format!("{PREFIX}reports/old-{i:05}.summary.json"))).await;
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = s3_config(dir.path(), &sb.url, &moto.endpoint, "");
    let ops = with_server(&cfg);
    for i in 0..3 {
        moto::put(&c, BUCKET, &format!("{PREFIX}new-{i}.csv"), clean_rows(&format!("N{i}-"), 5))
            .await;
    }
    let daemon = Daemon::start_with(&cfg, AWS_ENV);
    let done = wait_for_keys(&c, "incoming/processed/new-", 3, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, m) = get(&format!("{ops}/metrics")).await;
    let (code, _, err) = daemon.terminate();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(done.len(), 3, "{err}");
    assert_eq!(sb.received().await.len(), 15);
    let listings = count(&m, r#"crm_ingest_s3_listings_total{bucket="drop"}"#);
    let calls = count(&m, r#"crm_ingest_s3_list_calls_total{bucket="drop"}"#);
    assert!(listings >= 5, "the daemon kept polling: {m}");
    assert_eq!(calls, listings, "one LIST call per poll over 3,000 archived objects: {m}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_daemons_on_one_bucket_import_each_row_once() {
    let Some(moto) = Moto::start_or_skip().await else { return };
    let c = moto.bucket(BUCKET).await;
    let sb = TestSandbox::start(SandboxOptions {
        latency: Duration::from_millis(5),
        ..Default::default()
    })
    .await;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cfg_a = s3_config(a.path(), &sb.url, &moto.endpoint, "");
    let cfg_b = s3_config(b.path(), &sb.url, &moto.endpoint, "");
    let first = Daemon::start_with(&cfg_a, AWS_ENV);
    let second = Daemon::start_with(&cfg_b, AWS_ENV);
    for f in 0..10 {
        moto::put(
            &c,
            BUCKET,
            &format!("incoming/batch-{f}.csv"),
            clean_rows(&format!("D{f}-"), 40),
        )
        .await;
    }
    let done = wait_for_keys(&c, "incoming/processed/", 10, Duration::from_secs(60)).await;
    let (ca, _, ea) = first.terminate();
    let (cb, _, eb) = second.terminate();
    assert_eq!((ca, cb), (Some(0), Some(0)), "{ea}\n{eb}");
    assert_eq!(done.len(), 10, "{done:?}");
    let received = sb.received().await;
    assert_eq!(received.len(), 400);
    assert!(received.values().all(|n| *n == 1), "every row exactly once across both daemons");
    let took_a = ea.matches("claimed (lease taken)").count();
    let took_b = eb.matches("claimed (lease taken)").count();
    assert_eq!(took_a + took_b, 10, "each object claimed once: {took_a} + {took_b}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_lease_is_taken_over_and_a_live_one_is_respected() {
    let Some(moto) = Moto::start_or_skip().await else { return };
    let c = moto.bucket(BUCKET).await;
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = s3_config(dir.path(), &sb.url, &moto.endpoint, "");
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
            as u64;
    moto::put(&c, BUCKET, "incoming/orphan.csv", clean_rows("O", 5)).await;
    moto::put(
        &c,
        BUCKET,
        "incoming/.leases/orphan.csv",
        format!(r#"{{"owner":"dead-host","expires_at_ms":{}}}"#, now_ms - 1000),
    )
    .await;
    moto::put(&c, BUCKET, "incoming/busy.csv", clean_rows("B", 5)).await;
    moto::put(
        &c,
        BUCKET,
        "incoming/.leases/busy.csv",
        format!(r#"{{"owner":"live-host","expires_at_ms":{}}}"#, now_ms + 600_000),
    )
    .await;
    let daemon = Daemon::start_with(&cfg, AWS_ENV);
    let done = wait_for_keys(&c, "incoming/processed/", 1, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (code, _, err) = daemon.terminate();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(done, vec!["incoming/processed/orphan.csv"]);
    assert!(err.contains("taking over an expired lease"), "{err}");
    let all = moto::keys(&c, BUCKET, PREFIX).await;
    assert!(all.contains(&"incoming/busy.csv".to_string()), "a live lease is respected: {all:?}");
    assert!(all.contains(&"incoming/.leases/busy.csv".to_string()));
    assert_eq!(sb.received().await.len(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_credentials_give_one_clear_error() {
    let Some(moto) = Moto::start_or_skip().await else { return };
    moto.bucket(BUCKET).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = s3_config(dir.path(), "http://127.0.0.1:1", &moto.endpoint, "");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin())
            .args(["check", "--connect", "--config"])
            .arg(&cfg)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let line = err.lines().find(|l| l.contains("s3://")).unwrap_or_default();
    assert!(line.contains("no AWS credentials were found"), "{err}");
}

/// A TCP proxy to `upstream` that cuts the first connection carrying more than `cut_after`
/// bytes towards the client: an object download broken off mid-way.
async fn cutting_proxy(upstream: String, cut_after: u64) -> String {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cut = Arc::new(AtomicBool::new(false));
    let upstream = upstream.trim_start_matches("http://").to_string();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (upstream, cut) = (upstream.clone(), cut.clone());
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else { return };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut cr, &mut sw).await;
                });
                let mut sent = 0u64;
                let mut buf = vec![0u8; 16 * 1024];
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0 || cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    sent += n as u64;
                    if sent > cut_after && !cut.swap(true, Ordering::SeqCst) {
                        break;
                    }
                }
                up.abort();
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_broken_mid_object_resumes_without_loss_or_duplicates() {
    let Some(moto) = Moto::start_or_skip().await else { return };
    let c = moto.bucket(BUCKET).await;
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let proxy = cutting_proxy(moto.endpoint.clone(), 300 * 1024).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = s3_config(dir.path(), &sb.url, &proxy, "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace("max_rows = 25", "max_rows = 200");
    std::fs::write(&cfg, text).unwrap();
    // ~1.2 MB: the cut lands well inside the object.
    let rows = 12_000;
    let body = clean_rows("X", rows).replace(
        ",UK>North,\n",
        ",UK>North,some note text to make the rows longer than they would be\n",
    );
    moto::put(&c, BUCKET, "incoming/large.csv", body).await;
    let daemon = Daemon::start_with(&cfg, AWS_ENV);
    let done = wait_for_keys(&c, "incoming/processed/", 1, Duration::from_secs(90)).await;
    let (code, _, err) = daemon.terminate();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(done, vec!["incoming/processed/large.csv"], "{err}");
    assert!(err.contains("reading on from the byte reached"), "the cut happened: {err}");
    let received = sb.received().await;
    assert_eq!(received.len(), rows, "no row lost");
    assert!(received.values().all(|n| *n == 1), "no row sent twice");
    let summary: serde_json::Value =
        serde_json::from_slice(&moto::get(&c, BUCKET, "incoming/reports/large.summary.json").await)
            .unwrap();
    assert_eq!(summary["rows"]["read"], rows as u64);
    assert_eq!(summary["rows"]["accepted"], rows as u64);
}
