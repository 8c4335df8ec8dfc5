//! Validators (`required`, `email`, `max_len:N`, `regex:...`) and the checks they share with
//! the target schemas.

use super::phone;
use super::value::Value;

#[derive(Debug, Clone)]
pub enum Validator {
    Required,
    Email,
    Phone,
    Uuid,
    Date,
    MaxLen(usize),
    OneOf(Vec<String>),
    /// Anchored: the whole value must match.
    Regex(regex::Regex),
}

impl PartialEq for Validator {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Validator::Regex(a), Validator::Regex(b)) => a.as_str() == b.as_str(),
            (Validator::MaxLen(a), Validator::MaxLen(b)) => a == b,
            (Validator::OneOf(a), Validator::OneOf(b)) => a == b,
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }
}

impl std::fmt::Display for Validator {
    /// As the config writes it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Validator::Required => f.write_str("required"),
            Validator::Email => f.write_str("email"),
            Validator::Phone => f.write_str("phone"),
            Validator::Uuid => f.write_str("uuid"),
            Validator::Date => f.write_str("date"),
            Validator::MaxLen(n) => write!(f, "max_len:{n}"),
            Validator::OneOf(o) => write!(f, "one_of:{}", o.join("|")),
            // Shown as written, without the anchors added when it was compiled.
            Validator::Regex(re) => {
                let s = re.as_str();
                write!(
                    f,
                    "regex:{}",
                    s.strip_prefix("^(?:").and_then(|s| s.strip_suffix(")$")).unwrap_or(s)
                )
            }
        }
    }
}

impl Validator {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (name, arg) = match text.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (text, None),
        };
        match (name, arg) {
            ("required", None) => Ok(Validator::Required),
            ("email", None) => Ok(Validator::Email),
            ("phone", None) => Ok(Validator::Phone),
            ("uuid", None) => Ok(Validator::Uuid),
            ("date", None) => Ok(Validator::Date),
            ("max_len", Some(n)) => n
                .trim()
                .parse()
                .map(Validator::MaxLen)
                .map_err(|_| format!("max_len needs a whole number, not `{n}`")),
            ("one_of", Some(list)) if !list.is_empty() => {
                Ok(Validator::OneOf(list.split('|').map(String::from).collect()))
            }
            ("regex", Some(re)) => regex::Regex::new(&format!("^(?:{re})$"))
                .map(Validator::Regex)
                .map_err(|e| format!("regex `{re}` does not compile: {}", e.to_string().replace('\n', " "))),
            ("max_len" | "one_of" | "regex", _) => Err(format!("validator `{name}` needs an argument, e.g. {name}:...")),
            ("required" | "email" | "phone" | "uuid" | "date", Some(_)) => {
                Err(format!("validator `{name}` takes no `:` argument"))
            }
            (other, _) => Err(format!(
                "unknown validator `{other}` (known: required, email, phone, uuid, date, max_len:N, one_of:a|b, regex:<re>)"
            )),
        }
    }

    /// Checks a value; `required` is the only validator that looks at an empty one.
    pub fn check(&self, value: Option<&Value>) -> Result<(), String> {
        let value = match (self, value) {
            (Validator::Required, v) if v.is_none_or(Value::is_empty) => {
                return Err("is required".into())
            }
            (_, None) => return Ok(()),
            (_, Some(v)) if v.is_empty() => return Ok(()),
            (_, Some(v)) => v,
        };
        for item in value.items() {
            self.check_text(item)?;
        }
        Ok(())
    }

    fn check_text(&self, s: &str) -> Result<(), String> {
        let ok = match self {
            Validator::Required => true,
            Validator::Email => is_email(s),
            Validator::Phone => phone::to_e164(s, phone::GB).is_some(),
            Validator::Uuid => is_uuid(s),
            Validator::Date => is_iso_date(s),
            Validator::MaxLen(n) => return check_len(s, *n),
            Validator::OneOf(options) => options.iter().any(|o| o == s),
            Validator::Regex(re) => re.is_match(s),
        };
        if ok {
            return Ok(());
        }
        Err(match self {
            Validator::Email => format!("`{s}` is not an email address"),
            Validator::Phone => format!("`{s}` is not a phone number"),
            Validator::Uuid => format!("`{s}` is not a UUID"),
            Validator::Date => format!("`{s}` is not an ISO date (YYYY-MM-DD)"),
            Validator::OneOf(o) => format!("`{s}` is not one of {}", o.join(", ")),
            Validator::Regex(re) => format!("`{s}` does not match {}", re.as_str()),
            Validator::Required | Validator::MaxLen(_) => String::new(),
        })
    }
}

// Inlined where it is called: most values have no more bytes than allowed characters, and
// that one comparison cost less than the call (callgrind).
#[inline]
pub fn check_len(s: &str, max: usize) -> Result<(), String> {
    // No more bytes than allowed characters: no need to count the characters.
    if s.len() <= max {
        return Ok(());
    }
    count_len(s, max)
}

#[inline(never)]
fn count_len(s: &str, max: usize) -> Result<(), String> {
    let n = s.chars().count();
    if n > max {
        Err(format!("is {n} characters, more than the {max} allowed"))
    } else {
        Ok(())
    }
}

/// A pragmatic address check: what a CRM's validator accepts, not all of RFC 5322.
///
/// One pass over the bytes, no allocation: this runs for every row. `@` is allowed in neither
/// part, so the first one found must be the only one.
pub fn is_email(s: &str) -> bool {
    let b = s.as_bytes();
    // The local part: letters, digits and the specials RFC 5322 allows unquoted; dots only
    // between characters.
    let mut i = 0;
    let mut prev_dot = true;
    loop {
        let Some(&c) = b.get(i) else { return false };
        if c == b'@' {
            break;
        }
        if c.is_ascii() {
            let dot = c == b'.';
            if (dot && prev_dot) || !LOCAL_ASCII[usize::from(c)] {
                return false;
            }
            prev_dot = dot;
            i += 1;
        } else {
            let wide = wide_at(s, i);
            if !wide.alnum {
                return false;
            }
            prev_dot = false;
            i += wide.len;
        }
    }
    if i == 0 || i > 64 || prev_dot {
        return false;
    }
    domain_ok(s, i + 1)
}

/// Dot-separated labels of letters, digits and inner hyphens (at most 63 bytes each), the
/// last one (the TLD) at least two letters: the text of `s` from byte `from` on.
fn domain_ok(s: &str, from: usize) -> bool {
    let b = s.as_bytes();
    if b.len() - from > 253 {
        return false;
    }
    let (mut label_len, mut labels, mut prev, mut tld_alpha) = (0, 0, b'.', true);
    let mut i = from;
    while let Some(&c) = b.get(i) {
        if c == b'.' {
            if label_len == 0 || prev == b'-' {
                return false;
            }
            labels += 1;
            label_len = 0;
            tld_alpha = true;
            prev = c;
            i += 1;
            continue;
        }
        if c.is_ascii() {
            if (label_len == 0 && c == b'-') || !LABEL_ASCII[usize::from(c)] {
                return false;
            }
            label_len += 1;
            tld_alpha &= c.is_ascii_alphabetic();
            prev = c;
            i += 1;
        } else {
            let wide = wide_at(s, i);
            if !wide.alnum {
                return false;
            }
            label_len += wide.len;
            tld_alpha &= wide.alpha;
            prev = 0x80;
            i += wide.len;
        }
        if label_len > 63 {
            return false;
        }
    }
    labels >= 1 && label_len >= 2 && prev != b'-' && tld_alpha
}

/// The ASCII characters allowed unquoted in an address's local part.
const LOCAL_ASCII: [bool; 128] = ascii_set(b"!#$%&'*+-/=?^_`{|}~.");
/// The ASCII characters allowed in a domain label.
const LABEL_ASCII: [bool; 128] = ascii_set(b"-");

/// ASCII letters and digits plus `extra`, as a lookup table.
const fn ascii_set(extra: &[u8]) -> [bool; 128] {
    let mut set = [false; 128];
    let mut b = 0;
    while b < 128 {
        set[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        set[extra[i] as usize] = true;
        i += 1;
    }
    set
}

/// A character beyond ASCII, as an address sees it.
struct Wide {
    /// A letter or digit (internationalised addresses allow them).
    alnum: bool,
    alpha: bool,
    /// Its length in bytes.
    len: usize,
}

/// The non-ASCII character starting at byte `i` of `s`. Latin-1 letters (accented Western
/// European names, `C3 xx` in UTF-8) are told apart without the Unicode tables.
fn wide_at(s: &str, i: usize) -> Wide {
    let b = s.as_bytes();
    if let (Some(0xC3), Some(&next)) = (b.get(i), b.get(i + 1)) {
        // U+00C0..U+00FF: all letters but `×` and `÷`.
        let letter = next != 0x97 && next != 0xB7;
        return Wide { alnum: letter, alpha: letter, len: 2 };
    }
    match s.get(i..).and_then(|t| t.chars().next()) {
        Some(c) => Wide { alnum: c.is_alphanumeric(), alpha: c.is_alphabetic(), len: c.len_utf8() },
        None => Wide { alnum: false, alpha: false, len: 1 },
    }
}

pub fn is_uuid(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::try_parse(s).is_ok()
}

pub fn is_iso_date(s: &str) -> bool {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
        || chrono::DateTime::parse_from_rfc3339(s).is_ok()
        || chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(v: &str, value: &str) -> Result<(), String> {
        Validator::parse(v).unwrap().check(Some(&Value::Text(value.into())))
    }

    #[test]
    fn each_validator() {
        assert!(check("required", " ").is_err());
        assert!(Validator::Required.check(None).is_err());
        assert!(check("required", "x").is_ok());
        assert!(check("email", "a.b+c@example.co.uk").is_ok());
        for good in ["zoë.brontë@example.co.uk", "o'neill+x@a-b.io", "a@b.cd", "àÿ@c.com"] {
            assert!(check("email", good).is_ok(), "{good}");
        }
        for bad in [
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "@c.com",
            "a@c..com",
            "a@-c.com",
            "a@c-.com",
            ".a@c.com",
            "a.@c.com",
            "a..b@c.com",
            "a@.c.com",
            "a@c.com.",
            "a@c.c0m",
            "a@c.c",
            "a×b@c.com",
            "a÷b@c.com",
        ] {
            assert!(check("email", bad).is_err(), "{bad}");
        }
        assert!(check("phone", "07700 900123").is_ok());
        assert!(check("phone", "123").is_err());
        assert!(check("uuid", "6f1c7b4e-2d7a-4c1e-9b9a-3d2f5e6a7b8c").is_ok());
        assert!(check("uuid", "6f1c7b4e2d7a4c1e9b9a3d2f5e6a7b8c").is_err());
        assert!(check("date", "1980-01-31").is_ok());
        assert!(check("date", "31/01/1980").is_err());
        assert!(check("max_len:3", "abc").is_ok());
        assert!(check("max_len:3", "abcd").is_err());
        assert!(check("max_len:3", "äöü").is_ok());
        assert!(check("one_of:a|b", "b").is_ok());
        assert!(check("one_of:a|b", "c").is_err());
        assert!(check("regex:[A-Z]{2}\\d+", "AB12").is_ok());
        assert!(check("regex:[A-Z]{2}\\d+", "xAB12").is_err());
    }

    /// The char-by-char check `is_email` replaced, kept as its oracle.
    fn reference_is_email(s: &str) -> bool {
        let Some((local, domain)) = s.rsplit_once('@') else { return false };
        let allowed = |c: char, extra: &str| {
            c.is_ascii_alphanumeric()
                || extra.contains(c)
                || (!c.is_ascii() && c.is_alphanumeric() && c != '×' && c != '÷')
        };
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && local.chars().all(|c| allowed(c, "!#$%&'*+-/=?^_`{|}~."))
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..");
        let labels: Vec<&str> = domain.split('.').collect();
        let tld = labels.last().copied().unwrap_or("");
        local_ok
            && domain.len() <= 253
            && labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| allowed(c, "-"))
            })
            && tld.len() >= 2
            && tld.chars().all(char::is_alphabetic)
    }

    #[test]
    fn the_byte_check_agrees_with_the_char_check() {
        let alphabet =
            ["a", "Z", "0", "@", ".", "-", "+", "é", "ß", "×", "÷", "Ω", "中", "²", " ", "_"];
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..200_000 {
            let len = rng.usize(1..16);
            let s: String = (0..len).map(|_| alphabet[rng.usize(..alphabet.len())]).collect();
            assert_eq!(is_email(&s), reference_is_email(&s), "{s:?}");
        }
        for s in ["ann.brontë0@example.co.uk", "a@b.cd", "a@b.c0", "x@é.com", "x@a.é²"] {
            assert_eq!(is_email(s), reference_is_email(s), "{s:?}");
        }
    }

    #[test]
    fn empty_values_only_fail_required() {
        assert!(check("email", "").is_ok());
        assert!(Validator::Email.check(None).is_ok());
    }

    #[test]
    fn parse_errors() {
        for bad in ["nope", "max_len", "max_len:x", "regex:(", "email:1", "one_of:"] {
            assert!(Validator::parse(bad).is_err(), "{bad}");
        }
    }
}
