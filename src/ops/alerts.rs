//! The daemon's conditions as events: a connection whose credentials are refused
//! (`connection.stopped`) or whose shared budget cannot be reached (`budget.unreachable`),
//! one that can send again (`connection.recovered`), and a disk that refuses writes
//! (`disk.blocked`). Looked at once a second from here, so neither the delivery engine nor a
//! blocked file waits on anything to have them told.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::server::OpsState;
use crate::config::EventKind;
use crate::notify::Event;

const EVERY: Duration = Duration::from_secs(1);
/// A disk problem is told again only after it has been gone this long: a blocked file is
/// retried in cycles that clear the problem for a moment each time.
const DISK_QUIET: Duration = Duration::from_secs(60);

/// What a connection can do, as far as events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Can {
    Send,
    /// The CRM refused its credentials.
    Stopped(String),
    /// Its shared budget (Redis) cannot be reached.
    NoBudget(String),
}

pub async fn watch(state: OpsState, stop: CancellationToken) {
    let mut connections: BTreeMap<String, Can> = BTreeMap::new();
    let mut disks: BTreeMap<String, Instant> = BTreeMap::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
        let current = state.connections.read().map(|c| c.clone()).unwrap_or_default();
        for c in current {
            let now = match (c.auth_failure(), c.problem()) {
                (Some(why), _) => Can::Stopped(why),
                (None, Some(why)) => Can::NoBudget(why),
                (None, None) => Can::Send,
            };
            let before = connections.insert(c.name().to_string(), now.clone()).unwrap_or(Can::Send);
            if let Some(event) = connection_event(c.name(), &before, &now) {
                state.notify.emit(event);
            }
        }
        for event in disk_events(&state.health.by_path(), &mut disks, Instant::now()) {
            state.notify.emit(event);
        }
    }
}

/// The event of a connection going from `before` to `now`, if it is one.
pub fn connection_event(name: &str, before: &Can, now: &Can) -> Option<Event> {
    let (kind, message) = match (before, now) {
        (a, b) if a == b => return None,
        (_, Can::Stopped(why)) => (
            EventKind::ConnectionStopped,
            format!("connection {name} stopped: the CRM refused its credentials ({why}); its files wait until they work again"),
        ),
        (_, Can::NoBudget(why)) => (
            EventKind::BudgetUnreachable,
            format!("connection {name} sends nothing: its shared rate budget cannot be reached ({why})"),
        ),
        (_, Can::Send) => (
            EventKind::ConnectionRecovered,
            format!("connection {name} can send again; the files it held go on"),
        ),
    };
    Some(Event::new(kind, message).connection(name))
}

/// `disk.blocked` for each problem not told within [`DISK_QUIET`]; `told` remembers when each
/// path was last seen blocked.
fn disk_events(
    problems: &BTreeMap<String, String>,
    told: &mut BTreeMap<String, Instant>,
    now: Instant,
) -> Vec<Event> {
    told.retain(|path, seen| problems.contains_key(path) || now.duration_since(*seen) < DISK_QUIET);
    let mut events = Vec::new();
    for (path, error) in problems {
        if told.insert(path.clone(), now).is_none() {
            let message = format!("{path}: {error}; no new file is taken until writes work again");
            events.push(Event::new(EventKind::DiskBlocked, message));
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_changes_become_events_once() {
        let stopped = Can::Stopped("HTTP 401".into());
        let e = connection_event("repsly", &Can::Send, &stopped).unwrap();
        assert_eq!(e.kind, EventKind::ConnectionStopped);
        assert!(e.message.contains("HTTP 401") && e.connection.as_deref() == Some("repsly"));
        assert!(connection_event("repsly", &stopped, &stopped.clone()).is_none());
        let e = connection_event("repsly", &stopped, &Can::Send).unwrap();
        assert_eq!(e.kind, EventKind::ConnectionRecovered);
        let e = connection_event("r", &Can::Send, &Can::NoBudget("redis down".into())).unwrap();
        assert_eq!(e.kind, EventKind::BudgetUnreachable);
        assert!(connection_event("r", &Can::Send, &Can::Send).is_none());
    }

    #[test]
    fn a_flapping_disk_problem_is_told_once() {
        let start = Instant::now();
        let mut told = BTreeMap::new();
        let blocked: BTreeMap<String, String> = [("/r".to_string(), "No space".to_string())].into();
        assert_eq!(disk_events(&blocked, &mut told, start).len(), 1);
        assert!(disk_events(&BTreeMap::new(), &mut told, start + EVERY).is_empty());
        assert!(disk_events(&blocked, &mut told, start + EVERY * 2).is_empty(), "cleared briefly");
        let later = start + EVERY * 2 + DISK_QUIET + EVERY;
        assert!(disk_events(&BTreeMap::new(), &mut told, later).is_empty());
        assert_eq!(disk_events(&blocked, &mut told, later + EVERY).len(), 1, "a new episode");
    }
}
