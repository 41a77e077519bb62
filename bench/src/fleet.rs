//! Receivers of fan-out traffic, one task per connection, shared by the
//! Switchboard path and its floors.
//!
//! Invariant: no sample is lost. Each receiver keeps its own samples until
//! it is told to stop (a cancellation token, never an abort), then returns
//! them all from its task; [`Fleet::finish`] joins every task. The
//! delivery counter is bumped where the sample is taken, so a summary's
//! sample count can be checked against it and against the expected count.

use crate::schedule::OpenLoop;
use crate::stats::LatencySummary;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Longest a drain waits overall, however slowly deliveries trickle in.
const DRAIN_CAP: Duration = Duration::from_secs(30);

/// What one receiver saw.
#[derive(Debug, Default)]
pub struct Received {
    pub samples: Vec<Duration>,
    pub resyncs: u64,
    /// Receivers whose task failed (counted, their samples are gone).
    pub failed: u64,
}

/// Connection `i` of `connections` follows group `i % groups`; how many
/// follow each group.
pub fn followers(connections: usize, groups: usize) -> Vec<u64> {
    let groups = groups.max(1);
    (0..groups)
        .map(|g| ((connections + groups - 1 - g) / groups) as u64)
        .collect()
}

/// Deliveries owed when group `g` got `sent[g]` messages.
pub fn expected(sent: &[AtomicU64], followers: &[u64]) -> u64 {
    sent.iter()
        .zip(followers)
        .map(|(s, f)| s.load(Ordering::Relaxed) * f)
        .sum()
}

/// The text a sender puts in a message: its scheduled time.
pub fn stamp(epoch: Instant, due: Instant) -> String {
    format!("t={}", due.saturating_duration_since(epoch).as_micros())
}

/// Scheduled time → now, for a payload made by [`stamp`].
pub fn latency_of(epoch: Instant, text: &str) -> Option<Duration> {
    let sent: u64 = text.strip_prefix("t=")?.parse().ok()?;
    let now = epoch.elapsed().as_micros() as u64;
    Some(Duration::from_micros(now.saturating_sub(sent)))
}

/// A sample taken by a receiver.
pub struct Tally {
    pub epoch: Instant,
    delivered: Arc<AtomicU64>,
    pub received: Received,
}

impl Tally {
    /// Records the payload if it is a stamped message; whether it was.
    pub fn record(&mut self, text: &str) -> bool {
        match latency_of(self.epoch, text) {
            Some(l) => {
                self.received.samples.push(l);
                self.delivered.fetch_add(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }
}

pub struct Fleet {
    pub epoch: Instant,
    delivered: Arc<AtomicU64>,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<Received>>,
}

impl Fleet {
    pub fn new(epoch: Instant) -> Fleet {
        Fleet {
            epoch,
            delivered: Arc::new(AtomicU64::new(0)),
            cancel: CancellationToken::new(),
            tasks: Vec::new(),
        }
    }

    /// A fresh tally and the stop signal for one receiver.
    pub fn tally(&self) -> (Tally, CancellationToken) {
        (
            Tally {
                epoch: self.epoch,
                delivered: self.delivered.clone(),
                received: Received::default(),
            },
            self.cancel.clone(),
        )
    }

    /// Adopts a receiver task; it must return when the token fires.
    pub fn push(&mut self, task: JoinHandle<Received>) {
        self.tasks.push(task);
    }

    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Waits until `expected` deliveries arrived, or none arrived for
    /// `quiet` (the rest are missing), or [`DRAIN_CAP`] passed.
    pub async fn drain(&self, expected: u64, quiet: Duration) {
        let start = Instant::now();
        let mut last = self.delivered();
        let mut progress = Instant::now();
        while self.delivered() < expected
            && progress.elapsed() < quiet
            && start.elapsed() < DRAIN_CAP
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let now = self.delivered();
            if now != last {
                last = now;
                progress = Instant::now();
            }
        }
    }

    /// Stops every receiver and joins it: all samples of all receivers.
    pub async fn finish(self) -> Received {
        self.cancel.cancel();
        let mut all = Received::default();
        for t in self.tasks {
            match t.await {
                Ok(mut r) => {
                    all.samples.append(&mut r.samples);
                    all.resyncs += r.resyncs;
                    all.failed += r.failed;
                }
                Err(_) => all.failed += 1,
            }
        }
        all
    }
}

/// One path's run: the sender's side and the receivers' side.
#[derive(Debug, Clone, Default)]
pub struct PathRun {
    pub scheduled: u64,
    pub sent: u64,
    pub send_errors: u64,
    pub send_secs: f64,
    /// How late sends started against the schedule.
    pub backlog: LatencySummary,
    /// Scheduled time → the send completed (for Switchboard: the POST
    /// answered).
    pub send_latency: LatencySummary,
    /// Deliveries owed for the messages sent.
    pub expected: u64,
    /// Deliveries counted as they arrived.
    pub delivered: u64,
    pub resyncs: u64,
    pub failed_receivers: u64,
    /// Scheduled time → received, one sample per delivery.
    pub latency: LatencySummary,
}

impl PathRun {
    pub fn new(out: OpenLoop, expected: u64, delivered: u64, got: Received) -> PathRun {
        PathRun {
            scheduled: out.scheduled,
            sent: out.latencies.len() as u64,
            send_errors: out.errors,
            send_secs: out.send_secs,
            backlog: out.backlog,
            send_latency: LatencySummary::of(out.latencies),
            expected,
            delivered,
            resyncs: got.resyncs,
            failed_receivers: got.failed,
            latency: LatencySummary::of(got.samples),
        }
    }

    pub fn deliveries_per_sec(&self) -> f64 {
        self.delivered as f64 / self.send_secs.max(1e-9)
    }

    /// `p50 … p99 … max … (N samples of E expected deliveries)`.
    pub fn latency_line(&self) -> String {
        format!(
            "p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({} samples of {} expected deliveries)",
            crate::stats::ms(self.latency.p50),
            crate::stats::ms(self.latency.p99),
            crate::stats::ms(self.latency.max),
            self.latency.samples,
            self.expected
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn followers_split_connections_round_robin() {
        assert_eq!(followers(10, 3), vec![4, 3, 3]);
        assert_eq!(followers(1000, 20), vec![50; 20]);
        assert_eq!(followers(2, 5), vec![1, 1, 0, 0, 0]);
        assert_eq!(followers(7, 1).iter().sum::<u64>(), 7);
    }

    #[test]
    fn stamps_round_trip() {
        let epoch = Instant::now() - Duration::from_millis(50);
        let s = stamp(epoch, epoch + Duration::from_millis(10));
        assert_eq!(s, "t=10000");
        let l = latency_of(epoch, &s).expect("a stamp");
        assert!(l >= Duration::from_millis(40), "{l:?}");
        assert_eq!(latency_of(epoch, "hello"), None);
    }

    /// Regression: receivers handed samples over every 64 and were
    /// aborted, so with fewer than 64 per connection none were counted.
    #[tokio::test]
    async fn finish_collects_every_receivers_samples() {
        let mut fleet = Fleet::new(Instant::now());
        for i in 0..10u64 {
            let (mut tally, stop) = fleet.tally();
            fleet.push(tokio::spawn(async move {
                for _ in 0..(i * 7 + 3) {
                    tally.record("t=0");
                }
                stop.cancelled().await;
                tally.received
            }));
        }
        let want: u64 = (0..10u64).map(|i| i * 7 + 3).sum();
        fleet.drain(want, Duration::from_secs(2)).await;
        assert_eq!(fleet.delivered(), want);
        let got = fleet.finish().await;
        assert_eq!(got.samples.len() as u64, want);
        assert_eq!(got.failed, 0);
    }
}
