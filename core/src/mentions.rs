//! Mentions in a message text: `@handle`, `@channel`, `@everyone` and
//! `@here`, found by a pure scan and resolved against the channel's
//! members when a post or an edit is decided. The result is recorded in
//! the event ([`Mentions`]), so replaying the log yields the same mentions
//! whatever the membership is later.
//!
//! A mention of someone who is not a member adds nothing, whether or not
//! the handle exists: the answer is the same, so a post cannot be used to
//! probe which handles exist.
//!
//! What counts as a mention: an `@` at the start of the text or after a
//! character that cannot be part of a word, an address or a path (so
//! `ada@example.com` and `medium.com/@ada` mention nobody), followed by
//! handle characters (`a-z`, `0-9`, `.`, `-`, `_`; letters are compared
//! case-insensitively). A trailing `.` is tried without it too (`thanks
//! @ada.`). Text inside Markdown code spans and fences (`` `@decorator` ``)
//! mentions nobody. `@channel`, `@everyone` and `@here` are reserved words:
//! they never mean a user with that handle.

use crate::events::Mentions;
use crate::ids::UserId;
use std::collections::HashMap;

/// Most distinct `@handle` mentions one text resolves; later ones are
/// ignored (and never looked up).
pub const MAX_MENTIONED_HANDLES: usize = 64;
/// Longest handle (see [`crate::validate::Handle`]).
const MAX_HANDLE_LEN: usize = 32;

/// One `@handle` mention: the handles it may mean, preferred first.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Candidates {
    full: String,
    /// `full` without its trailing dots, when it has any.
    trimmed: Option<String>,
}

/// What a text mentions, before resolution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    mentions: Vec<Candidates>,
    /// `@channel` or `@everyone`.
    pub channel: bool,
    /// `@here`.
    pub here: bool,
}

impl Scan {
    /// Every handle a resolution may look up (the state a decision needs).
    pub fn handles(&self) -> impl Iterator<Item = &str> {
        self.mentions
            .iter()
            .flat_map(|c| std::iter::once(c.full.as_str()).chain(c.trimmed.as_deref()))
    }

    /// Whether there is any `@handle` to look up.
    pub fn has_handles(&self) -> bool {
        !self.mentions.is_empty()
    }
}

fn is_handle_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')
}

/// A character after which an `@` does not start a mention (it is part
/// of a word, an e-mail address or a path).
fn glues(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '@' | '/' | '\\' | '+' | '=')
}

/// Byte ranges of Markdown code (spans and fences): a run of N backticks
/// opens one and the next run of exactly N closes it; a run with no match
/// is literal text.
fn code_ranges(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut runs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'`' {
            let start = i;
            while i < bytes.len() && bytes[i] == b'`' {
                i += 1;
            }
            runs.push((start, i - start));
        } else {
            i += 1;
        }
    }
    // The next run of the same length after each run, found in one pass
    // from the right (a search per run would be quadratic in the number
    // of backtick runs, which an attacker chooses).
    let mut next_same = vec![None; runs.len()];
    let mut last_of_len: std::collections::HashMap<usize, usize> = Default::default();
    for k in (0..runs.len()).rev() {
        next_same[k] = last_of_len.insert(runs[k].1, k);
    }
    let mut ranges = Vec::new();
    let mut k = 0;
    while k < runs.len() {
        let (open, len) = runs[k];
        match next_same[k] {
            Some(j) => {
                let (close, _) = runs[j];
                ranges.push((open, close + len));
                k = j + 1;
            }
            None => k += 1,
        }
    }
    ranges
}

/// Finds the mentions in `text`.
pub fn scan(text: &str) -> Scan {
    let code = code_ranges(text);
    // The ranges are sorted and disjoint: a binary search per `@`.
    let in_code = |at: usize| {
        let i = code.partition_point(|&(a, _)| a <= at);
        i > 0 && at < code[i - 1].1
    };
    let mut out = Scan::default();
    let mut prev: Option<char> = None;
    let mut iter = text.char_indices().peekable();
    while let Some((at, c)) = iter.next() {
        let starts = c == '@' && !prev.is_some_and(glues) && !in_code(at);
        prev = Some(c);
        if !starts {
            continue;
        }
        let mut word = String::new();
        while let Some(&(_, n)) = iter.peek() {
            if !is_handle_char(n) {
                break;
            }
            word.push(n.to_ascii_lowercase());
            prev = Some(n);
            iter.next();
        }
        let trimmed = word.trim_end_matches('.');
        if trimmed.is_empty() {
            continue;
        }
        match trimmed {
            "channel" | "everyone" => out.channel = true,
            "here" => out.here = true,
            _ => {
                let trimmed = (trimmed.len() != word.len()).then(|| trimmed.to_string());
                let fits = |h: &str| h.len() <= MAX_HANDLE_LEN;
                let candidates = Candidates {
                    full: word.clone(),
                    trimmed: trimmed.filter(|t| fits(t)),
                };
                let known = out.mentions.contains(&candidates);
                let usable = fits(&word) || candidates.trimmed.is_some();
                if usable && !known && out.mentions.len() < MAX_MENTIONED_HANDLES {
                    out.mentions.push(candidates);
                }
            }
        }
    }
    out
}

/// Resolves a scan against the channel's members: `members` maps the
/// handles of [`Scan::handles`] that belong to members of the channel to
/// their ids (any other handle is absent, whether it exists or not).
pub fn resolve(scan: &Scan, members: &HashMap<String, UserId>) -> Mentions {
    let mut user_ids: Vec<String> = Vec::new();
    for m in &scan.mentions {
        let found = members
            .get(&m.full)
            .or_else(|| m.trimmed.as_ref().and_then(|t| members.get(t)));
        if let Some(id) = found {
            if !user_ids.iter().any(|u| u == id.as_str()) {
                user_ids.push(id.as_str().to_string());
            }
        }
    }
    Mentions {
        user_ids,
        channel: scan.channel,
        here: scan.here,
        // Who was active is not in the text: the caller adds it.
        here_user_ids: Vec::new(),
    }
}

/// Most members a channel may have for `@here` to address anyone: in a
/// larger channel `@here` is recorded (`here: true`) with no recipients,
/// as Slack asks before notifying that many people.
pub const HERE_MAX_MEMBERS: usize = 1_000;

/// Records whom `@here` addressed: the members in `online` (the channel's
/// members whose presence was `online` when the post or edit was decided,
/// in the order given), without the author and without repeats. Nothing
/// when the text has no `@here`.
pub fn address_here(mentions: &mut Mentions, online: &[UserId], author: &UserId) {
    mentions.here_user_ids.clear();
    if !mentions.here {
        return;
    }
    for u in online {
        if u != author && !mentions.here_user_ids.iter().any(|x| x == u.as_str()) {
            mentions.here_user_ids.push(u.as_str().to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn here_addresses_the_online_members_but_the_author() {
        let online: Vec<UserId> = ["ada", "bob", "ada", "cy"]
            .iter()
            .map(|u| UserId::from_trusted(u.to_string()))
            .collect();
        let mut m = resolve(&scan("hi @here"), &HashMap::new());
        address_here(&mut m, &online, &UserId::from_trusted("bob".into()));
        assert_eq!(m.here_user_ids, vec!["ada", "cy"]);
        let mut none = resolve(&scan("hi all"), &HashMap::new());
        address_here(&mut none, &online, &UserId::from_trusted("bob".into()));
        assert!(none.here_user_ids.is_empty());
    }

    fn handles(text: &str) -> Vec<String> {
        scan(text).handles().map(String::from).collect()
    }

    fn members(list: &[(&str, &str)]) -> HashMap<String, UserId> {
        list.iter()
            .map(|(h, u)| (h.to_string(), UserId::from_trusted(u.to_string())))
            .collect()
    }

    #[test]
    fn finds_handles_and_reserved_words() {
        assert_eq!(handles("hi @ada and @bob_2!"), ["ada", "bob_2"]);
        assert_eq!(handles("@Ada, @ADA and @ada"), ["ada"]);
        let s = scan("@here @channel");
        assert!(s.here && s.channel && !s.has_handles());
        assert!(scan("ping @everyone").channel);
        assert!(!scan("no mentions here").here);
        // A reserved word never means a user with that handle.
        assert!(handles("@here @channel @everyone").is_empty());
    }

    #[test]
    fn addresses_paths_and_bare_ats_mention_nobody() {
        for text in [
            "mail ada@example.com",
            "see medium.com/@ada",
            "a+@ada",
            "@",
            "@ alone",
            "@@ada",
            "@...",
        ] {
            assert!(handles(text).is_empty(), "{text:?}: {:?}", handles(text));
        }
        assert_eq!(handles("(@ada)"), ["ada"]);
        assert_eq!(handles("\"@ada\""), ["ada"]);
    }

    #[test]
    fn a_trailing_dot_is_tried_without_it() {
        assert_eq!(handles("thanks @ada."), ["ada.", "ada"]);
        assert_eq!(handles("@ada.l says"), ["ada.l"]);
        let m = resolve(&scan("thanks @ada."), &members(&[("ada", "U1")]));
        assert_eq!(m.user_ids, ["U1"]);
        let m = resolve(&scan("thanks @ada."), &members(&[("ada.", "U9")]));
        assert_eq!(m.user_ids, ["U9"], "the whole handle wins");
    }

    #[test]
    fn code_mentions_nobody() {
        assert!(handles("`@decorator` and ```\n@fixture\n```").is_empty());
        assert_eq!(handles("`x` @ada `y`"), ["ada"]);
        // An unclosed backtick is literal text.
        assert_eq!(handles("it`s @ada"), ["ada"]);
        assert!(!scan("`@here`").here);
    }

    #[test]
    fn overlong_handles_are_not_handles() {
        let long = "a".repeat(33);
        assert!(handles(&format!("@{long}")).is_empty());
        assert_eq!(handles(&format!("@{}.", "a".repeat(32))).len(), 2);
    }

    #[test]
    fn resolution_keeps_members_in_first_mention_order_without_repeats() {
        let m = resolve(
            &scan("@carol @ada @ghost @carol @outsider @here"),
            &members(&[("ada", "U1"), ("carol", "U3")]),
        );
        assert_eq!(m.user_ids, ["U3", "U1"]);
        assert!(m.here && !m.channel);
        // A non-member and a handle that does not exist look the same.
        let outsider = resolve(&scan("@outsider"), &members(&[]));
        let ghost = resolve(&scan("@ghost"), &members(&[]));
        assert_eq!(outsider, ghost);
    }

    #[test]
    fn mentions_are_capped() {
        let text: String = (0..200).map(|i| format!("@u{i} ")).collect();
        assert_eq!(handles(&text).len(), MAX_MENTIONED_HANDLES);
    }
}
