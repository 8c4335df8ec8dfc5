//! A file through the stages with a CRM answered in-process: a resume whose earlier jobs
//! hold rows far apart (most rows between them invalid) reads past the budget instead of
//! waiting for rows that cannot settle before it. Real time: the settler runs on a blocking
//! thread, which stops paused time from advancing; the timeout only tells a deadlock.

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;

use super::{process_file, FileContext, Input, LedgerFile, Progress};
use crate::delivery::call::{Call, Reply};
use crate::delivery::transport::{Authorization, NoAnswer, Transport};
use crate::delivery::Connection;
use crate::ledger::{Checkpoint, Claim, Identity, JobRecord, Ledger, Resume};

/// Repsly's status of job 7: completed, every row sent inserted.
struct Done;

impl Transport for Done {
    fn send<'a>(
        &'a self,
        call: &'a Call,
        _auth: Option<&'a Authorization>,
    ) -> BoxFuture<'a, Result<Reply, NoAnswer>> {
        let body = match call.url.ends_with("/export/importStatus/7") {
            true => {
                r#"{"ImportStatus":"Completed","RowsInserted":2,"RowsUpdated":0,"RowsInvalid":0}"#
            }
            false => r#"{"Code":1,"Message":"not expected here"}"#,
        };
        let reply = Reply { status: 200, headers: Default::default(), body: Bytes::from(body) };
        async move { Ok(reply) }.boxed()
    }
}

const CONFIG: &str = r#"
state_dir = "STATE"
[connections.repsly]
kind = "repsly"
base_url = "http://repsly.invalid/v3"
username = "u"
password = "p"
rate_limit = "1000/s"
max_in_flight = 1
poll_interval = "100ms"
[pipelines.clients]
connection = "repsly"
target = "repsly.clients"
source = { kind = "folder", path = "INBOX" }
batch = { max_rows = 10 }
[pipelines.clients.fields]
Code = "Code"
Name = "Name"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_resume_whose_jobs_span_more_than_the_budget_does_not_wait_for_ever() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let config = dir.path().join("config.toml");
    let text = CONFIG.replace("STATE", &format!("{root}/state")).replace("INBOX", &root);
    std::fs::write(&config, text).unwrap();
    let settings = crate::config::load(&config).unwrap();
    // 20,000 rows (the budget holds 16,384): the first and the last valid, the rest without
    // a Code; an earlier run sent the two valid ones in job 7 and was killed.
    let rows = 20_000;
    let mut csv = String::from("Code,Name\nA,first\n");
    for i in 1..rows - 1 {
        csv.push_str(&format!(",row {i}\n"));
    }
    csv.push_str("B,last\n");
    let file = dir.path().join("c.csv");
    std::fs::write(&file, csv).unwrap();
    let ledger = Arc::new(Ledger::open(&settings.state_dir).unwrap());
    let identity =
        Identity { pipeline: "clients".into(), name: "c.csv".into(), size: 1, hash: "h".into() };
    let Claim::Fresh { file_id, started_at } = ledger.claim(identity, "c".into()).await.unwrap()
    else {
        panic!("a new file")
    };
    let resume = Resume {
        file_id,
        attempts: 2,
        report_stem: "c".into(),
        started_at: started_at.clone(),
        checkpoint: Checkpoint::default(),
        jobs: vec![JobRecord { id: "7".into(), status: "created".into(), seqs: vec![0, rows - 1] }],
        pending: Vec::new(),
        earlier_jobs: Default::default(),
    };
    let pipeline = settings.pipelines[0].clone();
    let conn = settings.connections["repsly"].clone();
    let ctx = FileContext {
        target: crate::targets::build(&pipeline),
        pipeline,
        connection: Some(Arc::new(Connection::with_transport(
            conn,
            Arc::new(Done),
            crate::metrics::get(),
        ))),
        report_dir: dir.path().join("reports"),
        stop: Default::default(),
        abort: Default::default(),
    };
    std::fs::create_dir_all(&ctx.report_dir).unwrap();
    let lf =
        LedgerFile { ledger, file_id, report_stem: "c".into(), started_at, resume: Some(resume) };
    let input = Input::Local(file);
    let run = process_file(&ctx, &input, "c.csv", Arc::new(Progress::default()), Some(lf));
    let result = tokio::time::timeout(Duration::from_secs(120), run).await;
    let result = result.expect("the resume finished: it did not wait on its own rows").unwrap();
    let counts = &result.summary.rows;
    assert_eq!((counts.read, counts.accepted, counts.failed), (rows, 2, rows - 2), "{counts:?}");
}
