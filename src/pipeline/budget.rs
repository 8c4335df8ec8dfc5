//! Rows between the reader and the settled watermark, bounded: the reader takes a permit per
//! row (and per 4 KiB of it) before handing a block on, and the settler gives them back as the
//! watermark passes the rows. A stalled batch or a flood of failing rows then stops reading
//! instead of growing memory.

use std::sync::Arc;

use tokio::sync::Semaphore;

/// One unit per row, and one more per this many bytes of it.
const BYTES_PER_UNIT: usize = 4096;
/// Failed rows waiting to be written to the report. A failed row holds far more than its
/// bytes (its reasons, its own copy of the record), so these are bounded apart, tighter than
/// rows in general: a file of nothing but bad rows stays within the memory of a good one.
const FAILED_ROWS: u32 = 4096;

#[derive(Debug, Clone)]
pub struct RowBudget {
    units: Arc<Semaphore>,
    total: u32,
    failed: Arc<Semaphore>,
}

impl RowBudget {
    pub fn new(total: usize) -> Self {
        let total = total.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize)) as u32;
        Self {
            units: Arc::new(Semaphore::new(total as usize)),
            total,
            failed: Arc::new(Semaphore::new(FAILED_ROWS as usize)),
        }
    }

    /// Waits until `n` failed rows more may wait for the report (at most the whole bound);
    /// without `wait`, takes what is free now and no more (the caller holds rows that
    /// earlier failed rows may wait for, so waiting could never end).
    pub async fn take_failed(&self, n: u32, wait: bool) -> bool {
        let n = n.min(FAILED_ROWS);
        if n == 0 {
            return true;
        }
        if !wait {
            let free = (self.failed.available_permits() as u32).min(n);
            if let Ok(p) = self.failed.try_acquire_many(free) {
                p.forget();
            }
            return true;
        }
        match self.failed.acquire_many(n).await {
            Ok(p) => {
                p.forget();
                true
            }
            Err(_) => false,
        }
    }

    /// Failed rows written to the report.
    pub fn give_failed(&self, n: u32) {
        let room = (FAILED_ROWS as usize).saturating_sub(self.failed.available_permits());
        self.failed.add_permits((n as usize).min(room));
    }

    /// The units a row of `bytes` bytes holds (the same on both sides).
    pub fn units_of(bytes: usize) -> u32 {
        1 + (bytes / BYTES_PER_UNIT) as u32
    }

    /// Waits for `units` (at most the whole budget, so one huge block still passes);
    /// `false` once the budget is closed (the settler stopped: reading must stop too).
    pub async fn take(&self, units: u32) -> bool {
        match self.units.acquire_many(units.min(self.total)).await {
            Ok(p) => {
                p.forget();
                true
            }
            Err(_) => false,
        }
    }

    /// Takes what is free of `units` now, without waiting: for rows an earlier run's jobs
    /// wait for, which must be read whatever the budget (their rows cannot settle until the
    /// last of them is read; they were all in memory in the run that created the jobs, maybe
    /// with a larger budget). What was not taken is not given back either ([`give`] caps).
    ///
    /// [`give`]: RowBudget::give
    pub fn take_now(&self, units: u32) {
        let free = u32::try_from(self.units.available_permits()).unwrap_or(u32::MAX).min(units);
        if let Ok(p) = self.units.try_acquire_many(free) {
            p.forget();
        }
    }

    /// No more rows will be settled: whoever waits for units stops waiting.
    pub fn close(&self) {
        self.units.close();
        self.failed.close();
    }

    /// Gives back what settled rows held.
    pub fn give(&self, units: u32) {
        let room = (self.total as usize).saturating_sub(self.units.available_permits());
        self.units.add_permits((units as usize).min(room));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn taking_waits_until_settled_rows_give_back() {
        let b = RowBudget::new(10);
        b.take(8).await;
        let waiting = {
            let b = b.clone();
            tokio::spawn(async move { b.take(5).await })
        };
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        assert!(!waiting.is_finished(), "over budget: the reader waits");
        b.give(3);
        assert!(waiting.await.unwrap());
        b.close();
        assert!(!b.take(1).await, "a closed budget lets the reader go");
        b.give(100);
        assert_eq!(b.units.available_permits(), 10, "never more than the whole budget");
        assert_eq!(RowBudget::units_of(100), 1);
        assert_eq!(RowBudget::units_of(10_000), 3);
    }
}
