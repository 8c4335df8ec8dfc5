//! Plannr's error report as a file: JSON entries, or the uploaded columns plus an `Errors`
//! column as CSV or an XLSX workbook (written here with a zip writer of the sandbox's own),
//! served by the API or by the storage origin.

use std::collections::BTreeMap;
use std::io::Write;

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
            xlsx(&table(import)).unwrap_or_default(),
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

/// The smallest workbook spreadsheet programs open: one sheet of inline strings.
fn xlsx(rows: &[Vec<String>]) -> zip::result::ZipResult<Vec<u8>> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    let files: [(&str, String); 5] = [
        ("[Content_Types].xml", r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#.into()),
        ("_rels/.rels", r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#.into()),
        ("xl/workbook.xml", r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Errors" sheetId="1" r:id="rId1"/></sheets></workbook>"#.into()),
        ("xl/_rels/workbook.xml.rels", r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#.into()),
        ("xl/worksheets/sheet1.xml", sheet(rows)),
    ];
    for (name, text) in files {
        z.start_file(name, opts)?;
        z.write_all(text.as_bytes())?;
    }
    Ok(z.finish()?.into_inner())
}

fn sheet(rows: &[Vec<String>]) -> String {
    let mut xml = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#,
    );
    for (r, row) in rows.iter().enumerate() {
        xml.push_str(&format!("<row r=\"{}\">", r + 1));
        for (c, cell) in row.iter().enumerate() {
            let at = format!("{}{}", column(c), r + 1);
            xml.push_str(&format!(
                "<c r=\"{at}\" t=\"inlineStr\"><is><t>{}</t></is></c>",
                escape(cell)
            ));
        }
        xml.push_str("</row>");
    }
    xml.push_str("</sheetData></worksheet>");
    xml
}

/// `A`, `B`, ... `Z`, `AA`, ...: a spreadsheet's column name.
fn column(mut i: usize) -> String {
    let mut name = Vec::new();
    loop {
        name.push(b'A' + (i % 26) as u8);
        if i < 26 {
            break;
        }
        i = i / 26 - 1;
    }
    name.reverse();
    String::from_utf8(name).unwrap_or_default()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
