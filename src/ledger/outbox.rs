//! The outbox: events waiting for their `[[notify]]` destination, one row per event and
//! destination, until delivered or given up. Inserts never wait (the import path only queues
//! one message); the sender's updates wait for their commit so a row is not sent twice by
//! one process.

use rusqlite::{params, Transaction};

use super::{Ledger, LedgerError, Msg, Reader};

/// An event for one destination, as queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub event_id: String,
    /// The destination's key (`SinkSettings::key`).
    pub sink: String,
    /// The event's `type`.
    pub kind: String,
    /// The JSON body, as sent.
    pub body: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the next attempt.
    pub next_at: i64,
}

/// A row whose time has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub event_id: String,
    pub sink: String,
    pub kind: String,
    pub body: String,
    pub created_at: i64,
    pub attempts: u32,
}

pub(super) fn insert(tx: &Transaction<'_>, rows: &[OutboxRow]) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO outbox (event_id, sink, type, body, created_at, next_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for r in rows {
        stmt.execute(params![r.event_id, r.sink, r.kind, r.body, r.created_at, r.next_at])?;
    }
    Ok(())
}

impl Ledger {
    /// Queues events; returns at once (the owner thread commits them with what else it has)
    /// and `committed` runs once they are.
    pub fn enqueue(&self, rows: Vec<OutboxRow>, committed: impl FnOnce() + Send + 'static) {
        if rows.is_empty() {
            return;
        }
        let sent = self.send(Msg::Work(Box::new(move |tx| {
            insert(tx, &rows)?;
            Ok(Box::new(|err: Option<String>| match err {
                Some(e) => tracing::error!(error = %e, "could not queue a notification"),
                None => committed(),
            }))
        })));
        if sent.is_err() {
            tracing::warn!("the ledger is closed: a notification was not queued");
        }
    }

    /// The row is settled: delivered, or given up.
    pub async fn settled(&self, event_id: &str, sink: &str) -> Result<(), LedgerError> {
        let (id, sink) = (event_id.to_string(), sink.to_string());
        self.apply(move |tx| {
            tx.execute("DELETE FROM outbox WHERE event_id = ?1 AND sink = ?2", params![id, sink])
                .map(drop)
        })
        .await
    }

    /// The attempt failed: try again at `next_at` (unix seconds).
    pub async fn deliver_later(
        &self,
        event_id: &str,
        sink: &str,
        next_at: i64,
        error: String,
    ) -> Result<(), LedgerError> {
        let (id, sink) = (event_id.to_string(), sink.to_string());
        self.apply(move |tx| {
            tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_at = ?3, last_error = ?4
                 WHERE event_id = ?1 AND sink = ?2",
                params![id, sink, next_at, error],
            )
            .map(drop)
        })
        .await
    }

    /// Runs `f` in the owner's transaction and waits for its commit.
    pub(super) async fn apply(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<()> + Send + 'static,
    ) -> Result<(), LedgerError> {
        self.ask(|ack| {
            Msg::Work(Box::new(move |tx| {
                f(tx)?;
                Ok(Box::new(move |err: Option<String>| {
                    let _ = ack.send(err.map_or(Ok(()), |e| Err(LedgerError::Write(e))));
                }))
            }))
        })
        .await
    }
}

impl Reader {
    /// Rows due at `now` (unix seconds), the longest waiting first.
    pub fn due(&self, now: i64, limit: usize) -> Result<Vec<Due>, LedgerError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT event_id, sink, type, body, created_at, attempts FROM outbox
                 WHERE next_at <= ?1 ORDER BY next_at, created_at LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![now, limit as i64], |r| {
                Ok(Due {
                    event_id: r.get(0)?,
                    sink: r.get(1)?,
                    kind: r.get(2)?,
                    body: r.get(3)?,
                    created_at: r.get(4)?,
                    attempts: r.get(5)?,
                })
            })?;
            rows.collect()
        })
    }

    /// When the next row is due (unix seconds), if any waits.
    pub fn next_due(&self) -> Result<Option<i64>, LedgerError> {
        self.with(|c| c.query_row("SELECT MIN(next_at) FROM outbox", [], |r| r.get(0)))
    }

    /// How many rows wait, for the console.
    pub fn outbox_waiting(&self) -> Result<u64, LedgerError> {
        self.with(|c| c.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0)))
    }
}
