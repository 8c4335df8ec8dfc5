//! Guessing a file's encoding and delimiter from its first bytes.

use std::borrow::Cow;

use crate::config::{Delimiter, Encoding};

pub const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
pub const UTF16LE_BOM: &[u8] = b"\xFF\xFE";
pub const UTF16BE_BOM: &[u8] = b"\xFE\xFF";
const CANDIDATES: [u8; 4] = [b',', b';', b'\t', b'|'];

/// How a file's bytes become text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileEncoding {
    /// Invalid bytes make the row a `parse` failure.
    Utf8Strict,
    /// UTF-8, but a field that is not valid UTF-8 is read as Windows-1252 (`encoding = "auto"`).
    Utf8Lenient,
    Windows1252,
    /// Mac Roman (`encoding = "macintosh"`), what older Mac Excel saves as CSV.
    MacRoman,
    /// UTF-16 with a BOM (Excel's "Unicode Text"). The file is transcoded to UTF-8 as it is
    /// read, so its fields are UTF-8 here; its reports are written back in UTF-16.
    Utf16 {
        big_endian: bool,
    },
}

impl FileEncoding {
    /// Decodes one field.
    pub fn decode<'a>(self, bytes: &'a [u8]) -> Result<Cow<'a, str>, String> {
        match std::str::from_utf8(bytes) {
            Ok(s) if !self.single_byte() || s.is_ascii() => Ok(Cow::Borrowed(s)),
            _ if self == FileEncoding::MacRoman => {
                Ok(encoding_rs::MACINTOSH.decode_without_bom_handling(bytes).0)
            }
            _ if matches!(self, FileEncoding::Windows1252 | FileEncoding::Utf8Lenient) => {
                Ok(encoding_rs::WINDOWS_1252.decode_without_bom_handling(bytes).0)
            }
            _ => Err("is not valid UTF-8 (set encoding = \"windows-1252\" or \"auto\" for this pipeline)".into()),
        }
    }

    /// A single-byte encoding: bytes past ASCII are characters of their own, never UTF-8.
    pub fn single_byte(self) -> bool {
        matches!(self, FileEncoding::Windows1252 | FileEncoding::MacRoman)
    }

    /// Encodes text of our own (report messages) the way the source file's fields are
    /// encoded (UTF-8 for UTF-16 files, which are transcoded as a whole when written).
    pub fn encode(self, text: &str) -> Cow<'_, [u8]> {
        match self {
            FileEncoding::Windows1252 => encoding_rs::WINDOWS_1252.encode(text).0,
            FileEncoding::MacRoman => encoding_rs::MACINTOSH.encode(text).0,
            _ => Cow::Borrowed(text.as_bytes()),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FileEncoding::Windows1252 => "windows-1252",
            FileEncoding::MacRoman => "macintosh",
            FileEncoding::Utf16 { big_endian: false } => "utf-16le",
            FileEncoding::Utf16 { big_endian: true } => "utf-16be",
            FileEncoding::Utf8Strict | FileEncoding::Utf8Lenient => "utf-8",
        }
    }
}

/// How the file's lines end; its reports end theirs the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LineEnd {
    #[default]
    Lf,
    CrLf,
    /// A bare CR, as classic Mac OS (and older Mac Excel) wrote.
    Cr,
}

impl LineEnd {
    /// The line end of the first line of `sample` (LF when it has none), and where that
    /// line's terminator starts and how long it is.
    pub fn of_first_line(sample: &[u8]) -> (Self, Option<(usize, usize)>) {
        match memchr::memchr2(b'\n', b'\r', sample) {
            None => (LineEnd::Lf, None),
            Some(i) if sample[i] == b'\n' => (LineEnd::Lf, Some((i, 1))),
            Some(i) if sample.get(i + 1) == Some(&b'\n') => (LineEnd::CrLf, Some((i, 2))),
            Some(i) => (LineEnd::Cr, Some((i, 1))),
        }
    }

    pub fn bytes(self) -> &'static [u8] {
        match self {
            LineEnd::Lf => b"\n",
            LineEnd::CrLf => b"\r\n",
            LineEnd::Cr => b"\r",
        }
    }

    /// The byte whose count is the line count: CR only in a CR-only file.
    pub fn counted(self) -> u8 {
        if self == LineEnd::Cr {
            b'\r'
        } else {
            b'\n'
        }
    }

    pub fn terminator(self) -> csv::Terminator {
        match self {
            LineEnd::Lf => csv::Terminator::Any(b'\n'),
            LineEnd::CrLf => csv::Terminator::CRLF,
            LineEnd::Cr => csv::Terminator::Any(b'\r'),
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
        Encoding::Macintosh => FileEncoding::MacRoman,
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
        // Mac Roman: é is 0x8E, è 0x8F.
        assert_eq!(FileEncoding::MacRoman.decode(b"Caf\x8E Cr\x8Fme").unwrap(), "Café Crème");
        assert_eq!(&*FileEncoding::MacRoman.encode("Café"), b"Caf\x8E");
        assert_eq!(sniff_encoding(Encoding::Macintosh, b"x", false, true), FileEncoding::MacRoman);
    }

    #[test]
    fn line_ends() {
        assert_eq!(LineEnd::of_first_line(b"a,b\r\nc"), (LineEnd::CrLf, Some((3, 2))));
        assert_eq!(LineEnd::of_first_line(b"a,b\rc,d\r"), (LineEnd::Cr, Some((3, 1))));
        assert_eq!(LineEnd::of_first_line(b"a,b\nc\r\n"), (LineEnd::Lf, Some((3, 1))));
        assert_eq!(LineEnd::of_first_line(b"a,b"), (LineEnd::Lf, None));
    }
}
