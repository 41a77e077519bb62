//! Open-loop load: send times are fixed by a schedule before the run
//! starts, and a send never waits for an earlier one to be answered, so a
//! slow server shows up as latency, not as a quietly lower send rate
//! (coordinated omission). Latency is measured from the *scheduled* time.
//!
//! The only thing that can hold a send back is the in-flight cap (a bound
//! on sockets and memory), or a load generator starved of CPU. Then the
//! send starts late: that lateness is the sender's backlog, reported next
//! to the latency, and the late send's latency still counts from its
//! scheduled time.
//!
//! The schedule is kept by a plain thread sleeping to each due time, not
//! by tokio timers: those fire on a 1 ms wheel, rounding each send up to
//! the next millisecond, which would add ~0.5 ms to every sample of a
//! sub-millisecond path.

use crate::stats::LatencySummary;
use anyhow::{Context, Result};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

/// `count` sends at a fixed rate from `start`.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub start: Instant,
    pub rate: f64,
    pub count: u64,
}

impl Schedule {
    /// `rate` sends per second for `duration`, the first at `start`.
    pub fn new(start: Instant, rate: f64, duration: Duration) -> Schedule {
        let rate = rate.max(0.001);
        Schedule {
            start,
            rate,
            count: (rate * duration.as_secs_f64()).round() as u64,
        }
    }

    /// When send `n` (from 0) is due.
    pub fn due(&self, n: u64) -> Instant {
        self.start + Duration::from_secs_f64(n as f64 / self.rate)
    }
}

/// What an open-loop run did: every scheduled send is either a latency
/// sample or an error, never neither.
#[derive(Debug, Clone)]
pub struct OpenLoop {
    pub scheduled: u64,
    /// Scheduled time → completion, for each send that succeeded.
    pub latencies: Vec<Duration>,
    pub errors: u64,
    /// How late each send started against its scheduled time.
    pub backlog: LatencySummary,
    /// First scheduled send to the last send started.
    pub send_secs: f64,
}

/// Runs `op(n, due)` for every send of `schedule`, each started at its due
/// time (or as soon as one of `max_in_flight` slots frees) and never
/// awaited by the next. `op` reports success; it must finish in bounded
/// time (HTTP timeouts), because all sends are joined before returning.
pub async fn open_loop<F, Fut>(
    schedule: Schedule,
    max_in_flight: usize,
    mut op: F,
) -> Result<OpenLoop>
where
    F: FnMut(u64, Instant) -> Fut,
    Fut: Future<Output = bool> + Send + 'static,
{
    let (tick_tx, mut ticks) = mpsc::unbounded_channel::<(u64, Instant)>();
    std::thread::Builder::new()
        .name("bench-schedule".into())
        .spawn(move || {
            for n in 0..schedule.count {
                let due = schedule.due(n);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                // The receiver is gone: the run was abandoned.
                if tick_tx.send((n, due)).is_err() {
                    break;
                }
            }
        })
        .context("starting the schedule thread")?;
    let slots = Arc::new(Semaphore::new(max_in_flight.max(1)));
    let mut sends = JoinSet::new();
    let mut lateness = Vec::with_capacity(schedule.count as usize);
    let mut latencies = Vec::with_capacity(schedule.count as usize);
    let mut errors = 0u64;
    let mut collect = |r: Result<Option<Duration>, tokio::task::JoinError>| match r {
        Ok(Some(lat)) => latencies.push(lat),
        Ok(None) | Err(_) => errors += 1,
    };
    let mut started = 0u64;
    while let Some((n, due)) = ticks.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            // The semaphore is never closed; counted below rather than a panic.
            continue;
        };
        started += 1;
        lateness.push(Instant::now().saturating_duration_since(due));
        let send = op(n, due);
        sends.spawn(async move {
            let ok = send.await;
            let took = due.elapsed();
            drop(slot);
            ok.then_some(took)
        });
        while let Some(r) = sends.try_join_next() {
            collect(r);
        }
    }
    let send_secs = schedule.start.elapsed().as_secs_f64();
    while let Some(r) = sends.join_next().await {
        collect(r);
    }
    errors += schedule.count - started;
    Ok(OpenLoop {
        scheduled: schedule.count,
        latencies,
        errors,
        backlog: LatencySummary::of(lateness),
        send_secs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_spaces_sends_evenly() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, 200.0, Duration::from_millis(1500));
        assert_eq!(s.count, 300);
        assert_eq!(s.due(0), t0);
        assert_eq!(s.due(200), t0 + Duration::from_secs(1));
    }

    #[tokio::test]
    async fn every_send_is_a_sample_or_an_error_and_latency_counts_from_schedule() {
        let s = Schedule::new(Instant::now(), 500.0, Duration::from_millis(202));
        assert_eq!(s.count, 101);
        let out = open_loop(s, 1000, |n, _| async move {
            tokio::time::sleep(Duration::from_millis(3)).await;
            n % 10 != 0
        })
        .await
        .expect("open loop");
        assert_eq!(out.scheduled, 101);
        assert_eq!(out.errors, 11);
        assert_eq!(out.latencies.len(), 90);
        assert_eq!(out.backlog.samples, 101);
        assert!(out.latencies.iter().all(|l| *l >= Duration::from_millis(3)));
    }

    /// A server slower than the schedule shows up as latency and backlog,
    /// not as fewer sends.
    #[tokio::test]
    async fn a_slow_server_shows_as_backlog_and_latency_not_fewer_sends() {
        let s = Schedule::new(Instant::now(), 200.0, Duration::from_millis(250));
        assert_eq!(s.count, 50);
        // One slot, and each send takes 10 ms: twice the 5 ms interval.
        let out = open_loop(s, 1, |_, _| async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            true
        })
        .await
        .expect("open loop");
        assert_eq!(out.latencies.len(), 50);
        // The last send was due at 245 ms but could start only after 49
        // sends of 10 ms each.
        assert!(out.backlog.max >= Duration::from_millis(240), "{out:?}");
        let worst = out.latencies.iter().max().copied().unwrap_or_default();
        assert!(worst >= Duration::from_millis(250), "{worst:?}");
    }
}
