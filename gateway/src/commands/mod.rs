//! The command side: authentication, loading the state a decision needs,
//! the pure decisions of `switchboard_core::commands`, and conditional
//! appends to the log. HTTP handlers and the `admin` CLI both go through
//! here, so there is one way to change state:
//!
//! ```text
//! POST → parse (newtypes) → load state at the subject head → decide (pure)
//!      → append iff the head is unchanged (else re-load, re-decide) → fold → deliver
//! ```
//!
//! Consistency rules kept here:
//! - a decision sees every event up to the head it appends after: the read
//!   models it consults are caught up to the head as last read from the
//!   server (later events on the subject were appended by this process and
//!   are waited for through `acl_acked`), and a conflict re-decides;
//! - read-your-writes: reads wait (bounded) until the projections have
//!   applied every append this process acknowledged (and, after a restart,
//!   the log head found at start-up);
//! - a refusal is never based on a stale read model: before refusing, the
//!   decision is re-made with the read models caught up to the log head.

pub mod accounts;
mod audit;
mod auth;
mod channels;
mod conversation;
pub mod files;
mod head;
mod members;
pub mod messages;
mod notifications;
mod push;
mod reads;
pub mod retention;
pub mod sessions;
mod tenants;

use crate::error::{ApiError, ApiResult};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use switchboard_core::events::{Body, Envelope};
use switchboard_core::ids::EventId;
use switchboard_core::secret::hex;
use switchboard_core::DomainError;
use switchboard_projections::{Progress, Readers};
use switchboard_streams::{Basis, Decision, Log};

pub use crate::extract::UserCtx;
pub use auth::{expired, AccessChange};

/// How long a read waits for projections to apply the caller's own writes.
const FRESHNESS_WAIT: Duration = Duration::from_secs(3);

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub(crate) fn random<const N: usize>() -> [u8; N] {
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

/// The platform's command side and read models.
pub struct Commands {
    pub log: Log,
    /// This gateway's export jobs: an erasure withdraws the workspace's
    /// (their files hold texts in the clear).
    pub exports: std::sync::OnceLock<crate::exports::Exports>,
    pub acl: Readers,
    pub history: Readers,
    pub acl_progress: Progress,
    pub history_progress: Progress,
    /// The unread model (read markers and counts).
    pub unreads: Readers,
    pub unreads_progress: Progress,
    /// The presence bucket, opened on first use (`@here` recipients).
    presence: Mutex<Option<async_nats::jetstream::kv::Store>>,
    operator_token_hash: Option<String>,
    /// `serve --read-only`: the live ACL model of the directory the view
    /// was rebuilt from. A token must be good there too (not revoked, its
    /// user not deactivated since the view's moment), and admin rights
    /// need both; without it a view admits the operator only.
    pub live_acl: std::sync::OnceLock<Readers>,
    /// Highest stream sequence of an acknowledged append through this
    /// process that changes the ACL model (anything but a message post).
    /// Decisions wait for the ACL model to reach it, so a user's own
    /// archive/leave/create is in force for that user's next request.
    acl_acked: AtomicU64,
    /// Token hash → user, for a few seconds: authentication is on every
    /// request. Access changes seen on the log evict their entries at once
    /// ([`Commands::access_changed`]).
    sessions: Mutex<HashMap<String, (UserCtx, Instant)>>,
    /// Bumped by every access change: a lookup that overlapped one is not
    /// cached.
    access_gen: AtomicU64,
    /// Highest stream sequence of an access change this gateway has seen:
    /// authentication waits for the ACL model to have folded it.
    access_seen: AtomicU64,
    /// Last use of each token this gateway noted (token id → unix ms), and
    /// the shared bucket where it is kept for `GET /v1/tokens`.
    token_use: accounts::TokenUse,
    /// Password and invite stores, and the sign-in attempt limits.
    pub sign_in: sessions::SignIn,
    /// Token hashes found in no user after the ACL model was caught up to
    /// a log head read after the request arrived, for a few seconds.
    unknown_tokens: Mutex<HashMap<String, Instant>>,
    /// The log head for refusals, asked of JetStream by one request at a
    /// time and at most every 50 ms.
    head: head::HeadProbe,
    /// The files bucket and the upload limit.
    files: files::Files,
    /// The notification-queue read model (preferences, notifications).
    pub notifications: ReadModel,
}

/// A read model's readers and how far its projector has folded the log.
#[derive(Clone)]
pub struct ReadModel {
    pub readers: Readers,
    pub progress: Progress,
}

impl Commands {
    /// The command side over the log and the read models, each with its
    /// projector's progress.
    #[allow(clippy::too_many_arguments)] // one per read model and service
    pub fn new(
        log: Log,
        (acl, acl_progress): (Readers, Progress),
        (history, history_progress): (Readers, Progress),
        unreads: (Readers, Progress),
        operator_token_hash: Option<String>,
        files: files::Files,
        notifications: ReadModel,
    ) -> Commands {
        Commands {
            log,
            exports: std::sync::OnceLock::new(),
            acl,
            history,
            acl_progress,
            history_progress,
            unreads: unreads.0,
            unreads_progress: unreads.1,
            presence: Mutex::new(None),
            operator_token_hash,
            live_acl: std::sync::OnceLock::new(),
            acl_acked: AtomicU64::new(0),
            sessions: Mutex::new(HashMap::new()),
            access_gen: AtomicU64::new(0),
            access_seen: AtomicU64::new(0),
            token_use: accounts::TokenUse::default(),
            sign_in: sessions::SignIn::default(),
            unknown_tokens: Mutex::new(HashMap::new()),
            head: head::HeadProbe::default(),
            files,
            notifications,
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
            && !(wait(&self.acl_progress, seq).await && wait(&self.history_progress, seq).await)
        {
            return Err(behind("the read models are"));
        }
        Ok(())
    }

    /// Catches the ACL model up to the log head as of some moment after
    /// `since` (bounded), so a refusal is never a stale answer. The head
    /// comes from the shared probe (see `head`): a crowd of refusals costs
    /// one JetStream request per [`head::PROBE_INTERVAL`], not one each.
    async fn acl_catch_up(&self, since: tokio::time::Instant) -> ApiResult<()> {
        let head = self.head.head_since(since, || self.log.last_seq()).await?;
        if !wait(&self.acl_progress, head).await {
            return Err(behind("the membership read model is"));
        }
        Ok(())
    }

    /// Waits until the read models a decision consults have applied what
    /// the decision must see: the basis (the subject head as last read from
    /// the server), every ACL change this process acknowledged, and on a
    /// re-check before a refusal, the whole log head. `history` also waits
    /// for the history model (decisions about thread roots).
    async fn models_at(&self, basis: Basis, history: bool) -> ApiResult<()> {
        let mut seq = basis.must_see.max(self.acl_acked.load(Ordering::Acquire));
        if basis.recheck {
            seq = seq.max(self.log.last_seq().await?);
        }
        if !wait(&self.acl_progress, seq).await {
            return Err(behind("the membership read model is"));
        }
        if history && !wait(&self.history_progress, seq.max(self.log.last_acked())).await {
            return Err(behind("the history read model is"));
        }
        Ok(())
    }

    /// Whether state read while the ACL model stood at `read_at` may serve a
    /// decision on `basis` (it reflects everything the basis requires), so
    /// it need not be read again under the subject's append lock.
    fn covers(&self, read_at: u64, basis: Basis) -> bool {
        !basis.recheck
            && read_at >= basis.must_see
            && read_at >= self.acl_acked.load(Ordering::Acquire)
    }

    /// Appends the verifier (SHA-256) of a token about to be issued, on
    /// the workspace's verifier subject, outside the replayable `sb.<ws>.>`
    /// (README "Replay credentials"). The event that makes the token live
    /// (`TokenIssued`, `UserAdded`) is appended after it; a verifier no such
    /// event follows is ignored by the ACL fold.
    async fn append_verifier(
        &self,
        ws: &str,
        token_id: &str,
        user_id: &str,
        token_hash: String,
    ) -> ApiResult<()> {
        let body = Body::TokenVerifier(switchboard_core::events::TokenVerifier {
            token_id: token_id.to_string(),
            user_id: user_id.to_string(),
            token_hash,
        });
        self.log
            .append(&switchboard_streams::subjects::verifiers(ws), None, |seq| {
                Self::envelope(ws, "", "", seq, body.clone())
            })
            .await?;
        Ok(())
    }

    fn envelope(ws: &str, channel: &str, actor: &str, seq: u64, body: Body) -> Envelope {
        Envelope {
            event_id: EventId::generate(ms(), random()).into_string(),
            workspace_id: ws.to_string(),
            channel_id: channel.to_string(),
            actor_id: actor.to_string(),
            ts_ms: now_ms(),
            channel_seq: seq,
            // Set by the append path from the head it appends after.
            fence_seq: 0,
            request_id: crate::observe::current_request_id(),

            prev_digest: Vec::new(),
            body: Some(body),
        }
    }
}

/// What a decision's result means for the append: an event to append, or a
/// refusal that is re-checked against fresh state before it is final.
fn settle<T>(
    basis: Basis,
    decided: Result<Body, DomainError>,
    envelope: impl FnOnce(u64, Body) -> Envelope,
    msg_id: Option<String>,
) -> ApiResult<Decision<T>> {
    match decided {
        Ok(body) => Ok(Decision::Append {
            envelope: envelope(basis.head.subject_seq + 1, body),
            msg_id,
        }),
        Err(e) => refuse(basis, e),
    }
}

/// A refusal against a cached head is re-made against the log head first.
fn refuse<T>(basis: Basis, e: DomainError) -> ApiResult<Decision<T>> {
    if basis.recheck {
        Err(e.into())
    } else {
        Ok(Decision::Recheck)
    }
}

/// A decision that there is nothing to append (the change is in place
/// already): against a cached head it is re-made against the log head
/// first, like a refusal, so "nothing to do" is never a stale answer.
/// [`settle`] for decisions that may find nothing to do (`Ok(None)`: the
/// effect is already in place), which is an answer only once re-checked.
fn settle_or_unchanged(
    basis: Basis,
    decided: Result<Option<Body>, DomainError>,
    envelope: impl FnOnce(u64, Body) -> Envelope,
) -> ApiResult<Decision<()>> {
    match decided {
        Ok(Some(body)) => settle(basis, Ok(body), envelope, None),
        Ok(None) => unchanged(basis, ()),
        Err(e) => refuse(basis, e),
    }
}

fn unchanged<T>(basis: Basis, answer: T) -> ApiResult<Decision<T>> {
    if basis.recheck {
        Ok(Decision::Done(answer))
    } else {
        Ok(Decision::Recheck)
    }
}

async fn wait(progress: &Progress, seq: u64) -> bool {
    seq == 0 || progress.wait_for(seq, FRESHNESS_WAIT).await
}

fn behind(what: &str) -> ApiError {
    ApiError::unavailable(format!("{what} catching up with the log; retry shortly"))
}
