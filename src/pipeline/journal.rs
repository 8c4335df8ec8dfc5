//! A file's remote jobs: recorded in the ledger (write-ahead before each create, the job once
//! created, its status as it moves) and listed in the file's summary. Also where the engine's
//! estimates of the CRM's pace are kept ([`PaceStore`] for the ledger).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::FutureExt;

use crate::delivery::{Journal, PaceStore, Token};
use crate::ledger::{Ledger, Resume};
use crate::report::RemoteJobs;
use crate::row::{RemoteJob, Seats};

/// Jobs listed one by one in a summary; past this, by status, with only the jobs that did not
/// complete listed.
const LISTED_JOBS: usize = 50;

pub struct FileJobs {
    jobs: Mutex<Vec<RemoteJob>>,
    /// The seats before the first answer that gave them and after the latest.
    seats: Mutex<Option<Seats>>,
    file: String,
    ledger: Option<(Arc<Ledger>, i64)>,
    next_token: AtomicU64,
    /// Another replica's settled jobs, when the file was taken over: in the summary too.
    earlier: RemoteJobs,
}

impl FileJobs {
    /// The jobs of `resume` (an earlier run's), for a file shown as `file`.
    pub fn new(file: &str, ledger: Option<(Arc<Ledger>, i64)>, resume: Option<&Resume>) -> Self {
        let jobs = resume
            .iter()
            .flat_map(|r| &r.jobs)
            .map(|j| RemoteJob { id: j.id.clone(), status: j.status.clone(), rows: j.seqs.len() })
            .collect();
        let first = resume.and_then(|r| r.pending.iter().map(|(t, _)| t + 1).max()).unwrap_or(1);
        Self {
            jobs: Mutex::new(jobs),
            seats: Mutex::new(None),
            file: file.to_string(),
            ledger,
            next_token: AtomicU64::new(first),
            earlier: resume.map(|r| r.earlier_jobs.clone()).unwrap_or_default(),
        }
    }

    fn set(&self, id: &str, status: &str, rows: usize) {
        if let Ok(mut jobs) = self.jobs.lock() {
            let job = RemoteJob { id: id.to_string(), status: status.to_string(), rows };
            match jobs.iter_mut().find(|j| j.id == id) {
                Some(j) => *j = job,
                None => jobs.push(job),
            }
        }
    }

    /// The summary's `remote_jobs`.
    pub fn summary(&self) -> RemoteJobs {
        let own = self.jobs.lock().map(|j| j.clone()).unwrap_or_default();
        let mut by_status = self.earlier.by_status.clone();
        for j in &own {
            *by_status.entry(j.status.clone()).or_default() += 1;
        }
        let count = self.earlier.count + own.len();
        let mut jobs = self.earlier.jobs.clone();
        jobs.extend(own);
        let listed = if count <= LISTED_JOBS {
            jobs
        } else {
            jobs.into_iter().filter(|j| !completed(&j.status)).collect()
        };
        RemoteJobs { count, by_status, jobs: listed }
    }

    /// The summary's `seats`: before the file's first user import, after its last.
    pub fn seats(&self) -> Option<Seats> {
        self.seats.lock().ok().and_then(|s| *s)
    }
}

/// Jobs whose status says they ran to the end (their rows' fates are in the report).
fn completed(status: &str) -> bool {
    ["completed", "complete", "finished", "done", "recorded", "created", "imported", "success"]
        .contains(&status.to_ascii_lowercase().as_str())
}

impl Journal for FileJobs {
    fn sending<'a>(&'a self, seqs: &'a [u64]) -> BoxFuture<'a, Result<Token, String>> {
        async move {
            let token = self.next_token.fetch_add(1, Ordering::Relaxed);
            if let Some((ledger, file_id)) = &self.ledger {
                ledger.sending(*file_id, token, seqs.to_vec()).await.map_err(|e| e.to_string())?;
            }
            Ok(token)
        }
        .boxed()
    }

    fn created<'a>(
        &'a self,
        token: Token,
        id: &'a str,
        seqs: &'a [u64],
        status: &'a str,
    ) -> BoxFuture<'a, Result<(), String>> {
        async move {
            if let Some((ledger, file_id)) = &self.ledger {
                ledger
                    .job_started(*file_id, Some(token), id, seqs.to_vec(), status)
                    .await
                    .map_err(|e| format!("the ledger did not record job {id}: {e}"))?;
            }
            if status != crate::delivery::engine::RECORDED {
                tracing::debug!(file = %self.file, job = %id, rows = seqs.len(), "remote job created");
                self.set(id, status, seqs.len());
            }
            Ok(())
        }
        .boxed()
    }

    fn abandoned(&self, token: Token) {
        if let Some((ledger, file_id)) = &self.ledger {
            ledger.abandoned(*file_id, token);
        }
    }

    fn answered(&self, report: &crate::delivery::JobReport) {
        let (Some(new), Ok(mut seats)) = (report.seats, self.seats.lock()) else { return };
        *seats = Some(Seats { before: seats.map_or(new.before, |s| s.before), after: new.after });
    }

    fn status(&self, id: &str, status: &str, rows: usize) {
        tracing::debug!(file = %self.file, job = %id, status, rows, "remote job status");
        self.set(id, status, rows);
        if let Some((ledger, file_id)) = &self.ledger {
            ledger.job_status(*file_id, id, status);
        }
    }
}

/// The engine's estimates of the CRM's pace are kept in the ledger.
impl PaceStore for Ledger {
    fn save(&self, connection: &str, target: &str, estimate: &str) {
        self.save_pace(connection, target, estimate);
    }
}
