//! Who is asking (tokens, with a short-lived cache) and what they may read.

use super::{behind, wait, Commands};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, UserCtx};
use std::time::{Duration, Instant};
use switchboard_core::authz::{self, Action, Caller, ChannelFacts};
use switchboard_core::ids::{ChannelId, UserId, WorkspaceId};
use switchboard_core::secret::{constant_time_eq, token_hash};
use switchboard_projections::acl::{self, AclDirectory};

/// How long an authenticated token is trusted without asking the model.
const SESSION_TTL: Duration = Duration::from_secs(10);
const SESSION_CACHE_MAX: usize = 100_000;

impl Commands {
    pub async fn authenticate(&self, token: &str) -> ApiResult<Auth> {
        let hash = token_hash(token);
        if let Some(op) = &self.operator_token_hash {
            if constant_time_eq(op, &hash) {
                return Ok(Auth::Operator);
            }
        }
        if let Some(user) = self.cached_session(&hash) {
            return Ok(Auth::User(user));
        }
        let lookup = |hash: String| async move {
            self.acl
                .read(move |c| acl::user_by_token_hash(c, &hash))
                .await
        };
        let user = match lookup(hash.clone()).await? {
            Some(u) => u,
            None => {
                // A token minted a moment ago may not be projected yet.
                if self.acl_catch_up().await.is_err() {
                    return Err(ApiError::unauthorized());
                }
                lookup(hash.clone())
                    .await?
                    .ok_or_else(ApiError::unauthorized)?
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
                self.acl_catch_up().await?;
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
