//! A file's data records as a stream: gzip, BOM, sniffed dialect, start lines, bounded memory.

use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::block::RowBlock;
use super::dialect::{
    sniff_delimiter, sniff_encoding, FileEncoding, LineEnd, UTF16BE_BOM, UTF16LE_BOM, UTF8_BOM,
};
use super::records::Records;
use super::tap::Tap;
use crate::config::{CsvSettings, HeaderRow};
use crate::mapping::REPORT_COLUMNS;

/// Reading 8 KiB at a time (csv-async's default) made parsing ~3x slower (NOTES.md).
const READ_BUFFER: usize = 1 << 20;
const SNIFF_BYTES: usize = 64 * 1024;
/// `header_row = "auto"` looks for the header among this many first lines.
pub const HEADER_SEARCH_LINES: u64 = 20;

/// Whether a line's cells (decoded, trimmed) hold every mapped column: the header
/// `header_row = "auto"` looks for.
pub type HeaderTest<'a> = &'a (dyn Fn(&[String]) -> bool + Send + Sync);

/// Any source of a file's bytes.
pub type BoxRead = Pin<Box<dyn AsyncRead + Send>>;

/// Why a file cannot be read as a whole (it goes to `failed/`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum FileError {
    #[error("cannot open the file: {0}")]
    Open(String),
    #[error("the file is empty: a header row is required")]
    Empty,
    #[error("the first line has no column names: a header row is required")]
    NoHeader,
    #[error("the file holds binary data (NUL bytes), not CSV text; a UTF-16 file needs its byte order mark (Excel's \"Unicode Text\" has one), or save it as UTF-8")]
    Binary,
    #[error("the file has no line {0} to take as its header (header_row = {0})")]
    NoHeaderLine(u64),
    #[error("header column {0} {1}")]
    Header(usize, String),
    #[error("reading stopped after line {line}: {message}")]
    Read { line: u64, message: String },
    /// The connection to the source broke: the file is read again later, from the ledger's
    /// watermark, instead of failing.
    #[error("the source connection broke after line {line}: {message}")]
    Interrupted { line: u64, message: String },
}

/// The `io::ErrorKind` a source stream uses for "the connection broke" (as opposed to bad
/// bytes): [`FileError::Interrupted`] rather than [`FileError::Read`].
pub const SOURCE_BROKE: std::io::ErrorKind = std::io::ErrorKind::ConnectionAborted;

fn read_error(line: u64, e: std::io::Error) -> FileError {
    if e.kind() == SOURCE_BROKE {
        FileError::Interrupted { line, message: e.to_string() }
    } else {
        FileError::Read { line, message: e.to_string() }
    }
}

/// What the file said about itself before the first data row.
#[derive(Debug, Clone)]
pub struct Dialect {
    pub delimiter: u8,
    pub encoding: FileEncoding,
    pub had_bom: bool,
    /// The header as raw bytes (BOM removed), for the errors report.
    pub raw_header: csv::ByteRecord,
    /// The header decoded, names as written.
    pub header: Vec<String>,
    /// Columns the report added last time (`_line`, `_extra_1`, ...): ignored when read back.
    pub ignored: Vec<usize>,
    /// The file began with Excel's `sep=X` line (its reports do too, so Excel splits them).
    pub sep_line: bool,
    /// How lines end (its reports' lines end the same way).
    pub line_end: LineEnd,
    /// The rows of a workbook's sheet: a row may stop before the header's last column (its
    /// trailing cells are empty).
    pub from_workbook: bool,
}

/// Lines of a file that are not records, for the summary's `lines`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LineCounts {
    /// Lines above the header (title lines; `header_row`).
    pub above_header: u64,
    /// Empty lines, and lines of only delimiters, below the header.
    pub blank: u64,
}

/// The first bytes of a file, looked at before parsing.
struct Head {
    /// Up to 64 KiB, without a BOM or a `sep=` line.
    sample: Vec<u8>,
    had_bom: bool,
    /// The sample is the whole file.
    whole: bool,
    /// The delimiter Excel's `sep=X` first line names.
    sep: Option<u8>,
    line_end: LineEnd,
    /// Each record is one line whatever its cells hold (a converted workbook's rows).
    one_line_per_record: bool,
    /// The file is UTF-16 (big-endian or not) and is read through a transcoder to UTF-8.
    utf16: Option<bool>,
}

impl Head {
    /// Reads the sample; a UTF-16 stream is from then on read as UTF-8 (the returned one).
    async fn read(mut stream: BoxRead) -> Result<(BoxRead, Self), FileError> {
        let mut sample = read_sample(&mut stream).await?;
        let utf16 = if sample.starts_with(UTF16LE_BOM) && !sample.starts_with(b"\xFF\xFE\0\0") {
            Some(false)
        } else {
            sample.starts_with(UTF16BE_BOM).then_some(true)
        };
        if let Some(big_endian) = utf16 {
            let raw: BoxRead = Box::pin(std::io::Cursor::new(sample).chain(stream));
            stream = super::transcode::utf16_to_utf8(raw, big_endian);
            sample = read_sample(&mut stream).await?;
        }
        if sample.iter().all(|b| b.is_ascii_whitespace()) {
            return Err(FileError::Empty);
        }
        if memchr::memchr(0, &sample).is_some() {
            return Err(FileError::Binary);
        }
        let whole = sample.len() < SNIFF_BYTES;
        let had_bom = sample.starts_with(UTF8_BOM) || utf16.is_some();
        if sample.starts_with(UTF8_BOM) {
            sample.drain(..UTF8_BOM.len());
        }
        let one_line_per_record = sample.starts_with(WORKBOOK_MARK);
        if one_line_per_record {
            sample.drain(..WORKBOOK_MARK.len());
        }
        let (line_end, first_end) = LineEnd::of_first_line(&sample);
        let first_line = first_end.map_or(&sample[..], |(i, _)| &sample[..i]);
        let sep = excel_sep(first_line);
        if sep.is_some() {
            sample.drain(..first_end.map_or(sample.len(), |(i, n)| i + n));
        }
        let head = Self { sample, had_bom, whole, sep, line_end, one_line_per_record, utf16 };
        Ok((stream, head))
    }

    fn first_line(&self) -> u64 {
        if self.sep.is_some() {
            2
        } else {
            1
        }
    }

    /// A parser over the sample alone (for looking at the first lines) or, given the rest of
    /// the file's stream, over the whole file.
    fn records(&self, rest: Option<BoxRead>, delimiter: u8, buffer: usize, max: usize) -> Records {
        let (stream, sample, capacity) = match rest {
            Some(s) => (s, self.sample.clone(), buffer),
            None => {
                let empty: BoxRead = Box::pin(tokio::io::empty());
                (empty, self.sample.clone(), self.sample.len())
            }
        };
        Records::new(stream, delimiter, sample, capacity, max).starting_at(
            self.first_line(),
            self.one_line_per_record,
            self.line_end.counted(),
        )
    }
}

async fn read_sample(stream: &mut BoxRead) -> Result<Vec<u8>, FileError> {
    let mut sample = Vec::with_capacity(SNIFF_BYTES);
    let mut limited = stream.take(SNIFF_BYTES as u64);
    limited.read_to_end(&mut sample).await.map_err(|e| read_error(0, e))?;
    Ok(sample)
}

/// The delimiter of Excel's `sep=;` first line (case and quotes as Excel writes them).
fn excel_sep(line: &[u8]) -> Option<u8> {
    let line = line.strip_prefix(b"\"").and_then(|l| l.strip_suffix(b"\"")).unwrap_or(line);
    match line {
        [s, e, p, b'=', d]
            if s.eq_ignore_ascii_case(&b's')
                && e.eq_ignore_ascii_case(&b'e')
                && p.eq_ignore_ascii_case(&b'p') =>
        {
            Some(*d)
        }
        _ => None,
    }
}

/// `_extra_1`, `_extra_2`, ...: the columns a report adds for a row wider than its header.
pub fn is_extra_column(name: &str) -> bool {
    name.strip_prefix("_extra_")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The line `header_row = "auto"` takes: the first of the first [`HEADER_SEARCH_LINES`]
/// lines of the sample whose cells `is_header` takes, else the first line with a record
/// (where the header always was). A record the sample's end cuts off is not looked at.
/// `(first_line, whole)`: the file's first line, and whether the sample is the whole file.
async fn find_header(
    sample: &mut Records,
    (first_line, whole): (u64, bool),
    encoding: FileEncoding,
    is_header: HeaderTest<'_>,
) -> u64 {
    let mut first = None;
    while let Ok(Some(start)) = sample.next().await {
        let cut = sample.exhausted() && !whole;
        let past = start.line >= first_line + HEADER_SEARCH_LINES;
        if cut || past {
            break;
        }
        first.get_or_insert(start.line);
        let cells: Result<Vec<String>, String> =
            sample.fields().map(|f| encoding.decode(f).map(|c| c.trim().to_string())).collect();
        if cells.is_ok_and(|c| is_header(&c)) {
            return start.line;
        }
    }
    first.unwrap_or(1)
}

/// Reads through the lines above `line` (not kept); the record starting there or after it is
/// the header. Returns its line.
async fn read_header(
    records: &mut Records,
    line: u64,
    setting: HeaderRow,
) -> Result<u64, FileError> {
    loop {
        let start = records.next().await.map_err(|e| read_error(records.line(), e))?;
        match start {
            Some(s) if s.line >= line => return Ok(s.line),
            Some(_) => {}
            None if matches!(setting, HeaderRow::Line(_)) => {
                return Err(FileError::NoHeaderLine(line))
            }
            None => return Err(FileError::NoHeader),
        }
    }
}

/// The header's names, decoded and trimmed.
fn decode_header(raw: &csv::ByteRecord, encoding: FileEncoding) -> Result<Vec<String>, FileError> {
    let mut header = Vec::with_capacity(raw.len());
    for (i, f) in raw.iter().enumerate() {
        let name = encoding.decode(f).map_err(|e| FileError::Header(i + 1, e))?;
        header.push(name.trim().to_string());
    }
    if header.iter().all(String::is_empty) {
        return Err(FileError::NoHeader);
    }
    Ok(header)
}

/// A converted workbook's CSV starts with this (never a byte a text file starts with), so
/// its rows are counted one line each whatever their cells hold.
pub const WORKBOOK_MARK: &[u8] = b"\x1e";

pub struct CsvFile {
    records: Records,
    pub dialect: Dialect,
    next_seq: u64,
    above_header: u64,
    /// A workbook's error cells, which fail their rows.
    cell_errors: Option<super::workbook::CellErrors>,
    pub bytes_read: Arc<AtomicU64>,
    /// Data rows read so far, for progress (updated once per block).
    pub rows_seen: Arc<AtomicU64>,
}

impl CsvFile {
    /// Opens a local file (`.gz` by name) and reads its header.
    pub async fn open(
        path: &Path,
        settings: &CsvSettings,
        is_header: HeaderTest<'_>,
    ) -> Result<Self, FileError> {
        let file = tokio::fs::File::open(path).await.map_err(|e| FileError::Open(e.to_string()))?;
        let gz = path.to_string_lossy().to_ascii_lowercase().ends_with(".gz");
        let size = std::fs::metadata(path).ok().map(|m| m.len());
        Self::from_raw(Box::pin(file), gz, settings, is_header, size).await
    }

    /// Reads a file's raw bytes from any stream (a local file, an S3 object body),
    /// gunzipping when `gz`; counts the raw bytes for progress.
    pub async fn from_raw(
        raw: BoxRead,
        gz: bool,
        settings: &CsvSettings,
        is_header: HeaderTest<'_>,
        size: Option<u64>,
    ) -> Result<Self, FileError> {
        let bytes_read = Arc::new(AtomicU64::new(0));
        // Raw bytes (compressed for `.gz`), for progress.
        let count = bytes_read.clone();
        let counted = Tap::new(raw, move |b: &[u8]| {
            count.fetch_add(b.len() as u64, Ordering::Relaxed);
        });
        let stream: BoxRead = if gz {
            let buffered = tokio::io::BufReader::with_capacity(256 * 1024, counted);
            let mut gunzip = async_compression::tokio::bufread::GzipDecoder::new(buffered);
            // `cat a.gz b.gz` and many exporters write several members: read them all.
            gunzip.multiple_members(true);
            Box::pin(gunzip)
        } else {
            Box::pin(counted)
        };
        // A small file needs no 1 MiB buffer: with many small files in flight, that adds up.
        let buffer = match size {
            Some(n) if !gz => (n as usize + 1).clamp(SNIFF_BYTES, READ_BUFFER),
            _ => READ_BUFFER,
        };
        Self::from_stream(stream, settings, is_header, bytes_read, buffer).await
    }

    /// Reads the header from any byte stream (a file, a decompressor, an S3 body): line
    /// `header_row`, or with `"auto"` the first of the first lines that `is_header` takes.
    pub async fn from_stream(
        stream: BoxRead,
        settings: &CsvSettings,
        is_header: HeaderTest<'_>,
        bytes_read: Arc<AtomicU64>,
        buffer: usize,
    ) -> Result<Self, FileError> {
        let (stream, head) = Head::read(stream).await?;
        let encoding = match head.utf16 {
            Some(big_endian) => FileEncoding::Utf16 { big_endian },
            None => sniff_encoding(settings.encoding, &head.sample, head.had_bom, head.whole),
        };
        let delimiter = match head.sep {
            Some(d) => d,
            None => sniff_delimiter(settings.delimiter, &head.sample),
        };
        let max = settings.max_record_bytes;
        let header_line = match settings.header_row {
            HeaderRow::Line(n) => n.max(head.first_line()),
            HeaderRow::Auto => {
                let mut sample = head.records(None, delimiter, buffer, max);
                let search = (head.first_line(), head.whole);
                find_header(&mut sample, search, encoding, is_header).await
            }
        };
        let mut records = head.records(Some(stream), delimiter, buffer, max);
        let at = read_header(&mut records, header_line, settings.header_row).await?;
        records.skip_blank_lines_from_here();
        let raw: csv::ByteRecord = records.fields().collect();
        let header = decode_header(&raw, encoding)?;
        let ignored = header
            .iter()
            .enumerate()
            .filter(|(_, h)| REPORT_COLUMNS.contains(&h.as_str()) || is_extra_column(h))
            .map(|(i, _)| i)
            .collect();
        let dialect = Dialect {
            delimiter,
            encoding,
            had_bom: head.had_bom,
            sep_line: head.sep.is_some(),
            line_end: head.line_end,
            from_workbook: head.one_line_per_record,
            raw_header: raw,
            header,
            ignored,
        };
        let above_header = at.saturating_sub(head.first_line());
        Ok(Self {
            records,
            dialect,
            next_seq: 0,
            above_header,
            cell_errors: None,
            bytes_read,
            rows_seen: Arc::default(),
        })
    }

    /// Rows of a workbook whose cells hold error values fail (`D7 holds #N/A`).
    pub fn with_cell_errors(mut self, errors: super::workbook::CellErrors) -> Self {
        self.cell_errors = Some(errors);
        self
    }

    /// Lines that were not records: above the header, and blank ones read so far.
    pub fn lines(&self) -> LineCounts {
        LineCounts { above_header: self.above_header, blank: self.records.blank() }
    }

    /// Data records read so far (skipped ones included): at the end, the file's row count.
    pub fn rows_read(&self) -> u64 {
        self.next_seq
    }

    /// The next block of records (see [`RowBlock::is_full`]), added to `block` (an empty one
    /// from a [`super::BlockPool`]); records with a seq below `skip_below` are read but left
    /// out (they were settled by an earlier run). Along with the block: `Ok(false)` at the end
    /// of the file, or why reading stopped.
    pub async fn next_block(
        &mut self,
        skip_below: u64,
        mut block: RowBlock,
    ) -> (RowBlock, Result<bool, FileError>) {
        while !block.is_full() {
            let start = match self.records.next().await {
                Ok(Some(start)) => start,
                Ok(None) => {
                    block.mark_nul_rows();
                    self.rows_seen.store(self.next_seq, Ordering::Relaxed);
                    return (block, Ok(false));
                }
                Err(e) => {
                    block.mark_nul_rows();
                    return (block, Err(read_error(self.records.line(), e)));
                }
            };
            let seq = self.next_seq;
            self.next_seq += 1;
            if seq >= skip_below {
                let (data, ends) = self.records.record();
                let flaw = match &self.cell_errors {
                    Some(errors) => start.flaw.or_else(|| errors.take(start.line)),
                    None => start.flaw,
                };
                block.push(seq, start.line, data, ends, flaw);
            }
        }
        block.mark_nul_rows();
        self.rows_seen.store(self.next_seq, Ordering::Relaxed);
        (block, Ok(true))
    }
}
