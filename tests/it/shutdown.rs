//! Graceful shutdown: SIGTERM ends open WebSocket and SSE streams (a close
//! frame 1001 "going away", the end of the event stream) and the process
//! exits cleanly, instead of waiting forever for streams that never end.

use crate::harness::{event_seqs, Nats, Server, Sse, SseEnd, Ws};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_realtime_streams_and_exits_promptly() {
    let nats = Nats::start();
    let mut server = Server::start(&nats);
    let api = server.api();
    let ws_id = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws_id, "ada", "admin").await;
    let ch = api.channel(&ada, "general", false).await;
    api.send(&ada, &ch, "hello").await.expect(201);

    // Both streams are open and delivering.
    let mut ws = Ws::connect(&server.base, &ada).await;
    ws.subscribe(&[(&ch, 0)]).await;
    let frames = ws
        .frames_until(Duration::from_secs(10), |f| f["type"] == "event")
        .await;
    assert_eq!(event_seqs(&frames, &ch), [1], "{frames:?}");
    let mut sse = Sse::connect(&server.base, &ada, &format!("{ch}:0"), None).await;
    let mut got = Vec::new();
    while let Some(ev) = sse.next(Duration::from_secs(10)).await {
        let is_event = ev.data["type"] == "event";
        got.push(ev.data);
        if is_event {
            break;
        }
    }
    assert_eq!(event_seqs(&got, &ch), [1], "{got:?}");

    let start = Instant::now();
    let exited = tokio::task::spawn_blocking(move || server.terminate(Duration::from_secs(15)));
    let (ws_closed, sse_end) = tokio::join!(
        ws.close_code(Duration::from_secs(15)),
        sse.end_within(Duration::from_secs(15))
    );
    let status = exited.await.expect("terminate task");
    let took = start.elapsed();
    println!("exit after SIGTERM in {took:?}: {status:?}, ws {ws_closed:?}, sse {sse_end:?}");
    let status = status.expect("serve exited after SIGTERM (within 15 s)");
    assert!(status.success(), "clean exit: {status:?}");
    assert_eq!(ws_closed, Some(Some(1001)), "a close frame, going away");
    assert_eq!(sse_end, SseEnd::Ended, "the event stream ends cleanly");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}
