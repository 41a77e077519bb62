//! Membership changes: join, leave, invite, remove — each decided against
//! the channel at the head it appends after.

use super::{settle, Commands, UserCtx};
use crate::error::ApiResult;
use switchboard_core::authz::Directory;
use switchboard_core::commands::members::{decide_member, MemberCommand, Target};
use switchboard_core::ids::{ChannelId, UserId, WorkspaceId};
use switchboard_projections::acl::AclDirectory;
use switchboard_streams::{subjects, Outcome};

impl Commands {
    /// Applies `cmd` to `channel`; returns the event's channel seq.
    pub async fn change_membership(
        &self,
        user: &UserCtx,
        channel: &ChannelId,
        cmd: MemberCommand,
    ) -> ApiResult<u64> {
        let ws = user.caller.workspace_id.as_str();
        let me = user.caller.user_id.as_str();
        let ch = channel.as_str();
        let cmd = &cmd;
        let outcome = self
            .log
            .append_decided::<(), _, _, _>(&subjects::channel(ws, ch), |basis| async move {
                self.models_at(basis, false).await?;
                let state = self.channel_state(user, channel).await?;
                let target = match cmd.target() {
                    Some(u) => self.target(&user.caller.workspace_id, channel, u).await?,
                    None => Target::default(),
                };
                let decided = decide_member(&user.caller, &state, target, cmd);
                settle(
                    basis,
                    decided,
                    |seq, body| Self::envelope(ws, ch, me, seq, body),
                    None,
                )
            })
            .await?;
        let Outcome::Appended(a) = outcome else {
            return Err(crate::error::ApiError::internal(
                "change_membership",
                &"decision ended without an event",
            ));
        };
        self.note_acl_write(a.stream_seq);
        let seq = a.envelope.channel_seq;
        let joined = match cmd {
            MemberCommand::Join => Some(me),
            MemberCommand::Invite(u) => Some(u.as_str()),
            MemberCommand::Leave | MemberCommand::Remove(_) => None,
        };
        if let Some(joined) = joined {
            // Best effort: the joiner's open connections start following
            // the channel at once (they can always subscribe themselves).
            let subject = crate::realtime::subjects::joined(ws, joined);
            let note = serde_json::json!({"channel_id": ch, "seq": seq}).to_string();
            let _ = self.log.client().publish(subject, note.into()).await;
        }
        Ok(seq)
    }

    async fn target(
        &self,
        ws: &WorkspaceId,
        channel: &ChannelId,
        user: &UserId,
    ) -> ApiResult<Target> {
        let (ws, ch, u) = (ws.clone(), channel.clone(), user.clone());
        Ok(self
            .acl
            .read(move |c| {
                let dir = AclDirectory(c);
                Ok(Target {
                    exists: dir.user_in_workspace(&ws, &u)?,
                    member: dir.is_member(&ch, &u)?,
                })
            })
            .await?)
    }
}
