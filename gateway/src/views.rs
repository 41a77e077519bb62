//! The JSON shapes of API.md, built from read-model rows or from a freshly
//! appended envelope. Each is a type deriving `ToSchema`, so the OpenAPI
//! document describes exactly what is serialized.

use serde::Serialize;
use serde_json::{Map, Value};
use switchboard_core::events::{Body, Envelope};
use switchboard_core::time::rfc3339_ms;
use switchboard_projections::acl::{ChannelView, UserView, WorkspaceView};
use switchboard_projections::history::{EventRow, MentionsRow, MessageRow, Reaction};
use utoipa::ToSchema;

/// A message.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Message)]
pub struct MessageView {
    pub id: String,
    pub channel_id: String,
    /// The channel's dense sequence number of the post.
    pub seq: i64,
    /// RFC 3339 UTC with milliseconds, assigned by the server.
    pub ts: String,
    pub sender_id: String,
    /// Empty once deleted.
    pub text: String,
    pub thread_root_id: Option<String>,
    /// A thread reply that also shows in the channel's history.
    pub also_send_to_channel: bool,
    /// Replies in this message's thread.
    pub reply_count: i64,
    /// When the latest reply was posted (`null`: no replies).
    pub latest_reply_ts: Option<String>,
    /// The first five distinct users who replied, in order.
    pub reply_user_ids: Vec<String>,
    /// In first-reacted order.
    pub reactions: Vec<ReactionView>,
    pub edited_ts: Option<String>,
    /// A tombstone: text, mentions, reactions and pin are gone.
    pub deleted: bool,
    /// Erased (retention or a user's erasure): as a tombstone, and the
    /// text's key is destroyed in the log too. Present only when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub erased: bool,
    pub attachments: Vec<AttachmentRef>,
    pub client_msg_id: Option<String>,
    /// Resolved when the message was posted or last edited.
    pub mentions: MentionsView,
    pub pinned: bool,
}

/// Who a message mentions, resolved against the channel's members when it
/// was posted or last edited (a non-member's handle adds nothing).
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[schema(as = Mentions)]
pub struct MentionsView {
    /// Members mentioned by `@handle`, in order of first mention.
    pub user_ids: Vec<String>,
    /// `@channel` or `@everyone`.
    pub channel: bool,
    /// `@here`.
    pub here: bool,
}

impl From<MentionsRow> for MentionsView {
    fn from(m: MentionsRow) -> Self {
        MentionsView {
            user_ids: m.user_ids,
            channel: m.channel,
            here: m.here,
        }
    }
}

/// One emoji's reactions to a message.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Reaction)]
pub struct ReactionView {
    pub emoji: String,
    pub count: usize,
    pub user_ids: Vec<String>,
}

impl From<Reaction> for ReactionView {
    fn from(r: Reaction) -> Self {
        ReactionView {
            emoji: r.emoji,
            count: r.count,
            user_ids: r.user_ids,
        }
    }
}

/// A file attached to a message.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Attachment)]
pub struct AttachmentRef {
    pub id: String,
    pub name: String,
    /// Bytes.
    pub size: u64,
    pub content_type: String,
}

impl From<switchboard_projections::history::FileRef> for AttachmentRef {
    fn from(f: switchboard_projections::history::FileRef) -> Self {
        AttachmentRef {
            id: f.id,
            name: f.name,
            size: f.size,
            content_type: f.content_type,
        }
    }
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
            also_send_to_channel: r.also_in_channel,
            reply_count: r.reply_count,
            latest_reply_ts: r.latest_reply_ms.map(rfc3339_ms),
            reply_user_ids: r.reply_user_ids,
            reactions: r.reactions.into_iter().map(ReactionView::from).collect(),
            edited_ts: r.edited_ms.map(rfc3339_ms),
            deleted: r.deleted,
            erased: r.erased,
            attachments: r.attachments.into_iter().map(AttachmentRef::from).collect(),
            client_msg_id: r.client_msg_id,
            mentions: r.mentions.into(),
            pinned: r.pinned,
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
        also_send_to_channel: b.also_send_to_channel,
        reply_count: 0,
        latest_reply_ts: None,
        reply_user_ids: Vec::new(),
        reactions: Vec::new(),
        edited_ts: None,
        deleted: false,
        erased: b.is_erased(),
        // Filled in by the post path from the files' facts.
        attachments: Vec::new(),
        client_msg_id: opt(&b.client_msg_id),
        mentions: b
            .mentions
            .clone()
            .map(|m| MentionsView {
                user_ids: m.user_ids,
                channel: m.channel,
                here: m.here,
            })
            .unwrap_or_default(),
        pinned: false,
    })
}

/// One event of a channel's log: the fields every event has, then those
/// of its type (`message_posted` carries `message_id`, `text`, …).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Event)]
pub struct EventJson {
    pub seq: i64,
    /// The event type, e.g. `message_posted`, `member_joined`.
    #[serde(rename = "type")]
    pub kind: String,
    pub ts: String,
    pub actor_id: String,
    /// The type's own fields; never one of the common ones above.
    #[serde(flatten)]
    pub body: Map<String, Value>,
}

pub fn event_json(e: EventRow) -> EventJson {
    let mut body = match e.body {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    // The common fields win over a body field of the same name.
    body.retain(|k, _| !matches!(k.as_str(), "seq" | "type" | "ts" | "actor_id"));
    EventJson {
        seq: e.seq,
        kind: e.kind,
        ts: rfc3339_ms(e.ts_ms),
        actor_id: e.actor_id,
        body,
    }
}

/// A user of a workspace.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = User)]
pub struct UserJson {
    pub id: String,
    pub workspace_id: String,
    pub handle: String,
    pub display_name: String,
    /// `member` or `admin`.
    pub role: String,
    /// Deactivated by a workspace admin: still listed (and in history),
    /// refused on every path until reactivated.
    pub deactivated: bool,
}

pub fn user_json(u: &UserView) -> UserJson {
    UserJson {
        id: u.id.clone(),
        workspace_id: u.workspace_id.clone(),
        handle: u.handle.clone(),
        display_name: u.display_name.clone(),
        role: u.role.clone(),
        deactivated: u.deactivated,
    }
}

/// A workspace (tenant).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Workspace)]
pub struct WorkspaceJson {
    pub id: String,
    pub name: String,
}

pub fn workspace_json(w: &WorkspaceView) -> WorkspaceJson {
    WorkspaceJson {
        id: w.id.clone(),
        name: w.name.clone(),
    }
}

/// A channel as the caller sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Channel)]
pub struct ChannelJson {
    pub id: String,
    pub name: String,
    pub private: bool,
    /// A direct-message channel (`POST /v1/dms`).
    pub direct: bool,
    pub topic: String,
    /// Read-only once archived.
    pub archived: bool,
    pub creator_id: String,
    pub member_count: i64,
    /// The seq of the channel's latest event.
    pub head_seq: i64,
    /// Whether the caller is a member.
    pub is_member: bool,
}

pub fn channel_json(c: &ChannelView) -> ChannelJson {
    ChannelJson {
        id: c.id.clone(),
        name: c.name.clone(),
        private: c.private,
        direct: c.direct,
        topic: c.topic.clone(),
        archived: c.archived,
        creator_id: c.creator_id.clone(),
        member_count: c.member_count,
        head_seq: c.head_seq,
        is_member: c.is_member,
    }
}

/// A member of a channel.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Member)]
pub struct MemberJson {
    pub user_id: String,
    pub handle: String,
    pub display_name: String,
    pub role: String,
    /// The member's user is deactivated (it stays a member).
    pub deactivated: bool,
}

pub fn member_json(u: &UserView) -> MemberJson {
    MemberJson {
        user_id: u.id.clone(),
        handle: u.handle.clone(),
        display_name: u.display_name.clone(),
        role: u.role.clone(),
        deactivated: u.deactivated,
    }
}

/// `GET /v1/users`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserList {
    pub users: Vec<UserJson>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /v1/channels`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChannelList {
    pub channels: Vec<ChannelJson>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /v1/channels/{id}/members`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberList {
    pub members: Vec<MemberJson>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A user just created; its token is shown this once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NewUser {
    #[serde(flatten)]
    pub user: UserJson,
    pub token: String,
}

/// `GET /v1/me`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Me {
    pub user: UserJson,
    /// `null` only while the read model does not hold it yet.
    pub workspace: Option<WorkspaceJson>,
}

/// A membership change or archive, appended as event `seq` of the channel.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Appended {
    pub ok: bool,
    pub seq: u64,
}

impl Appended {
    pub fn at(seq: u64) -> Appended {
        Appended { ok: true, seq }
    }
}

/// A page of a channel's history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessagePage {
    pub messages: Vec<MessageView>,
    /// More messages lie beyond this page in its direction.
    pub has_more: bool,
}

/// `GET /v1/channels/{id}/pins`: the most recently pinned first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PinList {
    pub messages: Vec<MessageView>,
}

/// A channel's events after a seq (resume / gap fill).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<EventJson>,
    /// The seq of the channel's latest event.
    pub head_seq: u64,
}

/// A read marker after `POST /v1/channels/{id}/read` or `/unread`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = ReadMarker)]
pub struct MarkerView {
    pub channel_id: String,
    /// Everything up to and including this seq is read.
    pub last_read_seq: u64,
    /// The thread whose marker this is (absent: the channel's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread_root_id: Option<String>,
}

/// One channel of `GET /v1/unreads`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = ChannelUnread)]
pub struct ChannelUnreadView {
    pub channel_id: String,
    pub last_read_seq: u64,
    /// The channel's latest seq (any event).
    pub head_seq: u64,
    /// Messages after the marker that count (see the README's rules).
    pub unread_count: u64,
    /// Those that mention the caller (0 in a muted channel).
    pub mention_count: u64,
    /// When the latest channel-level message was posted (`null`: none).
    pub latest_ts: Option<String>,
}

/// One followed thread of `GET /v1/unreads`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = ThreadUnread)]
pub struct ThreadUnreadView {
    pub root_id: String,
    pub channel_id: String,
    pub unread_replies: u64,
    pub mention_count: u64,
}

/// `GET /v1/unreads`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Unreads)]
pub struct UnreadsView {
    pub channels: Vec<ChannelUnreadView>,
    pub threads: Vec<ThreadUnreadView>,
}

impl UnreadsView {
    pub fn from_summary(s: switchboard_projections::unreads::UnreadSummary) -> UnreadsView {
        UnreadsView {
            channels: s
                .channels
                .into_iter()
                .map(|c| ChannelUnreadView {
                    channel_id: c.channel_id,
                    last_read_seq: c.last_read_seq,
                    head_seq: c.head_seq,
                    unread_count: c.unread_count,
                    mention_count: c.mention_count,
                    latest_ts: (c.latest_ts > 0).then(|| rfc3339_ms(c.latest_ts)),
                })
                .collect(),
            threads: s
                .threads
                .into_iter()
                .map(|t| ThreadUnreadView {
                    root_id: t.root_id,
                    channel_id: t.channel_id,
                    unread_replies: t.unread_replies,
                    mention_count: t.mention_count,
                })
                .collect(),
        }
    }
}

/// One of the caller's notifications.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Notification)]
pub struct NotificationView {
    /// `<message_id>-<user_id>`: one per message and user.
    pub id: String,
    /// `mention`, `dm`, `keyword`, `channel`, `here`, `thread` or `message`.
    pub kind: String,
    pub channel_id: String,
    pub message_id: String,
    /// The message's text (as last edited).
    pub text: String,
    /// When the message was posted.
    pub ts: String,
    /// The message's channel seq.
    pub seq: u64,
    /// `pending` (not read or dismissed yet), `read` (a read marker passed
    /// it) or `acked` (dismissed).
    pub state: String,
}

impl NotificationView {
    pub fn from_row(r: switchboard_projections::notifications::NotificationRow) -> Self {
        NotificationView {
            id: r.id,
            kind: r.kind,
            channel_id: r.channel_id,
            message_id: r.message_id,
            text: r.text,
            ts: rfc3339_ms(r.ts_ms),
            seq: r.seq,
            state: r.state,
        }
    }
}

/// A page of the caller's notifications, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NotificationPage {
    pub notifications: Vec<NotificationView>,
    /// Pass as `after` for the next (older) page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// What an acknowledgement did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Acked {
    /// The ids acknowledged now (the caller's, not acknowledged before).
    pub acked: Vec<String>,
}

/// A daily do-not-disturb window, local time in the user's time zone.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DndScheduleView {
    /// `HH:MM`.
    pub start: String,
    /// `HH:MM`; before `start` when the window wraps past midnight.
    pub end: String,
}

/// The caller's notification preferences.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Preferences)]
pub struct PreferencesView {
    /// Do not disturb until then (`null`: not set).
    pub dnd_until: Option<String>,
    pub dnd_schedule: Option<DndScheduleView>,
    /// IANA name; `UTC` when none was set.
    pub time_zone: String,
    /// Lowercased; match whole words, case-insensitively.
    pub keywords: Vec<String>,
    /// When do-not-disturb (either kind) ends if it is on now, else `null`.
    pub dnd_active_until: Option<String>,
}

fn clock(minute: u32) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

impl PreferencesView {
    pub fn new(p: &switchboard_core::events::UserPreferencesSet, now_ms: i64) -> Self {
        use switchboard_core::commands::preferences::dnd_active_until;
        PreferencesView {
            dnd_until: (p.dnd_until_ms > 0).then(|| rfc3339_ms(p.dnd_until_ms)),
            dnd_schedule: p.dnd_schedule.as_ref().map(|s| DndScheduleView {
                start: clock(s.start_minute),
                end: clock(s.end_minute),
            }),
            time_zone: if p.time_zone.is_empty() {
                "UTC".to_string()
            } else {
                p.time_zone.clone()
            },
            keywords: p.keywords.clone(),
            dnd_active_until: dnd_active_until(p, now_ms).map(rfc3339_ms),
        }
    }
}

/// The caller's settings for one channel.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = ChannelPreferences)]
pub struct ChannelPreferencesView {
    pub channel_id: String,
    /// No notifications from this channel at all.
    pub muted: bool,
    /// `all`, `mentions`, `nothing` or `default` (mentions; every message
    /// in a DM).
    pub notify: String,
}

impl ChannelPreferencesView {
    pub fn new(p: &switchboard_core::events::ChannelPreferencesSet) -> Self {
        ChannelPreferencesView {
            channel_id: p.channel_id.clone(),
            muted: p.muted,
            notify: switchboard_core::commands::preferences::notify_name(p.notify()).to_string(),
        }
    }
}
