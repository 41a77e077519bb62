//! The webhook client: hyper over TCP or TLS (rustls, ring, the system's
//! roots), with a resolver that never yields a loopback, private or
//! link-local address (unless the operator allows them), so a URL that
//! passed the check when it was set cannot be pointed at the server's own
//! network later by changing its DNS records. Redirects are never followed
//! (hyper's client does not follow them).

use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use switchboard_core::push::is_private_ip;

/// The webhook client's resolver.
#[derive(Clone)]
pub struct Guarded {
    pub allow_private: bool,
}

impl tower_service::Service<Name> for Guarded {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let (host, allow) = (name.as_str().to_string(), self.allow_private);
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = if allow {
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect()
            } else {
                public_addrs(&host, 0)
                    .await
                    .map_err(std::io::Error::other)?
            };
            Ok(addrs.into_iter())
        })
    }
}

pub type Body = http_body_util::Full<bytes::Bytes>;
pub type Client =
    hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<HttpConnector<Guarded>>, Body>;

/// A client for `http` and `https` webhooks with the guarded resolver.
pub fn client(allow_private: bool, connect_timeout: Duration) -> Result<Client, String> {
    let mut http = HttpConnector::new_with_resolver(Guarded { allow_private });
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = match hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(provider.clone())
    {
        Ok(b) => b,
        Err(e) => {
            // No system roots: http webhooks still work; https ones fail
            // (and are retried, then dead-lettered) until roots exist.
            tracing::warn!(error = %e, "push: no TLS root certificates; https webhooks will fail");
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS for webhooks: {e}"))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
        }
    };
    let https = tls.https_or_http().enable_http1().wrap_connector(http);
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https),
    )
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
