//! Commands on an existing message: edit, delete, react, unreact, pin and
//! unpin. Each decides against the message as the history model has it
//! and the channel as the ACL model has it, at the head of the channel's
//! subject it appends after.
//!
//! Rules every one of them keeps:
//! - a message whose channel the caller may not see is not found, exactly
//!   like an id that does not exist (another workspace, a private channel
//!   the caller is not in);
//! - only members act on a channel's messages (a workspace admin may also
//!   delete in a public channel it is not in);
//! - an archived channel refuses them all ([`DomainError::Archived`]), even
//!   one that would change nothing;
//! - a command whose effect is already in place decides `Ok(None)`: nothing
//!   is appended (a second delete, a repeated reaction, removing a reaction
//!   that is not there, pinning a pinned message).

use super::ChannelState;
use crate::authz::{Caller, ChannelFacts};
use crate::events::{
    Body, Mentions, MessageDeleted, MessageEdited, MessagePinned, MessageUnpinned, ReactionAdded,
    ReactionRemoved,
};
use crate::ids::{ChannelId, MessageId, UserId};
use crate::mentions;
use crate::validate::{Emoji, MessageText};
use crate::DomainError;
use std::collections::HashMap;

/// Most distinct emoji one message may carry.
pub const MAX_REACTIONS: usize = 50;
/// Most pinned messages per channel (the pin list is one page).
pub const MAX_PINS: usize = 100;

/// A command on a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageCommand {
    /// Replace the text (author only); mentions are resolved anew.
    Edit(MessageText),
    /// Tombstone it (author, or a workspace admin).
    Delete,
    React(Emoji),
    Unreact(Emoji),
    /// Pin it in `channel` (the channel the request names).
    Pin(ChannelId),
    Unpin(ChannelId),
}

impl MessageCommand {
    /// The emoji of a reaction command.
    pub fn emoji(&self) -> Option<&Emoji> {
        match self {
            MessageCommand::React(e) | MessageCommand::Unreact(e) => Some(e),
            _ => None,
        }
    }

    /// The channel a pin command names.
    pub fn pin_channel(&self) -> Option<&ChannelId> {
        match self {
            MessageCommand::Pin(c) | MessageCommand::Unpin(c) => Some(c),
            _ => None,
        }
    }
}

/// The message as the history model has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageFacts {
    pub id: MessageId,
    pub channel_id: ChannelId,
    pub sender_id: UserId,
    pub deleted: bool,
    pub pinned: bool,
    pub text: String,
    pub mentions: Mentions,
    /// When it was posted (its text's key slot: an edit is sealed with
    /// the post's slot, see `events::Sealed`).
    pub ts_ms: i64,
}

/// The caller's reaction with the command's emoji, and the message's
/// reactions overall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReactionFacts {
    /// The caller reacted with this emoji.
    pub mine: bool,
    /// Someone reacted with this emoji.
    pub present: bool,
    /// Distinct emoji on the message.
    pub distinct: usize,
}

/// The state a message command is decided against. The parts a command
/// does not need are left at their defaults.
#[derive(Debug, Clone, Default)]
pub struct MessageState {
    /// The message's channel (for pins: the channel the request names).
    pub channel: ChannelState,
    /// `None`: no such message.
    pub message: Option<MessageFacts>,
    /// Reactions (react/unreact).
    pub reactions: ReactionFacts,
    /// Pinned messages in the channel (pin).
    pub pins: usize,
    /// Members of the channel among the handles the new text mentions
    /// (edit): handle → user id.
    pub members_by_handle: HashMap<String, UserId>,
    /// With `@here` in the new text (edit): the channel's members whose
    /// presence is `online` now (see [`mentions::address_here`]).
    pub online_members: Vec<UserId>,
    /// A legal hold covers the message (its workspace, channel or author):
    /// it cannot be deleted while the hold lasts.
    pub held: bool,
}

fn deleted() -> DomainError {
    DomainError::Conflict("the message is deleted".into())
}

/// Returns `Ok(None)` when there is nothing to append.
pub fn decide_message(
    caller: &Caller,
    state: &MessageState,
    cmd: &MessageCommand,
) -> Result<Option<Body>, DomainError> {
    let (ch, msg) = target(caller, state, cmd)?;
    let member = state.channel.caller_member;
    let id = msg.id.as_str().to_string();
    let in_channel = || {
        if member {
            Ok(())
        } else {
            Err(DomainError::NotAMember)
        }
    };
    let writable = || {
        if ch.archived {
            Err(super::archived())
        } else {
            Ok(())
        }
    };
    let live = || {
        if msg.deleted {
            Err(deleted())
        } else {
            Ok(())
        }
    };
    match cmd {
        MessageCommand::Delete => {
            let author = msg.sender_id == caller.user_id && member;
            if !(author || caller.admin) {
                in_channel()?;
                return Err(DomainError::Forbidden(
                    "only the author or a workspace admin may delete a message".into(),
                ));
            }
            writable()?;
            if msg.deleted {
                return Ok(None);
            }
            if state.held {
                return Err(DomainError::Conflict(
                    "the message is under a legal hold: it cannot be deleted until the hold is lifted"
                        .into(),
                ));
            }
            Ok(Some(Body::MessageDeleted(MessageDeleted {
                message_id: id,
            })))
        }
        MessageCommand::Edit(text) => {
            in_channel()?;
            if msg.sender_id != caller.user_id {
                return Err(DomainError::Forbidden(
                    "only the author may edit a message".into(),
                ));
            }
            writable()?;
            live()?;
            let mut mentions =
                mentions::resolve(&mentions::scan(text.as_str()), &state.members_by_handle);
            // Who was online is not part of "the same edit": an edit to
            // the same text with the same mentions appends nothing.
            let same = msg.text == text.as_str()
                && msg.mentions.user_ids == mentions.user_ids
                && msg.mentions.channel == mentions.channel
                && msg.mentions.here == mentions.here;
            if same {
                return Ok(None);
            }
            mentions::address_here(&mut mentions, &state.online_members, &caller.user_id);
            Ok(Some(Body::MessageEdited(MessageEdited {
                message_id: id,
                text: text.as_str().to_string(),
                mentions: Some(mentions),
                sealed: None,
                original_ts_ms: msg.ts_ms,
            })))
        }
        MessageCommand::React(emoji) => {
            in_channel()?;
            writable()?;
            live()?;
            let r = state.reactions;
            if r.mine {
                return Ok(None);
            }
            if !r.present && r.distinct >= MAX_REACTIONS {
                return Err(DomainError::TooManyReactions(MAX_REACTIONS));
            }
            Ok(Some(Body::ReactionAdded(ReactionAdded {
                message_id: id,
                emoji: emoji.as_str().to_string(),
            })))
        }
        MessageCommand::Unreact(emoji) => {
            in_channel()?;
            writable()?;
            live()?;
            if !state.reactions.mine {
                return Ok(None);
            }
            Ok(Some(Body::ReactionRemoved(ReactionRemoved {
                message_id: id,
                emoji: emoji.as_str().to_string(),
            })))
        }
        MessageCommand::Pin(_) => {
            in_channel()?;
            writable()?;
            live()?;
            if msg.pinned {
                return Ok(None);
            }
            if state.pins >= MAX_PINS {
                return Err(DomainError::Conflict(format!(
                    "a channel has at most {MAX_PINS} pinned messages"
                )));
            }
            Ok(Some(Body::MessagePinned(MessagePinned { message_id: id })))
        }
        MessageCommand::Unpin(_) => {
            in_channel()?;
            writable()?;
            // A tombstone unpins, so unpinning a deleted message changes nothing.
            if !msg.pinned {
                return Ok(None);
            }
            Ok(Some(Body::MessageUnpinned(MessageUnpinned {
                message_id: id,
            })))
        }
    }
}

/// The channel and the message, if the caller may know they exist. A pin
/// names its channel: a message of another channel is not found there.
fn target<'a>(
    caller: &Caller,
    state: &'a MessageState,
    cmd: &MessageCommand,
) -> Result<(&'a ChannelFacts, &'a MessageFacts), DomainError> {
    let gone = DomainError::NotFound("message");
    let ch = match cmd.pin_channel() {
        Some(_) => state.channel.visible_to(caller)?,
        None => state.channel.visible_to(caller).map_err(|_| gone.clone())?,
    };
    match &state.message {
        Some(m)
            if m.channel_id == ch.id && cmd.pin_channel().is_none_or(|c| *c == m.channel_id) =>
        {
            Ok((ch, m))
        }
        _ => Err(gone),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    fn message(sender: &str) -> MessageFacts {
        MessageFacts {
            id: MessageId::from_trusted("M1".into()),
            channel_id: "C1".into(),
            sender_id: sender.into(),
            deleted: false,
            pinned: false,
            text: "hello".into(),
            mentions: Mentions::default(),
            ts_ms: 1_000,
        }
    }

    fn st(channel: ChannelState, msg: Option<MessageFacts>) -> MessageState {
        MessageState {
            channel,
            message: msg,
            ..Default::default()
        }
    }

    fn member_st(msg: MessageFacts) -> MessageState {
        st(state(facts(false), true), Some(msg))
    }

    fn edit(text: &str) -> MessageCommand {
        MessageCommand::Edit(MessageText::parse(text).expect("valid"))
    }

    fn react(e: &str) -> MessageCommand {
        MessageCommand::React(Emoji::parse(e).expect("valid"))
    }

    fn unreact(e: &str) -> MessageCommand {
        MessageCommand::Unreact(Emoji::parse(e).expect("valid"))
    }

    fn pin() -> MessageCommand {
        MessageCommand::Pin("C1".into())
    }

    fn gone(mut m: MessageFacts) -> MessageFacts {
        m.deleted = true;
        m
    }

    #[test]
    fn a_held_message_cannot_be_deleted_and_its_edit_keeps_the_post_slot() {
        let bob = caller("bob");
        let mut s = member_st(message("bob"));
        s.held = true;
        assert!(matches!(
            decide_message(&bob, &s, &MessageCommand::Delete),
            Err(DomainError::Conflict(_))
        ));
        // A hold blocks deletes only: the author still edits.
        assert!(matches!(
            decide_message(&bob, &s, &edit("new")),
            Ok(Some(Body::MessageEdited(e))) if e.original_ts_ms == 1_000 && e.sealed.is_none()
        ));
    }

    #[test]
    fn outsiders_find_no_message() {
        let bob = caller("bob");
        for s in [
            st(state(facts(false), true), None),
            st(state(facts(true), false), Some(message("bob"))),
            st(
                state(other_workspace(facts(false)), true),
                Some(message("bob")),
            ),
            st(
                state(facts(false), true),
                Some(MessageFacts {
                    channel_id: "C2".into(),
                    ..message("bob")
                }),
            ),
        ] {
            for cmd in [edit("x"), MessageCommand::Delete, react("+1")] {
                assert_eq!(
                    decide_message(&bob, &s, &cmd),
                    Err(DomainError::NotFound("message")),
                    "{cmd:?}"
                );
            }
        }
        // A public channel's non-members know it exists: 403.
        let outsider = st(state(facts(false), false), Some(message("alice")));
        for cmd in [edit("x"), react("+1"), pin(), MessageCommand::Delete] {
            assert_eq!(
                decide_message(&bob, &outsider, &cmd),
                Err(DomainError::NotAMember),
                "{cmd:?}"
            );
        }
    }

    #[test]
    fn only_the_author_edits_a_live_message_in_a_live_channel() {
        let ok = decide_message(&caller("bob"), &member_st(message("bob")), &edit("new"));
        assert!(matches!(ok, Ok(Some(Body::MessageEdited(e))) if e.text == "new"));
        assert!(matches!(
            decide_message(&caller("bob"), &member_st(message("alice")), &edit("new")),
            Err(DomainError::Forbidden(_))
        ));
        // Not even an admin edits someone else's words.
        assert!(matches!(
            decide_message(&admin("root"), &member_st(message("alice")), &edit("new")),
            Err(DomainError::Forbidden(_))
        ));
        assert_eq!(
            decide_message(&caller("bob"), &member_st(gone(message("bob"))), &edit("x")),
            Err(deleted())
        );
        let archived = st(state(archived_ch(facts(false)), true), Some(message("bob")));
        assert_eq!(
            decide_message(&caller("bob"), &archived, &edit("x")),
            Err(DomainError::Archived)
        );
        // The author who left cannot edit any more.
        let left = st(state(facts(false), false), Some(message("bob")));
        assert_eq!(
            decide_message(&caller("bob"), &left, &edit("x")),
            Err(DomainError::NotAMember)
        );
    }

    #[test]
    fn an_edit_resolves_mentions_and_a_no_change_edit_appends_nothing() {
        let mut s = member_st(message("bob"));
        s.members_by_handle
            .insert("carol".into(), UserId::from_trusted("U3".into()));
        let Ok(Some(Body::MessageEdited(e))) =
            decide_message(&caller("bob"), &s, &edit("hi @carol @ghost @here"))
        else {
            panic!("an edit");
        };
        let m = e.mentions.expect("mentions");
        assert_eq!(m.user_ids, ["U3"]);
        assert!(m.here && !m.channel);
        assert_eq!(decide_message(&caller("bob"), &s, &edit("hello")), Ok(None));
    }

    #[test]
    fn deletes_by_the_author_or_an_admin_once() {
        let del = MessageCommand::Delete;
        assert!(matches!(
            decide_message(&caller("bob"), &member_st(message("bob")), &del),
            Ok(Some(Body::MessageDeleted(d))) if d.message_id == "M1"
        ));
        assert!(matches!(
            decide_message(&caller("carol"), &member_st(message("bob")), &del),
            Err(DomainError::Forbidden(_))
        ));
        // An admin who can see the channel, member or not.
        let public_outsider = st(state(facts(false), false), Some(message("bob")));
        assert!(decide_message(&admin("root"), &public_outsider, &del).is_ok_and(|b| b.is_some()));
        let private_outsider = st(state(facts(true), false), Some(message("bob")));
        assert_eq!(
            decide_message(&admin("root"), &private_outsider, &del),
            Err(DomainError::NotFound("message"))
        );
        // A second delete changes nothing; an archived channel refuses.
        assert_eq!(
            decide_message(&caller("bob"), &member_st(gone(message("bob"))), &del),
            Ok(None)
        );
        let archived = st(state(archived_ch(facts(false)), true), Some(message("bob")));
        assert_eq!(
            decide_message(&caller("bob"), &archived, &del),
            Err(DomainError::Archived)
        );
    }

    #[test]
    fn reactions_are_idempotent_and_capped() {
        let bob = caller("bob");
        let mut s = member_st(message("alice"));
        assert!(matches!(
            decide_message(&bob, &s, &react("+1")),
            Ok(Some(Body::ReactionAdded(r))) if r.emoji == "+1"
        ));
        assert_eq!(decide_message(&bob, &s, &unreact("+1")), Ok(None));
        s.reactions.mine = true;
        s.reactions.present = true;
        assert_eq!(decide_message(&bob, &s, &react("+1")), Ok(None));
        assert!(matches!(
            decide_message(&bob, &s, &unreact("+1")),
            Ok(Some(Body::ReactionRemoved(_)))
        ));
        // At the cap: a new emoji is refused, an existing one is fine.
        s.reactions = ReactionFacts {
            mine: false,
            present: false,
            distinct: MAX_REACTIONS,
        };
        assert_eq!(
            decide_message(&bob, &s, &react("new")),
            Err(DomainError::TooManyReactions(MAX_REACTIONS))
        );
        s.reactions.present = true;
        assert!(decide_message(&bob, &s, &react("old")).is_ok_and(|b| b.is_some()));
        assert_eq!(
            decide_message(&bob, &member_st(gone(message("alice"))), &react("+1")),
            Err(deleted())
        );
        let archived = st(
            state(archived_ch(facts(false)), true),
            Some(message("alice")),
        );
        assert_eq!(
            decide_message(&bob, &archived, &unreact("+1")),
            Err(DomainError::Archived)
        );
    }

    #[test]
    fn pins_are_idempotent_capped_and_per_channel() {
        let bob = caller("bob");
        let unpin = MessageCommand::Unpin("C1".into());
        let mut s = member_st(message("alice"));
        assert!(matches!(
            decide_message(&bob, &s, &pin()),
            Ok(Some(Body::MessagePinned(_)))
        ));
        assert_eq!(decide_message(&bob, &s, &unpin), Ok(None));
        s.pins = MAX_PINS;
        assert!(matches!(
            decide_message(&bob, &s, &pin()),
            Err(DomainError::Conflict(_))
        ));
        s.message = Some(MessageFacts {
            pinned: true,
            ..message("alice")
        });
        assert_eq!(decide_message(&bob, &s, &pin()), Ok(None));
        assert!(matches!(
            decide_message(&bob, &s, &unpin),
            Ok(Some(Body::MessageUnpinned(_)))
        ));
        // A message of another channel is not found in this one.
        assert_eq!(
            decide_message(&bob, &s, &MessageCommand::Pin("C2".into())),
            Err(DomainError::NotFound("message"))
        );
        // The named channel itself follows the channel rules.
        let hidden = st(state(facts(true), false), Some(message("alice")));
        assert_eq!(
            decide_message(&bob, &hidden, &pin()),
            Err(DomainError::NotFound("channel"))
        );
        assert_eq!(
            decide_message(&bob, &member_st(gone(message("alice"))), &pin()),
            Err(deleted())
        );
        assert_eq!(
            decide_message(&bob, &member_st(gone(message("alice"))), &unpin),
            Ok(None)
        );
    }
}
