//! An object's progress as its lease carries it (SPEC §7): what a restart of its owner would
//! need, so that any replica can resume the object. The settled line and the counts, the
//! write-ahead records of the creates in flight, the remote jobs whose rows are not settled
//! yet, and the partial errors and warnings reports (their first bytes in segment objects
//! under `<lease>.parts/`, the rest inline). Rows below the settled line need nothing more:
//! their jobs are left out, which keeps the lease small whatever the object's size.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::ledger::{Checkpoint, JobRecord, Resume};
use crate::report::{RemoteJobs, RowCounts};
use crate::row::RemoteJob;

/// Rows a progress may name in its jobs and write-ahead records, all together: far more than
/// a window of batches in flight holds, and little enough to expand without harm.
pub const MAX_SEQS: u64 = 1_000_000;

/// Seqs as inclusive ranges: a batch's rows are mostly consecutive.
pub type Ranges = Vec<[u64; 2]>;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The replica that wrote it (its owner id). A takeover carries it over unchanged until
    /// the new holder writes its own, so it always names whose ledger it came from.
    pub writer: String,
    /// The version of the object it is the progress of.
    pub etag: String,
    pub report_stem: String,
    pub started_at: String,
    /// Starts in a row without the settled line moving (a file that kills every replica that
    /// takes it is set aside, as on one daemon).
    #[serde(default)]
    pub attempts: u32,
    /// Rows with a lower seq are settled, and in the reports' first bytes if they failed.
    pub watermark: u64,
    pub counts: RowCounts,
    #[serde(default)]
    pub failed_by_stage: BTreeMap<String, u64>,
    #[serde(default)]
    pub jobs: Vec<Job>,
    #[serde(default)]
    pub pending: Vec<Pending>,
    #[serde(default)]
    pub errors: ReportPart,
    #[serde(default)]
    pub warnings: ReportPart,
    /// The jobs all of whose rows are below the settled line, for the summary: counted by
    /// status, the first [`LISTED_EARLIER`] of them listed.
    #[serde(default)]
    pub earlier_jobs: RemoteJobs,
}

/// Settled jobs a progress lists one by one (the others are only counted).
pub const LISTED_EARLIER: usize = 50;

/// Adds a settled job to `earlier`.
pub fn fold_earlier(earlier: &mut RemoteJobs, job: RemoteJob) {
    earlier.count += 1;
    *earlier.by_status.entry(job.status.clone()).or_default() += 1;
    if earlier.jobs.len() < LISTED_EARLIER {
        earlier.jobs.push(job);
    }
}

/// A remote job with rows at or past the settled line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub status: String,
    pub seqs: Ranges,
}

/// A create that went out (or was about to) without its answer recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub token: u64,
    pub seqs: Ranges,
}

/// A partial report's first `bytes` bytes: the segments' in order, then the tail's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportPart {
    pub bytes: u64,
    #[serde(default)]
    pub segments: Vec<Segment>,
    /// Base64.
    #[serde(default)]
    pub tail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub key: String,
    pub len: u64,
}

impl ReportPart {
    pub fn tail_bytes(&self) -> Result<Vec<u8>, String> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.tail)
            .map_err(|e| format!("its report tail is not base64: {e}"))
    }

    /// Whether its segments and tail add up to `bytes`.
    fn check(&self, which: &str) -> Result<(), String> {
        let tail = self.tail_bytes()?.len() as u64;
        let held = self
            .segments
            .iter()
            .try_fold(tail, |sum, s| sum.checked_add(s.len))
            .ok_or_else(|| format!("its {which} segments are too long"))?;
        if held != self.bytes {
            return Err(format!(
                "its {which} report parts hold {held} bytes, not the {} it names",
                self.bytes
            ));
        }
        Ok(())
    }
}

/// `seqs` as ranges of consecutive seqs, in order.
pub fn to_ranges(seqs: &[u64]) -> Ranges {
    let mut sorted = seqs.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out: Ranges = Vec::new();
    for s in sorted {
        match out.last_mut() {
            Some(last) if last[1].checked_add(1) == Some(s) => last[1] = s,
            _ => out.push([s, s]),
        }
    }
    out
}

/// The seqs of well-formed ranges (see [`Progress::check`]).
pub fn from_ranges(ranges: &Ranges) -> Vec<u64> {
    ranges.iter().flat_map(|[a, b]| *a..=*b).collect()
}

/// The highest seq of `ranges`.
pub fn max_of(ranges: &Ranges) -> Option<u64> {
    ranges.iter().map(|r| r[1]).max()
}

/// How many seqs `ranges` hold, when each range is in order.
fn count(ranges: &Ranges) -> Option<u64> {
    ranges.iter().try_fold(0u64, |n, [a, b]| {
        let len = b.checked_sub(*a)?.checked_add(1)?;
        n.checked_add(len)
    })
}

impl Progress {
    /// Whether it can be resumed from: its ranges in order and bounded, its reports whole.
    pub fn check(&self) -> Result<(), String> {
        let ranges = self.jobs.iter().map(|j| &j.seqs).chain(self.pending.iter().map(|p| &p.seqs));
        let mut total = 0u64;
        for r in ranges {
            let n = count(r).ok_or("a range of rows runs backwards or is too long")?;
            total = total.saturating_add(n);
        }
        if total > MAX_SEQS {
            return Err(format!("it names {total} rows in flight, more than {MAX_SEQS}"));
        }
        self.errors.check("errors")?;
        self.warnings.check("warnings")
    }

    /// What the ledger of the replica taking it over records: as if its own restart.
    pub fn to_resume(&self, file_id: i64) -> Resume {
        Resume {
            file_id,
            attempts: self.attempts.saturating_add(1),
            report_stem: self.report_stem.clone(),
            started_at: self.started_at.clone(),
            checkpoint: Checkpoint {
                watermark: self.watermark,
                errors_bytes: self.errors.bytes,
                warnings_bytes: self.warnings.bytes,
                counts: self.counts.clone(),
                failed_by_stage: self.failed_by_stage.clone(),
            },
            jobs: self
                .jobs
                .iter()
                .map(|j| JobRecord {
                    id: j.id.clone(),
                    status: j.status.clone(),
                    seqs: from_ranges(&j.seqs),
                })
                .collect(),
            pending: self.pending.iter().map(|p| (p.token, from_ranges(&p.seqs))).collect(),
            earlier_jobs: self.earlier_jobs.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn seqs_become_ranges_and_back() {
        assert_eq!(to_ranges(&[5, 1, 2, 3, 7, 8]), vec![[1, 3], [5, 5], [7, 8]]);
        assert_eq!(from_ranges(&vec![[1, 3], [5, 5]]), vec![1, 2, 3, 5]);
        assert_eq!(to_ranges(&[u64::MAX, u64::MAX - 1]), vec![[u64::MAX - 1, u64::MAX]]);
    }

    #[test]
    fn a_progress_that_does_not_add_up_is_refused() {
        let mut p = Progress::default();
        p.check().unwrap();
        p.pending.push(Pending { token: 1, seqs: vec![[9, 3]] });
        assert!(p.check().unwrap_err().contains("backwards"));
        p.pending = vec![Pending { token: 1, seqs: vec![[0, u64::MAX]] }];
        assert!(p.check().is_err());
        p.pending = vec![Pending { token: 1, seqs: vec![[0, 2_000_000]] }];
        assert!(p.check().unwrap_err().contains("more than"));
        p.pending.clear();
        p.errors = ReportPart { bytes: 10, segments: vec![], tail: "YWJj".into() };
        assert!(p.check().unwrap_err().contains("3 bytes, not the 10"));
        p.errors.tail = "not base64!".into();
        assert!(p.check().is_err());
    }

    proptest! {
        #[test]
        fn ranges_round_trip(seqs in proptest::collection::vec(0u64..10_000, 0..300)) {
            let ranges = to_ranges(&seqs);
            let mut want = seqs.clone();
            want.sort_unstable();
            want.dedup();
            prop_assert_eq!(from_ranges(&ranges), want);
        }

        #[test]
        fn any_lease_text_is_read_or_refused_without_panic(text in ".{0,400}") {
            if let Ok(p) = serde_json::from_str::<Progress>(&text) {
                let _ = p.check();
            }
        }

        #[test]
        fn ranges_from_a_lease_are_bounded_before_they_are_expanded(
            ranges in proptest::collection::vec((any::<u64>(), any::<u64>()), 0..8),
            bytes in any::<u64>(),
        ) {
            let pending =
                ranges.iter().map(|(a, b)| Pending { token: 1, seqs: vec![[*a, *b]] }).collect();
            let warnings = ReportPart { bytes, ..ReportPart::default() };
            let p = Progress { pending, warnings, ..Progress::default() };
            if p.check().is_ok() {
                let r = p.to_resume(1);
                let n: usize = r.pending.iter().map(|(_, s)| s.len()).sum();
                prop_assert!(n as u64 <= MAX_SEQS);
            }
        }
    }
}
