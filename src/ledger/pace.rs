//! What was learned of each CRM's pace, per connection and target (the delivery engine's
//! estimate, kept as its own text): read back at start-up so a restart starts warm. Nothing
//! else depends on it; a row that cannot be read is learned again.

use rusqlite::{params, Connection, Transaction};

use crate::report::now_rfc3339;

/// The migration that adds the table (appended to the schema's list).
pub const MIGRATION: &str = "CREATE TABLE pace (
        connection TEXT NOT NULL,
        target TEXT NOT NULL,
        estimate TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (connection, target)
    );";

/// Keeps `estimate` for `connection` and `target`, replacing the one kept before.
pub fn save(
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

/// The estimates kept for `connection`: (target, estimate).
pub fn load(conn: &Connection, connection: &str) -> rusqlite::Result<Vec<(String, String)>> {
    let mut stmt =
        conn.prepare("SELECT target, estimate FROM pace WHERE connection = ?1 ORDER BY target")?;
    let rows = stmt.query_map(params![connection], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}
