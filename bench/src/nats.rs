//! Which nats-server a benchmark's raw baseline uses: the one given, else
//! the one a `switchboard serve` started on `--data` (so the baseline runs
//! on the server under test's own nats-server), else a scratch one in a
//! temporary directory, killed and removed on drop.

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A throwaway nats-server with JetStream on a free loopback port.
pub struct ScratchNats {
    pub url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl ScratchNats {
    pub async fn start() -> Result<ScratchNats> {
        let dir = tempfile::tempdir().context("creating a temp dir for nats-server")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port")?
            .port();
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nats-server (is it on PATH? see deploy/install-nats.sh)")?;
        let me = ScratchNats {
            url: format!("nats://127.0.0.1:{port}"),
            child,
            _dir: dir,
        };
        let start = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if start.elapsed() > Duration::from_secs(15) {
                bail!("nats-server did not listen on {} within 15 s", me.url);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Ok(me)
    }
}

impl Drop for ScratchNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The URL of the nats-server a `switchboard serve` started on `data` and
/// still runs (it writes `<data>/nats/url` and a pid file).
pub fn started_by_serve(data: &Path) -> Option<String> {
    let dir = data.join("nats");
    let pid: u32 = std::fs::read_to_string(dir.join("nats.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    if !String::from_utf8_lossy(&cmd).contains("nats-server") {
        return None;
    }
    let url = std::fs::read_to_string(dir.join("url")).ok()?;
    let url = url.trim();
    // `serve`'s nats-server runs with authorization: the platform's
    // credentials are beside it.
    match std::fs::read_to_string(dir.join("platform.password")) {
        Ok(pw) => Some(url.replacen("://", &format!("://switchboard:{}@", pw.trim()), 1)),
        Err(_) => Some(url.to_string()),
    }
}

/// Connects to `url`, with the user and password its userinfo names
/// (async-nats ignores userinfo in a URL).
pub async fn connect(url: &str) -> Result<async_nats::Client> {
    let (bare, auth) = switchboard_streams::split_userinfo(url);
    let options = match auth {
        Some((user, password)) => {
            async_nats::ConnectOptions::with_user_and_password(user, password)
        }
        None => async_nats::ConnectOptions::new(),
    };
    Ok(options.connect(bare).await?)
}

/// `given`, else the serve's on `data`, else a scratch server (returned
/// too, so it lives as long as the caller needs it).
pub async fn resolve(given: Option<&str>, data: &Path) -> Result<(String, Option<ScratchNats>)> {
    if let Some(url) = given {
        crate::client::require_loopback(url)?;
        println!("baseline nats-server: {url} (given)");
        return Ok((url.to_string(), None));
    }
    if let Some(url) = started_by_serve(data) {
        crate::client::require_loopback(&url)?;
        println!(
            "baseline nats-server: {} (the server's, from {})",
            switchboard_streams::split_userinfo(&url).0,
            data.display()
        );
        return Ok((url, None));
    }
    let scratch = ScratchNats::start().await?;
    println!("baseline nats-server: {} (scratch)", scratch.url);
    Ok((scratch.url.clone(), Some(scratch)))
}
