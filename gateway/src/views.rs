//! The JSON shapes of API.md, built from read-model rows or from a freshly
//! appended envelope.

use serde::Serialize;
use serde_json::{json, Value};
use switchboard_core::events::{Body, Envelope};
use switchboard_core::time::rfc3339_ms;
use switchboard_projections::acl::{ChannelView, UserView, WorkspaceView};
use switchboard_projections::history::{EventRow, MessageRow, Reaction};

#[derive(Debug, Clone, Serialize)]
pub struct MessageView {
    pub id: String,
    pub channel_id: String,
    pub seq: i64,
    pub ts: String,
    pub sender_id: String,
    pub text: String,
    pub thread_root_id: Option<String>,
    pub reply_count: i64,
    pub reactions: Vec<Reaction>,
    pub edited_ts: Option<String>,
    pub deleted: bool,
    pub attachments: Vec<Value>,
    pub client_msg_id: Option<String>,
}

impl MessageView {
    pub fn from_row(r: MessageRow) -> MessageView {
        MessageView {
            id: r.id,
            channel_id: r.channel_id,
            seq: r.seq,
            ts: rfc3339_ms(r.ts_ms),
            sender_id: r.sender_id,
            text: r.text,
            thread_root_id: r.thread_root_id,
            reply_count: r.reply_count,
            reactions: r.reactions,
            edited_ts: r.edited_ms.map(rfc3339_ms),
            deleted: r.deleted,
            attachments: r
                .attachment_ids
                .into_iter()
                .map(|id| json!({"id": id}))
                .collect(),
            client_msg_id: r.client_msg_id,
        }
    }
}

/// The message a `MessagePosted` envelope creates, as of that event.
pub fn message_from_envelope(env: &Envelope) -> Option<MessageView> {
    let Some(Body::MessagePosted(b)) = &env.body else {
        return None;
    };
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Some(MessageView {
        id: b.message_id.clone(),
        channel_id: env.channel_id.clone(),
        seq: env.channel_seq as i64,
        ts: rfc3339_ms(env.ts_ms),
        sender_id: env.actor_id.clone(),
        text: b.text.clone(),
        thread_root_id: opt(&b.thread_root_id),
        reply_count: 0,
        reactions: Vec::new(),
        edited_ts: None,
        deleted: false,
        attachments: b
            .attachment_ids
            .iter()
            .map(|id| json!({"id": id}))
            .collect(),
        client_msg_id: opt(&b.client_msg_id),
    })
}

pub fn event_json(e: EventRow) -> Value {
    let mut v = json!({
        "seq": e.seq,
        "type": e.kind,
        "ts": rfc3339_ms(e.ts_ms),
        "actor_id": e.actor_id,
    });
    if let (Value::Object(out), Value::Object(body)) = (&mut v, e.body) {
        for (k, val) in body {
            out.entry(k).or_insert(val);
        }
    }
    v
}

pub fn user_json(u: &UserView) -> Value {
    json!({
        "id": u.id,
        "workspace_id": u.workspace_id,
        "handle": u.handle,
        "display_name": u.display_name,
        "role": u.role,
    })
}

pub fn workspace_json(w: &WorkspaceView) -> Value {
    json!({"id": w.id, "name": w.name})
}

pub fn channel_json(c: &ChannelView) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "private": c.private,
        "direct": c.direct,
        "topic": c.topic,
        "archived": c.archived,
        "creator_id": c.creator_id,
        "member_count": c.member_count,
        "head_seq": c.head_seq,
        "is_member": c.is_member,
    })
}
