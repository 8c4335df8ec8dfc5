//! Where a watched folder meets the rest (issue [1/7]): names that clash, a `processed/` on
//! another file system or not writable, a file removed from `.processing/`, an inbox deleted
//! and made again, two daemons on one folder. The real binary on real files and mounts.

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

mod common;

use std::time::Duration;

use common::*;
use crm_ingest::sandbox::SandboxOptions;

#[tokio::test(flavor = "multi_thread")]
async fn a_long_non_ascii_name_dropped_twice_is_filed_twice_and_intake_goes_on() {
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new(&sb.url));
    let inbox = dir.path().join("inbox");
    let processed = inbox.join("processed");
    // 244 bytes of two-byte characters: a cut at a byte count lands inside one.
    let name = format!("{}.csv", "é".repeat(120));
    let daemon = Daemon::start(&config);
    std::fs::write(inbox.join(&name), clean_rows("A", 3)).unwrap();
    assert!(wait_until_async(Duration::from_secs(15), || files_in(&processed).len() == 1).await);
    // Dropped again with other rows: filed beside the first, under a stamped name.
    std::fs::write(inbox.join(&name), clean_rows("B", 3)).unwrap();
    let twice = wait_until_async(Duration::from_secs(15), || files_in(&processed).len() == 2).await;
    // Intake still works after it.
    std::fs::write(inbox.join("after.csv"), clean_rows("C", 2)).unwrap();
    let after =
        wait_until_async(Duration::from_secs(15), || processed.join("after.csv").exists()).await;
    let (code, _, log) = daemon.terminate();
    assert!(twice && after, "{:?}\n{log}", files_in(&processed));
    assert_eq!(code, Some(0), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    let filed = files_in(&processed);
    assert!(filed.contains(&name), "{filed:?}");
    let stamped = filed.iter().find(|n| n.starts_with('é') && **n != name).unwrap();
    assert!(stamped.len() <= 255 && stamped.ends_with(".csv"), "{stamped}");
    let received = sb.received().await;
    for c in codes("A", 3).iter().chain(&codes("B", 3)).chain(&codes("C", 2)) {
        assert_eq!(received.get(c), Some(&1), "{c}: {received:?}");
    }
}
