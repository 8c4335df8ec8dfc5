//! Replicas on one bucket (issue [4/7]): an object's progress travels with its lease, so the
//! replica that takes over after its owner is killed resumes where the owner stopped (no
//! Plannr client stored twice, Repsly rows sent again only where the owner's lease recorded
//! them in flight, every failed row once in the report, the summary counted once); a replica
//! whose lease renewals fail stops sending before the lease expires, and the other finishes.
//! Two real daemons, a real S3 server (moto), `kill -9`, a fault-injecting proxy.

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::faults::{Fault, FaultProxy};
use common::moto::{self, s3_config, Moto, AWS_ENV};
use common::*;
use crm_ingest::sandbox::{RealApi, SandboxOptions};

const BUCKET: &str = "drop";
const OBJECT: &str = "incoming/big.csv";
const LEASE: &str = "incoming/.leases/big.csv";
const TTL: &str = "3s";

/// The Plannr `store` clients pipeline of the Plannr tests, over `s3://drop/incoming/`
/// with leases of [`TTL`], paced at `rate`.
fn plannr_config(dir: &Path, crm: &str, s3: &str, rate: &str) -> PathBuf {
    let cfg = common::plannr::config(dir, crm, "store", "sandbox-token");
    let folder = format!(
        r#"source = {{ kind = "folder", path = "{}/inbox", settle = "200ms", rescan_interval = "200ms" }}"#,
        dir.display()
    );
    let bucket = format!(
        r#"source = {{ kind = "s3", bucket = "drop", prefix = "incoming/", region = "us-east-1", endpoint = "{s3}", poll_interval = "200ms", lease_ttl = "{TTL}" }}"#
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains(&folder));
    std::fs::write(&cfg, text.replace(&folder, &bucket).replace("1000/s", rate)).unwrap();
    cfg
}

/// The Repsly pipeline of the other S3 tests, paced at `rate`, leases of [`TTL`].
fn repsly_config(dir: &Path, crm: &str, s3: &str, rate: &str) -> PathBuf {
    let cfg = s3_config(dir, crm, s3, &format!(", lease_ttl = \"{TTL}\""));
    let text = std::fs::read_to_string(&cfg).unwrap().replace("1000/s", rate);
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// `n` clients; every 11th has no surname and every 13th a bad email (Plannr refuses both),
/// every 17th an impossible date of birth (fails here, at `map`). Returns the file and the
/// lines (header = 1) of the rows that must end in the report.
fn plannr_clients(n: usize) -> (String, BTreeSet<u64>) {
    let mut s = String::from("First Name,Surname,Email,Welcome,DOB\n");
    let mut bad = BTreeSet::new();
    for i in 0..n {
        let surname = if i % 11 == 5 { String::new() } else { format!("Surname{i}") };
        let email =
            if i % 13 == 7 { format!("p{i}-at-example.com") } else { format!("p{i}@example.com") };
        let dob = if i % 17 == 3 { "31/02/1980" } else { "01/02/1980" };
        if i % 11 == 5 || i % 13 == 7 || i % 17 == 3 {
            bad.insert(i as u64 + 2);
        }
        s.push_str(&format!("Person{i},{surname},{email},no,{dob}\n"));
    }
    (s, bad)
}

/// `n` Repsly clients `R{i}`; every 9th has no Name (fails at `validate`), every 14th is
/// refused by the CRM. Returns the file and the lines of the rows that must be reported.
fn repsly_clients(n: usize) -> (String, BTreeSet<u64>) {
    let mut s = String::from(HEADER);
    s.push('\n');
    let mut bad = BTreeSet::new();
    for i in 0..n {
        let name = match i {
            _ if i % 9 == 4 => String::new(),
            _ if i % 14 == 6 => format!("REFUSE {i}"),
            _ => format!("Client {i}"),
        };
        if i % 9 == 4 || i % 14 == 6 {
            bad.insert(i as u64 + 2);
        }
        s.push_str(&format!("R{i},{name},yes,r{i}@example.com,,UK>North,\n"));
    }
    (s, bad)
}

/// The owner id of the daemon whose state is in `dir` (made as it starts).
fn owner_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("state/owner-id")).unwrap_or_default().trim().to_string()
}

/// The lease body as it is now, if there is one.
async fn lease(c: &aws_sdk_s3::Client) -> Option<serde_json::Value> {
    let out = c.get_object().bucket(BUCKET).key(LEASE).send().await.ok()?;
    let bytes = out.body.collect().await.ok()?.into_bytes();
    serde_json::from_slice(&bytes).ok()
}

/// Waits until the daemon whose state is in `dir` holds the object's lease.
async fn wait_lease_of(c: &aws_sdk_s3::Client, dir: &Path) {
    let started = std::time::Instant::now();
    loop {
        let owner = owner_of(dir);
        if !owner.is_empty() && lease(c).await.is_some_and(|l| l["owner"] == owner) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{owner} never took the lease");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The seqs the progress in a lease names as in flight (write-ahead records).
fn in_flight(lease: &serde_json::Value) -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    for p in lease["progress"]["pending"].as_array().into_iter().flatten() {
        for r in p["seqs"].as_array().unwrap() {
            out.extend(r[0].as_u64().unwrap()..=r[1].as_u64().unwrap());
        }
    }
    out
}

/// The owner (the daemon of `dir_a`, which takes the lease first) and the other daemon.
async fn two_daemons(
    c: &aws_sdk_s3::Client,
    cfg_a: &Path,
    dir_a: &Path,
    cfg_b: &Path,
) -> (Daemon, Daemon) {
    let owner = Daemon::start_with(cfg_a, AWS_ENV);
    wait_lease_of(c, dir_a).await;
    (owner, Daemon::start_with(cfg_b, AWS_ENV))
}

const PLANNR_ROWS: usize = 600;

/// The Plannr object of [`PLANNR_ROWS`] put, its owner (reaching the CRM and S3 at
/// `owner_crm` and `owner_s3`) and the other daemon started, and a third of the clients
/// stored. Returns the daemons, their folders and the lines that must be reported.
async fn plannr_a_third_in(
    c: &aws_sdk_s3::Client,
    sb: &TestSandbox,
    s3: &str,
    owner_crm: &str,
    owner_s3: &str,
) -> (Daemon, Daemon, [tempfile::TempDir; 2], BTreeSet<u64>) {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cfg_a = plannr_config(a.path(), owner_crm, owner_s3, "40/s");
    let cfg_b = plannr_config(b.path(), &sb.url, s3, "40/s");
    let (file, bad) = plannr_clients(PLANNR_ROWS);
    moto::put(c, BUCKET, OBJECT, file).await;
    let (owner, other) = two_daemons(c, &cfg_a, a.path(), &cfg_b).await;
    let third = PLANNR_ROWS / 3;
    assert!(wait_until_async(Duration::from_secs(60), || stored(sb) >= third).await);
    (owner, other, [a, b], bad)
}

const REPSLY_ROWS: usize = 1500;

/// The Repsly object of [`REPSLY_ROWS`] put (its failing rows refused by the sandbox) and one
/// daemon of `dir` on it, a third of its rows received. Returns the sandbox, the daemon's
/// config, the daemon and the lines that must be reported.
async fn repsly_a_third_in(
    c: &aws_sdk_s3::Client,
    moto: &Moto,
    dir: &Path,
) -> (TestSandbox, PathBuf, Daemon, BTreeSet<u64>) {
    let options = SandboxOptions { refuse: Some("REFUSE".into()), ..Default::default() };
    let sb = TestSandbox::start(options).await;
    let cfg = repsly_config(dir, &sb.url, &moto.endpoint, "60/s");
    let (file, bad) = repsly_clients(REPSLY_ROWS);
    moto::put(c, BUCKET, OBJECT, file).await;
    let daemon = Daemon::start_with(&cfg, AWS_ENV);
    let third = wait_received(&sb, REPSLY_ROWS / 3, Duration::from_secs(60)).await;
    assert!(third, "{}", daemon.log());
    (sb, cfg, daemon, bad)
}

/// Clients Plannr has stored.
fn stored(sb: &TestSandbox) -> usize {
    common::plannr::stored(&futures::executor::block_on(sb.records())).len()
}

/// Waits until the object is in `processed/`, then stops `daemon`; its log.
async fn finishes(c: &aws_sdk_s3::Client, daemon: Daemon) -> String {
    let done = finished(c, "incoming/processed/").await;
    let (code, _, log) = daemon.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(done, ["incoming/processed/big.csv"], "{log}");
    log
}

/// The seqs of the Repsly rows (`R{seq}`) that reached the CRM more than once.
fn twice_sent(received: &BTreeMap<String, u64>) -> Vec<u64> {
    received.iter().filter(|(_, n)| **n > 1).map(|(code, _)| code[1..].parse().unwrap()).collect()
}

/// Waits until `prefix` holds a key.
async fn finished(c: &aws_sdk_s3::Client, prefix: &str) -> Vec<String> {
    moto::wait_for_keys(c, BUCKET, prefix, 1, Duration::from_secs(90)).await
}

/// The final report of the object: each failed line once, exactly `bad`, and the summary
/// counted once.
async fn check_report(c: &aws_sdk_s3::Client, rows: usize, bad: &BTreeSet<u64>, log: &str) {
    let summary: serde_json::Value =
        serde_json::from_slice(&moto::get(c, BUCKET, "incoming/reports/big.summary.json").await)
            .unwrap();
    let r = &summary["rows"];
    assert_eq!(r["read"], rows as u64, "{summary}\n{log}");
    assert_eq!(r["failed"], bad.len() as u64, "{summary}");
    assert_eq!(r["accepted"], (rows - bad.len()) as u64, "{summary}");
    let errors = moto::get(c, BUCKET, "incoming/reports/big.errors.csv").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("e.csv"), errors).unwrap();
    let lines: Vec<u64> =
        lines_and_stages(&dir.path().join("e.csv")).into_iter().map(|(l, _)| l).collect();
    let once: BTreeSet<u64> = lines.iter().copied().collect();
    assert_eq!(lines.len(), once.len(), "a failed row reported twice: {lines:?}");
    assert_eq!(&once, bad, "every failed row in the report, once");
}

/// Stored clients by email: each at most once, and exactly the good ones.
fn check_stored_once(records: &serde_json::Value, rows: usize, bad: &BTreeSet<u64>) {
    let emails = common::plannr::stored(records);
    let mut counted: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &emails {
        *counted.entry(e.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = counted.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "clients stored twice: {twice:?}");
    assert_eq!(emails.len(), rows - bad.len(), "every good client stored");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plannr_store_object_taken_over_after_kill_9_stores_each_client_once() {
    let Some(moto) = Moto::start_or_skip().await else { return };
    let c = moto.bucket(BUCKET).await;
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let rows = PLANNR_ROWS;
    let (owner, other, _dirs, bad) =
        plannr_a_third_in(&c, &sb, &moto.endpoint, &sb.url, &moto.endpoint).await;
    let at_kill = lease(&c).await.unwrap();
    owner.kill9();
    let stored_at_kill = stored(&sb);
    assert!(stored_at_kill < rows - bad.len(), "killed before the end: {stored_at_kill}");
    let log = finishes(&c, other).await;
    assert!(log.contains("resuming the object where the replica that held it stopped"), "{log}");
    let jobs = at_kill["progress"]["jobs"].as_array().map_or(0, Vec::len);
    assert!(jobs > 0, "the owner's imports were in its lease: {at_kill}");
    check_stored_once(&sb.records().await, rows, &bad);
    check_report(&c, rows, &bad, &log).await;
    // The summary lists the owner's imports as well as the other's: every import that
    // stored a client (at most 20 each), and none beyond the imports created.
    let summary: serde_json::Value =
        serde_json::from_slice(&moto::get(&c, BUCKET, "incoming/reports/big.summary.json").await)
            .unwrap();
    let listed = summary["remote_jobs"]["count"].as_u64().unwrap() as usize;
    let creates = sb.requests().await;
    let creates = creates.iter().filter(|r| r["method"] == "POST" && r["path"] == "/api/v1/import");
    assert!(listed >= (rows - bad.len()).div_ceil(20), "{summary}");
    assert!(listed <= creates.count(), "{summary}");
    assert!(moto::keys(&c, BUCKET, "incoming/.leases/").await.is_empty(), "lease released");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repsly_object_taken_over_after_kill_9_resends_only_what_the_lease_had_in_flight() {
    let Some(moto) = Moto::start_or_skip().await else { return };
    let c = moto.bucket(BUCKET).await;
    let options = SandboxOptions { refuse: Some("REFUSE".into()), ..Default::default() };
    let sb = TestSandbox::start(options).await;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cfg_a = repsly_config(a.path(), &sb.url, &moto.endpoint, "60/s");
    let cfg_b = repsly_config(b.path(), &sb.url, &moto.endpoint, "60/s");
    let rows = 1500;
    let (file, bad) = repsly_clients(rows);
    moto::put(&c, BUCKET, OBJECT, file).await;
    let (owner, other) = two_daemons(&c, &cfg_a, a.path(), &cfg_b).await;
    assert!(wait_received(&sb, rows / 3, Duration::from_secs(60)).await);
    owner.kill9();
    // The owner is dead: its lease holds its last progress until it expires.
    let at_kill = lease(&c).await.unwrap();
    let log = finishes(&c, other).await;
    let received = sb.received().await;
    assert_eq!(received.len(), rows - bad.len(), "every good row reached Repsly");
    let recorded = in_flight(&at_kill);
    let twice = twice_sent(&received);
    let blind: Vec<_> = twice.iter().filter(|s| !recorded.contains(s)).collect();
    assert!(blind.is_empty(), "sent twice without being recorded in flight: {blind:?}");
    eprintln!(
        "sent twice: {} rows, all of the {} the lease had in flight",
        twice.len(),
        recorded.len()
    );
    check_report(&c, rows, &bad, &log).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_whose_renewals_fail_stops_sending_before_its_lease_expires() {
    let Some(moto) = Moto::start_or_skip().await else { return };
    let c = moto.bucket(BUCKET).await;
    // The error reports on file storage, as Plannr keeps them: a report URL the sandbox made
    // from the owner's proxy would reach the other daemon through that proxy, without the
    // token the sandbox wants on its own origin.
    let real = RealApi { plannr_report_elsewhere: true, ..RealApi::default() };
    let sb = TestSandbox::start(SandboxOptions {
        latency: Duration::from_millis(10),
        real,
        ..Default::default()
    })
    .await;
    // The owner reaches S3 and the CRM through proxies: one fails its lease writes, the
    // other logs when each of its CRM requests left.
    let s3 = FaultProxy::start(&moto.endpoint).await;
    let crm = FaultProxy::start(&sb.url).await;
    let rows = PLANNR_ROWS;
    let (owner, other, dirs, bad) =
        plannr_a_third_in(&c, &sb, &moto.endpoint, &crm.endpoint, &s3.endpoint).await;
    let a = &dirs[0];
    s3.add("PUT", &format!("/{BUCKET}/{LEASE}"), Fault::SlowDown, 1_000_000);
    assert!(wait_until_async(Duration::from_secs(30), || !s3.injected().is_empty()).await);
    // Its writes are one at a time: once one failed, the lease holds its last good one.
    let last = lease(&c).await.unwrap();
    assert_eq!(last["owner"], owner_of(a.path()));
    let expires_at = last["expires_at_ms"].as_u64().unwrap();
    let log_b = finishes(&c, other).await;
    let (_, _, log_a) = owner.terminate();
    assert!(log_a.contains("could not be renewed before its deadline"), "{log_a}");
    assert!(log_b.contains("resuming the object where the replica that held it stopped"));
    let sent = crm.arrived();
    let last_sent = sent.iter().map(|r| r.at_ms).max().unwrap();
    let after: Vec<_> = sent.iter().filter(|r| r.at_ms >= expires_at).collect();
    assert!(after.is_empty(), "requests after the lease expired: {after:?}");
    eprintln!(
        "the fenced replica's last request left {} ms before its lease expired",
        expires_at - last_sent
    );
    check_stored_once(&sb.records().await, rows, &bad);
    check_report(&c, rows, &bad, &log_b).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_that_finds_its_lease_taken_leaves_the_object_quietly() {
    let Some(moto) = Moto::start_or_skip().await else { return };
    let c = moto.bucket(BUCKET).await;
    let dir = tempfile::tempdir().unwrap();
    let (sb, _, daemon, bad) = repsly_a_third_in(&c, &moto, dir.path()).await;
    let rows = REPSLY_ROWS;
    // Another daemon takes the lease (written over, as after an expiry): the holder's next
    // conditional write of its progress fails.
    let mut taken = lease(&c).await.unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    taken["owner"] = "other-host".into();
    taken["expires_at_ms"] = (now.as_millis() as u64 + 600_000).into();
    moto::put(&c, BUCKET, LEASE, taken.to_string()).await;
    let said = |d: &Daemon| d.log().contains("no report or move from here");
    assert!(wait_until_async(Duration::from_secs(30), || said(&daemon)).await, "{}", daemon.log());
    let (code, _, log) = daemon.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("the lease was taken by another daemon"), "{log}");
    let all = moto::keys(&c, BUCKET, "incoming/").await;
    assert!(all.contains(&OBJECT.to_string()), "the object left in place: {all:?}");
    let filed = ["incoming/reports/", "incoming/processed/", "incoming/failed/"];
    let out: Vec<_> = all.iter().filter(|k| filed.iter().any(|f| k.starts_with(f))).collect();
    assert!(out.is_empty(), "no report, no move: {out:?}");
    assert_eq!(lease(&c).await.unwrap(), taken, "the other daemon's lease left as it wrote it");
    let sent = sb.received().await.len();
    assert!(sent < rows - bad.len(), "stopped before the end: {sent} rows sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_object_whose_credentials_are_refused_waits_holding_its_lease_then_goes_on() {
    let Some(moto) = Moto::start_or_skip().await else { return };
    let c = moto.bucket(BUCKET).await;
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = repsly_config(dir.path(), &sb.url, &moto.endpoint, "1000/s");
    let secret = dir.path().join("password");
    std::fs::write(&secret, "wrong\n").unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "password = \"sandbox\"",
        &format!("password_file = \"{}\"\nauth_retry = \"1s\"", secret.display()),
    );
    std::fs::write(&cfg, text).unwrap();
    moto::put(&c, BUCKET, OBJECT, clean_rows("H", 40)).await;
    let daemon = Daemon::start_with(&cfg, AWS_ENV);
    let held = |d: &Daemon| d.log().contains("the file waits at its checkpoint");
    assert!(wait_until_async(Duration::from_secs(30), || held(&daemon)).await, "{}", daemon.log());
    // While it waits, the lease stays this daemon's and is renewed (no other replica takes
    // the object from under it), and the object stays in place.
    let before = lease(&c).await.unwrap();
    let started = std::time::Instant::now();
    let later = loop {
        let now = lease(&c).await.unwrap();
        if now["expires_at_ms"] != before["expires_at_ms"] || started.elapsed().as_secs() > 10 {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(later["expires_at_ms"], before["expires_at_ms"], "renewed while it waits");
    assert_eq!(later["owner"], owner_of(dir.path()));
    assert!(moto::keys(&c, BUCKET, "incoming/processed/").await.is_empty());
    std::fs::write(&secret, "sandbox\n").unwrap();
    let log = finishes(&c, daemon).await;
    let received = sb.received().await;
    assert_eq!(received.len(), 40, "every row arrived: {log}");
    assert!(received.values().all(|n| *n == 1), "once each: {received:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_daemon_killed_and_started_again_resumes_its_object() {
    let Some(moto) = Moto::start_or_skip().await else { return };
    let c = moto.bucket(BUCKET).await;
    let dir = tempfile::tempdir().unwrap();
    let (sb, cfg, first, bad) = repsly_a_third_in(&c, &moto, dir.path()).await;
    let rows = REPSLY_ROWS;
    first.kill9();
    let at_kill = lease(&c).await.unwrap();
    let log = finishes(&c, Daemon::start_with(&cfg, AWS_ENV)).await;
    let received = sb.received().await;
    assert_eq!(received.len(), rows - bad.len());
    // Whichever record it resumes from (its own ledger, or its lease when that is further),
    // a row is sent again only where a create of it was recorded in flight.
    let recorded = in_flight(&at_kill);
    let twice = twice_sent(&received);
    let blind: Vec<_> = twice.iter().filter(|s| !recorded.contains(s)).collect();
    assert!(blind.is_empty(), "sent twice without being recorded in flight: {blind:?}");
    check_report(&c, rows, &bad, &log).await;
}

/// The S3 requests one daemon makes for one object, counted through a proxy: lease writes
/// (the take, renewals and progress) and report segments, against the object's rows and the
/// creates it took. Prints the figures.
async fn lease_writes(
    rows: usize,
    plannr: bool,
    (latency_ms, rate): (u64, &str),
) -> (usize, usize, usize, Duration) {
    let moto = Moto::start().await;
    let c = moto.bucket(BUCKET).await;
    let options = SandboxOptions {
        refuse: Some("REFUSE".into()),
        latency: Duration::from_millis(latency_ms),
        ..Default::default()
    };
    let sb = TestSandbox::start(options).await;
    let s3 = FaultProxy::start(&moto.endpoint).await;
    let dir = tempfile::tempdir().unwrap();
    let (cfg, (file, bad)) = if plannr {
        (plannr_config(dir.path(), &sb.url, &s3.endpoint, rate), plannr_clients(rows))
    } else {
        let cfg = repsly_config(dir.path(), &sb.url, &s3.endpoint, rate);
        let text = std::fs::read_to_string(&cfg).unwrap().replace("max_rows = 25", "max_rows = 50");
        std::fs::write(&cfg, text).unwrap();
        (cfg, repsly_clients(rows))
    };
    moto::put(&c, BUCKET, OBJECT, file).await;
    let started = std::time::Instant::now();
    let log = finishes(&c, Daemon::start_with(&cfg, AWS_ENV)).await;
    let took = started.elapsed();
    check_report(&c, rows, &bad, &log).await;
    let arrived = s3.arrived();
    let puts =
        |p: &str| arrived.iter().filter(|r| r.method == "PUT" && r.path.starts_with(p)).count();
    let lease_path = format!("/{BUCKET}/{LEASE}");
    let parts = puts(&format!("{lease_path}.parts/"));
    let lease = puts(&lease_path) - parts;
    let create = if plannr { "/api/v1/import" } else { "/v3/import/clientList" };
    let creates =
        sb.requests().await.iter().filter(|r| r["method"] == "POST" && r["path"] == create).count();
    eprintln!(
        "{} object of {rows} rows ({} failed), CRM latency {latency_ms} ms at {rate}, {creates} creates in {took:.1?}: {lease} lease writes and {parts} report segments ({:.2} lease writes per create, {:.1} per 1,000 rows)",
        if plannr { "Plannr store" } else { "Repsly" },
        bad.len(),
        lease as f64 / creates as f64,
        lease as f64 * 1000.0 / rows as f64,
    );
    (lease, parts, creates, took)
}

#[tokio::test(flavor = "multi_thread")]
async fn lease_writes_per_object_are_bounded_by_its_creates() {
    if !have_tool("moto_server", "python3 -m pip install 'moto[server]'") {
        return;
    }
    // A fast CRM (creates in flight together share writes) and a slow, rate-limited one.
    let cases = [
        (3000, false, (20, "1000/s")),
        (1000, true, (20, "1000/s")),
        (1500, false, (100, "20/s")),
        (600, true, (100, "20/s")),
    ];
    for (rows, plannr, crm) in cases {
        let (lease, parts, creates, took) = lease_writes(rows, plannr, crm).await;
        // At most: the take, the record of each create and of its job, the last checkpoint,
        // the ledger's checkpoints (one every 250 ms at most), and renewals (between writes).
        let timed = (took.as_millis() / 250 + 1) as usize;
        let most = 2 * creates + 3 + timed;
        assert!(lease <= most, "{lease} lease writes for {creates} creates in {took:?}");
        assert!(parts <= 4, "{parts} segments");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lease_whose_progress_cannot_be_taken_over_is_never_sent_blind() {
    let Some(moto) = Moto::start_or_skip().await else { return };
    let c = moto.bucket(BUCKET).await;
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = repsly_config(dir.path(), &sb.url, &moto.endpoint, "1000/s");
    let expired =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
            as u64
            - 1000;
    // An expired lease whose progress names a report segment that is not there...
    moto::put(&c, BUCKET, "incoming/gone.csv", clean_rows("G", 5)).await;
    let head = c.head_object().bucket(BUCKET).key("incoming/gone.csv").send().await.unwrap();
    let progress = serde_json::json!({
        "writer": "dead-host", "etag": head.e_tag().unwrap(), "report_stem": "gone",
        "started_at": "t", "watermark": 2, "counts": {"read": 2, "accepted": 1, "failed": 1, "unprocessed": 0},
        "errors": {"bytes": 10, "segments": [{"key": "incoming/.leases/gone.csv.parts/x", "len": 10}], "tail": ""}
    });
    let body =
        serde_json::json!({"owner": "dead-host", "expires_at_ms": expired, "progress": progress});
    moto::put(&c, BUCKET, "incoming/.leases/gone.csv", body.to_string()).await;
    // ...and one that is not a lease at all.
    moto::put(&c, BUCKET, "incoming/torn.csv", clean_rows("T", 5)).await;
    moto::put(&c, BUCKET, "incoming/.leases/torn.csv", "{\"owner\": \"dead-ho").await;
    let daemon = Daemon::start_with(&cfg, AWS_ENV);
    let said = |d: &Daemon| {
        let log = d.log();
        log.contains("cannot take over the progress the object's lease carries")
            && log.contains("lease incoming/.leases/torn.csv cannot be read")
    };
    assert!(wait_until_async(Duration::from_secs(30), || said(&daemon)).await, "{}", daemon.log());
    let (code, _, log) = daemon.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(sb.received().await.is_empty(), "nothing sent without its progress: {log}");
    let all = moto::keys(&c, BUCKET, "incoming/").await;
    for key in ["incoming/gone.csv", "incoming/torn.csv", "incoming/.leases/torn.csv"] {
        assert!(all.contains(&key.to_string()), "{key} left in place: {all:?}");
    }
    let kept: serde_json::Value =
        serde_json::from_slice(&moto::get(&c, BUCKET, "incoming/.leases/gone.csv").await).unwrap();
    for field in ["writer", "watermark", "errors", "etag"] {
        assert_eq!(kept["progress"][field], progress[field], "the earlier holder's {field} kept");
    }
}
