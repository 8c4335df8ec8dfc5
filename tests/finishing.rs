//! A `kill -9` at each step of finishing a file, placed exactly by strace (it kills the daemon
//! on the system call that starts the step): between the final checkpoint and publishing the
//! errors report, between the report and the summary, and between the ledger and the move.
//! After a restart, every failed row is in the report, the summary names it, and no row was
//! sent twice. Needs strace (Debian package `strace`; `.ci/run` installs it).

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use crm_ingest::sandbox::SandboxOptions;

/// 200 rows, every fifth one refused locally (no Name): 40 failed rows.
fn file() -> String {
    let mut s = String::from(HEADER);
    s.push('\n');
    for i in 0..200 {
        let name = if i % 5 == 0 { String::new() } else { format!("Client {i}") };
        s.push_str(&format!("K{i},{name},yes,,,,\n"));
    }
    s
}

/// Runs the daemon under strace until the first rename of `path` kills it.
fn killed_at(config: &Path, path: &Path) {
    let status = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-P"])
        .arg(path)
        .args(["-e", "trace=rename,renameat,renameat2"])
        .args(["-e", "inject=rename,renameat,renameat2:signal=KILL:when=1"])
        .arg(bin())
        .args(["run", "--config"])
        .arg(config)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    // strace ends the way its tracee did: killed by SIGKILL.
    let killed = status.signal() == Some(9) || status.code() == Some(137);
    assert!(killed, "the daemon was killed at the step: {status:?}");
}

async fn kill_at_then_restart(step: &str) {
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new(&sb.url));
    let inbox = dir.path().join("inbox");
    // A known owner id, so the claim's path is known: `.processing/<owner-id>/k.csv`.
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    std::fs::write(dir.path().join("state/owner-id"), "test-owner").unwrap();
    std::fs::write(inbox.join("k.csv"), file()).unwrap();
    let reports = inbox.join("reports");
    let path = match step {
        "publish" => reports.join(".k.errors.csv.partial"),
        "summary" => reports.join(".k.summary.json.tmp"),
        "move" => inbox.join(".processing/test-owner/k.csv"),
        _ => unreachable!(),
    };
    let cfg = config.clone();
    tokio::task::spawn_blocking(move || killed_at(&cfg, &path)).await.unwrap();
    assert!(claimed(&inbox, "k.csv"), "killed before the file was filed");

    let daemon = Daemon::start(&config);
    let done =
        wait_until_async(Duration::from_secs(20), || inbox.join("processed/k.csv").exists()).await;
    let (code, _, log) = daemon.terminate();
    assert!(done && code == Some(0), "{step}: {log}");
    let s = summary(&reports.join("k.summary.json"));
    assert_eq!(s["rows"]["read"], 200, "{step}: {s}");
    assert_eq!(s["rows"]["failed"], 40, "{step}: {s}");
    assert_eq!(s["report"], "k.errors.csv", "{step}: the summary names its report");
    let failed = lines_and_stages(&reports.join("k.errors.csv"));
    assert_eq!(failed.len(), 40, "{step}: every failed row is in the report: {failed:?}");
    let want: Vec<u64> = (0..200).filter(|i| i % 5 == 0).map(|i| i + 2).collect();
    assert_eq!(failed.iter().map(|(l, _)| *l).collect::<Vec<_>>(), want, "{step}");
    let received = sb.received().await;
    let sent: Vec<String> = (0..200).filter(|i| i % 5 != 0).map(|i| format!("K{i}")).collect();
    assert!(
        sent.iter().all(|c| received.get(c) == Some(&1)),
        "{step}: each row sent once: {received:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_between_the_final_checkpoint_and_the_report_loses_no_failed_row() {
    if have_tool("strace", "Debian package strace") {
        kill_at_then_restart("publish").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_between_the_report_and_the_summary_leaves_a_summary_that_names_it() {
    if have_tool("strace", "Debian package strace") {
        kill_at_then_restart("summary").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_between_the_ledger_and_the_move_files_it_without_sending_again() {
    if have_tool("strace", "Debian package strace") {
        kill_at_then_restart("move").await;
    }
}
