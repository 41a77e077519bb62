//! Preferences: parsing refusals, partial updates, and when DND is on.

use super::*;
use crate::commands::fixtures::*;
use crate::events::ChannelKind;
use crate::ids::{UserId, WorkspaceId};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

/// Unix ms of an RFC 3339 instant.
fn at(s: &str) -> i64 {
    DateTime::parse_from_rfc3339(s)
        .expect("instant")
        .timestamp_millis()
}

fn raw() -> RawUserPrefs<'static> {
    RawUserPrefs::default()
}

fn invalid(r: Result<UserPrefsPatch, DomainError>) -> String {
    match r {
        Err(DomainError::Invalid(m)) => m,
        other => panic!("expected invalid, got {other:?}"),
    }
}

#[test]
fn every_field_is_validated_and_named() {
    let cases: Vec<(RawUserPrefs<'static>, &str)> = vec![
        (
            RawUserPrefs {
                dnd_until: Some(Some("tomorrow")),
                ..raw()
            },
            "dnd_until",
        ),
        (
            RawUserPrefs {
                dnd_until: Some(Some("2026-11-28T18:00:00")),
                ..raw()
            },
            "dnd_until",
        ),
        (
            RawUserPrefs {
                dnd_schedule: Some(Some(("24:00", "07:00"))),
                ..raw()
            },
            "dnd_schedule.start",
        ),
        (
            RawUserPrefs {
                dnd_schedule: Some(Some(("22:00", "7:00"))),
                ..raw()
            },
            "dnd_schedule.end",
        ),
        (
            RawUserPrefs {
                dnd_schedule: Some(Some(("22:00", "22:00"))),
                ..raw()
            },
            "dnd_schedule",
        ),
        (
            RawUserPrefs {
                time_zone: Some(Some("Mars/Olympus")),
                ..raw()
            },
            "time_zone",
        ),
    ];
    for (r, field) in cases {
        let m = invalid(UserPrefsPatch::parse(&r));
        assert!(m.starts_with(field), "{m}");
    }
}

#[test]
fn keywords_are_trimmed_folded_deduplicated_and_bounded() {
    let list: Vec<String> = ["  Deploy ", "deploy", "ON CALL", "ß"]
        .map(String::from)
        .to_vec();
    let p = UserPrefsPatch::parse(&RawUserPrefs {
        keywords: Some(Some(&list)),
        ..raw()
    })
    .expect("valid");
    assert_eq!(
        p.keywords,
        Some(vec!["deploy".into(), "on call".into(), "ß".into()])
    );
    let bad: Vec<Vec<String>> = vec![
        vec!["   ".into()],
        vec!["x".repeat(65)],
        vec!["ok".into(), "!!!".into()],
        vec!["a\u{7}b".into()],
        (0..51).map(|i| format!("k{i}")).collect(),
    ];
    for list in &bad {
        let m = invalid(UserPrefsPatch::parse(&RawUserPrefs {
            keywords: Some(Some(list)),
            ..raw()
        }));
        assert!(m.starts_with("keywords"), "{m}");
    }
    let max: Vec<String> = (0..50).map(|i| format!("k{i}")).collect();
    let sixty_four = vec!["é".repeat(64)];
    for ok in [&max, &sixty_four] {
        assert!(UserPrefsPatch::parse(&RawUserPrefs {
            keywords: Some(Some(ok)),
            ..raw()
        })
        .is_ok());
    }
}

#[test]
fn a_patch_changes_only_its_fields_and_nothing_when_equal() {
    let current = UserPreferencesSet {
        dnd_until_ms: 5,
        dnd_schedule: Some(DndSchedule {
            start_minute: 1320,
            end_minute: 420,
        }),
        time_zone: "Europe/Berlin".into(),
        keywords: vec!["deploy".into()],
    };
    let tz = UserPrefsPatch::parse(&RawUserPrefs {
        time_zone: Some(Some("America/New_York")),
        ..raw()
    })
    .expect("tz");
    let Some(Body::UserPreferencesSet(next)) = decide_user_preferences(&current, &tz) else {
        panic!("a change");
    };
    assert_eq!(
        next,
        UserPreferencesSet {
            time_zone: "America/New_York".into(),
            ..current.clone()
        }
    );
    assert_eq!(
        decide_user_preferences(&current, &UserPrefsPatch::default()),
        None
    );
    let utc = UserPrefsPatch::parse(&RawUserPrefs {
        time_zone: Some(Some("UTC")),
        ..raw()
    })
    .expect("utc");
    assert_eq!(
        decide_user_preferences(&UserPreferencesSet::default(), &utc),
        None,
        "UTC is the default"
    );
    let same = UserPrefsPatch::parse(&RawUserPrefs {
        time_zone: Some(Some(" Europe/Berlin ")),
        dnd_schedule: Some(Some(("22:00", "07:00"))),
        ..raw()
    })
    .expect("same");
    assert_eq!(decide_user_preferences(&current, &same), None);
    // null clears.
    let clear = UserPrefsPatch::parse(&RawUserPrefs {
        dnd_until: Some(None),
        dnd_schedule: Some(None),
        time_zone: Some(None),
        keywords: Some(None),
    })
    .expect("clear");
    assert_eq!(
        decide_user_preferences(&current, &clear),
        Some(Body::UserPreferencesSet(UserPreferencesSet::default()))
    );
    let until = UserPrefsPatch::parse(&RawUserPrefs {
        dnd_until: Some(Some("2026-11-28T19:00:00+01:00")),
        ..raw()
    })
    .expect("until");
    assert_eq!(until.dnd_until_ms, Some(at("2026-11-28T18:00:00Z")));
}

#[test]
fn channel_settings_are_for_members_only() {
    let bob = caller("bob");
    let patch = ChannelPrefsPatch::parse(Some(true), Some("mentions")).expect("patch");
    let none = ChannelPreferencesSet::default();
    let Ok(Some(Body::ChannelPreferencesSet(p))) =
        decide_channel_preferences(&bob, &state(facts(false), true), &none, &patch)
    else {
        panic!("a change");
    };
    assert_eq!(
        (p.channel_id.as_str(), p.muted, p.notify()),
        ("C1", true, NotifyLevel::Mentions)
    );
    // Archived: still the member's own business.
    assert!(decide_channel_preferences(
        &bob,
        &state(archived_ch(facts(false)), true),
        &none,
        &patch
    )
    .expect("archived")
    .is_some());
    assert_eq!(
        decide_channel_preferences(&bob, &state(facts(false), false), &none, &patch),
        Err(DomainError::NotAMember)
    );
    for st in [
        state(facts(true), false),
        state(other_workspace(facts(false)), true),
        ChannelState::default(),
    ] {
        assert_eq!(
            decide_channel_preferences(&bob, &st, &none, &patch),
            Err(DomainError::NotFound("channel"))
        );
    }
    // Unchanged: nothing to append.
    assert_eq!(
        decide_channel_preferences(&bob, &state(facts(false), true), &p, &patch),
        Ok(None)
    );
    assert_eq!(
        decide_channel_preferences(
            &bob,
            &state(facts(false), true),
            &none,
            &ChannelPrefsPatch::default()
        ),
        Ok(None)
    );
    assert!(matches!(
        ChannelPrefsPatch::parse(None, Some("loud")),
        Err(DomainError::Invalid(m)) if m.starts_with("notify")
    ));
    let _ = ChannelKind::Channel;
}

#[test]
fn ack_ids_are_checked() {
    assert_eq!(
        parse_ack_ids(&["M1-U1".into(), "M1-U1".into()]).expect("ok"),
        vec!["M1-U1".to_string()]
    );
    for bad in [vec!["".to_string()], vec!["a.b".into()], vec!["x y".into()]] {
        assert!(parse_ack_ids(&bad).is_err(), "{bad:?}");
    }
    let many: Vec<String> = (0..501).map(|i| format!("M{i}-U")).collect();
    assert!(parse_ack_ids(&many).is_err());
    assert!(parse_ack_ids(&many[..500]).is_ok());
}

#[test]
fn only_the_callers_own_live_notifications_are_acknowledged() {
    let me = Caller {
        workspace_id: WorkspaceId::from("W1"),
        user_id: UserId::from("U1"),
        admin: false,
    };
    let fact = |id: &str, ws: &str, user: &str, state: &str| AckFacts {
        id: id.into(),
        workspace_id: ws.into(),
        user_id: user.into(),
        state: state.into(),
    };
    assert_eq!(decide_ack(&me, vec![]), None);
    let found = vec![
        fact("M1-U1", "W1", "U1", "pending"),
        fact("M2-U1", "W1", "U1", "read"),
        fact("M3-U1", "W1", "U1", "acked"),
        fact("M4-U1", "W1", "U1", "withdrawn"),
        fact("M5-U2", "W1", "U2", "pending"),
        fact("M6-U1", "W2", "U1", "pending"),
    ];
    assert_eq!(
        decide_ack(&me, found),
        Some(Body::NotificationsAcked(NotificationsAcked {
            ids: vec!["M1-U1".into(), "M2-U1".into()]
        }))
    );
    assert_eq!(
        decide_ack(&me, vec![fact("M5-U2", "W1", "U2", "pending")]),
        None,
        "another user's is never acknowledged"
    );
}

fn scheduled(start: &str, end: &str, tz: &str) -> UserPreferencesSet {
    let p = UserPrefsPatch::parse(&RawUserPrefs {
        dnd_schedule: Some(Some((start, end))),
        time_zone: Some(Some(tz)),
        ..raw()
    })
    .expect("schedule");
    UserPreferencesSet {
        dnd_schedule: p.dnd_schedule.flatten(),
        time_zone: p.time_zone.unwrap_or_default(),
        ..Default::default()
    }
}

#[test]
fn dnd_until_a_time() {
    let now = at("2026-11-28T12:00:00Z");
    let prefs = UserPreferencesSet {
        dnd_until_ms: now + HOUR,
        ..Default::default()
    };
    assert_eq!(dnd_active_until(&prefs, now), Some(now + HOUR));
    assert_eq!(dnd_active_until(&prefs, now + HOUR), None);
    assert_eq!(dnd_active_until(&UserPreferencesSet::default(), now), None);
}

#[test]
fn a_schedule_wraps_past_midnight() {
    let p = scheduled("22:00", "07:00", "");
    assert_eq!(
        dnd_active_until(&p, at("2026-11-28T23:30:00Z")),
        Some(at("2026-11-29T07:00:00Z"))
    );
    assert_eq!(
        dnd_active_until(&p, at("2026-11-29T03:00:00Z")),
        Some(at("2026-11-29T07:00:00Z"))
    );
    assert_eq!(
        dnd_active_until(&p, at("2026-11-28T22:00:00Z")),
        Some(at("2026-11-29T07:00:00Z"))
    );
    assert_eq!(dnd_active_until(&p, at("2026-11-29T07:00:00Z")), None);
    assert_eq!(dnd_active_until(&p, at("2026-11-28T12:00:00Z")), None);
    // A daytime window.
    let day = scheduled("09:00", "17:30", "UTC");
    assert_eq!(
        dnd_active_until(&day, at("2026-11-28T10:00:00Z")),
        Some(at("2026-11-28T17:30:00Z"))
    );
    assert_eq!(dnd_active_until(&day, at("2026-11-28T08:59:59Z")), None);
}

#[test]
fn a_schedule_follows_the_time_zone_and_dst() {
    // Berlin is UTC+1 in winter, +2 in summer; DST starts 2026-03-29 at
    // 02:00 (to 03:00) and ends 2026-10-25 at 03:00 (to 02:00).
    let p = scheduled("22:00", "07:00", "Europe/Berlin");
    assert_eq!(
        dnd_active_until(&p, at("2026-11-28T22:00:00Z")), // 23:00 local
        Some(at("2026-11-29T06:00:00Z"))
    );
    // The night DST starts: 22:00 CET → 07:00 CEST (05:00 UTC).
    assert_eq!(
        dnd_active_until(&p, at("2026-03-28T22:00:00Z")),
        Some(at("2026-03-29T05:00:00Z"))
    );
    // The night DST ends: 07:00 CET is 06:00 UTC.
    assert_eq!(
        dnd_active_until(&p, at("2026-10-24T21:00:00Z")),
        Some(at("2026-10-25T06:00:00Z"))
    );
    // An end inside the gap (02:30 does not exist that night) ends at 03:00 CEST.
    let gap = scheduled("01:00", "02:30", "Europe/Berlin");
    assert_eq!(
        dnd_active_until(&gap, at("2026-03-29T00:30:00Z")), // 01:30 CET
        Some(at("2026-03-29T01:00:00Z"))
    );
    // An end that occurs twice: the first one ahead.
    let twice = scheduled("01:00", "02:30", "Europe/Berlin");
    assert_eq!(
        dnd_active_until(&twice, at("2026-10-24T23:30:00Z")), // 01:30 CEST
        Some(at("2026-10-25T00:30:00Z"))
    );
    assert_eq!(
        dnd_active_until(&twice, at("2026-10-25T00:45:00Z")), // 02:45 CEST → 02:45 is past the end
        None
    );
    assert_eq!(
        dnd_active_until(&twice, at("2026-10-25T01:10:00Z")), // 02:10 CET, second pass
        Some(at("2026-10-25T01:30:00Z"))
    );
}

#[test]
fn manual_and_scheduled_dnd_chain() {
    let mut p = scheduled("22:00", "07:00", "");
    // Manual DND until 23:00 runs into the window: on until 07:00.
    p.dnd_until_ms = at("2026-11-28T23:00:00Z");
    assert_eq!(
        dnd_active_until(&p, at("2026-11-28T20:00:00Z")),
        Some(at("2026-11-29T07:00:00Z"))
    );
    // The window runs into manual DND until 09:00.
    p.dnd_until_ms = at("2026-11-29T09:00:00Z");
    assert_eq!(
        dnd_active_until(&p, at("2026-11-29T01:00:00Z")),
        Some(at("2026-11-29T09:00:00Z"))
    );
    // Unknown zone: UTC.
    let mut q = scheduled("22:00", "07:00", "");
    q.time_zone = "Nowhere/Else".into();
    assert_eq!(
        dnd_active_until(&q, at("2026-11-28T23:00:00Z")),
        Some(at("2026-11-29T07:00:00Z"))
    );
}
