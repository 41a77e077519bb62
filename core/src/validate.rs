//! Input newtypes, parsed once at the edge. Past the edge an invalid value
//! cannot be represented.

use crate::DomainError;

/// Longest message text, in characters (Unicode scalar values).
pub const MAX_TEXT_CHARS: usize = 40_000;
/// Page sizes for history and event reads.
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

fn clean_line(field: &str, s: &str, max: usize) -> Result<String, DomainError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(DomainError::invalid(format!("{field} must not be empty")));
    }
    if t.chars().count() > max {
        return Err(DomainError::invalid(format!(
            "{field} is longer than {max} characters"
        )));
    }
    if t.chars().any(char::is_control) {
        return Err(DomainError::invalid(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(t.to_owned())
}

/// A message body: not blank, at most [`MAX_TEXT_CHARS`] characters. Kept as
/// sent (leading/trailing whitespace is content in code blocks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageText(String);

impl MessageText {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        if s.trim().is_empty() {
            return Err(DomainError::invalid("text must not be empty"));
        }
        if s.chars().count() > MAX_TEXT_CHARS {
            return Err(DomainError::invalid(format!(
                "text is longer than {MAX_TEXT_CHARS} characters"
            )));
        }
        Ok(Self(s.to_owned()))
    }
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A channel name: 1-80 of lowercase letters, digits, `-` and `_`
/// (Slack's rule), unique per workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelName(String);

impl ChannelName {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let ok = !s.is_empty()
            && s.len() <= 80
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(DomainError::invalid(
                "name must be 1-80 characters of a-z, 0-9, '-' or '_'",
            ))
        }
    }
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A user handle: 1-32 of lowercase letters, digits, `.`, `-` and `_`,
/// unique per workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handle(String);

impl Handle {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
            });
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(DomainError::invalid(
                "handle must be 1-32 characters of a-z, 0-9, '.', '-' or '_'",
            ))
        }
    }
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A human name (workspace name, display name): trimmed, 1-80 characters,
/// no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(field: &str, s: &str) -> Result<Self, DomainError> {
        clean_line(field, s, 80).map(Self)
    }
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A channel topic: at most 250 characters (may be empty).
pub fn parse_topic(s: Option<&str>) -> Result<String, DomainError> {
    match s.map(str::trim) {
        None | Some("") => Ok(String::new()),
        Some(t) => clean_line("topic", t, 250),
    }
}

/// A client idempotency key: 1-64 of A-Z, a-z, 0-9, `-`, `_` (it becomes
/// part of a JetStream `Nats-Msg-Id` header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMsgId(String);

impl ClientMsgId {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        if crate::ids::is_token(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(DomainError::invalid(
                "client_msg_id must be 1-64 characters of A-Z, a-z, 0-9, '-' or '_'",
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A page size: absent means [`DEFAULT_LIMIT`]; otherwise 1..=[`MAX_LIMIT`].
pub fn parse_limit(limit: Option<i64>) -> Result<u32, DomainError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=i64::from(MAX_LIMIT)).contains(&n) => Ok(n as u32),
        Some(_) => Err(DomainError::invalid(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        ))),
    }
}

/// Borrowed views of the validated newtypes.
macro_rules! as_str {
    ($($t:ty),*) => {$(
        impl $t {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    )*};
}
as_str!(MessageText, ChannelName, Handle, DisplayName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_bounds() {
        assert!(MessageText::parse("").is_err());
        assert!(MessageText::parse(" \n\t ").is_err());
        assert!(MessageText::parse(&"é".repeat(MAX_TEXT_CHARS)).is_ok());
        assert!(MessageText::parse(&"a".repeat(MAX_TEXT_CHARS + 1)).is_err());
        assert_eq!(
            MessageText::parse("  hi ").map(MessageText::into_string),
            Ok("  hi ".to_owned())
        );
    }

    #[test]
    fn names_and_handles() {
        assert!(ChannelName::parse("general").is_ok());
        for bad in ["", "General", "a b", "a.b", &"a".repeat(81)] {
            assert!(ChannelName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Handle::parse("ada.l").is_ok());
        assert!(Handle::parse("Ada").is_err());
        assert!(DisplayName::parse("name", "  Ada  ").is_ok());
        assert!(DisplayName::parse("name", "a\u{7}").is_err());
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit(None), Ok(DEFAULT_LIMIT));
        assert_eq!(parse_limit(Some(200)), Ok(200));
        for bad in [0, -1, 201] {
            assert!(parse_limit(Some(bad)).is_err());
        }
    }
}
