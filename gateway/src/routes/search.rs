//! `GET /v1/search`: messages the caller can read now, ranked, with
//! snippets and a cursor (the language and the rules are in
//! `switchboard_core::search` and `crate::search`).

use crate::error::ApiResult;
use crate::extract::{Query, User};
use crate::query::Limit;
use crate::search::{self, SearchRequest};
use crate::state::AppState;
use crate::views::MessageView;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

const TAG: &str = "search";

/// Results per page: 20 by default, at most 100.
pub type SearchLimit = Limit<20, 100>;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct SearchQuery {
    /// The query: words, `prefix*`, `"phrases"`, `-exclusions` and filters
    /// (`in:#channel`, `in:@user`, `from:@user`, `mentions:@user`,
    /// `before:`/`after:`/`on:YYYY-MM-DD`, `has:file|link|reaction`,
    /// `is:thread`); at most 1,000 characters.
    q: String,
    #[serde(default)]
    #[param(inline)]
    limit: SearchLimit,
    /// `next_cursor` of the previous page (the same `q` and parameters).
    cursor: Option<String>,
    /// The caller's time zone for dates: an IANA name like `Europe/Paris`
    /// (days follow its daylight-saving changes), `UTC`, or a fixed offset
    /// like `+09:00`.
    tz: Option<String>,
    /// The caller's UTC offset in minutes east (instead of `tz`).
    tz_offset: Option<String>,
    /// Only this channel (like `in:`).
    channel_id: Option<String>,
    /// Only messages from this user id (or `@handle`; like `from:`).
    from: Option<String>,
    /// Only messages before this day (`YYYY-MM-DD`; like `before:`).
    before: Option<String>,
    /// Only messages after this day (`YYYY-MM-DD`; like `after:`).
    after: Option<String>,
}

/// One result.
#[derive(Serialize, ToSchema)]
#[schema(as = SearchResult)]
pub(super) struct SearchResultView {
    message: MessageView,
    /// HTML: the text around the match, escaped (`&amp; &lt; &gt; &quot;
    /// &#39;`), matches in `<mark>…</mark>`, cuts shown as `…`.
    snippet: String,
    /// Relevance blended with recency; higher is better.
    score: f64,
}

/// A page of results.
#[derive(Serialize, ToSchema)]
pub(super) struct SearchResults {
    results: Vec<SearchResultView>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
    /// How many results the query has (exact up to 500, estimated beyond).
    total_estimate: u64,
}

/// Search messages.
///
/// Only messages in channels the caller can read now: the workspace's
/// public channels, and private channels and DMs the caller is a member
/// of. A malformed query is a 400 `invalid_request` naming the problem.
#[utoipa::path(get, path = "/v1/search", tag = TAG, security(("user" = [])),
    params(SearchQuery),
    responses((status = 200, description = "a page of results", body = SearchResults)))]
pub(super) async fn search(
    State(s): State<AppState>,
    User(u): User,
    Query(q): Query<SearchQuery>,
) -> ApiResult<Json<SearchResults>> {
    let req = SearchRequest {
        q: q.q,
        limit: q.limit.get(),
        cursor: q.cursor,
        tz: q.tz,
        tz_offset: q.tz_offset,
        channel_id: q.channel_id,
        from: q.from,
        before: q.before,
        after: q.after,
    };
    let page = search::run(&s.commands, &s.search, &u, req).await?;
    Ok(Json(SearchResults {
        results: page
            .results
            .into_iter()
            .map(|h| SearchResultView {
                message: h.message,
                snippet: h.snippet,
                score: h.score,
            })
            .collect(),
        next_cursor: page.next_cursor,
        total_estimate: page.total_estimate,
    }))
}
