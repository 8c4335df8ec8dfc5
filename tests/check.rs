//! `crm-ingest check`: good configs pass with a plan printed, bad ones exit 2 with one line
//! naming the key, line or variable.

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

mod common;

use std::path::Path;
use std::process::Command;

use common::bin;

/// Checks `text` written in a fresh folder that holds an `in/` folder (the source `/tmp/in`
/// of the configs here is pointed at it).
fn check(text: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, text.replace("\"/tmp/in\"", &format!("\"{}/in\"", dir.path().display())))
        .unwrap();
    check_path(&path, &[])
}

fn check_path(path: &Path, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(bin());
    cmd.args(["check", "--config"]).arg(path);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const GOOD: &str = r#"
state_dir = "/tmp/x"
[connections.repsly]
kind = "repsly"
username = "u"
password = "p"
[pipelines.clients]
connection = "repsly"
target = "repsly.clients"
source = { kind = "folder", path = "/tmp/in" }
[pipelines.clients.fields]
Code = "Code"
Name = "Name"
"#;

#[test]
fn a_good_config_passes_and_prints_the_plan() {
    let (code, out, err) = check(GOOD);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("pipeline clients\n  source:   folder /"), "{out}");
    assert!(out.contains("target:   repsly.clients via connection repsly (120/min)"), "{out}");
    let row = out.lines().find(|l| l.trim_start().starts_with("Code")).unwrap_or_default();
    assert!(row.contains("<- \"Code\""), "a readable table of fields: {out}");
    assert!(!out.contains("Columns(["), "no Rust debug output: {out}");
}

#[test]
fn the_shipped_example_config_passes_with_its_variables() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
    let env = [
        ("PLANNR_TOKEN", "secret-token-value"),
        ("PLANNR_ACCOUNT_UUID", "6f1c7b4e-2d7a-4c1e-9b9a-3d2f5e6a7b8c"),
        ("REPSLY_API_USERNAME", "user"),
        ("REPSLY_API_PASSWORD", "secret-password-value"),
    ];
    let (code, out, err) = check_path(&path, &env);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("repsly_clients") && out.contains("new_clients"), "{out}");
    assert!(!out.contains("secret-token-value") && !err.contains("secret-token-value"));
    assert!(!out.contains("secret-password-value") && !err.contains("secret-password-value"));
}

#[test]
fn check_needs_no_credentials_but_says_what_run_will_need() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
    let (code, _, err) = check_path(&path, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning") && err.contains("PLANNR_TOKEN") && err.contains("to run"),
        "{err}"
    );
    // `run` refuses it, naming the variable and its line.
    let out = Command::new(bin())
        .args(["run", "--config"])
        .arg(&path)
        .env_remove("PLANNR_TOKEN")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("PLANNR_TOKEN") && err.contains("line 20"), "{err}");
}

#[test]
fn every_problem_at_once_with_its_key_path_and_no_follow_on_errors() {
    let text = GOOD
        .replace("state_dir = \"/tmp/x\"", "state_dir = \"/tmp/x\"\nstat_dir = 1")
        .replace(
            "source = {",
            "batch = { max_rows = 10, max_wait = \"soon\", max_wiat = \"2s\" }\nsource = {",
        )
        .replace(
            "password = \"p\"",
            "password_file = \"no-such-file\"\nusername2 = \"${NO_SUCH_VARIABLE}\"",
        );
    let (code, _, err) = check(&text);
    assert_eq!(code, 2, "{err}");
    for needle in [
        "unknown key `stat_dir` (did you mean `state_dir`?)",
        "unknown key `connections.repsly.username2` (did you mean `username`?)",
        "unknown key `pipelines.clients.batch.max_wiat` (did you mean `max_wait`?)",
        "`pipelines.clients.batch.max_wait`: invalid duration `soon`",
    ] {
        assert!(err.contains(needle), "`{needle}` not in: {err}");
    }
    assert!(!err.contains("unknown connection"), "no follow-on error: {err}");
    assert!(err.lines().all(|l| l.contains(" line ")), "each with its line: {err}");
}

#[test]
fn a_folder_source_that_does_not_exist_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, GOOD.replace("/tmp/in", &format!("{}/inbxo", dir.path().display())))
        .unwrap();
    let (code, _, err) = check_path(&path, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("inbxo does not exist"), "{err}");
    let out = Command::new(bin()).args(["run", "--config"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!dir.path().join("inbxo").exists(), "`run` does not create a mistyped folder");
}

#[test]
fn a_closed_stdout_is_no_panic() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
    let mut child = Command::new(bin())
        .args(["check", "--config"])
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(101), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Each bad config, and what its one-line error must say.
#[test]
fn bad_configs_are_refused_with_the_key_and_line() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("unknown top-level key", "bogus = 1\n", &["line 1", "bogus"]),
        ("unknown source key", "", &["line 10", "colour"]),
        ("bad duration", "shutdown_timeout = \"5 sex\"\n", &["line 1", "invalid duration"]),
        ("bad rate limit", "", &["line 7", "5/fortnight"]),
        ("unknown connection", "", &["line 8", "unknown connection `nope`"]),
        ("unknown repsly field", "", &["line 13", "`Nmae`", "repsly.clients"]),
        ("unknown transform", "", &["line 13", "unknown transform `trimm`"]),
        ("bad validator", "", &["line 13", "regex"]),
        ("shared limit not redis", "", &["line 7", "shared_limit.redis must be a redis://"]),
    ];
    for (what, prefix, needles) in cases {
        let text = match *what {
            "unknown source key" => {
                GOOD.replace("path = \"/tmp/in\" }", "path = \"/tmp/in\", colour = \"red\" }")
            }
            "bad rate limit" => {
                GOOD.replace("password = \"p\"", "password = \"p\"\nrate_limit = \"5/fortnight\"")
            }
            "unknown connection" => {
                GOOD.replace("connection = \"repsly\"", "connection = \"nope\"")
            }
            "unknown repsly field" => {
                GOOD.replace("Name = \"Name\"", "Nmae = \"Name\"\nName = \"Name\"")
            }
            "unknown transform" => GOOD.replace(
                "Name = \"Name\"",
                "Name = { column = \"Name\", transform = [\"trimm\"] }",
            ),
            "shared limit not redis" => GOOD.replace(
                "password = \"p\"",
                "password = \"p\"\nshared_limit = { redis = \"http://cache:6379\" }",
            ),
            "bad validator" => GOOD.replace(
                "Name = \"Name\"",
                "Name = { column = \"Name\", validate = [\"regex:(\"] }",
            ),
            _ => format!("{prefix}{GOOD}"),
        };
        let (code, _, err) = check(&text);
        assert_eq!(code, 2, "{what}: {err}");
        for n in *needles {
            assert!(err.contains(n), "{what}: `{n}` not in: {err}");
        }
        let lines: Vec<&str> = err.lines().collect();
        assert!(
            lines.iter().all(|l| l.starts_with("error: ")),
            "{what}: one plain line per problem: {err}"
        );
        assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{what}: {err}");
    }
}

#[test]
fn a_lease_shorter_than_a_second_is_refused_with_its_key_and_line() {
    let s3 = r#"source = { kind = "s3", bucket = "b", prefix = "in/", lease_ttl = "500ms" }"#;
    let text = GOOD.replace(r#"source = { kind = "folder", path = "/tmp/in" }"#, s3);
    let (code, _, err) = check(&text);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("line 10"), "{err}");
    assert!(err.contains("`pipelines.clients.source.lease_ttl` must be at least 1s"), "{err}");
    let (code, _, err) = check(&text.replace("500ms", "2s"));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_required_repsly_field_must_be_mapped() {
    let (code, _, err) = check(&GOOD.replace("Name = \"Name\"\n", ""));
    assert_eq!(code, 2);
    assert!(err.contains("requires field `Name`"), "{err}");
}

#[test]
fn undocumented_plannr_import_fields_pass_with_a_warning() {
    let text = r#"
[connections.plannr]
kind = "plannr"
token = "t"
account_uuid = "a"
[pipelines.p]
connection = "plannr"
target = "plannr.import.clients"
source = { kind = "folder", path = "/tmp/in" }
[pipelines.p.fields]
first_name = "First"
favourite_colour = "Colour"
send_welcome_email = { value = "false" }
"#;
    let (code, _, err) = check(text);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning") && err.contains("favourite_colour") && err.contains("line 12"),
        "{err}"
    );
}

#[test]
fn secrets_can_come_from_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    std::fs::write(dir.path().join("pw"), "from-file\n").unwrap();
    let text = GOOD.replace("password = \"p\"", "password_file = \"pw\"").replace("/tmp/in", "in");
    let path = dir.path().join("c.toml");
    std::fs::write(&path, &text).unwrap();
    let settings = crm_ingest::config::load(&path).unwrap();
    match &settings.connections["repsly"].auth {
        crm_ingest::config::Auth::Basic { password, .. } => {
            assert_eq!(password.expose(), "from-file")
        }
        other => panic!("{other:?}"),
    }
    assert!(!format!("{settings:?}").contains("from-file"), "Debug output must not show secrets");
}

#[test]
fn the_demo_config_parses() {
    let text = include_str!("../config/demo.toml");
    let vars = |n: &str| match n {
        "SANDBOX_URL" => Some("http://127.0.0.1:1".to_string()),
        "DEMO_DIR" => Some("/tmp/demo".to_string()),
        _ => None,
    };
    let purpose = crm_ingest::config::Purpose::Plan;
    let s = crm_ingest::config::parse_for(Path::new("demo.toml"), text, &vars, purpose).unwrap();
    assert_eq!(s.pipelines.len(), 3);
    let repsly = s.pipeline("repsly_clients").unwrap();
    assert!(repsly.fields.iter().any(|f| f.target == "CustomFields.Segment"));
}

#[test]
fn the_scale_out_replica_config_passes() {
    let (code, out, err) = check_path(Path::new("deploy/replica.toml"), &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("shared by every replica") && out.contains("S3 events from"), "{out}");
}

#[test]
fn settings_of_zero_that_mean_nothing_are_refused_with_key_and_line() {
    let text = r#"
state_dir = "/tmp/x"
max_files_in_flight = 0
[connections.repsly]
kind = "repsly"
username = "u"
password = "p"
max_in_flight = 0
burst = 0
timeout = "0s"
poll_interval = "0ms"
retry = { max_attempts = 0, initial_backoff = "0s", max_backoff = "0s" }
[pipelines.clients]
connection = "repsly"
target = "repsly.clients"
source = { kind = "folder", path = "/tmp/in", rescan_interval = "0s" }
batch = { max_rows = 0 }
files_in_flight = 0
[pipelines.clients.fields]
Code = "Code"
Name = "Name"
"#;
    let (code, _, err) = check(text);
    assert_eq!(code, 2, "{err}");
    for (key, line) in [
        ("max_files_in_flight", 3),
        ("connections.repsly.max_in_flight", 8),
        ("connections.repsly.burst", 9),
        ("connections.repsly.timeout", 10),
        ("connections.repsly.poll_interval", 11),
        ("connections.repsly.retry.max_attempts", 12),
        ("connections.repsly.retry.initial_backoff", 12),
        ("connections.repsly.retry.max_backoff", 12),
        ("pipelines.clients.source.rescan_interval", 16),
        ("pipelines.clients.batch.max_rows", 17),
        ("pipelines.clients.files_in_flight", 18),
    ] {
        let found = err.lines().any(|l| l.contains(&format!("line {line}: `{key}` = 0")));
        assert!(found, "{key} on line {line}: {err}");
    }
}

#[test]
fn check_hides_the_userinfo_of_a_base_url_and_warns_of_plain_http() {
    let text = GOOD.replace(
        "kind = \"repsly\"\n",
        "kind = \"repsly\"\nbase_url = \"http://admin:s3cr3t-pw@crm.example.com/v3\"\n",
    );
    let (code, out, err) = check(&text);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("s3cr3t-pw") && !err.contains("s3cr3t-pw"), "{out}{err}");
    assert!(out.contains("at http://***@crm.example.com/v3"), "{out}");
    assert!(err.contains("warning:") && err.contains("would travel in clear"), "{err}");
    // On this machine plain http is fine.
    let local = GOOD.replace(
        "kind = \"repsly\"\n",
        "kind = \"repsly\"\nbase_url = \"http://127.0.0.1:9/v3\"\n",
    );
    let (_, _, err) = check(&local);
    assert!(!err.contains("in clear"), "{err}");
}

/// `check --connect` on `text`, stopped (and failed) if it is still running after 60 s.
fn check_connect(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, text.replace("\"/tmp/in\"", &format!("\"{}/in\"", dir.path().display())))
        .unwrap();
    let mut child = Command::new(bin())
        .args(["check", "--connect", "--config"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("check --connect did not return");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn with_redis(url: &str) -> String {
    GOOD.replace(
        "password = \"p\"\n",
        &format!(
            "password = \"p\"\nbase_url = \"http://127.0.0.1:9/v3\"\nshared_limit = {{ redis = \"{url}\" }}\n"
        ),
    )
}

#[test]
fn check_connect_returns_when_redis_is_down_or_never_answers() {
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down_port = down.local_addr().unwrap().port();
    drop(down);
    let (code, err) = check_connect(&with_redis(&format!("redis://127.0.0.1:{down_port}/")));
    assert_eq!(code, 2, "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("connection repsly: shared_limit Redis: cannot connect"), "{err}");
    // A Redis that accepts and never answers.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hung_port = hung.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let held: Vec<_> = hung.incoming().take(4).collect();
        std::thread::sleep(std::time::Duration::from_secs(30));
        drop(held);
    });
    let (code, err) = check_connect(&with_redis(&format!("redis://127.0.0.1:{hung_port}/")));
    assert_eq!(code, 2, "{err}");
    let line = err.lines().find(|l| l.starts_with("error:")).unwrap_or_default();
    assert!(line.contains("connection repsly: shared_limit Redis:"), "{err}");
    drop(held);
}

#[test]
fn check_connect_says_when_redis_refuses_the_password() {
    if !common::have_tool("redis-server", "apt-get install redis-server") {
        return;
    }
    /// Stopped when dropped, the test failing or not.
    struct Redis(std::process::Child);
    impl Drop for Redis {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let port = common::free_port();
    let redis = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
        .args(["--requirepass", "right-pw"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _redis = Redis(redis);
    common::wait_until(std::time::Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let (code, err) = check_connect(&with_redis(&format!("redis://:wrong-pw@127.0.0.1:{port}/")));
    assert_eq!(code, 2, "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("shared_limit Redis: the password was refused"), "{err}");
    assert!(!err.contains("wrong-pw"), "{err}");
}

/// Issue 21 row 11: a refused config still says which variables `run` will need.
#[test]
fn a_refused_config_also_names_the_variables_run_will_need() {
    let text = GOOD.replace("password = \"p\"", "password = \"${REPSLY_PW_NOT_SET}\"").replace(
        "state_dir = \"/tmp/x\"",
        "state_dir = \"/tmp/x\"\nshutdown_timeout = \"soon\"\nstat_dir = 1",
    );
    let (code, _, err) = check(&text);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("error:") && err.contains("invalid duration `soon`"), "{err}");
    assert!(err.contains("stat_dir"), "{err}");
    assert!(
        err.contains("warning:") && err.contains("needs REPSLY_PW_NOT_SET to run"),
        "the variable is named too: {err}"
    );
}

/// Issue 21 row 10: a key set twice is named, with its table and first line.
#[test]
fn a_duplicate_key_names_the_key() {
    let (code, _, err) =
        check(&GOOD.replace("password = \"p\"", "password = \"p\"\npassword = \"q\""));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "line 7: duplicate key `password` in `[connections.repsly]`, first set on line 6"
        ),
        "{err}"
    );
}

/// Issue 21 row 5: a state or report folder this user cannot write (or create) is refused by
/// `check`, which is the unit's ExecStartPre: `run` would only fail after starting. /proc
/// takes no new folders, whoever asks.
#[test]
fn a_state_or_report_folder_that_cannot_be_written_is_refused() {
    let text = GOOD
        .replace("state_dir = \"/tmp/x\"", "state_dir = \"/proc/crm-ingest-state\"")
        .replace("source = {", "report_dir = \"/proc/crm-ingest-reports\"\nsource = {");
    let (code, _, err) = check(&text);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("line 2: `state_dir` (where the ledger is kept) /proc/crm-ingest-state: cannot be created: /proc cannot be written"),
        "{err}"
    );
    assert!(
        err.contains(
            "pipeline `clients`: report folder /proc/crm-ingest-reports: cannot be created"
        ),
        "{err}"
    );
}
