//! A Repsly record as JSON, written straight to bytes from the mapped values (this runs for
//! every row; building a `serde_json::Map` first cost more than the rest of the encoding).
//! What depends only on the pipeline (each member's name, how its type is sent, a custom
//! field's opening in the entity's own array shape) is settled once, in a [`Layout`]; per row
//! only the values are written. Custom fields go last.

use crate::mapping::json::{push_str, Escapes};
use crate::mapping::{Mapped, Value};
use crate::schema::{FieldType, Form, Lookup, Schema};

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

/// How one pipeline's records are written: every byte that depends on the pipeline's fields
/// alone, in the order the mapper gives their values. Writing a custom field's name per row
/// (its prefix stripped, the name checked for escapes, the shape's parts copied) cost more
/// than its value: callgrind.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// The record's own members, in field order.
    members: Vec<Member>,
    /// The custom fields, in field order: sent after the members, in one array.
    customs: Vec<CustomMember>,
    /// How many fields it was settled for.
    width: usize,
}

#[derive(Debug, Clone)]
struct Member {
    /// Where its value is among a row's values.
    at: usize,
    /// `,"City":`, the comma skipped before a record's first member.
    key: Box<[u8]>,
    sent: Sent,
}

/// How a member's value is sent, from the schema's type (a plain tag to match on, not a
/// niche to decode: callgrind).
#[derive(Debug, Clone)]
#[repr(u8)]
enum Sent {
    /// A JSON string (a list joined by `,`).
    Text,
    /// `true` or `false`, as the mapper wrote it.
    Bool,
    /// As the mapper wrote it; an empty one (`empty = "clear"`) is null.
    Number,
    /// `[{"Name":"A"},...]`: each item's opening, `{"Name":`.
    Objects(Box<[u8]>),
    /// Any other list form.
    List(Form),
}

#[derive(Debug, Clone)]
struct CustomMember {
    at: usize,
    /// `,"CustomFields":[{"Field":"Region","Value":`: the array's opening and the first
    /// object's, the comma skipped when nothing comes before.
    first: Box<[u8]>,
    /// `,{"Field":"Region","Value":`: a later object's opening.
    next: Box<[u8]>,
}

impl Layout {
    /// For fields named `fields`, in the order their values come, of a target whose schema
    /// is `schema` and whose custom fields (if it has any) are sent as `custom` says.
    pub fn new(schema: &Schema, custom: Option<&Custom>, fields: &[String]) -> Self {
        let mut layout = Self { width: fields.len(), ..Self::default() };
        for (at, name) in fields.iter().enumerate() {
            let sent = match schema.lookup(name) {
                Lookup::Known(def) => sent(&def.ty),
                // A custom field of an entity that has none is not sent (`check` refuses it).
                Lookup::Custom => {
                    if let Some(c) = custom {
                        layout.customs.push(CustomMember::new(at, name, c));
                    }
                    continue;
                }
                Lookup::Unknown => Sent::Text,
            };
            let key = [b",", json_string(name).as_slice(), b":"].concat().into();
            layout.members.push(Member { at, key, sent });
        }
        layout
    }

    /// How many fields (values per row) it was settled for.
    pub fn width(&self) -> usize {
        self.width
    }
}

impl CustomMember {
    fn new(at: usize, field: &str, custom: &Custom) -> Self {
        // A name from the configuration, not from a row.
        let name = json_string(field.strip_prefix(custom.prefix).unwrap_or(field));
        let object = [custom.name, name.as_slice(), custom.value].concat();
        let first = [b",", custom.open, object.as_slice()].concat().into();
        let next = [b",", object.as_slice()].concat().into();
        Self { at, first, next }
    }
}

/// How a value of type `ty` is sent.
fn sent(ty: &FieldType) -> Sent {
    match ty {
        FieldType::Bool => Sent::Bool,
        FieldType::Decimal { .. } | FieldType::Number | FieldType::Integer { .. } => Sent::Number,
        FieldType::List { form: Form::Objects(key), .. } => {
            Sent::Objects([b"{", json_string(key).as_slice(), b":"].concat().into())
        }
        FieldType::List { form, .. } => Sent::List(*form),
        _ => Sent::Text,
    }
}

/// `s` as a JSON string, quoted.
fn json_string(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 2);
    push_str(&mut out, s, Escapes::Possible);
    out
}

/// The JSON object Repsly expects for one record whose values (in `layout`'s field order)
/// are `values`.
pub fn entity_json(layout: &Layout, values: &Mapped, escapes: Escapes, out: &mut Vec<u8>) {
    out.push(b'{');
    let open = out.len();
    for m in &layout.members {
        let Some(Some(v)) = values.get(m.at) else { continue };
        out.extend_from_slice(if out.len() == open { &m.key[1..] } else { &m.key });
        match (&m.sent, v) {
            (Sent::Bool, Value::Text(t)) => {
                out.extend_from_slice(if t == "true" { b"true" } else { b"false" })
            }
            (Sent::Number, Value::Text(t)) => {
                out.extend_from_slice(if t.is_empty() { b"null" } else { t.as_bytes() })
            }
            (Sent::Objects(head), Value::List(items)) => push_each(out, items, |out, item| {
                out.extend_from_slice(head);
                push_str(out, item, escapes);
                out.push(b'}');
            }),
            (Sent::List(form), Value::List(items)) => push_list(out, *form, items, escapes),
            (_, Value::List(items)) => push_str(out, &items.join(","), escapes),
            (_, Value::Text(t)) => push_str(out, t, escapes),
        }
    }
    push_customs(out, open, &layout.customs, values, escapes);
    out.push(b'}');
}

/// The custom fields' array, when one has a value: one object per field that has.
fn push_customs(
    out: &mut Vec<u8>,
    open: usize,
    customs: &[CustomMember],
    values: &Mapped,
    escapes: Escapes,
) {
    let mut first = true;
    for c in customs {
        let Some(Some(v)) = values.get(c.at) else { continue };
        let head: &[u8] = match (first, out.len() == open) {
            (true, true) => &c.first[1..],
            (true, false) => &c.first,
            (false, _) => &c.next,
        };
        out.extend_from_slice(head);
        first = false;
        match v {
            Value::Text(t) => push_str(out, t, escapes),
            // A multiselect's options, `|`-separated.
            list => push_str(out, &list.display(), escapes),
        }
        out.push(b'}');
    }
    if !first {
        out.push(b']');
    }
}

/// A list as its form sends it (`Objects` is written from its [`Sent::Objects`] opening).
fn push_list(out: &mut Vec<u8>, form: Form, items: &[std::borrow::Cow<'_, str>], escapes: Escapes) {
    match form {
        Form::Joined(sep) => {
            let sep = char::from(sep).to_string();
            push_str(out, &items.join(sep.as_str()), escapes)
        }
        Form::Array => push_each(out, items, |out, item| push_str(out, item, escapes)),
        // Not reached: a layout writes these from their opening.
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
        let names: Vec<String> = fields.iter().map(|f| f.target.clone()).collect();
        let layout = Layout::new(&schema, custom.as_ref(), &names);
        move |cells, escapes| {
            let values = m.map(&Row(cells)).unwrap();
            let mut out = Vec::new();
            entity_json(&layout, &values, escapes, &mut out);
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
