//! Records parsed by csv-core straight out of one large read buffer. This is the loop
//! csv-async runs, without its per-record bookkeeping or the copy out of its record type
//! (together a third of the reading thread's time), and it counts lines itself: csv-core's
//! own counter misses newlines it copies in bulk inside quoted fields, which showed as wrong
//! line numbers in CRLF files.

use std::io;

use csv_core::{ReadRecordResult, Reader, ReaderBuilder};
use tokio::io::AsyncReadExt;

use super::reader::BoxRead;

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
}

impl Records {
    /// Parses `start` (bytes already taken from the stream, such as a sniffed sample) and then
    /// the rest of `stream`, reading up to `capacity` bytes at a time.
    pub fn new(stream: BoxRead, delimiter: u8, start: Vec<u8>, capacity: usize) -> Self {
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
        }
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

    /// Reads the next record: `Some(the line it starts on)`, or `None` at the end of the
    /// file. Its fields are then [`Records::record`].
    pub async fn next(&mut self) -> io::Result<Option<u64>> {
        self.skip_blank_lines().await?;
        let line = self.line;
        let (mut used, mut count) = (0, 0);
        loop {
            if used == self.fields.len() {
                self.fields.resize(used * 2, 0);
            }
            if count == self.ends.len() {
                self.ends.resize(count * 2, 0);
            }
            let input = &self.buf[self.pos..self.end];
            let (res, nin, nout, nend) =
                self.core.read_record(input, &mut self.fields[used..], &mut self.ends[count..]);
            self.line += newlines(&input[..nin]);
            self.pos += nin;
            used += nout;
            count += nend;
            match res {
                ReadRecordResult::InputEmpty => self.fill().await?,
                ReadRecordResult::OutputFull | ReadRecordResult::OutputEndsFull => {}
                ReadRecordResult::Record => {
                    (self.used, self.count) = (used, count);
                    return Ok(Some(line));
                }
                ReadRecordResult::End => return Ok(None),
            }
        }
    }

    /// Steps over the line ends before a record, counting them, as csv-core would skip them:
    /// the record's line is then the one its first byte is on.
    async fn skip_blank_lines(&mut self) -> io::Result<()> {
        loop {
            while let Some(&b) = self.buf[..self.end].get(self.pos) {
                match b {
                    b'\n' => self.line += 1,
                    b'\r' => {}
                    _ => return Ok(()),
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

/// How many `\n` bytes `bytes` holds. A record usually has one, at its end: a search per
/// newline costs less here than memchr's counting routine, which callgrind showed at 200
/// instructions a record.
fn newlines(bytes: &[u8]) -> u64 {
    let (mut n, mut rest) = (0, bytes);
    while let Some(i) = memchr::memchr(b'\n', rest) {
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
        let mut records = Records::new(stream, b',', start.to_vec(), capacity);
        let mut out = Vec::new();
        while let Some(line) = records.next().await.unwrap() {
            out.push((line, records.fields().map(<[u8]>::to_vec).collect()));
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

    #[tokio::test]
    async fn an_empty_stream_has_no_records() {
        assert!(all(b"", 0, 16).await.is_empty());
        assert!(all(b"\r\n\n", 1, 16).await.is_empty());
    }
}
