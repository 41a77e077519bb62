//! Same-run latency floors for `fanout`: the same connection count, groups
//! and open-loop rate with no Switchboard in the path.
//!
//! - core NATS: one async-nats client per connection, each subscribed to
//!   its group's subject; one publisher. What the gateway's own NATS hop
//!   costs at this load.
//! - WebSocket echo: the same client library (tokio-tungstenite) against a
//!   tiny in-process server on 127.0.0.1 that echoes each frame from the
//!   publisher socket to every socket following that frame's group. What
//!   the WebSocket hop and this load generator's receive side cost.
//!
//! Both stamp their scheduled send time in the payload, like the
//! Switchboard path, so the three latencies are measured the same way.

use crate::client::NO_NAGLE;
use crate::fleet::{expected, followers, stamp, Fleet, PathRun};
use crate::schedule::{open_loop, Schedule};
use anyhow::{bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Shape of a fan-out run.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub connections: usize,
    pub groups: usize,
    pub rate: f64,
    pub duration: Duration,
    pub max_in_flight: usize,
    /// A drain ends after this long without a delivery.
    pub quiet: Duration,
}

/// Sets up connections in parallel, this many at a time.
const CONNECT_PARALLEL: usize = 16;

pub async fn nats(url: &str, shape: Shape) -> Result<PathRun> {
    crate::client::require_loopback(url)?;
    let epoch = Instant::now();
    let tag = format!("{}_{}", std::process::id(), epoch.elapsed().as_nanos());
    let subject = move |g: usize| format!("sbfloor.{tag}.{g}");
    let groups = shape.groups.max(1);
    let subs: Vec<_> = futures_util::stream::iter(0..shape.connections)
        .map(|i| {
            let subject = subject(i % groups);
            async move {
                let client = crate::nats::connect(url).await?;
                let sub = client.subscribe(subject).await?;
                // The SUB is on the server before anything is published.
                client.flush().await?;
                Ok::<_, anyhow::Error>((client, sub))
            }
        })
        .buffered(CONNECT_PARALLEL)
        .collect()
        .await;
    let mut fleet = Fleet::new(epoch);
    for s in subs {
        let (client, mut sub) = s.context("NATS floor subscriber")?;
        let (mut tally, stop) = fleet.tally();
        fleet.push(tokio::spawn(async move {
            let _client = client;
            // Registered once, not per message (see `fanout`).
            let stopped = stop.cancelled();
            tokio::pin!(stopped);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    m = sub.next() => match m {
                        Some(m) => {
                            tally.record(std::str::from_utf8(&m.payload).unwrap_or(""));
                        }
                        None => {
                            tally.received.failed += 1;
                            break;
                        }
                    },
                }
            }
            tally.received
        }));
    }
    let publisher = crate::nats::connect(url).await.with_context(|| {
        format!(
            "connecting to NATS at {}",
            switchboard_streams::split_userinfo(url).0
        )
    })?;
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..groups).map(|_| AtomicU64::new(0)).collect());
    let out = open_loop(
        Schedule::new(Instant::now(), shape.rate, shape.duration),
        shape.max_in_flight,
        |n, due| {
            let g = n as usize % groups;
            let (p, sent, subj) = (publisher.clone(), sent.clone(), subject(g));
            let payload = stamp(epoch, due);
            async move {
                let ok = p.publish(subj, payload.into()).await.is_ok();
                if ok {
                    sent[g].fetch_add(1, Ordering::Relaxed);
                }
                ok
            }
        },
    )
    .await?;
    publisher.flush().await.context("flushing the publisher")?;
    let want = expected(&sent, &followers(shape.connections, groups));
    fleet.drain(want, shape.quiet).await;
    let delivered = fleet.delivered();
    let got = fleet.finish().await;
    Ok(PathRun::new(out, want, delivered, got))
}

/// The in-process echo server: group → the queues of the sockets following it.
type Groups = Arc<Mutex<Vec<Vec<mpsc::Sender<Message>>>>>;

/// Frames a follower may have queued before the echo server drops (and the
/// floor then reports missing deliveries).
const ECHO_QUEUE: usize = 4096;

struct EchoServer {
    addr: SocketAddr,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl EchoServer {
    async fn start(groups: usize) -> Result<EchoServer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the echo server")?;
        let addr = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let hub: Groups = Arc::new(Mutex::new(vec![Vec::new(); groups.max(1)]));
        let (c, t) = (cancel.clone(), tracker.clone());
        tracker.spawn(async move {
            loop {
                tokio::select! {
                    _ = c.cancelled() => break,
                    a = listener.accept() => {
                        let Ok((stream, _)) = a else { continue };
                        t.spawn(echo_conn(stream, hub.clone(), c.clone()));
                    }
                }
            }
        });
        Ok(EchoServer {
            addr,
            cancel,
            tracker,
        })
    }

    async fn stop(self) {
        self.cancel.cancel();
        self.tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.tracker.wait()).await;
    }
}

/// One echo-server connection: `sub <g>` makes it follow group `g`
/// (answered `ok`); `<g> <payload>` sends `<payload>` to group `g`.
async fn echo_conn(stream: tokio::net::TcpStream, hub: Groups, cancel: CancellationToken) {
    // Small frames go out at once, as from the gateway's sockets.
    let _ = stream.set_nodelay(true);
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (mut sink, mut frames) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Message>(ECHO_QUEUE);
    let writer_cancel = cancel.clone();
    let writer = tokio::spawn(async move {
        let stopped = writer_cancel.cancelled();
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                m = rx.recv() => match m {
                    Some(m) => if sink.send(m).await.is_err() { break },
                    None => break,
                },
            }
        }
    });
    let stopped = cancel.cancelled();
    tokio::pin!(stopped);
    loop {
        let frame = tokio::select! {
            _ = &mut stopped => break,
            f = frames.next() => f,
        };
        let Some(Ok(Message::Text(t))) = frame else {
            if matches!(frame, Some(Ok(_))) {
                continue;
            }
            break;
        };
        let Some((head, rest)) = t.as_str().split_once(' ') else {
            continue;
        };
        if head == "sub" {
            if let Ok(g) = rest.parse::<usize>() {
                if let Some(group) = hub
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get_mut(g)
                {
                    group.push(tx.clone());
                }
                let _ = tx.send(Message::text("ok")).await;
            }
        } else if let Ok(g) = head.parse::<usize>() {
            let msg = Message::text(rest);
            let hub = hub
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for follower in hub.get(g).into_iter().flatten() {
                let _ = follower.try_send(msg.clone());
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}

pub async fn websocket(shape: Shape) -> Result<PathRun> {
    let groups = shape.groups.max(1);
    let server = EchoServer::start(groups).await?;
    let url = format!("ws://{}/", server.addr);
    let epoch = Instant::now();
    let socks: Vec<_> = futures_util::stream::iter(0..shape.connections)
        .map(|i| {
            let url = url.clone();
            async move {
                let (mut sock, _) =
                    tokio_tungstenite::connect_async_with_config(url, None, NO_NAGLE).await?;
                sock.send(Message::text(format!("sub {}", i % groups)))
                    .await?;
                match tokio::time::timeout(Duration::from_secs(5), sock.next()).await {
                    Ok(Some(Ok(Message::Text(t)))) if t.as_str() == "ok" => Ok(sock),
                    other => bail!("echo server did not acknowledge: {other:?}"),
                }
            }
        })
        .buffered(CONNECT_PARALLEL)
        .collect()
        .await;
    let mut fleet = Fleet::new(epoch);
    for s in socks {
        let mut sock = s.context("WebSocket floor connection")?;
        let (mut tally, stop) = fleet.tally();
        fleet.push(tokio::spawn(async move {
            let stopped = stop.cancelled();
            tokio::pin!(stopped);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    m = sock.next() => match m {
                        Some(Ok(Message::Text(t))) => {
                            tally.record(t.as_str());
                        }
                        Some(Ok(_)) => {}
                        _ => {
                            tally.received.failed += 1;
                            break;
                        }
                    },
                }
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), sock.close(None)).await;
            tally.received
        }));
    }
    let (mut publisher, _) =
        tokio_tungstenite::connect_async_with_config(url.as_str(), None, NO_NAGLE)
            .await
            .context("echo publisher")?;
    let (tx, mut rx) = mpsc::channel::<String>(ECHO_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if publisher.send(Message::text(frame)).await.is_err() {
                return false;
            }
        }
        let _ = publisher.close(None).await;
        true
    });
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..groups).map(|_| AtomicU64::new(0)).collect());
    let out = open_loop(
        Schedule::new(Instant::now(), shape.rate, shape.duration),
        shape.max_in_flight,
        |n, due| {
            let g = n as usize % groups;
            let (tx, sent) = (tx.clone(), sent.clone());
            let frame = format!("{g} {}", stamp(epoch, due));
            async move {
                let ok = tx.send(frame).await.is_ok();
                if ok {
                    sent[g].fetch_add(1, Ordering::Relaxed);
                }
                ok
            }
        },
    )
    .await?;
    drop(tx);
    let _ = writer.await;
    let want = expected(&sent, &followers(shape.connections, groups));
    fleet.drain(want, shape.quiet).await;
    let delivered = fleet.delivered();
    let got = fleet.finish().await;
    server.stop().await;
    Ok(PathRun::new(out, want, delivered, got))
}
