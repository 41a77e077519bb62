//! Messages: the post path (decided against the channel at the head it
//! appends after; idempotent by `client_msg_id`; mentions resolved against
//! the members at that head) and the history and event reads.

use super::{ms, random, settle, Commands, UserCtx, FRESHNESS_WAIT};
use crate::error::{ApiError, ApiResult};
use crate::views::{message_from_envelope, AttachmentRef, MessageView};
use std::collections::HashMap;
use switchboard_core::authz::{Action, Directory};
use switchboard_core::commands::files::FileFacts;
use switchboard_core::commands::messages::{decide_post, PostMessage, PostState, RootFacts};
use switchboard_core::commands::ChannelState;
use switchboard_core::ids::{ChannelId, FileId, MessageId, UserId};
use switchboard_core::mentions::{self, Scan};
use switchboard_core::validate::{ClientMsgId, MessageText};
use switchboard_projections::acl::{self, AclDirectory};
use switchboard_projections::history::{self, MessageRow};
use switchboard_streams::{subjects, Decision, Outcome};

/// A post as the HTTP edge parsed it.
#[derive(Debug, Clone)]
pub struct NewPost {
    pub channel_id: ChannelId,
    pub text: MessageText,
    pub client_msg_id: Option<ClientMsgId>,
    pub thread_root_id: Option<MessageId>,
    pub also_send_to_channel: bool,
    pub attachment_ids: Vec<FileId>,
}

impl Commands {
    /// The members of `channel` among the handles `scan` mentions (the
    /// state a mention resolution needs); nothing is read when the text
    /// mentions no handle.
    pub(super) async fn mentionable(
        &self,
        user: &UserCtx,
        channel: &ChannelId,
        scan: &Scan,
    ) -> ApiResult<HashMap<String, UserId>> {
        if !scan.has_handles() {
            return Ok(HashMap::new());
        }
        let ws = user.caller.workspace_id.clone();
        let ch = channel.clone();
        let handles: Vec<String> = scan.handles().map(String::from).collect();
        let found = self
            .acl
            .read(move |c| {
                acl::members_by_handle(
                    c,
                    ws.as_str(),
                    ch.as_str(),
                    handles.iter().map(String::as_str),
                )
            })
            .await?;
        // Ids read back from the model this process folded.
        Ok(found
            .into_iter()
            .map(|(handle, id)| (handle, UserId::from_trusted(id)))
            .collect())
    }

    /// The channel as the caller sees it now (facts and own membership).
    pub(super) async fn channel_state(
        &self,
        user: &UserCtx,
        channel: &ChannelId,
    ) -> ApiResult<ChannelState> {
        let (ch, me) = (channel.clone(), user.caller.user_id.clone());
        Ok(self
            .acl
            .read(move |c| {
                let dir = AclDirectory(c);
                let channel = dir.channel(&ch)?;
                let caller_member = dir.is_member(&ch, &me)?;
                Ok(ChannelState {
                    channel,
                    caller_member,
                })
            })
            .await?)
    }

    /// What a post is decided against: the channel, the thread root, and
    /// the members its text mentions.
    async fn post_state(
        &self,
        user: &UserCtx,
        channel: &ChannelId,
        cmd: &PostMessage,
        scan: &mentions::Scan,
    ) -> ApiResult<PostState> {
        let ids = cmd
            .attachment_ids
            .iter()
            .map(|f| f.as_str().to_string())
            .collect();
        let files = self
            .file_rows(ids)
            .await?
            .into_iter()
            .map(|f| FileFacts {
                id: FileId::from_trusted(f.id),
                channel_id: ChannelId::from_trusted(f.channel_id),
                uploader_id: UserId::from_trusted(f.uploader_id),
                attached: f.message_id.is_some(),
                gone: f.deleted,
            })
            .collect();
        Ok(PostState {
            files,
            members_by_handle: self.mentionable(user, channel, scan).await?,
            online_members: self.online_members(user, channel, scan).await?,
            channel: self.channel_state(user, channel).await?,
            root: match &cmd.thread_root_id {
                Some(root) => self.root_facts(root).await?,
                None => None,
            },
        })
    }

    /// The caller's earlier post with this `client_msg_id` in this channel,
    /// if any: a retry beyond JetStream's de-dup window (within it the
    /// stream answers "duplicate"), which the history model remembers.
    async fn posted_before(
        &self,
        ch: &str,
        me: &str,
        cmd: &PostMessage,
    ) -> ApiResult<Option<MessageRow>> {
        let Some(cid) = &cmd.client_msg_id else {
            return Ok(None);
        };
        let (c, m, cid) = (ch.to_string(), me.to_string(), cid.as_str().to_string());
        Ok(self
            .history
            .read(move |conn| history::message_by_client_id(conn, &c, &m, &cid))
            .await?)
    }

    /// Posts a message. Returns the message and whether it was created now
    /// (`false`: an earlier post with the same `client_msg_id`).
    pub async fn post_message(
        &self,
        user: &UserCtx,
        post: NewPost,
    ) -> ApiResult<(MessageView, bool)> {
        let ws = user.caller.workspace_id.as_str();
        let me = user.caller.user_id.as_str();
        let channel = &post.channel_id;
        let ch = channel.as_str();
        let cmd = PostMessage {
            message_id: MessageId::generate(ms(), random()),
            text: post.text.clone(),
            client_msg_id: post.client_msg_id.clone(),
            thread_root_id: post.thread_root_id.clone(),
            also_send_to_channel: post.also_send_to_channel,
            attachment_ids: post.attachment_ids.clone(),
        };
        let scan = mentions::scan(cmd.text.as_str());
        let msg_id = cmd
            .client_msg_id
            .as_ref()
            .map(|c| format!("m:{ch}:{me}:{}", c.as_str()));
        // Replies and attachments are decided against the history model.
        let reply = cmd.thread_root_id.is_some() || !cmd.attachment_ids.is_empty();
        // Read before taking the channel's append lock, so that concurrent
        // posters to one channel overlap these reads with each other's
        // appends; the decision uses them only if they cover its basis.
        let read_at = self.acl_progress.current();
        let early = self.post_state(user, channel, &cmd, &scan).await?;
        // A retry of a post that attached files finds them attached (to the
        // original): it is answered with the original if the post would be
        // allowed without them, once the history model has every write
        // this process acknowledged (the original included).
        let probe = if cmd.attachment_ids.is_empty() || cmd.client_msg_id.is_none() {
            decide_post(&user.caller, &early, &cmd)
        } else {
            self.history_progress
                .wait_for(self.log.last_acked(), FRESHNESS_WAIT)
                .await;
            let bare = PostMessage {
                attachment_ids: Vec::new(),
                ..cmd.clone()
            };
            decide_post(&user.caller, &early, &bare)
        };
        if probe.is_ok() {
            if let Some(row) = self.posted_before(ch, me, &cmd).await? {
                return Ok((MessageView::from_row(row), false));
            }
        }
        let mut early = (!reply).then_some(early);
        let (cmd, msg_id, scan) = (&cmd, &msg_id, &scan);
        let outcome = self
            .log
            .append_decided(&subjects::channel(ws, ch), |basis| {
                let early = early.take().filter(|_| self.covers(read_at, basis));
                async move {
                    let reread = early.is_none();
                    let state = match early {
                        Some(state) => state,
                        None => {
                            self.models_at(basis, reply).await?;
                            self.post_state(user, channel, cmd, scan).await?
                        }
                    };
                    let decided = decide_post(&user.caller, &state, cmd);
                    if reread && decided.is_ok() {
                        // The idempotency lookup above ran only if the early
                        // state allowed the post; a decision that allows it
                        // only now must look too.
                        if let Some(row) = self.posted_before(ch, me, cmd).await? {
                            return Ok(Decision::Done(MessageView::from_row(row)));
                        }
                    }
                    settle(
                        basis,
                        decided,
                        |seq, body| Self::envelope(ws, ch, me, seq, body),
                        msg_id.clone(),
                    )
                }
            })
            .await?;
        let a = match outcome {
            Outcome::Appended(a) => a,
            Outcome::Done(existing) => return Ok((existing, false)),
        };
        if a.duplicate {
            // The stream de-duplicated a retry: answer with the original, as
            // the history model has it now (it may have been edited).
            self.history_progress
                .wait_for(a.stream_seq, FRESHNESS_WAIT)
                .await;
            let original = message_from_envelope(&a.envelope);
            if let Some(id) = original.as_ref().map(|m| m.id.clone()) {
                if let Some(row) = self.history.read(move |c| history::message(c, &id)).await? {
                    return Ok((MessageView::from_row(row), false));
                }
            }
            return original
                .map(|m| (m, false))
                .ok_or_else(|| ApiError::internal("post_message", &"duplicate is not a message"));
        }
        let mut view = message_from_envelope(&a.envelope).ok_or_else(|| {
            ApiError::internal("post_message", &"appended event is not a message")
        })?;
        let ids: Vec<String> = cmd
            .attachment_ids
            .iter()
            .map(|f| f.as_str().to_string())
            .collect();
        let mut rows = self.file_rows(ids.clone()).await?;
        view.attachments = ids
            .iter()
            .filter_map(|id| {
                let i = rows.iter().position(|r| &r.id == id)?;
                let f = rows.swap_remove(i);
                Some(AttachmentRef {
                    id: f.id,
                    name: f.name,
                    size: f.size,
                    content_type: f.content_type,
                })
            })
            .collect();
        Ok((view, true))
    }

    async fn root_facts(&self, root: &MessageId) -> ApiResult<Option<RootFacts>> {
        let id = root.as_str().to_string();
        let row = self.history.read(move |c| history::message(c, &id)).await?;
        Ok(row.map(|r| RootFacts {
            channel_id: ChannelId::from_trusted(r.channel_id),
            is_reply: r.thread_root_id.is_some(),
            deleted: r.deleted || r.erased,
        }))
    }

    pub async fn messages(
        &self,
        user: &UserCtx,
        channel: &ChannelId,
        page: history::Page,
        limit: u32,
    ) -> ApiResult<(Vec<MessageRow>, bool)> {
        let facts = self.authorize(user, channel, Action::Read).await?;
        Ok(self
            .history
            .read_rows(limit, move |c| history::messages(c, &facts.id, page, limit))
            .await?)
    }

    pub async fn events(
        &self,
        user: &UserCtx,
        channel: &ChannelId,
        after_seq: u64,
        limit: u32,
    ) -> ApiResult<(Vec<history::EventRow>, u64)> {
        let facts = self.authorize(user, channel, Action::Read).await?;
        Ok(self
            .history
            .read_rows(limit, move |c| {
                let events = history::events(c, &facts.id, after_seq, limit)?;
                let head = history::head_seq(c, &facts.id)?;
                Ok((events, head))
            })
            .await?)
    }
}
