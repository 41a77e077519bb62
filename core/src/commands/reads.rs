//! Read markers: "I have read channel C (or thread T of C) up to seq N".
//! Decided against the channel (ACL model), the thread root (history
//! model) and the caller's current marker (unread model), and appended as
//! a `ReadMarkerMoved` on the caller's own subject.
//!
//! Rules kept here:
//! - only a member of the channel moves a marker in it: another
//!   workspace's channel or a private one the caller is not in is not
//!   found, a public channel's non-member is `NotAMember`; a thread root
//!   must be a top-level message of that channel (else not found);
//! - a plain move never goes backwards: a seq at or below the current
//!   marker decides `Ok(None)` (nothing appended, the answer is the
//!   current marker);
//! - a seq beyond the channel's head is clamped to the head (a client
//!   that read "everything" may send a large number; it must not mark
//!   messages read that do not exist yet);
//! - "mark unread from here" (seq N) moves the marker to N − 1, even
//!   backwards: the one way a marker goes back.
//!
//! Archived channels take markers (reading is not writing).

use super::ChannelState;
use crate::authz::Caller;
use crate::events::{Body, ReadMarkerMoved};
use crate::ids::{ChannelId, MessageId};
use crate::DomainError;

/// A marker move the edge parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveMarker {
    pub channel_id: ChannelId,
    /// For "read": read up to and including this seq. For "unread": the
    /// first seq to show unread again.
    pub seq: u64,
    /// The thread's marker instead of the channel's.
    pub thread_root_id: Option<MessageId>,
    /// "Mark unread from here".
    pub unread: bool,
}

/// What a thread's root is, as the history model has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadRootFacts {
    pub channel_id: ChannelId,
    /// The root is itself a reply (then it is no thread root).
    pub is_reply: bool,
}

/// The state a marker move is decided against.
#[derive(Debug, Clone, Default)]
pub struct MarkerState {
    pub channel: ChannelState,
    /// The named thread root (`None`: not found, or no thread named).
    pub root: Option<ThreadRootFacts>,
    /// The caller's current marker (channel's, or the thread's).
    pub current: u64,
    /// The channel's head `channel_seq`.
    pub head: u64,
}

/// The marker a decision settles on, with or without an event to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerDecision {
    /// The marker after the command (the current one when nothing moves).
    pub last_read_seq: u64,
    /// The event to append, if the marker moves.
    pub event: Option<Body>,
}

/// Decides a marker move; see the module docs for the rules.
pub fn decide_marker(
    caller: &Caller,
    state: &MarkerState,
    cmd: &MoveMarker,
) -> Result<MarkerDecision, DomainError> {
    let ch = state.channel.visible_to(caller)?;
    if !state.channel.caller_member {
        return Err(DomainError::NotAMember);
    }
    if cmd.thread_root_id.is_some() {
        match &state.root {
            Some(r) if r.channel_id == ch.id && !r.is_reply => {}
            _ => return Err(DomainError::NotFound("thread root message")),
        }
    }
    let target = if cmd.unread {
        if cmd.seq == 0 {
            return Err(DomainError::invalid("seq must be at least 1"));
        }
        (cmd.seq - 1).min(state.head)
    } else {
        cmd.seq.min(state.head)
    };
    let moves = if cmd.unread {
        target != state.current
    } else {
        target > state.current
    };
    if !moves {
        return Ok(MarkerDecision {
            last_read_seq: state.current,
            event: None,
        });
    }
    Ok(MarkerDecision {
        last_read_seq: target,
        event: Some(Body::ReadMarkerMoved(ReadMarkerMoved {
            channel_id: ch.id.as_str().to_string(),
            seq: target,
            thread_root_id: cmd
                .thread_root_id
                .as_ref()
                .map(|m| m.as_str().to_string())
                .unwrap_or_default(),
            backwards: cmd.unread && target < state.current,
        })),
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    fn read(seq: u64) -> MoveMarker {
        MoveMarker {
            channel_id: "C1".into(),
            seq,
            thread_root_id: None,
            unread: false,
        }
    }

    fn unread(seq: u64) -> MoveMarker {
        MoveMarker {
            unread: true,
            ..read(seq)
        }
    }

    fn st(channel: ChannelState, current: u64, head: u64) -> MarkerState {
        MarkerState {
            channel,
            root: None,
            current,
            head,
        }
    }

    fn moved(d: &MarkerDecision) -> Option<(u64, bool)> {
        match &d.event {
            Some(Body::ReadMarkerMoved(e)) => Some((e.seq, e.backwards)),
            _ => None,
        }
    }

    #[test]
    fn a_member_moves_the_marker_forward() {
        let d = decide_marker(
            &caller("bob"),
            &st(state(facts(false), true), 3, 10),
            &read(7),
        )
        .expect("allowed");
        assert_eq!(d.last_read_seq, 7);
        assert_eq!(moved(&d), Some((7, false)));
    }

    #[test]
    fn a_lower_or_equal_seq_changes_nothing() {
        for seq in [0, 2, 5] {
            let d = decide_marker(
                &caller("bob"),
                &st(state(facts(false), true), 5, 10),
                &read(seq),
            )
            .expect("allowed");
            assert_eq!((d.last_read_seq, d.event), (5, None), "seq {seq}");
        }
    }

    #[test]
    fn a_seq_beyond_the_head_is_clamped() {
        let d = decide_marker(
            &caller("bob"),
            &st(state(facts(false), true), 3, 10),
            &read(99),
        )
        .expect("allowed");
        assert_eq!(moved(&d), Some((10, false)));
        let at_head = decide_marker(
            &caller("bob"),
            &st(state(facts(false), true), 10, 10),
            &read(99),
        )
        .expect("allowed");
        assert_eq!(at_head.event, None);
    }

    #[test]
    fn mark_unread_moves_back_to_the_seq_before() {
        let d = decide_marker(
            &caller("bob"),
            &st(state(facts(false), true), 9, 10),
            &unread(4),
        )
        .expect("allowed");
        assert_eq!((d.last_read_seq, moved(&d)), (3, Some((3, true))));
        // Already there: nothing to append.
        let same = decide_marker(
            &caller("bob"),
            &st(state(facts(false), true), 3, 10),
            &unread(4),
        )
        .expect("allowed");
        assert_eq!(same.event, None);
        // Forward through "unread" is a plain move, not backwards.
        let fwd = decide_marker(
            &caller("bob"),
            &st(state(facts(false), true), 1, 10),
            &unread(6),
        )
        .expect("allowed");
        assert_eq!(moved(&fwd), Some((5, false)));
        assert!(matches!(
            decide_marker(
                &caller("bob"),
                &st(state(facts(false), true), 1, 10),
                &unread(0)
            ),
            Err(DomainError::Invalid(_))
        ));
    }

    #[test]
    fn outsiders_and_non_members_are_refused() {
        let bob = caller("bob");
        assert_eq!(
            decide_marker(&bob, &st(state(facts(false), false), 0, 5), &read(1)),
            Err(DomainError::NotAMember)
        );
        for s in [
            st(state(facts(true), false), 0, 5),
            st(state(other_workspace(facts(false)), true), 0, 5),
            st(ChannelState::default(), 0, 5),
        ] {
            assert_eq!(
                decide_marker(&bob, &s, &read(1)),
                Err(DomainError::NotFound("channel"))
            );
        }
    }

    #[test]
    fn a_thread_root_must_be_a_top_level_message_of_the_channel() {
        let cmd = MoveMarker {
            thread_root_id: Some(MessageId::from_trusted("M1".into())),
            ..read(4)
        };
        let mut s = st(state(facts(false), true), 0, 5);
        for root in [
            None,
            Some(ThreadRootFacts {
                channel_id: "C2".into(),
                is_reply: false,
            }),
            Some(ThreadRootFacts {
                channel_id: "C1".into(),
                is_reply: true,
            }),
        ] {
            s.root = root;
            assert_eq!(
                decide_marker(&caller("bob"), &s, &cmd),
                Err(DomainError::NotFound("thread root message"))
            );
        }
        s.root = Some(ThreadRootFacts {
            channel_id: "C1".into(),
            is_reply: false,
        });
        let d = decide_marker(&caller("bob"), &s, &cmd).expect("allowed");
        match d.event {
            Some(Body::ReadMarkerMoved(e)) => {
                assert_eq!((e.seq, e.thread_root_id.as_str()), (4, "M1"))
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
