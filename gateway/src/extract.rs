//! Request extractors whose rejections speak API.md's error shape:
//! [`ApiJson`] for bodies and [`Auth`] for the bearer token.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;
use switchboard_core::authz::Caller;
use switchboard_projections::acl::UserView;

/// A JSON body. Malformed JSON → 400, wrong shape → 422, too large → 413,
/// all as `invalid_request` / `payload_too_large`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    let status = r.status();
    let text = r.body_text();
    match r {
        JsonRejection::JsonDataError(_) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", text)
        }
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::invalid("expected a JSON body with Content-Type: application/json")
        }
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is too large",
        ),
        _ => ApiError::invalid(text),
    }
}

/// An authenticated user.
#[derive(Debug, Clone)]
pub struct UserCtx {
    pub user: UserView,
    pub caller: Caller,
}

/// Who made the request.
#[derive(Debug, Clone)]
pub enum Auth {
    /// The server operator (`SWITCHBOARD_ADMIN_TOKEN`).
    Operator,
    User(UserCtx),
}

impl Auth {
    /// The request's user; the operator token has none.
    pub fn user(self) -> Result<UserCtx, ApiError> {
        match self {
            Auth::User(u) => Ok(u),
            Auth::Operator => Err(ApiError::forbidden(
                "the operator token belongs to no user; use a user's token",
            )),
        }
    }
}

/// A user-only endpoint's caller.
pub struct User(pub UserCtx);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        state.commands.authenticate(token).await
    }
}

impl FromRequestParts<AppState> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Auth::from_request_parts(parts, state)
            .await?
            .user()
            .map(User)
    }
}
