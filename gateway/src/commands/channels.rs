//! Channels: create and rename (unique names, decided on the workspace
//! subject), topic, archive, DMs (one channel per member set, in their own
//! identity space), and the channel reads.

use super::{ms, random, refuse, settle, settle_or_unchanged, Commands, UserCtx};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::paging::{ListQuery, Paged};
use axum::http::StatusCode;
use switchboard_core::authz::Action;
use switchboard_core::commands::channels::{
    decide_archive, decide_create, decide_open_dm, decide_rename, decide_topic, CreateChannel,
    DmState, NameState, OpenDm,
};
use switchboard_core::ids::{ChannelId, UserId};
use switchboard_core::validate::{parse_topic, ChannelName};
use switchboard_projections::acl::{self, ChannelView, UserView};
use switchboard_streams::{subjects, Decision, Outcome};

impl Commands {
    pub async fn create_channel(
        &self,
        user: &UserCtx,
        name: &str,
        private: bool,
        topic: Option<&str>,
    ) -> ApiResult<ChannelView> {
        let cmd = CreateChannel {
            id: ChannelId::generate(ms(), random()),
            name: ChannelName::parse(name)?,
            private,
            topic: parse_topic(topic)?,
        };
        let ws = user.caller.workspace_id.as_str();
        let me = user.caller.user_id.as_str();
        let cmd = &cmd;
        let outcome = self
            .log
            .append_decided::<(), _, _, _>(&subjects::workspace(ws), |basis| async move {
                self.models_at(basis, false).await?;
                let (w, n) = (ws.to_string(), cmd.name.as_str().to_string());
                let taken = self
                    .acl
                    .read(move |c| acl::channel_id_by_name(c, &w, &n))
                    .await?
                    .is_some();
                let decided = decide_create(&user.caller, NameState { taken }, cmd);
                settle(
                    basis,
                    decided,
                    |seq, body| Self::envelope(ws, cmd.id.as_str(), me, seq, body),
                    None,
                )
            })
            .await?;
        self.appended_acl(outcome)?;
        Ok(ChannelView {
            id: cmd.id.as_str().to_string(),
            name: cmd.name.as_str().to_string(),
            private,
            direct: false,
            topic: cmd.topic.clone(),
            archived: false,
            creator_id: me.to_string(),
            member_count: 1,
            head_seq: 0,
            is_member: true,
        })
    }

    pub async fn archive(&self, user: &UserCtx, channel: &ChannelId) -> ApiResult<u64> {
        let ws = user.caller.workspace_id.as_str();
        let me = user.caller.user_id.as_str();
        let ch = channel.as_str();
        let outcome = self
            .log
            .append_decided::<(), _, _, _>(&subjects::channel(ws, ch), |basis| async move {
                self.models_at(basis, false).await?;
                let state = self.channel_state(user, channel).await?;
                settle(
                    basis,
                    decide_archive(&user.caller, &state),
                    |seq, body| Self::envelope(ws, ch, me, seq, body),
                    None,
                )
            })
            .await?;
        self.appended_acl(outcome)
    }

    /// Changes a channel's name and/or topic (each only if it differs) and
    /// answers with the channel afterwards.
    ///
    /// They are two events on two subjects, so a request giving both is
    /// not atomic: the rename goes first; should the topic then fail (the
    /// log unreachable), the rename stands and a retry of the same request
    /// appends only the topic. Both are decided by the same rule, so one
    /// is refused after the other succeeded only if the caller lost the
    /// right in between.
    pub async fn update_channel(
        &self,
        user: &UserCtx,
        channel: &ChannelId,
        name: Option<&ChannelName>,
        topic: Option<&str>,
    ) -> ApiResult<ChannelView> {
        if let Some(name) = name {
            self.rename(user, channel, name).await?;
        }
        if let Some(topic) = topic {
            self.set_topic(user, channel, topic).await?;
        }
        self.channel(user, channel).await
    }

    /// Renames a channel. Names are unique per workspace and decided on the
    /// workspace subject (see `create_channel`), so the rename is appended
    /// there, conditionally on that subject's head: a rename and a create
    /// (or two renames) racing for one name, through any processes, cannot
    /// both take it. The channel's own state (archived, the caller's
    /// membership) lives on the channel subject, which this append is not
    /// conditional on; it is read from the ACL model caught up to the log
    /// head as of the decision.
    async fn rename(
        &self,
        user: &UserCtx,
        channel: &ChannelId,
        name: &ChannelName,
    ) -> ApiResult<()> {
        let ws = user.caller.workspace_id.as_str();
        let me = user.caller.user_id.as_str();
        let ch = channel.as_str();
        let outcome = self
            .log
            .append_decided::<(), _, _, _>(&subjects::workspace(ws), |basis| async move {
                self.models_at(basis, false).await?;
                self.acl_catch_up(tokio::time::Instant::now()).await?;
                let state = self.channel_state(user, channel).await?;
                let (w, n) = (ws.to_string(), name.as_str().to_string());
                let holder = self
                    .acl
                    .read(move |c| acl::channel_id_by_name(c, &w, &n))
                    .await?;
                let taken = holder.is_some_and(|id| id != ch);
                settle_or_unchanged(
                    basis,
                    decide_rename(&user.caller, &state, NameState { taken }, name),
                    |seq, body| Self::envelope(ws, ch, me, seq, body),
                )
            })
            .await?;
        if let Outcome::Appended(a) = outcome {
            self.note_acl_write(a.stream_seq);
            // The rename is void if the channel changed after it was
            // decided (see `ChannelRenamed.observed_fence_seq`); the ACL
            // fold decides, so ask it.
            if !super::wait(&self.acl_progress, a.stream_seq).await {
                return Err(super::behind("the membership read model is"));
            }
            let (c, n) = (ch.to_string(), name.as_str().to_string());
            let renamed = self
                .acl
                .read(move |conn| acl::channel_has_name(conn, &c, &n))
                .await?;
            if !renamed {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    ErrorCode::Conflict,
                    "the channel changed while it was being renamed; nothing was renamed, retry",
                ));
            }
        }
        Ok(())
    }

    async fn set_topic(&self, user: &UserCtx, channel: &ChannelId, topic: &str) -> ApiResult<()> {
        let ws = user.caller.workspace_id.as_str();
        let me = user.caller.user_id.as_str();
        let ch = channel.as_str();
        let outcome = self
            .log
            .append_decided::<(), _, _, _>(&subjects::channel(ws, ch), |basis| async move {
                self.models_at(basis, false).await?;
                let state = self.channel_state(user, channel).await?;
                let c = ch.to_string();
                let current = self
                    .acl
                    .read(move |conn| acl::channel_topic(conn, &c))
                    .await?
                    .unwrap_or_default();
                settle_or_unchanged(
                    basis,
                    decide_topic(&user.caller, &state, &current, topic),
                    |seq, body| Self::envelope(ws, ch, me, seq, body),
                )
            })
            .await?;
        if let Outcome::Appended(a) = outcome {
            self.note_acl_write(a.stream_seq);
        }
        Ok(())
    }

    /// Notes an appended ACL change; returns its channel seq.
    fn appended_acl(&self, outcome: Outcome<()>) -> ApiResult<u64> {
        match outcome {
            Outcome::Appended(a) => {
                self.note_acl_write(a.stream_seq);
                Ok(a.envelope.channel_seq)
            }
            Outcome::Done(()) => Err(ApiError::internal(
                "append_decided",
                &"decision ended without an event",
            )),
        }
    }

    /// The DM channel for exactly `others` + the caller; created on first
    /// use. Returns the channel and whether it was created now.
    pub async fn open_dm(
        &self,
        user: &UserCtx,
        others: &[String],
    ) -> ApiResult<(ChannelView, bool)> {
        let others = others
            .iter()
            .map(|u| UserId::parse(u))
            .collect::<Result<Vec<_>, _>>()?;
        let cmd = OpenDm::new(&user.caller, others)?;
        let ws = user.caller.workspace_id.as_str();
        let me = user.caller.user_id.as_str();
        let cmd = &cmd;
        let outcome = self
            .log
            .append_decided(&subjects::workspace(ws), |basis| async move {
                self.models_at(basis, false).await?;
                let (w, m, id) = (ws.to_string(), me.to_string(), cmd.id.as_str().to_string());
                let members: Vec<String> =
                    cmd.members.iter().map(|u| u.as_str().to_string()).collect();
                let (existing, members_exist) = self
                    .acl
                    .read(move |c| {
                        let existing = acl::channel_view(c, &m, &id)?;
                        let mut all = true;
                        for u in &members {
                            all &= acl::user(c, &w, u)?.is_some();
                        }
                        Ok((existing, all))
                    })
                    .await?;
                let state = DmState {
                    exists: existing.is_some(),
                    members_exist,
                };
                match (decide_open_dm(state, cmd), existing) {
                    (Ok(None), Some(existing)) => Ok(Decision::Done(existing)),
                    (Ok(None), None) => Err(ApiError::internal("open_dm", &"DM vanished")),
                    (Ok(Some(body)), _) => settle(
                        basis,
                        Ok(body),
                        |seq, body| Self::envelope(ws, cmd.id.as_str(), me, seq, body),
                        None,
                    ),
                    (Err(e), _) => refuse(basis, e),
                }
            })
            .await?;
        match outcome {
            Outcome::Done(existing) => Ok((existing, false)),
            Outcome::Appended(a) => {
                self.note_acl_write(a.stream_seq);
                Ok((
                    ChannelView {
                        id: cmd.id.as_str().to_string(),
                        name: cmd.id.as_str().to_string(),
                        private: true,
                        direct: true,
                        topic: String::new(),
                        archived: false,
                        creator_id: me.to_string(),
                        member_count: cmd.members.len() as i64,
                        head_seq: 0,
                        is_member: true,
                    },
                    true,
                ))
            }
        }
    }

    /// A page of the channels the caller may see in its workspace, in
    /// name order.
    pub async fn channels(
        &self,
        user: &UserCtx,
        page: &ListQuery,
    ) -> ApiResult<Paged<ChannelView>> {
        self.fresh_reads().await?;
        let (ws, me) = (
            user.caller.workspace_id.clone(),
            user.caller.user_id.clone(),
        );
        let (after, limit) = (page.after_two()?, page.limit);
        let listing = self
            .acl
            .read_page(move |c| {
                let after = after.as_ref().map(|(n, i)| (n.as_str(), i.as_str()));
                acl::visible_channels(c, &ws, &me, after, limit)
            })
            .await?;
        Ok(Paged::of(listing, |ch| vec![&ch.name, &ch.id]))
    }

    pub async fn channel(&self, user: &UserCtx, channel: &ChannelId) -> ApiResult<ChannelView> {
        let facts = self.authorize(user, channel, Action::See).await?;
        let me = user.caller.user_id.clone();
        self.acl
            .read(move |c| acl::channel_view(c, me.as_str(), facts.id.as_str()))
            .await?
            .ok_or_else(|| ApiError::not_found("channel"))
    }

    /// A page of a channel's members (user id order), for a caller who
    /// may see the channel.
    pub async fn members(
        &self,
        user: &UserCtx,
        channel: &ChannelId,
        page: &ListQuery,
    ) -> ApiResult<Paged<UserView>> {
        let facts = self.authorize(user, channel, Action::See).await?;
        let (after, limit) = (page.after_one()?, page.limit);
        let listing = self
            .acl
            .read_page(move |c| acl::members(c, &facts.id, &after, limit))
            .await?;
        Ok(Paged::of(listing, |u| vec![&u.id]))
    }
}
