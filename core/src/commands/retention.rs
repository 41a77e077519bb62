//! Retention, legal holds and erasure, decided.
//!
//! - Retention (`RetentionSet`, on the workspace subject) and holds
//!   (`LegalHoldPlaced` / `LegalHoldLifted`) are workspace admins' changes,
//!   decided against the ACL model.
//! - An erasure is one `ContentErased` per channel, on the channel's
//!   subject, decided at its head: which content keys (slots) it destroys
//!   and which messages the read models forget. A legal hold wins over
//!   both retention and the right to erasure: a held workspace or channel
//!   erases nothing, a held author's slots are kept and their messages
//!   excepted ([`Holds`]).
//!
//! Nothing here does I/O; the slots a channel has come from the key
//! bucket, the time from the caller.

use crate::authz::{Caller, ChannelFacts};
use crate::commands::accounts::Account;
use crate::events::{
    Body, ContentErased, ErasureReason, HoldScope, LegalHoldLifted, LegalHoldPlaced, RetentionSet,
};
use crate::ids::{ChannelId, UserId};
use crate::DomainError;
use std::collections::BTreeSet;

/// Longest retention: a hundred years.
pub const MAX_RETENTION_DAYS: u32 = 36_500;
/// Longest reason of a hold, in characters.
pub const MAX_REASON_CHARS: usize = 500;
const DAY_MS: i64 = 86_400_000;

/// How long a channel's (or the workspace's) messages are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionAge {
    /// Kept forever (for a channel: the workspace's default applies).
    Forever,
    Days(u32),
    Secs(u64),
}

impl RetentionAge {
    /// From a `RetentionSet`.
    pub fn of(days: u32, max_age_secs: u64) -> RetentionAge {
        match (days, max_age_secs) {
            (_, s) if s > 0 => RetentionAge::Secs(s),
            (0, _) => RetentionAge::Forever,
            (d, _) => RetentionAge::Days(d),
        }
    }

    /// Parses the request's `days` / `max_age_secs` (at most one, `days` 0
    /// = forever).
    pub fn parse(
        days: Option<u32>,
        max_age_secs: Option<u64>,
    ) -> Result<RetentionAge, DomainError> {
        match (days, max_age_secs) {
            (Some(_), Some(_)) => Err(DomainError::invalid(
                "give either days or max_age_secs, not both",
            )),
            (None, None) => Err(DomainError::invalid(
                "give days (0 = keep forever) or max_age_secs",
            )),
            (Some(0), None) => Ok(RetentionAge::Forever),
            (Some(d), None) if d > MAX_RETENTION_DAYS => Err(DomainError::invalid(format!(
                "days must be at most {MAX_RETENTION_DAYS}"
            ))),
            (Some(d), None) => Ok(RetentionAge::Days(d)),
            (None, Some(0)) => Err(DomainError::invalid("max_age_secs must be at least 1")),
            (None, Some(s)) if s > u64::from(MAX_RETENTION_DAYS) * 86_400 => {
                Err(DomainError::invalid(format!(
                    "max_age_secs must be at most {MAX_RETENTION_DAYS} days"
                )))
            }
            (None, Some(s)) => Ok(RetentionAge::Secs(s)),
        }
    }

    /// The age in ms; `None` for forever.
    pub fn ms(self) -> Option<i64> {
        match self {
            RetentionAge::Forever => None,
            RetentionAge::Days(d) => Some(i64::from(d) * DAY_MS),
            RetentionAge::Secs(s) => Some(
                i64::try_from(s)
                    .unwrap_or(i64::MAX / 1000)
                    .saturating_mul(1000),
            ),
        }
    }

    /// In words, for a `ContentErased`'s policy.
    pub fn describe(self) -> String {
        match self {
            RetentionAge::Forever => "forever".into(),
            RetentionAge::Days(d) => format!("{d} days"),
            RetentionAge::Secs(s) => format!("{s} seconds"),
        }
    }
}

/// Sets the retention of `channel` (`None`: the workspace's default).
/// `current`: the retention set now (for the same scope).
pub fn decide_set_retention(
    caller: &Caller,
    channel: Option<(&ChannelId, Option<&ChannelFacts>)>,
    age: RetentionAge,
    current: RetentionAge,
) -> Result<Option<Body>, DomainError> {
    if !caller.admin {
        return Err(DomainError::Forbidden(
            "only workspace admins set retention".into(),
        ));
    }
    let channel_id = match channel {
        None => String::new(),
        Some((id, Some(f))) if f.workspace_id == caller.workspace_id => id.as_str().to_string(),
        Some(_) => return Err(DomainError::NotFound("channel")),
    };
    if age == current {
        return Ok(None);
    }
    let (days, max_age_secs) = match age {
        RetentionAge::Forever => (0, 0),
        RetentionAge::Days(d) => (d, 0),
        RetentionAge::Secs(s) => (0, s),
    };
    Ok(Some(Body::RetentionSet(RetentionSet {
        channel_id,
        days,
        max_age_secs,
    })))
}

/// A hold to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceHold {
    pub hold_id: String,
    pub scope: HoldScope,
    /// The channel or user; ignored for the workspace.
    pub target_id: String,
    pub reason: String,
}

/// Places a hold. `target_exists`: the channel or user is in the caller's
/// workspace (ignored for a workspace hold).
pub fn decide_place_hold(
    caller: &Caller,
    cmd: &PlaceHold,
    target_exists: bool,
) -> Result<Body, DomainError> {
    if !caller.admin {
        return Err(DomainError::Forbidden(
            "only workspace admins place legal holds".into(),
        ));
    }
    let reason = cmd.reason.trim();
    if reason.is_empty() {
        return Err(DomainError::invalid("a legal hold needs a reason"));
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(DomainError::invalid(format!(
            "reason must be at most {MAX_REASON_CHARS} characters"
        )));
    }
    let target_id = match cmd.scope {
        HoldScope::Workspace => String::new(),
        HoldScope::Channel | HoldScope::User if !target_exists => {
            return Err(DomainError::NotFound(if cmd.scope == HoldScope::Channel {
                "channel"
            } else {
                "user"
            }))
        }
        HoldScope::Channel | HoldScope::User => cmd.target_id.clone(),
        HoldScope::Unspecified => {
            return Err(DomainError::invalid(
                "scope must be workspace, channel or user",
            ))
        }
    };
    Ok(Body::LegalHoldPlaced(LegalHoldPlaced {
        hold_id: cmd.hold_id.clone(),
        scope: cmd.scope as i32,
        target_id,
        reason: reason.to_string(),
    }))
}

/// Lifts the hold `hold_id`; `exists`: the workspace has it.
pub fn decide_lift_hold(caller: &Caller, hold_id: &str, exists: bool) -> Result<Body, DomainError> {
    if !caller.admin {
        return Err(DomainError::Forbidden(
            "only workspace admins lift legal holds".into(),
        ));
    }
    if !exists {
        return Err(DomainError::NotFound("legal hold"));
    }
    Ok(Body::LegalHoldLifted(LegalHoldLifted {
        hold_id: hold_id.to_string(),
    }))
}

/// The holds of one workspace that are in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holds {
    pub workspace: bool,
    pub channels: BTreeSet<String>,
    pub users: BTreeSet<String>,
}

impl Holds {
    /// Nothing of `channel` may be erased.
    pub fn channel_held(&self, channel: &str) -> bool {
        self.workspace || self.channels.contains(channel)
    }

    /// A message of `author` in `channel` may not be deleted or erased.
    pub fn message_held(&self, channel: &str, author: &str) -> bool {
        self.channel_held(channel) || self.users.contains(author)
    }
}

/// A content key of a channel, as the key bucket names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotFacts {
    pub key_ref: String,
    pub author_id: String,
    pub end_ms: i64,
}

fn erased(
    reason: ErasureReason,
    policy: String,
    before_ts_ms: i64,
    author_ids: Vec<String>,
    except_author_ids: Vec<String>,
    through_channel_seq: u64,
    key_refs: Vec<String>,
) -> Body {
    Body::ContentErased(ContentErased {
        reason: reason as i32,
        policy,
        before_ts_ms,
        author_ids,
        except_author_ids,
        through_channel_seq,
        key_refs,
    })
}

/// The retention erasure of `channel` now, at its head `through` (the
/// subject's last channel_seq): every slot that ended at least `age` ago,
/// except held authors'. `None`: nothing to erase (no expired slot, or a
/// hold on the workspace or the channel). `scope` names whose retention it
/// is ("channel" or "workspace").
pub fn decide_retention_erasure(
    holds: &Holds,
    channel: &str,
    age: RetentionAge,
    scope: &str,
    slots: &[SlotFacts],
    now_ms: i64,
    through: u64,
) -> Option<Body> {
    let age_ms = age.ms()?;
    if holds.channel_held(channel) {
        return None;
    }
    let cutoff = now_ms.saturating_sub(age_ms);
    let expired: Vec<&SlotFacts> = slots
        .iter()
        .filter(|s| s.end_ms <= cutoff && !holds.users.contains(&s.author_id))
        .collect();
    let before = expired.iter().map(|s| s.end_ms).max()?;
    let mut key_refs: Vec<String> = expired.iter().map(|s| s.key_ref.clone()).collect();
    key_refs.sort();
    Some(erased(
        ErasureReason::Retention,
        format!("{scope} retention {}", age.describe()),
        before,
        Vec::new(),
        holds.users.iter().cloned().collect(),
        through,
        key_refs,
    ))
}

/// The erasure of `target`'s messages in `channel` (right to erasure), at
/// the channel's head `through`. The user must be deactivated first (so
/// nothing new is written under the keys being destroyed), and no hold may
/// cover the workspace, the user or the channel. `Ok(None)`: nothing of
/// the user's is left to erase there.
pub fn decide_user_erasure(
    caller: &Caller,
    target: Option<&Account>,
    holds: &Holds,
    channel: &str,
    slots: &[SlotFacts],
    through: u64,
) -> Result<Option<Body>, DomainError> {
    if !caller.admin {
        return Err(DomainError::Forbidden(
            "only workspace admins erase a user's messages".into(),
        ));
    }
    let Some(target) = target.filter(|t| t.workspace_id == caller.workspace_id) else {
        return Err(DomainError::NotFound("user"));
    };
    if !target.deactivated {
        return Err(DomainError::Conflict(
            "deactivate the user before erasing their messages".into(),
        ));
    }
    let user = target.id.as_str();
    if holds.message_held(channel, user) {
        return Err(DomainError::Conflict(
            "a legal hold covers these messages: lift it first".into(),
        ));
    }
    let mut key_refs: Vec<String> = slots
        .iter()
        .filter(|s| s.author_id == user)
        .map(|s| s.key_ref.clone())
        .collect();
    if key_refs.is_empty() {
        return Ok(None);
    }
    key_refs.sort();
    Ok(Some(erased(
        ErasureReason::UserRequest,
        format!("erasure of user {user}"),
        i64::MAX,
        vec![user.to_string()],
        Vec::new(),
        through,
        key_refs,
    )))
}

/// The user a user-erasure names, parsed (not found when malformed).
pub fn parse_user(id: &str) -> Result<UserId, DomainError> {
    UserId::parse(id).map_err(|_| DomainError::NotFound("user"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::WorkspaceId;

    fn admin() -> Caller {
        Caller {
            workspace_id: WorkspaceId::from_trusted("W1".into()),
            user_id: UserId::from_trusted("U1".into()),
            admin: true,
        }
    }

    fn member() -> Caller {
        Caller {
            admin: false,
            ..admin()
        }
    }

    fn facts(ws: &str) -> ChannelFacts {
        ChannelFacts {
            id: ChannelId::from_trusted("C1".into()),
            workspace_id: WorkspaceId::from_trusted(ws.into()),
            name: "general".into(),
            private: false,
            direct: false,
            archived: false,
            creator_id: UserId::from_trusted("U1".into()),
            fence_seq: 0,
        }
    }

    fn slot(author: &str, end_ms: i64) -> SlotFacts {
        SlotFacts {
            key_ref: format!("W1.C1.{author}.{}.{end_ms}", end_ms - 1000),
            author_id: author.into(),
            end_ms,
        }
    }

    fn account(deactivated: bool) -> Account {
        Account {
            id: UserId::from_trusted("U9".into()),
            workspace_id: WorkspaceId::from_trusted("W1".into()),
            admin: false,
            deactivated,
        }
    }

    #[test]
    fn retention_input_is_checked() {
        assert!(RetentionAge::parse(Some(1), Some(1)).is_err());
        assert!(RetentionAge::parse(None, None).is_err());
        assert!(RetentionAge::parse(None, Some(0)).is_err());
        assert!(RetentionAge::parse(Some(MAX_RETENTION_DAYS + 1), None).is_err());
        assert_eq!(
            RetentionAge::parse(Some(0), None),
            Ok(RetentionAge::Forever)
        );
        assert_eq!(
            RetentionAge::parse(Some(90), None),
            Ok(RetentionAge::Days(90))
        );
        assert_eq!(RetentionAge::of(0, 5), RetentionAge::Secs(5));
        assert_eq!(RetentionAge::Days(1).ms(), Some(DAY_MS));
    }

    #[test]
    fn only_admins_set_retention_in_their_workspace() {
        let c = ChannelId::from_trusted("C1".into());
        let age = RetentionAge::Days(90);
        assert!(matches!(
            decide_set_retention(&member(), None, age, RetentionAge::Forever),
            Err(DomainError::Forbidden(_))
        ));
        let other = facts("W2");
        assert_eq!(
            decide_set_retention(
                &admin(),
                Some((&c, Some(&other))),
                age,
                RetentionAge::Forever
            ),
            Err(DomainError::NotFound("channel"))
        );
        assert_eq!(
            decide_set_retention(&admin(), Some((&c, None)), age, RetentionAge::Forever),
            Err(DomainError::NotFound("channel"))
        );
        assert_eq!(decide_set_retention(&admin(), None, age, age), Ok(None));
        let ours = facts("W1");
        assert!(matches!(
            decide_set_retention(
                &admin(),
                Some((&c, Some(&ours))),
                age,
                RetentionAge::Forever
            ),
            Ok(Some(Body::RetentionSet(RetentionSet { days: 90, .. })))
        ));
    }

    #[test]
    fn holds_need_an_admin_a_reason_and_a_target() {
        let cmd = PlaceHold {
            hold_id: "H1".into(),
            scope: HoldScope::User,
            target_id: "U9".into(),
            reason: "litigation 2026-17".into(),
        };
        assert!(matches!(
            decide_place_hold(&member(), &cmd, true),
            Err(DomainError::Forbidden(_))
        ));
        assert_eq!(
            decide_place_hold(&admin(), &cmd, false),
            Err(DomainError::NotFound("user"))
        );
        let blank = PlaceHold {
            reason: "  ".into(),
            ..cmd.clone()
        };
        assert!(matches!(
            decide_place_hold(&admin(), &blank, true),
            Err(DomainError::Invalid(_))
        ));
        assert!(matches!(
            decide_place_hold(&admin(), &cmd, true),
            Ok(Body::LegalHoldPlaced(h)) if h.target_id == "U9"
        ));
        assert_eq!(
            decide_lift_hold(&admin(), "H1", false),
            Err(DomainError::NotFound("legal hold"))
        );
        assert!(matches!(
            decide_lift_hold(&member(), "H1", true),
            Err(DomainError::Forbidden(_))
        ));
    }

    #[test]
    fn retention_erases_expired_slots_except_held_ones() {
        let slots = [slot("U2", 1_000), slot("U3", 2_000), slot("U2", 9_000)];
        let age = RetentionAge::Secs(5);
        // now 8s: slots ending at or before 3s are expired.
        let Some(Body::ContentErased(e)) =
            decide_retention_erasure(&Holds::default(), "C1", age, "channel", &slots, 8_000, 42)
        else {
            panic!("expected an erasure");
        };
        assert_eq!(e.key_refs.len(), 2);
        assert_eq!(e.before_ts_ms, 2_000);
        assert_eq!(e.through_channel_seq, 42);
        assert!(e.author_ids.is_empty());
        // A held author keeps its slots and is excepted.
        let holds = Holds {
            users: ["U3".to_string()].into(),
            ..Default::default()
        };
        let Some(Body::ContentErased(e)) =
            decide_retention_erasure(&holds, "C1", age, "channel", &slots, 8_000, 42)
        else {
            panic!("expected an erasure");
        };
        assert_eq!(e.key_refs, vec![slots[0].key_ref.clone()]);
        assert_eq!(e.except_author_ids, vec!["U3".to_string()]);
        // A held channel or workspace erases nothing; nor does forever.
        for holds in [
            Holds {
                channels: ["C1".to_string()].into(),
                ..Default::default()
            },
            Holds {
                workspace: true,
                ..Default::default()
            },
        ] {
            assert_eq!(
                decide_retention_erasure(&holds, "C1", age, "channel", &slots, 8_000, 42),
                None
            );
        }
        assert_eq!(
            decide_retention_erasure(
                &Holds::default(),
                "C1",
                RetentionAge::Forever,
                "channel",
                &slots,
                8_000,
                42
            ),
            None
        );
        // Nothing expired yet.
        assert_eq!(
            decide_retention_erasure(&Holds::default(), "C1", age, "channel", &slots, 5_000, 42),
            None
        );
    }

    #[test]
    fn a_user_is_erased_only_when_deactivated_and_not_held() {
        let slots = [slot("U9", 1_000), slot("U2", 1_000)];
        let none = Holds::default();
        assert!(matches!(
            decide_user_erasure(&member(), Some(&account(true)), &none, "C1", &slots, 7),
            Err(DomainError::Forbidden(_))
        ));
        assert_eq!(
            decide_user_erasure(&admin(), None, &none, "C1", &slots, 7),
            Err(DomainError::NotFound("user"))
        );
        assert!(matches!(
            decide_user_erasure(&admin(), Some(&account(false)), &none, "C1", &slots, 7),
            Err(DomainError::Conflict(_))
        ));
        for holds in [
            Holds {
                users: ["U9".to_string()].into(),
                ..Default::default()
            },
            Holds {
                channels: ["C1".to_string()].into(),
                ..Default::default()
            },
        ] {
            assert!(matches!(
                decide_user_erasure(&admin(), Some(&account(true)), &holds, "C1", &slots, 7),
                Err(DomainError::Conflict(_))
            ));
        }
        let Ok(Some(Body::ContentErased(e))) =
            decide_user_erasure(&admin(), Some(&account(true)), &none, "C1", &slots, 7)
        else {
            panic!("expected an erasure");
        };
        assert_eq!(e.author_ids, vec!["U9".to_string()]);
        assert_eq!(e.key_refs, vec![slots[0].key_ref.clone()]);
        assert!(e.covers(7, 123, "U9") && !e.covers(7, 123, "U2") && !e.covers(8, 1, "U9"));
        // Nothing of the user's left.
        assert_eq!(
            decide_user_erasure(&admin(), Some(&account(true)), &none, "C1", &slots[1..], 7),
            Ok(None)
        );
    }
}
