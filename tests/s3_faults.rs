//! The S3 source where the network and other writers interfere (issue [1/7]): read faults
//! (a reset in the first 64 KiB, `503 SlowDown` on GetObject, a reset during a workbook
//! download) are read through; a delete that fails after its copy leaves one archived copy;
//! an object overwritten while it is imported keeps its new version for its own import.
//! A real S3 server (moto) behind a fault-injecting proxy on loopback.

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

mod common;

use std::time::Duration;

use common::faults::{Fault, FaultProxy};
use common::moto::{self, s3_config, Moto, AWS_ENV};
use common::*;
use crm_ingest::sandbox::SandboxOptions;

const BUCKET: &str = "drop";

async fn keys_when(c: &aws_sdk_s3::Client, prefix: &str, n: usize, limit: Duration) -> Vec<String> {
    moto::wait_for_keys(c, BUCKET, prefix, n, limit).await
}

/// A CSV of `rows` rows over ~300 KiB: bigger than the 64 KiB sniffed before the header.
fn long_rows(prefix: &str, rows: usize) -> String {
    clean_rows(prefix, rows).replace(
        ",UK>North,\n",
        ",UK>North,a note that makes each row a good deal longer than it would be\n",
    )
}

fn assert_each_once(received: &std::collections::BTreeMap<String, u64>, codes: &[String]) {
    let wrong: Vec<_> = codes.iter().filter(|c| received.get(*c) != Some(&1)).collect();
    assert!(wrong.is_empty(), "not received exactly once: {} of {}", wrong.len(), codes.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_down_and_a_reset_in_the_first_64_kib_are_read_through() {
    let Some(moto) = Moto::start_or_skip().await else { return };
    let c = moto.bucket(BUCKET).await;
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let proxy = FaultProxy::start(&moto.endpoint).await;
    // More SlowDowns than the SDK's own three attempts, then a reset 10 KB into the body.
    proxy.add("GET", "/drop/incoming/big.csv", Fault::SlowDown, 4);
    proxy.add("GET", "/drop/incoming/big.csv", Fault::Reset { after: 10_000 }, 1);
    let dir = tempfile::tempdir().unwrap();
    let cfg = s3_config(dir.path(), &sb.url, &proxy.endpoint, "");
    let rows = 3000;
    moto::put(&c, BUCKET, "incoming/big.csv", long_rows("R", rows)).await;
    let daemon = Daemon::start_with(&cfg, AWS_ENV);
    let done = keys_when(&c, "incoming/processed/", 1, Duration::from_secs(90)).await;
    let (code, _, log) = daemon.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(done, ["incoming/processed/big.csv"], "{log}");
    assert!(moto::keys(&c, BUCKET, "incoming/failed/").await.is_empty());
    assert_eq!(proxy.injected().len(), 5, "every fault happened: {:?}", proxy.injected());
    assert_each_once(&sb.received().await, &codes("R", rows));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_during_a_workbook_download_is_read_through() {
    let Some(moto) = Moto::start_or_skip().await else { return };
    let c = moto.bucket(BUCKET).await;
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let proxy = FaultProxy::start(&moto.endpoint).await;
    proxy.add("GET", "/drop/incoming/book.xlsx", Fault::Reset { after: 2_000 }, 2);
    let dir = tempfile::tempdir().unwrap();
    let cfg = s3_config(dir.path(), &sb.url, &proxy.endpoint, "");
    let n = 2000;
    let mut rows = vec![vec!["Code".to_string(), "Name".into(), "Email".into()]];
    rows.extend(
        (0..n).map(|i| vec![format!("X{i}"), format!("Client {i}"), format!("x{i}@example.com")]),
    );
    let book = crm_ingest::sandbox::xlsx::write(&rows).unwrap();
    assert!(book.len() > 4_000, "the resets land inside the download: {}", book.len());
    moto::put(&c, BUCKET, "incoming/book.xlsx", book).await;
    let daemon = Daemon::start_with(&cfg, AWS_ENV);
    let done = keys_when(&c, "incoming/processed/", 1, Duration::from_secs(60)).await;
    let (code, _, log) = daemon.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(done, ["incoming/processed/book.xlsx"], "{log}");
    assert_eq!(proxy.injected().len(), 2, "{:?}", proxy.injected());
    assert_each_once(&sb.received().await, &codes("X", n));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_that_keeps_failing_waits_for_another_pass_and_never_goes_to_failed() {
    let Some(moto) = Moto::start_or_skip().await else { return };
    let c = moto.bucket(BUCKET).await;
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let proxy = FaultProxy::start(&moto.endpoint).await;
    // Every GET of a whole read's tries breaks off right after the answer's head.
    proxy.add("GET", "/drop/incoming/flaky.csv", Fault::Reset { after: 0 }, 6);
    let dir = tempfile::tempdir().unwrap();
    let cfg = s3_config(dir.path(), &sb.url, &proxy.endpoint, "");
    moto::put(&c, BUCKET, "incoming/flaky.csv", long_rows("F", 500)).await;
    let daemon = Daemon::start_with(&cfg, AWS_ENV);
    let done = keys_when(&c, "incoming/processed/", 1, Duration::from_secs(90)).await;
    let (code, _, log) = daemon.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(done, ["incoming/processed/flaky.csv"], "{log}");
    assert!(log.contains("the source connection broke"), "the first read gave up: {log}");
    assert!(moto::keys(&c, BUCKET, "incoming/failed/").await.is_empty(), "{log}");
    assert_each_once(&sb.received().await, &codes("F", 500));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delete_that_fails_after_its_copy_leaves_one_archived_copy() {
    let Some(moto) = Moto::start_or_skip().await else { return };
    let c = moto.bucket(BUCKET).await;
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let proxy = FaultProxy::start(&moto.endpoint).await;
    proxy.add("DELETE", "/drop/incoming/one.csv", Fault::AccessDenied, 1);
    let dir = tempfile::tempdir().unwrap();
    let cfg = s3_config(dir.path(), &sb.url, &proxy.endpoint, "");
    moto::put(&c, BUCKET, "incoming/one.csv", clean_rows("O", 20)).await;
    let daemon = Daemon::start_with(&cfg, AWS_ENV);
    let gone = wait_until_async(Duration::from_secs(60), || {
        let k = futures::executor::block_on(moto::keys(&c, BUCKET, "incoming/"));
        !k.contains(&"incoming/one.csv".to_string())
    })
    .await;
    // A few more polls, to see that nothing else is copied.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (code, _, log) = daemon.terminate();
    assert!(gone, "{log}");
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(proxy.injected().len(), 1, "the delete failed once: {log}");
    assert_eq!(moto::keys(&c, BUCKET, "incoming/processed/").await, ["incoming/processed/one.csv"]);
    assert_each_once(&sb.received().await, &codes("O", 20));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_object_overwritten_while_imported_has_its_new_version_imported_too() {
    let Some(moto) = Moto::start_or_skip().await else { return };
    let c = moto.bucket(BUCKET).await;
    let sb = TestSandbox::start(SandboxOptions {
        latency: Duration::from_millis(40),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = s3_config(dir.path(), &sb.url, &moto.endpoint, "");
    moto::put(&c, BUCKET, "incoming/weekly.csv", clean_rows("V1-", 300)).await;
    let daemon = Daemon::start_with(&cfg, AWS_ENV);
    let started = wait_received(&sb, 25, Duration::from_secs(30)).await;
    assert!(started, "{}", daemon.log());
    // A new version while the first is being imported.
    moto::put(&c, BUCKET, "incoming/weekly.csv", clean_rows("V2-", 300)).await;
    let both = wait_until_async(Duration::from_secs(90), || {
        let r = futures::executor::block_on(sb.received());
        let k = futures::executor::block_on(moto::keys(&c, BUCKET, "incoming/"));
        r.len() >= 600 && !k.contains(&"incoming/weekly.csv".to_string())
    })
    .await;
    let (code, _, log) = daemon.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(both, "{log}");
    assert!(log.contains("the object was replaced while it was imported"), "{log}");
    let received = sb.received().await;
    assert_each_once(&received, &codes("V1-", 300));
    assert_each_once(&received, &codes("V2-", 300));
    let archived = moto::keys(&c, BUCKET, "incoming/processed/").await;
    assert_eq!(archived, ["incoming/processed/weekly.csv"]);
    let body = moto::get(&c, BUCKET, "incoming/processed/weekly.csv").await;
    assert!(
        String::from_utf8(body).unwrap().contains("V2-0,"),
        "the version archived is the one imported last"
    );
}
