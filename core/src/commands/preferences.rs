//! Notification preferences: a user's own (do-not-disturb, time zone,
//! keywords) and per channel (mute, notify level), and dismissing
//! notifications. All are events on the user's subject; each preferences
//! event carries the whole resulting settings, so a reader needs only the
//! last one.
//!
//! Rules kept here:
//! - input is parsed into a patch at the edge; a bad field is
//!   [`DomainError::Invalid`] naming the field, and nothing is appended;
//! - a patch leaves absent fields as they are; a patch that changes
//!   nothing decides `Ok(None)` (nothing appended);
//! - channel settings only for members of the channel (another workspace's
//!   channel, or a private one the caller is not in, is not found);
//! - [`dnd_active_until`] says, from the settings alone and a given time,
//!   whether do-not-disturb is on and until when.

use super::ChannelState;
use crate::authz::Caller;
use crate::events::{
    Body, ChannelPreferencesSet, DndSchedule, NotificationsAcked, NotifyLevel, UserPreferencesSet,
};
use crate::DomainError;
use chrono::{DateTime, Duration, LocalResult, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// Most keywords a user may have.
pub const MAX_KEYWORDS: usize = 50;
/// Longest keyword, in characters.
pub const MAX_KEYWORD_CHARS: usize = 64;
/// Most notification ids one acknowledgement may name.
pub const MAX_ACK_IDS: usize = 500;
/// Minutes in a day.
const DAY_MINUTES: u32 = 24 * 60;

/// A change to a user's preferences; `None` fields stay as they are.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserPrefsPatch {
    /// `Some(0)`: DND off.
    pub dnd_until_ms: Option<i64>,
    /// `Some(None)`: no schedule.
    pub dnd_schedule: Option<Option<DndSchedule>>,
    /// A canonical IANA name; `Some("")`: UTC.
    pub time_zone: Option<String>,
    /// Trimmed, lowercased, without repeats, in the order given.
    pub keywords: Option<Vec<String>>,
}

/// The raw input of a preferences change, as the request has it: for each
/// field, absent (`None`), `null` (`Some(None)`) or a value.
#[derive(Debug, Clone, Default)]
pub struct RawUserPrefs<'a> {
    /// An RFC 3339 timestamp (`2026-11-28T18:00:00Z`); `null` ends DND.
    pub dnd_until: Option<Option<&'a str>>,
    /// Local `HH:MM` start and end; `null` removes the schedule.
    pub dnd_schedule: Option<Option<(&'a str, &'a str)>>,
    /// An IANA name; `null` or `""` is UTC.
    pub time_zone: Option<Option<&'a str>>,
    /// `null` is no keywords.
    pub keywords: Option<Option<&'a [String]>>,
}

impl UserPrefsPatch {
    /// Parses and validates every given field.
    pub fn parse(raw: &RawUserPrefs<'_>) -> Result<UserPrefsPatch, DomainError> {
        let dnd_until_ms = match raw.dnd_until {
            None => None,
            Some(None) => Some(0),
            Some(Some(s)) => Some(parse_instant(s)?),
        };
        let dnd_schedule = match raw.dnd_schedule {
            None => None,
            Some(None) => Some(None),
            Some(Some((start, end))) => {
                let start_minute = parse_clock("dnd_schedule.start", start)?;
                let end_minute = parse_clock("dnd_schedule.end", end)?;
                if start_minute == end_minute {
                    return Err(DomainError::invalid(
                        "dnd_schedule: start and end must differ",
                    ));
                }
                Some(Some(DndSchedule {
                    start_minute,
                    end_minute,
                }))
            }
        };
        let time_zone = match raw.time_zone {
            None => None,
            Some(None) => Some(String::new()),
            Some(Some(s)) => Some(parse_time_zone(s)?),
        };
        let keywords = match raw.keywords {
            None => None,
            Some(None) => Some(Vec::new()),
            Some(Some(list)) => Some(parse_keywords(list)?),
        };
        Ok(UserPrefsPatch {
            dnd_until_ms,
            dnd_schedule,
            time_zone,
            keywords,
        })
    }
}

/// An RFC 3339 timestamp with an offset, as unix milliseconds.
fn parse_instant(s: &str) -> Result<i64, DomainError> {
    let t = DateTime::parse_from_rfc3339(s.trim()).map_err(|_| {
        DomainError::invalid(
            "dnd_until must be an RFC 3339 timestamp (2026-11-28T18:00:00Z) or null",
        )
    })?;
    let ms = t.timestamp_millis();
    if ms <= 0 {
        return Err(DomainError::invalid("dnd_until must be after 1970"));
    }
    Ok(ms)
}

/// `HH:MM` (24-hour) as minutes after midnight.
fn parse_clock(field: &str, s: &str) -> Result<u32, DomainError> {
    let bad = || DomainError::invalid(format!("{field} must be a time of day HH:MM (00:00-23:59)"));
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u32 = h.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// An IANA time zone name, in its canonical spelling; `""` (and `UTC`)
/// is UTC.
fn parse_time_zone(s: &str) -> Result<String, DomainError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(String::new());
    }
    // UTC is stored as the default (""), so naming it changes nothing.
    s.parse::<Tz>()
        .map(|tz| match tz {
            Tz::UTC => String::new(),
            tz => tz.name().to_string(),
        })
        .map_err(|_| {
            DomainError::invalid("time_zone must be an IANA time zone name such as Europe/Berlin")
        })
}

/// Keywords trimmed and lowercased, repeats dropped (first kept).
fn parse_keywords(list: &[String]) -> Result<Vec<String>, DomainError> {
    if list.len() > MAX_KEYWORDS {
        return Err(DomainError::invalid(format!(
            "keywords: at most {MAX_KEYWORDS}"
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for (i, raw) in list.iter().enumerate() {
        let k = raw.trim().to_lowercase();
        let n = k.chars().count();
        if n == 0 || n > MAX_KEYWORD_CHARS {
            return Err(DomainError::invalid(format!(
                "keywords[{i}] must be 1 to {MAX_KEYWORD_CHARS} characters"
            )));
        }
        if k.chars().any(char::is_control) {
            return Err(DomainError::invalid(format!(
                "keywords[{i}] must not contain control characters"
            )));
        }
        // Matched as whole words: one with no letter or digit never could.
        if !k.chars().any(char::is_alphanumeric) {
            return Err(DomainError::invalid(format!(
                "keywords[{i}] must contain a letter or a digit"
            )));
        }
        if !out.contains(&k) {
            out.push(k);
        }
    }
    Ok(out)
}

/// The preferences after `patch`, as an event; `None` when they equal
/// `current` (nothing to append).
pub fn decide_user_preferences(
    current: &UserPreferencesSet,
    patch: &UserPrefsPatch,
) -> Option<Body> {
    let mut next = current.clone();
    if let Some(until) = patch.dnd_until_ms {
        next.dnd_until_ms = until;
    }
    if let Some(schedule) = &patch.dnd_schedule {
        next.dnd_schedule = *schedule;
    }
    if let Some(tz) = &patch.time_zone {
        next.time_zone = tz.clone();
    }
    if let Some(k) = &patch.keywords {
        next.keywords = k.clone();
    }
    (next != *current).then_some(Body::UserPreferencesSet(next))
}

/// A change to a user's settings for one channel; `None` fields stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChannelPrefsPatch {
    pub muted: Option<bool>,
    pub notify: Option<NotifyLevel>,
}

impl ChannelPrefsPatch {
    /// `notify`: `all`, `mentions`, `nothing` or `default`.
    pub fn parse(muted: Option<bool>, notify: Option<&str>) -> Result<Self, DomainError> {
        let notify = notify.map(parse_notify).transpose()?;
        Ok(ChannelPrefsPatch { muted, notify })
    }
}

fn parse_notify(s: &str) -> Result<NotifyLevel, DomainError> {
    Ok(match s {
        "all" => NotifyLevel::All,
        "mentions" => NotifyLevel::Mentions,
        "nothing" => NotifyLevel::Nothing,
        "default" => NotifyLevel::Default,
        _ => {
            return Err(DomainError::invalid(
                "notify must be one of all, mentions, nothing, default",
            ))
        }
    })
}

/// The public name of a notify level.
pub fn notify_name(level: NotifyLevel) -> &'static str {
    match level {
        NotifyLevel::All => "all",
        NotifyLevel::Mentions => "mentions",
        NotifyLevel::Nothing => "nothing",
        NotifyLevel::Default => "default",
    }
}

/// The caller's settings for the channel of `state` after `patch`;
/// `Ok(None)` when they equal `current`. Members only; settings are the
/// caller's own, so an archived channel may still be muted.
pub fn decide_channel_preferences(
    caller: &Caller,
    state: &ChannelState,
    current: &ChannelPreferencesSet,
    patch: &ChannelPrefsPatch,
) -> Result<Option<Body>, DomainError> {
    let ch = state.visible_to(caller)?;
    if !state.caller_member {
        return Err(DomainError::NotAMember);
    }
    let mut next = ChannelPreferencesSet {
        channel_id: ch.id.as_str().to_string(),
        ..current.clone()
    };
    if let Some(m) = patch.muted {
        next.muted = m;
    }
    if let Some(n) = patch.notify {
        next.notify = n as i32;
    }
    let before = ChannelPreferencesSet {
        channel_id: next.channel_id.clone(),
        ..current.clone()
    };
    Ok((next != before).then_some(Body::ChannelPreferencesSet(next)))
}

/// What the notification model holds about one id asked to be
/// acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckFacts {
    pub id: String,
    pub workspace_id: String,
    pub user_id: String,
    /// `pending`, `read`, `acked` or `withdrawn`.
    pub state: String,
}

/// Acknowledging notifications: of the ids asked for (`found`: those the
/// model knows), only the caller's own in the caller's workspace that are
/// still `pending` or `read` are acknowledged; the others are ignored,
/// never acknowledged for anyone. `None` when none is left.
pub fn decide_ack(caller: &Caller, found: Vec<AckFacts>) -> Option<Body> {
    let ids: Vec<String> = found
        .into_iter()
        .filter(|f| {
            f.user_id == caller.user_id.as_str()
                && f.workspace_id == caller.workspace_id.as_str()
                && matches!(f.state.as_str(), "pending" | "read")
        })
        .map(|f| f.id)
        .collect();
    (!ids.is_empty()).then_some(Body::NotificationsAcked(NotificationsAcked { ids }))
}

/// Checks the shape of an acknowledgement: 1 to [`MAX_ACK_IDS`] ids, each
/// a plausible notification id. Duplicates are dropped.
pub fn parse_ack_ids(ids: &[String]) -> Result<Vec<String>, DomainError> {
    if ids.len() > MAX_ACK_IDS {
        return Err(DomainError::invalid(format!("ids: at most {MAX_ACK_IDS}")));
    }
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        // `<message id>-<user id>`: two ids and a dash.
        if id.is_empty()
            || id.len() > 129
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(DomainError::invalid(format!(
                "ids[{i}] is not a notification id"
            )));
        }
        if !out.contains(id) {
            out.push(id.clone());
        }
    }
    Ok(out)
}

/// When do-not-disturb ends, if it is on at `now_ms` (unix ms): from
/// `dnd_until_ms` and from the daily schedule in the user's time zone
/// (an empty or unknown zone is UTC). Where the two overlap or touch, DND
/// lasts until the later end. A schedule end that falls into a DST gap
/// ends at the first local time that exists after it; an end that occurs
/// twice (the clocks go back) ends at the first occurrence still ahead.
pub fn dnd_active_until(prefs: &UserPreferencesSet, now_ms: i64) -> Option<i64> {
    let tz: Tz = prefs.time_zone.parse().unwrap_or(Tz::UTC);
    let active_end = |t: i64| -> Option<i64> {
        let until = (prefs.dnd_until_ms > t).then_some(prefs.dnd_until_ms);
        let scheduled = prefs
            .dnd_schedule
            .as_ref()
            .and_then(|s| schedule_end(s, tz, t));
        until.max(scheduled)
    };
    let mut end = active_end(now_ms).filter(|end| *end > now_ms)?;
    // A chain: the manual DND may end inside tonight's window, or the
    // window inside the manual DND. Two steps cover both.
    for _ in 0..2 {
        match active_end(end) {
            Some(later) if later > end => end = later,
            _ => break,
        }
    }
    Some(end)
}

/// If the schedule's window contains `t_ms`, when it ends.
fn schedule_end(s: &DndSchedule, tz: Tz, t_ms: i64) -> Option<i64> {
    let (start, end) = (s.start_minute, s.end_minute);
    if start == end || start >= DAY_MINUTES || end >= DAY_MINUTES {
        return None;
    }
    let local = Utc.timestamp_millis_opt(t_ms).single()?.with_timezone(&tz);
    let minute = local.hour() * 60 + local.minute();
    let inside = if start < end {
        start <= minute && minute < end
    } else {
        minute >= start || minute < end
    };
    if !inside {
        return None;
    }
    // The window ends today if its end is still ahead, else tomorrow.
    let mut date = local.date_naive();
    if minute >= end {
        date = date.succ_opt()?;
    }
    let end_time = NaiveTime::from_hms_opt(end / 60, end % 60, 0)?;
    let mut wall = date.and_time(end_time);
    // Skip forward out of a DST gap (at most a few hours anywhere).
    for _ in 0..(4 * 60) {
        match tz.from_local_datetime(&wall) {
            LocalResult::Single(t) => return Some(t.timestamp_millis()),
            // The clocks go back: the first occurrence still ahead.
            LocalResult::Ambiguous(first, second) => {
                let first = first.timestamp_millis();
                return Some(if first > t_ms {
                    first
                } else {
                    second.timestamp_millis()
                });
            }
            LocalResult::None => wall += Duration::minutes(1),
        }
    }
    None
}

#[cfg(test)]
mod tests;
