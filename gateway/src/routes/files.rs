//! Files: upload (the raw request body, or a multipart/form-data body's
//! `file` part, streamed into the files bucket) and download (streamed
//! back, with headers that keep a browser from rendering it in the
//! platform's origin).

use crate::commands::files::NewUpload;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{Path, Query, User};
use crate::state::AppState;
use crate::views::AttachmentRef;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::TryStreamExt;
use serde::Deserialize;
use switchboard_core::commands::files::parse_name;
use switchboard_core::ids::{ChannelId, FileId};
use tokio::io::AsyncReadExt;
use tokio_util::io::{ReaderStream, StreamReader};
use utoipa::{IntoParams, ToSchema};

const TAG: &str = "files";

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct UploadQuery {
    /// The file's name: 1 to 255 characters, no control characters or
    /// slashes. Required for a raw body; a multipart body's `file` part's
    /// filename is used when it is absent.
    name: Option<String>,
    /// The channel the file is for (the caller must be a member). Required
    /// unless a multipart body has a `channel_id` part before its `file`
    /// part.
    channel_id: Option<String>,
}

/// `ct` if it is a plausible `type/subtype`.
fn plausible_type(ct: &str) -> Option<String> {
    let ct = ct.trim();
    let plausible = !ct.is_empty()
        && ct.len() <= 127
        && ct.contains('/')
        && ct.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    plausible.then(|| ct.to_string())
}

const OCTET_STREAM: &str = "application/octet-stream";

fn header_str(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The request's media type if it is a plausible `type/subtype`, else
/// `application/octet-stream`.
fn content_type(headers: &HeaderMap) -> String {
    plausible_type(header_str(headers)).unwrap_or_else(|| OCTET_STREAM.to_string())
}

/// Whether the request's body is `multipart/form-data`.
fn is_multipart(headers: &HeaderMap) -> bool {
    let essence = header_str(headers).split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("multipart/form-data")
}

fn required(v: Option<String>, what: &str) -> ApiResult<String> {
    v.ok_or_else(|| ApiError::invalid(format!("query: missing field `{what}`")))
}

/// Upload a file.
///
/// The request body is the file's bytes (any `Content-Type`, recorded as
/// the file's), streamed into storage. Or a `multipart/form-data` body:
/// its first part named `file` is the file (its filename unless `name` is
/// given, its `Content-Type` recorded), streamed likewise; a `channel_id`
/// text part before it may stand in for the query parameter, other parts
/// are skipped. A multipart body without a `file` part, or one that ends
/// mid-part, is 400 (nothing is kept). Larger than the server's limit
/// (`--max-file-bytes`, default 25 MiB) → 413 `payload_too_large`: before
/// a raw body is read when `Content-Length` says so, else as soon as the
/// streamed body passes it (nothing is kept). Attach the file with
/// `attachment_ids` on a post to the same channel.
#[utoipa::path(post, path = "/v1/files", tag = TAG, security(("user" = [])),
    params(UploadQuery),
    request_body(content(
        (Vec<u8> = "application/octet-stream"),
        (MultipartUpload = "multipart/form-data"),
    )),
    responses(
        (status = 201, description = "stored and recorded", body = AttachmentRef),
        (status = 413, description = "larger than the server's limit"),
    ))]
pub(super) async fn upload(
    State(s): State<AppState>,
    User(u): User,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<AttachmentRef>)> {
    if is_multipart(&headers) {
        return upload_multipart(s, u, q, &headers, body).await;
    }
    let name = parse_name(&required(q.name, "name")?)?;
    let channel_id = ChannelId::parse(&required(q.channel_id, "channel_id")?)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > s.commands.max_file_bytes()) {
        return Err(ApiError::payload_too_large());
    }
    let body = StreamReader::new(body.into_data_stream().map_err(std::io::Error::other));
    store(&s, &u, channel_id, name, content_type(&headers), body).await
}

/// A `multipart/form-data` upload, as documented (OpenAPI only).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(super) struct MultipartUpload {
    /// The channel's id, if the query has none (must precede `file`).
    channel_id: Option<String>,
    /// The file's bytes; its filename and `Content-Type` are the file's.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Longest `channel_id` part read.
const CHANNEL_PART_LIMIT: u64 = 256;

/// The first `file` part of a multipart body, streamed into
/// [`store`] as it arrives (the parts before it are read past, a
/// `channel_id` one kept).
async fn upload_multipart(
    s: AppState,
    u: crate::commands::UserCtx,
    q: UploadQuery,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<AttachmentRef>)> {
    let boundary = multer::parse_boundary(header_str(headers))
        .map_err(|_| ApiError::invalid("the multipart Content-Type has no boundary"))?;
    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().for_field("channel_id", CHANNEL_PART_LIMIT));
    let mut parts =
        multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
    let malformed =
        |e: multer::Error| ApiError::invalid(format!("the multipart body is malformed: {e}"));
    let mut channel = q.channel_id;
    let file = loop {
        let Some(part) = parts.next_field().await.map_err(malformed)? else {
            return Err(ApiError::invalid("the multipart body has no `file` part"));
        };
        match part.name() {
            Some("file") => break part,
            Some("channel_id") if channel.is_none() => {
                channel = Some(part.text().await.map_err(malformed)?);
            }
            _ => {}
        }
    };
    let channel_id = ChannelId::parse(&required(channel, "channel_id")?)?;
    let name = match q.name.as_deref().or(file.file_name()) {
        Some(n) => parse_name(n)?,
        None => {
            return Err(ApiError::invalid(
                "the file has no name: give `name` or the part's filename",
            ))
        }
    };
    let content_type = file
        .content_type()
        .and_then(|m| plausible_type(m.as_ref()))
        .unwrap_or_else(|| OCTET_STREAM.to_string());
    let body = StreamReader::new(file.map_err(std::io::Error::other));
    store(&s, &u, channel_id, name, content_type, body).await
}

/// Streams `body` into storage (the limit and SHA-256 as it passes) and
/// records the upload.
async fn store(
    s: &AppState,
    u: &crate::commands::UserCtx,
    channel_id: ChannelId,
    name: String,
    content_type: String,
    body: impl tokio::io::AsyncRead + Unpin,
) -> ApiResult<(StatusCode, Json<AttachmentRef>)> {
    let file = s
        .commands
        .upload_file(
            u,
            NewUpload {
                channel_id,
                name,
                content_type,
                body,
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(AttachmentRef {
            id: file.id,
            name: file.name,
            size: file.size,
            content_type: file.content_type,
        }),
    ))
}

/// `filename*=UTF-8''…` (RFC 8187): every byte but an attr-char is
/// percent-encoded.
fn disposition(name: &str) -> String {
    let mut out = String::from("attachment; filename*=UTF-8''");
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Download a file (members of the channel it was shared in).
///
/// Streams the bytes with `Content-Disposition: attachment`,
/// `X-Content-Type-Options: nosniff` and a sandboxing
/// `Content-Security-Policy`. A file the caller may not see, one attached
/// to no message (except for its uploader), and a deleted message's file
/// are 404.
#[utoipa::path(get, path = "/v1/files/{id}", tag = TAG, security(("user" = [])),
    params(("id" = String, Path, description = "file id")),
    responses(
        (status = 200, description = "the file's bytes", content_type = "application/octet-stream"),
        (status = 206, description = "the requested range of the file's bytes", content_type = "application/octet-stream"),
    ))]
pub(super) async fn download(
    State(s): State<AppState>,
    User(u): User,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = FileId::parse(&id).map_err(|_| ApiError::not_found("file"))?;
    let mut d = s.commands.download(&u, &id).await?;
    let size = d.file.size;
    let value =
        |v: &str| HeaderValue::from_str(v).map_err(|e| ApiError::internal("a download header", &e));
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(r) => match byte_range(r, size) {
            Ok(range) => range,
            Err(()) => {
                let mut res = ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    ErrorCode::InvalidRequest,
                    "the range is outside the file",
                )
                .into_response();
                res.headers_mut()
                    .insert(header::CONTENT_RANGE, value(&format!("bytes */{size}"))?);
                return Ok(res);
            }
        },
        None => None,
    };
    let (mut res, length) = match range {
        Some((first, last)) => {
            // Skip to the range's start (the object store reads forward).
            tokio::io::copy(&mut (&mut d.object).take(first), &mut tokio::io::sink())
                .await
                .map_err(|e| ApiError::internal("reading a file", &e))?;
            let length = last - first + 1;
            let mut res =
                Body::from_stream(ReaderStream::new(d.object.take(length))).into_response();
            *res.status_mut() = StatusCode::PARTIAL_CONTENT;
            res.headers_mut().insert(
                header::CONTENT_RANGE,
                value(&format!("bytes {first}-{last}/{size}"))?,
            );
            (res, length)
        }
        None => (
            Body::from_stream(ReaderStream::new(d.object)).into_response(),
            size,
        ),
    };
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, value(&d.file.content_type)?);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::CONTENT_DISPOSITION,
        value(&disposition(&d.file.name))?,
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(res)
}

/// One `bytes=a-b`, `bytes=a-` or `bytes=-n` range of a file of `size`
/// bytes, as inclusive offsets: `Ok(None)` to serve the whole file (no
/// range, several, or one this does not understand), `Err` when it
/// starts past the end.
#[allow(clippy::result_unit_err)]
pub fn byte_range(header: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let parse = |s: &str| s.parse::<u64>().ok();
    let (first, last) = match (a.is_empty(), b.is_empty()) {
        (true, false) => {
            let Some(n) = parse(b) else { return Ok(None) };
            if n == 0 {
                return Err(());
            }
            (size.saturating_sub(n), size.saturating_sub(1))
        }
        (false, _) => {
            let Some(first) = parse(a) else {
                return Ok(None);
            };
            let last = if b.is_empty() {
                size.saturating_sub(1)
            } else {
                match parse(b) {
                    Some(l) if l >= first => l.min(size.saturating_sub(1)),
                    _ => return Ok(None),
                }
            };
            (first, last)
        }
        (true, true) => return Ok(None),
    };
    if size == 0 || first >= size {
        return Err(());
    }
    Ok(Some((first, last)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ranges() {
        assert_eq!(byte_range("bytes=0-99", 1000), Ok(Some((0, 99))));
        assert_eq!(byte_range("bytes=990-2000", 1000), Ok(Some((990, 999))));
        assert_eq!(byte_range("bytes=10-", 1000), Ok(Some((10, 999))));
        assert_eq!(byte_range("bytes=-10", 1000), Ok(Some((990, 999))));
        assert_eq!(byte_range("bytes=-5000", 1000), Ok(Some((0, 999))));
        assert_eq!(byte_range("bytes=1000-", 1000), Err(()));
        assert_eq!(byte_range("bytes=-0", 1000), Err(()));
        for whole in [
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=5-1",
            "bytes=x-1",
            "bytes=-",
        ] {
            assert_eq!(byte_range(whole, 1000), Ok(None), "{whole}");
        }
    }

    use super::*;

    #[test]
    fn names_are_percent_encoded_in_the_disposition() {
        assert_eq!(
            disposition("a b\"é.txt"),
            "attachment; filename*=UTF-8''a%20b%22%C3%A9.txt"
        );
    }

    #[test]
    fn implausible_content_types_become_octet_stream() {
        let mut h = HeaderMap::new();
        assert_eq!(content_type(&h), "application/octet-stream");
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        assert_eq!(content_type(&h), "text/plain; charset=utf-8");
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("nonsense"));
        assert_eq!(content_type(&h), "application/octet-stream");
    }
}
