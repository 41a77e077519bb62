//! TLS on the HTTP listener (rustls, ring provider), with certificate
//! reload.
//!
//! Invariants kept here:
//! - every handshake uses the certificate and key most recently loaded
//!   *successfully*: a reload that fails (a missing file, a key that does
//!   not match the certificate, a half-written PEM) is logged and leaves
//!   the one in use untouched, so a bad deploy of files never takes the
//!   listener down;
//! - a slow or silent client cannot hold the accept loop: handshakes run
//!   on their own tasks, each bounded in time, at most
//!   [`MAX_HANDSHAKES`] at once, and [`TlsListener::accept`] only yields
//!   connections whose handshake finished;
//! - when the HTTP server drops the listener (graceful shutdown), the TCP
//!   socket closes at once: new connections are refused.

use axum::serve::Listener;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// Longest a client may take to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; more connections wait in the backlog.
pub const MAX_HANDSHAKES: usize = 1024;
/// How often the certificate and key files are checked for a change.
pub const RELOAD_POLL: Duration = Duration::from_secs(2);

/// Why a certificate and key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM item. Fix the file;
    /// a running server keeps the certificate it has.
    #[error("{path}: {why}")]
    File { path: PathBuf, why: String },
    /// rustls refused the pair (unsupported key type, key and certificate
    /// that do not match).
    #[error("certificate and key: {0}")]
    Pair(String),
}

/// The certificate in use, reloadable from its files.
#[derive(Debug)]
pub struct Certs {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' modification times when last loaded (or tried).
    stamp: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn load_pair(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
    let file_err = |path: &Path, why: String| TlsError::File {
        path: path.to_path_buf(),
        why,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| file_err(cert_path, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_err(cert_path, e.to_string()))?;
    if chain.is_empty() {
        return Err(file_err(cert_path, "no CERTIFICATE in the file".into()));
    }
    let key =
        PrivateKeyDer::from_pem_file(key_path).map_err(|e| file_err(key_path, e.to_string()))?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider).map_err(|e| TlsError::Pair(e.to_string()))
}

impl Certs {
    /// Loads the PEM certificate chain and private key (PKCS#8, PKCS#1 or
    /// SEC1); an error here stops `serve` at start-up.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<Certs>, TlsError> {
        let stamp = (modified(cert_path), modified(key_path));
        let pair = load_pair(cert_path, key_path)?;
        Ok(Arc::new(Certs {
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            current: RwLock::new(Arc::new(pair)),
            stamp: Mutex::new(stamp),
        }))
    }

    /// Reads the files again and, if they hold a valid pair, serves it from
    /// the next handshake on. On error the current pair stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamp = (modified(&self.cert_path), modified(&self.key_path));
        *self
            .stamp
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = stamp;
        let pair = Arc::new(load_pair(&self.cert_path, &self.key_path)?);
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = pair;
        Ok(())
    }

    /// Reloads when either file's modification time changed since the
    /// last load (or attempt). Returns whether it tried.
    pub fn reload_if_changed(&self) -> Option<Result<(), TlsError>> {
        let now = (modified(&self.cert_path), modified(&self.key_path));
        let before = *self
            .stamp
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (now != before).then(|| self.reload())
    }

    /// A rustls server configuration that resolves to the current pair on
    /// every handshake (HTTP/1.1 over ALPN).
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Pair(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        )
    }
}

/// Reloads `certs` on SIGHUP and whenever the files' modification times
/// change (checked every [`RELOAD_POLL`]), until `cancel` fires.
pub async fn watch(certs: Arc<Certs>, cancel: CancellationToken) {
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut poll = tokio::time::interval(RELOAD_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        #[cfg(unix)]
        let hangup = async {
            match hup.as_mut() {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hangup = std::future::pending::<Option<()>>();
        let outcome = tokio::select! {
            () = cancel.cancelled() => return,
            _ = hangup => Some(certs.reload()),
            _ = poll.tick() => certs.reload_if_changed(),
        };
        match outcome {
            Some(Ok(())) => {
                tracing::info!(cert = %certs.cert_path.display(), "TLS certificate reloaded")
            }
            Some(Err(e)) => {
                tracing::error!(error = %e, "TLS certificate not reloaded; keeping the current one")
            }
            None => {}
        }
    }
}

/// A listener that yields connections whose TLS handshake completed.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `tcp` and runs handshakes with `config` on their own
    /// tasks. Dropping the listener stops accepting and closes the socket.
    pub fn new(
        tcp: TcpListener,
        config: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(accept_loop(tcp, TlsAcceptor::from(config), tx));
        Ok(TlsListener { ready, local })
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let limit = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let permit = tokio::select! {
            () = tx.closed() => return,
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let (stream, addr) = tokio::select! {
            () = tx.closed() => return,
            r = tcp.accept() => match r {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off (as
                    // axum's own listener does) instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Small frames go out at once (see `serve`'s TCP_NODELAY note).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        let (acceptor, tx) = (acceptor.clone(), tx.clone());
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = tx.send((tls, addr)).await;
                }
                Ok(Err(e)) => tracing::debug!(%addr, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%addr, "TLS handshake timed out"),
            }
        });
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept loop only ends once this receiver is gone.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// The peer address of a TLS connection, for `ConnectInfo` on a
/// [`TlsListener`] (the plain listener gives `ConnectInfo<SocketAddr>`):
/// what per-address limits are keyed by. See [`peer_ip`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

/// The client's IP address as the listener saw it (plain or TLS), if the
/// router was served with connect info (`serve` always is; a router called
/// directly in a test is not).
pub fn peer_ip(ext: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    use axum::extract::ConnectInfo;
    ext.get::<ConnectInfo<PeerAddr>>()
        .map(|c| c.0 .0.ip())
        .or_else(|| ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()))
}
