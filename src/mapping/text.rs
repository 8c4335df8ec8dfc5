//! Text helpers with ASCII fast paths. Every mapped cell passes through several of these, and
//! most cells of a spreadsheet export are short ASCII with nothing to trim or change; the
//! Unicode-aware `str` methods are kept for the cells that need them.

use std::borrow::Cow;

/// Whether a text starting with byte `b` might start with white space: a control byte, a
/// space, or the first byte of Unicode white space (U+0085 and U+00A0 start `C2`, U+1680
/// `E1`, U+2000..U+205F `E2`, U+3000 `E3`).
fn maybe_space_first(b: u8) -> bool {
    b <= b' ' || unicode_space_lead(b)
}

/// The first bytes of the UTF-8 forms of white space beyond ASCII.
fn unicode_space_lead(b: u8) -> bool {
    matches!(b, 0xC2 | 0xE1 | 0xE2 | 0xE3)
}

/// Whether a text ending with byte `b` might end with white space: a control byte, a space,
/// or the last byte of Unicode white space (`85`, `A0`, `80`..`8A`, `A8`, `A9`, `AF`, `9F`).
/// An accented letter (`é` is `C3 A9`... `ë` is `C3 AB`) mostly ends otherwise.
fn maybe_space_last(b: u8) -> bool {
    b <= b' ' || matches!(b, 0x80..=0x8A | 0x9F | 0xA0 | 0xA8 | 0xA9 | 0xAF)
}

/// `str::trim`, without its char-by-char scan when neither end can be white space.
pub fn trim(s: &str) -> &str {
    match s.as_bytes() {
        [first, .., last] if !maybe_space_first(*first) && !maybe_space_last(*last) => s,
        [only] if !maybe_space_first(*only) => s,
        _ => s.trim(),
    }
}

/// Empty or only white space.
pub fn is_blank(s: &str) -> bool {
    match s.as_bytes().first() {
        None => true,
        Some(b) if !maybe_space_first(*b) => false,
        Some(_) => s.trim().is_empty(),
    }
}

/// Lowercase, borrowed when nothing changes.
pub fn lowercase(s: Cow<'_, str>) -> Cow<'_, str> {
    let latin1_upper = |next: u8| (0x80..=0x9E).contains(&next) && next != 0x97;
    if !may_change(&s, |b| b.is_ascii_uppercase(), latin1_upper, |c| !c.to_lowercase().eq([c])) {
        return s;
    }
    Cow::Owned(if s.is_ascii() { s.to_ascii_lowercase() } else { s.to_lowercase() })
}

/// Uppercase, borrowed when nothing changes.
pub fn uppercase(s: Cow<'_, str>) -> Cow<'_, str> {
    let latin1_lower = |next: u8| next >= 0x9F && next != 0xB7;
    if !may_change(&s, |b| b.is_ascii_lowercase(), latin1_lower, |c| !c.to_uppercase().eq([c])) {
        return s;
    }
    Cow::Owned(if s.is_ascii() { s.to_ascii_uppercase() } else { s.to_uppercase() })
}

/// Whether re-casing could change `s`, judged a byte at a time: ASCII by `ascii`, Latin-1
/// letters (`C3 xx` in UTF-8, the accents of Western European names) by `latin1` of their
/// second byte, and any other character by `other` (whether its mapping differs: a title-case
/// letter such as `ǅ` is neither upper nor lower case, yet changes either way).
fn may_change(
    s: &str,
    ascii: impl Fn(u8) -> bool,
    latin1: impl Fn(u8) -> bool,
    other: impl Fn(char) -> bool,
) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c.is_ascii() {
            if ascii(c) {
                return true;
            }
            i += 1;
        } else if let (0xC3, Some(&next)) = (c, b.get(i + 1)) {
            if latin1(next) {
                return true;
            }
            i += 2;
        } else {
            // `i` is a character boundary: only whole characters were stepped over.
            return s.get(i..).is_none_or(|rest| rest.chars().any(other));
        }
    }
    false
}

/// `s.split(sep)` for an ASCII separator, found a byte at a time: what is split here (price
/// lists, territory paths) is short, where a byte loop beats the general searcher.
pub fn split_ascii(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.bytes().position(|b| b == sep) {
            // Both sides of an ASCII byte are character boundaries.
            Some(i) => {
                rest = r.get(i + 1..);
                r.get(..i)
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// The white space `char::is_whitespace` finds in ASCII.
fn ascii_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0B | 0x0C | b'\r' | b' ')
}

/// `o'brien-smith` -> `O'Brien-Smith`: each word's first letter up, the rest down. An owned
/// ASCII text is changed in place; otherwise ASCII and Latin-1 letters are mapped a byte at a
/// time and only other characters go through the Unicode tables.
pub fn title_case(s: Cow<'_, str>) -> Cow<'_, str> {
    let ascii_break = |b: u8| ascii_space(b) || b == b'-' || b == b'\'';
    if s.is_ascii() {
        let mut bytes = s.into_owned().into_bytes();
        let mut start = true;
        for b in bytes.iter_mut() {
            if start {
                b.make_ascii_uppercase();
            } else {
                b.make_ascii_lowercase();
            }
            start = ascii_break(*b);
        }
        // ASCII in, ASCII out.
        return Cow::Owned(String::from_utf8(bytes).unwrap_or_default());
    }
    let bytes = s.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(s.len() + 4);
    let mut start = true;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b.is_ascii() {
            out.push(if start { b.to_ascii_uppercase() } else { b.to_ascii_lowercase() });
            start = ascii_break(b);
            i += 1;
            continue;
        }
        if let (0xC3, Some(&next)) = (b, bytes.get(i + 1)) {
            // U+00C0..U+00FF; upper and lower case letters are 0x20 apart, except `ß` and `ÿ`
            // (whose capitals lie elsewhere) and the signs `×` and `÷`.
            let mapped = match (start, next) {
                (true, 0xA0..=0xBE) if next != 0xB7 => Some(next - 0x20),
                (false, 0x80..=0x9E) if next != 0x97 => Some(next + 0x20),
                (true, 0x9F | 0xBF) => None,
                _ => Some(next),
            };
            if let Some(m) = mapped {
                out.extend_from_slice(&[0xC3, m]);
                start = false;
                i += 2;
                continue;
            }
        }
        let Some(c) = s.get(i..).and_then(|rest| rest.chars().next()) else { break };
        let mut utf8 = [0; 4];
        let mut put = |m: char| out.extend_from_slice(m.encode_utf8(&mut utf8).as_bytes());
        if start {
            c.to_uppercase().for_each(&mut put);
        } else {
            c.to_lowercase().for_each(&mut put);
        }
        start = c.is_whitespace() || c == '’';
        i += c.len_utf8();
    }
    // Only whole characters were written: valid UTF-8 by construction.
    Cow::Owned(String::from_utf8(out).unwrap_or_default())
}

/// Whether collapsing would change `s`: runs of white space, any but a plain space, or white
/// space at either end. Bytes that cannot start Unicode white space (everything beyond ASCII
/// but `C2`, `E1`, `E2` and `E3` leads) are stepped over without decoding.
pub fn needs_collapse(s: &str) -> bool {
    let mut prev_space = true;
    for &b in s.as_bytes() {
        if b.is_ascii() {
            if ascii_space(b) {
                if prev_space || b != b' ' {
                    return true;
                }
                prev_space = true;
            } else {
                prev_space = false;
            }
        } else if unicode_space_lead(b) {
            return needs_collapse_unicode(s);
        } else {
            prev_space = false;
        }
    }
    prev_space && !s.is_empty()
}

fn needs_collapse_unicode(s: &str) -> bool {
    let mut prev_space = true;
    for c in s.chars() {
        if c.is_whitespace() {
            if prev_space || c != ' ' {
                return true;
            }
            prev_space = true;
        } else {
            prev_space = false;
        }
    }
    prev_space && !s.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_paths_agree_with_std() {
        let samples = [
            "",
            " ",
            "a",
            " a",
            "a ",
            "\ta\n",
            "\u{a0}x\u{a0}",
            "é",
            " é ",
            "x\u{0B}",
            "\u{0B}",
            "a  b",
            "a b",
            "a\tb",
            "Zoë Brontë",
            "ÉMILE",
            "o'brien-SMITH jr",
            "ab c",
        ];
        for s in samples {
            assert_eq!(trim(s), s.trim(), "{s:?}");
            assert_eq!(is_blank(s), s.trim().is_empty(), "{s:?}");
            assert_eq!(lowercase(s.into()), s.to_lowercase(), "{s:?}");
            assert_eq!(uppercase(s.into()), s.to_uppercase(), "{s:?}");
            let collapsed = s.split_whitespace().collect::<Vec<_>>().join(" ");
            assert_eq!(needs_collapse(s), collapsed != s, "{s:?}");
        }
        assert_eq!(title_case("o'brien-SMITH jr".into()), "O'Brien-Smith Jr");
        assert_eq!(title_case("émile zoë".into()), "Émile Zoë");
    }

    /// Title case the slow way: every character through the Unicode tables.
    fn reference_title_case(s: &str) -> String {
        let mut out = String::new();
        let mut start = true;
        for c in s.chars() {
            if start {
                out.extend(c.to_uppercase());
            } else {
                out.extend(c.to_lowercase());
            }
            start = c.is_whitespace() || c == '-' || c == '\'' || c == '’';
        }
        out
    }

    #[test]
    fn byte_paths_agree_with_std_on_random_text() {
        let alphabet = [
            "a", "Z", " ", "  ", "-", "'", "’", "\t", "\u{0B}", "\u{a0}", "\u{3000}", "é", "É",
            "ß", "ÿ", "Ÿ", "×", "÷", "ö", "Þ", "þ", "µ", "İ", "Ω", "ω", "中", "ǅ", "x", "\u{85}",
            "\u{1680}", "\u{2009}", "\u{202f}", "\u{205f}", "\u{2028}", "…",
        ];
        let mut rng = fastrand::Rng::with_seed(5);
        for _ in 0..100_000 {
            let len = rng.usize(0..8);
            let s: String = (0..len).map(|_| alphabet[rng.usize(..alphabet.len())]).collect();
            assert_eq!(trim(&s), s.trim(), "{s:?}");
            assert_eq!(is_blank(&s), s.trim().is_empty(), "{s:?}");
            assert_eq!(lowercase(s.as_str().into()), s.to_lowercase(), "{s:?}");
            assert_eq!(uppercase(s.as_str().into()), s.to_uppercase(), "{s:?}");
            assert_eq!(title_case(s.as_str().into()), reference_title_case(&s), "{s:?}");
            let collapsed = s.split_whitespace().collect::<Vec<_>>().join(" ");
            assert_eq!(needs_collapse(&s), collapsed != s, "{s:?}");
            let parts: Vec<&str> = split_ascii(&s, b'-').collect();
            assert_eq!(parts, s.split('-').collect::<Vec<_>>(), "{s:?}");
        }
    }

    #[test]
    fn unchanged_text_stays_borrowed() {
        assert!(matches!(lowercase("abc".into()), Cow::Borrowed(_)));
        assert!(matches!(uppercase("ABC-1".into()), Cow::Borrowed(_)));
    }
}
