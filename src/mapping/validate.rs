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

pub fn check_len(s: &str, max: usize) -> Result<(), String> {
    // No more bytes than allowed characters: no need to count the characters.
    if s.len() <= max {
        return Ok(());
    }
    let n = s.chars().count();
    if n > max {
        Err(format!("is {n} characters, more than the {max} allowed"))
    } else {
        Ok(())
    }
}

/// A pragmatic address check: what a CRM's validator accepts, not all of RFC 5322.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else { return false };
    local_part_ok(local) && domain_ok(domain)
}

/// Letters, digits and the specials RFC 5322 allows unquoted; dots only between characters.
/// One pass, no allocation: this runs for every row.
fn local_part_ok(local: &str) -> bool {
    if local.is_empty() || local.len() > 64 {
        return false;
    }
    // A leading dot, two in a row, or a trailing one.
    let mut prev_dot = true;
    for c in local.chars() {
        let dot = c == '.';
        if (dot && prev_dot) || !allowed(c, &LOCAL_ASCII) {
            return false;
        }
        prev_dot = dot;
    }
    !prev_dot
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

/// ASCII by table; beyond ASCII, any letter or digit (internationalised addresses).
fn allowed(c: char, ascii: &[bool; 128]) -> bool {
    match ascii.get(c as usize) {
        Some(ok) => *ok,
        // Latin-1 letters (accented Western European names), without the Unicode tables.
        None if ('\u{C0}'..='\u{FF}').contains(&c) => c != '×' && c != '÷',
        None => c.is_alphanumeric(),
    }
}

/// Dot-separated labels of letters, digits and inner hyphens (at most 63 bytes each), the
/// last one (the TLD) at least two letters. One pass.
fn domain_ok(domain: &str) -> bool {
    if domain.len() > 253 {
        return false;
    }
    let (mut label_len, mut labels, mut prev, mut tld_alpha) = (0, 0, '.', true);
    for c in domain.chars() {
        if c == '.' {
            if label_len == 0 || prev == '-' {
                return false;
            }
            labels += 1;
            label_len = 0;
            tld_alpha = true;
        } else {
            let first_hyphen = label_len == 0 && c == '-';
            label_len += c.len_utf8();
            if first_hyphen || label_len > 63 || !allowed(c, &LABEL_ASCII) {
                return false;
            }
            tld_alpha &= if c.is_ascii() { c.is_ascii_alphabetic() } else { c.is_alphabetic() };
        }
        prev = c;
    }
    labels >= 1 && label_len >= 2 && prev != '-' && tld_alpha
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
