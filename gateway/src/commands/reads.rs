//! Read state: moving a read marker (decided against the channel, the
//! thread root and the caller's current marker, appended on the caller's
//! own subject and re-decided on every conflict), the unread summary, and
//! whom `@here` addresses (members online now, for channels up to
//! [`mentions::HERE_MAX_MEMBERS`] members).
//!
//! The unread summary lists only channels the caller is a member of now
//! (the ACL model at query time): a channel the caller left disappears.

use super::{refuse, settle, unchanged, wait, Commands, UserCtx};
use crate::error::ApiResult;
use futures_util::StreamExt;
use switchboard_core::commands::reads::{
    decide_marker, MarkerDecision, MarkerState, MoveMarker, ThreadRootFacts,
};
use switchboard_core::ids::{ChannelId, UserId};
use switchboard_core::mentions::{self, Scan};
use switchboard_projections::unreads::{self, UnreadSummary};
use switchboard_projections::{acl, history};
use switchboard_streams::{subjects, Basis, Outcome};

/// Presence lookups in flight at once when resolving `@here`.
const PRESENCE_LOOKUPS_AT_ONCE: usize = 64;

impl Commands {
    /// Moves the caller's marker (see `decide_marker`); answers the marker
    /// after the command (the current one when nothing moved).
    pub async fn move_marker(&self, user: &UserCtx, cmd: MoveMarker) -> ApiResult<u64> {
        let ws = user.caller.workspace_id.as_str();
        let me = user.caller.user_id.as_str();
        let cmd = &cmd;
        let outcome = self
            .log
            .append_decided(&subjects::user(ws, me), |basis| async move {
                self.models_at(basis, cmd.thread_root_id.is_some()).await?;
                self.unreads_at(basis).await?;
                let state = self.marker_state(user, cmd).await?;
                match decide_marker(&user.caller, &state, cmd) {
                    Ok(MarkerDecision {
                        event: Some(body), ..
                    }) => settle(
                        basis,
                        Ok(body),
                        |seq, body| Self::envelope(ws, "", me, seq, body),
                        None,
                    ),
                    Ok(MarkerDecision {
                        last_read_seq,
                        event: None,
                    }) => unchanged(basis, last_read_seq),
                    Err(e) => refuse(basis, e),
                }
            })
            .await?;
        Ok(match outcome {
            Outcome::Appended(a) => {
                // Read-your-writes for the next GET /v1/unreads.
                wait(&self.unreads_progress, a.stream_seq).await;
                match a.envelope.body {
                    Some(switchboard_core::events::Body::ReadMarkerMoved(m)) => m.seq,
                    _ => 0,
                }
            }
            Outcome::Done(seq) => seq,
        })
    }

    /// Waits until the unread model has applied what a marker decision
    /// must see: the caller's subject up to the basis (earlier markers),
    /// every append this process acknowledged (the channel head the seq is
    /// clamped to), and on a re-check the log head.
    async fn unreads_at(&self, basis: Basis) -> ApiResult<()> {
        let mut seq = basis.must_see.max(self.log.last_acked());
        if basis.recheck {
            seq = seq.max(self.log.last_seq().await?);
        }
        if !wait(&self.unreads_progress, seq).await {
            return Err(super::behind("the unread read model is"));
        }
        Ok(())
    }

    async fn marker_state(&self, user: &UserCtx, cmd: &MoveMarker) -> ApiResult<MarkerState> {
        let channel = self.channel_state(user, &cmd.channel_id).await?;
        let root = match &cmd.thread_root_id {
            Some(root) => {
                let id = root.as_str().to_string();
                self.history
                    .read(move |c| history::message(c, &id))
                    .await?
                    .map(|r| ThreadRootFacts {
                        channel_id: ChannelId::from_trusted(r.channel_id),
                        is_reply: r.thread_root_id.is_some(),
                    })
            }
            None => None,
        };
        let (me, ch) = (
            user.caller.user_id.as_str().to_string(),
            cmd.channel_id.as_str().to_string(),
        );
        let thread = cmd
            .thread_root_id
            .as_ref()
            .map(|r| r.as_str().to_string())
            .unwrap_or_default();
        let (current, head) = self
            .unreads
            .read(move |c| {
                Ok((
                    unreads::marker(c, &me, &ch, &thread)?,
                    unreads::head_seq(c, &ch)?,
                ))
            })
            .await?;
        Ok(MarkerState {
            channel,
            root,
            current,
            head,
        })
    }

    /// The caller's unread counts in the channels it is a member of now,
    /// and in the threads it follows there.
    pub async fn unread_summary(&self, user: &UserCtx) -> ApiResult<UnreadSummary> {
        self.fresh_reads().await?;
        let seq = self.log.last_acked();
        if !wait(&self.unreads_progress, seq).await {
            return Err(super::behind("the unread read model is"));
        }
        let me = user.caller.user_id.as_str().to_string();
        // One hand-off for both models: the channel list (current
        // memberships) and the counts over it.
        Ok(self
            .unreads
            .read_page_with(&self.acl, move |u, a| {
                let channels = acl::channels_of(a, &me)?;
                unreads::unreads(u, &me, &channels)
            })
            .await?)
    }

    /// Whom `@here` addresses in `channel`: its members whose presence is
    /// `online` now. Nobody when the text has no `@here`, or when the
    /// channel has more than [`mentions::HERE_MAX_MEMBERS`] members (the
    /// documented cap), or when presence is unavailable.
    pub(super) async fn online_members(
        &self,
        user: &UserCtx,
        channel: &ChannelId,
        scan: &Scan,
    ) -> ApiResult<Vec<UserId>> {
        if !scan.here {
            return Ok(Vec::new());
        }
        let ch = channel.as_str().to_string();
        let Some(members) = self
            .acl
            .read_page(move |c| acl::members_up_to(c, &ch, mentions::HERE_MAX_MEMBERS))
            .await?
        else {
            return Ok(Vec::new());
        };
        let Some(kv) = self.presence_bucket().await else {
            return Ok(Vec::new());
        };
        let ws = user.caller.workspace_id.as_str();
        let online: Vec<String> = futures_util::stream::iter(members)
            .map(|m| {
                let kv = kv.clone();
                let key = format!("{ws}.{m}");
                async move {
                    let status = kv.get(key).await.ok().flatten();
                    (status.as_deref() == Some(b"online".as_slice())).then_some(m)
                }
            })
            .buffered(PRESENCE_LOOKUPS_AT_ONCE)
            .filter_map(|m| async move { m })
            .collect()
            .await;
        // Ids read back from the model this process folded.
        Ok(online.into_iter().map(UserId::from_trusted).collect())
    }

    /// The presence bucket (created by the real-time side), opened once.
    async fn presence_bucket(&self) -> Option<async_nats::jetstream::kv::Store> {
        let cached = self
            .presence
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if cached.is_some() {
            return cached;
        }
        let js = async_nats::jetstream::new(self.log.client().clone());
        let store = js
            .get_key_value(crate::realtime::PRESENCE_BUCKET)
            .await
            .ok()?;
        *self
            .presence
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(store.clone());
        Some(store)
    }
}
