//! A file's data records as a stream: gzip, BOM, sniffed dialect, start lines, bounded memory.

use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::block::RowBlock;
use super::dialect::{sniff_delimiter, sniff_encoding, FileEncoding, UTF8_BOM};
use super::records::Records;
use super::tap::Tap;
use crate::config::CsvSettings;
use crate::mapping::REPORT_COLUMNS;

/// Reading 8 KiB at a time (csv-async's default) made parsing ~3x slower (NOTES.md).
const READ_BUFFER: usize = 1 << 20;
const SNIFF_BYTES: usize = 64 * 1024;

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
    #[error("the file holds binary data (NUL bytes), not CSV text; UTF-16 exports must be saved as UTF-8 or Windows-1252")]
    Binary,
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
    /// Columns the report added last time (`_line`, ...): ignored when read back.
    pub ignored: Vec<usize>,
    /// The file began with Excel's `sep=X` line (its reports do too, so Excel splits them).
    pub sep_line: bool,
    /// Lines end in CRLF (its reports' lines do too).
    pub crlf: bool,
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
    crlf: bool,
    /// Each record is one line whatever its cells hold (a converted workbook's rows).
    one_line_per_record: bool,
}

impl Head {
    async fn read(stream: &mut BoxRead) -> Result<Self, FileError> {
        let mut sample = Vec::with_capacity(SNIFF_BYTES);
        let mut limited = stream.take(SNIFF_BYTES as u64);
        limited.read_to_end(&mut sample).await.map_err(|e| read_error(0, e))?;
        if sample.iter().all(|b| b.is_ascii_whitespace()) {
            return Err(FileError::Empty);
        }
        if memchr::memchr(0, &sample).is_some() {
            return Err(FileError::Binary);
        }
        let whole = sample.len() < SNIFF_BYTES;
        let had_bom = sample.starts_with(UTF8_BOM);
        if had_bom {
            sample.drain(..UTF8_BOM.len());
        }
        let one_line_per_record = sample.starts_with(WORKBOOK_MARK);
        if one_line_per_record {
            sample.drain(..WORKBOOK_MARK.len());
        }
        let first_end = memchr::memchr(b'\n', &sample);
        let crlf = first_end.is_some_and(|i| i > 0 && sample[i - 1] == b'\r');
        let sep = excel_sep(&sample[..first_end.unwrap_or(sample.len())]);
        if sep.is_some() {
            sample.drain(..first_end.map_or(sample.len(), |i| i + 1));
        }
        Ok(Self { sample, had_bom, whole, sep, crlf, one_line_per_record })
    }
}

/// The delimiter of Excel's `sep=;` first line (case and quotes as Excel writes them).
fn excel_sep(line: &[u8]) -> Option<u8> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
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

/// A converted workbook's CSV starts with this (never a byte a text file starts with), so
/// its rows are counted one line each whatever their cells hold.
pub const WORKBOOK_MARK: &[u8] = b"\x1e";

pub struct CsvFile {
    records: Records,
    pub dialect: Dialect,
    next_seq: u64,
    pub bytes_read: Arc<AtomicU64>,
    /// Data rows read so far, for progress (updated once per block).
    pub rows_seen: Arc<AtomicU64>,
}

impl CsvFile {
    /// Opens a local file (`.gz` by name) and reads its header.
    pub async fn open(path: &Path, settings: &CsvSettings) -> Result<Self, FileError> {
        let file = tokio::fs::File::open(path).await.map_err(|e| FileError::Open(e.to_string()))?;
        let gz = path.to_string_lossy().to_ascii_lowercase().ends_with(".gz");
        let size = std::fs::metadata(path).ok().map(|m| m.len());
        Self::from_raw(Box::pin(file), gz, settings, size).await
    }

    /// Reads a file's raw bytes from any stream (a local file, an S3 object body),
    /// gunzipping when `gz`; counts the raw bytes for progress.
    pub async fn from_raw(
        raw: BoxRead,
        gz: bool,
        settings: &CsvSettings,
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
            Box::pin(async_compression::tokio::bufread::GzipDecoder::new(buffered))
        } else {
            Box::pin(counted)
        };
        // A small file needs no 1 MiB buffer: with many small files in flight, that adds up.
        let buffer = match size {
            Some(n) if !gz => (n as usize + 1).clamp(SNIFF_BYTES, READ_BUFFER),
            _ => READ_BUFFER,
        };
        Self::from_stream(stream, settings, bytes_read, buffer).await
    }

    /// Reads the header from any byte stream (a file, a decompressor, an S3 body).
    pub async fn from_stream(
        mut stream: BoxRead,
        settings: &CsvSettings,
        bytes_read: Arc<AtomicU64>,
        buffer: usize,
    ) -> Result<Self, FileError> {
        let head = Head::read(&mut stream).await?;
        let encoding = sniff_encoding(settings.encoding, &head.sample, head.had_bom, head.whole);
        let delimiter = match head.sep {
            Some(d) => d,
            None => sniff_delimiter(settings.delimiter, &head.sample),
        };
        let first_line = if head.sep.is_some() { 2 } else { 1 };
        let mut records =
            Records::new(stream, delimiter, head.sample, buffer, settings.max_record_bytes)
                .starting_at(first_line, head.one_line_per_record);
        records.next().await.map_err(|e| read_error(1, e))?;
        let raw: csv::ByteRecord = records.fields().collect();
        let mut header = Vec::with_capacity(raw.len());
        for (i, f) in raw.iter().enumerate() {
            let name = encoding.decode(f).map_err(|e| FileError::Header(i + 1, e))?;
            header.push(name.trim().to_string());
        }
        if header.iter().all(String::is_empty) {
            return Err(FileError::NoHeader);
        }
        let ignored = header
            .iter()
            .enumerate()
            .filter(|(_, h)| REPORT_COLUMNS.contains(&h.as_str()))
            .map(|(i, _)| i)
            .collect();
        let dialect = Dialect {
            delimiter,
            encoding,
            had_bom: head.had_bom,
            sep_line: head.sep.is_some(),
            crlf: head.crlf,
            raw_header: raw,
            header,
            ignored,
        };
        Ok(Self { records, dialect, next_seq: 0, bytes_read, rows_seen: Arc::default() })
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
                block.push(seq, start.line, data, ends, start.flaw);
            }
        }
        block.mark_nul_rows();
        self.rows_seen.store(self.next_seq, Ordering::Relaxed);
        (block, Ok(true))
    }
}
