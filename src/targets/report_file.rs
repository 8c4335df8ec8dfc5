//! A CRM's error report is a file, not an API answer: JSON, CSV (the uploaded columns plus an
//! errors column) or an XLSX workbook. Whatever it holds, each entry becomes the row's data as
//! the CRM echoes it and the reasons it gives.

use std::io::Cursor;

use serde_json::{Map, Value};

use super::plannr_common::{failure_from_errors, unwrap_data};
use crate::row::{Failure, Stage};

/// A refused row as a report lists it: its data, and why.
pub type Entry = (Map<String, Value>, Failure);

/// Column names that hold the reasons in a tabular report.
const ERROR_COLUMNS: &[&str] = &["errors", "error", "messages", "message", "reason", "reasons"];

/// Reads a report in whichever of the three forms it comes.
pub fn read(body: &[u8]) -> Result<Vec<Entry>, String> {
    if body.starts_with(b"PK\x03\x04") {
        return read_xlsx(body);
    }
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(json_entries(Some(&v)));
    }
    read_csv(body)
}

/// `[{"client": {row}, "errors": {field: [msg]}}, ...]`, or the same as an object keyed by
/// index (PHP's list with gaps), maybe wrapped in `data`, `errors` or `rows`.
pub fn json_entries(v: Option<&Value>) -> Vec<Entry> {
    let Some(v) = v else { return Vec::new() };
    let v = unwrap_data(v.clone());
    let list: Vec<Value> = match v {
        Value::Array(list) => list,
        Value::Object(m) if m.values().all(Value::is_object) && !looks_like_entry(&m) => {
            m.into_iter().map(|(_, e)| e).collect()
        }
        Value::Object(m) => match m.get("errors").or_else(|| m.get("rows")) {
            Some(inner @ (Value::Array(_) | Value::Object(_))) => return json_entries(Some(inner)),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    list.iter().filter_map(|e| e.as_object()).map(entry).collect()
}

fn looks_like_entry(m: &Map<String, Value>) -> bool {
    m.contains_key("errors") && m.len() <= 3
}

fn entry(obj: &Map<String, Value>) -> Entry {
    // The row is the entry's object that is not `errors`, whatever the import type calls it;
    // a flat entry is the row itself.
    let nested = obj.iter().find(|(k, v)| k.as_str() != "errors" && v.is_object());
    let row = match nested {
        Some((_, Value::Object(m))) => m.clone(),
        _ => obj
            .iter()
            .filter(|(k, _)| k.as_str() != "errors")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    let failure = match obj.get("errors") {
        Some(Value::Object(errs)) => failure_from_errors(errs),
        Some(Value::String(m)) => Failure::new(Stage::Remote, None, m.clone()),
        Some(Value::Array(list)) => Failure {
            stage: Stage::Remote,
            fields: Vec::new(),
            messages: list
                .iter()
                .map(|m| m.as_str().map_or_else(|| m.to_string(), String::from))
                .collect(),
        },
        _ => Failure::new(Stage::Remote, None, "refused by the CRM"),
    };
    (row, failure)
}

fn read_csv(body: &[u8]) -> Result<Vec<Entry>, String> {
    let text = String::from_utf8_lossy(body);
    let text = text.trim_start_matches('\u{feff}');
    let first = text.lines().next().unwrap_or_default();
    let delimiter =
        if first.matches(';').count() > first.matches(',').count() { b';' } else { b',' };
    let mut r =
        csv::ReaderBuilder::new().delimiter(delimiter).flexible(true).from_reader(text.as_bytes());
    let header: Vec<String> =
        r.headers().map_err(|e| e.to_string())?.iter().map(|h| h.trim().to_string()).collect();
    let rows: Vec<Vec<String>> =
        r.records().flatten().map(|rec| rec.iter().map(String::from).collect()).collect();
    tabular(&header, rows)
}

fn read_xlsx(body: &[u8]) -> Result<Vec<Entry>, String> {
    use calamine::Reader;
    let mut book = calamine::Xlsx::new(Cursor::new(body))
        .map_err(|e| format!("not a readable workbook: {e}"))?;
    let range = book
        .worksheet_range_at(0)
        .ok_or("the workbook has no sheet")?
        .map_err(|e| e.to_string())?;
    let mut rows = range.rows().map(|r| r.iter().map(|c| c.to_string()).collect::<Vec<String>>());
    let header: Vec<String> =
        rows.next().unwrap_or_default().into_iter().map(|h| h.trim().to_string()).collect();
    tabular(&header, rows.collect())
}

/// A header and rows: the errors column gives the reasons, the others the row's data.
fn tabular(header: &[String], rows: Vec<Vec<String>>) -> Result<Vec<Entry>, String> {
    let errors =
        header.iter().position(|h| ERROR_COLUMNS.contains(&h.to_ascii_lowercase().as_str()));
    if errors.is_none() && !rows.is_empty() {
        return Err(format!("the report has no errors column (columns: {})", header.join(", ")));
    }
    Ok(rows
        .into_iter()
        .filter(|r| r.iter().any(|c| !c.trim().is_empty()))
        .map(|r| {
            let mut row = Map::new();
            for (i, (h, v)) in header.iter().zip(&r).enumerate() {
                if Some(i) != errors {
                    row.insert(h.clone(), Value::String(v.clone()));
                }
            }
            let text =
                errors.and_then(|i| r.get(i)).map(String::as_str).unwrap_or("refused by the CRM");
            (row, reasons(text))
        })
        .collect())
}

/// An errors cell: one reason, or several separated by `;` or new lines.
fn reasons(text: &str) -> Failure {
    let messages: Vec<String> = text
        .split([';', '\n'])
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(String::from)
        .collect();
    Failure {
        stage: Stage::Remote,
        fields: Vec::new(),
        messages: if messages.is_empty() { vec!["refused by the CRM".into()] } else { messages },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_as_a_list_an_object_or_wrapped() {
        let list = json!([{"client": {"first_name": "A"}, "errors": {"last_name": ["required"]}}]);
        let object = json!({"0": {"client": {"first_name": "A"}, "errors": {"last_name": ["required"]}}, "3": {"client": {"first_name": "B"}, "errors": "bad"}});
        assert_eq!(json_entries(Some(&list)).len(), 1);
        let e = json_entries(Some(&object));
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].1.messages, vec!["bad"]);
        assert_eq!(json_entries(Some(&json!({"data": list.clone()}))).len(), 1);
        assert_eq!(
            read(br#"{"errors": {"0": {"client": {"x": "1"}, "errors": {"x": ["no"]}}}}"#)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn csv_with_an_errors_column() {
        let body = b"first_name,last_name,crm_ingest_row,Errors\nAnn,,4,The last name field is required.; The email must be valid.\n";
        let e = read(body).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].0["crm_ingest_row"], "4");
        assert_eq!(e[0].1.messages.len(), 2);
        assert!(read(b"a,b\n1,2\n").is_err(), "no errors column");
    }

    proptest::proptest! {
        #[test]
        fn any_report_is_read_without_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..600), text in ".{0,200}") {
            let _ = read(&body);
            let _ = read(text.as_bytes());
            let mut zip = b"PK\x03\x04".to_vec();
            zip.extend_from_slice(&body);
            let _ = read(&zip);
        }

        #[test]
        fn a_csv_report_round_trips(names in proptest::collection::vec("[A-Za-z]{1,8}", 1..5), reason in "[A-Za-z][A-Za-z ]{0,29}") {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(["first_name", "errors"]).unwrap();
            for n in &names {
                w.write_record([n.as_str(), reason.as_str()]).unwrap();
            }
            let entries = read(&w.into_inner().unwrap()).unwrap();
            proptest::prop_assert_eq!(entries.len(), names.len());
            for ((row, failure), n) in entries.iter().zip(&names) {
                proptest::prop_assert_eq!(row["first_name"].as_str(), Some(n.as_str()));
                proptest::prop_assert_eq!(&failure.messages, &vec![reason.trim().to_string()]);
            }
        }
    }
}
