//! Preferences and the notification queue: the caller's preferences and
//! channel settings (decided against the notification model, appended on
//! the caller's user subject), their notifications, and acknowledging them.
//!
//! Every write here is an event on `sb.<ws>.user.<caller>`: only the
//! caller writes there, and the decision is made against the notification
//! model caught up to that subject's head, so a partial update never loses
//! a concurrent one (a conflict re-decides on the new preferences).
//! Reads wait (bounded) until the model has applied every append this
//! gateway acknowledged, and answer only the caller's rows of channels it
//! is a member of now.

use super::{settle_or_unchanged, wait, Commands, UserCtx};
use crate::error::ApiResult;
use std::collections::{HashMap, HashSet};
use switchboard_core::authz::Directory;
use switchboard_core::commands::preferences::{
    decide_ack, decide_channel_preferences, decide_user_preferences, AckFacts, ChannelPrefsPatch,
    UserPrefsPatch,
};
use switchboard_core::ids::{ChannelId, UserId};
use switchboard_projections::acl::AclDirectory;
use switchboard_projections::notifications::{
    self, ChannelPrefs, Cursor, NotificationRow, UserPrefs,
};
use switchboard_streams::{subjects, Basis, Outcome};

impl Commands {
    /// Waits until the notification model has applied stream seq `seq`
    /// (and every append this gateway acknowledged), else 503.
    async fn notifications_at(&self, seq: u64) -> ApiResult<()> {
        let seq = seq.max(self.log.last_acked());
        if !wait(&self.notifications.progress, seq).await {
            return Err(super::behind("the notification read model is"));
        }
        Ok(())
    }

    /// The models a decision on the caller's subject reads, at `basis`.
    async fn user_subject_models(&self, basis: Basis, acl: bool) -> ApiResult<()> {
        if acl {
            self.models_at(basis, false).await?;
        }
        let mut seq = basis.must_see;
        if basis.recheck {
            seq = seq.max(self.log.last_seq().await?);
        }
        self.notifications_at(seq).await
    }

    /// The caller's preferences.
    pub async fn preferences(&self, user: &UserCtx) -> ApiResult<UserPrefs> {
        self.notifications_at(0).await?;
        let (ws, me) = caller_ids(user);
        Ok(self
            .notifications
            .readers
            .read(move |c| notifications::prefs(c, &ws, &me))
            .await?)
    }

    /// Applies `patch` to the caller's preferences; answers with the
    /// preferences afterwards. Nothing is appended when nothing changes.
    pub async fn set_preferences(
        &self,
        user: &UserCtx,
        patch: &UserPrefsPatch,
    ) -> ApiResult<UserPrefs> {
        let (ws, me) = (
            user.caller.workspace_id.as_str(),
            user.caller.user_id.as_str(),
        );
        let outcome = self
            .log
            .append_decided(&subjects::user(ws, me), |basis| async move {
                self.user_subject_models(basis, false).await?;
                let current = self.preferences_now(user).await?;
                settle_or_unchanged(
                    basis,
                    Ok(decide_user_preferences(&current, patch)),
                    |seq, body| Self::envelope(ws, "", me, seq, body),
                )
            })
            .await?;
        self.after_user_write(outcome).await?;
        self.preferences(user).await
    }

    async fn preferences_now(&self, user: &UserCtx) -> ApiResult<UserPrefs> {
        let (ws, me) = caller_ids(user);
        Ok(self
            .notifications
            .readers
            .read(move |c| notifications::prefs(c, &ws, &me))
            .await?)
    }

    /// The caller's settings for `channel` (members only).
    pub async fn channel_preferences(
        &self,
        user: &UserCtx,
        channel: &ChannelId,
    ) -> ApiResult<ChannelPrefs> {
        let facts = self
            .authorize(user, channel, switchboard_core::authz::Action::Read)
            .await?;
        self.notifications_at(0).await?;
        let (me, ch) = (
            user.caller.user_id.as_str().to_string(),
            facts.id.as_str().to_string(),
        );
        Ok(self
            .notifications
            .readers
            .read(move |c| notifications::channel_prefs(c, &me, &ch))
            .await?)
    }

    /// Applies `patch` to the caller's settings for `channel`.
    pub async fn set_channel_preferences(
        &self,
        user: &UserCtx,
        channel: &ChannelId,
        patch: &ChannelPrefsPatch,
    ) -> ApiResult<ChannelPrefs> {
        let (ws, me) = (
            user.caller.workspace_id.as_str(),
            user.caller.user_id.as_str(),
        );
        let outcome = self
            .log
            .append_decided(&subjects::user(ws, me), |basis| async move {
                self.user_subject_models(basis, true).await?;
                let state = self.channel_state(user, channel).await?;
                let (u, c) = (me.to_string(), channel.as_str().to_string());
                let current = self
                    .notifications
                    .readers
                    .read(move |conn| notifications::channel_prefs(conn, &u, &c))
                    .await?;
                settle_or_unchanged(
                    basis,
                    decide_channel_preferences(&user.caller, &state, &current, patch),
                    |seq, body| Self::envelope(ws, "", me, seq, body),
                )
            })
            .await?;
        self.after_user_write(outcome).await?;
        self.channel_preferences(user, channel).await
    }

    /// Waits (bounded) for the model to apply what was appended.
    async fn after_user_write(&self, outcome: Outcome<()>) -> ApiResult<()> {
        if let Outcome::Appended(a) = outcome {
            self.notifications_at(a.stream_seq).await?;
        }
        Ok(())
    }

    /// A page of the caller's notifications, newest first, and the cursor
    /// of the next page. Rows of a channel the ACL model says the caller
    /// is not a member of are left out (the notification model withdraws
    /// them when it folds the leave; this covers the moment between).
    pub async fn notifications(
        &self,
        user: &UserCtx,
        after: Option<Cursor>,
        all: bool,
        limit: u32,
    ) -> ApiResult<(Vec<NotificationRow>, Option<Cursor>)> {
        self.fresh_reads().await?;
        self.notifications_at(0).await?;
        let (ws, me) = caller_ids(user);
        let (rows, more) = self
            .notifications
            .readers
            .read_page(move |c| notifications::list(c, &ws, &me, after.as_ref(), all, limit))
            .await?;
        let next = match (more, rows.last()) {
            (true, Some(last)) => Some((last.stream_seq, last.id.clone())),
            _ => None,
        };
        let channels: HashSet<String> = rows.iter().map(|r| r.channel_id.clone()).collect();
        let me = UserId::from_trusted(user.caller.user_id.as_str().to_string());
        let ws = user.caller.workspace_id.clone();
        let readable: HashMap<String, bool> = self
            .acl
            .read(move |c| {
                let dir = AclDirectory(c);
                channels
                    .into_iter()
                    .map(|ch| {
                        let id = ChannelId::from_trusted(ch.clone());
                        let ok = dir.is_member(&id, &me)?
                            && dir.channel(&id)?.is_some_and(|f| f.workspace_id == ws);
                        Ok((ch, ok))
                    })
                    .collect()
            })
            .await?;
        let rows = rows
            .into_iter()
            .filter(|r| readable.get(&r.channel_id).copied().unwrap_or(false))
            .collect();
        Ok((rows, next))
    }

    /// Acknowledges those of `ids` that are the caller's and not yet
    /// acknowledged (or withdrawn); the others are ignored. Answers with
    /// the ids acknowledged now.
    pub async fn ack_notifications(
        &self,
        user: &UserCtx,
        ids: Vec<String>,
    ) -> ApiResult<Vec<String>> {
        let (ws, me) = (
            user.caller.workspace_id.as_str(),
            user.caller.user_id.as_str(),
        );
        let ids = &ids;
        let outcome = self
            .log
            .append_decided(&subjects::user(ws, me), |basis| async move {
                self.user_subject_models(basis, false).await?;
                let ids = ids.clone();
                let found = self
                    .notifications
                    .readers
                    .read(move |c| {
                        let mut found = Vec::new();
                        for id in ids {
                            if let Some(row) = notifications::get(c, &id)? {
                                found.push(AckFacts {
                                    id,
                                    workspace_id: row.workspace_id,
                                    user_id: row.user_id,
                                    state: row.state,
                                });
                            }
                        }
                        Ok(found)
                    })
                    .await?;
                settle_or_unchanged(basis, Ok(decide_ack(&user.caller, found)), |seq, body| {
                    Self::envelope(ws, "", me, seq, body)
                })
            })
            .await?;
        let acked = match &outcome {
            Outcome::Appended(a) => match &a.envelope.body {
                Some(switchboard_core::events::Body::NotificationsAcked(b)) => b.ids.clone(),
                _ => Vec::new(),
            },
            Outcome::Done(()) => Vec::new(),
        };
        self.after_user_write(outcome).await?;
        Ok(acked)
    }
}

fn caller_ids(user: &UserCtx) -> (String, String) {
    (
        user.caller.workspace_id.as_str().to_string(),
        user.caller.user_id.as_str().to_string(),
    )
}
