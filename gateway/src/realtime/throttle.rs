//! Coalescing of one connection's presence changes. A client may send
//! `presence` frames as fast as it likes, but each one used to cost a KV
//! write and a publish to every small channel of the user; now a
//! connection applies at most one per [`PRESENCE_INTERVAL`]. Frames in
//! between only record the wanted status: the last one wins and is applied
//! once the interval has passed. Pure — the caller passes the time — so it
//! is unit-tested without a clock.

use std::time::Duration;
use tokio::time::Instant;

/// The least time between two presence changes applied for one connection.
pub const PRESENCE_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Coalescer<T> {
    interval: Duration,
    /// When a value was last let through.
    last: Option<Instant>,
    /// The newest value offered since then, to apply at [`Self::deadline`].
    /// Only ever set while `last` is.
    pending: Option<T>,
}

impl<T> Coalescer<T> {
    pub fn new(interval: Duration) -> Self {
        Coalescer {
            interval,
            last: None,
            pending: None,
        }
    }

    /// A new wanted value at `now`: returned when it may be applied at
    /// once; otherwise kept (replacing any pending one) until the deadline.
    pub fn offer(&mut self, value: T, now: Instant) -> Option<T> {
        let free = self.last.is_none_or(|at| now >= at + self.interval);
        if self.pending.is_none() && free {
            self.last = Some(now);
            return Some(value);
        }
        self.pending = Some(value);
        None
    }

    /// When the pending value is due, if there is one.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending
            .as_ref()
            .and(self.last)
            .map(|at| at + self.interval)
    }

    /// The pending value, once due.
    pub fn take_due(&mut self, now: Instant) -> Option<T> {
        if now < self.deadline()? {
            return None;
        }
        self.last = Some(now);
        self.pending.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_one_change_now_and_the_last_one_later() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut c = Coalescer::new(Duration::from_millis(1000));
        assert_eq!(c.offer("away", t0), Some("away"));
        assert_eq!(c.deadline(), None);
        for i in 1..300 {
            let v = if i % 2 == 0 { "away" } else { "online" };
            assert_eq!(c.offer(v, ms(i)), None);
        }
        assert_eq!(c.deadline(), Some(ms(1000)));
        assert_eq!(c.take_due(ms(999)), None);
        assert_eq!(c.take_due(ms(1000)), Some("online"), "the last one wins");
        assert_eq!(c.take_due(ms(5000)), None, "nothing left");
        // The next one must wait for a full interval after that.
        assert_eq!(c.offer("away", ms(1500)), None);
        assert_eq!(c.take_due(ms(2000)), Some("away"));
        // After a quiet interval a change goes through at once.
        assert_eq!(c.offer("online", ms(3001)), Some("online"));
    }
}
