//! The running platform: the log handle, the projectors (each a supervised
//! task with a cancellation path), real-time delivery (its streams end when
//! [`Platform::closing`] fires), and the shared state handlers see.

use crate::commands::files::{self, Files, FilesConfig};
use crate::commands::{Commands, ReadModel};
use crate::exports::Exports;
use crate::limits::{Limiter, RateLimits};
use crate::push::{Push, PushConfig};
use crate::realtime::{Realtime, RealtimeConfig};
use crate::search::{SearchConfig, SearchIndex};
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use switchboard_projections::acl::Acl;
use switchboard_projections::history::History;
use switchboard_projections::notifications::Notifications;
use switchboard_projections::push::Push as PushModel;
use switchboard_projections::search::backend::{Fts5Backend, SearchBackend};
use switchboard_projections::search::Search;
use switchboard_projections::unreads::Unreads;
use switchboard_projections::{Progress, Projector, Readers, Runner};
use switchboard_streams::Log;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    pub commands: Arc<Commands>,
    pub realtime: Arc<Realtime>,
    /// Push delivery (`None` where it does not run, e.g. the admin CLI).
    pub push: Option<Arc<Push>>,
    /// The search read model.
    pub search: SearchIndex,
    /// The log head seen at start-up: `/readyz` is green once every
    /// projector has applied it.
    pub startup_head: u64,
    /// The listener serves TLS (`serve --tls-cert/--tls-key`): session
    /// cookies must then be `Secure`. Set by `serve` on the state
    /// [`Platform::state`] returns (false there).
    pub tls_enabled: bool,

    /// Rate limits (per token, per address, per WebSocket connection).
    pub limits: Arc<Limiter>,
    /// Export jobs (`/v1/admin/exports`).
    pub exports: Exports,
}

/// Projectors plus the command side, running until `shutdown`.
pub struct Platform {
    pub commands: Arc<Commands>,
    pub realtime: Arc<Realtime>,
    pub push: Option<Arc<Push>>,
    pub search: SearchIndex,
    pub startup_head: u64,
    /// Rate limits; the defaults until [`Platform::set_rate_limits`].
    pub limits: Arc<Limiter>,
    /// Export jobs, writing under `<data>/exports/`.
    pub exports: Exports,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

/// How long shutdown waits for WebSocket sessions to send their close
/// frames.
pub const SESSIONS_GRACE: Duration = Duration::from_secs(5);

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn model_path(data: &Path, name: &str) -> std::path::PathBuf {
    data.join(format!("{name}.db"))
}

fn spawn_projector<P: Projector>(
    data: &Path,
    log: &Log,
    tracker: &TaskTracker,
    cancel: &CancellationToken,
) -> Result<(Readers, Progress), BoxError> {
    let path = model_path(data, P::NAME);
    let (runner, progress) = Runner::<P>::open(&path)
        .map_err(|e| format!("opening read model {}: {e}", path.display()))?;
    let (log, cancel) = (log.clone(), cancel.clone());
    tracker.spawn(async move {
        runner.run(log, cancel).await;
    });
    Ok((Readers::new(&path), progress))
}

/// Connects to OpenSearch, installs the template and indexes, and starts
/// the indexer that feeds it from the local search model.
#[cfg(feature = "opensearch")]
async fn open_opensearch(
    url: &str,
    log: &Log,
    local: (Readers, Progress),
    tracker: &TaskTracker,
    cancel: &CancellationToken,
) -> Result<(Arc<dyn SearchBackend>, Arc<AtomicU64>), BoxError> {
    use switchboard_projections::search::{indexer, opensearch::OpenSearchBackend};
    let backend = OpenSearchBackend::connect(url)?;
    backend
        .install()
        .await
        .map_err(|e| format!("OpenSearch at {url}: {e}"))?;
    let backend: Arc<dyn SearchBackend> = Arc::new(backend);
    let applied = Arc::new(AtomicU64::new(0));
    tracker.spawn(indexer::run(
        backend.clone(),
        log.clone(),
        local.0,
        local.1,
        applied.clone(),
        cancel.clone(),
    ));
    Ok((backend, applied))
}

#[cfg(not(feature = "opensearch"))]
async fn open_opensearch(
    _url: &str,
    _log: &Log,
    _local: (Readers, Progress),
    _tracker: &TaskTracker,
    _cancel: &CancellationToken,
) -> Result<(Arc<dyn SearchBackend>, Arc<AtomicU64>), BoxError> {
    Err("this build has no OpenSearch backend: build with `--features opensearch`".into())
}

impl Platform {
    /// Opens the read models under `data` and starts their projectors, and
    /// push delivery when `push` is given.
    #[allow(clippy::too_many_arguments)] // one per subsystem's settings
    pub async fn start(
        log: Log,
        data: &Path,
        operator_token_hash: Option<String>,
        realtime: RealtimeConfig,
        files_config: FilesConfig,
        push: Option<PushConfig>,
        search: SearchConfig,
    ) -> Result<Platform, BoxError> {
        std::fs::create_dir_all(data)
            .map_err(|e| format!("creating data dir {}: {e}", data.display()))?;
        let startup_head = log.last_seq().await?;
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let (acl, acl_progress) = spawn_projector::<Acl>(data, &log, &tracker, &cancel)?;
        let (history, history_progress) =
            spawn_projector::<History>(data, &log, &tracker, &cancel)?;
        let unreads = spawn_projector::<Unreads>(data, &log, &tracker, &cancel)?;
        let (readers, progress) = spawn_projector::<Notifications>(data, &log, &tracker, &cancel)?;
        let notifications = ReadModel { readers, progress };
        let (push_model, push_progress) =
            spawn_projector::<PushModel>(data, &log, &tracker, &cancel)?;
        let (search_readers, search_progress) =
            spawn_projector::<Search>(data, &log, &tracker, &cancel)?;
        let (search_backend, external_applied) = match search {
            SearchConfig::Fts5 => (
                Arc::new(Fts5Backend::reader(search_readers.clone())) as Arc<dyn SearchBackend>,
                None,
            ),
            SearchConfig::OpenSearch { url } => open_opensearch(
                &url,
                &log,
                (search_readers.clone(), search_progress.clone()),
                &tracker,
                &cancel,
            )
            .await
            .map(|(b, applied)| (b, Some(applied)))?,
        };
        let files = Files::open(&log, files_config.max_bytes).await?;
        tracker.spawn(files::reap(
            files.clone(),
            history.clone(),
            history_progress.clone(),
            cancel.clone(),
        ));
        let commands = Arc::new(Commands::new(
            log,
            (acl, acl_progress),
            (history, history_progress),
            unreads,
            operator_token_hash,
            files,
            notifications,
        ));
        commands.note_startup_head(startup_head);
        tracker.spawn(files::expire_loop(
            commands.clone(),
            files_config.unattached_ttl,
            cancel.clone(),
        ));
        tracker.close();
        let realtime =
            Arc::new(Realtime::new(commands.clone(), realtime, cancel.child_token()).await);
        realtime.start_access_router().await;
        let push = match push {
            Some(config) => {
                let push =
                    Arc::new(Push::open(&commands.log, config, push_model, push_progress).await?);
                let deps = Arc::new(crate::push::Deps {
                    core: commands.clone(),
                    realtime: realtime.clone(),
                });
                tracker.spawn(crate::push::run_enqueuer(
                    push.clone(),
                    commands.notifications.clone(),
                    cancel.clone(),
                ));
                tracker.spawn(crate::push::run_workers(push.clone(), deps, cancel.clone()));
                Some(push)
            }
            None => None,
        };
        Ok(Platform {
            commands,
            realtime,
            push,
            search: SearchIndex {
                readers: search_readers,
                progress: search_progress,
                backend: search_backend,
                external_applied,
            },
            startup_head,
            limits: Arc::new(Limiter::default()),
            exports: Exports::new(data),
            cancel,
            tracker,
        })
    }

    pub fn state(&self) -> AppState {
        AppState {
            commands: self.commands.clone(),
            realtime: self.realtime.clone(),
            push: self.push.clone(),
            search: self.search.clone(),
            startup_head: self.startup_head,
            tls_enabled: false,

            limits: self.limits.clone(),
            exports: self.exports.clone(),
        }
    }

    /// Replaces the rate limits (before [`Platform::state`] is taken).
    pub fn set_rate_limits(&mut self, limits: RateLimits) {
        self.limits = Arc::new(Limiter::new(limits));
    }

    /// Waits until every projector has applied the log's current head.
    pub async fn catch_up(&self, timeout: Duration) -> Result<u64, BoxError> {
        let head = self.commands.log.last_seq().await?;
        if self.caught_up_to(head, timeout).await {
            Ok(head)
        } else {
            Err(format!("projectors did not reach stream sequence {head} in {timeout:?}").into())
        }
    }

    /// Waits (at most `timeout` in all) until every projector, push's
    /// included, has applied stream sequence `seq`.
    async fn caught_up_to(&self, seq: u64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let c = &self.commands;
        let push = self.push.as_ref().map(|p| &p.progress);
        for progress in [
            &c.acl_progress,
            &c.history_progress,
            &c.unreads_progress,
            &c.notifications.progress,
            &self.search.progress,
        ]
        .into_iter()
        .chain(push)
        {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if !progress.wait_for(seq, left).await {
                return false;
            }
        }
        true
    }

    /// Cancelled when shutdown begins (cancel it to begin): every
    /// WebSocket and SSE stream ends, so the HTTP server's graceful
    /// shutdown, which waits for open responses, can finish. Pass
    /// `closing().cancelled_owned()` to `with_graceful_shutdown`.
    pub fn closing(&self) -> CancellationToken {
        self.realtime.closing.clone()
    }

    /// Ends the real-time streams (waiting up to [`SESSIONS_GRACE`] for
    /// their close frames), lets the projectors apply every append this
    /// process acknowledged (at most `flush`, so a restart has nothing of
    /// its own to refold), then stops them. A projector stops only between
    /// batches: a batch it has begun is folded and committed with its
    /// checkpoint, never cut short.
    pub async fn shutdown(self, flush: Duration) {
        if !self.realtime.closed(SESSIONS_GRACE).await {
            tracing::warn!(
                "real-time sessions still closing after {SESSIONS_GRACE:?}; stopping anyway"
            );
        }
        let acked = self.commands.log.last_acked();
        if !self.caught_up_to(acked, flush).await {
            tracing::warn!(
                acked,
                "projectors had not applied every acknowledged append after {flush:?}; \
                 they resume from their checkpoints at the next start"
            );
        }
        self.cancel.cancel();
        self.tracker.wait().await;
    }
}
