//! Guessing a file's encoding and delimiter from its first bytes.

use std::borrow::Cow;

use crate::config::{Delimiter, Encoding};

pub const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
const CANDIDATES: [u8; 4] = [b',', b';', b'\t', b'|'];

/// How a file's bytes become text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileEncoding {
    /// Invalid bytes make the row a `parse` failure.
    Utf8Strict,
    /// UTF-8, but a field that is not valid UTF-8 is read as Windows-1252 (`encoding = "auto"`).
    Utf8Lenient,
    Windows1252,
}

impl FileEncoding {
    /// Decodes one field.
    pub fn decode<'a>(self, bytes: &'a [u8]) -> Result<Cow<'a, str>, String> {
        match std::str::from_utf8(bytes) {
            Ok(s) if self != FileEncoding::Windows1252 || s.is_ascii() => Ok(Cow::Borrowed(s)),
            Ok(_) | Err(_) if self != FileEncoding::Utf8Strict => {
                Ok(encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes).0)
            }
            _ => Err("is not valid UTF-8 (set encoding = \"windows-1252\" or \"auto\" for this pipeline)".into()),
        }
    }

    /// Encodes text of our own (report messages) the way the source file is encoded.
    pub fn encode(self, text: &str) -> Cow<'_, [u8]> {
        match self {
            FileEncoding::Windows1252 => encoding_rs::WINDOWS_1252.encode(text).0,
            _ => Cow::Borrowed(text.as_bytes()),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FileEncoding::Windows1252 => "windows-1252",
            _ => "utf-8",
        }
    }
}

/// Chooses the encoding: the setting, or for `auto` a BOM or valid UTF-8 in `sample`
/// (`whole` when the sample is the entire file, so a cut-off character cannot excuse it).
pub fn sniff_encoding(
    setting: Encoding,
    sample: &[u8],
    has_bom: bool,
    whole: bool,
) -> FileEncoding {
    match setting {
        Encoding::Utf8 => FileEncoding::Utf8Strict,
        Encoding::Windows1252 => FileEncoding::Windows1252,
        Encoding::Auto if has_bom => FileEncoding::Utf8Lenient,
        Encoding::Auto => match std::str::from_utf8(sample) {
            Ok(_) => FileEncoding::Utf8Lenient,
            // Only the sample's cut-off end is incomplete: still UTF-8.
            Err(e) if e.error_len().is_none() && !whole => FileEncoding::Utf8Lenient,
            Err(_) => FileEncoding::Windows1252,
        },
    }
}

/// The candidate (`, ; tab |`) that splits the first lines most consistently.
pub fn sniff_delimiter(setting: Delimiter, sample: &[u8]) -> u8 {
    if let Delimiter::Byte(b) = setting {
        return b;
    }
    let lines = first_lines(sample, 6);
    let Some(header) = lines.first() else { return b',' };
    let mut best = (b',', 0usize, false);
    for d in CANDIDATES {
        let n = count_outside_quotes(header, d);
        if n == 0 {
            continue;
        }
        let consistent = lines[1..].iter().all(|l| count_outside_quotes(l, d) == n);
        if (consistent, n) > (best.2, best.1) {
            best = (d, n, consistent);
        }
    }
    best.0
}

/// Up to `n` records' worth of lines (newlines inside quotes do not split).
fn first_lines(sample: &[u8], n: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, b) in sample.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => {
                let line = &sample[start..i];
                if !line.iter().all(|c| c.is_ascii_whitespace()) {
                    out.push(line);
                }
                start = i + 1;
                if out.len() == n {
                    return out;
                }
            }
            _ => {}
        }
    }
    // A last line with no newline is only whole when the sample is the whole file; counting
    // it would risk a cut line, so it is used only when nothing else is there.
    if out.is_empty() && start < sample.len() {
        out.push(&sample[start..]);
    }
    out
}

fn count_outside_quotes(line: &[u8], d: u8) -> usize {
    let mut quoted = false;
    let mut n = 0;
    for b in line {
        if *b == b'"' {
            quoted = !quoted;
        } else if *b == d && !quoted {
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters() {
        assert_eq!(sniff_delimiter(Delimiter::Auto, b"a,b,c\n1,2,3\n"), b',');
        assert_eq!(sniff_delimiter(Delimiter::Auto, b"a;b;c\n1;2,5;3\n"), b';');
        assert_eq!(sniff_delimiter(Delimiter::Auto, b"a\tb\n1\t2\n"), b'\t');
        assert_eq!(sniff_delimiter(Delimiter::Auto, b"a|b|c\n\"x|y\"|2|3\n"), b'|');
        assert_eq!(sniff_delimiter(Delimiter::Auto, b"\"Name, full\";City\nA;B\n"), b';');
        assert_eq!(sniff_delimiter(Delimiter::Auto, b"single\nvalue\n"), b',');
        assert_eq!(sniff_delimiter(Delimiter::Byte(b'#'), b"a,b"), b'#');
    }

    #[test]
    fn encodings() {
        assert_eq!(
            sniff_encoding(Encoding::Auto, "Zoë".as_bytes(), false, true),
            FileEncoding::Utf8Lenient
        );
        assert_eq!(
            sniff_encoding(Encoding::Auto, b"Zo\xEB", false, true),
            FileEncoding::Windows1252
        );
        assert_eq!(
            sniff_encoding(Encoding::Auto, b"Zo\xC3", false, false),
            FileEncoding::Utf8Lenient
        );
        assert_eq!(FileEncoding::Windows1252.decode(b"Zo\xEB").unwrap(), "Zoë");
        assert_eq!(FileEncoding::Utf8Lenient.decode(b"Zo\xEB").unwrap(), "Zoë");
        assert!(FileEncoding::Utf8Strict.decode(b"Zo\xEB").is_err());
        assert_eq!(&*FileEncoding::Windows1252.encode("Zoë"), b"Zo\xEB");
    }
}
