//! Verifiable exports as an HTTP job for workspace admins, and the
//! `ExportMade` event every export leaves in the log (for the audit log).
//!
//! Invariant kept here: a job belongs to one workspace; it is found only by
//! that workspace's admins (a job id of another workspace is "not found").
//! Jobs live in this process (a restart forgets them; their directories
//! stay under `<data>/exports/`).

use crate::commands::now_ms;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use switchboard_core::events::{Body, Envelope, ExportMade};
use switchboard_core::ids::EventId;
use switchboard_streams::export::{self, ExportParams, Manifest};
use switchboard_streams::{subjects, AppendError, Appended, Log};

/// Appends `ExportMade` on the workspace subject: who exported what.
pub async fn record(
    log: &Log,
    actor: &str,
    export_id: &str,
    manifest: &Manifest,
) -> Result<Appended, AppendError> {
    let p = &manifest.params;
    let body = Body::ExportMade(ExportMade {
        export_id: export_id.to_string(),
        channel_id: p.channel.clone().unwrap_or_default(),
        since_ms: p.since_ms.unwrap_or(0),
        until_ms: p.until_ms.unwrap_or(0),
        first_stream_seq: manifest.first_stream_seq,
        last_stream_seq: manifest.last_stream_seq,
        lines: manifest.lines,
        chain_head: manifest.chain_head.clone(),
    });
    let ws = p.workspace.clone();
    log.append(&subjects::workspace(&ws), None, |seq| Envelope {
        event_id: EventId::generate(now_ms() as u64, crate::commands::random()).into_string(),
        workspace_id: ws.clone(),
        channel_id: String::new(),
        actor_id: actor.to_string(),
        ts_ms: now_ms(),
        channel_seq: seq,
        fence_seq: 0,
        prev_digest: Vec::new(),
        request_id: crate::observe::current_request_id(),
        body: Some(body.clone()),
    })
    .await
}

/// Where a job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Running,
    Done,
    Failed(String),
}

/// One export job.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub workspace: String,
    pub requested_by: String,
    pub params: ExportParams,
    pub state: JobState,
    pub created_ms: i64,
    pub manifest: Option<Manifest>,
    pub dir: PathBuf,
    /// An erasure in the workspace happened while it ran: its files are
    /// deleted when it ends.
    pub withdrawn: bool,
}

/// Why a withdrawn export is gone.
const WITHDRAWN: &str =
    "withdrawn: messages of the workspace were erased after this export; export again";

/// The jobs of this process.
#[derive(Clone)]
pub struct Exports {
    root: PathBuf,
    jobs: Arc<Mutex<HashMap<String, Job>>>,
}

/// Jobs kept in memory at most (the oldest finished ones are forgotten).
const MAX_JOBS: usize = 1_000;

/// Jobs running at once for one workspace, and on one gateway: an export
/// reads the whole log and writes to disk (review finding: unbounded).
pub const MAX_RUNNING_PER_WORKSPACE: usize = 1;
pub const MAX_RUNNING: usize = 4;

impl Exports {
    /// Jobs write under `<data>/exports/<workspace>/<job id>/`.
    pub fn new(data: &Path) -> Exports {
        // Jobs live in this process's memory: directories an earlier run
        // left can never be downloaded, and may hold texts erased since.
        let root = data.join("exports");
        if root.exists() {
            if let Err(e) = std::fs::remove_dir_all(&root) {
                tracing::warn!(dir = %root.display(), error = %e, "removing old export jobs");
            }
        }
        Exports {
            root,
            jobs: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Job>> {
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a job; returns it as it stands (running), or `None` when
    /// [`MAX_RUNNING_PER_WORKSPACE`] or [`MAX_RUNNING`] jobs run already.
    pub fn start(&self, log: Log, actor: &str, params: ExportParams) -> Option<Job> {
        let id = EventId::generate(now_ms() as u64, crate::commands::random()).into_string();
        let dir = self.root.join(&params.workspace).join(&id);
        let job = Job {
            id: id.clone(),
            workspace: params.workspace.clone(),
            requested_by: actor.to_string(),
            params: params.clone(),
            state: JobState::Running,
            created_ms: now_ms(),
            manifest: None,
            dir: dir.clone(),
            withdrawn: false,
        };
        {
            let mut jobs = self.lock();
            let running = jobs.values().filter(|j| j.state == JobState::Running);
            let (all, mine) = running.fold((0, 0), |(a, m), j| {
                (a + 1, m + usize::from(j.workspace == params.workspace))
            });
            if all >= MAX_RUNNING || mine >= MAX_RUNNING_PER_WORKSPACE {
                return None;
            }
            if jobs.len() >= MAX_JOBS {
                if let Some(oldest) = jobs
                    .values()
                    .filter(|j| j.state != JobState::Running)
                    .min_by_key(|j| j.created_ms)
                    .map(|j| j.id.clone())
                {
                    jobs.remove(&oldest);
                }
            }
            jobs.insert(id.clone(), job.clone());
        }
        let this = self.clone();
        let actor = actor.to_string();
        // The export writes with blocking file I/O: it runs on a blocking
        // thread (driving its own future there), not on a runtime worker.
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let result = handle.block_on(async {
                match export::export(&log, params, &dir).await {
                    Ok(report) => match record(&log, &actor, &id, &report.manifest).await {
                        Ok(_) => Ok(report.manifest),
                        Err(e) => Err(format!("recording the export: {e}")),
                    },
                    Err(e) => Err(e.to_string()),
                }
            });
            if let Err(e) = &result {
                tracing::warn!(job = %id, error = %e, "export job failed");
            }
            let mut jobs = this.lock();
            if let Some(job) = jobs.get_mut(&id) {
                if job.withdrawn {
                    let _ = std::fs::remove_dir_all(&job.dir);
                    job.state = JobState::Failed(WITHDRAWN.into());
                    return;
                }
                match result {
                    Ok(m) => {
                        job.manifest = Some(m);
                        job.state = JobState::Done;
                    }
                    Err(e) => job.state = JobState::Failed(e),
                }
            }
        });
        Some(job)
    }

    /// Withdraws the exports of `workspace` after an erasure in it: their
    /// files hold texts in the clear, some of which are erased now. Every
    /// finished job's directory is deleted and the job answers `failed`
    /// ("withdrawn"); a running one is withdrawn when it ends; directories
    /// left by earlier runs of the process go too.
    pub fn withdraw(&self, workspace: &str) {
        // All under the jobs lock: a job is in the map before its
        // directory exists, so no directory of a job started meanwhile is
        // taken for a leftover.
        let mut jobs = self.lock();
        let mut running = Vec::new();
        for job in jobs.values_mut().filter(|j| j.workspace == workspace) {
            if job.state == JobState::Running {
                job.withdrawn = true;
                running.push(job.dir.clone());
            } else {
                job.state = JobState::Failed(WITHDRAWN.into());
                job.manifest = None;
            }
        }
        let root = self.root.join(workspace);
        let Ok(entries) = std::fs::read_dir(&root) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if !running.contains(&p) {
                if let Err(err) = std::fs::remove_dir_all(&p) {
                    tracing::warn!(dir = %p.display(), error = %err, "withdrawing an export");
                }
            }
        }
    }

    /// The job `id` of `workspace`, if there is one.
    pub fn get(&self, workspace: &str, id: &str) -> Option<Job> {
        self.lock()
            .get(id)
            .filter(|j| j.workspace == workspace)
            .cloned()
    }
}
