//! Commands as pure decisions: `decide(&state, &command) -> Result<Body, DomainError>`.
//!
//! The gateway loads the state a command needs (channel facts, the caller's
//! and the target's membership, the thread root) *as of the subject head it
//! will append after*, calls `decide`, and appends the event conditionally
//! on that head. When another writer moved the head first, the gateway
//! re-reads the state at the new head and decides again, so the log never
//! shows an action its actor was no longer allowed to take (a post after the
//! poster's removal or after an archive, an invite after the inviter left).
//!
//! A decision yields exactly one event: one conditional append is atomic,
//! several would not be.
//!
//! One module per command family: [`messages`] (posts), [`conversation`]
//! (edits, deletes, reactions, pins), [`members`], [`channels`],
//! [`tenants`], [`preferences`] (notification settings and acknowledgements),
//! [`push`] (the push webhook). Nothing here does I/O; ids and time are
//! passed in.

pub mod accounts;
pub mod channels;
pub mod conversation;
pub mod files;
pub mod members;
pub mod messages;
pub mod preferences;
pub mod push;
pub mod reads;
pub mod retention;
pub mod tenants;

use crate::authz::{Caller, ChannelFacts};
use crate::DomainError;

/// What every channel-scoped decision knows about the channel and the caller.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChannelState {
    /// `None`: no such channel in the read model.
    pub channel: Option<ChannelFacts>,
    /// The caller is a member now.
    pub caller_member: bool,
}

impl ChannelState {
    /// The channel, if the caller may know it exists: another workspace's
    /// channel, or a private one the caller is not in, is `NotFound` exactly
    /// like an id that does not exist.
    pub fn visible_to(&self, caller: &Caller) -> Result<&ChannelFacts, DomainError> {
        match &self.channel {
            Some(ch)
                if ch.workspace_id == caller.workspace_id
                    && (!ch.private || self.caller_member) =>
            {
                Ok(ch)
            }
            _ => Err(DomainError::NotFound("channel")),
        }
    }
}

fn archived() -> DomainError {
    DomainError::Archived
}

fn fixed_membership() -> DomainError {
    DomainError::invalid("direct-message channels have a fixed membership")
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub fn caller(user: &str) -> Caller {
        Caller {
            workspace_id: "W1".into(),
            user_id: user.into(),
            admin: false,
        }
    }

    pub fn admin(user: &str) -> Caller {
        Caller {
            admin: true,
            ..caller(user)
        }
    }

    pub fn facts(private: bool) -> ChannelFacts {
        ChannelFacts {
            id: "C1".into(),
            workspace_id: "W1".into(),
            name: "general".into(),
            private,
            direct: false,
            archived: false,
            creator_id: "alice".into(),
            fence_seq: 0,
        }
    }

    pub fn state(ch: ChannelFacts, member: bool) -> ChannelState {
        ChannelState {
            channel: Some(ch),
            caller_member: member,
        }
    }

    pub fn archived_ch(mut ch: ChannelFacts) -> ChannelFacts {
        ch.archived = true;
        ch
    }

    pub fn direct(mut ch: ChannelFacts) -> ChannelFacts {
        ch.direct = true;
        ch.private = true;
        ch
    }

    pub fn other_workspace(mut ch: ChannelFacts) -> ChannelFacts {
        ch.workspace_id = "W2".into();
        ch
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn outsiders_see_nothing() {
        let bob = caller("bob");
        let none = ChannelState {
            channel: None,
            caller_member: false,
        };
        for st in [
            none,
            state(other_workspace(facts(false)), true),
            state(facts(true), false),
        ] {
            assert_eq!(st.visible_to(&bob), Err(DomainError::NotFound("channel")));
        }
        assert!(state(facts(false), false).visible_to(&bob).is_ok());
        assert!(state(facts(true), true).visible_to(&bob).is_ok());
    }
}
