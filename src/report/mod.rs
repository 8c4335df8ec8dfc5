//! Per-file reports: `NAME.errors.csv` and `NAME.summary.json` (SPEC §5).

pub mod atomic;
mod errors_file;
pub mod names;
mod summary;

pub use errors_file::ErrorsFile;
pub use names::{file_name, partial_name, redropped, report_names, stem_of, warnings_partial_name};
pub use summary::{now_rfc3339, RemoteJobs, RowCounts, Summary};
