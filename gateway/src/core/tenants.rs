//! Workspaces and users: creation (operator or workspace admin), `me`, the user list.

use super::*;

impl Core {
    pub async fn create_workspace(&self, name: &str) -> ApiResult<WorkspaceView> {
        let name = DisplayName::parse("name", name)?.into_string();
        let id = WorkspaceId::generate(ms(), random()).into_string();
        let subject = subjects::workspace(&id);
        let body = Body::WorkspaceCreated(events::WorkspaceCreated { name: name.clone() });
        let a = self
            .log
            .append(&subject, None, |seq| {
                Self::envelope(&id, "", "", seq, body.clone())
            })
            .await?;
        self.note_acl_write(a.stream_seq);
        Ok(WorkspaceView { id, name })
    }

    /// Adds a user; returns the user and its bearer token (shown once).
    /// `by` is the operator (`None`) or a workspace admin.
    pub async fn create_user(
        &self,
        by: Option<&UserCtx>,
        ws: &str,
        handle: &str,
        display_name: &str,
        role: Option<&str>,
    ) -> ApiResult<(UserView, String)> {
        let ws = WorkspaceId::parse(ws).map_err(|_| ApiError::not_found("workspace"))?;
        if let Some(u) = by {
            if u.caller.workspace_id != ws.as_str() {
                return Err(ApiError::not_found("workspace"));
            }
            if !u.caller.admin {
                return Err(ApiError::forbidden("only workspace admins may add users"));
            }
        }
        let handle = Handle::parse(handle)?.into_string();
        let display_name = DisplayName::parse("display_name", display_name)?.into_string();
        let role = match role.unwrap_or("member") {
            "member" => Role::Member,
            "admin" => Role::Admin,
            _ => return Err(ApiError::invalid("role must be \"member\" or \"admin\"")),
        };
        let token = new_token();
        let user_id = UserId::generate(ms(), random()).into_string();
        let who = by.map_or("", |u| u.caller.user_id.as_str());
        let (ws_c, handle_c) = (ws.as_str().to_string(), handle.clone());
        let body = Body::UserAdded(events::UserAdded {
            user_id: user_id.clone(),
            handle: handle.clone(),
            display_name: display_name.clone(),
            role: role as i32,
            token_hash: token_hash(&token),
        });
        let outcome = self
            .decide_on_workspace::<(), _>(
                ws.as_str(),
                move |c| {
                    if acl::workspace(c, &ws_c)?.is_none() {
                        return Ok(Err(DomainError::NotFound("workspace")));
                    }
                    if acl::user_by_handle(c, &ws_c, &handle_c)?.is_some() {
                        return Ok(Err(DomainError::Conflict(format!(
                            "handle {handle_c:?} is taken in this workspace"
                        ))));
                    }
                    Ok(Ok(None))
                },
                |seq| Self::envelope(ws.as_str(), "", who, seq, body.clone()),
            )
            .await?;
        if outcome.is_err() {
            return Err(ApiError::internal(
                "create_user",
                &"unexpected existing result",
            ));
        }
        Ok((
            UserView {
                id: user_id,
                workspace_id: ws.into_string(),
                handle,
                display_name,
                role: role.as_str().to_string(),
            },
            token,
        ))
    }

    pub async fn me(&self, user: &UserCtx) -> ApiResult<(UserView, Option<WorkspaceView>)> {
        let ws = user.caller.workspace_id.clone();
        let w = self.acl.read(move |c| acl::workspace(c, &ws)).await?;
        Ok((user.user.clone(), w))
    }

    pub async fn users(&self, user: &UserCtx) -> ApiResult<Vec<UserView>> {
        self.fresh_reads().await?;
        let ws = user.caller.workspace_id.clone();
        Ok(self.acl.read(move |c| acl::users(c, &ws)).await?)
    }
}
