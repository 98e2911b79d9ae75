//! Many clients at once: 500 publishers and 500 subscribers exchange 100,000 QoS 1 messages.

use crate::common::*;
use std::collections::HashSet;
use std::time::Duration;

const PAIRS: usize = 500;
const PER_PUBLISHER: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_clients_exchange_100k_qos1_messages_without_loss() {
    let _ = rlimit::increase_nofile_limit(8192);
    let s = TestServer::start().await;

    // 500 subscribers, one topic each.
    let mut subscribers = Vec::with_capacity(PAIRS);
    for i in 0..PAIRS {
        let mut o = v4::options(s.tcp, &format!("load-sub-{i}"));
        o.set_inflight(100);
        let mut c = v4::connect(o).await;
        c.subscribe(&format!("load/{i}"), v4::QoS::AtLeastOnce)
            .await;
        subscribers.push(c);
    }
    // Each subscriber is drained by its own task that records the sequence numbers.
    let mut counters = Vec::with_capacity(PAIRS);
    for mut c in subscribers {
        counters.push(tokio::spawn(async move {
            let mut seen = HashSet::with_capacity(PER_PUBLISHER);
            let mut dups = 0usize;
            while seen.len() < PER_PUBLISHER {
                match tokio::time::timeout(Duration::from_secs(60), c.events.recv()).await {
                    Ok(Some(v4::Packet::Publish(p))) => {
                        let n: usize = std::str::from_utf8(&p.payload).unwrap().parse().unwrap();
                        if !seen.insert(n) && !p.dup {
                            dups += 1;
                        }
                    }
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
            (seen.len(), dups, c)
        }));
    }

    // 500 publishers, QoS 1, all at once.
    let mut publishers = Vec::with_capacity(PAIRS);
    for i in 0..PAIRS {
        let mut o = v4::options(s.tcp, &format!("load-pub-{i}"));
        o.set_inflight(50);
        publishers.push(v4::connect(o).await);
    }
    let mut senders = Vec::with_capacity(PAIRS);
    for (i, mut p) in publishers.into_iter().enumerate() {
        senders.push(tokio::spawn(async move {
            let topic = format!("load/{i}");
            for n in 0..PER_PUBLISHER {
                p.client
                    .publish(topic.as_str(), v4::QoS::AtLeastOnce, false, n.to_string())
                    .await
                    .unwrap();
            }
            let mut acked = 0;
            while acked < PER_PUBLISHER {
                match tokio::time::timeout(Duration::from_secs(60), p.events.recv()).await {
                    Ok(Some(v4::Packet::PubAck(_))) => acked += 1,
                    Ok(Some(_)) => {}
                    other => panic!("publisher {i}: {acked} acks, then {other:?}"),
                }
            }
            p
        }));
    }
    let mut keep = Vec::new();
    for t in senders {
        keep.push(t.await.unwrap());
    }
    let mut total = 0;
    let mut dups = 0;
    for (i, t) in counters.into_iter().enumerate() {
        let (n, d, c) = t.await.unwrap();
        assert_eq!(
            n, PER_PUBLISHER,
            "subscriber {i} received {n} distinct messages"
        );
        total += n;
        dups += d;
        keep.push(c);
    }
    assert_eq!(total, PAIRS * PER_PUBLISHER);
    assert_eq!(dups, 0, "no duplicates without DUP");
    assert_eq!(s.metric("messages.dropped"), 0);
}
