//! Verifiable exports for workspace admins: start a job, poll it, download
//! `events.jsonl` and `manifest.json` (check them with `switchboard verify`).
//! Admin-only and tenant-scoped: the workspace is the caller's; a job of
//! another workspace is "not found".

use crate::error::{ApiError, ApiResult};
use crate::exports::{Job, JobState};
use crate::extract::{ApiJson, Path, User, UserCtx};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use switchboard_core::ids::ChannelId;
use switchboard_core::time::{parse_rfc3339_ms, rfc3339_ms};
use switchboard_streams::export::{ExportParams, EVENTS_FILE, MANIFEST_FILE};
use utoipa::ToSchema;

const TAG: &str = "exports";

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateExport {
    /// Only this channel's events; absent: every event of the workspace.
    channel_id: Option<String>,
    /// RFC 3339: events from then on.
    since: Option<String>,
    /// RFC 3339: events before then.
    until: Option<String>,
}

/// An export job.
#[derive(Serialize, ToSchema)]
pub(super) struct ExportJson {
    id: String,
    /// `running`, `done` or `failed`.
    status: String,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    channel_id: Option<String>,
    since: Option<String>,
    until: Option<String>,
    requested_by: String,
    created_at: String,
    /// The manifest, once done.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    manifest: Option<serde_json::Value>,
    /// Download paths, once done.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    files: Vec<String>,
}

fn job_json(j: &Job) -> ExportJson {
    let (status, error) = match &j.state {
        JobState::Running => ("running", None),
        JobState::Done => ("done", None),
        JobState::Failed(e) => ("failed", Some(e.clone())),
    };
    let files = if j.state == JobState::Done {
        [EVENTS_FILE, MANIFEST_FILE]
            .iter()
            .map(|f| format!("/v1/admin/exports/{}/{f}", j.id))
            .collect()
    } else {
        Vec::new()
    };
    ExportJson {
        id: j.id.clone(),
        status: status.into(),
        error,
        channel_id: j.params.channel.clone(),
        since: j.params.since_ms.map(rfc3339_ms),
        until: j.params.until_ms.map(rfc3339_ms),
        requested_by: j.requested_by.clone(),
        created_at: rfc3339_ms(j.created_ms),
        manifest: j
            .manifest
            .as_ref()
            .and_then(|m| serde_json::to_value(m).ok()),
        files,
    }
}

fn admin(u: &UserCtx) -> ApiResult<()> {
    if u.caller.admin {
        Ok(())
    } else {
        Err(ApiError::forbidden("exports are for workspace admins"))
    }
}

fn time(field: &str, v: Option<&str>) -> ApiResult<Option<i64>> {
    v.map(|s| {
        parse_rfc3339_ms(s)
            .ok_or_else(|| ApiError::invalid(format!("{field} must be an RFC 3339 time")))
    })
    .transpose()
}

/// Start an export.
///
/// Workspace admins only. Exports the caller's workspace (or one channel
/// of it) up to the log's head now, in the background; poll the job.
/// Leaves an `export_made` event in the log.
#[utoipa::path(post, path = "/v1/admin/exports", tag = TAG, security(("user" = [])),
    request_body = CreateExport,
    responses((status = 202, description = "started", body = ExportJson)))]
pub(super) async fn create_export(
    State(s): State<AppState>,
    User(u): User,
    ApiJson(req): ApiJson<CreateExport>,
) -> ApiResult<(StatusCode, Json<ExportJson>)> {
    admin(&u)?;
    let channel = req
        .channel_id
        .as_deref()
        .map(|c| {
            ChannelId::parse(c)
                .map(ChannelId::into_string)
                .map_err(|_| ApiError::invalid("channel_id is not a valid id"))
        })
        .transpose()?;
    let since_ms = time("since", req.since.as_deref())?;
    let until_ms = time("until", req.until.as_deref())?;
    if let (Some(a), Some(b)) = (since_ms, until_ms) {
        if a >= b {
            return Err(ApiError::invalid("since must be before until"));
        }
    }
    let params = ExportParams {
        workspace: u.user.workspace_id.clone(),
        channel,
        since_ms,
        until_ms,
        attachments: false,
    };
    let Some(job) = s.exports.start(s.commands.log.clone(), &u.user.id, params) else {
        return Err(ApiError {
            message: "an export of this workspace (or too many on this server) is running: \
                      try again when it is done"
                .into(),
            ..ApiError::rate_limited(std::time::Duration::from_secs(5))
        });
    };
    Ok((StatusCode::ACCEPTED, Json(job_json(&job))))
}

fn find(s: &AppState, u: &UserCtx, id: &str) -> ApiResult<Job> {
    admin(u)?;
    s.exports
        .get(&u.user.workspace_id, id)
        .ok_or_else(|| ApiError::not_found("export"))
}

/// An export job's status.
#[utoipa::path(get, path = "/v1/admin/exports/{id}", tag = TAG, security(("user" = [])),
    params(("id" = String, Path, description = "the job id")),
    responses((status = 200, description = "the job", body = ExportJson)))]
pub(super) async fn get_export(
    State(s): State<AppState>,
    User(u): User,
    Path(id): Path<String>,
) -> ApiResult<Json<ExportJson>> {
    Ok(Json(job_json(&find(&s, &u, &id)?)))
}

/// Download a finished export's file.
///
/// `events.jsonl` (one event per line, hash-chained) or `manifest.json`.
#[utoipa::path(get, path = "/v1/admin/exports/{id}/{file}", tag = TAG, security(("user" = [])),
    params(("id" = String, Path, description = "the job id"),
           ("file" = String, Path, description = "`events.jsonl` or `manifest.json`")),
    responses((status = 200, description = "the file", content_type = "application/octet-stream")))]
pub(super) async fn download_export(
    State(s): State<AppState>,
    User(u): User,
    Path((id, file)): Path<(String, String)>,
) -> ApiResult<Response> {
    let job = find(&s, &u, &id)?;
    let content_type = match file.as_str() {
        EVENTS_FILE => "application/x-ndjson",
        MANIFEST_FILE => "application/json",
        _ => return Err(ApiError::not_found("file")),
    };
    if job.state != JobState::Done {
        return Err(ApiError::conflict("the export is not done"));
    }
    // Streamed from the file (an export can be large): not read whole.
    let f = tokio::fs::File::open(job.dir.join(&file))
        .await
        .map_err(|e| ApiError::internal("reading an export", &e))?;
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(f));
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}
