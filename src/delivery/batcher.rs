//! Rows into batches, the engine's one place for it: a batch closes at `max_rows` or once its
//! first row has waited `max_wait`; it holds rows of one partition only ([`Partition`]), and
//! never the same upsert key twice. A row whose key an earlier row of the file had goes into
//! a later batch than that row's, sent only once every earlier batch has ended (so the CRM
//! applies the two in the file's order), and is listed with the earlier line.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::time::Duration;

use tokio::time::Instant;

use crate::row::{MappedRow, Partition};

/// Keys remembered per file for naming repeats (about 25 MiB at most). Past it a repeat of a
/// key not remembered is still never in the batch of the earlier row while that batch is
/// open, but it is not listed.
const SEEN_KEYS: usize = 1 << 20;

/// A batch ready to send.
#[derive(Debug)]
pub struct Batch {
    /// Numbers batches in the order they were opened.
    pub number: u64,
    pub rows: Vec<MappedRow>,
    /// Rows whose key an earlier row of the file had: (seq, the first such row's line). A
    /// batch with any is created only once every batch numbered before it has ended, so the
    /// later row's values are the ones the CRM keeps.
    pub repeats: Vec<(u64, u64)>,
}

/// A batch still taking rows.
struct Open {
    batch: Batch,
    partition: Partition,
    /// The hashes of the keys it holds (a collision only sends a row in a later batch).
    keys: HashSet<u64>,
    closes_at: Instant,
}

pub struct Batcher {
    max_rows: usize,
    max_wait: Duration,
    /// In the order opened.
    open: Vec<Open>,
    /// Each key met in the file (by hash): the line of its first row; at most [`SEEN_KEYS`].
    seen: HashMap<u64, u64>,
    next_number: u64,
}

impl Batcher {
    pub fn new(max_rows: usize, max_wait: Duration) -> Self {
        Self {
            max_rows: max_rows.max(1),
            max_wait,
            open: Vec::new(),
            seen: HashMap::new(),
            next_number: 0,
        }
    }

    /// Places `row`; returns the batch it filled, if it did.
    pub fn push(&mut self, row: MappedRow, now: Instant) -> Option<Batch> {
        let key = (!row.key.is_empty()).then(|| hash_of(&row.key));
        let slot = self
            .open
            .iter()
            .position(|o| o.partition == row.partition && key.is_none_or(|k| !o.keys.contains(&k)));
        let i = match slot {
            Some(i) => i,
            None => self.open_one(row.partition.clone(), now),
        };
        if let Some(k) = key {
            match self.seen.get(&k) {
                Some(first_line) => self.open[i].batch.repeats.push((row.source.seq, *first_line)),
                None if self.seen.len() < SEEN_KEYS => {
                    self.seen.insert(k, row.source.line);
                }
                None => {}
            }
            self.open[i].keys.insert(k);
        }
        self.open[i].batch.rows.push(row);
        (self.open[i].batch.rows.len() >= self.max_rows).then(|| self.open.remove(i).batch)
    }

    fn open_one(&mut self, partition: Partition, now: Instant) -> usize {
        let number = self.next_number;
        self.next_number += 1;
        self.open.push(Open {
            batch: Batch { number, rows: Vec::new(), repeats: Vec::new() },
            partition,
            keys: HashSet::new(),
            closes_at: now + self.max_wait,
        });
        self.open.len() - 1
    }

    /// When the next open batch closes for its wait.
    pub fn next_close(&self) -> Option<Instant> {
        self.open.iter().map(|o| o.closes_at).min()
    }

    /// The batches whose wait is over at `now`, in the order opened.
    pub fn due(&mut self, now: Instant) -> Vec<Batch> {
        let (due, open) = std::mem::take(&mut self.open)
            .into_iter()
            .partition::<Vec<_>, _>(|o| o.closes_at <= now);
        self.open = open;
        due.into_iter().map(|o| o.batch).collect()
    }

    /// Every open batch (the rows ended), in the order opened.
    pub fn drain(&mut self) -> Vec<Batch> {
        std::mem::take(&mut self.open).into_iter().map(|o| o.batch).collect()
    }
}

fn hash_of(key: &str) -> u64 {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::SourceRow;

    fn row(seq: u64, key: &str, partition: &[usize]) -> MappedRow {
        MappedRow {
            source: SourceRow { seq, line: seq + 2, raw: Default::default() },
            key: key.into(),
            body: Vec::new(),
            partition: Partition::of_fields(partition.iter().copied()),
        }
    }

    fn seqs(b: &Batch) -> Vec<u64> {
        b.rows.iter().map(|r| r.source.seq).collect()
    }

    #[test]
    fn a_batch_holds_one_partition_and_closes_when_full() {
        let now = Instant::now();
        let mut b = Batcher::new(2, Duration::from_secs(1));
        assert!(b.push(row(0, "", &[0, 1]), now).is_none());
        assert!(b.push(row(1, "", &[0]), now).is_none(), "another partition: another batch");
        let full = b.push(row(2, "", &[1, 0]), now).unwrap();
        assert_eq!(seqs(&full), [0, 2], "the same set of fields, in any order");
        let rest = b.drain();
        assert_eq!(rest.iter().map(seqs).collect::<Vec<_>>(), [vec![1]]);
    }

    #[test]
    fn a_batch_closes_after_its_wait() {
        let now = Instant::now();
        let mut b = Batcher::new(10, Duration::from_millis(100));
        b.push(row(0, "", &[]), now);
        b.push(row(1, "", &[1]), now + Duration::from_millis(50));
        assert_eq!(b.next_close(), Some(now + Duration::from_millis(100)));
        let due = b.due(now + Duration::from_millis(100));
        assert_eq!(due.iter().map(seqs).collect::<Vec<_>>(), [vec![0]]);
        assert_eq!(b.next_close(), Some(now + Duration::from_millis(150)));
    }

    #[test]
    fn a_key_met_again_goes_to_a_later_batch() {
        let now = Instant::now();
        let mut b = Batcher::new(4, Duration::from_secs(1));
        for (seq, key) in [(0, "A"), (1, "A"), (2, "B"), (3, "A"), (4, "C")] {
            assert!(b.push(row(seq, key, &[]), now).is_none());
        }
        let all = b.drain();
        assert_eq!(all.iter().map(seqs).collect::<Vec<_>>(), [vec![0, 2, 4], vec![1], vec![3]]);
        assert!(all[0].repeats.is_empty());
        assert_eq!(all[1].repeats, [(1, 2)], "the later row names the first line");
        assert_eq!(all[2].repeats, [(3, 2)]);
        assert!(all[0].number < all[1].number && all[1].number < all[2].number);
    }
}
