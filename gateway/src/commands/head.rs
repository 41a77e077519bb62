//! The log head for refusals: one JetStream request answers everyone who
//! was waiting for it.
//!
//! Before a refusal that could come from a stale ACL model (an unknown
//! token, a channel the caller may not see) the model is caught up to the
//! log head. Asking JetStream for the head on every such request would let
//! anyone turn a flood of made-up tokens into a flood of JetStream
//! requests. So the head is asked by one request at a time, at most once
//! per [`PROBE_INTERVAL`], and each answer serves every caller that began
//! waiting before that request went out.
//!
//! What stays true: a caller gets a head read **after** it started waiting,
//! so everything acknowledged before then (a token minted a moment ago,
//! through any gateway) is in it. The price is a wait of at most one
//! interval plus two round trips, only on the refusal path.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// The least time between two head requests of one gateway.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(50);

/// A head answer and when the request for it went out.
#[derive(Debug, Clone, Copy)]
struct Answer {
    sent: Instant,
    head: u64,
}

#[derive(Default)]
pub struct HeadProbe {
    /// The latest successful answer.
    last: Mutex<Option<Answer>>,
    /// When the latest request went out, answered or not (rate limit).
    last_sent: Mutex<Option<Instant>>,
    /// Held by the one caller whose request is (or is about to be) out.
    turn: tokio::sync::Mutex<()>,
}

impl HeadProbe {
    /// The latest answer to a request sent at or after `since`.
    fn answered_since(&self, since: Instant) -> Option<u64> {
        let last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        last.filter(|a| a.sent >= since).map(|a| a.head)
    }

    /// A log head read after `since`: an answer already in if a request
    /// went out after `since`, else the next request's (`ask` runs it), sent
    /// no sooner than [`PROBE_INTERVAL`] after the previous one. Callers
    /// queue in order; each request answers every caller queued before it
    /// went out.
    pub async fn head_since<E, F, Fut>(&self, since: Instant, ask: F) -> Result<u64, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<u64, E>>,
    {
        if let Some(head) = self.answered_since(since) {
            return Ok(head);
        }
        let _turn = self.turn.lock().await;
        if let Some(head) = self.answered_since(since) {
            return Ok(head);
        }
        let previous = *self
            .last_sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(prev) = previous {
            tokio::time::sleep_until(prev + PROBE_INTERVAL).await;
        }
        let sent = Instant::now();
        *self
            .last_sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(sent);
        let head = ask().await?;
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_none_or(|a| a.sent < sent) {
            *last = Some(Answer { sent, head });
        }
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    /// A head request that takes 1 ms and counts itself; the head it
    /// answers is the number of requests so far.
    async fn ask(count: &AtomicU64) -> Result<u64, ()> {
        let n = count.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(Duration::from_millis(1)).await;
        Ok(n)
    }

    #[tokio::test(start_paused = true)]
    async fn a_crowd_of_waiters_shares_one_request() {
        let probe = Arc::new(HeadProbe::default());
        let count = Arc::new(AtomicU64::new(0));
        let since = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..1000 {
            let (probe, count) = (probe.clone(), count.clone());
            tasks.push(tokio::spawn(async move {
                probe.head_since(since, || ask(&count)).await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("task"), Ok(1));
        }
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_gets_a_head_asked_after_it_arrived_and_requests_are_spaced() {
        let probe = HeadProbe::default();
        let count = AtomicU64::new(0);
        let t0 = Instant::now();
        assert_eq!(probe.head_since(t0, || ask(&count)).await, Ok(1));
        // An answer sent before a later waiter arrived does not serve it…
        let t1 = Instant::now();
        assert_eq!(probe.head_since(t1, || ask(&count)).await, Ok(2));
        // …and the second request waited out the interval.
        assert!(Instant::now() - t0 >= PROBE_INTERVAL);
        // A waiter that arrived before the last request went out is served
        // by it without another request.
        assert_eq!(probe.head_since(t1, || ask(&count)).await, Ok(2));
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_request_is_not_an_answer_and_still_spaces_the_next() {
        let probe = HeadProbe::default();
        let t0 = Instant::now();
        let failed: Result<u64, &str> = probe.head_since(t0, || async { Err("down") }).await;
        assert_eq!(failed, Err("down"));
        let ok: Result<u64, &str> = probe.head_since(t0, || async { Ok(7) }).await;
        assert_eq!(ok, Ok(7));
        assert!(Instant::now() - t0 >= PROBE_INTERVAL);
    }
}
