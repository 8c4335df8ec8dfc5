//! Inputs as other systems write them (issue 22, and issue 20's gzip members and header
//! names): each shape of file through the real binary's `plan`, with the exact rows, lines
//! and report cells that come out.

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::*;

/// `plan` with the test config (a Repsly clients pipeline), `csv_extra` lines added to its
/// `[pipelines.clients.csv]` table; (exit code, stdout + stderr, report folder).
fn plan_with(dir: &Path, csv_extra: &str, file: &Path) -> (i32, String, PathBuf) {
    let config = write_config(dir, &ConfigOptions::new("http://127.0.0.1:9"));
    if !csv_extra.is_empty() {
        let text = std::fs::read_to_string(&config).unwrap().replace(
            "[pipelines.clients.fields]",
            &format!("[pipelines.clients.csv]\n{csv_extra}\n\n[pipelines.clients.fields]"),
        );
        std::fs::write(&config, text).unwrap();
    }
    let reports = dir.join("plan");
    let _ = std::fs::remove_dir_all(&reports);
    let out = run(&[
        "plan",
        "--config",
        config.to_str().unwrap(),
        "--pipeline",
        "clients",
        "--report-dir",
        reports.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text, reports)
}

fn plan(dir: &Path, file: &Path) -> (i32, String, PathBuf) {
    plan_with(dir, "", file)
}

/// The summary of `stem` in `reports`.
fn summary_of(reports: &Path, stem: &str) -> serde_json::Value {
    summary(&reports.join(format!("{stem}.summary.json")))
}

fn rows(s: &serde_json::Value) -> (u64, u64, u64) {
    let n = |k: &str| s["rows"][k].as_u64().unwrap();
    (n("read"), n("accepted"), n("failed"))
}

fn gzip(text: &str) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap()
}

#[test]
fn a_gzip_of_several_members_is_read_to_its_end() {
    let dir = tempfile::tempdir().unwrap();
    // `cat a.gz b.gz`: the second member holds the second half of the rows.
    let all = clean_rows("M", 200);
    let cut = all.match_indices('\n').nth(100).unwrap().0 + 1;
    let mut bytes = gzip(&all[..cut]);
    bytes.extend(gzip(&all[cut..]));
    let file = dir.path().join("members.csv.gz");
    std::fs::write(&file, bytes).unwrap();
    let (code, out, reports) = plan(dir.path(), &file);
    assert_eq!(code, 0, "{out}");
    assert_eq!(rows(&summary_of(&reports, "members")), (200, 200, 0), "{out}");
}
