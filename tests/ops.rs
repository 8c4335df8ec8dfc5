//! Operations: the operator endpoints while a file imports, readiness, the systemd notify
//! protocol, the unit file and Dockerfile, secrets kept out of logs and reports, --help.

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use crm_ingest::sandbox::SandboxOptions;

/// `crm-ingest status` against the daemon's endpoint: its table, after a zero exit.
async fn status_command(ops: &str) -> String {
    let out = run_async(vec!["status".into(), "--url".into(), format!("{ops}/status")]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoints_report_a_file_while_it_imports() {
    let sb = TestSandbox::start(SandboxOptions {
        latency: Duration::from_millis(50),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = ConfigOptions::new(&sb.url);
    opts.max_in_flight = 2;
    let config = write_config(dir.path(), &opts);
    let ops = with_server(&config);
    let daemon = Daemon::start(&config);
    let up = Instant::now();
    while get(&format!("{ops}/healthz")).await.0 != 200 {
        assert!(up.elapsed() < Duration::from_secs(10), "/healthz never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, body) = get(&format!("{ops}/readyz")).await;
    assert_eq!(code, 200, "{body}");
    std::fs::write(dir.path().join("inbox/big.csv"), clean_rows("E", 600)).unwrap();

    let rows = r#"crm_ingest_rows_total{pipeline="clients",outcome="accepted",stage=""}"#;
    let mut seen_in_flight = false;
    let mut samples = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, status) = get(&format!("{ops}/status")).await;
        let status: serde_json::Value = serde_json::from_str(&status).unwrap();
        if let Some(f) = status["pipelines"]["clients"]["in_flight"].get(0) {
            assert_eq!(f["file"], "big.csv");
            assert!(f["bytes_total"].as_u64().unwrap() > 0);
            if !seen_in_flight {
                let table = status_command(&ops).await;
                assert!(table.contains("In flight (1)") && table.contains("big.csv"), "{table}");
            }
            seen_in_flight = true;
        }
        let (_, m) = get(&format!("{ops}/metrics")).await;
        if let Some(v) = metric(&m, rows) {
            samples.push(v);
        }
        if status["pipelines"]["clients"]["finished"].get(0).is_some() {
            assert_eq!(status["pipelines"]["clients"]["finished"][0]["rows"]["accepted"], 600);
            break;
        }
        assert!(Instant::now() < deadline, "the file never finished");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen_in_flight, "/status showed the file in flight");
    let table = status_command(&ops).await;
    let line = table.lines().find(|l| l.contains("big.csv")).unwrap_or_default();
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        cells[3..7],
        ["600", "600", "0", "0"],
        "read, accepted, failed, unprocessed: {table}"
    );
    assert!(
        samples.windows(2).any(|w| w[1] > w[0]),
        "the row counter grew while importing: {samples:?}"
    );
    let (_, m) = get(&format!("{ops}/metrics")).await;
    assert_eq!(metric(&m, rows), Some(600.0), "{m}");
    assert_eq!(
        metric(&m, r#"crm_ingest_files_total{pipeline="clients",outcome="processed"}"#),
        Some(1.0),
        "{m}"
    );
    assert!(metric(&m, r#"crm_ingest_requests_total{connection="repsly",endpoint="import/clientList",status="200"}"#).unwrap() >= 60.0, "{m}");
    assert!(m.contains("crm_ingest_request_duration_seconds_bucket"), "{m}");
    assert!(m.contains("crm_ingest_rate_limiter_wait_seconds_total"), "{m}");
    assert!(m.contains("crm_ingest_ledger_write_duration_seconds_count"), "{m}");
    assert!(m.contains(r#"crm_ingest_files_in_flight{pipeline="clients"} 0"#), "{m}");
    let (code, _, err) = daemon.terminate();
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("crm-ingest running") && err.contains("clients: "),
        "start-up line lists pipelines: {err}"
    );
    let gone = run_async(vec!["status".into(), "--url".into(), format!("{ops}/status")]).await;
    assert_eq!(gone.status.code(), Some(1), "no daemon: exit 1");
    assert!(String::from_utf8_lossy(&gone.stderr).contains("no daemon answers"));
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_fails_once_credentials_are_refused() {
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = ConfigOptions::new(&sb.url);
    opts.password = "wrong";
    let config = write_config(dir.path(), &opts);
    let ops = with_server(&config);
    let daemon = Daemon::start(&config);
    std::fs::write(dir.path().join("inbox/a.csv"), clean_rows("R", 5)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        let (code, body) = get(&format!("{ops}/readyz")).await;
        if code == 503 {
            break body;
        }
        assert!(Instant::now() < deadline, "readyz never failed: {code} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(body.contains("connection repsly") && body.contains("401"), "{body}");
    assert_eq!(get(&format!("{ops}/healthz")).await.0, 200, "still alive");
    daemon.terminate();
}

#[test]
fn the_daemon_speaks_the_systemd_notify_protocol() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new("http://127.0.0.1:1"));
    let env = [("NOTIFY_SOCKET", socket_path.to_str().unwrap()), ("WATCHDOG_USEC", "200000")];
    let daemon = Daemon::start_with(&config, &env);
    let mut messages = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            messages.push(String::from_utf8_lossy(&buf[..n]).to_string());
        }
        let all = messages.join("\n");
        if all.contains("READY=1") && all.matches("WATCHDOG=1").count() >= 2 {
            break;
        }
    }
    let all = messages.join("\n");
    assert!(all.contains("READY=1") && all.contains("STATUS=running 1 pipeline(s)"), "{all}");
    assert!(all.matches("WATCHDOG=1").count() >= 2, "watchdog pings at half WATCHDOG_USEC: {all}");
    daemon.signal("-TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !messages.iter().any(|m| m.contains("STOPPING=1")) {
        if let Ok(n) = socket.recv(&mut buf) {
            messages.push(String::from_utf8_lossy(&buf[..n]).to_string());
        }
    }
    assert!(messages.iter().any(|m| m.contains("STOPPING=1")), "{messages:?}");
    let mut daemon = daemon;
    assert_eq!(daemon.0.wait().unwrap().code(), Some(0), "one SIGTERM: a clean drain");
}

#[test]
fn the_unit_file_verifies() {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/crm-ingest.service"),
    )
    .unwrap();
    for needed in [
        "Type=notify",
        "WatchdogSec=",
        "ExecStartPre=crm-ingest check --config",
        "StartLimitBurst=",
        "User=crm-ingest",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "DynamicUser=yes",
        "StateDirectory=crm-ingest",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=",
        "CapabilityBoundingSet=",
        "EnvironmentFile=-/etc/crm-ingest/env",
    ] {
        assert!(unit.contains(needed), "unit lacks {needed}");
    }
    if !have_tool("systemd-analyze", "Debian package systemd") {
        return;
    }
    // systemd-analyze resolves ExecStart (a bare name: /usr/local/bin, then /usr/bin): point
    // it at the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crm-ingest.service");
    std::fs::write(&path, unit.replace("=crm-ingest ", &format!("={} ", bin()))).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify"])
        .arg(&path)
        .env("SYSTEMD_LOG_LEVEL", "warning")
        .output()
        .expect("systemd-analyze is needed (Debian package systemd; .ci/run installs it)");
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("Unknown key") && !text.contains("Unknown section"), "{text}");
}

#[test]
fn the_dockerfile_is_multi_stage_non_root_and_healthchecked() {
    let d =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile")).unwrap();
    assert_eq!(d.lines().filter(|l| l.starts_with("FROM ")).count(), 2, "multi-stage");
    assert!(d.contains("AS build") && d.contains("COPY --from=build"));
    let deps = d.find("COPY Cargo.toml Cargo.lock").unwrap();
    assert!(deps < d.find("COPY src").unwrap(), "dependencies build in their own layer first");
    assert!(d.contains("ca-certificates"), "reqwest needs CA certificates");
    let user = d.lines().find(|l| l.starts_with("USER ")).unwrap();
    assert!(!user.contains("root") && user != "USER 0", "{user}");
    for needed in [
        "VOLUME [\"/var/lib/crm-ingest\"",
        "HEALTHCHECK",
        "/etc/crm-ingest/config.toml",
        "ENTRYPOINT [\"crm-ingest\"]",
        "CMD [\"run\", \"--config\", \"/etc/crm-ingest/config.toml\"]",
    ] {
        assert!(d.contains(needed), "Dockerfile lacks {needed}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_never_reach_logs_reports_or_status() {
    const SECRET: &str = "pw-Sup3r-Secret-Value";
    let sb =
        TestSandbox::start(SandboxOptions { repsly_password: SECRET.into(), ..Default::default() })
            .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new(&sb.url));
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("password = \"sandbox\"", "password = \"${REPSLY_PW}\"");
    std::fs::write(&config, text).unwrap();
    let ops = with_server(&config);
    let env = [("REPSLY_PW", SECRET), ("RUST_LOG", "debug")];
    let daemon = Daemon::start_with(&config, &env);
    std::fs::write(
        dir.path().join("inbox/s.csv"),
        format!("{HEADER}\nS1,One,yes,s1@example.com,,,\nS2,,yes,s2@example.com,,,\n"),
    )
    .unwrap();
    let processed = dir.path().join("inbox/processed");
    assert!(wait_until_async(Duration::from_secs(20), || files_in(&processed).len() == 1).await);
    let (_, status) = get(&format!("{ops}/status")).await;
    let (_, metrics) = get(&format!("{ops}/metrics")).await;
    let (code, _, logs) = daemon.terminate();
    assert_eq!(code, Some(0));
    assert_eq!(sb.received().await.len(), 1, "the secret worked");
    assert!(logs.contains("DEBUG") || logs.contains("\"level\":\"DEBUG\""), "debug logging was on");
    for (what, text) in [("logs", logs), ("status", status), ("metrics", metrics)] {
        assert!(!text.contains(SECRET), "the secret leaked into {what}");
    }
    for f in files_in(&dir.path().join("inbox/reports")) {
        let text = std::fs::read_to_string(dir.path().join("inbox/reports").join(&f)).unwrap();
        assert!(!text.contains(SECRET), "the secret leaked into {f}");
    }
    let out = std::process::Command::new(bin())
        .args(["check", "--config"])
        .arg(&config)
        .env("REPSLY_PW", SECRET)
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(SECRET)
            && !String::from_utf8_lossy(&out.stderr).contains(SECRET)
    );
}

#[test]
fn every_subcommand_help_has_an_example() {
    for sub in ["run", "check", "plan", "once", "sandbox", "demo", "health"] {
        let out = run(&[sub, "--help"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success()
                && text.contains("Example:")
                && text.contains(&format!("crm-ingest {sub}")),
            "{sub}: {text}"
        );
    }
}
