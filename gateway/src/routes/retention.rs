//! Retention, legal holds and erasure (workspace admins): policies per
//! workspace and channel, holds that block erasure and deletes, and the
//! right to erasure of one user's messages. Tenant-scoped: everything is
//! the caller's workspace's; another workspace's channel, user or hold is
//! "not found".

use crate::commands::retention::ErasureReport;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Path, User, UserCtx};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use switchboard_core::commands::retention::RetentionAge;
use switchboard_core::events::HoldScope;
use switchboard_core::time::rfc3339_ms;
use switchboard_projections::acl::{HoldView, RetentionView};
use utoipa::ToSchema;

const TAG: &str = "admin";

fn admin(u: &UserCtx) -> ApiResult<()> {
    if u.caller.admin {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "retention, legal holds and erasure are for workspace admins",
        ))
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SetRetention {
    /// The channel; absent: the workspace's default (channels without a
    /// policy of their own).
    channel_id: Option<String>,
    /// Keep messages this many days; 0 = forever (for a channel: the
    /// workspace default applies again). Give this or `max_age_secs`.
    days: Option<u32>,
    /// A finer age, in seconds (e.g. ephemeral channels).
    max_age_secs: Option<u64>,
}

/// One retention policy.
#[derive(Serialize, ToSchema)]
pub(super) struct PolicyJson {
    /// `null`: the workspace's default.
    channel_id: Option<String>,
    days: Option<u32>,
    max_age_secs: Option<u64>,
    set_at: String,
    set_by: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct RetentionJson {
    policies: Vec<PolicyJson>,
}

fn policy_json(r: RetentionView) -> PolicyJson {
    PolicyJson {
        channel_id: (!r.channel_id.is_empty()).then_some(r.channel_id),
        days: (r.max_age_secs == 0).then_some(r.days),
        max_age_secs: (r.max_age_secs > 0).then_some(r.max_age_secs),
        set_at: rfc3339_ms(r.set_ms),
        set_by: (!r.set_by.is_empty()).then_some(r.set_by),
    }
}

/// The workspace's retention policies.
#[utoipa::path(get, path = "/v1/admin/retention", tag = TAG, security(("user" = [])),
    responses((status = 200, description = "policies", body = RetentionJson)))]
pub(super) async fn get_retention(
    State(s): State<AppState>,
    User(u): User,
) -> ApiResult<Json<RetentionJson>> {
    admin(&u)?;
    let policies = s.commands.retention(&u).await?;
    Ok(Json(RetentionJson {
        policies: policies.into_iter().map(policy_json).collect(),
    }))
}

/// Set the retention of the workspace or a channel.
///
/// Messages older than the age are erased by the server's retention run
/// (`serve --retention-interval`), a whole key slot at a time: see the
/// README, "Retention, legal hold and erasure".
#[utoipa::path(put, path = "/v1/admin/retention", tag = TAG, security(("user" = [])),
    request_body = SetRetention,
    responses((status = 200, description = "policies now", body = RetentionJson)))]
pub(super) async fn put_retention(
    State(s): State<AppState>,
    User(u): User,
    ApiJson(req): ApiJson<SetRetention>,
) -> ApiResult<Json<RetentionJson>> {
    admin(&u)?;
    let age = RetentionAge::parse(req.days, req.max_age_secs)?;
    s.commands
        .set_retention(&u, req.channel_id.as_deref(), age)
        .await?;
    let policies = s.commands.retention(&u).await?;
    Ok(Json(RetentionJson {
        policies: policies.into_iter().map(policy_json).collect(),
    }))
}

/// What an erasure run did.
#[derive(Serialize, ToSchema)]
pub(super) struct ErasureJson {
    /// Channels whose messages were erased (a `content_erased` event each).
    erased_channels: Vec<String>,
    /// Channels a legal hold kept from it.
    held_channels: Vec<String>,
    /// Content keys destroyed.
    keys_destroyed: usize,
    /// What the run could not finish (retried on the next run).
    failed: Vec<String>,
}

fn erasure_json(r: ErasureReport) -> ErasureJson {
    ErasureJson {
        erased_channels: r.erased_channels,
        held_channels: r.held_channels,
        keys_destroyed: r.keys_destroyed,
        failed: r.failed,
    }
}

/// Apply the workspace's retention now (the server also does every
/// `--retention-interval`).
#[utoipa::path(post, path = "/v1/admin/retention/run", tag = TAG, security(("user" = [])),
    responses((status = 200, description = "what was erased", body = ErasureJson)))]
pub(super) async fn run_retention(
    State(s): State<AppState>,
    User(u): User,
) -> ApiResult<Json<ErasureJson>> {
    admin(&u)?;
    let r = s
        .commands
        .run_retention(Some(u.caller.workspace_id.as_str()))
        .await?;
    Ok(Json(erasure_json(r)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PlaceHoldReq {
    /// `workspace`, `channel` or `user`.
    scope: String,
    /// The channel or user id (not for `workspace`).
    target_id: Option<String>,
    /// Why (a matter or case reference), up to 500 characters.
    reason: String,
}

/// A legal hold in force.
#[derive(Serialize, ToSchema)]
pub(super) struct HoldJson {
    id: String,
    scope: String,
    target_id: Option<String>,
    reason: String,
    placed_at: String,
    placed_by: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct HoldsJson {
    holds: Vec<HoldJson>,
}

fn hold_json(h: HoldView) -> HoldJson {
    HoldJson {
        id: h.id,
        scope: h.scope,
        target_id: (!h.target_id.is_empty()).then_some(h.target_id),
        reason: h.reason,
        placed_at: rfc3339_ms(h.placed_ms),
        placed_by: (!h.placed_by.is_empty()).then_some(h.placed_by),
    }
}

/// The legal holds in force.
#[utoipa::path(get, path = "/v1/admin/legal-holds", tag = TAG, security(("user" = [])),
    responses((status = 200, description = "holds", body = HoldsJson)))]
pub(super) async fn list_holds(
    State(s): State<AppState>,
    User(u): User,
) -> ApiResult<Json<HoldsJson>> {
    admin(&u)?;
    let holds = s.commands.legal_holds(&u).await?;
    Ok(Json(HoldsJson {
        holds: holds.into_iter().map(hold_json).collect(),
    }))
}

/// Place a legal hold on the workspace, a channel or a user: while it
/// lasts nothing it covers is erased (retention, right to erasure) or
/// deleted.
#[utoipa::path(post, path = "/v1/admin/legal-holds", tag = TAG, security(("user" = [])),
    request_body = PlaceHoldReq,
    responses((status = 201, description = "placed", body = HoldJson)))]
pub(super) async fn place_hold(
    State(s): State<AppState>,
    User(u): User,
    ApiJson(req): ApiJson<PlaceHoldReq>,
) -> ApiResult<(StatusCode, Json<HoldJson>)> {
    admin(&u)?;
    let scope = match req.scope.as_str() {
        "workspace" => HoldScope::Workspace,
        "channel" => HoldScope::Channel,
        "user" => HoldScope::User,
        _ => return Err(ApiError::invalid("scope: workspace, channel or user")),
    };
    let target = req.target_id.unwrap_or_default();
    if scope == HoldScope::Workspace && !target.is_empty() {
        return Err(ApiError::invalid("a workspace hold takes no target_id"));
    }
    if scope != HoldScope::Workspace && target.is_empty() {
        return Err(ApiError::invalid("target_id: the channel or user to hold"));
    }
    let id = s
        .commands
        .place_hold(&u, scope, &target, &req.reason)
        .await?;
    let holds = s.commands.legal_holds(&u).await?;
    let hold = holds
        .into_iter()
        .find(|h| h.id == id)
        .ok_or_else(|| ApiError::unavailable("the hold is placed; list holds to see it"))?;
    Ok((StatusCode::CREATED, Json(hold_json(hold))))
}

/// Lift a legal hold: what it blocked may proceed.
#[utoipa::path(delete, path = "/v1/admin/legal-holds/{id}", tag = TAG, security(("user" = [])),
    params(("id" = String, Path, description = "the hold")),
    responses((status = 200, description = "lifted: the holds still in force", body = HoldsJson)))]
pub(super) async fn lift_hold(
    State(s): State<AppState>,
    User(u): User,
    Path(id): Path<String>,
) -> ApiResult<Json<HoldsJson>> {
    admin(&u)?;
    s.commands.lift_hold(&u, &id).await?;
    let holds = s.commands.legal_holds(&u).await?;
    Ok(Json(HoldsJson {
        holds: holds.into_iter().map(hold_json).collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EraseUser {
    /// The user whose messages are erased (deactivate them first).
    user_id: String,
}

/// Erase every message a user wrote (right to erasure).
///
/// The user must be deactivated; a legal hold on the workspace or the user
/// refuses it (409), one on a channel keeps that channel's messages (listed
/// in `held_channels`). Each erased channel gets a `content_erased` event.
#[utoipa::path(post, path = "/v1/admin/erasures", tag = TAG, security(("user" = [])),
    request_body = EraseUser,
    responses((status = 200, description = "what was erased", body = ErasureJson)))]
pub(super) async fn erase_user(
    State(s): State<AppState>,
    User(u): User,
    ApiJson(req): ApiJson<EraseUser>,
) -> ApiResult<Json<ErasureJson>> {
    admin(&u)?;
    let r = s.commands.erase_user(&u, &req.user_id).await?;
    Ok(Json(erasure_json(r)))
}
