//! Messages: the post path (idempotency, threads) and the history and event reads.

use super::*;

impl Core {
    /// Posts a message. Returns the message and whether it was created now
    /// (`false`: an earlier post with the same `client_msg_id`).
    pub async fn post_message(
        &self,
        user: &UserCtx,
        post: PostMessage,
    ) -> ApiResult<(MessageView, bool)> {
        let facts = self
            .authorize(user, post.channel_id.as_str(), Want::Post)
            .await?;
        let me = user.caller.user_id.clone();
        if let Some(cid) = &post.client_msg_id {
            // Beyond JetStream's de-dup window, the history model remembers.
            let (ch, me, cid) = (facts.id.clone(), me.clone(), cid.as_str().to_string());
            if let Some(row) = self
                .history
                .read(move |c| history::message_by_client_id(c, &ch, &me, &cid))
                .await?
            {
                return Ok((MessageView::from_row(row), false));
            }
        }
        if let Some(root) = &post.thread_root_id {
            let lookup = |id: String| async move {
                self.history.read(move |c| history::message(c, &id)).await
            };
            let mut root_row = lookup(root.as_str().to_string()).await?;
            if root_row.is_none() {
                // The root may be a moment old: look again once caught up.
                self.history_catch_up().await?;
                root_row = lookup(root.as_str().to_string()).await?;
            }
            match root_row {
                Some(r) if r.channel_id == facts.id && r.thread_root_id.is_none() && !r.deleted => {
                }
                Some(r) if r.channel_id == facts.id => {
                    return Err(ApiError::invalid(
                        "thread_root_id must be a live top-level message",
                    ))
                }
                _ => return Err(ApiError::not_found("thread root message")),
            }
        }
        let message_id = MessageId::generate(ms(), random()).into_string();
        let body = Body::MessagePosted(events::MessagePosted {
            message_id,
            text: post.text.into_string(),
            client_msg_id: post
                .client_msg_id
                .as_ref()
                .map(|c| c.as_str().to_string())
                .unwrap_or_default(),
            thread_root_id: post
                .thread_root_id
                .map(MessageId::into_string)
                .unwrap_or_default(),
            attachment_ids: Vec::new(),
        });
        let msg_id = post
            .client_msg_id
            .as_ref()
            .map(|c| format!("m:{}:{}:{}", facts.id, me, c.as_str()));
        let a = self
            .append_channel(user, &facts.id, msg_id.as_deref(), body)
            .await?;
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
        let view = message_from_envelope(&a.envelope).ok_or_else(|| {
            ApiError::internal("post_message", &"appended event is not a message")
        })?;
        Ok((view, true))
    }

    pub async fn messages(
        &self,
        user: &UserCtx,
        channel: &str,
        page: history::Page,
        limit: u32,
    ) -> ApiResult<(Vec<MessageRow>, bool)> {
        let facts = self.authorize(user, channel, Want::Read).await?;
        Ok(self
            .history
            .read(move |c| history::messages(c, &facts.id, page, limit))
            .await?)
    }

    pub async fn events(
        &self,
        user: &UserCtx,
        channel: &str,
        after_seq: u64,
        limit: u32,
    ) -> ApiResult<(Vec<history::EventRow>, u64)> {
        let facts = self.authorize(user, channel, Want::Read).await?;
        Ok(self
            .history
            .read(move |c| {
                let events = history::events(c, &facts.id, after_seq, limit)?;
                let head = history::head_seq(c, &facts.id)?;
                Ok((events, head))
            })
            .await?)
    }
}
