//! Problems that make the daemon not ready without stopping it: a disk that refuses writes.
//! While one lasts, intake is paused (no new file is claimed) and `/readyz` names it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tokio::sync::watch;

#[derive(Debug)]
pub struct Health {
    /// What is wrong, by the path or resource it concerns.
    problems: Mutex<BTreeMap<String, String>>,
    /// What is wrong without pausing intake elsewhere (an inbox folder that is missing).
    notices: Mutex<BTreeMap<String, String>>,
    /// `true` while any problem lasts: the watchers claim nothing new.
    paused: watch::Sender<bool>,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            problems: Mutex::default(),
            notices: Mutex::default(),
            paused: watch::channel(false).0,
        }
    }
}

impl Health {
    /// Records a problem with `what` (a path); said at WARN the first time.
    pub fn problem(&self, what: &str, message: &str) {
        let Ok(mut p) = self.problems.lock() else { return };
        if p.insert(what.to_string(), message.to_string()).is_none() {
            tracing::warn!(
                path = what,
                error = message,
                "cannot write; intake paused until this clears (retrying)"
            );
        }
        self.paused.send_replace(true);
    }

    /// The problem with `what` is gone.
    pub fn cleared(&self, what: &str) {
        let Ok(mut p) = self.problems.lock() else { return };
        if p.remove(what).is_some() {
            tracing::info!(path = what, "writes work again");
        }
        self.paused.send_replace(!p.is_empty());
    }

    /// A problem with `what` that `/readyz` names but that pauses nothing (the caller says
    /// it in the log); [`Health::notice_cleared`] ends it.
    pub fn notice(&self, what: &str, message: &str) {
        if let Ok(mut n) = self.notices.lock() {
            n.insert(what.to_string(), message.to_string());
        }
    }

    pub fn notice_cleared(&self, what: &str) {
        if let Ok(mut n) = self.notices.lock() {
            n.remove(what);
        }
    }

    /// Every problem and notice, one line each.
    pub fn problems(&self) -> Vec<String> {
        let line = |(k, v): (&String, &String)| format!("{k}: {v}");
        let mut all: Vec<String> =
            self.problems.lock().map(|p| p.iter().map(line).collect()).unwrap_or_default();
        all.extend(
            self.notices.lock().map(|n| n.iter().map(line).collect::<Vec<_>>()).unwrap_or_default(),
        );
        all
    }

    /// Every problem by the path it concerns.
    pub fn by_path(&self) -> BTreeMap<String, String> {
        self.problems.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Follows whether intake is paused.
    pub fn paused(&self) -> watch::Receiver<bool> {
        self.paused.subscribe()
    }
}

/// Whether an I/O error is the disk's (full, over quota, read-only, failing) rather than the
/// file's: such errors pass once space is back, so the work is retried, not failed.
pub fn is_disk_error(e: &std::io::Error) -> bool {
    // ENOSPC, EDQUOT, EIO, EROFS.
    matches!(e.raw_os_error(), Some(28 | 122 | 5 | 30))
        || matches!(
            e.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::ReadOnlyFilesystem
        )
        || e.to_string().contains("database or disk is full")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_pause_intake_until_all_clear() {
        let h = Health::default();
        let rx = h.paused();
        h.problem("/a", "No space left on device");
        h.problem("/b", "No space left on device");
        assert!(*rx.borrow());
        assert_eq!(h.problems().len(), 2);
        h.cleared("/a");
        assert!(*rx.borrow(), "one problem is left");
        h.cleared("/b");
        assert!(!*rx.borrow());
        assert!(h.problems().is_empty());
    }

    #[test]
    fn disk_errors_are_told_from_file_errors() {
        assert!(is_disk_error(&std::io::Error::from_raw_os_error(28)));
        assert!(is_disk_error(&std::io::Error::from_raw_os_error(122)));
        assert!(!is_disk_error(&std::io::Error::from_raw_os_error(36)), "ENAMETOOLONG");
        assert!(!is_disk_error(&std::io::Error::from_raw_os_error(2)));
    }
}
