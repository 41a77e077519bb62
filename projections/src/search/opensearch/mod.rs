//! The OpenSearch search backend: the index template, the query a parsed
//! search becomes, the bulk body, the retry policy and the checkpoint
//! document — plain JSON built here and unit-tested without a server —
//! and, with the `opensearch` cargo feature, the client that sends them
//! ([`OpenSearchBackend`]).
//!
//! Invariants:
//! - every query carries the permission filter *inside* it: a `term` on
//!   the caller's workspace and a `terms` on the caller's readable channel
//!   ids (plus the snapshot bound), in the bool query's `filter` — never a
//!   fetch-then-filter;
//! - user text reaches OpenSearch only as values of `multi_match` /
//!   `prefix` clauses, never as query-string syntax;
//! - documents are routed by workspace (`routing`), keyed by message id
//!   (an edit re-indexes the same `_id`, a delete deletes it);
//! - the checkpoint (a doc in [`CHECKPOINT_INDEX`]) is written only after
//!   a bulk request's every item was acknowledged; items refused with 429
//!   or 5xx are retried with exponential backoff, in bounded batches.
//!
//! Ranking: OpenSearch's BM25 score of the text clauses, multiplied by the
//! same recency factor as the FTS5 backend's [`super::blend`],
//! `0.5 + 0.5 · 2^(−age / 30 days)`, as a `function_score`: a weight-0.5
//! constant plus a weight-0.5 `exp` decay on `ts` (origin: the first
//! page's time, scale 30 days, decay 0.5), summed, multiplied into the
//! score.

use super::backend::{DocOp, SearchDoc};
use super::{Cursor, Scope, MARK_CLOSE, MARK_OPEN, RECENCY_HALF_LIFE_DAYS};
use serde_json::{json, Value};
use std::time::Duration;
use switchboard_core::search::{Query, Term, TermKind};

/// The messages index (the template matches `switchboard-messages*`).
pub const MESSAGES_INDEX: &str = "switchboard-messages";
/// The index holding the checkpoint document.
pub const CHECKPOINT_INDEX: &str = "switchboard-checkpoints";
/// The checkpoint document's id.
pub const CHECKPOINT_ID: &str = "search";
/// The index template's name.
pub const TEMPLATE_NAME: &str = "switchboard-messages";
/// Most operations in one bulk request.
pub const BULK_MAX_OPS: usize = 500;
/// Most bytes in one bulk request's body (a single larger document still
/// goes, alone).
pub const BULK_MAX_BYTES: usize = 5 * 1024 * 1024;

/// The index template: settings with the analyzers, and explicit mappings
/// (`dynamic: strict`: a field not listed here is refused, not guessed).
///
/// Text is indexed three ways, all with analyzers built into OpenSearch
/// (no ICU or other plugin needed): `text` with `folded` (the standard
/// tokenizer, lowercase and ASCII folding: `cafe` finds `café`),
/// `text.cjk` with the `cjk` analyzer (bigrams for Chinese, Japanese,
/// Korean), `text.std` with `standard`. File names likewise.
pub fn index_template() -> Value {
    let text = json!({
        "type": "text",
        "analyzer": "folded",
        "fields": {
            "cjk": { "type": "text", "analyzer": "cjk" },
            "std": { "type": "text", "analyzer": "standard" }
        }
    });
    json!({
        "index_patterns": [format!("{MESSAGES_INDEX}*")],
        "template": {
            "settings": {
                "number_of_shards": 1,
                "refresh_interval": "1s",
                "analysis": {
                    "analyzer": {
                        "folded": {
                            "type": "custom",
                            "tokenizer": "standard",
                            "filter": ["lowercase", "asciifolding"]
                        }
                    }
                }
            },
            "mappings": {
                "dynamic": "strict",
                "_routing": { "required": true },
                "properties": {
                    "id": { "type": "long" },
                    "message_id": { "type": "keyword" },
                    "workspace": { "type": "keyword" },
                    "channel": { "type": "keyword" },
                    "sender": { "type": "keyword" },
                    "ts": { "type": "date", "format": "epoch_millis" },
                    "thread": { "type": "keyword" },
                    "in_thread": { "type": "boolean" },
                    "has_file": { "type": "boolean" },
                    "has_link": { "type": "boolean" },
                    "has_reaction": { "type": "boolean" },
                    "mentions": { "type": "keyword" },
                    "text": text.clone(),
                    "files": text
                }
            }
        }
    })
}

/// The checkpoint index's mapping.
pub fn checkpoint_mapping() -> Value {
    json!({
        "mappings": {
            "dynamic": "strict",
            "properties": { "seq": { "type": "long" } }
        }
    })
}

/// The checkpoint document.
pub fn checkpoint_doc(seq: u64) -> Value {
    json!({ "seq": seq })
}

/// The source OpenSearch stores for a document.
pub fn doc_source(d: &SearchDoc) -> Value {
    json!({
        "id": d.id,
        "message_id": d.message_id,
        "workspace": d.workspace_id,
        "channel": d.channel_id,
        "sender": d.sender_id,
        "ts": d.ts_ms,
        "thread": d.thread_root_id,
        "in_thread": d.in_thread,
        "has_file": d.has_file,
        "has_link": d.has_link,
        "has_reaction": d.has_reaction,
        "mentions": d.mentions,
        "text": d.text,
        "files": d.files,
    })
}

/// The NDJSON lines of one op (action, then source for an index).
fn op_lines(op: &DocOp) -> String {
    let (action, source) = match op {
        DocOp::Upsert(d) => (
            json!({ "index": {
                "_index": MESSAGES_INDEX, "_id": d.message_id, "routing": d.workspace_id
            }}),
            Some(doc_source(d)),
        ),
        DocOp::Delete {
            workspace_id,
            message_id,
        } => (
            json!({ "delete": {
                "_index": MESSAGES_INDEX, "_id": message_id, "routing": workspace_id
            }}),
            None,
        ),
    };
    let mut s = action.to_string();
    s.push('\n');
    if let Some(src) = source {
        s.push_str(&src.to_string());
        s.push('\n');
    }
    s
}

/// Bulk request bodies for `ops`, in order: at most [`BULK_MAX_OPS`] ops
/// and (unless one op alone is larger) [`BULK_MAX_BYTES`] bytes each.
/// Returns each body with the ops it carries, to retry by item.
pub fn bulk_bodies(ops: &[DocOp]) -> Vec<(String, Vec<DocOp>)> {
    let mut out: Vec<(String, Vec<DocOp>)> = Vec::new();
    let mut body = String::new();
    let mut carried: Vec<DocOp> = Vec::new();
    for op in ops {
        let lines = op_lines(op);
        if !carried.is_empty()
            && (carried.len() >= BULK_MAX_OPS || body.len() + lines.len() > BULK_MAX_BYTES)
        {
            out.push((std::mem::take(&mut body), std::mem::take(&mut carried)));
        }
        body.push_str(&lines);
        carried.push(op.clone());
    }
    if !carried.is_empty() {
        out.push((body, carried));
    }
    out
}

/// What became of each op of a bulk request, from its response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    /// Done (a delete of a missing document counts: it is gone).
    Acked,
    /// Refused for now (429, 5xx): send again.
    Retry,
    /// Refused for good (a mapping error): a bug, not retried.
    Failed(String),
}

/// Whether an HTTP status is worth retrying (429 Too Many Requests, 5xx).
pub fn retryable(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

/// The outcome of each item of a bulk response, in request order.
pub fn bulk_outcomes(response: &Value) -> Vec<ItemOutcome> {
    let Some(items) = response.get("items").and_then(Value::as_array) else {
        return Vec::new();
    };
    items
        .iter()
        .map(|item| {
            let (kind, body) = match item.as_object().and_then(|o| o.iter().next()) {
                Some((k, v)) => (k.as_str(), v),
                None => return ItemOutcome::Failed("empty bulk item".into()),
            };
            let status = body.get("status").and_then(Value::as_u64).unwrap_or(0) as u16;
            match status {
                200..=299 => ItemOutcome::Acked,
                404 if kind == "delete" => ItemOutcome::Acked,
                s if retryable(s) => ItemOutcome::Retry,
                s => ItemOutcome::Failed(format!(
                    "{kind} {}: {s} {}",
                    body.get("_id").and_then(Value::as_str).unwrap_or("?"),
                    body.get("error").map(Value::to_string).unwrap_or_default()
                )),
            }
        })
        .collect()
}

/// Exponential backoff for bulk and checkpoint requests: `base · 2^n`,
/// capped at `max`, for at most `attempts` tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max: Duration,
    pub attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_millis(100),
            max: Duration::from_secs(10),
            attempts: 10,
        }
    }
}

impl RetryPolicy {
    /// The pause before try `attempt` (1: the first retry); `None` when
    /// the tries are used up.
    pub fn delay(&self, attempt: u32) -> Option<Duration> {
        if attempt == 0 || attempt >= self.attempts {
            return None;
        }
        let factor = 1u32.checked_shl(attempt - 1).unwrap_or(u32::MAX);
        Some(self.base.saturating_mul(factor).min(self.max))
    }
}

/// The text fields a term is matched against (its script decides).
fn text_fields(t: &Term) -> Value {
    if t.is_unspaced() {
        json!(["text.cjk", "files.cjk"])
    } else {
        json!(["text", "files"])
    }
}

/// One term as a query clause: a word or phrase is a `multi_match` of type
/// `phrase` (the words of `e-mail` in order); a prefix is a `prefix` on
/// the folded text or file names.
pub fn term_clause(t: &Term) -> Value {
    match t.kind {
        TermKind::Word | TermKind::Phrase => json!({
            "multi_match": { "query": t.text, "type": "phrase", "fields": text_fields(t) }
        }),
        TermKind::Prefix => {
            let stem = t.text.to_lowercase();
            json!({ "bool": { "should": [
                { "prefix": { "text": { "value": stem, "case_insensitive": true } } },
                { "prefix": { "files": { "value": stem, "case_insensitive": true } } }
            ], "minimum_should_match": 1 } })
        }
    }
}

/// The filters of a search: the permission filter (workspace, readable
/// channels), the snapshot bound, and the resolved `in:`/`from:`/
/// `mentions:`/date/`has:`/`is:` filters.
pub fn filter_clauses(scope: &Scope, ref_ms: i64) -> Vec<Value> {
    let mut f = vec![
        json!({ "term": { "workspace": scope.workspace_id } }),
        json!({ "terms": { "channel": scope.readable } }),
        // The snapshot: nothing posted after the first page's time.
        json!({ "range": { "ts": { "lte": ref_ms } } }),
    ];
    for (field, ids) in [
        ("channel", &scope.channels),
        ("sender", &scope.senders),
        ("mentions", &scope.mentions),
    ] {
        if let Some(ids) = ids {
            f.push(json!({ "terms": { field: ids } }));
        }
    }
    if scope.since_ms.is_some() || scope.until_ms.is_some() {
        let mut range = serde_json::Map::new();
        if let Some(s) = scope.since_ms {
            range.insert("gte".into(), json!(s));
        }
        if let Some(u) = scope.until_ms {
            range.insert("lt".into(), json!(u));
        }
        f.push(json!({ "range": { "ts": range } }));
    }
    for (on, field) in [
        (scope.has_file, "has_file"),
        (scope.has_link, "has_link"),
        (scope.has_reaction, "has_reaction"),
        (scope.is_thread, "in_thread"),
    ] {
        if on {
            f.push(json!({ "term": { field: true } }));
        }
    }
    f
}

/// The whole search request body for one page: a `function_score` over a
/// bool query (`must`: the terms, `must_not`: the exclusions, `filter`:
/// [`filter_clauses`]), sorted by score then id (newest first on ties),
/// continuing after `cursor` with `search_after`, with highlights marked
/// by [`MARK_OPEN`]/[`MARK_CLOSE`].
pub fn search_body(
    query: &Query,
    scope: &Scope,
    cursor: Option<&Cursor>,
    ref_ms: i64,
    limit: usize,
) -> Value {
    let must: Vec<Value> = query.terms.iter().map(term_clause).collect();
    let must_not: Vec<Value> = query.excluded.iter().map(term_clause).collect();
    let mut body = json!({
        "size": limit + 1,
        "track_total_hits": super::CANDIDATES,
        "_source": ["message_id"],
        "query": {
            "function_score": {
                "query": { "bool": {
                    "must": must,
                    "must_not": must_not,
                    "filter": filter_clauses(scope, ref_ms)
                }},
                "functions": [
                    { "weight": 0.5 },
                    // A date's origin goes through the date parser: the
                    // epoch milliseconds as text, in the field's format.
                    { "exp": { "ts": {
                        "origin": ref_ms.to_string(),
                        "scale": format!("{}d", RECENCY_HALF_LIFE_DAYS as i64),
                        "decay": 0.5
                    }}, "weight": 0.5 }
                ],
                "score_mode": "sum",
                "boost_mode": "multiply"
            }
        },
        "sort": [ { "_score": "desc" }, { "id": "desc" } ],
        "highlight": {
            "pre_tags": [MARK_OPEN.to_string()],
            "post_tags": [MARK_CLOSE.to_string()],
            "fields": { "text": {}, "text.cjk": {}, "files": {} },
            "fragment_size": 120,
            "number_of_fragments": 1
        }
    });
    if let Some(c) = cursor {
        body["search_after"] = json!([c.score, c.rowid]);
    }
    body
}

/// The hits of a search response as `(message_id, id, score, snippet)`,
/// and the total (capped by `track_total_hits`).
pub fn parse_hits(response: &Value) -> (Vec<(String, i64, f64, String)>, u64) {
    let total = response["hits"]["total"]["value"].as_u64().unwrap_or(0);
    let hits = response["hits"]["hits"]
        .as_array()
        .map(|hits| {
            hits.iter()
                .filter_map(|h| {
                    let message_id = h["_source"]["message_id"].as_str()?.to_string();
                    let sort = h["sort"].as_array()?;
                    let score = sort.first()?.as_f64()?;
                    let id = sort.get(1)?.as_i64()?;
                    let snippet = ["text", "text.cjk", "files"]
                        .iter()
                        .find_map(|f| h["highlight"][f][0].as_str())
                        .unwrap_or_default()
                        .to_string();
                    Some((message_id, id, score, snippet))
                })
                .collect()
        })
        .unwrap_or_default();
    (hits, total)
}

#[cfg(feature = "opensearch")]
mod client;
#[cfg(feature = "opensearch")]
pub use client::OpenSearchBackend;

#[cfg(test)]
mod tests;
