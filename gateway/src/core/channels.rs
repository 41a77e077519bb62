//! Channels and membership: create (unique names), DMs (one channel per member set), listing, join/leave/invite/remove/archive.

use super::*;

impl Core {
    pub async fn create_channel(
        &self,
        user: &UserCtx,
        name: &str,
        private: bool,
        topic: Option<&str>,
    ) -> ApiResult<ChannelView> {
        let name = ChannelName::parse(name)?.into_string();
        let topic = parse_topic(topic)?;
        let id = ChannelId::generate(ms(), random()).into_string();
        let ws = user.caller.workspace_id.clone();
        let me = user.caller.user_id.clone();
        let (ws_c, name_c) = (ws.clone(), name.clone());
        let body = Body::ChannelCreated(events::ChannelCreated {
            name: name.clone(),
            private,
            topic: topic.clone(),
            kind: ChannelKind::Channel as i32,
            member_ids: vec![me.clone()],
        });
        self.decide_on_workspace::<(), _>(
            &ws,
            move |c| {
                if acl::channel_id_by_name(c, &ws_c, &name_c)?.is_some() {
                    return Ok(Err(DomainError::Conflict(format!(
                        "a channel named {name_c:?} already exists"
                    ))));
                }
                Ok(Ok(None))
            },
            |seq| Self::envelope(&ws, &id, &me, seq, body.clone()),
        )
        .await?
        .map_err(|()| ApiError::internal("create_channel", &"unexpected existing result"))?;
        Ok(ChannelView {
            id,
            name,
            private,
            direct: false,
            topic,
            archived: false,
            creator_id: me,
            member_count: 1,
            head_seq: 0,
            is_member: true,
        })
    }

    /// The DM channel for exactly `others` + the caller; created on first
    /// use. Returns the channel and whether it was created now.
    pub async fn open_dm(
        &self,
        user: &UserCtx,
        others: &[String],
    ) -> ApiResult<(ChannelView, bool)> {
        let me = user.caller.user_id.clone();
        let ws = user.caller.workspace_id.clone();
        let mut set: Vec<String> = Vec::with_capacity(others.len() + 1);
        for u in others {
            set.push(UserId::parse(u)?.into_string());
        }
        set.push(me.clone());
        set.sort();
        set.dedup();
        if set.len() > 9 {
            return Err(ApiError::invalid("a direct message has at most 9 members"));
        }
        // Same set, same channel: the id is derived from the workspace and
        // the sorted member set.
        let digest = token_hash(&format!("{ws}\n{}", set.join("\n")));
        let id = format!("D{}", &digest[..26]);
        let name = format!("dm-{}", &digest[..26]);
        self.fresh_acl().await?;
        let (ws_c, set_c, id_c, me_c) = (ws.clone(), set.clone(), id.clone(), me.clone());
        let body = Body::ChannelCreated(events::ChannelCreated {
            name: name.clone(),
            private: true,
            topic: String::new(),
            kind: ChannelKind::Direct as i32,
            member_ids: set.clone(),
        });
        let outcome = self
            .decide_on_workspace(
                &ws,
                move |c| {
                    if let Some(existing) = acl::channel_view(c, &me_c, &id_c)? {
                        return Ok(Ok(Some(existing)));
                    }
                    for u in &set_c {
                        if acl::user(c, &ws_c, u)?.is_none() {
                            return Ok(Err(DomainError::NotFound("user")));
                        }
                    }
                    Ok(Ok(None))
                },
                |seq| Self::envelope(&ws, &id, &me, seq, body.clone()),
            )
            .await?;
        match outcome {
            Err(existing) => Ok((existing, false)),
            Ok(_) => Ok((
                ChannelView {
                    id,
                    name,
                    private: true,
                    direct: true,
                    topic: String::new(),
                    archived: false,
                    creator_id: me,
                    member_count: set.len() as i64,
                    head_seq: 0,
                    is_member: true,
                },
                true,
            )),
        }
    }

    pub async fn channels(&self, user: &UserCtx) -> ApiResult<Vec<ChannelView>> {
        self.fresh_reads().await?;
        let (ws, me) = (
            user.caller.workspace_id.clone(),
            user.caller.user_id.clone(),
        );
        Ok(self
            .acl
            .read(move |c| acl::visible_channels(c, &ws, &me))
            .await?)
    }

    pub async fn channel(&self, user: &UserCtx, channel: &str) -> ApiResult<ChannelView> {
        let facts = self.authorize(user, channel, Want::See).await?;
        let me = user.caller.user_id.clone();
        self.acl
            .read(move |c| acl::channel_view(c, &me, &facts.id))
            .await?
            .ok_or_else(|| ApiError::not_found("channel"))
    }

    pub async fn members(&self, user: &UserCtx, channel: &str) -> ApiResult<Vec<UserView>> {
        let facts = self.authorize(user, channel, Want::See).await?;
        Ok(self.acl.read(move |c| acl::members(c, &facts.id)).await?)
    }

    /// Membership changes and archiving: authorize, then append.
    pub async fn channel_action(
        &self,
        user: &UserCtx,
        channel: &str,
        want: Want,
    ) -> ApiResult<u64> {
        let facts = self.authorize(user, channel, want.clone()).await?;
        let me = user.caller.user_id.clone();
        let joined_user = match &want {
            Want::Join => Some(me.clone()),
            Want::Invite(u) => Some(u.clone()),
            _ => None,
        };
        let body = match want {
            Want::Join => Body::MemberJoined(events::MemberJoined { user_id: me }),
            Want::Leave => Body::MemberLeft(events::MemberLeft { user_id: me }),
            Want::Remove(u) if u == me => Body::MemberLeft(events::MemberLeft { user_id: me }),
            Want::Remove(u) => {
                if !self.is_member(&facts.id, &u).await? {
                    return Err(ApiError::not_found("member"));
                }
                Body::MemberRemoved(events::MemberRemoved { user_id: u })
            }
            Want::Invite(u) => {
                if self.is_member(&facts.id, &u).await? {
                    return Err(DomainError::Conflict("already a member".into()).into());
                }
                Body::MemberInvited(events::MemberInvited { user_id: u })
            }
            Want::Archive => Body::ChannelArchived(events::ChannelArchived {}),
            Want::See | Want::Read | Want::Post => {
                return Err(ApiError::internal(
                    "channel_action",
                    &"not a channel action",
                ))
            }
        };
        let a = self.append_channel(user, &facts.id, None, body).await?;
        let seq = a.envelope.channel_seq;
        if let Some(joined) = joined_user {
            // Best effort: the joiner's open connections start following
            // the channel at once (they can always subscribe themselves).
            let subject = crate::realtime::subjects::joined(&user.caller.workspace_id, &joined);
            let note = serde_json::json!({"channel_id": facts.id, "seq": seq}).to_string();
            let _ = self.log.client().publish(subject, note.into()).await;
        }
        Ok(seq)
    }

    async fn is_member(&self, channel: &str, user: &str) -> ApiResult<bool> {
        let (ch, u) = (channel.to_string(), user.to_string());
        Ok(self
            .acl
            .read(move |c| {
                use switchboard_core::authz::Directory;
                AclDirectory(c).is_member(&ch, &u)
            })
            .await?)
    }
}
