//! Spreadsheet workbooks (`.xlsx`, `.xlsm`, `.xlsb`, `.xls`, `.ods`): the chosen sheet (the
//! first, or `sheet = "Name"`) read with calamine on a blocking thread and handed on as CSV,
//! so the rest of the pipeline is the same as for a CSV file. Each sheet row is one record
//! (`_line` is the sheet's row number, empty rows included) that stops at its last cell that
//! is not empty; the report is a CSV Excel opens (UTF-8 with a BOM, CRLF line ends).
//!
//! Cells are written as a CSV export would hold them: whole numbers without `.0`, dates in
//! the workbook's own date system as ISO-8601, durations as `[h]:mm:ss`. A cell holding an
//! error value is written as its text and fails its row at `parse` (see [`CellErrors`]).
//!
//! Bounds, checked before calamine allocates: the file's size, the sizes (declared and
//! actual) of the parts calamine holds whole (shared strings, styles, the workbook part, an
//! ODS `content.xml`), and every cell's position (a row or column past Excel's own limits
//! fails the file rather than asking for memory). `.xlsx`/`.xlsm`/`.xlsb` sheets are read
//! cell by cell; `.xls` and `.ods` sheets are held whole by calamine (see [`MAX_WHOLE_SHEET`]).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, Seek};
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use calamine::{CellErrorType, Data, DataRef, Ods, Reader, Xls, Xlsb, Xlsx};
use tokio::sync::mpsc;
use tokio_util::io::StreamReader;

use super::dialect::UTF8_BOM;
use super::reader::{BoxRead, WORKBOOK_MARK};
use super::records::Flaw;

/// Rows sent on in one chunk.
const CHUNK: usize = 64 * 1024;
/// Excel's own limits: a cell past them is not a real cell.
pub const MAX_ROWS: u32 = 1_048_576;
pub const MAX_COLUMNS: u32 = 16_384;
/// A workbook file larger than this is refused (save the sheet as CSV instead).
pub const MAX_FILE: u64 = 512 << 20;
/// The small parts calamine reads whole (styles, the workbook part, relationships).
pub const MAX_HELD_PART: u64 = 16 << 20;
/// Excel's shared strings, which calamine also holds whole: every distinct text of the
/// workbook. Measured: 22 MiB of shared strings (150,000 rows of mostly distinct text) took
/// `plan` to 68 MiB, against 48 MiB for the same rows as inline strings. A limit at the 64 MiB
/// goal would refuse real exports of 200,000 rows (Excel always writes shared strings), so
/// this one lets those through at a bounded cost (about 3 bytes of memory per byte here).
pub const MAX_SHARED_STRINGS: u64 = 40 << 20;
/// `.xls` and `.ods` sheets are held whole: their file (`.xls`) or `content.xml` (`.ods`)
/// may not be larger than this.
pub const MAX_WHOLE_SHEET: u64 = 16 << 20;

/// The workbook kinds, by file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `.xlsx` and `.xlsm` (the same format; macros are never run).
    Xlsx,
    Xlsb,
    Xls,
    Ods,
}

fn kind_of(name: &str) -> Option<Kind> {
    let lower = name.to_ascii_lowercase();
    let ext = lower.rsplit('.').next()?;
    Some(match ext {
        "xlsx" | "xlsm" => Kind::Xlsx,
        "xlsb" => Kind::Xlsb,
        "xls" => Kind::Xls,
        "ods" => Kind::Ods,
        _ => return None,
    })
}

/// Whether `name` is a workbook this module reads.
pub fn is_workbook(name: &str) -> bool {
    kind_of(name).is_some()
}

/// The error cells of the rows converted so far and not yet read: (sheet row, 1-based,
/// 0-based column, the error's code, how many more cells of the row hold one). Filled as
/// rows are converted, emptied as the reader reaches them, so it holds at most the rows in
/// flight between the two.
#[derive(Debug, Clone, Default)]
pub struct CellErrors(Arc<Mutex<VecDeque<ErrorCell>>>);

/// (sheet row, 1-based; 0-based column; error code; how many more cells of the row hold one)
type ErrorCell = (u64, u32, u8, u32);

/// Error values as Excel writes them, by the code a [`Flaw::CellError`] carries.
const ERROR_TEXTS: [&str; 8] =
    ["#DIV/0!", "#N/A", "#NAME?", "#NULL!", "#NUM!", "#REF!", "#VALUE!", "#DATA!"];

fn error_code(e: &CellErrorType) -> u8 {
    match e {
        CellErrorType::Div0 => 0,
        CellErrorType::NA => 1,
        CellErrorType::Name => 2,
        CellErrorType::Null => 3,
        CellErrorType::Num => 4,
        CellErrorType::Ref => 5,
        CellErrorType::Value => 6,
        CellErrorType::GettingData => 7,
    }
}

impl CellErrors {
    fn push(&self, row: u64, col: u32, error: u8, more: u32) {
        if let Ok(mut q) = self.0.lock() {
            q.push_back((row, col, error, more));
        }
    }

    /// What fails the row on `line`, if one of its cells holds an error.
    pub fn take(&self, line: u64) -> Option<Flaw> {
        let mut q = self.0.lock().ok()?;
        while q.front().is_some_and(|e| e.0 < line) {
            q.pop_front();
        }
        let (_, col, error, more) = *q.front().filter(|e| e.0 == line)?;
        q.pop_front();
        Some(Flaw::CellError { col, error, more })
    }
}

/// `D7 holds #N/A`, for a [`Flaw::CellError`] of the row on `line`.
pub fn cell_error_message(line: u64, col: u32, error: u8, more: u32) -> String {
    let text = ERROR_TEXTS.get(usize::from(error)).copied().unwrap_or("an error value");
    let also = match more {
        0 => String::new(),
        1 => " (and 1 more cell of the row holds an error)".into(),
        n => format!(" (and {n} more cells of the row hold errors)"),
    };
    format!(
        "{}{line} holds {text}{also}; fix the formula or its inputs and drop the row again",
        column_name(col)
    )
}

/// `0` -> `A`, `25` -> `Z`, `26` -> `AA`.
pub fn column_name(col: u32) -> String {
    let mut n = u64::from(col) + 1;
    let mut out = Vec::new();
    while n > 0 {
        let rem = ((n - 1) % 26) as u8;
        out.push(b'A' + rem);
        n = (n - 1) / 26;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// The sheet of the workbook at `path` as a CSV byte stream, and its error cells. An error
/// (not a workbook, no such sheet, past a bound) ends the stream with that error, which fails
/// the file with its message.
pub fn open(path: &Path, sheet: Option<String>) -> Result<(BoxRead, CellErrors), String> {
    let name = path.to_string_lossy();
    let kind = kind_of(&name).ok_or_else(|| format!("`{name}` is not a workbook"))?;
    let file = File::open(path).map_err(|e| format!("cannot open the file: {e}"))?;
    let errors = CellErrors::default();
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
    let found = errors.clone();
    tokio::task::spawn_blocking(move || {
        let mut out = Out { tx, buf: Vec::with_capacity(CHUNK * 2), errors: found };
        let sent = convert(file, kind, sheet.as_deref(), &mut out);
        let io = |e| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let _ = match sent {
            Ok(()) => out.tx.blocking_send(Ok(Bytes::from(std::mem::take(&mut out.buf)))),
            Err(e) => out.tx.blocking_send(Err(io(e))),
        };
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    Ok((Box::pin(StreamReader::new(stream)), errors))
}

/// Where converted rows go.
struct Out {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
    errors: CellErrors,
}

impl Out {
    /// Sends what is buffered once it is a chunk; `false` when the reader has gone.
    fn send_full(&mut self) -> bool {
        if self.buf.len() < CHUNK {
            return true;
        }
        self.tx.blocking_send(Ok(Bytes::from(std::mem::take(&mut self.buf)))).is_ok()
    }
}

fn convert(file: File, kind: Kind, sheet: Option<&str>, out: &mut Out) -> Result<(), String> {
    let size = file.metadata().map_err(|e| e.to_string())?.len();
    if size > MAX_FILE {
        return Err(format!(
            "the workbook is {} MiB, more than {} MiB: save the sheet as CSV and drop that",
            size >> 20,
            MAX_FILE >> 20
        ));
    }
    let mut file = BufReader::new(file);
    match kind {
        Kind::Xls if size > MAX_WHOLE_SHEET => return Err(format!("an .xls workbook is read whole, and this one is {} MiB, more than {} MiB: save the sheet as .xlsx or CSV", size >> 20, MAX_WHOLE_SHEET >> 20)),
        Kind::Xls => {}
        _ => super::zip_check::check(&mut file, kind == Kind::Ods)?,
    }
    file.rewind().map_err(|e| e.to_string())?;
    out.buf.extend_from_slice(UTF8_BOM);
    out.buf.extend_from_slice(WORKBOOK_MARK);
    let unreadable = |e: &dyn std::fmt::Display| format!("not a readable workbook: {e}");
    match kind {
        Kind::Xlsx => {
            let mut book = Xlsx::new(file).map_err(|e| unreadable(&e))?;
            let name = pick(book.sheet_names(), sheet)?;
            let mut cells = book.worksheet_cells_reader(&name).map_err(|e| unreadable(&e))?;
            streamed(|| cells.next_cell(), out)?;
        }
        Kind::Xlsb => {
            let mut book = Xlsb::new(file).map_err(|e| unreadable(&e))?;
            let name = pick(book.sheet_names(), sheet)?;
            let mut cells = book.worksheet_cells_reader(&name).map_err(|e| unreadable(&e))?;
            streamed(|| cells.next_cell(), out)?;
        }
        Kind::Xls => {
            let mut book = Xls::new(file).map_err(|e| unreadable(&e))?;
            let name = pick(book.sheet_names(), sheet)?;
            let range = book.worksheet_range(&name).map_err(|e| unreadable(&e))?;
            whole_sheet(&range, out)?;
        }
        Kind::Ods => {
            let mut book: Ods<_> = Ods::new(file).map_err(|e| unreadable(&e))?;
            let name = pick(book.sheet_names(), sheet)?;
            let range = book.worksheet_range(&name).map_err(|e| unreadable(&e))?;
            whole_sheet(&range, out)?;
        }
    }
    Ok(())
}

/// A sheet read cell by cell (`.xlsx`, `.xlsb`), written row by row.
fn streamed<'a, E: std::fmt::Display>(
    mut next: impl FnMut() -> Result<Option<calamine::Cell<DataRef<'a>>>, E>,
    out: &mut Out,
) -> Result<(), String> {
    let mut rows = Rows::default();
    while let Some(cell) = next().map_err(|e| format!("not a readable workbook: {e}"))? {
        let (r, c) = cell.get_position();
        if !rows.cell(r, c, cell.get_value(), out)? {
            return Ok(());
        }
    }
    rows.end(out);
    Ok(())
}

/// The sheet to read: the one named, or the first.
fn pick(names: Vec<String>, sheet: Option<&str>) -> Result<String, String> {
    match sheet {
        Some(s) if names.iter().any(|n| n == s) => Ok(s.to_string()),
        Some(s) => {
            Err(format!("the workbook has no sheet named `{s}` (it has: {})", names.join(", ")))
        }
        None => names.first().cloned().ok_or_else(|| "the workbook has no sheet".into()),
    }
}

/// A sheet calamine holds whole, written row by row.
fn whole_sheet(range: &calamine::Range<Data>, out: &mut Out) -> Result<(), String> {
    let (r0, c0) = range.start().unwrap_or((0, 0));
    let mut rows = Rows::default();
    for (r, c, value) in range.used_cells() {
        let (Ok(r), Ok(c)) = (u32::try_from(r), u32::try_from(c)) else {
            return Err("a cell lies outside the sheet".into());
        };
        let at = (r0.saturating_add(r), c0.saturating_add(c));
        if !rows.cell(at.0, at.1, &borrowed(value), out)? {
            return Ok(());
        }
    }
    rows.end(out);
    Ok(())
}

/// A held cell as the reference a streamed one is.
fn borrowed(value: &Data) -> DataRef<'_> {
    match value {
        Data::Int(i) => DataRef::Int(*i),
        Data::Float(f) => DataRef::Float(*f),
        Data::String(s) => DataRef::SharedString(s),
        Data::Bool(b) => DataRef::Bool(*b),
        Data::DateTime(d) => DataRef::DateTime(*d),
        Data::DateTimeIso(s) => DataRef::DateTimeIso(s.clone()),
        Data::DurationIso(s) => DataRef::DurationIso(s.clone()),
        Data::Error(e) => DataRef::Error(e.clone()),
        Data::Empty => DataRef::Empty,
    }
}

/// The row being assembled from its cells, in sheet order.
#[derive(Default)]
struct Rows {
    /// The 0-based sheet row being assembled, and its cells so far.
    at: u32,
    row: Vec<String>,
    /// The row's first error cell (column, code), and how many more it has.
    error: Option<(u32, u8, u32)>,
}

impl Rows {
    /// Adds a cell at (`r`, `c`), 0-based; ends the rows before it. `Ok(false)` when the
    /// reader has gone; an error for a cell outside a sheet or out of order.
    fn cell(&mut self, r: u32, c: u32, value: &DataRef<'_>, out: &mut Out) -> Result<bool, String> {
        if r >= MAX_ROWS || c >= MAX_COLUMNS {
            return Err(format!("a cell at row {}, column {} is outside any sheet (Excel's last cell is XFD1048576): the workbook is damaged", u64::from(r) + 1, u64::from(c) + 1));
        }
        if r < self.at {
            return Err(format!(
                "the cells of row {} come after those of row {}: the workbook is damaged",
                u64::from(r) + 1,
                u64::from(self.at) + 1
            ));
        }
        while self.at < r {
            self.end_row(out);
            self.at += 1;
            if !out.send_full() {
                return Ok(false);
            }
        }
        if let DataRef::Error(e) = value {
            self.error = match self.error.take() {
                None => Some((c, error_code(e), 0)),
                Some((first, kind, more)) => Some((first, kind, more.saturating_add(1))),
            };
        }
        let text = text(value);
        let c = c as usize;
        if !text.is_empty() {
            if self.row.len() <= c {
                self.row.resize(c + 1, String::new());
            }
            self.row[c] = text;
        }
        Ok(out.send_full())
    }

    fn end(&mut self, out: &mut Out) {
        self.end_row(out);
    }

    /// Writes the row as a CSV record up to its last cell that is not empty (an empty row
    /// as an empty line) and clears it.
    fn end_row(&mut self, out: &mut Out) {
        if let Some((col, error, more)) = self.error.take() {
            out.errors.push(u64::from(self.at) + 1, col, error, more);
        }
        while self.row.last().is_some_and(String::is_empty) {
            self.row.pop();
        }
        if self.row.is_empty() {
            out.buf.extend_from_slice(b"\r\n");
            return;
        }
        let mut w =
            csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(&mut out.buf);
        let _ = w.write_record(self.row.iter());
        drop(w);
        self.row.clear();
    }
}

/// A cell as the text a CSV export would hold: whole numbers without `.0`, dates as ISO-8601
/// in the workbook's date system, times of day as `HH:MM:SS`, durations as `[h]:mm:ss`.
fn text(v: &DataRef<'_>) -> String {
    match v {
        DataRef::Int(i) => i.to_string(),
        DataRef::Float(f) => number(*f),
        DataRef::DurationIso(s) => iso_duration(s).unwrap_or_else(|| s.clone()),
        DataRef::String(s) | DataRef::DateTimeIso(s) => s.clone(),
        DataRef::SharedString(s) => s.to_string(),
        DataRef::Bool(b) => b.to_string(),
        DataRef::DateTime(d) if d.is_duration() => duration(d.as_f64()),
        DataRef::DateTime(d) => date(d),
        DataRef::Error(e) => e.to_string(),
        DataRef::Empty => String::new(),
    }
}

/// A number as Excel shows it in a CSV export: whole numbers without `.0`.
fn number(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{f:.0}")
    } else {
        f.to_string()
    }
}

/// An Excel date (its serial in the workbook's own date system) as `YYYY-MM-DD`, with
/// `THH:MM:SS` when it has a time; a time with no date as `HH:MM:SS`.
fn date(d: &calamine::ExcelDateTime) -> String {
    let serial = d.as_f64();
    if !serial.is_finite() || serial < 0.0 {
        return number(serial);
    }
    let (y, mo, day, h, mi, s, ms) = d.to_ymd_hms_milli();
    // Milliseconds from a float serial: 500 or more rounds up to the next second.
    let s = if ms >= 500 { s.saturating_add(1).min(59) } else { s };
    if serial < 1.0 {
        return format!("{h:02}:{mi:02}:{s:02}");
    }
    if (h, mi, s) == (0, 0, 0) {
        format!("{y:04}-{mo:02}-{day:02}")
    } else {
        format!("{y:04}-{mo:02}-{day:02}T{h:02}:{mi:02}:{s:02}")
    }
}

/// A duration (days, as Excel stores it) as `[h]:mm:ss`: `255:10:10`.
fn duration(days: f64) -> String {
    let secs = (days * 86_400.0).round();
    if !secs.is_finite() || secs.abs() >= 1e15 {
        return number(days);
    }
    let sign = if secs < 0.0 { "-" } else { "" };
    let total = secs.abs() as u64;
    format!("{sign}{}:{:02}:{:02}", total / 3600, total / 60 % 60, total % 60)
}

/// An ISO-8601 duration as an ODS file holds it (`PT255H10M10S`, `P1DT2H`) as `[h]:mm:ss`
/// (`255:10:10`), fractions of a second kept; `None` for any other shape.
fn iso_duration(iso: &str) -> Option<String> {
    let (sign, rest) = match iso.strip_prefix('-') {
        Some(r) => ("-", r),
        None => ("", iso),
    };
    let rest = rest.strip_prefix('P')?;
    let (days, time) = match rest.split_once('T') {
        Some((d, t)) => (d, t),
        None => (rest, ""),
    };
    let days: u64 = match days.strip_suffix('D') {
        Some(n) => n.parse().ok()?,
        None if days.is_empty() => 0,
        None => return None,
    };
    let (mut hours, mut minutes, mut seconds) = (0u64, 0u64, "0");
    let mut rest = time;
    for (unit, slot) in [('H', 0), ('M', 1), ('S', 2)] {
        if let Some((n, after)) = rest.split_once(unit) {
            match slot {
                0 => hours = n.parse().ok()?,
                1 => minutes = n.parse().ok()?,
                _ => seconds = n,
            }
            rest = after;
        }
    }
    let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, ""));
    let whole: u64 = whole.parse().ok()?;
    if !rest.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let total = days.checked_mul(86_400)?.checked_add(hours.checked_mul(3600)?)?;
    let total = total.checked_add(minutes.checked_mul(60)?)?.checked_add(whole)?;
    let fraction = if fraction.is_empty() { String::new() } else { format!(".{fraction}") };
    Some(format!("{sign}{}:{:02}:{:02}{fraction}", total / 3600, total / 60 % 60, total % 60))
}

#[cfg(test)]
mod tests {
    use super::*;
    use calamine::{ExcelDateTime, ExcelDateTimeType};

    fn day(serial: f64, is_1904: bool) -> String {
        date(&ExcelDateTime::new(serial, ExcelDateTimeType::DateTime, is_1904))
    }

    #[test]
    fn dates_durations_and_numbers_read_as_a_csv_export_would() {
        assert_eq!(day(44197.0, false), "2021-01-01");
        assert_eq!(day(44197.5, false), "2021-01-01T12:00:00");
        // The same day in the 1904 system is 1,462 days less.
        assert_eq!(day(44197.0 - 1462.0, true), "2021-01-01");
        assert_eq!(day(0.75, false), "18:00:00", "a time of day alone");
        assert_eq!(duration(255.0 / 24.0 + 10.0 / 1440.0 + 10.0 / 86_400.0), "255:10:10");
        assert_eq!(duration(-0.5), "-12:00:00");
        assert_eq!(iso_duration("PT255H10M10S").as_deref(), Some("255:10:10"));
        assert_eq!(iso_duration("P1DT2H").as_deref(), Some("26:00:00"));
        assert_eq!(iso_duration("PT10H10M10.123456S").as_deref(), Some("10:10:10.123456"));
        assert_eq!(iso_duration("PT1X"), None);
        assert_eq!(number(7700900123.0), "7700900123");
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(-0.0), "-0");
        assert_eq!(column_name(0), "A");
        assert_eq!(column_name(25), "Z");
        assert_eq!(column_name(26), "AA");
        assert_eq!(column_name(MAX_COLUMNS - 1), "XFD");
    }

    #[test]
    fn errors_name_their_cell_and_are_taken_in_order() {
        let e = CellErrors::default();
        e.push(7, 3, error_code(&CellErrorType::NA), 0);
        e.push(9, 0, error_code(&CellErrorType::Ref), 2);
        assert_eq!(e.take(2), None);
        assert!(e.take(7).unwrap().message(7).starts_with("D7 holds #N/A;"));
        assert_eq!(e.take(8), None);
        let m = e.take(9).unwrap().message(9);
        assert!(m.starts_with("A9 holds #REF! (and 2 more cells of the row hold errors)"), "{m}");
        for code in 0u8..8 {
            let all = [
                CellErrorType::Div0,
                CellErrorType::NA,
                CellErrorType::Name,
                CellErrorType::Null,
                CellErrorType::Num,
                CellErrorType::Ref,
                CellErrorType::Value,
                CellErrorType::GettingData,
            ];
            assert_eq!(ERROR_TEXTS[usize::from(code)], all[usize::from(code)].to_string());
        }
    }

    proptest::proptest! {
        #[test]
        fn any_cell_value_converts_without_panic(f in proptest::num::f64::ANY, is_1904: bool) {
            let _ = text(&DataRef::Float(f));
            let _ = text(&DataRef::DateTime(ExcelDateTime::new(f, ExcelDateTimeType::DateTime, is_1904)));
            let _ = text(&DataRef::DateTime(ExcelDateTime::new(f, ExcelDateTimeType::TimeDelta, is_1904)));
        }

        #[test]
        fn any_iso_duration_text_converts_without_panic(text in "-?P[0-9DTHMS.]{0,30}") {
            let _ = iso_duration(&text);
        }

        #[test]
        fn column_names_are_letters(col in 0u32..u32::MAX) {
            let name = column_name(col);
            proptest::prop_assert!(!name.is_empty() && name.bytes().all(|b| b.is_ascii_uppercase()));
        }
    }
}
