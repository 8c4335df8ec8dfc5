//! `[pipelines.X.fields]` -> [`FieldSettings`], checked against the target's schema.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;

use super::raw::{RawFieldTable, RawLookup};
use super::settings::*;
use super::validate::Ctx;
use crate::mapping::spec::LookupBy;
use crate::mapping::{Transform, Validator};
use crate::schema::{FieldType, Lookup, UnknownFields};

impl Ctx<'_> {
    pub(super) fn fields(
        &mut self,
        pname: &str,
        target: &TargetSpec,
        raw: &BTreeMap<Spanned<String>, Spanned<toml::Value>>,
        anchor: Range<usize>,
    ) -> Vec<FieldSettings> {
        let schema = target.schema();
        let mut out = Vec::new();
        for (key, value) in raw {
            let name = key.get_ref();
            let nested_custom = schema.custom_prefix.filter(|p| p.trim_end_matches('.') == name);
            if let (Some(prefix), toml::Value::Table(entries)) = (nested_custom, value.get_ref()) {
                // `CustomFields.Region = "col"` written as a dotted key arrives as a table.
                for (sub, v) in entries {
                    let full = format!("{prefix}{sub}");
                    if let Some(f) = self.field(pname, &full, v, value.span(), target) {
                        out.push(f);
                    }
                }
                continue;
            }
            match schema.lookup(name) {
                Lookup::Known(_) | Lookup::Custom => {}
                Lookup::Unknown => {
                    let msg = format!(
                        "pipeline `{pname}`: `{name}` is not a known {} field (known: {})",
                        target.name(),
                        schema.field_names().join(", ")
                    );
                    match schema.unknown {
                        UnknownFields::Deny => self.problem(key.span(), msg),
                        UnknownFields::Warn => {
                            self.warn(key.span(), format!("{msg}; it is sent as written"))
                        }
                    }
                }
            }
            if let Some(f) = self.field(pname, name, value.get_ref(), key.span(), target) {
                out.push(f);
            }
        }
        if schema.require_mapped {
            for def in schema.fields.iter().filter(|d| d.required) {
                if !out.iter().any(|f| f.target == def.name) {
                    self.problem(
                        anchor.clone(),
                        format!(
                            "pipeline `{pname}`: {} requires field `{}`, which is not mapped",
                            target.name(),
                            def.name
                        ),
                    );
                }
            }
        }
        out
    }

    fn field(
        &mut self,
        pname: &str,
        name: &str,
        value: &toml::Value,
        span: Range<usize>,
        target: &TargetSpec,
    ) -> Option<FieldSettings> {
        let table = match value {
            toml::Value::String(column) => {
                return Some(FieldSettings {
                    target: name.to_string(),
                    source: ValueSource::Columns(vec![column.clone()]),
                    transforms: Vec::new(),
                    validators: Vec::new(),
                    empty: EmptyPolicy::Omit,
                    date_format: None,
                    lookup: None,
                })
            }
            other => other.clone().try_into::<RawFieldTable>(),
        };
        let table = match table {
            Ok(t) => t,
            Err(e) => {
                let msg = e.message().trim().replace('\n', " ");
                self.problem(span, format!("pipeline `{pname}` field `{name}`: {msg}"));
                return None;
            }
        };
        let source = match (table.column, table.template, table.value) {
            (Some(c), None, None) => ValueSource::Columns(c.into_vec()),
            (None, Some(t), None) => match parse_template(&t) {
                Ok(parts) => ValueSource::Template(parts),
                Err(e) => {
                    self.problem(span, format!("pipeline `{pname}` field `{name}`: {e}"));
                    return None;
                }
            },
            (None, None, Some(v)) => ValueSource::Constant(v),
            _ => {
                self.problem(span, format!("pipeline `{pname}` field `{name}`: give exactly one of `column`, `template` or `value`"));
                return None;
            }
        };
        let at = FieldAt { pname, name, span, target };
        let transforms = self.each(&at, &table.transform, Transform::parse);
        let validators = self.each(&at, &table.validate, Validator::parse);
        let empty = self.empty_policy(&at, table.empty.as_deref());
        let date_format = self.date_format(&at, table.format.as_deref(), &transforms);
        let lookup = self.lookup(&at, table.lookup.as_ref());
        Some(FieldSettings {
            target: name.to_string(),
            source,
            transforms,
            validators,
            empty,
            date_format,
            lookup,
        })
    }

    /// Each of a field's `transform` or `validate` entries parsed; one that does not parse is
    /// a problem named by the field, and left out.
    fn each<T>(
        &mut self,
        at: &FieldAt<'_>,
        items: &[String],
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Vec<T> {
        let mut out = Vec::new();
        for item in items {
            match parse(item) {
                Ok(t) => out.push(t),
                Err(e) => self.problem(
                    at.span.clone(),
                    format!("pipeline `{}` field `{}`: {e}", at.pname, at.name),
                ),
            }
        }
        out
    }

    /// `empty = "omit"` (the default) or `"clear"`.
    fn empty_policy(&mut self, at: &FieldAt<'_>, raw: Option<&str>) -> EmptyPolicy {
        match raw {
            None | Some("omit") => EmptyPolicy::Omit,
            Some("clear") => EmptyPolicy::Clear,
            Some(other) => {
                let (pname, name) = (at.pname, at.name);
                self.problem(
                    at.span.clone(),
                    format!(
                        "pipeline `{pname}` field `{name}`: empty = `{other}` is not omit or clear"
                    ),
                );
                EmptyPolicy::Omit
            }
        }
    }

    /// `format = "%Y-%m-%d"`: a strftime form dates can be written in, on a field that holds
    /// dates (a date field of the target, or one with a `date:` transform).
    fn date_format(
        &mut self,
        at: &FieldAt<'_>,
        format: Option<&str>,
        transforms: &[Transform],
    ) -> Option<String> {
        let format = format?;
        let (pname, name) = (at.pname, at.name);
        let dated = transforms.iter().any(|t| matches!(t, Transform::Date(_)))
            || matches!(at.target.schema().lookup(name), Lookup::Known(d) if d.ty == FieldType::Date);
        let sample =
            chrono::NaiveDate::from_ymd_opt(2024, 1, 31).and_then(|d| d.and_hms_opt(0, 0, 0));
        let writes = sample.is_some_and(|d| {
            use std::fmt::Write as _;
            let mut out = String::new();
            write!(out, "{}", d.format(format)).is_ok() && !out.is_empty()
        });
        if !writes {
            self.problem(at.span.clone(), format!("pipeline `{pname}` field `{name}`: format `{format}` is not a strftime format dates can be written in (e.g. %Y-%m-%d)"));
            return None;
        }
        if !dated {
            self.problem(at.span.clone(), format!("pipeline `{pname}` field `{name}`: `format` says how dates are sent, but this field holds none: add a date:<format> transform"));
            return None;
        }
        Some(format.to_string())
    }

    /// `lookup = { by = "email" }`, on a field the target lets a lookup fill.
    fn lookup(&mut self, at: &FieldAt<'_>, raw: Option<&RawLookup>) -> Option<LookupBy> {
        let raw = raw?;
        let (pname, name) = (at.pname, at.name);
        let by = match raw.by.as_str() {
            "email" => LookupBy::Email,
            other => {
                self.problem(at.span.clone(), format!("pipeline `{pname}` field `{name}`: lookup by `{other}` is not known (known: email)"));
                return None;
            }
        };
        let fillable = at.target.schema().lookups;
        if !fillable.contains(&name) {
            let which = if fillable.is_empty() {
                format!("{} has no field a lookup can fill", at.target.name())
            } else {
                format!("on {} a lookup fills only {}", at.target.name(), fillable.join(", "))
            };
            self.problem(at.span.clone(), format!("pipeline `{pname}` field `{name}`: {which}"));
            return None;
        }
        Some(by)
    }
}

/// The field a setting belongs to, for messages.
struct FieldAt<'a> {
    pname: &'a str,
    name: &'a str,
    span: Range<usize>,
    target: &'a TargetSpec,
}

/// `"{First Name} {Surname}"` -> literal and column parts; `{{` and `}}` are literal braces.
pub fn parse_template(text: &str) -> Result<Vec<TemplatePart>, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                literal.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                literal.push('}');
            }
            '{' => {
                let mut column = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(ch) => column.push(ch),
                        None => return Err(format!("template `{text}` has an unclosed `{{`")),
                    }
                }
                if !literal.is_empty() {
                    parts.push(TemplatePart::Literal(std::mem::take(&mut literal)));
                }
                parts.push(TemplatePart::Column(column.trim().to_string()));
            }
            '}' => return Err(format!("template `{text}` has a `}}` without `{{`")),
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        parts.push(TemplatePart::Literal(literal));
    }
    if !parts.iter().any(|p| matches!(p, TemplatePart::Column(_))) {
        return Err(format!("template `{text}` names no {{column}}"));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_parts() {
        assert_eq!(
            parse_template("{First Name} {Surname}").unwrap(),
            vec![
                TemplatePart::Column("First Name".into()),
                TemplatePart::Literal(" ".into()),
                TemplatePart::Column("Surname".into())
            ]
        );
        assert!(parse_template("{open").is_err());
        assert!(parse_template("no columns").is_err());
    }
}
