//! What a newcomer meets in the first hour (issue [4/5]): Excel's `sep=` line, workbooks
//! dropped as `.xlsx`, CRLF kept in reports, a header that does not match, `plan` exit codes.

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use crm_ingest::sandbox::SandboxOptions;

/// `plan` on `file` with the test config; (exit code, stdout + stderr, report folder).
fn plan(dir: &Path, file: &Path) -> (i32, String, std::path::PathBuf) {
    let config = write_config(dir, &ConfigOptions::new("http://127.0.0.1:9"));
    let reports = dir.join("plan");
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

#[test]
fn an_excel_sep_line_is_honoured_and_written_back_with_crlf() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("excel.csv");
    let rows = "sep=;\r\nCode;Name;Active;Email;Phone;Territory;Note\r\nA1;One;yes;a@example.com;;;\r\nA2;;yes;b@example.com;;;\r\nA3;Three;yes;c@example.com;;;\r\n";
    std::fs::write(&file, rows).unwrap();
    let (code, out, reports) = plan(dir.path(), &file);
    assert_eq!(code, 0, "{out}");
    let s = summary(&reports.join("excel.summary.json"));
    assert_eq!(
        (s["rows"]["read"].as_u64(), s["rows"]["failed"].as_u64()),
        (Some(3), Some(1)),
        "{s}"
    );
    let errors = std::fs::read(reports.join("excel.errors.csv")).unwrap();
    let text = String::from_utf8(errors).unwrap();
    assert!(
        text.starts_with("sep=;\r\nCode;Name;"),
        "the sep line and the delimiter kept: {text:?}"
    );
    assert!(
        text.contains("\r\nA2;;yes;b@example.com;;;;4;validate;"),
        "CRLF and the real line (4): {text:?}"
    );
}

#[test]
fn a_header_that_does_not_match_shows_what_was_found_and_the_closest() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wrong.csv");
    std::fs::write(&file, "code,Company Name,Active,Email,Phone,Territory,Note\nA1,One,yes,,,,\n")
        .unwrap();
    let (code, out, _) = plan(dir.path(), &file);
    assert_eq!(code, 1, "a file that fails as a whole makes plan exit non-zero: {out}");
    assert!(
        out.contains(
            "column `Code` (for field `Code`) is not in the header (did you mean `code`?)"
        ),
        "{out}"
    );
    assert!(out.contains("the header found is: `code`, `Company Name`"), "{out}");
}

fn workbook(rows: &[&[&str]]) -> Vec<u8> {
    let rows: Vec<Vec<String>> =
        rows.iter().map(|r| r.iter().map(|c| c.to_string()).collect()).collect();
    crm_ingest::sandbox::xlsx::write(&rows).unwrap()
}

#[test]
fn a_workbook_is_read_by_its_sheet_rows() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("book.xlsx");
    let header: &[&str] = &["Code", "Name", "Active", "Email", "Phone", "Territory", "Note"];
    let bytes = workbook(&[
        header,
        &["W1", "One", "yes", "a@example.com", "", "", "two\nlines"],
        &["", "", "", "", "", "", ""],
        &["W3", "", "yes", "", "", "", ""],
        &["W4", "Four", "no", "", "", "", ""],
    ]);
    std::fs::write(&file, bytes).unwrap();
    let (code, out, reports) = plan(dir.path(), &file);
    assert_eq!(code, 0, "{out}");
    let s = summary(&reports.join("book.summary.json"));
    assert_eq!(
        (s["rows"]["read"].as_u64(), s["rows"]["accepted"].as_u64()),
        (Some(3), Some(2)),
        "{s}"
    );
    let failed = lines_and_stages(&reports.join("book.errors.csv"));
    assert_eq!(
        failed,
        vec![(4, "validate".into())],
        "_line is the sheet's row, a multi-line cell and an empty row included"
    );
    let raw = std::fs::read(reports.join("book.errors.csv")).unwrap();
    assert!(raw.starts_with(b"\xEF\xBB\xBFCode,Name"), "a CSV a spreadsheet opens as UTF-8");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workbook_dropped_in_the_inbox_is_imported() {
    let sb = TestSandbox::start(SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new(&sb.url));
    let inbox = dir.path().join("inbox");
    let header: &[&str] = &["Code", "Name", "Active", "Email", "Phone", "Territory", "Note"];
    std::fs::write(
        inbox.join("book.xlsx"),
        workbook(&[
            header,
            &["X1", "Ex One", "yes", "", "", "", ""],
            &["X2", "Ex Two", "no", "", "", "", ""],
        ]),
    )
    .unwrap();
    let daemon = Daemon::start(&config);
    let done =
        wait_until_async(Duration::from_secs(15), || inbox.join("processed/book.xlsx").exists())
            .await;
    let (_, _, log) = daemon.terminate();
    assert!(done, "{log}");
    let received = sb.received().await;
    assert_eq!((received.get("X1"), received.get("X2")), (Some(&1), Some(&1)));
    assert_eq!(summary(&inbox.join("reports/book.summary.json"))["rows"]["accepted"], 2);
}

/// `init` on a real-looking export: the config it writes passes `check` as written and
/// `plan` on the sample accepts the good rows and fails the bad one.
#[test]
fn init_writes_a_config_that_checks_and_plans_its_sample() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("exports");
    std::fs::create_dir(&inbox).unwrap();
    let sample = inbox.join("customers.csv");
    std::fs::write(
        &sample,
        "Customer-ID,Company,E-mail,Postcode,Telephone,Is Active,Region Code\n\
         C1, Acme  Ltd ,A@Acme.example,BA1 1AA,07700 900101,yes,W\n\
         C2,Bolt,b@bolt.example,TR1 1ZZ,020 7946 0958,no,S\n\
         C3,,c@c.example,EX1 1AA,07700 900103,y,S\n",
    )
    .unwrap();
    let config = dir.path().join("crm-ingest.toml");
    let args = ["init", "--target", "repsly.clients", "--output", config.to_str().unwrap()];
    let out = run(&[&args[..], &[sample.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&config).unwrap();
    for line in [
        "Code = \"Customer-ID\"",
        "Name = { column = \"Company\", transform = [\"trim\", \"collapse_spaces\"] }",
        "Email = { column = \"E-mail\", transform = [\"lowercase\"], validate = [\"email\"] }",
        "ZIP = \"Postcode\"",
        "Phone = { column = \"Telephone\", transform = [\"phone_e164\"] }",
        "Active = { column = \"Is Active\", transform = [\"bool\"] }",
        "#   \"Region Code\" — to send it as a custom field",
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
    let check = Command::new(bin())
        .args(["check", "--config", config.to_str().unwrap()])
        .env("REPSLY_API_USERNAME", "user")
        .env("REPSLY_API_PASSWORD", "secret")
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let reports = dir.path().join("plan");
    let out = run(&[
        "plan",
        "--config",
        config.to_str().unwrap(),
        "--pipeline",
        "repsly_clients",
        "--report-dir",
        reports.to_str().unwrap(),
        sample.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = summary(&reports.join("customers.summary.json"));
    assert_eq!(
        (s["rows"]["accepted"].as_u64(), s["rows"]["failed"].as_u64()),
        (Some(2), Some(1)),
        "{s}"
    );
    let again = run(&[&args[..], &[sample.to_str().unwrap()]].concat());
    assert_eq!(again.status.code(), Some(2), "an existing config is never overwritten");
}
