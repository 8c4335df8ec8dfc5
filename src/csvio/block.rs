//! Records read in blocks: the fields of up to a few thousand rows in one buffer. The hot path
//! allocates per block, not per row or per cell, and a mapping task checks a block's UTF-8
//! once instead of every cell on its own.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use super::dialect::FileEncoding;
use super::records::Flaw;
use crate::mapping::Cells;
use crate::row::{Failure, SourceRow, Stage};

/// A block closes at this many rows... Each block costs a task, a channel hand-over and a
/// settle message: at 1,024 rows that was about a tenth of `plan`'s time, at 4,096 it is lost
/// in the noise; 8,192 gained nothing more and took peak RSS from 38 to 51 MiB.
pub const BLOCK_ROWS: usize = 4096;
/// ...or once its fields hold this many bytes, so rows with huge cells keep memory bounded.
pub const BLOCK_BYTES: usize = 1 << 20;

/// One row's place in a block.
#[derive(Debug, Clone)]
pub struct BlockRow {
    /// As in [`SourceRow`]: index among data records, and the line the record starts on.
    pub seq: u64,
    pub line: u64,
    /// Its fields' indices into the block's `ends`.
    fields: Range<usize>,
    /// What is wrong with the record as a whole (its row fails at `parse`).
    flaw: Option<Flaw>,
}

/// Consecutive records of a file. Fields are stored back to back in `data`; field `i` of the
/// block ends at `ends[i]` and starts where the previous one ended.
#[derive(Debug, Default)]
pub struct RowBlock {
    data: Vec<u8>,
    ends: Vec<usize>,
    rows: Vec<BlockRow>,
}

impl RowBlock {
    pub fn with_capacity(rows: usize) -> Self {
        Self {
            data: Vec::with_capacity(rows * 192),
            ends: Vec::with_capacity(rows * 16),
            rows: Vec::with_capacity(rows),
        }
    }

    /// Adds a record: its fields back to back in `data`, field `i` ending at `ends[i]`.
    pub fn push(&mut self, seq: u64, line: u64, data: &[u8], ends: &[usize], flaw: Option<Flaw>) {
        let first = self.ends.len();
        let base = self.data.len();
        self.data.extend_from_slice(data);
        self.ends.extend(ends.iter().map(|e| base + e));
        self.rows.push(BlockRow { seq, line, fields: first..self.ends.len(), flaw });
    }

    /// Marks the rows holding a NUL byte. One search of the whole block finds none in the
    /// common case; only a block with one looks row by row.
    pub fn mark_nul_rows(&mut self) {
        if memchr::memchr(0, &self.data).is_none() {
            return;
        }
        for i in 0..self.rows.len() {
            let row = &self.rows[i];
            if row.flaw.is_none() && memchr::memchr(0, self.row_bytes(row)).is_some() {
                self.rows[i].flaw = Some(Flaw::Nul);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Empties the block, keeping its buffers.
    pub fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
        self.rows.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Whether the block should be handed on.
    pub fn is_full(&self) -> bool {
        self.rows.len() >= BLOCK_ROWS || self.data.len() >= BLOCK_BYTES
    }

    pub fn rows(&self) -> &[BlockRow] {
        &self.rows
    }

    /// Where field `f` (a block-wide index) lies in `data`.
    fn span(&self, f: usize) -> Range<usize> {
        let start = if f == 0 { 0 } else { self.ends[f - 1] };
        start..self.ends[f]
    }

    /// A row's raw bytes, all its fields back to back.
    pub fn row_bytes(&self, row: &BlockRow) -> &[u8] {
        if row.fields.is_empty() {
            return &[];
        }
        &self.data[self.span(row.fields.start).start..self.ends[row.fields.end - 1]]
    }

    /// A row as a [`SourceRow`] of its own (for the report, or to travel in a batch).
    pub fn source_row(&self, row: &BlockRow) -> SourceRow {
        let bytes = row.fields.clone().map(|f| self.span(f).len()).sum();
        let mut raw = csv_async::ByteRecord::with_capacity(bytes, row.fields.len());
        for f in row.fields.clone() {
            raw.push_field(&self.data[self.span(f)]);
        }
        SourceRow { seq: row.seq, line: row.line, raw }
    }

    /// The block's text when it can be sliced cell by cell without decoding: valid UTF-8 in
    /// a UTF-8 file, or plain ASCII in any. `None` sends cells through [`FileEncoding::decode`].
    pub fn text(&self, encoding: FileEncoding) -> Option<&str> {
        let text = simdutf8::basic::from_utf8(&self.data).ok()?;
        (!encoding.single_byte() || text.is_ascii()).then_some(text)
    }

    /// A row's cells, sliced from `text` (from [`RowBlock::text`]) when there is one.
    pub fn cells<'a>(
        &'a self,
        row: &'a BlockRow,
        text: Option<&'a str>,
        encoding: FileEncoding,
    ) -> BlockCells<'a> {
        BlockCells { block: self, row, text, encoding }
    }

    /// A parse failure when the record is flawed as a whole (too long, a quote left open,
    /// a NUL byte) or its width differs from the header's. The width of `sheet_rows` (a
    /// workbook's, which stop at their last cell that is not empty, and whose cells cannot
    /// slip into another column) is not checked.
    pub fn ragged(&self, row: &BlockRow, expected: usize, sheet_rows: bool) -> Option<Failure> {
        if let Some(flaw) = row.flaw {
            return Some(Failure::new(Stage::Parse, None, flaw.message(row.line)));
        }
        let width = row.fields.len();
        (width != expected && !sheet_rows).then(|| {
            Failure::new(
                Stage::Parse,
                None,
                format!("the row has {width} fields but the header has {expected}"),
            )
        })
    }
}

/// Emptied blocks, handed back by the mapping tasks for the reader to fill again. With a fresh
/// block each time, perf showed the reader zeroing newly faulted-in pages and the mapping
/// tasks freeing memory another thread had allocated.
#[derive(Debug, Clone, Default)]
pub struct BlockPool(Arc<Mutex<Vec<RowBlock>>>);

/// Blocks kept for reuse: enough for those in the channel and in the mapping tasks.
const POOL_BLOCKS: usize = 8;

impl BlockPool {
    /// An empty block: a reused one when there is one.
    pub fn take(&self) -> RowBlock {
        let reused = self.0.lock().ok().and_then(|mut pool| pool.pop());
        reused.unwrap_or_else(|| RowBlock::with_capacity(BLOCK_ROWS))
    }

    /// Hands a block back. One a huge row made large is dropped instead, so memory stays
    /// bounded by the usual block size.
    pub fn give(&self, mut block: RowBlock) {
        if block.data.capacity() > 4 * BLOCK_BYTES {
            return;
        }
        block.clear();
        if let Ok(mut pool) = self.0.lock() {
            if pool.len() < POOL_BLOCKS {
                pool.push(block);
            }
        }
    }
}

/// One row of a block, its cells decoded on demand.
pub struct BlockCells<'a> {
    block: &'a RowBlock,
    row: &'a BlockRow,
    text: Option<&'a str>,
    encoding: FileEncoding,
}

impl<'a> Cells<'a> for BlockCells<'a> {
    #[inline(always)]
    fn cell(&self, index: usize) -> Result<Cow<'a, str>, String> {
        if let Some(cell) = self.borrowed(index) {
            return Ok(Cow::Borrowed(cell));
        }
        self.decode(index)
    }

    #[inline(always)]
    fn borrowed(&self, index: usize) -> Option<&'a str> {
        if index >= self.row.fields.len() {
            return Some("");
        }
        // A whole block valid as UTF-8 can still split a character between two cells; such
        // a cell is not a char-boundary slice and is decoded (and refused) on its own.
        self.text?.get(self.block.span(self.row.fields.start + index))
    }
}

impl<'a> BlockCells<'a> {
    /// A cell that is not a slice of the block's text, decoded on its own (out of line: the
    /// common case above stays small).
    #[inline(never)]
    fn decode(&self, index: usize) -> Result<Cow<'a, str>, String> {
        let bytes = &self.block.data[self.block.span(self.row.fields.start + index)];
        self.encoding.decode(bytes).map_err(|e| format!("column {} {e}", index + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record as the reader hands it over: fields back to back, and their ends.
    fn record(fields: &[&[u8]]) -> (Vec<u8>, Vec<usize>) {
        let data = fields.concat();
        let ends = fields
            .iter()
            .scan(0, |end, f| {
                *end += f.len();
                Some(*end)
            })
            .collect();
        (data, ends)
    }

    fn push(b: &mut RowBlock, seq: u64, line: u64, fields: &[&[u8]]) {
        let (data, ends) = record(fields);
        b.push(seq, line, &data, &ends, None);
    }

    #[test]
    fn rows_with_a_nul_byte_fail_alone() {
        let mut b = RowBlock::with_capacity(3);
        push(&mut b, 0, 2, &[b"a", b"b"]);
        push(&mut b, 1, 3, &[b"x\0y", b"b"]);
        push(&mut b, 2, 4, &[b"c", b"d"]);
        b.mark_nul_rows();
        let rows = b.rows().to_vec();
        assert!(b.ragged(&rows[0], 2, false).is_none());
        let f = b.ragged(&rows[1], 2, false).unwrap();
        assert!(f.messages[0].contains("NUL"), "{f:?}");
        assert!(b.ragged(&rows[2], 2, false).is_none());
    }

    #[test]
    fn rows_round_trip() {
        let mut b = RowBlock::with_capacity(4);
        push(&mut b, 0, 2, &[b"a", b"", b"ccc"]);
        push(&mut b, 1, 3, &[b"", b"d\xc3\xa9"]);
        assert_eq!(b.len(), 2);
        let text = b.text(FileEncoding::Utf8Lenient);
        assert!(text.is_some());
        let rows = b.rows().to_vec();
        let c = b.cells(&rows[1], text, FileEncoding::Utf8Lenient);
        assert_eq!(c.cell(1).unwrap(), "dé");
        assert_eq!(c.cell(5).unwrap(), "", "a missing cell is empty");
        let s = b.source_row(&rows[0]);
        let fields: Vec<&[u8]> = s.raw.iter().collect();
        assert_eq!(fields, [&b"a"[..], b"", b"ccc"]);
        assert_eq!((s.seq, s.line), (0, 2));
        assert!(b.ragged(&rows[1], 3, false).is_some());
        assert!(b.ragged(&rows[1], 3, true).is_none(), "a short workbook row is fine");
        assert!(b.ragged(&rows[0], 2, true).is_none(), "and so is a wider one");
        assert!(b.ragged(&rows[0], 3, false).is_none());
        assert_eq!(b.row_bytes(&rows[0]), b"accc");
        assert_eq!(b.row_bytes(&rows[1]), b"d\xc3\xa9");
    }

    #[test]
    fn the_pool_hands_back_emptied_blocks() {
        let pool = BlockPool::default();
        let mut b = pool.take();
        push(&mut b, 0, 2, &[b"a", b"b"]);
        let capacity = b.data.capacity();
        pool.give(b);
        let again = pool.take();
        assert!(again.is_empty());
        assert_eq!(again.data.capacity(), capacity, "the buffers are reused");
        let mut huge = RowBlock::with_capacity(1);
        push(&mut huge, 0, 2, &[&vec![b'x'; 5 * BLOCK_BYTES]]);
        pool.give(huge);
        assert!(pool.0.lock().unwrap().is_empty(), "an outsized block is not kept");
    }

    #[test]
    fn a_character_split_between_cells_is_refused_in_strict_utf8() {
        let mut b = RowBlock::with_capacity(1);
        // `é` is C3 A9: each half alone is invalid, together the block is valid.
        push(&mut b, 0, 2, &[b"x\xc3", b"\xa9y"]);
        let text = b.text(FileEncoding::Utf8Strict);
        assert!(text.is_some());
        let rows = b.rows().to_vec();
        let c = b.cells(&rows[0], text, FileEncoding::Utf8Strict);
        assert!(c.cell(0).is_err());
        assert!(c.cell(1).is_err());
    }

    #[test]
    fn windows_1252_blocks_decode_cell_by_cell() {
        let mut b = RowBlock::with_capacity(1);
        push(&mut b, 0, 2, &[b"caf\xe9"]);
        assert!(b.text(FileEncoding::Windows1252).is_none());
        let rows = b.rows().to_vec();
        let c = b.cells(&rows[0], None, FileEncoding::Windows1252);
        assert_eq!(c.cell(0).unwrap(), "café");
    }
}
