//! One file through the stages: read -> map -> batch -> deliver -> settle -> report.

mod file_job;
pub mod progress;
pub mod settle;

pub use file_job::{process_file, FileContext, FileResult};
pub use progress::Progress;
