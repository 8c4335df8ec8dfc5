//! The hot path: a block of rows mapped, validated and encoded. Valid rows are encoded into
//! one reused buffer; only rows that go on (to a batch, or to the report) get storage of
//! their own.

use super::budget::RowBudget;
use crate::csvio::{FileEncoding, RowBlock};
use crate::mapping::{Mapper, PersonFields};
use crate::row::{Failure, MappedRow, SourceRow, Stage};
use crate::targets::{Escapes, Target};

/// A block after mapping: the seqs it covers, its local failures, and its valid rows.
pub struct MappedBlock {
    pub first_seq: u64,
    pub count: u64,
    pub last_line: u64,
    /// Budget units the block's rows hold (see [`RowBudget`]).
    pub units: u32,
    pub failed: Vec<(SourceRow, Failure)>,
    /// Valid rows, ready to send (empty in a dry run).
    pub ready: Vec<MappedRow>,
    /// A dry run's first few encoded rows, for `plan`'s sample payloads.
    pub samples: Vec<Vec<u8>>,
    /// Mapping stopped on an internal error: the block's rows are reported `unprocessed`.
    pub crashed: bool,
    /// The valid rows that name a person (when duplicates are refused), in order.
    pub persons: Vec<Person>,
}

/// A valid row's person, for the check that no two rows of a file name the same one.
pub struct Person {
    pub seq: u64,
    pub line: u64,
    pub hash: u64,
    /// The row itself in a dry run (whose valid rows are not kept otherwise), to report it.
    pub source: Option<SourceRow>,
}

/// What every block is mapped with.
pub struct BlockMapper<'a> {
    pub mapper: &'a Mapper,
    pub target: &'a dyn Target,
    pub encoding: FileEncoding,
    /// The header's width: a row of another width is a `parse` failure (unless the rows are
    /// a workbook's, `sheet_rows`).
    pub width: usize,
    pub sheet_rows: bool,
    pub dry_run: bool,
    /// The person fields, when rows naming the same person are refused.
    pub persons: Option<PersonFields>,
}

impl BlockMapper<'_> {
    /// Maps a block; a panic while mapping (a bug) settles its rows `unprocessed` instead of
    /// losing them.
    pub fn map(&self, block: &RowBlock) -> MappedBlock {
        let mapped =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.map_rows(block)));
        mapped.unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(error = %what, rows = block.len(), "mapping stopped on an internal error; these rows are reported unprocessed");
            let f = Failure::new(Stage::Unprocessed, None, format!("an internal error stopped the mapping of this row ({what}); nothing of it was sent"));
            let mut out = self.empty(block);
            out.failed = block.rows().iter().map(|r| (block.source_row(r), f.clone())).collect();
            out.crashed = true;
            out
        })
    }

    fn empty(&self, block: &RowBlock) -> MappedBlock {
        let rows = block.rows();
        MappedBlock {
            first_seq: rows.first().map_or(0, |r| r.seq),
            count: rows.len() as u64,
            last_line: rows.last().map_or(0, |r| r.line),
            units: rows.iter().map(|r| RowBudget::units_of(block.row_bytes(r).len())).sum(),
            failed: Vec::new(),
            ready: Vec::with_capacity(if self.dry_run { 0 } else { rows.len() }),
            samples: Vec::new(),
            crashed: false,
            persons: Vec::new(),
        }
    }

    fn map_rows(&self, block: &RowBlock) -> MappedBlock {
        let (mapper, target) = (self.mapper, self.target);
        let mut out = self.empty(block);
        let text = block.text(self.encoding);
        let fields = mapper.fields();
        let mut body = Vec::with_capacity(1024);
        let mut values = Vec::with_capacity(fields.len());
        for row in block.rows() {
            let result = match block.ragged(row, self.width, self.sheet_rows) {
                Some(problem) => Err(problem),
                None => mapper
                    .map_into(&block.cells(row, text, self.encoding), &mut values)
                    .and_then(|()| {
                        target.validate(fields, &values)?;
                        let escapes = if mapper.literals_plain() {
                            Escapes::of(block.row_bytes(row))
                        } else {
                            Escapes::Possible
                        };
                        body.clear();
                        target.encode(fields, &values, escapes, &mut body);
                        Ok((!self.dry_run).then(|| {
                            (target.key(fields, &values), target.partition(fields, &values))
                        }))
                    }),
            };
            if let (Ok(_), Some(p)) = (&result, self.persons) {
                if let Some(hash) = p.hash(&values) {
                    let source = self.dry_run.then(|| block.source_row(row));
                    out.persons.push(Person { seq: row.seq, line: row.line, hash, source });
                }
            }
            match result {
                Err(f) => out.failed.push((block.source_row(row), f)),
                Ok(Some((key, partition))) => out.ready.push(MappedRow {
                    source: block.source_row(row),
                    key,
                    body: body.clone(),
                    partition,
                }),
                Ok(None) if out.samples.len() < 3 => out.samples.push(body.clone()),
                Ok(None) => {}
            }
        }
        out
    }
}
