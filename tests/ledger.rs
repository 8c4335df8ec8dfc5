//! The ledger on its own: claims, checkpoints, jobs, and what a reopened ledger remembers.

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

use crm_ingest::ledger::{Checkpoint, Claim, FileState, Identity, Ledger};

fn identity(hash: &str) -> Identity {
    Identity { pipeline: "p".into(), name: "a.csv".into(), size: 10, hash: hash.into() }
}

#[tokio::test]
async fn a_reopened_ledger_resumes_what_was_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let Claim::Fresh { file_id, .. } = ledger.claim(identity("h1"), "a".into()).await.unwrap()
    else {
        panic!("fresh")
    };
    ledger.job_started(file_id, "job-1", vec![0, 1, 2]).await.unwrap();
    ledger.job_status(file_id, "job-1", "Completed");
    ledger.job_started(file_id, "job-2", vec![3, 4]).await.unwrap();
    let mut cp = Checkpoint { watermark: 3, errors_bytes: 120, ..Default::default() };
    cp.counts.read = 3;
    cp.counts.accepted = 2;
    cp.counts.failed = 1;
    cp.failed_by_stage.insert("validate".into(), 1);
    ledger.checkpoint(file_id, cp.clone());
    // An older checkpoint arriving late never moves the watermark back.
    ledger.checkpoint(file_id, Checkpoint { watermark: 1, ..Default::default() });
    ledger.sync().await.unwrap();
    ledger.close();
    drop(ledger);

    let ledger = Ledger::open(dir.path()).unwrap();
    let Claim::Resume(r) = ledger.claim(identity("h1"), "ignored".into()).await.unwrap() else {
        panic!("resume")
    };
    assert_eq!(r.file_id, file_id);
    assert_eq!(r.report_stem, "a", "reports keep their first name");
    assert_eq!(r.checkpoint, cp);
    assert_eq!(r.jobs.len(), 2);
    assert_eq!(
        (r.jobs[0].id.as_str(), r.jobs[0].status.as_str(), r.jobs[0].seqs.clone()),
        ("job-1", "Completed", vec![0, 1, 2])
    );
    assert_eq!(r.jobs[1].status, "Pending");

    ledger.finish(file_id, FileState::Finished).await.unwrap();
    assert!(matches!(
        ledger.claim(identity("h1"), "a".into()).await.unwrap(),
        Claim::Finished { .. }
    ));
    // Different content under the same name is a new file.
    assert!(matches!(ledger.claim(identity("h2"), "a".into()).await.unwrap(), Claim::Fresh { .. }));
}

#[tokio::test]
async fn a_failed_file_can_be_tried_again() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let Claim::Fresh { file_id, .. } = ledger.claim(identity("h"), "a".into()).await.unwrap()
    else {
        panic!()
    };
    ledger.finish(file_id, FileState::Failed).await.unwrap();
    let again = ledger.claim(identity("h"), "a".into()).await.unwrap();
    assert!(matches!(again, Claim::Fresh { file_id: id, .. } if id != file_id), "{again:?}");
}

#[test]
fn the_schema_is_versioned() {
    let dir = tempfile::tempdir().unwrap();
    drop(Ledger::open(dir.path()).unwrap());
    let conn = rusqlite::Connection::open(dir.path().join("ledger.sqlite3")).unwrap();
    let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v as usize, Ledger::schema_version());
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
}
