//! Transforms suggested by a column's sample values: `trim` where values carry spaces,
//! `collapse_spaces` where words are apart by more than one,
//! `phone_e164` for phone numbers, `bool` for yes/no, `date:<format>` with the format that
//! reads every value, `lowercase` and the `email` check for addresses, `split:|` for lists.

use chrono::NaiveDate;

use crate::mapping::phone;
use crate::mapping::text::trim;
use crate::schema::{FieldDef, FieldType};

/// Date formats tried, UK order first (an ambiguous `03/04/2021` reads as 3 April).
const DATE_FORMATS: &[&str] =
    &["%d/%m/%Y", "%Y-%m-%d", "%d-%m-%Y", "%d.%m.%Y", "%m/%d/%Y", "%d/%m/%y", "%Y/%m/%d"];

/// The share of a column's values a format must read for `date:` to be suggested (a column of
/// text with a date-like value or two is not a date column).
const DATE_SHARE: (usize, usize) = (4, 5);

/// The odd values named in a comment at most.
const ODD_SHOWN: usize = 5;

/// What `init` writes for one field: its transforms and validators, and a note (a comment
/// line) about values that will not go through them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Suggestion {
    pub transforms: Vec<String>,
    pub validators: Vec<String>,
    pub note: Option<String>,
}

/// One column of the sample: each row's value and the line it is on.
pub struct Column<'a> {
    pub values: &'a [String],
    pub lines: &'a [u64],
}

/// What to put in a field's `transform` and `validate`, from its values and its schema type.
pub fn suggest(column: &Column<'_>, def: Option<&FieldDef>, field: &str) -> Suggestion {
    let present: Vec<(u64, &str)> = column
        .values
        .iter()
        .zip(column.lines.iter().copied().chain(std::iter::repeat(0)))
        .map(|(v, l)| (l, v.as_str()))
        .filter(|(_, v)| !trim(v).is_empty())
        .collect();
    let values: Vec<&str> = present.iter().map(|(_, v)| *v).collect();
    let mut out = Suggestion::default();
    if values.iter().any(|v| trim(v).len() != v.len()) {
        out.transforms.push("trim".to_string());
    }
    if values.iter().any(|v| trim(v).contains("  ")) {
        out.transforms.push("collapse_spaces".to_string());
    }
    let ty = def.map(|d| d.ty);
    let all = |f: &dyn Fn(&str) -> bool| !values.is_empty() && values.iter().all(|v| f(trim(v)));
    let lower = field.to_ascii_lowercase();
    if matches!(ty, Some(FieldType::Bool))
        || (ty.is_none()
            && all(&|v| crate::mapping::parse_bool(v).is_some())
            && !all(&|v| v.bytes().all(|b| b.is_ascii_digit())))
    {
        out.transforms.push("bool".into());
    } else if matches!(ty, Some(FieldType::Email { .. })) || lower.contains("email") {
        out.transforms.push("lowercase".into());
        out.validators.push("email".into());
    } else if matches!(ty, Some(FieldType::List { .. }))
        || (values.iter().any(|v| v.contains('|')) && lower.contains("list"))
    {
        out.transforms.push("split:|".into());
    } else if lower.contains("phone")
        || lower.contains("mobile")
        || (!values.is_empty()
            && values.iter().filter(|v| phone::to_e164(v, phone::GB).is_some()).count() * 5
                >= values.len() * 4)
    {
        out.transforms.push("phone_e164".into());
    } else if let Some(FieldType::OneOf(allowed)) = ty {
        // `Male` for `male`: the documented values are written as the docs write them.
        let fits = |v: &str| allowed.iter().any(|a| a.eq_ignore_ascii_case(trim(v)));
        if all(&fits) && !all(&|v| allowed.contains(&v)) {
            out.transforms.push("lowercase".into());
        }
    } else if let Some(dates) = date_format(&present) {
        out.transforms.push(format!("date:{}", dates.format));
        out.note = dates.odd_note();
    }
    out
}

/// The format that reads the most of a column's values, and the values it does not read.
#[derive(Debug, PartialEq, Eq)]
pub struct Dates<'a> {
    pub format: &'static str,
    pub read: usize,
    /// (line, value) of each value the format does not read.
    pub odd: Vec<(u64, &'a str)>,
}

impl Dates<'_> {
    /// A comment naming the values the format does not read (none when it reads them all).
    fn odd_note(&self) -> Option<String> {
        if self.odd.is_empty() {
            return None;
        }
        let shown: Vec<String> = self
            .odd
            .iter()
            .take(ODD_SHOWN)
            .map(|(line, v)| format!("{} (line {line})", toml_quote(v)))
            .collect();
        let more = self.odd.len().saturating_sub(ODD_SHOWN);
        let more = if more > 0 { format!(" and {more} more") } else { String::new() };
        Some(format!(
            "{} of the sample's {} dates are not {}: {}{more}; those rows fail at `map` until the export or the format is fixed",
            self.odd.len(),
            self.read + self.odd.len(),
            crate::mapping::format_in_words(self.format),
            shown.join(", ")
        ))
    }
}

/// The format that reads the most values as dates (the first in [`DATE_FORMATS`] on a tie),
/// if it reads at least [`DATE_SHARE`] of them.
pub fn date_format<'a>(values: &[(u64, &'a str)]) -> Option<Dates<'a>> {
    let reads = |f: &str, v: &str| NaiveDate::parse_from_str(trim(v), f).is_ok();
    let (format, read) = DATE_FORMATS
        .iter()
        .map(|f| (*f, values.iter().filter(|(_, v)| reads(f, v)).count()))
        .fold(None, |best: Option<(&'static str, usize)>, (f, n)| match best {
            Some((_, m)) if m >= n => best,
            _ => Some((f, n)),
        })?;
    if read == 0 || read * DATE_SHARE.1 < values.len() * DATE_SHARE.0 {
        return None;
    }
    let odd = values.iter().filter(|(_, v)| !reads(format, v)).copied().collect();
    Some(Dates { format, read, odd })
}

/// A TOML basic string, for values quoted in comments.
fn toml_quote(s: &str) -> String {
    let short: String = s.chars().take(40).filter(|c| !c.is_control()).collect();
    toml::Value::String(short).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn suggest_for(values: &[&str], field: &str) -> Suggestion {
        let values = s(values);
        let lines: Vec<u64> = (2..).take(values.len()).collect();
        suggest(&Column { values: &values, lines: &lines }, None, field)
    }

    #[test]
    fn transforms_follow_the_values() {
        assert_eq!(
            suggest_for(&["07700 900123", "+44 20 7946 0958"], "Tel").transforms,
            vec!["phone_e164"]
        );
        assert_eq!(suggest_for(&["yes", "No", "y"], "Active").transforms, vec!["bool"]);
        assert_eq!(
            suggest_for(&["14/03/1961", "02/11/1975"], "DOB").transforms,
            vec!["date:%d/%m/%Y"]
        );
        assert_eq!(suggest_for(&["1961-03-14"], "DOB").transforms, vec!["date:%Y-%m-%d"]);
        let email = suggest_for(&[" A@B.com"], "Email");
        assert_eq!(
            (email.transforms, email.validators),
            (vec!["trim".to_string(), "lowercase".into()], vec!["email".to_string()])
        );
        assert!(suggest_for(&["Acme", "Bolt"], "Company").transforms.is_empty());
        assert!(
            suggest_for(&["1", "0"], "Count").transforms.is_empty(),
            "digits alone are not yes/no"
        );
    }

    /// One value no format reads does not drop the transform: the format that reads the
    /// others is written, and the odd value is named with its line.
    #[test]
    fn an_odd_date_keeps_the_transform_and_is_named() {
        let mut values = vec!["10/05/1962"; 199];
        values.insert(13, "31/02/1962");
        let got = suggest_for(&values, "Date of Birth");
        assert_eq!(got.transforms, vec!["date:%d/%m/%Y"]);
        let note = got.note.expect("a note names the odd value");
        assert!(
            note.starts_with(
                "1 of the sample's 200 dates are not dd/mm/yyyy: \"31/02/1962\" (line 15)"
            ),
            "{note}"
        );
        let gender = crate::schema::PLANNR_CLIENTS.fields.iter().find(|d| d.name == "gender");
        let values = s(&["Male", "female"]);
        let column = Column { values: &values, lines: &[2, 3] };
        assert_eq!(suggest(&column, gender, "gender").transforms, vec!["lowercase"]);
        let mostly_text = ["soon", "later", "n/a", "01/02/2003"];
        assert!(suggest_for(&mostly_text, "When").transforms.is_empty(), "not a date column");
    }
}
