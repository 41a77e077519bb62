//! Revocation reaches every gateway: each one follows the stored workspace
//! events (`dlv.sb.<ws>.ws`, the stream's RePublish, so only what the log
//! holds) and, on an access change — a token revoked, sessions signed
//! out, a user deactivated, a role changed — evicts the session cache
//! entries it concerns, forgets tickets issued to them, and ends their
//! open WebSocket (close 1008) and SSE streams. This takes the time of one
//! core-NATS hop after the append, well under a second.
//!
//! Belt and braces, for a note lost while NATS was disconnected and for
//! tokens that expire: every open stream's token is checked against the
//! clock each [`EXPIRY_SWEEP`] and against the ACL model each
//! [`FULL_SWEEP`], and once right after the stream registered (closing the
//! window between authentication and registration).

use super::Realtime;
use crate::commands::{expired, AccessChange};
use futures_util::StreamExt;
use prost::Message as _;
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::events::{Body, Envelope};

/// How often open streams' tokens are checked for expiry (no I/O).
pub const EXPIRY_SWEEP: Duration = Duration::from_secs(1);
/// How often open streams' tokens are re-checked against the ACL model.
pub const FULL_SWEEP: Duration = Duration::from_secs(30);

/// The access change an event makes, and whether it ends the affected
/// streams (a role change or a reactivation only refreshes cached roles).
pub fn access_change(body: &Body) -> Option<(AccessChange<'_>, bool)> {
    Some(match body {
        Body::TokenRevoked(b) => (
            AccessChange::Token {
                user: &b.user_id,
                token: &b.token_id,
            },
            true,
        ),
        Body::SessionsRevoked(b) => (AccessChange::Sessions { user: &b.user_id }, true),
        Body::UserDeactivated(b) => (AccessChange::User { user: &b.user_id }, true),
        Body::UserReactivated(b) => (AccessChange::User { user: &b.user_id }, false),
        Body::UserRoleSet(b) => (AccessChange::User { user: &b.user_id }, false),
        _ => return None,
    })
}

impl Realtime {
    /// Applies an access change to this gateway's open streams and tickets.
    pub fn revoke_streams(&self, ws: &str, change: &AccessChange<'_>) {
        let user = match *change {
            AccessChange::Token { user, .. }
            | AccessChange::Sessions { user }
            | AccessChange::User { user } => user,
        };
        let concerns = |u: &crate::extract::UserCtx| {
            u.caller.workspace_id.as_str() == ws && change.concerns(u)
        };
        self.tickets.forget(concerns);
        for session in self.hub.sessions_of(user) {
            if concerns(&session.user) {
                session.revoked.cancel();
            }
        }
    }

    /// Follows the log's access changes (see the module docs) until the
    /// gateway shuts down.
    pub async fn start_access_router(self: &Arc<Self>) {
        let Ok(mut sub) = self.hub.client().subscribe("dlv.sb.*.ws").await else {
            tracing::warn!("realtime: cannot subscribe to workspace events; revocations reach this gateway only through its sweeps");
            return;
        };
        let rt = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                let Some(rt) = rt.upgrade() else { break };
                if !super::republished(&m) {
                    continue;
                }
                let Ok(env) = Envelope::decode(m.payload.as_ref()) else {
                    continue;
                };
                let Some(body) = &env.body else { continue };
                let Some((change, ends)) = access_change(body) else {
                    continue;
                };
                let stream_seq = m
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("Nats-Sequence"))
                    .and_then(|v| v.as_str().parse::<u64>().ok())
                    .unwrap_or(0);
                rt.core.access_changed(stream_seq, &change);
                if ends {
                    rt.revoke_streams(&env.workspace_id, &change);
                }
            }
        });
        let rt = Arc::downgrade(self);
        let closing = self.closing.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EXPIRY_SWEEP);
            let full_every = (FULL_SWEEP.as_millis() / EXPIRY_SWEEP.as_millis()).max(1) as u64;
            let mut ticks = 0u64;
            loop {
                tokio::select! {
                    () = closing.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let Some(rt) = rt.upgrade() else { break };
                ticks += 1;
                let full = ticks >= full_every;
                if full {
                    ticks = 0;
                }
                for session in rt.hub.all_sessions() {
                    if session.revoked.is_cancelled() {
                        continue;
                    }
                    let gone = expired(&session.user)
                        || (full
                            && matches!(rt.core.still_authorized(&session.user).await, Ok(false)));
                    if gone {
                        session.revoked.cancel();
                    }
                }
            }
        });
    }
}
