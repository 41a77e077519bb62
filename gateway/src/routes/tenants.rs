//! Tenants and users: creating workspaces (operator) and users (operator
//! or a workspace admin), and who the caller is.

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Auth, Path, Query, User};
use crate::paging::{self, ListParams};
use crate::state::AppState;
use crate::views::{user_json, workspace_json, Me, NewUser, UserList, WorkspaceJson};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;

const TAG: &str = "tenants";

#[derive(Deserialize, ToSchema)]
pub(super) struct CreateWorkspace {
    name: String,
}

/// Create a workspace.
#[utoipa::path(post, path = "/v1/workspaces", tag = TAG,
    security(("operator" = [])),
    request_body = CreateWorkspace,
    responses((status = 201, description = "created", body = WorkspaceJson)))]
pub(super) async fn create_workspace(
    State(s): State<AppState>,
    auth: Auth,
    ApiJson(req): ApiJson<CreateWorkspace>,
) -> ApiResult<(StatusCode, Json<WorkspaceJson>)> {
    if !matches!(auth, Auth::Operator) {
        return Err(ApiError::forbidden(
            "only the operator token may create workspaces",
        ));
    }
    let w = s.commands.create_workspace(&req.name).await?;
    Ok((StatusCode::CREATED, Json(workspace_json(&w))))
}

/// A workspace role.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // documents the accepted values of a text field
pub(super) enum Role {
    Member,
    Admin,
}

#[derive(Deserialize, ToSchema)]
pub(super) struct CreateUser {
    handle: String,
    display_name: String,
    /// `member` when absent. Checked by the command (400 when unknown).
    #[schema(value_type = Option<Role>)]
    role: Option<String>,
}

/// Add a user.
///
/// The response carries its token, shown once.
#[utoipa::path(post, path = "/v1/workspaces/{ws}/users", tag = TAG,
    security(("operator" = []), ("user" = [])),
    request_body = CreateUser,
    responses((status = 201, description = "created (operator, or an admin of the workspace)", body = NewUser)))]
pub(super) async fn create_user(
    State(s): State<AppState>,
    auth: Auth,
    Path(ws): Path<String>,
    ApiJson(req): ApiJson<CreateUser>,
) -> ApiResult<(StatusCode, Json<NewUser>)> {
    let by = match auth {
        Auth::Operator => None,
        Auth::User(u) => Some(u),
    };
    let (user, token) = s
        .commands
        .create_user(
            by.as_ref(),
            &ws,
            &req.handle,
            &req.display_name,
            req.role.as_deref(),
        )
        .await?;
    let user = user_json(&user);
    Ok((StatusCode::CREATED, Json(NewUser { user, token })))
}

/// The caller's user and workspace.
#[utoipa::path(get, path = "/v1/me", tag = TAG, security(("user" = [])),
    responses((status = 200, description = "the caller", body = Me)))]
pub(super) async fn me(State(s): State<AppState>, User(u): User) -> ApiResult<Json<Me>> {
    let (user, ws) = s.commands.me(&u).await?;
    Ok(Json(Me {
        user: user_json(&user),
        workspace: ws.as_ref().map(workspace_json),
    }))
}

/// A page of the workspace's users, in handle order.
#[utoipa::path(get, path = "/v1/users", tag = TAG, security(("user" = [])), params(ListParams),
    responses((status = 200, description = "the users", body = UserList)))]
pub(super) async fn users(
    State(s): State<AppState>,
    User(u): User,
    Query(q): Query<ListParams>,
) -> ApiResult<Json<UserList>> {
    let page = s
        .commands
        .users(&u, &q.page(paging::DEFAULT_LIMIT)?)
        .await?;
    Ok(Json(UserList {
        users: page.items.iter().map(user_json).collect(),
        next_cursor: page.next_cursor,
    }))
}
