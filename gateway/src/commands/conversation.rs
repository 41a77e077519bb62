//! Commands on existing messages — edit, delete, react, unreact, pin,
//! unpin — each decided against the message (history model) and the
//! channel (ACL model) at the head of the channel's subject it appends
//! after, and re-decided on every conflict; and the thread and pin reads.
//!
//! A command whose effect is already in place appends nothing and answers
//! like one that appended (idempotent retries), after re-checking against
//! the log head that it really is in place.

use super::{settle_or_unchanged, Commands, UserCtx, FRESHNESS_WAIT};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::views::MessageView;
use switchboard_core::authz::{Action, Directory};
use switchboard_core::commands::conversation::{
    decide_message, MessageCommand, MessageFacts, MessageState, ReactionFacts, MAX_PINS,
};
use switchboard_core::events::Mentions;
use switchboard_core::ids::{ChannelId, MessageId, UserId};
use switchboard_core::mentions;
use switchboard_projections::acl::AclDirectory;
use switchboard_projections::history::{self, MessageRow};
use switchboard_streams::{subjects, Outcome};

impl Commands {
    /// Applies `cmd` to message `id`; answers with the message as the
    /// history model has it afterwards.
    pub async fn message_command(
        &self,
        user: &UserCtx,
        id: &MessageId,
        cmd: MessageCommand,
    ) -> ApiResult<MessageView> {
        let ws = user.caller.workspace_id.as_str();
        let me = user.caller.user_id.as_str();
        // The subject: the channel a pin names (the decision checks that
        // the message is in it), or the message's own channel.
        let channel = match cmd.pin_channel() {
            Some(c) => c.clone(),
            None => self
                .message_channel(user, id)
                .await?
                .ok_or_else(|| ApiError::not_found("message"))?,
        };
        let ch = channel.as_str();
        let (cmd, channel) = (&cmd, &channel);
        let outcome = self
            .log
            .append_decided(&subjects::channel(ws, ch), |basis| async move {
                self.models_at(basis, true).await?;
                let state = self.message_state(user, channel, id, cmd).await?;
                settle_or_unchanged(
                    basis,
                    decide_message(&user.caller, &state, cmd),
                    |seq, body| Self::envelope(ws, ch, me, seq, body),
                )
            })
            .await?;
        let applied = match outcome {
            Outcome::Appended(a) => a.stream_seq,
            Outcome::Done(()) => self.log.last_acked(),
        };
        self.message_after(id, applied).await
    }

    /// The channel of message `id`, if it is in the caller's workspace. A
    /// message not in the history model yet (posted a moment ago through
    /// another process) is looked for again once the model has caught up
    /// with the log head.
    async fn message_channel(
        &self,
        user: &UserCtx,
        id: &MessageId,
    ) -> ApiResult<Option<ChannelId>> {
        let lookup = || async {
            let id = id.as_str().to_string();
            self.history
                .read(move |c| history::message(c, &id))
                .await
                .map(|row| row.map(|r| ChannelId::from_trusted(r.channel_id)))
        };
        let mut found = lookup().await?;
        if found.is_none() {
            // Through the shared probe: a flood of made-up ids costs one
            // JetStream request per probe interval, not one each.
            let head = self
                .head
                .head_since(tokio::time::Instant::now(), || self.log.last_seq())
                .await?;
            if !super::wait(&self.history_progress, head).await {
                return Err(super::behind("the history read model is"));
            }
            found = lookup().await?;
        }
        let Some(channel) = found else {
            return Ok(None);
        };
        // A channel's workspace never changes: another workspace's message
        // is "not found" without going near that workspace's subjects.
        let (c, ws) = (channel.clone(), user.caller.workspace_id.clone());
        let ours = self
            .acl
            .read(move |conn| {
                let facts = AclDirectory(conn).channel(&c)?;
                Ok(facts.is_none_or(|f| f.workspace_id == ws))
            })
            .await?;
        Ok(ours.then_some(channel))
    }

    /// What `cmd` is decided against, as of the models now.
    async fn message_state(
        &self,
        user: &UserCtx,
        channel: &ChannelId,
        id: &MessageId,
        cmd: &MessageCommand,
    ) -> ApiResult<MessageState> {
        let channel_state = self.channel_state(user, channel).await?;
        let (m, ch) = (id.as_str().to_string(), channel.as_str().to_string());
        let (u, emoji) = (
            user.caller.user_id.as_str().to_string(),
            cmd.emoji().map(|e| e.as_str().to_string()),
        );
        let count_pins = matches!(cmd, MessageCommand::Pin(_));
        let (row, reactions, pins) = self
            .history
            .read(move |c| {
                let row = history::message(c, &m)?;
                let reactions = match &emoji {
                    Some(e) => {
                        let (mine, present, distinct) = history::reaction_facts(c, &m, &u, e)?;
                        ReactionFacts {
                            mine,
                            present,
                            distinct,
                        }
                    }
                    None => ReactionFacts::default(),
                };
                let pins = if count_pins {
                    history::pin_count(c, &ch)?
                } else {
                    0
                };
                Ok((row, reactions, pins))
            })
            .await?;
        let (members_by_handle, online_members) = match cmd {
            MessageCommand::Edit(text) => {
                let scan = mentions::scan(text.as_str());
                (
                    self.mentionable(user, channel, &scan).await?,
                    self.online_members(user, channel, &scan).await?,
                )
            }
            _ => Default::default(),
        };
        // A hold blocks deletes (only they need it).
        let held = match (&row, cmd) {
            (Some(r), MessageCommand::Delete) => {
                self.message_held(
                    user.caller.workspace_id.as_str(),
                    &r.channel_id,
                    &r.sender_id,
                )
                .await?
            }
            _ => false,
        };
        Ok(MessageState {
            channel: channel_state,
            message: row.map(message_facts),
            reactions,
            pins,
            members_by_handle,
            online_members,
            held,
        })
    }

    /// The message once the history model has applied stream sequence
    /// `seq` (bounded wait: the change is durable either way, so a slow
    /// model gives a slightly older view, never an error).
    async fn message_after(&self, id: &MessageId, seq: u64) -> ApiResult<MessageView> {
        if seq > 0 {
            self.history_progress.wait_for(seq, FRESHNESS_WAIT).await;
        }
        let m = id.as_str().to_string();
        self.history
            .read(move |c| history::message(c, &m))
            .await?
            .map(MessageView::from_row)
            .ok_or_else(|| ApiError::internal("message_after", &"the message vanished"))
    }

    /// A page of a thread's replies, oldest first: members of the root's
    /// channel only; anyone else learns nothing about the root.
    pub async fn replies(
        &self,
        user: &UserCtx,
        root: &MessageId,
        after_seq: u64,
        limit: u32,
    ) -> ApiResult<(Vec<MessageRow>, bool)> {
        self.fresh_reads().await?;
        let channel = self
            .message_channel(user, root)
            .await?
            .ok_or_else(|| ApiError::not_found("message"))?;
        self.authorize(user, &channel, Action::Read)
            .await
            .map_err(|e| match e.code {
                ErrorCode::NotFound => ApiError::not_found("message"),
                _ => e,
            })?;
        let root = root.as_str().to_string();
        Ok(self
            .history
            .read_rows(limit, move |c| history::replies(c, &root, after_seq, limit))
            .await?)
    }

    /// A channel's pinned messages, the most recently pinned first.
    pub async fn pins(&self, user: &UserCtx, channel: &ChannelId) -> ApiResult<Vec<MessageRow>> {
        let facts = self.authorize(user, channel, Action::Read).await?;
        Ok(self
            .history
            .read_rows(MAX_PINS as u32, move |c| {
                history::pinned(c, facts.id.as_str())
            })
            .await?)
    }
}

fn message_facts(r: MessageRow) -> MessageFacts {
    // Ids read back from the model this process folded.
    MessageFacts {
        id: MessageId::from_trusted(r.id),
        channel_id: ChannelId::from_trusted(r.channel_id),
        sender_id: UserId::from_trusted(r.sender_id),
        // An erased message is gone like a deleted one: no edit, reaction
        // or pin (and a second erasure changes nothing).
        deleted: r.deleted || r.erased,
        pinned: r.pinned,
        text: r.text,
        mentions: Mentions {
            user_ids: r.mentions.user_ids,
            channel: r.mentions.channel,
            here: r.mentions.here,
            here_user_ids: Vec::new(),
        },
        ts_ms: r.ts_ms,
    }
}
