//! `crm-ingest once` against the sandbox: every valid Code arrives exactly once, bad rows come
//! back in the report, through faults, throttling, a poisoned batch and refused credentials.

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use crm_ingest::sandbox::SandboxOptions;

async fn once(dir: &Path, config: &Path, file: &Path) -> (i32, String, String) {
    let out = run_async(vec![
        "once".into(),
        "--config".into(),
        config.display().to_string(),
        "--pipeline".into(),
        "clients".into(),
        "--report-dir".into(),
        dir.join("reports").display().to_string(),
        file.display().to_string(),
    ])
    .await;
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn exactly_once(received: &std::collections::BTreeMap<String, u64>, want: &[String]) {
    for code in want {
        assert_eq!(received.get(code), Some(&1), "Code {code} must arrive exactly once");
    }
    assert_eq!(received.len(), want.len(), "nothing else arrives: {received:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clean_file_arrives_whole_and_exits_0() {
    let sb = TestSandbox::start(SandboxOptions { pending_polls: 2, ..Default::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new(&sb.url));
    let file = dir.path().join("clean.csv");
    std::fs::write(&file, clean_rows("K", 95)).unwrap();
    let (code, out, err) = once(dir.path(), &config, &file).await;
    assert_eq!(code, 0, "{out}{err}");
    exactly_once(&sb.received().await, &codes("K", 95));
    let s = summary(&dir.path().join("reports/clean.summary.json"));
    assert_eq!(s["rows"]["accepted"], 95);
    assert_eq!(s["remote_jobs"]["count"], 10, "95 rows in batches of 10");
    assert_eq!(s["remote_jobs"]["by_status"]["Completed"], 10);
    assert!(s["remote_jobs"]["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|j| j["status"] == "Completed"));
    assert!(s["report"].is_null());
    let sent = &sb.records().await["repsly"]["clients"]["K7"];
    assert_eq!(sent["Active"], true, "booleans are sent as JSON booleans");
    assert_eq!(sent["Phone"], "+447700900007");
}

#[tokio::test(flavor = "multi_thread")]
async fn local_and_remote_failures_both_reach_the_report_in_source_order() {
    let sb =
        TestSandbox::start(SandboxOptions { poison: Some("POISON".into()), ..Default::default() })
            .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new(&sb.url));
    let mut text = clean_rows("P", 30);
    // Line 2+10 = row P10 is poisoned: the CRM refuses its whole batch.
    text = text.replace("P10,Client 10,", "P10,Client POISON,");
    text.push_str("P30,,yes,p30@example.com,,,\n"); // line 32: no name, refused locally
    let file = dir.path().join("mixed.csv");
    std::fs::write(&file, text).unwrap();
    let (code, out, err) = once(dir.path(), &config, &file).await;
    assert_eq!(code, 1, "{out}{err}");
    let mut want = codes("P", 30);
    want.retain(|c| c != "P10");
    exactly_once(&sb.received().await, &want);
    let errors = dir.path().join("reports/mixed.errors.csv");
    assert_eq!(
        lines_and_stages(&errors),
        vec![(12, "remote".to_string()), (32, "validate".to_string())]
    );
    let report = read_report(&errors);
    assert!(report[1].last().unwrap().contains("could not be imported"), "{:?}", report[1]);
    let s = summary(&dir.path().join("reports/mixed.summary.json"));
    assert_eq!(s["rows"]["read"], 31);
    assert_eq!(s["rows"]["accepted"], 29);
    assert_eq!(s["failed_by_stage"]["remote"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn repsly_errors_are_matched_to_rows_by_code() {
    // The sandbox refuses any client holding "REFUSED" in its job's Errors[], naming the field.
    let sb =
        TestSandbox::start(SandboxOptions { refuse: Some("REFUSED".into()), ..Default::default() })
            .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new(&sb.url));
    let csv = clean_rows("R", 5).replace(
        "R2,Client 2,yes,c2@example.com,07700 900002,UK>North,",
        "R2,Client 2,yes,c2@example.com,07700 900002,UK>North,REFUSED",
    );
    let file = dir.path().join("remote.csv");
    std::fs::write(&file, &csv).unwrap();
    let (code, _, _) = once(dir.path(), &config, &file).await;
    assert_eq!(code, 1);
    let errors = dir.path().join("reports/remote.errors.csv");
    assert_eq!(lines_and_stages(&errors), vec![(4, "remote".to_string())]);
    let rows = read_report(&errors);
    let col = |name: &str| rows[0].iter().position(|h| h == name).unwrap();
    assert_eq!(rows[1][col("Code")], "R2", "the failed row is reported verbatim");
    assert_eq!(rows[1][col("_field")], "Note");
    assert!(rows[1][col("_message")].contains("refused by the account's rules"), "{:?}", rows[1]);
    exactly_once(&sb.received().await, &["R0".into(), "R1".into(), "R3".into(), "R4".into()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_and_throttling_still_deliver_every_row_exactly_once() {
    let sb = TestSandbox::start(SandboxOptions {
        fail_rate: 0.3,
        rate_limit: Some(crm_ingest::sandbox::Budget::parse("40/s").unwrap()),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = ConfigOptions::new(&sb.url);
    opts.rate_limit = "1000/s"; // faster than the CRM allows: 429s must be honoured
    opts.max_attempts = 30;
    let config = write_config(dir.path(), &opts);
    let file = dir.path().join("faulty.csv");
    std::fs::write(&file, clean_rows("F", 200)).unwrap();
    let (code, out, err) = once(dir.path(), &config, &file).await;
    assert_eq!(code, 0, "{out}{err}");
    exactly_once(&sb.received().await, &codes("F", 200));
    let log = sb.requests().await;
    let statuses: Vec<u64> = log.iter().map(|r| r["status"].as_u64().unwrap()).collect();
    assert!(statuses.iter().any(|s| *s >= 500), "faults were injected");
    assert!(statuses.contains(&200));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rate_limit_is_never_exceeded() {
    let sb = TestSandbox::start(SandboxOptions { pending_polls: 0, ..Default::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = ConfigOptions::new(&sb.url);
    opts.rate_limit = "5/s";
    opts.max_rows = 2;
    let config = write_config(dir.path(), &opts);
    let file = dir.path().join("paced.csv");
    std::fs::write(&file, clean_rows("S", 12)).unwrap();
    let (code, out, err) = once(dir.path(), &config, &file).await;
    assert_eq!(code, 0, "{out}{err}");
    let times: Vec<u64> =
        sb.requests().await.iter().map(|r| r["at_ms"].as_u64().unwrap()).collect();
    assert!(times.len() >= 12, "6 submits and 6 polls: {times:?}");
    // Any one-second window holds at most rate + burst (5 + 1) requests.
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..].iter().take_while(|u| **u < t + 1000).count();
        assert!(in_window <= 6, "{in_window} requests within 1s from {t} ms: {times:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_credentials_stop_sending_and_keep_rows_unprocessed() {
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = ConfigOptions::new(&sb.url);
    opts.password = "wrong";
    let config = write_config(dir.path(), &opts);
    let file = dir.path().join("denied.csv");
    std::fs::write(&file, clean_rows("D", 50)).unwrap();
    let (code, _, _) = once(dir.path(), &config, &file).await;
    assert_eq!(code, 1);
    let requests = sb.requests().await.len();
    assert!(requests <= 4, "no retry storm on a 401: {requests} requests");
    let s = summary(&dir.path().join("reports/denied.summary.json"));
    assert_eq!(s["rows"]["unprocessed"], 50);
    assert_eq!(s["rows"]["failed"], 0);
    let stages = lines_and_stages(&dir.path().join("reports/denied.errors.csv"));
    assert_eq!(stages.len(), 50);
    assert!(stages.iter().all(|(_, s)| s == "unprocessed"));
    assert!(sb.received().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fixed_errors_file_dropped_back_is_imported() {
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new(&sb.url));
    let file = dir.path().join("round.csv");
    std::fs::write(
        &file,
        format!("{HEADER}\nT1,,yes,t1@example.com,,,\nT2,Two,yes,t2@example.com,,,\n"),
    )
    .unwrap();
    let (code, _, _) = once(dir.path(), &config, &file).await;
    assert_eq!(code, 1);
    let report = dir.path().join("reports/round.errors.csv");
    let fixed = std::fs::read_to_string(&report).unwrap().replace("T1,,yes", "T1,One,yes");
    let again = dir.path().join("round.errors.csv");
    std::fs::write(&again, fixed).unwrap();
    let (code, out, err) = once(dir.path(), &config, &again).await;
    assert_eq!(code, 0, "{out}{err}");
    exactly_once(&sb.received().await, &["T1".into(), "T2".into()]);
    tokio::time::sleep(Duration::from_millis(1)).await;
}
