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
    shorten_as(name, name, max)
}

/// The longest file name most file systems allow, in bytes.
pub const NAME_MAX: usize = 255;

/// Extensions a report stem drops and a stamped name keeps whole (any case).
const EXTENSIONS: [&str; 10] =
    [".csv.gz", ".csv", ".tsv", ".xlsx", ".xlsm", ".xlsb", ".xls", ".ods", ".gz", ".txt"];

/// `name` as its stem and its extension: one of [`EXTENSIONS`] (any case) when something
/// comes before it, else none. The split is on a character boundary (extensions are ASCII).
pub fn split_extension(name: &str) -> (&str, &str) {
    let lower = name.to_ascii_lowercase();
    for ext in EXTENSIONS {
        if lower.ends_with(ext) && name.len() > ext.len() {
            return name.split_at(name.len() - ext.len());
        }
    }
    (name, "")
}

/// `clients.csv.gz` -> `clients` (shortened to [`STEM_MAX`] bytes).
pub fn stem_of(file_name: &str) -> String {
    shorten(split_extension(file_name).0, STEM_MAX)
}

/// The shortest `max` [`fit_name`] takes: room for a hash and a few characters of stem.
const FIT_MIN: usize = 24;

/// A name of at most `max` bytes (at least [`FIT_MIN`]) for `name` with `tag` (a timestamp,
/// a counter; empty for none) before its extension: `stem.tag.ext`. A stem too long is cut on
/// a character boundary with a hash of the whole name ([`shorten`]), so two long names stay
/// apart; the extension is kept. Every place that cuts or stamps a file name uses this.
pub fn fit_name(name: &str, tag: &str, max: usize) -> String {
    let max = max.max(FIT_MIN);
    let (stem, ext) = split_extension(name);
    let tag = if tag.is_empty() { String::new() } else { format!(".{tag}") };
    let fixed = tag.len() + ext.len();
    if fixed + FIT_MIN / 2 > max {
        // Tag and extension alone leave no room for the stem: the whole name is cut.
        return shorten(&format!("{stem}{tag}{ext}"), max);
    }
    let stem = if tag.is_empty() && name.len() <= max {
        stem.to_string()
    } else {
        // The hash is of the whole name, so two long names with one stem prefix stay apart.
        shorten_as(stem, name, max - fixed)
    };
    format!("{stem}{tag}{ext}")
}

/// `text` in at most `max` bytes (at least 9): itself, or its start cut on a character
/// boundary, `~` and 8 hex digits of a hash of `whole`.
fn shorten_as(text: &str, whole: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let hash = xxhash_rust::xxh3::xxh3_64(whole.as_bytes()) as u32;
    let mut cut = max.saturating_sub(9);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}~{hash:08x}", &text[..cut])
}

/// When `stem` is a report's (`clients.errors`, `clients.20261123T101112.123Z.warnings`: a
/// fixed errors file dropped back in), the stem of the file it reports on (`clients`), which
/// its own reports are named after (never `clients.errors.errors.csv`).
pub fn redropped(stem: &str) -> Option<&str> {
    let original = original_of(stem);
    (original.len() < stem.len()).then_some(original)
}

/// A report's stem without what the reports add to the original's: `.errors` or `.warnings`,
/// then the timestamp a second report of the same name got (`.20261123T101112.123Z`). Only
/// ASCII is cut, so every cut is on a character boundary; any other stem is kept whole.
fn original_of(stem: &str) -> &str {
    let Some(base) = [".errors", ".warnings"]
        .iter()
        .find_map(|s| stem.strip_suffix(s).filter(|b| !b.is_empty()))
    else {
        return stem;
    };
    // `.20261123T101112.123Z`: 21 ASCII bytes.
    let cut = base.len().saturating_sub(21);
    match (base.get(..cut), base.get(cut..)) {
        (Some(before), Some(stamp)) if !before.is_empty() && is_stamp(stamp) => before,
        _ => base,
    }
}

/// `.YYYYMMDDTHHMMSS.mmmZ`, the suffix a second report of the same name gets.
fn is_stamp(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    b.len() == 21
        && b[0] == b'.'
        && digits(1..9)
        && b[9] == b'T'
        && digits(10..16)
        && b[16] == b'.'
        && digits(17..20)
        && b[20] == b'Z'
}

/// `NAME.errors.csv` and `NAME.summary.json` for a report stem.
pub fn report_names(dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
    (dir.join(format!("{stem}.errors.csv")), dir.join(format!("{stem}.summary.json")))
}

/// Where the errors report grows until it is published, kept across restarts.
pub fn partial_name(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!(".{stem}.errors.csv.partial"))
}

/// Where the warnings report grows until it is published, kept across restarts.
pub fn warnings_partial_name(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!(".{stem}.warnings.csv.partial"))
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
    }

    proptest::proptest! {
        /// Any file name: no panic, a stem that fits, and an original that starts the stem.
        #[test]
        fn any_name_gives_a_stem_and_maybe_an_original(name in "\\PC{0,300}(\\.[0-9TZ]{0,21})?(\\.errors|\\.warnings)?\\.(csv|xlsx|gz)") {
            let stem = stem_of(&name);
            proptest::prop_assert!(stem.len() <= STEM_MAX);
            if let Some(original) = redropped(&stem) {
                proptest::prop_assert!(stem.starts_with(original) && original.len() < stem.len());
            }
        }
    }

    #[test]
    fn a_report_dropped_back_in_is_known_by_its_original() {
        let original = |name: &str| redropped(&stem_of(name)).map(str::to_string);
        assert_eq!(original("clients.errors.csv").as_deref(), Some("clients"));
        assert_eq!(original("clients.20261123T101112.123Z.errors.csv").as_deref(), Some("clients"));
        assert_eq!(original("clients.warnings.csv").as_deref(), Some("clients"));
        assert_eq!(
            original("x.1.errors.csv").as_deref(),
            Some("x.1"),
            "only our own timestamp is cut"
        );
        assert_eq!(original(".errors.csv"), None, "nothing before the suffix");
        assert_eq!(original("clients.csv"), None);
        assert_eq!(original("é.errors.csv").as_deref(), Some("é"));
        assert_eq!(stem_of("book.XLSX"), "book");
    }

    #[test]
    fn a_stamped_name_keeps_its_extension_and_fits() {
        assert_eq!(fit_name("a.csv.gz", "", NAME_MAX), "a.csv.gz");
        assert_eq!(fit_name("a.csv.gz", "T1", NAME_MAX), "a.T1.csv.gz");
        assert_eq!(fit_name("notes", "T1", NAME_MAX), "notes.T1");
        let long = format!("{}.csv", "é".repeat(120));
        let stamped = fit_name(&long, "20250101T000000.000Z", NAME_MAX);
        assert!(stamped.len() <= NAME_MAX && stamped.ends_with(".20250101T000000.000Z.csv"));
        assert_eq!(fit_name(&long, "", NAME_MAX), long, "a name that fits is kept");
    }

    proptest::proptest! {
        #[test]
        fn fitted_names_never_panic_fit_and_keep_the_extension(
            stem in "\\PC{0,200}",
            ext in proptest::sample::select(vec!["", ".csv", ".CSV.gz", ".xlsx", ".txt", ".gz"]),
            tag in "[0-9TZ.-]{0,30}",
            max in 0usize..300,
        ) {
            let name = format!("{stem}{ext}");
            let fitted = fit_name(&name, &tag, max);
            let limit = max.max(FIT_MIN);
            proptest::prop_assert!(fitted.len() <= limit, "{} > {limit}", fitted.len());
            let (_, kept) = split_extension(&name);
            let fixed = kept.len() + tag.len() + usize::from(!tag.is_empty());
            if fixed + FIT_MIN / 2 <= limit {
                proptest::prop_assert!(fitted.ends_with(kept));
                if !tag.is_empty() {
                    let tail = format!(".{tag}{kept}");
                    proptest::prop_assert!(fitted.ends_with(&tail));
                }
            }
            if tag.is_empty() && name.len() <= limit {
                proptest::prop_assert_eq!(&fitted, &name);
            }
        }

        #[test]
        fn stems_and_shortened_names_never_panic_and_fit(name in "\\PC{0,300}", max in 9usize..300) {
            proptest::prop_assert!(shorten(&name, max).len() <= max);
            proptest::prop_assert!(stem_of(&name).len() <= STEM_MAX);
        }
    }
}
