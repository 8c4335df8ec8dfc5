//! Plannr's error report as a file: JSON entries, or the uploaded columns plus an `Errors`
//! column as CSV or an XLSX workbook (written with a zip writer of the sandbox's own),
//! served by the API or by the storage origin.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::sandbox::{ReportFormat, Sandbox};

/// What a report is made from.
pub trait Report {
    fn uuid(&self) -> &str;
    fn headers(&self) -> &[String];
    /// Each refused row as uploaded, with its errors.
    fn failures(&self) -> Vec<(Map<String, Value>, Map<String, Value>)>;
    /// The same as inline entries.
    fn entries(&self) -> Vec<Value>;
}

/// Makes the report available and returns its download URL: on the storage origin when
/// reports live elsewhere, else on the API.
pub fn publish(
    sb: &Sandbox,
    files: &mut BTreeMap<String, (String, Vec<u8>)>,
    import: &dyn Report,
    host: &str,
) -> String {
    match sb.storage_url() {
        Some(storage) => {
            let (mime, bytes) = render(sb.options.real.plannr_report_format, import);
            let name = format!("{}-errors", import.uuid());
            files.insert(name.clone(), (mime.to_string(), bytes));
            format!(
                "{storage}/files/{name}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=sandbox"
            )
        }
        None => format!("http://{host}/api/v1/import/{}/error-report", import.uuid()),
    }
}

/// The report's content type and bytes.
pub fn render(format: ReportFormat, import: &dyn Report) -> (&'static str, Vec<u8>) {
    match format {
        ReportFormat::Json => {
            ("application/json", serde_json::to_vec(&import.entries()).unwrap_or_default())
        }
        ReportFormat::Csv => ("text/csv", csv(&table(import))),
        ReportFormat::Xlsx => (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            crate::sandbox::xlsx::write(&table(import)).unwrap_or_default(),
        ),
    }
}

/// The uploaded columns plus `Errors`, one row per refused row.
fn table(import: &dyn Report) -> Vec<Vec<String>> {
    let mut header: Vec<String> = import.headers().to_vec();
    header.push("Errors".into());
    let mut out = vec![header];
    for (row, errors) in import.failures() {
        let mut cells: Vec<String> = import
            .headers()
            .iter()
            .map(|h| row.get(h).and_then(Value::as_str).unwrap_or("").to_string())
            .collect();
        let reasons: Vec<String> = errors
            .values()
            .flat_map(|v| v.as_array().cloned().unwrap_or_default())
            .filter_map(|m| m.as_str().map(String::from))
            .collect();
        cells.push(reasons.join("; "));
        out.push(cells);
    }
    out
}

fn csv(rows: &[Vec<String>]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        let _ = w.write_record(r);
    }
    w.into_inner().unwrap_or_default()
}
