//! The command side: authentication, authorization against the ACL read
//! model, decisions, and appends to the log. HTTP handlers and the `admin`
//! CLI both go through here, so there is one way to change state.
//!
//! Consistency rules kept here:
//! - read-your-writes: reads wait (bounded) until the projections have
//!   applied every append this process acknowledged (and, after a restart,
//!   the log head found at start-up); writes wait only for acknowledged
//!   membership/channel changes;
//! - a refusal is never based on a stale read model: before answering
//!   401/403/404 on a write, the ACL model is caught up to the log head;
//! - uniqueness (channel names, handles, DM sets) is decided against the
//!   ACL model caught up to the workspace subject's head, and the append is
//!   conditional on that head, so two racing creators cannot both win.

mod channels;
mod messages;
mod tenants;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, UserCtx};
use crate::views::{message_from_envelope, MessageView};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use switchboard_core::authz::{self, Action, Caller, ChannelFacts};
use switchboard_core::events::{self, Body, ChannelKind, Envelope, Role};
use switchboard_core::ids::{ChannelId, EventId, MessageId, UserId, WorkspaceId};
use switchboard_core::secret::{constant_time_eq, hex, token_hash};
use switchboard_core::validate::{
    parse_topic, ChannelName, ClientMsgId, DisplayName, Handle, MessageText,
};
use switchboard_core::DomainError;
use switchboard_projections::acl::{self, AclDirectory, ChannelView, UserView, WorkspaceView};
use switchboard_projections::history::{self, MessageRow};
use switchboard_projections::{Progress, Readers};
use switchboard_streams::{subjects, AppendError, Appended, Head, Log};

/// How long a read waits for projections to apply the caller's own writes.
const FRESHNESS_WAIT: Duration = Duration::from_secs(3);
/// Attempts at a conditional workspace-subject append before giving up.
const DECIDE_ATTEMPTS: usize = 32;

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The OS RNG failing is not recoverable; ids and tokens must be random.
    getrandom::fill(&mut b).expect("operating system random number generator failed");
    b
}

fn ms() -> u64 {
    now_ms().max(0) as u64
}

pub fn new_token() -> String {
    format!("sbt_{}", hex(&random::<24>()))
}

/// What a channel-scoped request wants to do (owned, so it can move into
/// read-model closures).
#[derive(Debug, Clone)]
pub enum Want {
    See,
    Read,
    Post,
    Join,
    Leave,
    Invite(String),
    Remove(String),
    Archive,
}

impl Want {
    fn action(&self) -> Action<'_> {
        match self {
            Want::See => Action::See,
            Want::Read => Action::Read,
            Want::Post => Action::Post,
            Want::Join => Action::Join,
            Want::Leave => Action::Leave,
            Want::Invite(u) => Action::Invite { user_id: u },
            Want::Remove(u) => Action::Remove { user_id: u },
            Want::Archive => Action::Archive,
        }
    }
}

/// A validated message post.
#[derive(Debug, Clone)]
pub struct PostMessage {
    pub channel_id: ChannelId,
    pub text: MessageText,
    pub client_msg_id: Option<ClientMsgId>,
    pub thread_root_id: Option<MessageId>,
}

/// The platform's command side and read models.
pub struct Core {
    pub log: Log,
    pub acl: Readers,
    pub history: Readers,
    pub acl_progress: Progress,
    pub history_progress: Progress,
    operator_token_hash: Option<String>,
    /// Highest stream sequence of an acknowledged append through this
    /// process that changes the ACL model (anything but a message post).
    /// Writes wait for the ACL model to reach it, so a user's own
    /// archive/leave/create is in force for that user's next request.
    acl_acked: AtomicU64,
    /// Token hash → user, for a few seconds: authentication is on every
    /// request and users are never altered in place by the API (a future
    /// deactivation must also clear this).
    sessions: Mutex<HashMap<String, (UserCtx, Instant)>>,
}

/// How long an authenticated token is trusted without asking the model.
const SESSION_TTL: Duration = Duration::from_secs(10);
const SESSION_CACHE_MAX: usize = 100_000;

impl Core {
    pub fn new(
        log: Log,
        acl: Readers,
        history: Readers,
        acl_progress: Progress,
        history_progress: Progress,
        operator_token_hash: Option<String>,
    ) -> Core {
        Core {
            log,
            acl,
            history,
            acl_progress,
            history_progress,
            operator_token_hash,
            acl_acked: AtomicU64::new(0),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// Treats everything up to `seq` (the log head found at start-up) as
    /// acknowledged: after a restart, reads and writes wait for the read
    /// models to catch up to it instead of answering from a stale model.
    pub fn note_startup_head(&self, seq: u64) {
        self.log.note_acked(seq);
        self.note_acl_write(seq);
    }

    fn note_acl_write(&self, stream_seq: u64) {
        self.acl_acked.fetch_max(stream_seq, Ordering::AcqRel);
    }

    /// Waits until both read models reflect every write this process has
    /// acknowledged (so a read after any acknowledged write through this
    /// gateway sees it). A read that cannot get there in time answers 503
    /// rather than a stale page. Across gateways, reads are eventually
    /// consistent (bounded by projection lag).
    pub async fn fresh_reads(&self) -> ApiResult<()> {
        let seq = self.log.last_acked();
        if seq > 0
            && !(self.acl_progress.wait_for(seq, FRESHNESS_WAIT).await
                && self.history_progress.wait_for(seq, FRESHNESS_WAIT).await)
        {
            return Err(ApiError::unavailable(
                "the read models are catching up with the log; retry shortly",
            ));
        }
        Ok(())
    }

    /// Waits until the ACL model reflects every membership/channel change
    /// this process has acknowledged. Message posts do not move this, so a
    /// busy channel's senders never wait on projection lag.
    async fn fresh_acl(&self) -> ApiResult<()> {
        let seq = self.acl_acked.load(Ordering::Acquire);
        if seq > 0 && !self.acl_progress.wait_for(seq, FRESHNESS_WAIT).await {
            return Err(ApiError::unavailable(
                "the membership read model is catching up with the log; retry shortly",
            ));
        }
        Ok(())
    }

    /// Catches the ACL model up to the log's current head (bounded). Used
    /// before any refusal so that a refusal is never a stale answer.
    /// Catches the history model up to the log's current head (bounded).
    async fn history_catch_up(&self) -> ApiResult<()> {
        let head = self.log.last_seq().await?;
        if !self.history_progress.wait_for(head, FRESHNESS_WAIT).await {
            return Err(ApiError::unavailable(
                "the history read model is behind the log",
            ));
        }
        Ok(())
    }

    async fn acl_catch_up(&self) -> ApiResult<()> {
        let head = self.log.last_seq().await?;
        if !self.acl_progress.wait_for(head, FRESHNESS_WAIT).await {
            return Err(ApiError::unavailable(
                "the membership read model is behind the log",
            ));
        }
        Ok(())
    }

    // ----- authentication -----

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
            workspace_id: user.workspace_id.clone(),
            user_id: user.id.clone(),
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

    // ----- authorization -----

    async fn check(
        &self,
        caller: &Caller,
        channel: &str,
        want: &Want,
    ) -> ApiResult<Result<ChannelFacts, DomainError>> {
        let (caller, channel, want) = (caller.clone(), channel.to_string(), want.clone());
        self.acl
            .read(move |c| {
                match authz::authorize(&AclDirectory(c), &caller, &channel, want.action()) {
                    Ok(facts) => Ok(Ok(facts)),
                    Err(Ok(refusal)) => Ok(Err(refusal)),
                    Err(Err(e)) => Err(e),
                }
            })
            .await
            .map_err(ApiError::from)
    }

    /// Authorizes `want` on `channel` for `user`; a refusal is re-checked
    /// against an up-to-date model before it is returned.
    pub async fn authorize(
        &self,
        user: &UserCtx,
        channel: &str,
        want: Want,
    ) -> ApiResult<ChannelFacts> {
        // Reads wait for every acknowledged write (read-your-writes);
        // writes only for acknowledged membership changes, and a refusal
        // is re-checked when caught up to the log head.
        if matches!(want, Want::See | Want::Read) {
            self.fresh_reads().await?;
        } else {
            self.fresh_acl().await?;
        }
        match self.check(&user.caller, channel, &want).await? {
            Ok(facts) => Ok(facts),
            Err(_) => {
                self.acl_catch_up().await?;
                Ok(self.check(&user.caller, channel, &want).await??)
            }
        }
    }

    /// Whether `user` may read `channel` as of stream sequence `at` (the
    /// ACL model is first caught up to it, bounded). Real-time delivery asks
    /// this whenever it skips events it could not see, so a removal hidden
    /// in the skipped range still ends delivery.
    pub async fn may_read_at(&self, user: &UserCtx, channel: &str, at: u64) -> ApiResult<bool> {
        if !self.acl_progress.wait_for(at, FRESHNESS_WAIT).await {
            return Err(ApiError::unavailable(
                "the membership read model is behind the log",
            ));
        }
        Ok(self
            .check(&user.caller, channel, &Want::Read)
            .await?
            .is_ok())
    }

    // ----- appends -----

    fn envelope(ws: &str, channel: &str, actor: &str, seq: u64, body: Body) -> Envelope {
        Envelope {
            event_id: EventId::generate(ms(), random()).into_string(),
            workspace_id: ws.to_string(),
            channel_id: channel.to_string(),
            actor_id: actor.to_string(),
            ts_ms: now_ms(),
            channel_seq: seq,
            body: Some(body),
        }
    }

    /// Appends a channel event by `user`.
    async fn append_channel(
        &self,
        user: &UserCtx,
        channel: &str,
        msg_id: Option<&str>,
        body: Body,
    ) -> ApiResult<Appended> {
        let ws = &user.caller.workspace_id;
        let subject = subjects::channel(ws, channel);
        let appended = self
            .log
            .append(&subject, msg_id, |seq| {
                Self::envelope(ws, channel, &user.caller.user_id, seq, body.clone())
            })
            .await?;
        if !matches!(body, Body::MessagePosted(_)) {
            self.note_acl_write(appended.stream_seq);
        }
        Ok(appended)
    }

    /// Appends to the workspace subject if `check` passes against the ACL
    /// model caught up to that subject's head; conditional on the head, so
    /// a concurrent writer forces a fresh decision. `check` may return an
    /// existing result (`Ok(Some)`) instead of appending.
    async fn decide_on_workspace<T, C>(
        &self,
        ws: &str,
        check: C,
        make: impl Fn(u64) -> Envelope,
    ) -> ApiResult<Result<Appended, T>>
    where
        T: Send + 'static,
        C: Fn(&rusqlite_conn::Connection) -> rusqlite_conn::Result<Result<Option<T>, DomainError>>
            + Clone
            + Send
            + 'static,
    {
        let subject = subjects::workspace(ws);
        for _ in 0..DECIDE_ATTEMPTS {
            let head: Head = self.log.fetch_head(&subject).await?;
            if !self
                .acl_progress
                .wait_for(head.stream_seq, FRESHNESS_WAIT)
                .await
            {
                return Err(ApiError::unavailable(
                    "the membership read model is behind the log",
                ));
            }
            let check = check.clone();
            if let Some(existing) = self.acl.read(move |c| check(c)).await?? {
                return Ok(Err(existing));
            }
            let env = make(head.subject_seq + 1);
            let id = env.event_id.clone();
            match self.log.append_at(&subject, head, env, &id).await {
                Ok(a) => {
                    self.note_acl_write(a.stream_seq);
                    return Ok(Ok(a));
                }
                Err(AppendError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppendError::Conflict.into())
    }
}

/// rusqlite, re-exported through projections' dependency for the `check`
/// closures (the gateway does not depend on rusqlite directly).
mod rusqlite_conn {
    pub use switchboard_projections::sql::{Connection, Result};
}
