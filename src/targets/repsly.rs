//! Repsly's imports, one row of [`ENTITIES`] per target: the endpoint, the key that wraps a
//! batch's records (none: one record per request), the fields that name a record (its upsert
//! key), the shape of its custom fields, and how Repsly answers. Most start a job, polled on
//! `export/importStatus/{id}` until it ends: `RowsInserted + RowsUpdated` and `RowsInvalid`
//! must account for every row sent, `Errors[]` names refused rows and `Warnings[]` saved ones,
//! by key. Users answer inline, with the account's seats before and after
//! ([`super::repsly_users`]). Records are written by [`super::repsly_json`].

use bytes::Bytes;
use serde_json::Value as Json;

use super::repsly_json::{entity_json, Custom, Layout};
use super::Escapes;
use super::Target;
use crate::config::{PipelineSettings, TargetSpec};
use crate::delivery::call::{message_of, Call, CallError, Reply, Safety};
use crate::delivery::{Adapter, Created, JobReport, JobState, RowNote, RowRef};
use crate::mapping::{CompiledField, Mapped, Value};
use crate::row::{Failure, MappedRow, Stage};

/// How Repsly answers an entity's import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// "... import job started asynchronously under ID: <id>", then `importStatus`.
    Job,
    /// The outcome in the answer itself, with a `Summary` (users).
    Inline,
}

/// One Repsly import target, described by data.
#[derive(Debug)]
pub struct Entity {
    pub target: &'static str,
    /// The path under the base URL (`import/productList`), also the call's name.
    pub endpoint: &'static str,
    /// The member a batch's records are wrapped in (`{"Products": [...]}`); `None`: the
    /// endpoint takes one record, bare.
    pub wrapper: Option<&'static str>,
    /// The fields that together name a record; `Errors[]` names rows by them (joined by
    /// `/` when there are several).
    pub key: &'static [&'static str],
    pub answer: Answer,
    /// How `<prefix>.<name>` fields are sent, when the entity has custom fields.
    pub custom: Option<Custom>,
}

/// Every Repsly target (`api/repsly.md`). Wrappers other than `Users` are **assumed** (the
/// docs show only the user list's): the list's plural entity name.
pub const ENTITIES: &[Entity] = &[
    Entity {
        target: "repsly.clients",
        endpoint: "import/clientList",
        wrapper: Some("Clients"),
        key: &["Code"],
        answer: Answer::Job,
        custom: Some(Custom::CUSTOM_FIELDS),
    },
    Entity {
        target: "repsly.products",
        endpoint: "import/productList",
        wrapper: Some("Products"),
        key: &["Code"],
        answer: Answer::Job,
        custom: Some(Custom::CUSTOM_ATTRIBUTES),
    },
    Entity {
        target: "repsly.pricelist_items",
        endpoint: "import/pricelistItemList",
        wrapper: Some("PricelistItems"),
        key: &["PricelistName", "ProductCode"],
        answer: Answer::Job,
        custom: None,
    },
    Entity {
        target: "repsly.accounts",
        endpoint: "import/accountList",
        wrapper: Some("Accounts"),
        key: &["Code"],
        answer: Answer::Job,
        custom: None,
    },
    Entity {
        target: "repsly.schedules",
        endpoint: "import/schedule",
        wrapper: None,
        key: &["ScheduleCode"],
        answer: Answer::Job,
        custom: None,
    },
    Entity {
        target: "repsly.users",
        endpoint: "import/userList",
        wrapper: Some("Users"),
        key: &["Code"],
        answer: Answer::Inline,
        custom: Some(Custom::ATTRIBUTES),
    },
];

/// A Repsly import target for a pipeline.
pub struct RepslyImport {
    spec: TargetSpec,
    entity: &'static Entity,
    /// Where the key's fields are among the pipeline's fields (mapper order); `None` for a
    /// key field the pipeline does not map.
    key_at: Vec<Option<usize>>,
    /// Every record's key is a required field: sending a batch again only updates.
    keyed: bool,
    /// How its records are written, from the pipeline's fields (mapper order).
    layout: Layout,
}

impl RepslyImport {
    /// The target named `name` (a row of [`ENTITIES`]), for fields named `fields` in order.
    pub fn new(name: &str, fields: &[String]) -> Option<Self> {
        let entity = ENTITIES.iter().find(|e| e.target == name)?;
        let schema = crate::schema::schema_for(name);
        let key_at = entity.key.iter().map(|k| fields.iter().position(|f| f == k)).collect();
        let keyed =
            entity.key.iter().all(|k| schema.fields.iter().any(|d| d.name == *k && d.required));
        let spec = TargetSpec::Named(crate::schema::target(name)?.name);
        let layout = Layout::new(&schema, entity.custom.as_ref(), fields);
        Some(Self { spec, entity, key_at, keyed, layout })
    }

    /// The target for a pipeline whose target is a Repsly one.
    pub fn for_pipeline(pipeline: &PipelineSettings) -> Option<Self> {
        let fields: Vec<String> = pipeline.fields.iter().map(|f| f.target.clone()).collect();
        Self::new(&pipeline.target.name(), &fields)
    }
}

impl Target for RepslyImport {
    fn spec(&self) -> &TargetSpec {
        &self.spec
    }

    /// From the layout settled for the pipeline's fields, which are `fields` in order.
    fn encode(
        &self,
        fields: &[CompiledField],
        values: &Mapped,
        escapes: Escapes,
        out: &mut Vec<u8>,
    ) {
        debug_assert_eq!(fields.len(), self.layout.width(), "the layout is of other fields");
        entity_json(&self.layout, values, escapes, out)
    }

    /// The key's values, joined by `/`; empty when one of them is missing.
    fn key(&self, _fields: &[CompiledField], values: &Mapped) -> String {
        let part = |at: &Option<usize>| {
            at.and_then(|i| values.get(i)).and_then(Option::as_ref).map(Value::display)
        };
        match self.key_at.as_slice() {
            [one] => part(one).unwrap_or_default(),
            many => {
                let parts: Option<Vec<String>> = many.iter().map(part).collect();
                parts.map(|p| p.join("/")).unwrap_or_default()
            }
        }
    }
}

impl Adapter for RepslyImport {
    /// One record per request for an endpoint that takes one.
    fn max_rows(&self) -> Option<usize> {
        self.entity.wrapper.is_none().then_some(1)
    }

    /// An import is an upsert by key: sending it again changes nothing, when every record
    /// has its key (a schedule without a ScheduleCode would be created twice).
    fn create_is_repeatable(&self) -> bool {
        self.keyed
    }

    fn create(&self, base: &str, rows: &[MappedRow]) -> Call {
        let body = match self.entity.wrapper {
            Some(wrapper) => wrapped(wrapper, rows),
            None => rows.first().map(|r| Bytes::from(r.body.clone())).unwrap_or_default(),
        };
        let safety = if self.keyed || rows.iter().all(|r| !r.key.is_empty()) {
            Safety::Repeatable
        } else {
            Safety::Once
        };
        let url = format!("{base}/{}", self.entity.endpoint);
        Call::post_json(self.entity.endpoint, url, body, safety)
    }

    fn created(&self, rows: &[MappedRow], answer: Result<&Reply, &CallError>) -> Created {
        let reply = match answer {
            Ok(reply) => reply,
            // A 400 (or a body too large) can be one record's fault: split to find it.
            Err(CallError::Rejected { status: 400 | 413, body, .. }) => {
                return Created::Refused(format!("Repsly refused the batch: {}", message_of(body)))
            }
            Err(e) => return Created::Failed(e.to_string()),
        };
        let v = reply.json().unwrap_or_default();
        let message = v.get("Message").and_then(Json::as_str).unwrap_or_default();
        match v.get("Code").and_then(Json::as_i64) {
            Some(0) => match self.entity.answer {
                Answer::Job => match job_id(message) {
                    Some(id) => Created::Job(id),
                    None => Created::Unclear(format!(
                        "Repsly accepted the batch but its answer names no job id (`{message}`)"
                    )),
                },
                Answer::Inline => super::repsly_users::read(&v, rows.len()),
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
            ..JobReport::default()
        })))
    }
}

/// `{"<wrapper>":[row,row,...]}` from the rows' encoded records.
fn wrapped(wrapper: &str, rows: &[MappedRow]) -> Bytes {
    let mut body = Vec::with_capacity(
        rows.iter().map(|r| r.body.len() + 1).sum::<usize>() + wrapper.len() + 8,
    );
    body.extend_from_slice(b"{\"");
    body.extend_from_slice(wrapper.as_bytes());
    body.extend_from_slice(b"\":[");
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&r.body);
    }
    body.extend_from_slice(b"]}");
    Bytes::from(body)
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

/// A member of a JSON object; `null` is the same as absent.
pub(super) fn field<'a>(v: &'a Json, key: &str) -> Option<&'a Json> {
    v.get(key).filter(|x| !x.is_null())
}

/// `Errors[]` or `Warnings[]`: `{"ItemID": <key>, "ItemName": <field>, "ItemStatus": <text>}`.
/// An entry whose ItemID is not a key the batch holds matches no row (and leaves the rows
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
            job_id("Product import job started asynchronously under ID: 3f2b8c1e-1d2a-4b5c-8e9f-0a1b2c3d4e5f").as_deref(),
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

    #[test]
    fn every_repsly_target_has_an_entity_whose_key_fields_its_schema_knows() {
        for t in crate::schema::TARGETS.iter().filter(|t| t.name.starts_with("repsly.")) {
            let e = ENTITIES
                .iter()
                .find(|e| e.target == t.name)
                .unwrap_or_else(|| panic!("{}", t.name));
            for k in e.key {
                assert!(t.schema.fields.iter().any(|d| d.name == *k), "{}: {k}", t.name);
            }
            assert_eq!(e.custom.is_some(), t.schema.custom_prefix.is_some(), "{}", t.name);
        }
        let names: Vec<String> = ["PricelistName", "ProductCode", "Price"].map(String::from).into();
        let items = RepslyImport::new("repsly.pricelist_items", &names).unwrap();
        let text = |s: &'static str| Some(Value::Text(s.into()));
        assert_eq!(items.key(&[], &vec![text("Retail"), text("SKU1"), text("2")]), "Retail/SKU1");
        assert_eq!(items.key(&[], &vec![None, text("SKU1"), text("2")]), "", "a part missing");
        assert!(items.create_is_repeatable());
        let schedules = RepslyImport::new("repsly.schedules", &["ClientCode".into()]).unwrap();
        assert!(!schedules.create_is_repeatable(), "Repsly makes up a missing ScheduleCode");
        assert_eq!(schedules.max_rows(), Some(1));
    }
}
