//! The outbox's delivery task: takes due rows, sends each, and records what came of it. At
//! start every waiting row is tried once whatever its schedule (the receiver may have been
//! fixed while the daemon was down); after that a failed row waits `initial_backoff`,
//! doubling to `max_backoff`, until a day after the event, when it is given up.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::Notifier;
use crate::config::SinkSettings;
use crate::ledger::{Due, Reader};

/// An event not delivered within this long is given up (and said so in the log).
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Rows taken per round.
const BATCH: usize = 64;
/// Deliveries at once.
const PARALLEL: usize = 4;
/// The longest sleep between rounds: a row queued by another process is seen this late.
const IDLE: i64 = 30;

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Delivers until `stop`. Rows in flight at `stop` stay in the outbox: sent again at the next
/// start (at least once; receivers de-duplicate on the event's `id`).
pub async fn run(notifier: Arc<Notifier>, reader: Arc<Reader>, stop: CancellationToken) {
    let client = match super::send::client() {
        Ok(c) => c,
        Err(e) => {
            return tracing::error!(error = %e.without_url(), "notifications are off: cannot build their HTTP client")
        }
    };
    let wake = notifier.woken();
    let mut until = i64::MAX;
    loop {
        let due = {
            let reader = reader.clone();
            tokio::task::spawn_blocking(move || reader.due(until, BATCH)).await
        };
        let due = match due {
            Ok(Ok(rows)) => rows,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the outbox; trying again");
                Vec::new()
            }
            Err(_) => Vec::new(),
        };
        let full = due.len() == BATCH;
        let round = futures::stream::iter(due)
            .for_each_concurrent(PARALLEL, |row| deliver_one(&notifier, &client, row));
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = round => {}
        }
        let now = unix_now();
        until = now;
        if full {
            continue;
        }
        let next = {
            let reader = reader.clone();
            tokio::task::spawn_blocking(move || reader.next_due()).await
        };
        let wait = match next {
            Ok(Ok(Some(at))) => at.saturating_sub(now).clamp(0, IDLE),
            _ => IDLE,
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(wait.unsigned_abs())) => {}
        }
    }
}

async fn deliver_one(notifier: &Notifier, client: &reqwest::Client, row: Due) {
    let ledger = notifier.ledger();
    let Some(sink) = notifier.sink(&row.sink) else {
        tracing::info!(event = %row.kind, id = %row.event_id, "no [[notify]] table sends to this destination any more; the event is dropped");
        let _ = ledger.settled(&row.event_id, &row.sink).await;
        return;
    };
    let outcome = super::send::deliver(client, &sink, &row).await;
    let now = unix_now();
    let recorded = match outcome {
        Ok(()) => {
            tracing::info!(to = %sink.describe(), event = %row.kind, id = %row.event_id, "notification delivered");
            ledger.settled(&row.event_id, &row.sink).await
        }
        Err(e) if now.saturating_sub(row.created_at) >= GIVE_UP_AFTER.as_secs() as i64 => {
            tracing::error!(to = %sink.describe(), event = %row.kind, id = %row.event_id, attempts = row.attempts + 1, error = %e, "notification given up: not delivered within 24 h");
            ledger.settled(&row.event_id, &row.sink).await
        }
        Err(e) => {
            let wait = backoff(&sink, row.attempts);
            tracing::warn!(to = %sink.describe(), event = %row.kind, id = %row.event_id, attempt = row.attempts + 1, retry_in_s = wait.as_secs(), error = %e, "notification not delivered; trying again later");
            let next = now.saturating_add(i64::try_from(wait.as_secs()).unwrap_or(i64::MAX));
            ledger.deliver_later(&row.event_id, &row.sink, next, e).await
        }
    };
    if let Err(e) = recorded {
        tracing::warn!(error = %e, "cannot record a notification's delivery; it may be sent again");
    }
}

/// The wait after `failed` earlier failures plus this one: doubling from `initial_backoff`,
/// capped at `max_backoff`, with up to a tenth of jitter so a crowd of rows spreads out.
pub fn backoff(sink: &SinkSettings, failed: u32) -> Duration {
    let doubled = sink.initial_backoff.saturating_mul(2u32.saturating_pow(failed.min(30)));
    let wait = doubled.min(sink.max_backoff);
    let jitter = wait.as_millis().min(u128::from(u64::MAX)) as u64 / 10;
    wait + Duration::from_millis(fastrand::u64(0..=jitter))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SinkKind;
    use crate::secret::Secret;

    #[test]
    fn backoff_doubles_to_its_cap() {
        let sink = SinkSettings {
            key: "k".into(),
            kind: SinkKind::Slack { url: Secret::new("http://x/") },
            events: Default::default(),
            pipelines: None,
            initial_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(3600),
        };
        let secs = |n| backoff(&sink, n).as_secs();
        assert!((10..=11).contains(&secs(0)));
        assert!((20..=22).contains(&secs(1)));
        assert!((3600..=3960).contains(&secs(20)));
        assert!((3600..=3960).contains(&secs(u32::MAX)), "never overflows");
    }
}
