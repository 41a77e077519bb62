//! The domain's error vocabulary. Each variant maps to one API error code;
//! the variant docs say what a caller should do.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    /// The input is malformed or out of range. Fix the request; retrying it
    /// unchanged fails again.
    #[error("{0}")]
    Invalid(String),
    /// The caller is authenticated but not allowed to do this.
    #[error("{0}")]
    Forbidden(String),
    /// The caller is not a member of a channel whose existence it may know.
    #[error("not a member of this channel")]
    NotAMember,
    /// Nothing the caller may see has this id (also used where revealing
    /// existence would leak across tenants or private channels).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request conflicts with the current state (duplicate name,
    /// archived channel). Retrying unchanged fails again.
    #[error("{0}")]
    Conflict(String),
}

impl DomainError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        DomainError::Invalid(msg.into())
    }
}
