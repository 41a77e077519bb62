//! The running platform: the log handle, the projectors (each a supervised
//! task with a cancellation path), real-time delivery (its streams end when
//! [`Platform::closing`] fires), and the shared state handlers see.

use crate::commands::files::{self, Files, FilesConfig};
use crate::commands::Commands;
use crate::realtime::{Realtime, RealtimeConfig};
use crate::search::SearchIndex;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use switchboard_projections::acl::Acl;
use switchboard_projections::history::History;
use switchboard_projections::search::Search;
use switchboard_projections::{Progress, Projector, Readers, Runner};
use switchboard_streams::Log;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What every handler gets.
#[derive(Clone)]
pub struct AppState {
    pub commands: Arc<Commands>,
    pub realtime: Arc<Realtime>,
    /// The search read model.
    pub search: SearchIndex,
    /// The log head seen at start-up: `/readyz` is green once every
    /// projector has applied it.
    pub startup_head: u64,
}

/// Projectors plus the command side, running until `shutdown`.
pub struct Platform {
    pub commands: Arc<Commands>,
    pub realtime: Arc<Realtime>,
    pub search: SearchIndex,
    pub startup_head: u64,
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

impl Platform {
    /// Opens the read models under `data` and starts their projectors.
    pub async fn start(
        log: Log,
        data: &Path,
        operator_token_hash: Option<String>,
        realtime: RealtimeConfig,
        files_config: FilesConfig,
    ) -> Result<Platform, BoxError> {
        std::fs::create_dir_all(data)
            .map_err(|e| format!("creating data dir {}: {e}", data.display()))?;
        let startup_head = log.last_seq().await?;
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let (acl, acl_progress) = spawn_projector::<Acl>(data, &log, &tracker, &cancel)?;
        let (history, history_progress) =
            spawn_projector::<History>(data, &log, &tracker, &cancel)?;
        let (search_readers, search_progress) =
            spawn_projector::<Search>(data, &log, &tracker, &cancel)?;
        let files = Files::open(&log, files_config.max_bytes).await?;
        tracker.spawn(files::reap(
            files.clone(),
            history.clone(),
            history_progress.clone(),
            cancel.clone(),
        ));
        let commands = Arc::new(Commands::new(
            log,
            acl,
            history,
            acl_progress,
            history_progress,
            operator_token_hash,
            files,
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
        Ok(Platform {
            commands,
            realtime,
            search: SearchIndex {
                readers: search_readers,
                progress: search_progress,
            },
            startup_head,
            cancel,
            tracker,
        })
    }

    pub fn state(&self) -> AppState {
        AppState {
            commands: self.commands.clone(),
            realtime: self.realtime.clone(),
            search: self.search.clone(),
            startup_head: self.startup_head,
        }
    }

    /// Waits until every projector has applied the log's current head.
    pub async fn catch_up(&self, timeout: Duration) -> Result<u64, BoxError> {
        let head = self.commands.log.last_seq().await?;
        let ok = self.commands.acl_progress.wait_for(head, timeout).await
            && self.commands.history_progress.wait_for(head, timeout).await
            && self.search.progress.wait_for(head, timeout).await;
        if ok {
            Ok(head)
        } else {
            Err(format!("projectors did not reach stream sequence {head} in {timeout:?}").into())
        }
    }

    /// Cancelled when shutdown begins (cancel it to begin): every
    /// WebSocket and SSE stream ends, so the HTTP server's graceful
    /// shutdown, which waits for open responses, can finish. Pass
    /// `closing().cancelled_owned()` to `with_graceful_shutdown`.
    pub fn closing(&self) -> CancellationToken {
        self.realtime.closing.clone()
    }

    /// Ends the real-time streams (waiting up to [`SESSIONS_GRACE`] for
    /// their close frames), then stops the projectors after their current
    /// batch.
    pub async fn shutdown(self) {
        if !self.realtime.closed(SESSIONS_GRACE).await {
            tracing::warn!(
                "real-time sessions still closing after {SESSIONS_GRACE:?}; stopping anyway"
            );
        }
        self.cancel.cancel();
        self.tracker.wait().await;
    }
}
