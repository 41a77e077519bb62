//! Authorization as pure functions. The rules ask their questions through
//! the small [`Directory`] trait, which the membership projection implements
//! over its read model and tests implement over a map.
//!
//! Visibility rule (it keeps private channels and other tenants invisible):
//! a channel of another workspace, or a private channel the caller is not in,
//! answers `NotFound` — exactly as an id that does not exist. A public
//! channel is visible to everyone in its workspace, but its content
//! (messages, events) is for members only (`NotAMember`).

use crate::commands::ChannelState;
use crate::ids::{ChannelId, UserId, WorkspaceId};
use crate::DomainError;

/// What the rules need to know about a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelFacts {
    pub id: ChannelId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub private: bool,
    pub direct: bool,
    pub archived: bool,
    pub creator_id: UserId,
    /// The `fence_seq` of the channel's latest event as the model has it
    /// (see the `.proto`): what a decision appended on another subject
    /// records, so a later change to the channel voids it.
    pub fence_seq: u64,
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub workspace_id: WorkspaceId,
    pub user_id: UserId,
    pub admin: bool,
}

/// The questions authorization asks of the read model.
pub trait Directory {
    type Error;
    fn channel(&self, channel_id: &ChannelId) -> Result<Option<ChannelFacts>, Self::Error>;
    fn is_member(&self, channel_id: &ChannelId, user_id: &UserId) -> Result<bool, Self::Error>;
    /// The user exists in this workspace.
    fn user_in_workspace(
        &self,
        workspace_id: &WorkspaceId,
        user_id: &UserId,
    ) -> Result<bool, Self::Error>;
}

/// What the caller wants to read of a channel. (Changes are decided by
/// [`crate::commands`], against the state at the head they append after.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// See the channel's metadata and member list.
    See,
    /// Read messages and events.
    Read,
}

/// Decides whether `caller` may do `action` on `channel_id`, returning the
/// channel's facts when allowed. `Err(Ok(e))` is a domain refusal,
/// `Err(Err(e))` a directory failure.
pub fn authorize<D: Directory>(
    dir: &D,
    caller: &Caller,
    channel_id: &ChannelId,
    action: Action,
) -> Result<ChannelFacts, Result<DomainError, D::Error>> {
    let channel = dir.channel(channel_id).map_err(Err)?;
    let caller_member = match &channel {
        Some(ch) if ch.workspace_id == caller.workspace_id => {
            dir.is_member(&ch.id, &caller.user_id).map_err(Err)?
        }
        _ => false,
    };
    let state = ChannelState {
        channel,
        caller_member,
    };
    state.visible_to(caller).map_err(Ok)?;
    match action {
        Action::Read if !caller_member => Err(Ok(DomainError::NotAMember)),
        Action::See | Action::Read => state.channel.ok_or(Ok(DomainError::NotFound("channel"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};
    use std::convert::Infallible;

    struct Map {
        channels: HashMap<String, ChannelFacts>,
        members: HashSet<(String, String)>,
        users: HashSet<(String, String)>,
    }

    impl Directory for Map {
        type Error = Infallible;
        fn channel(&self, id: &ChannelId) -> Result<Option<ChannelFacts>, Infallible> {
            Ok(self.channels.get(id.as_str()).cloned())
        }
        fn is_member(&self, ch: &ChannelId, u: &UserId) -> Result<bool, Infallible> {
            Ok(self.members.contains(&(ch.to_string(), u.to_string())))
        }
        fn user_in_workspace(&self, ws: &WorkspaceId, u: &UserId) -> Result<bool, Infallible> {
            Ok(self.users.contains(&(ws.to_string(), u.to_string())))
        }
    }

    fn channel(id: &str, private: bool) -> ChannelFacts {
        ChannelFacts {
            id: id.into(),
            workspace_id: "W1".into(),
            name: id.to_string(),
            private,
            direct: false,
            archived: false,
            creator_id: "alice".into(),
            fence_seq: 0,
        }
    }

    fn dir() -> Map {
        let mut channels = HashMap::new();
        channels.insert("pub".into(), channel("pub", false));
        channels.insert("priv".into(), channel("priv", true));
        let mut archived = channel("old", false);
        archived.archived = true;
        channels.insert("old".into(), archived);
        let members = [("pub", "alice"), ("priv", "alice"), ("old", "alice")]
            .iter()
            .map(|(c, u)| (c.to_string(), u.to_string()))
            .collect();
        let users = ["alice", "bob"]
            .iter()
            .map(|u| ("W1".to_string(), u.to_string()))
            .collect();
        Map {
            channels,
            members,
            users,
        }
    }

    fn caller(ws: &str, user: &str) -> Caller {
        Caller {
            workspace_id: ws.into(),
            user_id: user.into(),
            admin: false,
        }
    }

    fn refusal(r: Result<ChannelFacts, Result<DomainError, Infallible>>) -> Option<DomainError> {
        match r {
            Ok(_) => None,
            Err(Ok(e)) => Some(e),
            Err(Err(never)) => match never {},
        }
    }

    #[test]
    fn other_workspace_sees_nothing() {
        let d = dir();
        let outsider = caller("W2", "alice");
        for ch in ["pub", "priv"] {
            for action in [Action::See, Action::Read] {
                assert_eq!(
                    refusal(authorize(&d, &outsider, &ChannelId::from(ch), action)),
                    Some(DomainError::NotFound("channel"))
                );
            }
        }
    }

    #[test]
    fn private_channels_are_invisible_to_non_members() {
        let d = dir();
        let bob = caller("W1", "bob");
        for action in [Action::See, Action::Read] {
            assert_eq!(
                refusal(authorize(&d, &bob, &ChannelId::from("priv"), action)),
                Some(DomainError::NotFound("channel"))
            );
        }
        assert_eq!(
            refusal(authorize(
                &d,
                &caller("W1", "alice"),
                &ChannelId::from("priv"),
                Action::Read
            )),
            None
        );
    }

    #[test]
    fn public_content_is_for_members() {
        let d = dir();
        let bob = caller("W1", "bob");
        assert_eq!(
            refusal(authorize(&d, &bob, &ChannelId::from("pub"), Action::See)),
            None
        );
        assert_eq!(
            refusal(authorize(&d, &bob, &ChannelId::from("pub"), Action::Read)),
            Some(DomainError::NotAMember)
        );
    }
}
