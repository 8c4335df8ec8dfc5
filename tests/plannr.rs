//! Plannr through the real binary: the four-step import with remote failures traced to their
//! lines (also past the 25 inline ones), validate mode, the tolerated variants, contact details.

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

mod common;

use std::time::Duration;

use common::*;
use crm_ingest::sandbox::SandboxOptions;

use common::plannr::*;

#[tokio::test(flavor = "multi_thread")]
async fn remote_failures_land_on_their_lines() {
    let sb = TestSandbox::start(SandboxOptions { pending_polls: 2, ..Default::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &sb.url, "store", "sandbox-token");
    let file = dir.path().join("new.csv");
    std::fs::write(&file, clients(45, &[3, 30], &[17])).unwrap();
    let (code, out) = once(&cfg, "clients", dir.path(), &file).await;
    assert_eq!(code, 1, "{out}");
    let errors = dir.path().join("reports/new.errors.csv");
    assert_eq!(
        lines_and_stages(&errors),
        vec![(5, "remote".into()), (19, "remote".into()), (32, "remote".into())]
    );
    let rows = read_report(&errors);
    let col = |n: &str| rows[0].iter().position(|h| h == n).unwrap();
    assert_eq!(rows[1][col("_field")], "last_name");
    assert!(rows[1][col("_message")].contains("The last name field is required."), "{:?}", rows[1]);
    assert_eq!(rows[2][col("_field")], "email");
    assert_eq!(rows[2][col("Email")], "person17-at-example.com", "the row is reported verbatim");
    let records = sb.records().await;
    let emails = stored(&records);
    assert_eq!(emails.len(), 42, "every other row stored once");
    let first = &records["plannr"]["records"]["clients"][0];
    assert_eq!(first["send_welcome_email"], "0", "booleans go as 1/0");
    assert_eq!(first["date_of_birth"], "01/02/1980", "dates go as the docs write them");
    let s = summary(&dir.path().join("reports/new.summary.json"));
    assert_eq!(s["rows"]["accepted"], 42);
    assert_eq!(s["failed_by_stage"]["remote"], 3);
    assert_eq!(s["remote_jobs"]["count"], 3, "45 rows in imports of 20");
    assert_eq!(s["remote_jobs"]["by_status"]["complete"], 3, "{s}");
}

#[tokio::test(flavor = "multi_thread")]
async fn more_than_25_failures_are_all_listed_from_the_error_report() {
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &sb.url, "store", "sandbox-token");
    // One import of 60 rows (max_rows raised), 40 without surname.
    let text = std::fs::read_to_string(&cfg).unwrap().replace("max_rows = 20", "max_rows = 100");
    std::fs::write(&cfg, text).unwrap();
    let bad: Vec<usize> = (0..60).filter(|i| i % 3 != 0).collect();
    let file = dir.path().join("many.csv");
    std::fs::write(&file, clients(60, &bad, &[])).unwrap();
    let (code, out) = once(&cfg, "clients", dir.path(), &file).await;
    assert_eq!(code, 1, "{out}");
    let lines: Vec<u64> = lines_and_stages(&dir.path().join("reports/many.errors.csv"))
        .into_iter()
        .map(|(l, s)| {
            assert_eq!(s, "remote");
            l
        })
        .collect();
    assert_eq!(
        lines,
        bad.iter().map(|i| *i as u64 + 2).collect::<Vec<_>>(),
        "all 40, not just the 25 inline"
    );
    assert_eq!(stored(&sb.records().await).len(), 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn validate_mode_reports_and_stores_nothing() {
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &sb.url, "validate", "sandbox-token");
    let file = dir.path().join("check.csv");
    std::fs::write(&file, clients(10, &[4], &[])).unwrap();
    let (code, _) = once(&cfg, "clients", dir.path(), &file).await;
    assert_eq!(code, 1);
    assert_eq!(
        lines_and_stages(&dir.path().join("reports/check.errors.csv")),
        vec![(6, "remote".into())]
    );
    assert!(stored(&sb.records().await).is_empty(), "validate stores nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn other_terminal_names_and_a_data_wrapper_are_understood() {
    for status in ["completed", "finished"] {
        let sb = TestSandbox::start(SandboxOptions {
            plannr_terminal_status: status.into(),
            plannr_wrap_data: true,
            ..Default::default()
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), &sb.url, "store", "sandbox-token");
        let file = dir.path().join("alt.csv");
        std::fs::write(&file, clients(12, &[2], &[])).unwrap();
        let (code, out) = once(&cfg, "clients", dir.path(), &file).await;
        assert_eq!(code, 1, "{status}: {out}");
        assert_eq!(
            lines_and_stages(&dir.path().join("reports/alt.errors.csv")),
            vec![(4, "remote".into())],
            "{status}"
        );
        assert_eq!(stored(&sb.records().await).len(), 11, "{status}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_token_stops_sending_and_keeps_rows_unprocessed() {
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &sb.url, "store", "wrong-token");
    let file = dir.path().join("denied.csv");
    std::fs::write(&file, clients(50, &[], &[])).unwrap();
    let (code, _) = once(&cfg, "clients", dir.path(), &file).await;
    assert_eq!(code, 1);
    assert!(sb.requests().await.len() <= 3, "no retry storm");
    let s = summary(&dir.path().join("reports/denied.summary.json"));
    assert_eq!(s["rows"]["unprocessed"], 50);
}

#[tokio::test(flavor = "multi_thread")]
async fn contact_details_with_local_and_remote_refusals() {
    let sb =
        TestSandbox::start(SandboxOptions { refuse: Some("blocked".into()), ..Default::default() })
            .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &sb.url, "store", "sandbox-token");
    let acct = "6f1c7b4e-2d7a-4c1e-9b9a-3d2f5e6a7b8c";
    let file = dir.path().join("details.csv");
    let text = format!(
        "Type,Label,Value,Primary,Accounts\n\
         email,Work,ann@example.com,yes,{acct}\n\
         phone_number,Mobile,07400 123456,no,{acct}\n\
         email,Home,not-an-email,no,{acct}\n\
         fax,Office,0161 496 0000,no,{acct}\n\
         email,Work,blocked@example.com,no,{acct}\n\
         phone_number,Mobile,+44 20 7946 0958,no,{acct}|not-a-uuid\n\
         email,Other,bob@example.com,no,{acct}\n"
    );
    std::fs::write(&file, text).unwrap();
    let (code, out) = once(&cfg, "contacts", dir.path(), &file).await;
    assert_eq!(code, 1, "{out}");
    let errors = dir.path().join("reports/details.errors.csv");
    assert_eq!(
        lines_and_stages(&errors),
        vec![
            (4, "validate".into()),
            (5, "validate".into()),
            (6, "remote".into()),
            (7, "validate".into())
        ]
    );
    let rows = read_report(&errors);
    let msg = rows[0].iter().position(|h| h == "_message").unwrap();
    assert!(rows[3][msg].contains("value: The value was refused"), "{:?}", rows[3]);
    let details = sb.records().await["plannr"]["contact_details"].as_array().unwrap().clone();
    assert_eq!(details.len(), 3);
    let ann = details.iter().find(|d| d["value"] == "ann@example.com").unwrap();
    assert_eq!(ann["is_primary"], true);
    assert_eq!(ann["accounts"][0], acct);
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_import_continues_the_same_imports() {
    let sb = TestSandbox::start(SandboxOptions {
        latency: Duration::from_millis(40),
        pending_polls: 3,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &sb.url, "store", "sandbox-token");
    std::fs::write(dir.path().join("inbox/big.csv"), clients(600, &[10, 500], &[])).unwrap();
    let mut kills = 0;
    for at in [100usize, 300] {
        let daemon = Daemon::start(&cfg);
        assert!(
            wait_until_async(Duration::from_secs(60), || stored(&futures::executor::block_on(
                sb.records()
            ))
            .len()
                >= at)
            .await
        );
        daemon.kill9();
        kills += 1;
    }
    let daemon = Daemon::start(&cfg);
    let processed = dir.path().join("inbox/processed");
    assert!(
        wait_until_async(Duration::from_secs(90), || files_in(&processed)
            .contains(&"big.csv".to_string()))
        .await
    );
    let (code, _, err) = daemon.terminate();
    assert_eq!(code, Some(0), "{err}");
    let records = sb.records().await;
    let emails = stored(&records);
    let mut unique = emails.clone();
    unique.dedup();
    assert_eq!(unique.len(), 598, "every good row stored");
    let resent = emails.len() - unique.len();
    let imports = records["plannr"]["imports"].as_u64().unwrap() as usize;
    eprintln!(
        "plannr kill -9 x{kills}: rows resent {resent}, imports created {imports} for 30 batches"
    );
    assert!(resent <= kills * 20, "at most one import per kill is created again: {resent} rows");
    assert!(imports <= 30 + kills, "{imports} imports");
    let s = summary(&dir.path().join("inbox/reports/big.summary.json"));
    assert_eq!(s["rows"]["read"], 600);
    assert_eq!(s["rows"]["accepted"], 598);
    assert_eq!(
        lines_and_stages(&dir.path().join("inbox/reports/big.errors.csv")),
        vec![(12, "remote".into()), (502, "remote".into())]
    );
}
