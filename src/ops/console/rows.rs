//! An errors or warnings report read back as a table: each row's line, stage, field and
//! message, and its own cells under the source's header. The report keeps the source's
//! encoding and delimiter, so both are sniffed as the reader does; a report is data from
//! outside (its cells are whatever people dropped), so nothing in it is trusted.

use serde::Serialize;

use crate::config::{Delimiter, Encoding};
use crate::csvio::dialect::{sniff_delimiter, sniff_encoding, UTF8_BOM};

const OURS: [&str; 4] = ["_line", "_stage", "_field", "_message"];

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Table {
    /// The source's own columns (ours left out).
    pub columns: Vec<String>,
    pub rows: Vec<Row>,
    /// Rows in what was read; more than `rows` when cut at the limit.
    pub total: usize,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Row {
    pub line: String,
    pub stage: String,
    pub field: String,
    pub message: String,
    pub cells: Vec<String>,
}

/// The report's text, whatever it was written in (UTF-16 with a BOM, UTF-8, Windows-1252).
fn text(bytes: &[u8]) -> String {
    if let Some((enc, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        if enc != encoding_rs::UTF_8 {
            return enc.decode_without_bom_handling(&bytes[bom..]).0.into_owned();
        }
    }
    let body = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    let sample = &body[..body.len().min(64 << 10)];
    let encoding = sniff_encoding(
        Encoding::Auto,
        sample,
        body.len() < bytes.len(),
        sample.len() == body.len(),
    );
    match std::str::from_utf8(body) {
        Ok(s) if encoding.name() == "utf-8" => s.to_string(),
        _ => encoding_rs::WINDOWS_1252.decode_without_bom_handling(body).0.into_owned(),
    }
}

/// Up to `limit` rows of a report.
pub fn read(bytes: &[u8], limit: usize) -> Table {
    let text = text(bytes);
    let delimiter = sniff_delimiter(Delimiter::Auto, text.as_bytes());
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let Some(Ok(header)) = records.next() else { return Table::default() };
    let header: Vec<String> = header.iter().map(String::from).collect();
    // Ours are the last columns of those names (a source column may also start with `_`).
    let at: Vec<Option<usize>> =
        OURS.iter().map(|name| header.iter().rposition(|h| h == name)).collect();
    let keep: Vec<usize> = (0..header.len()).filter(|i| !at.contains(&Some(*i))).collect();
    let mut table =
        Table { columns: keep.iter().map(|i| header[*i].clone()).collect(), ..Default::default() };
    for record in records.flatten() {
        table.total += 1;
        if table.rows.len() >= limit {
            continue;
        }
        let cell = |i: Option<usize>| i.and_then(|i| record.get(i)).unwrap_or("").to_string();
        table.rows.push(Row {
            line: cell(at[0]),
            stage: cell(at[1]),
            field: cell(at[2]),
            message: cell(at[3]),
            cells: keep.iter().map(|i| record.get(*i).unwrap_or("").to_string()).collect(),
        });
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rows_come_back_with_their_cells() {
        let report =
            "Code;Name;_line;_stage;_field;_message\r\nB2;;3;validate;Name;Name is required\r\n";
        let t = read(report.as_bytes(), 10);
        assert_eq!(t.columns, ["Code", "Name"]);
        assert_eq!(t.total, 1);
        let r = &t.rows[0];
        assert_eq!(
            (r.line.as_str(), r.stage.as_str(), r.field.as_str()),
            ("3", "validate", "Name")
        );
        assert_eq!(r.message, "Name is required");
        assert_eq!(r.cells, ["B2", ""]);
    }

    #[test]
    fn windows_1252_and_utf16_reports_read_as_text() {
        let mut cp1252 = b"Name,_line,_stage,_field,_message\n".to_vec();
        cp1252.extend_from_slice(b"Ren\xe9e,2,remote,,refused\n");
        assert_eq!(read(&cp1252, 10).rows[0].cells, ["Renée"]);
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain(
                "A\t_line\t_stage\t_field\t_message\nx\t2\tparse\t\tbad\n"
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes),
            )
            .collect();
        let t = read(&utf16, 10);
        assert_eq!((t.rows[0].cells[0].as_str(), t.rows[0].stage.as_str()), ("x", "parse"));
    }

    #[test]
    fn rows_past_the_limit_are_counted_not_kept() {
        let mut report = String::from("A,_line,_stage,_field,_message\n");
        for i in 0..30 {
            report.push_str(&format!("{i},{},map,,m\n", i + 2));
        }
        let t = read(report.as_bytes(), 10);
        assert_eq!((t.rows.len(), t.total), (10, 30));
    }

    proptest! {
        #[test]
        fn any_bytes_read_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let t = read(&bytes, 5);
            prop_assert!(t.rows.len() <= 5 && t.rows.len() <= t.total);
        }
    }
}
