//! Phone numbers to E.164 without a full libphonenumber: the shapes spreadsheets hold
//! (`07700 900123`, `+44 (0)7700 900123`, `0044...`, `(020) 7946-0958`, `447700900123`)
//! for a table of common regions. Measured in NOTES.md: the `phonenumber` crate is ~20x slower
//! and serialises threads, so this fast path is the only path; unknown shapes are refused.

/// A region's calling code, trunk prefix and national number lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub code: &'static str,
    pub calling: &'static str,
    /// The national trunk prefix dropped in international form (`0` in the UK).
    pub trunk: Option<char>,
    pub nsn_len: (usize, usize),
}

const REGIONS: &[Region] = &[
    Region { code: "GB", calling: "44", trunk: Some('0'), nsn_len: (9, 10) },
    Region { code: "IE", calling: "353", trunk: Some('0'), nsn_len: (7, 9) },
    Region { code: "US", calling: "1", trunk: Some('1'), nsn_len: (10, 10) },
    Region { code: "CA", calling: "1", trunk: Some('1'), nsn_len: (10, 10) },
    Region { code: "AU", calling: "61", trunk: Some('0'), nsn_len: (9, 9) },
    Region { code: "NZ", calling: "64", trunk: Some('0'), nsn_len: (8, 10) },
    Region { code: "FR", calling: "33", trunk: Some('0'), nsn_len: (9, 9) },
    Region { code: "DE", calling: "49", trunk: Some('0'), nsn_len: (6, 13) },
    Region { code: "NL", calling: "31", trunk: Some('0'), nsn_len: (9, 9) },
    Region { code: "ES", calling: "34", trunk: None, nsn_len: (9, 9) },
    Region { code: "IT", calling: "39", trunk: None, nsn_len: (6, 11) },
    Region { code: "ZA", calling: "27", trunk: Some('0'), nsn_len: (9, 9) },
    Region { code: "IN", calling: "91", trunk: Some('0'), nsn_len: (10, 10) },
];

pub const GB: Region = REGIONS[0];

/// The region for a two-letter code (`GB`, `US`, ...).
pub fn region(code: &str) -> Option<Region> {
    REGIONS.iter().copied().find(|r| r.code.eq_ignore_ascii_case(code))
}

pub fn known_regions() -> Vec<&'static str> {
    REGIONS.iter().map(|r| r.code).collect()
}

/// Normalises `text` to `+<digits>`, reading a national number as `default` region's. This
/// runs for every row with a phone: digits are gathered on the stack and the one allocation is
/// the result.
pub fn to_e164(text: &str, default: Region) -> Option<String> {
    let text = super::text::trim(text);
    // E.164 allows 15 digits; anything much longer is refused before it could overflow this.
    let mut buf = [0u8; 24];
    let mut n = 0;
    let mut international = false;
    // Byte by byte: everything accepted is ASCII but the no-break space (`C2 A0`).
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        i += 1;
        match b {
            b'0'..=b'9' => {
                *buf.get_mut(n)? = b;
                n += 1;
            }
            b'+' if n == 0 && !international => international = true,
            // `+44 (0)20 ...`: the bracketed trunk zero is dropped in international form.
            b'(' if international && bytes[i..].starts_with(b"0)") => i += 2,
            b' ' | b'-' | b'.' | b'(' | b')' | b'/' => {}
            0xC2 if bytes.get(i) == Some(&0xA0) => i += 1,
            _ => return None,
        }
    }
    // ASCII digits, worked on as bytes.
    let mut digits: &[u8] = buf.get(..n)?;
    if !international && digits.starts_with(b"00") {
        international = true;
        digits = &digits[2..];
    }
    // The number is `prefix` + `rest`, where `prefix` is empty or the default calling code.
    let calling = default.calling.as_bytes();
    let trunk = default.trunk.and_then(|t| u8::try_from(t).ok());
    let (prefix, rest): (&[u8], &[u8]) = if international {
        (&[], digits)
    } else if let Some(rest) = trunk.and_then(|t| digits.strip_prefix(&[t][..])) {
        (calling, rest)
    } else if digits.starts_with(calling) && in_range(digits.len() - calling.len(), default.nsn_len)
    {
        // `447700900123`: the calling code written without the plus.
        (&[][..], digits)
    } else {
        // A national number whose trunk zero a spreadsheet dropped (`7700900123`).
        (calling, digits)
    };
    let len = prefix.len() + rest.len();
    let first = prefix.iter().chain(rest).next();
    if !(8..=15).contains(&len) || first == Some(&b'0') {
        return None;
    }
    let nsn = if prefix.is_empty() { rest.strip_prefix(calling) } else { Some(rest) };
    if let Some(nsn) = nsn {
        if !in_range(nsn.len(), default.nsn_len) || nsn.starts_with(b"0") {
            return None;
        }
    }
    let mut out = Vec::with_capacity(len + 1);
    out.push(b'+');
    out.extend_from_slice(prefix);
    out.extend_from_slice(rest);
    // `+` and ASCII digits: always valid.
    String::from_utf8(out).ok()
}

fn in_range(n: usize, (lo, hi): (usize, usize)) -> bool {
    (lo..=hi).contains(&n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uk_shapes() {
        for (input, want) in [
            ("07700 900123", "+447700900123"),
            ("07700900123", "+447700900123"),
            ("+44 7700 900123", "+447700900123"),
            ("+44 (0)7700 900123", "+447700900123"),
            ("0044 7700 900123", "+447700900123"),
            ("447700900123", "+447700900123"),
            ("(020) 7946-0958", "+442079460958"),
            ("020 7946 0958", "+442079460958"),
            ("01632 960 001", "+441632960001"),
            ("+1 415 555 2671", "+14155552671"),
            ("07700\u{a0}900123", "+447700900123"),
        ] {
            assert_eq!(to_e164(input, GB).as_deref(), Some(want), "{input}");
        }
    }

    #[test]
    fn refuses_junk() {
        for bad in [
            "",
            "n/a",
            "12345",
            "077009001234567",
            "07700 900123 ext 4",
            "+44 0770090012",
            "07700\u{a1}900123",
        ] {
            assert_eq!(to_e164(bad, GB), None, "{bad}");
        }
    }

    #[test]
    fn us_region() {
        let us = region("us").unwrap();
        assert_eq!(to_e164("(415) 555-2671", us).as_deref(), Some("+14155552671"));
        assert_eq!(to_e164("1-415-555-2671", us).as_deref(), Some("+14155552671"));
        assert_eq!(to_e164("555-2671", us), None);
    }
}
