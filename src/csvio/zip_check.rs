//! A zip-based workbook (`.xlsx`, `.xlsm`, `.xlsb`, `.ods`) looked at before calamine reads
//! it: the parts calamine holds whole in memory must be small enough, both as the archive
//! declares them and as they really inflate (a zip bomb declares less than it holds).

use std::io::{Read, Seek};

use super::workbook::{MAX_HELD_PART, MAX_SHARED_STRINGS, MAX_WHOLE_SHEET};

/// Parts read whole, by the end of their name (lowercase), and the most each may inflate to.
fn limit_for(name: &str, ods: bool) -> Option<u64> {
    let name = name.to_ascii_lowercase();
    if ods {
        return match name.as_str() {
            "content.xml" => Some(MAX_WHOLE_SHEET),
            "styles.xml" | "meta.xml" | "settings.xml" => Some(MAX_HELD_PART),
            _ => None,
        };
    }
    if name.ends_with("sharedstrings.xml") || name.ends_with("sharedstrings.bin") {
        return Some(MAX_SHARED_STRINGS);
    }
    let held = ["styles.xml", "styles.bin"];
    let held = held.iter().any(|p| name.ends_with(p))
        || name.starts_with("xl/workbook.")
        || name.ends_with(".rels")
        || name == "[content_types].xml";
    held.then_some(MAX_HELD_PART)
}

/// Refuses a workbook whose held parts are, or inflate to, more than their limit; or whose
/// archive cannot be read at all (a truncated file).
pub fn check<R: Read + Seek>(file: &mut R, ods: bool) -> Result<(), String> {
    let mut zip = zip::ZipArchive::new(file).map_err(|e| {
        format!("not a readable workbook (its zip archive: {e}); a truncated or damaged file?")
    })?;
    for i in 0..zip.len() {
        let mut part = zip.by_index(i).map_err(|e| format!("not a readable workbook: {e}"))?;
        let name = part.name().map(|n| n.into_owned()).unwrap_or_default();
        let Some(limit) = limit_for(&name, ods) else { continue };
        let too_big = |n: u64| {
            format!(
                "the workbook's part `{name}` is {} MiB inflated, more than {} MiB: a workbook this large (or a zip bomb) is not read; save the sheet as CSV",
                n >> 20,
                limit >> 20
            )
        };
        if part.size() > limit {
            return Err(too_big(part.size()));
        }
        // What it really inflates to, never more than one byte past the limit.
        let inflated = std::io::copy(&mut (&mut part).take(limit + 1), &mut std::io::sink())
            .map_err(|e| format!("not a readable workbook (part `{name}`: {e})"))?;
        if inflated > limit {
            return Err(too_big(inflated));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip_of(parts: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        let mut w = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in parts {
            w.start_file(*name, options).unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap();
        out.into_inner()
    }

    #[test]
    fn held_parts_past_their_limit_are_refused_streamed_sheets_are_not() {
        let big = vec![b'a'; (MAX_HELD_PART + 1) as usize];
        let styles = zip_of(&[("xl/styles.xml", &big)]);
        let err = check(&mut std::io::Cursor::new(styles), false).unwrap_err();
        assert!(err.contains("xl/styles.xml") && err.contains("zip bomb"), "{err}");
        let strings = zip_of(&[("xl/sharedStrings.xml", &big)]);
        assert!(check(&mut std::io::Cursor::new(strings), false).is_ok(), "40 MiB for strings");
        let huge = vec![b'a'; (MAX_SHARED_STRINGS + 1) as usize];
        let bomb = zip_of(&[("xl/sharedStrings.xml", &huge)]);
        let err = check(&mut std::io::Cursor::new(bomb), false).unwrap_err();
        assert!(err.contains("xl/sharedStrings.xml") && err.contains("zip bomb"), "{err}");
        let sheet = zip_of(&[("xl/worksheets/sheet1.xml", &big)]);
        assert!(check(&mut std::io::Cursor::new(sheet), false).is_ok());
        let content = zip_of(&[("content.xml", &big)]);
        assert!(check(&mut std::io::Cursor::new(content), true).is_err());
    }

    #[test]
    fn a_truncated_archive_says_so() {
        let whole = zip_of(&[("xl/workbook.xml", b"<workbook/>")]);
        let err = check(&mut std::io::Cursor::new(&whole[..whole.len() / 2]), false).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_refused_or_passed_without_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = check(&mut std::io::Cursor::new(bytes), false);
        }
    }
}
