//! Phone numbers to E.164. A hand-written fast path takes the shapes spreadsheets hold
//! (`07700 900123`, `+44 (0)7700 900123`, `0044...`, `(020) 7946-0958`, `447700900123`) for a
//! table of common regions; anything it does not know goes to the `phonenumber` crate
//! (libphonenumber's rules), which is ~20x slower and serialises threads (NOTES.md), so it
//! only sees what the fast path cannot settle. A number neither accepts is refused.
//!
//! The fast path accepts a number only when its length fits its region's numbering plan for
//! the digits it starts with (UK mobiles `7...` have 10 national digits, so `07700 90012` is
//! no number); a start it has no rule for, or a length that does not fit, goes to
//! libphonenumber, which decides.

/// National numbers whose first digit is `first` and second within `second` have between
/// `len.0` and `len.1` digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub first: u8,
    pub second: (u8, u8),
    pub len: (usize, usize),
}

/// A region's calling code, trunk prefix and numbering plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub code: &'static str,
    pub calling: &'static str,
    /// The national trunk prefix dropped in international form (`0` in the UK).
    pub trunk: Option<char>,
    /// The lengths of national (significant) numbers by their first two digits, from
    /// libphonenumber's metadata for the common kinds (fixed lines, mobiles); a start with no
    /// rule is left to libphonenumber.
    pub plan: &'static [Rule],
    /// National numbers may start with 0 and keep it in international form (Italy's
    /// landlines: `06 6982` is `+39 06 6982`).
    pub leading_zero: bool,
}

const fn region_of(
    code: &'static str,
    calling: &'static str,
    trunk: Option<char>,
    plan: &'static [Rule],
) -> Region {
    Region { code, calling, trunk, plan, leading_zero: false }
}

/// National numbers starting with `first`, any second digit, of `lo` to `hi` digits.
const fn any(first: u8, lo: usize, hi: usize) -> Rule {
    Rule { first, second: (b'0', b'9'), len: (lo, hi) }
}

/// National numbers starting with `first` then a digit from `s_lo` to `s_hi`.
const fn then(first: u8, (s_lo, s_hi): (u8, u8), lo: usize, hi: usize) -> Rule {
    Rule { first, second: (s_lo, s_hi), len: (lo, hi) }
}

// Lengths from libphonenumber's metadata (PhoneNumberMetadata.xml, 9.0.33) for the starts
// whose fixed lines and mobiles all have them. Starts left out go to the full parser: GB `1`
// numbers of 9 digits (a few areas), German landlines (5 to 15 digits), Irish and Australian
// special ranges, ...
const GB_PLAN: &[Rule] = &[
    any(b'1', 10, 10),
    any(b'2', 10, 10),
    any(b'3', 10, 10),
    any(b'5', 10, 10),
    any(b'7', 10, 10),
    any(b'8', 10, 10),
    any(b'9', 10, 10),
];
const IE_PLAN: &[Rule] = &[any(b'1', 8, 9), then(b'8', (b'3', b'9'), 9, 9)];
const NANP_PLAN: &[Rule] = &[
    then(b'2', (b'0', b'9'), 10, 10),
    any(b'3', 10, 10),
    any(b'4', 10, 10),
    any(b'5', 10, 10),
    any(b'6', 10, 10),
    any(b'7', 10, 10),
    any(b'8', 10, 10),
    any(b'9', 10, 10),
];
const AU_PLAN: &[Rule] =
    &[any(b'2', 9, 9), any(b'3', 9, 9), any(b'4', 9, 9), any(b'7', 9, 9), any(b'8', 9, 9)];
const NZ_PLAN: &[Rule] = &[
    then(b'2', (b'0', b'2'), 8, 10),
    then(b'2', (b'7', b'9'), 8, 10),
    then(b'3', (b'2', b'7'), 8, 8),
    then(b'3', (b'9', b'9'), 8, 8),
    then(b'4', (b'2', b'9'), 8, 8),
    then(b'6', (b'2', b'3'), 8, 8),
    then(b'6', (b'5', b'9'), 8, 8),
    then(b'7', (b'2', b'5'), 8, 8),
    then(b'7', (b'7', b'9'), 8, 8),
    then(b'9', (b'2', b'9'), 8, 8),
];
const FR_PLAN: &[Rule] = &[
    any(b'1', 9, 9),
    any(b'2', 9, 9),
    any(b'3', 9, 9),
    any(b'4', 9, 9),
    any(b'5', 9, 9),
    any(b'6', 9, 9),
    any(b'7', 9, 9),
    any(b'8', 9, 9),
    any(b'9', 9, 9),
];
const DE_PLAN: &[Rule] = &[then(b'1', (b'5', b'5'), 11, 11), then(b'1', (b'6', b'7'), 10, 11)];
const NL_PLAN: &[Rule] = &[
    any(b'1', 9, 9),
    any(b'2', 9, 9),
    any(b'3', 9, 9),
    any(b'4', 9, 9),
    any(b'5', 9, 9),
    any(b'6', 9, 9),
    any(b'7', 9, 9),
];
const ES_PLAN: &[Rule] =
    &[any(b'5', 9, 9), any(b'6', 9, 9), any(b'7', 9, 9), any(b'8', 9, 9), any(b'9', 9, 9)];
const IT_PLAN: &[Rule] = &[any(b'0', 6, 11), then(b'3', (b'2', b'9'), 9, 10)];
const ZA_PLAN: &[Rule] = &[
    any(b'1', 9, 9),
    any(b'2', 9, 9),
    any(b'3', 9, 9),
    any(b'4', 9, 9),
    any(b'5', 9, 9),
    any(b'6', 9, 9),
    any(b'7', 9, 9),
    then(b'8', (b'0', b'0'), 9, 9),
    // Mobiles `8[1-4]` run from 5 to 9 digits.
    then(b'8', (b'1', b'4'), 5, 9),
];
const IN_PLAN: &[Rule] = &[
    any(b'2', 10, 10),
    any(b'3', 10, 10),
    any(b'4', 10, 10),
    any(b'5', 10, 10),
    any(b'6', 10, 10),
    any(b'7', 10, 10),
    any(b'8', 10, 10),
    any(b'9', 10, 10),
];

const REGIONS: &[Region] = &[
    region_of("GB", "44", Some('0'), GB_PLAN),
    region_of("IE", "353", Some('0'), IE_PLAN),
    region_of("US", "1", Some('1'), NANP_PLAN),
    region_of("CA", "1", Some('1'), NANP_PLAN),
    region_of("AU", "61", Some('0'), AU_PLAN),
    region_of("NZ", "64", Some('0'), NZ_PLAN),
    region_of("FR", "33", Some('0'), FR_PLAN),
    region_of("DE", "49", Some('0'), DE_PLAN),
    region_of("NL", "31", Some('0'), NL_PLAN),
    region_of("ES", "34", None, ES_PLAN),
    Region { leading_zero: true, ..region_of("IT", "39", None, IT_PLAN) },
    region_of("ZA", "27", Some('0'), ZA_PLAN),
    region_of("IN", "91", Some('0'), IN_PLAN),
];

pub const GB: Region = REGIONS[0];

impl Region {
    /// Whether a national number of this region fits its plan: a rule for its start whose
    /// lengths it has. `false` leaves it to libphonenumber.
    fn fits(&self, nsn: &[u8]) -> bool {
        let (Some(&first), Some(&second)) = (nsn.first(), nsn.get(1)) else { return false };
        if first == b'0' && !self.leading_zero {
            return false;
        }
        let rule = self
            .plan
            .iter()
            .find(|r| r.first == first && (r.second.0..=r.second.1).contains(&second));
        rule.is_some_and(|r| in_range(nsn.len(), r.len))
    }
}

/// The region of the table whose calling code starts `digits` (international form), with the
/// national number after it.
fn by_calling_code(digits: &[u8]) -> Option<(&'static Region, &[u8])> {
    REGIONS.iter().find_map(|r| digits.strip_prefix(r.calling.as_bytes()).map(|nsn| (r, nsn)))
}

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
    } else if digits.strip_prefix(calling).is_some_and(|nsn| default.fits(nsn)) {
        // `447700900123`: the calling code written without the plus.
        (&[][..], digits)
    } else {
        // A national number whose trunk zero a spreadsheet dropped (`7700900123`).
        (calling, digits)
    };
    let len = prefix.len() + rest.len();
    if !(8..=15).contains(&len) {
        return None;
    }
    // The region the number belongs to and its national number: the default for a national
    // form, the one its calling code names for an international one (none known: the full
    // parser's business).
    let (region, nsn) = if prefix.is_empty() { by_calling_code(rest)? } else { (&default, rest) };
    if !region.fits(nsn) {
        return None;
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

    /// The numbers: one digit short of the UK plan, accepted before.
    #[test]
    fn numbers_one_digit_short_of_the_uk_plan_are_refused() {
        for bad in
            ["07700 90012", "020 7946 095", "+44 7700 90012", "+44 20 7946 095", "447700 90012"]
        {
            assert_eq!(to_e164(bad, GB), None, "{bad}");
        }
    }

    /// Every region's too-short and too-long forms (national and international) are refused,
    /// libphonenumber agreeing.
    #[test]
    fn every_region_refuses_its_too_short_and_too_long_numbers() {
        let table: &[(&str, &str, &str)] = &[
            ("GB", "07400 12345", "07400 1234567"),
            ("GB", "020 7946 095", "020 7946 09581"),
            ("IE", "087 123 456", "087 123 45678"),
            ("US", "(201) 555-012", "(201) 555-01234"),
            ("CA", "(613) 555-019", "(613) 555-01991"),
            ("AU", "0412 345 67", "0412 345 6789"),
            ("AU", "02 9876 543", "02 9876 54321"),
            ("NZ", "09 379 123", "09 379 12345"),
            ("FR", "06 12 34 56 7", "06 12 34 56 789"),
            ("DE", "01512 345678", "01512 34567890"),
            ("NL", "06 1234567", "06 123456789"),
            ("ES", "612 34 56 7", "612 34 56 789"),
            ("IT", "312 345 67", "312 345 6789012"),
            ("ZA", "021 123 456", "021 123 45678"),
            ("IN", "098765 4321", "098765 432101"),
        ];
        for (code, short, long) in table {
            let r = region(code).unwrap();
            for text in [short.to_string(), long.to_string()] {
                let international = format!("+{} {}", r.calling, text.trim_start_matches('0'));
                for t in [text.clone(), international] {
                    assert_eq!(full(&t, r), None, "libphonenumber refuses {code} {t}");
                    assert_eq!(to_e164(&t, r), None, "{code} {t}");
                }
            }
        }
        let tested: std::collections::BTreeSet<&str> = table.iter().map(|t| t.0).collect();
        assert_eq!(tested.len(), REGIONS.len(), "every region has a row");
    }

    /// libphonenumber's own example numbers of every kind for every region, as written
    /// nationally and internationally, and one digit short and one long of each: whatever
    /// the fast path accepts, libphonenumber accepts the same way.
    #[test]
    fn the_fast_path_never_accepts_what_libphonenumber_refuses_on_its_examples() {
        use phonenumber::metadata::DATABASE;
        let mut compared = 0;
        for r in REGIONS {
            let meta = DATABASE.by_id(r.code).unwrap();
            let d = meta.descriptors();
            let kinds = [
                d.fixed_line(),
                d.mobile(),
                d.toll_free(),
                d.premium_rate(),
                d.shared_cost(),
                d.personal_number(),
                d.voip(),
                d.uan(),
                d.pager(),
            ];
            for example in kinds.into_iter().flatten().filter_map(|k| k.example()) {
                let trunk = r.trunk.map(String::from).unwrap_or_default();
                let forms = [format!("{trunk}{example}"), format!("+{} {example}", r.calling)];
                for form in forms {
                    let short = &form[..form.len() - 1];
                    for t in [form.clone(), short.to_string(), format!("{form}5")] {
                        if let Some(f) = fast(&t, *r) {
                            compared += 1;
                            assert_eq!(Some(f), full(&t, *r), "{} {t}", r.code);
                        }
                    }
                }
            }
        }
        assert!(compared > 100, "the fast path took most examples: {compared}");
    }

    #[test]
    fn shapes_the_fast_path_does_not_know_go_to_the_full_parser() {
        // A vanity-free but unusual punctuation the fast path refuses.
        assert_eq!(fast("+44 20 7946 0958 (London)", GB), None);
        assert_eq!(fast("tel:+44-20-7946-0958", GB), None);
        assert_eq!(to_e164("tel:+44-20-7946-0958", GB).as_deref(), Some("+442079460958"));
        assert_eq!(to_e164("not a phone", GB), None);
    }

    proptest::proptest! {
        /// Any text, in any region: no panic, and an answer is `+` and 8 to 15 digits.
        #[test]
        fn any_text_is_refused_or_a_plain_e164_number(text in "[0-9 +()./\\-]{0,30}|\\PC{0,30}", r in 0..REGIONS.len()) {
            if let Some(n) = fast(&text, REGIONS[r]) {
                proptest::prop_assert!(n.starts_with('+') && (9..=16).contains(&n.len()), "{}", n);
                proptest::prop_assert!(n[1..].bytes().all(|b| b.is_ascii_digit()), "{}", n);
            }
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
