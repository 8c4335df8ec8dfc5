//! `plannr.import.<type>`: each batch is one Plannr import: create (CSV upload) -> map ->
//! start -> poll to its end. Failed rows come back by their data (at most 25 inline, all in
//! the error report, which is a file: CSV, JSON or XLSX). In `update` mode a row never sends a
//! cell for a value it does not have (Plannr would clear the field): each row's partition is
//! the set of fields it carries, and the engine puts only rows of one partition in an import.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::lookup::LookupField;
use super::plannr_common::{self, resource, text_of};
use super::report_file::{self, json_entries};
use super::{Partition, Target};
use crate::config::{ImportMode, PipelineSettings, TargetSpec};
use crate::delivery::call::{message_of, Body, Call, CallError, Part, Reply, Safety};
use crate::delivery::reconcile::CORRELATION;
use crate::delivery::{Adapter, Created, Fetched, JobReport, JobState, RowNote, RowRef, Step};
use crate::mapping::spec::LookupBy;
use crate::mapping::{CompiledField, Mapped, Value as Cell};
use crate::row::MappedRow;
use crate::schema::FieldType;

/// Statuses after which an import does no more work (the docs show only `processing`).
const TERMINAL: &[&str] = &[
    "complete",
    "completed",
    "finished",
    "done",
    "imported",
    "success",
    "succeeded",
    "failed",
    "error",
    "errored",
    "cancelled",
    "canceled",
];
const FAILED: &[&str] = &["failed", "error", "errored", "cancelled", "canceled"];
/// Statuses of an import that has not been started.
const NOT_STARTED: &[&str] = &["pending", "created", "uploaded", "mapped", "new", "draft"];

pub struct PlannrImport {
    spec: TargetSpec,
    import_type: String,
    mode: ImportMode,
    /// Target field names in mapper order: the uploaded CSV's columns.
    fields: Vec<String>,
    /// The fields filled by a lookup (a plan's `client_uuid` by the client's email).
    lookups: Vec<LookupField>,
}

impl PlannrImport {
    pub fn new(
        spec: TargetSpec,
        import_type: String,
        mode: ImportMode,
        fields: Vec<String>,
    ) -> Self {
        Self { spec, import_type, mode, fields, lookups: Vec::new() }
    }

    /// The import a pipeline sends: its fields, in order, and those a lookup fills.
    pub fn for_pipeline(pipeline: &PipelineSettings, import_type: &str, mode: &ImportMode) -> Self {
        let fields = pipeline.fields.iter().map(|f| f.target.clone()).collect();
        let mut import =
            Self::new(pipeline.target.clone(), import_type.to_string(), mode.clone(), fields);
        import.lookups = pipeline
            .fields
            .iter()
            .enumerate()
            .filter_map(|(at, f)| Some(LookupField { at, name: f.target.clone(), by: f.lookup? }))
            .collect();
        import
    }

    /// The columns a batch uploads: every field, or in `update` mode those its rows carry.
    /// The engine batches rows of one partition only ([`Target::partition`]); a column is
    /// left out unless every row of the batch carries it, so even a mixed batch could never
    /// send an empty cell that clears a field.
    fn columns(&self, rows: &[MappedRow]) -> Vec<usize> {
        (0..self.fields.len())
            .filter(|&i| {
                self.mode != ImportMode::Update || rows.iter().all(|r| r.partition.carries(i))
            })
            .collect()
    }

    /// The CSV of a batch: its columns plus the correlation column, then each row.
    fn csv(&self, rows: &[MappedRow], columns: &[usize]) -> Bytes {
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        let mut header: Vec<&str> = columns.iter().map(|&i| self.fields[i].as_str()).collect();
        header.push(CORRELATION);
        let _ = w.write_record(&header);
        for r in rows {
            let cells = parse_line(&r.body);
            let mut record: Vec<&str> =
                columns.iter().map(|&i| cells.get(i).map_or("", String::as_str)).collect();
            let seq = r.source.seq.to_string();
            record.push(&seq);
            let _ = w.write_record(&record);
        }
        Bytes::from(w.into_inner().unwrap_or_default())
    }

    fn import_url(&self, base: &str, what: &str, uuid: &str) -> String {
        format!("{base}/api/v1/import/{what}{uuid}")
    }
}

impl Target for PlannrImport {
    fn spec(&self) -> &TargetSpec {
        &self.spec
    }

    /// One CSV record (no newline) in field order; booleans as `1`/`0`, which Laravel's
    /// `boolean` rule accepts (it refuses the text `true`); text exactly as mapped.
    fn encode(
        &self,
        fields: &[CompiledField],
        values: &Mapped,
        _escapes: super::Escapes,
        out: &mut Vec<u8>,
    ) {
        let cells: Vec<String> = fields
            .iter()
            .zip(values)
            .map(|(f, v)| match (f.def.map(|d| d.ty), v) {
                (_, None) => String::new(),
                (Some(FieldType::Bool), Some(Cell::Text(t))) => {
                    if t == "true" { "1" } else { "0" }.into()
                }
                (_, Some(Cell::List(items))) => items.join(","),
                (_, Some(Cell::Text(t))) => t.to_string(),
            })
            .collect();
        out.extend_from_slice(&write_line(&cells));
    }

    /// In `update` mode, the fields a row carries: a value, or an empty one sent on purpose
    /// (`empty = "clear"`). Other modes send every column.
    fn partition(&self, _fields: &[CompiledField], values: &Mapped) -> Partition {
        if self.mode != ImportMode::Update {
            return Partition::default();
        }
        Partition::of_fields(values.iter().enumerate().filter(|(_, v)| v.is_some()).map(|(i, _)| i))
    }

    fn preview(&self, body: &[u8]) -> Value {
        Value::Object(
            self.fields
                .iter()
                .cloned()
                .zip(parse_line(body).into_iter().map(Value::String))
                .collect(),
        )
    }

    fn lookups(&self) -> &[LookupField] {
        &self.lookups
    }

    fn cell(&self, row: &MappedRow, at: usize) -> Option<String> {
        parse_line(&row.body).into_iter().nth(at)
    }

    fn fill(&self, row: &mut MappedRow, at: usize, value: &str) {
        let mut cells = parse_line(&row.body);
        if let Some(cell) = cells.get_mut(at) {
            *cell = value.to_string();
            row.body = write_line(&cells);
        }
    }

    fn lookup_call(&self, base: &str, by: LookupBy, key: &str, page: u32) -> Option<Call> {
        match by {
            LookupBy::Email => Some(plannr_common::clients_by_email(base, key, page)),
        }
    }

    fn read_lookup(
        &self,
        by: LookupBy,
        key: &str,
        reply: &Reply,
    ) -> Result<(Vec<String>, bool), String> {
        match by {
            LookupBy::Email => plannr_common::read_clients_by_email(key, reply),
        }
    }
}

impl Adapter for PlannrImport {
    /// An import does nothing until it is started: one whose create went unanswered is
    /// harmless to leave behind and create again.
    fn create_is_repeatable(&self) -> bool {
        true
    }

    fn create(&self, base: &str, rows: &[MappedRow]) -> Call {
        let file = self.csv(rows, &self.columns(rows));
        let parts = vec![
            Part::Text { name: "type", value: self.import_type.clone() },
            Part::Text { name: "mode", value: self.mode.as_str().to_string() },
            Part::File {
                name: "file",
                file_name: "batch.csv".into(),
                mime: "text/csv",
                bytes: file,
            },
        ];
        Call::post(
            "import/create",
            format!("{base}/api/v1/import"),
            Body::Multipart(parts),
            Safety::Repeatable,
        )
    }

    fn created(&self, _rows: &[MappedRow], answer: Result<&Reply, &CallError>) -> Created {
        let reply = match answer {
            Ok(reply) => reply,
            Err(CallError::Rejected { status: 413, body, .. }) => {
                return Created::Refused(format!(
                    "Plannr refused the upload as too large: {}",
                    message_of(body)
                ))
            }
            Err(e) => return Created::Failed(format!("Plannr refused the import: {e}")),
        };
        match resource(reply)
            .ok()
            .and_then(|r| r.get("uuid").and_then(Value::as_str).map(String::from))
        {
            Some(uuid) => Created::Job(uuid),
            None => Created::Unclear(format!(
                "Plannr answered the upload without an import uuid: {}",
                message_of(&reply.body)
            )),
        }
    }

    fn steps(&self, base: &str, job: &str, rows: &[MappedRow]) -> Vec<Step> {
        let headers: Map<String, Value> = self
            .columns(rows)
            .into_iter()
            .map(|i| (self.fields[i].clone(), Value::String(self.fields[i].clone())))
            .collect();
        let body =
            serde_json::to_vec(&serde_json::json!({ "headers": headers })).unwrap_or_default();
        vec![
            Step {
                name: "mapped",
                call: Call::post_json(
                    "import/map",
                    self.import_url(base, "map/", job),
                    body.into(),
                    Safety::Repeatable,
                ),
            },
            Step {
                name: "started",
                call: Call::post(
                    "import/start",
                    self.import_url(base, "start/", job),
                    Body::None,
                    Safety::Repeatable,
                ),
            },
        ]
    }

    fn status(&self, base: &str, job: &str) -> Call {
        Call::get("import/status", self.import_url(base, "", job))
    }

    fn read_status(&self, base: &str, reply: &Reply) -> Result<JobState, String> {
        let import = resource(reply)?;
        let status = text_of(import.get("status")).to_ascii_lowercase();
        if NOT_STARTED.contains(&status.as_str()) {
            return Ok(JobState::NotStarted);
        }
        if !finished(&import, &status) {
            return Ok(JobState::Running);
        }
        Ok(JobState::Finished(Box::new(report(&import, &status, base))))
    }

    fn read_more(&self, reply: &Reply) -> Result<Fetched, String> {
        let entries = report_file::read(&reply.body)?;
        Ok(Fetched(
            entries
                .into_iter()
                .map(|(row, failure)| RowNote { row: RowRef::Data(row), failure })
                .collect(),
        ))
    }

    fn echo(&self, row: &MappedRow) -> Vec<(String, String)> {
        let mut cells: Vec<(String, String)> =
            self.fields.iter().cloned().zip(parse_line(&row.body)).collect();
        cells.push((CORRELATION.into(), row.source.seq.to_string()));
        cells
    }
}

/// Finished on a terminal status word, or when progress is at 100 and no more jobs remain
/// than failed (the only finished import the docs show: `processing`, progress 100,
/// `jobs_remaining` = `failed_jobs` = 1).
fn finished(import: &Map<String, Value>, status: &str) -> bool {
    let remaining = number(import.get("jobs_remaining"));
    let failed = number(import.get("failed_jobs")).unwrap_or(0);
    let settled = remaining.is_none_or(|r| r <= failed);
    if TERMINAL.contains(&status) {
        return settled;
    }
    let progress = number(import.get("progress"));
    progress == Some(100) && remaining.is_some() && settled
}

/// What a finished import says: its inline refusals (a list, or an object keyed by index),
/// and where its error report is. The inline list is the whole list only on a count: nothing
/// listed and `failed_jobs` 0 (at most 25 entries are inline, and `failed_jobs` counts jobs,
/// not rows). Otherwise the error report is fetched, and rows neither names stay in doubt.
fn report(import: &Map<String, Value>, status: &str, base: &str) -> JobReport {
    let entries = json_entries(import.get("errors").filter(|e| !e.is_null()));
    let url =
        import.get("error_report").and_then(|r| r.get("download_url")).and_then(Value::as_str);
    let more = url
        .filter(|u| !u.is_empty())
        .map(|u| Call::download("import/error_report", absolute(base, u)));
    let complete = entries.is_empty() && number(import.get("failed_jobs")) == Some(0);
    JobReport {
        status: status.to_string(),
        failed: FAILED.contains(&status),
        refused: entries
            .into_iter()
            .map(|(row, failure)| RowNote { row: RowRef::Data(row), failure })
            .collect(),
        complete: complete && more.is_none(),
        more,
        ..JobReport::default()
    }
}

/// A download URL may be relative to the API.
fn absolute(base: &str, url: &str) -> String {
    if url.starts_with("http://") || url.starts_with("https://") {
        url.to_string()
    } else {
        format!("{}/{}", base.trim_end_matches('/'), url.trim_start_matches('/'))
    }
}

/// A count as a number or numeric text (`100`, `"100"`, `"100%"`); `null` is absent, and so
/// is anything negative, not finite or past `u64`.
fn number(v: Option<&Value>) -> Option<u64> {
    let f = match v? {
        Value::Number(n) => return n.as_u64().or_else(|| n.as_f64().and_then(whole)),
        Value::String(s) => s.trim().trim_end_matches('%').trim().parse::<f64>().ok()?,
        _ => return None,
    };
    whole(f)
}

/// `f` rounded, when it is a count a u64 holds.
fn whole(f: f64) -> Option<u64> {
    let f = f.round();
    // 2^64 as a double: every finite double below it converts exactly.
    (f.is_finite() && (0.0..18_446_744_073_709_551_616.0).contains(&f)).then_some(f as u64)
}

/// One CSV record, without its line end.
fn write_line(cells: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w =
            csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(&mut out);
        let _ = w.write_record(cells);
    }
    if out.last() == Some(&b'\n') {
        out.pop();
    }
    out
}

fn parse_line(body: &[u8]) -> Vec<String> {
    let mut r = csv::ReaderBuilder::new().has_headers(false).from_reader(body);
    r.records()
        .next()
        .and_then(Result::ok)
        .map(|rec| rec.iter().map(String::from).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn finished_imports() {
        let f = |v: Value| {
            let m = obj(v);
            let s = text_of(m.get("status")).to_ascii_lowercase();
            finished(&m, &s)
        };
        assert!(!f(
            json!({"status": "processing", "progress": 40, "jobs_remaining": 3, "failed_jobs": 0})
        ));
        assert!(
            f(
                json!({"status": "processing", "progress": 100, "total_jobs": 4, "failed_jobs": 1, "jobs_remaining": 1})
            ),
            "the seed's shape"
        );
        assert!(f(
            json!({"status": "processing", "progress": "100%", "failed_jobs": 0, "jobs_remaining": 0})
        ));
        assert!(f(json!({"status": "complete", "jobs_remaining": 0})));
        assert!(f(json!({"status": "Completed"})));
        assert!(f(json!({"status": "failed", "jobs_remaining": null})));
        assert!(!f(json!({"status": "completed", "jobs_remaining": 2, "failed_jobs": 0})));
    }

    proptest::proptest! {
        #[test]
        fn any_count_is_read_without_panic(f in proptest::num::f64::ANY, text in ".{0,30}", n in proptest::num::u64::ANY) {
            let _ = number(serde_json::Number::from_f64(f).map(Value::Number).as_ref());
            let _ = number(Some(&Value::String(text)));
            let _ = number(Some(&Value::String(f.to_string())));
            proptest::prop_assert_eq!(number(Some(&json!(n))), Some(n));
            proptest::prop_assert_eq!(number(Some(&Value::String(format!("{}%", n % 101)))), Some(n % 101));
        }
    }

    #[test]
    fn the_inline_list_is_complete_only_on_a_count() {
        let entry = json!({"client": {"first_name": "A"}, "errors": {"email": ["bad"]}});
        let r = report(
            &obj(json!({"errors": [entry.clone()], "failed_jobs": 1})),
            "complete",
            "http://x",
        );
        assert!(!r.complete, "one entry of 25 possible proves nothing");
        let r = report(
            &obj(json!({"errors": {"0": entry.clone(), "7": entry.clone()}, "failed_jobs": 1})),
            "complete",
            "http://x",
        );
        assert_eq!(r.refused.len(), 2, "errors as an object keyed by index");
        let full: Vec<Value> = (0..25).map(|_| entry.clone()).collect();
        let r = report(
            &obj(
                json!({"errors": full, "failed_jobs": 1, "error_report": {"download_url": "/files/r.csv"}}),
            ),
            "complete",
            "http://x",
        );
        assert!(!r.complete);
        assert_eq!(r.more.unwrap().url, "http://x/files/r.csv");
        let r = report(&obj(json!({"errors": [], "failed_jobs": 2})), "complete", "http://x");
        assert!(!r.complete, "jobs failed but none are listed");
        let r = report(&obj(json!({"errors": [], "failed_jobs": 0})), "complete", "http://x");
        assert!(r.complete, "nothing failed, by Plannr's own count");
        let r = report(&obj(json!({"errors": []})), "complete", "http://x");
        assert!(!r.complete, "no count, no proof");
    }

    #[test]
    fn update_rows_carry_only_their_fields() {
        let t = PlannrImport::new(
            TargetSpec::PlannrImport { import_type: "clients".into(), mode: ImportMode::Update },
            "clients".into(),
            ImportMode::Update,
            vec!["uuid".into(), "email".into(), "phone".into()],
        );
        let row = |body: &str, fields: &[usize]| MappedRow {
            source: crate::row::SourceRow { seq: 3, line: 5, raw: Default::default() },
            key: String::new(),
            body: body.as_bytes().to_vec(),
            partition: Partition::of_fields(fields.iter().copied()),
        };
        let rows = [row("u1,a@b.c,", &[0, 1])];
        let csv = String::from_utf8(t.csv(&rows, &t.columns(&rows)).to_vec()).unwrap();
        assert_eq!(
            csv, "uuid,email,crm_ingest_row\nu1,a@b.c,3\n",
            "no phone column, so nothing is cleared"
        );
        let mixed = [row("u1,a@b.c,", &[0, 1]), row("u2,,07700900001", &[0, 2])];
        assert_eq!(t.columns(&mixed), vec![0], "only what every row carries");
        let text = |s: &'static str| Some(Cell::Text(s.into()));
        let p = t.partition(&[], &vec![text("u"), None, text("")]);
        assert_eq!(p, Partition::of_fields([2, 0].into_iter()));
        assert!(p.carries(0) && !p.carries(1) && p.carries(2) && !p.carries(200));
        assert!(Partition::of_fields([70].into_iter()).carries(70), "past 64 fields too");
    }

    #[test]
    fn text_is_sent_as_written() {
        use crate::config::{EmptyPolicy, FieldSettings, ValueSource};
        use crate::mapping::Mapper;
        let t = PlannrImport::new(
            TargetSpec::PlannrImport { import_type: "notes".into(), mode: ImportMode::Store },
            "notes".into(),
            ImportMode::Store,
            vec!["note".into()],
        );
        let field = FieldSettings {
            target: "note".into(),
            source: ValueSource::Columns(vec!["N".into()]),
            transforms: Vec::new(),
            validators: Vec::new(),
            empty: EmptyPolicy::Omit,
            date_format: None,
            lookup: None,
        };
        let m = Mapper::compile(&[field], crate::schema::PLANNR_OTHER_IMPORT, &["N".to_string()])
            .unwrap();
        let mut out = Vec::new();
        t.encode(
            m.fields(),
            &vec![Some(Cell::Text("a|b, c".into()))],
            super::super::Escapes::Possible,
            &mut out,
        );
        assert_eq!(parse_line(&out), vec!["a|b, c"], "a `|` is data, not a separator");
    }
}
