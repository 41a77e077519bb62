//! Channels: create and rename (names unique per workspace), topic,
//! archive, and the direct-message channel of a member set.
//!
//! A name is decided against the workspace's channels as of the workspace
//! subject's head, and the event that takes it (`ChannelCreated`,
//! `ChannelRenamed`) is appended to that subject conditionally on that
//! head: two writers cannot both take a name, whichever of create and
//! rename they do.
//!
//! DMs have their own identity space: a DM's id is derived from the
//! workspace and the sorted member set, and its name is that id, which no
//! user-chosen channel name can be (names are lowercase; ids start with an
//! uppercase `D`). Nobody can learn whether two people have a DM by probing
//! channel names, nor take a DM's place by creating a channel first.

use super::{archived, ChannelState};
use crate::authz::Caller;
use crate::authz::ChannelFacts;
use crate::events::{
    Body, ChannelArchived, ChannelCreated, ChannelKind, ChannelRenamed, ChannelTopicSet,
};
use crate::ids::{ChannelId, UserId};
use crate::secret::token_hash;
use crate::validate::ChannelName;
use crate::DomainError;

/// Most members of a direct-message channel, the caller included.
pub const MAX_DM_MEMBERS: usize = 9;

#[derive(Debug, Clone)]
pub struct CreateChannel {
    /// Fresh id (the caller's clock and randomness).
    pub id: ChannelId,
    pub name: ChannelName,
    pub private: bool,
    pub topic: String,
}

/// The workspace as the decision sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameState {
    /// Another channel of the workspace has this name.
    pub taken: bool,
}

pub fn decide_create(
    caller: &Caller,
    state: NameState,
    cmd: &CreateChannel,
) -> Result<Body, DomainError> {
    if state.taken {
        return Err(DomainError::Conflict(format!(
            "a channel named {:?} already exists",
            cmd.name.as_str()
        )));
    }
    Ok(Body::ChannelCreated(ChannelCreated {
        name: cmd.name.as_str().to_string(),
        private: cmd.private,
        topic: cmd.topic.clone(),
        kind: ChannelKind::Channel as i32,
        member_ids: vec![caller.user_id.as_str().to_string()],
    }))
}

/// Admins, or the creator while still a member, manage a channel (archive
/// it, rename it, set its topic) while it is live; DMs have nothing to
/// manage. `what` names the action in refusals.
fn manage<'a>(
    caller: &Caller,
    state: &'a ChannelState,
    what: &str,
) -> Result<&'a ChannelFacts, DomainError> {
    let ch = state.visible_to(caller)?;
    if ch.direct {
        return Err(DomainError::invalid(
            "direct-message channels cannot be archived, renamed or given a topic",
        ));
    }
    if ch.archived {
        return Err(archived());
    }
    let creator_in_channel = ch.creator_id == caller.user_id && state.caller_member;
    if !(caller.admin || creator_in_channel) {
        return Err(DomainError::Forbidden(format!(
            "only a workspace admin or the channel's creator (while a member) may {what} it"
        )));
    }
    Ok(ch)
}

/// Admins, or the creator while still a member, archive a channel.
pub fn decide_archive(caller: &Caller, state: &ChannelState) -> Result<Body, DomainError> {
    manage(caller, state, "archive")?;
    Ok(Body::ChannelArchived(ChannelArchived {}))
}

/// Renames a channel; `names.taken`: another channel of the workspace has
/// the name. `Ok(None)`: it has that name already.
pub fn decide_rename(
    caller: &Caller,
    state: &ChannelState,
    names: NameState,
    name: &ChannelName,
) -> Result<Option<Body>, DomainError> {
    let ch = manage(caller, state, "rename")?;
    if ch.name == name.as_str() {
        return Ok(None);
    }
    if names.taken {
        return Err(DomainError::Conflict(format!(
            "a channel named {:?} already exists",
            name.as_str()
        )));
    }
    Ok(Some(Body::ChannelRenamed(ChannelRenamed {
        name: name.as_str().to_string(),
        observed_fence_seq: ch.fence_seq,
    })))
}

/// Sets a channel's topic (`topic` parsed by
/// [`crate::validate::parse_topic`]; empty clears it). `Ok(None)`: it is
/// the topic already.
pub fn decide_topic(
    caller: &Caller,
    state: &ChannelState,
    current: &str,
    topic: &str,
) -> Result<Option<Body>, DomainError> {
    manage(caller, state, "set the topic of")?;
    if current == topic {
        return Ok(None);
    }
    Ok(Some(Body::ChannelTopicSet(ChannelTopicSet {
        topic: topic.to_string(),
    })))
}

/// A direct-message channel for exactly `members` (the caller included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenDm {
    pub id: ChannelId,
    /// Sorted, de-duplicated, the caller included.
    pub members: Vec<UserId>,
}

impl OpenDm {
    /// The DM of `others` + the caller: the same set always yields the same id.
    pub fn new(caller: &Caller, others: Vec<UserId>) -> Result<OpenDm, DomainError> {
        let mut members = others;
        members.push(caller.user_id.clone());
        members.sort();
        members.dedup();
        if members.len() > MAX_DM_MEMBERS {
            return Err(DomainError::invalid(format!(
                "a direct message has at most {MAX_DM_MEMBERS} members"
            )));
        }
        let set: Vec<&str> = members.iter().map(UserId::as_str).collect();
        let digest = token_hash(&format!("{}\n{}", caller.workspace_id, set.join("\n")));
        let id = ChannelId::from_trusted(format!("D{}", &digest[..26]));
        Ok(OpenDm { id, members })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmState {
    /// The DM channel exists already.
    pub exists: bool,
    /// Every member is a user of the caller's workspace.
    pub members_exist: bool,
}

/// `Ok(None)`: the DM exists; answer with it.
pub fn decide_open_dm(state: DmState, cmd: &OpenDm) -> Result<Option<Body>, DomainError> {
    if state.exists {
        return Ok(None);
    }
    if !state.members_exist {
        return Err(DomainError::NotFound("user"));
    }
    Ok(Some(Body::ChannelCreated(ChannelCreated {
        name: cmd.id.as_str().to_string(),
        private: true,
        topic: String::new(),
        kind: ChannelKind::Direct as i32,
        member_ids: cmd.members.iter().map(|u| u.as_str().to_string()).collect(),
    })))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    fn create() -> CreateChannel {
        CreateChannel {
            id: ChannelId::from_trusted("C9".into()),
            name: ChannelName::parse("random").expect("valid"),
            private: false,
            topic: String::new(),
        }
    }

    #[test]
    fn names_are_unique_and_the_creator_is_the_first_member() {
        let bob = caller("bob");
        assert!(matches!(
            decide_create(&bob, NameState { taken: false }, &create()),
            Ok(Body::ChannelCreated(c)) if c.member_ids == ["bob"] && c.name == "random"
        ));
        assert!(matches!(
            decide_create(&bob, NameState { taken: true }, &create()),
            Err(DomainError::Conflict(_))
        ));
    }

    #[test]
    fn archive_rules() {
        assert!(decide_archive(&caller("alice"), &state(facts(false), true)).is_ok());
        assert!(decide_archive(&admin("root"), &state(facts(false), false)).is_ok());
        // A creator who left no longer decides.
        assert!(matches!(
            decide_archive(&caller("alice"), &state(facts(false), false)),
            Err(DomainError::Forbidden(_))
        ));
        assert!(matches!(
            decide_archive(&caller("bob"), &state(facts(false), true)),
            Err(DomainError::Forbidden(_))
        ));
        assert_eq!(
            decide_archive(&caller("alice"), &state(archived_ch(facts(false)), true)),
            Err(super::archived())
        );
        assert!(matches!(
            decide_archive(&caller("alice"), &state(direct(facts(true)), true)),
            Err(DomainError::Invalid(_))
        ));
        assert_eq!(
            decide_archive(&caller("alice"), &state(facts(true), false)),
            Err(DomainError::NotFound("channel"))
        );
    }

    #[test]
    fn a_dm_is_its_member_set() {
        let u = |s: &str| UserId::from_trusted(s.into());
        let a = OpenDm::new(&caller("bob"), vec![u("carol"), u("bob")]).expect("small set");
        let b = OpenDm::new(&caller("carol"), vec![u("bob")]).expect("small set");
        assert_eq!(a, b);
        assert_eq!(a.members, [u("bob"), u("carol")]);
        // Its name is its id, which no user channel name can be.
        let Ok(Some(Body::ChannelCreated(c))) = decide_open_dm(
            DmState {
                exists: false,
                members_exist: true,
            },
            &a,
        ) else {
            panic!("a new DM is created");
        };
        assert_eq!(c.name, a.id.as_str());
        assert!(ChannelName::parse(&c.name).is_err());
        assert_eq!(
            decide_open_dm(
                DmState {
                    exists: true,
                    members_exist: true
                },
                &a
            ),
            Ok(None)
        );
        assert_eq!(
            decide_open_dm(
                DmState {
                    exists: false,
                    members_exist: false
                },
                &a
            ),
            Err(DomainError::NotFound("user"))
        );
        let many: Vec<UserId> = (0..9).map(|i| u(&format!("u{i}"))).collect();
        assert!(matches!(
            OpenDm::new(&caller("bob"), many),
            Err(DomainError::Invalid(_))
        ));
    }

    #[test]
    fn renames_and_topics_follow_the_archive_rules() {
        let name = |n: &str| ChannelName::parse(n).expect("valid");
        let free = NameState { taken: false };
        let alice = caller("alice");
        assert!(matches!(
            decide_rename(&alice, &state(facts(false), true), free, &name("town")),
            Ok(Some(Body::ChannelRenamed(r))) if r.name == "town"
        ));
        assert!(matches!(
            decide_rename(
                &admin("root"),
                &state(facts(true), true),
                free,
                &name("town")
            ),
            Ok(Some(_))
        ));
        // Its own name again: nothing to do, even if "taken" (by itself).
        assert_eq!(
            decide_rename(
                &alice,
                &state(facts(false), true),
                NameState { taken: true },
                &name("general")
            ),
            Ok(None)
        );
        assert!(matches!(
            decide_rename(
                &alice,
                &state(facts(false), true),
                NameState { taken: true },
                &name("town")
            ),
            Err(DomainError::Conflict(_))
        ));
        for (who, st) in [
            (caller("bob"), state(facts(false), true)),
            (caller("alice"), state(facts(false), false)),
        ] {
            assert!(matches!(
                decide_rename(&who, &st, free, &name("town")),
                Err(DomainError::Forbidden(_))
            ));
            assert!(matches!(
                decide_topic(&who, &st, "", "new"),
                Err(DomainError::Forbidden(_))
            ));
        }
        assert!(matches!(
            decide_rename(
                &alice,
                &state(direct(facts(true)), true),
                free,
                &name("town")
            ),
            Err(DomainError::Invalid(_))
        ));
        assert_eq!(
            decide_topic(&alice, &state(archived_ch(facts(false)), true), "", "x"),
            Err(DomainError::Archived)
        );
        assert_eq!(
            decide_topic(&caller("bob"), &state(facts(true), false), "", "x"),
            Err(DomainError::NotFound("channel"))
        );
        assert!(matches!(
            decide_topic(&alice, &state(facts(false), true), "old", "new"),
            Ok(Some(Body::ChannelTopicSet(t))) if t.topic == "new"
        ));
        assert_eq!(
            decide_topic(&alice, &state(facts(false), true), "same", "same"),
            Ok(None)
        );
    }
}
