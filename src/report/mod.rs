//! Per-file reports: `NAME.errors.csv` and `NAME.summary.json` (SPEC §5).

pub mod atomic;
mod errors_file;
mod summary;

pub use errors_file::{report_names, stem_of, ErrorsFile};
pub use summary::{now_rfc3339, RowCounts, Summary};
