//! Line numbers from byte offsets. csv-core's own line counter skips newlines inside quoted
//! fields with CRLF endings, so the reader notes where every `\n` falls and a record's start
//! byte (which csv reports exactly) is turned into its line.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct Index {
    /// Offsets of newlines not yet behind the last record asked about.
    ahead: VecDeque<u64>,
    /// Newlines before the last record asked about.
    behind: u64,
    /// Bytes seen so far.
    offset: u64,
}

/// Shared between the wrapper that reads and the code that asks for lines.
#[derive(Debug, Clone, Default)]
pub struct LineIndex(Arc<Mutex<Index>>);

impl LineIndex {
    /// 1-based line of a record csv says starts at `offset`. With CRLF endings csv reports
    /// the `\n` that ends the previous line as the start, so a newline *at* the offset is
    /// behind the record too. Offsets must be asked in increasing order; the memory held is
    /// the newlines of the read-ahead buffer only.
    pub fn line_of(&self, offset: u64) -> u64 {
        let Ok(mut idx) = self.0.lock() else { return 0 };
        while idx.ahead.front().is_some_and(|p| *p <= offset) {
            idx.ahead.pop_front();
            idx.behind += 1;
        }
        idx.behind + 1
    }

    /// Notes the newlines of the next bytes of the stream.
    pub fn note(&self, bytes: &[u8]) {
        let Ok(mut idx) = self.0.lock() else { return };
        let base = idx.offset;
        for pos in memchr::memchr_iter(b'\n', bytes) {
            idx.ahead.push_back(base + pos as u64);
        }
        idx.offset += bytes.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_from_offsets() {
        let idx = LineIndex::default();
        idx.note(b"a,b\r\nc,\"x\r\ny\"\r\n");
        idx.note(b"\r\nd,e\n");
        assert_eq!(idx.line_of(0), 1);
        assert_eq!(idx.line_of(5), 2);
        // csv reports a CRLF record's start at the previous `\n`.
        assert_eq!(idx.line_of(4), 2);
        // After a quoted newline and a blank line.
        assert_eq!(idx.line_of(17), 5);
    }
}
