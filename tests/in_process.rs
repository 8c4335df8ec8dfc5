//! `daemon::run` driven in-process (no child process): thousands of files leave no task
//! behind, and one batch stalled at the CRM for a long time keeps memory flat while the
//! reader waits.

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

mod common;

use std::time::Duration;

use common::*;
use crm_ingest::sandbox::SandboxOptions;
use tokio_util::sync::CancellationToken;

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current().metrics().num_alive_tasks()
}

/// Drops `n` one-row files named `{prefix}{i}.csv` and waits until all are filed.
async fn drop_files(inbox: &std::path::Path, prefix: &str, n: usize) {
    for i in 0..n {
        let name = format!("{prefix}{i:05}.csv");
        std::fs::write(inbox.join(&name), format!("{HEADER}\n{prefix}{i},Shop {i},yes,,,,\n"))
            .unwrap();
    }
    let processed = inbox.join("processed");
    let all = wait_until_async(Duration::from_secs(120), || {
        files_in(&processed).iter().filter(|f| f.starts_with(prefix)).count() == n
    })
    .await;
    assert!(all, "{} of {n} {prefix} files filed", files_in(&processed).len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_files_leave_no_task_behind() {
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new(&sb.url));
    let settings = crm_ingest::config::load(&config).unwrap();
    let shutdown = CancellationToken::new();
    let daemon = tokio::spawn(crm_ingest::daemon::run(settings, shutdown.clone()));
    let inbox = dir.path().join("inbox");
    drop_files(&inbox, "A", 300).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_first = alive_tasks();
    drop_files(&inbox, "B", 1500).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_more = alive_tasks();
    eprintln!("alive tasks: {after_first} after 300 files, {after_more} after 1,800");
    assert!(after_more <= after_first + 5, "tasks grow with files: {after_first} -> {after_more}");
    shutdown.cancel();
    daemon.await.unwrap().unwrap();
    assert!(sb.received().await.len() == 1800);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_batch_keeps_memory_flat_while_the_others_finish() {
    let sb =
        TestSandbox::start(SandboxOptions { stall: Some("STALL".into()), ..Default::default() })
            .await;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = ConfigOptions::new(&sb.url);
    opts.max_rows = 50;
    let config = write_config(dir.path(), &opts);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("poll_interval = \"20ms\"", "poll_interval = \"20ms\"\npoll_timeout = \"1m\"");
    std::fs::write(&config, text).unwrap();
    // 300,000 rows; the 10th holds the marker that keeps its batch Pending at the CRM.
    let inbox = dir.path().join("inbox");
    let mut rows = String::from(HEADER);
    rows.push('\n');
    for i in 0..300_000 {
        let note = if i == 10 { "STALL" } else { "" };
        rows.push_str(&format!("M{i},Client {i},yes,m{i}@example.com,,UK>North,{note}\n"));
    }
    std::fs::write(inbox.join("big.csv"), rows).unwrap();
    let daemon = Daemon::start(&config);
    let pid = daemon.0.id();
    // Until the budget is used up the reader runs ahead; then it waits for the stalled batch.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let early = anon_rss_mib(pid).unwrap();
    let mut late = early;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        late = late.max(anon_rss_mib(pid).unwrap());
    }
    let received = sb.received().await.len();
    eprintln!("heap {early} MiB after 10 s, at most {late} MiB over the next 20 s; {received} rows at the CRM");
    assert!(late <= early + 8, "memory grows while a batch is stalled: {early} -> {late} MiB");
    assert!(received < 300_000, "the reader waits for the stalled batch instead of reading on");
    daemon.kill9();
}
