//! Given events, expect audit rows: one per audited action, none for the
//! rest, and the fold's purity (a refold yields the same checksum).

use super::*;
use crate::testkit::*;
use switchboard_core::events::{self, ChannelKind, TokenKind};
use switchboard_streams::LogEvent;

fn all(m: &Model<Audit>) -> Vec<AuditEntry> {
    page(m.conn(), WS, &AuditFilter::default(), MAX_PAGE).expect("page")
}

fn actions(m: &Model<Audit>) -> Vec<String> {
    let mut a: Vec<String> = all(m).into_iter().map(|e| e.action).collect();
    a.reverse();
    a
}

fn with_request(mut ev: LogEvent, id: &str) -> LogEvent {
    if let Some(env) = ev.envelope.as_mut() {
        env.request_id = id.to_string();
    }
    ev
}

fn private_channel(name: &str, members: &[&str]) -> Body {
    Body::ChannelCreated(events::ChannelCreated {
        name: name.into(),
        private: true,
        topic: String::new(),
        kind: ChannelKind::Channel as i32,
        member_ids: members.iter().map(|m| m.to_string()).collect(),
    })
}

/// The administration events of a workspace's life.
fn admin_events(f: &mut Feed) -> Vec<LogEvent> {
    vec![
        f.ws("", "", workspace_created("acme")),
        f.ws("", "", user_added("admin", "ann", "h1")),
        with_request(f.ws("", "admin", user_added("bob", "bob", "h2")), "req-1"),
        f.ws(
            "",
            "admin",
            Body::UserRoleSet(events::UserRoleSet {
                user_id: "bob".into(),
                role: events::Role::Admin as i32,
            }),
        ),
        f.ws(
            "",
            "bob",
            Body::TokenIssued(events::TokenIssued {
                token_id: "T1".into(),
                user_id: "bob".into(),
                name: "laptop".into(),
                expires_at_ms: 0,
                kind: TokenKind::Api as i32,
                ..Default::default()
            }),
        ),
        f.ws(
            "",
            "admin",
            Body::TokenRevoked(events::TokenRevoked {
                token_id: "T1".into(),
                user_id: "bob".into(),
            }),
        ),
        f.ws(
            "",
            "bob",
            Body::SessionsRevoked(events::SessionsRevoked {
                user_id: "bob".into(),
            }),
        ),
        f.ws(
            "",
            "admin",
            Body::PasswordSet(events::PasswordSet {
                user_id: "bob".into(),
            }),
        ),
        f.ws(
            "",
            "admin",
            Body::UserDeactivated(events::UserDeactivated {
                user_id: "bob".into(),
            }),
        ),
        f.ws(
            "",
            "admin",
            Body::UserReactivated(events::UserReactivated {
                user_id: "bob".into(),
            }),
        ),
        f.ws(
            "",
            "admin",
            Body::PushConfigured(events::PushConfigured {
                url: "https://push.example/h".into(),
            }),
        ),
    ]
}

#[test]
fn every_administration_action_is_one_entry_with_actor_target_and_request() {
    let (mut m, mut f) = (Model::<Audit>::new(), Feed::new());
    m.apply(&admin_events(&mut f));
    assert_eq!(
        actions(&m),
        [
            "workspace_created",
            "user_added",
            "user_added",
            "user_role_set",
            "token_issued",
            "token_revoked",
            "sessions_revoked",
            "password_set",
            "user_deactivated",
            "user_reactivated",
            "push_configured",
        ]
    );
    let entries = all(&m);
    // Newest first.
    assert!(entries.windows(2).all(|w| w[0].seq > w[1].seq));
    let added = entries
        .iter()
        .find(|e| e.action == "user_added" && e.target_user_id == "bob")
        .expect("bob added");
    assert_eq!(added.actor_id, "admin");
    assert_eq!(added.request_id, "req-1");
    assert_eq!(added.ts_ms, 3_000);
    let role = entries
        .iter()
        .find(|e| e.action == "user_role_set")
        .expect("role");
    assert!(
        role.detail.contains("\"role\":\"admin\""),
        "{}",
        role.detail
    );
    let token = entries
        .iter()
        .find(|e| e.action == "token_issued")
        .expect("token");
    assert!(token.detail.contains("\"token_id\":\"T1\""));
    // No secret, not even its hash, reaches the audit log.
    assert!(entries.iter().all(|e| !e.detail.contains("h3")));
}

#[test]
fn private_channel_membership_is_audited_public_is_not() {
    let (mut m, mut f) = (Model::<Audit>::new(), Feed::new());
    m.apply(&[
        f.ws(
            "PUB",
            "ann",
            channel_created("general", ChannelKind::Channel, &["ann"]),
        ),
        f.ws("SEC", "ann", private_channel("secret", &["ann"])),
        f.ws(
            "DM",
            "ann",
            channel_created("", ChannelKind::Direct, &["ann", "bob"]),
        ),
        f.ch("PUB", "bob", joined("bob")),
        f.ch("PUB", "bob", left("bob")),
        f.ch("PUB", "ann", invited("cid")),
        f.ch("PUB", "ann", removed("cid")),
        f.ch("SEC", "ann", invited("bob")),
        f.ch("SEC", "ann", removed("bob")),
        f.ch("SEC", "ann", invited("cid")),
        f.ch("SEC", "cid", left("cid")),
        f.ch("SEC", "ann", archived()),
        f.ch("DM", "ann", archived()),
    ]);
    assert_eq!(
        actions(&m),
        [
            "channel_created",
            "channel_created",
            "member_invited",
            "member_removed",
            "member_invited",
            "member_left",
            "channel_archived",
        ]
    );
    let entries = all(&m);
    let removed = entries
        .iter()
        .find(|e| e.action == "member_removed")
        .expect("removed");
    assert_eq!(
        (
            removed.actor_id.as_str(),
            removed.target_user_id.as_str(),
            removed.channel_id.as_str()
        ),
        ("ann", "bob", "SEC")
    );
    let created: Vec<_> = entries
        .iter()
        .filter(|e| e.action == "channel_created")
        .map(|e| (e.channel_id.clone(), e.detail.contains("\"private\":true")))
        .collect();
    assert_eq!(
        created,
        [("SEC".to_string(), true), ("PUB".to_string(), false)]
    );
}

#[test]
fn only_deletes_by_someone_else_are_audited() {
    let (mut m, mut f) = (Model::<Audit>::new(), Feed::new());
    m.apply(&[
        f.ws(
            "C1",
            "ann",
            channel_created("general", ChannelKind::Channel, &["ann"]),
        ),
        f.ch("C1", "bob", posted("M1", "mine")),
        f.ch("C1", "bob", posted("M2", "moderated")),
        f.ch("C1", "bob", deleted("M1")),
        f.ch("C1", "admin", deleted("M2")),
        f.ch("C1", "admin", deleted("M9")),
    ]);
    let entries = all(&m);
    let deletes: Vec<_> = entries
        .iter()
        .filter(|e| e.action == "message_deleted_by_other")
        .collect();
    assert_eq!(deletes.len(), 1);
    let d = deletes[0];
    assert_eq!(
        (
            d.actor_id.as_str(),
            d.target_user_id.as_str(),
            d.message_id.as_str(),
            d.channel_id.as_str()
        ),
        ("admin", "bob", "M2", "C1")
    );
    // A deleted message's author row is gone (nothing to delete twice).
    assert_eq!(m.int("SELECT COUNT(*) FROM audit_authors", []), 0);
}

#[test]
fn events_on_the_wrong_subject_are_not_audited() {
    let (mut m, mut f) = (Model::<Audit>::new(), Feed::new());
    m.apply(&[
        f.user(
            "mallory",
            Body::UserRoleSet(events::UserRoleSet {
                user_id: "mallory".into(),
                role: events::Role::Admin as i32,
            }),
        ),
        f.ch("C1", "mallory", user_added("eve", "eve", "h")),
    ]);
    assert!(all(&m).is_empty());
}

#[test]
fn exports_are_audited_with_their_window_and_chain_head() {
    let (mut m, mut f) = (Model::<Audit>::new(), Feed::new());
    let export = Body::ExportMade(events::ExportMade {
        export_id: "X1".into(),
        channel_id: "C1".into(),
        since_ms: 5,
        until_ms: 0,
        first_stream_seq: 1,
        last_stream_seq: 9,
        lines: 7,
        chain_head: "ab12".into(),
    });
    m.apply(&[
        f.ws("", "admin", export.clone()),
        // On a channel's subject it is no workspace decision: ignored.
        f.ch("C1", "mallory", export),
    ]);
    let got = all(&m);
    assert_eq!(got.len(), 1, "{got:?}");
    let e = &got[0];
    assert_eq!(
        (e.action.as_str(), e.actor_id.as_str()),
        ("export_made", "admin")
    );
    assert_eq!(e.channel_id, "C1");
    let detail: serde_json::Value = serde_json::from_str(&e.detail).expect("json");
    assert_eq!(detail["chain_head"], "ab12");
    assert_eq!(detail["lines"], 7);
}

#[test]
fn filters_and_pages() {
    let (mut m, mut f) = (Model::<Audit>::new(), Feed::new());
    m.apply(&admin_events(&mut f));
    let by_admin = page(
        m.conn(),
        WS,
        &AuditFilter {
            actor_id: Some("admin".into()),
            ..Default::default()
        },
        MAX_PAGE,
    )
    .expect("page");
    assert_eq!(by_admin.len(), 7);
    assert!(by_admin.iter().all(|e| e.actor_id == "admin"));
    let tokens = page(
        m.conn(),
        WS,
        &AuditFilter {
            action: Some("token_issued".into()),
            ..Default::default()
        },
        MAX_PAGE,
    )
    .expect("page");
    assert_eq!(tokens.len(), 1);
    // ts_ms is 1000 × stream seq in the feed: seqs 3..=5.
    let window = page(
        m.conn(),
        WS,
        &AuditFilter {
            since_ms: Some(3_000),
            until_ms: Some(5_000),
            ..Default::default()
        },
        MAX_PAGE,
    )
    .expect("page");
    assert_eq!(window.iter().map(|e| e.seq).collect::<Vec<_>>(), [5, 4, 3]);
    // Pages of 4, newest first, without repeats or gaps.
    let mut seen = Vec::new();
    let mut before = None;
    for _ in 0..10 {
        let p = page(
            m.conn(),
            WS,
            &AuditFilter {
                before_seq: before,
                ..Default::default()
            },
            4,
        )
        .expect("page");
        if p.is_empty() {
            break;
        }
        before = p.last().map(|e| e.seq);
        seen.extend(p.into_iter().map(|e| e.seq));
    }
    assert_eq!(seen, (1..=11).rev().collect::<Vec<_>>());
    // Another workspace's log is not this one's.
    assert!(page(m.conn(), "W2", &AuditFilter::default(), MAX_PAGE)
        .expect("page")
        .is_empty());
}

#[test]
fn a_refold_yields_the_same_rows() {
    let mut f = Feed::new();
    let mut events = admin_events(&mut f);
    events.push(f.ws("SEC", "admin", private_channel("secret", &["admin"])));
    events.push(f.ch("SEC", "admin", invited("bob")));
    events.push(f.ch("SEC", "bob", posted("M1", "x")));
    events.push(f.ch("SEC", "admin", deleted("M1")));
    let mut one = Model::<Audit>::new();
    one.apply(&events);
    let mut two = Model::<Audit>::new();
    for ev in &events {
        two.apply(std::slice::from_ref(ev));
    }
    assert_eq!(one.checksum(), two.checksum());
    assert_eq!(one.checkpoint(), events.len() as u64);
}

#[test]
fn a_filtered_page_walks_the_index_that_fits() {
    // Review finding: `(?n IS NULL OR col = ?n)` kept SQLite off the
    // actor and action indexes, so a rare filter scanned the workspace.
    let m = Model::<Audit>::new();
    let plan = |sql: &str, args: &[&str]| -> String {
        let mut stmt = m
            .conn()
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("plan");
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                r.get::<_, String>(3)
            })
            .expect("query");
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .expect("rows")
            .join("; ")
    };
    let by_actor = plan(
        "SELECT seq FROM audit WHERE workspace_id = ? AND actor_id = ? ORDER BY seq DESC LIMIT 5",
        &["W", "ann"],
    );
    assert!(by_actor.contains("audit_by_actor"), "{by_actor}");
    let by_action = plan(
        "SELECT seq FROM audit WHERE workspace_id = ? AND action = ? ORDER BY seq DESC LIMIT 5",
        &["W", "user_added"],
    );
    assert!(by_action.contains("audit_by_action"), "{by_action}");
    // And the statements `page` builds answer as before.
    let (mut m, mut f) = (Model::<Audit>::new(), Feed::new());
    m.apply(&admin_events(&mut f));
    let filter = AuditFilter {
        actor_id: Some("admin".into()),
        action: Some("user_role_set".into()),
        ..Default::default()
    };
    let got = page(m.conn(), WS, &filter, MAX_PAGE).expect("page");
    assert!(!got.is_empty());
    assert!(got
        .iter()
        .all(|e| e.actor_id == "admin" && e.action == "user_role_set"));
}

fn hold(id: &str, scope: events::HoldScope, target: &str) -> Body {
    Body::LegalHoldPlaced(events::LegalHoldPlaced {
        hold_id: id.into(),
        scope: scope as i32,
        target_id: target.into(),
        reason: "litigation 42".into(),
    })
}

fn lifted(id: &str) -> Body {
    Body::LegalHoldLifted(events::LegalHoldLifted { hold_id: id.into() })
}

#[test]
fn retention_holds_and_erasures_are_audited_with_their_targets() {
    let (mut m, mut f) = (Model::<Audit>::new(), Feed::new());
    m.apply(&[
        with_request(
            f.ws(
                "",
                "admin",
                Body::RetentionSet(events::RetentionSet {
                    channel_id: String::new(),
                    days: 30,
                    max_age_secs: 0,
                }),
            ),
            "req-r",
        ),
        f.ws(
            "",
            "admin",
            Body::RetentionSet(events::RetentionSet {
                channel_id: "C1".into(),
                days: 90,
                max_age_secs: 0,
            }),
        ),
        f.ws("", "admin", hold("H1", events::HoldScope::User, "carol")),
        f.ws("", "admin", hold("H2", events::HoldScope::Channel, "C1")),
        f.ws("", "admin", hold("H3", events::HoldScope::Workspace, "")),
        f.ch("C1", "", content_erased(5_000, &[], &["carol"], 7)),
        f.ch(
            "C1",
            "admin",
            Body::ContentErased(events::ContentErased {
                reason: events::ErasureReason::UserRequest as i32,
                policy: "erasure of user bob".into(),
                before_ts_ms: 9_000,
                author_ids: vec!["bob".into()],
                except_author_ids: Vec::new(),
                through_channel_seq: 9,
                key_refs: vec!["k1".into(), "k2".into()],
            }),
        ),
        f.ws("", "admin", lifted("H1")),
        f.ws("", "admin", lifted("H2")),
        f.ws("", "admin", lifted("H9")),
    ]);
    assert_eq!(
        actions(&m),
        [
            "retention_set",
            "retention_set",
            "legal_hold_placed",
            "legal_hold_placed",
            "legal_hold_placed",
            "content_erased",
            "content_erased",
            "legal_hold_lifted",
            "legal_hold_lifted",
            "legal_hold_lifted",
        ]
    );
    let mut e = all(&m);
    e.reverse();
    let t = |i: usize| {
        (
            e[i].actor_id.as_str(),
            e[i].target_user_id.as_str(),
            e[i].channel_id.as_str(),
        )
    };
    let detail = |i: usize| -> serde_json::Value {
        serde_json::from_str(&e[i].detail).expect("a JSON detail")
    };
    assert_eq!(t(0), ("admin", "", ""));
    assert_eq!(e[0].request_id, "req-r");
    assert_eq!(
        detail(0),
        json!({"scope": "workspace", "days": 30, "max_age_secs": 0})
    );
    assert_eq!(t(1), ("admin", "", "C1"));
    assert_eq!(
        detail(1),
        json!({"scope": "channel", "days": 90, "max_age_secs": 0})
    );
    assert_eq!(t(2), ("admin", "carol", ""));
    assert_eq!(
        detail(2),
        json!({"hold_id": "H1", "scope": "user", "target_id": "carol",
               "reason": "litigation 42"})
    );
    assert_eq!(t(3), ("admin", "", "C1"));
    assert_eq!(t(4), ("admin", "", ""));
    assert_eq!(detail(4)["scope"], "workspace");
    // The retention erasure (no actor), then a user's erasure.
    assert_eq!(t(5), ("", "", "C1"));
    assert_eq!(
        detail(5),
        json!({"reason": "retention", "policy": "channel retention 1 days",
               "before_ts_ms": 5_000, "through_channel_seq": 7, "author_ids": [],
               "except_author_ids": ["carol"], "keys_destroyed": 0})
    );
    assert_eq!(t(6), ("admin", "bob", "C1"));
    assert_eq!(detail(6)["reason"], "user_request");
    assert_eq!(detail(6)["keys_destroyed"], 2);
    // A lift names what its hold held.
    assert_eq!(t(7), ("admin", "carol", ""));
    assert_eq!(
        detail(7),
        json!({"hold_id": "H1", "scope": "user", "target_id": "carol"})
    );
    assert_eq!(t(8), ("admin", "", "C1"));
    assert_eq!(detail(9)["scope"], "unknown");
    for action in [
        "retention_set",
        "legal_hold_placed",
        "legal_hold_lifted",
        "content_erased",
    ] {
        assert!(ACTIONS.contains(&action), "{action}");
    }
}

#[test]
fn holds_and_erasures_on_the_wrong_subject_are_not_audited() {
    let (mut m, mut f) = (Model::<Audit>::new(), Feed::new());
    m.apply(&[
        f.ch("C1", "admin", hold("H1", events::HoldScope::User, "carol")),
        f.user("admin", lifted("H1")),
        f.ws("", "admin", content_erased(5_000, &[], &[], 7)),
        f.ch(
            "C1",
            "admin",
            Body::RetentionSet(events::RetentionSet {
                channel_id: "C1".into(),
                days: 1,
                max_age_secs: 0,
            }),
        ),
    ]);
    assert_eq!(actions(&m), Vec::<String>::new());
}
