//! Posting a message (thread replies included).

use super::{archived, ChannelState};
use crate::authz::Caller;
use crate::events::{Body, MessagePosted};
use crate::ids::{ChannelId, MessageId};
use crate::validate::{ClientMsgId, MessageText};
use crate::DomainError;

/// A validated post. `message_id` is fresh (the caller's clock and randomness).
#[derive(Debug, Clone)]
pub struct PostMessage {
    pub message_id: MessageId,
    pub text: MessageText,
    pub client_msg_id: Option<ClientMsgId>,
    pub thread_root_id: Option<MessageId>,
}

/// What a reply needs to know about its root, as the history model has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootFacts {
    pub channel_id: ChannelId,
    /// The root is itself a reply.
    pub is_reply: bool,
    pub deleted: bool,
}

/// The state a post is decided against.
#[derive(Debug, Clone)]
pub struct PostState {
    pub channel: ChannelState,
    /// The thread root, when the post is a reply (`None`: not found).
    pub root: Option<RootFacts>,
}

/// Members post into live channels; a reply's root must be a live
/// top-level message of the same channel.
pub fn decide_post(
    caller: &Caller,
    state: &PostState,
    cmd: &PostMessage,
) -> Result<Body, DomainError> {
    let ch = state.channel.visible_to(caller)?;
    if !state.channel.caller_member {
        return Err(DomainError::NotAMember);
    }
    if ch.archived {
        return Err(archived());
    }
    if cmd.thread_root_id.is_some() {
        match &state.root {
            Some(r) if r.channel_id != ch.id => {
                return Err(DomainError::NotFound("thread root message"))
            }
            Some(r) if r.is_reply || r.deleted => {
                return Err(DomainError::invalid(
                    "thread_root_id must be a live top-level message",
                ))
            }
            Some(_) => {}
            None => return Err(DomainError::NotFound("thread root message")),
        }
    }
    Ok(Body::MessagePosted(MessagePosted {
        message_id: cmd.message_id.as_str().to_string(),
        text: cmd.text.clone().into_string(),
        client_msg_id: cmd
            .client_msg_id
            .as_ref()
            .map(|c| c.as_str().to_string())
            .unwrap_or_default(),
        thread_root_id: cmd
            .thread_root_id
            .as_ref()
            .map(|m| m.as_str().to_string())
            .unwrap_or_default(),
        attachment_ids: Vec::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    fn post(reply_to: Option<&str>) -> PostMessage {
        PostMessage {
            message_id: MessageId::from_trusted("M1".into()),
            text: MessageText::parse("hi").expect("valid"),
            client_msg_id: None,
            thread_root_id: reply_to.map(|r| MessageId::from_trusted(r.into())),
        }
    }

    fn st(channel: ChannelState, root: Option<RootFacts>) -> PostState {
        PostState { channel, root }
    }

    fn root(channel: &str, is_reply: bool, deleted: bool) -> Option<RootFacts> {
        Some(RootFacts {
            channel_id: channel.into(),
            is_reply,
            deleted,
        })
    }

    #[test]
    fn members_post_into_live_channels() {
        let ok = decide_post(
            &caller("bob"),
            &st(state(facts(false), true), None),
            &post(None),
        );
        assert!(matches!(ok, Ok(Body::MessagePosted(m)) if m.text == "hi" && m.message_id == "M1"));
    }

    #[test]
    fn refusals() {
        let bob = caller("bob");
        let cases = [
            (
                st(state(facts(false), false), None),
                DomainError::NotAMember,
            ),
            (
                st(state(facts(true), false), None),
                DomainError::NotFound("channel"),
            ),
            (
                st(state(other_workspace(facts(false)), true), None),
                DomainError::NotFound("channel"),
            ),
            (
                st(state(archived_ch(facts(false)), true), None),
                super::archived(),
            ),
        ];
        for (s, want) in cases {
            assert_eq!(decide_post(&bob, &s, &post(None)), Err(want));
        }
    }

    #[test]
    fn replies_need_a_live_top_level_root_in_the_same_channel() {
        let bob = caller("bob");
        let member = || state(facts(false), true);
        assert!(decide_post(
            &bob,
            &st(member(), root("C1", false, false)),
            &post(Some("R"))
        )
        .is_ok());
        assert_eq!(
            decide_post(&bob, &st(member(), None), &post(Some("R"))),
            Err(DomainError::NotFound("thread root message"))
        );
        assert_eq!(
            decide_post(
                &bob,
                &st(member(), root("C2", false, false)),
                &post(Some("R"))
            ),
            Err(DomainError::NotFound("thread root message"))
        );
        for r in [root("C1", true, false), root("C1", false, true)] {
            assert!(matches!(
                decide_post(&bob, &st(member(), r), &post(Some("R"))),
                Err(DomainError::Invalid(_))
            ));
        }
    }
}
