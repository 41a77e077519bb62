//! Push delivery: each due notification reaches the user's open
//! connections as a live `notification` frame and the workspace's webhook
//! as a signed POST (Standard Webhooks).
//!
//! How a notification travels:
//!
//! ```text
//! notifications model (a 'pending' row) → enqueuer (per gateway, cursor in KV)
//!   → SB_PUSH work queue (Nats-Msg-Id = notification id: one job per id
//!     inside the de-dup window, however many gateways enqueue it)
//!   → one shared durable pull consumer (every gateway's workers pull from
//!     it, so a job is with one worker at a time inside the ack window)
//!   → worker: re-read the notification (withdrawn/read/acked or the user
//!     no longer a member → drop; DND → back on the queue until it ends)
//!   → live frame (rt.<ws>.notify.<user>) + webhook POST
//!   → 2xx: ack; failure: NAK with exponential backoff and jitter; past the
//!     retry bound or attempt cap: dead-letter (SB_PUSH_DEAD), ack.
//! ```
//!
//! Invariants kept here:
//! - at-least-once, de-duplicable by id: a notification that is due is
//!   POSTed until a 2xx (or dead-lettered), always with `webhook-id` = its
//!   id; after a 2xx its id is marked done (KV) so a redelivered or
//!   re-enqueued job is dropped instead of sent again;
//! - the signing secret never enters the log: it lives in the `sb_push` KV
//!   bucket, written before the `PushConfigured` event is appended;
//! - webhooks never reach loopback, private or link-local addresses unless
//!   the operator allows them: checked when the URL is set and again on
//!   every connection (the resolver drops such addresses), and redirects
//!   are not followed.

mod deliver;
mod enqueue;
mod resolve;

use async_nats::jetstream::{self, kv, stream};
use std::time::Duration;
use switchboard_core::push::{PushUrl, WebhookSecret};
use switchboard_projections::{Progress, Readers};
use switchboard_streams::Log;

pub use deliver::{DeadLetter, Deps};

/// KV bucket of the webhook secrets (key: workspace id) and the
/// enqueuers' cursor. No expiry.
pub const SECRETS_BUCKET: &str = "sb_push";
/// KV bucket of per-notification delivery state (first failure, attempts,
/// done), expiring after [`STATE_TTL`].
pub const STATE_BUCKET: &str = "sb_push_state";
/// Work-queue stream of due notifications, subjects `push.<ws>.<user>`.
pub const QUEUE_STREAM: &str = "SB_PUSH";
/// Dead-letter stream, subjects `push_dead.<ws>`.
pub const DEAD_STREAM: &str = "SB_PUSH_DEAD";
/// The workers' shared durable consumer on [`QUEUE_STREAM`].
pub const WORKERS: &str = "push-workers";
/// A job's de-duplication window on the queue.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(3600);
/// How long delivery state (and so the "done" mark) is kept.
pub const STATE_TTL: Duration = Duration::from_secs(48 * 3600);
/// Dead letters kept per workspace (oldest dropped first).
pub const DEAD_PER_WORKSPACE: i64 = 1000;
/// Dead letters are kept this long.
pub const DEAD_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

/// The push settings of `serve`.
#[derive(Debug, Clone)]
pub struct PushConfig {
    /// A notification whose webhook keeps failing is dead-lettered this
    /// long after its first failure.
    pub retry_for: Duration,
    /// … or after this many failed attempts, whichever comes first.
    pub max_attempts: u32,
    /// First retry delay (doubling per failure, with jitter).
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// A webhook POST that has not answered by then failed.
    pub timeout: Duration,
    /// Allow webhooks on loopback/private/link-local addresses
    /// (`SWITCHBOARD_WEBHOOK_ALLOW_PRIVATE=1`).
    pub allow_private: bool,
    /// Jobs one gateway works on at once.
    pub concurrency: usize,
    /// How long a pulled job may be worked on before the queue hands it to
    /// another worker (a worker renews it just before the POST). Also how
    /// long a job in hand when nats-server restarts waits to come back.
    pub ack_wait: Duration,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            retry_for: Duration::from_secs(3600),
            max_attempts: 50,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            timeout: Duration::from_secs(5),
            allow_private: false,
            concurrency: 32,
            ack_wait: Duration::from_secs(15),
        }
    }
}

/// The push side of one gateway.
pub struct Push {
    pub config: PushConfig,
    js: jetstream::Context,
    secrets: kv::Store,
    state: kv::Store,
    queue: stream::Stream,
    dead: stream::Stream,
    http: resolve::Client,
    /// The push-configuration read model (workspace → URL).
    pub model: Readers,
    pub progress: Progress,
}

fn err(what: &str) -> impl Fn(&dyn std::fmt::Display) -> String + '_ {
    move |e| format!("{what}: {e}")
}

impl Push {
    /// Opens (creating if missing; idempotent) the push buckets and streams.
    pub async fn open(
        log: &Log,
        config: PushConfig,
        model: Readers,
        progress: Progress,
    ) -> Result<Push, String> {
        let js = jetstream::new(log.client().clone());
        let replicas = log.config().replicas;
        let secrets = kv_bucket(&js, SECRETS_BUCKET, Duration::ZERO, replicas).await?;
        let state = kv_bucket(&js, STATE_BUCKET, STATE_TTL, replicas).await?;
        let queue = js
            .get_or_create_stream(stream::Config {
                name: QUEUE_STREAM.into(),
                subjects: vec!["push.*.*".into()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                num_replicas: replicas,
                duplicate_window: DUPLICATE_WINDOW,
                ..Default::default()
            })
            .await
            .map_err(|e| err("creating the push queue")(&e))?;
        let dead = js
            .get_or_create_stream(stream::Config {
                name: DEAD_STREAM.into(),
                subjects: vec!["push_dead.*".into()],
                storage: stream::StorageType::File,
                num_replicas: replicas,
                max_messages_per_subject: DEAD_PER_WORKSPACE,
                max_age: DEAD_MAX_AGE,
                allow_direct: true,
                ..Default::default()
            })
            .await
            .map_err(|e| err("creating the dead-letter stream")(&e))?;
        let http = resolve::client(config.allow_private, config.timeout)?;
        Ok(Push {
            config,
            js,
            secrets,
            state,
            queue,
            dead,
            http,
            model,
            progress,
        })
    }

    /// The workspace's signing secret, if one is set.
    pub async fn secret(&self, ws: &str) -> Result<Option<WebhookSecret>, String> {
        let raw = self
            .secrets
            .get(ws)
            .await
            .map_err(|e| err("reading the push secret")(&e))?;
        Ok(raw
            .and_then(|b| String::from_utf8(b.to_vec()).ok())
            .and_then(|s| WebhookSecret::parse(&s).ok()))
    }

    /// Stores the workspace's signing secret (before the event that
    /// configures the URL is appended).
    pub async fn put_secret(&self, ws: &str, secret: &WebhookSecret) -> Result<(), String> {
        self.secrets
            .put(ws, secret.expose().into())
            .await
            .map(drop)
            .map_err(|e| err("storing the push secret")(&e))
    }

    /// Forgets the workspace's signing secret (after the URL was removed).
    pub async fn delete_secret(&self, ws: &str) -> Result<(), String> {
        self.secrets
            .delete(ws)
            .await
            .map_err(|e| err("deleting the push secret")(&e))
    }

    /// Refuses a URL whose host is, or resolves to, a loopback, private or
    /// link-local address, unless the operator allows them; and one that
    /// does not resolve at all.
    pub async fn check_reachable(&self, url: &PushUrl) -> Result<(), String> {
        if self.config.allow_private {
            return Ok(());
        }
        resolve::public_addrs(url.host(), url.port())
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

async fn kv_bucket(
    js: &jetstream::Context,
    bucket: &str,
    max_age: Duration,
    replicas: usize,
) -> Result<kv::Store, String> {
    if let Ok(store) = js.get_key_value(bucket).await {
        return Ok(store);
    }
    js.create_key_value(kv::Config {
        bucket: bucket.to_string(),
        history: 1,
        max_age,
        storage: stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("creating KV bucket {bucket}: {e}"))
}

/// A cheap pseudo-random number in [0, 1) (retry jitter only).
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

pub use deliver::run_workers;
pub use enqueue::run_enqueuer;
