//! Name resolution for webhooks that never yields a loopback, private or
//! link-local address (unless the operator allows them), so a URL that
//! passed the check when it was set cannot be pointed at the server's own
//! network later by changing its DNS records.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::SocketAddr;
use switchboard_core::push::is_private_ip;

/// The webhook client's resolver.
pub struct Guarded {
    pub allow_private: bool,
}

impl Resolve for Guarded {
    fn resolve(&self, name: Name) -> Resolving {
        let (host, allow) = (name.as_str().to_string(), self.allow_private);
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = if allow {
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect()
            } else {
                public_addrs(&host, 0).await?
            };
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Why a host may not receive webhooks.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("url: {0} does not resolve")]
    Unresolved(String),
    #[error("url: {0} is a loopback, private or link-local address (not allowed for webhooks)")]
    Private(String),
}

/// The host's addresses, refused if any is private (a name with one
/// private address among public ones is refused too: the client could
/// pick either).
pub async fn public_addrs(host: &str, port: u16) -> Result<Vec<SocketAddr>, Refused> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| Refused::Unresolved(host.to_string()))?
        .collect();
    if addrs.is_empty() {
        return Err(Refused::Unresolved(host.to_string()));
    }
    if addrs.iter().any(|a| is_private_ip(a.ip())) {
        return Err(Refused::Private(host.to_string()));
    }
    Ok(addrs)
}
