//! `switchboard-core`: the domain of Switchboard with no I/O.
//!
//! It owns the event schema (generated from `proto/`), the id and input
//! newtypes that are parsed once at the edge, the error vocabulary shared by
//! every layer, and the authorization rules as pure functions. Nothing here
//! touches the network, the disk or the clock: callers pass time and
//! randomness in, which keeps every rule unit-testable.

pub mod authz;
pub mod commands;
pub mod error;
pub mod events;
pub mod ids;
pub mod mentions;
pub mod push;
pub mod secret;
pub mod time;
pub mod validate;

pub use error::DomainError;
pub use ids::{ChannelId, EventId, MessageId, UserId, WorkspaceId};
