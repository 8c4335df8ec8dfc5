//! The console over HTTP (the browser itself is in tests/console_browser.rs): every route but
//! `/healthz`, `/readyz` and `/metrics` refused without the token; sign-in, its cookie and
//! CSRF; uploads and retries with and without a token; downloads byte for byte against the
//! reports on disk; failed rows on a file's page; secrets in no page, answer or log.

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

mod common;

use std::path::Path;
use std::time::Duration;

use common::console::*;
use common::*;
use reqwest::StatusCode;

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn bearer(r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    r.bearer_auth(TOKEN)
}

/// A GET with the token: its body as JSON.
async fn get_json(url: String) -> serde_json::Value {
    bearer(client().get(url)).send().await.unwrap().json().await.unwrap()
}

fn upload_form(name: &str, body: &str) -> reqwest::multipart::Form {
    let part =
        reqwest::multipart::Part::bytes(body.as_bytes().to_vec()).file_name(name.to_string());
    reqwest::multipart::Form::new().part("file", part)
}

/// Every page, API answer, asset and unknown path, as (method, path).
fn routes(id: i64) -> Vec<(&'static str, String)> {
    let mut all: Vec<(&str, String)> = [
        "/",
        "/history",
        "/history?outcome=failed",
        "/status",
        "/api/files",
        "/assets/console.css",
        "/assets/console.js",
        "/login",
        "/no/such/page",
    ]
    .iter()
    .map(|p| ("GET", p.to_string()))
    .collect();
    for p in ["", "/errors.csv", "/warnings.csv", "/summary.json"] {
        all.push(("GET", format!("/api/files/{id}{p}")));
    }
    all.push(("GET", format!("/files/{id}")));
    all.push(("POST", format!("/api/files/{id}/retry")));
    all.push(("POST", "/api/pipelines/clients/files".into()));
    all.push(("POST", "/logout".into()));
    all.push(("POST", "/".into()));
    all
}

async fn send(method: &str, url: &str, auth: Option<&str>) -> reqwest::Response {
    let c = client();
    let r = if method == "GET" { c.get(url) } else { c.post(url) };
    let r = match auth {
        Some(t) => r.bearer_auth(t),
        None => r,
    };
    r.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_but_three_refuses_without_the_token() {
    let mut c = Console::start(true, Duration::ZERO).await;
    let id = c.id_of("bad.csv");
    for (method, path) in routes(id) {
        let url = format!("{}{path}", c.ops);
        for auth in [None, Some("not-the-token-at-all"), Some(&TOKEN[..TOKEN.len() - 1])] {
            let r = send(method, &url, auth).await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{method} {path} with {auth:?}");
            let body = r.text().await.unwrap();
            assert!(
                !body.contains("b2-cell@example.com") && !body.contains("bad.csv"),
                "{path}: {body}"
            );
        }
        let html = client().get(&url).header("accept", "text/html").send().await.unwrap();
        assert_eq!(html.status(), StatusCode::UNAUTHORIZED, "{path}");
        if method == "GET" && !path.starts_with("/api") && path != "/status" {
            assert!(
                html.text().await.unwrap().contains("name=\"token\""),
                "{path}: a browser gets the sign-in form"
            );
        }
    }
    for open in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(send("GET", &format!("{}{open}", c.ops), None).await.status(), 200, "{open}");
    }
    for (method, path) in routes(id).into_iter().filter(|(m, _)| *m == "GET") {
        let r = send(method, &format!("{}{path}", c.ops), Some(TOKEN)).await;
        let expected = if path == "/no/such/page" || path.ends_with("warnings.csv") {
            404
        } else if path == "/login" {
            303
        } else {
            200
        };
        assert_eq!(r.status().as_u16(), expected, "{path} with the token");
        assert_eq!(r.headers()["cache-control"], "no-store", "{path}");
    }
    let status = |token: Option<&str>| {
        let mut cmd = std::process::Command::new(bin());
        cmd.args(["status", "--url", &format!("{}/status", c.ops)]).env_remove("CRM_INGEST_TOKEN");
        if let Some(t) = token {
            cmd.env("CRM_INGEST_TOKEN", t);
        }
        cmd.output().unwrap()
    };
    let refused = status(None);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("401"));
    let shown = status(Some(TOKEN));
    assert!(shown.status.success(), "{}", String::from_utf8_lossy(&shown.stderr));
    assert!(String::from_utf8_lossy(&shown.stdout).contains("bad.csv"));
    c.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_sets_a_strict_http_only_cookie_and_writes_need_csrf() {
    let mut c = Console::start(true, Duration::ZERO).await;
    let login = format!("{}/login", c.ops);
    let wrong =
        client().post(&login).form(&[("token", "nope"), ("next", "/")]).send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get("set-cookie").is_none());
    let right =
        client().post(&login).form(&[("token", TOKEN), ("next", "/history")]).send().await.unwrap();
    assert_eq!(right.status(), StatusCode::SEE_OTHER);
    assert_eq!(right.headers()["location"], "/history");
    let cookie = right.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains(TOKEN), "the cookie is not the token");
    let pair = cookie.split(';').next().unwrap().to_string();
    let evil = client()
        .post(&login)
        .form(&[("token", TOKEN), ("next", "//evil.example/")])
        .send()
        .await
        .unwrap();
    assert_eq!(evil.headers()["location"], "/", "never sent off the site");

    let page = client().get(format!("{}/", c.ops)).header("cookie", &pair).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let csrf = html
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(csrf.len(), 64);

    let id = c.id_of("broken.csv");
    let retry = format!("{}/api/files/{id}/retry", c.ops);
    let no_csrf = client().post(&retry).header("cookie", &pair).send().await.unwrap();
    assert_eq!(no_csrf.status(), StatusCode::FORBIDDEN, "a session's write needs its CSRF token");
    let wrong_csrf = client()
        .post(&retry)
        .header("cookie", &pair)
        .header("accept", "text/html")
        .form(&[("csrf", "0".repeat(64))])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_csrf.status(), StatusCode::SEE_OTHER);
    assert!(
        wrong_csrf.headers()["location"].to_str().unwrap().contains("error="),
        "refused, back to the page"
    );
    assert!(!c.inbox().join("broken.csv").exists());
    let foreign = client()
        .post(&retry)
        .header("cookie", &pair)
        .header("x-csrf-token", &csrf)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN, "another site's write");
    let ok = client()
        .post(&retry)
        .header("cookie", &pair)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200, "{}", ok.text().await.unwrap());

    let out = client()
        .post(format!("{}/logout", c.ops))
        .header("cookie", &pair)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let after =
        client().get(format!("{}/api/files", c.ops)).header("cookie", &pair).send().await.unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED, "signed out");
    c.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_are_refused_without_a_token_and_taken_with_one() {
    let mut open = Console::start(false, Duration::ZERO).await;
    let url = format!("{}/api/pipelines/clients/files", open.ops);
    let r = client()
        .post(&url)
        .multipart(upload_form("new.csv", &clean_rows("U", 2)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("[server] token"));
    let id = open.id_of("broken.csv");
    let r = client().post(format!("{}/api/files/{id}/retry", open.ops)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "retries too");
    assert_eq!(
        send("GET", &format!("{}/", open.ops), None).await.status(),
        200,
        "reading needs no token then"
    );
    assert!(!open.inbox().join("new.csv").exists());
    open.stop();

    let mut c = Console::start(true, Duration::ZERO).await;
    let url = format!("{}/api/pipelines/clients/files", c.ops);
    let r = bearer(client().post(&url))
        .multipart(upload_form("../../../etc/new.csv", &clean_rows("U", 2)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer: serde_json::Value = r.json().await.unwrap();
    assert_eq!(answer["uploaded"], "new.csv", "the name without its path: {answer}");
    let processed = c.inbox().join("processed");
    let done = wait_until_async(Duration::from_secs(30), || {
        files_in(&processed).contains(&"new.csv".to_string())
    })
    .await;
    assert!(done, "the upload went the normal way: {}", c.log());
    assert!(!c.dir.path().join("etc").exists());
    for (name, why) in [("payload.exe", "takes"), (".hidden.csv", "hidden"), ("", "no file name")] {
        let r =
            bearer(client().post(&url)).multipart(upload_form(name, "a,b\n")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{name}");
        assert!(r.text().await.unwrap().contains(why), "{name}");
    }
    let r = bearer(client().post(format!("{}/api/pipelines/nope/files", c.ops)))
        .multipart(upload_form("a.csv", "a\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(files_in(&c.inbox()).is_empty(), "nothing left behind: {:?}", files_in(&c.inbox()));
    c.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn downloads_match_the_reports_on_disk_and_pages_show_failed_and_warned_rows() {
    let mut c = Console::start(true, Duration::ZERO).await;
    let reports = c.inbox().join("reports");
    let id = c.id_of("bad.csv");
    let get_bytes = |path: String| async move {
        let r = bearer(client().get(path)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["cache-control"], "no-store");
        r.bytes().await.unwrap().to_vec()
    };
    let errors = get_bytes(format!("{}/api/files/{id}/errors.csv", c.ops)).await;
    assert_eq!(errors, std::fs::read(reports.join("bad.errors.csv")).unwrap());
    let summary = get_bytes(format!("{}/api/files/{id}/summary.json", c.ops)).await;
    assert_eq!(summary, std::fs::read(reports.join("bad.summary.json")).unwrap());

    let detail = get_json(format!("{}/api/files/{id}", c.ops)).await;
    assert_eq!(detail["rows"]["failed"], 1);
    let row = &detail["failed_rows"]["rows"][0];
    assert_eq!(
        (row["line"].as_str(), row["stage"].as_str()),
        (Some("3"), Some("validate")),
        "{detail}"
    );
    assert!(row["cells"].as_array().unwrap().iter().any(|v| v == "b2-cell@example.com"), "{row}");
    assert_eq!(detail["downloads"]["errors"], format!("/api/files/{id}/errors.csv"));
    let page = bearer(client().get(format!("{}/files/{id}", c.ops)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needed in ["failed-rows", "b2-cell@example.com", "validate", "Download errors report"] {
        assert!(page.contains(needed), "{needed}: {page}");
    }

    let warned = c.id_of("warned.csv");
    let warnings = get_bytes(format!("{}/api/files/{warned}/warnings.csv", c.ops)).await;
    assert_eq!(warnings, std::fs::read(reports.join("warned.warnings.csv")).unwrap());
    let detail = get_json(format!("{}/api/files/{warned}", c.ops)).await;
    let row = &detail["warned_rows"]["rows"][0];
    assert_eq!(row["stage"], "warning", "{detail}");
    assert!(row["cells"].as_array().unwrap().iter().any(|v| v == "Oddly Named Shop"), "{row}");
    let page = bearer(client().get(format!("{}/files/{warned}", c.ops))).send().await.unwrap();
    let page = page.text().await.unwrap();
    assert!(page.contains("warned-rows") && page.contains("Oddly Named Shop"), "{page}");

    let list = get_json(format!("{}/api/files?outcome=failed", c.ops)).await;
    assert_eq!(list["files"].as_array().unwrap().len(), 2);
    let broken = c.id_of("broken.csv");
    let r =
        bearer(client().post(format!("{}/api/files/{broken}/retry", c.ops))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let again = wait_until_async(Duration::from_secs(30), || c.history_len() == 5).await;
    assert!(again, "the retried file was imported again: {}", c.log());
    let r = bearer(client().post(format!("{}/api/files/{id}/retry", c.ops))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT, "bad.csv finished: nothing to retry");
    c.stop();
}

/// Every answer the console gives a signed-in reader, to search for secrets.
async fn everything(c: &Console) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let ids = [c.id_of("bad.csv"), c.id_of("broken.csv")];
    let mut paths: Vec<String> =
        routes(ids[0]).into_iter().filter(|(m, _)| *m == "GET").map(|(_, p)| p).collect();
    paths.extend(routes(ids[1]).into_iter().filter(|(m, _)| *m == "GET").map(|(_, p)| p));
    for p in paths {
        let r = bearer(client().get(format!("{}{p}", c.ops))).send().await.unwrap();
        let headers = format!("{:?}", r.headers());
        out.push((p, format!("{headers}\n{}", r.text().await.unwrap())));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_reach_no_page_answer_or_log() {
    let mut c = Console::start(true, Duration::ZERO).await;
    let answers = everything(&c).await;
    // The page escapes `/` as `&#x2f;`.
    let named = |b: &str| b.contains("webhook to http:&#x2f;&#x2f;127.0.0.1:1&#x2f;…");
    assert!(
        answers.iter().any(|(p, body)| p == "/" && named(body)),
        "the webhook is named without its path"
    );
    let log = c.stop();
    let secrets = [TOKEN, REPSLY_PW, HOOK_SECRET, "hookPathSecret77"];
    for (path, body) in &answers {
        for s in secrets {
            assert!(!body.contains(s), "{s} in {path}");
        }
    }
    for s in secrets {
        assert!(!log.contains(s), "{s} in the log");
    }
    let config_dir: &Path = c.config.parent().unwrap();
    for f in files_in(&config_dir.join("inbox/reports")) {
        let text = std::fs::read_to_string(config_dir.join("inbox/reports").join(&f)).unwrap();
        for s in secrets {
            assert!(!text.contains(s), "{s} in {f}");
        }
    }
}

#[test]
fn check_warns_about_an_open_listen_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new("http://127.0.0.1:1"));
    let base = std::fs::read_to_string(&config).unwrap();
    let check = |server: &str| {
        std::fs::write(&config, format!("{base}\n[server]\n{server}\n")).unwrap();
        let out = run(&["check", "--config", config.to_str().unwrap()]);
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = check("listen = \"0.0.0.0:9464\"");
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("not a loopback address and no [server] token is set"), "{err}");
    let (code, err) = check(&format!("listen = \"0.0.0.0:9464\"\ntoken = \"{TOKEN}\""));
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("loopback"), "a token guards it: {err}");
    let (code, err) = check("listen = \"127.0.0.1:9464\"\ntoken = \"short\"\ntokn = \"x\"");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("`token` must be at least 16 characters"), "{err}");
    assert!(err.contains("unknown key `server.tokn` (did you mean `token`?)"), "{err}");
    let (code, err) = check("listen = \"127.0.0.1:9464\"\ntoken = \"${NO_SUCH_CONSOLE_TOKEN}\"");
    assert_eq!(code, Some(0), "check needs no secrets: {err}");
    assert!(err.contains("NO_SUCH_CONSOLE_TOKEN"), "{err}");
}
