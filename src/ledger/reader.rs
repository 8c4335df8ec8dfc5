//! A read-only view of the ledger on a connection of its own, for the console, `history` and
//! the outbox sender: reading never waits behind (or holds up) the owner thread's writes.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags};

use super::{JobRecord, LedgerError};

/// The schema version that has the history and the outbox.
const NEEDS_VERSION: i64 = 4;

pub struct Reader {
    conn: Mutex<Connection>,
    pub path: PathBuf,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Reader {
    /// Opens `state_dir/ledger.sqlite3` to read; `None` when there is no ledger yet.
    pub fn open(state_dir: &Path) -> Result<Option<Self>, LedgerError> {
        let path = state_dir.join("ledger.sqlite3");
        if !path.exists() {
            return Ok(None);
        }
        let err = |source| LedgerError::Open { path: path.clone(), source };
        // Read-write without create: a read-only handle cannot open a WAL database whose
        // daemon is not running; `query_only` keeps this one from ever writing.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(err)?;
        conn.pragma_update(None, "query_only", true).map_err(err)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(err)?;
        if version < NEEDS_VERSION {
            return Err(LedgerError::Read(format!(
                "the ledger {} has schema version {version}, without the history; the daemon of this version adds it at its next start",
                path.display()
            )));
        }
        Ok(Some(Self { conn: Mutex::new(conn), path }))
    }

    /// Runs a query on the reading connection (callers in async code use a blocking thread).
    pub(super) fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, LedgerError> {
        let conn = self.conn.lock().map_err(|_| LedgerError::Closed)?;
        f(&conn).map_err(|e| LedgerError::Read(format!("ledger {}: {e}", self.path.display())))
    }

    /// The remote jobs of a file, in the order they were created.
    pub fn jobs(&self, file_id: i64) -> Result<Vec<JobRecord>, LedgerError> {
        self.with(|c| super::store::jobs(c, file_id))
    }
}
