//! TLS on the listener: `serve --tls-cert --tls-key` serves HTTPS with a
//! certificate made here (rcgen, self-signed for `localhost`), to a rustls
//! client that trusts only the certificates this test made; a new pair is
//! picked up on SIGHUP and, without a signal, when the files change; a
//! broken pair is refused and the one in use stays; SIGTERM still drains
//! and exits cleanly.

use crate::harness::{Nats, Server};
use rustls::pki_types::{CertificateDer, ServerName};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Makes a self-signed pair for `localhost`, writes it to the two files
/// (key first, so the pair on disk is whole once the certificate lands),
/// and returns the certificate.
fn new_pair(cert: &Path, key: &Path) -> CertificateDer<'static> {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .expect("self-signed certificate");
    std::fs::write(key, made.key_pair.serialize_pem()).expect("write key");
    std::fs::write(cert, made.cert.pem()).expect("write cert");
    made.cert.der().clone()
}

/// One HTTPS `GET path` over a fresh connection: the certificate the
/// server presented and the response's status code.
async fn get(
    addr: &str,
    trusted: &[CertificateDer<'static>],
    path: &str,
) -> (CertificateDer<'static>, u16) {
    let mut roots = rustls::RootCertStore::empty();
    for c in trusted {
        roots.add(c.clone()).expect("trust the test certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("server name");
    let mut tls = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .expect("handshake in time")
        .expect("handshake with a trusted certificate");
    let presented = tls.get_ref().1.peer_certificates().expect("a certificate")[0].clone();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.expect("request");
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("an HTTP response: {text}"));
    (presented, status)
}

/// Waits until the server presents `want` (bounded).
async fn presents(
    addr: &str,
    trusted: &[CertificateDer<'static>],
    want: &CertificateDer<'static>,
    within: Duration,
) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if get(addr, trusted, "/healthz").await.0 == *want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_reloadable_certificate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let first = new_pair(&cert, &key);
    let nats = Nats::start();
    let cert_arg = cert.to_str().expect("utf-8 path").to_string();
    let key_arg = key.to_str().expect("utf-8 path").to_string();
    let mut server = Server::start_with(&nats, &["--tls-cert", &cert_arg, "--tls-key", &key_arg]);
    let addr = server
        .base
        .strip_prefix("https://")
        .unwrap_or_else(|| panic!("an https base: {}", server.base))
        .to_string();

    let mut trusted = vec![first.clone()];
    let (presented, status) = get(&addr, &trusted, "/healthz").await;
    assert_eq!(presented, first);
    assert_eq!(status, 200);
    // An authenticated route works over it too (401 without a token).
    assert_eq!(get(&addr, &trusted, "/v1/me").await.1, 401);
    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut plain = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), plain.read_to_end(&mut buf)).await;
    assert!(!buf.starts_with(b"HTTP/1.1 200"), "plaintext served");

    // SIGHUP picks up a new pair.
    let second = new_pair(&cert, &key);
    trusted.push(second.clone());
    server.signal("-HUP");
    assert!(
        presents(&addr, &trusted, &second, Duration::from_secs(5)).await,
        "the new certificate after SIGHUP"
    );

    // So does a change of the files, without a signal.
    let third = new_pair(&cert, &key);
    trusted.push(third.clone());
    assert!(
        presents(&addr, &trusted, &third, Duration::from_secs(10)).await,
        "the new certificate after the files changed"
    );

    // A broken pair (a key that is not the certificate's) is refused: the
    // one in use stays, across a SIGHUP and the next file check.
    let other = rcgen::KeyPair::generate().expect("key");
    std::fs::write(&key, other.serialize_pem()).expect("write key");
    server.signal("-HUP");
    let until = Instant::now() + past_a_file_check();
    while Instant::now() < until {
        let (presented, status) = get(&addr, &trusted, "/healthz").await;
        assert_eq!(
            (presented, status),
            (third.clone(), 200),
            "kept the working pair"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let status = tokio::task::block_in_place(|| server.terminate(Duration::from_secs(15)))
        .expect("exited after SIGTERM");
    assert!(status.success(), "clean exit: {status:?}");
}

/// A little over the server's file-check interval.
fn past_a_file_check() -> Duration {
    switchboard_gateway::tls::RELOAD_POLL + Duration::from_millis(500)
}
