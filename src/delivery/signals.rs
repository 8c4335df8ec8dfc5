//! What the CRM's own budget headers say about pace. `X-Ratelimit-Remaining` counts what is
//! left of the server's window (shared with the user's other integrations): as it falls,
//! requests are spread over the time left to the reset instead of bursting down to 0. The
//! reset comes from `X-RateLimit-Reset` when sent, else from where the window was seen to
//! start (the remaining count jumped up) plus the window's length.

use std::time::Duration;

use tokio::time::Instant;

/// The longest pause for an exhausted budget whose reset time is not known.
const MAX_UNKNOWN_RESET: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct ServerBudget {
    last_remaining: Option<u64>,
    window_start: Option<Instant>,
    /// While set, requests keep this gap until the instant given.
    gap: Option<(Duration, Instant)>,
    next_slot: Option<Instant>,
}

/// One answer's budget headers.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    pub remaining: u64,
    /// Time to the reset, when the server said.
    pub reset: Option<Duration>,
    /// The server's limit per window, when it said (`X-RateLimit-Limit`).
    pub limit: Option<u64>,
}

/// What to do about an answer's budget headers.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing is left: pause the connection this long.
    Exhausted(Duration),
    Fine,
}

impl ServerBudget {
    /// Notes `seen`; `window` is the configured rate's period, `own_gap` the interval the
    /// connection keeps anyway, `in_flight` how many answers may arrive out of order.
    pub fn observe(
        &mut self,
        seen: Seen,
        window: Duration,
        own_gap: Duration,
        in_flight: u64,
        now: Instant,
    ) -> Verdict {
        let new_window = match self.last_remaining {
            // Answers to concurrent requests arrive out of order: only a jump beyond that
            // is a new window.
            Some(last) => seen.remaining > last.saturating_add(in_flight),
            None => seen.limit.is_some_and(|l| seen.remaining.saturating_add(1) >= l),
        };
        if new_window {
            self.window_start = Some(now);
            self.gap = None;
        }
        self.last_remaining = Some(seen.remaining);
        let left = seen.reset.or_else(|| {
            self.window_start.map(|s| {
                s.checked_add(window).map_or(window, |end| end.saturating_duration_since(now))
            })
        });
        if seen.remaining == 0 {
            return Verdict::Exhausted(left.unwrap_or(window.min(MAX_UNKNOWN_RESET)));
        }
        if let Some(left) = left.filter(|l| !l.is_zero()) {
            let gap = left / u32::try_from(seen.remaining).unwrap_or(u32::MAX);
            // Near the own pace (a fresh window) the own limiter is enough.
            self.gap = (gap > own_gap + own_gap / 4).then_some((gap, now + left));
            if self.gap.is_some() {
                // The request just answered took a slot: the next one keeps the gap from it.
                self.next_slot = Some(self.next_slot.map_or(now + gap, |n| n.max(now + gap)));
            }
        }
        Verdict::Fine
    }

    /// When the next request may go, claiming that slot; `None`: no gap is being kept.
    pub fn claim_slot(&mut self, now: Instant) -> Option<Instant> {
        let (gap, until) = self.gap?;
        if now >= until {
            self.gap = None;
            return None;
        }
        let at = self.next_slot.map_or(now, |n| n.max(now));
        self.next_slot = Some(at + gap);
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(60);
    const OWN: Duration = Duration::from_millis(120);

    fn seen(remaining: u64, reset: Option<u64>) -> Seen {
        Seen { remaining, reset: reset.map(Duration::from_secs), limit: Some(500) }
    }

    #[test]
    fn a_falling_budget_is_spread_to_the_reset() {
        let now = Instant::now();
        let mut b = ServerBudget::default();
        assert_eq!(b.observe(seen(400, Some(30)), WINDOW, OWN, 4, now), Verdict::Fine);
        assert_eq!(b.claim_slot(now), None, "plenty left: the own pace is enough");
        b.observe(seen(10, Some(20)), WINDOW, OWN, 4, now);
        let first = b.claim_slot(now).unwrap();
        assert_eq!(first - now, Duration::from_secs(2), "the gap counts from the answered request");
        let second = b.claim_slot(now).unwrap();
        assert_eq!(second - first, Duration::from_secs(2), "10 left over 20 s");
        assert_eq!(b.claim_slot(now + Duration::from_secs(21)), None, "the gap ends at the reset");
    }

    #[test]
    fn without_a_reset_header_the_window_start_is_inferred() {
        let start = Instant::now();
        let mut b = ServerBudget::default();
        b.observe(seen(499, None), WINDOW, OWN, 4, start);
        let later = start + Duration::from_secs(50);
        b.observe(seen(5, None), WINDOW, OWN, 4, later);
        let a = b.claim_slot(later).unwrap();
        assert_eq!(b.claim_slot(later).unwrap() - a, Duration::from_secs(2), "5 left over 10 s");
        assert_eq!(
            b.observe(seen(0, None), WINDOW, OWN, 4, later),
            Verdict::Exhausted(Duration::from_secs(10))
        );
        b.observe(seen(498, None), WINDOW, OWN, 4, start + WINDOW);
        assert_eq!(b.claim_slot(start + WINDOW), None, "a new window: no gap");
    }
}
