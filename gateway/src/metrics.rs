//! The gateway's metrics, recorded through the `metrics` facade (a no-op
//! until a recorder is installed: `serve` calls [`install`], and
//! `GET /metrics` renders the Prometheus text format with [`render`]).
//!
//! Every family, and where it is recorded (README "Metrics and tracing"):
//!
//! | family | kind | labels | recorded in |
//! |---|---|---|---|
//! | `switchboard_http_request_duration_seconds` | histogram | `method`, `route` (template), `status` | [`crate::observe`] |
//! | `switchboard_append_duration_seconds` | histogram | — | `streams` `Log::append_decided` |
//! | `switchboard_append_retries_total` | counter | — | `streams` `Log::append_decided` (each conflict) |
//! | `switchboard_send_errors_total` | counter | `code` | [`crate::observe`] (`POST /v1/messages` errors) |
//! | `switchboard_delivery_latency_seconds` | histogram | — | WebSocket writer (append → write of a live event) |
//! | `switchboard_realtime_resumes_total` | counter | — | a subscribe that replayed events |
//! | `switchboard_realtime_replayed_events_total` | counter | `reason` (`resume`, `gap_fill`) | sessions |
//! | `switchboard_realtime_gap_fills_total` | counter | `at` (`hub`, `connection`) | hub, sessions |
//! | `switchboard_realtime_resyncs_total` | counter | — | resync frames sent (WebSocket and SSE) |
//! | `switchboard_open_connections` | gauge | `transport` (`ws`, `sse`) | [`Connection`] |
//! | `switchboard_projector_lag_events` | gauge | `projector` | `projections` runner |
//! | `switchboard_projector_lag_seconds` | gauge | `projector` | `projections` runner |
//! | `switchboard_rate_limited_total` | counter | `class` | [`crate::limits`] |
//! | `switchboard_nats_reconnects_total` | counter | — | `streams::connect` |
//! | `switchboard_nats_disconnects_total` | counter | — | `streams::connect` |

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

/// Histogram buckets, in seconds: 0.25 ms to 10 s.
const BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder as the process's global one (once;
/// later calls return the same handle). Its upkeep must run periodically:
/// see [`upkeep`].
pub fn install() -> Result<PrometheusHandle, String> {
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| e.to_string())?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// The text exposition of every metric (empty when none is installed).
pub fn render() -> Option<String> {
    let h = HANDLE.get()?;
    h.run_upkeep();
    Some(h.render())
}

/// Drains recorded histogram samples into their buckets, so memory does not
/// grow between scrapes. `serve` runs it every few seconds.
pub fn upkeep() {
    if let Some(h) = HANDLE.get() {
        h.run_upkeep();
    }
}

/// `switchboard_rate_limited_total{class}`: requests and frames refused by a
/// rate limit.
pub fn rate_limited(class: &'static str) {
    counter!("switchboard_rate_limited_total", "class" => class).increment(1);
}

/// One HTTP request answered.
pub fn http_request(method: &str, route: &str, status: u16, seconds: f64) {
    histogram!(
        "switchboard_http_request_duration_seconds",
        "method" => method.to_owned(),
        "route" => route.to_owned(),
        "status" => status.to_string(),
    )
    .record(seconds);
}

/// A `POST /v1/messages` answered with an error.
pub fn send_error(code: &'static str) {
    counter!("switchboard_send_errors_total", "code" => code).increment(1);
}

/// A live event written to a WebSocket `seconds` after it was appended.
pub fn delivered(seconds: f64) {
    histogram!("switchboard_delivery_latency_seconds").record(seconds);
}

/// A subscribe that replayed `events` from history (a resume).
pub fn resumed(events: u64) {
    counter!("switchboard_realtime_resumes_total").increment(1);
    replayed("resume", events);
}

/// A gap filled from history, at the hub or at a connection.
pub fn gap_filled(at: &'static str, events: u64) {
    counter!("switchboard_realtime_gap_fills_total", "at" => at).increment(1);
    replayed("gap_fill", events);
}

fn replayed(reason: &'static str, events: u64) {
    counter!("switchboard_realtime_replayed_events_total", "reason" => reason).increment(events);
}

/// `resync` frames sent.
pub fn resyncs(n: usize) {
    counter!("switchboard_realtime_resyncs_total").increment(n as u64);
}

/// An open real-time connection: counted in `switchboard_open_connections`
/// while it lives.
pub struct Connection(&'static str);

impl Connection {
    /// `transport`: `ws` or `sse`.
    pub fn open(transport: &'static str) -> Connection {
        gauge!("switchboard_open_connections", "transport" => transport).increment(1.0);
        Connection(transport)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        gauge!("switchboard_open_connections", "transport" => self.0).decrement(1.0);
    }
}
