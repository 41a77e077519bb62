//! The search query language, parsed into a typed [`Query`], and the text
//! rules the search index and its queries share ([`segment`],
//! [`has_link`]).
//!
//! Invariant: nothing a user types reaches an index as syntax. The parser
//! keeps only *terms* (words, `prefix*`, `"phrases"`, each possibly
//! excluded with `-`) and *filters* (`key:value` with a known key); the
//! backend quotes every term as a literal (see the projections crate's
//! `search::fts_match`). Anything the language does not mean is either a
//! literal word or a [`DomainError::Invalid`] naming the problem, never an
//! error from the index.
//!
//! Syntax (whitespace-separated):
//! - `word` — a word (case and diacritics ignored: `cafe` finds `café`);
//! - `deploy*` — words starting with `deploy` (at least
//!   [`MIN_PREFIX_CHARS`] characters before the `*`);
//! - `"exact phrase"` — the words in this order;
//! - `-word`, `-"a phrase"` — messages without it;
//! - `in:#channel` (or `in:channel`), `in:@handle` (the caller's DM with
//!   that user), `from:@handle`, `mentions:@handle`, `before:YYYY-MM-DD`,
//!   `after:YYYY-MM-DD`, `on:YYYY-MM-DD` (days in the caller's time zone,
//!   a fixed offset or an IANA zone: see [`Zone`]),
//!   `has:file`, `has:link`, `has:reaction`, `is:thread`. Repeating a key
//!   with several values (`from:@a from:@b`) matches any of them.
//!
//! A `key:value` token whose key is letters only and whose value does not
//! start with `/` is a filter (so `http://…` and `12:30` stay words); an
//! unknown key is refused. Quote text to search for it literally.
//!
//! Text without spaces between words (Chinese, Japanese, Korean, Thai…)
//! is found by substring: [`segment`] cuts runs of those scripts into
//! overlapping character bigrams on both the indexing and the query side.

use crate::DomainError;
use chrono::{LocalResult, NaiveDate, TimeZone};
use chrono_tz::Tz;

/// Longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 1000;
/// Most terms (words, phrases, exclusions) in one query.
pub const MAX_TERMS: usize = 16;
/// Most values of filters in one query.
pub const MAX_FILTERS: usize = 16;
/// Shortest prefix before a `*`.
pub const MIN_PREFIX_CHARS: usize = 2;

/// How a term matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TermKind {
    /// A word (or the words of a token like `e-mail`, in order).
    Word,
    /// Words starting with the text.
    Prefix,
    /// The words in this order.
    Phrase,
}

/// One literal thing to find (or exclude).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub kind: TermKind,
    /// As typed, without quotes, `-` or trailing `*`.
    pub text: String,
}

impl Term {
    /// Whether the term holds text of a script written without spaces
    /// (searched through the bigram column).
    pub fn is_unspaced(&self) -> bool {
        self.text.chars().any(is_unspaced)
    }
}

/// A calendar day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

impl Date {
    /// `YYYY-MM-DD`, a real day of years 1970..=9999.
    pub fn parse(s: &str) -> Option<Date> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            let part = s.get(r)?;
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            part.parse().ok()
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        if !(1970..=9999).contains(&year) || !(1..=12).contains(&month) || day == 0 {
            return None;
        }
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let days_in_month = match month {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        (day <= days_in_month).then_some(Date {
            year: year as i32,
            month,
            day,
        })
    }

    /// Days since 1970-01-01 (Howard Hinnant's days-from-civil).
    pub fn days(self) -> i64 {
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The following day.
    pub fn next(self) -> Date {
        let leap = (self.year % 4 == 0 && self.year % 100 != 0) || self.year % 400 == 0;
        let days_in_month = match self.month {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        if self.day < days_in_month {
            Date {
                day: self.day + 1,
                ..self
            }
        } else if self.month < 12 {
            Date {
                month: self.month + 1,
                day: 1,
                ..self
            }
        } else {
            Date {
                year: self.year + 1,
                month: 1,
                day: 1,
            }
        }
    }

    /// Epoch milliseconds of this day's first instant at UTC offset
    /// `offset_min` minutes (east positive).
    pub fn start_ms(self, offset_min: i32) -> i64 {
        self.days() * 86_400_000 - i64::from(offset_min) * 60_000
    }
}

/// The caller's time zone for day boundaries: a fixed UTC offset, or an
/// IANA zone whose offset depends on the day (daylight saving time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// Minutes east of UTC.
    Fixed(i32),
    /// A named zone (`Europe/Paris`).
    Named(Tz),
}

impl Zone {
    /// UTC.
    pub const UTC: Zone = Zone::Fixed(0);

    /// Epoch milliseconds of the first instant of `day` in this zone. In a
    /// named zone that is local midnight with the offset in force then;
    /// where a transition skips midnight (some zones change at 00:00) the
    /// day starts at the first local time that exists, and where midnight
    /// happens twice it starts at the earlier one.
    pub fn day_start_ms(self, day: Date) -> i64 {
        match self {
            Zone::Fixed(offset) => day.start_ms(offset),
            Zone::Named(tz) => {
                let Some(date) = NaiveDate::from_ymd_opt(day.year, day.month, day.day) else {
                    return day.start_ms(0);
                };
                // Transitions move clocks by at most a few hours; step
                // through the first hours in quarters until one exists.
                for quarter in 0..(4 * 4) {
                    let Some(wall) = date.and_hms_opt(quarter / 4, (quarter % 4) * 15, 0) else {
                        break;
                    };
                    match tz.from_local_datetime(&wall) {
                        LocalResult::Single(t) => return t.timestamp_millis(),
                        LocalResult::Ambiguous(a, b) => {
                            return a.timestamp_millis().min(b.timestamp_millis())
                        }
                        LocalResult::None => continue,
                    }
                }
                day.start_ms(0)
            }
        }
    }
}

/// The caller's time zone, from the `tz` / `tz_offset` query parameters:
/// `tz` is an IANA name (`Europe/Paris`, `America/New_York`; `UTC`, `Z`
/// and `GMT` too) or a fixed offset `+09:00` / `-0530`; `tz_offset` is
/// minutes east of UTC. Neither: UTC.
pub fn parse_tz(tz: Option<&str>, tz_offset: Option<&str>) -> Result<Zone, DomainError> {
    const LIMIT: i32 = 14 * 60;
    match (tz, tz_offset) {
        (Some(_), Some(_)) => Err(DomainError::invalid("use either tz or tz_offset, not both")),
        (None, None) => Ok(Zone::UTC),
        (None, Some(m)) => {
            let n: Option<i32> = m
                .strip_prefix('-')
                .map_or(Some((m, 1)), |rest| Some((rest, -1)))
                .and_then(|(digits, sign)| {
                    (!digits.is_empty() && digits.len() <= 4)
                        .then_some(())
                        .and_then(|_| digits.bytes().all(|c| c.is_ascii_digit()).then_some(()))
                        .and_then(|_| digits.parse::<i32>().ok())
                        .map(|v| v * sign)
                });
            match n {
                Some(v) if (-LIMIT..=LIMIT).contains(&v) => Ok(Zone::Fixed(v)),
                _ => Err(DomainError::invalid(format!(
                    "tz_offset: minutes east of UTC, from -{LIMIT} to {LIMIT}"
                ))),
            }
        }
        (Some(name), None) => {
            if matches!(name, "UTC" | "Z" | "GMT" | "utc") {
                return Ok(Zone::UTC);
            }
            let bad = || {
                DomainError::invalid(format!(
                    "tz: an IANA time zone like Europe/Paris or a fixed offset like \
                     +09:00, not {:?}",
                    name.chars().take(40).collect::<String>()
                ))
            };
            let (sign, rest) = match name.as_bytes().first() {
                Some(b'+') => (1, &name[1..]),
                Some(b'-') => (-1, &name[1..]),
                _ => {
                    return name.parse::<Tz>().map(Zone::Named).map_err(|_| bad());
                }
            };
            let digits: String = rest.chars().filter(|c| *c != ':').collect();
            if digits.len() != 4
                || !digits.bytes().all(|c| c.is_ascii_digit())
                || rest.len() > 5
                || (rest.len() == 5 && rest.as_bytes()[2] != b':')
            {
                return Err(bad());
            }
            let h: i32 = digits[..2].parse().map_err(|_| bad())?;
            let m: i32 = digits[2..].parse().map_err(|_| bad())?;
            let v = sign * (h * 60 + m);
            if m >= 60 || !(-LIMIT..=LIMIT).contains(&v) {
                return Err(bad());
            }
            Ok(Zone::Fixed(v))
        }
    }
}

/// The `has:` / `is:` flags and the values of the other filters, as typed
/// (names and handles without their `#` / `@`; resolving them is the
/// caller's business).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// `in:#name`: channels by name.
    pub in_channels: Vec<String>,
    /// `in:@handle`: the caller's DM with each user.
    pub in_dms: Vec<String>,
    /// `from:@handle`.
    pub from: Vec<String>,
    /// `mentions:@handle`.
    pub mentions: Vec<String>,
    pub before: Option<Date>,
    pub after: Option<Date>,
    pub on: Option<Date>,
    pub has_file: bool,
    pub has_link: bool,
    pub has_reaction: bool,
    pub is_thread: bool,
}

impl Filters {
    /// The time window the date filters leave, as epoch milliseconds
    /// `[from, until)` for days in `zone`: `before:D` ends where D begins,
    /// `after:D` starts where the day after D begins, `on:D` is D (23 or
    /// 25 hours long on a daylight-saving change in a named zone).
    pub fn time_range(&self, zone: Zone) -> (Option<i64>, Option<i64>) {
        let start = |d: Date| zone.day_start_ms(d);
        let mut from = self.after.map(|d| start(d.next()));
        let mut until = self.before.map(start);
        if let Some(on) = self.on {
            let (s, e) = (start(on), start(on.next()));
            from = Some(from.map_or(s, |f| f.max(s)));
            until = Some(until.map_or(e, |u| u.min(e)));
        }
        (from, until)
    }

    fn count(&self) -> usize {
        self.in_channels.len() + self.in_dms.len() + self.from.len() + self.mentions.len()
    }
}

/// A parsed query: at least one term to find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Every one of these must match.
    pub terms: Vec<Term>,
    /// None of these may match.
    pub excluded: Vec<Term>,
    pub filters: Filters,
}

fn invalid(msg: impl Into<String>) -> DomainError {
    DomainError::invalid(msg)
}

/// Whether `c` belongs to a script written without spaces between words
/// (Han, Hiragana, Katakana, Hangul, Thai, Lao, Khmer, Myanmar).
pub fn is_unspaced(c: char) -> bool {
    matches!(c as u32,
        0x0E00..=0x0EFF      // Thai, Lao
        | 0x1000..=0x109F    // Myanmar
        | 0x1780..=0x17FF    // Khmer
        | 0x3040..=0x30FF    // Hiragana, Katakana
        | 0x31F0..=0x31FF    // Katakana extensions
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0xF900..=0xFAFF    // CJK compatibility
        | 0xFF66..=0xFF9F    // half-width Katakana
        | 0x20000..=0x2FA1F) // CJK extensions B..
}

/// Whether a word has something a tokenizer keeps (a letter or digit).
fn has_word_char(s: &str) -> bool {
    s.chars().any(char::is_alphanumeric)
}

/// The indexed form of text for substring search in unspaced scripts:
/// each run of such characters becomes its overlapping bigrams and, for
/// runs of two or more, its last character alone (so a one-character
/// query, run as a prefix, finds every position); other text is kept.
/// `東京タワー` → ` 東京 京タ タワ ワー ー `. Empty when `text` has no
/// such run (the column then costs nothing).
pub fn segment(text: &str) -> String {
    if !text.chars().any(is_unspaced) {
        return String::new();
    }
    segment_with(text, true)
}

/// The query form of a term for the bigram column, and whether it must be
/// a prefix query: like [`segment`], except that a run ending the term
/// keeps only its bigrams (it may continue in the document), and a
/// one-character run ending the term becomes a prefix.
pub fn segment_query(term: &str) -> (String, bool) {
    let trailing: usize = term.chars().rev().take_while(|c| is_unspaced(*c)).count();
    (segment_with(term, false), trailing == 1)
}

fn segment_with(text: &str, document: bool) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    let mut run: Vec<char> = Vec::new();
    let flush = |run: &mut Vec<char>, out: &mut String, at_end: bool| {
        if run.is_empty() {
            return;
        }
        out.push(' ');
        if run.len() == 1 {
            out.push(run[0]);
        } else {
            for w in run.windows(2) {
                out.push(w[0]);
                out.push(w[1]);
                out.push(' ');
            }
            if document || !at_end {
                if let Some(last) = run.last() {
                    out.push(*last);
                }
            }
        }
        out.push(' ');
        run.clear();
    };
    for c in text.chars() {
        if is_unspaced(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out, false);
            out.push(c);
        }
    }
    flush(&mut run, &mut out, true);
    out.split(' ')
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether text carries a link (`http://`, `https://` or `www.`).
pub fn has_link(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("http://") || lower.contains("https://") || lower.contains("www.")
}

const KNOWN: &str = "in:, from:, mentions:, before:, after:, on:, has:, is:";

/// Parses a query (see the module docs). Errors name the problem.
pub fn parse(q: &str) -> Result<Query, DomainError> {
    let chars = q.chars().count();
    if chars > MAX_QUERY_CHARS {
        return Err(invalid(format!(
            "q: at most {MAX_QUERY_CHARS} characters (got {chars})"
        )));
    }
    if q.chars().all(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("q: the search is empty"));
    }
    if q.chars().filter(|c| *c == '"').count() % 2 == 1 {
        return Err(invalid("q: unbalanced quotes: a \" is not closed"));
    }
    let mut query = Query {
        terms: Vec::new(),
        excluded: Vec::new(),
        filters: Filters::default(),
    };
    let mut dropped = false;
    // Control characters separate tokens like whitespace.
    let text: Vec<char> = q
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut i = 0;
    while i < text.len() {
        if text[i].is_whitespace() {
            i += 1;
            continue;
        }
        let negated = text[i] == '-'
            && text
                .get(i + 1)
                .is_some_and(|c| !c.is_whitespace() && *c != '-');
        if negated {
            i += 1;
        }
        let term = if text[i] == '"' {
            // Balanced quotes were checked: a closing one follows.
            let end = text[i + 1..]
                .iter()
                .position(|c| *c == '"')
                .map_or(text.len(), |p| i + 1 + p);
            let phrase: String = text[i + 1..end].iter().collect();
            i = end + 1;
            if !has_word_char(&phrase) {
                dropped = true;
                continue;
            }
            Term {
                kind: TermKind::Phrase,
                text: phrase.split_whitespace().collect::<Vec<_>>().join(" "),
            }
        } else {
            let start = i;
            while i < text.len() && !text[i].is_whitespace() && text[i] != '"' {
                i += 1;
            }
            let token: String = text[start..i].iter().collect();
            if let Some((key, value)) = filter_parts(&token) {
                if negated {
                    return Err(invalid(format!("q: filters cannot be excluded (-{key}:)")));
                }
                add_filter(&mut query.filters, key, value)?;
                continue;
            }
            match word_term(&token)? {
                Some(t) => t,
                None => {
                    dropped = true;
                    continue;
                }
            }
        };
        if negated {
            query.excluded.push(term);
        } else {
            query.terms.push(term);
        }
        if query.terms.len() + query.excluded.len() > MAX_TERMS {
            return Err(invalid(format!("q: at most {MAX_TERMS} words and phrases")));
        }
    }
    if query.filters.count() > MAX_FILTERS {
        return Err(invalid(format!("q: at most {MAX_FILTERS} filter values")));
    }
    if query.terms.is_empty() {
        let why = if !query.excluded.is_empty() {
            "q: exclusions alone find nothing: add a word to search for"
        } else if query.filters != Filters::default() {
            "q: filters alone find nothing: add a word to search for"
        } else if dropped {
            "q: nothing to search for (no letters or digits)"
        } else {
            "q: the search is empty"
        };
        return Err(invalid(why));
    }
    Ok(query)
}

/// `key:value` when `token` is shaped like a filter.
fn filter_parts(token: &str) -> Option<(&str, &str)> {
    let (key, value) = token.split_once(':')?;
    let filter_like = !key.is_empty()
        && key.bytes().all(|b| b.is_ascii_alphabetic())
        && !value.is_empty()
        && !value.starts_with('/');
    filter_like.then_some((key, value))
}

/// A bare token as a term; `None` when it has nothing to search for.
fn word_term(token: &str) -> Result<Option<Term>, DomainError> {
    if let Some(stem) = token.strip_suffix('*') {
        if stem.ends_with('*') || stem.is_empty() || !has_word_char(stem) {
            return Err(invalid(
                "q: a * ends a word to search by prefix (like deploy*)",
            ));
        }
        if stem.chars().filter(|c| c.is_alphanumeric()).count() < MIN_PREFIX_CHARS {
            return Err(invalid(format!(
                "q: a prefix needs at least {MIN_PREFIX_CHARS} letters before the *"
            )));
        }
        return Ok(Some(Term {
            kind: TermKind::Prefix,
            text: stem.to_string(),
        }));
    }
    if !has_word_char(token) {
        return Ok(None);
    }
    Ok(Some(Term {
        kind: TermKind::Word,
        text: token.to_string(),
    }))
}

fn name_value(key: &str, value: &str, sigil: char) -> Result<String, DomainError> {
    let v = value.strip_prefix(sigil).unwrap_or(value);
    if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c == '"') {
        return Err(invalid(format!("q: {key}: needs a name after it")));
    }
    Ok(v.to_string())
}

fn add_filter(f: &mut Filters, key: &str, value: &str) -> Result<(), DomainError> {
    let date = |key: &str| {
        Date::parse(value).ok_or_else(|| {
            invalid(format!(
                "q: {key}: expects a date like 2026-01-31, not {:?}",
                value.chars().take(40).collect::<String>()
            ))
        })
    };
    match key.to_ascii_lowercase().as_str() {
        "in" => {
            if let Some(handle) = value.strip_prefix('@') {
                f.in_dms.push(name_value("in", handle, '@')?);
            } else {
                f.in_channels.push(name_value("in", value, '#')?);
            }
        }
        "from" => f.from.push(name_value("from", value, '@')?),
        "mentions" => f.mentions.push(name_value("mentions", value, '@')?),
        "before" => f.before = Some(date("before")?),
        "after" => f.after = Some(date("after")?),
        "on" => f.on = Some(date("on")?),
        "has" => match value.to_ascii_lowercase().as_str() {
            "file" | "files" => f.has_file = true,
            "link" | "links" => f.has_link = true,
            "reaction" | "reactions" => f.has_reaction = true,
            _ => return Err(invalid("q: has: takes file, link or reaction".to_string())),
        },
        "is" => match value.to_ascii_lowercase().as_str() {
            "thread" => f.is_thread = true,
            _ => return Err(invalid("q: is: takes thread")),
        },
        other => {
            return Err(invalid(format!(
                "q: unknown filter {:?} (known: {KNOWN}); quote text to search for it",
                format!("{}:", other.chars().take(30).collect::<String>())
            )))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
