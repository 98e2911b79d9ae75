//! Routing: wildcards, `$SYS`, retained messages, shared subscriptions, queue limits.

use crate::common::*;
use bytes::Bytes;
use junction_codec_mqtt::{reason, Packet, ProtocolVersion, QoS};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

const V5: ProtocolVersion = ProtocolVersion::V5;
const V4: ProtocolVersion = ProtocolVersion::V3_1_1;

// ------------------------------------------------------------------ wildcards

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plus_and_hash_wildcards_route_to_matching_subscribers() {
    let s = TestServer::start().await;
    let cases: [(&str, &[&str]); 4] = [
        ("home/+/temp", &["home/kitchen/temp", "home/bath/temp"]),
        (
            "home/#",
            &["home", "home/kitchen/temp", "home/bath/temp", "home/a/b/c"],
        ),
        ("+", &["home"]),
        ("home/kitchen/temp", &["home/kitchen/temp"]),
    ];
    let mut subs = Vec::new();
    for (i, (filter, _)) in cases.iter().enumerate() {
        let mut c = v4::simple(s.tcp, &format!("wild-{i}")).await;
        c.subscribe(filter, v4::QoS::AtMostOnce).await;
        subs.push(c);
    }
    let publisher = v4::simple(s.tcp, "wild-pub").await;
    let topics = [
        "home",
        "home/kitchen/temp",
        "home/bath/temp",
        "home/a/b/c",
        "other/x",
    ];
    for t in topics {
        publisher
            .client
            .publish(t, v4::QoS::AtMostOnce, false, t.as_bytes().to_vec())
            .await
            .unwrap();
    }
    for ((filter, expected), sub) in cases.iter().zip(subs.iter_mut()) {
        let mut got = HashSet::new();
        for _ in 0..expected.len() {
            got.insert(sub.publish_in().await.topic);
        }
        let want: HashSet<String> = expected.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, want, "filter {filter}");
        assert!(
            sub.maybe_publish(QUIET).await.is_none(),
            "nothing extra for {filter}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_subscriptions_deliver_once_per_subscription() {
    let s = TestServer::start().await;
    let (mut c, _) = Raw::open(s.tcp, V5, "overlap", true).await;
    c.subscribe(pk::subscribe(1, "ov/#", QoS::AtMostOnce)).await;
    c.subscribe(pk::subscribe(2, "ov/+", QoS::AtMostOnce)).await;
    let (mut p, _) = Raw::open(s.tcp, V5, "overlap-pub", true).await;
    p.send(&Packet::Publish(pk::publish(
        "ov/x",
        QoS::AtMostOnce,
        None,
        "x",
    )))
    .await;
    assert!(c.next_publish().await.is_some());
    assert!(c.next_publish().await.is_some());
    assert!(c.next_publish_within(QUIET).await.is_none());
}

// ------------------------------------------------------------------ $SYS

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sys_topics_are_not_matched_by_hash() {
    let s = TestServer::start_with("sys_topics.sys_heartbeat_interval = 100ms").await;
    let mut all = v4::simple(s.tcp, "hash-all").await;
    all.subscribe("#", v4::QoS::AtMostOnce).await;
    let mut plus = v4::simple(s.tcp, "plus-all").await;
    plus.subscribe("+/brokers/#", v4::QoS::AtMostOnce).await;
    let mut sys = v4::simple(s.tcp, "sys-all").await;
    sys.subscribe("$SYS/#", v4::QoS::AtMostOnce).await;
    let p = sys.publish_in().await;
    assert!(p.topic.starts_with("$SYS/brokers/"));
    // Heartbeats keep coming every 100 ms; none reaches `#` or `+/…`.
    assert!(all
        .maybe_publish(Duration::from_millis(400))
        .await
        .is_none());
    assert!(plus.maybe_publish(QUIET).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sys_version_and_uptime_are_published() {
    let s = TestServer::start_with("sys_topics.sys_heartbeat_interval = 100ms").await;
    let mut c = v4::simple(s.tcp, "sys-reader").await;
    c.subscribe("$SYS/brokers/+/version", v4::QoS::AtMostOnce)
        .await;
    let v = c.publish_in().await;
    assert!(v.retain, "version is retained");
    assert_eq!(v.payload, Bytes::from(env!("CARGO_PKG_VERSION")));
    c.subscribe("$SYS/brokers/+/uptime", v4::QoS::AtMostOnce)
        .await;
    let up = c.publish_in().await;
    assert!(std::str::from_utf8(&up.payload)
        .unwrap()
        .parse::<u64>()
        .is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sys_stats_and_metrics_are_published() {
    let s = TestServer::start_with("sys_topics.sys_msg_interval = 100ms").await;
    let mut c = v4::simple(s.tcp, "sys-stats").await;
    c.subscribe(
        "$SYS/brokers/+/stats/connections/count",
        v4::QoS::AtMostOnce,
    )
    .await;
    let p = c.publish_in().await;
    let n: u64 = std::str::from_utf8(&p.payload).unwrap().parse().unwrap();
    assert!(n >= 1);
    c.subscribe(
        "$SYS/brokers/+/metrics/messages/received",
        v4::QoS::AtMostOnce,
    )
    .await;
    c.publish_in().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sys_client_connected_and_disconnected_events() {
    let s = TestServer::start().await;
    let mut w = v4::simple(s.tcp, "sys-watch").await;
    w.subscribe("$SYS/brokers/+/clients/#", v4::QoS::AtMostOnce)
        .await;
    let (mut c, _) = Raw::open(s.tcp, V5, "evented", true).await;
    let p = w.publish_in().await;
    assert!(
        p.topic.ends_with("/clients/evented/connected"),
        "{}",
        p.topic
    );
    let body: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
    assert_eq!(body["clientid"], "evented");
    assert_eq!(body["proto_ver"], 5);
    c.send(&Packet::Disconnect(Default::default())).await;
    let p = w.publish_in().await;
    assert!(
        p.topic.ends_with("/clients/evented/disconnected"),
        "{}",
        p.topic
    );
    let body: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
    assert_eq!(body["reason"], "normal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_cannot_publish_to_sys_topics() {
    let s = TestServer::start().await;
    let mut w = v4::simple(s.tcp, "sys-forge-watch").await;
    w.subscribe("$SYS/forged", v4::QoS::AtMostOnce).await;
    let (mut c, _) = Raw::open(s.tcp, V5, "forger", true).await;
    c.send(&Packet::Publish(pk::publish(
        "$SYS/forged",
        QoS::AtLeastOnce,
        Some(1),
        "x",
    )))
    .await;
    match c.recv().await {
        Some(Packet::PubAck(a)) => assert_eq!(a.reason_code, reason::NOT_AUTHORIZED),
        other => panic!("expected PUBACK 0x87, got {other:?}"),
    }
    assert!(w.maybe_publish(QUIET).await.is_none());
}

// ------------------------------------------------------------------ retained

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_message_is_delivered_to_later_subscribers_with_retain_flag() {
    let s = TestServer::start().await;
    let publisher = v4::simple(s.tcp, "ret-pub").await;
    publisher
        .client
        .publish("ret/a", v4::QoS::AtLeastOnce, true, "A1")
        .await
        .unwrap();
    publisher
        .client
        .publish("ret/a", v4::QoS::AtLeastOnce, true, "A2")
        .await
        .unwrap();
    publisher
        .client
        .publish("ret/b", v4::QoS::AtMostOnce, true, "B")
        .await
        .unwrap();
    // The retained table also holds the broker's own `$SYS` messages: wait for these two.
    eventually("retained stored", || {
        let all = s.broker().retained_messages();
        let has = |t: &str, p: &[u8]| all.iter().any(|m| m.topic == t && &m.payload[..] == p);
        has("ret/a", b"A2") && has("ret/b", b"B")
    })
    .await;
    let mut sub = v4::simple(s.tcp, "ret-sub").await;
    sub.subscribe("ret/+", v4::QoS::AtLeastOnce).await;
    let mut got = HashMap::new();
    for _ in 0..2 {
        let p = sub.publish_in().await;
        assert!(p.retain, "RETAIN=1 on messages sent because of a subscribe");
        got.insert(p.topic.clone(), p.payload.clone());
    }
    assert_eq!(
        got["ret/a"],
        Bytes::from("A2"),
        "the newest retained message replaces"
    );
    assert_eq!(got["ret/b"], Bytes::from("B"));
    assert!(sub.maybe_publish(QUIET).await.is_none());
    // A live publish with retain is forwarded with RETAIN=0 (no retain-as-published).
    publisher
        .client
        .publish("ret/a", v4::QoS::AtMostOnce, true, "A3")
        .await
        .unwrap();
    let p = sub.publish_in().await;
    assert_eq!(p.payload, Bytes::from("A3"));
    assert!(!p.retain);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_retained_payload_clears_the_retained_message() {
    let s = TestServer::start().await;
    let publisher = v4::simple(s.tcp, "clr-pub").await;
    publisher
        .client
        .publish("clr/t", v4::QoS::AtLeastOnce, true, "keep")
        .await
        .unwrap();
    eventually("stored", || retained_has(&s, "clr/t")).await;
    publisher
        .client
        .publish("clr/t", v4::QoS::AtLeastOnce, true, Vec::<u8>::new())
        .await
        .unwrap();
    eventually("cleared", || !retained_has(&s, "clr/t")).await;
    let mut sub = v4::simple(s.tcp, "clr-sub").await;
    sub.subscribe("clr/t", v4::QoS::AtLeastOnce).await;
    assert!(sub.maybe_publish(QUIET).await.is_none());
}

fn retained_has(s: &TestServer, topic: &str) -> bool {
    s.broker()
        .retained_messages()
        .iter()
        .any(|m| &m.topic[..] == topic)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_message_expires_with_its_message_expiry() {
    let s = TestServer::start().await;
    let (mut p, _) = Raw::open(s.tcp, V5, "ret-exp-pub", true).await;
    let mut m = pk::publish("retexp/t", QoS::AtMostOnce, None, "brief");
    m.retain = true;
    m.properties.message_expiry_interval = Some(1);
    p.send(&Packet::Publish(m)).await;
    eventually("stored", || retained_has(&s, "retexp/t")).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (mut c, _) = Raw::open(s.tcp, V5, "ret-exp-sub", true).await;
    c.subscribe(pk::subscribe(1, "retexp/t", QoS::AtMostOnce))
        .await;
    assert!(c.next_publish_within(QUIET).await.is_none());
}

// ------------------------------------------------------------------ shared subscriptions

/// Publish `n` QoS 1 messages numbered 0..n to `topic` from one client.
async fn publish_numbered(s: &TestServer, id: &str, topic: &str, n: usize) {
    let publisher = v5::simple(s.tcp, id).await;
    for i in 0..n {
        publisher
            .client
            .publish(topic, v5::QoS::AtLeastOnce, false, i.to_string())
            .await
            .unwrap();
    }
    // Keep the client alive until everything is acknowledged.
    let mut publisher = publisher;
    let mut acked = 0;
    while acked < n {
        publisher
            .wait_for("PUBACK", |p| matches!(p, v5::Packet::PubAck(_)))
            .await;
        acked += 1;
    }
}

/// Collect numbered messages from members until `total` arrived; returns per-member sets.
async fn collect_members(members: &mut [v5::Client], total: usize) -> Vec<Vec<usize>> {
    let mut per: Vec<Vec<usize>> = vec![Vec::new(); members.len()];
    let mut count = 0;
    let deadline = tokio::time::Instant::now() + WAIT * 3;
    while count < total {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {count} of {total} arrived"
        );
        for (i, m) in members.iter_mut().enumerate() {
            while let Ok(p) = m.events.try_recv() {
                if let v5::Packet::Publish(p) = p {
                    per[i].push(std::str::from_utf8(&p.payload).unwrap().parse().unwrap());
                    count += 1;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Nothing beyond the total (no duplicates still in flight).
    tokio::time::sleep(QUIET).await;
    for (i, m) in members.iter_mut().enumerate() {
        while let Ok(p) = m.events.try_recv() {
            if let v5::Packet::Publish(p) = p {
                per[i].push(std::str::from_utf8(&p.payload).unwrap().parse().unwrap());
            }
        }
    }
    per
}

fn assert_exactly_once(per: &[Vec<usize>], n: usize) {
    let mut all: Vec<usize> = per.iter().flatten().copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..n).collect::<Vec<_>>(),
        "every message exactly once"
    );
}

async fn members(s: &TestServer, filter: &str, n: usize, prefix: &str) -> Vec<v5::Client> {
    let mut out = Vec::new();
    for i in 0..n {
        let mut c = v5::simple(s.tcp, &format!("{prefix}-{i}")).await;
        assert_eq!(c.subscribe(filter, v5::QoS::AtLeastOnce).await, vec![1]);
        out.push(c);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_subscription_spreads_1000_messages_over_3_members_without_loss_or_duplicates() {
    let s = TestServer::start().await;
    let mut m = members(&s, "$share/g1/shared/t", 3, "rr").await;
    publish_numbered(&s, "rr-pub", "shared/t", 1000).await;
    let per = collect_members(&mut m, 1000).await;
    assert_exactly_once(&per, 1000);
    for (i, got) in per.iter().enumerate() {
        // round_robin: an even split.
        assert!(
            (333..=334).contains(&got.len()),
            "member {i} got {}",
            got.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_prefix_is_a_shared_subscription() {
    let s = TestServer::start().await;
    let mut m = members(&s, "$queue/q/t", 2, "queue").await;
    publish_numbered(&s, "queue-pub", "q/t", 100).await;
    let per = collect_members(&mut m, 100).await;
    assert_exactly_once(&per, 100);
    assert!(per.iter().all(|p| !p.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_strategy_random_delivers_each_message_once() {
    let s = TestServer::start_with("mqtt.shared_subscription_strategy = random").await;
    let mut m = members(&s, "$share/g/rand/t", 3, "rand").await;
    publish_numbered(&s, "rand-pub", "rand/t", 300).await;
    let per = collect_members(&mut m, 300).await;
    assert_exactly_once(&per, 300);
    assert!(
        per.iter().all(|p| !p.is_empty()),
        "random spreads over members"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_strategy_sticky_keeps_one_member() {
    let s = TestServer::start_with("mqtt.shared_subscription_strategy = sticky").await;
    let mut m = members(&s, "$share/g/sticky/t", 3, "sticky").await;
    publish_numbered(&s, "sticky-pub", "sticky/t", 100).await;
    let per = collect_members(&mut m, 100).await;
    assert_exactly_once(&per, 100);
    assert_eq!(per.iter().filter(|p| !p.is_empty()).count(), 1, "{per:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_strategy_hash_clientid_keeps_a_publisher_on_one_member() {
    let s = TestServer::start_with("mqtt.shared_subscription_strategy = hash_clientid").await;
    let mut m = members(&s, "$share/g/hash/t", 3, "hash").await;
    publish_numbered(&s, "hash-pub-a", "hash/t", 50).await;
    let per = collect_members(&mut m, 50).await;
    assert_exactly_once(&per, 50);
    assert_eq!(per.iter().filter(|p| !p.is_empty()).count(), 1, "{per:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_and_plain_subscribers_each_get_a_copy() {
    let s = TestServer::start().await;
    let mut shared = members(&s, "$share/g/both/t", 2, "both-shared").await;
    let mut plain = v5::simple(s.tcp, "both-plain").await;
    plain.subscribe("both/t", v5::QoS::AtLeastOnce).await;
    publish_numbered(&s, "both-pub", "both/t", 10).await;
    let per = collect_members(&mut shared, 10).await;
    assert_exactly_once(&per, 10);
    for i in 0..10 {
        let p = plain.publish_in().await;
        assert_eq!(p.payload, Bytes::from(i.to_string()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_subscription_skips_members_that_left() {
    let s = TestServer::start().await;
    let mut m = members(&s, "$share/g/leave/t", 3, "leave").await;
    let gone = m.pop().unwrap();
    gone.client.unsubscribe("$share/g/leave/t").await.unwrap();
    let mut gone = gone;
    gone.wait_for("UNSUBACK", |p| matches!(p, v5::Packet::UnsubAck(_)))
        .await;
    publish_numbered(&s, "leave-pub", "leave/t", 60).await;
    let per = collect_members(&mut m, 60).await;
    assert_exactly_once(&per, 60);
    assert!(gone.maybe_publish(QUIET).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_subscriptions_do_not_receive_retained_messages() {
    let s = TestServer::start().await;
    let publisher = v4::simple(s.tcp, "sr-pub").await;
    publisher
        .client
        .publish("sr/t", v4::QoS::AtLeastOnce, true, "r")
        .await
        .unwrap();
    eventually("stored", || retained_has(&s, "sr/t")).await;
    let mut m = members(&s, "$share/g/sr/t", 1, "sr").await;
    assert!(m[0].maybe_publish(QUIET).await.is_none());
}

// ------------------------------------------------------------------ queue limits

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_message_queue_drops_qos0_first_and_counts_dropped() {
    let s = TestServer::start_with("mqtt { max_mqueue_len = 3, max_inflight = 1 }").await;
    let c = pk::connect(V4, "mq-sub", false, 60);
    let mut sub = Raw::connect(s.tcp, V4).await;
    sub.handshake(c.clone()).await;
    sub.subscribe(pk::subscribe(1, "mq/t", QoS::AtLeastOnce))
        .await;
    drop(sub);
    eventually("offline", || {
        s.broker().lookup("mq-sub").is_some_and(|c| !c.is_online())
    })
    .await;
    let (mut p, _) = Raw::open(s.tcp, V4, "mq-pub", true).await;
    p.send(&Packet::Publish(pk::publish(
        "mq/t",
        QoS::AtMostOnce,
        None,
        "q0",
    )))
    .await;
    for (i, m) in ["a", "b", "c"].iter().enumerate() {
        p.send(&Packet::Publish(pk::publish(
            "mq/t",
            QoS::AtLeastOnce,
            Some(i as u16 + 1),
            m,
        )))
        .await;
        p.recv().await;
    }
    eventually("one dropped", || s.metric("messages.dropped") >= 1).await;
    assert!(s.metric("delivery.dropped.queue_full") >= 1);
    let mut sub = Raw::connect(s.tcp, V4).await;
    assert!(sub.handshake(c).await.session_present);
    let mut got = Vec::new();
    for _ in 0..3 {
        let m = sub.next_publish().await.unwrap();
        sub.send(&Packet::PubAck(pk::ack(m.packet_id.unwrap())))
            .await;
        got.push(m.payload);
    }
    assert_eq!(
        got,
        vec![Bytes::from("a"), Bytes::from("b"), Bytes::from("c")]
    );
}

#[tokio::test]
async fn retained_messages_survive_a_restart_and_cleared_ones_stay_cleared() {
    let dir = fresh_data_dir();
    let mut s = TestServer::start_at(&dir, "").await;
    let c = v4::simple(s.tcp, "keeper").await;
    for (topic, body) in [("keep/a", "A"), ("keep/b", "B"), ("keep/b", "")] {
        c.client
            .publish(topic, v4::QoS::AtLeastOnce, true, body)
            .await
            .unwrap();
    }
    eventually("keep/a retained, keep/b cleared", || {
        let all = s.broker().retained_messages();
        s.metric("messages.received") == 3
            && all.iter().any(|m| m.topic == "keep/a")
            && !all.iter().any(|m| m.topic == "keep/b")
    })
    .await;
    drop(c);
    s.stop().await;

    let s = TestServer::start_at(&dir, "").await;
    let mut sub = v4::simple(s.tcp, "reader").await;
    sub.subscribe("keep/#", v4::QoS::AtLeastOnce).await;
    let p = sub.publish_in().await;
    assert_eq!(p.topic, "keep/a");
    assert_eq!(&p.payload[..], b"A");
    assert!(p.retain);
    assert!(
        sub.maybe_publish(QUIET).await.is_none(),
        "keep/b was cleared"
    );
}

#[tokio::test]
async fn a_corrupt_data_file_stops_the_start_naming_the_file() {
    let dir = fresh_data_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("junction.redb");
    std::fs::write(
        &file,
        b"this is not a redb file, just garbage bytes ........",
    )
    .unwrap();
    let config = test_config(&dir, "");
    let err = junction::Server::start(&config).await.unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains(&file.display().to_string()), "{msg}");
    // Nothing was reset: the file is as it was.
    assert_eq!(
        std::fs::read(&file).unwrap(),
        b"this is not a redb file, just garbage bytes ........"
    );
}

#[tokio::test]
async fn retained_messages_are_committed_within_the_commit_interval() {
    // `durable_sessions.commit_interval`: the data file has the message shortly after
    // the publish, without a stop.
    let s = TestServer::start_with("durable_sessions.commit_interval = \"20ms\"").await;
    let c = v4::simple(s.tcp, "committer").await;
    c.client
        .publish("durable/x", v4::QoS::AtLeastOnce, true, "kept")
        .await
        .unwrap();
    let store = s.server.as_ref().unwrap().store().clone();
    eventually("committed retained message", || {
        store
            .get_retained("durable/x")
            .ok()
            .flatten()
            .is_some_and(|m| &m.payload[..] == b"kept")
    })
    .await;
}
