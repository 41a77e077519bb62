//! Pagination of the list reads (`GET /v1/users`, `/v1/channels`,
//! `/v1/channels/{id}/members`): `?limit=` and an opaque `?cursor=` in,
//! `next_cursor` out (`null` on the last page).
//!
//! A cursor is the sort key of the last row a page carried, hex-encoded
//! JSON, so it is URL-safe and a client has no reason to build one. It only
//! says where to resume within a list the caller is already authorized to
//! read (the workspace and channel come from the token and the path, never
//! from the cursor); a forged one can at most skip rows of that list. Keyset
//! pagination: a page costs its own rows whatever the list's size, and rows
//! added or removed between pages neither repeat nor shift the rest.

use crate::error::{ApiError, ApiResult};
use std::collections::HashMap;
use switchboard_core::secret::hex;
use switchboard_projections::acl::{Listing, MAX_PAGE};

/// Page size of `GET /v1/users` and `/v1/channels/{id}/members` when no
/// `limit` is given.
pub const DEFAULT_LIMIT: u32 = 200;
/// Page size of `GET /v1/channels` when no `limit` is given: a client that
/// never asked for pages gets every channel of any workspace below it.
pub const DEFAULT_CHANNELS_LIMIT: u32 = MAX_PAGE;
/// Longest cursor accepted (a channel name and id, hex-encoded, fit).
const MAX_CURSOR: usize = 2048;

/// `?limit=` and `?cursor=` of a list read, as the query string has them
/// (documented in the OpenAPI reference; [`ListParams::page`] validates).
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1-1000 (default 200; 1000 for `/v1/channels`).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// A `next_cursor` from the previous page, as it was given.
    pub cursor: Option<String>,
}

impl ListParams {
    /// The page asked for, or `400 invalid_request`.
    pub fn page(&self, default: u32) -> ApiResult<ListQuery> {
        let mut q = HashMap::new();
        if let Some(l) = &self.limit {
            q.insert("limit".to_string(), l.to_string());
        }
        if let Some(c) = &self.cursor {
            q.insert("cursor".to_string(), c.clone());
        }
        ListQuery::parse(&q, default)
    }
}

/// `?limit=` and `?cursor=` of a list read, parsed.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// 1..=[`MAX_PAGE`].
    pub limit: u32,
    /// The sort key of the last row already seen; empty on the first page.
    pub after: Vec<String>,
}

impl ListQuery {
    /// Parses `limit` (1..=[`MAX_PAGE`], else `default`) and `cursor` from
    /// the query; anything else is `400 invalid_request`.
    pub fn parse(q: &HashMap<String, String>, default: u32) -> ApiResult<ListQuery> {
        let limit = match q.get("limit") {
            None => default,
            Some(v) => match v.parse::<u32>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
                _ => {
                    return Err(ApiError::invalid(format!(
                        "limit must be an integer between 1 and {MAX_PAGE}"
                    )))
                }
            },
        };
        let after = match q.get("cursor").map(String::as_str) {
            None | Some("") => Vec::new(),
            Some(c) => decode(c)
                .ok_or_else(|| ApiError::invalid("cursor: use a next_cursor as it was given"))?,
        };
        Ok(ListQuery { limit, after })
    }

    /// The single-part sort key to resume after (`""` on the first page).
    pub fn after_one(&self) -> ApiResult<String> {
        match self.after.as_slice() {
            [] => Ok(String::new()),
            [k] => Ok(k.clone()),
            _ => Err(bad_cursor()),
        }
    }

    /// The two-part sort key to resume after (`None` on the first page).
    pub fn after_two(&self) -> ApiResult<Option<(String, String)>> {
        match self.after.as_slice() {
            [] => Ok(None),
            [a, b] => Ok(Some((a.clone(), b.clone()))),
            _ => Err(bad_cursor()),
        }
    }
}

fn bad_cursor() -> ApiError {
    ApiError::invalid("cursor: it belongs to another list")
}

/// One page for the client: the rows and the cursor of the next page.
#[derive(Debug, Clone)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Paged<T> {
    /// The page of `listing`; when more rows follow, `next_cursor` encodes
    /// `key` of its last row.
    pub fn of(listing: Listing<T>, key: impl FnOnce(&T) -> Vec<&str>) -> Paged<T> {
        let next_cursor = match (listing.more, listing.rows.last()) {
            (true, Some(last)) => Some(encode(&key(last))),
            _ => None,
        };
        Paged {
            items: listing.rows,
            next_cursor,
        }
    }
}

/// The cursor of a sort key.
pub fn encode(key: &[&str]) -> String {
    hex(serde_json::Value::from(key.to_vec()).to_string().as_bytes())
}

fn decode(cursor: &str) -> Option<Vec<String>> {
    if cursor.len() > MAX_CURSOR {
        return None;
    }
    let pairs = cursor.as_bytes().chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return None;
    }
    let bytes = pairs
        .map(|p| {
            let digit = |b: u8| char::from(b).to_digit(16);
            Some((digit(p[0])? * 16 + digit(p[1])?) as u8)
        })
        .collect::<Option<Vec<u8>>>()?;
    serde_json::from_slice::<Vec<String>>(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn cursors_round_trip_any_key() {
        for key in [vec!["ada"], vec!["général #1", "C01J\"}"], vec![""]] {
            let c = encode(&key);
            assert!(c.bytes().all(|b| b.is_ascii_hexdigit()), "{c}");
            let parsed = ListQuery::parse(&q(&[("cursor", &c)]), 5).expect("parses");
            assert_eq!(parsed.after, key);
        }
    }

    #[test]
    fn limits_default_and_are_capped() {
        assert_eq!(ListQuery::parse(&q(&[]), 200).expect("default").limit, 200);
        assert_eq!(
            ListQuery::parse(&q(&[("limit", "1000")]), 200)
                .expect("max")
                .limit,
            1000
        );
        for bad in ["0", "1001", "-1", "ten", "1.5", ""] {
            let e = ListQuery::parse(&q(&[("limit", bad)]), 200).expect_err(bad);
            assert_eq!(e.code, "invalid_request");
        }
    }

    #[test]
    fn forged_cursors_are_refused() {
        for bad in ["zz", "abc", "00", &hex(b"{\"a\":1}"), &"ab".repeat(2000)] {
            let e = ListQuery::parse(&q(&[("cursor", bad)]), 200).expect_err(bad);
            assert_eq!(e.code, "invalid_request");
        }
        let two = ListQuery::parse(&q(&[("cursor", &encode(&["a", "b"]))]), 1).expect("two");
        assert!(two.after_one().is_err());
        assert!(two.after_two().expect("two parts").is_some());
    }
}
