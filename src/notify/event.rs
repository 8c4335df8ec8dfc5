//! An event and its JSON body: `id` (unique; receivers de-duplicate on it), `type`, `at`,
//! `pipeline`, `connection`, `file`, `rows`, `report`, `message`, and `console_url` when the
//! console is on.

use serde_json::json;

use crate::config::EventKind;
use crate::report::RowCounts;

#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub kind: EventKind,
    /// RFC 3339.
    pub at: String,
    pub pipeline: Option<String>,
    pub connection: Option<String>,
    pub file: Option<String>,
    pub rows: Option<RowCounts>,
    /// The errors report's name, when rows failed.
    pub report: Option<String>,
    /// One readable sentence: what happened and what to do.
    pub message: String,
}

impl Event {
    pub fn new(kind: EventKind, message: impl Into<String>) -> Self {
        Self {
            id: new_id(),
            kind,
            at: crate::report::now_rfc3339(),
            pipeline: None,
            connection: None,
            file: None,
            rows: None,
            report: None,
            message: message.into(),
        }
    }

    pub fn pipeline(mut self, name: &str) -> Self {
        self.pipeline = Some(name.to_string());
        self
    }

    pub fn connection(mut self, name: &str) -> Self {
        self.connection = Some(name.to_string());
        self
    }

    pub fn file(mut self, name: &str) -> Self {
        self.file = Some(name.to_string());
        self
    }

    pub fn rows(mut self, rows: RowCounts, report: Option<String>) -> Self {
        self.rows = Some(rows);
        self.report = report;
        self
    }

    pub fn body(&self, console_url: Option<String>) -> serde_json::Value {
        let mut body = json!({
            "id": self.id,
            "type": self.kind.as_str(),
            "at": self.at,
            "pipeline": self.pipeline,
            "connection": self.connection,
            "file": self.file,
            "rows": self.rows,
            "report": self.report,
            "message": self.message,
        });
        if let (Some(url), Some(map)) = (console_url, body.as_object_mut()) {
            map.insert("console_url".into(), url.into());
        }
        body
    }
}

/// A random (version 4) UUID from the OS's generator; a counter-free id stays unique across
/// restarts and replicas.
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness (never seen on Linux): time and a fast generator still differ.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes = (nanos ^ u128::from(fastrand::u64(..))).to_le_bytes();
    }
    uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
}

/// The sentence for a file event, from its counts.
pub fn file_message(file: &str, rows: &RowCounts, error: Option<&str>, kind: EventKind) -> String {
    let not_arrived = rows.failed + rows.unprocessed;
    match kind {
        EventKind::FileFailed | EventKind::FileSetAside => format!(
            "{file} was not imported: {}; it is in failed/",
            error.unwrap_or("the file could not be processed")
        ),
        EventKind::FileRowsFailed => format!(
            "{file}: {not_arrived} of {} rows did not arrive ({} accepted); the errors report lists them",
            rows.read, rows.accepted
        ),
        _ => format!("{file}: all {} rows accepted", rows.read),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_uuids() {
        let a = new_id();
        assert_eq!(a.len(), 36);
        assert_ne!(a, new_id());
    }

    #[test]
    fn the_body_has_every_field_and_the_console_link_only_when_on() {
        let e = Event::new(EventKind::FileRowsFailed, "m").pipeline("p").file("a.csv").rows(
            RowCounts { read: 3, accepted: 2, failed: 1, ..Default::default() },
            Some("a.errors.csv".into()),
        );
        let b = e.body(Some("http://c/files/1".into()));
        for key in ["id", "type", "at", "pipeline", "file", "rows", "report", "message"] {
            assert!(b.get(key).is_some(), "{key}");
        }
        assert_eq!(b["type"], "file.rows_failed");
        assert_eq!(b["rows"]["failed"], 1);
        assert_eq!(b["console_url"], "http://c/files/1");
        assert!(e.body(None).get("console_url").is_none());
    }
}
