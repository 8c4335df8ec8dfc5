//! The console in a real headless browser (Debian's `chromium`, through the DevTools
//! protocol): signed out it shows only the sign-in form; signing in; a file's failed rows;
//! uploading a file and watching it go through without reloading the page; retrying a
//! failed file. The same run writes the screenshots in docs/screenshots/. Without chromium
//! the test skips, saying why (CRM_INGEST_REQUIRE_TOOLS=1 makes that a failure).

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::cdp::{Browser, Page};
use common::console::*;
use common::*;

fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots")
}

fn sign_in(page: &mut Page<'_>, ops: &str) {
    page.open(&format!("{ops}/"));
    assert!(page.wait_for("document.querySelector('input[name=token]')", Duration::from_secs(10)));
    assert!(!page.text("body").contains("bad.csv"), "nothing but the form before signing in");
    page.screenshot(&screenshots().join("sign-in.png"));
    page.eval("document.getElementById('token').value = 'wrong-token-for-sure'");
    page.click("#sign-in");
    page.settle();
    assert!(page.wait_for("document.getElementById('sign-in-error')", Duration::from_secs(10)));
    page.eval(&format!("document.getElementById('token').value = {TOKEN:?}"));
    page.click("#sign-in");
    page.settle();
    assert!(
        page.wait_for("document.getElementById('counters')", Duration::from_secs(10)),
        "{}",
        page.text("body")
    );
    let cookies = page.eval("document.cookie");
    assert!(
        !cookies.as_str().unwrap().contains("crm_ingest_session"),
        "the session cookie is HttpOnly: {cookies}"
    );
}

fn see_failed_rows(page: &mut Page<'_>, ops: &str, id: i64) {
    page.open(&format!("{ops}/files/{id}"));
    assert!(page.wait_for("document.getElementById('failed-rows')", Duration::from_secs(10)));
    // The headings are upper-cased by the stylesheet.
    let table = page.text("#failed-rows").to_lowercase();
    let needed = ["line", "stage", "field", "message", "code", "email", "validate"];
    for n in needed.iter().chain(&["name: is required", "b2-cell@example.com"]) {
        assert!(table.contains(n), "{n} in the failed rows: {table}");
    }
    page.screenshot(&screenshots().join("file.png"));
}

/// A big enough file that the pace of the CRM keeps it in flight for a few polls.
fn upload_file(dir: &Path) -> PathBuf {
    let path = dir.join("uploaded-clients.csv");
    std::fs::write(&path, clean_rows("W", 600)).unwrap();
    path
}

fn upload_and_watch(page: &mut Page<'_>, ops: &str, file: &Path) {
    page.open(&format!("{ops}/"));
    page.choose_file("form.upload[data-pipeline=clients] input[type=file]", file);
    page.click("form.upload[data-pipeline=clients] button");
    page.settle();
    assert!(
        page.text("#flash").contains("uploaded-clients.csv is in the inbox of clients"),
        "{}",
        page.text("body")
    );
    // Marks this document: a reload would lose it, so seeing the file finish with the mark
    // still there shows the page followed it live.
    page.eval("window.notReloaded = true");
    let flying =
        "document.querySelector('#in-flight tbody').innerText.includes('uploaded-clients.csv')";
    assert!(page.wait_for(flying, Duration::from_secs(30)), "the upload showed in flight");
    assert!(page.wait_for("document.querySelector('#in-flight progress')", Duration::from_secs(5)));
    // For the picture only: some progress to show, if the file is still in flight by then.
    let _ = page.wait_for(
        "(document.querySelector('#in-flight progress') || {}).value >= 20",
        Duration::from_secs(10),
    );
    page.screenshot(&screenshots().join("dashboard.png"));
    let done = "[...document.querySelectorAll('#recent tbody tr')].some(r => r.innerText.includes('uploaded-clients.csv') && r.innerText.includes('processed'))";
    assert!(
        page.wait_for(done, Duration::from_secs(90)),
        "the upload finished: {}",
        page.text("#recent")
    );
    assert_eq!(page.eval("window.notReloaded === true"), serde_json::Value::Bool(true));
}

fn retry_one(page: &mut Page<'_>, ops: &str, id: i64) {
    page.open(&format!("{ops}/files/{id}"));
    page.click("#retry");
    page.settle();
    assert!(
        page.text("#flash").contains("broken.csv is back in the inbox of clients"),
        "{}",
        page.text("body")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_in_a_real_browser() {
    let Some(mut browser) = Browser::launch_or_skip() else { return };
    let mut c = Console::start(true, Duration::from_millis(60)).await;
    let (bad, broken) = (c.id_of("bad.csv"), c.id_of("broken.csv"));
    let upload = upload_file(c.dir.path());
    let ops = c.ops.clone();
    let inbox = c.inbox();
    let browsing = tokio::task::spawn_blocking(move || {
        let mut page = browser.page();
        sign_in(&mut page, &ops);
        see_failed_rows(&mut page, &ops, bad);
        upload_and_watch(&mut page, &ops, &upload);
        retry_one(&mut page, &ops, broken);
        page.open(&format!("{ops}/history"));
        let retried = "document.querySelector('#history').innerText.split('broken.csv').length > 2";
        let seen = (0..30).any(|_| {
            page.open(&format!("{ops}/history"));
            page.eval(retried) == serde_json::Value::Bool(true) || {
                std::thread::sleep(Duration::from_millis(500));
                false
            }
        });
        assert!(seen, "the retried file came back into the history: {}", page.text("#history"));
        page.screenshot(&screenshots().join("history.png"));
    });
    browsing.await.unwrap();
    assert!(files_in(&inbox.join("processed")).contains(&"uploaded-clients.csv".to_string()));
    c.stop();
}
