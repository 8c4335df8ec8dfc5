//! Text helpers with ASCII fast paths. Every mapped cell passes through several of these, and
//! most cells of a spreadsheet export are short ASCII with nothing to trim or change; the
//! Unicode-aware `str` methods are kept for the cells that need them.

use std::borrow::Cow;

/// Whether `b` might start or end white space: any control byte, space, or non-ASCII byte
/// (Unicode white space such as U+00A0 is multi-byte).
fn maybe_space(b: u8) -> bool {
    b <= b' ' || b >= 0x80
}

/// `str::trim`, without its char-by-char scan when both ends are plain ASCII.
pub fn trim(s: &str) -> &str {
    match s.as_bytes() {
        [first, .., last] if !maybe_space(*first) && !maybe_space(*last) => s,
        [only] if !maybe_space(*only) => s,
        _ => s.trim(),
    }
}

/// Empty or only white space.
pub fn is_blank(s: &str) -> bool {
    match s.as_bytes().first() {
        None => true,
        Some(b) if !maybe_space(*b) => false,
        Some(_) => s.trim().is_empty(),
    }
}

/// Lowercase, borrowed when nothing changes.
pub fn lowercase(s: Cow<'_, str>) -> Cow<'_, str> {
    if s.is_ascii() {
        if !s.bytes().any(|b| b.is_ascii_uppercase()) {
            return s;
        }
        return Cow::Owned(s.to_ascii_lowercase());
    }
    if !s.chars().any(char::is_uppercase) {
        return s;
    }
    Cow::Owned(s.to_lowercase())
}

/// Uppercase, borrowed when nothing changes.
pub fn uppercase(s: Cow<'_, str>) -> Cow<'_, str> {
    if s.is_ascii() {
        if !s.bytes().any(|b| b.is_ascii_lowercase()) {
            return s;
        }
        return Cow::Owned(s.to_ascii_uppercase());
    }
    if !s.chars().any(char::is_lowercase) {
        return s;
    }
    Cow::Owned(s.to_uppercase())
}

/// `o'brien-smith` -> `O'Brien-Smith`: each word's first letter up, the rest down. An owned
/// text is changed in place when it is ASCII.
pub fn title_case(s: Cow<'_, str>) -> Cow<'_, str> {
    let word_break = |c: char| c.is_whitespace() || c == '-' || c == '\'' || c == '’';
    if s.is_ascii() {
        let mut bytes = s.into_owned().into_bytes();
        let mut start = true;
        for b in bytes.iter_mut() {
            if start {
                b.make_ascii_uppercase();
            } else {
                b.make_ascii_lowercase();
            }
            start = word_break(*b as char);
        }
        // ASCII in, ASCII out.
        return Cow::Owned(String::from_utf8(bytes).unwrap_or_default());
    }
    let mut out = String::with_capacity(s.len() + 4);
    let mut start = true;
    for c in s.chars() {
        match (c.is_ascii(), start) {
            (true, true) => out.push(c.to_ascii_uppercase()),
            (true, false) => out.push(c.to_ascii_lowercase()),
            (false, true) => out.extend(c.to_uppercase()),
            (false, false) => out.extend(c.to_lowercase()),
        }
        start = word_break(c);
    }
    Cow::Owned(out)
}

/// Whether collapsing would change `s`: runs of white space, any but a plain space, or white
/// space at either end.
pub fn needs_collapse(s: &str) -> bool {
    if s.is_ascii() {
        let b = s.as_bytes();
        let odd = |c: &u8| c.is_ascii_whitespace() && *c != b' ' || *c == 0x0B;
        return b.first() == Some(&b' ')
            || b.last() == Some(&b' ')
            || b.iter().any(odd)
            || b.windows(2).any(|w| w == b"  ");
    }
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

    #[test]
    fn unchanged_text_stays_borrowed() {
        assert!(matches!(lowercase("abc".into()), Cow::Borrowed(_)));
        assert!(matches!(uppercase("ABC-1".into()), Cow::Borrowed(_)));
    }
}
