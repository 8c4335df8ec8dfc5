//! What an earlier run left in flight, met again as the file is read from its checkpoint:
//! rows of jobs it created (followed, not sent again) and rows of creates whose answer it
//! never recorded (sent again where the target makes that harmless, else `unconfirmed`).

use std::collections::{HashMap, HashSet};

use crate::delivery::Earlier;
use crate::ledger::Resume;
use crate::row::{Failure, MappedRow, Outcome, SourceRow, Stage};

/// What becomes of a row read again.
pub enum Met {
    /// Not held by anything earlier: a row like any other.
    Fresh(MappedRow),
    /// Held for a job an earlier run created; once all its rows are read, the job.
    Held(Option<Earlier>),
    /// A create went out for it and its answer was never recorded, and sending it again could
    /// create it twice: settled now.
    Settled(SourceRow, Outcome),
}

pub struct ResumedJobs {
    by_seq: HashMap<u64, usize>,
    groups: Vec<(String, String, usize, Vec<MappedRow>)>,
    /// Rows of unrecorded creates, when a create is not repeatable.
    unknown: HashSet<u64>,
}

impl ResumedJobs {
    pub fn new(resume: Option<&Resume>, repeatable: bool) -> Self {
        let mut me = Self { by_seq: HashMap::new(), groups: Vec::new(), unknown: HashSet::new() };
        let Some(r) = resume else { return me };
        let watermark = r.checkpoint.watermark;
        for job in &r.jobs {
            let seqs: Vec<u64> = job.seqs.iter().copied().filter(|s| *s >= watermark).collect();
            if seqs.is_empty() {
                continue;
            }
            for s in &seqs {
                me.by_seq.insert(*s, me.groups.len());
            }
            me.groups.push((job.id.clone(), job.status.clone(), seqs.len(), Vec::new()));
        }
        if !repeatable {
            let pending = r.pending.iter().flat_map(|(_, seqs)| seqs);
            me.unknown = pending
                .copied()
                .filter(|s| *s >= watermark && !me.by_seq.contains_key(s))
                .collect();
        }
        me
    }

    pub fn meet(&mut self, row: MappedRow) -> Met {
        if self.unknown.remove(&row.source.seq) {
            let f = Failure::new(Stage::Unconfirmed, None, "an earlier run sent this row and stopped before the CRM's answer was recorded; the CRM may hold it already: check before dropping it again");
            return Met::Settled(row.source, Outcome::Failed(f));
        }
        let Some(&g) = self.by_seq.get(&row.source.seq) else { return Met::Fresh(row) };
        let (id, status, expected, rows) = &mut self.groups[g];
        rows.push(row);
        if rows.len() < *expected {
            return Met::Held(None);
        }
        Met::Held(Some(Earlier {
            id: id.clone(),
            status: status.clone(),
            rows: std::mem::take(rows),
        }))
    }

    /// One past the highest row an earlier run's job holds (0: none).
    pub fn held_below(&self) -> u64 {
        self.by_seq.keys().max().map_or(0, |s| s.saturating_add(1))
    }

    /// Whether a job an earlier run created is still gathering its rows.
    pub fn waiting(&self) -> bool {
        self.groups.iter().any(|g| !g.3.is_empty())
    }

    /// Jobs whose rows were not all read again (their other rows failed locally this time).
    pub fn leftovers(&mut self) -> Vec<Earlier> {
        self.groups
            .iter_mut()
            .filter(|g| !g.3.is_empty())
            .map(|g| Earlier {
                id: g.0.clone(),
                status: g.1.clone(),
                rows: std::mem::take(&mut g.3),
            })
            .collect()
    }
}
