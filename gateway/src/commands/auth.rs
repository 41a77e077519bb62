//! Who is asking (tokens, with a short-lived cache) and what they may read.
//!
//! Revocation invariant: once a gateway has seen an access change on the
//! log (a token revoked, sessions signed out, a user deactivated or its
//! role changed — see `realtime::access`, which hears every stored
//! workspace event), no request it authenticates afterwards is answered
//! from state older than that change: the cache entries it touches are
//! evicted, lookups wait until the ACL model has folded it, and a lookup
//! that raced the change is not cached.

use super::{behind, now_ms, wait, Commands};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, UserCtx};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use switchboard_core::authz::{self, Action, Caller, ChannelFacts};
use switchboard_core::ids::{ChannelId, UserId, WorkspaceId};
use switchboard_core::secret::{constant_time_eq, token_hash};
use switchboard_projections::acl::{self, AclDirectory};

/// How long an authenticated token is trusted without asking the model.
const SESSION_TTL: Duration = Duration::from_secs(10);
const SESSION_CACHE_MAX: usize = 100_000;
/// How long a token found in no user is refused without asking the model.
const UNKNOWN_TTL: Duration = Duration::from_secs(30);
const UNKNOWN_CACHE_MAX: usize = 10_000;

impl Commands {
    /// The operator or the user a bearer token belongs to.
    ///
    /// An unknown token is refused only after the ACL model has applied
    /// everything this gateway acknowledged and the log head as of after
    /// the request arrived (a token minted a moment ago, anywhere, works).
    /// The head comes from the shared probe (one JetStream request per
    /// 50 ms at most, however many unknown tokens arrive), and a token
    /// refused that way is refused from memory for [`UNKNOWN_TTL`].
    pub async fn authenticate(&self, token: &str) -> ApiResult<Auth> {
        let arrived = tokio::time::Instant::now();
        let hash = token_hash(token);
        if let Some(op) = &self.operator_token_hash {
            if constant_time_eq(op, &hash) {
                return Ok(Auth::Operator);
            }
        }
        // (A read-only view checks the live accounts on every request.)
        if let Some(user) = self
            .cached_session(&hash)
            .filter(|_| !self.log.is_read_only())
        {
            return if expired(&user) {
                Err(ApiError::unauthorized())
            } else {
                Ok(Auth::User(user))
            };
        }
        if self.known_unknown(&hash) {
            return Err(ApiError::unauthorized());
        }
        // A lookup that overlaps an access change is not cached.
        let generation = self.access_gen.load(Ordering::Acquire);
        self.access_folded().await?;
        let lookup = |hash: String| async move {
            self.acl.read(move |c| acl::token_by_hash(c, &hash)).await
        };
        let mut user = lookup(hash.clone()).await?;
        // Minted through this gateway and not folded yet: a local wait.
        let acked = self.acl_acked.load(Ordering::Acquire);
        if user.is_none()
            && self.acl_progress.current() < acked
            && wait(&self.acl_progress, acked).await
        {
            user = lookup(hash.clone()).await?;
        }
        let (user, token) = match user {
            Some(u) => u,
            // Minted elsewhere a moment ago, or not a token at all.
            None => {
                if self.acl_catch_up(arrived).await.is_err() {
                    return Err(ApiError::unauthorized());
                }
                match lookup(hash.clone()).await? {
                    Some(u) => u,
                    None => {
                        self.remember_unknown(hash);
                        return Err(ApiError::unauthorized());
                    }
                }
            }
        };
        let mut admin = user.is_admin();
        if self.log.is_read_only() {
            // A view of the past: the account as it is now decides too, so a
            // token revoked (or a user deactivated or demoted) after the
            // view's moment does not get back in through it.
            let Some(live) = self.live_acl.get() else {
                return Err(ApiError::unauthorized());
            };
            let h = hash.clone();
            match live.read(move |c| acl::token_by_hash(c, &h)).await? {
                Some((now, _)) if now.id == user.id => admin &= now.is_admin(),
                _ => return Err(ApiError::unauthorized()),
            }
        }
        let caller = Caller {
            workspace_id: WorkspaceId::from_trusted(user.workspace_id.clone()),
            user_id: UserId::from_trusted(user.id.clone()),
            admin,
        };
        let ctx = UserCtx {
            user,
            caller,
            token: std::sync::Arc::new(crate::extract::TokenRef {
                session: token.kind == "session",
                id: token.id,
                expires_ms: token.expires_ms,
            }),
        };
        if expired(&ctx) {
            return Err(ApiError::unauthorized());
        }
        self.note_token_use(&ctx);
        let mut sessions = self
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.access_gen.load(Ordering::Acquire) == generation {
            if sessions.len() >= SESSION_CACHE_MAX {
                sessions.clear();
            }
            sessions.insert(hash, (ctx.clone(), Instant::now()));
        }
        Ok(Auth::User(ctx))
    }

    /// Waits until the ACL model has folded every access change this
    /// gateway has seen on the log (bounded; 503 past it).
    async fn access_folded(&self) -> ApiResult<()> {
        let seen = self.access_seen.load(Ordering::Acquire);
        if self.acl_progress.current() < seen && !wait(&self.acl_progress, seen).await {
            return Err(behind("the membership read model is"));
        }
        Ok(())
    }

    /// An access change stored in the log at `stream_seq` (seen by this
    /// gateway's subscription, or appended by it): cached sessions it
    /// concerns are evicted at once, and authentication waits for the ACL
    /// model to fold it before trusting the model again.
    pub fn access_changed(&self, stream_seq: u64, change: &AccessChange<'_>) {
        // `access_seen` first: a lookup that reads the new generation must
        // also see the position it has to wait for.
        self.access_seen.fetch_max(stream_seq, Ordering::AcqRel);
        self.access_gen.fetch_add(1, Ordering::AcqRel);
        let mut sessions = self
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sessions.retain(|_, (ctx, _)| !change.concerns(ctx));
    }

    /// Whether the token `user` authenticated with is still good now: not
    /// revoked, not expired, its user active (after every access change
    /// this gateway has seen is folded). Open real-time streams ask this.
    pub async fn still_authorized(&self, user: &UserCtx) -> ApiResult<bool> {
        if expired(user) {
            return Ok(false);
        }
        self.access_folded().await?;
        let id = user.token.id.clone();
        let live = self.acl.read(move |c| acl::token_live(c, &id)).await?;
        Ok(live.is_some())
    }

    fn cached_session(&self, hash: &str) -> Option<UserCtx> {
        let sessions = self
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sessions
            .get(hash)
            .filter(|(_, at)| at.elapsed() < SESSION_TTL)
            .map(|(u, _)| u.clone())
    }

    /// Whether `hash` was found in no user, with the model caught up past
    /// the moment it was presented, within [`UNKNOWN_TTL`]. Safe to trust:
    /// a token is random and shown only once it is in the log, so one that
    /// was unknown then cannot have been minted since.
    fn known_unknown(&self, hash: &str) -> bool {
        let unknown = self
            .unknown_tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        unknown
            .get(hash)
            .is_some_and(|at| at.elapsed() < UNKNOWN_TTL)
    }

    fn remember_unknown(&self, hash: String) {
        let mut unknown = self
            .unknown_tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if unknown.len() >= UNKNOWN_CACHE_MAX {
            unknown.retain(|_, at| at.elapsed() < UNKNOWN_TTL);
            if unknown.len() >= UNKNOWN_CACHE_MAX {
                unknown.clear();
            }
        }
        unknown.insert(hash, Instant::now());
    }

    async fn check(
        &self,
        caller: &Caller,
        channel: &ChannelId,
        action: Action,
    ) -> ApiResult<Result<ChannelFacts, ApiError>> {
        let (caller, channel) = (caller.clone(), channel.clone());
        self.acl
            .read(
                move |c| match authz::authorize(&AclDirectory(c), &caller, &channel, action) {
                    Ok(facts) => Ok(Ok(facts)),
                    Err(Ok(refusal)) => Ok(Err(refusal.into())),
                    Err(Err(e)) => Err(e),
                },
            )
            .await
            .map_err(ApiError::from)
    }

    /// Authorizes a read (`See` metadata, `Read` content) of `channel`,
    /// after waiting for every write this gateway acknowledged
    /// (read-your-writes); a refusal is re-checked against the model caught
    /// up to the log head before it is returned.
    pub async fn authorize(
        &self,
        user: &UserCtx,
        channel: &ChannelId,
        action: Action,
    ) -> ApiResult<ChannelFacts> {
        self.fresh_reads().await?;
        match self.check(&user.caller, channel, action).await? {
            Ok(facts) => Ok(facts),
            Err(_) => {
                self.acl_catch_up(tokio::time::Instant::now()).await?;
                self.check(&user.caller, channel, action).await?
            }
        }
    }

    /// Whether `user` may read `channel` as of stream sequence `at` (the
    /// ACL model is first caught up to it, bounded). Real-time delivery asks
    /// this whenever it skips events it could not see, so a removal hidden
    /// in the skipped range still ends delivery.
    pub async fn may_read_at(
        &self,
        user: &UserCtx,
        channel: &ChannelId,
        at: u64,
    ) -> ApiResult<bool> {
        if !wait(&self.acl_progress, at).await {
            return Err(behind("the membership read model is"));
        }
        Ok(self
            .check(&user.caller, channel, Action::Read)
            .await?
            .is_ok())
    }
}

/// A change on the log that takes access away (or changes what a cached
/// session may do).
#[derive(Debug, Clone, Copy)]
pub enum AccessChange<'a> {
    /// One token was revoked.
    Token { user: &'a str, token: &'a str },
    /// Every session token of the user was revoked (sign out everywhere).
    Sessions { user: &'a str },
    /// The user was deactivated (every token revoked), reactivated, or
    /// its role changed.
    User { user: &'a str },
}

impl AccessChange<'_> {
    /// Whether a session authenticated as `ctx` is affected.
    pub fn concerns(&self, ctx: &UserCtx) -> bool {
        match *self {
            AccessChange::Token { user, token } => {
                ctx.caller.user_id.as_str() == user && ctx.token.id == token
            }
            AccessChange::Sessions { user } => {
                ctx.caller.user_id.as_str() == user && ctx.token.session
            }
            AccessChange::User { user } => ctx.caller.user_id.as_str() == user,
        }
    }
}

/// Whether the token of `ctx` has expired.
pub fn expired(ctx: &UserCtx) -> bool {
    ctx.token.expires_ms != 0 && now_ms() >= ctx.token.expires_ms
}
