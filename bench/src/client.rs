//! The load generators' HTTP and WebSocket clients, and the setup they
//! share (a fresh workspace, users, channels). Every request has a
//! timeout, so every send finishes and can be counted.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A request that gets no answer in this long counts as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// WebSocket clients disable Nagle's algorithm (as reqwest does for
/// HTTP), so small frames are not held back waiting for an ACK (~40 ms).
pub const NO_NAGLE: bool = true;

pub type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// An HTTP client keeping up to `idle` connections per host.
pub fn http(idle: usize) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(idle)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("building the HTTP client")
}

/// POSTs JSON with a bearer token; the response body on 2xx, an error
/// naming the status otherwise.
pub async fn post(http: &reqwest::Client, url: &str, token: &str, body: Value) -> Result<Value> {
    let r = http
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{url}: {status} {v}");
    }
    Ok(v)
}

/// POSTs a message; whether the server answered 201.
pub async fn post_message(http: &reqwest::Client, url: &str, token: &str, body: Value) -> bool {
    match http.post(url).bearer_auth(token).json(&body).send().await {
        Ok(r) if r.status().as_u16() == 201 => r.bytes().await.is_ok(),
        _ => false,
    }
}

/// Creates a workspace named `<prefix>-<ms>` with the operator token.
pub async fn fresh_workspace(
    http: &reqwest::Client,
    base: &str,
    operator: &str,
    prefix: &str,
) -> Result<String> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let ws = post(
        http,
        &format!("{base}/v1/workspaces"),
        operator,
        json!({"name": format!("{prefix}-{stamp}")}),
    )
    .await
    .context(
        "creating the bench workspace (is the server running, and the operator token right?)",
    )?;
    Ok(str_field(&ws, "id")?.to_string())
}

/// Creates a user; returns its token.
pub async fn user(
    http: &reqwest::Client,
    base: &str,
    operator: &str,
    ws: &str,
    handle: &str,
    role: &str,
) -> Result<String> {
    let u = post(
        http,
        &format!("{base}/v1/workspaces/{ws}/users"),
        operator,
        json!({"handle": handle, "display_name": handle, "role": role}),
    )
    .await?;
    Ok(str_field(&u, "token")?.to_string())
}

/// Creates a channel; returns its id.
pub async fn channel(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    name: &str,
) -> Result<String> {
    let c = post(
        http,
        &format!("{base}/v1/channels"),
        token,
        json!({"name": name}),
    )
    .await?;
    Ok(str_field(&c, "id")?.to_string())
}

/// A channel's head sequence (where a client resumes from).
pub async fn head_seq(http: &reqwest::Client, base: &str, token: &str, ch: &str) -> Result<u64> {
    let r = http
        .get(format!("{base}/v1/channels/{ch}"))
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("GET channel {ch}"))?;
    let v: Value = r.json().await.context("channel JSON")?;
    v["head_seq"]
        .as_u64()
        .with_context(|| format!("channel {ch} has no head_seq: {v}"))
}

pub fn str_field<'a>(v: &'a Value, field: &str) -> Result<&'a str> {
    v[field]
        .as_str()
        .with_context(|| format!("no \"{field}\" in {v}"))
}

/// Opens `/v1/realtime` with a bearer token.
pub async fn realtime(base: &str, token: &str) -> Result<WsStream> {
    let url = format!("{}/v1/realtime", base.replacen("http://", "ws://", 1));
    let mut req = url.into_client_request()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let (sock, _) = tokio_tungstenite::connect_async_with_config(req, None, NO_NAGLE).await?;
    Ok(sock)
}

/// Only loopback targets: bench traffic must never leave the machine.
pub fn require_loopback(url: &str) -> Result<()> {
    let rest = url
        .split_once("://")
        .map_or(url, |(_, r)| r)
        .trim_end_matches('/');
    // Nothing a URL parser could read another host out of: no fragment,
    // no backslash, no list of servers.
    if url.contains(['#', '\\', ',']) {
        bail!("benchmarks take one plain URL of this machine (no '#', '\\' or ',')");
    }
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    // Credentials (`user:password@`) are not the host.
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = host_port.rsplit_once(':').map_or(host_port, |(h, _)| h);
    if matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
        Ok(())
    } else {
        bail!("{host_port}: benchmarks only target this machine (127.0.0.1, localhost or [::1])")
    }
}

#[cfg(test)]
mod tests {
    use super::require_loopback;

    #[test]
    fn only_loopback_targets_are_accepted() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost:1/",
            "nats://127.0.0.1:4222",
            "http://[::1]:80",
            "nats://switchboard:pw@127.0.0.1:4222",
        ] {
            assert!(require_loopback(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1:8080",
            "http://example.com",
            "nats://127.0.0.2.evil:4222",
            "nats://127.0.0.1@evil.example:4222",
            "http://evil.example#@127.0.0.1:8080",
            "http://evil.example\\@127.0.0.1/",
            "nats://evil:4222,x@127.0.0.1:4222",
        ] {
            assert!(require_loopback(bad).is_err(), "{bad}");
        }
    }
}
