//! Push delivery rules, with no I/O: the webhook URL as parsed at the edge,
//! which addresses count as private, the Standard Webhooks signing secret
//! and signature, and the retry schedule.
//!
//! Invariants kept here:
//! - a [`PushUrl`] is an absolute `http`/`https` URL with a host, no user
//!   info, at most [`MAX_URL_LEN`] bytes and no whitespace or control
//!   characters; anything else never reaches the log;
//! - a [`WebhookSecret`] prints as `whsec_…` only through
//!   [`WebhookSecret::expose`]; its `Debug` hides the key, so a secret cannot
//!   leak into logs by accident (and it is never put in an event);
//! - [`sign`] is exactly the Standard Webhooks `v1` scheme, so receivers can
//!   verify with that project's libraries.

use crate::DomainError;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// Longest webhook URL accepted.
pub const MAX_URL_LEN: usize = 2048;
/// The prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// A webhook URL as parsed at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushUrl {
    url: String,
    host: String,
    port: u16,
    https: bool,
}

impl PushUrl {
    /// Parses an absolute `http://` or `https://` URL with a host.
    pub fn parse(s: &str) -> Result<PushUrl, DomainError> {
        let bad = |why: &str| DomainError::invalid(format!("url: {why}"));
        if s.len() > MAX_URL_LEN {
            return Err(bad(&format!("at most {MAX_URL_LEN} bytes")));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("must not contain whitespace or control characters"));
        }
        let lower = s.to_ascii_lowercase();
        let (https, rest) = if lower.starts_with("https://") {
            (true, &s["https://".len()..])
        } else if lower.starts_with("http://") {
            (false, &s["http://".len()..])
        } else {
            return Err(bad("must be an http:// or https:// URL"));
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err(bad("must not carry user info"));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| bad("has no valid host"))?;
        let port = port.unwrap_or(if https { 443 } else { 80 });
        Ok(PushUrl {
            url: s.to_string(),
            host,
            port,
            https,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// The host: a DNS name (lowercase) or an IP address (IPv6 without
    /// brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn is_https(&self) -> bool {
        self.https
    }

    pub fn into_string(self) -> String {
        self.url
    }
}

/// `host[:port]` or `[v6][:port]`; `None` when the host is empty or not a
/// valid name or address, or the port is not a number in 1..=65535.
fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        v6.parse::<Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (v6.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return None,
        },
    };
    let host = host.to_ascii_lowercase();
    let name_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if name_ok || host.parse::<IpAddr>().is_ok() {
        Some((host, port))
    } else {
        None
    }
}

/// Loopback, private (RFC 1918, unique-local), link-local, CGNAT,
/// unspecified, broadcast, multicast and documentation addresses: webhooks
/// to these are refused unless the operator allows them (they reach the
/// server's own network, not the internet). IPv4-mapped IPv6 addresses are
/// judged as their IPv4 address.
pub fn is_private_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return private_v4(v4);
            }
            let seg0 = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg0 & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (seg0 & 0xffc0) == 0xfe80 // link local fe80::/10
                || (seg0 == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
        }
    }
}

fn private_v4(v4: Ipv4Addr) -> bool {
    let o = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // CGNAT 100.64/10
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18/15
        || o[0] >= 240
}

/// A Standard Webhooks signing secret: `whsec_<base64 key>`.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(…)")
    }
}

impl WebhookSecret {
    /// A secret from fresh random bytes (the caller's randomness).
    pub fn from_key(key: [u8; 32]) -> WebhookSecret {
        WebhookSecret { key: key.to_vec() }
    }

    /// Parses `whsec_<base64>` with a key of 24 to 64 bytes.
    pub fn parse(s: &str) -> Result<WebhookSecret, DomainError> {
        let b64 = s.strip_prefix(SECRET_PREFIX).ok_or_else(|| {
            DomainError::invalid(format!("secret: must start with {SECRET_PREFIX:?}"))
        })?;
        let key = B64
            .decode(b64)
            .map_err(|_| DomainError::invalid("secret: not valid base64 after whsec_"))?;
        if !(24..=64).contains(&key.len()) {
            return Err(DomainError::invalid(
                "secret: the key must be 24 to 64 bytes",
            ));
        }
        Ok(WebhookSecret { key })
    }

    /// The `whsec_…` form, for the admin who set it and the signer.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", B64.encode(&self.key))
    }

    pub fn key(&self) -> &[u8] {
        &self.key
    }
}

/// The `webhook-signature` header value: `v1,<base64 HMAC-SHA256(key,
/// "<id>.<timestamp>.<body>")>`.
pub fn sign(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length; this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.key()) else {
        return String::new();
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

/// How long to wait before retry number `failures` (1 = after the first
/// failure): `base · 2^(failures−1)`, capped at `max`, then spread by
/// `jitter` ∈ [0, 1) to between half and all of it, so receivers that
/// failed together are not retried in lock-step.
pub fn backoff(failures: u32, base: Duration, max: Duration, jitter: f64) -> Duration {
    let exp = failures.saturating_sub(1).min(30);
    let full = base.saturating_mul(1u32 << exp).min(max);
    let spread = 0.5 + 0.5 * jitter.clamp(0.0, 1.0);
    full.mul_f64(spread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = PushUrl::parse("https://push.example.com/hook?x=1").expect("valid");
        assert_eq!(
            (u.host(), u.port(), u.is_https()),
            ("push.example.com", 443, true)
        );
        let u = PushUrl::parse("HTTP://127.0.0.1:8081/p").expect("valid");
        assert_eq!((u.host(), u.port()), ("127.0.0.1", 8081));
        let u = PushUrl::parse("http://[::1]:9/").expect("valid");
        assert_eq!((u.host(), u.port()), ("::1", 9));
        for bad in [
            "",
            "ftp://example.com/",
            "example.com/hook",
            "http://",
            "http:///path",
            "http://user:pw@example.com/",
            "http://exa mple.com/",
            "http://example.com:0/",
            "http://example.com:99999/",
            "http://example.com:x/",
            "http://[::1/",
            "http://exa_mple.com/",
            "javascript:alert(1)",
        ] {
            assert!(PushUrl::parse(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(PushUrl::parse(&long).is_err());
    }

    #[test]
    fn private_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private_ip(ip.parse().expect("ip")), "{ip} is private");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(!is_private_ip(ip.parse().expect("ip")), "{ip} is public");
        }
    }

    #[test]
    fn secrets() {
        let s = WebhookSecret::from_key([7u8; 32]);
        let text = s.expose();
        assert!(text.starts_with("whsec_"));
        assert_eq!(WebhookSecret::parse(&text), Ok(s.clone()));
        assert!(!format!("{s:?}").contains(&text[6..]));
        assert!(WebhookSecret::parse("secret").is_err());
        assert!(WebhookSecret::parse("whsec_!!!").is_err());
        assert!(WebhookSecret::parse("whsec_c2hvcnQ=").is_err()); // "short"
    }

    /// The Standard Webhooks reference vector (its libraries' tests).
    #[test]
    fn standard_webhooks_vector() {
        let secret =
            WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn backoff_doubles_caps_and_spreads() {
        let (b, m) = (Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(backoff(1, b, m, 0.999_999).as_millis(), 999);
        assert_eq!(backoff(1, b, m, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(3, b, m, 1.0), Duration::from_secs(4));
        assert_eq!(backoff(20, b, m, 1.0), m);
        assert_eq!(backoff(u32::MAX, b, m, 1.0), m);
    }
}
