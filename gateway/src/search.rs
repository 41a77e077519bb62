//! Search: a parsed query, resolved against the ACL model as it is *now*
//! (the caller's readable channels, channel names, handles, DMs), run
//! against the search backend (FTS5 by default, or OpenSearch) as one
//! permission-constrained query, and answered with the history model's
//! message views.
//!
//! Invariant: a result is a message in a channel the caller may read at
//! the time of the request — a public channel of its workspace, or a
//! private channel or DM it is a member of — that is not deleted. The
//! readable set is computed per request from the ACL model (caught up to
//! every write this process acknowledged) and bounds the index query
//! itself; a message the history model has as deleted is dropped even if
//! the index has not caught up with its tombstone yet.

use crate::commands::{now_ms, Commands, UserCtx};
use crate::error::{ApiError, ApiResult};
use crate::views::MessageView;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use switchboard_core::commands::channels::OpenDm;
use switchboard_core::ids::UserId;
use switchboard_core::search::{self as lang, Date};
use switchboard_projections::search::backend::{BackendError, SearchArgs, SearchBackend};
use switchboard_projections::search::{Cursor, Scope, MARK_CLOSE, MARK_OPEN};
use switchboard_projections::{acl, history, Progress, Readers};

/// How long a search waits for the index to apply the caller's own
/// acknowledged writes before answering from what it has.
const INDEX_WAIT: Duration = Duration::from_secs(1);

/// The search read model: the local `Search` model (always folded; the
/// document source) and the backend queries go to — the same model
/// through FTS5 by default, or OpenSearch (`serve --search opensearch`).
#[derive(Clone)]
pub struct SearchIndex {
    pub readers: Readers,
    pub progress: Progress,
    pub backend: Arc<dyn SearchBackend>,
    /// With an external backend: the log position it acknowledged.
    pub external_applied: Option<Arc<std::sync::atomic::AtomicU64>>,
}

/// Which backend answers searches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SearchConfig {
    /// The embedded SQLite FTS5 model.
    #[default]
    Fts5,
    /// OpenSearch at `url`, fed from the local model by the indexer
    /// (needs the `opensearch` cargo feature).
    OpenSearch { url: String },
}

impl From<BackendError> for ApiError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::Read(e) => e.into(),
            // OpenSearch unreachable or refusing: the details go to the log.
            BackendError::Backend(why) => {
                tracing::warn!(error = %why, "search backend failed");
                ApiError::unavailable("search is unavailable right now; retry shortly")
            }
            e => ApiError::internal("search failed", &e),
        }
    }
}

/// A search request, parsed from the query string.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub q: String,
    pub limit: u32,
    pub cursor: Option<String>,
    pub tz: Option<String>,
    pub tz_offset: Option<String>,
    /// API.md's aliases of `in:`, `from:`, `before:`, `after:`.
    pub channel_id: Option<String>,
    pub from: Option<String>,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// One result.
#[derive(Debug, Clone)]
pub struct SearchHit {
    pub message: MessageView,
    pub snippet: String,
    pub score: f64,
}

/// A page of results.
#[derive(Debug, Clone)]
pub struct SearchPage {
    pub results: Vec<SearchHit>,
    pub next_cursor: Option<String>,
    pub total_estimate: u64,
}

fn date_param(name: &str, v: &str) -> ApiResult<Date> {
    Date::parse(v).ok_or_else(|| ApiError::invalid(format!("{name}: a date like 2026-01-31")))
}

/// What the ACL model resolved for one search.
struct Resolved {
    readable: Vec<String>,
    channels: Option<Vec<String>>,
    senders: Option<Vec<String>>,
    mentions: Option<Vec<String>>,
}

/// The snippet as HTML: the text escaped, matches in `<mark>`.
pub fn snippet_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            MARK_OPEN => out.push_str("<mark>"),
            MARK_CLOSE => out.push_str("</mark>"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Runs a search for `user` (see the module docs).
pub async fn run(
    commands: &Commands,
    index: &SearchIndex,
    user: &UserCtx,
    req: SearchRequest,
) -> ApiResult<SearchPage> {
    let mut query = lang::parse(&req.q)?;
    let zone = lang::parse_tz(req.tz.as_deref(), req.tz_offset.as_deref())?;
    if let Some(b) = &req.before {
        let d = date_param("before", b)?;
        query.filters.before = Some(query.filters.before.map_or(d, |q| q.min_by_days(d)));
    }
    if let Some(a) = &req.after {
        let d = date_param("after", a)?;
        query.filters.after = Some(query.filters.after.map_or(d, |q| q.max_by_days(d)));
    }
    let cursor = match &req.cursor {
        None => None,
        Some(c) => Some(
            Cursor::decode(c)
                .ok_or_else(|| ApiError::invalid("cursor: not a cursor this search returned"))?,
        ),
    };
    let channel_param = req
        .channel_id
        .as_deref()
        .map(switchboard_core::ids::ChannelId::parse)
        .transpose()
        .map_err(|e| ApiError::invalid(format!("channel_id: {e}")))?;
    let from_param = req.from.clone();

    commands.fresh_reads().await?;
    // The index may lag the caller's own last post by a moment; wait a
    // little, then answer from what it has.
    let _ = index
        .progress
        .wait_for(commands.log.last_acked(), INDEX_WAIT)
        .await;

    let ws = user.caller.workspace_id.as_str().to_string();
    let me = user.caller.user_id.as_str().to_string();
    let caller = user.caller.clone();
    let filters = query.filters.clone();
    let resolved = commands
        .acl
        .read(
            move |c| -> switchboard_projections::sql::Result<Result<Resolved, ApiError>> {
                let readable = acl::readable_channel_ids(c, &ws, &me)?;
                let user_id = |handle: &str| acl::user_by_handle(c, &ws, handle);
                let mut channels: Option<Vec<String>> = None;
                for name in &filters.in_channels {
                    let id =
                        acl::channel_id_by_name(c, &ws, name)?.filter(|id| readable.contains(id));
                    match id {
                        Some(id) => channels.get_or_insert_with(Vec::new).push(id),
                        // The same answer for a channel that does not exist and
                        // one the caller may not read.
                        None => {
                            return Ok(Err(ApiError::invalid(format!(
                                "q: in: no channel #{name} you can read"
                            ))))
                        }
                    }
                }
                for handle in &filters.in_dms {
                    let Some(u) = user_id(handle)? else {
                        return Ok(Err(ApiError::invalid(format!("q: in: no user @{handle}"))));
                    };
                    // The DM's id is a function of its members; if it does not
                    // exist (or the caller is not in it) nothing matches.
                    match OpenDm::new(&caller, vec![UserId::from_trusted(u.id)]) {
                        Ok(dm) => channels
                            .get_or_insert_with(Vec::new)
                            .push(dm.id.as_str().to_string()),
                        Err(e) => return Ok(Err(e.into())),
                    }
                }
                if let Some(id) = &channel_param {
                    if !readable.iter().any(|r| r == id.as_str()) {
                        return Ok(Err(ApiError::invalid(
                            "channel_id: no channel with this id you can read",
                        )));
                    }
                    channels
                        .get_or_insert_with(Vec::new)
                        .push(id.as_str().to_string());
                }
                let mut senders: Option<Vec<String>> = None;
                let from_handles = filters.from.iter().map(|h| (h.as_str(), "from"));
                let mut mentions: Option<Vec<String>> = None;
                let mention_handles = filters.mentions.iter().map(|h| (h.as_str(), "mentions"));
                for (handle, key) in from_handles.chain(mention_handles) {
                    let Some(u) = user_id(handle)? else {
                        return Ok(Err(ApiError::invalid(format!(
                            "q: {key}: no user @{handle}"
                        ))));
                    };
                    let list = if key == "from" {
                        &mut senders
                    } else {
                        &mut mentions
                    };
                    list.get_or_insert_with(Vec::new).push(u.id);
                }
                if let Some(from) = &from_param {
                    // A user id, or @handle.
                    let found = match from.strip_prefix('@') {
                        Some(h) => user_id(h)?,
                        None => acl::user(c, &ws, from)?,
                    };
                    match found {
                        Some(u) => senders.get_or_insert_with(Vec::new).push(u.id),
                        None => return Ok(Err(ApiError::invalid("from: no such user"))),
                    }
                }
                Ok(Ok(Resolved {
                    readable,
                    channels,
                    senders,
                    mentions,
                }))
            },
        )
        .await??;

    let (since_ms, until_ms) = query.filters.time_range(zone);
    let scope = Scope {
        workspace_id: user.caller.workspace_id.as_str().to_string(),
        readable: resolved.readable,
        channels: resolved.channels,
        senders: resolved.senders,
        mentions: resolved.mentions,
        since_ms,
        until_ms,
        ..Scope::default()
    }
    .with_flags(&query.filters);
    let found = index
        .backend
        .search(SearchArgs {
            query,
            scope,
            cursor,
            ref_ms: now_ms(),
            limit: req.limit as usize,
        })
        .await?;

    let ids: Vec<String> = found.hits.iter().map(|h| h.message_id.clone()).collect();
    let rows = commands
        .history
        .read_rows(ids.len() as u32, move |c| {
            let mut rows = HashMap::new();
            for id in ids {
                if let Some(r) = history::message(c, &id)? {
                    rows.insert(id, r);
                }
            }
            Ok(rows)
        })
        .await?;
    let mut rows = rows;
    let results = found
        .hits
        .into_iter()
        .filter_map(|h| {
            let row = rows.remove(&h.message_id)?;
            (!row.deleted && !row.erased).then(|| SearchHit {
                message: MessageView::from_row(row),
                snippet: snippet_html(&h.snippet),
                score: h.score,
            })
        })
        .collect();
    Ok(SearchPage {
        results,
        next_cursor: found.next.map(|c| c.encode()),
        total_estimate: found.total_estimate,
    })
}

trait DayOrder {
    fn min_by_days(self, other: Date) -> Date;
    fn max_by_days(self, other: Date) -> Date;
}

impl DayOrder for Date {
    fn min_by_days(self, other: Date) -> Date {
        if other.days() < self.days() {
            other
        } else {
            self
        }
    }
    fn max_by_days(self, other: Date) -> Date {
        if other.days() > self.days() {
            other
        } else {
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_are_escaped_html_with_marks() {
        assert_eq!(
            snippet_html("a <b>&\"'\u{E000}x\u{E001}"),
            "a &lt;b&gt;&amp;&quot;&#39;<mark>x</mark>"
        );
    }
}
