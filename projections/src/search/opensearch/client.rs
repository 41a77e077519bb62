//! The OpenSearch client side of the backend (cargo feature `opensearch`).

use super::*;
use crate::search::backend::{BackendError, SearchArgs, SearchBackend};
use crate::search::{Found, Hit};
use ::opensearch::http::headers::{HeaderMap, HeaderValue, CONTENT_TYPE};
use ::opensearch::http::transport::Transport;
use ::opensearch::http::Method;
use ::opensearch::OpenSearch;
use futures_util::future::BoxFuture;

/// The OpenSearch backend (see the module docs).
#[derive(Clone)]
pub struct OpenSearchBackend {
    client: OpenSearch,
    retry: RetryPolicy,
}

fn err(e: impl std::fmt::Display) -> BackendError {
    BackendError::Backend(e.to_string())
}

fn ok(status: u16) -> bool {
    (200..300).contains(&status)
}

impl OpenSearchBackend {
    /// A client for the single node or load balancer at `url`
    /// (`http://localhost:9200`). Nothing is sent yet.
    pub fn connect(url: &str) -> Result<OpenSearchBackend, BackendError> {
        let transport = Transport::single_node(url).map_err(err)?;
        Ok(OpenSearchBackend {
            client: OpenSearch::new(transport),
            retry: RetryPolicy::default(),
        })
    }

    /// Sends one request; the status and the JSON body (`null` if none).
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<String>,
        ndjson: bool,
    ) -> Result<(u16, Value), BackendError> {
        let mut headers = HeaderMap::new();
        let kind = if ndjson {
            "application/x-ndjson"
        } else {
            "application/json"
        };
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(kind));
        let r = self
            .client
            .send(method, path, headers, Some(query), body, None)
            .await
            .map_err(err)?;
        let status = r.status_code().as_u16();
        let text = r.text().await.map_err(err)?;
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok((status, value))
    }

    /// Sends with retries on transport errors, 429 and 5xx.
    async fn send_retrying(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<(u16, Value), BackendError> {
        let mut attempt = 0;
        loop {
            let r = self.send(method, path, &[], body.clone(), false).await;
            let again = match &r {
                Ok((s, _)) => retryable(*s),
                Err(_) => true,
            };
            if !again {
                return r;
            }
            attempt += 1;
            match self.retry.delay(attempt) {
                Some(d) => tokio::time::sleep(d).await,
                None => return r,
            }
        }
    }

    /// Installs the index template and creates the indexes if missing.
    pub async fn install(&self) -> Result<(), BackendError> {
        let (s, v) = self
            .send_retrying(
                Method::Put,
                &format!("/_index_template/{TEMPLATE_NAME}"),
                Some(index_template().to_string()),
            )
            .await?;
        if !ok(s) {
            return Err(err(format!("index template: {s} {v}")));
        }
        for (index, body) in [
            (MESSAGES_INDEX, json!({})),
            (CHECKPOINT_INDEX, checkpoint_mapping()),
        ] {
            let (s, v) = self
                .send_retrying(Method::Put, &format!("/{index}"), Some(body.to_string()))
                .await?;
            let exists = v["error"]["type"] == "resource_already_exists_exception";
            if !ok(s) && !exists {
                return Err(err(format!("creating {index}: {s} {v}")));
            }
        }
        Ok(())
    }

    /// Deletes the messages index and the checkpoint (before a reindex),
    /// then installs them afresh.
    pub async fn reset(&self) -> Result<(), BackendError> {
        for index in [MESSAGES_INDEX, CHECKPOINT_INDEX] {
            let (s, v) = self
                .send_retrying(Method::Delete, &format!("/{index}"), None)
                .await?;
            if !ok(s) && s != 404 {
                return Err(err(format!("deleting {index}: {s} {v}")));
            }
        }
        self.install().await
    }

    /// Makes everything indexed so far searchable (tests, after a reindex).
    pub async fn refresh(&self) -> Result<(), BackendError> {
        let (s, v) = self
            .send_retrying(Method::Post, &format!("/{MESSAGES_INDEX}/_refresh"), None)
            .await?;
        if !ok(s) {
            return Err(err(format!("refresh: {s} {v}")));
        }
        Ok(())
    }

    /// After an erasure's deletes: a refresh (the deletes reach the
    /// segments), a force merge that rewrites segments holding deleted
    /// documents without them, and a flush (the translog, which still
    /// holds the indexed sources, is committed and trimmed).
    pub async fn expunge_deleted(&self) -> Result<(), BackendError> {
        self.refresh().await?;
        let (s, v) = self
            .send(
                Method::Post,
                &format!("/{MESSAGES_INDEX}/_forcemerge"),
                &[("only_expunge_deletes", "true")],
                None,
                false,
            )
            .await?;
        if !ok(s) {
            return Err(err(format!("force merge: {s} {v}")));
        }
        let (s, v) = self
            .send_retrying(Method::Post, &format!("/{MESSAGES_INDEX}/_flush"), None)
            .await?;
        if !ok(s) {
            return Err(err(format!("flush: {s} {v}")));
        }
        Ok(())
    }

    /// Sends `ops` in bounded bulk requests; items refused with 429/5xx
    /// are resent (only those) with backoff. Returns once every item is
    /// acknowledged, or at the first permanent failure.
    async fn bulk(&self, ops: &[DocOp]) -> Result<(), BackendError> {
        for (first_body, first_carried) in bulk_bodies(ops) {
            let (mut body, mut carried) = (first_body, first_carried);
            let mut attempt = 0;
            loop {
                let r = self
                    .send(Method::Post, "/_bulk", &[], Some(body.clone()), true)
                    .await;
                let pending: Vec<DocOp> = match r {
                    Ok((s, v)) if ok(s) => {
                        let outcomes = bulk_outcomes(&v);
                        if outcomes.len() != carried.len() {
                            return Err(err(format!(
                                "bulk: {} of {} items answered",
                                outcomes.len(),
                                carried.len()
                            )));
                        }
                        let mut pending = Vec::new();
                        for (op, outcome) in carried.iter().zip(outcomes) {
                            match outcome {
                                ItemOutcome::Acked => {}
                                ItemOutcome::Retry => pending.push(op.clone()),
                                ItemOutcome::Failed(why) => return Err(err(why)),
                            }
                        }
                        pending
                    }
                    Ok((s, v)) if !retryable(s) => return Err(err(format!("bulk: {s} {v}"))),
                    // 429/5xx or a transport error: all of it again.
                    _ => carried.clone(),
                };
                if pending.is_empty() {
                    break;
                }
                attempt += 1;
                let Some(d) = self.retry.delay(attempt) else {
                    return Err(err(format!("bulk: {} items still refused", pending.len())));
                };
                tokio::time::sleep(d).await;
                body = pending.iter().map(op_lines).collect();
                carried = pending;
            }
        }
        Ok(())
    }
}

impl SearchBackend for OpenSearchBackend {
    fn name(&self) -> &'static str {
        "opensearch"
    }

    fn apply(&self, ops: Vec<DocOp>, through_seq: u64) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            self.bulk(&ops).await?;
            // Only now: everything up to through_seq was acknowledged.
            let (s, v) = self
                .send_retrying(
                    Method::Put,
                    &format!("/{CHECKPOINT_INDEX}/_doc/{CHECKPOINT_ID}"),
                    Some(checkpoint_doc(through_seq).to_string()),
                )
                .await?;
            if !ok(s) {
                return Err(err(format!("checkpoint: {s} {v}")));
            }
            Ok(())
        })
    }

    fn settle(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(self.refresh())
    }

    fn expunge(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(self.expunge_deleted())
    }

    fn checkpoint(&self) -> BoxFuture<'_, Result<u64, BackendError>> {
        Box::pin(async move {
            let (s, v) = self
                .send_retrying(
                    Method::Get,
                    &format!("/{CHECKPOINT_INDEX}/_doc/{CHECKPOINT_ID}"),
                    None,
                )
                .await?;
            match s {
                200 => Ok(v["_source"]["seq"].as_u64().unwrap_or(0)),
                404 => Ok(0),
                s => Err(err(format!("checkpoint: {s} {v}"))),
            }
        })
    }

    fn search(&self, args: SearchArgs) -> BoxFuture<'_, Result<Found, BackendError>> {
        Box::pin(async move {
            let ref_ms = args.cursor.map_or(args.ref_ms, |c| c.ref_ms);
            let body = search_body(
                &args.query,
                &args.scope,
                args.cursor.as_ref(),
                ref_ms,
                args.limit,
            );
            let routing = args.scope.workspace_id.clone();
            let (s, v) = self
                .send(
                    Method::Post,
                    &format!("/{MESSAGES_INDEX}/_search"),
                    &[("routing", routing.as_str())],
                    Some(body.to_string()),
                    false,
                )
                .await?;
            if !ok(s) {
                return Err(err(format!("search: {s} {v}")));
            }
            let (mut hits, total) = parse_hits(&v);
            let more = hits.len() > args.limit;
            hits.truncate(args.limit);
            let next = more.then(|| hits.last()).flatten().map(|h| Cursor {
                snapshot: 0,
                ref_ms,
                score: h.2,
                rowid: h.1,
            });
            Ok(Found {
                hits: hits
                    .into_iter()
                    .map(|(message_id, rowid, score, snippet)| Hit {
                        message_id,
                        rowid,
                        score,
                        snippet,
                    })
                    .collect(),
                next,
                total_estimate: total,
            })
        })
    }
}
