//! The SQL behind each ledger message; runs only on the ledger's own thread.

use std::collections::BTreeMap;

use rusqlite::{params, OptionalExtension, Transaction};

use super::{Checkpoint, Claim, FileState, Identity, JobRecord, Resume};
use crate::report::now_rfc3339;

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Counts {
    #[serde(default)]
    rows: crate::report::RowCounts,
    #[serde(default)]
    failed_by_stage: BTreeMap<String, u64>,
    /// Another replica's settled jobs, when the file was taken over (see `Resume`); kept
    /// by every checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    earlier_jobs: Option<crate::report::RemoteJobs>,
}

/// A `files` row as a claim reads it.
struct FileRow {
    id: i64,
    state: String,
    report_stem: String,
    watermark: u64,
    errors_bytes: u64,
    warnings_bytes: u64,
    counts: String,
    started_at: String,
    finished_at: Option<String>,
    attempts: u32,
}

pub fn claim(tx: &Transaction<'_>, id: &Identity, stem: &str) -> rusqlite::Result<Claim> {
    let found = tx
        .query_row(
            "SELECT id, state, report_stem, watermark, errors_bytes, counts, started_at, finished_at, attempts, warnings_bytes
             FROM files WHERE pipeline = ?1 AND name = ?2 AND size = ?3 AND hash = ?4 AND state != 'failed'
             ORDER BY id DESC LIMIT 1",
            params![id.pipeline, id.name, id.size, id.hash],
            |r| {
                Ok(FileRow {
                    id: r.get(0)?,
                    state: r.get(1)?,
                    report_stem: r.get(2)?,
                    watermark: r.get(3)?,
                    errors_bytes: r.get(4)?,
                    counts: r.get(5)?,
                    started_at: r.get(6)?,
                    finished_at: r.get(7)?,
                    attempts: r.get(8)?,
                    warnings_bytes: r.get(9)?,
                })
            },
        )
        .optional()?;
    match found {
        Some(row) if row.state == FileState::Finished.as_str() => Ok(Claim::Finished {
            file_id: row.id,
            finished_at: row.finished_at.unwrap_or_default(),
        }),
        Some(row) => {
            let counts: Counts = serde_json::from_str(&row.counts).unwrap_or_default();
            let jobs = jobs(tx, row.id)?;
            let pending = pending(tx, row.id)?;
            let attempts = row.attempts + 1;
            tx.execute("UPDATE files SET attempts = ?2 WHERE id = ?1", params![row.id, attempts])?;
            Ok(Claim::Resume(Resume {
                file_id: row.id,
                attempts,
                report_stem: row.report_stem,
                started_at: row.started_at,
                checkpoint: Checkpoint {
                    watermark: row.watermark,
                    errors_bytes: row.errors_bytes,
                    warnings_bytes: row.warnings_bytes,
                    counts: counts.rows,
                    failed_by_stage: counts.failed_by_stage,
                },
                jobs,
                pending,
                earlier_jobs: counts.earlier_jobs.unwrap_or_default(),
            }))
        }
        None => {
            let now = now_rfc3339();
            tx.execute(
                "INSERT INTO files (pipeline, name, size, hash, state, report_stem, started_at, updated_at, attempts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, 1)",
                params![id.pipeline, id.name, id.size, id.hash, FileState::InProgress.as_str(), stem, now],
            )?;
            Ok(Claim::Fresh { file_id: tx.last_insert_rowid(), started_at: now })
        }
    }
}

/// A file's remote jobs in the order they were created (also read by [`super::Reader`]).
pub(super) fn jobs(tx: &rusqlite::Connection, file_id: i64) -> rusqlite::Result<Vec<JobRecord>> {
    let mut stmt = tx.prepare(
        "SELECT job_id, status, seqs FROM jobs WHERE file_id = ?1 ORDER BY created_at, rowid",
    )?;
    let rows = stmt.query_map(params![file_id], |r| {
        let seqs: String = r.get(2)?;
        Ok(JobRecord {
            id: r.get(0)?,
            status: r.get(1)?,
            seqs: serde_json::from_str(&seqs).unwrap_or_default(),
        })
    })?;
    rows.collect()
}

fn pending(tx: &Transaction<'_>, file_id: i64) -> rusqlite::Result<Vec<(u64, Vec<u64>)>> {
    let mut stmt =
        tx.prepare("SELECT token, seqs FROM pending WHERE file_id = ?1 ORDER BY token")?;
    let rows = stmt.query_map(params![file_id], |r| {
        let seqs: String = r.get(1)?;
        Ok((r.get::<_, u64>(0)?, serde_json::from_str(&seqs).unwrap_or_default()))
    })?;
    rows.collect()
}

pub fn sending(
    tx: &Transaction<'_>,
    file_id: i64,
    token: u64,
    seqs: &[u64],
) -> rusqlite::Result<()> {
    let max = seqs.iter().copied().max().unwrap_or(0);
    let seqs = serde_json::to_string(seqs).unwrap_or_else(|_| "[]".into());
    tx.execute(
        "INSERT OR REPLACE INTO pending (file_id, token, seqs, max_seq, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![file_id, token, seqs, max, now_rfc3339()],
    )?;
    Ok(())
}

pub fn abandoned(tx: &Transaction<'_>, file_id: i64, token: u64) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM pending WHERE file_id = ?1 AND token = ?2", params![file_id, token])?;
    Ok(())
}

pub fn job_started(
    tx: &Transaction<'_>,
    file_id: i64,
    job_id: &str,
    seqs: &[u64],
    status: &str,
) -> rusqlite::Result<()> {
    let seqs = serde_json::to_string(seqs).unwrap_or_else(|_| "[]".into());
    tx.execute(
        "INSERT INTO jobs (file_id, job_id, status, seqs, created_at) VALUES (?1, ?2, ?5, ?3, ?4)
         ON CONFLICT (file_id, job_id) DO UPDATE SET seqs = excluded.seqs",
        params![file_id, job_id, seqs, now_rfc3339(), status],
    )?;
    Ok(())
}

pub fn job_status(
    tx: &Transaction<'_>,
    file_id: i64,
    job_id: &str,
    status: &str,
) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE jobs SET status = ?3 WHERE file_id = ?1 AND job_id = ?2",
        params![file_id, job_id, status],
    )?;
    Ok(())
}

pub fn checkpoint(tx: &Transaction<'_>, file_id: i64, cp: &Checkpoint) -> rusqlite::Result<()> {
    let counts = Counts {
        rows: cp.counts.clone(),
        failed_by_stage: cp.failed_by_stage.clone(),
        earlier_jobs: None,
    };
    // The counts are replaced; another replica's jobs, if any, are kept.
    tx.execute(
        "UPDATE files SET watermark = ?2, errors_bytes = ?3, updated_at = ?5,
                counts = CASE WHEN json_extract(counts, '$.earlier_jobs') IS NULL THEN ?4
                    ELSE json_set(?4, '$.earlier_jobs', json(json_extract(counts, '$.earlier_jobs'))) END,
                warnings_bytes = ?6,
                attempts = CASE WHEN ?2 > watermark THEN 0 ELSE attempts END
         WHERE id = ?1 AND watermark <= ?2",
        params![
            file_id,
            cp.watermark,
            cp.errors_bytes,
            serde_json::to_string(&counts).unwrap_or_default(),
            now_rfc3339(),
            cp.warnings_bytes
        ],
    )?;
    Ok(())
}

/// A run that stopped in good order (shutdown): it does not count as a crash.
pub fn stopped(tx: &Transaction<'_>, file_id: i64) -> rusqlite::Result<()> {
    tx.execute("UPDATE files SET attempts = 0 WHERE id = ?1", params![file_id])?;
    Ok(())
}

/// The file grew after it was claimed (a writer was still appending): its identity is that of
/// what was read, so the whole file dropped again is known as imported.
pub fn identity(tx: &Transaction<'_>, file_id: i64, size: u64, hash: &str) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE files SET size = ?2, hash = ?3 WHERE id = ?1",
        params![file_id, size, hash],
    )?;
    Ok(())
}

pub fn finish(tx: &Transaction<'_>, file_id: i64, state: FileState) -> rusqlite::Result<()> {
    let now = now_rfc3339();
    tx.execute(
        "UPDATE files SET state = ?2, finished_at = ?3, updated_at = ?3, attempts = 0 WHERE id = ?1",
        params![file_id, state.as_str(), now],
    )?;
    Ok(())
}

/// Replaces an unfinished file's record with `resume` (another replica's progress, taken over).
pub fn adopt(tx: &Transaction<'_>, resume: &Resume) -> rusqlite::Result<()> {
    let cp = &resume.checkpoint;
    let earlier = &resume.earlier_jobs;
    let counts = Counts {
        rows: cp.counts.clone(),
        failed_by_stage: cp.failed_by_stage.clone(),
        earlier_jobs: (earlier.count > 0).then(|| earlier.clone()),
    };
    tx.execute(
        "UPDATE files SET report_stem = ?2, started_at = ?3, watermark = ?4, errors_bytes = ?5,
                warnings_bytes = ?6, counts = ?7, attempts = ?8, updated_at = ?9
         WHERE id = ?1",
        params![
            resume.file_id,
            resume.report_stem,
            resume.started_at,
            cp.watermark,
            cp.errors_bytes,
            cp.warnings_bytes,
            serde_json::to_string(&counts).unwrap_or_default(),
            resume.attempts,
            now_rfc3339()
        ],
    )?;
    tx.execute("DELETE FROM jobs WHERE file_id = ?1", params![resume.file_id])?;
    tx.execute("DELETE FROM pending WHERE file_id = ?1", params![resume.file_id])?;
    for job in &resume.jobs {
        job_started(tx, resume.file_id, &job.id, &job.seqs, &job.status)?;
    }
    for (token, seqs) in &resume.pending {
        sending(tx, resume.file_id, *token, seqs)?;
    }
    Ok(())
}
