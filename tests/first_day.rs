//! The operator's first day (issue 21): `init` on a Plannr export writes what Plannr requires,
//! `check` and `plan` refuse what Plannr will refuse, a typo in a target is named, and `status`
//! says what to add when no daemon answers.

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use crm_ingest::sandbox::SandboxOptions;

/// The binary's (exit code, stdout, stderr).
fn run_text(args: &[&str]) -> (i32, String, String) {
    let out = run(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A Plannr client export as an adviser's back office writes it: one date of birth that no
/// format reads (31 February) among the others.
fn plannr_export(dir: &Path) -> PathBuf {
    let exports = dir.join("exports");
    std::fs::create_dir_all(&exports).unwrap();
    let mut text = String::from("Title,First Name,Surname,Email,DOB,Mobile\n");
    for i in 0..30 {
        let dob =
            if i == 7 { "31/02/1962".to_string() } else { format!("{:02}/05/1962", i % 28 + 1) };
        text.push_str(&format!(
            "Mr,Person{i},Surname{i},person{i}@example.com,{dob},07700 9{i:05}\n"
        ));
    }
    let sample = exports.join("clients.csv");
    std::fs::write(&sample, text).unwrap();
    sample
}

fn init(target: &str, sample: &Path, output: &Path) -> (i32, String, String) {
    run_text(&[
        "init",
        "--target",
        target,
        "--output",
        output.to_str().unwrap(),
        sample.to_str().unwrap(),
    ])
}

fn plan(config: &Path, pipeline: &str, reports: &Path, file: &Path) -> (i32, String, String) {
    run_text(&[
        "plan",
        "--config",
        config.to_str().unwrap(),
        "--pipeline",
        pipeline,
        "--report-dir",
        reports.to_str().unwrap(),
        file.to_str().unwrap(),
    ])
}

/// Row 1: `init` writes `send_welcome_email` as a visible constant, its config passes `check`,
/// and every row `plan` promises is one the CRM (the sandbox, which requires the field as
/// Plannr does) accepts. Row 2: the odd date keeps the `date:` transform and is named.
/// Row 3: the config has a loopback `[server]`.
#[tokio::test(flavor = "multi_thread")]
async fn init_on_a_plannr_export_writes_what_plannr_requires_and_plan_keeps_its_promise() {
    let dir = tempfile::tempdir().unwrap();
    let sample = plannr_export(dir.path());
    let config = dir.path().join("crm-ingest.toml");
    let (code, _, err) = init("plannr.import.clients", &sample, &config);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&config).unwrap();
    for line in [
        "send_welcome_email = { value = \"false\" }  # REQUIRED by Plannr",
        "date_of_birth = { column = \"DOB\", transform = [\"date:%d/%m/%Y\"] }",
        "# date_of_birth: 1 of the sample's 30 dates are not dd/mm/yyyy: \"31/02/1962\" (line 9)",
        "mode = \"store\"",
        "[server]",
        "listen = \"127.0.0.1:9464\"",
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
    let (code, out, err) = run_text(&["check", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("send_welcome_email"), "{out}");

    let (code, _, err) = plan(&config, "plannr_clients", &dir.path().join("plan"), &sample);
    assert_eq!(code, 0, "{err}");
    let planned = summary(&dir.path().join("plan/clients.summary.json"));
    assert_eq!(planned["rows"]["accepted"], 29, "all but the odd date: {planned}");
    assert_eq!(lines_and_stages(&dir.path().join("plan/clients.errors.csv")), [(9, "map".into())]);

    // The same config against the sandbox: what plan promised is what the CRM accepts.
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let text = text.replace("https://api.plannrcrm.com", &sb.url);
    std::fs::write(&config, text).unwrap();
    let out = Command::new(bin())
        .args(["once", "--config", config.to_str().unwrap(), "--pipeline", "plannr_clients"])
        .arg("--report-dir")
        .arg(dir.path().join("once"))
        .arg(&sample)
        .env("PLANNR_TOKEN", "sandbox-token")
        .env("PLANNR_ACCOUNT_UUID", common::plannr::ACCOUNT)
        .output()
        .unwrap();
    let sent = summary(&dir.path().join("once/clients.summary.json"));
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(sent["rows"]["accepted"], planned["rows"]["accepted"], "{sent}");
    assert_eq!(sent["failed_by_stage"].get("remote"), None, "the CRM refused nothing: {sent}");
}

/// `init` on a plan export that names each plan's client by email (no uuid column) writes
/// a lookup for `client_uuid`; the config passes `check`, and `plan` (offline, so nothing is
/// looked up) accepts every row rather than failing each as a missing or malformed uuid.
#[test]
fn init_on_a_plan_export_with_client_emails_writes_a_lookup_that_checks() {
    let dir = tempfile::tempdir().unwrap();
    let exports = dir.path().join("exports");
    std::fs::create_dir_all(&exports).unwrap();
    let mut text = String::from("Client Email,Plan Type,Provider,Date Opened\n");
    for i in 0..5 {
        text.push_str(&format!("client{i}@example.com,Pension,Aviva,0{}/02/2020\n", i + 1));
    }
    let sample = exports.join("plans.csv");
    std::fs::write(&sample, text).unwrap();
    let config = dir.path().join("crm-ingest.toml");
    let (code, _, err) = init("plannr.import.plans", &sample, &config);
    assert_eq!(code, 0, "{err}");
    let written = std::fs::read_to_string(&config).unwrap();
    let line = "client_uuid = { column = \"Client Email\", lookup = { by = \"email\" } }";
    assert!(written.contains(line), "missing `{line}` in:\n{written}");
    let (code, out, err) = run_text(&["check", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("client_uuid"), "{out}");
    let (code, _, err) = plan(&config, "plannr_plans", &dir.path().join("plan"), &sample);
    assert_eq!(code, 0, "{err}");
    let planned = summary(&dir.path().join("plan/plans.summary.json"));
    assert_eq!(planned["rows"]["accepted"], 5, "{planned}");
}

/// Row 1: a clients pipeline that does not map `send_welcome_email` is refused by `check`
/// and `plan`; a mapped one whose cell is empty fails that row in `plan`, before any request.
#[test]
fn a_plannr_clients_pipeline_without_send_welcome_email_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::plannr::config(dir.path(), "http://127.0.0.1:9", "store", "t");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let without =
        text.replace("send_welcome_email = { column = \"Welcome\", transform = [\"bool\"] }\n", "");
    std::fs::write(&cfg, &without).unwrap();
    let (code, _, err) = run_text(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "plannr.import.clients requires field `send_welcome_email`, which is not mapped"
        ),
        "{err}"
    );
    let file = dir.path().join("new.csv");
    let mut rows = common::plannr::clients(4, &[], &[]);
    rows = rows.replace(
        "Person2,Surname2,person2@example.com,no,",
        "Person2,Surname2,person2@example.com,,",
    );
    std::fs::write(&file, &rows).unwrap();
    let (code, _, err) = plan(&cfg, "clients", &dir.path().join("p"), &file);
    assert_eq!(code, 2, "plan refuses the config too: {err}");

    std::fs::write(&cfg, &text).unwrap();
    let (code, _, err) = plan(&cfg, "clients", &dir.path().join("p"), &file);
    assert_eq!(code, 0, "{err}");
    let s = summary(&dir.path().join("p/new.summary.json"));
    assert_eq!(s["rows"]["accepted"], 3, "{s}");
    let report = read_report(&dir.path().join("p/new.errors.csv"));
    assert_eq!(
        report[1][5..],
        ["4", "validate", "send_welcome_email", "send_welcome_email: is required"]
    );
}

/// Row 1: the documented value lists and the plan import's required `client_uuid`.
#[test]
fn plannr_plans_and_premiums_keep_their_documented_rules() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    let config = dir.path().join("c.toml");
    let base = format!(
        r#"
state_dir = "{d}/state"
[connections.plannr]
kind = "plannr"
token = "t"
account_uuid = "a"
[pipelines.plans]
connection = "plannr"
target = "plannr.import.plans"
source = {{ kind = "folder", path = "{d}/in" }}
[pipelines.plans.fields]
name = "Plan"
[pipelines.premiums]
connection = "plannr"
target = "plannr.import.premiums"
source = {{ kind = "folder", path = "{d}/in" }}
[pipelines.premiums.fields]
payment_method = "Method"
transfer_type = "Transfer"
"#,
        d = dir.path().display()
    );
    std::fs::write(&config, &base).unwrap();
    let (code, _, err) = run_text(&["check", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("requires field `client_uuid`"), "{err}");
    std::fs::write(
        &config,
        base.replace("name = \"Plan\"", "name = \"Plan\"\nclient_uuid = \"Client\""),
    )
    .unwrap();
    let file = dir.path().join("premiums.csv");
    std::fs::write(
        &file,
        "Method,Transfer\ndirect debit,switch\nDirect Debit,switch\ncheque,transfer\n",
    )
    .unwrap();
    let (code, _, err) = plan(&config, "premiums", &dir.path().join("p"), &file);
    assert_eq!(code, 0, "{err}");
    let report = read_report(&dir.path().join("p/premiums.errors.csv"));
    let lines: Vec<&str> = report[1..].iter().map(|r| r[2].as_str()).collect();
    assert_eq!(lines, ["3", "4"], "{report:?}");
    assert!(report[2][5].contains("`cheque` is not one of salary sacrifice"), "{report:?}");
}

/// Row 4: a target one letter off is refused by `init` and `check`, naming the closest and
/// the known ones.
#[test]
fn a_mistyped_target_is_refused_with_the_closest_known_one() {
    let dir = tempfile::tempdir().unwrap();
    let sample = plannr_export(dir.path());
    let config = dir.path().join("out.toml");
    let (code, _, err) = init("plannr.import.client", &sample, &config);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "unknown target `plannr.import.client` (did you mean `plannr.import.clients`?)"
        ),
        "{err}"
    );
    assert!(err.contains("repsly.clients") && err.contains("plannr.import.premiums"), "{err}");
    assert!(!config.exists(), "nothing written");

    let cfg = common::plannr::config(dir.path(), "http://127.0.0.1:9", "store", "t");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("plannr.import.clients", "plannr.import.client")).unwrap();
    let (code, _, err) = run_text(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("did you mean `plannr.import.clients`?"), "{err}");
}

/// Row 3: with no daemon answering, `status` says what the config needs.
#[test]
fn status_without_a_daemon_says_what_to_add() {
    let url = format!("http://127.0.0.1:{}/status", free_port());
    let (code, _, err) = run_text(&["status", "--url", &url]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no daemon answers"), "{err}");
    assert!(err.contains("[server]\n  listen = \"127.0.0.1:9464\""), "{err}");
}

/// Row 10: logs that go to a file or a pipe are plain text, pretty format included.
#[test]
fn logs_off_a_terminal_carry_no_colour() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new("http://127.0.0.1:9"));
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("format = \"json\"", "format = \"pretty\"");
    std::fs::write(&config, text).unwrap();
    let daemon = Daemon::start(&config);
    assert!(wait_until(std::time::Duration::from_secs(10), || daemon
        .log()
        .contains("crm-ingest running")));
    let (code, _, log) = daemon.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains(" INFO ") || log.contains("INFO"), "pretty lines: {log}");
    assert!(!log.contains('\u{1b}'), "no colour codes: {log:?}");
}

/// Row 10: the demo prints no address of a sandbox that is gone once it exits.
#[test]
fn the_demo_prints_no_dead_sandbox_address() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run_text(&["demo", "--dir", dir.path().join("demo").to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("clients-clean.csv -> repsly.clients"), "{out}");
    assert!(!out.contains("http://") && !out.contains("_sandbox"), "{out}");
}

/// Row 9: a fixed errors file dropped back in is reported under the original's name, round
/// after round (never `x.errors.errors.csv`).
#[tokio::test(flavor = "multi_thread")]
async fn an_errors_file_dropped_back_in_keeps_the_original_name() {
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new(&sb.url));
    let (inbox, reports) = (dir.path().join("inbox"), dir.path().join("inbox/reports"));
    let daemon = Daemon::start(&config);
    std::fs::write(inbox.join("x.csv"), format!("{HEADER}\nA1,One,yes,,,,\nA2,,yes,,,,\n"))
        .unwrap();
    let limit = std::time::Duration::from_secs(20);
    assert!(
        wait_until_async(limit, || reports.join("x.errors.csv").exists()).await,
        "{}",
        daemon.log()
    );
    for round in 1..=2 {
        // The second round drops the errors file of the first round's redrop.
        let previous = files_in(&reports)
            .into_iter()
            .filter(|f| f.ends_with(".errors.csv") && (round == 1 || f != "x.errors.csv"))
            .max()
            .unwrap();
        std::fs::copy(reports.join(&previous), inbox.join(&previous)).unwrap();
        let summaries =
            || files_in(&reports).iter().filter(|f| f.ends_with(".summary.json")).count();
        assert!(wait_until_async(limit, || summaries() == round + 1).await, "{}", daemon.log());
    }
    daemon.terminate();
    let names = files_in(&reports);
    assert!(
        names.iter().all(|n| n.starts_with("x.")
            && !n.contains(".errors.errors")
            && !n.contains(".errors.summary")),
        "{names:?}"
    );
    assert!(names.iter().all(|n| n.matches('T').count() <= 1), "one timestamp at most: {names:?}");
    assert_eq!(names.iter().filter(|n| n.ends_with(".summary.json")).count(), 3, "{names:?}");
}

/// Row 7: numbers whose length does not fit the UK plan fail at `map`, naming the value.
#[test]
fn short_uk_numbers_fail_at_map() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new("http://127.0.0.1:9"));
    let file = dir.path().join("phones.csv");
    std::fs::write(
        &file,
        format!("{HEADER}\nP1,One,yes,,07700 90012,,\nP2,Two,yes,,020 7946 095,,\nP3,Three,yes,,07700 900123,,\n"),
    )
    .unwrap();
    let (code, _, err) = plan(&config, "clients", &dir.path().join("p"), &file);
    assert_eq!(code, 0, "{err}");
    let report = read_report(&dir.path().join("p/phones.errors.csv"));
    let failed: Vec<(&str, &str, &str)> =
        report[1..].iter().map(|r| (r[7].as_str(), r[8].as_str(), r[10].as_str())).collect();
    assert_eq!(
        failed,
        [
            ("2", "map", "Phone: `07700 90012` is not a phone number (GB by default)"),
            ("3", "map", "Phone: `020 7946 095` is not a phone number (GB by default)")
        ]
    );
}

/// Row 6: reports stay 0600 by default; `report_mode = "0640"` lets the report folder's group
/// read them, whatever the service's umask (the unit's `UMask=0077`).
#[test]
fn report_mode_lets_the_report_folders_group_read_the_reports() {
    use common::service::*;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new("http://127.0.0.1:9"));
    let text = std::fs::read_to_string(&config).unwrap();
    let shared = dir.path().join("shared.toml");
    std::fs::write(
        &shared,
        text.replace("[pipelines.clients]\n", "[pipelines.clients]\nreport_mode = \"0640\"\n"),
    )
    .unwrap();
    let file = dir.path().join("x.csv");
    std::fs::write(&file, format!("{HEADER}\nA1,One,yes,,,,\nA2,,yes,,,,\n")).unwrap();
    // The team's group owns the report folder, setgid; the service user is a member.
    let (user, team) = (65534, 4242);
    let (private, team_dir) = (dir.path().join("private"), dir.path().join("team"));
    std::fs::create_dir_all(&private).unwrap();
    std::fs::create_dir_all(&team_dir).unwrap();
    let group = if is_root() {
        chown(dir.path(), user, user);
        chown(&team_dir, user, team);
        team
    } else {
        mode_and_group(&team_dir).1
    };
    std::process::Command::new("chmod").arg("2770").arg(&team_dir).status().unwrap();
    let plan_as = |cfg: &Path, reports: &Path| {
        let args = [
            "plan",
            "--config",
            cfg.to_str().unwrap(),
            "--pipeline",
            "clients",
            "--report-dir",
            reports.to_str().unwrap(),
            file.to_str().unwrap(),
        ];
        let out = User { uid: user, gid: user, groups: &[team], umask: "077" }.run(&[], &args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    plan_as(&config, &private);
    for name in ["x.errors.csv", "x.summary.json"] {
        assert_eq!(mode_and_group(&private.join(name)).0, 0o600, "{name}: private by default");
    }
    plan_as(&shared, &team_dir);
    for name in ["x.errors.csv", "x.summary.json"] {
        assert_eq!(
            mode_and_group(&team_dir.join(name)),
            (0o640, group),
            "{name}: the team's group reads it"
        );
    }
    let bad =
        text.replace("[pipelines.clients]\n", "[pipelines.clients]\nreport_mode = \"0755\"\n");
    std::fs::write(&shared, bad).unwrap();
    let (code, _, err) = run_text(&["check", "--config", shared.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("`pipelines.clients.report_mode` = \"0755\" is not a file mode"), "{err}");
}
