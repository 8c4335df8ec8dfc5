//! Transforms (`trim`, `phone_e164:US`, `date:%d/%m/%Y`, ...), applied in the order written.

use std::borrow::Cow;

use chrono::{NaiveDate, NaiveDateTime};

use super::phone::{self, Region};
use super::text;
use super::value::{parse_bool, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transform {
    Trim,
    Lowercase,
    Uppercase,
    CollapseSpaces,
    TitleCase,
    PhoneE164(Region),
    /// strftime format of the source; the output is ISO-8601.
    Date(String),
    Bool,
    Split(String),
    Default(String),
}

impl std::fmt::Display for Transform {
    /// As the config writes it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transform::Trim => f.write_str("trim"),
            Transform::Lowercase => f.write_str("lowercase"),
            Transform::Uppercase => f.write_str("uppercase"),
            Transform::CollapseSpaces => f.write_str("collapse_spaces"),
            Transform::TitleCase => f.write_str("title_case"),
            Transform::PhoneE164(r) if r.code == "GB" => f.write_str("phone_e164"),
            Transform::PhoneE164(r) => write!(f, "phone_e164:{}", r.code),
            Transform::Date(fmt) => write!(f, "date:{fmt}"),
            Transform::Bool => f.write_str("bool"),
            Transform::Split(sep) => write!(f, "split:{sep}"),
            Transform::Default(text) => write!(f, "default:{text}"),
        }
    }
}

impl Transform {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (name, arg) = match text.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (text, None),
        };
        let no_arg = |t: Transform| match arg {
            None => Ok(t),
            Some(_) => Err(format!("transform `{name}` takes no `:` argument")),
        };
        match name {
            "trim" => no_arg(Transform::Trim),
            "lowercase" => no_arg(Transform::Lowercase),
            "uppercase" => no_arg(Transform::Uppercase),
            "collapse_spaces" => no_arg(Transform::CollapseSpaces),
            "title_case" => no_arg(Transform::TitleCase),
            "bool" => no_arg(Transform::Bool),
            "phone_e164" => match arg {
                None => Ok(Transform::PhoneE164(phone::GB)),
                Some(r) => phone::region(r).map(Transform::PhoneE164).ok_or_else(|| {
                    format!("phone_e164 region `{r}` is not one of {}", phone::known_regions().join(", "))
                }),
            },
            "date" => match arg {
                Some(f) if !f.is_empty() => {
                    if chrono::format::StrftimeItems::new(f).any(|i| matches!(i, chrono::format::Item::Error)) {
                        Err(format!("date format `{f}` is not a valid strftime format"))
                    } else {
                        Ok(Transform::Date(f.to_string()))
                    }
                }
                _ => Err("transform `date` needs a format, e.g. date:%d/%m/%Y".into()),
            },
            "split" => match arg {
                Some(sep) if !sep.is_empty() => Ok(Transform::Split(sep.to_string())),
                _ => Err("transform `split` needs a separator, e.g. split:|".into()),
            },
            "default" => Ok(Transform::Default(arg.unwrap_or_default().to_string())),
            other => Err(format!(
                "unknown transform `{other}` (known: trim, lowercase, uppercase, collapse_spaces, title_case, phone_e164[:REGION], date:<format>, bool, split:<sep>, default:<text>)"
            )),
        }
    }

    /// Applies the transform; an empty value passes through untouched except for `default`.
    pub fn apply<'a>(&self, mut value: Value<'a>) -> Result<Value<'a>, String> {
        self.apply_to(&mut value)?;
        Ok(value)
    }

    /// [`Transform::apply`] in place: the mapper runs every transform of every row, and
    /// changing the value where it is costs less than moving it in and out.
    #[inline]
    pub fn apply_to<'a>(&self, value: &mut Value<'a>) -> Result<(), String> {
        match (self, &mut *value) {
            (Transform::Default(d), v) => {
                if v.is_empty() {
                    *v = Value::text(d.clone());
                }
                Ok(())
            }
            (Transform::Split(sep), Value::Text(t)) => {
                let list = split(std::mem::take(t), sep);
                *value = Value::List(list);
                Ok(())
            }
            (_, v) if v.is_empty() => Ok(()),
            (t, Value::Text(s)) => t.apply_text(s),
            (t, Value::List(items)) => items.iter_mut().try_for_each(|s| t.apply_text(s)),
        }
    }

    /// One text through the transform; it stays borrowed whenever the result is a slice of it.
    #[inline(always)]
    fn apply_text<'a>(&self, s: &mut Cow<'a, str>) -> Result<(), String> {
        match self {
            Transform::Trim => match s {
                Cow::Borrowed(b) => *b = text::trim(b),
                Cow::Owned(o) => {
                    let t = text::trim(o);
                    if t.len() != o.len() {
                        *o = t.to_string();
                    }
                }
            },
            Transform::Lowercase => *s = text::lowercase(std::mem::take(s)),
            Transform::Uppercase => *s = text::uppercase(std::mem::take(s)),
            Transform::CollapseSpaces => {
                if text::needs_collapse(s) {
                    *s = Cow::Owned(s.split_whitespace().collect::<Vec<_>>().join(" "));
                }
            }
            Transform::TitleCase => *s = text::title_case(std::mem::take(s)),
            Transform::PhoneE164(region) => match phone::to_e164(s, *region) {
                Some(p) => *s = Cow::Owned(p),
                None => return Err(self.refusal(s)),
            },
            Transform::Date(fmt) => match to_iso_date(s, fmt) {
                Some(d) => *s = Cow::Owned(d),
                None => return Err(self.refusal(s)),
            },
            Transform::Bool => {
                *s = Cow::Borrowed(match parse_bool(s) {
                    Some(true) => "true",
                    Some(false) => "false",
                    None => return Err(self.refusal(s)),
                })
            }
            Transform::Split(_) | Transform::Default(_) => {}
        }
        Ok(())
    }

    /// Why the transform refused `s`. Kept out of line: refusals are rare, and the messages'
    /// formatting made the hot path above slower.
    #[cold]
    #[inline(never)]
    fn refusal(&self, s: &str) -> String {
        match self {
            Transform::PhoneE164(region) => {
                format!("`{s}` is not a phone number ({} by default)", region.code)
            }
            Transform::Date(fmt) => {
                format!("`{s}` is not a date written {}", format_in_words(fmt))
            }
            Transform::Bool => format!("`{s}` is not a yes/no value"),
            _ => format!("`{s}` was refused"),
        }
    }
}

/// A strftime format as people write it: `%d/%m/%Y` is `dd/mm/yyyy`, `%Y-%m-%dT%H:%M` is
/// `yyyy-mm-ddThh:mm`. A directive without a common written form is kept as it is.
pub fn format_in_words(fmt: &str) -> String {
    let mut out = String::with_capacity(fmt.len() + 4);
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(d) = chars.next() else {
            out.push('%');
            break;
        };
        out.push_str(match d {
            'd' => "dd",
            'e' => "d",
            'm' => "mm",
            'Y' => "yyyy",
            'y' => "yy",
            'b' | 'h' => "mon",
            'B' => "month",
            'a' => "day",
            'A' => "weekday",
            'H' | 'I' => "hh",
            'M' => "mm",
            'S' => "ss",
            'p' => "AM/PM",
            '%' => "%",
            other => {
                out.push('%');
                out.push(other);
                continue;
            }
        });
    }
    out
}

/// `A | B||C` -> `[A, B, C]`, borrowing from the text when it is borrowed.
fn split<'a>(t: Cow<'a, str>, sep: &str) -> Vec<Cow<'a, str>> {
    match t {
        Cow::Borrowed(b) => parts(b, sep, Cow::Borrowed),
        Cow::Owned(o) => parts(&o, sep, |s| Cow::Owned(s.to_string())),
    }
}

/// The trimmed, non-empty parts of `s`, each through `item`. A one-byte separator (the usual
/// `|`) is found a byte at a time, not by a substring search.
fn parts<'s, T>(s: &'s str, sep: &str, item: impl Fn(&'s str) -> T) -> Vec<T> {
    let keep = |p: &&str| !p.is_empty();
    match sep.as_bytes() {
        [b] if b.is_ascii() => {
            text::split_ascii(s, *b).map(text::trim).filter(keep).map(item).collect()
        }
        _ => s.split(sep).map(text::trim).filter(keep).map(item).collect(),
    }
}

fn to_iso_date(s: &str, fmt: &str) -> Option<String> {
    let s = s.trim();
    if let Ok(d) = NaiveDate::parse_from_str(s, fmt) {
        return Some(d.format("%Y-%m-%d").to_string());
    }
    if let Ok(d) = NaiveDateTime::parse_from_str(s, fmt) {
        return Some(d.format("%Y-%m-%dT%H:%M:%S").to_string());
    }
    // Already ISO-8601 (a workbook's date cell reads so): kept as it is.
    let iso = NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
        || NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").is_ok();
    iso.then(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(t: &str, v: &'static str) -> Result<Value<'static>, String> {
        Transform::parse(t).unwrap().apply(Value::text(v))
    }

    fn text(t: &str, v: &'static str) -> String {
        match run(t, v).unwrap() {
            Value::Text(s) => s.into_owned(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn date_formats_read_as_people_write_them() {
        assert_eq!(format_in_words("%d/%m/%Y"), "dd/mm/yyyy");
        assert_eq!(format_in_words("%Y-%m-%dT%H:%M:%S"), "yyyy-mm-ddThh:mm:ss");
        assert_eq!(format_in_words("%e %B %Y"), "d month yyyy");
        assert_eq!(format_in_words("%j%"), "%j%", "no common word: kept");
        let err = run("date:%d/%m/%Y", "1980-31-01").unwrap_err();
        assert_eq!(err, "`1980-31-01` is not a date written dd/mm/yyyy");
    }

    #[test]
    fn text_transforms() {
        assert_eq!(text("trim", "  a b "), "a b");
        assert_eq!(text("lowercase", "ÉMILE"), "émile");
        assert_eq!(text("uppercase", "zoë"), "ZOË");
        assert_eq!(text("collapse_spaces", "a   b\t c"), "a b c");
        assert_eq!(text("title_case", "o'brien-SMITH jr"), "O'Brien-Smith Jr");
        assert_eq!(text("phone_e164", "07700 900123"), "+447700900123");
        assert_eq!(text("phone_e164:US", "(415) 555-2671"), "+14155552671");
        assert_eq!(text("date:%d/%m/%Y", "31/01/1980"), "1980-01-31");
        assert_eq!(text("bool", "Yes"), "true");
        assert_eq!(text("bool", "n"), "false");
        assert_eq!(text("default:none", ""), "none");
        assert_eq!(text("default:none", "x"), "x");
    }

    #[test]
    fn split_makes_a_list() {
        assert_eq!(
            run("split:|", "A | B||C").unwrap(),
            Value::List(vec!["A".into(), "B".into(), "C".into()])
        );
    }

    #[test]
    fn failures_say_why() {
        assert!(run("date:%d/%m/%Y", "31.01.1980").unwrap_err().contains("not a date"));
        assert_eq!(
            text("date:%d/%m/%Y", "1980-01-31"),
            "1980-01-31",
            "already ISO (a workbook date)"
        );
        assert!(run("bool", "maybe").unwrap_err().contains("yes/no"));
        assert!(run("phone_e164", "n/a").unwrap_err().contains("phone"));
    }

    #[test]
    fn parse_errors() {
        for bad in ["nope", "date", "split", "phone_e164:XX", "trim:1", "date:%Q"] {
            assert!(Transform::parse(bad).is_err(), "{bad}");
        }
    }
}
