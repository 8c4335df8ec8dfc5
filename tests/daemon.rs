//! `crm-ingest run`: the real binary watching a real folder, stopped by a real SIGTERM.

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

mod common;

use std::time::Duration;

use common::*;
use crm_ingest::sandbox::SandboxOptions;

#[tokio::test(flavor = "multi_thread")]
async fn picks_up_files_files_them_away_and_stops_on_sigterm() {
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new(&sb.url));
    let inbox = dir.path().join("inbox");
    // One file present before start, one written as .part and renamed, one garbage, one empty,
    // one whose header lacks a mapped column, and files that must be ignored.
    std::fs::write(inbox.join("first.csv"), clean_rows("A", 25)).unwrap();
    let daemon = Daemon::start(&config);
    std::fs::write(inbox.join("second.csv.part"), clean_rows("B", 15)).unwrap();
    std::fs::write(inbox.join(".hidden.csv"), clean_rows("H", 3)).unwrap();
    std::fs::write(inbox.join("notes.md"), "not a csv").unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    std::fs::rename(inbox.join("second.csv.part"), inbox.join("second.csv")).unwrap();
    std::fs::write(inbox.join("garbage.csv"), [0u8, 159, 146, 150, 255, 0, 1, 2]).unwrap();
    std::fs::write(inbox.join("empty.csv"), "").unwrap();
    std::fs::write(inbox.join("wrong-header.csv"), "Name,Email\nx,y@example.com\n").unwrap();
    // A gzip cut off in the middle: the rows before the cut arrive, the file goes to failed/.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, clean_rows("Z", 3000).as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    std::fs::write(inbox.join("truncated.csv.gz"), &gz[..gz.len() / 2]).unwrap();

    let done = wait_until_async(Duration::from_secs(20), || {
        files_in(&inbox.join("processed")).len() + files_in(&inbox.join("failed")).len() == 6
    })
    .await;
    assert!(
        done,
        "processed: {:?} failed: {:?} inbox: {:?}",
        files_in(&inbox.join("processed")),
        files_in(&inbox.join("failed")),
        files_in(&inbox)
    );
    let (code, _, err) = daemon.terminate();
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("shutdown_timeout reached"), "nothing was in flight to wait for: {err}");

    assert_eq!(files_in(&inbox.join("processed")), vec!["first.csv", "second.csv"]);
    assert_eq!(
        files_in(&inbox.join("failed")),
        vec!["empty.csv", "garbage.csv", "truncated.csv.gz", "wrong-header.csv"]
    );
    assert_eq!(
        files_in(&inbox),
        vec![".hidden.csv", "notes.md"],
        "ignored files stay (`*.txt` is a default pattern now: Excel's Unicode Text)"
    );
    let mut want = codes("A", 25);
    want.extend(codes("B", 15));
    let received = sb.received().await;
    assert!(want.iter().all(|c| received.get(c) == Some(&1)));
    let truncated = summary(&inbox.join("reports/truncated.summary.json"));
    let read = truncated["rows"]["read"].as_u64().unwrap();
    assert!(read > 0 && read < 3000, "rows before the cut are read: {truncated}");
    assert_eq!(truncated["rows"]["accepted"].as_u64().unwrap(), read);
    assert!(
        truncated["error"].as_str().unwrap().contains("reading stopped after line"),
        "{truncated}"
    );
    assert_eq!(received.len() as u64, 40 + read, "the rows before the cut arrived");

    let reports = inbox.join("reports");
    for failed in ["empty", "garbage", "wrong-header"] {
        let s = summary(&reports.join(format!("{failed}.summary.json")));
        assert!(s["error"].is_string(), "{failed}: {s}");
    }
    assert!(summary(&reports.join("wrong-header.summary.json"))["error"]
        .as_str()
        .unwrap()
        .contains("`Code`"));
    assert!(summary(&reports.join("garbage.summary.json"))["error"]
        .as_str()
        .unwrap()
        .contains("binary"));
    assert_eq!(summary(&reports.join("second.summary.json"))["rows"]["accepted"], 15);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode =
            std::fs::metadata(reports.join("first.summary.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "reports hold personal data");
    }
    // JSON logs carry the pipeline and file.
    assert!(
        err.lines().any(|l| l.contains("\"file\":\"first.csv\"") && l.contains("file done")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_name_dropped_twice_keeps_both_files_and_reports() {
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new(&sb.url));
    let inbox = dir.path().join("inbox");
    let daemon = Daemon::start(&config);
    std::fs::write(inbox.join("weekly.csv"), clean_rows("W", 3)).unwrap();
    assert!(
        wait_until_async(Duration::from_secs(15), || files_in(&inbox.join("processed")).len() == 1)
            .await
    );
    std::fs::write(inbox.join("weekly.csv"), clean_rows("V", 4)).unwrap();
    assert!(
        wait_until_async(Duration::from_secs(15), || files_in(&inbox.join("processed")).len() == 2)
            .await
    );
    let (code, _, err) = daemon.terminate();
    assert_eq!(code, Some(0), "{err}");
    let processed = files_in(&inbox.join("processed"));
    assert!(processed.contains(&"weekly.csv".to_string()));
    assert!(
        processed
            .iter()
            .any(|n| n.starts_with("weekly.") && n.ends_with(".csv") && n != "weekly.csv"),
        "{processed:?}"
    );
    let summaries: Vec<String> = files_in(&inbox.join("reports"))
        .into_iter()
        .filter(|n| n.ends_with(".summary.json"))
        .collect();
    assert_eq!(summaries.len(), 2, "{summaries:?}");
    assert_eq!(sb.received().await.len(), 7);
}
