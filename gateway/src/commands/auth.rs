//! Who is asking (tokens, with a short-lived cache) and what they may read.

use super::{behind, wait, Commands};
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
        if let Some(user) = self.cached_session(&hash) {
            return Ok(Auth::User(user));
        }
        if self.known_unknown(&hash) {
            return Err(ApiError::unauthorized());
        }
        let lookup = |hash: String| async move {
            self.acl
                .read(move |c| acl::user_by_token_hash(c, &hash))
                .await
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
        let user = match user {
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
        let caller = Caller {
            workspace_id: WorkspaceId::from_trusted(user.workspace_id.clone()),
            user_id: UserId::from_trusted(user.id.clone()),
            admin: user.is_admin(),
        };
        let ctx = UserCtx { user, caller };
        let mut sessions = self
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if sessions.len() >= SESSION_CACHE_MAX {
            sessions.clear();
        }
        sessions.insert(hash, (ctx.clone(), Instant::now()));
        Ok(Auth::User(ctx))
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
