//! Notifications against the real daemon: signed webhooks with unique ids, retried through a
//! receiver that refuses at first; the outbox across a `kill -9` with the receiver down;
//! Slack texts; email over SMTP; a stopped connection and a full disk told; secrets kept out
//! of the logs;
//! and `check` refusing bad `[[notify]]` tables with their lines.

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::receiver::{Receiver, SmtpReceiver};
use common::*;
use crm_ingest::notify::sign;
use crm_ingest::sandbox::SandboxOptions;

const HOOK_SECRET: &str = "whsec-Very-Secret-Signing-Key";
const URL_TOKEN: &str = "tok-Path-Secret-4f9a";

fn append(config: &Path, text: &str) {
    let mut all = std::fs::read_to_string(config).unwrap();
    all.push_str(text);
    std::fs::write(config, all).unwrap();
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn ledger_outbox(dir: &Path) -> Vec<(String, u32)> {
    let db = rusqlite::Connection::open(dir.join("state/ledger.sqlite3")).unwrap();
    let mut stmt = db.prepare("SELECT type, attempts FROM outbox").unwrap();
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    rows.map(Result::unwrap).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_are_signed_retried_and_carry_unique_ids() {
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let hook = Receiver::start("127.0.0.1:0", 2).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new(&sb.url));
    let ops = with_server(&config);
    append(
        &config,
        &format!(
            r#"
[[notify]]
kind = "webhook"
url = "${{HOOK_URL}}"
secret = "${{HOOK_SECRET}}"
retry = {{ initial_backoff = "200ms", max_backoff = "1s" }}

[[notify]]
kind = "slack"
url = "{}/slack"
events = ["file.rows_failed", "file.failed"]
"#,
            hook.url
        ),
    );
    let hook_path = format!("/hook/{URL_TOKEN}");
    let hook_url = format!("{}{hook_path}", hook.url);
    let env = [("HOOK_URL", hook_url.as_str()), ("HOOK_SECRET", HOOK_SECRET)];
    let daemon = Daemon::start_with(&config, &env);
    drop_three(&dir.path().join("inbox"));
    let all_in = wait_until_async(Duration::from_secs(60), || {
        hook.accepted(&hook_path).len() >= 3 && hook.accepted("/slack").len() >= 2
    })
    .await;
    assert!(all_in, "{:#?}", hook.seen());
    let (code, _, logs) = daemon.terminate();
    assert_eq!(code, Some(0), "{logs}");

    let seen = hook.seen();
    let webhook: Vec<_> = seen.iter().filter(|r| r.path == hook_path).collect();
    for r in &webhook {
        let header = r.headers.get(sign::HEADER).expect("signed");
        sign::verify(HOOK_SECRET.as_bytes(), header, r.body.as_bytes(), unix_now(), 300)
            .unwrap_or_else(|e| panic!("{e}: {header} over {}", r.body));
        assert_eq!(r.headers["x-crm-ingest-id"], r.json()["id"]);
        assert_eq!(r.headers["x-crm-ingest-event"], r.json()["type"]);
        assert_eq!(r.headers["content-type"], "application/json");
    }
    let accepted = hook.accepted(&hook_path);
    let ids: BTreeSet<String> = accepted.iter().map(|b| b["id"].as_str().unwrap().into()).collect();
    assert_eq!(ids.len(), accepted.len(), "one id per event: {accepted:#?}");
    let refused: Vec<_> = seen.iter().filter(|r| r.status == 500).collect();
    assert_eq!(refused.len(), 2);
    let all_ids: BTreeSet<String> = seen
        .iter()
        .filter(|r| r.path == hook_path)
        .map(|r| r.json()["id"].as_str().unwrap().to_string())
        .collect();
    for r in refused.iter().filter(|r| r.path == hook_path) {
        let id = r.json()["id"].as_str().unwrap().to_string();
        assert!(ids.contains(&id), "a refused event came again with its id: {id}");
    }
    assert_eq!(all_ids, ids, "retries re-send the same ids, nothing new");

    let by_file = |f: &str| accepted.iter().find(|b| b["file"] == f).unwrap().clone();
    let good = by_file("good.csv");
    assert_eq!(good["type"], "file.finished");
    assert_eq!(good["rows"]["accepted"], 3);
    assert_eq!(good["pipeline"], "clients");
    let bad = by_file("bad.csv");
    assert_eq!(bad["type"], "file.rows_failed");
    assert_eq!((bad["rows"]["read"].as_u64(), bad["rows"]["failed"].as_u64()), (Some(2), Some(1)));
    assert_eq!(bad["report"], "bad.errors.csv");
    assert!(bad["message"].as_str().unwrap().contains("1 of 2 rows did not arrive"), "{bad}");
    assert_eq!(by_file("broken.csv")["type"], "file.failed");
    for b in &accepted {
        let url = b["console_url"].as_str().unwrap();
        assert!(url.starts_with(&format!("{ops}/files/")), "{url}");
        assert!(b["at"].as_str().unwrap().ends_with('Z'));
    }

    let slack: Vec<String> =
        hook.accepted("/slack").iter().map(|b| b["text"].as_str().unwrap().to_string()).collect();
    assert_eq!(slack.len(), 2, "only the events it asked for: {slack:?}");
    assert!(slack.iter().any(|t| t.contains("file.rows_failed") && t.contains("bad.csv")));
    assert!(slack.iter().all(|t| t.contains("Open in the console")), "{slack:?}");

    for secret in [HOOK_SECRET, URL_TOKEN] {
        assert!(!logs.contains(secret), "{secret} reached the log");
    }
    assert!(logs.contains("notification not delivered; trying again later"), "{logs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_outbox_keeps_events_across_a_restart_with_the_receiver_down() {
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new(&sb.url));
    let port = free_port();
    append(
        &config,
        &format!("\n[[notify]]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\n"),
    );
    let daemon = Daemon::start(&config);
    std::fs::write(dir.path().join("inbox/a.csv"), clean_rows("A", 4)).unwrap();
    let tried =
        wait_until(Duration::from_secs(30), || daemon.log().contains("notification not delivered"));
    assert!(tried, "{}", daemon.log());
    daemon.kill9();
    let waiting = ledger_outbox(dir.path());
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(waiting[0].0, "file.finished");
    assert!(waiting[0].1 >= 1, "an attempt was recorded: {waiting:?}");

    let hook = Receiver::start(&format!("127.0.0.1:{port}"), 0).await;
    let daemon = Daemon::start(&config);
    let arrived =
        wait_until_async(Duration::from_secs(30), || !hook.accepted("/hook").is_empty()).await;
    assert!(arrived, "{}", daemon.log());
    let (code, _, logs) = daemon.terminate();
    assert_eq!(code, Some(0), "{logs}");
    let got = hook.accepted("/hook");
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(
        (got[0]["type"].as_str(), got[0]["file"].as_str()),
        (Some("file.finished"), Some("a.csv"))
    );
    assert!(!hook.seen()[0].headers.contains_key(sign::HEADER), "no secret: no signature");
    assert!(ledger_outbox(dir.path()).is_empty(), "delivered rows leave the outbox");
    assert!(sb.received().await.values().all(|n| *n == 1), "the file was not imported twice");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_connection_is_told() {
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let hook = Receiver::start("127.0.0.1:0", 0).await;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = ConfigOptions::new(&sb.url);
    opts.password = "wrong";
    let config = write_config(dir.path(), &opts);
    append(
        &config,
        &format!(
            "\n[[notify]]\nkind = \"webhook\"\nurl = \"{}/hook\"\nevents = [\"connection.stopped\"]\npipelines = [\"clients\"]\n",
            hook.url
        ),
    );
    let daemon = Daemon::start(&config);
    std::fs::write(dir.path().join("inbox/a.csv"), clean_rows("S", 2)).unwrap();
    let told =
        wait_until_async(Duration::from_secs(30), || !hook.accepted("/hook").is_empty()).await;
    assert!(told, "{}", daemon.log());
    daemon.terminate();
    let got = hook.accepted("/hook");
    assert_eq!(got[0]["type"], "connection.stopped");
    assert_eq!(got[0]["connection"], "repsly");
    assert!(got[0]["message"].as_str().unwrap().contains("401"), "{}", got[0]);
    assert_eq!(got.len(), 1, "told once: {got:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn email_goes_out_over_smtp() {
    const SMTP_PW: &str = "smtp-Pass-Word-77";
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let relay = SmtpReceiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new(&sb.url));
    let ops = with_server(&config);
    append(
        &config,
        &format!(
            "\n[[notify]]\nkind = \"email\"\nsmtp_url = \"smtp://crm:${{SMTP_PW}}@127.0.0.1:{}\"\nfrom = \"crm-ingest <crm@example.com>\"\nto = [\"ops@example.com\", \"lead@example.com\"]\n",
            relay.port
        ),
    );
    let daemon = Daemon::start_with(&config, &[("SMTP_PW", SMTP_PW)]);
    std::fs::write(dir.path().join("inbox/m.csv"), clean_rows("M", 3)).unwrap();
    let sent = wait_until_async(Duration::from_secs(30), || !relay.mails().is_empty()).await;
    assert!(sent, "{}", daemon.log());
    let (_, _, logs) = daemon.terminate();
    let mail = &relay.mails()[0];
    assert!(mail.from.contains("crm@example.com"), "{mail:?}");
    assert_eq!(mail.to.len(), 2, "{mail:?}");
    assert!(
        mail.data.contains("Subject: crm-ingest file.finished: m.csv: all 3 rows accepted"),
        "{}",
        mail.data
    );
    assert!(mail.data.contains(&format!("{ops}/files/")), "{}", mail.data);
    use base64::Engine;
    let auth =
        base64::engine::general_purpose::STANDARD.decode(mail.auth.as_deref().unwrap()).unwrap();
    assert_eq!(
        auth,
        format!("\0crm\0{SMTP_PW}").into_bytes(),
        "signed in with the URL's credentials"
    );
    assert!(!logs.contains(SMTP_PW), "the SMTP password reached the log");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_report_disk_is_told_once() {
    let dir = tempfile::tempdir().unwrap();
    let Some(fs) = common::tmpfs::Tmpfs::mount(&dir.path().join("reports-fs"), "256k") else {
        return;
    };
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let hook = Receiver::start("127.0.0.1:0", 0).await;
    let config = write_config(dir.path(), &ConfigOptions::new(&sb.url));
    let reports = fs.0.join("reports");
    std::fs::create_dir_all(&reports).unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "batch = { max_rows = 10, max_wait = \"100ms\" }",
        &format!(
            "batch = {{ max_rows = 10, max_wait = \"100ms\" }}\nreport_dir = \"{}\"",
            reports.display()
        ),
    );
    std::fs::write(&config, text).unwrap();
    let events = "events = [\"disk.blocked\", \"file.rows_failed\"]";
    append(
        &config,
        &format!("\n[[notify]]\nkind = \"webhook\"\nurl = \"{}/hook\"\n{events}\n", hook.url),
    );
    let filler = common::tmpfs::fill(&fs.0);
    let mut rows = format!("{HEADER}\n");
    for i in 0..200 {
        rows.push_str(&format!(
            "D{i},,yes,,,,a note so that each refused row takes room in the report\n"
        ));
    }
    std::fs::write(dir.path().join("inbox/d.csv"), rows).unwrap();
    let daemon = Daemon::start(&config);
    let told =
        wait_until_async(Duration::from_secs(30), || !hook.accepted("/hook").is_empty()).await;
    assert!(told, "{}", daemon.log());
    // Retried in cycles that clear the problem for a moment: still one event.
    tokio::time::sleep(Duration::from_secs(4)).await;
    std::fs::remove_file(filler).unwrap();
    let done =
        wait_until_async(Duration::from_secs(60), || hook.accepted("/hook").len() >= 2).await;
    assert!(done, "{}", daemon.log());
    daemon.terminate();
    let got = hook.accepted("/hook");
    let types: Vec<&str> = got.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["disk.blocked", "file.rows_failed"], "{got:#?}");
    let message = got[0]["message"].as_str().unwrap();
    assert!(message.contains(&reports.display().to_string()), "names the path: {message}");
    assert_eq!(got[0]["pipeline"], serde_json::Value::Null);
}

#[test]
fn check_refuses_bad_notify_tables_naming_each_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new("http://127.0.0.1:1"));
    append(
        &config,
        r#"
[[notify]]
kind = "webhook"
url = "https://example.com/h"
secert = "x"
events = ["file.failed", "file.exploded"]
pipelines = ["clients", "nope"]

[[notify]]
kind = "pager"

[[notify]]
kind = "slack"

[[notify]]
kind = "email"
smtp_url = "ftp://mail.example.com"
from = "not an address"
to = "ops@example.com"
"#,
    );
    let out = run(&["check", "--config", config.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let text = std::fs::read_to_string(&config).unwrap();
    let line = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    for (needle, expect) in [
        ("secert", "unknown key `notify.secert` (did you mean `secret`?)".to_string()),
        ("file.exploded", "unknown event `file.exploded`".into()),
        ("\"nope\"", "unknown pipeline `nope`".into()),
        ("\"pager\"", "kind `pager` is not webhook, slack or email".into()),
        ("kind = \"slack\"", "`url` is required".into()),
        ("ftp://", "`smtp_url` is not an smtp:// or smtps:// URL".into()),
        ("not an address", "`from` = `not an address` is not an email address".into()),
    ] {
        let want = format!("line {}: ", line(needle));
        assert!(
            err.lines().any(|l| l.contains(&want) && l.contains(&expect)),
            "{expect} at {want}: {err}"
        );
    }
}
