//! Phone numbers to E.164. A hand-written fast path takes the shapes spreadsheets hold
//! (`07700 900123`, `+44 (0)7700 900123`, `0044...`, `(020) 7946-0958`, `447700900123`) for a
//! table of common regions; anything it does not know goes to the `phonenumber` crate
//! (libphonenumber's rules), which is ~20x slower and serialises threads (NOTES.md), so it
//! only sees what the fast path cannot settle. A number neither accepts is refused.

/// A region's calling code, trunk prefix and national number lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub code: &'static str,
    pub calling: &'static str,
    /// The national trunk prefix dropped in international form (`0` in the UK).
    pub trunk: Option<char>,
    pub nsn_len: (usize, usize),
    /// National numbers may start with 0 and keep it in international form (Italy's
    /// landlines: `06 6982` is `+39 06 6982`).
    pub leading_zero: bool,
}

const fn region_of(
    code: &'static str,
    calling: &'static str,
    trunk: Option<char>,
    nsn_len: (usize, usize),
) -> Region {
    Region { code, calling, trunk, nsn_len, leading_zero: false }
}

const REGIONS: &[Region] = &[
    region_of("GB", "44", Some('0'), (9, 10)),
    region_of("IE", "353", Some('0'), (7, 9)),
    region_of("US", "1", Some('1'), (10, 10)),
    region_of("CA", "1", Some('1'), (10, 10)),
    region_of("AU", "61", Some('0'), (9, 9)),
    region_of("NZ", "64", Some('0'), (8, 10)),
    region_of("FR", "33", Some('0'), (9, 9)),
    region_of("DE", "49", Some('0'), (6, 13)),
    region_of("NL", "31", Some('0'), (9, 9)),
    region_of("ES", "34", None, (9, 9)),
    Region { leading_zero: true, ..region_of("IT", "39", None, (6, 11)) },
    region_of("ZA", "27", Some('0'), (9, 9)),
    region_of("IN", "91", Some('0'), (10, 10)),
];

pub const GB: Region = REGIONS[0];

/// The region for a two-letter code (`GB`, `US`, ...).
pub fn region(code: &str) -> Option<Region> {
    REGIONS.iter().copied().find(|r| r.code.eq_ignore_ascii_case(code))
}

pub fn known_regions() -> Vec<&'static str> {
    REGIONS.iter().map(|r| r.code).collect()
}

/// Normalises `text` to `+<digits>`, reading a national number as `default` region's: the fast
/// path first, libphonenumber's rules for what it does not know.
pub fn to_e164(text: &str, default: Region) -> Option<String> {
    fast(text, default).or_else(|| full(text, default))
}

/// The fewest digits a phone number has (national numbers of four digits exist).
const MIN_DIGITS: usize = 4;

/// libphonenumber's parse: valid numbers only (`+<digits>`).
#[inline(never)]
pub fn full(text: &str, default: Region) -> Option<String> {
    let text = super::text::trim(text);
    if text.is_empty() || text.len() > 40 {
        return None;
    }
    // No phone number anywhere has fewer than four digits: text like "call the office" is
    // refused here, without loading libphonenumber's metadata (tens of milliseconds and
    // several MiB, once) or paying for its parse.
    if text.chars().filter(|c| c.is_numeric()).count() < MIN_DIGITS {
        return None;
    }
    let country = default.code.parse::<phonenumber::country::Id>().ok();
    let number = phonenumber::parse(country, text).ok()?;
    if !phonenumber::is_valid(&number) {
        return None;
    }
    Some(number.format().mode(phonenumber::Mode::E164).to_string())
}

/// The hand-written shapes. This runs for every row with a phone: digits are gathered on the
/// stack and the one allocation is the result.
pub fn fast(text: &str, default: Region) -> Option<String> {
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
        let zero_ok = default.leading_zero;
        if !in_range(nsn.len(), default.nsn_len) || (nsn.starts_with(b"0") && !zero_ok) {
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
        for bad in ["", "n/a", "12345", "077009001234567", "+44 0770090012", "07700\u{a1}900123"] {
            assert_eq!(to_e164(bad, GB), None, "{bad}");
        }
    }

    /// Real-format numbers of every region in the table, national and international, each
    /// checked against libphonenumber's own reading.
    #[test]
    fn every_region_from_real_formats() {
        let table: &[(&str, &str, &str)] = &[
            ("GB", "020 7946 0958", "+442079460958"),
            ("GB", "07400 123456", "+447400123456"),
            ("IE", "01 234 5678", "+35312345678"),
            ("IE", "087 123 4567", "+353871234567"),
            ("US", "(201) 555-0123", "+12015550123"),
            ("US", "+1 415-555-2671", "+14155552671"),
            ("CA", "(613) 555-0199", "+16135550199"),
            ("AU", "02 9876 5432", "+61298765432"),
            ("AU", "0412 345 678", "+61412345678"),
            ("NZ", "09 379 1234", "+6493791234"),
            ("NZ", "021 123 4567", "+64211234567"),
            ("FR", "01 23 45 67 89", "+33123456789"),
            ("FR", "06 12 34 56 78", "+33612345678"),
            ("DE", "030 123456", "+4930123456"),
            ("DE", "01512 3456789", "+4915123456789"),
            ("NL", "020 123 4567", "+31201234567"),
            ("NL", "06 12345678", "+31612345678"),
            ("ES", "912 34 56 78", "+34912345678"),
            ("ES", "612 34 56 78", "+34612345678"),
            ("IT", "06 6982 1234", "+390669821234"),
            ("IT", "02 1234 5678", "+390212345678"),
            ("IT", "312 345 6789", "+393123456789"),
            ("IT", "+39 06 6982 1234", "+390669821234"),
            ("ZA", "021 123 4567", "+27211234567"),
            ("ZA", "082 123 4567", "+27821234567"),
            ("IN", "098765 43210", "+919876543210"),
            ("IN", "+91 98765 43210", "+919876543210"),
        ];
        for (code, input, want) in table {
            let r = region(code).unwrap();
            assert_eq!(to_e164(input, r).as_deref(), Some(*want), "{code} {input}");
            assert_eq!(
                full(input, r).as_deref(),
                Some(*want),
                "libphonenumber agrees: {code} {input}"
            );
        }
        let tested: std::collections::BTreeSet<&str> = table.iter().map(|t| t.0).collect();
        assert_eq!(tested.len(), REGIONS.len(), "every region has a row");
    }

    #[test]
    fn shapes_the_fast_path_does_not_know_go_to_the_full_parser() {
        // A vanity-free but unusual punctuation the fast path refuses.
        assert_eq!(fast("+44 20 7946 0958 (London)", GB), None);
        assert_eq!(fast("tel:+44-20-7946-0958", GB), None);
        assert_eq!(to_e164("tel:+44-20-7946-0958", GB).as_deref(), Some("+442079460958"));
        assert_eq!(to_e164("not a phone", GB), None);
    }

    #[test]
    fn us_region() {
        let us = region("us").unwrap();
        assert_eq!(to_e164("(415) 555-2671", us).as_deref(), Some("+14155552671"));
        assert_eq!(to_e164("1-415-555-2671", us).as_deref(), Some("+14155552671"));
        assert_eq!(to_e164("555-2671", us), None);
    }
}
