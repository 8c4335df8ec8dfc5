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
    let out = plan_into(&config, "clients", &reports, file);
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

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/shapes").join(name)
}

/// The data rows of an errors report (header left out), each cut before its `_line`
/// column, and the header.
fn report_rows(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut rows = read_report(path);
    let header = rows.remove(0);
    (header, rows)
}

#[test]
fn a_repeated_mapped_column_fails_the_file_naming_both_positions() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("twice.csv");
    std::fs::write(&file, "Code,Name,Active,Email,Phone,Name,Territory,Note\nA1,One,yes,,,Uno,,\n")
        .unwrap();
    let (code, out, reports) = plan(dir.path(), &file);
    assert_eq!(code, 1, "{out}");
    let s = summary_of(&reports, "twice");
    let error = s["error"].as_str().unwrap();
    assert!(
        error.contains(
            "column `Name` (for field `Name`) is in the header 2 times, at positions 2 and 6"
        ),
        "{error}"
    );
}

#[test]
fn a_header_written_in_nfd_matches_the_configs_nfc_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new("http://127.0.0.1:9"));
    let text =
        std::fs::read_to_string(&config).unwrap().replace("Note = \"Note\"", "Note = \"Remarqué\"");
    std::fs::write(&config, text).unwrap();
    // As macOS writes it: `e` followed by U+0301.
    let file = dir.path().join("mac.csv");
    let header = HEADER.replace("Note", "Remarque\u{301}");
    std::fs::write(&file, format!("{header}\nA1,One,yes,,,,un mot\n")).unwrap();
    let reports = dir.path().join("plan");
    let out = plan_into(&config, "clients", &reports, &file);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("\"Note\":\"un mot\""), "{text}");
}

/// `text` as UTF-16 with its BOM.
fn utf16(text: &str, big_endian: bool) -> Vec<u8> {
    let mut out = if big_endian { vec![0xFE, 0xFF] } else { vec![0xFF, 0xFE] };
    for unit in text.encode_utf16() {
        out.extend(if big_endian { unit.to_be_bytes() } else { unit.to_le_bytes() });
    }
    out
}

#[test]
fn utf16_unicode_text_is_read_like_utf8_and_reported_in_utf16() {
    for big_endian in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        // Excel's "Unicode Text": tab-separated UTF-16LE with a BOM and CRLF, saved as .txt.
        let text = "Code\tName\tActive\tEmail\tPhone\tTerritory\tNote\r\n\
                    U1\tZoë Brontë\tyes\t\t\t\t\r\n\
                    U2\t\tyes\t\t\t\tnote 🙂\r\n";
        let file = dir.path().join("unicode.txt");
        std::fs::write(&file, utf16(text, big_endian)).unwrap();
        let (code, out, reports) = plan(dir.path(), &file);
        assert_eq!(code, 0, "{out}");
        assert_eq!(rows(&summary_of(&reports, "unicode")), (2, 1, 1), "{out}");
        assert!(out.contains("\"Name\":\"Zoë Brontë\""), "{out}");
        let raw = std::fs::read(reports.join("unicode.errors.csv")).unwrap();
        let want = utf16("Code\tName\tActive\tEmail\tPhone\tTerritory\tNote\t_line\t_stage\t_field\t_message\r\nU2\t\tyes\t\t\t\tnote 🙂\t3\tvalidate\tName\t", big_endian);
        assert!(raw.starts_with(&want), "same encoding, BOM, delimiter and line ends: {raw:?}");
    }
}

#[test]
fn mac_roman_with_cr_line_ends_keeps_its_accents_and_lines() {
    let dir = tempfile::tempdir().unwrap();
    // Café Crème in Mac Roman (é 0x8E, è 0x8F), lines ended by a bare CR.
    let mut bytes = HEADER.as_bytes().to_vec();
    bytes.extend_from_slice(
        b"\rM1,Caf\x8E Cr\x8Fme,yes,,,,\rM2,,yes,,,,\x8Et\x8E\rM3,\"Two\rlines\",yes,,,,\r",
    );
    let file = dir.path().join("mac.csv");
    std::fs::write(&file, &bytes).unwrap();
    let (code, out, reports) = plan_with(dir.path(), "encoding = \"macintosh\"", &file);
    assert_eq!(code, 0, "{out}");
    assert_eq!(rows(&summary_of(&reports, "mac")), (3, 2, 1), "{out}");
    assert!(out.contains("\"Name\":\"Café Crème\""), "{out}");
    assert!(out.contains("\"Name\":\"Two\\rlines\""), "{out}");
    let raw = std::fs::read(reports.join("mac.errors.csv")).unwrap();
    assert!(
        raw.ends_with(b"\rM2,,yes,,,,\x8Et\x8E,3,validate,Name,Name: is required\r"),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );
}

#[test]
fn title_lines_blank_lines_and_lines_of_delimiters_are_not_records() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "Client report\nGenerated 01/12/2026\n\n{HEADER}\nT1,One,yes,,,,\n,,,,,,\n\nT2,,yes,,,,\n\"\",,,,,,\nT3,Three,no,,,,\n,,,\n"
    );
    let file = dir.path().join("titled.csv");
    std::fs::write(&file, text).unwrap();
    let (code, out, reports) = plan(dir.path(), &file);
    assert_eq!(code, 0, "{out}");
    let s = summary_of(&reports, "titled");
    assert_eq!(rows(&s), (3, 2, 1), "{s}");
    assert_eq!(s["lines"], serde_json::json!({"above_header": 3, "blank": 4}), "{s}");
    assert_eq!(lines_and_stages(&reports.join("titled.errors.csv")), vec![(8, "validate".into())]);
    // The same file with the header named: the same result.
    let (code, out, named) = plan_with(dir.path(), "header_row = 4", &file);
    assert_eq!(code, 0, "{out}");
    assert_eq!(summary_of(&named, "titled")["lines"], s["lines"]);
    // A header line that does not hold the columns fails the file, as before.
    let (code, out, _) = plan_with(dir.path(), "header_row = 2", &file);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("column `Code` (for field `Code`) is not in the header"), "{out}");
}

#[test]
fn a_csv_that_parsed_before_reads_the_same_with_the_header_found_automatically() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain.csv");
    std::fs::write(&file, clean_rows("P", 30)).unwrap();
    let (code, out, reports) = plan(dir.path(), &file);
    assert_eq!(code, 0, "{out}");
    let s = summary_of(&reports, "plain");
    assert_eq!(rows(&s), (30, 30, 0));
    assert_eq!(s["lines"], serde_json::json!({"above_header": 0, "blank": 0}));
}

#[test]
fn a_row_wider_than_the_header_widens_the_report_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{HEADER}\nX1,,yes,,,,\nX2,Two,yes,,,,,spill,over\nX3,,no,,,,\n");
    let file = dir.path().join("wide.csv");
    std::fs::write(&file, text).unwrap();
    let (code, out, reports) = plan(dir.path(), &file);
    assert_eq!(code, 0, "{out}");
    let (header, report) = report_rows(&reports.join("wide.errors.csv"));
    assert_eq!(
        header,
        [
            "Code",
            "Name",
            "Active",
            "Email",
            "Phone",
            "Territory",
            "Note",
            "_extra_1",
            "_extra_2",
            "_line",
            "_stage",
            "_field",
            "_message"
        ]
    );
    assert_eq!(report.len(), 3);
    assert!(report.iter().all(|r| r.len() == header.len()), "{report:?}");
    assert_eq!(&report[1][..10], ["X2", "Two", "yes", "", "", "", "", "spill", "over", "3"]);
    assert_eq!((report[0][9].as_str(), report[2][9].as_str()), ("2", "4"));
    assert_eq!(report[1][10], "parse");
    // Fixed (the name filled in, the spill removed) and dropped back in: the report's own
    // columns, `_extra_N` included, are ignored.
    let fixed = std::fs::read_to_string(reports.join("wide.errors.csv"))
        .unwrap()
        .replace("X1,,yes", "X1,Named,yes")
        .replace("spill,over", ",");
    let again = dir.path().join("wide.errors.csv");
    std::fs::write(&again, fixed).unwrap();
    let (code, out, reports) = plan(dir.path(), &again);
    assert_eq!(code, 0, "{out}");
    // (What the second report is named is the report naming's business: take the one there.)
    let name = files_in(&reports).into_iter().find(|n| n.ends_with(".summary.json")).unwrap();
    assert_eq!(rows(&summary(&reports.join(name))), (3, 2, 1), "{out}");
}

#[test]
fn workbooks_read_as_their_sheets_show_them() {
    for name in ["report.xlsx", "report.xls"] {
        let dir = tempfile::tempdir().unwrap();
        let (code, out, reports) = plan(dir.path(), &corpus(name));
        assert_eq!(code, 0, "{name}: {out}");
        let s = summary_of(&reports, "report");
        assert_eq!(rows(&s), (4, 2, 2), "{name}: {s}");
        assert_eq!(s["lines"], serde_json::json!({"above_header": 3, "blank": 1}), "{name}: {s}");
        assert!(out.contains("\"Name\":\"12345\""), "{name}: a whole number without .0: {out}");
        let (header, rows) = report_rows(&reports.join("report.errors.csv"));
        assert_eq!(header.len(), 11, "{name}: {header:?}");
        // Row 6: empty trailing cells are values, the duration and the 1904 date as text.
        assert_eq!(
            &rows[0][..9],
            ["W2", "", "yes", "", "", "255:10:10", "2021-01-01", "6", "validate"],
            "{name}"
        );
        // Row 7: the error cell fails its row, naming it.
        assert_eq!(
            &rows[1][..9],
            ["W3", "Three", "yes", "#N/A", "", "", "", "7", "parse"],
            "{name}"
        );
        assert!(rows[1][10].starts_with("D7 holds #N/A"), "{name}: {:?}", rows[1]);
    }
}

#[test]
fn hostile_workbooks_fail_the_file_with_a_message() {
    for (name, needle) in [
        ("far_column.xlsx", "outside"),
        ("far_row.xlsx", "outside"),
        ("strings_bomb.xlsx", "zip bomb"),
        ("truncated.xlsx", "truncated"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &ConfigOptions::new("http://127.0.0.1:9"));
        let reports = dir.path().join("plan");
        let (config, report_dir, file) =
            (config.to_string_lossy(), reports.to_string_lossy(), corpus(name));
        let file = file.to_string_lossy();
        let args = [
            "plan",
            "--config",
            &config,
            "--pipeline",
            "clients",
            "--report-dir",
            &report_dir,
            &file,
        ];
        let (out, peak) = run_measured(&args);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{name}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stem = name.trim_end_matches(".xlsx");
        let error = summary_of(&reports, stem)["error"].as_str().unwrap_or_default().to_string();
        assert!(error.contains(needle), "{name}: {error}");
        assert!(peak < 64, "{name}: plan peaked at {peak} MiB");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_picks_up_every_kind_and_sets_hostile_workbooks_aside_on_the_first_try() {
    let sb = TestSandbox::start(crm_ingest::sandbox::SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new(&sb.url));
    let inbox = dir.path().join("inbox");
    for name in ["far_column.xlsx", "strings_bomb.xlsx", "report.xls"] {
        std::fs::copy(corpus(name), inbox.join(name)).unwrap();
    }
    let tsv = "Code\tName\tActive\tEmail\tPhone\tTerritory\tNote\r\nK1\tTab One\tyes\t\t\t\t\r\n";
    std::fs::write(inbox.join("unicode.txt"), utf16(tsv, false)).unwrap();
    std::fs::write(inbox.join("tabs.tsv"), tsv.replace("K1", "K2")).unwrap();
    let daemon = Daemon::start(&config);
    let done = wait_until_async(std::time::Duration::from_secs(30), || {
        files_in(&inbox.join("processed")).len() == 3 && files_in(&inbox.join("failed")).len() == 2
    })
    .await;
    let (_, _, log) = daemon.terminate();
    assert!(
        done,
        "processed {:?} failed {:?}\n{log}",
        files_in(&inbox.join("processed")),
        files_in(&inbox.join("failed"))
    );
    assert!(!log.contains("panicked"), "{log}");
    let error = summary(&inbox.join("reports/far_column.summary.json"))["error"].clone();
    assert!(error.as_str().unwrap().contains("outside any sheet"), "{error}");
    let received = sb.received().await;
    for code in ["K1", "K2", "W1", "W4"] {
        assert_eq!(received.get(code), Some(&1), "{code}: {received:?}");
    }
}

/// Five Plannr clients; line 5 names the person of line 2 (in other case and spacing), line 6
/// shares a name with line 2 but not the birth date.
const PERSONS: &str = "First Name,Surname,Email,Welcome,DOB\n\
                       Ann,Lee,ann@example.com,no,01/02/1980\n\
                       Bob,Ray,bob@example.com,no,03/04/1975\n\
                       Cy,Tan,cy@example.com,no,\n\
                       ANN , lee,ann2@example.com,no,01/02/1980\n\
                       Ann,Lee,ann3@example.com,no,02/02/1980\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_plannr_store_row_naming_an_earlier_person_fails_unless_allowed() {
    let sb = TestSandbox::start(crm_ingest::sandbox::SandboxOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = common::plannr::config(dir.path(), &sb.url, "store", "sandbox-token");
    let file = dir.path().join("people.csv");
    std::fs::write(&file, PERSONS).unwrap();
    let (code, out) = common::plannr::once(&config, "clients", dir.path(), &file).await;
    assert_eq!(code, 1, "{out}");
    let reports = dir.path().join("reports");
    assert_eq!(rows(&summary_of(&reports, "people")), (5, 4, 1), "{out}");
    let report = read_report(&reports.join("people.errors.csv"));
    assert_eq!(report.len(), 2, "{report:?}");
    assert_eq!((report[1][5].as_str(), report[1][6].as_str()), ("5", "validate"));
    assert!(report[1][8].starts_with("same person as line 2"), "{:?}", report[1]);
    let stored = common::plannr::stored(&sb.records().await);
    assert_eq!(
        stored,
        ["ann3@example.com", "ann@example.com", "bob@example.com", "cy@example.com"]
    );

    // `duplicates = "allow"`: every row goes.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "target = \"plannr.import.clients\"",
        "target = \"plannr.import.clients\"\nduplicates = \"allow\"",
    );
    std::fs::write(&config, text).unwrap();
    let again = dir.path().join("people2.csv");
    std::fs::write(&again, PERSONS.replace("@example", "@again.example")).unwrap();
    let (code, out) = common::plannr::once(&config, "clients", dir.path(), &again).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(rows(&summary_of(&reports, "people2")), (5, 5, 0), "{out}");
}

#[test]
fn check_refuses_bad_header_row_encoding_and_duplicates_naming_each() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new("http://127.0.0.1:9"));
    let text = std::fs::read_to_string(&config).unwrap()
        .replace("target = \"repsly.clients\"", "target = \"repsly.clients\"\nduplicates = \"maybe\"")
        .replace(
            "[pipelines.clients.fields]",
            "[pipelines.clients.csv]\nheader_row = 0\nencoding = \"ebcdic\"\n\n[pipelines.clients.fields]",
        );
    std::fs::write(&config, text).unwrap();
    let out = run(&["check", "--config", config.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("header_row `0` must be a line number"), "{err}");
    assert!(
        err.contains("encoding `ebcdic` is not utf-8, windows-1252, macintosh or auto"),
        "{err}"
    );
    assert!(err.contains("duplicates `maybe` is not"), "{err}");
}
