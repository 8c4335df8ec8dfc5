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
