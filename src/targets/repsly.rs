//! `repsly.clients`: `POST import/clientList` of a batch, then poll `export/importStatus/{id}`.

use std::collections::HashMap;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use serde::Deserialize;
use serde_json::Value as Json;

use super::{BatchError, JobSink, MappedRow, ResumeJob, Target};
use crate::config::TargetSpec;
use crate::delivery::{CallError, Connection};
use crate::mapping::json::{push_str, Escapes};
use crate::mapping::{CompiledField, Mapped, Value};
use crate::row::{Failure, Outcome, Stage};
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

#[derive(Debug, Deserialize)]
struct ImportReply {
    #[serde(rename = "Code")]
    code: i64,
    #[serde(rename = "Message", default)]
    message: String,
}

#[derive(Debug, Deserialize)]
struct StatusReply {
    #[serde(rename = "ImportStatus")]
    status: String,
    #[serde(rename = "RowsInserted", default)]
    inserted: u64,
    #[serde(rename = "RowsUpdated", default)]
    updated: u64,
    #[serde(rename = "Errors", default)]
    errors: Vec<Item>,
}

#[derive(Debug, Deserialize)]
struct Item {
    #[serde(rename = "ItemID", default)]
    id: Json,
    #[serde(rename = "ItemName", default)]
    name: Option<String>,
    #[serde(rename = "ItemStatus", default)]
    status: Option<String>,
}

/// The job id in "Client import job started asynchronously under ID: <id>" (integer or GUID).
pub fn job_id(message: &str) -> Option<String> {
    let after = message.rsplit_once("ID:").map(|(_, id)| id).unwrap_or(message);
    let id = after.trim().trim_end_matches(['.', ' ']);
    let ok = !id.is_empty()
        && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-' || c.is_ascii_digit());
    ok.then(|| id.to_string())
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

    fn deliver<'a>(
        &'a self,
        conn: &'a Connection,
        rows: &'a [MappedRow],
        jobs: &'a dyn JobSink,
    ) -> BoxFuture<'a, Result<Vec<Outcome>, BatchError>> {
        async move {
            let id = {
                let _creating = conn.creating().await;
                let id = submit(conn, rows).await?;
                jobs.started(&id, rows).await;
                id
            };
            finish(conn, &id, rows, jobs).await
        }
        .boxed()
    }

    fn resume<'a>(
        &'a self,
        conn: &'a Connection,
        job: &'a ResumeJob,
        rows: &'a [MappedRow],
        jobs: &'a dyn JobSink,
    ) -> BoxFuture<'a, Result<Vec<Outcome>, BatchError>> {
        finish(conn, &job.id, rows, jobs).boxed()
    }
}

/// Polls a job to its end and reads each row's outcome.
async fn finish(
    conn: &Connection,
    id: &str,
    rows: &[MappedRow],
    jobs: &dyn JobSink,
) -> Result<Vec<Outcome>, BatchError> {
    match poll(conn, id).await {
        Ok(status) => {
            jobs.status(id, &status.status, rows.len());
            Ok(outcomes(id, rows, &status))
        }
        Err(e) => {
            jobs.status(id, "Unknown", rows.len());
            Err(e)
        }
    }
}

async fn submit(conn: &Connection, rows: &[MappedRow]) -> Result<String, BatchError> {
    let mut body = Vec::with_capacity(rows.iter().map(|r| r.body.len() + 1).sum::<usize>() + 16);
    body.extend_from_slice(b"{\"Clients\":[");
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&r.body);
    }
    body.extend_from_slice(b"]}");
    let body = bytes::Bytes::from(body);
    let url = format!("{}/import/clientList", conn.base_url());
    let reply = conn
        .call("import/clientList", |c| {
            c.post(&url).header("Content-Type", "application/json").body(body.clone())
        })
        .await
        .map_err(batch_error)?;
    let parsed: ImportReply = serde_json::from_slice(&reply.body).map_err(|e| {
        BatchError::Failed(format!("Repsly's import reply was not understood: {e}"))
    })?;
    if parsed.code != 0 {
        return Err(BatchError::Rejected(format!(
            "Repsly refused the batch (Code {}): {}",
            parsed.code, parsed.message
        )));
    }
    job_id(&parsed.message).ok_or_else(|| {
        BatchError::Failed(format!(
            "Repsly accepted the batch but named no job id: {}",
            parsed.message
        ))
    })
}

async fn poll(conn: &Connection, id: &str) -> Result<StatusReply, BatchError> {
    let url = format!("{}/export/importStatus/{id}", conn.base_url());
    let started = tokio::time::Instant::now();
    let interval = conn.settings.poll_interval;
    loop {
        tokio::time::sleep(interval).await;
        let reply = conn.call("export/importStatus", |c| c.get(&url)).await.map_err(batch_error)?;
        let status: StatusReply = serde_json::from_slice(&reply.body).map_err(|e| {
            BatchError::Failed(format!(
                "Repsly's status reply for job {id} was not understood: {e}"
            ))
        })?;
        if !status.status.eq_ignore_ascii_case("pending") {
            return Ok(status);
        }
        if started.elapsed() + interval > conn.settings.poll_timeout {
            return Err(BatchError::Failed(format!(
                "Repsly import job {id} was still Pending after {}",
                humantime::format_duration(Duration::from_secs(started.elapsed().as_secs()))
            )));
        }
    }
}

fn batch_error(e: CallError) -> BatchError {
    super::batch_error("Repsly", "batch", e)
}

fn outcomes(id: &str, rows: &[MappedRow], status: &StatusReply) -> Vec<Outcome> {
    let mut by_code: HashMap<String, Failure> = HashMap::new();
    for item in &status.errors {
        let code = match &item.id {
            Json::String(s) => s.clone(),
            Json::Null => continue,
            other => other.to_string(),
        };
        let entry = by_code.entry(code).or_insert_with(|| Failure {
            stage: Stage::Remote,
            fields: Vec::new(),
            messages: Vec::new(),
        });
        if let Some(field) = item.name.as_ref().filter(|n| !n.is_empty()) {
            if !entry.fields.contains(field) {
                entry.fields.push(field.clone());
            }
        }
        let text = item.status.clone().unwrap_or_else(|| "rejected".into());
        entry.messages.push(match &item.name {
            Some(n) if !n.is_empty() => format!("{n}: {text}"),
            _ => text,
        });
    }
    let completed = status.status.eq_ignore_ascii_case("completed");
    let failed_rows = rows.iter().filter(|r| by_code.contains_key(&r.key)).count();
    // A Failed job still saved what it counts as inserted/updated.
    let saved_all_others = (status.inserted + status.updated) as usize >= rows.len() - failed_rows;
    rows.iter()
        .map(|r| match by_code.get(&r.key) {
            Some(f) => Outcome::Failed(f.clone()),
            None if completed || saved_all_others => Outcome::Accepted,
            None => Outcome::Failed(Failure::new(
                Stage::Remote,
                None,
                format!("Repsly import job {id} ended {}", status.status),
            )),
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
