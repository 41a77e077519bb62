//! Input newtypes, parsed once at the edge. Past the edge an invalid value
//! cannot be represented.
//!
//! "Blank" means "renders as nothing": besides whitespace, zero-width,
//! bidi-control and other format characters count as blank, so a name or a
//! message made only of them is refused like an empty one (otherwise it
//! shows as an empty row that cannot be told apart from a missing one).

use crate::DomainError;
use std::fmt;

/// Longest message text, in characters (Unicode scalar values).
pub const MAX_TEXT_CHARS: usize = 40_000;
/// Page sizes for history and event reads.
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

/// A character that renders as nothing on its own: whitespace, control
/// characters, and the zero-width / bidi / format characters (mostly
/// Unicode category Cf) plus the "filler" letters that display blank.
pub fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(
            c,
            '\u{00AD}' // soft hyphen
                | '\u{034F}' // combining grapheme joiner
                | '\u{061C}' // Arabic letter mark
                | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' // Hangul fillers
                | '\u{17B4}' | '\u{17B5}' // Khmer inherent vowels
                | '\u{180B}'..='\u{180F}' // Mongolian variation selectors, vowel separator
                | '\u{200B}'..='\u{200F}' // zero-width space/non-joiner/joiner, LRM, RLM
                | '\u{202A}'..='\u{202E}' // bidi embeddings and overrides
                | '\u{2060}'..='\u{206F}' // word joiner, invisible operators, bidi isolates
                | '\u{2800}' // Braille pattern blank
                | '\u{FE00}'..='\u{FE0F}' // variation selectors
                | '\u{FEFF}' // zero-width no-break space (BOM)
                | '\u{FFF9}'..='\u{FFFB}' // interlinear annotation controls
                | '\u{1BCA0}'..='\u{1BCA3}' // shorthand format controls
                | '\u{1D173}'..='\u{1D17A}' // musical symbol format controls
                | '\u{E0000}'..='\u{E007F}' // tag characters
                | '\u{E0100}'..='\u{E01EF}' // variation selectors supplement
        )
}

/// True when `s` would render as nothing (empty, or only
/// [`is_invisible`] characters).
pub fn is_blank(s: &str) -> bool {
    s.chars().all(is_invisible)
}

fn clean_line(field: &str, s: &str, max: usize) -> Result<String, DomainError> {
    let t = s.trim();
    if is_blank(t) {
        return Err(DomainError::invalid(format!("{field} must not be blank")));
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
        if is_blank(s) {
            return Err(DomainError::invalid("text must not be blank"));
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

/// A reaction: a shortcode (`+1`, `thumbsup`, `party_parrot`: 1-64 of
/// `a-z`, `0-9`, `_`, `+`, `-`) or exactly one Unicode emoji sequence — a
/// pictograph with its optional presentation selector and skin-tone
/// modifier, several of those joined by ZWJ (U+200D), a keycap, a flag
/// (two regional indicators) or a tag sequence (subdivision flags). Kept as
/// sent: `❤` and `❤️` are different reactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emoji(String);

/// Longest shortcode, in bytes.
pub const MAX_SHORTCODE_LEN: usize = 64;
/// Most code points one emoji sequence may have (the longest RGI
/// sequences, couples with two skin tones, have 10).
const MAX_EMOJI_CODE_POINTS: usize = 16;

impl Emoji {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let shortcode = !s.is_empty()
            && s.len() <= MAX_SHORTCODE_LEN
            && s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'+' | b'-')
            });
        if shortcode || is_emoji_sequence(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(DomainError::invalid(
                "emoji must be a shortcode (1-64 of a-z, 0-9, '_', '+', '-') \
                 or one Unicode emoji",
            ))
        }
    }
    pub fn into_string(self) -> String {
        self.0
    }
}

const ZWJ: char = '\u{200D}';
const VS16: char = '\u{FE0F}';
const VS15: char = '\u{FE0E}';
const KEYCAP: char = '\u{20E3}';
const CANCEL_TAG: char = '\u{E007F}';

fn is_skin_tone(c: char) -> bool {
    ('\u{1F3FB}'..='\u{1F3FF}').contains(&c)
}

fn is_regional_indicator(c: char) -> bool {
    ('\u{1F1E6}'..='\u{1F1FF}').contains(&c)
}

fn is_tag(c: char) -> bool {
    ('\u{E0020}'..='\u{E007E}').contains(&c)
}

/// Unicode's `Extended_Pictographic` (emoji-data 15.1), in ranges: the
/// characters an emoji sequence is built from.
fn is_pictographic(c: char) -> bool {
    matches!(c,
        '\u{00A9}' | '\u{00AE}' | '\u{203C}' | '\u{2049}' | '\u{2122}' | '\u{2139}'
        | '\u{2194}'..='\u{2199}' | '\u{21A9}'..='\u{21AA}' | '\u{231A}'..='\u{231B}'
        | '\u{2328}' | '\u{2388}' | '\u{23CF}' | '\u{23E9}'..='\u{23F3}'
        | '\u{23F8}'..='\u{23FA}' | '\u{24C2}' | '\u{25AA}'..='\u{25AB}' | '\u{25B6}'
        | '\u{25C0}' | '\u{25FB}'..='\u{25FE}' | '\u{2600}'..='\u{2605}'
        | '\u{2607}'..='\u{2612}' | '\u{2614}'..='\u{2685}' | '\u{2690}'..='\u{2705}'
        | '\u{2708}'..='\u{2712}' | '\u{2714}' | '\u{2716}' | '\u{271D}' | '\u{2721}'
        | '\u{2728}' | '\u{2733}'..='\u{2734}' | '\u{2744}' | '\u{2747}' | '\u{274C}'
        | '\u{274E}' | '\u{2753}'..='\u{2755}' | '\u{2757}' | '\u{2763}'..='\u{2767}'
        | '\u{2795}'..='\u{2797}' | '\u{27A1}' | '\u{27B0}' | '\u{27BF}'
        | '\u{2934}'..='\u{2935}' | '\u{2B05}'..='\u{2B07}' | '\u{2B1B}'..='\u{2B1C}'
        | '\u{2B50}' | '\u{2B55}' | '\u{3030}' | '\u{303D}' | '\u{3297}' | '\u{3299}'
        | '\u{1F000}'..='\u{1F0FF}' | '\u{1F10D}'..='\u{1F10F}' | '\u{1F12F}'
        | '\u{1F16C}'..='\u{1F171}' | '\u{1F17E}'..='\u{1F17F}' | '\u{1F18E}'
        | '\u{1F191}'..='\u{1F19A}' | '\u{1F1AD}'..='\u{1F1E5}'
        | '\u{1F201}'..='\u{1F20F}' | '\u{1F21A}' | '\u{1F22F}'
        | '\u{1F232}'..='\u{1F23A}' | '\u{1F23C}'..='\u{1F23F}'
        | '\u{1F249}'..='\u{1F3FA}' | '\u{1F400}'..='\u{1F53D}'
        | '\u{1F546}'..='\u{1F64F}' | '\u{1F680}'..='\u{1F6FF}'
        | '\u{1F774}'..='\u{1F77F}' | '\u{1F7D5}'..='\u{1F7FF}'
        | '\u{1F80C}'..='\u{1F80F}' | '\u{1F848}'..='\u{1F84F}'
        | '\u{1F85A}'..='\u{1F85F}' | '\u{1F888}'..='\u{1F88F}'
        | '\u{1F8AE}'..='\u{1F8FF}' | '\u{1F90C}'..='\u{1F93A}'
        | '\u{1F93C}'..='\u{1F945}' | '\u{1F947}'..='\u{1FAFF}'
        | '\u{1FC00}'..='\u{1FFFD}'
    )
}

/// One element of a ZWJ sequence: a pictograph, then optionally a
/// presentation selector, a skin tone (itself optionally followed by
/// VS16), or tags closed by CANCEL TAG.
fn emoji_element(cs: &[char]) -> Option<usize> {
    let mut i = 0;
    if !cs.first().copied().is_some_and(is_pictographic) {
        return None;
    }
    i += 1;
    if matches!(cs.get(i), Some(&VS16) | Some(&VS15)) {
        i += 1;
    }
    if cs.get(i).copied().is_some_and(is_skin_tone) {
        i += 1;
        if cs.get(i) == Some(&VS16) {
            i += 1;
        }
    } else if cs.get(i).copied().is_some_and(is_tag) {
        while cs.get(i).copied().is_some_and(is_tag) {
            i += 1;
        }
        if cs.get(i) != Some(&CANCEL_TAG) {
            return None;
        }
        i += 1;
    }
    Some(i)
}

/// Exactly one emoji sequence (no text around it, no second emoji).
fn is_emoji_sequence(s: &str) -> bool {
    let cs: Vec<char> = s.chars().take(MAX_EMOJI_CODE_POINTS + 1).collect();
    if cs.is_empty() || cs.len() > MAX_EMOJI_CODE_POINTS {
        return false;
    }
    // Keycap: [0-9#*] VS16? U+20E3.
    if matches!(cs[0], '0'..='9' | '#' | '*') {
        return matches!(cs[1..], [KEYCAP] | [VS16, KEYCAP]);
    }
    // Flag: two regional indicators.
    if is_regional_indicator(cs[0]) {
        return cs.len() == 2 && is_regional_indicator(cs[1]);
    }
    let mut i = 0;
    loop {
        match emoji_element(&cs[i..]) {
            Some(n) => i += n,
            None => return false,
        }
        match cs.get(i) {
            None => return true,
            Some(&ZWJ) => i += 1,
            Some(_) => return false,
        }
    }
}

/// The largest sequence number a client may send: the read models keep
/// seqs as SQLite `INTEGER` (i64), so anything above would wrap negative.
pub const MAX_SEQ: u64 = i64::MAX as u64;

/// A channel sequence number sent by a client (`after_seq`, `before`, a
/// subscribe's `last_seen_seq`, an SSE cursor): an integer 0..=[`MAX_SEQ`].
/// Anything else (negative, fractional, a string, too large) is refused,
/// never read as 0 (which would mean "replay everything").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seq(u64);

impl Seq {
    /// Parses the decimal text of a query parameter or cursor (`field`
    /// names it in the error).
    pub fn parse(field: &str, s: &str) -> Result<Self, DomainError> {
        let n = (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten();
        match n {
            Some(n) if n <= MAX_SEQ => Ok(Seq(n)),
            _ => Err(DomainError::invalid(format!(
                "{field} must be an integer from 0 to {MAX_SEQ}"
            ))),
        }
    }
    pub fn get(self) -> u64 {
        self.0
    }
}

/// JSON numbers only: `-1`, `1.5`, `"5"`, `2^64` are refused with a message
/// that says what is expected (and names no Rust type).
impl<'de> serde::Deserialize<'de> for Seq {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Seq;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a sequence number (an integer from 0 to {MAX_SEQ})")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Seq, E> {
                if n <= MAX_SEQ {
                    Ok(Seq(n))
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Unsigned(n), &self))
                }
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Seq, E> {
                u64::try_from(n)
                    .map(Seq)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(n), &self))
            }
        }
        d.deserialize_u64(Visitor)
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
as_str!(MessageText, ChannelName, Handle, DisplayName, Emoji);

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
    fn invisible_only_is_blank() {
        for blank in [
            "\u{200B}",
            "\u{200B}\u{200C}\u{200D}\u{200E}\u{200F}",
            "\u{202A}\u{202B}\u{202C}\u{202D}\u{202E}",
            "\u{2060}\u{2061}\u{2062}\u{2063}\u{2064}",
            "\u{2066}\u{2067}\u{2068}\u{2069}",
            "\u{FEFF}",
            " \u{200B} \u{FEFF}\t",
            "\u{3164}\u{115F}",
            "\u{E0020}\u{E007F}",
            "\u{0}\u{1}",
        ] {
            assert!(is_blank(blank), "{blank:?}");
            assert!(MessageText::parse(blank).is_err(), "{blank:?}");
            assert!(DisplayName::parse("name", blank).is_err(), "{blank:?}");
            assert!(parse_topic(Some(blank)).is_err(), "{blank:?}");
        }
        // Visible text that carries them is still text.
        for ok in ["hi\u{200B}", "\u{202E}abc", "a\u{FE0F}", "👍🏽", "日本"] {
            assert!(!is_blank(ok), "{ok:?}");
            assert!(MessageText::parse(ok).is_ok(), "{ok:?}");
        }
        assert!(DisplayName::parse("name", "Ada\u{200D}").is_ok());
    }

    #[test]
    fn seqs() {
        assert_eq!(Seq::parse("after_seq", "0").map(Seq::get), Ok(0));
        assert_eq!(
            Seq::parse("after_seq", "9223372036854775807").map(Seq::get),
            Ok(MAX_SEQ)
        );
        for bad in [
            "",
            "-1",
            "+1",
            "1.5",
            "x",
            " 1",
            "9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
        ] {
            assert!(Seq::parse("after_seq", bad).is_err(), "{bad:?}");
        }
        let json = |s: &str| serde_json::from_str::<Seq>(s).map(Seq::get);
        assert_eq!(json("7").ok(), Some(7));
        assert_eq!(json("9223372036854775807").ok(), Some(MAX_SEQ));
        for bad in [
            "-1",
            "1.5",
            "1e3",
            "\"5\"",
            "null",
            "9223372036854775808",
            "18446744073709551616",
        ] {
            let err = json(bad).expect_err(bad).to_string();
            assert!(err.contains("sequence number"), "{bad}: {err}");
            assert!(!err.contains("u64"), "{bad}: {err}");
        }
    }

    #[test]
    fn emoji_are_shortcodes_or_one_emoji_sequence() {
        for ok in [
            "+1",
            "-1",
            "thumbsup",
            "party_parrot",
            "100",
            &"a".repeat(64),
            "👍",
            "👍🏽",
            "❤️",
            "❤",
            "☺️",
            "👩‍💻",
            "👨‍👩‍👧‍👦",
            "👩🏽‍❤️‍💋‍👨🏿",
            "🏳️‍🌈",
            "🧑🏿‍🤝‍🧑🏻",
            "🇫🇷",
            "1️⃣",
            "#⃣",
            "🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}",
        ] {
            assert!(Emoji::parse(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            "<script>",
            "Thumbsup",
            "a b",
            "a.b",
            &"a".repeat(65),
            &"👍".repeat(200),
            "👍👍",
            "👍 ",
            "a👍",
            "🏽",
            "\u{200D}",
            "👩\u{200D}",
            "\u{200D}👩",
            "👩\u{200D}\u{200D}💻",
            "🇫",
            "🇫🇷🇫",
            "1\u{FE0F}",
            "🏴\u{E0067}",
            "é",
            "日",
            "\u{FE0F}",
        ] {
            assert!(Emoji::parse(bad).is_err(), "{bad:?}");
        }
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
