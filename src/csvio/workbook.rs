//! Spreadsheet workbooks (`*.xlsx`): the chosen sheet (the first, or `sheet = "Name"`) read
//! cell by cell with calamine on a blocking thread and handed on as CSV, so the rest of the
//! pipeline is the same as for a CSV file. Each sheet row is one record (`_line` is the
//! sheet's row number, empty rows included), and the report is a CSV Excel opens (UTF-8 with
//! a BOM, CRLF line ends).

use std::io::{Read, Seek};

use bytes::Bytes;
use calamine::{DataRef, Reader, Xlsx};
use tokio::sync::mpsc;
use tokio_util::io::StreamReader;

use super::dialect::UTF8_BOM;
use super::reader::{BoxRead, WORKBOOK_MARK};

/// Rows sent on in one chunk.
const CHUNK: usize = 64 * 1024;

/// The sheet of the workbook `file` as a CSV byte stream. An error (not a workbook, no such
/// sheet) ends the stream with that error, which fails the file with its message.
pub fn open(file: std::fs::File, sheet: Option<String>) -> BoxRead {
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let sent = convert(std::io::BufReader::new(file), sheet.as_deref(), &tx);
        if let Err(e) = sent {
            let _ = tx.blocking_send(Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)));
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    Box::pin(StreamReader::new(stream))
}

fn convert<R: Read + Seek>(
    file: R,
    sheet: Option<&str>,
    tx: &mpsc::Sender<std::io::Result<Bytes>>,
) -> Result<(), String> {
    let mut book = Xlsx::new(file).map_err(|e| format!("not a readable .xlsx workbook: {e}"))?;
    let names = book.sheet_names();
    let name = match sheet {
        Some(s) if names.iter().any(|n| n == s) => s.to_string(),
        Some(s) => {
            return Err(format!(
                "the workbook has no sheet named `{s}` (it has: {})",
                names.join(", ")
            ))
        }
        None => names.first().cloned().ok_or("the workbook has no sheet")?,
    };
    let mut cells = book.worksheet_cells_reader(&name).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(CHUNK * 2);
    out.extend_from_slice(UTF8_BOM);
    out.extend_from_slice(WORKBOOK_MARK);
    let mut row: Vec<String> = Vec::new();
    let mut at: u32 = 0;
    while let Some(cell) = cells.next_cell().map_err(|e| e.to_string())? {
        let (r, c) = cell.get_position();
        while at < r {
            end_row(&mut out, &mut row);
            at += 1;
        }
        let c = c as usize;
        if row.len() <= c {
            row.resize(c + 1, String::new());
        }
        row[c] = text(cell.get_value());
        if out.len() >= CHUNK
            && tx.blocking_send(Ok(Bytes::from(std::mem::take(&mut out)))).is_err()
        {
            return Ok(());
        }
    }
    end_row(&mut out, &mut row);
    let _ = tx.blocking_send(Ok(Bytes::from(out)));
    Ok(())
}

/// Writes a row as a CSV record (an empty row as an empty line) and clears it.
fn end_row(out: &mut Vec<u8>, row: &mut Vec<String>) {
    if row.iter().any(|c| !c.is_empty()) {
        let mut w =
            csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(Vec::new());
        let _ = w.write_record(row.iter());
        out.extend_from_slice(&w.into_inner().unwrap_or_default());
    } else {
        out.extend_from_slice(b"\r\n");
    }
    row.clear();
}

/// A cell as the text a CSV export would hold: whole numbers without `.0`, dates as ISO-8601.
fn text(v: &DataRef<'_>) -> String {
    match v {
        DataRef::Int(i) => i.to_string(),
        DataRef::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        DataRef::Float(f) => f.to_string(),
        DataRef::String(s) | DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => s.clone(),
        DataRef::SharedString(s) => s.to_string(),
        DataRef::Bool(b) => b.to_string(),
        DataRef::DateTime(d) => excel_date(d.as_f64(), d.is_datetime()),
        DataRef::Error(e) => e.to_string(),
        DataRef::Empty => String::new(),
    }
}

/// An Excel serial date (days since 1899-12-30) as `YYYY-MM-DD`, with the time when it has one.
fn excel_date(serial: f64, with_time: bool) -> String {
    let Some(epoch) = chrono::NaiveDate::from_ymd_opt(1899, 12, 30) else {
        return serial.to_string();
    };
    let days = serial.floor() as i64;
    let Some(date) = epoch.checked_add_signed(chrono::TimeDelta::days(days)) else {
        return serial.to_string();
    };
    let secs = ((serial - serial.floor()) * 86_400.0).round() as u32;
    if !with_time || secs == 0 {
        return date.format("%Y-%m-%d").to_string();
    }
    let time = chrono::NaiveTime::from_num_seconds_from_midnight_opt(secs.min(86_399), 0)
        .unwrap_or_default();
    format!("{}T{}", date.format("%Y-%m-%d"), time.format("%H:%M:%S"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_numbers_read_as_a_csv_export_would() {
        assert_eq!(excel_date(44197.0, false), "2021-01-01");
        assert_eq!(excel_date(44197.5, true), "2021-01-01T12:00:00");
        assert_eq!(text(&DataRef::Float(7700900123.0)), "7700900123");
        assert_eq!(text(&DataRef::Float(2.5)), "2.5");
        let mut out = Vec::new();
        let mut row = vec!["a".to_string(), "x\ny".into()];
        end_row(&mut out, &mut row);
        end_row(&mut out, &mut row);
        assert_eq!(out, b"a,\"x\ny\"\r\n\r\n");
    }
}
