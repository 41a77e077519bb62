//! Typed ids. Every id is a valid NATS subject token (ASCII letters, digits,
//! `-` and `_`, 1 to 64 bytes), so no input can widen a subject: a `.`, `*`,
//! `>` or whitespace is rejected at the edge by `parse`.
//!
//! New ids are ULID-like: a one-letter kind prefix, 48 bits of milliseconds
//! and 80 random bits in Crockford base32. The caller supplies time and
//! randomness (core does no I/O).
//!
//! Each kind of id is its own type: one never compiles where another is
//! expected (checked by `cargo test --doc -p switchboard-core`, which
//! `deploy/test.sh` runs):
//!
//! ```compile_fail
//! use switchboard_core::ids::{ChannelId, UserId};
//! fn wants_a_channel(_: &ChannelId) {}
//! wants_a_channel(&UserId::from_trusted("U1".into()));
//! ```
//!
//! ```
//! use switchboard_core::ids::{ChannelId, UserId};
//! fn wants_a_channel(_: &ChannelId) {}
//! wants_a_channel(&ChannelId::from_trusted("C1".into()));
//! ```

use crate::DomainError;
use std::fmt;

const MAX_ID_LEN: usize = 64;
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// True when `s` is usable as an id and as a single NATS subject token.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Encodes `prefix` + 26 Crockford base32 characters of (ms, random).
pub fn encode_ulid(prefix: char, ms: u64, random: [u8; 10]) -> String {
    let mut value: u128 = u128::from(ms & 0xFFFF_FFFF_FFFF) << 80;
    for (i, b) in random.iter().enumerate() {
        value |= u128::from(*b) << (72 - 8 * i);
    }
    let mut out = String::with_capacity(27);
    out.push(prefix);
    for i in (0..26).rev() {
        let idx = ((value >> (5 * i)) & 0x1F) as usize;
        out.push(char::from(CROCKFORD[idx]));
    }
    out
}

macro_rules! id_type {
    ($name:ident, $prefix:literal, $what:literal) => {
        #[doc = concat!("Id of a ", $what, ".")]
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: char = $prefix;

            /// Parses untrusted input.
            pub fn parse(s: &str) -> Result<Self, DomainError> {
                if is_token(s) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(DomainError::invalid(concat!(
                        "malformed ",
                        $what,
                        " id: expected 1-64 characters of A-Z, a-z, 0-9, '-' or '_'"
                    )))
                }
            }

            /// A fresh id from the caller's clock and randomness.
            pub fn generate(ms: u64, random: [u8; 10]) -> Self {
                Self(encode_ulid($prefix, ms, random))
            }

            /// Wraps a value already validated (read back from the log or a
            /// read model this process wrote).
            pub fn from_trusted(s: String) -> Self {
                Self(s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        /// Test fixtures only: production code parses or generates ids.
        #[cfg(test)]
        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        /// Read as a string where one is expected (subjects, SQL, JSON);
        /// never the other way: a string or another kind of id does not
        /// become a `$name` without `parse`.
        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(WorkspaceId, 'W', "workspace");
id_type!(UserId, 'U', "user");
id_type!(ChannelId, 'C', "channel");
id_type!(MessageId, 'M', "message");
id_type!(EventId, 'E', "event");
id_type!(FileId, 'F', "file");
id_type!(TokenId, 'T', "token");
id_type!(HoldId, 'H', "legal hold");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_wideners_are_rejected() {
        for bad in ["", "a.b", "*", ">", "a b", "a\tb", "é", &"x".repeat(65)] {
            assert!(ChannelId::parse(bad).is_err(), "{bad:?} must be rejected");
        }
        assert!(ChannelId::parse("C01H-x_9").is_ok());
    }

    #[test]
    fn generated_ids_are_tokens_and_sort_by_time() {
        let a = MessageId::generate(1_000, [0xFF; 10]);
        let b = MessageId::generate(1_001, [0; 10]);
        assert!(is_token(a.as_str()) && a.as_str().len() == 27);
        assert!(a < b, "ids sort by their millisecond prefix");
        assert!(a.as_str().starts_with('M'));
    }
}
