//! Probes and the reference: `/healthz` (the process is up), `/readyz`
//! (JetStream reachable, projectors caught up and not stalled) and
//! `/v1/openapi.json`. None needs a token.

use crate::error::{ApiError, ErrorDetail};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

const TAG: &str = "health";

#[derive(Serialize, ToSchema)]
pub(super) struct Health {
    /// Always `ok`.
    status: &'static str,
}

/// Liveness probe.
///
/// 200 while the process is up.
#[utoipa::path(get, path = "/healthz", tag = TAG,
    responses((status = 200, description = "up", body = Health)))]
pub(super) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// How far the gateway is from ready.
#[derive(Serialize, ToSchema)]
pub(super) struct Readiness {
    /// The NATS connection is up.
    jetstream: bool,
    /// The log's last stream sequence when this process started.
    startup_head: u64,
    projectors: Projectors,
    /// How many stream sequences the search index is behind the newest
    /// append this process acknowledged (or the start-up head). Search
    /// answers from the index as it is; it does not gate readiness.
    search_lag: u64,
    /// The backend searches go to: `fts5` or `opensearch`.
    search_backend: &'static str,
    /// With OpenSearch: how many stream sequences its acknowledged
    /// checkpoint is behind (as `search_lag`); `null` with FTS5.
    search_backend_lag: Option<u64>,
    /// Projectors whose last batch failed (retrying with backoff).
    stalled: Vec<&'static str>,
    /// The gateway is shutting down (answers what it accepted, takes
    /// nothing new): never ready again.
    draining: bool,
}

/// The last stream sequence each projector applied.
#[derive(Serialize, ToSchema)]
pub(super) struct Projectors {
    acl: u64,
    history: u64,
    unreads: u64,
    notifications: u64,
    search: u64,
    /// The audit log model.
    audit: u64,
    /// The push-configuration model (absent where push does not run).
    #[serde(skip_serializing_if = "Option::is_none")]
    push: Option<u64>,
}

/// A 503 from `/readyz`: the error, and what is not ready.
#[derive(Serialize, ToSchema)]
pub(super) struct NotReady {
    error: ErrorDetail,
    status: Readiness,
}

/// Readiness probe.
///
/// 200 when JetStream is reachable and the projectors, none stalled, have
/// caught up to the log head seen at start-up; 503 once shutdown began.
#[utoipa::path(get, path = "/readyz", tag = TAG, responses(
    (status = 200, description = "ready", body = Readiness),
    (status = 503, description = "not ready", body = NotReady),
))]
pub(super) async fn readyz(State(s): State<AppState>) -> Response {
    let c = &s.commands;
    let acl = c.acl_progress.current();
    let history = c.history_progress.current();
    let unreads = c.unreads_progress.current();
    let notifications = c.notifications.progress.current();
    let search = s.search.progress.current();
    let audit = s.audit.progress.current();
    let search_lag = c
        .log
        .last_acked()
        .max(s.startup_head)
        .saturating_sub(search);
    let push = s.push.as_ref().map(|p| p.progress.current());
    let connected = c.log.is_connected();
    // A projector whose last batch failed (fold conflict, panic, store
    // error) is retrying with backoff: not ready. The detail is logged; the
    // probe only says which projector is stalled.
    let stalled: Vec<&str> = [
        ("acl", &c.acl_progress),
        ("history", &c.history_progress),
        ("unreads", &c.unreads_progress),
        ("notifications", &c.notifications.progress),
        ("search", &s.search.progress),
        ("audit", &s.audit.progress),
    ]
    .into_iter()
    .chain(s.push.as_ref().map(|p| ("push", &p.progress)))
    .filter(|(_, p)| p.health().is_some())
    .map(|(name, _)| name)
    .collect();
    let draining = s.realtime.closing.is_cancelled();
    let ready = connected
        && !draining
        && stalled.is_empty()
        && [acl, history, unreads, notifications, audit]
            .into_iter()
            .chain(push)
            .all(|applied| applied >= s.startup_head);
    let status = Readiness {
        jetstream: connected,
        startup_head: s.startup_head,
        projectors: Projectors {
            acl,
            history,
            unreads,
            notifications,
            search,
            audit,
            push,
        },
        search_lag,
        search_backend: s.search.backend.name(),
        search_backend_lag: s.search.external_applied.as_ref().map(|a| {
            c.log
                .last_acked()
                .max(s.startup_head)
                .saturating_sub(a.load(std::sync::atomic::Ordering::Relaxed))
        }),
        stalled,
        draining,
    };
    if ready {
        return (StatusCode::OK, Json(status)).into_response();
    }
    // An ApiError's response (status, Retry-After) with the readiness
    // detail added to its body.
    let error = ApiError::unavailable("not ready");
    let body = NotReady {
        error: ErrorDetail {
            code: error.code,
            message: error.message.clone(),
        },
        status,
    };
    let mut resp = error.into_response();
    *resp.body_mut() = Json(body).into_response().into_body();
    resp
}

/// This document.
///
/// OpenAPI 3.1, generated from the route table that also builds the
/// router.
#[utoipa::path(get, path = "/v1/openapi.json", tag = TAG, responses(
    (status = 200, description = "the OpenAPI document", body = Object),
))]
pub(super) async fn openapi() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(crate::openapi::document())
}
