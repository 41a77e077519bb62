//! Brute-force limits on password sign-in (and invite acceptance), per
//! account and per client address, with `governor`'s keyed GCRA limiters.
//!
//! Every attempt counts — right or wrong — and is checked *before* any
//! password is hashed, so a flood costs a map lookup, not an argon2 run.
//! An attempt over either limit is answered `429 rate_limited` with
//! `Retry-After` (whole seconds until the next attempt is allowed) and
//! nothing else happens. Kept in this gateway's memory: limits are per
//! gateway (N gateways allow N times the rate), and reset on restart.
//!
//! Self-contained on purpose: the general request rate limits live beside
//! it, not in it.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::time::Duration;

/// Sign-in attempts per account (workspace + handle): a burst of this
/// many, then one more each [`ACCOUNT_PERIOD`].
pub const ACCOUNT_BURST: u32 = 5;
pub const ACCOUNT_PERIOD: Duration = Duration::from_secs(60);
/// Sign-in attempts per client address: a burst of this many, then one
/// more each [`ADDRESS_PERIOD`].
pub const ADDRESS_BURST: u32 = 30;
pub const ADDRESS_PERIOD: Duration = Duration::from_secs(10);

/// Past this many tracked keys, keys whose limit has fully recovered are
/// dropped (bounded memory under a spray of handles or addresses).
const MAX_KEYS: usize = 100_000;

/// The two keyed limiters.
pub struct LoginLimits {
    accounts: DefaultKeyedRateLimiter<String>,
    addresses: DefaultKeyedRateLimiter<String>,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            accounts: RateLimiter::keyed(quota(ACCOUNT_BURST, ACCOUNT_PERIOD)),
            addresses: RateLimiter::keyed(quota(ADDRESS_BURST, ADDRESS_PERIOD)),
        }
    }
}

fn quota(burst: u32, period: Duration) -> Quota {
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_minute(NonZeroU32::MIN))
        .allow_burst(burst)
}

/// Characters of `workspace/handle` an account key keeps.
const MAX_ACCOUNT_CHARS: usize = 128;

impl LoginLimits {
    /// Counts one attempt at `account` from `address`; `Err(wait)` when
    /// either is over its limit (then the attempt must not proceed).
    pub fn check(&self, account: &str, address: &str) -> Result<(), Duration> {
        self.trim();
        let now = DefaultClock::default().now();
        // The address first: a spray over many accounts from one place is
        // stopped without charging each victim's account.
        self.addresses
            .check_key(&address.to_string())
            .map_err(|n| n.wait_time_from(now))?;
        // Handles are short; a long one is cut, so a body of junk cannot
        // make large keys.
        let account: String = account
            .to_lowercase()
            .chars()
            .take(MAX_ACCOUNT_CHARS)
            .collect();
        self.accounts
            .check_key(&account)
            .map_err(|n| n.wait_time_from(now))
    }

    fn trim(&self) {
        for l in [&self.accounts, &self.addresses] {
            if l.len() > MAX_KEYS {
                l.retain_recent();
            }
        }
    }
}

/// `Retry-After` in whole seconds (at least 1).
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0).max(u64::from(wait.is_zero()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_is_locked_after_its_burst_and_others_are_not() {
        let l = LoginLimits::default();
        for _ in 0..ACCOUNT_BURST {
            assert!(l.check("W1/bob", "10.0.0.1").is_ok());
        }
        let wait = l.check("W1/BOB", "10.0.0.2").expect_err("locked");
        assert!(wait > Duration::ZERO && wait <= ACCOUNT_PERIOD);
        assert!(l.check("W1/alice", "10.0.0.1").is_ok());
    }

    #[test]
    fn an_address_is_locked_after_its_burst() {
        let l = LoginLimits::default();
        for i in 0..ADDRESS_BURST {
            assert!(l.check(&format!("W1/u{i}"), "10.0.0.9").is_ok());
        }
        assert!(l.check("W1/fresh", "10.0.0.9").is_err());
        assert!(l.check("W1/fresh", "10.0.0.10").is_ok());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(12)), 12);
        assert_eq!(retry_after_secs(Duration::from_millis(12_001)), 13);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
