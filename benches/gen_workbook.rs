//! Turns a generated client export into a workbook for the benchmarks:
//! `gen_clients 200000 42 | cargo run --release --example gen_workbook -- OUT.xlsx [shared]`
//! Cells as inline strings (as many exporters write them), or with `shared` in a shared
//! strings table (as Excel does); a whole number as a number cell. Streams the sheet, so the
//! generator's own memory stays small whatever the row count.

use std::io::Write;

fn column(i: usize) -> String {
    let mut n = i + 1;
    let mut out = Vec::new();
    while n > 0 {
        out.push(b'A' + ((n - 1) % 26) as u8);
        n = (n - 1) / 26;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let out = args.get(1).ok_or("usage: gen_workbook OUT.xlsx [shared] < clients.csv")?;
    let shared = args.get(2).is_some_and(|a| a == "shared");
    let file = std::fs::File::create(out)?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    let sst_rel = if shared {
        r#"<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>"#
    } else {
        ""
    };
    zip.start_file("[Content_Types].xml", options)?;
    zip.write_all(br#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>"#)?;
    zip.start_file("_rels/.rels", options)?;
    zip.write_all(br#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#)?;
    zip.start_file("xl/workbook.xml", options)?;
    zip.write_all(br#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Clients" sheetId="1" r:id="rId1"/></sheets></workbook>"#)?;
    zip.start_file("xl/_rels/workbook.xml.rels", options)?;
    write!(
        zip,
        r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>{sst_rel}</Relationships>"#
    )?;
    zip.start_file("xl/worksheets/sheet1.xml", options)?;
    zip.write_all(br#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#)?;
    let mut strings: Vec<String> = Vec::new();
    let mut index = std::collections::HashMap::new();
    let mut reader =
        csv::ReaderBuilder::new().has_headers(false).from_reader(std::io::stdin().lock());
    for (r, record) in reader.records().enumerate() {
        let record = record?;
        write!(zip, r#"<row r="{}">"#, r + 1)?;
        for (c, cell) in record.iter().enumerate() {
            if cell.is_empty() {
                continue;
            }
            let at = format!("{}{}", column(c), r + 1);
            if !cell.starts_with('0') && cell.len() < 15 && cell.bytes().all(|b| b.is_ascii_digit())
            {
                write!(zip, r#"<c r="{at}"><v>{cell}</v></c>"#)?;
            } else if shared {
                let next = strings.len();
                let i = *index.entry(cell.to_string()).or_insert_with(|| {
                    strings.push(cell.to_string());
                    next
                });
                write!(zip, r#"<c r="{at}" t="s"><v>{i}</v></c>"#)?;
            } else {
                write!(
                    zip,
                    r#"<c r="{at}" t="inlineStr"><is><t xml:space="preserve">{}</t></is></c>"#,
                    escape(cell)
                )?;
            }
        }
        zip.write_all(b"</row>")?;
    }
    zip.write_all(b"</sheetData></worksheet>")?;
    if shared {
        zip.start_file("xl/sharedStrings.xml", options)?;
        write!(
            zip,
            r#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="{0}" uniqueCount="{0}">"#,
            strings.len()
        )?;
        for s in &strings {
            write!(zip, r#"<si><t xml:space="preserve">{}</t></si>"#, escape(s))?;
        }
        zip.write_all(b"</sst>")?;
    }
    zip.finish()?.flush()?;
    Ok(())
}
