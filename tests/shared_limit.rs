//! `shared_limit`: replicas on one connection share one rate budget kept in a real
//! `redis-server` on loopback; without Redis the connection sends nothing and says why.

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use crm_ingest::sandbox::{Budget, SandboxOptions};

/// The tests that measure pace run one at a time: two at once on two cores measure the CPU.
static PACED: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A `redis-server` on loopback with nothing saved, stopped when dropped.
struct Redis {
    child: Child,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Redis {
    fn start_or_skip(port: u16) -> Option<Self> {
        if !have_tool("redis-server", "apt-get install redis-server") {
            return None;
        }
        Some(Self::start(port))
    }

    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let up = wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "redis-server did not start");
        Self { child }
    }
}

/// A replica's config in `dir`: the test connection at `rate`, its budget kept in Redis.
fn replica(dir: &Path, sandbox: &str, rate: &'static str, redis_port: u16) -> PathBuf {
    let mut opts = ConfigOptions::new(sandbox);
    opts.rate_limit = rate;
    opts.max_rows = 5;
    let config = write_config(dir, &opts);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("rate_limit = \"{rate}\"\n"),
        &format!(
            "rate_limit = \"{rate}\"\nshared_limit = {{ redis = \"redis://127.0.0.1:{redis_port}/\" }}\n"
        ),
    );
    std::fs::write(&config, text).unwrap();
    config
}

/// `n` daemons at 10/s sharing the budget in the Redis on `port`, each with a file of `rows`
/// clients whose Codes start with `prefix` and the replica's number.
fn replicas(
    n: usize,
    sandbox: &str,
    port: u16,
    prefix: &str,
    rows: usize,
) -> (Vec<tempfile::TempDir>, Vec<Daemon>) {
    let dirs: Vec<_> = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
    let daemons = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let config = replica(d.path(), sandbox, "10/s", port);
            let file = clean_rows(&format!("{prefix}{i}-"), rows);
            std::fs::write(d.path().join("inbox/r.csv"), file).unwrap();
            Daemon::start(&config)
        })
        .collect();
    (dirs, daemons)
}

/// The most requests the sandbox saw in any one-second window, and the average rate from
/// the first request to the last.
fn pace(times: &[u64]) -> (usize, f64) {
    let most = times
        .iter()
        .enumerate()
        .map(|(i, t)| times[i..].iter().take_while(|u| **u < t + 1000).count())
        .max()
        .unwrap_or(0);
    let span = (times.last().unwrap() - times[0]) as f64 / 1000.0;
    (most, (times.len() - 1) as f64 / span)
}

#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_share_one_budget_through_redis() {
    let _one_at_a_time = PACED.lock().await;
    let port = free_port();
    let Some(_redis) = Redis::start_or_skip(port) else { return };
    let sb = TestSandbox::start(SandboxOptions {
        rate_limit: Some(Budget::parse("10/s").unwrap()),
        ..Default::default()
    })
    .await;
    let (dirs, daemons) = replicas(3, &sb.url, port, "R", 60);
    let done = wait_until_async(Duration::from_secs(120), || {
        dirs.iter().all(|d| files_in(&d.path().join("inbox/processed")).len() == 1)
    })
    .await;
    let logs: Vec<String> = daemons.into_iter().map(|d| d.terminate().2).collect();
    assert!(done, "every replica finished its file: {logs:?}");
    let requests = sb.requests().await;
    let times: Vec<u64> = requests.iter().map(|r| r["at_ms"].as_u64().unwrap()).collect();
    assert!(times.len() >= 72, "36 batches created and polled: {}", times.len());
    let throttled = requests.iter().filter(|r| r["status"] == 429).count();
    let (most, average) = pace(&times);
    eprintln!(
        "3 replicas at 10/s: {} requests, at most {most} in 1 s, {average:.2}/s",
        times.len()
    );
    assert_eq!(throttled, 0, "no 429 across the three");
    assert!(most <= 11, "at most 11 requests in any one second, saw {most}");
    assert!(average >= 8.5, "the shared budget is used: {average:.2}/s");
    assert_eq!(sb.received().await.len(), 180, "every row arrived");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_redis_nothing_is_sent_and_readyz_says_why() {
    if !have_tool("redis-server", "apt-get install redis-server") {
        return;
    }
    let port = free_port();
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = replica(dir.path(), &sb.url, "100/s", port);
    let ops = with_server(&config);
    let daemon = Daemon::start(&config);
    std::fs::write(dir.path().join("inbox/a.csv"), clean_rows("A", 5)).unwrap();
    let started = Instant::now();
    let body = loop {
        let (code, body) = get(&format!("{ops}/readyz")).await;
        if code == 503 {
            break body;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "/readyz stayed ready: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(body.contains("shared rate budget (Redis) unreachable"), "{body}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(sb.requests().await.is_empty(), "nothing sent without the shared budget");
    let _redis = Redis::start(port);
    let processed = dir.path().join("inbox/processed");
    let done = wait_until_async(Duration::from_secs(30), || files_in(&processed).len() == 1).await;
    let (code, _) = get(&format!("{ops}/readyz")).await;
    let (_, _, log) = daemon.terminate();
    assert!(done, "the file went through once Redis answered: {log}");
    assert_eq!(code, 200, "ready again");
    assert_eq!(sb.received().await.len(), 5);
    assert!(log.contains("Redis cannot be reached") && !log.contains("redis://"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flushall_or_a_redis_restart_does_not_let_a_burst_through() {
    let _one_at_a_time = PACED.lock().await;
    let port = free_port();
    let Some(redis) = Redis::start_or_skip(port) else { return };
    let sb = TestSandbox::start(SandboxOptions {
        rate_limit: Some(Budget::parse("100/s").unwrap()),
        pending_polls: 0,
        ..Default::default()
    })
    .await;
    let (dirs, daemons) = replicas(2, &sb.url, port, "F", 100);
    let flush = || {
        let out = Command::new("redis-cli").args(["-p", &port.to_string(), "FLUSHALL"]).output();
        assert!(out.is_ok_and(|o| o.status.success()), "redis-cli FLUSHALL");
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    flush();
    tokio::time::sleep(Duration::from_secs(3)).await;
    flush();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // An instant restart: the same port, nothing kept.
    drop(redis);
    let _redis = Redis::start(port);
    let done = wait_until_async(Duration::from_secs(120), || {
        dirs.iter().all(|d| files_in(&d.path().join("inbox/processed")).len() == 1)
    })
    .await;
    let logs: Vec<String> = daemons.into_iter().map(|d| d.terminate().2).collect();
    assert!(done, "both replicas finished: {logs:?}");
    let times: Vec<u64> =
        sb.requests().await.iter().map(|r| r["at_ms"].as_u64().unwrap()).collect();
    let (most, average) = pace(&times);
    eprintln!("2 replicas at 10/s across 2 FLUSHALLs and a restart: at most {most} in 1 s, {average:.2}/s");
    assert!(most <= 11, "no burst after the resets: at most 11 in any one second, saw {most}");
    assert_eq!(sb.received().await.len(), 200, "every row arrived");
}
