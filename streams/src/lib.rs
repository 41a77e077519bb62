//! `switchboard-streams`: the only crate that talks to JetStream for the log.
//!
//! It owns the stream setup, the subject scheme, the sequenced append path
//! (a dense per-subject `channel_seq` kept with optimistic concurrency on
//! `Nats-Expected-Last-Subject-Sequence`, idempotency with `Nats-Msg-Id`),
//! and replay from any stream sequence for projectors and exports.

pub mod chain;
pub mod checkpoint;
pub mod export;
pub mod keyring;
mod log;
pub mod subjects;

pub use async_nats::Client;
pub use log::split_userinfo;

pub use log::open_payload;
pub use log::payload_digest;
pub use log::{
    connect, AppendError, Appended, Basis, Decision, Head, Log, LogConfig, LogError, LogEvent,
    Nats, Outcome, RawEvent, RawStream, ReplayStream, ScanStart, HDR_CHANNEL_SEQ, HDR_FENCE_SEQ,
};

/// The stored bytes of an envelope (protobuf).
pub fn encode_envelope(env: &switchboard_core::events::Envelope) -> Vec<u8> {
    prost::Message::encode_to_vec(env)
}
