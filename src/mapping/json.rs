//! Writing JSON strings straight into a byte buffer: every text value of every row passes
//! through here. Whether a value needs escaping is settled once per row where it can be (see
//! [`Escapes`]), and otherwise checked a word at a time.

/// Whether a row's values may hold bytes JSON must escape (a control character, `"`, `\\`).
///
/// Mapping never adds such a byte: transforms trim, re-case, split, or rebuild from digits,
/// and the mapper's own literals are checked once ([`crate::mapping::Mapper::literals_plain`]).
/// So when a row's raw bytes hold none, neither does any value made from them, and its values
/// are copied without a look; this check of the whole row costs less than one per value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escapes {
    /// Unknown: each value is checked as it is written.
    Possible,
    /// The row was checked and holds none.
    Absent,
}

impl Escapes {
    /// For a row whose raw bytes (all fields, back to back) are `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        if needs_escape(bytes) {
            Escapes::Possible
        } else {
            Escapes::Absent
        }
    }
}

/// A JSON string (quoted, escaped if need be) appended to `out`. Most cells need no escaping:
/// those are copied as they are; the rest go through serde_json.
// Inlined into the encoders: a call per value cost as much as the copying.
#[inline(always)]
pub fn push_str(out: &mut Vec<u8>, s: &str, escapes: Escapes) {
    if escapes == Escapes::Possible && needs_escape(s.as_bytes()) {
        push_escaped(out, s);
        return;
    }
    out.reserve(s.len() + 2);
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

#[inline(never)]
fn push_escaped(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Not zero when a byte of `x` is a control character, `"` or `\`: the bit trick for "has a
/// zero byte" (exact as a yes/no), for the three at once. One test per word: three separate
/// ones cost twice the instructions on every row.
#[inline(always)]
fn escape_marks(x: u64) -> u64 {
    let control = x.wrapping_sub(ONES * 0x20);
    let quote = (x ^ (ONES * u64::from(b'"'))).wrapping_sub(ONES);
    let backslash = (x ^ (ONES * u64::from(b'\\'))).wrapping_sub(ONES);
    (control | quote | backslash) & !x & HIGH
}

/// A control character, `"` or `\`: the bytes JSON will not take as they are.
fn needs_escape(bytes: &[u8]) -> bool {
    // Zero (all control bytes) for a short slice, which `chunks_exact` never hands over.
    let word = |w: &[u8]| <[u8; 8]>::try_from(w).map_or(0, u64::from_le_bytes);
    let mut pairs = bytes.chunks_exact(16);
    for p in &mut pairs {
        if escape_marks(word(&p[..8])) | escape_marks(word(&p[8..])) != 0 {
            return true;
        }
    }
    let rest = pairs.remainder();
    let mut words = rest.chunks_exact(8);
    if words.any(|w| escape_marks(word(w)) != 0) {
        return true;
    }
    words.remainder().iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_only_what_json_needs() {
        let mut out = Vec::new();
        push_str(&mut out, "Zoë's Café", Escapes::Possible);
        push_str(&mut out, "say \"hi\"\n", Escapes::Possible);
        assert_eq!(String::from_utf8(out).unwrap(), r#""Zoë's Café""say \"hi\"\n""#);
        assert_eq!(Escapes::of(b"plain, row"), Escapes::Absent);
        assert_eq!(Escapes::of(b"a\nrow"), Escapes::Possible);
    }

    #[test]
    fn the_word_check_agrees_with_a_byte_check() {
        let naive = |b: &[u8]| b.iter().any(|&c| c < 0x20 || c == b'"' || c == b'\\');
        let mut rng = fastrand::Rng::with_seed(7);
        for len in 0..40 {
            for _ in 0..200 {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| match rng.u8(..10) {
                        0 => rng.u8(..0x21),
                        1 => b'"',
                        2 => b'\\',
                        3 => rng.u8(0x80..),
                        _ => rng.u8(0x21..0x7f),
                    })
                    .collect();
                assert_eq!(needs_escape(&bytes), naive(&bytes), "{bytes:?}");
            }
        }
        assert!(!needs_escape("plain text, no escapes: Brontë".as_bytes()));
    }
}
