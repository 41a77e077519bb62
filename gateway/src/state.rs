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
use switchboard_projections::audit::Audit;
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
    /// The audit read model (`GET /v1/admin/audit`).
    pub audit: ReadModel,
    /// `serve --read-only`: no projector runs, every write and real-time
    /// route answers `403 read_only` (see [`Platform::start_read_only`]).
    pub read_only: bool,

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
    /// The audit read model.
    pub audit: ReadModel,
    /// Started by [`Platform::start_read_only`].
    pub read_only: bool,

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

/// Opens `P`'s read model under `data` and, unless `frozen`, starts its
/// projector. A frozen model (read-only serving) stays at its checkpoint:
/// its progress never moves.
fn spawn_projector<P: Projector>(
    data: &Path,
    log: &Log,
    tracker: &TaskTracker,
    cancel: &CancellationToken,
    frozen: bool,
) -> Result<(Readers, Progress), BoxError> {
    let path = model_path(data, P::NAME);
    let (runner, progress) = Runner::<P>::open(&path)
        .map_err(|e| format!("opening read model {}: {e}", path.display()))?;
    if !frozen {
        let (log, cancel) = (log.clone(), cancel.clone());
        tracker.spawn(async move {
            runner.run(log, cancel).await;
        });
    }
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
        Self::start_with(
            log,
            data,
            operator_token_hash,
            realtime,
            files_config,
            push,
            search,
            false,
        )
        .await
    }

    /// Serves the read models under `data` as they are, e.g. as of a past
    /// moment (`switchboard rebuild --until`): no projector runs, so no
    /// model moves past its checkpoint; the log handle is capped there
    /// ([`Log::read_only_at`]: every append is refused, the head reads as
    /// the bound); no housekeeping (upload expiry, push delivery, the
    /// access router) runs; search answers from the embedded FTS5 model.
    /// The routes refuse every write and real-time stream with
    /// `403 read_only` ([`AppState::read_only`]).
    pub async fn start_read_only(
        log: Log,
        data: &Path,
        operator_token_hash: Option<String>,
        files_config: FilesConfig,
    ) -> Result<Platform, BoxError> {
        Self::start_with(
            log,
            data,
            operator_token_hash,
            RealtimeConfig::default(),
            files_config,
            None,
            SearchConfig::Fts5,
            true,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn start_with(
        log: Log,
        data: &Path,
        operator_token_hash: Option<String>,
        realtime: RealtimeConfig,
        files_config: FilesConfig,
        push: Option<PushConfig>,
        search: SearchConfig,
        read_only: bool,
    ) -> Result<Platform, BoxError> {
        std::fs::create_dir_all(data)
            .map_err(|e| format!("creating data dir {}: {e}", data.display()))?;
        // Read-only: nothing will move, so there is nothing to wait for.
        let startup_head = if read_only { 0 } else { log.last_seq().await? };
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let frozen = read_only;
        let (acl, acl_progress) = spawn_projector::<Acl>(data, &log, &tracker, &cancel, frozen)?;
        let (history, history_progress) =
            spawn_projector::<History>(data, &log, &tracker, &cancel, frozen)?;
        let unreads = spawn_projector::<Unreads>(data, &log, &tracker, &cancel, frozen)?;
        let (readers, progress) =
            spawn_projector::<Notifications>(data, &log, &tracker, &cancel, frozen)?;
        let notifications = ReadModel { readers, progress };
        let (push_model, push_progress) =
            spawn_projector::<PushModel>(data, &log, &tracker, &cancel, frozen)?;
        let (search_readers, search_progress) =
            spawn_projector::<Search>(data, &log, &tracker, &cancel, frozen)?;
        let (readers, progress) = spawn_projector::<Audit>(data, &log, &tracker, &cancel, frozen)?;
        let audit = ReadModel { readers, progress };
        let log = if read_only {
            // The models' common position: waits for "the log head" are
            // then already satisfied, and nothing can be appended.
            let bound = [
                &acl_progress,
                &history_progress,
                &unreads.1,
                &notifications.progress,
                &push_progress,
                &search_progress,
                &audit.progress,
            ]
            .iter()
            .map(|p| p.current())
            .min()
            .unwrap_or(0);
            tracing::info!(
                bound,
                "read-only: serving the read models as of this log position"
            );
            log.read_only_at(bound)
        } else {
            log
        };
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
        if !read_only {
            tracker.spawn(files::reap(
                files.clone(),
                history.clone(),
                history_progress.clone(),
                cancel.clone(),
            ));
        }
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
        if !read_only {
            tracker.spawn(files::expire_loop(
                commands.clone(),
                files_config.unattached_ttl,
                cancel.clone(),
            ));
        }
        tracker.close();
        let realtime =
            Arc::new(Realtime::new(commands.clone(), realtime, cancel.child_token()).await);
        if !read_only {
            realtime.start_access_router().await;
        }
        let push = match push.filter(|_| !read_only) {
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
        let exports = Exports::new(data);
        let _ = commands.exports.set(exports.clone());
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
            audit,
            read_only,

            exports,
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
            audit: self.audit.clone(),
            read_only: self.read_only,

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
            &self.audit.progress,
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
