//! Accounts and sessions on the command side: tokens (issue, list,
//! revoke, sign out everywhere), deactivation, reactivation and roles.
//! Each change is decided against the ACL model caught up to the
//! workspace subject's head and appended conditionally on it
//! (`core::commands::accounts`), then applied to this gateway's session
//! cache at once ([`Commands::access_changed`]); other gateways hear it
//! from the log (`realtime::access`).

use super::{ms, new_token, now_ms, random, settle_or_unchanged, AccessChange, Commands};
use crate::error::{ApiError, ApiResult};
use crate::extract::UserCtx;
use async_nats::jetstream::kv;
use std::collections::HashMap;
use std::sync::Mutex;
use switchboard_core::authz::Caller;
use switchboard_core::commands::accounts::{
    self as decide, Account, AccountState, IssueToken, TokenFacts,
};
use switchboard_core::events::{Body, Role, TokenKind};
use switchboard_core::ids::{TokenId, UserId, WorkspaceId};
use switchboard_core::secret::token_hash;
use switchboard_core::validate::DisplayName;
use switchboard_projections::acl::{self, TokenView, UserView};
use switchboard_streams::{subjects, Appended, Outcome};

/// KV bucket of each token's last use (key `<workspace>.<token id>`, value
/// unix ms as text). Not an event: a use changes nothing, and a write per
/// request would grow the log by the traffic.
pub const TOKEN_USE_BUCKET: &str = "sb_token_use";

/// A token's last use is written at most this often per gateway.
const USE_RESOLUTION_MS: i64 = 60_000;

/// Last use of tokens, as this gateway noted them, and the shared bucket.
#[derive(Default)]
pub struct TokenUse {
    noted: Mutex<HashMap<String, i64>>,
    bucket: tokio::sync::OnceCell<Option<kv::Store>>,
}

/// A token as `GET /v1/tokens` shows it.
#[derive(Debug, Clone)]
pub struct TokenListing {
    pub token: TokenView,
    /// Unix ms of the last use any gateway recorded (minute resolution).
    pub last_used_ms: Option<i64>,
}

impl Commands {
    async fn token_use_bucket(&self) -> Option<kv::Store> {
        self.token_use
            .bucket
            .get_or_init(|| async {
                let js = async_nats::jetstream::new(self.log.client().clone());
                match js
                    .create_key_value(kv::Config {
                        bucket: TOKEN_USE_BUCKET.to_string(),
                        history: 1,
                        ..Default::default()
                    })
                    .await
                {
                    Ok(s) => Some(s),
                    Err(_) => js.get_key_value(TOKEN_USE_BUCKET).await.ok(),
                }
            })
            .await
            .clone()
    }

    /// Records that `ctx`'s token was used now (at most once a minute per
    /// token and gateway; in the background, never failing a request).
    pub(super) fn note_token_use(&self, ctx: &UserCtx) {
        if self.log.is_read_only() {
            // A read-only view of the past writes nothing, this included.
            return;
        }
        let now = now_ms();
        {
            let mut noted = self
                .token_use
                .noted
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match noted.get(&ctx.token.id) {
                Some(at) if now - at < USE_RESOLUTION_MS => return,
                _ => {}
            }
            if noted.len() >= 100_000 {
                noted.clear();
            }
            noted.insert(ctx.token.id.clone(), now);
        }
        let Some(bucket) = self.token_use.bucket.get().cloned().flatten() else {
            // Opened by the first listing; uses before it are not kept.
            return;
        };
        let key = format!("{}.{}", ctx.caller.workspace_id, ctx.token.id);
        tokio::spawn(async move {
            let _ = bucket.put(key, now.to_string().into()).await;
        });
    }

    /// The account facts of `user` in `ws` and the workspace's active
    /// admin count, from the ACL model.
    pub(super) async fn account_state(
        &self,
        ws: &WorkspaceId,
        user: &UserId,
    ) -> ApiResult<AccountState> {
        let (ws, user) = (ws.to_string(), user.to_string());
        Ok(self
            .acl
            .read(move |c| {
                Ok(AccountState {
                    target: acl::user(c, &ws, &user)?.map(|u| account(&u)),
                    active_admins: acl::active_admins(c, &ws)?,
                })
            })
            .await?)
    }

    /// Appends an account decision to the caller's workspace subject, made
    /// against the ACL model caught up to its head (re-made on a conflict).
    /// `None`: nothing to append (the change is in place already).
    ///
    /// `caller` (absent for an invite's acceptance) is re-read from the
    /// model at the same head: the request was authenticated earlier (the
    /// session cache keeps a user for up to 10 s), and an admin demoted or
    /// a user deactivated meanwhile must not decide with what it was then.
    pub(super) async fn append_account<F, Fut>(
        &self,
        ws: &str,
        who: &str,
        caller: Option<&Caller>,
        decide: F,
    ) -> ApiResult<Option<Appended>>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = ApiResult<Decided>>,
    {
        let decide = &decide;
        let outcome = self
            .log
            .append_decided::<(), _, _, _>(&subjects::workspace(ws), |basis| async move {
                self.models_at(basis, false).await?;
                if let Some(c) = caller {
                    let now = self.account_state(&c.workspace_id, &c.user_id).await?;
                    match now.target {
                        Some(a) if !a.deactivated => {
                            if c.admin && !a.admin {
                                return Err(ApiError::forbidden(
                                    "only workspace admins may do this (the caller is not one any more)",
                                ));
                            }
                        }
                        _ => return Err(ApiError::unauthorized()),
                    }
                }
                let decided = decide().await?;
                settle_or_unchanged(basis, decided, |seq, body| {
                    Self::envelope(ws, "", who, seq, body)
                })
            })
            .await?;
        Ok(match outcome {
            Outcome::Appended(a) => {
                self.note_acl_write(a.stream_seq);
                Some(a)
            }
            Outcome::Done(()) => None,
        })
    }

    /// Issues a token for `for_user` (`None`: the caller) and returns it
    /// with its secret, shown once.
    pub async fn issue_token(
        &self,
        by: &UserCtx,
        for_user: Option<&str>,
        name: &str,
        expires_at: Option<&str>,
    ) -> ApiResult<(TokenView, String)> {
        let target = match for_user {
            Some(u) => UserId::parse(u).map_err(|_| ApiError::not_found("user"))?,
            None => by.caller.user_id.clone(),
        };
        let name = DisplayName::parse("name", name)?;
        let expires_at_ms = expires_at.map(decide::parse_expires_at).transpose()?;
        self.issue(&by.caller, &target, name, expires_at_ms, TokenKind::Api)
            .await
    }

    /// Issues a token of `kind` for `target`, decided for `caller` (the
    /// user itself at sign-in).
    pub(super) async fn issue(
        &self,
        caller: &Caller,
        target: &UserId,
        name: DisplayName,
        expires_at_ms: Option<i64>,
        kind: TokenKind,
    ) -> ApiResult<(TokenView, String)> {
        let secret = new_token();
        let cmd = IssueToken {
            token_id: TokenId::generate(ms(), random()),
            name,
            expires_at_ms,
            kind,
        };
        let (cmd, by) = (&cmd, caller);
        // The verifier goes first, once, and only for a decision to issue:
        // a refusal appends nothing.
        let (verifier, hash) = (tokio::sync::OnceCell::<()>::new(), token_hash(&secret));
        let (verifier, hash) = (&verifier, &hash);
        let appended = self
            .append_account(
                by.workspace_id.as_str(),
                by.user_id.as_str(),
                Some(by),
                || async {
                    let state = self.account_state(&by.workspace_id, target).await?;
                    let decided = decide::decide_issue_token(by, &state, cmd, now_ms());
                    if decided.is_ok() {
                        verifier
                            .get_or_try_init(|| {
                                self.append_verifier(
                                    by.workspace_id.as_str(),
                                    cmd.token_id.as_str(),
                                    target.as_str(),
                                    hash.clone(),
                                )
                            })
                            .await?;
                    }
                    Ok(decided.map(Some))
                },
            )
            .await?;
        let Some(a) = appended else {
            return Err(ApiError::internal("issue_token", &"no event was decided"));
        };
        Ok((
            TokenView {
                id: cmd.token_id.to_string(),
                workspace_id: by.workspace_id.to_string(),
                user_id: target.to_string(),
                name: cmd.name.as_str().to_string(),
                kind: if kind == TokenKind::Session {
                    "session"
                } else {
                    "api"
                }
                .into(),
                created_ms: a.envelope.ts_ms,
                expires_ms: cmd.expires_at_ms.unwrap_or(0),
            },
            secret,
        ))
    }

    /// The live tokens of `of_user` (`None`: the caller's own). Another
    /// user's only for a workspace admin; another workspace's user, or any
    /// other user for a non-admin, is `404 user`.
    pub async fn list_tokens(
        &self,
        by: &UserCtx,
        of_user: Option<&str>,
    ) -> ApiResult<Vec<TokenListing>> {
        self.fresh_reads().await?;
        let ws = by.caller.workspace_id.to_string();
        let user = match of_user {
            None => by.caller.user_id.to_string(),
            Some(u) => {
                let u = UserId::parse(u).map_err(|_| ApiError::not_found("user"))?;
                let (w, id) = (ws.clone(), u.to_string());
                let found = self.acl.read(move |c| acl::user(c, &w, &id)).await?;
                if found.is_none() || (u != by.caller.user_id && !by.caller.admin) {
                    return Err(ApiError::not_found("user"));
                }
                u.into_string()
            }
        };
        let tokens = self
            .acl
            .read(move |c| acl::tokens_of(c, &ws, &user))
            .await?;
        let bucket = self.token_use_bucket().await;
        let mut out = Vec::with_capacity(tokens.len());
        for token in tokens {
            let last_used_ms = match &bucket {
                Some(b) => b
                    .get(format!("{}.{}", token.workspace_id, token.id))
                    .await
                    .ok()
                    .flatten()
                    .and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok()),
                None => None,
            };
            out.push(TokenListing {
                token,
                last_used_ms,
            });
        }
        Ok(out)
    }

    /// Revokes a token (its owner or a workspace admin): refused by every
    /// gateway from then on, and its open streams closed.
    pub async fn revoke_token(&self, by: &UserCtx, token_id: &str) -> ApiResult<()> {
        let id = TokenId::parse(token_id).map_err(|_| ApiError::not_found("token"))?;
        let id = &id;
        let appended = self
            .append_account(
                by.caller.workspace_id.as_str(),
                by.caller.user_id.as_str(),
                Some(&by.caller),
                || async {
                    let (ws, tid) = (by.caller.workspace_id.to_string(), id.to_string());
                    let token = self.acl.read(move |c| acl::token(c, &ws, &tid)).await?;
                    let facts = token.map(|t| TokenFacts {
                        id: TokenId::from_trusted(t.id),
                        user_id: UserId::from_trusted(t.user_id),
                        workspace_id: WorkspaceId::from_trusted(t.workspace_id),
                    });
                    Ok(decide::decide_revoke_token(&by.caller, facts.as_ref()).map(Some))
                },
            )
            .await?;
        if let Some(a) = appended {
            if let Some(Body::TokenRevoked(r)) = &a.envelope.body {
                self.access_changed(
                    a.stream_seq,
                    &AccessChange::Token {
                        user: &r.user_id,
                        token: &r.token_id,
                    },
                );
            }
        }
        Ok(())
    }

    /// "Sign out everywhere": every session token of the caller is
    /// revoked (its API tokens are kept).
    pub async fn revoke_sessions(&self, by: &UserCtx) -> ApiResult<()> {
        let appended = self
            .append_account(
                by.caller.workspace_id.as_str(),
                by.caller.user_id.as_str(),
                Some(&by.caller),
                || async { Ok(Ok(Some(decide::decide_revoke_sessions(&by.caller)))) },
            )
            .await?;
        if let Some(a) = appended {
            self.access_changed(
                a.stream_seq,
                &AccessChange::Sessions {
                    user: by.caller.user_id.as_str(),
                },
            );
        }
        Ok(())
    }

    /// Deactivates, reactivates or changes the role of `user` (workspace
    /// admins). Returns the user as it is now.
    pub async fn change_account(
        &self,
        by: &UserCtx,
        user: &str,
        change: AccountCommand,
    ) -> ApiResult<UserView> {
        let target = UserId::parse(user).map_err(|_| ApiError::not_found("user"))?;
        let target = &target;
        let appended = self
            .append_account(
                by.caller.workspace_id.as_str(),
                by.caller.user_id.as_str(),
                Some(&by.caller),
                || async {
                    let state = self.account_state(&by.caller.workspace_id, target).await?;
                    Ok(match change {
                        AccountCommand::Deactivate => decide::decide_deactivate(&by.caller, &state),
                        AccountCommand::Reactivate => decide::decide_reactivate(&by.caller, &state),
                        AccountCommand::SetRole(role) => {
                            decide::decide_set_role(&by.caller, &state, role)
                        }
                    })
                },
            )
            .await?;
        if let Some(a) = appended {
            self.access_changed(
                a.stream_seq,
                &AccessChange::User {
                    user: target.as_str(),
                },
            );
        }
        self.fresh_reads().await?;
        let (ws, id) = (by.caller.workspace_id.to_string(), target.to_string());
        self.acl
            .read(move |c| acl::user(c, &ws, &id))
            .await?
            .ok_or_else(|| ApiError::not_found("user"))
    }
}

/// What an account decision gives: an event, nothing to do, or a refusal.
type Decided = Result<Option<Body>, switchboard_core::DomainError>;

/// An admin's change to a user's account.
#[derive(Debug, Clone, Copy)]
pub enum AccountCommand {
    Deactivate,
    Reactivate,
    SetRole(Role),
}

fn account(u: &UserView) -> Account {
    // Ids read back from the model this process folded.
    Account {
        id: UserId::from_trusted(u.id.clone()),
        workspace_id: WorkspaceId::from_trusted(u.workspace_id.clone()),
        admin: u.is_admin(),
        deactivated: u.deactivated,
    }
}
