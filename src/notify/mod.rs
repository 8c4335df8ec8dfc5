//! Notifications (SPEC §12): events go into the ledger's outbox, one row per `[[notify]]`
//! destination that wants them, and a task of their own ([`sender`]) delivers them: at least
//! once, across restarts, retried with backoff for up to a day. Whoever emits only queues a
//! message to the ledger's owner thread; nothing on the import path waits for a receiver.

mod event;
mod send;
pub mod sender;
pub mod sign;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

pub use event::{file_message, new_id as event_id, Event};

use crate::config::{EventKind, Settings, SinkSettings};
use crate::ledger::{Ledger, NewHistory, OutboxRow};

/// What the notifier sends by: swapped whole on a config reload.
#[derive(Debug, Default)]
struct Routing {
    sinks: Vec<SinkSettings>,
    /// The console's base URL, when it is on.
    console: Option<String>,
    /// Each pipeline's connection, for the `pipelines` filter of connection events.
    connection_of: BTreeMap<String, String>,
}

/// One per daemon: turns events into outbox rows and wakes the sender.
#[derive(Debug)]
pub struct Notifier {
    ledger: Arc<Ledger>,
    routing: RwLock<Arc<Routing>>,
    wake: Arc<tokio::sync::Notify>,
}

impl Notifier {
    pub fn new(ledger: Arc<Ledger>, settings: &Settings) -> Arc<Self> {
        let notifier =
            Self { ledger, routing: RwLock::default(), wake: Arc::new(tokio::sync::Notify::new()) };
        notifier.reconfigure(settings);
        Arc::new(notifier)
    }

    /// Takes the destinations of a new config (SIGHUP).
    pub fn reconfigure(&self, settings: &Settings) {
        let routing = Routing {
            sinks: settings.notify.clone(),
            console: settings.server.as_ref().map(|s| s.public_url.clone()),
            connection_of: settings
                .pipelines
                .iter()
                .map(|p| (p.name.clone(), p.connection.name.clone()))
                .collect(),
        };
        if let Ok(mut r) = self.routing.write() {
            *r = Arc::new(routing);
        }
    }

    fn routing(&self) -> Arc<Routing> {
        self.routing.read().map(|r| r.clone()).unwrap_or_default()
    }

    /// The destination a row waits for, if the config still has it.
    pub fn sink(&self, key: &str) -> Option<SinkSettings> {
        self.routing().sinks.iter().find(|s| s.key == key).cloned()
    }

    /// Whether any destination is configured at all.
    pub fn any(&self) -> bool {
        !self.routing().sinks.is_empty()
    }

    /// Queues `event` for every destination that wants it; returns at once.
    pub fn emit(&self, event: Event) {
        let routing = self.routing();
        let url = routing.console.as_ref().map(|c| format!("{c}/"));
        let rows = rows_for(&routing, &event, url);
        if rows.is_empty() {
            return;
        }
        let wake = self.wake.clone();
        self.ledger.enqueue(rows, move || wake.notify_one());
    }

    /// Records a finished file in the history and queues its event, whose console link is
    /// the file's page; returns at once.
    pub fn file_finished(&self, entry: NewHistory, event: Event) {
        let routing = self.routing();
        let wake = self.wake.clone();
        let make = move |id: i64| {
            let url = routing.console.as_ref().map(|c| format!("{c}/files/{id}"));
            rows_for(&routing, &event, url)
        };
        self.ledger.record_finished(entry, make, move || wake.notify_one());
    }

    pub(crate) fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    pub(crate) fn woken(&self) -> Arc<tokio::sync::Notify> {
        self.wake.clone()
    }
}

/// One outbox row per destination that takes `event`.
fn rows_for(routing: &Routing, event: &Event, console_url: Option<String>) -> Vec<OutboxRow> {
    let wanted: Vec<&SinkSettings> =
        routing.sinks.iter().filter(|s| wants(s, event, &routing.connection_of)).collect();
    if wanted.is_empty() {
        return Vec::new();
    }
    let body = event.body(console_url).to_string();
    let now = sender::unix_now();
    wanted
        .into_iter()
        .map(|s| OutboxRow {
            event_id: event.id.clone(),
            sink: s.key.clone(),
            kind: event.kind.as_str().to_string(),
            body: body.clone(),
            created_at: now,
            next_at: now,
        })
        .collect()
}

/// A destination's `events` and `pipelines` filters: a connection's event goes where one of
/// its pipelines' events would; one about the whole daemon (a disk) goes everywhere.
fn wants(sink: &SinkSettings, event: &Event, connection_of: &BTreeMap<String, String>) -> bool {
    if !sink.events.contains(&event.kind) {
        return false;
    }
    let Some(only) = &sink.pipelines else { return true };
    match (&event.pipeline, &event.connection) {
        (Some(p), _) => only.contains(p),
        (None, Some(c)) => only.iter().any(|p| connection_of.get(p) == Some(c)),
        (None, None) => true,
    }
}

/// The event a finished file sends, by how it ended.
pub fn file_event_kind(outcome: crate::ledger::Outcome) -> EventKind {
    match outcome {
        crate::ledger::Outcome::Processed => EventKind::FileFinished,
        crate::ledger::Outcome::RowsFailed => EventKind::FileRowsFailed,
        crate::ledger::Outcome::Failed => EventKind::FileFailed,
        crate::ledger::Outcome::SetAside => EventKind::FileSetAside,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SinkKind;
    use crate::secret::Secret;

    fn sink(events: &[EventKind], pipelines: Option<&[&str]>) -> SinkSettings {
        SinkSettings {
            key: "k".into(),
            kind: SinkKind::Slack { url: Secret::new("http://x/") },
            events: events.iter().copied().collect(),
            pipelines: pipelines.map(|p| p.iter().map(|s| s.to_string()).collect()),
            initial_backoff: std::time::Duration::from_secs(1),
            max_backoff: std::time::Duration::from_secs(2),
        }
    }

    #[test]
    fn filters_by_event_pipeline_and_connection() {
        let map: BTreeMap<String, String> = [("a".to_string(), "plannr".to_string())].into();
        let file = Event::new(EventKind::FileFailed, "x").pipeline("a");
        let other = Event::new(EventKind::FileFailed, "x").pipeline("b");
        let conn = Event::new(EventKind::ConnectionStopped, "x").connection("plannr");
        let disk = Event::new(EventKind::DiskBlocked, "x");
        let only_a = sink(&EventKind::ALL, Some(&["a"]));
        assert!(wants(&only_a, &file, &map));
        assert!(!wants(&only_a, &other, &map));
        assert!(wants(&only_a, &conn, &map), "a's connection");
        assert!(!wants(
            &only_a,
            &Event::new(EventKind::ConnectionStopped, "x").connection("repsly"),
            &map
        ));
        assert!(wants(&only_a, &disk, &map), "the disk concerns every pipeline");
        let failures = sink(&[EventKind::FileFailed], None);
        assert!(wants(&failures, &other, &map));
        assert!(!wants(&failures, &conn, &map));
    }
}
