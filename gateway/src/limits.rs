//! Rate limits: what one token (or, without one, one address) may do per
//! second on this gateway, and how many frames one WebSocket connection may
//! send.
//!
//! Invariants kept here:
//! - a request over its class's limit is answered `429 rate_limited` with
//!   `Retry-After` (whole seconds, at least 1) **before its handler runs**,
//!   so nothing is appended, uploaded or issued for it;
//! - limits are GCRA buckets from `governor` (sustained rate + burst), keyed
//!   by a per-process random hash of the bearer token, or of the peer's IP
//!   address for requests without one; the raw token is never kept;
//! - the keyed state cannot grow without bound: keys idle for long enough to
//!   have refilled their burst are dropped every [`SWEEP_EVERY`] checks;
//! - limits are per gateway process (each gateway has its own buckets), so
//!   with N gateways behind a balancer a token may do up to N times as much.
//!
//! Which routes fall in which [`Class`] is [`classify`]'s table (method and
//! matched path template); every other route is not rate limited here.

use crate::error::{ApiError, ErrorCode};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::hash::{BuildHasher, Hash, RandomState};
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// `POST /v1/messages`.
    Posts,
    /// Edits, deletes, reactions and pins of messages.
    Edits,
    /// WebSocket `typing` frames (keyed by user: a ticket-opened socket has
    /// no token).
    Typing,
    /// `POST /v1/files`.
    Uploads,
    /// `POST /v1/realtime/tickets`.
    Tickets,
}

impl Class {
    /// Every class, in the order of [`RateLimits`]' fields.
    pub const ALL: [Class; 5] = [
        Class::Posts,
        Class::Edits,
        Class::Typing,
        Class::Uploads,
        Class::Tickets,
    ];

    /// The label in metrics and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Class::Posts => "posts",
            Class::Edits => "edits",
            Class::Typing => "typing",
            Class::Uploads => "uploads",
            Class::Tickets => "tickets",
        }
    }
}

/// The class of a request, from its method and matched route template.
pub fn classify(method: &Method, path: &str) -> Option<Class> {
    match (method.as_str(), path) {
        ("POST", "/v1/messages") => Some(Class::Posts),
        ("PATCH" | "DELETE", "/v1/messages/{id}")
        | ("POST", "/v1/messages/{id}/reactions")
        | ("DELETE", "/v1/messages/{id}/reactions/{emoji}")
        | ("POST" | "DELETE", "/v1/channels/{id}/pins/{message_id}") => Some(Class::Edits),
        ("POST", "/v1/files") => Some(Class::Uploads),
        // Credentials minted: real-time tickets and tokens.
        ("POST", "/v1/realtime/tickets") | ("POST", "/v1/tokens") => Some(Class::Tickets),
        _ => None,
    }
}

/// A sustained rate with a burst: `per_second` refill, up to `burst` at once.
/// Written `<per_second>:<burst>` (`100:1000`), or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

impl Rate {
    /// `per_second` sustained, `burst` at once (zeros read as one).
    pub const fn new(per_second: u32, burst: u32) -> Rate {
        const fn nz(n: u32) -> NonZeroU32 {
            match NonZeroU32::new(n) {
                Some(n) => n,
                None => NonZeroU32::MIN,
            }
        }
        Rate {
            per_second: nz(per_second),
            burst: nz(burst),
        }
    }

    fn quota(self) -> Quota {
        Quota::per_second(self.per_second).allow_burst(self.burst)
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.per_second, self.burst)
    }
}

/// A limit setting: a [`Rate`], or `None` for no limit (`off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(pub Option<Rate>);

impl FromStr for Limit {
    type Err = String;

    fn from_str(s: &str) -> Result<Limit, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") || s == "0" {
            return Ok(Limit(None));
        }
        let bad = || format!("`{s}`: expected <per_second>:<burst> (e.g. 100:1000) or off");
        let (rate, burst) = s.split_once(':').ok_or_else(bad)?;
        let n = |v: &str| {
            v.trim()
                .parse::<u32>()
                .ok()
                .and_then(NonZeroU32::new)
                .ok_or_else(bad)
        };
        Ok(Limit(Some(Rate {
            per_second: n(rate)?,
            burst: n(burst)?,
        })))
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(r) => r.fmt(f),
            None => f.write_str("off"),
        }
    }
}

/// Every limit's setting. The defaults are far above what a person or a
/// well-behaved bot does, and above every burst the test suite makes; the
/// benchmarks, which post tens of thousands of messages a second through
/// one token, run with `--rate-limits off`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    /// Master switch: `false` turns every limit off.
    pub enabled: bool,
    pub posts: Limit,
    pub edits: Limit,
    pub typing: Limit,
    pub uploads: Limit,
    pub tickets: Limit,
    /// Frames one WebSocket connection may send (any type). Past it the
    /// client gets an `error` frame `rate_limited`, then a close (1008).
    pub ws_frames: Limit,
}

/// Default per-token posts: 100/s sustained, 1,000 at once.
pub const DEFAULT_POSTS: Rate = Rate::new(100, 1000);
/// Default per-token edits, deletes, reactions and pins.
pub const DEFAULT_EDITS: Rate = Rate::new(50, 500);
/// Default per-user typing frames.
pub const DEFAULT_TYPING: Rate = Rate::new(10, 50);
/// Default per-token uploads.
pub const DEFAULT_UPLOADS: Rate = Rate::new(10, 100);
/// Default per-token real-time tickets.
pub const DEFAULT_TICKETS: Rate = Rate::new(10, 100);
/// Default frames per WebSocket connection.
pub const DEFAULT_WS_FRAMES: Rate = Rate::new(100, 1000);

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            enabled: true,
            posts: Limit(Some(DEFAULT_POSTS)),
            edits: Limit(Some(DEFAULT_EDITS)),
            typing: Limit(Some(DEFAULT_TYPING)),
            uploads: Limit(Some(DEFAULT_UPLOADS)),
            tickets: Limit(Some(DEFAULT_TICKETS)),
            ws_frames: Limit(Some(DEFAULT_WS_FRAMES)),
        }
    }
}

impl RateLimits {
    /// No limit at all.
    pub fn off() -> Self {
        RateLimits {
            enabled: false,
            ..Default::default()
        }
    }

    fn get(&self, class: Class) -> Option<Rate> {
        if !self.enabled {
            return None;
        }
        match class {
            Class::Posts => self.posts.0,
            Class::Edits => self.edits.0,
            Class::Typing => self.typing.0,
            Class::Uploads => self.uploads.0,
            Class::Tickets => self.tickets.0,
        }
    }
}

/// Keys idle long enough to be full again are swept after this many checks.
pub const SWEEP_EVERY: u64 = 4096;

/// A caller's key: a hash (random per process) of its token, user or address.
pub type Key = u64;

/// The running limiters of one gateway.
pub struct Limiter {
    config: RateLimits,
    classes: Vec<(Class, DefaultKeyedRateLimiter<Key>)>,
    hasher: RandomState,
    checks: AtomicU64,
    clock: DefaultClock,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter::new(RateLimits::default())
    }
}

/// Why a caller must wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub class: Class,
    /// When the next request would be allowed.
    pub retry_after: Duration,
}

impl Limited {
    /// `Retry-After` in whole seconds, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        crate::login_limits::retry_after_secs(self.retry_after)
    }

    /// The 429 answer: `rate_limited`, with `Retry-After` (the one
    /// [`ApiError`] shape every 429 takes, sign-in limits' included).
    pub fn response(&self) -> Response {
        let secs = self.retry_after_secs();
        ApiError {
            retry_after: Some(secs),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                format!(
                    "too many {} from this caller; retry in {secs} s",
                    self.class.as_str()
                ),
            )
        }
        .into_response()
    }
}

impl Limiter {
    pub fn new(config: RateLimits) -> Limiter {
        let classes = Class::ALL
            .iter()
            .filter_map(|&c| config.get(c).map(|r| (c, RateLimiter::keyed(r.quota()))))
            .collect();
        Limiter {
            config,
            classes,
            hasher: RandomState::new(),
            checks: AtomicU64::new(0),
            clock: DefaultClock::default(),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &RateLimits {
        &self.config
    }

    /// The key of anything hashable (a token, an address, a user).
    pub fn key<T: Hash + ?Sized>(&self, what: &T) -> Key {
        self.hasher.hash_one(what)
    }

    /// Takes one from `key`'s bucket of `class`; `Err` when it is empty.
    /// Every rejection is counted in the metrics.
    pub fn check(&self, class: Class, key: Key) -> Result<(), Limited> {
        let Some((_, limiter)) = self.classes.iter().find(|(c, _)| *c == class) else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        limiter.check_key(&key).map_err(|not_until| {
            crate::metrics::rate_limited(class.as_str());
            Limited {
                class,
                retry_after: not_until.wait_time_from(self.clock.now()),
            }
        })
    }

    /// A frame limiter for one new WebSocket connection (`None`: no limit).
    pub fn connection(&self) -> Option<FrameLimiter> {
        let rate = self.config.ws_frames.0.filter(|_| self.config.enabled)?;
        Some(FrameLimiter(RateLimiter::direct(rate.quota())))
    }
}

/// One connection's inbound frame budget.
pub struct FrameLimiter(DefaultDirectRateLimiter);

impl FrameLimiter {
    /// False when the client has sent more frames than it may.
    pub fn allow(&self) -> bool {
        let ok = self.0.check().is_ok();
        if !ok {
            crate::metrics::rate_limited("ws_frames");
        }
        ok
    }
}

/// The middleware: classifies the request by its matched route, keys it by
/// its bearer token (or peer address) and answers 429 when over the limit.
/// Must be added with `Router::layer` so the matched path is known.
pub async fn enforce(State(limiter): State<Arc<Limiter>>, req: Request, next: Next) -> Response {
    let class = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|p| classify(req.method(), p.as_str()));
    let Some(class) = class else {
        return next.run(req).await;
    };
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::extract::bearer_token)
        // A browser's session is its token (README "Accounts and sessions").
        .or_else(|| crate::extract::cookie(req.headers(), crate::extract::SESSION_COOKIE));
    let key = match token {
        Some(t) => limiter.key(t),
        None => {
            let ip = crate::tls::peer_ip(req.extensions());
            limiter.key(&ip)
        }
    };
    match limiter.check(class, key) {
        Ok(()) => next.run(req).await,
        Err(limited) => limited.response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_and_print() {
        assert_eq!("100:1000".parse(), Ok(Limit(Some(Rate::new(100, 1000)))));
        assert_eq!(" 5 : 7 ".parse(), Ok(Limit(Some(Rate::new(5, 7)))));
        assert_eq!("off".parse(), Ok(Limit(None)));
        assert_eq!("0".parse(), Ok(Limit(None)));
        for bad in ["", "100", "0:5", "5:0", "-1:5", "a:b", "1:2:3"] {
            assert!(bad.parse::<Limit>().is_err(), "{bad}");
        }
        assert_eq!(Limit(Some(Rate::new(3, 9))).to_string(), "3:9");
        assert_eq!(Limit(None).to_string(), "off");
    }

    #[test]
    fn routes_fall_in_their_class() {
        let m = |s: &str| Method::from_bytes(s.as_bytes()).expect("method");
        assert_eq!(classify(&m("POST"), "/v1/messages"), Some(Class::Posts));
        assert_eq!(classify(&m("GET"), "/v1/messages"), None);
        assert_eq!(
            classify(&m("PATCH"), "/v1/messages/{id}"),
            Some(Class::Edits)
        );
        assert_eq!(
            classify(&m("DELETE"), "/v1/messages/{id}/reactions/{emoji}"),
            Some(Class::Edits)
        );
        assert_eq!(classify(&m("POST"), "/v1/files"), Some(Class::Uploads));
        assert_eq!(classify(&m("GET"), "/v1/files/{id}"), None);
        assert_eq!(
            classify(&m("POST"), "/v1/realtime/tickets"),
            Some(Class::Tickets)
        );
        assert_eq!(classify(&m("GET"), "/v1/channels"), None);
    }

    #[test]
    fn a_burst_then_429_with_a_whole_second_retry_after() {
        let l = Limiter::new(RateLimits {
            posts: Limit(Some(Rate::new(1, 3))),
            ..Default::default()
        });
        let (a, b) = (l.key("token-a"), l.key("token-b"));
        for _ in 0..3 {
            assert!(l.check(Class::Posts, a).is_ok());
        }
        let limited = l.check(Class::Posts, a).expect_err("over the burst");
        assert_eq!(limited.class, Class::Posts);
        assert!(limited.retry_after <= Duration::from_secs(1));
        assert_eq!(limited.retry_after_secs(), 1);
        assert!(
            l.check(Class::Posts, b).is_ok(),
            "another token has its own"
        );
        assert!(l.check(Class::Edits, a).is_ok(), "another class too");
        let r = limited.response();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn off_means_no_limit() {
        let l = Limiter::new(RateLimits::off());
        let k = l.key("t");
        for _ in 0..10_000 {
            assert!(l.check(Class::Posts, k).is_ok());
        }
        assert!(l.connection().is_none());
        let one = Limiter::new(RateLimits {
            ws_frames: Limit(Some(Rate::new(1, 2))),
            ..Default::default()
        });
        let c = one.connection().expect("a frame limit");
        assert!(c.allow() && c.allow());
        assert!(!c.allow());
    }

    #[test]
    fn retry_after_rounds_up() {
        let l = |ms| Limited {
            class: Class::Posts,
            retry_after: Duration::from_millis(ms),
        };
        assert_eq!(l(0).retry_after_secs(), 1);
        assert_eq!(l(1000).retry_after_secs(), 1);
        assert_eq!(l(1001).retry_after_secs(), 2);
        assert_eq!(l(2500).retry_after_secs(), 3);
    }
}
