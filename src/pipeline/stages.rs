//! The stages a file's rows pass, each a task with bounded channels between them: the reader
//! (blocks of records, each taking its rows' share of the budget), the router (blocks mapped
//! on every core, their order kept; each row then goes to the settler, to a batch, or to the
//! job an earlier run created for it); the window of batches in flight is the delivery
//! engine's ([`crate::delivery::Window`]).

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use super::budget::RowBudget;
use super::map_block::{BlockMapper, MappedBlock};
use super::resume::{Met, ResumedJobs};
use super::settle::SettleMsg;
use crate::csvio::{BlockPool, CsvFile, FileEncoding, FileError, LineCounts, RowBlock};
use crate::delivery::Earlier;
use crate::mapping::Mapper;
use crate::row::{MappedRow, Outcome};
use crate::targets::Target;

/// Blocks mapped at once. The machines have two cores, but with two the cores sat idle
/// while a finished block was routed and the next one spawned (`perf stat`: 1.65 of 2 CPUs
/// used); three keep 1.85 busy. Four used no more and took peak RSS from 42 to 47 MiB.
pub const MAP_TASKS: usize = 3;

/// How reading ended.
pub struct ReadEnd {
    pub error: Option<FileError>,
    /// Stopped by shutdown before the end.
    pub stopped: bool,
    /// Data rows read (those below the checkpoint included).
    pub rows_read: u64,
    /// Lines that were not records.
    pub lines: LineCounts,
}

impl ReadEnd {
    fn of(file: &CsvFile, error: Option<FileError>, stopped: bool) -> Self {
        Self { error, stopped, rows_read: file.rows_read(), lines: file.lines() }
    }
}

/// Where reading starts and what it must reach on a resume.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadFrom {
    /// Rows below are skipped unmapped (an earlier run settled them).
    pub skip_below: u64,
    /// Rows below are read without waiting for the budget: the jobs an earlier run created
    /// hold their rows until the last of them is read, so waiting could never end.
    pub held_below: u64,
}

/// Reads blocks until the end, an error or `stop`.
pub async fn read(
    mut file: CsvFile,
    from: ReadFrom,
    pool: BlockPool,
    out: mpsc::Sender<RowBlock>,
    budget: RowBudget,
    stop: CancellationToken,
) -> ReadEnd {
    loop {
        let (block, status) = tokio::select! {
            biased;
            _ = stop.cancelled() => return ReadEnd::of(&file, None, true),
            next = file.next_block(from.skip_below, pool.take()) => next,
        };
        if !block.is_empty() {
            let units =
                block.rows().iter().map(|r| RowBudget::units_of(block.row_bytes(r).len())).sum();
            let held = block.rows().first().is_some_and(|r| r.seq < from.held_below);
            if held {
                budget.take_now(units);
            }
            let granted = held
                || tokio::select! {
                    biased;
                    _ = stop.cancelled() => false,
                    granted = budget.take(units) => granted,
                };
            if !granted {
                return ReadEnd::of(&file, None, true);
            }
            if out.send(block).await.is_err() {
                return ReadEnd::of(&file, None, false);
            }
        }
        match status {
            Ok(true) => {}
            Ok(false) => return ReadEnd::of(&file, None, false),
            Err(e) => return ReadEnd::of(&file, Some(e), false),
        }
    }
}

/// Where routed rows go.
pub struct Routes {
    pub settle: mpsc::Sender<SettleMsg>,
    pub rows: mpsc::Sender<MappedRow>,
    pub earlier: mpsc::Sender<Earlier>,
}

/// What mapping needs; shared by the mapping tasks.
pub struct Mapping {
    pub mapper: Mapper,
    pub target: Arc<dyn Target>,
    pub encoding: FileEncoding,
    pub width: usize,
    /// A workbook's rows: their width is not checked (a cell cannot slip into another
    /// column, and one past the header's is in no mapped column).
    pub sheet_rows: bool,
    pub dry_run: bool,
    /// Rows naming a person an earlier row named fail (Plannr `store` clients).
    pub persons: Option<crate::mapping::PersonFields>,
    /// The lookups valid rows need before they are sent (none in a dry run: `plan` is
    /// offline).
    pub lookups: Option<crate::targets::Lookups>,
}

/// How routing ended.
#[derive(Default)]
pub struct RouteEnd {
    /// A dry run's first few payloads.
    pub samples: Vec<serde_json::Value>,
    /// Stopped by shutdown with rows not routed: they stay unsettled for the resume.
    pub stopped: bool,
    /// Mapping stopped on an internal error somewhere (those rows were settled `unprocessed`).
    pub crashed: bool,
}

/// Maps blocks on every core, their order kept, and routes each row.
pub async fn route(
    blocks: mpsc::Receiver<RowBlock>,
    mapping: Arc<Mapping>,
    pool: BlockPool,
    mut resumed: ResumedJobs,
    routes: Routes,
    budget: RowBudget,
    stop: CancellationToken,
) -> RouteEnd {
    let mut end = RouteEnd::default();
    let mut persons = SeenPersons::default();
    let mut mapped = std::pin::pin!(ReceiverStream::new(blocks)
        .map(|block| {
            let (mapping, pool) = (mapping.clone(), pool.clone());
            tokio::spawn(async move {
                let m = &*mapping;
                let mapper = BlockMapper {
                    mapper: &m.mapper,
                    target: m.target.as_ref(),
                    encoding: m.encoding,
                    width: m.width,
                    sheet_rows: m.sheet_rows,
                    dry_run: m.dry_run,
                    persons: m.persons,
                };
                let mapped = mapper.map(&block);
                pool.give(block);
                mapped
            })
        })
        .buffered(MAP_TASKS));
    while let Some(done) = mapped.next().await {
        if stop.is_cancelled() {
            end.stopped = true;
            return end;
        }
        let Ok(block) = done else {
            // `map` catches panics; a task that ends otherwise was cancelled at shutdown.
            end.stopped = true;
            return end;
        };
        end.crashed |= block.crashed;
        let block = persons.refuse_repeats(block);
        let Some(block) = look_up(block, mapping.lookups.as_ref()).await else {
            end.stopped = true;
            return end;
        };
        let sent = if mapping.dry_run {
            dry_run(block, &mapping, &routes, &budget, &mut end.samples).await
        } else {
            send(block, &mut resumed, &routes, &budget).await
        };
        if !sent {
            return end;
        }
    }
    for group in resumed.leftovers() {
        let _ = routes.earlier.send(group).await;
    }
    end
}

/// The block's valid rows with their looked-up fields filled; those whose lookup failed
/// join its failures. `None`: shutdown stopped a lookup (the rows stay for the resume).
async fn look_up(
    mut block: MappedBlock,
    lookups: Option<&crate::targets::Lookups>,
) -> Option<MappedBlock> {
    let Some(lookups) = lookups.filter(|_| !block.ready.is_empty()) else { return Some(block) };
    let (ready, failed) = lookups.fill(std::mem::take(&mut block.ready)).await?;
    if !failed.is_empty() {
        block.failed.extend(failed);
        block.failed.sort_by_key(|(row, _)| row.seq);
    }
    block.ready = ready;
    Some(block)
}

/// Nothing to send: the block settles as a whole, in one message. Its accepted rows hold
/// nothing from here on, so their share of the budget goes back at once; only the failed
/// rows (carried to the report) keep theirs until they are written.
async fn dry_run(
    block: MappedBlock,
    mapping: &Mapping,
    routes: &Routes,
    budget: &RowBudget,
    samples: &mut Vec<serde_json::Value>,
) -> bool {
    let room = 3 - samples.len().min(3);
    samples.extend(block.samples.iter().take(room).map(|b| mapping.target.preview(b)));
    let kept: u32 =
        block.failed.iter().map(|(r, _)| RowBudget::units_of(r.raw.as_slice().len())).sum();
    budget.give(block.units.saturating_sub(kept));
    if !budget.take_failed(block.failed.len() as u32, true).await {
        return false;
    }
    let msg = SettleMsg::Span {
        first: block.first_seq,
        count: block.count,
        last_line: block.last_line,
        failed: block.failed,
        units: kept,
    };
    routes.settle.send(msg).await.is_ok()
}

/// Local failures to the settler; each valid row to a batch, or to the job an earlier run
/// created for it.
async fn send(
    block: MappedBlock,
    resumed: &mut ResumedJobs,
    routes: &Routes,
    budget: &RowBudget,
) -> bool {
    // While an earlier run's job still waits for rows, failed rows may wait on it: take what
    // is free rather than wait.
    if !budget.take_failed(block.failed.len() as u32, !resumed.waiting()).await {
        return false;
    }
    let mut settled: Vec<_> =
        block.failed.into_iter().map(|(r, f)| (r, Outcome::Failed(f))).collect();
    let mut fresh = Vec::with_capacity(block.ready.len());
    for row in block.ready {
        match resumed.meet(row) {
            Met::Fresh(row) => fresh.push(row),
            Met::Held(Some(group)) => {
                if routes.earlier.send(group).await.is_err() {
                    return false;
                }
            }
            Met::Held(None) => {}
            Met::Settled(row, outcome) => settled.push((row, outcome)),
        }
    }
    if !settled.is_empty() && routes.settle.send(SettleMsg::Rows(settled)).await.is_err() {
        return false;
    }
    for row in fresh {
        if routes.rows.send(row).await.is_err() {
            return false;
        }
    }
    true
}

/// Persons kept for the duplicate check: a hash and a line each (~20 bytes), so about 10 MiB
/// at most. Past this many, rows are still checked against those kept, and new persons are
/// not remembered.
pub const MAX_PERSONS: usize = 500_000;

/// The persons the rows of a file named so far (Plannr `store` clients), by hash: the line
/// that named each first. Rows settled by an earlier run (below a checkpoint) are not read
/// again, so after a restart only the rows read since are compared.
#[derive(Default)]
struct SeenPersons {
    first_line: std::collections::HashMap<u64, u64>,
    full: bool,
}

impl SeenPersons {
    /// Moves the block's rows that name a person an earlier row named to its failures.
    fn refuse_repeats(&mut self, mut block: MappedBlock) -> MappedBlock {
        if block.persons.is_empty() {
            return block;
        }
        let mut repeats = std::collections::HashMap::new();
        for person in std::mem::take(&mut block.persons) {
            match self.first_line.get(&person.hash) {
                Some(&first) => {
                    repeats.insert(person.seq, (first, person.source));
                }
                None if self.first_line.len() < MAX_PERSONS => {
                    self.first_line.insert(person.hash, person.line);
                }
                None => {
                    if !std::mem::replace(&mut self.full, true) {
                        tracing::warn!(kept = MAX_PERSONS, "more persons in this file than the duplicate check keeps; later ones are checked against the first only");
                    }
                }
            }
        }
        if repeats.is_empty() {
            return block;
        }
        let failure = |first: u64| {
            let fields = crate::mapping::PERSON_FIELDS.join(";");
            let message = format!("same person as line {first} (first name, last name and date of birth): Plannr would create a second client, and it has no merge; remove the row, or set duplicates = \"allow\" for this pipeline");
            crate::row::Failure {
                stage: crate::row::Stage::Validate,
                fields: vec![fields],
                messages: vec![message],
            }
        };
        let ready = std::mem::take(&mut block.ready);
        for row in ready {
            match repeats.remove(&row.source.seq) {
                Some((first, _)) => block.failed.push((row.source, failure(first))),
                None => block.ready.push(row),
            }
        }
        for (_, (first, source)) in repeats {
            if let Some(source) = source {
                block.failed.push((source, failure(first)));
            }
        }
        block.failed.sort_by_key(|(row, _)| row.seq);
        block
    }
}
