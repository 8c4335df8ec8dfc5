//! `NAME.errors.csv`: the source header and each failed row verbatim, in source order, plus
//! `_line,_stage,_field,_message`. Streamed to a temp file; published only if a row failed.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::PathBuf;

use super::atomic::{create_private_at, publish};
use super::names::temp_beside;
use crate::csvio::{dialect::UTF8_BOM, Dialect};
use crate::mapping::REPORT_COLUMNS;
use crate::row::Failure;

pub struct ErrorsFile {
    target: PathBuf,
    /// Where rows accumulate until the file is published (hidden, beside the target).
    partial: PathBuf,
    dialect: Dialect,
    open: Option<csv::Writer<BufWriter<File>>>,
    rows: u64,
    /// The published file's mode (`report_mode`).
    mode: u32,
}

impl ErrorsFile {
    /// A report that publishes to `target`; a random hidden temp file holds it meanwhile.
    pub fn new(target: PathBuf, dialect: Dialect) -> Self {
        let partial = temp_beside(&target);
        Self { target, partial, dialect, open: None, rows: 0, mode: super::atomic::PRIVATE }
    }

    /// Published with `mode` rather than 0600 (`report_mode`).
    pub fn with_mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// A report kept in `partial` across restarts: its first `bytes` bytes are kept (rows an
    /// earlier run settled), anything after them is cut off, and new rows follow. A report an
    /// earlier run already published (it was stopped after publishing, before the file was
    /// filed away) is taken back as the partial: its last checkpoint was committed first.
    pub fn resumable(
        target: PathBuf,
        partial: PathBuf,
        dialect: Dialect,
        bytes: u64,
    ) -> io::Result<Self> {
        let mut me =
            Self { target, partial, dialect, open: None, rows: 0, mode: super::atomic::PRIVATE };
        if bytes > 0 && !me.partial.exists() && me.target.exists() {
            std::fs::rename(&me.target, &me.partial)?;
        }
        if bytes > 0 && !me.partial.exists() {
            tracing::warn!(report = %me.partial.display(), "the partial errors report is gone; rows reported before the restart are missing from it");
        } else if bytes > 0 {
            let file = std::fs::OpenOptions::new().write(true).open(&me.partial)?;
            file.set_len(bytes)?;
            let mut out = BufWriter::new(file);
            io::Seek::seek(&mut out, io::SeekFrom::End(0))?;
            me.open = Some(writer_for(&me.dialect).from_writer(out));
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
                w.get_ref().get_ref().metadata().map(|m| m.len())
            }
        }
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Appends one failed row; the file is created on the first.
    pub fn write(
        &mut self,
        line: u64,
        raw: &csv_async::ByteRecord,
        failure: &Failure,
    ) -> io::Result<()> {
        let width = self.dialect.raw_header.len();
        let enc = self.dialect.encoding;
        let ignored = self.dialect.ignored.clone();
        let writer = self.writer()?;
        let mut record = csv::ByteRecord::new();
        for (i, field) in raw.iter().enumerate() {
            if !ignored.contains(&i) {
                record.push_field(field);
            }
        }
        // A short (ragged) row is padded so the report's own columns line up.
        let kept_width = width - ignored.len();
        while record.len() < kept_width {
            record.push_field(b"");
        }
        record.push_field(line.to_string().as_bytes());
        record.push_field(failure.stage.as_str().as_bytes());
        record.push_field(&enc.encode(&failure.fields.join(";")));
        record.push_field(&enc.encode(&failure.messages.join("; ")));
        writer.write_byte_record(&record).map_err(csv_io)?;
        self.rows += 1;
        Ok(())
    }

    fn writer(&mut self) -> io::Result<&mut csv::Writer<BufWriter<File>>> {
        if self.open.is_none() {
            let file = create_private_at(&self.partial)?;
            let mut out = BufWriter::new(file);
            let d = &self.dialect;
            let eol: &[u8] = if d.crlf { b"\r\n" } else { b"\n" };
            if d.had_bom {
                io::Write::write_all(&mut out, UTF8_BOM)?;
            }
            if d.sep_line {
                // Excel's own first line, so it splits the report the way it split the source.
                io::Write::write_all(&mut out, &[b"sep=", &[d.delimiter][..], eol].concat())?;
            }
            let mut writer = writer_for(d).from_writer(out);
            let mut header = csv::ByteRecord::new();
            for (i, f) in self.dialect.raw_header.iter().enumerate() {
                if !self.dialect.ignored.contains(&i) {
                    header.push_field(f);
                }
            }
            for c in REPORT_COLUMNS {
                header.push_field(c.as_bytes());
            }
            writer.write_byte_record(&header).map_err(csv_io)?;
            self.open = Some(writer);
        }
        match &mut self.open {
            Some(w) => Ok(w),
            None => Err(io::Error::other("errors report not open")),
        }
    }

    /// Publishes the report if any row failed; returns its path.
    pub fn finish(&mut self) -> io::Result<Option<PathBuf>> {
        let Some(writer) = self.open.take() else { return Ok(None) };
        let out = writer.into_inner().map_err(|e| e.into_error())?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        publish(file, &self.partial, &self.target, self.mode)?;
        Ok(Some(self.target.clone()))
    }
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
    b.terminator(if d.crlf { csv::Terminator::CRLF } else { csv::Terminator::Any(b'\n') });
    b
}
