//! Reading CSV: encodings, delimiters, gzip, and records with the line they start on.

pub mod dialect;
mod lines;
mod reader;

pub use dialect::FileEncoding;
pub use reader::{BoxRead, CsvFile, Dialect, FileError, ReadRow, RowCells, SOURCE_BROKE};
