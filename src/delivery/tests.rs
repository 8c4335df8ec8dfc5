//! The engine on paused time with a scripted transport and a made-up target that is not a
//! CRM ("widgets"): settlement, splitting, pauses the server asks for, the credentials latch,
//! write-ahead records, and the answers that once made the daemon send rows twice.

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::adapter::{Adapter, Created, JobReport, JobState, RowNote, RowRef, Step};
use super::call::{Body, Call, CallError, Method, Reply, Safety};
use super::engine::{Engine, Journal, Token};
use super::transport::{Authorization, NoAnswer, Transport};
use super::Connection;
use crate::config::rate::RateLimit;
use crate::config::{Auth, ConnectionSettings, CrmKind, RetryPolicy};
use crate::row::{Failure, MappedRow, Outcome, SourceRow, Stage};
use crate::secret::Secret;

/// One request as the fake server saw it.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    method: Method,
    path: String,
    body: String,
}

type Answer = Box<dyn Fn(&Seen, usize) -> Result<Reply, NoAnswer> + Send + Sync>;

/// A server written as a function of the request and how many requests came before it.
struct Script {
    seen: Mutex<Vec<Seen>>,
    answer: Answer,
}

impl Script {
    fn new(
        answer: impl Fn(&Seen, usize) -> Result<Reply, NoAnswer> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self { seen: Mutex::default(), answer: Box::new(answer) })
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn count(&self, path_start: &str, method: Method) -> usize {
        self.seen().iter().filter(|s| s.method == method && s.path.starts_with(path_start)).count()
    }
}

impl Transport for Script {
    fn send<'a>(
        &'a self,
        call: &'a Call,
        _auth: Option<&'a Authorization>,
    ) -> BoxFuture<'a, Result<Reply, NoAnswer>> {
        async move {
            let body = match &call.body {
                Body::Json(b) => String::from_utf8_lossy(b).into_owned(),
                _ => String::new(),
            };
            let path = call.url.trim_start_matches("http://fake").to_string();
            let seen = Seen { at: Instant::now(), method: call.method, path, body };
            let n = {
                let mut all = self.seen.lock().unwrap();
                all.push(seen.clone());
                all.len() - 1
            };
            tokio::time::sleep(Duration::from_millis(10)).await;
            (self.answer)(&seen, n)
        }
        .boxed()
    }
}

fn reply(status: u16, body: Value) -> Result<Reply, NoAnswer> {
    Ok(Reply { status, headers: HeaderMap::new(), body: Bytes::from(body.to_string()) })
}

fn with_headers(
    status: u16,
    body: Value,
    headers: &[(&'static str, &str)],
) -> Result<Reply, NoAnswer> {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.insert(*k, HeaderValue::from_str(v).unwrap());
    }
    Ok(Reply { status, headers: h, body: Bytes::from(body.to_string()) })
}

fn reset() -> Result<Reply, NoAnswer> {
    Err(NoAnswer { maybe_sent: true, message: "connection reset".into() })
}

/// The made-up target: `POST /widgets` (rows as a JSON list of keys) -> `{"job": id}`;
/// an optional `POST /widgets/{id}/launch` step; `GET /widgets/{id}` -> `{"state": ...,
/// "saved": n, "refused": [key, ...]}`.
struct Widgets {
    safety: Safety,
    launch: bool,
}

impl Adapter for Widgets {
    fn create_is_repeatable(&self) -> bool {
        self.safety != Safety::Once
    }

    fn create(&self, base: &str, rows: &[MappedRow]) -> Call {
        let keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
        Call::post_json(
            "widgets",
            format!("{base}/widgets"),
            Bytes::from(json!(keys).to_string()),
            self.safety,
        )
    }

    fn created(&self, _rows: &[MappedRow], answer: Result<&Reply, &CallError>) -> Created {
        match answer {
            Ok(r) => match &r.json().unwrap()["job"] {
                Value::String(id) => Created::Job(id.clone()),
                Value::Number(n) => Created::Job(n.to_string()),
                _ => Created::Unclear("no job".into()),
            },
            Err(CallError::Rejected { status: 400, .. }) => Created::Refused("refused".into()),
            Err(e) => Created::Failed(e.to_string()),
        }
    }

    fn steps(&self, base: &str, job: &str, _rows: &[MappedRow]) -> Vec<Step> {
        let call = Call::post(
            "widgets/launch",
            format!("{base}/widgets/{job}/launch"),
            Body::None,
            Safety::Repeatable,
        );
        if self.launch {
            vec![Step { name: "launched", call }]
        } else {
            Vec::new()
        }
    }

    fn status(&self, base: &str, job: &str) -> Call {
        Call::get("widgets/status", format!("{base}/widgets/{job}"))
    }

    fn read_status(&self, _base: &str, reply: &Reply) -> Result<JobState, String> {
        let v = reply.json()?;
        Ok(match v["state"].as_str() {
            Some("idle") => JobState::NotStarted,
            Some("done") => JobState::Finished(Box::new(JobReport {
                status: "done".into(),
                saved: v["saved"].as_u64(),
                invalid: v["refused"].as_array().map(|a| a.len() as u64),
                refused: v["refused"]
                    .as_array()
                    .unwrap_or(&Vec::new())
                    .iter()
                    .map(|k| RowNote {
                        row: RowRef::Key(k.as_str().unwrap_or_default().into()),
                        failure: Failure::new(Stage::Remote, None, "no"),
                    })
                    .collect(),
                ..JobReport::default()
            })),
            Some(_) => JobState::Running,
            None => return Err("no state".into()),
        })
    }
}

#[derive(Default)]
struct Log {
    events: Mutex<Vec<String>>,
    /// How many times `created` fails before it holds (a full state disk).
    refuse_created: std::sync::atomic::AtomicU32,
}

impl Journal for Log {
    fn sending<'a>(&'a self, seqs: &'a [u64]) -> BoxFuture<'a, Result<Token, String>> {
        self.events.lock().unwrap().push(format!("sending {seqs:?}"));
        async { Ok(1) }.boxed()
    }
    fn created<'a>(
        &'a self,
        _t: Token,
        id: &'a str,
        _s: &'a [u64],
        status: &'a str,
    ) -> BoxFuture<'a, Result<(), String>> {
        use std::sync::atomic::Ordering;
        let refused = self
            .refuse_created
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let event = if refused { "cannot record" } else { "created" };
        self.events.lock().unwrap().push(format!("{event} {id} {status}"));
        async move {
            if refused {
                Err("disk full".to_string())
            } else {
                Ok(())
            }
        }
        .boxed()
    }
    fn abandoned(&self, _t: Token) {
        self.events.lock().unwrap().push("abandoned".into());
    }
    fn status(&self, id: &str, status: &str, _rows: usize) {
        self.events.lock().unwrap().push(format!("status {id} {status}"));
    }
}

fn settings(max_attempts: u32) -> Arc<ConnectionSettings> {
    Arc::new(ConnectionSettings {
        name: "fake".into(),
        kind: CrmKind::Repsly,
        base_url: "http://fake".into(),
        auth: Auth::Basic { username: "u".into(), password: Secret::new("p") },
        rate_limit: RateLimit { count: 10_000, per: Duration::from_secs(1) },
        burst: 1,
        max_in_flight: 4,
        timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        },
        poll_interval: Duration::from_secs(2),
        poll_timeout: Duration::from_secs(600),
        auth_retry: Duration::from_secs(60),
        shared_limit: None,
    })
}

fn setup(script: &Arc<Script>, widgets: Widgets) -> (Engine, Arc<Log>) {
    setup_on(settings(4), script, widgets)
}

fn setup_on(
    settings: Arc<ConnectionSettings>,
    script: &Arc<Script>,
    widgets: Widgets,
) -> (Engine, Arc<Log>) {
    let conn =
        Arc::new(Connection::with_transport(settings, script.clone(), crate::metrics::get()));
    let log = Arc::new(Log::default());
    let pacer = conn.pacer("widgets");
    let engine = Engine { conn, adapter: Arc::new(widgets), journal: log.clone(), pacer };
    (engine, log)
}

fn rows(keys: &[&str]) -> Vec<MappedRow> {
    keys.iter()
        .enumerate()
        .map(|(i, k)| MappedRow {
            source: SourceRow { seq: i as u64, line: i as u64 + 2, raw: Default::default() },
            key: k.to_string(),
            body: Vec::new(),
            partition: Default::default(),
        })
        .collect()
}

fn stages(o: &[Option<Outcome>]) -> Vec<&'static str> {
    o.iter()
        .map(|o| match o {
            None => "held",
            Some(Outcome::Accepted) => "accepted",
            Some(Outcome::Warned(_)) => "warned",
            Some(Outcome::Failed(f)) => f.stage.as_str(),
        })
        .collect()
}

/// A server whose jobs run once and finish, refusing the keys named `bad*`.
fn done_job(seen: &Seen) -> Result<Reply, NoAnswer> {
    match (seen.method, seen.path.as_str()) {
        (Method::Post, "/widgets") => reply(200, json!({"job": "J1"})),
        (Method::Get, _) => {
            let created = seen.path.trim_start_matches("/widgets/");
            let _ = created;
            reply(200, json!({"state": "done", "saved": 2, "refused": ["bad"]}))
        }
        _ => reply(200, json!({})),
    }
}

#[tokio::test(start_paused = true)]
async fn a_job_settles_each_row_by_the_crms_own_counts() {
    let script = Script::new(|s, _| done_job(s));
    let (engine, log) = setup(&script, Widgets { safety: Safety::Repeatable, launch: false });
    let out = engine.deliver(&rows(&["a", "bad", "c"])).await;
    assert_eq!(stages(&out), ["accepted", "remote", "accepted"]);
    let events = log.events.lock().unwrap().clone();
    assert_eq!(events[0], "sending [0, 1, 2]", "the write-ahead record comes first");
    assert_eq!(events[1], "created J1 created");
    assert!(events.last().unwrap().starts_with("status J1 done"));
    let first_poll = script.seen()[1].at - script.seen()[0].at;
    assert!(
        first_poll <= Duration::from_millis(300),
        "the first poll comes quickly: {first_poll:?}"
    );
}

/// A server refusing any batch that holds the key `poison`; a job's id is the number of rows
/// it holds, and all of them are saved.
fn splitting_server() -> Arc<Script> {
    Script::new(|s, _| match (s.method, s.path.as_str()) {
        (Method::Post, "/widgets") if s.body.contains("poison") => {
            reply(400, json!({"message": "no"}))
        }
        (Method::Post, "/widgets") => reply(200, json!({"job": s.body.matches(',').count() + 1})),
        _ => reply(
            200,
            json!({"state": "done", "saved": s.path.trim_start_matches("/widgets/").parse::<u64>().unwrap(), "refused": []}),
        ),
    })
}

#[tokio::test(start_paused = true)]
async fn a_batch_refused_as_a_whole_is_split_until_the_bad_row_stands_alone() {
    let script = splitting_server();
    let (engine, _) = setup(&script, Widgets { safety: Safety::Repeatable, launch: false });
    let out = engine.deliver(&rows(&["a", "poison", "c", "d"])).await;
    assert_eq!(stages(&out), ["accepted", "remote", "accepted", "accepted"]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_and_an_empty_budget_pause_the_connection() {
    let script = Script::new(|s, n| match n {
        0 => with_headers(429, json!({"message": "slow down"}), &[("retry-after", "5")]),
        1 => Ok(with_headers(
            200,
            json!({"job": "J"}),
            &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "3")],
        )?),
        _ => done_job(s),
    });
    let (engine, _) = setup(&script, Widgets { safety: Safety::Repeatable, launch: false });
    let out = engine.deliver(&rows(&["a", "bad", "c"])).await;
    assert_eq!(stages(&out), ["accepted", "remote", "accepted"]);
    let seen = script.seen();
    assert!(seen[1].at - seen[0].at >= Duration::from_secs(5), "Retry-After: 5 is honoured");
    assert!(seen[2].at - seen[1].at >= Duration::from_secs(3), "remaining 0 waits for the reset");
}

#[tokio::test(start_paused = true)]
async fn a_low_server_budget_is_spread_to_its_reset() {
    // Every answer: 5 requests left in a window that resets in 10 s -> one every 2 s.
    let script = Script::new(|s, _| {
        let mut r = done_job(s)?;
        r.headers.insert("x-ratelimit-remaining", HeaderValue::from_static("5"));
        r.headers.insert("x-ratelimit-reset", HeaderValue::from_static("10"));
        Ok(r)
    });
    let (engine, _) = setup(&script, Widgets { safety: Safety::Repeatable, launch: false });
    let out = engine.deliver(&rows(&["a", "bad", "c"])).await;
    assert_eq!(stages(&out), ["accepted", "remote", "accepted"]);
    let seen = script.seen();
    assert!(seen.len() >= 2, "{seen:?}");
    for pair in seen.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(1990), "paced to the reset, not burst: {gap:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn refused_credentials_hold_the_rows_until_a_probe_is_accepted() {
    // 401 until the password is "right"; the probe is a GET.
    let right = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let script = {
        let right = right.clone();
        Script::new(move |s, _| match right.load(std::sync::atomic::Ordering::SeqCst) {
            false => reply(401, json!({"message": "Unauthenticated."})),
            true => done_job(s),
        })
    };
    // The rate limiter (governor) keeps real time, not tokio's paused clock: a probe waiting
    // for it would let the idle runtime jump its clock past the probes counted below.
    let mut roomy = (*settings(4)).clone();
    roomy.burst = 100;
    let widgets = Widgets { safety: Safety::Repeatable, launch: false };
    let (engine, _) = setup_on(Arc::new(roomy), &script, widgets);
    let out = engine.deliver(&rows(&["a", "b"])).await;
    assert_eq!(stages(&out), ["held", "held"], "left unsettled, never unprocessed");
    let out = engine.deliver(&rows(&["c"])).await;
    assert_eq!(stages(&out), ["held"]);
    assert_eq!(script.seen().len(), 1, "after the first 401 nothing more is sent");
    assert!(engine.conn.auth_failure().is_some());
    let conn = engine.conn.clone();
    let stop = tokio_util::sync::CancellationToken::new();
    let prober = tokio::spawn(conn.clone().recover(|| None, stop.clone()));
    tokio::time::sleep(Duration::from_secs(60 + 120 + 1)).await;
    let probes = script.count("/export/importStatus/0", Method::Get);
    assert_eq!(probes, 2, "probed after auth_retry (60 s), then after twice that");
    right.store(true, std::sync::atomic::Ordering::SeqCst);
    conn.probe_now();
    tokio::time::timeout(Duration::from_secs(1), conn.until_accepted()).await.unwrap();
    assert!(conn.auth_failure().is_none(), "a probe asked for now was accepted");
    let out = engine.deliver(&rows(&["a", "bad", "c"])).await;
    assert_eq!(stages(&out), ["accepted", "remote", "accepted"]);
    stop.cancel();
    prober.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_403_about_one_record_fails_that_record_only() {
    let script = Script::new(|s, _| match (s.method, s.path.as_str()) {
        (Method::Post, "/widgets") if s.body.contains("foreign") => {
            reply(403, json!({"message": "not yours"}))
        }
        (Method::Post, "/widgets") => reply(200, json!({"job": "J"})),
        (Method::Get, "/export/importStatus/0") => {
            reply(400, json!({"Code": 1, "Message": "no such job"}))
        }
        _ => reply(200, json!({"state": "done", "saved": 1, "refused": []})),
    });
    let (engine, _) = setup(&script, Widgets { safety: Safety::Once, launch: false });
    assert_eq!(stages(&engine.deliver(&rows(&["foreign"])).await), ["remote"]);
    assert_eq!(stages(&engine.deliver(&rows(&["mine"])).await), ["accepted"]);
    assert!(
        engine.conn.auth_failure().is_none(),
        "the probe was answered: the credentials are fine"
    );

    let denied = Script::new(|_, _| reply(403, json!({"message": "This action is unauthorized."})));
    let (engine, _) = setup(&denied, Widgets { safety: Safety::Once, launch: false });
    assert_eq!(stages(&engine.deliver(&rows(&["a"])).await), ["held"]);
    assert!(engine.conn.auth_failure().is_some(), "the probe was refused too: the credentials are");
}

#[tokio::test(start_paused = true)]
async fn a_401_from_another_host_refuses_that_request_not_the_credentials() {
    // A report's storage URL is on another host and gets no credentials: its 401 or 403 says
    // nothing about the connection's own.
    let script = Script::new(|s, _| match s.path.as_str() {
        "http://storage.invalid/report.csv" => reply(401, json!({"message": "expired"})),
        "http://storage.invalid/other.csv" => reply(403, json!({"message": "denied"})),
        _ => done_job(s),
    });
    let (engine, _) = setup(&script, Widgets { safety: Safety::Repeatable, launch: false });
    for url in ["http://storage.invalid/report.csv", "http://storage.invalid/other.csv"] {
        let answer = engine.conn.call(Call::get("report", url.to_string())).await;
        assert!(matches!(answer, Err(CallError::Rejected { .. })), "{url}: {answer:?}");
    }
    assert!(engine.conn.auth_failure().is_none(), "the connection does not hold");
    let out = engine.deliver(&rows(&["a", "bad", "c"])).await;
    assert_eq!(stages(&out), ["accepted", "remote", "accepted"]);
}

#[tokio::test(start_paused = true)]
async fn a_once_create_whose_answer_was_lost_is_never_sent_again() {
    let script = Script::new(|_, _| reset());
    let (engine, log) = setup(&script, Widgets { safety: Safety::Once, launch: false });
    let out = engine.deliver(&rows(&["a"])).await;
    assert_eq!(stages(&out), ["unconfirmed"]);
    assert_eq!(script.count("/widgets", Method::Post), 1);
    assert_eq!(log.events.lock().unwrap()[0], "sending [0]");
}

#[tokio::test(start_paused = true)]
async fn a_job_whose_status_cannot_be_read_is_never_sent_again() {
    // A persistent 404 on the status poll: once made the daemon resend 100 rows 672 times.
    let script = Script::new(|s, _| match s.method {
        Method::Post => reply(200, json!({"job": "J"})),
        Method::Get => reply(404, json!({"message": "Not found."})),
    });
    let (engine, _) = setup(&script, Widgets { safety: Safety::Repeatable, launch: false });
    let out = engine.deliver(&rows(&["a", "b"])).await;
    assert_eq!(stages(&out), ["unconfirmed", "unconfirmed"]);
    assert_eq!(script.count("/widgets", Method::Post), 1, "created once, never again");
}

#[tokio::test(start_paused = true)]
async fn a_retried_step_that_had_taken_effect_is_not_a_refusal() {
    // The launch goes through but its answer is lost; the retry gets 422 "already launched".
    let script = Script::new(|s, _| {
        let launches = s.path.ends_with("/launch");
        match (s.method, launches) {
            (Method::Post, false) => reply(200, json!({"job": "J"})),
            (Method::Post, true)
                if s.body.is_empty()
                    && LAUNCHED.swap(true, std::sync::atomic::Ordering::SeqCst) =>
            {
                reply(422, json!({"message": "The import has already been started."}))
            }
            (Method::Post, true) => reset(),
            (Method::Get, _) => done_job(s),
        }
    });
    let (engine, log) = setup(&script, Widgets { safety: Safety::Repeatable, launch: true });
    let out = engine.deliver(&rows(&["a", "bad", "c"])).await;
    assert_eq!(stages(&out), ["accepted", "remote", "accepted"]);
    assert_eq!(
        script.count("/widgets", Method::Post) - script.count("/widgets/J/launch", Method::Post),
        1
    );
    assert!(log.events.lock().unwrap().iter().any(|e| e == "status J launched"));
}

static LAUNCHED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[tokio::test(start_paused = true)]
async fn a_step_refused_before_the_job_started_fails_the_rows_without_resending() {
    let script = Script::new(|s, _| match (s.method, s.path.ends_with("/launch")) {
        (Method::Post, false) => reply(200, json!({"job": "J"})),
        (Method::Post, true) => reply(422, json!({"message": "bad mapping"})),
        (Method::Get, _) => reply(200, json!({"state": "idle"})),
    });
    let (engine, _) = setup(&script, Widgets { safety: Safety::Repeatable, launch: true });
    let out = engine.deliver(&rows(&["a"])).await;
    assert_eq!(stages(&out), ["remote"], "nothing was imported: a plain failure");
    assert_eq!(
        script.count("/widgets", Method::Post) - script.count("/widgets/J/launch", Method::Post),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn a_resumed_job_is_followed_not_sent() {
    let script = Script::new(|s, _| done_job(s));
    let (engine, _) = setup(&script, Widgets { safety: Safety::Repeatable, launch: true });
    let out = engine.resume("J9", "launched", &rows(&["a", "bad", "c"])).await;
    assert_eq!(stages(&out), ["accepted", "remote", "accepted"]);
    assert_eq!(script.count("/widgets", Method::Post), 0, "no create, no step");
}

#[tokio::test(start_paused = true)]
async fn a_job_that_cannot_be_recorded_is_not_followed_until_it_is() {
    let script = Script::new(|s, _| done_job(s));
    let (engine, log) = setup(&script, Widgets { safety: Safety::Repeatable, launch: false });
    log.refuse_created.store(3, std::sync::atomic::Ordering::SeqCst);
    let out = engine.deliver(&rows(&["a", "bad", "c"])).await;
    assert_eq!(stages(&out), ["accepted", "remote", "accepted"]);
    let events = log.events.lock().unwrap().clone();
    assert_eq!(
        &events[1..5],
        [
            "cannot record J1 created",
            "cannot record J1 created",
            "cannot record J1 created",
            "created J1 created"
        ]
    );
    let seen = script.seen();
    assert_eq!(script.count("/widgets", Method::Post), 1, "the create is not sent again");
    assert!(
        seen[1].at - seen[0].at >= Duration::from_millis(3500),
        "no poll before the job is recorded (3 waits: 0.5 + 1 + 2 s)"
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_batch_is_split_at_most_log2_levels_deep() {
    let script = splitting_server();
    let (engine, _) = setup(&script, Widgets { safety: Safety::Repeatable, launch: false });
    let keys: Vec<String> =
        (0..500).map(|i| if i == 321 { "poison".into() } else { format!("k{i}") }).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let out = engine.deliver(&rows(&keys)).await;
    let failed: Vec<usize> = stages(&out)
        .iter()
        .enumerate()
        .filter(|(_, s)| **s != "accepted")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(failed, [321]);
    let creates = script.count("/widgets", Method::Post);
    assert!(creates <= 1 + 2 * 9, "ceil(log2(500)) = 9 levels, two creates each: {creates}");
}

#[tokio::test(start_paused = true)]
async fn absurd_waits_from_the_server_do_not_panic() {
    for (header, value) in [
        ("retry-after", "1e30"),
        ("retry-after", "99999999999999999999999999"),
        ("retry-after", "-5"),
        ("x-ratelimit-reset", "1e30"),
    ] {
        let script = Script::new(move |s, n| match n {
            0 => with_headers(
                429,
                json!({"message": "slow down"}),
                &[(header, value), ("x-ratelimit-remaining", "0")],
            ),
            _ => done_job(s),
        });
        let (engine, _) = setup(&script, Widgets { safety: Safety::Repeatable, launch: false });
        let out = engine.deliver(&rows(&["a", "bad", "c"])).await;
        assert_eq!(stages(&out), ["accepted", "remote", "accepted"], "{header}: {value}");
        let seen = script.seen();
        assert!(
            seen[1].at - seen[0].at <= super::retry::MAX_RETRY_AFTER + Duration::from_secs(1),
            "the wait is capped: {header}: {value}"
        );
    }
}

/// A target whose answer reading panics, after the create went out.
struct Panics;

impl Adapter for Panics {
    fn create_is_repeatable(&self) -> bool {
        true
    }
    fn create(&self, base: &str, rows: &[MappedRow]) -> Call {
        Widgets { safety: Safety::Repeatable, launch: false }.create(base, rows)
    }
    fn created(&self, _rows: &[MappedRow], _answer: Result<&Reply, &CallError>) -> Created {
        panic!("a bug reading the answer")
    }
    fn status(&self, base: &str, job: &str) -> Call {
        Call::get("widgets/status", format!("{base}/widgets/{job}"))
    }
    fn read_status(&self, _base: &str, _reply: &Reply) -> Result<JobState, String> {
        Err("unused".into())
    }
}

#[tokio::test(start_paused = true)]
async fn a_batch_that_panics_leaves_its_rows_unconfirmed() {
    use super::window::{Settle, Window};
    let script = Script::new(|s, _| done_job(s));
    let conn =
        Arc::new(Connection::with_transport(settings(4), script.clone(), crate::metrics::get()));
    let engine = Engine {
        pacer: conn.pacer("widgets"),
        conn,
        adapter: Arc::new(Panics),
        journal: Arc::new(Log::default()),
    };
    let settled: Arc<Mutex<Vec<(u64, Outcome)>>> = Arc::default();
    let settle: Settle = {
        let settled = settled.clone();
        Arc::new(move |rows| {
            let mut all = settled.lock().unwrap();
            all.extend(rows.into_iter().map(|(r, o)| (r.seq, o)));
            async {}.boxed()
        })
    };
    let window = Window {
        engine: Arc::new(engine),
        max_rows: 10,
        max_wait: Duration::from_millis(100),
        size: 4,
        settle,
        stop: Default::default(),
        abort: Default::default(),
        holds: true,
        pipeline: "p".into(),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(10);
    let (_etx, erx) = tokio::sync::mpsc::channel(1);
    for r in rows(&["a", "b"]) {
        tx.send(r).await.unwrap();
    }
    drop(tx);
    drop(_etx);
    let end = window.run(rx, erx).await;
    assert_eq!(end.crashed_batches, 1);
    let settled = settled.lock().unwrap().clone();
    let stages: Vec<&str> = settled
        .iter()
        .map(|(_, o)| match o {
            Outcome::Failed(f) => f.stage.as_str(),
            _ => "other",
        })
        .collect();
    assert_eq!(stages, ["unconfirmed", "unconfirmed"], "its create went out: {settled:?}");
    assert_eq!(script.count("/widgets", Method::Post), 1);
}

/// A CRM whose jobs take time: job `n` (in order of creation) of `rows` rows ends
/// `time(n, rows)` after its create reached the server. Each job's polls are counted, and
/// when a poll first saw it finished.
#[derive(Default)]
struct Clock {
    jobs: Mutex<Vec<TimedJob>>,
}

#[derive(Debug, Clone)]
struct TimedJob {
    rows: usize,
    ends: Instant,
    polls: u32,
    seen: Option<Instant>,
}

impl Clock {
    fn jobs(&self) -> Vec<TimedJob> {
        self.jobs.lock().unwrap().clone()
    }
}

type JobTime = dyn Fn(usize, usize) -> Duration + Send + Sync;

fn timed_server(time: Arc<JobTime>) -> (Arc<Script>, Arc<Clock>) {
    let clock = Arc::new(Clock::default());
    let jobs = clock.clone();
    let script = Script::new(move |s, _| {
        let mut all = jobs.jobs.lock().unwrap();
        match s.method {
            Method::Post => {
                let rows = s.body.matches(',').count() + 1;
                let ends = s.at + time(all.len(), rows);
                all.push(TimedJob { rows, ends, polls: 0, seen: None });
                reply(200, json!({"job": all.len() - 1}))
            }
            Method::Get => {
                let n: usize = s.path.trim_start_matches("/widgets/").parse().unwrap();
                let job = &mut all[n];
                job.polls += 1;
                if s.at < job.ends {
                    return reply(200, json!({"state": "running"}));
                }
                job.seen = job.seen.or(Some(s.at));
                reply(200, json!({"state": "done", "saved": job.rows, "refused": []}))
            }
        }
    });
    (script, clock)
}

/// The fake connection's settings with a budget so large that the rate limiter never waits:
/// it waits on the real clock, and while it does, paused tokio time jumps to the next timer,
/// which would move the jobs' clocks under a loaded machine.
fn timed_settings() -> Arc<ConnectionSettings> {
    let mut s = (*settings(4)).clone();
    s.rate_limit = RateLimit { count: 1_000_000, per: Duration::from_secs(1) };
    s.burst = 1_000_000;
    // Longer than any job here: no wait is cut short by it.
    s.poll_interval = Duration::from_secs(10);
    Arc::new(s)
}

fn timed_setup(script: &Arc<Script>, settings: Arc<ConnectionSettings>) -> (Engine, Arc<Log>) {
    let conn =
        Arc::new(Connection::with_transport(settings, script.clone(), crate::metrics::get()));
    let log = Arc::new(Log::default());
    let adapter = Arc::new(Widgets { safety: Safety::Repeatable, launch: false });
    (Engine { pacer: conn.pacer("widgets"), conn, adapter, journal: log.clone() }, log)
}

/// An engine on [`timed_settings`] against a CRM whose jobs take `time`.
fn timed_engine(time: Arc<JobTime>) -> (Engine, Arc<Script>, Arc<Clock>) {
    let (script, clock) = timed_server(time);
    let (engine, _) = timed_setup(&script, timed_settings());
    (engine, script, clock)
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("k{i}")).collect()
}

fn as_strs(keys: &[String]) -> Vec<&str> {
    keys.iter().map(String::as_str).collect()
}

/// The fixed schedule's polls for a job of `secs`: 100 ms, then waits growing by half.
fn fixed_schedule_polls(secs: f64) -> u32 {
    let (mut at, mut wait, mut polls) = (0.0, 0.1, 0);
    while at < secs {
        at += wait;
        wait *= 1.5;
        polls += 1;
    }
    polls
}

#[tokio::test(start_paused = true)]
async fn the_estimate_converges_to_the_crms_pace() {
    // 400 ms + 4 ms per row, batches of 20, 50 and 100 rows in turn.
    let time: Arc<JobTime> = Arc::new(|_, rows| Duration::from_millis(400 + 4 * rows as u64));
    let (engine, _, clock) = timed_engine(time);
    let sizes = [20, 50, 100];
    for i in 0..45 {
        let keys = keys(sizes[i % 3]);
        let out = engine.deliver(&rows(&as_strs(&keys))).await;
        assert!(stages(&out).iter().all(|s| *s == "accepted"));
    }
    let estimate = engine.pacer.estimate();
    for rows in sizes {
        let truth = 0.4 + 0.004 * rows as f64;
        let mean = estimate.mean(rows as f64);
        assert!(
            (mean - truth).abs() < 0.1 * truth,
            "{rows} rows: {mean:.3} s against {truth:.3} s"
        );
    }
    let late = &clock.jobs()[25..];
    let polls: u32 = late.iter().map(|j| j.polls).sum();
    assert!(f64::from(polls) <= 1.3 * late.len() as f64, "{polls} polls for {} jobs", late.len());
    for job in late {
        let delay = job.seen.unwrap() - job.ends;
        assert!(delay <= Duration::from_millis(300), "a finished job seen {delay:?} late");
    }
}

#[tokio::test(start_paused = true)]
async fn a_sudden_slowdown_is_followed_without_a_storm_of_polls() {
    // A job every 50 ms; from the 40th, jobs take 3.2 s instead of 0.5 s.
    let time: Arc<JobTime> =
        Arc::new(|n, _| Duration::from_millis(if n < 40 { 500 } else { 3200 }));
    let (engine, _, clock) = timed_engine(time);
    let engine = Arc::new(engine);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let engine = engine.clone();
        tasks.spawn(async move {
            let keys = keys(50);
            stages(&engine.deliver(&rows(&as_strs(&keys))).await).iter().all(|s| *s == "accepted")
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while let Some(done) = tasks.join_next().await {
        assert!(done.unwrap(), "every row accepted");
    }
    let jobs = clock.jobs();
    let polls: u32 = jobs.iter().map(|j| j.polls).sum();
    let mean = f64::from(polls) / jobs.len() as f64;
    assert!(mean <= 1.6, "{mean:.2} polls per job");
    for job in &jobs[40..] {
        assert!(
            job.polls <= fixed_schedule_polls(3.2),
            "never more often than the fixed schedule: {job:?}"
        );
        assert!(job.seen.unwrap() - job.ends <= Duration::from_secs(2), "seen late: {job:?}");
    }
    let estimate = engine.pacer.estimate();
    assert!((estimate.mean(50.0) - 3.2).abs() < 0.3, "the estimate followed: {:?}", estimate.fit());
}

/// An engine on a connection that keeps its estimates in `ledger` (as the daemon's do).
async fn remembering(script: &Arc<Script>, ledger: &Arc<crate::ledger::Ledger>) -> Engine {
    let conn = Arc::new(Connection::with_transport(
        timed_settings(),
        script.clone(),
        crate::metrics::get(),
    ));
    assert!(!conn.remembers());
    conn.remember(ledger.clone(), ledger.paces("fake").await.unwrap());
    let widgets = Widgets { safety: Safety::Repeatable, launch: false };
    Engine {
        pacer: conn.pacer("widgets"),
        conn,
        adapter: Arc::new(widgets),
        journal: Arc::new(Log::default()),
    }
}

#[tokio::test(start_paused = true)]
async fn a_restart_reads_the_estimate_back() {
    let dir = tempfile::tempdir().unwrap();
    let time: Arc<JobTime> = Arc::new(|_, _| Duration::from_millis(800));
    let learned = {
        let ledger = Arc::new(crate::ledger::Ledger::open(dir.path()).unwrap());
        assert!(ledger.paces("fake").await.unwrap().is_empty(), "nothing kept yet");
        let (script, _) = timed_server(time.clone());
        let engine = remembering(&script, &ledger).await;
        for _ in 0..12 {
            engine.deliver(&rows(&as_strs(&keys(50)))).await;
        }
        engine.pacer.flush();
        ledger.sync().await.unwrap();
        engine.pacer.estimate()
    };
    assert!(learned.known());
    // A new process: a new ledger handle and connection on the same state dir.
    let ledger = Arc::new(crate::ledger::Ledger::open(dir.path()).unwrap());
    let kept = ledger.paces("fake").await.unwrap();
    assert_eq!(kept.iter().map(|k| k.0.as_str()).collect::<Vec<_>>(), ["widgets"]);
    let (script, clock) = timed_server(time);
    let engine = remembering(&script, &ledger).await;
    let warm = engine.pacer.estimate();
    assert!(warm.known(), "read back");
    assert!((warm.quantile(50.0) - learned.quantile(50.0)).abs() < 1e-9);
    engine.deliver(&rows(&as_strs(&keys(50)))).await;
    assert_eq!(
        clock.jobs()[0].polls,
        1,
        "the first job after the restart is asked about once, when it is done"
    );
}

#[tokio::test(start_paused = true)]
async fn polls_go_before_steps_and_steps_before_creates_when_all_wait() {
    use super::pace::Urgency;
    let script = Script::new(|s, _| done_job(s));
    let mut slow = (*settings(1)).clone();
    slow.rate_limit = RateLimit { count: 10, per: Duration::from_secs(1) };
    let conn =
        Arc::new(Connection::with_transport(Arc::new(slow), script.clone(), crate::metrics::get()));
    let mut tasks = tokio::task::JoinSet::new();
    let send = |tasks: &mut tokio::task::JoinSet<bool>, call: Call, urgency: Urgency| {
        let conn = conn.clone();
        tasks.spawn(async move { conn.call_timed(call, urgency).await.0.is_ok() });
    };
    for i in 0..6 {
        let url = format!("http://fake/widgets?create={i}");
        let call = Call::post_json("widgets", url, Bytes::from("[]"), Safety::Repeatable);
        send(&mut tasks, call, Urgency::Create);
    }
    // The creates are queued behind the first; now a step of another job, then a poll.
    tokio::time::sleep(Duration::from_millis(1)).await;
    let step = Call::post_json(
        "widgets/start",
        "http://fake/widgets/J2/start".into(),
        Bytes::new(),
        Safety::Repeatable,
    );
    send(&mut tasks, step, Urgency::Follow);
    tokio::time::sleep(Duration::from_millis(1)).await;
    send(&mut tasks, Call::get("widgets/status", "http://fake/widgets/J1".into()), Urgency::Poll);
    while let Some(done) = tasks.join_next().await {
        assert!(done.unwrap());
    }
    let order: Vec<String> = script.seen().iter().map(|s| s.path.clone()).collect();
    let at = |path: &str| order.iter().position(|p| p == path).unwrap();
    let (poll, step) = (at("/widgets/J1"), at("/widgets/J2/start"));
    assert!(poll <= 2, "the poll went before the creates waiting with it: {order:?}");
    assert_eq!(step, poll + 1, "then the step, before the creates: {order:?}");
    assert_eq!(order.len(), 8);
}

#[tokio::test(start_paused = true)]
async fn an_estimate_past_the_timeout_still_polls_at_the_timeout() {
    // Jobs of 5 s are learned; then, on a connection whose poll_timeout is 3 s, a job ends
    // after 2.9 s. The estimate would first ask at about 5 s: the last poll is made at the
    // timeout instead, sees the job finished, and its rows are accepted.
    let time: Arc<JobTime> =
        Arc::new(|n, _| Duration::from_millis(if n < 12 { 5000 } else { 2900 }));
    let (engine, script, clock) = timed_engine(time);
    for _ in 0..12 {
        engine.deliver(&rows(&as_strs(&keys(50)))).await;
    }
    assert!(engine.pacer.estimate().quantile(50.0) > 4.0);
    let mut short = (*timed_settings()).clone();
    short.poll_timeout = Duration::from_secs(3);
    let (impatient, _) = timed_setup(&script, Arc::new(short));
    let impatient = Engine { pacer: engine.pacer.clone(), ..impatient };
    let out = impatient.deliver(&rows(&as_strs(&keys(50)))).await;
    assert!(stages(&out).iter().all(|s| *s == "accepted"), "{:?}", stages(&out));
    assert_eq!(clock.jobs()[12].polls, 1, "one poll, at the timeout");
}

#[tokio::test(start_paused = true)]
async fn a_known_pace_puts_more_batches_in_flight_within_a_bound_of_rows() {
    // Jobs of 3 s: once that is known, the window holds as many batches as keep the rate
    // busy with one poll each, up to MOST_ROWS_IN_FLIGHT rows (before: 4 batches per slot).
    use super::window::{Window, MOST_ROWS_IN_FLIGHT};
    let time: Arc<JobTime> = Arc::new(|_, _| Duration::from_secs(3));
    let (script, _) = timed_server(time);
    let mut two = (*timed_settings()).clone();
    two.max_in_flight = 2;
    let (engine, _) = timed_setup(&script, Arc::new(two));
    assert_eq!(Window::size_for(&engine.conn, "widgets", 50), 8, "nothing known: 4 per slot");
    engine.deliver(&rows(&as_strs(&keys(50)))).await;
    assert_eq!(Window::size_for(&engine.conn, "widgets", 50), MOST_ROWS_IN_FLIGHT / 50);
    assert_eq!(Window::size_for(&engine.conn, "other", 50), 8, "per target");
    assert_eq!(Window::size_for(&engine.conn, "widgets", 5_000), 8, "big batches: the least");
    // At 6 requests a second, 3 creates a second over jobs of about 3 s: about 12 in flight
    // (Little's law, a quarter more for the spread).
    let (script, _) = timed_server(Arc::new(|_, _| Duration::from_secs(3)));
    let mut slow = (*timed_settings()).clone();
    (slow.max_in_flight, slow.burst) = (2, 1);
    slow.rate_limit = RateLimit { count: 6, per: Duration::from_secs(1) };
    let (engine, _) = timed_setup(&script, Arc::new(slow));
    engine.deliver(&rows(&as_strs(&keys(50)))).await;
    let size = Window::size_for(&engine.conn, "widgets", 50);
    assert!((10..=15).contains(&size), "{size} batches in flight");
}
