//! `switchboard`: one binary, thin. Subcommands: `serve` (gateway +
//! projectors, optionally a local nats-server), `admin` (offline workspace
//! and user creation), `rebuild` (replay the log into fresh read models and
//! compare checksums). The load generators are `switchboard-bench`, a
//! separate binary (`bench/`), so the shipped binary ships only the server.

mod config;
mod export;
mod nats;
#[cfg(feature = "otlp")]
mod otlp;
mod rebuild;

use anyhow::{Context, Result};
use axum::serve::ListenerExt;
use clap::{Args, CommandFactory, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Duration;
use switchboard_core::secret::token_hash;
use switchboard_gateway::limits::{self, Limit, RateLimits};
use switchboard_gateway::search::SearchConfig;
use switchboard_gateway::{app, Platform};
use switchboard_streams::{connect, Log, LogConfig};

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Event-sourced team messaging on NATS JetStream"
)]
struct Cli {
    /// Log lines as text (the default) or as one JSON object per line.
    /// Lines written while a request is handled carry its request id.
    #[arg(long, global = true, env = "SWITCHBOARD_LOG_FORMAT", default_value = "text",
          value_parser = ["text", "json"])]
    log_format: String,
    /// Export traces (spans, one per request with its id) over OTLP/HTTP to
    /// this collector URL (`http://127.0.0.1:4318`). Needs a build with
    /// `--features otlp`.
    #[arg(long, global = true, env = "SWITCHBOARD_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start: the size of the `serve` variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API and all projectors.
    Serve(ServeArgs),
    /// Create workspaces and users without the HTTP API; prints JSON.
    Admin {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Replay the log into fresh read models and print a checksum per read
    /// model, compared with the live read models at the same log position.
    Rebuild(rebuild::RebuildArgs),
    /// Rebuild the OpenSearch index from the log: replay it into a fresh
    /// local search model, empty the OpenSearch indexes, send every
    /// document, then the checkpoint (needs the `opensearch` feature).
    ReindexSearch(rebuild::ReindexSearchArgs),
    /// Export a workspace's events (or one channel's) as hash-chained JSON
    /// lines plus a manifest; continues an export already in --out.
    Export(export::ExportArgs),
    /// Verify an export directory: names the first altered, removed,
    /// inserted, reordered or truncated line, or an edited manifest.
    Verify(export::VerifyArgs),
    /// Check every subject's hash chain of a workspace in the log itself
    /// (`prev_digest`, `channel_seq`): names each forged, removed or
    /// foreign event by subject and stream sequence.
    VerifyLog(export::VerifyLogArgs),
}

/// Where the log and read models are.
#[derive(Args, Clone)]
pub struct Common {
    /// Directory of the read models (and of the local nats-server's store).
    #[arg(
        long,
        global = true,
        env = "SWITCHBOARD_DATA",
        default_value = "./data"
    )]
    pub data: PathBuf,
    /// NATS URL (`nats://user:password@host:port` to send credentials).
    /// Without it a local nats-server is used: the one a running `serve`
    /// started on --data, or one started for this command, with
    /// authorization on (README "Replay credentials").
    #[arg(long, global = true, env = "NATS_URL")]
    pub nats: Option<String>,
    /// JetStream stream that holds the log.
    #[arg(long, env = "SWITCHBOARD_STREAM", default_value = "SB")]
    pub stream: String,
    /// JetStream de-duplication window for client_msg_id, in milliseconds.
    #[arg(
        long,
        env = "SWITCHBOARD_DUPLICATE_WINDOW_MS",
        default_value_t = 120_000
    )]
    pub duplicate_window_ms: u64,
    /// How long an append waits for JetStream's ack, in milliseconds.
    #[arg(
        long,
        env = "SWITCHBOARD_APPEND_ACK_TIMEOUT_MS",
        default_value_t = 5_000
    )]
    pub append_ack_timeout_ms: u64,
    /// After an ack did not come, how long an append may spend finding out
    /// whether it was stored before answering 503 "outcome unknown", in
    /// milliseconds (see README, "503 means what it says").
    #[arg(
        long,
        env = "SWITCHBOARD_APPEND_RECONCILE_MS",
        default_value_t = 10_000
    )]
    pub append_reconcile_ms: u64,
    /// Length of a content key's slot, in seconds: message texts are
    /// sealed under one key per (channel, author, slot), and erasure
    /// destroys whole slots (README, "Retention, legal hold and erasure").
    #[arg(long, env = "SWITCHBOARD_KEY_PERIOD_SECS", default_value_t = 86_400)]
    pub key_period_secs: u64,
}

impl Common {
    pub fn log_config(&self) -> LogConfig {
        LogConfig {
            stream: self.stream.clone(),
            duplicate_window: Duration::from_millis(self.duplicate_window_ms.max(100)),
            ack_timeout: Duration::from_millis(self.append_ack_timeout_ms.max(100)),
            reconcile_timeout: Duration::from_millis(self.append_reconcile_ms),
            key_period_ms: i64::try_from(self.key_period_secs.clamp(1, 366 * 86_400))
                .unwrap_or(86_400)
                * 1000,
            ..LogConfig::default()
        }
    }

    /// Connects to the log, starting a local nats-server if needed.
    pub async fn open_log(&self, reuse_running: bool) -> Result<(Log, Option<nats::LocalNats>)> {
        self.open_log_as(reuse_running, false).await
    }

    /// [`Common::open_log`]; with `existing`, the log stream is opened as
    /// it is (never created or reconfigured: the tools that only read it).
    pub async fn open_log_as(
        &self,
        reuse_running: bool,
        existing: bool,
    ) -> Result<(Log, Option<nats::LocalNats>)> {
        let (url, local) = match &self.nats {
            Some(url) => (url.clone(), None),
            None => match nats::running(&self.data).filter(|_| reuse_running) {
                Some(url) => (nats::platform_url(&self.data, &url)?, None),
                None => {
                    let local = nats::LocalNats::start(&self.data, &self.stream).await?;
                    (nats::platform_url(&self.data, &local.url)?, Some(local))
                }
            },
        };
        let nats = tokio::time::timeout(Duration::from_secs(30), connect(&url))
            .await
            .with_context(|| {
                format!(
                    "connecting to NATS at {} timed out",
                    config::redact_userinfo(&url)
                )
            })?
            .with_context(|| format!("connecting to NATS at {}", config::redact_userinfo(&url)))?;
        let log = if existing {
            Log::open_existing(nats, self.log_config()).await
        } else {
            Log::open(nats, self.log_config()).await
        }
        .context("opening the JetStream log stream")?;
        if let Some(local) = &local {
            // Replay streams of credentials issued while no server ran
            // (README "Replay credentials"); they catch up on their own.
            if let Err(e) = nats::ensure_replay_streams(&self.data, &local.url, &self.stream).await
            {
                tracing::warn!(error = %format!("{e:#}"), "setting up the replay streams");
            }
        }
        Ok((log, local))
    }
}

#[derive(Args)]
struct ServeArgs {
    /// A TOML file of settings (keys are these flags' names: `listen`,
    /// `limit-posts`, …). Flags and environment variables override it.
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
    /// The search backend: `fts5` (embedded, the default) or `opensearch`
    /// (needs --opensearch-url and a build with `--features opensearch`).
    #[arg(long = "search", env = "SWITCHBOARD_SEARCH", default_value = "fts5",
          value_parser = ["fts5", "opensearch"])]
    search: String,
    /// OpenSearch's URL (`http://localhost:9200`), for `--search opensearch`.
    #[arg(long, env = "SWITCHBOARD_OPENSEARCH_URL")]
    opensearch_url: Option<String>,
    /// Address of the HTTP listener.
    #[arg(long, env = "SWITCHBOARD_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Real-time heartbeat interval (ms); a connection silent for two is
    /// closed, and presence expires after three.
    #[arg(long, env = "SWITCHBOARD_HEARTBEAT_MS", default_value_t = 15_000)]
    heartbeat_ms: u64,
    /// Frames a real-time connection may have queued before it is resynced.
    #[arg(long, env = "SWITCHBOARD_WS_QUEUE", default_value_t = 512)]
    ws_queue: usize,
    /// Largest file upload, in bytes (default 25 MiB).
    #[arg(long, env = "SWITCHBOARD_MAX_FILE_BYTES",
          default_value_t = switchboard_gateway::commands::files::DEFAULT_MAX_FILE_BYTES)]
    max_file_bytes: u64,
    /// Seconds an upload may stay attached to no message before it is
    /// deleted (default 24 h).
    #[arg(
        long,
        env = "SWITCHBOARD_UNATTACHED_FILE_TTL_SECS",
        default_value_t = 86_400
    )]
    unattached_file_ttl_secs: u64,
    /// Allow push webhooks to loopback, private and link-local addresses
    /// (refused by default).
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_ALLOW_PRIVATE")]
    webhook_allow_private: bool,
    /// Seconds a failing push webhook is retried before the notification is
    /// dead-lettered (default 1 h).
    #[arg(
        long,
        env = "SWITCHBOARD_PUSH_RETRY_FOR_SECS",
        default_value_t = 3600.0
    )]
    push_retry_for_secs: f64,
    /// Failed attempts after which a notification is dead-lettered.
    #[arg(long, env = "SWITCHBOARD_PUSH_MAX_ATTEMPTS", default_value_t = 50)]
    push_max_attempts: u32,
    /// First push retry delay in ms (doubling per failure, with jitter).
    #[arg(long, env = "SWITCHBOARD_PUSH_BACKOFF_MS", default_value_t = 1000)]
    push_backoff_ms: u64,
    /// Longest push retry delay in ms (default 5 min).
    #[arg(
        long,
        env = "SWITCHBOARD_PUSH_BACKOFF_MAX_MS",
        default_value_t = 300_000
    )]
    push_backoff_max_ms: u64,
    /// A webhook POST without an answer after this many ms has failed
    /// (1 to 10000: it must end well inside the job's 15 s ack window, or
    /// another worker could take the job while the POST is in flight).
    #[arg(
        long,
        env = "SWITCHBOARD_PUSH_TIMEOUT_MS",
        default_value_t = 5000,
        value_parser = clap::value_parser!(u64).range(1..=10_000)
    )]
    push_timeout_ms: u64,
    /// Seconds `serve` waits after SIGTERM (or Ctrl-C) for the requests it
    /// had accepted to be answered; then it stops anyway (see README,
    /// "Graceful shutdown").
    #[arg(
        long = "drain-timeout",
        env = "SWITCHBOARD_DRAIN_TIMEOUT_SECS",
        default_value_t = 20.0
    )]
    drain_timeout_secs: f64,
    /// Seconds between signed head checkpoints (one per workspace whose
    /// heads moved, on `sb.<W>.checkpoint`; the key is
    /// `<data>/keys/checkpoint.ed25519`). 0: none.
    #[arg(
        long = "checkpoint-interval",
        env = "SWITCHBOARD_CHECKPOINT_INTERVAL_SECS",
        default_value_t = 60.0
    )]
    checkpoint_interval_secs: f64,
    /// Seconds between retention runs (expired messages erased in every
    /// workspace with a retention policy). 0: none (`POST
    /// /v1/admin/retention/run` still runs it).
    #[arg(
        long = "retention-interval",
        env = "SWITCHBOARD_RETENTION_INTERVAL_SECS",
        default_value_t = 3600.0
    )]
    retention_interval_secs: f64,
    /// PEM certificate chain for TLS on the listener (with --tls-key).
    /// Reloaded on SIGHUP and when the file changes.
    #[arg(long, env = "SWITCHBOARD_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "SWITCHBOARD_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    #[command(flatten)]
    limits: LimitArgs,
    /// Serve the read models under --data as they are (e.g. written by
    /// `rebuild --until`): no projector runs, every write and real-time
    /// route answers 403 `read_only`, nothing is appended. Without
    /// --nats, the log's nats-server is the one of the data directory the
    /// models were rebuilt from (`as-of.json`), reused when running.
    #[arg(long, env = "SWITCHBOARD_READ_ONLY")]
    read_only: bool,
    /// Also serve `GET /metrics` here, without a token (for a Prometheus on
    /// a private network). On the API listener `/metrics` needs the
    /// operator token.
    #[arg(long, env = "SWITCHBOARD_METRICS_LISTEN")]
    metrics_listen: Option<String>,
}

/// Rate limits (README "Rate limits"): each `<per_second>:<burst>` or `off`.
#[derive(Args, Clone)]
struct LimitArgs {
    /// `off` turns every rate limit off (the benchmarks do).
    #[arg(long = "rate-limits", env = "SWITCHBOARD_RATE_LIMITS", default_value = "on",
          value_parser = ["on", "off"])]
    rate_limits: String,
    /// Posts per token.
    #[arg(long, env = "SWITCHBOARD_LIMIT_POSTS",
          default_value_t = Limit(Some(limits::DEFAULT_POSTS)))]
    limit_posts: Limit,
    /// Edits, deletes, reactions and pins per token.
    #[arg(long, env = "SWITCHBOARD_LIMIT_EDITS",
          default_value_t = Limit(Some(limits::DEFAULT_EDITS)))]
    limit_edits: Limit,
    /// WebSocket typing frames per user.
    #[arg(long, env = "SWITCHBOARD_LIMIT_TYPING",
          default_value_t = Limit(Some(limits::DEFAULT_TYPING)))]
    limit_typing: Limit,
    /// File uploads per token.
    #[arg(long, env = "SWITCHBOARD_LIMIT_UPLOADS",
          default_value_t = Limit(Some(limits::DEFAULT_UPLOADS)))]
    limit_uploads: Limit,
    /// Real-time tickets issued per token.
    #[arg(long, env = "SWITCHBOARD_LIMIT_TICKETS",
          default_value_t = Limit(Some(limits::DEFAULT_TICKETS)))]
    limit_tickets: Limit,
    /// Frames one WebSocket connection may send; past it: an error frame
    /// and a close.
    #[arg(long, env = "SWITCHBOARD_LIMIT_WS_FRAMES",
          default_value_t = Limit(Some(limits::DEFAULT_WS_FRAMES)))]
    limit_ws_frames: Limit,
}

impl LimitArgs {
    fn config(&self) -> RateLimits {
        RateLimits {
            enabled: self.rate_limits == "on",
            posts: self.limit_posts,
            edits: self.limit_edits,
            typing: self.limit_typing,
            uploads: self.limit_uploads,
            tickets: self.limit_tickets,
            ws_frames: self.limit_ws_frames,
        }
    }
}

#[derive(Subcommand)]
enum AdminAction {
    /// Create a workspace; prints {"id","name"}.
    CreateWorkspace {
        #[arg(long)]
        name: String,
    },
    /// Create a user; prints the user with its token (shown once).
    CreateUser {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        handle: String,
        #[arg(long)]
        display_name: String,
        #[arg(long, default_value = "member")]
        role: String,
    },
    /// Issue (or list, or revoke) NATS credentials that may only replay
    /// one workspace's events (`sb.<W>.>`) from `serve`'s own nats-server,
    /// in a NATS account of the workspace's own holding a copy of them;
    /// prints {"url","user","account","stream","filter","inbox_prefix",…}
    /// (the password is in the URL, shown once). Applied to a running
    /// server at once.
    ReplayCredentials {
        /// The workspace the credential may replay.
        #[arg(long, required_unless_present_any = ["list", "revoke"])]
        workspace: Option<String>,
        /// Also write the JSON to this file (mode 0600).
        #[arg(long)]
        out: Option<PathBuf>,
        /// List the replay users (no passwords), of --workspace if given.
        #[arg(long, conflicts_with_all = ["revoke", "out"])]
        list: bool,
        /// Revoke this replay user: its connections are closed; the last one
        /// of a workspace takes the replay stream and account with it.
        #[arg(long, conflicts_with = "out")]
        revoke: Option<String>,
    },
}

fn main() -> Result<()> {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut cli = Cli::parse_from(&argv);
    let mut settings = String::new();
    if let Command::Serve(args) = &cli.command {
        // flags > env > file > defaults: the file fills only what clap
        // took from a default; then the settings in force, redacted.
        let mut from_file = Default::default();
        let mut argv = argv.clone();
        if let Some(file) = &args.config {
            (argv, from_file) = config::with_file(&Cli::command(), &argv, file)?;
            cli = Cli::parse_from(&argv);
        }
        let mut cmd = Cli::command();
        cmd.build();
        let matches = cmd.clone().get_matches_from(&argv);
        if let (Some(serve), Some(m)) = (
            cmd.find_subcommand("serve"),
            matches.subcommand_matches("serve"),
        ) {
            settings = config::effective(serve, m, &from_file);
        }
    }
    let otlp = init_logging(&cli.log_format, cli.otlp_endpoint.as_deref())?;
    if !settings.is_empty() {
        tracing::info!(settings = %settings, "effective configuration");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let result = rt.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Admin { common, action } => admin(common, action).await,
            Command::Rebuild(args) => rebuild::run(args).await,
            Command::ReindexSearch(args) => rebuild::reindex_search(args).await,
            Command::Export(args) => export::run(args).await,
            Command::Verify(args) => export::verify(args),
            Command::VerifyLog(args) => export::verify_log(args).await,
        }
    });
    // Spans still buffered go out before the process ends.
    #[cfg(feature = "otlp")]
    if let Some(e) = otlp {
        e.shutdown();
    }
    #[cfg(not(feature = "otlp"))]
    let () = otlp.unwrap_or_default();
    result
}

/// The OTLP exporter, when this build has one.
#[cfg(feature = "otlp")]
type Exporter = otlp::Otlp;
#[cfg(not(feature = "otlp"))]
type Exporter = ();

/// Logs to stderr, filtered by `RUST_LOG` (default `info`, NATS client at
/// `warn`). `json`: one object per line with the current span's fields
/// (the request id, method and route of the request being handled). With
/// an OTLP endpoint, spans are also exported (feature `otlp`).
fn init_logging(format: &str, otlp_endpoint: Option<&str>) -> Result<Option<Exporter>> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,async_nats=warn".into());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if format == "json" {
        fmt.json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed()
    } else {
        fmt.boxed()
    };
    #[cfg(feature = "otlp")]
    let (exporter, otel) = match otlp_endpoint {
        Some(url) => {
            let (e, layer) = otlp::Otlp::start(url)?;
            (Some(e), Some(layer))
        }
        None => (None, None),
    };
    #[cfg(not(feature = "otlp"))]
    let (exporter, otel): (Option<Exporter>, Option<tracing_subscriber::layer::Identity>) =
        match otlp_endpoint {
            Some(_) => anyhow::bail!(
                "--otlp-endpoint needs a build with `--features otlp` (cargo build --release --features otlp)"
            ),
            None => (None, None),
        };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .init();
    Ok(exporter)
}

/// The operator token's hash: from SWITCHBOARD_ADMIN_TOKEN, or the one
/// generated on first start (its hash kept in the data dir, the token
/// printed once).
fn operator_token_hash(data: &Path) -> Result<String> {
    if let Ok(t) = std::env::var("SWITCHBOARD_ADMIN_TOKEN") {
        if !t.trim().is_empty() {
            return Ok(token_hash(t.trim()));
        }
    }
    let file = data.join("operator_token.sha256");
    if let Ok(h) = std::fs::read_to_string(&file) {
        eprintln!(
            "operator token: the one printed at first start (hash in {}); set SWITCHBOARD_ADMIN_TOKEN to choose another",
            file.display()
        );
        return Ok(h.trim().to_string());
    }
    let token = switchboard_gateway::commands::new_token();
    std::fs::write(&file, token_hash(&token))
        .with_context(|| format!("writing {}", file.display()))?;
    println!("operator token (shown once): {token}");
    Ok(token_hash(&token))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// How long the projectors get, once the HTTP side has drained, to apply
/// every append this process acknowledged before they stop.
const FLUSH_GRACE: Duration = Duration::from_secs(5);

/// How long the NATS client gets to send what it still buffers (presence
/// going offline, …) before the local nats-server is stopped.
const NATS_FLUSH_GRACE: Duration = Duration::from_secs(2);

fn push_config(args: &ServeArgs) -> switchboard_gateway::push::PushConfig {
    let retry_for = Duration::try_from_secs_f64(args.push_retry_for_secs.max(0.0))
        .unwrap_or(Duration::from_secs(3600));
    switchboard_gateway::push::PushConfig {
        retry_for,
        max_attempts: args.push_max_attempts.max(1),
        backoff_base: Duration::from_millis(args.push_backoff_ms.max(1)),
        backoff_max: Duration::from_millis(args.push_backoff_max_ms.max(args.push_backoff_ms)),
        timeout: Duration::from_millis(args.push_timeout_ms.max(1)),
        allow_private: args.webhook_allow_private,
        ..Default::default()
    }
}

/// How often the metrics recorder drains histogram samples into buckets.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

async fn serve(args: ServeArgs) -> Result<()> {
    if let Err(e) = switchboard_gateway::metrics::install() {
        tracing::warn!(error = %e, "metrics recorder not installed; /metrics will answer 404");
    }
    let data = &args.common.data;
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    let op_hash = operator_token_hash(data)?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(
            switchboard_gateway::tls::Certs::load(cert, key)
                .context("loading the TLS certificate and key")?,
        ),
        _ => None,
    };
    let search = match (args.search.as_str(), &args.opensearch_url) {
        ("opensearch", Some(url)) => SearchConfig::OpenSearch { url: url.clone() },
        ("opensearch", None) => anyhow::bail!("--search opensearch needs --opensearch-url"),
        _ => SearchConfig::Fts5,
    };
    let files_config = switchboard_gateway::commands::files::FilesConfig {
        max_bytes: args.max_file_bytes,
        unattached_ttl: Duration::from_secs(args.unattached_file_ttl_secs),
    };
    let mut live_acl: Option<std::path::PathBuf> = None;
    let (log, local_nats) = if args.read_only {
        // The models' own log: where they were rebuilt from, else the
        // data directory's (reusing a nats-server already running on it).
        let mut common = args.common.clone();
        // Only what `rebuild --until` wrote: every model at one position
        // (a live directory's models each stop where they stopped, and a
        // view mixing them could show what a membership at another moment
        // would hide), nothing else folding into it, and the live
        // directory named, whose accounts decide who may read (below).
        let Some(as_of) = rebuild::read_as_of(data)? else {
            anyhow::bail!(
                "{} has no {}: serve --read-only serves a directory `switchboard rebuild \
                 --until … --out DIR` wrote",
                data.display(),
                rebuild::AS_OF_FILE
            );
        };
        live_acl = Some(as_of.source_data.join("acl.db"));
        {
            if common.nats.is_none() {
                // Never start a nats-server of its own on the live
                // directory: the live `serve` would stop it at its next
                // start, and this one's exit would remove the live
                // server's url file.
                if nats::running(&as_of.source_data).is_none() {
                    anyhow::bail!(
                        "no nats-server is running on {} (the directory the view was rebuilt \
                         from): start its serve, or give --nats",
                        as_of.source_data.display()
                    );
                }
                common.data = as_of.source_data.clone();
            }
            common.stream = as_of.stream.clone();
            println!(
                "read-only: serving {} as of log position {} ({}, --until {})",
                data.display(),
                as_of.position,
                switchboard_core::time::rfc3339_ms(as_of.position_ts_ms),
                as_of.until
            );
        }
        common.open_log_as(true, true).await?
    } else {
        args.common.open_log(false).await?
    };
    let rt = switchboard_gateway::realtime::RealtimeConfig {
        heartbeat: Duration::from_millis(args.heartbeat_ms.max(100)),
        outbound_queue: args.ws_queue.max(1),
        ..Default::default()
    };
    let started = if args.read_only {
        let p = Platform::start_read_only(log, data, Some(op_hash), files_config).await;
        if let (Ok(p), Some(path)) = (&p, &live_acl) {
            if path.exists() {
                let _ = p
                    .commands
                    .live_acl
                    .set(switchboard_projections::Readers::new(path));
            } else {
                println!(
                    "read-only: {} is missing: only the operator token is admitted",
                    path.display()
                );
            }
        }
        p
    } else {
        Platform::start(
            log,
            data,
            Some(op_hash),
            rt,
            files_config,
            Some(push_config(&args)),
            search,
        )
        .await
    };
    let mut platform = started
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("starting projectors")?;
    platform.set_rate_limits(args.limits.config());
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("switchboard listening on {scheme}://{addr}");
    tracing::info!(%addr, tls = tls.is_some(), data = %data.display(), "serving");
    // Graceful shutdown, in this order (README, "Graceful shutdown"):
    // 1. the signal cancels `closing`: the listener stops accepting, every
    //    WebSocket gets a `reconnect` frame then a close 1001, every SSE
    //    response a `reconnect` event then its end, new real-time streams
    //    and `/readyz` answer 503;
    // 2. requests already accepted run to their answer (each sent with
    //    `Connection: close`), for at most --drain-timeout;
    // 3. the projectors apply every append this process acknowledged and
    //    stop between batches (checkpoint committed with the rows);
    // 4. the NATS client flushes, and the child nats-server stops last.
    let closing = platform.closing();
    let stop = closing.clone();
    let drain_timeout = Duration::try_from_secs_f64(args.drain_timeout_secs.max(0.0))
        .unwrap_or(Duration::from_secs(20));
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!(
            "shutting down: no new connections; draining requests in flight (at most {drain_timeout:?})"
        );
        stop.cancel();
    });
    if args.checkpoint_interval_secs > 0.0 {
        let every = Duration::try_from_secs_f64(args.checkpoint_interval_secs.max(0.1))
            .unwrap_or(Duration::from_secs(60));
        let public = switchboard_gateway::checkpoints::spawn(
            platform.commands.log.clone(),
            data,
            every,
            closing.clone(),
        )
        .context("the checkpoint key under <data>/keys/")?;
        println!("checkpoint public key {public}");
        tracing::info!(public_key = %public, ?every, "signed head checkpoints");
    }
    if args.retention_interval_secs > 0.0 && !args.read_only {
        let every = Duration::try_from_secs_f64(args.retention_interval_secs.max(0.1))
            .unwrap_or(Duration::from_secs(3600));
        switchboard_gateway::commands::retention::spawn_retention(platform.commands.clone(), every);
    }
    let upkeep_stop = closing.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(METRICS_UPKEEP);
        loop {
            tokio::select! {
                () = upkeep_stop.cancelled() => break,
                _ = every.tick() => switchboard_gateway::metrics::upkeep(),
            }
        }
    });
    if let Some(at) = &args.metrics_listen {
        let l = tokio::net::TcpListener::bind(at)
            .await
            .with_context(|| format!("binding the metrics listener {at}"))?;
        println!("switchboard metrics on http://{}/metrics", l.local_addr()?);
        let done = closing.clone().cancelled_owned();
        tokio::spawn(async move {
            let served = axum::serve(l, switchboard_gateway::metrics_only())
                .with_graceful_shutdown(done)
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "metrics listener failed");
            }
        });
    }
    let mut state = platform.state();
    state.tls_enabled = tls.is_some();
    let router = app(state);
    let result = match tls {
        Some(certs) => {
            tokio::spawn(switchboard_gateway::tls::watch(
                certs.clone(),
                closing.clone(),
            ));
            let config = certs.server_config().context("TLS configuration")?;
            let listener = switchboard_gateway::tls::TlsListener::new(listener, config)
                .context("TLS listener")?;
            serve_until_drained::<_, PeerAddr>(listener, router, &closing, drain_timeout).await
        }
        None => {
            // Small frames (real-time events, JSON answers) go out at
            // once: with Nagle's algorithm a WebSocket frame can wait
            // ~40 ms for the peer's delayed ACK (seen as p99 stalls in the
            // bench's WebSocket floor).
            let listener = listener.tap_io(|tcp| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "TCP_NODELAY not set");
                }
            });
            serve_until_drained::<_, std::net::SocketAddr>(
                listener,
                router,
                &closing,
                drain_timeout,
            )
            .await
        }
    };
    tracing::info!("HTTP drained; flushing the projectors");
    let client = platform.commands.log.client().clone();
    platform.shutdown(FLUSH_GRACE).await;
    if tokio::time::timeout(NATS_FLUSH_GRACE, client.flush())
        .await
        .is_err()
    {
        tracing::warn!("the NATS client did not flush within {NATS_FLUSH_GRACE:?}");
    }
    if let Some(n) = local_nats {
        n.stop().await;
        tracing::info!("local nats-server stopped");
    }
    tracing::info!("shutdown complete");
    result
}

/// Serves HTTP on `listener` until `closing` fires, then waits for the
/// connections to finish their requests, at most `drain_timeout`.
use axum::extract::connect_info::Connected;
use switchboard_gateway::tls::PeerAddr;

async fn serve_until_drained<L, C>(
    listener: L,
    router: axum::Router,
    closing: &tokio_util::sync::CancellationToken,
    drain_timeout: Duration,
) -> Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
    for<'a> C: Connected<axum::serve::IncomingStream<'a, L>> + Clone + Send + Sync + 'static,
{
    // The peer address is what per-address limits are keyed by
    // (`switchboard_gateway::tls::peer_ip`).
    let service = router.into_make_service_with_connect_info::<C>();
    let server =
        axum::serve(listener, service).with_graceful_shutdown(closing.clone().cancelled_owned());
    let drained = async {
        closing.cancelled().await;
        tokio::time::sleep(drain_timeout).await;
    };
    tokio::select! {
        r = async { server.await } => r.context("HTTP server failed"),
        () = drained => {
            tracing::warn!(
                "requests still in flight {drain_timeout:?} after the shutdown signal; \
                 stopping without their answers"
            );
            Ok(())
        }
    }
}

async fn admin(common: Common, action: AdminAction) -> Result<()> {
    std::fs::create_dir_all(&common.data)?;
    if let AdminAction::ReplayCredentials {
        workspace,
        out,
        list,
        revoke,
    } = action
    {
        return replay_credentials(&common, workspace, out, list, revoke).await;
    }
    let (log, local_nats) = common.open_log(true).await?;
    let platform = Platform::start(
        log,
        &common.data,
        None,
        Default::default(),
        Default::default(),
        None,
        SearchConfig::Fts5,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    platform
        .catch_up(Duration::from_secs(60))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let result = match action {
        AdminAction::CreateWorkspace { name } => platform
            .commands
            .create_workspace(&name)
            .await
            .map(|w| serde_json::json!({"id": w.id, "name": w.name})),
        AdminAction::CreateUser {
            workspace,
            handle,
            display_name,
            role,
        } => platform
            .commands
            .create_user(None, &workspace, &handle, &display_name, Some(&role))
            .await
            .map(|(u, token)| {
                serde_json::json!({
                    "id": u.id, "workspace_id": u.workspace_id, "handle": u.handle,
                    "display_name": u.display_name, "role": u.role, "token": token
                })
            }),
        AdminAction::ReplayCredentials { .. } => unreachable!("handled above"),
    };
    let _ = platform.catch_up(Duration::from_secs(10)).await;
    platform.shutdown(FLUSH_GRACE).await;
    if let Some(n) = local_nats {
        n.stop().await;
    }
    match result {
        Ok(v) => {
            println!("{v}");
            Ok(())
        }
        Err(e) => anyhow::bail!("{}: {}", e.code, e.message),
    }
}

/// `admin replay-credentials` (README "Replay credentials"): a NATS user
/// of `serve`'s own nats-server, in `W`'s replay account, that may only
/// create consumers on the replay stream (the copy of `sb.<W>.>`)
/// filtered inside `sb.<W>.>` and receive on its own inbox.
async fn replay_credentials(
    common: &Common,
    workspace: Option<String>,
    out: Option<PathBuf>,
    list: bool,
    revoke: Option<String>,
) -> Result<()> {
    if common.nats.is_some() {
        anyhow::bail!(
            "with --nats the NATS server is the operator's: give replay users an \
             account of their own with a stream sourcing the workspace, as README \
             \"Replay credentials\" describes, on that server"
        );
    }
    let data = &common.data;
    let mut users = nats::replay_users(data)?;
    if list {
        let listed: Vec<serde_json::Value> = users
            .iter()
            .filter(|u| workspace.as_ref().is_none_or(|w| &u.workspace == w))
            .map(|u| {
                serde_json::json!({"user": u.user, "workspace": u.workspace,
                    "created_ms": u.created_ms})
            })
            .collect();
        println!("{}", serde_json::Value::Array(listed));
        return Ok(());
    }
    if let Some(user) = revoke {
        let Some(gone) = users.iter().find(|u| u.user == user).cloned() else {
            anyhow::bail!("no replay user {user}");
        };
        users.retain(|u| u.user != user);
        let last = !users.iter().any(|u| u.workspace == gone.workspace);
        nats::save_replay_users(data, &users)?;
        // The user goes first (its connections are closed), its account
        // stays until cleaned up.
        let keep = [gone.workspace.clone()];
        let applied = nats::apply_replay_users(data, &keep).await?;
        // What the revoked user left on the server must not outlive it: a
        // consumer of its workspace, pulled on by name through another
        // credential of the same holder (review finding). The last user of
        // a workspace takes the replay stream (the copy of its events) and
        // account with it; otherwise every consumer of the replay stream
        // goes (another replay of that workspace then starts over).
        let stream = nats::configured_stream(data).unwrap_or_else(|| common.stream.clone());
        let (deleted, stream_deleted) = match nats::running(data) {
            Some(url) if applied => {
                match nats::clean_replay_account(data, &url, &stream, &gone.workspace, last).await {
                    Ok(done) => done,
                    Err(e) => {
                        eprintln!("warning: cleaning up the replay account: {e:#}");
                        (0, false)
                    }
                }
            }
            _ => (0, last && nats::remove_replay_store(data, &gone.workspace)?),
        };
        if last {
            nats::apply_replay_users(data, &[]).await?;
        }
        println!(
            "{}",
            serde_json::json!({"revoked": user, "applied_to_running_server": applied,
                "consumers_deleted": deleted, "replay_stream_deleted": stream_deleted})
        );
        return Ok(());
    }
    let Some(workspace) = workspace else {
        anyhow::bail!("--workspace is required");
    };
    if !switchboard_core::ids::is_token(&workspace) {
        anyhow::bail!("--workspace must be a workspace id (letters, digits, '-', '_')");
    }
    let user = format!("replay_{}", &nats::new_password()[..16]);
    let password = nats::new_password();
    users.push(nats::ReplayUser {
        user: user.clone(),
        password: password.clone(),
        workspace: workspace.clone(),
        created_ms: switchboard_gateway::commands::now_ms(),
    });
    nats::save_replay_users(data, &users)?;
    let applied = nats::apply_replay_users(data, &[]).await?;
    let stream = nats::configured_stream(data).unwrap_or_else(|| common.stream.clone());
    let running = nats::running(data);
    // The replay stream is created (or found) and holds the workspace's
    // events as of now before the credential is handed out.
    let replay_stream = match &running {
        Some(url) if applied => {
            let wait = Some(Duration::from_secs(60));
            match nats::ensure_replay_stream(data, url, &stream, &workspace, wait).await {
                Ok(r) => Some(r),
                Err(e) => {
                    // No credential without its stream: the user goes again.
                    users.retain(|u| u.user != user);
                    nats::save_replay_users(data, &users)?;
                    nats::apply_replay_users(data, &[]).await?;
                    return Err(e.context("setting up the replay stream; no credential issued"));
                }
            }
        }
        _ => None,
    };
    let url = running
        .or_else(|| nats::configured_port(data).map(|p| format!("nats://127.0.0.1:{p}")))
        .map(|u| nats::with_credentials(&u, &user, &password));
    let v = serde_json::json!({
        "url": url,
        "user": user,
        "workspace": workspace,
        "account": nats::replay_account(&workspace),
        "stream": stream,
        "filter": switchboard_streams::subjects::workspace_filter(&workspace),
        "inbox_prefix": nats::inbox_prefix(&user),
        "applied_to_running_server": applied,
        "replay_stream_events": replay_stream.map(|r| r.messages),
        "replay_stream_caught_up": replay_stream.map(|r| r.messages >= r.expected),
    });
    let text = serde_json::to_string_pretty(&v)?;
    if let Some(out) = out {
        nats::write_private(&out, &format!("{text}\n"))?;
    }
    println!("{text}");
    if url.is_none() {
        eprintln!(
            "no nats-server was started on {} yet: the user takes effect when `serve` starts there",
            data.display()
        );
    }
    Ok(())
}
