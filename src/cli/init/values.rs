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

/// What to put in a field's `transform` and `validate`, from its values and its schema type.
pub fn suggest(
    values: &[String],
    def: Option<&FieldDef>,
    field: &str,
) -> (Vec<String>, Vec<String>) {
    let present: Vec<&str> =
        values.iter().map(|v| v.as_str()).filter(|v| !trim(v).is_empty()).collect();
    let mut transforms = Vec::new();
    let mut validators = Vec::new();
    if present.iter().any(|v| trim(v).len() != v.len()) {
        transforms.push("trim".to_string());
    }
    if present.iter().any(|v| trim(v).contains("  ")) {
        transforms.push("collapse_spaces".to_string());
    }
    let ty = def.map(|d| d.ty);
    let all = |f: &dyn Fn(&str) -> bool| !present.is_empty() && present.iter().all(|v| f(trim(v)));
    let lower = field.to_ascii_lowercase();
    if matches!(ty, Some(FieldType::Bool))
        || (ty.is_none()
            && all(&|v| crate::mapping::parse_bool(v).is_some())
            && !all(&|v| v.bytes().all(|b| b.is_ascii_digit())))
    {
        transforms.push("bool".into());
    } else if matches!(ty, Some(FieldType::Email { .. })) || lower.contains("email") {
        transforms.push("lowercase".into());
        validators.push("email".into());
    } else if matches!(ty, Some(FieldType::List { .. }))
        || (present.iter().any(|v| v.contains('|')) && lower.contains("list"))
    {
        transforms.push("split:|".into());
    } else if lower.contains("phone")
        || lower.contains("mobile")
        || (!present.is_empty()
            && present.iter().filter(|v| phone::to_e164(v, phone::GB).is_some()).count() * 5
                >= present.len() * 4)
    {
        transforms.push("phone_e164".into());
    } else if let Some(fmt) = date_format(&present) {
        transforms.push(format!("date:{fmt}"));
    }
    (transforms, validators)
}

/// The first format that reads every value as a date (none when a value is not one).
pub fn date_format(values: &[&str]) -> Option<&'static str> {
    if values.is_empty() {
        return None;
    }
    DATE_FORMATS
        .iter()
        .copied()
        .find(|f| values.iter().all(|v| NaiveDate::parse_from_str(trim(v), f).is_ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn transforms_follow_the_values() {
        assert_eq!(
            suggest(&s(&["07700 900123", "+44 20 7946 0958"]), None, "Tel").0,
            vec!["phone_e164"]
        );
        assert_eq!(suggest(&s(&["yes", "No", "y"]), None, "Active").0, vec!["bool"]);
        assert_eq!(
            suggest(&s(&["14/03/1961", "02/11/1975"]), None, "DOB").0,
            vec!["date:%d/%m/%Y"]
        );
        assert_eq!(suggest(&s(&["1961-03-14"]), None, "DOB").0, vec!["date:%Y-%m-%d"]);
        let (t, v) = suggest(&s(&[" A@B.com"]), None, "Email");
        assert_eq!(
            (t, v),
            (vec!["trim".to_string(), "lowercase".into()], vec!["email".to_string()])
        );
        assert!(suggest(&s(&["Acme", "Bolt"]), None, "Company").0.is_empty());
        assert!(
            suggest(&s(&["1", "0"]), None, "Count").0.is_empty(),
            "digits alone are not yes/no"
        );
    }
}
