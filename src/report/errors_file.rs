//! `NAME.errors.csv`: the source header and each failed row verbatim, in source order, plus
//! `_line,_stage,_field,_message`. Streamed to a temp file; published only if a row failed.
//! Written in the source's delimiter, encoding (UTF-16 included), BOM and line ends. A row
//! wider than the header keeps its cells: the header is widened with `_extra_1`, ... so the
//! report's own columns stay in theirs (when such a row comes after the header was written,
//! the report is rewritten once, at its end).

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::atomic::{create_private_at, publish};
use super::names::temp_beside;
use crate::csvio::transcode::{Utf16Reader, Utf16Writer};
use crate::csvio::{dialect::UTF8_BOM, Dialect, FileEncoding};
use crate::mapping::REPORT_COLUMNS;
use crate::row::Failure;

/// Where a report's bytes go: the file, through a UTF-16 encoder for a UTF-16 source.
enum Sink {
    Plain(BufWriter<File>),
    Utf16(Utf16Writer<BufWriter<File>>),
}

impl Sink {
    fn new(file: File, encoding: FileEncoding) -> Self {
        let out = BufWriter::new(file);
        match encoding {
            FileEncoding::Utf16 { big_endian } => Sink::Utf16(Utf16Writer::new(out, big_endian)),
            _ => Sink::Plain(out),
        }
    }

    fn file(&self) -> &File {
        match self {
            Sink::Plain(w) => w.get_ref(),
            Sink::Utf16(w) => w.get_ref().get_ref(),
        }
    }

    fn into_file(self) -> io::Result<File> {
        let out = match self {
            Sink::Plain(w) => w,
            Sink::Utf16(w) => w.into_inner(),
        };
        out.into_inner().map_err(|e| e.into_error())
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(buf),
            Sink::Utf16(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Utf16(w) => w.flush(),
        }
    }
}

type Writer = csv::Writer<Sink>;

pub struct ErrorsFile {
    target: PathBuf,
    /// Where rows accumulate until the file is published (hidden, beside the target).
    partial: PathBuf,
    dialect: Dialect,
    open: Option<Writer>,
    rows: u64,
    /// `_extra_N` columns the header as written has.
    extra_in_header: usize,
    /// Cells past the header's width of the widest row written.
    widest_extra: usize,
    /// The published file's mode (`report_mode`).
    mode: u32,
}

impl ErrorsFile {
    /// A report that publishes to `target`; a random hidden temp file holds it meanwhile.
    pub fn new(target: PathBuf, dialect: Dialect) -> Self {
        let partial = temp_beside(&target);
        Self {
            target,
            partial,
            dialect,
            open: None,
            rows: 0,
            extra_in_header: 0,
            widest_extra: 0,
            mode: super::atomic::PRIVATE,
        }
    }

    /// Published with `mode` rather than 0600 (`report_mode`).
    pub fn with_mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// A report kept in `partial` across restarts: its first `bytes` bytes are kept (rows an
    /// earlier run settled), anything after them is cut off, and new rows follow. A report an
    /// earlier run already published (it was stopped after publishing, before the file was
    /// filed away) is taken back as the partial: its last checkpoint was committed first. (A
    /// published report longer than `bytes` was widened at its end: it is taken back whole.)
    pub fn resumable(
        target: PathBuf,
        partial: PathBuf,
        dialect: Dialect,
        bytes: u64,
    ) -> io::Result<Self> {
        let mut me = Self::new(target, dialect);
        me.partial = partial;
        let mut length = bytes;
        if bytes > 0 && !me.partial.exists() && me.target.exists() {
            length = std::fs::metadata(&me.target)?.len().max(bytes);
            std::fs::rename(&me.target, &me.partial)?;
        }
        if bytes > 0 && !me.partial.exists() {
            tracing::warn!(report = %me.partial.display(), "the partial errors report is gone; rows reported before the restart are missing from it");
        } else if bytes > 0 {
            let file = std::fs::OpenOptions::new().read(true).write(true).open(&me.partial)?;
            file.set_len(length)?;
            let widths = me.widths_in(&me.partial)?;
            (me.extra_in_header, me.widest_extra) = widths;
            let mut file = file;
            io::Seek::seek(&mut file, io::SeekFrom::End(0))?;
            me.open =
                Some(writer_for(&me.dialect).from_writer(Sink::new(file, me.dialect.encoding)));
        } else if me.partial.exists() {
            std::fs::remove_file(&me.partial)?;
        }
        Ok(me)
    }

    /// Pushes what is written to the file and returns its length: what a checkpoint records.
    pub fn flush(&mut self) -> io::Result<u64> {
        match &mut self.open {
            None => Ok(0),
            Some(w) => {
                w.flush()?;
                w.get_ref().file().metadata().map(|m| m.len())
            }
        }
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The header's width without the columns ignored on reading (an earlier report's).
    fn kept_width(&self) -> usize {
        self.dialect.raw_header.len().saturating_sub(self.dialect.ignored.len())
    }

    /// Appends one failed row; the file is created on the first.
    pub fn write(
        &mut self,
        line: u64,
        raw: &csv_async::ByteRecord,
        failure: &Failure,
    ) -> io::Result<()> {
        let enc = self.dialect.encoding;
        let mut record = csv::ByteRecord::new();
        for (i, field) in raw.iter().enumerate() {
            if !self.dialect.ignored.contains(&i) {
                record.push_field(field);
            }
        }
        let kept_width = self.kept_width();
        let extra = record.len().saturating_sub(kept_width);
        if self.open.is_none() {
            // The first row decides the header's width; a wider one later widens it at the end.
            self.extra_in_header = extra;
        }
        self.widest_extra = self.widest_extra.max(extra);
        // A short (ragged) row is padded so the report's own columns line up.
        while record.len() < kept_width + self.extra_in_header {
            record.push_field(b"");
        }
        record.push_field(line.to_string().as_bytes());
        record.push_field(failure.stage.as_str().as_bytes());
        record.push_field(&enc.encode(&failure.fields.join(";")));
        record.push_field(&enc.encode(&failure.messages.join("; ")));
        let writer = self.writer()?;
        writer.write_byte_record(&record).map_err(csv_io)?;
        self.rows += 1;
        Ok(())
    }

    fn writer(&mut self) -> io::Result<&mut Writer> {
        if self.open.is_none() {
            let file = create_private_at(&self.partial)?;
            self.open = Some(start_report(file, &self.dialect, self.extra_in_header)?);
        }
        match &mut self.open {
            Some(w) => Ok(w),
            None => Err(io::Error::other("errors report not open")),
        }
    }

    /// Publishes the report if any row failed; returns its path. A row wider than the header
    /// as written has it rewritten, widened, first.
    pub fn finish(&mut self) -> io::Result<Option<PathBuf>> {
        let Some(writer) = self.open.take() else { return Ok(None) };
        let out = writer.into_inner().map_err(|e| e.into_error())?;
        let file = out.into_file()?;
        if self.widest_extra <= self.extra_in_header {
            publish(file, &self.partial, &self.target, self.mode)?;
            return Ok(Some(self.target.clone()));
        }
        drop(file);
        let widened = self.partial.with_extension("widened");
        let result = self.widen(&widened);
        if result.is_err() {
            let _ = std::fs::remove_file(&widened);
        }
        let file = result?;
        publish(file, &widened, &self.target, self.mode)?;
        std::fs::remove_file(&self.partial)?;
        Ok(Some(self.target.clone()))
    }

    /// The partial report rewritten into `path` with `widest_extra` `_extra_N` columns, every
    /// row's cells padded to them.
    fn widen(&self, path: &Path) -> io::Result<File> {
        let width = self.kept_width() + self.widest_extra;
        let mut out = start_report(create_private_at(path)?, &self.dialect, self.widest_extra)?;
        let mut rows = self.rows_of(&self.partial)?;
        let mut row = csv::ByteRecord::new();
        let mut first = true;
        while rows.read_byte_record(&mut row).map_err(csv_io)? {
            if std::mem::take(&mut first) {
                continue; // the header
            }
            let cells = row.len().saturating_sub(REPORT_COLUMNS.len());
            let mut widened = csv::ByteRecord::new();
            row.iter().take(cells).for_each(|f| widened.push_field(f));
            (cells..width).for_each(|_| widened.push_field(b""));
            row.iter().skip(cells).for_each(|f| widened.push_field(f));
            out.write_byte_record(&widened).map_err(csv_io)?;
        }
        out.into_inner().map_err(|e| e.into_error())?.into_file()
    }

    /// A report's records from its header on: the BOM and a `sep=` line stepped over, UTF-16
    /// read as UTF-8.
    fn rows_of(&self, path: &Path) -> io::Result<csv::Reader<Box<dyn Read>>> {
        let mut file = io::BufReader::new(File::open(path)?);
        let d = &self.dialect;
        let mut text: Box<dyn Read> = match d.encoding {
            FileEncoding::Utf16 { big_endian } => Box::new(Utf16Reader::new(file, big_endian)),
            _ => {
                if d.had_bom {
                    let mut bom = [0u8; 3];
                    file.read_exact(&mut bom)?;
                }
                Box::new(file)
            }
        };
        if d.sep_line {
            let eol = d.line_end.bytes();
            let mut line = Vec::new();
            let mut byte = [0u8; 1];
            while !line.ends_with(eol) && text.read(&mut byte)? == 1 {
                line.push(byte[0]);
            }
        }
        let mut b = csv::ReaderBuilder::new();
        b.delimiter(d.delimiter).flexible(true).has_headers(false);
        Ok(b.from_reader(text))
    }

    /// The `_extra_N` columns of a report's header, and the cells past the header's width of
    /// its widest row.
    fn widths_in(&self, path: &Path) -> io::Result<(usize, usize)> {
        let kept = self.kept_width();
        let mut rows = self.rows_of(path)?;
        let mut row = csv::ByteRecord::new();
        let (mut header, mut widest) = (None, 0);
        while rows.read_byte_record(&mut row).map_err(csv_io)? {
            let extra = row.len().saturating_sub(REPORT_COLUMNS.len() + kept);
            header.get_or_insert(extra);
            widest = widest.max(extra);
        }
        Ok((header.unwrap_or(0), widest))
    }
}

/// A new report in `file`: its BOM, a `sep=` line when the source had one, and the header
/// with `extra` `_extra_N` columns before the report's own.
fn start_report(mut file: File, d: &Dialect, extra: usize) -> io::Result<Writer> {
    let bom: &[u8] = match d.encoding {
        FileEncoding::Utf16 { big_endian: false } => b"\xFF\xFE",
        FileEncoding::Utf16 { big_endian: true } => b"\xFE\xFF",
        _ if d.had_bom => UTF8_BOM,
        _ => b"",
    };
    file.write_all(bom)?;
    let mut out = Sink::new(file, d.encoding);
    let eol = d.line_end.bytes();
    if d.sep_line {
        // Excel's own first line, so it splits the report the way it split the source.
        io::Write::write_all(&mut out, &[b"sep=", &[d.delimiter][..], eol].concat())?;
    }
    let mut writer = writer_for(d).from_writer(out);
    let mut header = csv::ByteRecord::new();
    for (i, f) in d.raw_header.iter().enumerate() {
        if !d.ignored.contains(&i) {
            header.push_field(f);
        }
    }
    for n in 1..=extra {
        header.push_field(format!("_extra_{n}").as_bytes());
    }
    for c in REPORT_COLUMNS {
        header.push_field(c.as_bytes());
    }
    writer.write_byte_record(&header).map_err(csv_io)?;
    Ok(writer)
}

/// A CSV writer's error as the I/O error it usually is, so a full disk is known as one.
fn csv_io(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

/// A CSV writer in the source's own dialect: delimiter and line endings.
fn writer_for(d: &Dialect) -> csv::WriterBuilder {
    let mut b = csv::WriterBuilder::new();
    b.delimiter(d.delimiter).flexible(true);
    b.terminator(d.line_end.terminator());
    b
}
