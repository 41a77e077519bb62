//! The workers: pull due notifications from the shared work queue, decide
//! what each still deserves (nothing, a hold until DND ends, or delivery),
//! deliver the live frame and the signed webhook, and retry or dead-letter.
//!
//! Rules, in order, for each job (see the README, "Push delivery"):
//! 1. the notification as the model has it now (after the model reached
//!    the job's stream sequence): gone, withdrawn, read or acked → dropped;
//!    every model a job is judged by (notifications, ACL, push
//!    configuration) is read only once it has reached that point (or
//!    whatever this gateway appended since), else the job is retried soon;
//! 2. the user may no longer read the channel (left, removed, deactivated)
//!    → dropped;
//! 3. the user is in do-not-disturb → held: back on the queue until DND ends
//!    (not a failure, not sent);
//! 4. due: the live `notification` frame goes to the user's open
//!    connections (once), then the webhook POST — skipped when the user is
//!    online and one of the user's connections on this gateway is
//!    subscribed to the channel (they are looking at it);
//! 5. non-2xx, timeout or connection error → retried after an exponential
//!    backoff with jitter; past `retry_for` since the first failure, or
//!    after `max_attempts` failures → dead-lettered (kept for admins).

use super::{jitter, Push, DEAD_STREAM, QUEUE_STREAM, WORKERS};
use crate::commands::{now_ms, Commands};
use crate::realtime::Realtime;
use async_nats::jetstream;
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::message::AckKind;
use async_nats::jetstream::stream::DirectGetErrorKind;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::authz::{self, Action, Caller};
use switchboard_core::ids::{ChannelId, UserId, WorkspaceId};
use switchboard_core::push::{backoff, is_private_ip, sign, PushUrl};
use switchboard_core::time::rfc3339_ms;
use switchboard_projections::acl::AclDirectory;
use switchboard_projections::notifications::{self, NotificationRow};
use switchboard_projections::push as push_model;
use tokio_util::sync::CancellationToken;

/// A queued job: which notification, and the stream sequence of the event
/// that created it (the model must have applied it before the job is
/// judged).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub workspace_id: String,
    pub user_id: String,
    pub stream_seq: u64,
}

/// Delivery state of one notification, shared by every gateway (KV).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    #[serde(default)]
    live_sent: bool,
    #[serde(default)]
    failures: u32,
    #[serde(default)]
    first_failed_ms: i64,
    #[serde(default)]
    last_status: Option<u16>,
    #[serde(default)]
    last_error: Option<String>,
    /// Delivered (2xx), suppressed or dead-lettered: never sent again.
    #[serde(default)]
    done: bool,
}

/// A notification whose webhook kept failing, as admins list it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetter {
    pub id: String,
    pub workspace_id: String,
    pub user_id: String,
    pub kind: String,
    pub channel_id: String,
    pub message_id: String,
    /// Why it was given up: `retry_window_exceeded` or `max_attempts`.
    pub reason: String,
    /// The last HTTP status the receiver answered, if any.
    pub last_status: Option<u16>,
    /// The last error (a timeout, a refused connection), if no status.
    pub last_error: Option<String>,
    pub attempts: u32,
    pub url: String,
    pub first_failed_at: String,
    pub dead_at: String,
}

/// What to do with a job after handling it.
enum Verdict {
    /// Done (delivered, dropped or dead-lettered).
    Ack,
    /// Back on the queue after this long.
    Retry(Duration),
}

/// What the workers need besides [`Push`].
pub struct Deps {
    pub core: Arc<Commands>,
    pub realtime: Arc<Realtime>,
}

/// Runs this gateway's workers on the shared consumer until `cancel`:
/// then no new job is taken and the jobs in hand finish (each is bounded
/// by the webhook timeout), so none waits out the ack window elsewhere.
pub async fn run_workers(push: Arc<Push>, deps: Arc<Deps>, cancel: CancellationToken) {
    let mut pause = Duration::from_millis(200);
    while !cancel.is_cancelled() {
        if let Err(e) = work(push.clone(), deps.clone(), cancel.clone()).await {
            tracing::warn!(error = %e, "push: workers stopped; restarting");
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

async fn work(push: Arc<Push>, deps: Arc<Deps>, cancel: CancellationToken) -> Result<(), String> {
    let consumer = push
        .queue
        .get_or_create_consumer(
            WORKERS,
            pull::Config {
                durable_name: Some(WORKERS.into()),
                ack_policy: AckPolicy::Explicit,
                ack_wait: push.config.ack_wait,
                max_deliver: -1,
                // Jobs held for do-not-disturb wait on the queue; they must
                // not fill an ack-pending cap (pull requests bound what a
                // worker holds).
                max_ack_pending: -1,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("push consumer on {QUEUE_STREAM}: {e}"))?;
    let n = push.config.concurrency.max(1);
    let messages = consumer
        .stream()
        .max_messages_per_batch(n)
        // Short pull requests: should one go unanswered (a server restart,
        // a lost reply), the next is only a few seconds away.
        .heartbeat(Duration::from_secs(2))
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .map_err(|e| format!("pulling from {QUEUE_STREAM}: {e}"))?;
    messages
        .take_until(cancel.cancelled_owned())
        .for_each_concurrent(n, |m| {
            let (push, deps) = (push.clone(), deps.clone());
            async move {
                let m = match m {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::debug!(error = %e, "push: pull");
                        return;
                    }
                };
                let verdict = match serde_json::from_slice::<Job>(&m.payload) {
                    Ok(job) => handle(&push, &deps, &job, &m).await,
                    Err(_) => Verdict::Ack, // not ours: drop it
                };
                let ack = match verdict {
                    Verdict::Ack => AckKind::Ack,
                    Verdict::Retry(d) => AckKind::Nak(Some(d)),
                };
                if let Err(e) = m.ack_with(ack).await {
                    tracing::debug!(error = %e, "push: ack");
                }
            }
        })
        .await;
    Err("the pull stream ended".into())
}

/// Retry soon: the model or NATS is behind or away (not the receiver's
/// fault, not counted as a failure).
const NOT_READY: Duration = Duration::from_secs(1);

async fn handle(push: &Push, deps: &Deps, job: &Job, m: &jetstream::Message) -> Verdict {
    let mut state = match push.load_state(&job.id).await {
        Ok(s) => s,
        Err(_) => return Verdict::Retry(NOT_READY),
    };
    if state.done {
        return Verdict::Ack;
    }
    // 1. The notification as it stands now: the models must have applied
    // the event that created it and everything this gateway knows was
    // appended since (an edit or a removal just acknowledged here).
    let at = deps.core.log.last_acked().max(job.stream_seq);
    if !deps
        .core
        .notifications
        .progress
        .wait_for(at, Duration::from_secs(3))
        .await
    {
        return Verdict::Retry(NOT_READY);
    }
    let id = job.id.clone();
    let row = match deps
        .core
        .notifications
        .readers
        .read(move |c| notifications::get(c, &id))
        .await
    {
        Ok(Some(r)) => r,
        Ok(None) => return Verdict::Ack,
        Err(_) => return Verdict::Retry(NOT_READY),
    };
    if row.state != "pending" {
        push.finish(&job.id, &mut state).await;
        return Verdict::Ack;
    }
    // 2. May the user still read the channel (the ACL model as of `at`)?
    if !deps
        .core
        .acl_progress
        .wait_for(at, Duration::from_secs(3))
        .await
    {
        return Verdict::Retry(NOT_READY);
    }
    match may_read(&deps.core, &row).await {
        Some(true) => {}
        Some(false) => {
            push.finish(&job.id, &mut state).await;
            return Verdict::Ack;
        }
        None => return Verdict::Retry(NOT_READY),
    }
    // 3. Do not disturb: hold it until DND ends.
    let now = now_ms();
    match dnd_until(deps, &row, now).await {
        Some(Some(until)) if until > now => {
            let wait = Duration::from_millis((until - now) as u64 + 50);
            return Verdict::Retry(wait);
        }
        Some(_) => {}
        None => return Verdict::Retry(NOT_READY),
    }
    // 4. Due: the live frame (once), then the webhook.
    if !state.live_sent {
        send_live_frame(deps, &row).await;
        state.live_sent = true;
        // Kept at once, so a retry below never sends the frame again.
        if push.save_state(&job.id, &state).await.is_err() {
            tracing::debug!(id = %job.id, "push: live-frame mark not saved");
        }
    }
    if looking_at_it(deps, &row).await {
        push.finish(&job.id, &mut state).await;
        return Verdict::Ack;
    }
    // The webhook in force: the push model, too, must have applied the
    // log as far as the job is judged (`at`). A gateway whose push model
    // lags would otherwise read "no webhook" (set a moment before the
    // message, through another gateway) and drop the job as delivered.
    if !push.progress.wait_for(at, Duration::from_secs(3)).await {
        return Verdict::Retry(NOT_READY);
    }
    let ws = row.workspace_id.clone();
    let url = match push.model.read(move |c| push_model::url_of(c, &ws)).await {
        Ok(u) => u,
        Err(_) => return Verdict::Retry(NOT_READY),
    };
    let Some(url) = url else {
        // No webhook: the live frame was the delivery.
        push.finish(&job.id, &mut state).await;
        return Verdict::Ack;
    };
    let failure = match push.secret(&row.workspace_id, &url).await {
        Ok(Some(secret)) => {
            // The checks above may have waited: renew the job's ack window
            // so the POST (bounded by the timeout, which is shorter than
            // the window) finishes inside it.
            let _ = m.ack_with(AckKind::Progress).await;
            match post(push, &url, &secret, &row).await {
                Ok(()) => {
                    push.finish(&job.id, &mut state).await;
                    return Verdict::Ack;
                }
                Err(f) => f,
            }
        }
        // A URL in force always had its secret stored first; if it is
        // gone, that is a failure like any other (retried, then
        // dead-lettered), never a silent drop.
        Ok(None) => failed("no signing secret is stored for the webhook URL in force"),
        Err(_) => return Verdict::Retry(NOT_READY),
    };
    // 5. Failed: retry later, or give up.
    let now = now_ms();
    if state.failures == 0 {
        state.first_failed_ms = now;
    }
    state.failures += 1;
    state.last_status = failure.status;
    state.last_error = failure.error;
    let waited = Duration::from_millis((now - state.first_failed_ms).max(0) as u64);
    let reason = if state.failures >= push.config.max_attempts {
        Some("max_attempts")
    } else if waited >= push.config.retry_for {
        Some("retry_window_exceeded")
    } else {
        None
    };
    if let Some(reason) = reason {
        if push.dead_letter(&row, &state, reason, &url).await.is_err() {
            let _ = push.save_state(&job.id, &state).await;
            return Verdict::Retry(NOT_READY);
        }
        push.finish(&job.id, &mut state).await;
        return Verdict::Ack;
    }
    let _ = push.save_state(&job.id, &state).await;
    let c = &push.config;
    Verdict::Retry(backoff(
        state.failures,
        c.backoff_base,
        c.backoff_max,
        jitter(),
    ))
}

/// Whether the notification's user may read its channel now (an active
/// user and a reader of the channel); `None` when the model cannot say.
async fn may_read(core: &Commands, row: &NotificationRow) -> Option<bool> {
    let caller = Caller {
        workspace_id: WorkspaceId::from_trusted(row.workspace_id.clone()),
        user_id: UserId::from_trusted(row.user_id.clone()),
        admin: false,
    };
    let channel = ChannelId::from_trusted(row.channel_id.clone());
    core.acl
        .read(move |c| {
            // A deactivated user keeps its memberships (for reactivation)
            // but reads nothing, pushes included.
            let active: bool = c
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM users
                                    WHERE id = ?1 AND workspace_id = ?2 AND NOT deactivated)",
                )?
                .query_row(
                    [caller.user_id.as_str(), caller.workspace_id.as_str()],
                    |r| r.get(0),
                )?;
            Ok(active
                && authz::authorize(&AclDirectory(c), &caller, &channel, Action::Read).is_ok())
        })
        .await
        .ok()
}

/// `Some(until)` when the user is in do-not-disturb now (`Some(None)`
/// when not); `None` when the model cannot say.
async fn dnd_until(deps: &Deps, row: &NotificationRow, now: i64) -> Option<Option<i64>> {
    let (ws, user) = (row.workspace_id.clone(), row.user_id.clone());
    let prefs = deps
        .core
        .notifications
        .readers
        .read(move |c| notifications::prefs(c, &ws, &user))
        .await
        .ok()?;
    Some(switchboard_core::commands::preferences::dnd_active_until(
        &prefs, now,
    ))
}

/// The live frame, to every open connection of the user on any gateway.
async fn send_live_frame(deps: &Deps, row: &NotificationRow) {
    let frame = serde_json::json!({
        "type": "notification",
        "id": row.id,
        "kind": row.kind,
        "channel_id": row.channel_id,
        "message_id": row.message_id,
        "text": row.text,
        "ts": rfc3339_ms(row.ts_ms),
    });
    let subject = crate::realtime::subjects::notify(&row.workspace_id, &row.user_id);
    let _ = deps
        .realtime
        .hub
        .client()
        .publish(subject, frame.to_string().into())
        .await;
}

/// The user is online and one of the user's connections on this gateway
/// is subscribed to the channel: they see the message as it arrives.
async fn looking_at_it(deps: &Deps, row: &NotificationRow) -> bool {
    if !deps
        .realtime
        .hub
        .user_follows(&row.workspace_id, &row.user_id, &row.channel_id)
    {
        return false;
    }
    let status = deps
        .realtime
        .presence_of(&row.workspace_id, std::slice::from_ref(&row.user_id))
        .await;
    status.first().is_some_and(|(_, s)| s == "online")
}

/// Why a POST did not acknowledge the notification.
struct Failure {
    status: Option<u16>,
    error: Option<String>,
}

fn failed(error: impl Into<String>) -> Failure {
    Failure {
        status: None,
        error: Some(error.into()),
    }
}

/// The webhook's body (the public payload; README "Push delivery").
pub fn payload(row: &NotificationRow) -> serde_json::Value {
    serde_json::json!({
        "id": row.id,
        "workspace_id": row.workspace_id,
        "user_id": row.user_id,
        "kind": row.kind,
        "channel_id": row.channel_id,
        "message_id": row.message_id,
        "text": row.text,
        "ts": rfc3339_ms(row.ts_ms),
    })
}

async fn post(
    push: &Push,
    url: &str,
    secret: &switchboard_core::push::WebhookSecret,
    row: &NotificationRow,
) -> Result<(), Failure> {
    let parsed = PushUrl::parse(url).map_err(|e| failed(e.to_string()))?;
    // An IP literal is not resolved, so the resolver cannot refuse it.
    if let Ok(ip) = parsed.host().parse::<std::net::IpAddr>() {
        if is_private_ip(ip) && !push.config.allow_private {
            return Err(failed("private address refused"));
        }
    }
    let body = payload(row).to_string();
    let ts = now_ms() / 1000;
    let signature = sign(secret, &row.id, ts, body.as_bytes());
    let request = hyper::Request::post(url)
        .header("content-type", "application/json")
        .header("user-agent", "switchboard-push/1")
        .header("webhook-id", &row.id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .map_err(|_| failed("invalid request"))?;
    let sent = tokio::time::timeout(push.config.timeout, push.http.request(request)).await;
    match sent {
        Err(_) => Err(failed("timed out")),
        Ok(Ok(r)) if r.status().is_success() => Ok(()),
        Ok(Ok(r)) => Err(Failure {
            status: Some(r.status().as_u16()),
            error: None,
        }),
        Ok(Err(e)) if e.is_connect() => Err(failed("connection failed")),
        Ok(Err(_)) => Err(failed("request failed")),
    }
}

impl Push {
    async fn load_state(&self, id: &str) -> Result<State, String> {
        match self.state.get(id).await {
            Ok(Some(b)) => Ok(serde_json::from_slice(&b).unwrap_or_default()),
            Ok(None) => Ok(State::default()),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn save_state(&self, id: &str, state: &State) -> Result<(), String> {
        let bytes = serde_json::to_vec(state).map_err(|e| e.to_string())?;
        self.state
            .put(id, bytes.into())
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Marks the notification done: a redelivered or re-enqueued job for it
    /// is dropped.
    async fn finish(&self, id: &str, state: &mut State) {
        state.done = true;
        if let Err(e) = self.save_state(id, state).await {
            tracing::warn!(error = %e, %id, "push: could not mark done");
        }
    }

    async fn dead_letter(
        &self,
        row: &NotificationRow,
        state: &State,
        reason: &str,
        url: &str,
    ) -> Result<(), String> {
        let dead = DeadLetter {
            id: row.id.clone(),
            workspace_id: row.workspace_id.clone(),
            user_id: row.user_id.clone(),
            kind: row.kind.clone(),
            channel_id: row.channel_id.clone(),
            message_id: row.message_id.clone(),
            reason: reason.to_string(),
            last_status: state.last_status,
            last_error: state.last_error.clone(),
            attempts: state.failures,
            url: url.to_string(),
            first_failed_at: rfc3339_ms(state.first_failed_ms),
            dead_at: rfc3339_ms(now_ms()),
        };
        let bytes = serde_json::to_vec(&dead).map_err(|e| e.to_string())?;
        let ack = self
            .js
            .publish(format!("push_dead.{}", row.workspace_id), bytes.into())
            .await
            .map_err(|e| e.to_string())?;
        ack.await.map_err(|e| e.to_string())?;
        tracing::info!(id = %row.id, %reason, "push: dead-lettered");
        Ok(())
    }

    /// The workspace's dead letters, newest first, at most `limit`.
    pub async fn dead_letters(&self, ws: &str, limit: usize) -> Result<Vec<DeadLetter>, String> {
        let subject = format!("push_dead.{ws}");
        match self.dead.direct_get_last_for_subject(&subject).await {
            Ok(_) => {}
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.to_string()),
        }
        let consumer = self
            .dead
            .create_consumer(pull::OrderedConfig {
                deliver_policy: DeliverPolicy::All,
                filter_subject: subject,
                ..Default::default()
            })
            .await
            .map_err(|e| format!("{DEAD_STREAM}: {e}"))?;
        let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
        let mut kept = std::collections::VecDeque::with_capacity(limit);
        let read = async {
            while let Some(m) = messages.next().await {
                let m = m.map_err(|e| e.to_string())?;
                let pending = m.info().map(|i| i.pending).unwrap_or(0);
                if let Ok(d) = serde_json::from_slice::<DeadLetter>(&m.payload) {
                    if kept.len() == limit {
                        kept.pop_front();
                    }
                    kept.push_back(d);
                }
                if pending == 0 {
                    break;
                }
            }
            Ok::<_, String>(())
        };
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .map_err(|_| "reading dead letters timed out".to_string())??;
        Ok(kept.into_iter().rev().collect())
    }
}
