//! The v1 routes, one module per resource: [`tenants`], [`accounts`], [`auth`], [`channels`],
//! [`messages`], [`reactions`], [`threads`], [`pins`], [`reads`], [`files`],
//! [`notifications`], [`push`], [`search`], [`realtime`],
//! [`health`] (probes and the reference) and [`metrics`].
//!
//! [`table`] is the one route table. Each handler's `#[utoipa::path]`
//! states its method, path, parameters, body and responses, and
//! `utoipa_axum::routes!` mounts the handler at exactly that method and
//! path while adding the same operation to the OpenAPI document, so the
//! published reference ([`crate::openapi`]) cannot drift from what is
//! served.

mod accounts;
mod audit;
mod auth;
mod channels;
mod exports;
mod files;
mod health;
mod messages;
mod metrics;
mod retention;
pub use metrics::metrics_only;
mod notifications;
mod pins;
mod push;
mod reactions;
mod reads;
mod realtime;
mod search;
mod tenants;
mod threads;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::Router;
use switchboard_core::ids::ChannelId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Largest request body (a 40,000-character message in 4-byte UTF-8 fits).
const BODY_LIMIT: usize = 256 * 1024;

/// Every route: the router and the paths of the OpenAPI document.
pub(crate) fn table() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(crate::openapi::base())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::openapi))
        .routes(routes!(metrics::metrics))
        .routes(routes!(tenants::create_workspace))
        .routes(routes!(tenants::create_user))
        .routes(routes!(tenants::me))
        .routes(routes!(tenants::users))
        .routes(routes!(accounts::create_token, accounts::list_tokens))
        .routes(routes!(accounts::revoke_token))
        .routes(routes!(accounts::deactivate))
        .routes(routes!(accounts::reactivate))
        .routes(routes!(accounts::update_user))
        .routes(routes!(auth::login))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::accept_invite))
        .routes(routes!(auth::invite))
        .routes(routes!(auth::set_user_password))
        .routes(routes!(auth::set_my_password))
        .routes(routes!(channels::list_channels))
        .routes(routes!(channels::create_channel))
        .routes(routes!(channels::get_channel))
        .routes(routes!(channels::update_channel))
        .routes(routes!(channels::list_members))
        .routes(routes!(channels::invite_member))
        .routes(routes!(channels::remove_member))
        .routes(routes!(channels::join))
        .routes(routes!(channels::leave))
        .routes(routes!(channels::archive))
        .routes(routes!(channels::open_dm))
        .routes(routes!(exports::create_export))
        .routes(routes!(exports::get_export))
        .routes(routes!(exports::download_export))
        .routes(routes!(messages::post_message))
        .routes(routes!(messages::list_messages))
        .routes(routes!(messages::list_events))
        .routes(routes!(messages::edit_message))
        .routes(routes!(messages::delete_message))
        .routes(routes!(reactions::add_reaction))
        .routes(routes!(reactions::remove_reaction))
        .routes(routes!(threads::list_replies))
        .routes(routes!(pins::pin))
        .routes(routes!(pins::unpin))
        .routes(routes!(pins::list_pins))
        .routes(routes!(reads::mark_read))
        .routes(routes!(reads::mark_unread))
        .routes(routes!(reads::unreads))
        .routes(routes!(files::upload))
        .routes(routes!(files::download))
        .routes(routes!(realtime::websocket))
        .routes(routes!(realtime::issue_ticket))
        .routes(routes!(realtime::sse))
        .routes(routes!(realtime::presence))
        .routes(routes!(push::set_push, push::get_push, push::delete_push))
        .routes(routes!(push::list_dead))
        .routes(routes!(
            notifications::get_preferences,
            notifications::put_preferences
        ))
        .routes(routes!(
            notifications::get_channel_preferences,
            notifications::put_channel_preferences
        ))
        .routes(routes!(notifications::list_notifications))
        .routes(routes!(notifications::ack))
        .routes(routes!(search::search))
        .routes(routes!(audit::audit_log))
        .routes(routes!(retention::get_retention, retention::put_retention))
        .routes(routes!(retention::run_retention))
        .routes(routes!(retention::list_holds, retention::place_hold))
        .routes(routes!(retention::lift_hold))
        .routes(routes!(retention::erase_user))
}

/// Requests in progress at once; past that new ones are shed with 503
/// instead of queueing without bound.
const MAX_IN_FLIGHT: usize = 4096;
/// A request that has not produced its response by then gets 503. Longer
/// than the append path's own 5 s ack timeout, so it only catches hangs;
/// real-time streams are not affected (their response starts at once).
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Builds the router from [`table`].
pub fn app(state: AppState) -> Router {
    let (router, _) = table().split_for_parts();
    let limits = tower::ServiceBuilder::new()
        .layer(axum::error_handling::HandleErrorLayer::new(
            |err: tower::BoxError| async move {
                if err.is::<tower::timeout::error::Elapsed>() {
                    ApiError::unavailable("the request took too long; try again")
                } else {
                    ApiError::unavailable("the server is overloaded; try again")
                }
            },
        ))
        .load_shed()
        .concurrency_limit(MAX_IN_FLIGHT)
        .timeout(REQUEST_TIMEOUT);
    let limiter = state.limits.clone();
    let read_only = state.read_only;
    router
        .fallback(|| async { ApiError::not_found("route") })
        // Before anything else a handler does: a read-only server refuses
        // writes and real-time streams outright.
        .layer(axum::middleware::from_fn_with_state(
            read_only,
            read_only_gate,
        ))
        // Per route (Router::layer), so it sees the matched path; inside
        // the body limit and load shedding, before any handler runs.
        .layer(axum::middleware::from_fn_with_state(
            limiter,
            crate::limits::enforce,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(limits)
        .layer(axum::middleware::map_response(crate::error::json_errors))
        .layer(axum::middleware::from_fn(server_timing))
        // Outermost: the request id and latency cover everything above.
        .layer(axum::middleware::from_fn(crate::observe::observe))
        .with_state(state)
}

/// Real-time routes: live streams and presence, which a read-only server
/// (a view of the past) does not serve.
const REALTIME_PATHS: &[&str] = &["/v1/realtime", "/v1/sse", "/v1/presence"];

/// `serve --read-only`: every method but GET, HEAD and OPTIONS (every
/// write, sign-in and ticket included), and every real-time route, answers
/// `403 read_only` before its handler runs, so nothing is appended. The
/// log handle refuses appends too ([`switchboard_streams::Log::read_only_at`]),
/// should a GET ever append.
async fn read_only_gate(
    axum::extract::State(read_only): axum::extract::State<bool>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::Method;
    use axum::response::IntoResponse;
    if read_only {
        let reading = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        let path = req.uri().path().trim_end_matches('/');
        if !reading || REALTIME_PATHS.contains(&path) {
            return ApiError::read_only().into_response();
        }
    }
    next.run(req).await
}

/// Adds `Server-Timing: app;dur=<ms>`: the time from the request reaching
/// the router to its response being ready (the body built, for every JSON
/// answer), so benchmarks can report server-side latency next to what a
/// client sees. Streams (WebSocket, SSE) report the time to their headers.
async fn server_timing(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let start = std::time::Instant::now();
    let mut res = next.run(req).await;
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    if let Ok(v) = axum::http::HeaderValue::from_str(&format!("app;dur={ms:.3}")) {
        res.headers_mut().insert("server-timing", v);
    }
    res
}

/// A channel id from a path segment.
fn channel_id(raw: &str) -> ApiResult<ChannelId> {
    Ok(ChannelId::parse(raw)?)
}

/// 201 for what a request created, 200 for what an earlier one did.
fn created_or_ok(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}
