//! `GET /metrics`: every metric in the Prometheus text format
//! ([`crate::metrics`]). On the API listener it needs the operator token:
//! the figures name no tenant, but they show traffic shape and volume,
//! which is the operator's business. `serve --metrics-listen <addr>`
//! serves the same page without a token on a separate address, for a
//! Prometheus that reaches only a private network ([`metrics_only`]).

use crate::error::{ApiError, ApiResult};
use crate::extract::Auth;
use axum::http::header;
use axum::response::{IntoResponse, Response};

const TAG: &str = "operations";

/// The text exposition format's content type.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Prometheus metrics.
///
/// The text exposition format. Operator token only; see also
/// `serve --metrics-listen`.
#[utoipa::path(get, path = "/metrics", tag = TAG,
    security(("operator" = [])),
    responses((status = 200, description = "Prometheus text format", body = String,
               content_type = "text/plain")))]
pub(super) async fn metrics(auth: Auth) -> ApiResult<Response> {
    if !matches!(auth, Auth::Operator) {
        return Err(ApiError::forbidden("metrics need the operator token"));
    }
    page()
}

fn page() -> ApiResult<Response> {
    let text = crate::metrics::render()
        .ok_or_else(|| ApiError::not_found("metrics (no recorder in this process)"))?;
    Ok(([(header::CONTENT_TYPE, TEXT_FORMAT)], text).into_response())
}

/// The router of `--metrics-listen`: `GET /metrics` without a token,
/// nothing else.
pub fn metrics_only() -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async { page().into_response() }),
    )
}
