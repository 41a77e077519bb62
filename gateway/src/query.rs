//! Values of query strings, parsed from their text into the types the
//! handlers use. A query string carries only text: `"+1"`, `"1.5"` or `""`
//! must be refused as seqs even where a number parser would take them, so
//! these parse digits themselves instead of deferring to serde's integers.
//! Each states its range in its error, and its schema in the OpenAPI
//! document is the same range.

use serde::de::{Deserializer, Error};
use serde::Deserialize;
use switchboard_core::ids::UserId;
use switchboard_core::validate::{Seq, MAX_SEQ};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::PartialSchema;

/// The decimal digits of a query parameter as a number (no sign, no
/// point, not empty), or None.
fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `deserialize_with` for an `Option<Seq>` query field (with
/// `#[serde(default)]`): 0..=[`MAX_SEQ`], as [`Seq::parse`] decides.
pub fn seq<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Seq>, D::Error> {
    let text = String::deserialize(d)?;
    Seq::parse("seq", &text)
        .map(Some)
        .map_err(|_| D::Error::custom(format_args!("must be an integer from 0 to {MAX_SEQ}")))
}

/// A page size: `DEFAULT` when absent, otherwise 1..=`MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit<const DEFAULT: u32, const MAX: u32>(u32);

impl<const DEFAULT: u32, const MAX: u32> Limit<DEFAULT, MAX> {
    pub fn get(self) -> u32 {
        self.0
    }
}

impl<const DEFAULT: u32, const MAX: u32> Default for Limit<DEFAULT, MAX> {
    fn default() -> Self {
        Limit(DEFAULT)
    }
}

impl<'de, const DEFAULT: u32, const MAX: u32> Deserialize<'de> for Limit<DEFAULT, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match digits(&text) {
            Some(n) if (1..=u64::from(MAX)).contains(&n) => Ok(Limit(n as u32)),
            _ => Err(D::Error::custom(format_args!(
                "must be an integer from 1 to {MAX}"
            ))),
        }
    }
}

impl<const DEFAULT: u32, const MAX: u32> PartialSchema for Limit<DEFAULT, MAX> {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .maximum(Some(MAX))
            .default(Some(DEFAULT.into()))
            .into()
    }
}

/// A page of history: [`switchboard_core::validate::DEFAULT_LIMIT`] by
/// default, at most [`switchboard_core::validate::MAX_LIMIT`].
pub type HistoryLimit =
    Limit<{ switchboard_core::validate::DEFAULT_LIMIT }, { switchboard_core::validate::MAX_LIMIT }>;

/// A page of raw events (resume / gap fill): larger than history pages.
pub type EventsLimit = Limit<200, 1000>;

/// Most users one presence query may name.
pub const MAX_PRESENCE_USERS: usize = 500;

/// `a,b,c`: 1..=[`MAX_PRESENCE_USERS`] user ids (empty items are skipped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserIds(pub Vec<UserId>);

impl<'de> Deserialize<'de> for UserIds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let ids = text
            .split(',')
            .filter(|x| !x.is_empty())
            .map(UserId::parse)
            .collect::<Result<Vec<_>, _>>()
            .map_err(D::Error::custom)?;
        if ids.is_empty() || ids.len() > MAX_PRESENCE_USERS {
            return Err(D::Error::custom(format_args!(
                "1-{MAX_PRESENCE_USERS} comma-separated user ids"
            )));
        }
        Ok(UserIds(ids))
    }
}

impl PartialSchema for UserIds {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(format!(
                "1-{MAX_PRESENCE_USERS} comma-separated user ids"
            )))
            .examples([serde_json::json!("U01,U02")])
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::parse_query;

    #[derive(Debug, Deserialize)]
    struct Q {
        #[serde(default, deserialize_with = "seq")]
        after_seq: Option<Seq>,
        #[serde(default)]
        limit: Limit<50, 200>,
    }

    fn q(s: &str) -> Result<(Option<u64>, u32), String> {
        parse_query::<Q>(s)
            .map(|q| (q.after_seq.map(Seq::get), q.limit.get()))
            .map_err(|e| e.message)
    }

    #[test]
    fn seqs_and_limits_from_text() {
        assert_eq!(q(""), Ok((None, 50)));
        assert_eq!(q("after_seq=0&limit=1"), Ok((Some(0), 1)));
        assert_eq!(
            q("after_seq=9223372036854775807&limit=200&x=y"),
            Ok((Some(MAX_SEQ), 200))
        );
        for bad in [
            "-1",
            "+1",
            "1.5",
            "",
            "x",
            "9223372036854775808",
            "18446744073709551616",
        ] {
            let e = q(&format!("after_seq={}", bad.replace('+', "%2B"))).expect_err(bad);
            assert_eq!(
                e, "after_seq: must be an integer from 0 to 9223372036854775807",
                "{bad}"
            );
        }
        for bad in ["0", "201", "abc", "-5", ""] {
            let e = q(&format!("limit={bad}")).expect_err(bad);
            assert_eq!(e, "limit: must be an integer from 1 to 200", "{bad}");
        }
        assert!(
            q("after_seq=1&after_seq=2").is_err(),
            "a repeated parameter"
        );
    }

    #[test]
    fn user_id_lists() {
        #[derive(Debug, Deserialize)]
        struct P {
            user_ids: UserIds,
        }
        let ok = parse_query::<P>("user_ids=U1,,U2").map(|p| p.user_ids.0.len());
        assert_eq!(ok.ok(), Some(2));
        for bad in ["user_ids=", "user_ids=,", "user_ids=a.b", ""] {
            assert!(parse_query::<P>(bad).is_err(), "{bad}");
        }
        let many = vec!["U1"; MAX_PRESENCE_USERS + 1].join(",");
        assert!(parse_query::<P>(&format!("user_ids={many}")).is_err());
    }
}
