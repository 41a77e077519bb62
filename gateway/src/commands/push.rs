//! Push configuration (workspace admins): the webhook URL is an event on
//! the workspace subject (`PushConfigured`); its signing secret is stored
//! in the push KV bucket *before* the event is appended, and never in the
//! log.

use super::{random, settle_or_unchanged, Commands, UserCtx};
use crate::error::{ApiError, ApiResult};
use crate::push::{DeadLetter, Push};
use switchboard_core::commands::push::{authorize_push_admin, decide_configure_push};
use switchboard_core::push::{PushUrl, WebhookSecret};
use switchboard_projections::push as push_model;
use switchboard_streams::{subjects, Outcome};

/// How long push settings wait for their read model.
const WAIT: std::time::Duration = std::time::Duration::from_secs(3);

fn behind() -> ApiError {
    ApiError::unavailable("the push read model is catching up with the log; retry shortly")
}

impl Commands {
    /// Sets the caller's workspace's push webhook; returns the URL and the
    /// secret (generated when none is given). `url: None` removes it.
    pub async fn configure_push(
        &self,
        push: &Push,
        user: &UserCtx,
        url: Option<&str>,
        secret: Option<&str>,
    ) -> ApiResult<(String, Option<String>)> {
        let caller = &user.caller;
        let ws = &caller.workspace_id;
        // Refusals first (nothing stored for a caller who may not).
        authorize_push_admin(caller, ws)?;
        let url = url.map(PushUrl::parse).transpose()?;
        let secret = match (&url, secret) {
            (None, _) => None,
            (Some(_), Some(s)) => Some(WebhookSecret::parse(s)?),
            (Some(_), None) => Some(WebhookSecret::from_key(random())),
        };
        if let Some(u) = &url {
            push.check_reachable(u).await.map_err(ApiError::invalid)?;
        }
        if let (Some(u), Some(s)) = (&url, &secret) {
            push.put_secret(ws.as_str(), u.as_str(), s)
                .await
                .map_err(|e| ApiError::internal("push secret", &e))?;
        }
        let (w, who, url_ref) = (ws.as_str(), caller.user_id.as_str(), url.as_ref());
        // The URL in force when the decision was made (whose secret a
        // removal forgets).
        let previous = std::sync::Mutex::new(None::<String>);
        let previous_ref = &previous;
        let outcome = self
            .log
            .append_decided::<(), _, _, _>(&subjects::workspace(w), |basis| async move {
                // The URL in force at the head: the push model must have
                // applied it (and, on a re-check, the whole log).
                let mut must_see = basis.must_see;
                if basis.recheck {
                    must_see = must_see.max(self.log.last_seq().await?);
                }
                if !push.progress.wait_for(must_see, WAIT).await {
                    return Err(behind());
                }
                let wc = w.to_string();
                let current = push.model.read(move |c| push_model::url_of(c, &wc)).await?;
                *previous_ref
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = current.clone();
                settle_or_unchanged(
                    basis,
                    decide_configure_push(caller, ws, current.as_deref(), url_ref),
                    |seq, body| Self::envelope(w, "", who, seq, body),
                )
            })
            .await?;
        if let Outcome::Appended(a) = outcome {
            if !push.progress.wait_for(a.stream_seq, WAIT).await {
                return Err(behind());
            }
        }
        let previous = previous
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let (None, Some(old)) = (&url, previous) {
            push.delete_secret(w, &old)
                .await
                .map_err(|e| ApiError::internal("push secret", &e))?;
        }
        Ok((
            url.map(PushUrl::into_string).unwrap_or_default(),
            secret.map(|s| s.expose()),
        ))
    }

    /// The caller's workspace's push webhook URL (`""` when none); never
    /// the secret.
    pub async fn push_url(&self, push: &Push, user: &UserCtx) -> ApiResult<String> {
        authorize_push_admin(&user.caller, &user.caller.workspace_id)?;
        let seq = self.log.last_acked();
        if seq > 0
            && !push
                .progress
                .wait_for(seq, std::time::Duration::from_secs(3))
                .await
        {
            return Err(ApiError::unavailable(
                "the push read model is catching up with the log; retry shortly",
            ));
        }
        let ws = user.caller.workspace_id.as_str().to_string();
        Ok(push
            .model
            .read(move |c| push_model::url_of(c, &ws))
            .await?
            .unwrap_or_default())
    }

    /// The caller's workspace's dead-lettered notifications, newest first.
    pub async fn dead_letters(
        &self,
        push: &Push,
        user: &UserCtx,
        limit: u32,
    ) -> ApiResult<Vec<DeadLetter>> {
        authorize_push_admin(&user.caller, &user.caller.workspace_id)?;
        push.dead_letters(user.caller.workspace_id.as_str(), limit as usize)
            .await
            .map_err(|e| ApiError::unavailable(format!("dead letters unavailable: {e}")))
    }
}
