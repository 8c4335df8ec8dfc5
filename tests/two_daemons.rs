//! Two daemons where one is meant (issue [1/7]): on one state dir the second is refused at
//! start; on one folder with their own state dirs each keeps to its own claims. The real
//! binary, real folders, real `kill -9`.

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

mod common;

use std::time::Duration;

use common::*;
use crm_ingest::sandbox::SandboxOptions;

/// Waits for a daemon to exit by itself; `None` if it is still running after `limit`.
fn exit_within(daemon: &mut Daemon, limit: Duration) -> Option<Option<i32>> {
    let mut status = None;
    wait_until(limit, || {
        status = daemon.0.try_wait().unwrap();
        status.is_some()
    });
    status.map(|s| s.code())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_daemon_on_one_state_dir_is_refused_naming_the_dir_and_the_first_pid() {
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new(&sb.url));
    let first = Daemon::start(&config);
    assert!(
        wait_until_async(Duration::from_secs(15), || first.log().contains("crm-ingest running"))
            .await
    );
    let mut second = Daemon::start(&config);
    let exited = exit_within(&mut second, Duration::from_secs(15));
    let refused = second.log();
    drop(second);
    assert!(matches!(exited, Some(Some(c)) if c != 0), "{exited:?}: {refused}");
    let state = dir.path().join("state");
    let line = refused.lines().find(|l| l.starts_with("error:")).unwrap_or_default();
    assert!(
        line.contains(&format!("state_dir {} is in use", state.display()))
            && line.contains(&format!("pid {}", first.0.id())),
        "{refused}"
    );
    // The first one is untouched by it.
    let inbox = dir.path().join("inbox");
    std::fs::write(inbox.join("one.csv"), clean_rows("S", 5)).unwrap();
    assert!(
        wait_until_async(Duration::from_secs(15), || inbox.join("processed/one.csv").exists())
            .await
    );
    let (code, _, log) = first.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(sb.received().await.values().all(|n| *n == 1));
}

/// A second config on `first`'s inbox with its own state dir in `dir`.
fn same_folder(first: &std::path::Path, dir: &std::path::Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(first).unwrap();
    let state = first.parent().unwrap().join("state");
    let text = text.replace(
        &format!("state_dir = \"{}\"", state.display()),
        &format!("state_dir = \"{}/state\"", dir.display()),
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Daemon `A` mid-way through `name` (`rows` rows, 40 ms a request) in a folder that a
/// second config, with its own state dir, also watches: (sandbox, A's dir, B's dir, B's
/// config, A running).
async fn first_mid_file(
    name: &str,
    prefix: &str,
    rows: usize,
) -> (TestSandbox, tempfile::TempDir, tempfile::TempDir, std::path::PathBuf, Daemon) {
    let sb = TestSandbox::start(SandboxOptions {
        latency: Duration::from_millis(40),
        ..Default::default()
    })
    .await;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut opts = ConfigOptions::new(&sb.url);
    opts.max_rows = 20;
    opts.max_in_flight = 1;
    let config_a = write_config(a.path(), &opts);
    let config_b = same_folder(&config_a, b.path());
    std::fs::write(a.path().join("inbox").join(name), clean_rows(prefix, rows)).unwrap();
    let first = Daemon::start(&config_a);
    assert!(wait_received(&sb, 40, Duration::from_secs(20)).await, "{}", first.log());
    (sb, a, b, config_b, first)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_starting_on_a_shared_folder_leaves_the_other_ones_claim_alone() {
    let (sb, a, _b, config_b, first) = first_mid_file("big.csv", "A", 400).await;
    let inbox = a.path().join("inbox");
    // The second daemon starts while the first is mid-file, and stays a while.
    let second = Daemon::start(&config_b);
    let done =
        wait_until_async(Duration::from_secs(60), || inbox.join("processed/big.csv").exists())
            .await;
    let (code_b, _, log_b) = second.terminate();
    let (code_a, _, log_a) = first.terminate();
    assert!(done, "{log_a}\n{log_b}");
    assert_eq!((code_a, code_b), (Some(0), Some(0)), "{log_a}\n{log_b}");
    assert!(!log_b.contains("big.csv"), "the second daemon never touched it: {log_b}");
    let received = sb.received().await;
    assert_eq!(received.len(), 400);
    assert!(received.values().all(|n| *n == 1), "each row once");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_claim_of_a_daemon_that_is_gone_is_taken_over_and_finished() {
    let (sb, a, _b, config_b, first) = first_mid_file("orphan.csv", "O", 200).await;
    let inbox = a.path().join("inbox");
    first.kill9();
    assert!(claimed(&inbox, "orphan.csv"));
    // Its lock went with it: the next daemon to start on the folder finishes the file.
    let second = Daemon::start(&config_b);
    let done =
        wait_until_async(Duration::from_secs(60), || inbox.join("processed/orphan.csv").exists())
            .await;
    let (code, _, log) = second.terminate();
    assert!(done, "{log}");
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("taking over a file claimed by a daemon that no longer runs"), "{log}");
    let received = sb.received().await;
    assert!(codes("O", 200).iter().all(|c| received.contains_key(c)), "no row lost");
}
