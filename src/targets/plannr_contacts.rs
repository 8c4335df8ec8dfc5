//! `plannr.contact_details`: one `POST /api/v2/contact-details` per row, many in flight within
//! the connection's limits. A 201 accepts the row (its uuid is recorded in the ledger); a 422,
//! or a 403 about this record, refuses it with Plannr's reasons. Plannr has no idempotency
//! key, so a detail whose answer was lost is never sent again: its row is `unconfirmed`.

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::plannr_common::{failure_from_422, resource};
use super::Target;
use crate::config::TargetSpec;
use crate::delivery::call::{Call, CallError, Reply, Safety};
use crate::delivery::{Adapter, Created, JobReport, JobState, RowNote, RowRef};
use crate::mapping::{is_email, is_uuid, phone, CompiledField, Mapped, Value as Cell};
use crate::row::{Failure, MappedRow, Stage};

pub struct ContactDetails {
    spec: TargetSpec,
}

impl Default for ContactDetails {
    fn default() -> Self {
        Self::new()
    }
}

impl ContactDetails {
    pub fn new() -> Self {
        Self { spec: TargetSpec::Named("plannr.contact_details") }
    }
}

fn text<'a, 'r>(
    fields: &[CompiledField],
    values: &'a Mapped<'r>,
    name: &str,
) -> Option<&'a Cell<'r>> {
    fields.iter().zip(values).find(|(f, _)| f.name == name).and_then(|(_, v)| v.as_ref())
}

fn list(v: &Cell) -> Vec<String> {
    match v {
        Cell::List(l) => l.iter().map(|s| s.to_string()).collect(),
        Cell::Text(t) => t
            .split([',', '|', ';'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
    }
}

impl Target for ContactDetails {
    fn spec(&self) -> &TargetSpec {
        &self.spec
    }

    fn encode(
        &self,
        fields: &[CompiledField],
        values: &Mapped,
        _escapes: super::Escapes,
        out: &mut Vec<u8>,
    ) {
        let mut obj = Map::new();
        for (f, v) in fields.iter().zip(values) {
            let Some(v) = v else { continue };
            let j = match f.name.as_str() {
                "is_primary" => Value::Bool(v.display() == "true"),
                "account_uuids" | "primary_account_uuids" => json!(list(v)),
                _ => Value::String(v.display()),
            };
            obj.insert(f.name.clone(), j);
        }
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(out, &Value::Object(obj));
    }

    /// The rules the API documents, checked before anything is sent.
    fn validate(&self, fields: &[CompiledField], values: &Mapped) -> Result<(), Failure> {
        let mut bad: Vec<(&str, String)> = Vec::new();
        let kind = text(fields, values, "type").map(Cell::display).unwrap_or_default();
        let value = text(fields, values, "value").map(Cell::display).unwrap_or_default();
        match kind.as_str() {
            "email" if !is_email(value.trim()) => {
                bad.push(("value", format!("`{value}` is not an email address")))
            }
            "phone_number"
                if !value.trim().starts_with('+')
                    && phone::to_e164(&value, phone::GB).is_none() =>
            {
                bad.push(("value", format!("`{value}` is not a UK or international phone number")))
            }
            "email" | "phone_number" => {}
            other => bad.push(("type", format!("`{other}` is not email or phone_number"))),
        }
        for name in ["account_uuids", "primary_account_uuids"] {
            if let Some(v) = text(fields, values, name) {
                for u in list(v).iter().filter(|u| !is_uuid(u)) {
                    bad.push((name, format!("`{u}` is not a UUID")));
                }
            }
        }
        if text(fields, values, "account_uuids").is_none_or(|v| list(v).is_empty()) {
            bad.push(("account_uuids", "needs at least one account UUID".into()));
        }
        if bad.is_empty() {
            return Ok(());
        }
        let mut fields_out: Vec<String> = Vec::new();
        for (f, _) in &bad {
            if !fields_out.iter().any(|x| x == f) {
                fields_out.push(f.to_string());
            }
        }
        Err(Failure {
            stage: Stage::Validate,
            fields: fields_out,
            messages: bad.into_iter().map(|(f, m)| format!("{f}: {m}")).collect(),
        })
    }
}

impl Adapter for ContactDetails {
    /// One contact detail per request.
    fn max_rows(&self) -> Option<usize> {
        Some(1)
    }

    /// Plannr has no idempotency key: a detail whose answer was lost may exist already.
    fn create_is_repeatable(&self) -> bool {
        false
    }

    fn create(&self, base: &str, rows: &[MappedRow]) -> Call {
        let body = rows.first().map(|r| Bytes::from(r.body.clone())).unwrap_or_default();
        Call::post_json(
            "contact-details",
            format!("{base}/api/v2/contact-details"),
            body,
            Safety::Once,
        )
    }

    /// 201 accepts the row (its uuid is kept in the ledger); a 422 or a 403 about this record
    /// refuses it with Plannr's reasons.
    fn created(&self, rows: &[MappedRow], answer: Result<&Reply, &CallError>) -> Created {
        let refused = |failure: Failure| {
            let row = rows.first().map_or(RowRef::Unknown, |r| RowRef::Seq(r.source.seq));
            Created::Done(Box::new(JobReport {
                status: "refused".into(),
                refused: vec![RowNote { row, failure }],
                saved: Some(0),
                invalid: Some(1),
                complete: true,
                ..JobReport::default()
            }))
        };
        match answer {
            Ok(reply) => {
                let uuid = resource(reply).ok().and_then(|r| r.get("uuid").and_then(Value::as_str).map(String::from));
                // Recorded even without its uuid, so a restart never creates it again.
                let record = uuid.or_else(|| {
                    tracing::warn!("Plannr created a contact detail but its answer has no uuid");
                    rows.first().map(|r| format!("(no uuid: data row {})", r.source.seq))
                });
                Created::Done(Box::new(JobReport {
                    status: "created".into(),
                    saved: Some(1),
                    complete: true,
                    record,
                    ..JobReport::default()
                }))
            }
            Err(CallError::Rejected { status: 422, body, .. }) => refused(failure_from_422(body, "refused by Plannr")),
            Err(CallError::Rejected { status: 403, message, .. }) => refused(Failure::new(
                Stage::Remote,
                None,
                format!("Plannr does not allow this record (HTTP 403: {message}); an account in account_uuids may not be a client"),
            )),
            Err(CallError::Rejected { status, message, .. }) => {
                refused(Failure::new(Stage::Remote, None, format!("Plannr refused it (HTTP {status}): {message}")))
            }
            Err(e) => Created::Failed(e.to_string()),
        }
    }

    /// Contact details have no job to follow.
    fn status(&self, base: &str, job: &str) -> Call {
        Call::get("contact-details", format!("{base}/api/v2/contact-details/{job}"))
    }

    fn read_status(&self, _base: &str, _reply: &Reply) -> Result<JobState, String> {
        Err("a contact detail has no status to follow".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::SourceRow;

    #[test]
    fn a_201_without_a_uuid_is_still_recorded() {
        let rows = [MappedRow {
            source: SourceRow { seq: 7, line: 9, raw: Default::default() },
            key: String::new(),
            body: Vec::new(),
            partition: Default::default(),
        }];
        let reply = Reply {
            status: 201,
            headers: Default::default(),
            body: Bytes::from_static(br#"{"data": {"type": "email"}}"#),
        };
        let Created::Done(report) = ContactDetails::new().created(&rows, Ok(&reply)) else {
            panic!("a 201 is a record made")
        };
        assert!(report.record.is_some_and(|id| id.contains("7")), "kept in the ledger");
    }
}
