//! Membership: join, leave, invite, remove.
//!
//! Leaving and removing stay possible in an archived channel: archiving
//! freezes the conversation, never the access list, so access to an
//! archived private channel can always be revoked.

use super::{archived, fixed_membership, ChannelState};
use crate::authz::Caller;
use crate::events::{Body, MemberInvited, MemberJoined, MemberLeft, MemberRemoved};
use crate::ids::UserId;
use crate::DomainError;

/// A membership change asked by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberCommand {
    Join,
    Leave,
    Invite(UserId),
    Remove(UserId),
}

impl MemberCommand {
    /// The user whose membership the command is about, when not the caller.
    pub fn target(&self) -> Option<&UserId> {
        match self {
            MemberCommand::Invite(u) | MemberCommand::Remove(u) => Some(u),
            MemberCommand::Join | MemberCommand::Leave => None,
        }
    }
}

/// What the decision knows about the target of an invite or a removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Target {
    /// The user exists in the caller's workspace.
    pub exists: bool,
    /// The user is a member of the channel now.
    pub member: bool,
}

pub fn decide_member(
    caller: &Caller,
    state: &ChannelState,
    target: Target,
    cmd: &MemberCommand,
) -> Result<Body, DomainError> {
    let ch = state.visible_to(caller)?;
    let member = state.caller_member;
    if ch.direct {
        return Err(fixed_membership());
    }
    let me = caller.user_id.as_str().to_string();
    match cmd {
        MemberCommand::Join if ch.archived => Err(archived()),
        MemberCommand::Join if member => Err(DomainError::Conflict("already a member".into())),
        MemberCommand::Join => Ok(Body::MemberJoined(MemberJoined { user_id: me })),
        MemberCommand::Leave if !member => Err(DomainError::NotAMember),
        MemberCommand::Leave => Ok(Body::MemberLeft(MemberLeft { user_id: me })),
        MemberCommand::Invite(_) if ch.archived => Err(archived()),
        MemberCommand::Invite(_) if !member => Err(DomainError::NotAMember),
        MemberCommand::Invite(_) if !target.exists => Err(DomainError::NotFound("user")),
        MemberCommand::Invite(_) if target.member => {
            Err(DomainError::Conflict("already a member".into()))
        }
        MemberCommand::Invite(u) => Ok(Body::MemberInvited(MemberInvited {
            user_id: u.as_str().to_string(),
        })),
        MemberCommand::Remove(u) if *u == caller.user_id => {
            decide_member(caller, state, target, &MemberCommand::Leave)
        }
        MemberCommand::Remove(_)
            if !(caller.admin || (member && ch.creator_id == caller.user_id)) =>
        {
            Err(DomainError::Forbidden(
                "only a workspace admin or the channel's creator may remove members".into(),
            ))
        }
        MemberCommand::Remove(_) if !target.member => Err(DomainError::NotFound("member")),
        MemberCommand::Remove(u) => Ok(Body::MemberRemoved(MemberRemoved {
            user_id: u.as_str().to_string(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    fn uid(s: &str) -> UserId {
        UserId::from_trusted(s.into())
    }
    const PRESENT: Target = Target {
        exists: true,
        member: false,
    };
    const MEMBER: Target = Target {
        exists: true,
        member: true,
    };

    #[test]
    fn joins_and_leaves() {
        let bob = caller("bob");
        let public = |m| state(facts(false), m);
        assert!(matches!(
            decide_member(&bob, &public(false), PRESENT, &MemberCommand::Join),
            Ok(Body::MemberJoined(b)) if b.user_id == "bob"
        ));
        assert!(matches!(
            decide_member(&bob, &public(true), PRESENT, &MemberCommand::Join),
            Err(DomainError::Conflict(_))
        ));
        assert!(matches!(
            decide_member(&bob, &public(true), PRESENT, &MemberCommand::Leave),
            Ok(Body::MemberLeft(b)) if b.user_id == "bob"
        ));
        assert_eq!(
            decide_member(&bob, &public(false), PRESENT, &MemberCommand::Leave),
            Err(DomainError::NotAMember)
        );
        // Private channels cannot be joined by a non-member: they are invisible.
        assert_eq!(
            decide_member(
                &bob,
                &state(facts(true), false),
                PRESENT,
                &MemberCommand::Join
            ),
            Err(DomainError::NotFound("channel"))
        );
    }

    #[test]
    fn archived_channels_refuse_joins_and_invites_but_not_departures() {
        let bob = caller("bob");
        let old = |m| state(archived_ch(facts(true)), m);
        assert_eq!(
            decide_member(
                &bob,
                &state(archived_ch(facts(false)), false),
                PRESENT,
                &MemberCommand::Join
            ),
            Err(super::archived())
        );
        assert_eq!(
            decide_member(
                &bob,
                &old(true),
                PRESENT,
                &MemberCommand::Invite(uid("carol"))
            ),
            Err(super::archived())
        );
        assert!(decide_member(&bob, &old(true), PRESENT, &MemberCommand::Leave).is_ok());
        assert!(matches!(
            decide_member(
                &admin("root"),
                &old(false),
                MEMBER,
                &MemberCommand::Remove(uid("bob"))
            ),
            Err(DomainError::NotFound("channel"))
        ));
        assert!(matches!(
            decide_member(&caller("alice"), &old(true), MEMBER, &MemberCommand::Remove(uid("bob"))),
            Ok(Body::MemberRemoved(b)) if b.user_id == "bob"
        ));
    }

    #[test]
    fn invites_need_a_member_inviter_and_a_present_non_member() {
        let bob = caller("bob");
        let inv = MemberCommand::Invite(uid("carol"));
        assert!(decide_member(&bob, &state(facts(false), true), PRESENT, &inv).is_ok());
        assert_eq!(
            decide_member(&bob, &state(facts(false), false), PRESENT, &inv),
            Err(DomainError::NotAMember)
        );
        assert_eq!(
            decide_member(&bob, &state(facts(false), true), Target::default(), &inv),
            Err(DomainError::NotFound("user"))
        );
        assert!(matches!(
            decide_member(&bob, &state(facts(false), true), MEMBER, &inv),
            Err(DomainError::Conflict(_))
        ));
    }

    #[test]
    fn removals_need_an_admin_or_the_creator_still_in_the_channel() {
        let rm = MemberCommand::Remove(uid("carol"));
        assert!(matches!(
            decide_member(&caller("bob"), &state(facts(false), true), MEMBER, &rm),
            Err(DomainError::Forbidden(_))
        ));
        // The creator who left has no say any more.
        assert!(matches!(
            decide_member(&caller("alice"), &state(facts(false), false), MEMBER, &rm),
            Err(DomainError::Forbidden(_))
        ));
        assert!(decide_member(&caller("alice"), &state(facts(false), true), MEMBER, &rm).is_ok());
        assert!(decide_member(&admin("root"), &state(facts(false), false), MEMBER, &rm).is_ok());
        assert_eq!(
            decide_member(&admin("root"), &state(facts(false), false), PRESENT, &rm),
            Err(DomainError::NotFound("member"))
        );
        // Removing oneself is leaving.
        assert!(matches!(
            decide_member(&caller("bob"), &state(facts(false), true), MEMBER, &MemberCommand::Remove(uid("bob"))),
            Ok(Body::MemberLeft(b)) if b.user_id == "bob"
        ));
    }

    #[test]
    fn direct_messages_have_a_fixed_membership() {
        let dm = state(direct(facts(true)), true);
        for cmd in [
            MemberCommand::Join,
            MemberCommand::Leave,
            MemberCommand::Invite(uid("carol")),
            MemberCommand::Remove(uid("carol")),
        ] {
            assert!(matches!(
                decide_member(&caller("bob"), &dm, MEMBER, &cmd),
                Err(DomainError::Invalid(_))
            ));
        }
    }
}
