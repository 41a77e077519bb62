//! The gateway's metrics, recorded through the `metrics` facade (a no-op
//! until a recorder is installed: `serve` installs the Prometheus one and
//! `GET /metrics` renders it). Every metric name is here, so the families
//! are listed in one place.

/// `switchboard_rate_limited_total{class}`: requests and frames refused by a
/// rate limit.
pub fn rate_limited(class: &'static str) {
    metrics::counter!("switchboard_rate_limited_total", "class" => class).increment(1);
}
