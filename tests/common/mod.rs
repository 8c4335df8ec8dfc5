//! Shared by the integration tests: an in-process sandbox on 127.0.0.1:0, configs, CSV files,
//! and the real binary.
#![allow(dead_code, reason = "each test binary uses a different part of these helpers")]
#![allow(clippy::unwrap_used, reason = "test helpers: a failure should stop the test right there")]

pub mod cdp;
pub mod console;
pub mod faults;
pub mod moto;
pub mod plannr;
pub mod receiver;
pub mod service;
pub mod tmpfs;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crm_ingest::sandbox::{Sandbox, SandboxOptions};
use tokio_util::sync::CancellationToken;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_crm-ingest")
}

/// Runs the binary to completion (on a blocking thread when called from async tests).
pub fn run(args: &[&str]) -> Output {
    Command::new(bin()).args(args).env_remove("RUST_LOG").output().expect("the binary runs")
}

/// `plan` of `file` on `pipeline`, its reports in `reports`.
pub fn plan_into(config: &Path, pipeline: &str, reports: &Path, file: &Path) -> Output {
    let args = ["plan", "--config", &config.to_string_lossy(), "--pipeline", pipeline];
    let rest = ["--report-dir", &reports.to_string_lossy(), &file.to_string_lossy()];
    run(&[&args[..], &rest[..]].concat())
}

pub async fn run_async(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&refs)
    })
    .await
    .expect("join")
}

pub struct TestSandbox {
    pub url: String,
    stop: CancellationToken,
}

impl Drop for TestSandbox {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl TestSandbox {
    pub async fn start(options: SandboxOptions) -> Self {
        let stop = CancellationToken::new();
        let addr =
            Sandbox::new(options).spawn("127.0.0.1:0", stop.clone()).await.expect("sandbox binds");
        Self { url: format!("http://{addr}"), stop }
    }

    pub async fn records(&self) -> serde_json::Value {
        reqwest::get(format!("{}/_sandbox/records", self.url)).await.unwrap().json().await.unwrap()
    }

    pub async fn requests(&self) -> Vec<serde_json::Value> {
        reqwest::get(format!("{}/_sandbox/requests", self.url)).await.unwrap().json().await.unwrap()
    }

    /// How many times each Code reached the CRM in a valid request.
    pub async fn received(&self) -> std::collections::BTreeMap<String, u64> {
        serde_json::from_value(self.records().await["repsly"]["received"].clone()).unwrap()
    }
}

/// Knobs for the test config.
pub struct ConfigOptions {
    pub url: String,
    pub rate_limit: &'static str,
    pub max_rows: usize,
    pub password: &'static str,
    pub max_attempts: u32,
    pub max_in_flight: usize,
    pub shutdown_timeout: &'static str,
}

impl ConfigOptions {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_string(),
            rate_limit: "1000/s",
            max_rows: 10,
            password: "sandbox",
            max_attempts: 12,
            max_in_flight: 4,
            shutdown_timeout: "5s",
        }
    }
}

/// A Repsly clients pipeline over `dir/inbox`, state in `dir/state`.
pub fn write_config(dir: &Path, o: &ConfigOptions) -> PathBuf {
    let text = format!(
        r#"
state_dir = "{dir}/state"
shutdown_timeout = "{shutdown}"

[log]
format = "json"
level = "info"

[connections.repsly]
kind = "repsly"
base_url = "{url}/v3"
username = "sandbox"
password = "{password}"
rate_limit = "{rate}"
poll_interval = "20ms"
max_in_flight = {in_flight}
timeout = "5s"
retry = {{ max_attempts = {attempts}, initial_backoff = "10ms", max_backoff = "200ms" }}

[pipelines.clients]
connection = "repsly"
target = "repsly.clients"
source = {{ kind = "folder", path = "{dir}/inbox", settle = "300ms", rescan_interval = "200ms" }}
batch = {{ max_rows = {rows}, max_wait = "100ms" }}

[pipelines.clients.fields]
Code = {{ column = "Code", transform = ["trim"] }}
Name = "Name"
Active = {{ column = "Active", transform = ["bool"] }}
Email = {{ column = "Email", transform = ["trim", "lowercase"] }}
Phone = {{ column = "Phone", transform = ["phone_e164"] }}
Territory = "Territory"
Note = "Note"
"#,
        dir = dir.display(),
        url = o.url,
        password = o.password,
        rate = o.rate_limit,
        attempts = o.max_attempts,
        rows = o.max_rows,
        in_flight = o.max_in_flight,
        shutdown = o.shutdown_timeout,
    );
    let path = dir.join("config.toml");
    std::fs::create_dir_all(dir.join("inbox")).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

pub const HEADER: &str = "Code,Name,Active,Email,Phone,Territory,Note";

/// `n` valid rows with Codes `{prefix}{i}`.
pub fn clean_rows(prefix: &str, n: usize) -> String {
    let mut s = String::from(HEADER);
    s.push('\n');
    for i in 0..n {
        s.push_str(&format!(
            "{prefix}{i},Client {i},yes,c{i}@example.com,07700 9{i:05},UK>North,\n"
        ));
    }
    s
}

pub fn codes(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// Reads a report CSV as rows of strings (header included).
pub fn read_report(path: &Path) -> Vec<Vec<String>> {
    let mut r =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).from_path(path).unwrap();
    r.records().map(|rec| rec.unwrap().iter().map(String::from).collect()).collect()
}

/// The `_line` and `_stage` of each errors-report row.
pub fn lines_and_stages(path: &Path) -> Vec<(u64, String)> {
    let rows = read_report(path);
    let header = &rows[0];
    let li = header.iter().position(|h| h == "_line").unwrap();
    let si = header.iter().position(|h| h == "_stage").unwrap();
    rows[1..].iter().map(|r| (r[li].parse().unwrap(), r[si].clone())).collect()
}

pub fn summary(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Polls `cond` every 50 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

pub async fn wait_until_async(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}

/// Waits until the sandbox has received at least `n` distinct rows.
pub async fn wait_received(sb: &TestSandbox, n: usize, limit: Duration) -> bool {
    wait_until_async(limit, || futures::executor::block_on(sb.received()).len() >= n).await
}

/// The real daemon as a child process; its stderr is drained as it comes (a full pipe would
/// block the daemon's logging) and kept.
pub struct Daemon(pub std::process::Child, pub std::sync::Arc<std::sync::Mutex<String>>);

impl Daemon {
    pub fn start(config: &Path) -> Self {
        Self::start_with(config, &[])
    }

    pub fn start_with(config: &Path, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(bin());
        cmd.args(["run", "--config"]).arg(config).env_remove("RUST_LOG").envs(env.iter().copied());
        Self::spawn(cmd)
    }

    /// The daemon as `cmd` starts it (another user, another environment).
    pub fn spawn(mut cmd: Command) -> Self {
        let child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut child = child;
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        if let Some(mut err) = child.stderr.take() {
            let log = log.clone();
            std::thread::spawn(move || {
                use std::io::Read;
                let mut buf = [0u8; 8192];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    log.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        Self(child, log)
    }

    /// What the daemon has logged so far.
    pub fn log(&self) -> String {
        self.1.lock().unwrap().clone()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([sig, &self.0.id().to_string()]).status().unwrap();
        assert!(ok.success());
    }

    /// `kill -9`: no chance to clean up.
    pub fn kill9(mut self) {
        self.signal("-KILL");
        let _ = self.0.wait();
    }

    /// Sends SIGTERM and waits for the exit; returns (exit code, seconds taken, stderr).
    pub fn terminate(mut self) -> (Option<i32>, f64, String) {
        let started = Instant::now();
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(50));
                return (status.code(), started.elapsed().as_secs_f64(), self.log());
            }
            assert!(Instant::now() < deadline, "daemon did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// File names directly in `dir`, sorted.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Whether `name` is claimed in `inbox/.processing/` (in a daemon's own claims folder,
/// `.processing/<owner-id>/`, or directly there).
pub fn claimed(inbox: &Path, name: &str) -> bool {
    let processing = inbox.join(".processing");
    processing.join(name).is_file()
        || std::fs::read_dir(&processing)
            .map(|d| d.flatten().any(|e| e.path().join(name).is_file()))
            .unwrap_or(false)
}

/// Whether an optional tool is on PATH. Without it the calling test skips, saying why on one
/// line; with `CRM_INGEST_REQUIRE_TOOLS` set (CI) a missing tool fails the test instead.
pub fn have_tool(tool: &str, install: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        assert!(
            std::env::var_os("CRM_INGEST_REQUIRE_TOOLS").is_none(),
            "{tool} is required here (CRM_INGEST_REQUIRE_TOOLS is set): {install}"
        );
        eprintln!("skipped: {tool} is not installed ({install})");
    }
    found
}

/// CPU time a process has used so far (user + system), from `/proc/PID/stat`.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let per_second: u64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100);
    Duration::from_millis(ticks * 1000 / per_second)
}

/// Peak resident memory of a live process (VmHWM), in MiB.
pub fn peak_rss_mib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:").map(|k| k / 1024)
}

/// Resident anonymous memory of a live process (RssAnon: the heap and stacks, without the
/// pages of the binary itself, which a debug build makes several times larger), in MiB.
pub fn anon_rss_mib(pid: u32) -> Option<u64> {
    status_kib(pid, "RssAnon:").map(|k| k / 1024)
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs the binary until it exits, sampling its anonymous memory (the heap: a debug binary's
/// own pages would dwarf it); returns (output, peak MiB).
pub fn run_measured(args: &[&str]) -> (Output, u64) {
    let child = Command::new(bin())
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = {
        let peak = peak.clone();
        std::thread::spawn(move || {
            while let Some(mib) = anon_rss_mib(pid) {
                peak.fetch_max(mib, std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let out = child.wait_with_output().unwrap();
    let _ = sampler.join();
    (out, peak.load(std::sync::atomic::Ordering::Relaxed))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The test config plus `[server]` on a free loopback port; returns the endpoint base URL.
pub fn with_server(config: &Path) -> String {
    let port = free_port();
    let mut text = std::fs::read_to_string(config).unwrap();
    text.push_str(&format!("\n[server]\nlisten = \"127.0.0.1:{port}\"\n"));
    std::fs::write(config, text).unwrap();
    format!("http://127.0.0.1:{port}")
}

/// GET a URL: (status, body), or (0, "") when nothing answers.
pub async fn get(url: &str) -> (u16, String) {
    match reqwest::get(url).await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}

/// The value of the first metric line starting with `series`.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A counter's value, 0 when it has not been counted yet.
pub fn count(text: &str, series: &str) -> u64 {
    metric(text, series).unwrap_or(0.0) as u64
}

/// Three files the history, notification and console tests finish: good.csv (every row
/// arrives), bad.csv (its second row has no Name: fails at validate) and broken.csv (none of
/// the mapped columns: the file fails as a whole).
pub fn drop_three(inbox: &Path) {
    std::fs::write(inbox.join("good.csv"), clean_rows("G", 3)).unwrap();
    std::fs::write(
        inbox.join("bad.csv"),
        format!("{HEADER}\nB1,One,yes,b1@example.com,,,\nB2,,yes,b2-cell@example.com,,,\n"),
    )
    .unwrap();
    std::fs::write(inbox.join("broken.csv"), "Foo,Bar\n1,2\n").unwrap();
}
