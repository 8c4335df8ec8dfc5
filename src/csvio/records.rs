//! Records parsed by csv-core straight out of one large read buffer. This is the loop
//! csv-async runs, without its per-record bookkeeping or the copy out of its record type
//! (together a third of the reading thread's time), and it counts lines itself: csv-core's
//! own counter misses newlines it copies in bulk inside quoted fields, which showed as wrong
//! line numbers in CRLF files.

use std::io;

use csv_core::{ReadRecordResult, Reader, ReaderBuilder};
use tokio::io::AsyncReadExt;

use super::reader::BoxRead;

/// Something wrong with a record as a whole: it becomes a `parse` failure of its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flaw {
    /// Longer than `max_record_bytes`: its fields were not kept.
    Oversized { bytes: u64, max: usize },
    /// A quote opened in the record is never closed: the record ran to the end of the file,
    /// whose last line is given.
    UnclosedQuote { last_line: u64 },
    /// A NUL byte: binary data, not text.
    Nul,
    /// A workbook cell holds an error value (`#N/A`, ...): column, error code, and how many
    /// more cells of the row do (see [`super::workbook`]).
    CellError { col: u32, error: u8, more: u32 },
}

impl Flaw {
    pub fn message(self, line: u64) -> String {
        match self {
            Flaw::Oversized { bytes, max } => format!(
                "the record is {bytes} bytes, more than max_record_bytes ({max}); its fields are not copied here (fix it in the source file)"
            ),
            Flaw::UnclosedQuote { last_line } => format!(
                "a quote opened in this record is never closed, so lines {line} to {last_line} (the rest of the file) were read as this one record; close the quote and drop the rows again"
            ),
            Flaw::Nul => "the row holds a NUL byte (binary data, not text)".into(),
            Flaw::CellError { col, error, more } => {
                super::workbook::cell_error_message(line, col, error, more)
            }
        }
    }
}

/// Where a record starts, and what is wrong with it as a whole, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordStart {
    pub line: u64,
    pub flaw: Option<Flaw>,
}

/// A file's bytes from a given point on, and the parser over them.
pub struct Records {
    stream: BoxRead,
    core: Reader,
    /// Read-ahead; `pos..end` is not parsed yet.
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
    /// The line `buf[pos]` is on, 1-based.
    line: u64,
    /// The last record read: its fields back to back in `fields[..used]`, and where each
    /// ends in `ends[..count]`. Both buffers are kept at full length for csv-core to fill.
    fields: Vec<u8>,
    ends: Vec<usize>,
    used: usize,
    count: usize,
    /// A longer record is read through but not kept (memory stays bounded).
    max_record: usize,
    /// The last byte parsed: a record that ends the file on a newline ends on the line before.
    last: u8,
    /// Each record counts as one line, whatever newlines its quoted cells hold (a workbook's
    /// rows, numbered as the sheet numbers them).
    per_record: bool,
    /// In `per_record` mode, the last record ended on `\r`: the `\n` that follows is its own.
    eol_pending: bool,
    /// The byte lines are counted by: `\n`, or `\r` in a file whose lines end in a bare CR.
    eol: u8,
    /// The line the next record starts on when no blank line comes before it.
    next_expected: u64,
    /// Blank lines (empty, or only delimiters) are skipped and counted, not records.
    skip_blank: bool,
    blank: u64,
}

impl Records {
    /// Parses `start` (bytes already taken from the stream, such as a sniffed sample) and then
    /// the rest of `stream`, reading up to `capacity` bytes at a time.
    pub fn new(
        stream: BoxRead,
        delimiter: u8,
        start: Vec<u8>,
        capacity: usize,
        max_record: usize,
    ) -> Self {
        let end = start.len();
        let mut buf = start;
        buf.resize(capacity.max(end), 0);
        Self {
            stream,
            core: ReaderBuilder::new().delimiter(delimiter).build(),
            buf,
            pos: 0,
            end,
            eof: false,
            line: 1,
            fields: vec![0; 4096],
            ends: vec![0; 64],
            used: 0,
            count: 0,
            max_record,
            last: 0,
            per_record: false,
            eol_pending: false,
            eol: b'\n',
            next_expected: 1,
            skip_blank: false,
            blank: 0,
        }
    }

    /// Numbers lines from `line` (after a `sep=` line: 2); with `per_record`, one per record;
    /// lines are counted by `eol` (`\r` in a file of bare CR line ends, else `\n`).
    pub fn starting_at(mut self, line: u64, per_record: bool, eol: u8) -> Self {
        self.line = line;
        self.next_expected = line;
        self.per_record = per_record;
        self.eol = eol;
        self
    }

    /// From here on, blank lines (empty, or holding only delimiters) are not records: they
    /// are stepped over and counted (see [`Records::blank`]).
    pub fn skip_blank_lines_from_here(&mut self) {
        self.skip_blank = true;
    }

    /// Blank lines stepped over since [`Records::skip_blank_lines_from_here`].
    pub fn blank(&self) -> u64 {
        self.blank
    }

    /// Everything has been parsed: the last record returned ended at the end of the stream.
    pub fn exhausted(&self) -> bool {
        self.eof && self.pos >= self.end
    }

    /// The line the bytes not yet parsed start on: after [`Records::next`] fails, where the
    /// record being read began or got to.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The last record read: its fields back to back, and where each one ends.
    pub fn record(&self) -> (&[u8], &[usize]) {
        (&self.fields[..self.used], &self.ends[..self.count])
    }

    /// The last record read, field by field.
    pub fn fields(&self) -> impl Iterator<Item = &[u8]> {
        let (data, ends) = self.record();
        let starts = std::iter::once(0).chain(ends.iter().copied());
        starts.zip(ends).map(move |(start, &end)| &data[start..end])
    }

    /// Reads the next record: where it starts (and its flaw, if any), or `None` at the end of
    /// the file. Its fields are then [`Records::record`] (none for an oversized record).
    pub async fn next(&mut self) -> io::Result<Option<RecordStart>> {
        loop {
            let Some(start) = self.next_record().await? else { return Ok(None) };
            // Fields all empty, with nothing wrong: a line of only delimiters.
            let blank = self.skip_blank && start.flaw.is_none() && self.used == 0;
            if !blank {
                return Ok(Some(start));
            }
            self.blank += self.next_expected.saturating_sub(start.line);
        }
    }

    /// The next record, blank or not.
    async fn next_record(&mut self) -> io::Result<Option<RecordStart>> {
        self.skip_blank_lines().await?;
        let line = self.line;
        if self.skip_blank {
            self.blank += line.saturating_sub(self.next_expected);
        }
        self.next_expected = line;
        let mut r = Reading { start: self.pos, ..Reading::default() };
        loop {
            self.make_room(&mut r);
            let input = &self.buf[self.pos..self.end];
            let (res, nin, nout, nend) =
                self.core.read_record(input, &mut self.fields[r.used..], &mut self.ends[r.count..]);
            if !self.per_record {
                self.line += count_byte(&input[..nin], self.eol);
            }
            if nin > 0 {
                self.last = input[nin - 1];
            }
            r.bytes += nin as u64;
            self.pos += nin;
            r.used += nout;
            r.count += nend;
            match res {
                ReadRecordResult::InputEmpty => {
                    // Quotes are counted only for records that outlast a buffer (and, at the
                    // end, for the last one): the common record costs nothing more.
                    r.quotes += quotes(&self.buf[r.start..self.pos]);
                    self.fill().await?;
                    r.start = 0;
                }
                ReadRecordResult::OutputFull | ReadRecordResult::OutputEndsFull => {}
                ReadRecordResult::Record => {
                    if self.per_record {
                        self.line = line + 1;
                        self.eol_pending = self.last == b'\r';
                    }
                    // A record that ended on its line's end has counted it already.
                    let counted = self.per_record || self.last == self.eol;
                    self.next_expected = self.line + u64::from(!counted);
                    return Ok(Some(self.finish_record(line, r)));
                }
                ReadRecordResult::End => return Ok(None),
            }
        }
    }

    /// Grows the output buffers for a record still within `max_record`; past it, the record
    /// is read on but its bytes are dropped as they come.
    fn make_room(&mut self, r: &mut Reading) {
        if r.used == self.fields.len() {
            if r.used >= self.max_record {
                r.oversized = true;
                r.used = 0;
            } else {
                self.fields.resize((r.used * 2).min(self.max_record.max(r.used + 1)), 0);
            }
        }
        if r.count == self.ends.len() {
            if r.oversized {
                r.count = 0;
            } else {
                self.ends.resize(r.count * 2, 0);
            }
        }
    }

    /// The record just read, with its flaw: too long, or a quote left open to the end.
    fn finish_record(&mut self, line: u64, mut r: Reading) -> RecordStart {
        let at_end = self.eof && self.pos >= self.end;
        let quoted = if at_end { r.quotes + quotes(&self.buf[r.start..self.pos]) } else { 0 };
        let unclosed = at_end && quoted % 2 == 1 && self.line > line;
        r.oversized |= r.used > self.max_record;
        (self.used, self.count) = if r.oversized { (0, 0) } else { (r.used, r.count) };
        let flaw = if unclosed {
            // The line the record's last byte is on: a final newline ends it, not starts one.
            let ends_line = self.last == self.eol;
            Some(Flaw::UnclosedQuote { last_line: self.line - u64::from(ends_line) })
        } else if r.oversized {
            Some(Flaw::Oversized { bytes: r.bytes, max: self.max_record })
        } else {
            None
        };
        if unclosed && r.oversized {
            (self.used, self.count) = (0, 0);
        }
        RecordStart { line, flaw }
    }

    /// Steps over the line ends before a record, counting them, as csv-core would skip them:
    /// the record's line is then the one its first byte is on.
    async fn skip_blank_lines(&mut self) -> io::Result<()> {
        loop {
            while let Some(&b) = self.buf[..self.end].get(self.pos) {
                match b {
                    b'\n' if self.eol_pending => self.eol_pending = false,
                    b'\n' | b'\r' if b == self.eol => self.line += 1,
                    b'\n' | b'\r' => {}
                    _ => {
                        self.eol_pending = false;
                        return Ok(());
                    }
                }
                self.pos += 1;
            }
            if self.eof {
                return Ok(());
            }
            self.fill().await?;
        }
    }

    /// Reads the next bytes once everything before them is parsed; none at the end of the
    /// stream, after which csv-core is given empty input to finish the last record.
    async fn fill(&mut self) -> io::Result<()> {
        if self.eof {
            return Ok(());
        }
        let n = self.stream.read(&mut self.buf).await?;
        (self.pos, self.end, self.eof) = (0, n, n == 0);
        Ok(())
    }
}

/// The state of one record being read.
#[derive(Debug, Default)]
struct Reading {
    /// Where the record starts in the read buffer (0 after a refill).
    start: usize,
    used: usize,
    count: usize,
    /// Quote characters seen: an odd count at the end of the file is a quote left open.
    quotes: u64,
    bytes: u64,
    oversized: bool,
}

fn quotes(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'"', bytes).count() as u64
}

/// How many `eol` bytes (`\n`, or `\r` in a CR-only file) `bytes` holds. A record usually
/// has one, at its end: a search per newline costs less here than memchr's counting routine,
/// which callgrind showed at 200 instructions a record.
fn count_byte(bytes: &[u8], eol: u8) -> u64 {
    let (mut n, mut rest) = (0, bytes);
    while let Some(i) = memchr::memchr(eol, rest) {
        n += 1;
        rest = &rest[i + 1..];
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn all(text: &[u8], sample: usize, capacity: usize) -> Vec<(u64, Vec<Vec<u8>>)> {
        let (start, rest) = text.split_at(sample.min(text.len()));
        let stream: BoxRead = Box::pin(std::io::Cursor::new(rest.to_vec()));
        let mut records = Records::new(stream, b',', start.to_vec(), capacity, 1 << 20);
        let mut out = Vec::new();
        while let Some(r) = records.next().await.unwrap() {
            out.push((r.line, records.fields().map(<[u8]>::to_vec).collect()));
        }
        out
    }

    fn f(fields: &[&str]) -> Vec<Vec<u8>> {
        fields.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[tokio::test]
    async fn lines_are_exact_with_quoted_newlines_blank_lines_and_crlf() {
        let text = b"h1,h2\r\n\"a\r\nb\",c\r\n\r\n\r\nd,\"e\"\"\"\r\nlast,\"x\ny\"";
        let want = vec![
            (1, f(&["h1", "h2"])),
            (2, f(&["a\r\nb", "c"])),
            (6, f(&["d", "e\""])),
            (7, f(&["last", "x\ny"])),
        ];
        // Every split of the bytes between sample, buffer refills and records reads the same.
        for sample in [0, 1, 5, 9, 64] {
            for capacity in [1, 2, 3, 7, 1024] {
                assert_eq!(all(text, sample, capacity).await, want, "{sample}/{capacity}");
            }
        }
    }

    #[tokio::test]
    async fn big_fields_grow_the_buffers() {
        let wide: Vec<String> = (0..200).map(|i| format!("f{i}")).collect();
        let long = "x".repeat(10_000);
        let text = format!("{}\n{long},y\n", wide.join(","));
        let got = all(text.as_bytes(), 100, 4096).await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1.len(), 200);
        assert_eq!(got[1], (2, f(&[&long, "y"])));
    }

    async fn starts(text: &[u8], max: usize) -> Vec<RecordStart> {
        let stream: BoxRead = Box::pin(std::io::Cursor::new(text.to_vec()));
        let mut records = Records::new(stream, b',', Vec::new(), 64, max);
        let mut out = Vec::new();
        while let Some(r) = records.next().await.unwrap() {
            out.push(r);
        }
        out
    }

    #[tokio::test]
    async fn an_oversized_record_is_read_through_without_keeping_it() {
        let big = "y".repeat(5000);
        let text = format!("a,b\n1,{big}\n2,z\n");
        let got = starts(text.as_bytes(), 1000).await;
        assert_eq!(got.len(), 3);
        assert!(matches!(got[1].flaw, Some(Flaw::Oversized { max: 1000, .. })), "{got:?}");
        assert_eq!((got[2].line, got[2].flaw), (3, None), "the next record is read as usual");
    }

    #[tokio::test]
    async fn a_quote_left_open_to_the_end_says_so() {
        let got = starts(b"a,b\n1,\"open\n2,x\n3,y\n", 1 << 20).await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].flaw, Some(Flaw::UnclosedQuote { last_line: 4 }));
        let fine = starts(b"a,b\n1,\"multi\nline\"", 1 << 20).await;
        assert_eq!(fine[1].flaw, None, "a closed quote on the last line is fine");
    }

    /// Records of `text` read with blank lines skipped after the first record: (line,
    /// fields) of each, and the blank lines counted.
    async fn skipping(text: &[u8], eol: u8, capacity: usize) -> (Vec<(u64, Vec<Vec<u8>>)>, u64) {
        let stream: BoxRead = Box::pin(std::io::Cursor::new(text.to_vec()));
        let mut records =
            Records::new(stream, b',', Vec::new(), capacity, 1 << 20).starting_at(1, false, eol);
        let mut out = Vec::new();
        while let Some(r) = records.next().await.unwrap() {
            out.push((r.line, records.fields().map(<[u8]>::to_vec).collect()));
            records.skip_blank_lines_from_here();
        }
        (out, records.blank())
    }

    #[tokio::test]
    async fn blank_lines_and_lines_of_delimiters_are_counted_not_read() {
        let want = vec![(1, f(&["h", "i"])), (3, f(&["a", "b"])), (7, f(&["c", ""]))];
        for eol in ["\n", "\r\n"] {
            let text = ["h,i", "", "a,b", ",", "", "\"\",", "c,", ",", ""].join(eol);
            for capacity in [1, 3, 1024] {
                let (got, blank) = skipping(text.as_bytes(), b'\n', capacity).await;
                assert_eq!(got, want, "{eol:?} {capacity}");
                assert_eq!(blank, 5, "{eol:?} {capacity}: lines 2, 4, 5, 6 and 8");
            }
        }
    }

    #[tokio::test]
    async fn bare_cr_line_ends_number_lines() {
        let text = b"h,i\ra,\"x\ry\"\r\rb,c\r";
        let (got, blank) = skipping(text, b'\r', 2).await;
        assert_eq!(got, vec![(1, f(&["h", "i"])), (2, f(&["a", "x\ry"])), (5, f(&["b", "c"]))]);
        assert_eq!(blank, 1);
    }

    #[tokio::test]
    async fn an_empty_stream_has_no_records() {
        assert!(all(b"", 0, 16).await.is_empty());
        assert!(all(b"\r\n\n", 1, 16).await.is_empty());
    }
}
