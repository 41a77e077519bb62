//! The log as a product: a foreign payload never wedges a channel, and
//! `switchboard export` / `verify` detect every kind of tampering.

use crate::harness::{Nats, Server};

/// One non-envelope payload published to a channel subject (by anyone who
/// can reach NATS) made every later `POST /v1/messages` to that channel
/// answer 500 forever: the append path decoded the head's body to learn the
/// channel's sequence. Now the sequence travels in a header and the foreign
/// message is quarantined (skipped, never a position of the channel).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_payload_at_the_head_does_not_wedge_the_channel() {
    let nats = Nats::start();
    let mut s = Server::start(&nats);
    let api = s.api();
    let ws = api.workspace("Acme").await;
    let (_, ada) = api.user(&ws, "ada", "member").await;
    let ch = api.channel(&ada, "general", false).await;
    let first = api.send(&ada, &ch, "before").await.expect(201);
    let seq = first["seq"].as_u64().expect("seq");

    let client = async_nats::connect(nats.url()).await.expect("nats");
    let js = async_nats::jetstream::new(client);
    js.publish(format!("sb.{ws}.ch.{ch}"), "not an envelope".into())
        .await
        .expect("publish")
        .await
        .expect("stored");

    for (i, text) in ["after one", "after two"].iter().enumerate() {
        let m = api.send(&ada, &ch, text).await.expect(201);
        assert_eq!(m["seq"].as_u64(), Some(seq + 1 + i as u64), "{m}");
    }
    // A restarted server (no cached head) appends after it as well.
    js.publish(format!("sb.{ws}.ch.{ch}"), vec![0xff, 0x01, 0x02].into())
        .await
        .expect("publish")
        .await
        .expect("stored");
    s.restart();
    let api = s.api();
    let m = api.send(&ada, &ch, "after restart").await.expect(201);
    assert_eq!(m["seq"].as_u64(), Some(seq + 3), "{m}");
    api.wait_head(&ada, &ch, seq + 3).await;
    let page = api
        .get(
            &format!("/v1/channels/{ch}/messages?after_seq=0&limit=100"),
            &ada,
        )
        .await
        .expect(200);
    let texts: Vec<_> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        texts,
        ["before", "after one", "after two", "after restart"],
        "{texts:?}"
    );
}
