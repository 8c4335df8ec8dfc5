//! Reading CSV: encodings, delimiters, gzip, and records with the line they start on.

mod block;
pub mod dialect;
mod reader;
mod records;
mod tap;
pub mod workbook;

pub use block::{BlockCells, BlockPool, BlockRow, RowBlock, BLOCK_BYTES, BLOCK_ROWS};
pub use dialect::FileEncoding;
pub use reader::{BoxRead, CsvFile, Dialect, FileError, SOURCE_BROKE};
