//! Retention, legal holds and erasure on the command side.
//!
//! Policy changes and holds are decided against the ACL model at the
//! workspace subject's head (`core::commands::retention`). An erasure is
//! decided per channel at the channel subject's head: the event
//! (`ContentErased`) goes into the log first, then the content keys it
//! names are destroyed. A crash in between leaves the keys: the next run
//! (retention) or the admin's retry (a user erasure) finds them and erases
//! again — an announced erasure whose keys still exist is finished, never
//! forgotten.

use super::{ms, now_ms, random, settle_or_unchanged, wait, Commands};
use crate::error::{ApiError, ApiResult};
use crate::extract::UserCtx;
use std::collections::HashMap;
use switchboard_core::commands::accounts::Account;
use switchboard_core::commands::retention::{
    self as decide, Holds, PlaceHold, RetentionAge, SlotFacts,
};
use switchboard_core::events::{Body, HoldScope};
use switchboard_core::ids::{ChannelId, HoldId, UserId, WorkspaceId};
use switchboard_projections::acl::{self, AclDirectory, HoldView, RetentionView};
use switchboard_streams::keyring::Slot;
use switchboard_streams::{subjects, Outcome};

/// What one erasure run did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ErasureReport {
    /// Channels a `ContentErased` was appended to.
    pub erased_channels: Vec<String>,
    /// Channels skipped because a legal hold covers them.
    pub held_channels: Vec<String>,
    /// Content keys destroyed.
    pub keys_destroyed: usize,
    /// Channels (or `<workspace>` for a whole workspace) the run could not
    /// finish: retried on the next run.
    pub failed: Vec<String>,
}

fn slot_facts(slots: &[Slot]) -> Vec<SlotFacts> {
    slots
        .iter()
        .map(|s| SlotFacts {
            key_ref: s.key_ref.clone(),
            author_id: s.author_id.clone(),
            end_ms: s.end_ms,
        })
        .collect()
}

impl Commands {
    /// The holds in force, as of the workspace subject's head (where holds
    /// are appended): a hold placed through another gateway a moment ago
    /// counts (the ACL model is waited for up to that event only, not up
    /// to the whole log's head, so a busy log does not slow deletes).
    async fn holds_of(&self, ws: &str) -> ApiResult<Holds> {
        let head = self
            .log
            .fetch_head(&subjects::workspace(ws))
            .await?
            .stream_seq;
        if !wait(&self.acl_progress, head).await {
            return Err(ApiError::unavailable(
                "the membership read model is behind: legal holds cannot be checked now",
            ));
        }
        let ws = ws.to_string();
        Ok(self.acl.read(move |c| acl::holds(c, &ws)).await?)
    }

    /// Whether a legal hold covers a message of `author` in `channel`.
    pub(super) async fn message_held(
        &self,
        ws: &str,
        channel: &str,
        author: &str,
    ) -> ApiResult<bool> {
        Ok(self.holds_of(ws).await?.message_held(channel, author))
    }

    /// The workspace's retention policies.
    pub async fn retention(&self, user: &UserCtx) -> ApiResult<Vec<RetentionView>> {
        if !user.caller.admin {
            return Err(ApiError::forbidden("retention is for workspace admins"));
        }
        let ws = user.caller.workspace_id.to_string();
        Ok(self.acl.read(move |c| acl::retention_of(c, &ws)).await?)
    }

    /// Sets the retention of `channel` (`None`: the workspace default).
    pub async fn set_retention(
        &self,
        user: &UserCtx,
        channel: Option<&str>,
        age: RetentionAge,
    ) -> ApiResult<()> {
        let ws = user.caller.workspace_id.as_str();
        let channel = match channel {
            Some(c) => Some(ChannelId::parse(c).map_err(|_| ApiError::not_found("channel"))?),
            None => None,
        };
        let channel = &channel;
        let appended = self
            .append_account(
                ws,
                user.caller.user_id.as_str(),
                Some(&user.caller),
                || async {
                    let (w, c) = (ws.to_string(), channel.clone());
                    let (facts, current) = self
                        .acl
                        .read(move |conn| {
                            let facts = match &c {
                                Some(id) => {
                                    use switchboard_core::authz::Directory;
                                    AclDirectory(conn).channel(id)?
                                }
                                None => None,
                            };
                            let want = c.as_ref().map_or("", |c| c.as_str()).to_string();
                            let current = acl::retention_of(conn, &w)?
                                .into_iter()
                                .find(|r| r.channel_id == want)
                                .map_or(RetentionAge::Forever, |r| {
                                    RetentionAge::of(r.days, r.max_age_secs)
                                });
                            Ok((facts, current))
                        })
                        .await?;
                    Ok(decide::decide_set_retention(
                        &user.caller,
                        channel.as_ref().map(|c| (c, facts.as_ref())),
                        age,
                        current,
                    ))
                },
            )
            .await?;
        self.acl_caught_up(appended.map(|a| a.stream_seq)).await
    }

    /// Waits (bounded) until the ACL model applied `seq`, so the answer
    /// that follows shows the change.
    async fn acl_caught_up(&self, seq: Option<u64>) -> ApiResult<()> {
        if let Some(seq) = seq {
            if !wait(&self.acl_progress, seq).await {
                return Err(ApiError::unavailable(
                    "the change is made; the membership read model is behind: read it again shortly",
                ));
            }
        }
        Ok(())
    }

    /// The holds in force.
    pub async fn legal_holds(&self, user: &UserCtx) -> ApiResult<Vec<HoldView>> {
        if !user.caller.admin {
            return Err(ApiError::forbidden("legal holds are for workspace admins"));
        }
        let ws = user.caller.workspace_id.to_string();
        Ok(self.acl.read(move |c| acl::holds_of(c, &ws)).await?)
    }

    /// Places a hold; returns its id.
    pub async fn place_hold(
        &self,
        user: &UserCtx,
        scope: HoldScope,
        target_id: &str,
        reason: &str,
    ) -> ApiResult<String> {
        let ws = user.caller.workspace_id.as_str();
        let cmd = PlaceHold {
            hold_id: HoldId::generate(ms(), random()).into_string(),
            scope,
            target_id: target_id.to_string(),
            reason: reason.to_string(),
        };
        let cmd = &cmd;
        let appended = self
            .append_account(
                ws,
                user.caller.user_id.as_str(),
                Some(&user.caller),
                || async {
                    let (w, t) = (ws.to_string(), cmd.target_id.clone());
                    let exists = match cmd.scope {
                        HoldScope::Channel => match ChannelId::parse(&t) {
                            Ok(id) => {
                                self.acl
                                    .read(move |c| {
                                        use switchboard_core::authz::Directory;
                                        Ok(AclDirectory(c)
                                            .channel(&id)?
                                            .is_some_and(|f| f.workspace_id.as_str() == w))
                                    })
                                    .await?
                            }
                            Err(_) => false,
                        },
                        HoldScope::User => match UserId::parse(&t) {
                            Ok(_) => {
                                self.acl
                                    .read(move |c| Ok(acl::user(c, &w, &t)?.is_some()))
                                    .await?
                            }
                            Err(_) => false,
                        },
                        _ => true,
                    };
                    Ok(decide::decide_place_hold(&user.caller, cmd, exists).map(Some))
                },
            )
            .await?;
        self.acl_caught_up(appended.map(|a| a.stream_seq)).await?;
        Ok(cmd.hold_id.clone())
    }

    /// Lifts the hold `id`.
    pub async fn lift_hold(&self, user: &UserCtx, id: &str) -> ApiResult<()> {
        let ws = user.caller.workspace_id.as_str();
        let appended = self
            .append_account(
                ws,
                user.caller.user_id.as_str(),
                Some(&user.caller),
                || async {
                    let (w, h) = (ws.to_string(), id.to_string());
                    let exists = self
                        .acl
                        .read(move |c| Ok(acl::holds_of(c, &w)?.iter().any(|v| v.id == h)))
                        .await?;
                    Ok(decide::decide_lift_hold(&user.caller, id, exists).map(Some))
                },
            )
            .await?;
        self.acl_caught_up(appended.map(|a| a.stream_seq)).await
    }

    /// Appends the erasure `decide` makes for `channel` at its head, then
    /// destroys the keys it names. `Ok(None)`: nothing was erased. The
    /// holds, the channel's slots and (for a user's erasure) the `target`
    /// account are read again for every decision, a re-decision after an
    /// append conflict included.
    async fn erase_channel<F>(
        &self,
        ws: &str,
        channel: &str,
        actor: &str,
        target: Option<(&WorkspaceId, &UserId)>,
        decide: F,
    ) -> ApiResult<Option<usize>>
    where
        F: Fn(
            &Holds,
            Option<&Account>,
            &[SlotFacts],
            u64,
        ) -> Result<Option<Body>, switchboard_core::DomainError>,
    {
        let decide = &decide;
        let outcome = self
            .log
            .append_decided::<(), _, _, _>(&subjects::channel(ws, channel), |basis| async move {
                self.models_at(basis, false).await?;
                let holds = self.holds_of(ws).await?;
                let slots: Vec<Slot> = self
                    .log
                    .keyring()
                    .channel_slots(ws, channel)
                    .await
                    .map_err(|e| ApiError::unavailable(e.to_string()))?;
                let account = match target {
                    Some((w, u)) => self.account_state(w, u).await?.target,
                    None => None,
                };
                let decided = decide(
                    &holds,
                    account.as_ref(),
                    &slot_facts(&slots),
                    basis.head.subject_seq,
                );
                settle_or_unchanged(basis, decided, |seq, body| {
                    Self::envelope(ws, channel, actor, seq, body)
                })
            })
            .await?;
        let Outcome::Appended(a) = outcome else {
            return Ok(None);
        };
        self.note_acl_write(a.stream_seq);
        let Some(Body::ContentErased(e)) = &a.envelope.body else {
            return Ok(None);
        };
        // A hold placed while this was being appended (after the check the
        // decision made): its keys are kept, so the log keeps the text the
        // hold preserves (the read models forget it; an export still has it).
        let holds = self.holds_of(ws).await?;
        let keys: Vec<String> = e
            .key_refs
            .iter()
            .filter(|k| {
                Slot::parse(k).is_some_and(|s| !holds.message_held(&s.channel_id, &s.author_id))
            })
            .cloned()
            .collect();
        if keys.len() < e.key_refs.len() {
            tracing::warn!(
                channel,
                kept = e.key_refs.len() - keys.len(),
                "erasure: a legal hold placed meanwhile keeps these keys"
            );
        }
        self.log
            .keyring()
            .destroy(&keys)
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
        if let Some(exports) = self.exports.get() {
            exports.withdraw(ws);
        }
        Ok(Some(keys.len()))
    }

    /// Erases every message of `target` (right to erasure): one
    /// `ContentErased` per channel the user wrote in. The user must be
    /// deactivated; a hold on the workspace or the user refuses it (409),
    /// a hold on a channel skips that channel (reported).
    pub async fn erase_user(&self, user: &UserCtx, target: &str) -> ApiResult<ErasureReport> {
        let caller = &user.caller;
        if !caller.admin {
            return Err(ApiError::forbidden(
                "only workspace admins erase a user's messages",
            ));
        }
        let ws = caller.workspace_id.as_str();
        let target = decide::parse_user(target)?;
        let state = self.account_state(&caller.workspace_id, &target).await?;
        let holds = self.holds_of(ws).await?;
        // Refusals that hold for every channel, before any is touched.
        decide::decide_user_erasure(caller, state.target.as_ref(), &holds, "", &[], 0)?;
        let mut channels: Vec<String> = self
            .log
            .keyring()
            .slots(ws)
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?
            .into_iter()
            .filter(|s| s.author_id == target.as_str())
            .map(|s| s.channel_id)
            .collect();
        channels.sort();
        channels.dedup();
        let mut report = ErasureReport::default();
        for ch in channels {
            if holds.channel_held(&ch) {
                report.held_channels.push(ch);
                continue;
            }
            // The user is read again in each decision: a reactivation
            // meanwhile stops the rest (nothing new may be sealed under
            // keys being destroyed).
            let n = self
                .erase_channel(
                    ws,
                    &ch,
                    caller.user_id.as_str(),
                    Some((&caller.workspace_id, &target)),
                    |holds, account, slots, through| {
                        decide::decide_user_erasure(caller, account, holds, &ch, slots, through)
                    },
                )
                .await?;
            if let Some(n) = n {
                report.keys_destroyed += n;
                report.erased_channels.push(ch);
            }
        }
        Ok(report)
    }

    /// Applies retention now: in `only` (else every workspace with a
    /// policy), each channel's expired slots are erased, under the
    /// channel's policy or the workspace's default. Appended with no actor
    /// (the server).
    pub async fn run_retention(&self, only: Option<&str>) -> ApiResult<ErasureReport> {
        let workspaces = match only {
            Some(ws) => vec![ws.to_string()],
            None => self.acl.read(acl::workspaces_with_retention).await?,
        };
        let mut report = ErasureReport::default();
        for ws in workspaces {
            // One workspace's failure does not hold up the others'.
            if let Err(e) = self.retention_of_workspace(&ws, &mut report).await {
                tracing::warn!(workspace = %ws, error = ?e, "retention: workspace not finished");
                report.failed.push(ws);
            }
        }
        Ok(report)
    }

    async fn retention_of_workspace(&self, ws: &str, report: &mut ErasureReport) -> ApiResult<()> {
        {
            let ws = ws.to_string();
            let w = ws.clone();
            let (policies, channels) = self
                .acl
                .read(move |c| {
                    Ok((
                        acl::retention_of(c, &w)?,
                        acl::channel_ids_of_workspace(c, &w)?,
                    ))
                })
                .await?;
            if policies.is_empty() {
                return Ok(());
            }
            let default = policies
                .iter()
                .find(|p| p.channel_id.is_empty())
                .map(|p| RetentionAge::of(p.days, p.max_age_secs));
            let own: HashMap<&str, RetentionAge> = policies
                .iter()
                .filter(|p| !p.channel_id.is_empty())
                .map(|p| {
                    (
                        p.channel_id.as_str(),
                        RetentionAge::of(p.days, p.max_age_secs),
                    )
                })
                .collect();
            let slots = self
                .log
                .keyring()
                .slots(&ws)
                .await
                .map_err(|e| ApiError::unavailable(e.to_string()))?;
            let holds = self.holds_of(&ws).await?;
            let now = now_ms();
            for ch in channels {
                let (age, scope) = match (own.get(ch.as_str()), default) {
                    (Some(a), _) => (*a, "channel"),
                    (None, Some(a)) => (a, "workspace"),
                    (None, None) => continue,
                };
                let Some(age_ms) = age.ms() else { continue };
                // Cheap first look: an expired slot of this channel at all?
                let cutoff = now.saturating_sub(age_ms);
                if !slots
                    .iter()
                    .any(|s| s.channel_id == ch && s.end_ms <= cutoff)
                {
                    continue;
                }
                if holds.channel_held(&ch) {
                    report.held_channels.push(ch);
                    continue;
                }
                let n = self
                    .erase_channel(&ws, &ch, "", None, |holds, _, slots, through| {
                        Ok(decide::decide_retention_erasure(
                            holds, &ch, age, scope, slots, now, through,
                        ))
                    })
                    .await;
                match n {
                    Ok(Some(n)) => {
                        report.keys_destroyed += n;
                        report.erased_channels.push(ch);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(channel = %ch, error = ?e, "retention: channel not finished");
                        report.failed.push(ch);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Runs retention every `every` until the process ends (the server's
/// housekeeping; failures are logged and retried on the next round).
pub fn spawn_retention(commands: std::sync::Arc<Commands>, every: std::time::Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match commands.run_retention(None).await {
                Ok(r) if !r.erased_channels.is_empty() => {
                    tracing::info!(
                        channels = r.erased_channels.len(),
                        keys = r.keys_destroyed,
                        "retention: content erased"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = ?e, "retention: run failed (retried next round)"),
            }
        }
    });
}
