//! The schema's kinds of value beyond text: numbers, times, addresses, dates in a target's
//! own form, and lists of items. Each checks a value and, where the target needs it, writes
//! it as the target is sent it (a number as JSON writes it, a documented name as the docs
//! spell it). The mapper calls these for the fields that have such a type.

use std::borrow::Cow;
use std::fmt::Write as _;

use chrono::{NaiveDate, NaiveDateTime};

use super::text;
use super::validate::{check_len, is_email};
use super::value::Value;
use crate::schema::{Form, Item, ISO_DATE};

/// Longest number text taken at all (a double has about 17 significant digits).
const MAX_NUMBER_LEN: usize = 40;

/// A decimal number as JSON writes it: `+3` is `3`, `.5` is `0.5`, `007.10` is `7.10`;
/// `limits` (precision, scale) bound its digits. `None`: the text is that already.
pub fn decimal(t: &str, limits: Option<(u8, u8)>) -> Result<Option<String>, String> {
    let s = text::trim(t);
    let not = || format!("`{t}` is not a number like 1234.50");
    if s.is_empty() || s.len() > MAX_NUMBER_LEN {
        return Err(not());
    }
    let (sign, digits) = match s.as_bytes()[0] {
        b'-' => ("-", &s[1..]),
        b'+' => ("", &s[1..]),
        _ => ("", s),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return Err(not());
    }
    let int = int.trim_start_matches('0');
    if let Some((precision, scale)) = limits {
        if frac.len() > usize::from(scale) {
            return Err(format!("`{t}` has more than {scale} decimal places"));
        }
        let whole = usize::from(precision.saturating_sub(scale));
        if int.len() > whole {
            return Err(format!("`{t}` has more than {whole} digits before the point"));
        }
    }
    let int = if int.is_empty() { "0" } else { int };
    let canonical =
        if frac.is_empty() { format!("{sign}{int}") } else { format!("{sign}{int}.{frac}") };
    Ok((canonical != t).then_some(canonical))
}

/// A whole number from `min` to `max` (`12.0` is 12: a spreadsheet's number cell), as JSON
/// writes it. `None`: the text is that already.
pub fn integer(t: &str, min: i64, max: i64) -> Result<Option<String>, String> {
    let s = text::trim(t);
    let whole = match s.split_once('.') {
        Some((w, f)) if !f.is_empty() && f.bytes().all(|b| b == b'0') => w,
        Some(_) => return Err(format!("`{t}` is not a whole number")),
        None => s,
    };
    let n: i64 = whole.parse().map_err(|_| format!("`{t}` is not a whole number"))?;
    if n < min || n > max {
        return Err(format!("`{t}` is not between {min} and {max}"));
    }
    let canonical = n.to_string();
    Ok((canonical != t).then_some(canonical))
}

/// A time of day as `HH:MM` (`9:05` and `09:05:00` are `09:05`). `None`: the text is that.
pub fn time(t: &str) -> Result<Option<String>, String> {
    let s = text::trim(t);
    let not = || format!("`{t}` is not a time like 15:00");
    let mut parts = s.split(':');
    let (h, m, sec) = (parts.next(), parts.next(), parts.next());
    if parts.next().is_some() {
        return Err(not());
    }
    let num = |p: Option<&str>, max: u32| {
        p.filter(|p| (1..=2).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<u32>().ok())
            .filter(|n| *n <= max)
    };
    let (Some(h), Some(m)) = (num(h, 23), num(m, 59)) else { return Err(not()) };
    if sec.is_some() && num(sec, 59) != Some(0) {
        return Err(format!("`{t}` has seconds; the target takes hours and minutes"));
    }
    let canonical = format!("{h:02}:{m:02}");
    Ok((canonical != t).then_some(canonical))
}

/// An absolute `http://` or `https://` address without spaces.
pub fn url(t: &str) -> Result<(), String> {
    let s = text::trim(t);
    let lower = s.get(..8).map(str::to_ascii_lowercase).unwrap_or_default();
    let rest = if lower.starts_with("https://") {
        &s[8..]
    } else if lower.starts_with("http://") {
        &s[7..]
    } else {
        return Err(format!("`{t}` is not an http:// or https:// address"));
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || s.chars().any(char::is_whitespace) {
        return Err(format!("`{t}` is not an http:// or https:// address"));
    }
    Ok(())
}

/// A date written in `form` (strftime): an ISO-8601 date (or date and time) is rewritten, a
/// text already in `form` is kept. `Ok(None)`: keep the text as it is; `Err` names the forms
/// it could be written in.
pub fn date_in(t: &str, form: &str) -> Result<Option<String>, String> {
    let s = text::trim(t);
    let iso = NaiveDate::parse_from_str(s, ISO_DATE)
        .map(|d| d.and_hms_opt(0, 0, 0))
        .ok()
        .flatten()
        .or_else(|| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").ok());
    if let Some(at) = iso {
        return write_date(at, form).map(Some);
    }
    if NaiveDate::parse_from_str(s, form).is_ok() || NaiveDateTime::parse_from_str(s, form).is_ok()
    {
        return Ok(None);
    }
    Err(format!(
        "`{t}` is not a date written {} or yyyy-mm-dd; add a date:<format> transform",
        super::format_in_words(form)
    ))
}

/// `at` written in `form`; a format chrono cannot write is an error, never a panic.
pub fn write_date(at: NaiveDateTime, form: &str) -> Result<String, String> {
    let mut out = String::new();
    write!(out, "{}", at.format(form))
        .map_err(|_| format!("dates cannot be written as `{form}`"))?;
    Ok(out)
}

/// A list field's value: a text becomes the list it holds (split on the form's separator
/// when the form joins its values, else one value), and each value is checked as `item`
/// says; documented names are written as the docs spell them.
pub fn list(value: &mut Value<'_>, item: Item, form: Form) -> Result<(), String> {
    if let Value::Text(t) = value {
        let items: Vec<Cow<'_, str>> = match form {
            Form::Joined(sep) => split(std::mem::take(t), sep),
            _ => vec![trimmed(std::mem::take(t))],
        };
        *value = Value::List(items);
    }
    let Value::List(items) = value else { return Ok(()) };
    items.retain(|i| !text::is_blank(i));
    if items.is_empty() {
        return Err("holds no value".into());
    }
    for i in items.iter_mut() {
        check_item(i, item)?;
    }
    Ok(())
}

fn trimmed(t: Cow<'_, str>) -> Cow<'_, str> {
    match t {
        Cow::Borrowed(b) => Cow::Borrowed(text::trim(b)),
        Cow::Owned(o) => Cow::Owned(o.trim().to_string()),
    }
}

fn split(t: Cow<'_, str>, sep: u8) -> Vec<Cow<'_, str>> {
    match t {
        Cow::Borrowed(b) => {
            text::split_ascii(b, sep).map(|p| Cow::Borrowed(text::trim(p))).collect()
        }
        Cow::Owned(o) => {
            text::split_ascii(&o, sep).map(|p| Cow::Owned(text::trim(p).to_string())).collect()
        }
    }
}

/// One value of a list, checked (and respelled) in place.
fn check_item(value: &mut Cow<'_, str>, item: Item) -> Result<(), String> {
    match item {
        Item::Text { max_len: Some(max) } => check_len(value, max),
        Item::Text { max_len: None } => Ok(()),
        Item::Email if is_email(text::trim(value)) => Ok(()),
        Item::Email => Err(format!("`{value}` is not an email address")),
        Item::OneOf(allowed) => {
            *value = Cow::Borrowed(documented(value, allowed)?);
            Ok(())
        }
        Item::Path { separator, level_max } => path(value, separator, level_max),
        Item::Task(types) => {
            let Some((kind, description)) = value.split_once(':') else {
                return Err(format!(
                    "`{value}` is not a task written `Type: description` (types: {})",
                    types.join(", ")
                ));
            };
            let description = description.trim();
            if description.is_empty() {
                return Err(format!("task `{value}` has no description"));
            }
            let kind = documented(kind, types)?;
            *value = Cow::Owned(format!("{kind}: {description}"));
            Ok(())
        }
    }
}

/// Levels joined by `separator` (a territory path), none empty, each at most `level_max`
/// characters.
pub fn path(t: &str, separator: u8, level_max: usize) -> Result<(), String> {
    for level in text::split_ascii(t, separator) {
        let level = text::trim(level);
        if level.is_empty() {
            return Err(format!("`{t}` has an empty level"));
        }
        check_len(level, level_max).map_err(|e| format!("level `{level}` {e}"))?;
    }
    Ok(())
}

/// The documented spelling of `value` (compared without case or surrounding spaces).
fn documented(value: &str, allowed: &'static [&'static str]) -> Result<&'static str, String> {
    let v = text::trim(value);
    allowed
        .iter()
        .find(|a| a.eq_ignore_ascii_case(v))
        .copied()
        .ok_or_else(|| format!("`{v}` is not one of {}", allowed.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_written_as_json_writes_numbers() {
        let d = |t| decimal(t, Some((18, 4)));
        assert_eq!(d("12.50"), Ok(None));
        assert_eq!(d(" +007.5 "), Ok(Some("7.5".into())));
        assert_eq!(d(".25"), Ok(Some("0.25".into())));
        assert_eq!(d("-3"), Ok(None));
        assert_eq!(d("5."), Ok(Some("5".into())));
        assert!(d("1.23456").unwrap_err().contains("more than 4 decimal places"));
        assert!(d("123456789012345").unwrap_err().contains("more than 14 digits"));
        for bad in ["", "12,50", "£3", "1e5", "-", ".", "1.2.3", "--1"] {
            assert!(d(bad).is_err(), "{bad}");
        }
        assert_eq!(decimal("0.123456789", None), Ok(None));
    }

    #[test]
    fn whole_numbers_times_and_addresses() {
        assert_eq!(integer("10", 0, 99), Ok(None));
        assert_eq!(integer("10.00", 0, 99), Ok(Some("10".into())));
        assert!(integer("10.5", 0, 99).is_err() && integer("100", 0, 99).is_err());
        assert!(integer("99999999999999999999", 0, i64::MAX).is_err());
        assert_eq!(time("15:00"), Ok(None));
        assert_eq!(time("9:05"), Ok(Some("09:05".into())));
        assert_eq!(time("09:05:00"), Ok(Some("09:05".into())));
        for bad in ["24:00", "9", "9:5:1", "nine", "12:60", "1:2:3:4"] {
            assert!(time(bad).is_err(), "{bad}");
        }
        assert!(url("https://cdn.example.com/a.png").is_ok());
        assert!(url("HTTP://x.io").is_ok());
        for bad in ["ftp://x", "www.example.com", "https://", "https://a b"] {
            assert!(url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates_are_written_in_the_targets_form() {
        assert_eq!(date_in("1999-06-28", "%d/%m/%Y"), Ok(Some("28/06/1999".into())));
        assert_eq!(date_in("28/06/1999", "%d/%m/%Y"), Ok(None), "already in that form");
        assert!(date_in("June 28", "%d/%m/%Y").unwrap_err().contains("dd/mm/yyyy"));
        let at = NaiveDate::from_ymd_opt(2000, 1, 2).unwrap().and_hms_opt(0, 0, 0).unwrap();
        assert!(write_date(at, "%Q").is_err(), "an unknown directive is an error, not a panic");
    }

    #[test]
    fn lists_split_as_their_form_joins_and_respell_documented_names() {
        let days = Item::OneOf(&["Sunday", "Monday"]);
        let mut v = Value::text("monday | SUNDAY");
        list(&mut v, days, Form::Joined(b'|')).unwrap();
        assert_eq!(v, Value::List(vec!["Monday".into(), "Sunday".into()]));
        let mut v = Value::text("Funday");
        assert!(list(&mut v, days, Form::Joined(b'|')).unwrap_err().contains("not one of"));
        let mut v = Value::text("A|B");
        list(&mut v, Item::Text { max_len: None }, Form::Objects("Name")).unwrap();
        assert_eq!(v, Value::List(vec!["A|B".into()]), "only a joined form splits a cell");
        let mut v = Value::List(vec!["photo: Shelf front".into()]);
        list(&mut v, Item::Task(&["Photo", "Note"]), Form::Tasks).unwrap();
        assert_eq!(v, Value::List(vec!["Photo: Shelf front".into()]));
        let mut v = Value::List(vec!["Audit: x".into()]);
        assert!(list(&mut v, Item::Task(&["Photo"]), Form::Tasks).is_err());
        let mut v = Value::text("North/Leeds");
        let path = Item::Path { separator: b'/', level_max: 4 };
        assert!(list(&mut v, path, Form::Array).unwrap_err().contains("level `North`"));
        let mut v = Value::text("North//Leeds");
        let wide = Item::Path { separator: b'/', level_max: 80 };
        assert!(list(&mut v, wide, Form::Array).unwrap_err().contains("empty level"));
        let mut v = Value::text("|");
        assert!(list(&mut v, days, Form::Joined(b'|')).is_err(), "no value at all");
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_read_without_panic(t in "\\PC{0,24}") {
            let _ = decimal(&t, Some((18, 4)));
            let _ = integer(&t, 0, 100);
            let _ = time(&t);
            let _ = url(&t);
            let _ = date_in(&t, "%d/%m/%Y");
            let mut v = Value::text(t.clone());
            let _ = list(&mut v, Item::Task(&["Photo"]), Form::Joined(b'|'));
        }

        #[test]
        fn a_canonical_decimal_reads_back_the_same(int in 0u64..1_000_000_000_000, frac in 0u32..10_000) {
            let text = format!("{int}.{frac:04}");
            let once = decimal(&text, Some((18, 4))).unwrap().unwrap_or(text.clone());
            proptest::prop_assert_eq!(decimal(&once, Some((18, 4))).unwrap(), None);
            let parsed: f64 = once.parse().unwrap();
            proptest::prop_assert!((parsed - text.parse::<f64>().unwrap()).abs() < 1e-9 * parsed.max(1.0));
        }
    }
}
