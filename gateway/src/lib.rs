//! `switchboard-gateway`: the HTTP API (axum). Stateless apart from the
//! read-your-writes watermarks; all state is in the log and read models.
//!
//! `app(state)` is the one way to build the router, used by `serve` and by
//! tests.

pub mod checkpoints;
pub mod commands;
pub mod error;
pub mod exports;
pub mod extract;
pub mod login_limits;

pub mod limits;
pub mod metrics;
pub mod observe;
mod openapi;
pub mod paging;
pub mod push;
mod query;
pub mod realtime;
mod routes;
pub mod search;
pub mod state;
pub mod tls;
pub mod views;

pub use routes::app;
pub use routes::metrics_only;
pub use state::{AppState, Platform};
