//! Notification preferences and the notification queue: the caller's own
//! preferences (do-not-disturb, time zone, keywords), per-channel settings
//! (mute, notify level), the caller's notifications newest first, and
//! acknowledging them. Who is notified is the notification projector's
//! fold (`switchboard_projections::notifications`); README "Notifications
//! and preferences" has the rules.

use super::channel_id;
use crate::commands::now_ms;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Path, Query, User};
use crate::paging::{self, ListQuery};
use crate::state::AppState;
use crate::views::{
    Acked, ChannelPreferencesView, NotificationPage, NotificationView, PreferencesView,
};
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Deserializer};
use std::collections::HashMap;
use switchboard_core::commands::preferences::{
    parse_ack_ids, ChannelPrefsPatch, RawUserPrefs, UserPrefsPatch,
};
use utoipa::{IntoParams, ToSchema};

const TAG: &str = "notifications";

/// Default page size of `GET /v1/notifications`.
const DEFAULT_LIMIT: u32 = 50;

/// Absent stays `None`; `null` becomes `Some(None)`.
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A daily do-not-disturb window in the user's time zone.
#[derive(Deserialize, ToSchema)]
pub(super) struct DndScheduleReq {
    /// `HH:MM`, 24-hour local time.
    start: String,
    /// `HH:MM`; before `start` to wrap past midnight (`22:00`-`07:00`).
    end: String,
}

/// A partial update: absent fields keep their value, `null` clears one.
#[derive(Deserialize, ToSchema)]
pub(super) struct PutPreferences {
    /// RFC 3339 (`2026-11-28T18:00:00Z`); `null` ends do-not-disturb.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    dnd_until: Option<Option<String>>,
    /// `null` removes the schedule.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<DndScheduleReq>)]
    dnd_schedule: Option<Option<DndScheduleReq>>,
    /// An IANA name (`Europe/Berlin`); `null` or `""` is UTC.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    time_zone: Option<Option<String>>,
    /// At most 50, each 1-64 characters with a letter or digit; trimmed,
    /// lowercased, repeats dropped. `null` or `[]`: none.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Vec<String>>)]
    keywords: Option<Option<Vec<String>>>,
}

/// The caller's notification preferences.
#[utoipa::path(get, path = "/v1/me/preferences", tag = TAG, security(("user" = [])),
    responses((status = 200, description = "the preferences", body = PreferencesView)))]
pub(super) async fn get_preferences(
    State(s): State<AppState>,
    User(u): User,
) -> ApiResult<Json<PreferencesView>> {
    let p = s.commands.preferences(&u).await?;
    Ok(Json(PreferencesView::new(&p, now_ms())))
}

/// Change the caller's notification preferences.
///
/// Absent fields keep their value. A change that changes nothing appends
/// nothing.
#[utoipa::path(put, path = "/v1/me/preferences", tag = TAG, security(("user" = [])),
    request_body = PutPreferences,
    responses((status = 200, description = "the preferences now", body = PreferencesView)))]
pub(super) async fn put_preferences(
    State(s): State<AppState>,
    User(u): User,
    ApiJson(req): ApiJson<PutPreferences>,
) -> ApiResult<Json<PreferencesView>> {
    let raw = RawUserPrefs {
        dnd_until: req.dnd_until.as_ref().map(Option::as_deref),
        dnd_schedule: req
            .dnd_schedule
            .as_ref()
            .map(|o| o.as_ref().map(|d| (d.start.as_str(), d.end.as_str()))),
        time_zone: req.time_zone.as_ref().map(Option::as_deref),
        keywords: req.keywords.as_ref().map(Option::as_deref),
    };
    let patch = UserPrefsPatch::parse(&raw)?;
    let p = s.commands.set_preferences(&u, &patch).await?;
    Ok(Json(PreferencesView::new(&p, now_ms())))
}

/// A partial update of one channel's settings.
#[derive(Deserialize, ToSchema)]
pub(super) struct PutChannelPreferences {
    /// No notifications from this channel.
    muted: Option<bool>,
    /// `all`, `mentions`, `nothing` or `default`.
    notify: Option<String>,
}

/// The caller's settings for a channel (members only).
#[utoipa::path(get, path = "/v1/channels/{id}/preferences", tag = TAG, security(("user" = [])),
    responses((status = 200, description = "the settings", body = ChannelPreferencesView)))]
pub(super) async fn get_channel_preferences(
    State(s): State<AppState>,
    User(u): User,
    Path(id): Path<String>,
) -> ApiResult<Json<ChannelPreferencesView>> {
    let id = channel_id(&id)?;
    let p = s.commands.channel_preferences(&u, &id).await?;
    Ok(Json(ChannelPreferencesView::new(&p)))
}

/// Change the caller's settings for a channel (members only).
#[utoipa::path(put, path = "/v1/channels/{id}/preferences", tag = TAG, security(("user" = [])),
    request_body = PutChannelPreferences,
    responses((status = 200, description = "the settings now", body = ChannelPreferencesView)))]
pub(super) async fn put_channel_preferences(
    State(s): State<AppState>,
    User(u): User,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PutChannelPreferences>,
) -> ApiResult<Json<ChannelPreferencesView>> {
    let id = channel_id(&id)?;
    let patch = ChannelPrefsPatch::parse(req.muted, req.notify.as_deref())?;
    let p = s.commands.set_channel_preferences(&u, &id, &patch).await?;
    Ok(Json(ChannelPreferencesView::new(&p)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct NotificationsQuery {
    /// A `next_cursor` from the previous page, as it was given.
    after: Option<String>,
    /// Page size, 1-1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Also `read` and `acked` notifications (default: `pending` only).
    all: Option<bool>,
}

/// The caller's notifications.
///
/// Newest first. Pending ones only unless `all=true`; never withdrawn ones
/// (deleted messages, edited-away mentions) nor those of channels the
/// caller is no longer in.
#[utoipa::path(get, path = "/v1/notifications", tag = TAG, security(("user" = [])),
    params(NotificationsQuery),
    responses((status = 200, description = "a page", body = NotificationPage)))]
pub(super) async fn list_notifications(
    State(s): State<AppState>,
    User(u): User,
    Query(q): Query<NotificationsQuery>,
) -> ApiResult<Json<NotificationPage>> {
    let mut raw = HashMap::new();
    if let Some(l) = q.limit {
        raw.insert("limit".to_string(), l.to_string());
    }
    if let Some(a) = &q.after {
        raw.insert("cursor".to_string(), a.clone());
    }
    let page = ListQuery::parse(&raw, DEFAULT_LIMIT)
        .map_err(|e| ApiError::invalid(e.message.replace("cursor:", "after:")))?;
    let after = match page.after_two().map_err(|_| bad_after())? {
        None => None,
        Some((seq, id)) => Some((seq.parse::<u64>().map_err(|_| bad_after())?, id)),
    };
    let (rows, next) = s
        .commands
        .notifications(&u, after, q.all.unwrap_or(false), page.limit)
        .await?;
    Ok(Json(NotificationPage {
        notifications: rows.into_iter().map(NotificationView::from_row).collect(),
        next_cursor: next.map(|(seq, id)| paging::encode(&[&seq.to_string(), &id])),
    }))
}

fn bad_after() -> ApiError {
    ApiError::invalid("after: use a next_cursor as it was given")
}

#[derive(Deserialize, ToSchema)]
pub(super) struct AckReq {
    /// Notification ids (at most 500). Ids that are not the caller's, or
    /// unknown, are ignored.
    ids: Vec<String>,
}

/// Dismiss notifications.
#[utoipa::path(post, path = "/v1/notifications/ack", tag = TAG, security(("user" = [])),
    request_body = AckReq,
    responses((status = 200, description = "acknowledged", body = Acked)))]
pub(super) async fn ack(
    State(s): State<AppState>,
    User(u): User,
    ApiJson(req): ApiJson<AckReq>,
) -> ApiResult<Json<Acked>> {
    let ids = parse_ack_ids(&req.ids)?;
    let acked = if ids.is_empty() {
        Vec::new()
    } else {
        s.commands.ack_notifications(&u, ids).await?
    };
    Ok(Json(Acked { acked }))
}
