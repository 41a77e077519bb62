//! Files: uploads streamed into the files bucket (a JetStream object
//! store) and recorded as `FileUploaded` on the channel's subject;
//! downloads for the members of the channel the file was shared in; the
//! bucket objects of deleted messages' files are deleted by [`reap`].

use super::{ms, now_ms, random, settle, unchanged, Commands, UserCtx};
use crate::error::{ApiError, ApiResult};
use async_nats::jetstream::object_store::{
    Config as BucketConfig, DeleteErrorKind, GetErrorKind, Object, ObjectStore,
};
use async_nats::jetstream::stream::StorageType;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use switchboard_core::authz::Action;
use switchboard_core::commands::files::{decide_expiry, decide_upload, ExpiryFacts, UploadFile};
use switchboard_core::ids::{ChannelId, FileId};
use switchboard_core::secret::StreamHash;
use switchboard_core::DomainError;
use switchboard_projections::history::{self, FileRow};
use switchboard_projections::{Progress, Readers};
use switchboard_streams::{subjects, Log, Outcome};
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::sync::CancellationToken;

/// Default largest upload: 25 MiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 25 * 1024 * 1024;
/// Default time an upload may stay attached to no message: 24 h.
pub const DEFAULT_UNATTACHED_TTL: Duration = Duration::from_secs(24 * 3600);

/// The files settings of `serve`.
#[derive(Debug, Clone, Copy)]
pub struct FilesConfig {
    pub max_bytes: u64,
    /// Uploads no message attached within this long expire.
    pub unattached_ttl: Duration,
}

impl Default for FilesConfig {
    fn default() -> Self {
        FilesConfig {
            max_bytes: DEFAULT_MAX_FILE_BYTES,
            unattached_ttl: DEFAULT_UNATTACHED_TTL,
        }
    }
}

/// Where file bytes live and how large one may be.
#[derive(Clone)]
pub struct Files {
    pub store: ObjectStore,
    pub max_bytes: u64,
    /// The bucket's stream (`OBJ_<bucket>`), to erase an object's chunks
    /// securely before it is deleted.
    stream: Option<async_nats::jetstream::stream::Stream>,
    bucket: String,
}

impl Files {
    /// Opens the files bucket of the log's stream (`<stream>_files`),
    /// creating it if it is missing. Idempotent.
    pub async fn open(log: &Log, max_bytes: u64) -> Result<Files, String> {
        let js = async_nats::jetstream::new(log.client().clone());
        let bucket = format!("{}_files", log.config().stream);
        let store = match js.get_object_store(&bucket).await {
            Ok(s) => s,
            Err(_) => js
                .create_object_store(BucketConfig {
                    bucket: bucket.clone(),
                    description: Some("Switchboard file uploads".into()),
                    storage: StorageType::File,
                    num_replicas: log.config().replicas,
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("creating object store {bucket}: {e}"))?,
        };
        let stream = Some(
            js.get_stream(format!("OBJ_{bucket}"))
                .await
                .map_err(|e| format!("the files bucket's stream: {e}"))?,
        );
        Ok(Files {
            store,
            max_bytes,
            stream,
            bucket,
        })
    }

    /// Deletes the object `id` for good: its chunks are erased with
    /// JetStream's secure erase (their bytes overwritten in the store's
    /// files; an object store delete is a purge, which leaves them until
    /// the block is compacted), then the object is deleted. Gone already:
    /// fine.
    pub async fn erase(&self, id: &str) -> Result<(), String> {
        use async_nats::jetstream::object_store::InfoErrorKind;
        use futures_util::StreamExt;
        let info = match self.store.info(id).await {
            Ok(i) => i,
            Err(e) if e.kind() == InfoErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        if let Some(stream) = &self.stream {
            let subject = format!("$O.{}.C.{}", self.bucket, info.nuid);
            let mut consumer = stream
                .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
                    filter_subject: subject,
                    // Only the sequences are needed, not the bytes.
                    headers_only: true,
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string())?;
            let mut left = consumer
                .info()
                .await
                .map_err(|e| e.to_string())?
                .num_pending;
            let mut seqs = Vec::new();
            if left > 0 {
                let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
                while left > 0 {
                    let next = tokio::time::timeout(Duration::from_secs(10), messages.next())
                        .await
                        .map_err(|_| "reading an object's chunks timed out".to_string())?;
                    let Some(m) = next else { break };
                    let m = m.map_err(|e| e.to_string())?;
                    let meta = m.info().map_err(|e| e.to_string())?;
                    seqs.push(meta.stream_sequence);
                    left = meta.pending;
                }
            }
            for seq in seqs {
                stream
                    .delete_message(seq)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        match self.store.delete(id).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == DeleteErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// An upload as the HTTP edge parsed it; `body` is read as it streams.
pub struct NewUpload<R> {
    pub channel_id: ChannelId,
    pub name: String,
    pub content_type: String,
    pub body: R,
}

/// What an upload's reader saw.
#[derive(Default)]
struct Seen {
    bytes: u64,
    hash: StreamHash,
    /// Past the limit: the reader ended early.
    over: bool,
    /// The body failed (the client went away): the reader ended early.
    failed: bool,
}

/// Counts and hashes the body as the object store reads it. Past the
/// limit, or when the body fails, it ends the stream early (a clean end,
/// so the store writes its metadata and the partial object can be deleted
/// by name, chunks included).
struct Metered<R> {
    inner: R,
    limit: u64,
    seen: Seen,
}

impl<R: AsyncRead + Unpin> AsyncRead for Metered<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.seen.over || self.seen.failed {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(_)) => {
                self.seen.failed = true;
                buf.set_filled(before);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Ok(())) => {
                let n = (buf.filled().len() - before) as u64;
                if self.seen.bytes + n > self.limit {
                    self.seen.over = true;
                    buf.set_filled(before);
                    return Poll::Ready(Ok(()));
                }
                let this = &mut *self;
                this.seen.bytes += n;
                this.seen.hash.update(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
        }
    }
}

/// A file's facts and its bytes, for a download.
pub struct Download {
    pub file: FileRow,
    pub object: Object,
}

impl Commands {
    pub fn max_file_bytes(&self) -> u64 {
        self.files.max_bytes
    }

    /// Stores an upload and records it. The caller must be a member of the
    /// live channel: checked before the body is read (nothing is stored
    /// for an outsider) and decided again when the event is appended.
    pub async fn upload_file<R: AsyncRead + Unpin>(
        &self,
        user: &UserCtx,
        up: NewUpload<R>,
    ) -> ApiResult<FileRow> {
        let facts = self.authorize(user, &up.channel_id, Action::Read).await?;
        if facts.archived {
            return Err(DomainError::Archived.into());
        }
        let file_id = FileId::generate(ms(), random());
        let mut reader = Metered {
            inner: up.body,
            limit: self.files.max_bytes,
            seen: Seen::default(),
        };
        let stored = self.files.store.put(file_id.as_str(), &mut reader).await;
        let seen = reader.seen;
        if let Err(e) = stored {
            self.forget_object(&file_id).await;
            return Err(ApiError::internal("storing an upload", &e));
        }
        if seen.over || seen.failed {
            self.forget_object(&file_id).await;
            return Err(if seen.over {
                ApiError::payload_too_large()
            } else {
                ApiError::invalid("the request body ended in an error")
            });
        }
        let cmd = UploadFile {
            file_id: file_id.clone(),
            name: up.name,
            size: seen.bytes,
            content_type: up.content_type,
            sha256: seen.hash.finish_hex(),
        };
        let ws = user.caller.workspace_id.as_str();
        let me = user.caller.user_id.as_str();
        let channel = &up.channel_id;
        let ch = channel.as_str();
        let cmd = &cmd;
        let outcome = self
            .log
            .append_decided::<(), ApiError, _, _>(&subjects::channel(ws, ch), |basis| async move {
                self.models_at(basis, false).await?;
                let state = self.channel_state(user, channel).await?;
                settle(
                    basis,
                    decide_upload(&user.caller, &state, cmd),
                    |seq, body| Self::envelope(ws, ch, me, seq, body),
                    None,
                )
            })
            .await;
        match outcome {
            Ok(Outcome::Appended(a)) => {
                // No ACL change: a post attaching the file waits for the
                // history model (the upload moved the subject's fence).
                Ok(FileRow {
                    id: cmd.file_id.as_str().to_string(),
                    workspace_id: ws.to_string(),
                    channel_id: ch.to_string(),
                    uploader_id: me.to_string(),
                    name: cmd.name.clone(),
                    size: cmd.size,
                    content_type: cmd.content_type.clone(),
                    sha256: cmd.sha256.clone(),
                    ts_ms: a.envelope.ts_ms,
                    message_id: None,
                    deleted: false,
                })
            }
            Ok(Outcome::Done(())) => {
                self.forget_object(&file_id).await;
                Err(ApiError::internal(
                    "upload_file",
                    &"decision ended without an event",
                ))
            }
            Err(e) => {
                self.forget_object(&file_id).await;
                Err(e)
            }
        }
    }

    /// Deletes an object that is not (or no longer) recorded.
    async fn forget_object(&self, id: &FileId) {
        if let Err(e) = self.files.store.delete(id.as_str()).await {
            if e.kind() != DeleteErrorKind::NotFound {
                tracing::warn!(error = %e, file = %id, "deleting an unrecorded upload");
            }
        }
    }

    /// The files among `ids`, as the history model has them.
    pub(super) async fn file_rows(&self, ids: Vec<String>) -> ApiResult<Vec<FileRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.history.read(move |c| history::files(c, &ids)).await?)
    }

    /// A file and its bytes, for a member of the channel it was shared in
    /// (its uploader only, while it is attached to no message). Anything
    /// else, a deleted message's file included, is "file not found".
    pub async fn download(&self, user: &UserCtx, id: &FileId) -> ApiResult<Download> {
        self.fresh_reads().await?;
        let key = id.as_str().to_string();
        let not_found = || ApiError::not_found("file");
        let file = self
            .history
            .read(move |c| history::file(c, &key))
            .await?
            .filter(|f| f.workspace_id == user.caller.workspace_id.as_str() && !f.deleted)
            .filter(|f| f.message_id.is_some() || f.uploader_id == user.caller.user_id.as_str())
            .ok_or_else(not_found)?;
        let channel = ChannelId::from_trusted(file.channel_id.clone());
        if self.authorize(user, &channel, Action::Read).await.is_err() {
            return Err(not_found());
        }
        match self.files.store.get(id.as_str()).await {
            Ok(object) => Ok(Download { file, object }),
            Err(e) if e.kind() == GetErrorKind::NotFound => Err(not_found()),
            Err(e) => Err(ApiError::internal("reading a file", &e)),
        }
    }
}

impl Commands {
    /// Expires the uploads no message attached within `ttl` (at most a
    /// page of them): one `FileExpired` each, decided on the file's channel
    /// subject against the history model at its head (a post attaching it
    /// in the meantime wins). Returns how many expired.
    pub async fn expire_unattached(&self, ttl: Duration) -> ApiResult<usize> {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let before = now_ms().saturating_sub(ttl_ms);
        let due = self
            .history
            .read(move |c| history::unattached_before(c, before, REAP_PAGE))
            .await?;
        let mut expired = 0;
        for (ws, ch, id) in due {
            let file_id = FileId::from_trusted(id);
            let (ws, ch, file_id) = (ws.as_str(), ch.as_str(), &file_id);
            let outcome = self
                .log
                .append_decided::<(), ApiError, _, _>(
                    &subjects::channel(ws, ch),
                    |basis| async move {
                        self.models_at(basis, true).await?;
                        let key = file_id.as_str().to_string();
                        let facts = self
                            .history
                            .read(move |c| history::file(c, &key))
                            .await?
                            .map(|f| ExpiryFacts {
                                attached: f.message_id.is_some(),
                                gone: f.deleted,
                                uploaded_ms: f.ts_ms,
                            });
                        match decide_expiry(file_id, facts.as_ref(), now_ms(), ttl_ms) {
                            Some(body) => settle(
                                basis,
                                Ok(body),
                                |seq, body| Self::envelope(ws, ch, "", seq, body),
                                None,
                            ),
                            None => unchanged(basis, ()),
                        }
                    },
                )
                .await?;
            if matches!(outcome, Outcome::Appended(_)) {
                expired += 1;
            }
        }
        Ok(expired)
    }
}

/// Expires unattached uploads (see [`Commands::expire_unattached`]) every
/// quarter of `ttl` (between 100 ms and a minute) until `cancel`.
pub async fn expire_loop(commands: Arc<Commands>, ttl: Duration, cancel: CancellationToken) {
    let every = (ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(e) = commands.expire_unattached(ttl).await {
            tracing::warn!(error = ?e, "expiring unattached uploads");
        }
    }
}

/// Most deleted files [`reap`] reads at once (a message has at most
/// `MAX_ATTACHMENTS`, so one tombstone's files always fit).
const REAP_PAGE: u32 = 100;

/// Deletes the objects of files whose message was deleted, as the history
/// model records the tombstones; runs until `cancel`. Idempotent: after a
/// restart it starts over (an object already gone is skipped).
pub async fn reap(files: Files, history: Readers, progress: Progress, cancel: CancellationToken) {
    // A keyset over (deleted_seq, id): an erasure marks every covered
    // message's files at one seq, more than a page of them possibly.
    let mut after = (0u64, String::new());
    loop {
        let at = progress.current();
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = progress.wait_for(at + 1, Duration::from_secs(5)) => {}
        }
        loop {
            let (seq, id) = after.clone();
            let rows = match history
                .read(move |c| history::deleted_files_after(c, seq, &id, REAP_PAGE))
                .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "reading deleted files");
                    break;
                }
            };
            let full = rows.len() as u32 == REAP_PAGE;
            let mut failed = false;
            for (seq, id) in rows {
                match files.erase(&id).await {
                    Ok(()) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, file = %id, "deleting a deleted message's file");
                        failed = true;
                        break;
                    }
                }
                after = (seq, id);
            }
            if failed || !full {
                break;
            }
        }
    }
}
