//! `plannr.contact_details`: one `POST /api/v2/contact-details` per row, run concurrently
//! within the connection's limits. A 201 accepts the row (its uuid is recorded in the ledger
//! first, so a restart never creates it twice); a 422 reports it with Plannr's messages.

use futures::future::{join_all, BoxFuture};
use futures::FutureExt;
use serde_json::{json, Map, Value};

use super::plannr_common::{failure_from_422, unwrap_data};
use super::{BatchError, JobSink, MappedRow, ResumeJob, Target};
use crate::config::TargetSpec;
use crate::delivery::{CallError, Connection};
use crate::mapping::{is_email, is_uuid, phone, CompiledField, Mapped, Value as Cell};
use crate::row::{Failure, Outcome, Stage};

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
        Self { spec: TargetSpec::PlannrContactDetails }
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

async fn post(conn: &Connection, row: &MappedRow, jobs: &dyn JobSink) -> Outcome {
    let url = format!("{}/api/v2/contact-details", conn.base_url());
    let body = bytes::Bytes::from(row.body.clone());
    let result = conn
        .call("contact-details", |c| {
            c.post(&url).header("Content-Type", "application/json").body(body.clone())
        })
        .await;
    match result {
        Ok(reply) => {
            let created = serde_json::from_slice::<Value>(&reply.body).ok().map(unwrap_data);
            match created.as_ref().and_then(|v| v.get("uuid")).and_then(Value::as_str) {
                Some(uuid) => jobs.created(uuid, std::slice::from_ref(row)).await,
                None => tracing::warn!(
                    line = row.source.line,
                    "Plannr created a contact detail but its reply has no uuid"
                ),
            }
            Outcome::Accepted
        }
        Err(CallError::Rejected { status: 422, body, .. }) => {
            Outcome::Failed(failure_from_422(&body, "refused by Plannr"))
        }
        Err(e @ CallError::Auth { .. }) => {
            Outcome::Failed(Failure::new(Stage::Unprocessed, None, e.to_string()))
        }
        Err(e) => Outcome::Failed(Failure::new(Stage::Remote, None, e.to_string())),
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

    fn deliver<'a>(
        &'a self,
        conn: &'a Connection,
        rows: &'a [MappedRow],
        jobs: &'a dyn JobSink,
    ) -> BoxFuture<'a, Result<Vec<Outcome>, BatchError>> {
        async move { Ok(join_all(rows.iter().map(|r| post(conn, r, jobs))).await) }.boxed()
    }

    /// A contact detail the ledger holds was created: nothing to send again.
    fn resume<'a>(
        &'a self,
        _conn: &'a Connection,
        _job: &'a ResumeJob,
        rows: &'a [MappedRow],
        _jobs: &'a dyn JobSink,
    ) -> BoxFuture<'a, Result<Vec<Outcome>, BatchError>> {
        async move { Ok(rows.iter().map(|_| Outcome::Accepted).collect()) }.boxed()
    }
}
