//! The membership/ACL read model: workspaces, users (with token hashes),
//! channels (with their head `channel_seq`) and channel members. It answers
//! authentication and every authorization question.
//!
//! The write path decides against this model (caught up to the workspace
//! subject's head, appending conditionally on it), so an event that
//! collides with an existing row on a UNIQUE constraint (a taken handle,
//! token or channel name, an existing id) can only come from a bug or a
//! foreign writer. The fold then fails loudly instead of dropping the
//! event: the runner stalls on it and reports it (see `runner`). Exact
//! replays never get here; the checkpoint skips them.

use crate::runner::Projector;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::Serialize;
use switchboard_core::authz::{ChannelFacts, Directory};
use switchboard_core::events::{self, Body, ChannelKind, Envelope, Role, TokenKind};
use switchboard_core::ids::{ChannelId, UserId, WorkspaceId};
use switchboard_streams::subjects;

pub struct Acl;

/// The schema's version (`PRAGMA user_version`). A file written by an
/// older schema is emptied and refolded from the log
/// ([`crate::runner::refold_if_older`]). 1: tokens in their own table
/// (several per user, with expiry and kind), users with `deactivated`.
/// 2: token verifiers from `TokenVerifier` events (sbv.<ws>.tokens), held
/// in `token_verifiers` until the event that makes the token live.
const SCHEMA_VERSION: i64 = 2;

impl Projector for Acl {
    const NAME: &'static str = "acl";
    const TABLES: &'static [(&'static str, &'static str)] = &[
        ("workspaces", "id"),
        ("users", "id"),
        ("channels", "id"),
        ("members", "channel_id, user_id"),
        ("tokens", "id"),
        ("token_verifiers", "token_id"),
        ("retention", "workspace_id, channel_id"),
        ("legal_holds", "id"),
    ];

    fn migrate(conn: &Connection) -> rusqlite::Result<()> {
        crate::runner::refold_if_older(
            conn,
            Self::NAME,
            SCHEMA_VERSION,
            &[
                "TABLE workspaces",
                "TABLE users",
                "TABLE channels",
                "TABLE members",
                "TABLE tokens",
                "TABLE token_verifiers",
            ],
        )?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS workspaces (
                 id TEXT PRIMARY KEY,
                 name TEXT NOT NULL,
                 created_ms INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS users (
                 id TEXT PRIMARY KEY,
                 workspace_id TEXT NOT NULL,
                 handle TEXT NOT NULL,
                 display_name TEXT NOT NULL,
                 role TEXT NOT NULL,
                 deactivated INTEGER NOT NULL DEFAULT 0,
                 created_ms INTEGER NOT NULL,
                 UNIQUE (workspace_id, handle)
             );
             -- Every live bearer token (revoked ones are deleted): only
             -- its SHA-256, as the log has it. expires_ms 0 = never.
             CREATE TABLE IF NOT EXISTS tokens (
                 id TEXT PRIMARY KEY,
                 workspace_id TEXT NOT NULL,
                 user_id TEXT NOT NULL,
                 name TEXT NOT NULL,
                 token_hash TEXT NOT NULL UNIQUE,
                 kind TEXT NOT NULL,
                 created_ms INTEGER NOT NULL,
                 expires_ms INTEGER NOT NULL
             );
             CREATE INDEX IF NOT EXISTS tokens_by_user ON tokens (user_id, id);
             -- Verifiers (TokenVerifier events, off the replayable
             -- subjects) of tokens whose TokenIssued / UserAdded has not
             -- been folded yet; taken out when it is. One no such event
             -- follows (a refused issue) stays, unused.
             CREATE TABLE IF NOT EXISTS token_verifiers (
                 token_id TEXT PRIMARY KEY,
                 workspace_id TEXT NOT NULL,
                 user_id TEXT NOT NULL,
                 token_hash TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS channels (
                 id TEXT PRIMARY KEY,
                 workspace_id TEXT NOT NULL,
                 name TEXT NOT NULL,
                 private INTEGER NOT NULL,
                 direct INTEGER NOT NULL,
                 topic TEXT NOT NULL,
                 creator_id TEXT NOT NULL,
                 archived INTEGER NOT NULL DEFAULT 0,
                 head_seq INTEGER NOT NULL DEFAULT 0,
                 created_ms INTEGER NOT NULL,
                 fence_seq INTEGER NOT NULL DEFAULT 0
             );
             -- Names are unique among a workspace's channels; a DM's name
             -- is not in that namespace. (Files created before this index
             -- also keep a table-wide UNIQUE (workspace_id, name).)
             CREATE UNIQUE INDEX IF NOT EXISTS channels_by_name
                 ON channels (workspace_id, name) WHERE direct = 0;
             -- Pages of a workspace's channels in name order (DMs too).
             CREATE INDEX IF NOT EXISTS channels_by_workspace
                 ON channels (workspace_id, name, id);",
        )?;
        conn.execute_batch(MEMBERS_SCHEMA)?;
        // Retention and holds (events that did not exist before these
        // tables: no refold needed).
        conn.execute_batch(
            "-- channel_id '' = the workspace's default.
             CREATE TABLE IF NOT EXISTS retention (
                 workspace_id TEXT NOT NULL,
                 channel_id TEXT NOT NULL,
                 days INTEGER NOT NULL,
                 max_age_secs INTEGER NOT NULL,
                 set_ms INTEGER NOT NULL,
                 set_by TEXT NOT NULL,
                 PRIMARY KEY (workspace_id, channel_id)
             ) WITHOUT ROWID;
             -- Holds in force (a lifted one is deleted).
             CREATE TABLE IF NOT EXISTS legal_holds (
                 id TEXT PRIMARY KEY,
                 workspace_id TEXT NOT NULL,
                 scope TEXT NOT NULL,
                 target_id TEXT NOT NULL,
                 reason TEXT NOT NULL,
                 placed_ms INTEGER NOT NULL,
                 placed_by TEXT NOT NULL
             ) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS legal_holds_by_workspace
                 ON legal_holds (workspace_id, id);",
        )?;
        // Files from before `fence_seq`: every event they folded carried
        // fence 0, which is the column's default, so a rebuild agrees.
        let has_fence: bool = conn
            .prepare("SELECT EXISTS (SELECT 1 FROM pragma_table_info('channels') WHERE name = 'fence_seq')")?
            .query_row([], |r| r.get(0))?;
        if !has_fence {
            conn.execute_batch(
                "ALTER TABLE channels ADD COLUMN fence_seq INTEGER NOT NULL DEFAULT 0",
            )?;
        }
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
    }

    fn apply(
        tx: &Transaction<'_>,
        _stream_seq: u64,
        subject: &str,
        env: &Envelope,
    ) -> rusqlite::Result<()> {
        let Some(body) = &env.body else { return Ok(()) };
        let ch = env.channel_id.as_str();
        let seq = env.channel_seq as i64;
        if subjects::is_channel(subject) {
            tx.prepare_cached(
                "UPDATE channels SET head_seq = MAX(head_seq, ?2), fence_seq = ?3 WHERE id = ?1",
            )?
            .execute(params![ch, seq, env.fence_seq as i64])?;
        }
        match body {
            Body::WorkspaceCreated(b) => {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO workspaces (id, name, created_ms) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![env.workspace_id, b.name, env.ts_ms])?;
            }
            Body::UserAdded(b) => {
                // No OR IGNORE: a taken id, handle or token is an error
                // (see the module docs).
                tx.prepare_cached(
                    "INSERT INTO users
                         (id, workspace_id, handle, display_name, role, created_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    b.user_id,
                    env.workspace_id,
                    b.handle,
                    b.display_name,
                    b.role().as_str(),
                    env.ts_ms
                ])?;
                // The token a user is created with is its first token:
                // its hash in the event (logs written before verifiers
                // moved out of `sb.>`) or in the verifier before it.
                let token_id = initial_token_id(&b.user_id);
                #[allow(deprecated)] // old events carry it and still verify
                let inline = &b.token_hash;
                if let Some(hash) = verifier(tx, inline, &token_id, &env.workspace_id, &b.user_id)?
                {
                    insert_token(
                        tx,
                        &token_id,
                        &env.workspace_id,
                        &b.user_id,
                        INITIAL_TOKEN_NAME,
                        &hash,
                        TokenKind::Api,
                        env.ts_ms,
                        0,
                    )?;
                }
            }
            Body::TokenVerifier(b) => {
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO token_verifiers
                         (token_id, workspace_id, user_id, token_hash)
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    b.token_id,
                    env.workspace_id,
                    b.user_id,
                    b.token_hash
                ])?;
            }
            Body::TokenIssued(b) => {
                #[allow(deprecated)] // old events carry it and still verify
                let inline = &b.token_hash;
                if let Some(hash) =
                    verifier(tx, inline, &b.token_id, &env.workspace_id, &b.user_id)?
                {
                    insert_token(
                        tx,
                        &b.token_id,
                        &env.workspace_id,
                        &b.user_id,
                        &b.name,
                        &hash,
                        b.kind(),
                        env.ts_ms,
                        b.expires_at_ms,
                    )?;
                }
            }
            Body::TokenRevoked(b) => {
                tx.prepare_cached("DELETE FROM tokens WHERE id = ?1 AND user_id = ?2")?
                    .execute(params![b.token_id, b.user_id])?;
            }
            Body::SessionsRevoked(b) => {
                tx.prepare_cached("DELETE FROM tokens WHERE user_id = ?1 AND kind = ?2")?
                    .execute(params![b.user_id, token_kind(TokenKind::Session)])?;
            }
            Body::UserDeactivated(b) => {
                tx.prepare_cached(
                    "UPDATE users SET deactivated = 1 WHERE id = ?1 AND workspace_id = ?2",
                )?
                .execute(params![b.user_id, env.workspace_id])?;
                tx.prepare_cached("DELETE FROM tokens WHERE user_id = ?1 AND workspace_id = ?2")?
                    .execute(params![b.user_id, env.workspace_id])?;
            }
            Body::UserReactivated(b) => {
                tx.prepare_cached(
                    "UPDATE users SET deactivated = 0 WHERE id = ?1 AND workspace_id = ?2",
                )?
                .execute(params![b.user_id, env.workspace_id])?;
            }
            Body::UserRoleSet(b) => {
                tx.prepare_cached(
                    "UPDATE users SET role = ?3 WHERE id = ?1 AND workspace_id = ?2",
                )?
                .execute(params![
                    b.user_id,
                    env.workspace_id,
                    b.role().as_str()
                ])?;
            }
            Body::ChannelCreated(b) => {
                // No OR IGNORE: a taken id or (non-DM) name is an error.
                tx.prepare_cached(
                    "INSERT INTO channels
                         (id, workspace_id, name, private, direct, topic, creator_id, created_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![
                    ch,
                    env.workspace_id,
                    b.name,
                    b.private,
                    b.kind() == ChannelKind::Direct,
                    b.topic,
                    env.actor_id,
                    env.ts_ms
                ])?;
            }
            Body::ChannelRenamed(b) => {
                // Appended to the workspace subject (where names are
                // decided), for the envelope's channel. No OR IGNORE
                // either: renaming onto a taken name is an error, not a
                // rename that silently did not happen.
                // Void when the channel changed after the rename was
                // decided (its fence moved): the rename was not conditional
                // on the channel's subject, so the fold enforces it.
                tx.prepare_cached(
                    "UPDATE channels SET name = ?2 WHERE id = ?1 AND fence_seq <= ?3",
                )?
                .execute(params![ch, b.name, b.observed_fence_seq as i64])?;
            }
            Body::ChannelTopicSet(b) => {
                tx.prepare_cached("UPDATE channels SET topic = ?2 WHERE id = ?1")?
                    .execute(params![ch, b.topic])?;
            }
            Body::ChannelArchived(_) => {
                tx.prepare_cached("UPDATE channels SET archived = 1 WHERE id = ?1")?
                    .execute([ch])?;
            }
            Body::RetentionSet(b) => {
                if b.days == 0 && b.max_age_secs == 0 {
                    tx.prepare_cached(
                        "DELETE FROM retention WHERE workspace_id = ?1 AND channel_id = ?2",
                    )?
                    .execute(params![env.workspace_id, b.channel_id])?;
                } else {
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO retention
                             (workspace_id, channel_id, days, max_age_secs, set_ms, set_by)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?
                    .execute(params![
                        env.workspace_id,
                        b.channel_id,
                        b.days,
                        b.max_age_secs as i64,
                        env.ts_ms,
                        env.actor_id
                    ])?;
                }
            }
            Body::LegalHoldPlaced(b) => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO legal_holds
                         (id, workspace_id, scope, target_id, reason, placed_ms, placed_by)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?
                .execute(params![
                    b.hold_id,
                    env.workspace_id,
                    hold_scope(b.scope()),
                    b.target_id,
                    b.reason,
                    env.ts_ms,
                    env.actor_id
                ])?;
            }
            Body::LegalHoldLifted(b) => {
                tx.prepare_cached("DELETE FROM legal_holds WHERE id = ?1 AND workspace_id = ?2")?
                    .execute(params![b.hold_id, env.workspace_id])?;
            }
            _ => {}
        }
        fold_membership(tx, ch, seq, body)?;
        Ok(())
    }
}

/// A hold's scope as stored and shown.
pub fn hold_scope(scope: events::HoldScope) -> &'static str {
    match scope {
        events::HoldScope::Workspace => "workspace",
        events::HoldScope::Channel => "channel",
        events::HoldScope::User => "user",
        events::HoldScope::Unspecified => "unspecified",
    }
}

/// A retention policy as stored: `channel_id` empty for the workspace's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionView {
    pub channel_id: String,
    pub days: u32,
    pub max_age_secs: u64,
    pub set_ms: i64,
    pub set_by: String,
}

/// The retention policies of workspace `ws` (its default first).
pub fn retention_of(conn: &Connection, ws: &str) -> rusqlite::Result<Vec<RetentionView>> {
    conn.prepare_cached(
        "SELECT channel_id, days, max_age_secs, set_ms, set_by FROM retention
         WHERE workspace_id = ?1 ORDER BY channel_id",
    )?
    .query_map([ws], |r| {
        Ok(RetentionView {
            channel_id: r.get(0)?,
            days: r.get(1)?,
            max_age_secs: r.get::<_, i64>(2)? as u64,
            set_ms: r.get(3)?,
            set_by: r.get(4)?,
        })
    })?
    .collect()
}

/// Workspaces with any retention policy.
pub fn workspaces_with_retention(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    conn.prepare_cached("SELECT DISTINCT workspace_id FROM retention ORDER BY workspace_id")?
        .query_map([], |r| r.get(0))?
        .collect()
}

/// Every channel of workspace `ws` (DMs included).
pub fn channel_ids_of_workspace(conn: &Connection, ws: &str) -> rusqlite::Result<Vec<String>> {
    conn.prepare_cached("SELECT id FROM channels WHERE workspace_id = ?1 ORDER BY id")?
        .query_map([ws], |r| r.get(0))?
        .collect()
}

/// A legal hold in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HoldView {
    pub id: String,
    pub scope: String,
    /// The channel or user held; empty for the workspace.
    pub target_id: String,
    pub reason: String,
    pub placed_ms: i64,
    pub placed_by: String,
}

/// The holds in force in workspace `ws`.
pub fn holds_of(conn: &Connection, ws: &str) -> rusqlite::Result<Vec<HoldView>> {
    conn.prepare_cached(
        "SELECT id, scope, target_id, reason, placed_ms, placed_by FROM legal_holds
         WHERE workspace_id = ?1 ORDER BY id",
    )?
    .query_map([ws], |r| {
        Ok(HoldView {
            id: r.get(0)?,
            scope: r.get(1)?,
            target_id: r.get(2)?,
            reason: r.get(3)?,
            placed_ms: r.get(4)?,
            placed_by: r.get(5)?,
        })
    })?
    .collect()
}

/// The holds of `ws` as decisions use them.
pub fn holds(
    conn: &Connection,
    ws: &str,
) -> rusqlite::Result<switchboard_core::commands::retention::Holds> {
    let mut h = switchboard_core::commands::retention::Holds::default();
    for v in holds_of(conn, ws)? {
        match v.scope.as_str() {
            "workspace" => h.workspace = true,
            "channel" => {
                h.channels.insert(v.target_id);
            }
            "user" => {
                h.users.insert(v.target_id);
            }
            _ => {}
        }
    }
    Ok(h)
}

/// The name of the token a user is created with.
pub const INITIAL_TOKEN_NAME: &str = "initial";

/// The id of the token a user is created with (`UserAdded` carries its
/// hash but no id): derived from the user id, so a replay agrees.
pub fn initial_token_id(user_id: &str) -> String {
    format!("T{}", user_id.strip_prefix('U').unwrap_or(user_id))
}

/// The verifier of a token being made live: the hash an old event carries
/// inline, else the one its `TokenVerifier` left (taken out of
/// `token_verifiers`); `None` if there is neither (the token is never
/// live).
fn verifier(
    tx: &Transaction<'_>,
    inline: &str,
    token_id: &str,
    ws: &str,
    user: &str,
) -> rusqlite::Result<Option<String>> {
    if !inline.is_empty() {
        return Ok(Some(inline.to_string()));
    }
    let hash: Option<String> = tx
        .prepare_cached(
            "SELECT token_hash FROM token_verifiers
             WHERE token_id = ?1 AND workspace_id = ?2 AND user_id = ?3",
        )?
        .query_row(params![token_id, ws, user], |r| r.get(0))
        .optional()?;
    if hash.is_some() {
        tx.prepare_cached("DELETE FROM token_verifiers WHERE token_id = ?1")?
            .execute(params![token_id])?;
    }
    Ok(hash)
}

fn token_kind(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Session => "session",
        TokenKind::Api | TokenKind::Unspecified => "api",
    }
}

/// No OR IGNORE: a taken token id or hash is an error (see the module
/// docs).
#[allow(clippy::too_many_arguments)] // one per column
fn insert_token(
    tx: &Transaction<'_>,
    id: &str,
    ws: &str,
    user: &str,
    name: &str,
    hash: &str,
    kind: TokenKind,
    created_ms: i64,
    expires_ms: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO tokens
             (id, workspace_id, user_id, name, token_hash, kind, created_ms, expires_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        id,
        ws,
        user,
        name,
        hash,
        token_kind(kind),
        created_ms,
        expires_ms.max(0)
    ])?;
    Ok(())
}

/// The `members` table of a read model that folds membership: one row per
/// current member of a channel, with the channel seq its membership began
/// at (0 for the members a channel was created with). Shared by every
/// model that folds membership itself (ACL, notifications), so they agree.
pub(crate) const MEMBERS_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS members (
         channel_id TEXT NOT NULL,
         user_id TEXT NOT NULL,
         since_seq INTEGER NOT NULL,
         PRIMARY KEY (channel_id, user_id)
     ) WITHOUT ROWID;
     CREATE INDEX IF NOT EXISTS members_by_user ON members (user_id, channel_id);";

/// What [`fold_membership`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MembershipChange<'a> {
    /// The channel was created with its listed members.
    Created,
    /// The user joined or was invited (nothing changes for a current member).
    Added(&'a str),
    /// The user left or was removed.
    Removed(&'a str),
}

/// Folds the membership part of `body`, an event of channel `ch` at
/// channel seq `seq`, into the [`MEMBERS_SCHEMA`] table: a channel's
/// creation members, joins, invites, leaves and removals. `None` for any
/// other event.
pub(crate) fn fold_membership<'a>(
    tx: &Transaction<'_>,
    ch: &str,
    seq: i64,
    body: &'a Body,
) -> rusqlite::Result<Option<MembershipChange<'a>>> {
    Ok(Some(match body {
        Body::ChannelCreated(b) => {
            for user in &b.member_ids {
                // OR IGNORE: a user listed twice is one member.
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO members (channel_id, user_id, since_seq)
                     VALUES (?1, ?2, 0)",
                )?
                .execute(params![ch, user])?;
            }
            MembershipChange::Created
        }
        Body::MemberJoined(events::MemberJoined { user_id })
        | Body::MemberInvited(events::MemberInvited { user_id }) => {
            add_member(tx, ch, user_id, seq)?;
            MembershipChange::Added(user_id)
        }
        Body::MemberLeft(events::MemberLeft { user_id })
        | Body::MemberRemoved(events::MemberRemoved { user_id }) => {
            remove_member(tx, ch, user_id)?;
            MembershipChange::Removed(user_id)
        }
        _ => return Ok(None),
    }))
}

/// Makes `user` a member from `seq` on. OR IGNORE: a join or invite of a
/// current member changes nothing (membership was continuous, so
/// `since_seq` stays where it began); a rejoin after leaving starts anew.
fn add_member(tx: &Transaction<'_>, ch: &str, user: &str, seq: i64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO members (channel_id, user_id, since_seq) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![ch, user, seq])?;
    Ok(())
}

fn remove_member(tx: &Transaction<'_>, ch: &str, user: &str) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM members WHERE channel_id = ?1 AND user_id = ?2")?
        .execute(params![ch, user])?;
    Ok(())
}

// ----- queries -----

#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    pub id: String,
    pub workspace_id: String,
    pub handle: String,
    pub display_name: String,
    pub role: String,
    /// Deactivated by a workspace admin: listed, but refused everywhere.
    pub deactivated: bool,
}

impl UserView {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin.as_str()
    }
}

/// A live token as its owner and admins see it (never the secret or its
/// hash).
#[derive(Debug, Clone, Serialize)]
pub struct TokenView {
    pub id: String,
    pub workspace_id: String,
    pub user_id: String,
    pub name: String,
    /// `api` or `session`.
    pub kind: String,
    pub created_ms: i64,
    /// 0: never expires.
    pub expires_ms: i64,
}

const TOKEN_COLS: &str = "id, workspace_id, user_id, name, kind, created_ms, expires_ms";

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenView> {
    Ok(TokenView {
        id: r.get(0)?,
        workspace_id: r.get(1)?,
        user_id: r.get(2)?,
        name: r.get(3)?,
        kind: r.get(4)?,
        created_ms: r.get(5)?,
        expires_ms: r.get(6)?,
    })
}

/// The token with this hash and its user, if the token is live (not
/// revoked) and its user active. Expiry is the caller's to check (the
/// model has no clock).
pub fn token_by_hash(
    conn: &Connection,
    hash: &str,
) -> rusqlite::Result<Option<(UserView, TokenView)>> {
    conn.prepare_cached(
        "SELECT u.id, u.workspace_id, u.handle, u.display_name, u.role, u.deactivated,
                t.id, t.workspace_id, t.user_id, t.name, t.kind, t.created_ms, t.expires_ms
         FROM tokens t JOIN users u ON u.id = t.user_id
         WHERE t.token_hash = ?1 AND u.deactivated = 0",
    )?
    .query_row([hash], |r| {
        Ok((
            user_row(r)?,
            TokenView {
                id: r.get(6)?,
                workspace_id: r.get(7)?,
                user_id: r.get(8)?,
                name: r.get(9)?,
                kind: r.get(10)?,
                created_ms: r.get(11)?,
                expires_ms: r.get(12)?,
            },
        ))
    })
    .optional()
}

/// The token `id` of workspace `ws`, if live.
pub fn token(conn: &Connection, ws: &str, id: &str) -> rusqlite::Result<Option<TokenView>> {
    conn.prepare_cached(&format!(
        "SELECT {TOKEN_COLS} FROM tokens WHERE id = ?1 AND workspace_id = ?2"
    ))?
    .query_row([id, ws], token_row)
    .optional()
}

/// Whether token `id` is live and its user active (expiry unchecked).
pub fn token_live(conn: &Connection, id: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "SELECT t.expires_ms FROM tokens t JOIN users u ON u.id = t.user_id
         WHERE t.id = ?1 AND u.deactivated = 0",
    )?
    .query_row([id], |r| r.get(0))
    .optional()
}

/// The live tokens of `user` in `ws`, in id (creation) order. A user holds
/// few tokens; at most [`MAX_PAGE`] are listed.
pub fn tokens_of(conn: &Connection, ws: &str, user: &str) -> rusqlite::Result<Vec<TokenView>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TOKEN_COLS} FROM tokens WHERE user_id = ?1 AND workspace_id = ?2
         ORDER BY id LIMIT ?3"
    ))?;
    let rows = stmt.query_map(params![user, ws, i64::from(MAX_PAGE)], token_row)?;
    rows.collect()
}

/// How many active admins `ws` has.
pub fn active_admins(conn: &Connection, ws: &str) -> rusqlite::Result<u64> {
    conn.prepare_cached(
        "SELECT COUNT(*) FROM users WHERE workspace_id = ?1 AND role = 'admin' AND deactivated = 0",
    )?
    .query_row([ws], |r| r.get::<_, i64>(0))
    .map(|n| n.max(0) as u64)
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceView {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChannelView {
    pub id: String,
    pub name: String,
    pub private: bool,
    pub direct: bool,
    pub topic: String,
    pub archived: bool,
    pub creator_id: String,
    pub member_count: i64,
    pub head_seq: i64,
    pub is_member: bool,
}

const USER_COLS: &str = "id, workspace_id, handle, display_name, role, deactivated";

fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserView> {
    Ok(UserView {
        id: r.get(0)?,
        workspace_id: r.get(1)?,
        handle: r.get(2)?,
        display_name: r.get(3)?,
        role: r.get(4)?,
        deactivated: r.get(5)?,
    })
}

pub fn user(conn: &Connection, ws: &str, id: &str) -> rusqlite::Result<Option<UserView>> {
    conn.prepare_cached(&format!(
        "SELECT {USER_COLS} FROM users WHERE id = ?1 AND workspace_id = ?2"
    ))?
    .query_row([id, ws], user_row)
    .optional()
}

pub fn user_by_handle(
    conn: &Connection,
    ws: &str,
    handle: &str,
) -> rusqlite::Result<Option<UserView>> {
    conn.prepare_cached(&format!(
        "SELECT {USER_COLS} FROM users WHERE workspace_id = ?1 AND handle = ?2"
    ))?
    .query_row([ws, handle], user_row)
    .optional()
}

/// Most rows one page of a list read may carry; callers clamp to it, so a
/// read costs the same however large the workspace or channel is.
pub const MAX_PAGE: u32 = 1000;

/// One page of a list read in key order, and whether more rows follow it.
#[derive(Debug, Clone)]
pub struct Listing<T> {
    pub rows: Vec<T>,
    pub more: bool,
}

/// Runs a keyset query whose last parameter is its `LIMIT`: fetches one
/// row more than the page to learn whether more follow.
fn listing<T>(
    stmt: &mut rusqlite::CachedStatement<'_>,
    params: &[&dyn rusqlite::ToSql],
    limit: u32,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Listing<T>> {
    let limit = limit.clamp(1, MAX_PAGE);
    let fetch = i64::from(limit) + 1;
    let mut all: Vec<&dyn rusqlite::ToSql> = params.to_vec();
    all.push(&fetch);
    let mut rows = stmt
        .query_map(all.as_slice(), row)?
        .collect::<rusqlite::Result<Vec<T>>>()?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    Ok(Listing { rows, more })
}

/// The users of `ws` in handle order, after `after_handle` (`""`: from the
/// start), at most `limit` (≤ [`MAX_PAGE`]). Keyset on the
/// `(workspace_id, handle)` index: a page costs `limit` index steps.
pub fn users(
    conn: &Connection,
    ws: &str,
    after_handle: &str,
    limit: u32,
) -> rusqlite::Result<Listing<UserView>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {USER_COLS} FROM users
         WHERE workspace_id = ?1 AND handle > ?2 ORDER BY handle LIMIT ?3"
    ))?;
    listing(&mut stmt, params![ws, after_handle], limit, user_row)
}

pub fn workspace(conn: &Connection, id: &str) -> rusqlite::Result<Option<WorkspaceView>> {
    conn.prepare_cached("SELECT id, name FROM workspaces WHERE id = ?1")?
        .query_row([id], |r| {
            Ok(WorkspaceView {
                id: r.get(0)?,
                name: r.get(1)?,
            })
        })
        .optional()
}

const CHANNEL_COLS: &str = "c.id, c.name, c.private, c.direct, c.topic, c.archived, c.creator_id,
     (SELECT COUNT(*) FROM members m WHERE m.channel_id = c.id),
     c.head_seq,
     EXISTS (SELECT 1 FROM members m WHERE m.channel_id = c.id AND m.user_id = ?1)";

fn channel_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ChannelView> {
    Ok(ChannelView {
        id: r.get(0)?,
        name: r.get(1)?,
        private: r.get(2)?,
        direct: r.get(3)?,
        topic: r.get(4)?,
        archived: r.get(5)?,
        creator_id: r.get(6)?,
        member_count: r.get(7)?,
        head_seq: r.get(8)?,
        is_member: r.get(9)?,
    })
}

/// A channel as `viewer` sees it (`is_member` is the viewer's). No
/// visibility check: callers authorize first.
pub fn channel_view(
    conn: &Connection,
    viewer: &str,
    id: &str,
) -> rusqlite::Result<Option<ChannelView>> {
    conn.prepare_cached(&format!(
        "SELECT {CHANNEL_COLS} FROM channels c WHERE c.id = ?2"
    ))?
    .query_row([viewer, id], channel_row)
    .optional()
}

/// The channels `viewer` may see in `ws` (public ones and those it is in),
/// in `(name, id)` order after `after` (`None`: from the start), at most
/// `limit` (≤ [`MAX_PAGE`]). Walks the `(workspace_id, name, id)` index, so
/// a page costs the channels it passes over, not the whole workspace —
/// unless most of those are private ones the viewer is not in.
pub fn visible_channels(
    conn: &Connection,
    ws: &str,
    viewer: &str,
    after: Option<(&str, &str)>,
    limit: u32,
) -> rusqlite::Result<Listing<ChannelView>> {
    // A name is never empty, so ("", "") sorts before every channel.
    let (name, id) = after.unwrap_or(("", ""));
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {CHANNEL_COLS} FROM channels c
         WHERE c.workspace_id = ?2 AND (c.name, c.id) > (?3, ?4)
           AND (c.private = 0
                OR EXISTS (SELECT 1 FROM members m WHERE m.channel_id = c.id AND m.user_id = ?1))
         ORDER BY c.name, c.id LIMIT ?5"
    ))?;
    listing(&mut stmt, params![viewer, ws, name, id], limit, channel_row)
}

/// The (non-DM) channel named `name` in `ws`. DM names are not a namespace.
pub fn channel_id_by_name(
    conn: &Connection,
    ws: &str,
    name: &str,
) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached(
        "SELECT id FROM channels WHERE workspace_id = ?1 AND name = ?2 AND direct = 0",
    )?
    .query_row([ws, name], |r| r.get(0))
    .optional()
}

pub fn channel_exists(conn: &Connection, id: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM channels WHERE id = ?1)")?
        .query_row([id], |r| r.get(0))
}

/// The members of `channel` in user id order, after `after_user` (`""`:
/// from the start), at most `limit` (≤ [`MAX_PAGE`]). User id order walks
/// the primary key, so a page costs its own rows even in a 20,000-member
/// channel; handle order would sort every member for each page (measured:
/// ~10 ms against ~0.7 ms for 1,000 of 20,000).
pub fn members(
    conn: &Connection,
    channel: &str,
    after_user: &str,
    limit: u32,
) -> rusqlite::Result<Listing<UserView>> {
    let mut stmt = conn.prepare_cached(
        "SELECT u.id, u.workspace_id, u.handle, u.display_name, u.role, u.deactivated
         FROM members m JOIN users u ON u.id = m.user_id
         WHERE m.channel_id = ?1 AND m.user_id > ?2 ORDER BY m.user_id LIMIT ?3",
    )?;
    listing(&mut stmt, params![channel, after_user], limit, user_row)
}

/// The members of `channel` among users of `ws` with one of `handles`:
/// (handle, user id). For resolving mentions: only the handles a text
/// mentions are looked up, so a post costs the same in a channel of any
/// size.
pub fn members_by_handle<'a>(
    conn: &Connection,
    ws: &str,
    channel: &str,
    handles: impl IntoIterator<Item = &'a str>,
) -> rusqlite::Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT u.id FROM users u
         JOIN members m ON m.channel_id = ?2 AND m.user_id = u.id
         WHERE u.workspace_id = ?1 AND u.handle = ?3",
    )?;
    let mut out = Vec::new();
    for handle in handles {
        if let Some(id) = stmt
            .query_row([ws, channel, handle], |r| r.get::<_, String>(0))
            .optional()?
        {
            out.push((handle.to_string(), id));
        }
    }
    Ok(out)
}

/// A channel's topic.
/// Whether the channel is named `name` now.
pub fn channel_has_name(conn: &Connection, channel: &str, name: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM channels WHERE id = ?1 AND name = ?2)")?
        .query_row([channel, name], |r| r.get(0))
}

pub fn channel_topic(conn: &Connection, channel: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT topic FROM channels WHERE id = ?1")?
        .query_row([channel], |r| r.get(0))
        .optional()
}

/// The authorization questions, answered from this read model.
pub struct AclDirectory<'a>(pub &'a Connection);

impl Directory for AclDirectory<'_> {
    type Error = rusqlite::Error;

    fn channel(&self, id: &ChannelId) -> rusqlite::Result<Option<ChannelFacts>> {
        self.0
            .prepare_cached(
                "SELECT id, workspace_id, name, private, direct, archived, creator_id, fence_seq
                 FROM channels WHERE id = ?1",
            )?
            .query_row([id.as_str()], |r| {
                // Ids read back from the model this process folded.
                Ok(ChannelFacts {
                    id: ChannelId::from_trusted(r.get(0)?),
                    workspace_id: WorkspaceId::from_trusted(r.get(1)?),
                    name: r.get(2)?,
                    private: r.get(3)?,
                    direct: r.get(4)?,
                    archived: r.get(5)?,
                    creator_id: UserId::from_trusted(r.get(6)?),
                    fence_seq: r.get::<_, i64>(7)?.max(0) as u64,
                })
            })
            .optional()
    }

    fn is_member(&self, ch: &ChannelId, user: &UserId) -> rusqlite::Result<bool> {
        self.0
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM members WHERE channel_id = ?1 AND user_id = ?2)",
            )?
            .query_row([ch.as_str(), user.as_str()], |r| r.get(0))
    }

    fn user_in_workspace(&self, ws: &WorkspaceId, user: &UserId) -> rusqlite::Result<bool> {
        self.0
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM users WHERE id = ?1 AND workspace_id = ?2)",
            )?
            .query_row([user.as_str(), ws.as_str()], |r| r.get(0))
    }
}

/// The channels `user` is in that have at most `max_members` members.
/// Each channel's members are counted only up to `max_members + 1` (no
/// member beyond that position), so a big channel costs no more than a
/// small one.
pub fn small_channels_of(
    conn: &Connection,
    user: &str,
    max_members: i64,
) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT m.channel_id FROM members m
         WHERE m.user_id = ?1
           AND NOT EXISTS (SELECT 1 FROM members x WHERE x.channel_id = m.channel_id
                           LIMIT 1 OFFSET ?2)",
    )?;
    let rows = stmt.query_map(rusqlite::params![user, max_members.max(0)], |r| r.get(0))?;
    rows.collect()
}

/// The channels `user` is a member of now (channel id order).
pub fn channels_of(conn: &Connection, user: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn
        .prepare_cached("SELECT channel_id FROM members WHERE user_id = ?1 ORDER BY channel_id")?;
    let rows = stmt.query_map([user], |r| r.get(0))?;
    rows.collect()
}

/// The members of `channel` (user id order) if it has at most `max`;
/// `None` when it has more (only `max + 1` rows are read).
pub fn members_up_to(
    conn: &Connection,
    channel: &str,
    max: usize,
) -> rusqlite::Result<Option<Vec<String>>> {
    let mut stmt = conn.prepare_cached(
        "SELECT user_id FROM members WHERE channel_id = ?1 ORDER BY user_id LIMIT ?2",
    )?;
    let rows: Vec<String> = stmt
        .query_map(rusqlite::params![channel, max as i64 + 1], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok((rows.len() <= max).then_some(rows))
}

/// The channels of `ws` whose messages `user` may find by search now:
/// every public channel of the workspace, and the private channels and
/// DMs `user` is a current member of. Walks the workspace's channels and
/// the user's memberships (both indexed), once per search.
pub fn readable_channel_ids(
    conn: &Connection,
    ws: &str,
    user: &str,
) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM channels WHERE workspace_id = ?1 AND private = 0 AND direct = 0
         UNION
         SELECT m.channel_id FROM members m JOIN channels c ON c.id = m.channel_id
         WHERE m.user_id = ?2 AND c.workspace_id = ?1",
    )?;
    let rows = stmt.query_map([ws, user], |r| r.get(0))?;
    rows.collect()
}

#[cfg(test)]
mod tests;
