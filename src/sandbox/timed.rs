//! Jobs that take time (`--job-time`): a job finishes a set time plus a time per row after
//! it started, instead of after a count of polls, optionally changing pace after a number of
//! jobs. Each job's polls and the moment a poll first saw it finished are kept, for the
//! bench's polls per job and delay after a job's end (`GET /_sandbox/jobs`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

/// How long a job takes: `base + per_row * rows`; from job number `from` on (counted from
/// zero, in order of starting), as `later` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobTime {
    pub base: Duration,
    pub per_row: Duration,
    pub later: Option<(u64, Duration, Duration)>,
}

impl JobTime {
    /// `BASE+PER_ROW` (`400ms+4ms`), optionally then `,FROM:BASE+PER_ROW` (`,200:3200ms+0ms`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (first, later) = match text.split_once(',') {
            Some((first, later)) => (first, Some(later)),
            None => (text, None),
        };
        let (base, per_row) = pair(first)?;
        let later = match later {
            Some(l) => {
                let (from, times) = l
                    .split_once(':')
                    .ok_or_else(|| format!("`{l}` is not FROM_JOB:BASE+PER_ROW"))?;
                let from = from
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| format!("`{from}` is not a job count"))?;
                let (b, p) = pair(times)?;
                Some((from, b, p))
            }
            None => None,
        };
        Ok(Self { base, per_row, later })
    }

    /// How long job number `n` of `rows` rows takes.
    pub fn of(&self, n: u64, rows: usize) -> Duration {
        let (base, per_row) = match self.later {
            Some((from, b, p)) if n >= from => (b, p),
            _ => (self.base, self.per_row),
        };
        let rows = u32::try_from(rows).unwrap_or(u32::MAX);
        base.saturating_add(per_row.saturating_mul(rows))
    }
}

fn pair(text: &str) -> Result<(Duration, Duration), String> {
    let (base, per_row) =
        text.split_once('+').ok_or_else(|| format!("`{text}` is not BASE+PER_ROW (400ms+4ms)"))?;
    let parse = |t: &str| humantime::parse_duration(t.trim()).map_err(|e| format!("`{t}`: {e}"));
    Ok((parse(base)?, parse(per_row)?))
}

/// One timed job as `GET /_sandbox/jobs` shows it (milliseconds since the sandbox started).
#[derive(Debug, Clone, Serialize)]
pub struct TimedJob {
    pub id: String,
    pub rows: usize,
    pub started_ms: u64,
    pub ends_ms: u64,
    /// Status polls it answered, whatever they said.
    pub polls: u32,
    /// When a poll first saw it finished.
    pub seen_ms: Option<u64>,
}

/// The timed jobs, by id.
#[derive(Debug, Default)]
pub struct TimedJobs {
    jobs: BTreeMap<String, TimedJob>,
}

fn ms(since: Instant, at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(since).as_millis()).unwrap_or(u64::MAX)
}

impl TimedJobs {
    /// Job `id` of `rows` rows starts now (if jobs are timed).
    pub fn start(&mut self, time: Option<JobTime>, since: Instant, id: String, rows: usize) {
        let Some(time) = time else { return };
        let n = self.jobs.len() as u64;
        let now = Instant::now();
        let ends = now + time.of(n, rows);
        let job = TimedJob {
            id: id.clone(),
            rows,
            started_ms: ms(since, now),
            ends_ms: ms(since, ends),
            polls: 0,
            seen_ms: None,
        };
        self.jobs.insert(id, job);
    }

    /// A poll of job `id` now: whether it still runs; `None` if it is not timed.
    pub fn running(&mut self, since: Instant, id: &str) -> Option<bool> {
        let job = self.jobs.get_mut(id)?;
        job.polls += 1;
        let now = ms(since, Instant::now());
        if now < job.ends_ms {
            return Some(true);
        }
        job.seen_ms = job.seen_ms.or(Some(now));
        Some(false)
    }

    pub fn list(&self) -> Vec<TimedJob> {
        let mut all: Vec<TimedJob> = self.jobs.values().cloned().collect();
        all.sort_by_key(|j| j.started_ms);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_time_reads_with_a_change_of_pace() {
        let t = JobTime::parse("400ms+4ms,200:3200ms+0ms").unwrap();
        assert_eq!(t.of(0, 50), Duration::from_millis(600));
        assert_eq!(t.of(199, 50), Duration::from_millis(600));
        assert_eq!(t.of(200, 50), Duration::from_millis(3200));
        assert!(JobTime::parse("400ms").is_err());
        assert!(JobTime::parse("400ms+4ms,x:1s+0s").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_timed_job_runs_until_its_time() {
        let since = Instant::now();
        let mut jobs = TimedJobs::default();
        let time = JobTime::parse("1s+10ms").unwrap();
        jobs.start(Some(time), since, "7".into(), 50);
        assert_eq!(jobs.running(since, "7"), Some(true));
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(jobs.running(since, "7"), Some(false));
        assert_eq!(jobs.running(since, "8"), None);
        let list = jobs.list();
        assert_eq!((list[0].polls, list[0].ends_ms, list[0].seen_ms), (2, 1500, Some(1500)));
    }
}
