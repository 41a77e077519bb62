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
    /// The channel is archived: its conversation is read-only (members can
    /// still leave and be removed). Retrying fails again.
    #[error("channel is archived")]
    Archived,
    /// The message already carries as many distinct reactions as it may;
    /// react with an emoji it already has, or remove one first.
    #[error("a message has at most {0} distinct reactions")]
    TooManyReactions(usize),
}

impl DomainError {
    pub fn invalid(msg: impl Into<String>) -> Self {
        DomainError::Invalid(msg.into())
    }
}
