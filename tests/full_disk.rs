//! A full disk under the reports: the file waits in `.processing/` (nothing is moved before
//! its report is on disk), intake pauses, `/readyz` names the path, and once space is back
//! the file finishes by itself with every row reported. Needs a small tmpfs, so root; the
//! test skips, saying so, where it cannot mount one.

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

mod common;

use std::time::Duration;

use common::tmpfs::{fill, Tmpfs};
use common::*;
use crm_ingest::sandbox::SandboxOptions;

#[tokio::test(flavor = "multi_thread")]
async fn a_full_report_disk_pauses_the_file_until_space_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&dir.path().join("reports-fs"), "512k") else { return };
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let config = write_config(dir.path(), &ConfigOptions::new(&sb.url));
    let text = std::fs::read_to_string(&config).unwrap();
    let reports = fs.0.join("reports");
    std::fs::create_dir_all(&reports).unwrap();
    let text = text.replace(
        "batch = { max_rows = 10, max_wait = \"100ms\" }",
        &format!(
            "batch = {{ max_rows = 10, max_wait = \"100ms\" }}\nreport_dir = \"{}\"",
            reports.display()
        ),
    );
    std::fs::write(&config, text).unwrap();
    let ops = with_server(&config);
    let filler = fill(&fs.0);
    let inbox = dir.path().join("inbox");
    // 300 rows with every third refused: the errors report needs room the disk does not have.
    let mut rows = String::from(HEADER);
    rows.push('\n');
    for i in 0..300 {
        let name = if i % 3 == 0 {
            String::new()
        } else {
            format!("Client {i} with a name long enough to take room")
        };
        rows.push_str(&format!(
            "D{i},{name},yes,,,,a note to make each refused row take more room in the report\n"
        ));
    }
    std::fs::write(inbox.join("d.csv"), rows).unwrap();
    let daemon = Daemon::start(&config);
    let blocked =
        wait_until_async(Duration::from_secs(15), || daemon.log().contains("intake paused")).await;
    assert!(blocked, "{}", daemon.log());
    let (status, body) = get(&format!("{ops}/readyz")).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(&reports.display().to_string()), "readyz names the path: {body}");
    assert!(claimed(&inbox, "d.csv"), "nothing is moved before its report is on disk");
    assert!(!inbox.join("processed/d.csv").exists());

    std::fs::remove_file(filler).unwrap();
    let done =
        wait_until_async(Duration::from_secs(60), || inbox.join("processed/d.csv").exists()).await;
    assert!(done, "{}", daemon.log());
    let (status, body) = get(&format!("{ops}/readyz")).await;
    assert_eq!(status, 200, "{body}");
    let s = summary(&reports.join("d.summary.json"));
    assert_eq!(
        (s["rows"]["read"].as_u64(), s["rows"]["failed"].as_u64()),
        (Some(300), Some(100)),
        "{s}"
    );
    assert_eq!(lines_and_stages(&reports.join("d.errors.csv")).len(), 100);
    daemon.terminate();
}
