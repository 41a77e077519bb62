//! The audit read model: one row per security-relevant event of a
//! workspace, with who did it (`actor_id`, empty for the operator or a
//! sign-in), to whom or what (`target_user_id`, `channel_id`,
//! `message_id`), when (`ts_ms`, the event's server time), a small JSON
//! `detail`, and the `request_id` of the HTTP request that caused it
//! (`Envelope.request_id`, empty where no request did).
//!
//! What is audited (each a value of `action`):
//! - workspace and user administration: `workspace_created`, `user_added`,
//!   `user_deactivated`, `user_reactivated`, `user_role_set`,
//!   `password_set`;
//! - credentials: `token_issued` (API tokens and sign-in sessions),
//!   `token_revoked`, `sessions_revoked`;
//! - `push_configured`: where the workspace's notifications (message text
//!   included) are sent is a place data leaves the platform;
//! - channels: `channel_created` (with `private` in the detail: privacy is
//!   fixed at creation, there is no later privacy change event) and
//!   `channel_archived`, direct-message channels excepted;
//! - membership of private channels: `member_joined`, `member_left`,
//!   `member_invited`, `member_removed` (public channels' membership is
//!   not security-relevant: anyone may join);
//! - `message_deleted_by_other`: a delete whose actor is not the author
//!   (a workspace admin's moderation).
//!
//! Not audited: posts, edits, reactions, pins, read markers, preferences.
//! - `export_made`: an export of the workspace's events (the command line's
//!   has no actor), with its window, positions and chain head.
//!
//! - retention, legal holds and erasures: `retention_set` (channel, or
//!   none for the workspace's default; `days` and `scope` in the detail),
//!   `legal_hold_placed` (the held user in `target_user_id`, the held
//!   channel in `channel_id`; `hold_id`, `scope`, `target_id` and `reason`
//!   in the detail), `legal_hold_lifted` (the same target as the hold's,
//!   read from a helper table; `hold_id` in the detail) and
//!   `content_erased` (the channel; the user when the erasure names one
//!   author; `reason`, `policy`, `before_ts_ms`, `through_channel_seq`,
//!   `author_ids`, `except_author_ids` and the number of keys destroyed).
//!
//! Invariants: the fold is pure (rows depend on the events only); one row
//! per audited event, keyed by its stream sequence, so a page ordered by
//! `seq` is the log's order; an event on the wrong subject for its kind is
//! ignored (a forged workspace event on a user subject is not an admin
//! action). Two helper tables, part of the model and of its checksum, hold
//! what the fold needs to decide: each channel's privacy and each live
//! message's author.

use crate::runner::Projector;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde_json::json;
use switchboard_core::events::{Body, ChannelKind, Envelope, Role, TokenKind};
use switchboard_streams::subjects;

pub struct Audit;

/// Most entries one page carries.
pub const MAX_PAGE: u32 = 500;

/// Every value `action` can take, for validating a filter.
pub const ACTIONS: &[&str] = &[
    "workspace_created",
    "user_added",
    "user_deactivated",
    "user_reactivated",
    "user_role_set",
    "password_set",
    "token_issued",
    "token_revoked",
    "sessions_revoked",
    "push_configured",
    "channel_created",
    "channel_archived",
    "member_joined",
    "member_left",
    "member_invited",
    "member_removed",
    "message_deleted_by_other",
    "export_made",
    "retention_set",
    "legal_hold_placed",
    "legal_hold_lifted",
    "content_erased",
];

impl Projector for Audit {
    const NAME: &'static str = "audit";
    const TABLES: &'static [(&'static str, &'static str)] = &[
        ("audit", "seq"),
        ("audit_channels", "workspace_id, channel_id"),
        ("audit_authors", "workspace_id, message_id"),
        ("audit_holds", "workspace_id, hold_id"),
    ];

    fn migrate(conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS audit (
                 seq INTEGER PRIMARY KEY,
                 workspace_id TEXT NOT NULL,
                 ts_ms INTEGER NOT NULL,
                 actor_id TEXT NOT NULL,
                 action TEXT NOT NULL,
                 target_user_id TEXT NOT NULL,
                 channel_id TEXT NOT NULL,
                 message_id TEXT NOT NULL,
                 detail TEXT NOT NULL,
                 request_id TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS audit_by_ws ON audit (workspace_id, seq);
             CREATE INDEX IF NOT EXISTS audit_by_actor ON audit (workspace_id, actor_id, seq);
             CREATE INDEX IF NOT EXISTS audit_by_action ON audit (workspace_id, action, seq);
             CREATE TABLE IF NOT EXISTS audit_channels (
                 workspace_id TEXT NOT NULL,
                 channel_id TEXT NOT NULL,
                 private INTEGER NOT NULL,
                 direct INTEGER NOT NULL,
                 PRIMARY KEY (workspace_id, channel_id)
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS audit_authors (
                 workspace_id TEXT NOT NULL,
                 message_id TEXT NOT NULL,
                 author_id TEXT NOT NULL,
                 PRIMARY KEY (workspace_id, message_id)
             ) WITHOUT ROWID;
             -- Each legal hold's scope and target, for the entry of its lift.
             CREATE TABLE IF NOT EXISTS audit_holds (
                 workspace_id TEXT NOT NULL,
                 hold_id TEXT NOT NULL,
                 scope TEXT NOT NULL,
                 target_id TEXT NOT NULL,
                 PRIMARY KEY (workspace_id, hold_id)
             ) WITHOUT ROWID;",
        )
    }

    fn apply(
        tx: &Transaction<'_>,
        stream_seq: u64,
        subject: &str,
        env: &Envelope,
    ) -> rusqlite::Result<()> {
        let Some(body) = &env.body else {
            return Ok(());
        };
        let ws = env.workspace_id.as_str();
        let on_ws = subject == subjects::workspace(ws);
        let on_channel =
            !env.channel_id.is_empty() && subject == subjects::channel(ws, &env.channel_id);
        if let Some(entry) = audit_of(tx, body, env, on_ws, on_channel)? {
            tx.prepare_cached(
                "INSERT INTO audit (seq, workspace_id, ts_ms, actor_id, action, target_user_id,
                                    channel_id, message_id, detail, request_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                stream_seq as i64,
                ws,
                env.ts_ms,
                env.actor_id,
                entry.action,
                entry.target_user_id,
                entry.channel_id,
                entry.message_id,
                entry.detail.to_string(),
                env.request_id,
            ])?;
        }
        // The helper tables, after the entry (a delete needs the author
        // the post recorded).
        match body {
            Body::ChannelCreated(c) if on_ws && !env.channel_id.is_empty() => {
                let direct = c.kind == ChannelKind::Direct as i32;
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO audit_channels (workspace_id, channel_id, private, direct)
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![ws, env.channel_id, c.private || direct, direct])?;
            }
            Body::MessagePosted(p) if on_channel => {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO audit_authors (workspace_id, message_id, author_id)
                     VALUES (?1, ?2, ?3)",
                )?
                .execute(params![ws, p.message_id, env.actor_id])?;
            }
            Body::MessageDeleted(d) if on_channel => {
                tx.prepare_cached(
                    "DELETE FROM audit_authors WHERE workspace_id = ?1 AND message_id = ?2",
                )?
                .execute(params![ws, d.message_id])?;
            }
            Body::LegalHoldPlaced(h) if on_ws => {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO audit_holds (workspace_id, hold_id, scope, target_id)
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    ws,
                    h.hold_id,
                    hold_scope(h.scope),
                    h.target_id
                ])?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// One audit row's own fields (the envelope gives the rest).
struct Entry {
    action: &'static str,
    target_user_id: String,
    channel_id: String,
    message_id: String,
    detail: serde_json::Value,
}

impl Entry {
    fn user(action: &'static str, user: &str, detail: serde_json::Value) -> Entry {
        Entry {
            action,
            target_user_id: user.to_string(),
            channel_id: String::new(),
            message_id: String::new(),
            detail,
        }
    }

    fn channel(action: &'static str, channel: &str, user: &str) -> Entry {
        Entry {
            action,
            target_user_id: user.to_string(),
            channel_id: channel.to_string(),
            message_id: String::new(),
            detail: json!({}),
        }
    }
}

/// A legal hold's scope as the audit names it.
fn hold_scope(scope: i32) -> &'static str {
    use switchboard_core::events::HoldScope;
    match HoldScope::try_from(scope) {
        Ok(HoldScope::Workspace) => "workspace",
        Ok(HoldScope::Channel) => "channel",
        Ok(HoldScope::User) => "user",
        _ => "unknown",
    }
}

/// A hold's entry: a user hold targets the user, a channel hold the
/// channel, a workspace hold neither.
fn hold_entry(action: &'static str, scope: &str, target: &str, detail: serde_json::Value) -> Entry {
    let (user, channel) = match scope {
        "user" => (target, ""),
        "channel" => ("", target),
        _ => ("", ""),
    };
    Entry {
        action,
        target_user_id: user.to_string(),
        channel_id: channel.to_string(),
        message_id: String::new(),
        detail,
    }
}

/// A role's name; a role this build does not know is recorded as
/// `unknown`, not as another role (review finding: evidence must not lie).
fn role_name(role: i32) -> &'static str {
    Role::try_from(role).map_or("unknown", |r| r.as_str())
}

fn is_private(tx: &Transaction<'_>, ws: &str, channel: &str) -> rusqlite::Result<bool> {
    Ok(tx
        .prepare_cached(
            "SELECT private FROM audit_channels WHERE workspace_id = ?1 AND channel_id = ?2",
        )?
        .query_row(params![ws, channel], |r| r.get::<_, bool>(0))
        .optional()?
        .unwrap_or(false))
}

/// The audit entry `body` makes, if it is audited.
fn audit_of(
    tx: &Transaction<'_>,
    body: &Body,
    env: &Envelope,
    on_ws: bool,
    on_channel: bool,
) -> rusqlite::Result<Option<Entry>> {
    let ws = env.workspace_id.as_str();
    let entry = match body {
        // ----- workspace and user administration (workspace subject) -----
        Body::WorkspaceCreated(w) if on_ws => {
            Entry::user("workspace_created", "", json!({"name": w.name}))
        }
        Body::UserAdded(u) if on_ws => Entry::user(
            "user_added",
            &u.user_id,
            json!({"handle": u.handle, "role": role_name(u.role)}),
        ),
        Body::UserDeactivated(u) if on_ws => Entry::user("user_deactivated", &u.user_id, json!({})),
        Body::UserReactivated(u) if on_ws => Entry::user("user_reactivated", &u.user_id, json!({})),
        Body::UserRoleSet(u) if on_ws => Entry::user(
            "user_role_set",
            &u.user_id,
            json!({"role": role_name(u.role)}),
        ),
        Body::PasswordSet(u) if on_ws => Entry::user("password_set", &u.user_id, json!({})),
        Body::TokenIssued(t) if on_ws => {
            let kind = if t.kind == TokenKind::Session as i32 {
                "session"
            } else {
                "api"
            };
            Entry::user(
                "token_issued",
                &t.user_id,
                json!({"token_id": t.token_id, "kind": kind, "name": t.name,
                       "expires_at_ms": t.expires_at_ms}),
            )
        }
        Body::TokenRevoked(t) if on_ws => {
            Entry::user("token_revoked", &t.user_id, json!({"token_id": t.token_id}))
        }
        Body::SessionsRevoked(s) if on_ws => Entry::user("sessions_revoked", &s.user_id, json!({})),
        Body::PushConfigured(p) if on_ws => Entry::user(
            "push_configured",
            "",
            if p.url.is_empty() {
                json!({"removed": true})
            } else {
                json!({"url": p.url})
            },
        ),
        // ----- channels -----
        Body::ChannelCreated(c) if on_ws && c.kind != ChannelKind::Direct as i32 => Entry {
            action: "channel_created",
            target_user_id: String::new(),
            channel_id: env.channel_id.clone(),
            message_id: String::new(),
            detail: json!({"name": c.name, "private": c.private}),
        },
        Body::ChannelArchived(_)
            if on_channel && channel_kind(tx, ws, &env.channel_id)? == Some(false) =>
        {
            Entry::channel("channel_archived", &env.channel_id, "")
        }
        // ----- membership of private channels -----
        Body::MemberJoined(m) if on_channel && is_private(tx, ws, &env.channel_id)? => {
            Entry::channel("member_joined", &env.channel_id, &m.user_id)
        }
        Body::MemberLeft(m) if on_channel && is_private(tx, ws, &env.channel_id)? => {
            Entry::channel("member_left", &env.channel_id, &m.user_id)
        }
        Body::MemberInvited(m) if on_channel && is_private(tx, ws, &env.channel_id)? => {
            Entry::channel("member_invited", &env.channel_id, &m.user_id)
        }
        Body::MemberRemoved(m) if on_channel && is_private(tx, ws, &env.channel_id)? => {
            Entry::channel("member_removed", &env.channel_id, &m.user_id)
        }
        // ----- moderation -----
        Body::MessageDeleted(d) if on_channel => {
            let author: Option<String> = tx
                .prepare_cached(
                    "SELECT author_id FROM audit_authors WHERE workspace_id = ?1 AND message_id = ?2",
                )?
                .query_row(params![ws, d.message_id], |r| r.get(0))
                .optional()?;
            match author {
                Some(author) if author != env.actor_id => Entry {
                    action: "message_deleted_by_other",
                    target_user_id: author.clone(),
                    channel_id: env.channel_id.clone(),
                    message_id: d.message_id.clone(),
                    detail: json!({"author_id": author}),
                },
                _ => return Ok(None),
            }
        }
        // ----- the log as a product -----
        Body::ExportMade(x) if on_ws => Entry {
            action: "export_made",
            target_user_id: String::new(),
            channel_id: x.channel_id.clone(),
            message_id: String::new(),
            detail: json!({
                "export_id": x.export_id,
                "since_ms": x.since_ms,
                "until_ms": x.until_ms,
                "first_stream_seq": x.first_stream_seq,
                "last_stream_seq": x.last_stream_seq,
                "lines": x.lines,
                "chain_head": x.chain_head,
            }),
        },
        // ----- retention, legal holds, erasure -----
        Body::RetentionSet(r) if on_ws => Entry {
            action: "retention_set",
            target_user_id: String::new(),
            channel_id: r.channel_id.clone(),
            message_id: String::new(),
            detail: json!({
                "scope": if r.channel_id.is_empty() { "workspace" } else { "channel" },
                "days": r.days,
                "max_age_secs": r.max_age_secs,
            }),
        },
        Body::LegalHoldPlaced(h) if on_ws => {
            let scope = hold_scope(h.scope);
            hold_entry(
                "legal_hold_placed",
                scope,
                &h.target_id,
                json!({"hold_id": h.hold_id, "scope": scope, "target_id": h.target_id,
                       "reason": h.reason}),
            )
        }
        Body::LegalHoldLifted(h) if on_ws => {
            let held: Option<(String, String)> = tx
                .prepare_cached(
                    "SELECT scope, target_id FROM audit_holds WHERE workspace_id = ?1 AND hold_id = ?2",
                )?
                .query_row(params![ws, h.hold_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let (scope, target) = held.unwrap_or_else(|| ("unknown".into(), String::new()));
            hold_entry(
                "legal_hold_lifted",
                &scope,
                &target,
                json!({"hold_id": h.hold_id, "scope": scope, "target_id": target}),
            )
        }
        Body::ContentErased(e) if on_channel => Entry {
            action: "content_erased",
            target_user_id: match e.author_ids.as_slice() {
                [one] => one.clone(),
                _ => String::new(),
            },
            channel_id: env.channel_id.clone(),
            message_id: String::new(),
            detail: json!({
                "reason": crate::history::erasure_reason(e.reason),
                "policy": e.policy,
                "before_ts_ms": e.before_ts_ms,
                "through_channel_seq": e.through_channel_seq,
                "author_ids": e.author_ids,
                "except_author_ids": e.except_author_ids,
                "keys_destroyed": e.key_refs.len(),
            }),
        },
        _ => return Ok(None),
    };
    Ok(Some(entry))
}

/// Whether a known channel is a direct-message one (`None`: unknown).
fn channel_kind(tx: &Transaction<'_>, ws: &str, channel: &str) -> rusqlite::Result<Option<bool>> {
    tx.prepare_cached(
        "SELECT direct FROM audit_channels WHERE workspace_id = ?1 AND channel_id = ?2",
    )?
    .query_row(params![ws, channel], |r| r.get::<_, bool>(0))
    .optional()
}

/// One audit entry as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// The event's stream sequence (the entry's order and cursor).
    pub seq: u64,
    pub ts_ms: i64,
    pub actor_id: String,
    pub action: String,
    pub target_user_id: String,
    pub channel_id: String,
    pub message_id: String,
    /// A JSON object (text).
    pub detail: String,
    pub request_id: String,
}

/// What a page of the audit log is limited to.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor_id: Option<String>,
    pub action: Option<String>,
    /// Inclusive bounds on `ts_ms`.
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Only entries with a smaller `seq` (the previous page's last).
    pub before_seq: Option<u64>,
}

/// Newest first: at most `limit` entries of workspace `ws` matching
/// `filter`.
pub fn page(
    conn: &Connection,
    ws: &str,
    filter: &AuditFilter,
    limit: u32,
) -> rusqlite::Result<Vec<AuditEntry>> {
    // Only the filters given are in the statement, so SQLite can walk the
    // index that fits (`audit_by_actor`, `audit_by_action`) instead of
    // scanning the workspace's whole log for a rare match (a statement per
    // combination of filters: at most 32, cached).
    let mut sql = String::from(
        "SELECT seq, ts_ms, actor_id, action, target_user_id, channel_id, message_id,
                detail, request_id
         FROM audit
         WHERE workspace_id = ?",
    );
    let mut args: Vec<rusqlite::types::Value> = vec![ws.to_string().into()];
    let mut when = |clause: &str, v: Option<rusqlite::types::Value>| {
        if let Some(v) = v {
            sql.push_str(clause);
            args.push(v);
        }
    };
    when(" AND actor_id = ?", filter.actor_id.clone().map(Into::into));
    when(" AND action = ?", filter.action.clone().map(Into::into));
    when(" AND ts_ms >= ?", filter.since_ms.map(Into::into));
    when(" AND ts_ms <= ?", filter.until_ms.map(Into::into));
    when(
        " AND seq < ?",
        filter
            .before_seq
            .map(|s| (s.min(i64::MAX as u64) as i64).into()),
    );
    sql.push_str(" ORDER BY seq DESC LIMIT ?");
    // One more than a page, for a caller asking whether more follow.
    args.push(i64::from(limit.min(MAX_PAGE + 1)).into());
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| {
        Ok(AuditEntry {
            seq: r.get::<_, i64>(0)? as u64,
            ts_ms: r.get(1)?,
            actor_id: r.get(2)?,
            action: r.get(3)?,
            target_user_id: r.get(4)?,
            channel_id: r.get(5)?,
            message_id: r.get(6)?,
            detail: r.get(7)?,
            request_id: r.get(8)?,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests;
