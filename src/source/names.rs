//! The names a file may take where it is claimed or filed away, the same for a folder and a
//! bucket: its own name, then with a timestamp before its extension, then with a counter
//! after the timestamp; each fitted on character boundaries to the file system's 255 bytes
//! ([`crate::report::names::fit_name`]).

use crate::report::names::{fit_name, NAME_MAX};

/// `name`, then `name` stamped with `stamp`, then `stamp-1`, `stamp-2`, ... (without end:
/// the caller stops at the first free one, and only so many names can be taken).
pub fn candidates<'a>(name: &'a str, stamp: &'a str) -> impl Iterator<Item = String> + 'a {
    (0usize..).map(move |n| match n {
        0 => fit_name(name, "", NAME_MAX),
        1 => fit_name(name, stamp, NAME_MAX),
        n => fit_name(name, &format!("{stamp}-{}", n - 1), NAME_MAX),
    })
}

/// A timestamp for a name clash: `20250131T235959.123Z`.
pub fn stamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y%m%dT%H%M%S%.3fZ").to_string()
}

/// The stamp of a time given in milliseconds since 1970 (an object's last modification).
pub fn stamp_ms(ms: i64) -> String {
    stamp(chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clashing_names_get_a_stamp_then_a_counter() {
        let names: Vec<String> = candidates("a.csv.gz", "T").take(3).collect();
        assert_eq!(names, ["a.csv.gz", "a.T.csv.gz", "a.T-1.csv.gz"]);
        assert_eq!(stamp_ms(0), "19700101T000000.000Z");
    }

    proptest::proptest! {
        #[test]
        fn every_candidate_fits_whatever_the_name(name in "\\PC{1,300}") {
            for c in candidates(&name, "20250101T000000.000Z").take(3) {
                proptest::prop_assert!(c.len() <= NAME_MAX);
            }
        }
    }
}
