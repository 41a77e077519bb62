//! Browser sign-in: passwords (argon2id), invite links, sign-in to a
//! session token, sign-out.
//!
//! Where the password hash lives: in the `sb_passwords` KV bucket (key
//! `<workspace>.<user>`, value the argon2id PHC string), never in the log.
//! The log is replayed by analytics consumers with read-only credentials
//! for a workspace's subjects; an argon2 hash of a human-chosen password
//! can be attacked offline, unlike the SHA-256 of a random 192-bit token
//! (which the log does carry). The log records that a password was set
//! (`PasswordSet`, with its actor) for the audit trail. A session is an
//! ordinary token (`TokenIssued` of kind `session`), so revocation,
//! expiry and deactivation apply to it unchanged.
//!
//! Invites: a single-use random code whose SHA-256 is a key of the
//! `sb_invites` bucket (entries expire after [`INVITE_TTL`]), pointing at
//! the user; accepting it sets the password and signs in.

use super::{new_token, now_ms, random, Commands};
use crate::error::{ApiError, ApiResult};
use crate::extract::UserCtx;
use crate::login_limits::LoginLimits;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use async_nats::jetstream::kv;
use std::time::Duration;
use switchboard_core::authz::Caller;
use switchboard_core::commands::accounts::{self as decide, Password};
use switchboard_core::events::TokenKind;
use switchboard_core::ids::{UserId, WorkspaceId};
use switchboard_core::secret::token_hash;
use switchboard_core::validate::DisplayName;
use switchboard_projections::acl::{self, UserView};
use tokio::sync::Semaphore;

/// KV bucket of password hashes (see the module docs).
pub const PASSWORDS_BUCKET: &str = "sb_passwords";
/// KV bucket of pending invites (key: SHA-256 of the code).
pub const INVITES_BUCKET: &str = "sb_invites";
/// How long an invite link stays valid.
pub const INVITE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a browser session lasts.
pub const SESSION_TTL_MS: i64 = 14 * 24 * 3600 * 1000;

/// The secret stores and the sign-in limits of one gateway.
#[derive(Default)]
pub struct SignIn {
    passwords: tokio::sync::OnceCell<Option<kv::Store>>,
    invites: tokio::sync::OnceCell<Option<kv::Store>>,
    pub limits: LoginLimits,
}

/// A session just opened: the user, the session token (the cookie's
/// value) and its CSRF token.
pub struct OpenedSession {
    pub user: UserView,
    pub token: String,
    pub csrf: String,
    pub expires_ms: i64,
}

/// The CSRF token of a session: derived from the session token, so it
/// needs no storage and cannot be planted by another site (it cannot read
/// the HttpOnly session cookie it is derived from).
pub fn csrf_token(session_token: &str) -> String {
    token_hash(&format!("csrf:{session_token}"))
}

/// What a wrong workspace, handle or password gets (one answer for all,
/// so sign-in does not reveal which handles exist).
fn bad_credentials() -> ApiError {
    ApiError::unauthorized_because("wrong workspace, handle or password")
}

async fn bucket(
    cell: &tokio::sync::OnceCell<Option<kv::Store>>,
    client: &async_nats::Client,
    name: &str,
    max_age: Duration,
) -> ApiResult<kv::Store> {
    cell.get_or_init(|| async {
        let js = async_nats::jetstream::new(client.clone());
        match js
            .create_key_value(kv::Config {
                bucket: name.to_string(),
                history: 1,
                max_age,
                ..Default::default()
            })
            .await
        {
            Ok(s) => Some(s),
            Err(_) => js.get_key_value(name).await.ok(),
        }
    })
    .await
    .clone()
    .ok_or_else(|| ApiError::unavailable("the credential store is unavailable; retry shortly"))
}

fn hash_password(password: &Password) -> ApiResult<String> {
    let salt = SaltString::encode_b64(&random::<16>())
        .map_err(|e| ApiError::internal("password salt", &e))?;
    Argon2::default()
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::internal("password hash", &e))
}

/// Verifies `password` against a PHC string; `None` runs the same work
/// against a throwaway hash (an unknown user costs what a known one does).
fn verify_password(password: &str, phc: Option<&str>) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| {
        Password::parse("not anybody's password")
            .ok()
            .and_then(|p| hash_password(&p).ok())
            .unwrap_or_default()
    });
    let (phc, real) = match phc {
        Some(p) => (p, true),
        None => (dummy.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
        && real
}

impl Commands {
    async fn passwords(&self) -> ApiResult<kv::Store> {
        bucket(
            &self.sign_in.passwords,
            self.log.client(),
            PASSWORDS_BUCKET,
            Duration::ZERO,
        )
        .await
    }

    async fn invites(&self) -> ApiResult<kv::Store> {
        bucket(
            &self.sign_in.invites,
            self.log.client(),
            INVITES_BUCKET,
            INVITE_TTL,
        )
        .await
    }

    /// Hashes and stores `password` for `target`, then appends
    /// `PasswordSet` decided for `caller`. The decision is made once
    /// before the hash is stored (so a refused request changes nothing)
    /// and again on append.
    async fn store_password(
        &self,
        caller: Option<&Caller>,
        ws: &WorkspaceId,
        target: &UserId,
        password: Password,
    ) -> ApiResult<()> {
        let decide_for = |state: &decide::AccountState| match caller {
            Some(c) => decide::decide_set_password(c, state),
            None => decide::decide_accept_invite(state),
        };
        self.fresh_reads().await?;
        decide_for(&self.account_state(ws, target).await?)?;
        let phc = argon(move || hash_password(&password)).await??;
        self.passwords()
            .await?
            .put(format!("{ws}.{target}"), phc.into())
            .await
            .map_err(|e| ApiError::unavailable(format!("storing the password failed: {e}")))?;
        let who = caller.map_or(target.as_str(), |c| c.user_id.as_str());
        self.append_account(ws.as_str(), who, caller, || async {
            let state = self.account_state(ws, target).await?;
            Ok(decide_for(&state).map(Some))
        })
        .await?;
        Ok(())
    }

    /// `PUT /v1/users/{id}/password` (workspace admins) and
    /// `PUT /v1/me/password` (the user; with its current password when it
    /// has one).
    pub async fn set_password(
        &self,
        by: &UserCtx,
        user: Option<&str>,
        password: &str,
        current: Option<&str>,
    ) -> ApiResult<()> {
        let password = Password::parse(password)?;
        let target = match user {
            // The admin route sets *another* user's password: one's own is
            // changed with the current password (`PUT /v1/me/password`), so
            // a stolen session or token cannot take the account over.
            Some(u) if u == by.caller.user_id.as_str() => {
                return Err(ApiError::invalid(
                    "use PUT /v1/me/password (with current_password) for your own password",
                ));
            }
            Some(u) => UserId::parse(u).map_err(|_| ApiError::not_found("user"))?,
            None => {
                let ws = by.caller.workspace_id.clone();
                let key = format!("{ws}.{}", by.caller.user_id);
                // A store that cannot answer must not read as "no password
                // set" (that would skip the current-password check).
                let existing = self.passwords().await?.get(key).await.map_err(|e| {
                    ApiError::unavailable(format!("reading the password failed: {e}"))
                })?;
                if let Some(phc) = existing {
                    let phc = String::from_utf8_lossy(&phc).into_owned();
                    let current = current.unwrap_or_default().to_string();
                    let ok = argon(move || verify_password(&current, Some(&phc))).await?;
                    if !ok {
                        return Err(ApiError::forbidden("current_password is missing or wrong"));
                    }
                }
                by.caller.user_id.clone()
            }
        };
        self.store_password(Some(&by.caller), &by.caller.workspace_id, &target, password)
            .await
    }

    /// `POST /v1/users/{id}/invite` (workspace admins): a single-use code
    /// with which the user sets a password and signs in.
    pub async fn invite(&self, by: &UserCtx, user: &str) -> ApiResult<(String, i64)> {
        let target = UserId::parse(user).map_err(|_| ApiError::not_found("user"))?;
        self.fresh_reads().await?;
        let state = self.account_state(&by.caller.workspace_id, &target).await?;
        // Only an admin of the user's workspace, for an active user.
        decide::decide_reactivate(&by.caller, &state)?;
        if state.target.as_ref().is_some_and(|t| t.deactivated) {
            return Err(ApiError::conflict(
                "the user is deactivated: reactivate it first",
            ));
        }
        let code = new_token().replacen("sbt_", "inv_", 1);
        self.invites()
            .await?
            .put(
                token_hash(&code),
                format!("{}.{}", by.caller.workspace_id, target).into(),
            )
            .await
            .map_err(|e| ApiError::unavailable(format!("storing the invite failed: {e}")))?;
        Ok((code, now_ms() + INVITE_TTL.as_millis() as i64))
    }

    /// Accepts an invite: spends it (once), sets the password, signs in.
    pub async fn accept_invite(
        &self,
        code: &str,
        password: &str,
        address: &str,
        browser: &str,
    ) -> ApiResult<OpenedSession> {
        let password = Password::parse(password)?;
        self.sign_in
            .limits
            .check(&format!("invite/{}", token_hash(code)), address)
            .map_err(ApiError::rate_limited)?;
        let invites = self.invites().await?;
        let key = token_hash(code);
        let gone = || ApiError::not_found("invite");
        let entry = invites
            .entry(key.clone())
            .await
            .ok()
            .flatten()
            .ok_or_else(gone)?;
        if entry.operation != kv::Operation::Put {
            return Err(gone());
        }
        let value = String::from_utf8_lossy(&entry.value).into_owned();
        let (ws, user) = value.split_once('.').ok_or_else(gone)?;
        let (ws, user) = (
            WorkspaceId::parse(ws).map_err(|_| gone())?,
            UserId::parse(user).map_err(|_| gone())?,
        );
        // Single use: only the request that deletes this revision wins.
        invites
            .delete_expect_revision(key, Some(entry.revision))
            .await
            .map_err(|_| gone())?;
        self.store_password(None, &ws, &user, password).await?;
        self.open_session(&ws, &user, browser).await
    }

    /// `POST /v1/auth/login`: checks the limits, then the password, then
    /// issues a session token.
    pub async fn login(
        &self,
        workspace: &str,
        handle: &str,
        password: &str,
        address: &str,
        browser: &str,
    ) -> ApiResult<OpenedSession> {
        self.sign_in
            .limits
            .check(&format!("{workspace}/{handle}"), address)
            .map_err(ApiError::rate_limited)?;
        let found = match WorkspaceId::parse(workspace) {
            Ok(ws) => {
                self.fresh_reads().await?;
                let (w, h) = (ws.to_string(), handle.to_string());
                self.acl
                    .read(move |c| acl::user_by_handle(c, &w, &h))
                    .await?
                    .filter(|u| !u.deactivated)
            }
            Err(_) => None,
        };
        let phc = match &found {
            Some(u) => self
                .passwords()
                .await?
                .get(format!("{}.{}", u.workspace_id, u.id))
                .await
                .ok()
                .flatten()
                .map(|b| String::from_utf8_lossy(&b).into_owned()),
            None => None,
        };
        let password = password.to_string();
        let ok = argon(move || verify_password(&password, phc.as_deref())).await?;
        let Some(user) = found.filter(|_| ok) else {
            return Err(bad_credentials());
        };
        let (ws, id) = (
            WorkspaceId::from_trusted(user.workspace_id.clone()),
            UserId::from_trusted(user.id.clone()),
        );
        self.open_session(&ws, &id, browser).await
    }

    async fn open_session(
        &self,
        ws: &WorkspaceId,
        user: &UserId,
        browser: &str,
    ) -> ApiResult<OpenedSession> {
        let caller = Caller {
            workspace_id: ws.clone(),
            user_id: user.clone(),
            admin: false,
        };
        let name: String = browser
            .chars()
            .filter(|c| !c.is_control())
            .take(80)
            .collect();
        let name = DisplayName::parse("name", name.trim())
            .or_else(|_| DisplayName::parse("name", "browser"))?;
        let expires_ms = now_ms() + SESSION_TTL_MS;
        let (_, token) = self
            .issue(&caller, user, name, Some(expires_ms), TokenKind::Session)
            .await?;
        let (w, u) = (ws.to_string(), user.to_string());
        let view = self
            .acl
            .read(move |c| acl::user(c, &w, &u))
            .await?
            .ok_or_else(|| ApiError::not_found("user"))?;
        Ok(OpenedSession {
            user: view,
            csrf: csrf_token(&token),
            token,
            expires_ms,
        })
    }

    /// `POST /v1/auth/logout`: revokes the session the request came with
    /// (or, `everywhere`, every session of the user).
    pub async fn logout(&self, by: &UserCtx, everywhere: bool) -> ApiResult<()> {
        if everywhere {
            self.revoke_sessions(by).await
        } else {
            let id = by.token.id.clone();
            self.revoke_token(by, &id).await
        }
    }
}

/// argon2id runs at once in this process (each holds ~19 MiB and a core
/// for tens of milliseconds): a crowd of sign-ins queues here instead of
/// filling the blocking pool and memory.
const ARGON_AT_ONCE: usize = 2;
static ARGON: Semaphore = Semaphore::const_new(ARGON_AT_ONCE);
/// How long a hash waits for its turn before the request is answered 503.
const ARGON_WAIT: Duration = Duration::from_secs(5);

/// Runs a password hash or verification on the blocking pool, at most
/// [`ARGON_AT_ONCE`] at a time.
async fn argon<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> ApiResult<T> {
    let permit = tokio::time::timeout(ARGON_WAIT, ARGON.acquire())
        .await
        .map_err(|_| ApiError::unavailable("too many sign-ins at once; retry shortly"))?
        .map_err(|e| ApiError::internal("password hashing", &e))?;
    let out = tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal("password hash task", &e))?;
    drop(permit);
    Ok(out)
}
