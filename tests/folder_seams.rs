//! Where a watched folder meets the rest (issue [1/7]): names that clash, a `processed/` on
//! another file system or not writable, a file removed from `.processing/`, an inbox deleted
//! and made again, two daemons on one folder. The real binary on real files and mounts.

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
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

/// Every regular file under `dir` (claims may sit in sub-folders), by name.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else if !e.file_name().to_string_lossy().starts_with('.') {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    out
}

/// A tmpfs mounted on a folder, unmounted when dropped; `None` (the test skips, saying why)
/// where mounting is not allowed.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount_or_skip(on: &Path) -> Option<Self> {
        std::fs::create_dir_all(on).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
            .arg(on)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: cannot mount a tmpfs here (needs root)");
            return None;
        }
        Some(Self(on.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// `chattr +i` on a folder (nothing can be renamed into it, root included), undone when
/// dropped; `None` (the test skips) where the file system or the user does not allow it.
struct Immutable(PathBuf);

impl Immutable {
    fn set_or_skip(dir: &Path) -> Option<Self> {
        let ok = Command::new("chattr").arg("+i").arg(dir).status().is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: chattr +i is not allowed here (needs root on ext4, xfs or btrfs)");
            return None;
        }
        Some(Self(dir.to_path_buf()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_processed_folder_on_another_file_system_receives_the_file() {
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new(&sb.url));
    let inbox = dir.path().join("inbox");
    let Some(_mount) = Tmpfs::mount_or_skip(&inbox.join("processed")) else { return };
    let text = clean_rows("X", 40);
    std::fs::write(inbox.join("across.csv"), &text).unwrap();
    let daemon = Daemon::start(&config);
    let moved = wait_until_async(Duration::from_secs(20), || {
        inbox.join("processed/across.csv").exists() || !files_in(&inbox.join("failed")).is_empty()
    })
    .await;
    let (code, _, log) = daemon.terminate();
    assert!(moved, "{log}");
    assert_eq!(code, Some(0), "{log}");
    assert!(files_in(&inbox.join("failed")).is_empty(), "nothing in failed/: {log}");
    assert_eq!(std::fs::read_to_string(inbox.join("processed/across.csv")).unwrap(), text);
    assert!(files_under(&inbox.join(".processing")).is_empty());
    assert!(
        files_in(&inbox.join("processed")).iter().all(|n| !n.starts_with('.')),
        "no temp copy left"
    );
    assert!(sb.received().await.values().all(|n| *n == 1));
    assert_eq!(sb.received().await.len(), 40);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_done_file_waits_in_processing_while_processed_is_not_writable() {
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new(&sb.url));
    let ops = with_server(&config);
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(inbox.join("processed")).unwrap();
    let Some(locked) = Immutable::set_or_skip(&inbox.join("processed")) else { return };
    std::fs::write(inbox.join("stuck.csv"), clean_rows("Y", 30)).unwrap();
    let daemon = Daemon::start(&config);
    let named = wait_until_async(Duration::from_secs(20), || {
        let (code, body) = futures::executor::block_on(get(&format!("{ops}/readyz")));
        code == 503 && body.contains("processed") && body.contains("stuck.csv")
    })
    .await;
    assert!(named, "/readyz names the folder: {}", daemon.log());
    assert_eq!(files_under(&inbox.join(".processing")), ["stuck.csv"]);
    assert!(files_in(&inbox.join("failed")).is_empty(), "never failed/: {}", daemon.log());
    // A kill -9 while it waits, and a restart: done is done, nothing is sent again.
    daemon.kill9();
    let daemon = Daemon::start(&config);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(files_under(&inbox.join(".processing")), ["stuck.csv"]);
    drop(locked);
    let moved =
        wait_until_async(Duration::from_secs(40), || inbox.join("processed/stuck.csv").exists())
            .await;
    let ready = wait_until_async(Duration::from_secs(10), || {
        futures::executor::block_on(get(&format!("{ops}/readyz"))).0 == 200
    })
    .await;
    let (code, _, log) = daemon.terminate();
    assert!(moved && ready, "{log}");
    assert_eq!(code, Some(0), "{log}");
    assert!(files_in(&inbox.join("failed")).is_empty(), "{log}");
    let received = sb.received().await;
    assert_eq!(received.len(), 30);
    assert!(received.values().all(|n| *n == 1), "a done file is not sent again");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_removed_from_processing_is_said_once_and_intake_goes_on() {
    let sb = TestSandbox::start(SandboxOptions {
        latency: Duration::from_millis(40),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = ConfigOptions::new(&sb.url);
    opts.max_rows = 20;
    opts.max_in_flight = 1;
    let config = write_config(dir.path(), &opts);
    let ops = with_server(&config);
    let inbox = dir.path().join("inbox");
    std::fs::write(inbox.join("big.csv"), clean_rows("B", 600)).unwrap();
    let daemon = Daemon::start(&config);
    assert!(wait_received(&sb, 40, Duration::from_secs(20)).await);
    // The operator removes it while it is being imported.
    let claimed = find_under(&inbox.join(".processing"), "big.csv").unwrap();
    std::fs::remove_file(claimed).unwrap();
    let said = wait_until_async(Duration::from_secs(60), || {
        daemon.log().contains("removed from .processing/")
    })
    .await;
    assert!(said, "{}", daemon.log());
    std::fs::write(inbox.join("next.csv"), clean_rows("N", 5)).unwrap();
    let next =
        wait_until_async(Duration::from_secs(20), || inbox.join("processed/next.csv").exists())
            .await;
    let (ready, body) = get(&format!("{ops}/readyz")).await;
    let (code, _, log) = daemon.terminate();
    assert!(next, "{log}");
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(ready, 200, "{body}");
    assert_eq!(log.matches("removed from .processing/").count(), 1, "said once: {log}");
    assert!(!log.contains("intake paused"), "{log}");
    assert!(files_in(&inbox.join("failed")).is_empty(), "{log}");
    assert!(codes("N", 5)
        .iter()
        .all(|c| futures::executor::block_on(sb.received()).get(c) == Some(&1)));
}

/// The path of the file called `name` somewhere under `dir`.
fn find_under(dir: &Path, name: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(found) = find_under(&p, name) {
                return Some(found);
            }
        } else if e.file_name() == name {
            return Some(p);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inbox_deleted_and_made_again_is_watched_again() {
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new(&sb.url));
    let ops = with_server(&config);
    let inbox = dir.path().join("inbox");
    let daemon = Daemon::start(&config);
    std::fs::write(inbox.join("before.csv"), clean_rows("P", 3)).unwrap();
    assert!(
        wait_until_async(Duration::from_secs(15), || inbox.join("processed/before.csv").exists())
            .await
    );
    std::fs::remove_dir_all(&inbox).unwrap();
    let said = wait_until_async(Duration::from_secs(10), || {
        daemon.log().contains("the inbox folder is missing")
    })
    .await;
    let (code, body) = get(&format!("{ops}/readyz")).await;
    assert!(said, "{}", daemon.log());
    assert_eq!(code, 503, "{body}");
    assert!(body.contains(&inbox.display().to_string()) && body.contains("missing"), "{body}");
    std::fs::create_dir(&inbox).unwrap();
    std::fs::write(inbox.join("after.csv"), clean_rows("Q", 3)).unwrap();
    let taken =
        wait_until_async(Duration::from_secs(15), || inbox.join("processed/after.csv").exists())
            .await;
    let (ready, _) = get(&format!("{ops}/readyz")).await;
    let (code, _, log) = daemon.terminate();
    assert!(taken, "{log}");
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(ready, 200);
    assert!(log.contains("the inbox folder is there again"), "{log}");
    assert_eq!(log.matches("the inbox folder is missing").count(), 1, "said once: {log}");
    let received = sb.received().await;
    assert!(codes("P", 3).iter().chain(&codes("Q", 3)).all(|c| received.get(c) == Some(&1)));
}
