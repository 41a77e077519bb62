//! Per-request observability: a request id on every response and on every
//! log line written while the request is handled, and the request's
//! latency in the route's histogram.
//!
//! Invariants kept here:
//! - every response carries `x-request-id`: the request's own when a proxy
//!   sent a well-formed one ([`accept_id`]), else one generated here
//!   (unique per process, no syscall);
//! - the handler runs inside a `request` span carrying that id, the method
//!   and the route, so every log line of the request names it (text or JSON);
//! - metrics are labelled by the matched route *template*
//!   (`/v1/channels/{id}`), never the raw path, so ids cannot blow up the
//!   number of series; unmatched paths are one label, `unmatched`.

use crate::error::ErrorCode;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;
use tracing::Instrument;

tokio::task_local! {
    /// The request id of the request the current task is handling (set
    /// by [`observe`] around the handler), so the command side stamps it
    /// on every event the request appends (`Envelope.request_id`) without
    /// threading it through every call.
    static CURRENT_ID: std::sync::Arc<str>;
}

/// The id of the request this task is handling; empty outside a request
/// (the admin CLI, background loops, tasks spawned off a request).
pub fn current_request_id() -> String {
    CURRENT_ID.try_with(|id| id.to_string()).unwrap_or_default()
}

/// The header, both ways.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id accepted from a client or proxy.
pub const MAX_ID_LEN: usize = 128;

/// A proxy's request id, if well-formed: 1 to [`MAX_ID_LEN`] characters of
/// `A-Z a-z 0-9 - _ . :` (UUIDs, ULIDs, hex, `req-42`). Anything else is
/// replaced, so log lines never carry client-chosen spaces, quotes or
/// control characters.
pub fn accept_id(v: &HeaderValue) -> Option<&str> {
    let s = v.to_str().ok()?;
    let ok = !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then_some(s)
}

/// A new id: a random per-process prefix and a counter (24 hex digits).
pub fn new_id() -> String {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        let mut b = [0u8; 8];
        // Without OS randomness the ids stay unique in this process.
        let _ = getrandom::fill(&mut b);
        u64::from_le_bytes(b) ^ u64::from(std::process::id())
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix:016x}{:08x}", n & 0xffff_ffff)
}

/// The middleware (added with `Router::layer`, so the matched route is
/// known).
/// The `method` label: the standard methods by name, anything else
/// `OTHER` (a client may send any token as a method; each new label value
/// would be a new series kept for the process' life).
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "OTHER",
    }
}

pub async fn observe(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(accept_id)
        .map(str::to_owned)
        .unwrap_or_else(new_id);
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let route = route.as_deref().unwrap_or("unmatched").to_owned();
    let span = tracing::info_span!("request", id = %id, method = %method, route = %route);
    let scoped: std::sync::Arc<str> = id.as_str().into();
    let mut res = CURRENT_ID
        .scope(scoped, next.run(req).instrument(span.clone()))
        .await;
    let status = res.status().as_u16();
    // The access log, at debug (off by default).
    span.in_scope(|| tracing::debug!(status, ms = start.elapsed().as_secs_f64() * 1e3, "answered"));
    crate::metrics::http_request(
        method_label(&method),
        &route,
        status,
        start.elapsed().as_secs_f64(),
    );
    if method == Method::POST && route == "/v1/messages" && status >= 400 {
        let code = res
            .extensions()
            .get::<ErrorCode>()
            .copied()
            .unwrap_or(ErrorCode::Internal);
        crate::metrics::send_error(code.as_str());
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID.clone(), v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_ids_are_kept_others_replaced() {
        let ok = |s: &str| accept_id(&HeaderValue::from_str(s).expect("header")).is_some();
        assert!(ok("0b5e7c1a-3f1e-4a8e-9a53-2f0d8f3c6a11"));
        assert!(ok("01JDQ3ZK7W9X5N2M4P6R8T0V1Y"));
        assert!(ok("req-42.a_b:c"));
        assert!(ok(&"a".repeat(MAX_ID_LEN)));
        assert!(!ok(&"a".repeat(MAX_ID_LEN + 1)));
        assert!(!ok(""));
        assert!(!ok("has space"));
        assert!(!ok("quote\"d"));
        assert!(!ok("a/b"));
    }

    #[test]
    fn generated_ids_are_unique_and_well_formed() {
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 24);
        assert!(accept_id(&HeaderValue::from_str(&a).expect("header")).is_some());
    }
}
