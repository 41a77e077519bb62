//! Posting a message (thread replies included), its mentions resolved
//! against the channel's members as the post is decided.

use super::files::{check_attachments, FileFacts};
use super::{archived, ChannelState};
use crate::authz::Caller;
use crate::events::{Body, MessagePosted};
use crate::ids::{ChannelId, FileId, MessageId, UserId};
use crate::mentions;
use crate::validate::{ClientMsgId, MessageText};
use crate::DomainError;
use std::collections::HashMap;

/// A validated post. `message_id` is fresh (the caller's clock and randomness).
#[derive(Debug, Clone)]
pub struct PostMessage {
    pub message_id: MessageId,
    pub text: MessageText,
    pub client_msg_id: Option<ClientMsgId>,
    pub thread_root_id: Option<MessageId>,
    /// A reply that also shows in the channel's history.
    pub also_send_to_channel: bool,
    /// Files to attach (the caller's own uploads to this channel).
    pub attachment_ids: Vec<FileId>,
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
    /// Members of the channel among the handles the text mentions:
    /// handle → user id (see [`mentions::Scan::handles`]).
    pub members_by_handle: HashMap<String, UserId>,
    /// The files the post attaches, as far as they exist.
    pub files: Vec<FileFacts>,
    /// With `@here` in the text: the channel's members whose presence is
    /// `online` now (empty past [`mentions::HERE_MAX_MEMBERS`] members).
    pub online_members: Vec<UserId>,
}

/// Members post into live channels; a reply's root must be a live
/// top-level message of the same channel. Only a reply may also be sent
/// to the channel.
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
    } else if cmd.also_send_to_channel {
        return Err(DomainError::invalid(
            "also_send_to_channel is for thread replies (give thread_root_id)",
        ));
    }
    check_attachments(caller, &ch.id, &cmd.attachment_ids, &state.files)?;
    let mut mentions =
        mentions::resolve(&mentions::scan(cmd.text.as_str()), &state.members_by_handle);
    mentions::address_here(&mut mentions, &state.online_members, &caller.user_id);
    Ok(Body::MessagePosted(MessagePosted {
        message_id: cmd.message_id.as_str().to_string(),
        text: cmd.text.clone().into_string(),
        sealed: None,
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
        attachment_ids: cmd
            .attachment_ids
            .iter()
            .map(|f| f.as_str().to_string())
            .collect(),
        also_send_to_channel: cmd.also_send_to_channel,
        mentions: Some(mentions),
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
            also_send_to_channel: false,
            attachment_ids: Vec::new(),
        }
    }

    fn st(channel: ChannelState, root: Option<RootFacts>) -> PostState {
        PostState {
            channel,
            root,
            members_by_handle: HashMap::new(),
            files: Vec::new(),
            online_members: Vec::new(),
        }
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
    fn here_records_the_online_members_passed_in() {
        let mut s = st(state(facts(false), true), None);
        s.online_members = vec!["ada".into(), "bob".into()];
        let cmd = PostMessage {
            text: MessageText::parse("@here lunch").expect("valid"),
            ..post(None)
        };
        let Ok(Body::MessagePosted(m)) = decide_post(&caller("bob"), &s, &cmd) else {
            panic!("a post");
        };
        let m = m.mentions.expect("mentions");
        assert!(m.here);
        assert_eq!(m.here_user_ids, vec!["ada"]);
        // Without @here, the list passed in records nobody.
        let Ok(Body::MessagePosted(plain)) = decide_post(&caller("bob"), &s, &post(None)) else {
            panic!("a post");
        };
        assert!(plain.mentions.expect("mentions").here_user_ids.is_empty());
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

    #[test]
    fn only_replies_are_also_sent_to_the_channel() {
        let bob = caller("bob");
        let member = || state(facts(false), true);
        let mut cmd = post(Some("R"));
        cmd.also_send_to_channel = true;
        assert!(matches!(
            decide_post(&bob, &st(member(), root("C1", false, false)), &cmd),
            Ok(Body::MessagePosted(m)) if m.also_send_to_channel && m.thread_root_id == "R"
        ));
        cmd.thread_root_id = None;
        assert!(matches!(
            decide_post(&bob, &st(member(), None), &cmd),
            Err(DomainError::Invalid(_))
        ));
    }

    #[test]
    fn attachments_are_checked_and_recorded() {
        let mut s = st(state(facts(false), true), None);
        let mut cmd = post(None);
        cmd.attachment_ids = vec!["F1".into()];
        assert_eq!(
            decide_post(&caller("bob"), &s, &cmd),
            Err(DomainError::NotFound("file"))
        );
        s.files.push(FileFacts {
            id: "F1".into(),
            channel_id: "C1".into(),
            uploader_id: "bob".into(),
            attached: false,
            gone: false,
        });
        assert!(matches!(
            decide_post(&caller("bob"), &s, &cmd),
            Ok(Body::MessagePosted(m)) if m.attachment_ids == ["F1"]
        ));
        s.files[0].attached = true;
        assert!(matches!(
            decide_post(&caller("bob"), &s, &cmd),
            Err(DomainError::Conflict(_))
        ));
    }

    #[test]
    fn mentions_of_members_are_recorded_and_others_add_nothing() {
        let mut s = st(state(facts(false), true), None);
        s.members_by_handle
            .insert("carol".into(), UserId::from_trusted("U3".into()));
        let mut cmd = post(None);
        cmd.text = MessageText::parse("@carol @dave @channel").expect("valid");
        let Ok(Body::MessagePosted(m)) = decide_post(&caller("bob"), &s, &cmd) else {
            panic!("a post");
        };
        let m = m.mentions.expect("mentions");
        assert_eq!(m.user_ids, ["U3"]);
        assert!(m.channel && !m.here);
    }
}
