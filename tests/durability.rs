//! Nothing lost, nothing twice: `kill -9` at several moments, SIGTERM drain, SIGHUP reloads,
//! the same file dropped twice. The real binary against the in-process sandbox.

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::*;
use crm_ingest::sandbox::SandboxOptions;

const ROWS: usize = 2000;
const BATCH: usize = 50;
const IN_FLIGHT: usize = 2;

/// 2,000 rows; every 50th has no Name (refused locally): 40 bad, 1,960 good.
fn big_file() -> (String, Vec<String>, Vec<u64>) {
    let mut s = String::from(HEADER);
    s.push('\n');
    let mut good = Vec::new();
    let mut bad_lines = Vec::new();
    for i in 0..ROWS {
        if i % 50 == 7 {
            s.push_str(&format!("K{i},,yes,k{i}@example.com,,,\n"));
            bad_lines.push(i as u64 + 2);
        } else {
            s.push_str(&format!("K{i},Client {i},yes,k{i}@example.com,07700 9{i:05},UK>North,\n"));
            good.push(format!("K{i}"));
        }
    }
    (s, good, bad_lines)
}

/// A fresh folder and config for `sb` with batches of [`BATCH`], [`IN_FLIGHT`] at once.
fn slow_config(
    sb: &TestSandbox,
    shutdown_timeout: &'static str,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = ConfigOptions::new(&sb.url);
    opts.max_rows = BATCH;
    opts.max_in_flight = IN_FLIGHT;
    opts.shutdown_timeout = shutdown_timeout;
    let config = write_config(dir.path(), &opts);
    (dir, config)
}

/// A sandbox with 40 ms latency and the 2,000-row file dropped into a fresh inbox.
async fn slow_import(
    shutdown_timeout: &'static str,
) -> (TestSandbox, tempfile::TempDir, std::path::PathBuf, Vec<String>, Vec<u64>) {
    let sb = TestSandbox::start(SandboxOptions {
        latency: Duration::from_millis(40),
        pending_polls: 2,
        ..Default::default()
    })
    .await;
    let (dir, config) = slow_config(&sb, shutdown_timeout);
    let (text, good, bad_lines) = big_file();
    std::fs::write(dir.path().join("inbox/big.csv"), text).unwrap();
    (sb, dir, config, good, bad_lines)
}

fn duplicates(received: &BTreeMap<String, u64>) -> u64 {
    received.values().map(|n| n.saturating_sub(1)).sum()
}

fn check_complete(
    dir: &Path,
    received: &BTreeMap<String, u64>,
    good: &[String],
    bad_lines: &[u64],
) {
    let lost: Vec<&String> = good.iter().filter(|c| !received.contains_key(*c)).collect();
    assert!(lost.is_empty(), "rows lost: {lost:?}");
    let reports = dir.join("inbox/reports");
    let s = summary(&reports.join("big.summary.json"));
    assert_eq!(s["rows"]["read"], ROWS as u64, "{s}");
    assert_eq!(s["rows"]["accepted"], good.len() as u64, "{s}");
    assert_eq!(s["rows"]["failed"], bad_lines.len() as u64, "{s}");
    assert_eq!(s["rows"]["unprocessed"], 0, "{s}");
    let lines: Vec<u64> =
        lines_and_stages(&reports.join("big.errors.csv")).into_iter().map(|(l, _)| l).collect();
    assert_eq!(lines, bad_lines, "each bad row reported once, in source order");
    assert!(
        files_in(&reports).iter().all(|n| !n.starts_with('.')),
        "no partial report left: {:?}",
        files_in(&reports)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_at_three_moments_loses_nothing_and_resends_at_most_max_in_flight_batches_per_kill()
{
    let (sb, dir, config, good, bad_lines) = slow_import("5s").await;

    let mut kills = 0;
    for at in [150u64, 800, 1500] {
        let daemon = Daemon::start(&config);
        let reached = wait_until_async(Duration::from_secs(60), || {
            let r = futures::executor::block_on(sb.received());
            r.len() as u64 >= at
        })
        .await;
        assert!(reached, "the import did not reach {at} rows");
        daemon.kill9();
        kills += 1;
        assert!(claimed(&dir.path().join("inbox"), "big.csv"), "killed mid-file");
    }
    let daemon = Daemon::start(&config);
    let processed = dir.path().join("inbox/processed");
    assert!(
        wait_until_async(Duration::from_secs(90), || files_in(&processed)
            .contains(&"big.csv".to_string()))
        .await,
        "the file never finished"
    );
    let (code, _, err) = daemon.terminate();
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("resuming where an earlier run stopped"), "{err}");

    let received = sb.received().await;
    let dup = duplicates(&received);
    // Creates are write-ahead recorded and at most `max_in_flight` of them are unanswered at
    // once: only those batches can be sent again after a kill.
    let bound = kills * IN_FLIGHT * BATCH;
    eprintln!("kill -9 x{kills}: rows lost 0, rows resent {dup} (bound: {bound})");
    assert!(dup as usize <= bound, "resent {dup} rows: more than max_in_flight batches per kill");
    check_complete(dir.path(), &received, &good, &bad_lines);
}

/// Starts the daemon again and stops it once `name` is in `processed/`.
async fn restart_until_filed(config: &Path, dir: &Path, name: &str) {
    let daemon = Daemon::start(config);
    let processed = dir.join("inbox/processed");
    let filed = wait_until_async(Duration::from_secs(90), || {
        files_in(&processed).contains(&name.to_string())
    })
    .await;
    let (code, _, log) = daemon.terminate();
    assert!(filed, "{log}");
    assert_eq!(code, Some(0), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_and_a_restart_finishes_the_file() {
    let (sb, dir, config, good, bad_lines) = slow_import("10s").await;

    let daemon = Daemon::start(&config);
    assert!(
        wait_until_async(Duration::from_secs(60), || futures::executor::block_on(sb.received())
            .len()
            >= 400)
        .await
    );
    let (code, _, err) = daemon.terminate();
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("shutdown_timeout reached"), "batches in flight finished: {err}");
    assert!(err.contains("stopped before the end"), "{err}");
    let after_drain = sb.received().await.len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sb.received().await.len(), after_drain, "nothing is sent after exit");

    restart_until_filed(&config, dir.path(), "big.csv").await;
    let received = sb.received().await;
    assert_eq!(duplicates(&received), 0, "a drained shutdown resends nothing");
    check_complete(dir.path(), &received, &good, &bad_lines);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_file_dropped_twice_is_imported_once() {
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new(&sb.url));
    let inbox = dir.path().join("inbox");
    let daemon = Daemon::start(&config);
    let text = clean_rows("T", 30);
    std::fs::write(inbox.join("weekly.csv"), &text).unwrap();
    assert!(
        wait_until_async(Duration::from_secs(15), || files_in(&inbox.join("processed")).len() == 1)
            .await
    );
    std::fs::write(inbox.join("weekly.csv"), &text).unwrap();
    assert!(
        wait_until_async(Duration::from_secs(15), || files_in(&inbox.join("processed")).len() == 2)
            .await
    );
    let requests_before_exit = sb.requests().await.len();
    let (code, _, err) = daemon.terminate();
    assert_eq!(code, Some(0));
    assert!(err.contains("already imported"), "{err}");
    let received = sb.received().await;
    assert_eq!(received.len(), 30);
    assert_eq!(duplicates(&received), 0, "the second drop sent nothing");
    // 3 batches of 10: one submit and at least one poll each; the second drop added none.
    assert!(requests_before_exit <= 3 * 4, "{requests_before_exit} requests");
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_applies_a_good_config_and_keeps_the_old_one_on_a_broken_one() {
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new(&sb.url));
    let good_text = std::fs::read_to_string(&config).unwrap();
    let inbox = dir.path().join("inbox");
    let daemon = Daemon::start(&config);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A broken config: refused, logged, the old one keeps running.
    std::fs::write(&config, good_text.replace("rate_limit = \"1000/s\"", "rate_limit = \"lots\""))
        .unwrap();
    daemon.signal("-HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(inbox.join("one.csv"), clean_rows("O", 5)).unwrap();
    assert!(
        wait_until_async(Duration::from_secs(15), || files_in(&inbox.join("processed"))
            == vec!["one.csv"])
        .await
    );

    // A good config with a second pipeline on another folder (which must exist): applied.
    std::fs::create_dir_all(dir.path().join("inbox2")).unwrap();
    let second = good_text.clone()
        + &format!(
            "\n[pipelines.second]\nconnection = \"repsly\"\ntarget = \"repsly.clients\"\nsource = {{ kind = \"folder\", path = \"{}/inbox2\", settle = \"200ms\", rescan_interval = \"200ms\" }}\n[pipelines.second.fields]\nCode = \"Code\"\nName = \"Name\"\n",
            dir.path().display()
        );
    std::fs::write(&config, second).unwrap();
    daemon.signal("-HUP");
    let inbox2 = dir.path().join("inbox2");
    assert!(
        wait_until_async(Duration::from_secs(10), || inbox2.join("processed").is_dir()).await,
        "the new pipeline started"
    );
    std::fs::write(inbox2.join("two.csv"), clean_rows("Q", 4)).unwrap();
    assert!(
        wait_until_async(Duration::from_secs(15), || files_in(&inbox2.join("processed"))
            == vec!["two.csv"])
        .await
    );

    let (code, _, err) = daemon.terminate();
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("config reload refused") && err.contains("lots"), "{err}");
    assert!(err.contains("config reloaded"), "{err}");
    assert_eq!(sb.received().await.len(), 9);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_that_stops_the_daemon_every_time_is_set_aside() {
    // A CRM that never answers: no batch ever settles, so no start makes progress.
    let sb = TestSandbox::start(SandboxOptions {
        latency: Duration::from_secs(120),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new(&sb.url));
    let inbox = dir.path().join("inbox");
    std::fs::write(inbox.join("stuck.csv"), clean_rows("X", 20)).unwrap();
    for _ in 0..3 {
        let daemon = Daemon::start(&config);
        let claimed = wait_until_async(Duration::from_secs(10), || {
            claimed(&inbox, "stuck.csv") && daemon.log().contains("claimed")
        })
        .await;
        assert!(claimed);
        tokio::time::sleep(Duration::from_millis(500)).await;
        daemon.kill9();
    }
    let daemon = Daemon::start(&config);
    let aside =
        wait_until_async(Duration::from_secs(10), || inbox.join("failed/stuck.csv").exists()).await;
    let (_, _, log) = daemon.terminate();
    assert!(aside, "{log}");
    let s = summary(&inbox.join("reports/stuck.summary.json"));
    let error = s["error"].as_str().unwrap();
    assert!(error.contains("3 times in a row without progress"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_warnings_report_survives_a_sigterm_and_the_resume() {
    // Every 50th row is saved with a warning: some before the stop, some after it.
    let sb = TestSandbox::start(SandboxOptions {
        latency: Duration::from_millis(40),
        real: crm_ingest::sandbox::RealApi {
            repsly_warn: Some("Odd".into()),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let (dir, config) = slow_config(&sb, "10s");
    let mut text = String::from(HEADER);
    text.push('\n');
    let mut warned = Vec::new();
    for i in 0..ROWS {
        let note = if i % 50 == 3 { "Odd one" } else { "" };
        text.push_str(&format!("W{i},Client {i},yes,w{i}@example.com,,,{note}\n"));
        if !note.is_empty() {
            warned.push(i as u64 + 2);
        }
    }
    std::fs::write(dir.path().join("inbox/warned.csv"), text).unwrap();
    let daemon = Daemon::start(&config);
    assert!(wait_received(&sb, 600, Duration::from_secs(60)).await);
    let (code, _, err) = daemon.terminate();
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("stopped before the end"), "stopped mid-file: {err}");
    restart_until_filed(&config, dir.path(), "warned.csv").await;
    let reports = dir.path().join("inbox/reports");
    let lines: Vec<u64> = lines_and_stages(&reports.join("warned.warnings.csv"))
        .into_iter()
        .map(|(l, _)| l)
        .collect();
    assert_eq!(lines, warned, "every warning once, those from before the stop included");
    assert_eq!(summary(&reports.join("warned.summary.json"))["rows"]["warned"], warned.len());
}
