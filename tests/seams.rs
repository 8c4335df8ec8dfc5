//! Where delivery meets the rest (issue [1/7]): a redirect never carries rows elsewhere, an
//! answer too large to read fails its call, a reload keeps one rate limiter, and refused
//! credentials hold files instead of consuming them.

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use common::*;
use crm_ingest::sandbox::{Budget, SandboxOptions};

/// Serves `app` on 127.0.0.1:0 until the test ends; its base URL.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn job_started() -> Response {
    let body = r#"{"Code":0,"Message":"Client import job started asynchronously under ID: 7"}"#;
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `once` of `rows` clients against a Repsly at `url`; the folder, the summary, the output.
async fn once_against(url: &str, rows: usize) -> (tempfile::TempDir, serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new(url));
    let file = dir.path().join("r.csv");
    std::fs::write(&file, clean_rows("S", rows)).unwrap();
    let args = vec![
        "once".to_string(),
        "--config".into(),
        config.display().to_string(),
        "--pipeline".into(),
        "clients".into(),
        "--report-dir".into(),
        dir.path().join("reports").display().to_string(),
        file.display().to_string(),
    ];
    let out = run_async(args).await;
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let s = summary(&dir.path().join("reports/r.summary.json"));
    (dir, s, text)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_is_not_followed_with_the_rows() {
    let stolen = Arc::new(AtomicU64::new(0));
    let elsewhere = {
        let stolen = stolen.clone();
        let count = move || {
            stolen.fetch_add(1, Ordering::SeqCst);
            async { job_started() }
        };
        serve(Router::new().route("/steal", post(count.clone()).get(count))).await
    };
    let location = format!("{elsewhere}/steal");
    let crm = serve(Router::new().route(
        "/v3/import/clientList",
        post(move || {
            let location = location.clone();
            async move {
                (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, location)], "").into_response()
            }
        }),
    ))
    .await;
    let (dir, s, out) = once_against(&crm, 5).await;
    assert_eq!(stolen.load(Ordering::SeqCst), 0, "nothing reached the other host: {out}");
    assert_eq!(s["rows"]["accepted"], 0, "{s}");
    assert_eq!(s["failed_by_stage"]["remote"], 5, "{s}");
    let errors = std::fs::read_to_string(dir.path().join("reports/r.errors.csv")).unwrap();
    assert!(errors.contains("a redirect to http://127.0.0.1"), "the message says why: {errors}");
    assert!(errors.contains("set base_url"), "and what to do: {errors}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_too_large_fails_its_call_without_filling_memory() {
    let crm = serve(
        Router::new().route("/v3/import/clientList", post(|| async { job_started() })).route(
            "/v3/export/importStatus/7",
            get(|| async {
                // 512 MiB of JSON-looking bytes, streamed without a length.
                let chunk = bytes::Bytes::from(vec![b' '; 1 << 20]);
                let chunks = futures::stream::iter(
                    (0..512).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
                );
                Response::new(Body::from_stream(chunks))
            }),
        ),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = ConfigOptions::new(&crm);
    opts.max_attempts = 1;
    let config = write_config(dir.path(), &opts);
    let file = dir.path().join("r.csv");
    std::fs::write(&file, clean_rows("B", 3)).unwrap();
    let reports = dir.path().join("reports");
    let config = config.display().to_string();
    let (file, reports_arg) = (file.display().to_string(), reports.display().to_string());
    let (out, peak) = tokio::task::spawn_blocking(move || {
        let args = ["once", "--config", &config, "--pipeline", "clients", "--report-dir"];
        let mut args: Vec<&str> = args.to_vec();
        args.extend([reports_arg.as_str(), file.as_str()]);
        run_measured(&args)
    })
    .await
    .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    let s = summary(&reports.join("r.summary.json"));
    assert_eq!(s["failed_by_stage"]["unconfirmed"], 3, "the job cannot be followed: {s}");
    let errors = std::fs::read_to_string(reports.join("r.errors.csv")).unwrap();
    assert!(errors.contains("more than 64 MiB"), "the call failed saying why: {errors} {log}");
    eprintln!("peak heap with 512 MiB status answers: {peak} MiB");
    assert!(peak < 320, "the body read is bounded: {peak} MiB");
}

/// The most requests the sandbox saw in any one-second window.
fn most_in_a_second(times: &[u64]) -> usize {
    (0..times.len())
        .map(|i| times[i..].iter().take_while(|t| **t < times[i] + 1000).count())
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_keeps_one_rate_limiter_for_files_in_flight_and_new_ones() {
    let sb = TestSandbox::start(SandboxOptions {
        pending_polls: 0,
        rate_limit: Some(Budget::parse("100/s").unwrap()),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = ConfigOptions::new(&sb.url);
    opts.rate_limit = "5/s";
    opts.max_rows = 2;
    let config = write_config(dir.path(), &opts);
    let daemon = Daemon::start(&config);
    std::fs::write(dir.path().join("inbox/a.csv"), clean_rows("A", 30)).unwrap();
    let mut waited = 0;
    while sb.requests().await.is_empty() {
        assert!(waited < 400, "nothing was sent: {}", daemon.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Only `timeout` changes; then a second file arrives while the first is in flight.
    let text =
        std::fs::read_to_string(&config).unwrap().replace("timeout = \"5s\"", "timeout = \"6s\"");
    std::fs::write(&config, text).unwrap();
    daemon.signal("-HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(dir.path().join("inbox/b.csv"), clean_rows("B", 30)).unwrap();
    let processed = dir.path().join("inbox/processed");
    let done = wait_until_async(Duration::from_secs(120), || files_in(&processed).len() == 2).await;
    let (_, _, log) = daemon.terminate();
    assert!(done, "{log}");
    assert!(log.contains("config reloaded"), "{log}");
    let times: Vec<u64> =
        sb.requests().await.iter().map(|r| r["at_ms"].as_u64().unwrap()).collect();
    let most = most_in_a_second(&times);
    eprintln!("{} requests at 5/s across a reload: at most {most} in one second", times.len());
    assert!(most <= 6, "one limiter: at most 5 (6 with jitter) in any second, saw {most}");
    assert_eq!(sb.received().await.len(), 60);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_holds_the_files_until_the_password_file_is_fixed() {
    let sb = TestSandbox::start(SandboxOptions { pending_polls: 0, ..Default::default() }).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new(&sb.url));
    let secret = dir.path().join("password");
    std::fs::write(&secret, "wrong\n").unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "password = \"sandbox\"",
        &format!("password_file = \"{}\"\nauth_retry = \"1s\"", secret.display()),
    );
    std::fs::write(&config, text).unwrap();
    let ops = with_server(&config);
    let daemon = Daemon::start(&config);
    std::fs::write(dir.path().join("inbox/a.csv"), clean_rows("A", 30)).unwrap();
    let refused = wait_until_async(Duration::from_secs(20), || {
        daemon.log().contains("authentication refused")
    })
    .await;
    assert!(refused, "{}", daemon.log());
    std::fs::write(dir.path().join("inbox/b.csv"), clean_rows("B", 20)).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (code, body) = common::get(&format!("{ops}/readyz")).await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("connection repsly"), "/readyz names the connection: {body}");
    let (_, status) = common::get(&format!("{ops}/status")).await;
    assert!(status.contains("\"name\":\"repsly\"") && status.contains("HTTP 401"), "{status}");
    let processed = dir.path().join("inbox/processed");
    assert!(files_in(&processed).is_empty(), "no file consumed: {:?}", files_in(&processed));
    assert!(common::claimed(&dir.path().join("inbox"), "a.csv"), "held at its checkpoint");
    assert_eq!(files_in(&dir.path().join("inbox")), ["b.csv"], "the new file waits in the inbox");
    std::fs::write(&secret, "sandbox\n").unwrap();
    let done = wait_until_async(Duration::from_secs(60), || files_in(&processed).len() == 2).await;
    let (_, _, log) = daemon.terminate();
    assert!(done, "the held files went on by themselves: {log}");
    let received = sb.received().await;
    assert_eq!(received.len(), 50, "every row arrived");
    assert!(received.values().all(|n| *n == 1), "once each: {received:?}");
    for name in ["a", "b"] {
        let s = summary(&dir.path().join(format!("inbox/reports/{name}.summary.json")));
        assert_eq!(s["rows"]["unprocessed"], 0, "{s}");
        assert_eq!(s["rows"]["accepted"], s["rows"]["read"], "{s}");
    }
}
