//! `history` against the summaries on disk, `/status` remembering finished files across a
//! restart, `history_keep`, and `retry` putting files back from `failed/` (folder and S3).

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

mod common;

use std::path::Path;
use std::time::Duration;

use common::moto::{self, Moto};
use common::*;
use crm_ingest::sandbox::SandboxOptions;

fn history(config: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["history", "--config", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = run(&args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn history_json(config: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let (code, out, err) = history(config, &args);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn retry(config: &Path, what: &str, env: &[(&str, &str)]) -> (i32, String) {
    let out = std::process::Command::new(bin())
        .args(["retry", "--config", config.to_str().unwrap(), what])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// Runs the daemon until good.csv, bad.csv and broken.csv are filed.
async fn three_files(dir: &Path, config: &Path) {
    let daemon = Daemon::start(config);
    let inbox = dir.join("inbox");
    drop_three(&inbox);
    let filed = wait_until_async(Duration::from_secs(60), || {
        files_in(&inbox.join("processed")).len() == 2 && files_in(&inbox.join("failed")).len() == 1
    })
    .await;
    assert!(filed, "{}", daemon.log());
    let (code, _, log) = daemon.terminate();
    assert_eq!(code, Some(0), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn history_matches_the_summaries_on_disk_and_survives_a_restart() {
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new(&sb.url));
    let ops = with_server(&config);
    three_files(dir.path(), &config).await;

    let entries = history_json(&config, &[]);
    assert_eq!(entries.len(), 3, "{entries:#?}");
    let reports = dir.path().join("inbox/reports");
    for e in &entries {
        let file = e["file"].as_str().unwrap();
        let stem = file.trim_end_matches(".csv");
        let on_disk = summary(&reports.join(format!("{stem}.summary.json")));
        assert_eq!(e["rows"], on_disk["rows"], "{file}");
        assert_eq!(e["summary"], on_disk, "{file}: the whole summary is kept");
        assert_eq!(e["finished_at"], on_disk["finished_at"]);
        assert_eq!(e["pipeline"], "clients");
        let report = on_disk["report"].as_str().map(|r| reports.join(r).display().to_string());
        assert_eq!(e["report"].as_str().map(String::from), report, "{file}");
        let expected = match file {
            "good.csv" => "processed",
            "bad.csv" => "rows_failed",
            _ => "failed",
        };
        assert_eq!(e["outcome"], expected, "{file}");
    }
    let times: Vec<&str> = entries.iter().map(|e| e["finished_at"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");

    let failed = history_json(&config, &["--failed"]);
    let names: Vec<&str> = failed.iter().map(|e| e["file"].as_str().unwrap()).collect();
    assert!(names.len() == 2 && !names.contains(&"good.csv"), "{names:?}");
    assert!(history_json(&config, &["--pipeline", "elsewhere"]).is_empty());
    assert_eq!(history_json(&config, &["--since", "1h"]).len(), 3);
    let (code, table, _) = history(&config, &["--pipeline", "clients"]);
    assert_eq!(code, 0);
    let header = table.lines().next().unwrap();
    for col in [
        "FINISHED",
        "PIPELINE",
        "FILE",
        "OUTCOME",
        "READ",
        "ACCEPTED",
        "FAILED",
        "UNPROCESSED",
        "REPORT",
    ] {
        assert!(header.contains(col), "{table}");
    }
    let bad_line = table.lines().find(|l| l.contains("bad.csv")).unwrap();
    assert!(bad_line.contains("rows_failed") && bad_line.contains("bad.errors.csv"), "{table}");
    let (code, _, err) = history(&config, &["--since", "soon"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--since soon"), "{err}");

    // A new daemon's /status lists what the last one finished.
    let daemon = Daemon::start(&config);
    let up = wait_until_async(Duration::from_secs(10), || {
        std::net::TcpStream::connect(ops.trim_start_matches("http://")).is_ok()
    })
    .await;
    assert!(up);
    let (_, status) = get(&format!("{ops}/status")).await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let finished = status["pipelines"]["clients"]["finished"].as_array().unwrap();
    assert_eq!(finished.len(), 3, "{status}");
    daemon.terminate();
}

#[tokio::test(flavor = "multi_thread")]
async fn history_keep_forgets_old_files() {
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new(&sb.url));
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("history_keep = \"2s\"\n{text}")).unwrap();
    three_files(dir.path(), &config).await;
    assert_eq!(history_json(&config, &[]).len(), 3);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let daemon = Daemon::start(&config);
    let pruned = wait_until(Duration::from_secs(10), || history_json(&config, &[]).is_empty());
    daemon.terminate();
    assert!(pruned, "entries older than history_keep are pruned at start");
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_puts_a_failed_file_back_into_the_folder_inbox() {
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new(&sb.url));
    three_files(dir.path(), &config).await;
    let inbox = dir.path().join("inbox");
    let entries = history_json(&config, &[]);
    let id_of = |f: &str| entries.iter().find(|e| e["file"] == f).unwrap()["id"].to_string();

    let (code, text) = retry(&config, &id_of("good.csv"), &[]);
    assert_eq!(code, 1, "a processed file has nothing to retry: {text}");
    assert!(text.contains("not in failed/"), "{text}");
    let (code, text) = retry(&config, "99999", &[]);
    assert_eq!(code, 1, "{text}");

    let (code, text) = retry(&config, &id_of("broken.csv"), &[]);
    assert_eq!(code, 0, "{text}");
    assert!(inbox.join("broken.csv").is_file(), "back in the inbox");
    assert!(files_in(&inbox.join("failed")).is_empty());
    let (code, text) = retry(&config, "broken.csv", &[]);
    assert_eq!(code, 1, "nothing left to retry: {text}");

    // Filed again by the daemon (it fails again: nothing about it changed), then retried by
    // its path in failed/.
    let daemon = Daemon::start(&config);
    let again =
        wait_until_async(Duration::from_secs(30), || files_in(&inbox.join("failed")).len() == 1)
            .await;
    daemon.terminate();
    assert!(again);
    let path = inbox.join("failed").join("broken.csv");
    let (code, text) = retry(&config, path.to_str().unwrap(), &[]);
    assert_eq!(code, 0, "{text}");
    assert!(inbox.join("broken.csv").is_file());
    assert_eq!(
        history_json(&config, &["--failed"]).iter().filter(|e| e["file"] == "broken.csv").count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_puts_a_failed_object_back_under_the_prefix() {
    let Some(moto) = Moto::start_or_skip().await else { return };
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let s3 = moto.bucket("drop").await;
    let dir = tempfile::tempdir().unwrap();
    let config = moto::s3_config(dir.path(), &sb.url, &moto.endpoint, "");
    let daemon = Daemon::start_with(&config, moto::AWS_ENV);
    moto::put(&s3, "drop", "incoming/broken.csv", "Foo,Bar\n1,2\n").await;
    let mut filed = false;
    for _ in 0..300 {
        if moto::keys(&s3, "drop", "incoming/failed/").await == ["incoming/failed/broken.csv"] {
            filed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    daemon.terminate();
    assert!(filed);
    let entries = history_json(&config, &[]);
    assert_eq!(entries[0]["report"], serde_json::Value::Null);
    let (code, text) = retry(&config, "broken.csv", moto::AWS_ENV);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("s3://drop/incoming/broken.csv"), "{text}");
    assert!(moto::keys(&s3, "drop", "incoming/failed/").await.is_empty());
    assert_eq!(moto::get(&s3, "drop", "incoming/broken.csv").await, b"Foo,Bar\n1,2\n");
    let (code, _) = retry(&config, "broken.csv", moto::AWS_ENV);
    assert_eq!(code, 1, "nothing left to retry");
}
