//! Printing to stdout that never panics: a closed stdout (`crm-ingest check | head`) ends the
//! output quietly instead of aborting with exit 101.

use std::io::Write;

/// Writes one line to stdout; a broken pipe is ignored (the reader has gone).
pub fn line(text: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_ref().as_bytes()).and_then(|()| out.write_all(b"\n"));
}

/// `println!` without the panic.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => { $crate::cli::out::line(format!($($arg)*)) };
}

/// Lines of a table whose columns are padded to their widest cell (the last left ragged).
pub fn table(rows: &[Vec<String>]) -> Vec<String> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| rows.iter().filter_map(|r| r.get(i)).map(|c| c.chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            let cells: Vec<String> =
                r.iter()
                    .enumerate()
                    .map(|(i, c)| {
                        if i + 1 == r.len() {
                            c.clone()
                        } else {
                            format!("{c:w$}", w = widths[i])
                        }
                    })
                    .collect();
            cells.join("  ")
        })
        .collect()
}
