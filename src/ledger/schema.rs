//! Versioned migrations, applied in order from `PRAGMA user_version`.

use rusqlite::Connection;

/// Each entry moves the schema one version up; never edit a released one, append.
const MIGRATIONS: &[&str] = &[
    // 1: files and the remote jobs created for their batches.
    "CREATE TABLE files (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        pipeline TEXT NOT NULL,
        name TEXT NOT NULL,
        size INTEGER NOT NULL,
        hash TEXT NOT NULL,
        state TEXT NOT NULL,
        report_stem TEXT NOT NULL,
        watermark INTEGER NOT NULL DEFAULT 0,
        errors_bytes INTEGER NOT NULL DEFAULT 0,
        counts TEXT NOT NULL DEFAULT '{}',
        started_at TEXT NOT NULL,
        finished_at TEXT,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX files_identity ON files (pipeline, name, size, hash);
    CREATE TABLE jobs (
        file_id INTEGER NOT NULL REFERENCES files (id),
        job_id TEXT NOT NULL,
        status TEXT NOT NULL,
        seqs TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (file_id, job_id)
    );",
    // 2: how many times in a row a file was started without its watermark moving: a file
    // that crashes the daemon is set aside instead of crashing it for ever.
    "ALTER TABLE files ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;",
    // 3: write-ahead records of creates whose answer is not recorded yet (at most one per
    // batch in flight), and the length of the warnings report at each checkpoint.
    "CREATE TABLE pending (
        file_id INTEGER NOT NULL REFERENCES files (id),
        token INTEGER NOT NULL,
        seqs TEXT NOT NULL,
        max_seq INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (file_id, token)
    );
    ALTER TABLE files ADD COLUMN warnings_bytes INTEGER NOT NULL DEFAULT 0;",
    // 4: every finished file's summary (kept `history_keep`), and the outbox of events for
    // `[[notify]]` destinations: one row per event and destination until it is delivered.
    "CREATE TABLE history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        file_id INTEGER,
        pipeline TEXT NOT NULL,
        file TEXT NOT NULL,
        outcome TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        reports TEXT NOT NULL,
        summary_file TEXT NOT NULL,
        summary TEXT NOT NULL
    );
    CREATE INDEX history_finished ON history (finished_at);
    CREATE TABLE outbox (
        event_id TEXT NOT NULL,
        sink TEXT NOT NULL,
        type TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        next_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        PRIMARY KEY (event_id, sink)
    );
    CREATE INDEX outbox_due ON outbox (next_at);",
    // 5: what each CRM's pace was learned to be, per connection and target.
    super::pace::MIGRATION,
];

pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: usize =
        conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
        tx.commit()?;
    }
    Ok(())
}

pub fn version() -> usize {
    MIGRATIONS.len()
}
