//! Reading CSV: encodings, delimiters, gzip, and records with the line they start on.

mod block;
pub mod dialect;
mod reader;
mod records;
mod tap;
pub mod transcode;
pub mod workbook;
mod zip_check;

pub use block::{BlockCells, BlockPool, BlockRow, RowBlock, BLOCK_BYTES, BLOCK_ROWS};
pub use dialect::{FileEncoding, LineEnd};
pub use reader::{
    is_extra_column, BoxRead, CsvFile, Dialect, FileError, HeaderTest, LineCounts, SOURCE_BROKE,
};
