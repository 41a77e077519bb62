//! The audit log (workspace admins): security-relevant actions of the
//! caller's workspace, newest first (see `switchboard_projections::audit`
//! for what is recorded).

use crate::error::{ApiError, ApiResult};
use crate::extract::{Query, User};
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use switchboard_core::ids::UserId;
use switchboard_core::time::{parse_rfc3339_ms, rfc3339_ms};
use switchboard_projections::audit::{AuditEntry, AuditFilter, ACTIONS};
use utoipa::{IntoParams, ToSchema};

const TAG: &str = "admin";

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditQuery {
    /// Only actions by this user id.
    actor: Option<String>,
    /// Only this action (`user_deactivated`, `token_issued`, …; see the
    /// README for the list).
    action: Option<String>,
    /// Only entries at or after this RFC 3339 time.
    since: Option<String>,
    /// Only entries at or before this RFC 3339 time.
    until: Option<String>,
    /// A `next_cursor` from the previous page, as it was given.
    cursor: Option<String>,
    /// Page size, 1-500 (default 100).
    #[serde(default)]
    #[param(inline)]
    limit: crate::query::Limit<100, { switchboard_projections::audit::MAX_PAGE }>,
}

/// One audited action.
#[derive(Serialize, ToSchema)]
pub(super) struct AuditEntryJson {
    /// The event's position in the log (its stream sequence).
    seq: u64,
    /// When it happened (the event's server time).
    ts: String,
    /// See the README, "Audit log", for every action.
    action: String,
    /// Who did it; `null` for the server operator or a sign-in.
    actor_id: Option<String>,
    /// The user it was done to, if any.
    target_user_id: Option<String>,
    channel_id: Option<String>,
    message_id: Option<String>,
    /// Action-specific facts (a role, a token id, a channel's privacy…).
    #[schema(value_type = Object)]
    detail: serde_json::Value,
    /// The `x-request-id` of the request that did it; `null` where none
    /// did (the admin CLI, events written before request ids were kept).
    request_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct AuditPage {
    entries: Vec<AuditEntryJson>,
    /// Pass as `cursor` for the next (older) page; `null` on the last.
    next_cursor: Option<String>,
}

fn some(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn entry_json(e: AuditEntry) -> AuditEntryJson {
    AuditEntryJson {
        seq: e.seq,
        ts: rfc3339_ms(e.ts_ms),
        action: e.action,
        actor_id: some(e.actor_id),
        target_user_id: some(e.target_user_id),
        channel_id: some(e.channel_id),
        message_id: some(e.message_id),
        detail: serde_json::from_str(&e.detail).unwrap_or(serde_json::Value::Null),
        request_id: some(e.request_id),
    }
}

/// A cursor: the last entry's seq, hex, behind a letter (opaque to
/// clients; it only says where to resume within the caller's own
/// workspace's log).
fn cursor_of(seq: u64) -> String {
    format!("a{seq:x}")
}

fn parse_cursor(c: &str) -> Option<u64> {
    let hex = c.strip_prefix('a')?;
    if hex.is_empty() || hex.len() > 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

fn time(name: &str, v: &Option<String>) -> ApiResult<Option<i64>> {
    match v {
        None => Ok(None),
        Some(t) => parse_rfc3339_ms(t).map(Some).ok_or_else(|| {
            ApiError::invalid(format!(
                "{name}: an RFC 3339 time, e.g. 2026-11-28T12:00:00Z"
            ))
        }),
    }
}

impl AuditQuery {
    /// The filter asked for, or `400 invalid_request`.
    fn filter(&self) -> ApiResult<AuditFilter> {
        let actor_id = match &self.actor {
            None => None,
            Some(a) => Some(
                UserId::parse(a)
                    .map_err(|_| ApiError::invalid("actor: a user id"))?
                    .into_string(),
            ),
        };
        let action = match &self.action {
            None => None,
            Some(a) if ACTIONS.contains(&a.as_str()) => Some(a.clone()),
            Some(_) => {
                return Err(ApiError::invalid(format!(
                    "action: one of {}",
                    ACTIONS.join(", ")
                )))
            }
        };
        let since_ms = time("since", &self.since)?;
        let until_ms = time("until", &self.until)?;
        if let (Some(s), Some(u)) = (since_ms, until_ms) {
            if s > u {
                return Err(ApiError::invalid("since is after until"));
            }
        }
        let before_seq =
            match self.cursor.as_deref() {
                None | Some("") => None,
                Some(c) => Some(parse_cursor(c).ok_or_else(|| {
                    ApiError::invalid("cursor: use a next_cursor as it was given")
                })?),
            };
        Ok(AuditFilter {
            actor_id,
            action,
            since_ms,
            until_ms,
            before_seq,
        })
    }
}

/// The workspace's audit log (workspace admins).
///
/// Security-relevant actions of the caller's workspace, newest first:
/// user administration, role changes, tokens and sessions, passwords,
/// push configuration, channel creation and archiving, membership of
/// private channels, and deletes of someone else's message. Each with its
/// actor, target, time and request id. A non-admin gets 403; a bad filter
/// 400.
#[utoipa::path(get, path = "/v1/admin/audit", tag = TAG, security(("user" = [])),
    params(AuditQuery),
    responses(
        (status = 200, description = "a page of entries, newest first", body = AuditPage),
        (status = 400, description = "a bad filter or cursor"),
        (status = 403, description = "not a workspace admin"),
    ))]
pub(super) async fn audit_log(
    State(s): State<AppState>,
    User(u): User,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    let filter = q.filter()?;
    let limit = q.limit.get();
    let mut entries = s
        .commands
        .audit_page(&u, &s.audit, filter, limit + 1)
        .await?;
    let next_cursor = if entries.len() > limit as usize {
        entries.truncate(limit as usize);
        entries.last().map(|e| cursor_of(e.seq))
    } else {
        None
    };
    Ok(Json(AuditPage {
        entries: entries.into_iter().map(entry_json).collect(),
        next_cursor,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_forgeries_are_refused() {
        for seq in [0, 1, 255, u64::MAX] {
            assert_eq!(parse_cursor(&cursor_of(seq)), Some(seq));
        }
        for bad in ["", "a", "b12", "a-1", "azz", "a11111111111111111"] {
            assert_eq!(parse_cursor(bad), None, "{bad}");
        }
    }
}
