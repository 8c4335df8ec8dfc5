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
