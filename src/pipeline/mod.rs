//! One file through the stages: read -> map -> batch -> deliver -> settle -> report.

mod file_job;
pub mod input;
pub mod progress;
pub mod settle;

pub use file_job::{process_file, unique_stem, FileContext, FileResult, LedgerFile};
pub use input::{Input, RemoteFile};
pub use progress::Progress;
