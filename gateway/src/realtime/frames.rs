//! Client → server WebSocket frames, parsed into one enum tagged by `type`
//! instead of being read field by field out of a `Value`. A frame is either
//! one of these shapes with valid values, or refused whole with an
//! `invalid_request` error frame and no effect — in particular a subscribe
//! whose seqs are not integers 0..=i64::MAX (negative, strings, floats,
//! ≥ 2^63) subscribes to nothing and replays nothing, where reading them
//! as 0 used to replay the whole history.

use crate::error::client_message;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use switchboard_core::validate::Seq;

#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// `{"channels": {"<channel_id>": <last_seen_seq>, …}}`: replay after
    /// each seq, then follow live.
    Subscribe {
        channels: BTreeMap<String, Seq>,
    },
    Unsubscribe {
        channels: Vec<String>,
    },
    Typing {
        channel_id: String,
    },
    Ping,
    Presence {
        status: Status,
    },
}

/// A status a client may set; `offline` is the server's to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Online,
    Away,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Online => "online",
            Status::Away => "away",
        }
    }
}

const NOT_A_FRAME: &str = "frames are JSON objects with a type";

/// Parses one text frame; `Err` carries the client-facing message.
pub fn parse(text: &str) -> Result<ClientFrame, String> {
    if !text.trim_start().starts_with('{') {
        return Err(NOT_A_FRAME.into());
    }
    serde_json::from_str(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => client_message(&e.to_string()),
        _ => NOT_A_FRAME.into(),
    })
}

/// `{"type":"error","code","message"}`, with `channel_id` when the error is
/// about one channel.
pub fn error_frame(code: &str, channel_id: Option<&str>, message: &str) -> String {
    let mut f = json!({"type": "error", "code": code, "message": message});
    if let Some(ch) = channel_id {
        f["channel_id"] = json!(ch);
    }
    f.to_string()
}

/// Longest wait a `reconnect` frame asks of a client. Each connection
/// gets its own delay below it, so the clients of a gateway that shuts
/// down do not all reconnect to the others in the same millisecond.
pub const RECONNECT_SPREAD_MS: u64 = 1_000;

/// `{"type":"reconnect","reason","after_ms"}`: the last frame before the
/// server closes a stream on shutdown. The client reconnects (to any
/// gateway) after `after_ms` and resumes from its last seqs, as after any
/// disconnect; a client that ignores it sees the close that follows.
pub fn reconnect_frame(after_ms: u64) -> String {
    json!({"type": "reconnect", "reason": "server_shutting_down", "after_ms": after_ms}).to_string()
}

/// A delay in `0..RECONNECT_SPREAD_MS`, different per call (spreading
/// reconnects only; not a secret).
pub fn reconnect_delay_ms() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    h.finish() % RECONNECT_SPREAD_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_into_the_enum() {
        assert_eq!(parse(r#"{"type":"ping"}"#), Ok(ClientFrame::Ping));
        assert_eq!(parse(r#"{"type":"ping","extra":1}"#), Ok(ClientFrame::Ping));
        assert_eq!(
            parse(r#"{"type":"presence","status":"away"}"#),
            Ok(ClientFrame::Presence {
                status: Status::Away
            })
        );
        let Ok(ClientFrame::Subscribe { channels }) =
            parse(r#"{"type":"subscribe","channels":{"C1":0,"C2":9223372036854775807}}"#)
        else {
            panic!("subscribe");
        };
        assert_eq!(
            channels.values().map(|s| s.get()).collect::<Vec<_>>(),
            [0, i64::MAX as u64]
        );
    }

    #[test]
    fn bad_frames_are_refused_without_rust_type_names() {
        for bad in [
            r#"{"type":"subscribe","channels":{"C1":-1}}"#,
            r#"{"type":"subscribe","channels":{"C1":"5"}}"#,
            r#"{"type":"subscribe","channels":{"C1":1.5}}"#,
            r#"{"type":"subscribe","channels":{"C1":null}}"#,
            r#"{"type":"subscribe","channels":{"C1":9223372036854775808}}"#,
            r#"{"type":"subscribe","channels":{"C1":18446744073709551616}}"#,
            r#"{"type":"subscribe","channels":{"C1":0,"C2":-1}}"#,
            r#"{"type":"subscribe","channels":["C1"]}"#,
            r#"{"type":"subscribe"}"#,
            r#"{"type":"unsubscribe","channels":[1]}"#,
            r#"{"type":"typing"}"#,
            r#"{"type":"presence","status":"offline"}"#,
            r#"{"type":"nope"}"#,
            r#"{"channels":{}}"#,
            r#"["subscribe"]"#,
            "not json",
            "",
        ] {
            let msg = parse(bad).expect_err(bad);
            for leak in [
                "ClientFrame",
                "Status",
                "Seq",
                "struct",
                "enum",
                "u64",
                "BTreeMap",
            ] {
                assert!(!msg.contains(leak), "{bad}: {msg}");
            }
        }
    }

    #[test]
    fn the_reconnect_frame_has_a_type_and_a_bounded_delay() {
        let f: serde_json::Value = serde_json::from_str(&reconnect_frame(250)).expect("JSON");
        assert_eq!(f["type"], "reconnect");
        assert_eq!(f["after_ms"], 250);
        assert_eq!(f["reason"], "server_shutting_down");
        for _ in 0..100 {
            assert!(reconnect_delay_ms() < RECONNECT_SPREAD_MS);
        }
    }
}
