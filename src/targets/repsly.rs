//! `repsly.clients`: `POST import/clientList` of a batch, then `export/importStatus/{id}`
//! until the job ends. `RowsInserted + RowsUpdated` and `RowsInvalid` must account for every
//! row sent; `Errors[]` names refused rows and `Warnings[]` saved ones, by `Code`.

use bytes::Bytes;
use serde_json::Value as Json;

use super::Target;
use crate::config::TargetSpec;
use crate::delivery::call::{message_of, Call, CallError, Reply, Safety};
use crate::delivery::{Adapter, Created, JobReport, JobState, RowNote, RowRef};
use crate::mapping::json::{push_str, Escapes};
use crate::mapping::{CompiledField, Mapped, Value};
use crate::row::{Failure, MappedRow, Stage};
use crate::schema::FieldType;

pub struct RepslyClients {
    spec: TargetSpec,
}

impl Default for RepslyClients {
    fn default() -> Self {
        Self::new()
    }
}

impl RepslyClients {
    pub fn new() -> Self {
        Self { spec: TargetSpec::RepslyClients }
    }
}

/// The JSON object Repsly expects for one client, written straight to bytes (this runs for
/// every row; building a `serde_json::Map` first cost more than the rest of the encoding).
pub fn client_json(fields: &[CompiledField], values: &Mapped, escapes: Escapes, out: &mut Vec<u8>) {
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
        match (f.def.map(|d| d.ty), v) {
            (Some(FieldType::Bool), Value::Text(t)) => {
                out.extend_from_slice(if t == "true" { b"true" } else { b"false" })
            }
            // `PriceLists`, the schema's one list field: objects with a `Name` each.
            (Some(FieldType::List { .. }), Value::List(items)) => {
                out.push(b'[');
                for (i, n) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(b"{\"Name\":");
                    push_str(out, n, escapes);
                    out.push(b'}');
                }
                out.push(b']');
            }
            (_, Value::List(items)) => push_str(out, &items.join(","), escapes),
            (_, Value::Text(t)) => push_str(out, t, escapes),
        }
    }
    if customs {
        if out.len() > open {
            out.push(b',');
        }
        out.extend_from_slice(b"\"CustomFields\":[");
        let custom = fields.iter().zip(values).filter(|(f, _)| f.custom);
        for (f, v) in custom.filter_map(|(f, v)| Some((f, v.as_ref()?))) {
            // After an object, not after the `[` (cheaper than counting: callgrind).
            if out.last() == Some(&b'}') {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"Field\":");
            // A name from the configuration, not from the row.
            let name = f.name.strip_prefix("CustomFields.").unwrap_or(&f.name);
            push_str(out, name, Escapes::Possible);
            out.extend_from_slice(b",\"Value\":");
            match v {
                Value::Text(t) => push_str(out, t, escapes),
                list => push_str(out, &list.display(), escapes),
            }
            out.push(b'}');
        }
        out.push(b']');
    }
    out.push(b'}');
}

/// The job id in "Client import job started asynchronously under ID: <id>": an integer or a
/// GUID (8-4-4-4-12 hex digits), the two shapes Repsly documents; any other word is not one.
pub fn job_id(message: &str) -> Option<String> {
    let (_, after) = message.rsplit_once("ID:")?;
    let id = after.trim().trim_end_matches('.').trim();
    (is_integer(id) || is_guid(id)).then(|| id.to_string())
}

fn is_integer(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_guid(s: &str) -> bool {
    let s = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')).unwrap_or(s);
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl Target for RepslyClients {
    fn spec(&self) -> &TargetSpec {
        &self.spec
    }

    fn encode(
        &self,
        fields: &[CompiledField],
        values: &Mapped,
        escapes: Escapes,
        out: &mut Vec<u8>,
    ) {
        client_json(fields, values, escapes, out)
    }

    fn key(&self, fields: &[CompiledField], values: &Mapped) -> String {
        fields
            .iter()
            .zip(values)
            .find(|(f, _)| f.name == "Code")
            .and_then(|(_, v)| v.as_ref().map(Value::display))
            .unwrap_or_default()
    }
}

impl Adapter for RepslyClients {
    /// An import is an upsert by `Code`: sending it again changes nothing.
    fn create_is_repeatable(&self) -> bool {
        true
    }

    fn create(&self, base: &str, rows: &[MappedRow]) -> Call {
        let mut body =
            Vec::with_capacity(rows.iter().map(|r| r.body.len() + 1).sum::<usize>() + 16);
        body.extend_from_slice(b"{\"Clients\":[");
        for (i, r) in rows.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&r.body);
        }
        body.extend_from_slice(b"]}");
        let url = format!("{base}/import/clientList");
        Call::post_json("import/clientList", url, Bytes::from(body), Safety::Repeatable)
    }

    fn created(&self, _rows: &[MappedRow], answer: Result<&Reply, &CallError>) -> Created {
        let reply = match answer {
            Ok(reply) => reply,
            // A 400 (or a body too large) can be one client's fault: split to find it.
            Err(CallError::Rejected { status: 400 | 413, body, .. }) => {
                return Created::Refused(format!("Repsly refused the batch: {}", message_of(body)))
            }
            Err(e) => return Created::Failed(e.to_string()),
        };
        let v = reply.json().unwrap_or_default();
        let code = v.get("Code").and_then(Json::as_i64);
        let message = v.get("Message").and_then(Json::as_str).unwrap_or_default();
        match code {
            Some(0) => match job_id(message) {
                Some(id) => Created::Job(id),
                None => Created::Unclear(format!(
                    "Repsly accepted the batch but its answer names no job id (`{message}`)"
                )),
            },
            Some(c) => Created::Refused(format!("Repsly refused the batch (Code {c}): {message}")),
            None => Created::Unclear(format!(
                "Repsly's answer to the import was not understood: {}",
                message_of(&reply.body)
            )),
        }
    }

    fn status(&self, base: &str, job: &str) -> Call {
        Call::get("export/importStatus", format!("{base}/export/importStatus/{job}"))
    }

    fn read_status(&self, _base: &str, reply: &Reply) -> Result<JobState, String> {
        let v = reply.json()?;
        let status = field(&v, "ImportStatus").and_then(Json::as_str).unwrap_or_default();
        let failed = status.eq_ignore_ascii_case("failed");
        if !failed && !status.eq_ignore_ascii_case("completed") {
            return Ok(JobState::Running);
        }
        let count = |k: &str| field(&v, k).and_then(Json::as_u64);
        let saved = match (count("RowsInserted"), count("RowsUpdated")) {
            (None, None) => count("RowsTotal"),
            // A sum past u64 is no count at all (its rows are then unconfirmed).
            (i, u) => i.unwrap_or(0).checked_add(u.unwrap_or(0)),
        };
        Ok(JobState::Finished(Box::new(JobReport {
            status: status.to_string(),
            failed,
            refused: notes(field(&v, "Errors"), Stage::Remote),
            warned: notes(field(&v, "Warnings"), Stage::Warning),
            saved,
            invalid: count("RowsInvalid"),
            complete: false,
            more: None,
            fetched: None,
            record: None,
        })))
    }
}

/// A member of a JSON object; `null` is the same as absent.
fn field<'a>(v: &'a Json, key: &str) -> Option<&'a Json> {
    v.get(key).filter(|x| !x.is_null())
}

/// `Errors[]` or `Warnings[]`: `{"ItemID": <Code>, "ItemName": <field>, "ItemStatus": <text>}`.
/// An entry whose ItemID is not a Code the batch holds matches no row (and leaves the rows
/// it may concern unconfirmed).
fn notes(list: Option<&Json>, stage: Stage) -> Vec<RowNote> {
    let Some(Json::Array(items)) = list else { return Vec::new() };
    items
        .iter()
        .map(|item| {
            let id = field(item, "ItemID").or_else(|| field(item, "Code"));
            let row = match id {
                Some(Json::String(s)) => RowRef::Key(s.clone()),
                Some(Json::Number(n)) => RowRef::Key(n.to_string()),
                _ => RowRef::Unknown,
            };
            let name = field(item, "ItemName").and_then(Json::as_str).filter(|n| !n.is_empty());
            let text = field(item, "ItemStatus").and_then(Json::as_str).unwrap_or("refused");
            let failure = Failure {
                stage,
                fields: name.map(|n| vec![n.to_string()]).unwrap_or_default(),
                messages: vec![match name {
                    Some(n) => format!("{n}: {text}"),
                    None => text.to_string(),
                }],
            };
            RowNote { row, failure }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids() {
        assert_eq!(
            job_id("Client import job started asynchronously under ID: 12345").as_deref(),
            Some("12345")
        );
        assert_eq!(
            job_id("Client import job started asynchronously under ID: 3f2b8c1e-1d2a-4b5c-8e9f-0a1b2c3d4e5f").as_deref(),
            Some("3f2b8c1e-1d2a-4b5c-8e9f-0a1b2c3d4e5f")
        );
        assert_eq!(job_id("Client import job started"), None);
        assert_eq!(job_id("Client import job added under ID: added"), None, "a hex-looking word");
        assert_eq!(job_id("Client import job started asynchronously under ID: cafe"), None);
        assert_eq!(job_id("started under ID: 42."), Some("42".into()));
    }

    proptest::proptest! {
        #[test]
        fn any_message_is_read_without_panic(message in ".{0,120}") {
            if let Some(id) = job_id(&message) {
                proptest::prop_assert!(is_integer(&id) || is_guid(&id));
            }
        }

        #[test]
        fn job_ids_round_trip(n in proptest::num::u64::ANY, g in proptest::num::u128::ANY) {
            let int = n.to_string();
            let message = format!("Client import job started asynchronously under ID: {int}");
            proptest::prop_assert_eq!(job_id(&message), Some(int));
            let h = format!("{g:032x}");
            let guid = format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]);
            let message = format!("Client import job started asynchronously under ID: {guid}");
            proptest::prop_assert_eq!(job_id(&message), Some(guid));
        }
    }

    struct Row(Vec<&'static str>);
    impl crate::mapping::Cells<'static> for Row {
        fn cell(&self, i: usize) -> Result<std::borrow::Cow<'static, str>, String> {
            Ok(self.0.get(i).copied().unwrap_or("").into())
        }
    }

    #[test]
    fn client_objects_have_every_present_member_once_and_custom_fields_last() {
        use crate::config::{EmptyPolicy, FieldSettings, ValueSource};
        use crate::mapping::{Mapper, Transform};
        let field = |target: &str, col: &str, t: &[&str]| FieldSettings {
            target: target.into(),
            source: ValueSource::Columns(vec![col.into()]),
            transforms: t.iter().map(|s| Transform::parse(s).unwrap()).collect(),
            validators: Vec::new(),
            empty: EmptyPolicy::Omit,
        };
        let fields = [
            field("CustomFields.Region", "R", &[]),
            field("City", "C", &[]),
            field("Note", "N", &[]),
            field("Active", "A", &["bool"]),
            field("PriceLists", "P", &["split:|"]),
            field("CustomFields.Tier", "T", &[]),
        ];
        let header: Vec<String> = ["R", "C", "N", "A", "P", "T"].map(String::from).into();
        let m = Mapper::compile(&fields, crate::schema::REPSLY_CLIENTS, &header).unwrap();
        let encode = |cells: Vec<&'static str>, escapes| {
            let values = m.map(&Row(cells)).unwrap();
            let mut out = Vec::new();
            client_json(m.fields(), &values, escapes, &mut out);
            String::from_utf8(out).unwrap()
        };
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
}
