//! Workspaces and users: creation (operator or workspace admin), `me`, the user list.

use super::{ms, new_token, random, settle, Commands, UserCtx};
use crate::error::{ApiError, ApiResult};
use crate::paging::{ListQuery, Paged};
use switchboard_core::commands::tenants::{
    decide_create_user, decide_create_workspace, CreateUser, WorkspaceState,
};
use switchboard_core::events::Role;
use switchboard_core::ids::{UserId, WorkspaceId};
use switchboard_core::secret::token_hash;
use switchboard_core::validate::{DisplayName, Handle};
use switchboard_projections::acl::{self, UserView, WorkspaceView};
use switchboard_streams::{subjects, Outcome};

impl Commands {
    pub async fn create_workspace(&self, name: &str) -> ApiResult<WorkspaceView> {
        let name = DisplayName::parse("name", name)?;
        let id = WorkspaceId::generate(ms(), random()).into_string();
        let body = decide_create_workspace(&name);
        // A fresh workspace's subject is empty: nothing to decide against.
        let a = self
            .log
            .append(&subjects::workspace(&id), None, |seq| {
                Self::envelope(&id, "", "", seq, body.clone())
            })
            .await?;
        self.note_acl_write(a.stream_seq);
        Ok(WorkspaceView {
            id,
            name: name.into_string(),
        })
    }

    /// Adds a user; returns the user and its bearer token (shown once).
    /// `by` is the operator (`None`) or a user (only a workspace admin may).
    pub async fn create_user(
        &self,
        by: Option<&UserCtx>,
        ws: &str,
        handle: &str,
        display_name: &str,
        role: Option<&str>,
    ) -> ApiResult<(UserView, String)> {
        let ws = WorkspaceId::parse(ws).map_err(|_| ApiError::not_found("workspace"))?;
        let token = new_token();
        let cmd = CreateUser {
            user_id: UserId::generate(ms(), random()),
            handle: Handle::parse(handle)?,
            display_name: DisplayName::parse("display_name", display_name)?,
            role: Role::parse(role.unwrap_or("member"))?,
        };
        // The initial token's verifier goes first, once, and only for a
        // decision to add the user: a refusal appends nothing.
        let (verifier, hash) = (tokio::sync::OnceCell::<()>::new(), token_hash(&token));
        let initial = switchboard_projections::acl::initial_token_id(cmd.user_id.as_str());
        let (verifier, hash, initial) = (&verifier, &hash, &initial);
        let by = by.map(|u| &u.caller);
        let who = by.map_or("", |u| u.user_id.as_str());
        let (w, cmd, ws_id) = (ws.as_str(), &cmd, &ws);
        let outcome = self
            .log
            .append_decided::<(), _, _, _>(&subjects::workspace(w), |basis| async move {
                self.models_at(basis, false).await?;
                let (wc, h) = (w.to_string(), cmd.handle.as_str().to_string());
                let state = self
                    .acl
                    .read(move |c| {
                        Ok(WorkspaceState {
                            exists: acl::workspace(c, &wc)?.is_some(),
                            handle_taken: acl::user_by_handle(c, &wc, &h)?.is_some(),
                        })
                    })
                    .await?;
                let decided = decide_create_user(by, ws_id, state, cmd);
                if decided.is_ok() {
                    verifier
                        .get_or_try_init(|| {
                            self.append_verifier(w, initial, cmd.user_id.as_str(), hash.clone())
                        })
                        .await?;
                }
                settle(
                    basis,
                    decided,
                    |seq, body| Self::envelope(w, "", who, seq, body),
                    None,
                )
            })
            .await?;
        let Outcome::Appended(a) = outcome else {
            return Err(ApiError::internal("create_user", &"no event was decided"));
        };
        self.note_acl_write(a.stream_seq);
        Ok((
            UserView {
                id: cmd.user_id.as_str().to_string(),
                workspace_id: ws.into_string(),
                handle: cmd.handle.as_str().to_string(),
                display_name: cmd.display_name.as_str().to_string(),
                role: cmd.role.as_str().to_string(),
                deactivated: false,
            },
            token,
        ))
    }

    pub async fn me(&self, user: &UserCtx) -> ApiResult<(UserView, Option<WorkspaceView>)> {
        let ws = user.caller.workspace_id.clone();
        let w = self
            .acl
            .read(move |c| acl::workspace(c, ws.as_str()))
            .await?;
        Ok((user.user.clone(), w))
    }

    /// A page of the caller's workspace's users, in handle order.
    pub async fn users(&self, user: &UserCtx, page: &ListQuery) -> ApiResult<Paged<UserView>> {
        self.fresh_reads().await?;
        let ws = user.caller.workspace_id.clone();
        let (after, limit) = (page.after_one()?, page.limit);
        let listing = self
            .acl
            .read_page(move |c| acl::users(c, &ws, &after, limit))
            .await?;
        Ok(Paged::of(listing, |u| vec![&u.handle]))
    }
}
