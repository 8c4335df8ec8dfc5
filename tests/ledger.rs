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
    // Write-ahead records: one create answered (its job recorded), one never answered.
    ledger.sending(file_id, 1, vec![0, 1, 2]).await.unwrap();
    ledger.sending(file_id, 2, vec![5, 6]).await.unwrap();
    ledger.sending(file_id, 3, vec![7]).await.unwrap();
    ledger.job_started(file_id, Some(1), "job-1", vec![0, 1, 2], "created").await.unwrap();
    ledger.job_status(file_id, "job-1", "Completed");
    ledger.abandoned(file_id, 3);
    ledger.job_started(file_id, None, "job-2", vec![3, 4], "created").await.unwrap();
    // The warnings report's length is kept too: a resume cuts the report back to it.
    let mut cp =
        Checkpoint { watermark: 3, errors_bytes: 120, warnings_bytes: 40, ..Default::default() };
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
    assert_eq!(r.jobs[1].status, "created");
    assert_eq!(r.pending, vec![(2, vec![5, 6])], "only the unanswered create is pending");
    assert_eq!(r.attempts, 1, "the watermark moved since the first start");

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

#[tokio::test]
async fn the_ledger_is_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    let ledger = Ledger::open(&state).unwrap();
    ledger.claim(identity("h1"), "a".into()).await.unwrap();
    ledger.sync().await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    for f in ["ledger.sqlite3", "ledger.sqlite3-wal"] {
        let p = state.join(f);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{f}");
        }
    }
}

#[tokio::test]
async fn starts_without_progress_are_counted_and_progress_resets_them() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let Claim::Fresh { file_id, .. } = ledger.claim(identity("h"), "a".into()).await.unwrap()
    else {
        panic!("fresh")
    };
    let attempts = |c: Claim| match c {
        Claim::Resume(r) => r.attempts,
        _ => panic!("resume"),
    };
    assert_eq!(attempts(ledger.claim(identity("h"), "a".into()).await.unwrap()), 2);
    assert_eq!(attempts(ledger.claim(identity("h"), "a".into()).await.unwrap()), 3);
    ledger.checkpoint(file_id, Checkpoint { watermark: 10, ..Default::default() });
    assert_eq!(
        attempts(ledger.claim(identity("h"), "a".into()).await.unwrap()),
        1,
        "progress resets the count"
    );
    ledger.stopped(file_id);
    assert_eq!(
        attempts(ledger.claim(identity("h"), "a".into()).await.unwrap()),
        1,
        "a clean stop is no crash"
    );
}

#[tokio::test]
async fn a_state_dir_is_opened_by_one_ledger_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let first = Ledger::open(dir.path()).unwrap();
    let refused = Ledger::open(dir.path()).unwrap_err().to_string();
    let want = format!("state_dir {} is in use", dir.path().display());
    assert!(refused.contains(&want), "{refused}");
    assert!(refused.contains(&format!("pid {}", std::process::id())), "{refused}");
    drop(first);
    Ledger::open(dir.path()).expect("free again once the first is closed");
}

#[tokio::test]
async fn an_adopted_record_is_what_the_next_claim_resumes_and_checkpoints_keep_its_jobs() {
    use crm_ingest::ledger::{JobRecord, Resume};
    use crm_ingest::report::RemoteJobs;
    use crm_ingest::row::RemoteJob;
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    // This replica's own stale record of the file...
    let Claim::Fresh { file_id, .. } = ledger.claim(identity("h1"), "mine".into()).await.unwrap()
    else {
        panic!("fresh")
    };
    ledger.sending(file_id, 1, vec![0, 1]).await.unwrap();
    ledger.job_started(file_id, None, "stale", vec![2], "created").await.unwrap();
    // ...replaced by the progress another replica left in the lease.
    let earlier = RemoteJobs {
        count: 3,
        by_status: [("complete".to_string(), 3)].into(),
        jobs: vec![RemoteJob { id: "done-1".into(), status: "complete".into(), rows: 20 }],
    };
    let theirs = Resume {
        file_id,
        attempts: 2,
        report_stem: "theirs".into(),
        started_at: "2026-01-01T00:00:00.000Z".into(),
        checkpoint: Checkpoint { watermark: 60, errors_bytes: 300, ..Default::default() },
        jobs: vec![JobRecord { id: "open".into(), status: "started".into(), seqs: vec![60, 61] }],
        pending: vec![(9, vec![62, 63])],
        earlier_jobs: earlier.clone(),
    };
    ledger.adopt(theirs.clone()).await.unwrap();
    ledger
        .checkpoint(file_id, Checkpoint { watermark: 62, errors_bytes: 310, ..Default::default() });
    ledger.sync().await.unwrap();
    let Claim::Resume(r) = ledger.claim(identity("h1"), "ignored".into()).await.unwrap() else {
        panic!("resume")
    };
    assert_eq!(
        (r.report_stem.as_str(), r.started_at.as_str()),
        ("theirs", "2026-01-01T00:00:00.000Z")
    );
    assert_eq!((r.checkpoint.watermark, r.checkpoint.errors_bytes), (62, 310));
    assert_eq!(r.jobs, theirs.jobs, "their jobs, not the stale ones");
    assert_eq!(r.pending, theirs.pending);
    assert_eq!(r.earlier_jobs, earlier, "kept by the checkpoint after the adoption");
}
