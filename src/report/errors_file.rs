//! `NAME.errors.csv`: the source header and each failed row verbatim, in source order, plus
//! `_line,_stage,_field,_message`. Streamed to a temp file; published only if a row failed.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

use super::atomic::{create_private, publish};
use crate::csvio::{dialect::UTF8_BOM, Dialect};
use crate::mapping::REPORT_COLUMNS;
use crate::row::Failure;

pub struct ErrorsFile {
    target: PathBuf,
    dialect: Dialect,
    open: Option<(csv::Writer<BufWriter<File>>, PathBuf)>,
    rows: u64,
}

impl ErrorsFile {
    pub fn new(target: PathBuf, dialect: Dialect) -> Self {
        Self { target, dialect, open: None, rows: 0 }
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Appends one failed row; the file is created on the first.
    pub fn write(&mut self, line: u64, raw: &csv::ByteRecord, failure: &Failure) -> io::Result<()> {
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
        writer.write_byte_record(&record).map_err(io::Error::other)?;
        self.rows += 1;
        Ok(())
    }

    fn writer(&mut self) -> io::Result<&mut csv::Writer<BufWriter<File>>> {
        if self.open.is_none() {
            let (file, tmp) = create_private(&self.target)?;
            let mut out = BufWriter::new(file);
            if self.dialect.had_bom {
                io::Write::write_all(&mut out, UTF8_BOM)?;
            }
            let mut writer = csv::WriterBuilder::new()
                .delimiter(self.dialect.delimiter)
                .flexible(true)
                .from_writer(out);
            let mut header = csv::ByteRecord::new();
            for (i, f) in self.dialect.raw_header.iter().enumerate() {
                if !self.dialect.ignored.contains(&i) {
                    header.push_field(f);
                }
            }
            for c in REPORT_COLUMNS {
                header.push_field(c.as_bytes());
            }
            writer.write_byte_record(&header).map_err(io::Error::other)?;
            self.open = Some((writer, tmp));
        }
        match &mut self.open {
            Some((w, _)) => Ok(w),
            None => Err(io::Error::other("errors report not open")),
        }
    }

    /// Publishes the report if any row failed; returns its path.
    pub fn finish(self) -> io::Result<Option<PathBuf>> {
        let Some((writer, tmp)) = self.open else { return Ok(None) };
        let out = writer.into_inner().map_err(|e| io::Error::other(e.to_string()))?;
        let file = out.into_inner().map_err(|e| io::Error::other(e.to_string()))?;
        publish(file, &tmp, &self.target)?;
        Ok(Some(self.target))
    }
}

/// `NAME.errors.csv` and `NAME.summary.json` for a source file name.
pub fn report_names(dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
    (dir.join(format!("{stem}.errors.csv")), dir.join(format!("{stem}.summary.json")))
}

/// `clients.csv.gz` -> `clients`.
pub fn stem_of(file_name: &str) -> String {
    let lower = file_name.to_ascii_lowercase();
    for ext in [".csv.gz", ".csv", ".gz", ".txt"] {
        if lower.ends_with(ext) && file_name.len() > ext.len() {
            return file_name[..file_name.len() - ext.len()].to_string();
        }
    }
    file_name.to_string()
}
