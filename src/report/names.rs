//! Report and temp file names that fit the file system whatever the source's name: a legal
//! 244-byte name plus `.errors.csv.partial` and a temp suffix would not.

use std::path::{Path, PathBuf};

/// The longest report stem kept as it is; a longer one is shortened with a hash. What the
/// reports add to it (`.`, `.errors.csv.partial`, a timestamp, a temp suffix) stays well
/// under the 255 bytes most file systems allow in a name.
pub const STEM_MAX: usize = 160;

/// `name` if it has at most `max` bytes; else its start (cut on a character boundary), `~`
/// and 8 hex digits of a hash of the whole name, so two long names stay apart.
pub fn shorten(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let hash = xxhash_rust::xxh3::xxh3_64(name.as_bytes()) as u32;
    let mut cut = max.saturating_sub(9);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}~{hash:08x}", &name[..cut])
}

/// `clients.csv.gz` -> `clients` (shortened to [`STEM_MAX`] bytes).
pub fn stem_of(file_name: &str) -> String {
    let lower = file_name.to_ascii_lowercase();
    let exts =
        [".csv.gz", ".csv", ".tsv", ".xlsx", ".xlsm", ".xlsb", ".xls", ".ods", ".gz", ".txt"];
    for ext in exts {
        if lower.ends_with(ext) && file_name.len() > ext.len() {
            return shorten(&file_name[..file_name.len() - ext.len()], STEM_MAX);
        }
    }
    shorten(file_name, STEM_MAX)
}

/// `NAME.errors.csv` and `NAME.summary.json` for a report stem.
pub fn report_names(dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
    (dir.join(format!("{stem}.errors.csv")), dir.join(format!("{stem}.summary.json")))
}

/// Where the errors report grows until it is published, kept across restarts.
pub fn partial_name(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!(".{stem}.errors.csv.partial"))
}

/// A hidden temp name beside `target` for writing it atomically: short, whatever `target`,
/// and the same each time (one writer per target; a leftover from a kill is overwritten).
pub fn temp_beside(target: &Path) -> PathBuf {
    let dir = target.parent().unwrap_or(Path::new("."));
    let name = file_name(target);
    dir.join(format!(".{}.tmp", shorten(&name, 200)))
}

/// The last component of a path, as text.
pub fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_fit_with_room_for_every_suffix() {
        let long = format!("{}.csv", "é".repeat(120));
        let stem = stem_of(&long);
        assert!(stem.len() <= STEM_MAX, "{}", stem.len());
        let dir = Path::new("/r");
        let partial = partial_name(dir, &stem);
        assert!(file_name(&partial).len() < 255);
        let (errors, _) = report_names(dir, &stem);
        assert!(file_name(&temp_beside(&errors)).len() < 255);
        assert_ne!(
            stem_of(&format!("{}a.csv", "x".repeat(300))),
            stem_of(&format!("{}b.csv", "x".repeat(300)))
        );
        assert_eq!(stem_of("clients.csv.gz"), "clients");
        assert_eq!(stem_of("book.XLSX"), "book");
    }
}
