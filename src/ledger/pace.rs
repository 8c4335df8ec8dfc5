//! What was learned of each CRM's pace, per connection and target (the delivery engine's
//! estimate, kept as its own text): read back at start-up so a restart starts warm. Nothing
//! else depends on it; a row that cannot be read is learned again.

use rusqlite::{params, Transaction};

use super::{Ledger, LedgerError, Msg};
use crate::report::now_rfc3339;

/// The migration that adds the table (appended to the schema's list).
pub const MIGRATION: &str = "CREATE TABLE pace (
        connection TEXT NOT NULL,
        target TEXT NOT NULL,
        estimate TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (connection, target)
    );";

fn save(
    tx: &Transaction<'_>,
    connection: &str,
    target: &str,
    estimate: &str,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO pace (connection, target, estimate, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (connection, target) DO UPDATE SET estimate = excluded.estimate, updated_at = excluded.updated_at",
        params![connection, target, estimate, now_rfc3339()],
    )?;
    Ok(())
}

fn load(tx: &Transaction<'_>, connection: &str) -> rusqlite::Result<Vec<(String, String)>> {
    let mut stmt = tx.prepare_cached(
        "SELECT target, estimate FROM pace WHERE connection = ?1 ORDER BY target",
    )?;
    let rows = stmt.query_map(params![connection], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

impl Ledger {
    /// Keeps what was learned of a CRM's pace for `connection` and `target`, replacing what
    /// was kept before; without waiting (it is committed with whatever else is queued).
    pub fn save_pace(&self, connection: &str, target: &str, estimate: &str) {
        let (connection, target, estimate) =
            (connection.to_string(), target.to_string(), estimate.to_string());
        let _ = self.send(Msg::Work(Box::new(move |tx| {
            save(tx, &connection, &target, &estimate)?;
            Ok(Box::new(|err: Option<String>| {
                if let Some(e) = err {
                    tracing::warn!(error = %e, "could not keep the estimate of the CRM's pace");
                }
            }))
        })));
    }

    /// What was learned of the CRM's pace for `connection`: (target, estimate).
    pub async fn paces(&self, connection: &str) -> Result<Vec<(String, String)>, LedgerError> {
        let connection = connection.to_string();
        self.ask(|ack| {
            Msg::Work(Box::new(move |tx| {
                let kept = load(tx, &connection)?;
                Ok(Box::new(move |err: Option<String>| {
                    let _ = ack.send(err.map_or(Ok(kept), |e| Err(LedgerError::Write(e))));
                }))
            }))
        })
        .await
    }
}
