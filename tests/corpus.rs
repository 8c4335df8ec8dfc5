//! Public CSV and spreadsheet test corpora that no one here wrote (tests/corpus/README.md says
//! where each file comes from and under which licence), each case through the real binary's
//! `plan` and compared with the corpus' own expected values.
//!
//! Every data row is made to fail at `validate` (a constant field no value passes), so the
//! errors report holds every row as read: its cells are compared with the expected rows.

#![allow(clippy::unwrap_used, reason = "tests stop at the first surprise")]

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn corpus(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(path)
}

/// How cells are compared with the corpus' expected values.
#[derive(Clone, Copy, PartialEq)]
enum Compare {
    Exact,
    /// As values: numbers by value (`40.0` is `40`), booleans in any case (csvkit's
    /// converted files are written by its type inference).
    Values,
    /// Line ends inside cells as `\n` (csvkit's expected output normalises them).
    Newlines,
}

/// `plan` of `file` with `column` mapped (any header name of it, so the header is found) and
/// `csv` in the pipeline's csv table: (the report's header cells, its rows' cells, summary).
fn read_all(
    file: &Path,
    column: &str,
    csv: &str,
) -> (Vec<String>, Vec<Vec<String>>, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("corpus.toml");
    let text = format!(
        r#"
state_dir = "{dir}/state"
[connections.plannr]
kind = "plannr"
base_url = "http://127.0.0.1:9"
token = "unused"
account_uuid = "9b2f6a4e-3c1d-4e5f-8a7b-6c5d4e3f2a1b"
[pipelines.corpus]
connection = "plannr"
target = "plannr.import.notes"
source = {{ kind = "folder", path = "{dir}" }}
[pipelines.corpus.csv]
{csv}
[pipelines.corpus.fields]
probe = {{ column = {column:?} }}
never = {{ value = "x", validate = ["one_of:y"] }}
"#,
        dir = dir.path().display(),
    );
    std::fs::write(&config, text).unwrap();
    let reports = dir.path().join("reports");
    let out = plan_into(&config, "corpus", &reports, file);
    let said =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let name = files_in(&reports).into_iter().find(|n| n.ends_with(".summary.json")).unwrap();
    let s = summary(&reports.join(name));
    let errors = files_in(&reports).into_iter().find(|n| n.ends_with(".errors.csv"));
    let Some(errors) = errors else {
        assert_eq!(s["rows"]["read"], 0, "{file:?}: {said}");
        return (Vec::new(), Vec::new(), s);
    };
    let mut rows = read_any_report(&reports.join(errors));
    let mut header = rows.remove(0);
    let width = header.len() - 4;
    header.truncate(width);
    for r in &mut rows {
        assert_eq!(r[width + 1], "validate", "{file:?}: every row reaches validate: {r:?}");
        r.truncate(width);
    }
    (header, rows, s)
}

/// A report as rows of strings, a UTF-16 one (it keeps its source's encoding) decoded.
fn read_any_report(path: &Path) -> Vec<Vec<String>> {
    let bytes = std::fs::read(path).unwrap();
    let text = match bytes.get(..2) {
        Some([0xFF, 0xFE]) => encoding_rs::UTF_16LE.decode(&bytes).0.into_owned(),
        Some([0xFE, 0xFF]) => encoding_rs::UTF_16BE.decode(&bytes).0.into_owned(),
        _ => String::from_utf8(bytes).unwrap(),
    };
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(&text).to_string();
    let mut r =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text.as_bytes());
    r.records().map(|rec| rec.unwrap().iter().map(String::from).collect()).collect()
}

fn same(got: &str, want: &str, how: Compare) -> bool {
    match how {
        Compare::Exact => got == want,
        Compare::Newlines => got.replace("\r\n", "\n").replace('\r', "\n") == want,
        Compare::Values => {
            got == want
                || got.eq_ignore_ascii_case(want)
                // A datetime at midnight is a date in a workbook's serial number.
                || format!("{got}T00:00:00") == want
                || matches!((got.parse::<f64>(), want.parse::<f64>()), (Ok(a), Ok(b)) if a == b)
        }
    }
}

/// Checks the rows read against the expected header and rows.
fn check(file: &str, column: &str, csv: &str, want: (Vec<String>, Vec<Vec<String>>), how: Compare) {
    let (header, rows, s) = read_all(&corpus(file), column, csv);
    let (want_header, want_rows) = want;
    // A column with no name in the header: the report calls it `_extra_N`, csvkit a letter.
    let named = |h: &Vec<String>| {
        h.iter()
            .map(|n| if n.starts_with("_extra_") { String::new() } else { n.clone() })
            .collect::<Vec<_>>()
    };
    let unnamed_ok = header.len() == want_header.len()
        && header
            .iter()
            .zip(&want_header)
            .all(|(g, w)| g == w || g.starts_with("_extra_") && w.len() == 1);
    assert!(unnamed_ok, "{file}: header {:?}, want {want_header:?}", named(&header));
    assert_eq!(rows.len(), want_rows.len(), "{file}: rows {rows:?}");
    for (i, (got, want)) in rows.iter().zip(&want_rows).enumerate() {
        let all = got.len() == want.len() && got.iter().zip(want).all(|(g, w)| same(g, w, how));
        assert!(all, "{file}: row {i}: got {got:?}, want {want:?}");
    }
    assert_eq!(s["rows"]["read"].as_u64(), Some(want_rows.len() as u64), "{file}: {s}");
}

/// A corpus CSV file as its header and rows.
fn csv_file(path: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut rows = read_report(&corpus(path));
    let header = rows.remove(0);
    (header, rows)
}

/// csv-spectrum's JSON: rows as objects, in the header's order.
fn spectrum_json(name: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let (header, _) = csv_file(&format!("csv-spectrum/csvs/{name}.csv"));
    let text = std::fs::read_to_string(corpus(&format!("csv-spectrum/json/{name}.json"))).unwrap();
    let objects: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_str(&text).unwrap();
    let rows = objects
        .iter()
        .map(|o| header.iter().map(|h| o[h].as_str().unwrap().to_string()).collect())
        .collect();
    (header, rows)
}

#[test]
fn csv_spectrum() {
    let cases = [
        "comma_in_quotes",
        "empty",
        "empty_crlf",
        "escaped_quotes",
        "json",
        "newlines",
        "newlines_crlf",
        "quotes_and_newlines",
        "simple",
        "simple_crlf",
        "utf8",
    ];
    for name in cases {
        let want = spectrum_json(name);
        let column = want.0[0].clone();
        check(&format!("csv-spectrum/csvs/{name}.csv"), &column, "", want, Compare::Exact);
    }
}

fn rows(header: &[&str], rows: &[&[&str]]) -> (Vec<String>, Vec<Vec<String>>) {
    let owned = |r: &[&str]| r.iter().map(|c| c.to_string()).collect::<Vec<String>>();
    (owned(header), rows.iter().map(|r| owned(r)).collect())
}

#[test]
fn csvkit_encodings_and_line_ends() {
    // csvkit's UTF-16 files (both byte orders, with a BOM) hold csv-spectrum's utf8.csv; csvkit
    // ships no expected output for them, so that case's JSON is theirs.
    for file in ["test_utf16_big.csv", "test_utf16_little.csv"] {
        check(&format!("csvkit/{file}"), "a", "", spectrum_json("utf8"), Compare::Exact);
    }
    // test_in2csv.py test_add_bom: test_utf8_bom.csv is test_utf8.csv with a BOM.
    for file in ["test_utf8_bom.csv", "test_utf8.csv"] {
        check(
            &format!("csvkit/{file}"),
            "foo",
            "",
            csv_file("csvkit/test_utf8.csv"),
            Compare::Exact,
        );
    }
    // test_csvclean.py: test_changes_line_endings.
    let want = rows(&["a", "b", "c"], &[&["1", "2", "3"], &["Once upon\na time", "5", "6"]]);
    check("csvkit/mac_newlines.csv", "a", "", want, Compare::Newlines);
    // Three blank lines above the header: test_in2csv.py reads it as dummy.csv.
    check("csvkit/test_skip_lines.csv", "a", "", csv_file("csvkit/dummy.csv"), Compare::Exact);
}

#[test]
fn csvkit_workbooks() {
    // test_in2csv.py: test_convert_xls(x), ..._with_sheet, ..._with_skip_lines.
    for (file, sheet, want) in [
        ("test.xls", "", "testxls_converted.csv"),
        ("test.xlsx", "", "testxlsx_converted.csv"),
        ("sheets.xls", "sheet = \"data\"", "testxls_converted.csv"),
        ("sheets.xlsx", "sheet = \"data\"", "testxlsx_converted.csv"),
        ("test_skip_lines.xls", "", "testxls_converted.csv"),
        ("test_skip_lines.xlsx", "", "testxlsx_converted.csv"),
    ] {
        let want = csv_file(&format!("csvkit/{want}"));
        check(&format!("csvkit/{file}"), "text", sheet, want, Compare::Values);
    }
}

#[test]
fn calamine_dates_in_both_date_systems_and_durations() {
    // calamine's tests/test.rs (date_xlsx, date_xlsx_1904, date_xls_1904, ...): A1 is
    // 2021-01-01 and A3 the duration 255:10:10, in every format and either date system; in
    // date.ods (date_ods) A2 is 2021-01-01T10:10:10, A3 PT10H10M10S, A4 PT10H10M10.123456S.
    for file in
        ["date.xlsx", "date.xls", "date.xlsb", "date_1904.xlsx", "date_1904.xls", "date_1904.xlsb"]
    {
        let (header, rows, _) = read_all(&corpus(&format!("calamine/{file}")), "2021-01-01", "");
        assert_eq!(header[0], "2021-01-01", "{file}: the date in the header matches as text");
        assert_eq!(rows.get(1).map(|r| r[0].as_str()), Some("255:10:10"), "{file}: {rows:?}");
    }
    let (header, rows, _) = read_all(&corpus("calamine/date.ods"), "2021-01-01", "");
    assert_eq!(header[0], "2021-01-01");
    let column: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(column, ["2021-01-01T10:10:10", "10:10:10", "10:10:10.123456"]);
}

#[test]
fn calamine_error_cells_fail_their_rows_naming_the_cell() {
    // calamine's error_file test: A1..A7 hold #DIV/0!, #NAME?, #VALUE!, #NULL!, #REF!, #NUM!,
    // #N/A. The first row is the header; each other row fails at parse, naming its cell.
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &ConfigOptions::new("http://127.0.0.1:9"));
    let text = std::fs::read_to_string(&config).unwrap();
    let start = text.find("[pipelines.clients.fields]").unwrap();
    let text = format!(
        "{}[pipelines.clients.fields]\nCode = \"#DIV/0!\"\nName = {{ value = \"n\" }}\n",
        &text[..start]
    );
    std::fs::write(&config, text).unwrap();
    let reports = dir.path().join("reports");
    let out = plan_into(&config, "clients", &reports, &corpus("calamine/errors.xlsx"));
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report = read_report(&reports.join("errors.errors.csv"));
    let got: Vec<(String, String, String)> =
        report[1..].iter().map(|r| (r[0].clone(), r[2].clone(), r[4].clone())).collect();
    let want = ["#NAME?", "#VALUE!", "#NULL!", "#REF!", "#NUM!", "#N/A"];
    assert_eq!(got.len(), want.len(), "{report:?}");
    for (i, ((cell, stage, message), error)) in got.iter().zip(want).enumerate() {
        assert_eq!((cell.as_str(), stage.as_str()), (error, "parse"));
        assert!(message.starts_with(&format!("A{} holds {error}", i + 2)), "{message}");
    }
}
