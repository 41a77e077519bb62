//! Single-use, short-lived tickets for browser WebSocket/SSE auth (a
//! browser cannot set an Authorization header on a WebSocket).
//! Kept in this gateway's memory: a ticket is redeemed at the gateway that
//! issued it (sticky routing), and is gone on restart. A ticket is spent
//! only once its stream is certain to open ([`Tickets::redeem`] after the
//! request was otherwise accepted).

use crate::extract::UserCtx;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const TICKET_TTL: Duration = Duration::from_secs(30);

#[derive(Default)]
pub struct Tickets {
    map: Mutex<HashMap<String, (UserCtx, Instant)>>,
}

impl Tickets {
    pub fn issue(&self, user: UserCtx, ticket: String) {
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, (_, at)| at.elapsed() < TICKET_TTL);
        map.insert(ticket, (user, Instant::now()));
    }

    /// Whether the ticket would be accepted now, without spending it: a
    /// request that fails after this check (no WebSocket upgrade, bad
    /// channels) leaves the ticket usable.
    pub fn is_live(&self, ticket: &str) -> bool {
        let map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(ticket)
            .is_some_and(|(_, at)| at.elapsed() < TICKET_TTL)
    }

    /// Forgets every ticket issued to a session `revoked` says lost access.
    pub fn forget(&self, revoked: impl Fn(&UserCtx) -> bool) {
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, (u, _)| !revoked(u));
    }

    /// Takes the ticket: valid once, within [`TICKET_TTL`].
    pub fn redeem(&self, ticket: &str) -> Option<UserCtx> {
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.remove(ticket)
            .filter(|(_, at)| at.elapsed() < TICKET_TTL)
            .map(|(u, _)| u)
    }
}
