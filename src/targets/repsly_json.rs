//! A Repsly record as JSON, written straight to bytes from the mapped values and the
//! schema's types (this runs for every row; building a `serde_json::Map` first cost more than
//! the rest of the encoding). Custom fields go last, in the entity's own array shape.

use crate::mapping::json::{push_str, Escapes};
use crate::mapping::{CompiledField, Mapped, Value};
use crate::schema::{FieldType, Form};

/// How an entity sends `<prefix>.<name>` fields: an array of `{name: ..., value: ...}`
/// objects, each part written once here as the bytes that open it.
#[derive(Debug, Clone, Copy)]
pub struct Custom {
    /// The field names' prefix in a config (`CustomFields.`), as the schema has it.
    pub prefix: &'static str,
    /// `"CustomFields":[`
    pub open: &'static [u8],
    /// `{"Field":`
    pub name: &'static [u8],
    /// `,"Value":`
    pub value: &'static [u8],
}

impl Custom {
    /// Clients: `"CustomFields": [{"Field": ..., "Value": ...}]`.
    pub const CUSTOM_FIELDS: Custom = Custom {
        prefix: "CustomFields.",
        open: b"\"CustomFields\":[",
        name: b"{\"Field\":",
        value: b",\"Value\":",
    };
    /// Products: `"CustomAttributes": [{"AttributeTitle": ..., "Value": ...}]`.
    pub const CUSTOM_ATTRIBUTES: Custom = Custom {
        prefix: "CustomAttributes.",
        open: b"\"CustomAttributes\":[",
        name: b"{\"AttributeTitle\":",
        value: b",\"Value\":",
    };
    /// Users: `"Attributes": [{"Title": ..., "Value": ...}]`.
    pub const ATTRIBUTES: Custom = Custom {
        prefix: "Attributes.",
        open: b"\"Attributes\":[",
        name: b"{\"Title\":",
        value: b",\"Value\":",
    };
}

/// The JSON object Repsly expects for one record.
pub fn entity_json(
    fields: &[CompiledField],
    values: &Mapped,
    escapes: Escapes,
    custom: Option<&Custom>,
    out: &mut Vec<u8>,
) {
    out.push(b'{');
    let open = out.len();
    let mut customs = false;
    for (f, v) in fields.iter().zip(values) {
        let Some(v) = v else { continue };
        if f.custom {
            customs = true;
            continue;
        }
        let key = f.json_key.as_bytes();
        out.extend_from_slice(if out.len() == open { &key[1..] } else { key });
        match (f.def.as_ref().map(|d| &d.ty), v) {
            (Some(FieldType::Bool), Value::Text(t)) => {
                out.extend_from_slice(if t == "true" { b"true" } else { b"false" })
            }
            (Some(FieldType::List { form, .. }), Value::List(items)) => {
                push_list(out, *form, items, escapes)
            }
            // The mapper wrote numbers as JSON writes them; an empty one (`empty = "clear"`)
            // is null.
            (
                Some(FieldType::Decimal { .. } | FieldType::Number | FieldType::Integer { .. }),
                Value::Text(t),
            ) => out.extend_from_slice(if t.is_empty() { b"null" } else { t.as_bytes() }),
            (_, Value::List(items)) => push_str(out, &items.join(","), escapes),
            (_, Value::Text(t)) => push_str(out, t, escapes),
        }
    }
    if let (true, Some(custom)) = (customs, custom) {
        if out.len() > open {
            out.push(b',');
        }
        push_customs(out, fields, values, escapes, custom);
    }
    out.push(b'}');
}

/// The custom fields' array: one object per field that has a value.
fn push_customs(
    out: &mut Vec<u8>,
    fields: &[CompiledField],
    values: &Mapped,
    escapes: Escapes,
    custom: &Custom,
) {
    out.extend_from_slice(custom.open);
    let present = fields.iter().zip(values).filter(|(f, _)| f.custom);
    for (f, v) in present.filter_map(|(f, v)| Some((f, v.as_ref()?))) {
        // After an object, not after the `[` (cheaper than counting: callgrind).
        if out.last() == Some(&b'}') {
            out.push(b',');
        }
        out.extend_from_slice(custom.name);
        // A name from the configuration, not from the row.
        // (A prefix stripped, not a `.` searched for: a search per row costs ~1 % of `plan`.)
        let name = f.name.strip_prefix(custom.prefix).unwrap_or(&f.name);
        push_str(out, name, Escapes::Possible);
        out.extend_from_slice(custom.value);
        match v {
            Value::Text(t) => push_str(out, t, escapes),
            // A multiselect's options, `|`-separated.
            list => push_str(out, &list.display(), escapes),
        }
        out.push(b'}');
    }
    out.push(b']');
}

/// A list as its form sends it.
fn push_list(out: &mut Vec<u8>, form: Form, items: &[std::borrow::Cow<'_, str>], escapes: Escapes) {
    match form {
        Form::Joined(sep) => {
            let sep = char::from(sep).to_string();
            push_str(out, &items.join(sep.as_str()), escapes)
        }
        Form::Array => push_each(out, items, |out, item| push_str(out, item, escapes)),
        Form::Objects(key) => push_each(out, items, |out, item| {
            out.extend_from_slice(b"{\"");
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
            push_str(out, item, escapes);
            out.push(b'}');
        }),
        Form::Packaging => {
            out.extend_from_slice(b"{\"Codes\":");
            push_each(out, items, |out, item| {
                out.extend_from_slice(b"{\"Value\":");
                push_str(out, item, escapes);
                out.push(b'}');
            });
            out.extend_from_slice(b",\"IsSet\":true}");
        }
        Form::Tasks => push_each(out, items, |out, item| {
            // The mapper wrote each task as `Type: description`.
            let (kind, description) = item.split_once(':').unwrap_or((item, ""));
            out.extend_from_slice(b"{\"TaskType\":");
            push_str(out, kind.trim(), escapes);
            out.extend_from_slice(b",\"TaskDescription\":");
            push_str(out, description.trim(), escapes);
            out.push(b'}');
        }),
    }
}

/// `[a,b,...]`, each item written by `one`.
fn push_each(
    out: &mut Vec<u8>,
    items: &[std::borrow::Cow<'_, str>],
    mut one: impl FnMut(&mut Vec<u8>, &str),
) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        one(out, item);
    }
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EmptyPolicy, FieldSettings, ValueSource};
    use crate::mapping::{Mapper, Transform};

    struct Row(Vec<&'static str>);
    impl crate::mapping::Cells<'static> for Row {
        fn cell(&self, i: usize) -> Result<std::borrow::Cow<'static, str>, String> {
            Ok(self.0.get(i).copied().unwrap_or("").into())
        }
    }

    fn field(target: &str, col: &str, t: &[&str]) -> FieldSettings {
        FieldSettings {
            target: target.into(),
            source: ValueSource::Columns(vec![col.into()]),
            transforms: t.iter().map(|s| Transform::parse(s).unwrap()).collect(),
            validators: Vec::new(),
            empty: EmptyPolicy::Omit,
            date_format: None,
            lookup: None,
        }
    }

    fn encoder(
        fields: &[FieldSettings],
        schema: crate::schema::Schema,
        custom: Option<Custom>,
    ) -> impl Fn(Vec<&'static str>, Escapes) -> String {
        let header: Vec<String> = fields
            .iter()
            .map(|f| match &f.source {
                ValueSource::Columns(c) => c[0].clone(),
                _ => String::new(),
            })
            .collect();
        let m = Mapper::compile(fields, schema, &header).unwrap();
        move |cells, escapes| {
            let values = m.map(&Row(cells)).unwrap();
            let mut out = Vec::new();
            entity_json(m.fields(), &values, escapes, custom.as_ref(), &mut out);
            String::from_utf8(out).unwrap()
        }
    }

    #[test]
    fn client_objects_have_every_present_member_once_and_custom_fields_last() {
        let fields = [
            field("CustomFields.Region", "R", &[]),
            field("City", "C", &[]),
            field("Note", "N", &[]),
            field("Active", "A", &["bool"]),
            field("PriceLists", "P", &["split:|"]),
            field("CustomFields.Tier", "T", &[]),
        ];
        let encode = encoder(&fields, crate::schema::REPSLY_CLIENTS, Some(Custom::CUSTOM_FIELDS));
        assert_eq!(
            encode(vec!["North", "C1", "Zoë \"Z\"", "yes", "A|B", "Gold"], Escapes::Possible),
            r#"{"City":"C1","Note":"Zoë \"Z\"","Active":true,"PriceLists":[{"Name":"A"},{"Name":"B"}],"CustomFields":[{"Field":"Region","Value":"North"},{"Field":"Tier","Value":"Gold"}]}"#
        );
        // The first member present goes without a comma; absent custom fields leave no gap.
        assert_eq!(
            encode(vec!["", "", "", "no", "", "Gold"], Escapes::Absent),
            r#"{"Active":false,"CustomFields":[{"Field":"Tier","Value":"Gold"}]}"#
        );
        assert_eq!(encode(vec![""; 6], Escapes::Absent), "{}");
    }

    #[test]
    fn products_carry_numbers_packaging_and_custom_attributes() {
        let fields = [
            field("Code", "SKU", &[]),
            field("UnitPrice", "Price", &[]),
            field("Packaging", "Packs", &["split:|"]),
            field("AdditionalBarcodes", "More", &["split:;"]),
            field("CustomAttributes.Allergens", "Allergens", &["split:,"]),
        ];
        let encode =
            encoder(&fields, crate::schema::REPSLY_PRODUCTS, Some(Custom::CUSTOM_ATTRIBUTES));
        assert_eq!(
            encode(vec!["P1", "+04.50", "BOX6|BOX12", "111;222", "Nuts, Milk"], Escapes::Possible),
            r#"{"Code":"P1","UnitPrice":4.50,"Packaging":{"Codes":[{"Value":"BOX6"},{"Value":"BOX12"}],"IsSet":true},"AdditionalBarcodes":"111,222","CustomAttributes":[{"AttributeTitle":"Allergens","Value":"Nuts|Milk"}]}"#
        );
        let out: serde_json::Value =
            serde_json::from_str(&encode(vec!["P1", "3", "", "", ""], Escapes::Absent)).unwrap();
        assert_eq!(out, serde_json::json!({"Code": "P1", "UnitPrice": 3}));
    }

    #[test]
    fn schedules_carry_joined_days_and_tasks() {
        let fields = [
            field("RepeatDays", "Days", &[]),
            field("Tasks", "Tasks", &["split:;"]),
            field("RepeatEveryWeeks", "Every", &[]),
        ];
        let encode = encoder(&fields, crate::schema::REPSLY_SCHEDULES, None);
        let out: serde_json::Value = serde_json::from_str(&encode(
            vec!["monday|Friday", "photo: Shelf; Note: Ask about: stock", "2"],
            Escapes::Possible,
        ))
        .unwrap();
        assert_eq!(
            out,
            serde_json::json!({
                "RepeatDays": "Monday|Friday",
                "Tasks": [
                    {"TaskType": "Photo", "TaskDescription": "Shelf"},
                    {"TaskType": "Note", "TaskDescription": "Ask about: stock"}
                ],
                "RepeatEveryWeeks": 2
            })
        );
    }
}
