//! The field mapping compiled against one file's header, then applied to each row.

use std::borrow::Cow;

use super::spec::{EmptyPolicy, FieldSettings, TemplatePart, ValueSource};
use crate::row::{Failure, Stage};
use crate::schema::{FieldDef, FieldType, Lookup, Schema, ISO_DATE};

use super::kinds;
use super::text;
use super::validate::{check_len, is_email, is_iso_date, is_uuid};
use super::value::{parse_bool, Value};
use super::{Transform, Validator};

/// The report's own columns: a fixed errors file dropped back in carries them; they are ignored.
pub const REPORT_COLUMNS: [&str; 4] = ["_line", "_stage", "_field", "_message"];

/// Access to one row's cells, decoded on demand so unmapped columns cost nothing. Cells
/// borrow from the storage the row lives in (`'r`), not from this accessor, so the values of
/// many rows can share one buffer.
pub trait Cells<'r> {
    /// The cell at `index`, or why it cannot be decoded.
    fn cell(&self, index: usize) -> Result<Cow<'r, str>, String>;

    /// The cell when it can be borrowed as it is (the common case), else `None` and
    /// [`Cells::cell`] says what it is. A plain slice comes back in registers and goes
    /// straight into the value; the `Result` of `cell` went through the stack, and perf
    /// showed the copy stalling on it.
    fn borrowed(&self, _index: usize) -> Option<&'r str> {
        None
    }
}

/// What keeps a header from serving the mapping: mapped columns it does not have, and mapped
/// columns it has more than once (which one was meant cannot be told).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct HeaderProblems {
    /// Target field and the column names it may come from, none of which is in the header.
    pub missing: Vec<(String, Vec<String>)>,
    /// Target field, the column name, and the 1-based positions it holds in the header.
    pub repeated: Vec<(String, String, Vec<usize>)>,
    /// The header as found.
    pub header: Vec<String>,
}

impl HeaderProblems {
    fn describe(&self) -> String {
        let header = &self.header;
        let mut parts: Vec<String> = self
            .missing
            .iter()
            .map(|(field, cols)| {
                let names: Vec<String> = cols.iter().map(|c| format!("`{c}`")).collect();
                let hint = cols
                    .iter()
                    .find_map(|c| closest_column(c, header))
                    .map(|h| format!(" (did you mean `{h}`?)"))
                    .unwrap_or_default();
                format!(
                    "column {} (for field `{field}`) is not in the header{hint}",
                    names.join(" or ")
                )
            })
            .collect();
        parts.extend(self.repeated.iter().map(|(field, col, at)| {
            let at: Vec<String> = at.iter().map(usize::to_string).collect();
            format!(
                "column `{col}` (for field `{field}`) is in the header {} times, at positions {}: rename all but one",
                at.len(),
                at.join(" and ")
            )
        }));
        let found: Vec<String> = header.iter().map(|h| format!("`{h}`")).collect();
        format!("{}; the header found is: {}", parts.join("; "), found.join(", "))
    }
}

/// A header name or a configured column name as compared: trimmed, in Unicode NFC (macOS
/// writes accents decomposed, NFD; a config file holds them composed).
fn comparable(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let name = name.trim();
    if name.is_ascii() {
        return name.to_string();
    }
    name.nfc().collect()
}

/// The header's names as compared, and where each column name is found.
struct HeaderIndex(Vec<String>);

impl HeaderIndex {
    fn new(header: &[String]) -> Self {
        Self(header.iter().map(|h| comparable(h)).collect())
    }

    /// Every 0-based position `name` holds.
    fn positions(&self, name: &str) -> Vec<usize> {
        let name = comparable(name);
        self.0.iter().enumerate().filter(|(_, h)| **h == name).map(|(i, _)| i).collect()
    }
}

/// The header name a mapped column most likely meant: the same but for case, spaces and
/// punctuation, else within a few edits.
fn closest_column<'h>(wanted: &str, header: &'h [String]) -> Option<&'h str> {
    let fold = |s: &str| {
        s.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect::<String>()
    };
    let w = fold(wanted);
    if let Some(h) = header.iter().find(|h| fold(h) == w) {
        return Some(h);
    }
    if let Some(h) = header.iter().find(|h| {
        !w.is_empty() && (fold(h).contains(&w) || w.contains(&fold(h))) && !h.trim().is_empty()
    }) {
        return Some(h);
    }
    let budget = (w.chars().count() / 4).clamp(1, 3);
    header
        .iter()
        .map(|h| (levenshtein(&fold(h), &w), h))
        .filter(|(d, _)| *d <= budget)
        .min_by_key(|(d, _)| *d)
        .map(|(_, h)| h.as_str())
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut row = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            row.push((prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(row[j] + 1));
        }
        prev = row;
    }
    prev[b.len()]
}

#[derive(Debug, Clone)]
enum Part {
    Literal(String),
    Column(usize),
}

#[derive(Debug, Clone)]
enum Source {
    Column(usize),
    Template(Vec<Part>),
    Constant(String),
}

#[derive(Debug, Clone)]
pub struct CompiledField {
    pub name: String,
    /// The schema's definition, when the target documents this field.
    pub def: Option<FieldDef>,
    pub custom: bool,
    source: Source,
    transforms: Vec<Transform>,
    validators: Vec<Validator>,
    /// An `email` validator runs on this field, so the schema need not check it again.
    email_checked: bool,
    pub empty: EmptyPolicy,
    /// What a value not empty goes through before the schema's rules.
    before: Before,
}

impl Before {
    /// For field `f`, whose schema definition is `def`.
    fn of(f: &FieldSettings, def: Option<&FieldDef>, schema: &Schema) -> Self {
        let dated = matches!(def.map(|d| d.ty), Some(FieldType::Date))
            || f.transforms.iter().any(|t| matches!(t, Transform::Date(_)));
        let form = f.date_format.as_deref().unwrap_or(schema.date_format);
        match f.lookup {
            Some(_) => Before::Lookup,
            None if dated && form != ISO_DATE => Before::DateIn(form.to_string()),
            None => Before::Nothing,
        }
    }
}

impl CompiledField {
    /// The form its dates are sent in when it is not ISO-8601.
    fn date_form(&self) -> Option<&str> {
        match &self.before {
            Before::DateIn(form) => Some(form),
            _ => None,
        }
    }
}

/// What a field's value goes through before the schema's rules, when it is not the common
/// case: one test per cell rather than one per kind (a plain tag, not a niche to decode).
#[derive(Debug, Clone)]
#[repr(u8)]
enum Before {
    Nothing,
    /// A lookup fills this field before the row is sent: its value is the key (an email).
    Lookup,
    /// The form this field's dates are sent in when it is not ISO-8601 (Plannr import files:
    /// DD/MM/YYYY): for a date field and for a field with a `date:` transform.
    DateIn(String),
}

/// Target field values of one row, in [`Mapper::fields`] order; `None` = leave the field out.
/// Values borrow from the row they were read from.
pub type Mapped<'a> = Vec<Option<Value<'a>>>;

#[derive(Debug, Clone)]
pub struct Mapper {
    fields: Vec<CompiledField>,
    schema: Schema,
    /// No text of the configuration's own (template literal, constant, `default:`) needs
    /// escaping in JSON; see [`crate::targets::Escapes`].
    literals_plain: bool,
}

impl Mapper {
    /// Resolves every column the fields name against `header` (names compared after
    /// trimming, in Unicode NFC). A mapped column the header lacks, or holds twice, is refused.
    pub fn compile(
        fields: &[FieldSettings],
        schema: Schema,
        header: &[String],
    ) -> Result<Self, HeaderProblems> {
        let index = HeaderIndex::new(header);
        let mut problems =
            HeaderProblems { missing: Vec::new(), repeated: Vec::new(), header: header.to_vec() };
        // The one position of `name`, or `None` (a repeat is noted as a problem).
        let mut find = |field: &str, name: &str| -> Option<usize> {
            let at = index.positions(name);
            if at.len() > 1 {
                let seen = problems.repeated.iter().any(|(f, c, _)| f == field && c == name);
                if !seen {
                    let at = at.iter().map(|i| i + 1).collect();
                    problems.repeated.push((field.to_string(), name.to_string(), at));
                }
            }
            at.first().copied()
        };
        let mut missing = Vec::new();
        let mut compiled = Vec::with_capacity(fields.len());
        for f in fields {
            let source = match &f.source {
                ValueSource::Columns(alternatives) => {
                    match alternatives.iter().find_map(|c| find(&f.target, c)) {
                        Some(i) => Source::Column(i),
                        None => {
                            missing.push((f.target.clone(), alternatives.clone()));
                            continue;
                        }
                    }
                }
                ValueSource::Template(parts) => {
                    let mut out = Vec::new();
                    for p in parts {
                        match p {
                            TemplatePart::Literal(l) => out.push(Part::Literal(l.clone())),
                            TemplatePart::Column(c) => match find(&f.target, c) {
                                Some(i) => out.push(Part::Column(i)),
                                None => missing.push((f.target.clone(), vec![c.clone()])),
                            },
                        }
                    }
                    Source::Template(out)
                }
                ValueSource::Constant(v) => Source::Constant(v.clone()),
            };
            let (def, custom) = match schema.lookup(&f.target) {
                Lookup::Known(d) => (Some(*d), false),
                Lookup::Custom => (None, true),
                Lookup::Unknown => (None, false),
            };
            compiled.push(CompiledField {
                name: f.target.clone(),
                def,
                custom,
                source,
                transforms: f.transforms.clone(),
                validators: f.validators.clone(),
                email_checked: f.validators.contains(&Validator::Email),
                empty: f.empty,
                before: Before::of(f, def.as_ref(), &schema),
            });
        }
        let literals_plain = fields.iter().all(|f| literals_of(f).all(plain_json));
        problems.missing = missing;
        if problems.missing.is_empty() && problems.repeated.is_empty() {
            Ok(Self { fields: compiled, schema, literals_plain })
        } else {
            Err(problems)
        }
    }

    pub fn fields(&self) -> &[CompiledField] {
        &self.fields
    }

    /// Whether every value this mapper writes that is not made from a row's cells (template
    /// literals, constants, `default:` texts) is free of bytes JSON must escape.
    pub fn literals_plain(&self) -> bool {
        self.literals_plain
    }

    /// Maps one row; a failure lists every field that went wrong and why.
    pub fn map<'r>(&self, row: &impl Cells<'r>) -> Result<Mapped<'r>, Failure> {
        let mut out = Vec::with_capacity(self.fields.len());
        self.map_into(row, &mut out)?;
        Ok(out)
    }

    /// [`Mapper::map`] into `out` (the previous row's values replaced), so one buffer serves a
    /// block of rows. After a failure `out` holds nothing.
    pub fn map_into<'r>(&self, row: &impl Cells<'r>, out: &mut Mapped<'r>) -> Result<(), Failure> {
        // One slot per field, kept from row to row: each value is dropped as the next row's
        // replaces it (clearing the whole buffer first cost more, out of line: callgrind).
        out.resize_with(self.fields.len(), || None);
        let mut errors: Vec<(Stage, &str, String)> = Vec::new();
        let mut unread = None;
        // Each value is worked on where it will stay, in `out`.
        for (f, slot) in self.fields.iter().zip(out.iter_mut()) {
            let fast = match f.source {
                Source::Column(i) => row.borrowed(i),
                _ => None,
            };
            *slot = match fast {
                Some(cell) => Some(Value::Text(Cow::Borrowed(cell))),
                None => match self.read(f, row) {
                    Ok(v) => Some(Value::Text(v)),
                    Err(e) => {
                        unread = Some(Failure::new(Stage::Parse, Some(&f.name), e));
                        break;
                    }
                },
            };
            if let Err(e) = self.check_field(f, slot, &mut errors) {
                errors.push((Stage::Validate, &f.name, e));
                *slot = None;
            }
        }
        if unread.is_none() && errors.is_empty() {
            return Ok(());
        }
        out.clear();
        if let Some(failure) = unread {
            return Err(failure);
        }
        let stage = errors.iter().map(|e| e.0).min().unwrap_or(Stage::Validate);
        let mut fields: Vec<String> = Vec::new();
        for (_, f, _) in &errors {
            if !fields.iter().any(|x| x == f) {
                fields.push((*f).to_string());
            }
        }
        // A validator and the schema may both refuse the same thing: say it once.
        let mut messages: Vec<String> = Vec::with_capacity(errors.len());
        for (_, f, m) in errors {
            let line = format!("{f}: {m}");
            if !messages.contains(&line) {
                messages.push(line);
            }
        }
        Err(Failure { stage, fields, messages })
    }

    fn read<'r>(&self, f: &CompiledField, row: &impl Cells<'r>) -> Result<Cow<'r, str>, String> {
        Ok(match &f.source {
            Source::Column(i) => row.cell(*i)?,
            Source::Constant(v) => Cow::Owned(v.clone()),
            Source::Template(parts) => {
                // Room for a typical name or address up front: growing the text part by part
                // cost two reallocations a row.
                let mut s = String::with_capacity(64);
                for p in parts {
                    match p {
                        Part::Literal(l) => s.push_str(l),
                        Part::Column(i) => s.push_str(text::trim(&row.cell(*i)?)),
                    }
                }
                Cow::Owned(s)
            }
        })
    }

    /// Transforms, validators and the schema's rules for one field's value, in place. A
    /// transform or validator failure is added to `errors` (the value is dropped after a
    /// transform failure); a schema failure is returned.
    #[inline(always)]
    fn check_field<'r, 'm>(
        &self,
        f: &'m CompiledField,
        slot: &mut Option<Value<'r>>,
        errors: &mut Vec<(Stage, &'m str, String)>,
    ) -> Result<(), String> {
        let Some(value) = slot else { return Ok(()) };
        for t in &f.transforms {
            if let Err(e) = t.apply_to(value) {
                errors.push((Stage::Map, &f.name, e));
                *slot = None;
                return Ok(());
            }
        }
        let empty = value.is_empty();
        for v in &f.validators {
            if let Err(e) = v.check((!empty).then_some(&*value)) {
                // `date` takes what the target is sent too (DD/MM/YYYY for Plannr imports).
                let in_form = *v == Validator::Date && in_date_form(value, f.date_form());
                if !in_form {
                    errors.push((Stage::Validate, &f.name, e));
                }
            }
        }
        if empty {
            if f.def.is_some_and(|d| d.required) {
                return Err("is required".into());
            }
            match f.empty {
                EmptyPolicy::Omit => *slot = None,
                EmptyPolicy::Clear => {
                    *value = match value {
                        Value::List(_) => Value::List(Vec::new()),
                        Value::Text(_) => Value::text(""),
                    }
                }
            }
            return Ok(());
        }
        match &f.before {
            Before::Nothing => {}
            Before::Lookup => return lookup_key(value),
            Before::DateIn(form) => {
                if let Value::Text(t) = value {
                    if let Some(written) = kinds::date_in(t, form)? {
                        *t = Cow::Owned(written);
                    }
                }
            }
        }
        // Most cells are text of a bounded length, or a flag the `bool` transform wrote:
        // checked here, without a call.
        match (f.def.as_ref().map(|d| &d.ty), &*value) {
            (Some(FieldType::Text { max_len: Some(max) }), Value::Text(t)) => check_len(t, *max),
            (Some(FieldType::Text { max_len: None }), Value::Text(_)) => Ok(()),
            (Some(FieldType::Bool), Value::Text(t)) if t == "true" || t == "false" => Ok(()),
            _ => self.conform(f, value),
        }
    }

    /// The schema's rules for a value that is not empty: type and length. Booleans are
    /// rewritten as `true`/`false`, numbers and times as the target is sent them, and a list
    /// or a text changed into the other as the field's type needs.
    fn conform(&self, f: &CompiledField, value: &mut Value<'_>) -> Result<(), String> {
        let Some(def) = &f.def else {
            if f.custom {
                if let Some(max) = self.schema.custom_max_len {
                    for item in value.items() {
                        check_len(item, max)?;
                    }
                }
            }
            return Ok(());
        };
        // By reference: a field type is a few words, and this runs for every cell.
        match (&def.ty, &mut *value) {
            (FieldType::List { item, form }, v) => return kinds::list(v, *item, *form),
            (_, Value::List(l)) => *value = Value::text(l.join(",")),
            (_, Value::Text(_)) => {}
        }
        let Value::Text(text) = &*value else { return Ok(()) };
        if let Some(written) = conform_text(f, &def.ty, text)? {
            *value = Value::Text(written);
        }
        Ok(())
    }
}

/// A text value's type and length as the schema gives them; `Some` is the value as the
/// target is sent it, when that differs from the text.
fn conform_text(
    f: &CompiledField,
    ty: &FieldType,
    text: &str,
) -> Result<Option<Cow<'static, str>>, String> {
    let owned = |written: Option<String>| written.map(Cow::Owned);
    match ty {
        FieldType::Text { max_len } => {
            if let Some(max) = *max_len {
                check_len(text, max)?;
            }
        }
        // What the `bool` transform writes needs no second look.
        FieldType::Bool if text == "true" || text == "false" => {}
        FieldType::Bool => {
            let b = parse_bool(text).ok_or_else(|| format!("`{text}` is not true/false/yes/no"))?;
            return Ok(Some(Cow::Borrowed(if b { "true" } else { "false" })));
        }
        FieldType::Path { separator, level_max } => kinds::path(text, *separator, *level_max)?,
        FieldType::Email { max_len } => {
            // An `email` validator on the field has checked this already.
            if !f.email_checked && !is_email(text::trim(text)) {
                return Err(format!("`{text}` is not an email address"));
            }
            if let Some(max) = *max_len {
                check_len(text, max)?;
            }
        }
        FieldType::Uuid if is_uuid(text::trim(text)) => {}
        FieldType::Uuid => return Err(format!("`{text}` is not a UUID")),
        FieldType::Date => {
            let t = text::trim(text);
            if !is_iso_date(t) && !in_date_form(&Value::text(t), f.date_form()) {
                return Err(format!(
                    "`{text}` is not an ISO date (YYYY-MM-DD); add a date:<format> transform"
                ));
            }
        }
        FieldType::OneOf(allowed) => one_of(text, allowed)?,
        FieldType::Decimal { precision, scale } => {
            return kinds::decimal(text, Some((*precision, *scale))).map(owned)
        }
        FieldType::Number => return kinds::decimal(text, None).map(owned),
        FieldType::Integer { min, max } => return kinds::integer(text, *min, *max).map(owned),
        FieldType::Time => return kinds::time(text).map(owned),
        FieldType::Url => kinds::url(text)?,
        FieldType::List { .. } => {}
    }
    Ok(None)
}

/// A value from a documented list, exactly as the list writes it.
fn one_of(text: &str, allowed: &[&str]) -> Result<(), String> {
    if allowed.contains(&text::trim(text)) {
        return Ok(());
    }
    Err(format!("`{text}` is not one of {}", allowed.join(", ")))
}

/// A looked-up field's value: the key a lookup will find the record's id by (the id's own
/// type is the CRM's).
fn lookup_key(value: &Value<'_>) -> Result<(), String> {
    match value.as_text().map(text::trim) {
        Some(key) if is_email(key) => Ok(()),
        _ => Err(format!("`{}` is not an email address to look the record up by", value.display())),
    }
}

/// Whether a value is a date written in `form` (the target's own, when it is not ISO-8601).
fn in_date_form(value: &Value<'_>, form: Option<&str>) -> bool {
    let (Some(form), Some(t)) = (form, value.as_text()) else { return false };
    chrono::NaiveDate::parse_from_str(text::trim(t), form).is_ok()
}

/// The fields that name a person to Plannr's duplicate check: first name, last name and date
/// of birth, by their index in [`Mapper::fields`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersonFields([usize; 3]);

/// The target fields Plannr compares, case-insensitively, to flag a "Potential Duplicate".
pub const PERSON_FIELDS: [&str; 3] = ["first_name", "last_name", "date_of_birth"];

impl PersonFields {
    /// The three fields when the mapping has them all.
    pub fn of(fields: &[CompiledField]) -> Option<Self> {
        let at = |name: &str| fields.iter().position(|f| f.name == name);
        Some(Self([at(PERSON_FIELDS[0])?, at(PERSON_FIELDS[1])?, at(PERSON_FIELDS[2])?]))
    }

    /// A hash of the row's person (the three values trimmed and lowercased); `None` when one
    /// of them is empty (no duplicate is claimed on a part of the key).
    pub fn hash(self, values: &Mapped<'_>) -> Option<u64> {
        let mut key = String::with_capacity(64);
        for i in self.0 {
            let Some(Some(Value::Text(v))) = values.get(i) else { return None };
            let v = v.trim();
            if v.is_empty() {
                return None;
            }
            key.extend(v.chars().flat_map(char::to_lowercase));
            key.push('\u{1F}');
        }
        Some(xxhash_rust::xxh3::xxh3_64(key.as_bytes()))
    }
}

/// The texts a field's settings write into values as they are.
fn literals_of(f: &FieldSettings) -> impl Iterator<Item = &str> {
    let source: Vec<&str> = match &f.source {
        ValueSource::Columns(_) => Vec::new(),
        ValueSource::Template(parts) => parts
            .iter()
            .filter_map(|p| match p {
                TemplatePart::Literal(l) => Some(l.as_str()),
                TemplatePart::Column(_) => None,
            })
            .collect(),
        ValueSource::Constant(v) => vec![v.as_str()],
    };
    let defaults = f.transforms.iter().filter_map(|t| match t {
        Transform::Default(d) => Some(d.as_str()),
        _ => None,
    });
    source.into_iter().chain(defaults)
}

fn plain_json(text: &str) -> bool {
    super::json::Escapes::of(text.as_bytes()) == super::json::Escapes::Absent
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::REPSLY_CLIENTS;

    struct Row(Vec<&'static str>);
    impl Cells<'static> for Row {
        fn cell(&self, i: usize) -> Result<Cow<'static, str>, String> {
            Ok(Cow::Borrowed(self.0.get(i).copied().unwrap_or("")))
        }
    }

    fn field(target: &str, col: &str, t: &[&str], v: &[&str]) -> FieldSettings {
        FieldSettings {
            target: target.into(),
            source: ValueSource::Columns(vec![col.into()]),
            transforms: t.iter().map(|s| Transform::parse(s).unwrap()).collect(),
            validators: v.iter().map(|s| Validator::parse(s).unwrap()).collect(),
            empty: EmptyPolicy::Omit,
            date_format: None,
            lookup: None,
        }
    }

    fn header(cols: &[&str]) -> Vec<String> {
        cols.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn maps_and_conforms() {
        let fields = vec![
            field("Code", "ID", &["trim"], &[]),
            field("Name", "Name", &[], &[]),
            field("Active", "Active?", &[], &[]),
            field("PriceLists", "PL", &["split:|"], &[]),
        ];
        let m =
            Mapper::compile(&fields, REPSLY_CLIENTS, &header(&["ID", " Name ", "Active?", "PL"]))
                .unwrap();
        let row = Row(vec![" C1 ", "Acme", "yes", "A|B"]);
        let out = m.map(&row).unwrap();
        assert_eq!(out[0], Some(Value::text("C1")));
        assert_eq!(out[2], Some(Value::text("true")));
        assert_eq!(out[3], Some(Value::List(vec!["A".into(), "B".into()])));
        let row = Row(vec!["C2", "Acme", "", ""]);
        let out = m.map(&row).unwrap();
        assert_eq!(out[2], None);
        assert_eq!(out[3], None, "an empty price list cell is left out, never []");
    }

    #[test]
    fn every_error_of_a_row_is_reported() {
        let fields = vec![
            field("Code", "ID", &[], &[]),
            field("Name", "Name", &[], &[]),
            field("Email", "Mail", &[], &[]),
            field("Phone", "Tel", &["phone_e164"], &[]),
        ];
        let m = Mapper::compile(&fields, REPSLY_CLIENTS, &header(&["ID", "Name", "Mail", "Tel"]))
            .unwrap();
        let long = "X".repeat(51);
        let row = Row(vec![Box::leak(long.into_boxed_str()), "", "nope", "abc"]);
        let f = m.map(&row).unwrap_err();
        assert_eq!(f.stage, Stage::Map, "a transform failure is the earliest stage");
        assert_eq!(f.fields, vec!["Code", "Name", "Email", "Phone"]);
        assert_eq!(f.messages.len(), 4, "{:?}", f.messages);
    }

    #[test]
    fn the_same_reason_is_given_once() {
        let fields = vec![
            field("Code", "c", &[], &[]),
            field("Name", "n", &[], &[]),
            field("Email", "e", &[], &["email"]),
        ];
        let m = Mapper::compile(&fields, REPSLY_CLIENTS, &header(&["c", "n", "e"])).unwrap();
        let f = m.map(&Row(vec!["1", "n", "nope"])).unwrap_err();
        assert_eq!(f.messages, vec!["Email: `nope` is not an email address"]);
    }

    #[test]
    fn literals_that_need_escaping_are_noticed() {
        let mut quoted = field("Name", "n", &[], &[]);
        quoted.source = ValueSource::Constant("say \"hi\"".into());
        let plain = field("Code", "c", &["default:none"], &[]);
        let h = header(&["c", "n"]);
        let m = Mapper::compile(std::slice::from_ref(&plain), REPSLY_CLIENTS, &h).unwrap();
        assert!(m.literals_plain());
        let m = Mapper::compile(&[plain.clone(), quoted], REPSLY_CLIENTS, &h).unwrap();
        assert!(!m.literals_plain());
        let tab = field("Code", "c", &["default:a\tb"], &[]);
        assert!(!Mapper::compile(&[tab], REPSLY_CLIENTS, &h).unwrap().literals_plain());
    }

    #[test]
    fn missing_columns_fail_the_header() {
        let fields = vec![field("Code", "ID", &[], &[]), field("Name", "Name", &[], &[])];
        let err = Mapper::compile(&fields, REPSLY_CLIENTS, &header(&["Name"])).unwrap_err();
        assert!(err.to_string().contains("`ID`"), "{err}");
    }

    #[test]
    fn a_mapped_column_held_twice_is_refused_naming_both_positions() {
        let fields = vec![field("Code", "ID", &[], &[]), field("Name", "Name", &[], &[])];
        let h = header(&["ID", "Name", "Note", " Name "]);
        let err = Mapper::compile(&fields, REPSLY_CLIENTS, &h).unwrap_err();
        assert_eq!(err.repeated, vec![("Name".into(), "Name".into(), vec![2, 4])]);
        assert!(
            err.to_string().contains(
                "`Name` (for field `Name`) is in the header 2 times, at positions 2 and 4"
            ),
            "{err}"
        );
        // A repeated column nobody maps is no problem.
        let h = header(&["ID", "Name", "Note", "Note"]);
        assert!(Mapper::compile(&fields, REPSLY_CLIENTS, &h).is_ok());
    }

    #[test]
    fn a_header_in_nfd_matches_the_configs_nfc_name() {
        // "Société" as macOS writes it: `e` followed by a combining acute accent.
        let nfd = "Socie\u{301}te\u{301}";
        let fields = vec![field("Code", "ID", &[], &[]), field("Name", "Société", &[], &[])];
        let m = Mapper::compile(&fields, REPSLY_CLIENTS, &header(&["ID", nfd])).unwrap();
        let out = m.map(&Row(vec!["1", "Acme"])).unwrap();
        assert_eq!(out[1], Some(Value::text("Acme")));
        // And the other way round: an NFD name in the config finds an NFC header.
        let fields = vec![field("Code", "ID", &[], &[]), field("Name", nfd, &[], &[])];
        assert!(Mapper::compile(&fields, REPSLY_CLIENTS, &header(&["ID", "Société"])).is_ok());
    }

    #[test]
    fn a_person_is_the_same_whatever_the_case_and_spaces() {
        let f = |t: &str| field(t, t, &[], &[]);
        let fields = vec![f("first_name"), f("last_name"), f("email"), f("date_of_birth")];
        let h = header(&["first_name", "last_name", "email", "date_of_birth"]);
        let m = Mapper::compile(&fields, crate::schema::PLANNR_CLIENTS, &h).unwrap();
        let person = PersonFields::of(m.fields()).unwrap();
        let hash = |cells: Vec<&'static str>| person.hash(&m.map(&Row(cells)).unwrap());
        let a = hash(vec!["Zoë", "Smith", "a@x.example", "01/02/1980"]);
        assert!(a.is_some());
        assert_eq!(a, hash(vec![" ZOË ", "smith", "b@x.example", "01/02/1980"]));
        assert_ne!(a, hash(vec!["Zoë", "Smith", "", "02/02/1980"]));
        assert_eq!(hash(vec!["Zoë", "Smith", "", ""]), None, "no birth date, no claim");
        let no_dob = vec![f("first_name"), f("last_name")];
        let m = Mapper::compile(&no_dob, crate::schema::PLANNR_CLIENTS, &h).unwrap();
        assert_eq!(PersonFields::of(m.fields()), None);
    }

    #[test]
    fn territory_levels() {
        let fields = vec![
            field("Code", "c", &[], &[]),
            field("Name", "n", &[], &[]),
            field("Territory", "t", &[], &[]),
        ];
        let m = Mapper::compile(&fields, REPSLY_CLIENTS, &header(&["c", "n", "t"])).unwrap();
        assert!(m.map(&Row(vec!["1", "n", "UK>London"])).is_ok());
        let long: &'static str = Box::leak(format!("UK>{}", "L".repeat(81)).into_boxed_str());
        assert!(m.map(&Row(vec!["1", "n", long])).is_err());
    }
}
