//! `crm-ingest plan`: the exact failed lines and stages for real-world spreadsheet exports,
//! with no network at all (the config points at a port nothing listens on).

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

mod common;

use std::io::Write;
use std::path::Path;

use common::*;

fn plan(dir: &Path, file: &Path) -> (i32, String, String) {
    let config = write_config(dir, &ConfigOptions::new("http://127.0.0.1:1"));
    let reports = dir.join("reports");
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
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bom_crlf_quoted_newlines_and_every_kind_of_bad_row() {
    let dir = tempfile::tempdir().unwrap();
    let rows = [
        HEADER,
        "A1,Good One,yes,a1@example.com,07700 900001,UK>North,",         // 2
        "A2,\"Multi\r\nLine Name\",no,a2@example.com,07700 900002,,",    // 3-4
        "A3,,yes,a3@example.com,07700 900003,,",                        // 5: Name required
        "A4,Bad Bool,perhaps,a4@example.com,07700 900004,,",            // 6: map
        "A5,Ragged,yes",                                                // 7: parse
        "A6,Bad Mail,yes,not-an-email,07700 900006,,",                  // 8: validate
        "A7,\"Note\r\nspans\r\nthree\",yes,a7@example.com,+44 (0)20 7946 0958,,", // 9-11
        "A8,Long Territory,yes,a8@example.com,07700 900008,UK>XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX,", // 12
        "A9,Odd Phone,Y,a9@example.com,(01632) 960-009,,",              // 13
    ];
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(rows.join("\r\n").as_bytes());
    bytes.extend_from_slice(b"\r\n");
    let file = dir.path().join("export.csv");
    std::fs::write(&file, bytes).unwrap();

    let (code, out, err) = plan(dir.path(), &file);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("read 9, accepted 4, failed 5"), "{out}");
    assert!(out.contains("sample payload 1: {"), "{out}");
    assert!(out.contains("\"Code\":\"A1\""), "{out}");
    assert!(out.contains("\"Phone\":\"+447700900001\""), "{out}");
    let errors = dir.path().join("reports/export.errors.csv");
    let want: Vec<(u64, String)> =
        [(5, "validate"), (6, "map"), (7, "parse"), (8, "validate"), (12, "validate")]
            .into_iter()
            .map(|(l, s)| (l, s.to_string()))
            .collect();
    assert_eq!(lines_and_stages(&errors), want);
    let s = summary(&dir.path().join("reports/export.summary.json"));
    assert_eq!(s["rows"]["read"], 9);
    assert_eq!(s["rows"]["accepted"], 4);
    assert_eq!(s["rows"]["failed"], 5);
    assert_eq!(s["failed_by_stage"]["validate"], 3);
    assert_eq!(s["failed_by_stage"]["map"], 1);
    assert_eq!(s["failed_by_stage"]["parse"], 1);
    assert_eq!(s["report"], "export.errors.csv");
}

#[test]
fn semicolons_and_windows_1252_with_accents() {
    let dir = tempfile::tempdir().unwrap();
    let text = "Code;Name;Active;Email;Phone;Territory;Note\n\
                W1;Café Zoë;oui;zoe@example.com;07700 900001;;\n\
                W2;Brontë & Söhne;yes;b@example.com;07700 900002;;Größe\n";
    let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(text);
    let file = dir.path().join("latin.csv");
    std::fs::write(&file, &bytes).unwrap();
    let (code, out, err) = plan(dir.path(), &file);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("read 2, accepted 1, failed 1"), "{out}");
    assert!(out.contains("Brontë & Söhne"), "accented names decoded: {out}");
    // The report keeps the source's encoding and delimiter, so it can be fixed and re-dropped.
    let raw = std::fs::read(dir.path().join("reports/latin.errors.csv")).unwrap();
    assert!(raw.windows(8).any(|w| w == b"Caf\xE9 Zo\xEB"), "row written verbatim in windows-1252");
    assert!(raw.starts_with(b"Code;Name;"), "same delimiter");
}

#[test]
fn gzip_files_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.csv.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&file).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all(clean_rows("G", 2500).as_bytes()).unwrap();
    gz.finish().unwrap();
    let (code, out, err) = plan(dir.path(), &file);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("read 2500, accepted 2500, failed 0"), "{out}");
    assert!(dir.path().join("reports/big.summary.json").exists());
}

#[test]
fn a_missing_mapped_column_fails_the_file_and_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nocode.csv");
    std::fs::write(&file, "Name,Active,Email,Phone,Territory,Note\nX,yes,x@example.com,,,\n")
        .unwrap();
    let (code, out, _) = plan(dir.path(), &file);
    assert_eq!(code, 1, "the file as a whole would fail: plan says so in its exit code");
    assert!(out.contains("column `Code` (for field `Code`) is not in the header"), "{out}");
    let s = summary(&dir.path().join("reports/nocode.summary.json"));
    assert!(s["error"].as_str().unwrap().contains("`Code`"));
    assert_eq!(s["rows"]["read"], 0);
}

#[test]
fn a_fixed_errors_file_is_read_back_ignoring_the_report_columns() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("first.csv");
    std::fs::write(
        &file,
        format!("{HEADER}\nF1,,yes,f1@example.com,,,\nF2,Fine,yes,f2@example.com,,,\n"),
    )
    .unwrap();
    let (_, out, _) = plan(dir.path(), &file);
    assert!(out.contains("failed 1"), "{out}");
    // The user fills in the missing name in the report and drops it back in.
    let report = std::fs::read_to_string(dir.path().join("reports/first.errors.csv")).unwrap();
    assert!(report.starts_with(&format!("{HEADER},_line,_stage,_field,_message")), "{report}");
    let fixed = report.replace("F1,,yes", "F1,Now Named,yes");
    let again = dir.path().join("first.errors.csv");
    std::fs::write(&again, fixed).unwrap();
    let (code, out, err) = plan(dir.path(), &again);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("read 1, accepted 1, failed 0"), "{out}");
    assert!(out.contains("\"Name\":\"Now Named\""), "{out}");
}

#[test]
fn empty_and_headerless_files_say_why() {
    let dir = tempfile::tempdir().unwrap();
    for (name, content, needle) in [("empty.csv", "", "empty"), ("blank.csv", "\n\n", "empty")] {
        let file = dir.path().join(name);
        std::fs::write(&file, content).unwrap();
        let (code, out, _) = plan(dir.path(), &file);
        assert_eq!(code, 1);
        assert!(out.contains(needle), "{name}: {out}");
    }
}

#[test]
fn unknown_pipeline_and_missing_file_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new("http://127.0.0.1:1"));
    let out = run(&["plan", "--config", config.to_str().unwrap(), "--pipeline", "nope", "x.csv"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no pipeline named `nope`"));
    let out = run(&[
        "plan",
        "--config",
        config.to_str().unwrap(),
        "--pipeline",
        "clients",
        "/nonexistent.csv",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.csv: no such file"));
}
