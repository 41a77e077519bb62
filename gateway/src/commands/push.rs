//! Push configuration (workspace admins): the webhook URL is an event on
//! the workspace subject (`PushConfigured`); its signing secret is stored
//! in the push KV bucket *before* the event is appended, and never in the
//! log.

use super::{random, settle, Commands, UserCtx};
use crate::error::{ApiError, ApiResult};
use crate::push::{DeadLetter, Push};
use switchboard_core::commands::push::{authorize_push_admin, decide_configure_push};
use switchboard_core::push::{PushUrl, WebhookSecret};
use switchboard_projections::push as push_model;
use switchboard_streams::{subjects, Outcome};

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
        if let Some(s) = &secret {
            push.put_secret(ws.as_str(), s)
                .await
                .map_err(|e| ApiError::internal("push secret", &e))?;
        }
        let (w, who, url_ref) = (ws.as_str(), caller.user_id.as_str(), url.as_ref());
        let outcome = self
            .log
            .append_decided::<(), _, _, _>(&subjects::workspace(w), |basis| async move {
                settle(
                    basis,
                    decide_configure_push(caller, ws, url_ref),
                    |seq, body| Self::envelope(w, "", who, seq, body),
                    None,
                )
            })
            .await?;
        let Outcome::Appended(a) = outcome else {
            return Err(ApiError::internal(
                "configure_push",
                &"no event was decided",
            ));
        };
        if !push
            .progress
            .wait_for(a.stream_seq, std::time::Duration::from_secs(3))
            .await
        {
            return Err(ApiError::unavailable(
                "the push configuration is stored; its read model is catching up",
            ));
        }
        if url.is_none() {
            push.delete_secret(w)
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
