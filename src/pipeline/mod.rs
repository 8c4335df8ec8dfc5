//! One file through the stages: read -> map -> route -> deliver -> settle -> report.

mod budget;
mod file_job;
mod follow;
pub mod input;
mod journal;
mod map_block;
pub mod progress;
mod resume;
pub mod settle;
mod stages;
#[cfg(test)]
mod tests;

pub use file_job::{process_file, unique_stem, FileContext, FileResult, LedgerFile};
pub use input::{Input, RemoteFile};
pub use progress::Progress;
