//! Durable state: sessions, their messages and wills survive a restart on the same data
//! directory (a graceful stop here; `crash.rs` kills the process).

use crate::common::*;
use junction_codec_mqtt::{Packet, ProtocolVersion, QoS as RawQoS};
use std::collections::BTreeSet;

/// A v5 client that keeps its session for ten minutes.
fn persistent(addr: std::net::SocketAddr, id: &str, clean_start: bool) -> v5::MqttOptions {
    let mut o = v5::options(addr, id);
    o.set_clean_start(clean_start);
    o.set_session_expiry_interval(Some(600));
    o
}

/// A raw MQTT 5 connection keeping its session `expiry` seconds, with a QoS 1 will
/// delayed by `delay` seconds.
async fn with_will(
    addr: std::net::SocketAddr,
    id: &str,
    expiry: u32,
    delay: u32,
    topic: &str,
    payload: &'static [u8],
) -> Raw {
    let v5 = ProtocolVersion::V5;
    let mut c = Raw::connect(addr, v5).await;
    let mut connect = pk::connect(v5, id, false, 60);
    connect.properties.session_expiry_interval = Some(expiry);
    connect.will = Some(junction_codec_mqtt::LastWill {
        topic: topic.into(),
        payload: bytes::Bytes::from_static(payload),
        qos: RawQoS::AtLeastOnce,
        retain: false,
        properties: junction_codec_mqtt::WillProperties {
            delay_interval: Some(delay),
            ..Default::default()
        },
    });
    c.handshake(connect).await;
    c
}

/// Wait until the broker has seen client `id` go.
async fn offline(s: &TestServer, id: &str) {
    eventually(&format!("{id} offline"), || {
        s.broker().lookup(id).is_some_and(|c| !c.is_online())
    })
    .await;
}

async fn publish_and_wait(c: &mut v5::Client, topic: &str, qos: v5::QoS, body: String) {
    c.client.publish(topic, qos, false, body).await.unwrap();
    match qos {
        v5::QoS::AtLeastOnce => {
            c.wait_for("PUBACK", |p| matches!(p, v5::Packet::PubAck(_)))
                .await;
        }
        v5::QoS::ExactlyOnce => {
            c.wait_for("PUBCOMP", |p| matches!(p, v5::Packet::PubComp(_)))
                .await;
        }
        v5::QoS::AtMostOnce => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_and_queued_messages_survive_a_restart() {
    let dir = fresh_data_dir();
    let mut s = TestServer::start_at(&dir, "").await;
    let mut sub = v5::connect(persistent(s.tcp, "durable-sub", true)).await;
    sub.subscribe("dur/one/#", v5::QoS::AtLeastOnce).await;
    sub.subscribe("dur/two/#", v5::QoS::ExactlyOnce).await;
    sub.client.disconnect().await.unwrap();
    drop(sub);
    offline(&s, "durable-sub").await;
    let mut publisher = v5::simple(s.tcp, "durable-pub").await;
    for i in 0..5 {
        publish_and_wait(
            &mut publisher,
            "dur/one/a",
            v5::QoS::AtLeastOnce,
            format!("q1-{i}"),
        )
        .await;
        publish_and_wait(
            &mut publisher,
            "dur/two/b",
            v5::QoS::ExactlyOnce,
            format!("q2-{i}"),
        )
        .await;
    }
    drop(publisher);
    s.stop().await;

    let s = TestServer::start_at(&dir, "").await;
    // The subscriptions are back in the router before the client returns.
    let mut publisher = v5::simple(s.tcp, "durable-pub-2").await;
    publish_and_wait(
        &mut publisher,
        "dur/one/c",
        v5::QoS::AtLeastOnce,
        "after".into(),
    )
    .await;
    let mut sub = v5::connect(persistent(s.tcp, "durable-sub", false)).await;
    assert!(sub.connack.session_present, "the session was restored");
    let mut got = Vec::new();
    for _ in 0..11 {
        let p = sub.publish_in().await;
        got.push((
            p.qos as u8,
            String::from_utf8_lossy(&p.payload).into_owned(),
        ));
    }
    let mut want: Vec<(u8, String)> = (0..5)
        .flat_map(|i| [(1, format!("q1-{i}")), (2, format!("q2-{i}"))])
        .collect();
    want.push((1, "after".into()));
    // Each topic keeps its order; both queues arrive complete.
    for qos in [1u8, 2] {
        let g: Vec<_> = got.iter().filter(|m| m.0 == qos).collect();
        let w: Vec<_> = want.iter().filter(|m| m.0 == qos).collect();
        assert_eq!(g, w);
    }
    assert!(sub.maybe_publish(QUIET).await.is_none(), "nothing twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_delivery_is_resent_with_dup_after_a_restart() {
    let dir = fresh_data_dir();
    let mut s = TestServer::start_at(&dir, "").await;
    let v5 = ProtocolVersion::V5;
    let mut c = Raw::connect(s.tcp, v5).await;
    let mut connect = pk::connect(v5, "raw-durable", true, 60);
    connect.properties.session_expiry_interval = Some(600);
    c.handshake(connect.clone()).await;
    assert_eq!(
        c.subscribe(pk::subscribe(1, "inflight/t", RawQoS::AtLeastOnce))
            .await,
        vec![1]
    );
    let publisher = v5::simple(s.tcp, "inflight-pub").await;
    publisher
        .client
        .publish("inflight/t", v5::QoS::AtLeastOnce, false, "unacked")
        .await
        .unwrap();
    let first = c.next_publish().await.expect("the delivery");
    assert!(!first.dup);
    // Not acknowledged. The batched commit takes it to the file within the interval.
    s.server.as_ref().unwrap().persist_now().unwrap();
    drop(c);
    drop(publisher);
    s.stop().await;

    let s = TestServer::start_at(&dir, "").await;
    let mut c = Raw::connect(s.tcp, v5).await;
    connect.clean_start = false;
    let ack = c.handshake(connect).await;
    assert!(ack.session_present);
    let again = c.next_publish().await.expect("the resend");
    assert!(again.dup, "a resend carries DUP");
    assert_eq!(again.packet_id, first.packet_id, "with the same packet id");
    assert_eq!(&again.payload[..], b"unacked");
    c.send(&Packet::PubAck(pk::ack(again.packet_id.unwrap())))
        .await;
    assert!(c.next_publish_within(QUIET).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_start_removes_the_stored_session() {
    let dir = fresh_data_dir();
    let mut s = TestServer::start_at(&dir, "").await;
    let mut sub = v5::connect(persistent(s.tcp, "forget-me", true)).await;
    sub.subscribe("forget/#", v5::QoS::AtLeastOnce).await;
    drop(sub);
    s.server.as_ref().unwrap().persist_now().unwrap();
    let stored = |s: &TestServer| -> BTreeSet<String> {
        s.server
            .as_ref()
            .unwrap()
            .store()
            .list_sessions()
            .unwrap()
            .into_iter()
            .map(|r| r.client_id)
            .collect()
    };
    assert!(stored(&s).contains("forget-me"));
    // A clean start with no expiry ends the old session; its record goes with it.
    let c = v5::simple(s.tcp, "forget-me").await;
    assert!(!c.connack.session_present);
    drop(c);
    eventually("the stored session is removed", || {
        s.server.as_ref().unwrap().persist_now().unwrap();
        !stored(&s).contains("forget-me")
    })
    .await;
    s.stop().await;
    let s = TestServer::start_at(&dir, "").await;
    assert!(s.broker().lookup("forget-me").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_expired_while_the_broker_was_down_is_not_restored() {
    let dir = fresh_data_dir();
    let mut s = TestServer::start_at(&dir, "").await;
    let mut o = v5::options(s.tcp, "short-lived");
    o.set_clean_start(false);
    o.set_session_expiry_interval(Some(1));
    let mut c = v5::connect(o).await;
    c.subscribe("short/#", v5::QoS::AtLeastOnce).await;
    c.client.disconnect().await.unwrap();
    drop(c);
    offline(&s, "short-lived").await;
    s.stop().await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let s = TestServer::start_at(&dir, "").await;
    assert!(s.broker().lookup("short-lived").is_none());
    assert!(s
        .server
        .as_ref()
        .unwrap()
        .store()
        .get_session("", "short-lived")
        .unwrap()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_will_survives_a_restart_and_is_published_when_due() {
    let dir = fresh_data_dir();
    let mut s = TestServer::start_at(&dir, "").await;
    let c = with_will(s.tcp, "will-durable", 600, 2, "wills/durable", b"gone").await;
    // The connection drops without DISCONNECT: the will is due in 2 s.
    drop(c);
    offline(&s, "will-durable").await;
    s.stop().await;

    let s = TestServer::start_at(&dir, "").await;
    let mut watcher = v5::simple(s.tcp, "will-watcher").await;
    watcher.subscribe("wills/#", v5::QoS::AtLeastOnce).await;
    let p = watcher.publish_in().await;
    assert_eq!(p.topic, "wills/durable");
    assert_eq!(&p.payload[..], b"gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqttsn_session_survives_a_restart() {
    use crate::gateways::sn::Sn;
    use junction_codec_mqttsn::{Flags, Message};
    let connect = |clean| Message::Connect {
        flags: Flags {
            clean_session: clean,
            ..Flags::default()
        },
        protocol_id: 1,
        duration: 60,
        client_id: "sn-durable".into(),
    };
    let gw_of = |s: &TestServer| {
        s.server
            .as_ref()
            .unwrap()
            .local_addr("mqttsn:udp:default")
            .unwrap()
    };
    let dir = fresh_data_dir();
    let mut s = TestServer::start_at(&dir, "").await;
    let mut sn = Sn::new(gw_of(&s)).await;
    sn.send(connect(false)).await;
    assert!(matches!(sn.recv().await, Message::ConnAck { .. }));
    sn.subscribe_short(b"sd").await;
    sn.send(Message::Disconnect { duration: None }).await;
    assert!(matches!(sn.recv().await, Message::Disconnect { .. }));
    s.stop().await;

    let s = TestServer::start_at(&dir, "").await;
    assert!(
        s.broker().lookup_in("mqttsn", "sn-durable").is_some(),
        "the MQTT-SN session is back"
    );
    // Published while the client is away: it waits in the restored session.
    let mut publisher = v5::simple(s.tcp, "sn-durable-pub").await;
    publish_and_wait(&mut publisher, "sd", v5::QoS::AtLeastOnce, "kept".into()).await;
    sn.retarget(gw_of(&s));
    sn.send(connect(false)).await;
    let mut got = None;
    for _ in 0..3 {
        if let Message::Publish { data, .. } = sn.recv().await {
            got = Some(data);
            break;
        }
    }
    assert_eq!(got.as_deref(), Some(&b"kept"[..]));
}

/// Steady load of short-lived persistent sessions, each left with a queued message:
/// 100,000 sessions and their 100,000 messages expire and leave the data file, whose
/// size stops growing once the load is steady. Driven through the broker's own session
/// calls (what every connection makes) to keep the test to seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_sessions_and_messages_leave_the_file_and_it_stops_growing() {
    use junction_broker::{Close, OpenSession};
    use junction_session::{SessionLimits, SubOptions};
    const WAVES: usize = 12;
    const PER_WAVE: usize = 10_000;
    let dir = fresh_data_dir();
    let s = TestServer::start_at(&dir, "").await;
    let server = s.server.as_ref().unwrap();
    let broker = s.broker().clone();
    let file = dir.join("junction.redb");
    let started = std::time::Instant::now();
    let mut sizes = Vec::new();
    let (mut sessions_gone, mut messages_gone) = (0usize, 0usize);
    for wave in 0..WAVES {
        for i in 0..PER_WAVE {
            let (kick, _rx) = tokio::sync::oneshot::channel();
            let conn_id = broker.next_conn_id();
            let id = format!("soak-{wave}-{i}");
            let opened = broker.open_session(OpenSession {
                namespace: Default::default(),
                client_id: id.as_str().into(),
                clean_start: true,
                expiry_interval_secs: 2,
                limits: SessionLimits::default(),
                conn_id,
                kick,
            });
            let sub = SubOptions {
                qos: junction_types::QoS::AtLeastOnce,
                ..SubOptions::default()
            };
            broker
                .subscribe(&opened.cell, &format!("soak/{id}"), sub)
                .unwrap();
            broker.close_session(
                &opened.cell,
                conn_id,
                Close {
                    expiry_interval_secs: 2,
                    will: None,
                },
            );
            let mut m = junction_broker::system_message(format!("soak/{id}"), "x", false);
            m.qos = junction_types::QoS::AtLeastOnce;
            m.from = "soak".into();
            assert_eq!(broker.publish(m), 1);
            if i % 1000 == 999 {
                // Written while it lives (the commit thread would do the same).
                server.persist_now().unwrap();
                let rec = server.store().get_session("", &id).unwrap();
                assert_eq!(rec.map(|r| r.queued.len()), Some(1), "{id} is stored");
            }
        }
        // Let the wave expire (2 s), persist the removals, and sweep twice: unreferenced
        // messages go on the second sweep (what the broker's sweeper does every minute).
        eventually("the wave expires", || broker.session_count() == 0).await;
        server.persist_now().unwrap();
        let (a, b) = (server.sweep_now().unwrap(), server.sweep_now().unwrap());
        sessions_gone += a.sessions + b.sessions;
        messages_gone += a.messages + b.messages;
        assert!(server.store().list_sessions().unwrap().is_empty());
        sizes.push(std::fs::metadata(&file).unwrap().len());
    }
    // Every message left the file; the sessions left through the broker's expiry (their
    // records deleted by the persister) rather than the store's sweep.
    assert_eq!(messages_gone, WAVES * PER_WAVE, "messages swept");
    assert_eq!(
        sessions_gone, 0,
        "records were removed when their sessions expired"
    );
    assert_eq!(server.store().message_count().unwrap(), 0);
    // redb grows the file in steps and gives pages back when it can: the size moves
    // within a band. Without reuse of freed pages every wave would add its own share:
    // after 12 waves the file would be 4× its size after 3. Reused, it stays within a
    // band set by the live data: at most twice the size of the first three waves.
    let early = *sizes[..3].iter().max().unwrap();
    let most = *sizes.iter().max().unwrap();
    eprintln!(
        "{WAVES} waves in {:?}; file sizes {sizes:?}",
        started.elapsed()
    );
    assert!(
        most <= 2 * early,
        "the file grew from {early} (3 waves) to {most} bytes under a steady load: {sizes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_data_file_stops_the_start_naming_the_file() {
    let dir = fresh_data_dir();
    let mut s = TestServer::start_at(&dir, "").await;
    let mut c = v5::connect(persistent(s.tcp, "truncated", true)).await;
    c.subscribe("trunc/#", v5::QoS::AtLeastOnce).await;
    drop(c);
    s.stop().await;
    let file = dir.join("junction.redb");
    let len = std::fs::metadata(&file).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    let err = junction::Server::start(&test_config(&dir, ""))
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains(&file.display().to_string()), "{msg}");
    // Left as it was for the operator to look at: not reset, not repaired.
    assert_eq!(std::fs::metadata(&file).unwrap().len(), len / 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_will_of_a_session_that_expired_while_down_reaches_a_restored_subscriber() {
    let dir = fresh_data_dir();
    let mut s = TestServer::start_at(&dir, "").await;
    let mut watcher = v5::connect(persistent(s.tcp, "will-reader", true)).await;
    watcher
        .subscribe("wills/expired", v5::QoS::AtLeastOnce)
        .await;
    watcher.client.disconnect().await.unwrap();
    drop(watcher);
    // The session ends after 1 s, before the will's 30 s delay: the will goes then.
    let c = with_will(
        s.tcp,
        "will-expiring",
        1,
        30,
        "wills/expired",
        b"expired while down",
    )
    .await;
    drop(c);
    eventually("both offline", || {
        ["will-reader", "will-expiring"]
            .iter()
            .all(|id| s.broker().lookup(id).is_some_and(|c| !c.is_online()))
    })
    .await;
    s.stop().await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    let s = TestServer::start_at(&dir, "").await;
    assert!(s.broker().lookup("will-expiring").is_none());
    let mut watcher = v5::connect(persistent(s.tcp, "will-reader", false)).await;
    assert!(watcher.connack.session_present);
    let p = watcher.publish_in().await;
    assert_eq!(&p.payload[..], b"expired while down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_commit_before_ack_a_puback_means_the_message_is_in_the_file() {
    use junction_codec_mqttsn::{Flags, Message, QoS as SnQoS, Topic, TopicIdType};
    // No periodic commit: only the commits made before acknowledging reach the file.
    let s = TestServer::start_with(
        "durable_sessions { commit_before_ack = true, commit_interval = \"1h\" }",
    )
    .await;
    let server = s.server.as_ref().unwrap();
    let mut sub = v5::connect(persistent(s.tcp, "ack-sub", true)).await;
    sub.subscribe("ak", v5::QoS::AtLeastOnce).await;
    sub.client.disconnect().await.unwrap();
    drop(sub);
    offline(&s, "ack-sub").await;
    let queued = || {
        server
            .store()
            .get_session("", "ack-sub")
            .unwrap()
            .map_or(0, |r| r.queued.len())
    };
    // MQTT: once the PUBACK is in, the queued message is committed.
    let mut publisher = v5::simple(s.tcp, "ack-pub").await;
    publish_and_wait(
        &mut publisher,
        "ak",
        v5::QoS::AtLeastOnce,
        "from mqtt".into(),
    )
    .await;
    assert_eq!(queued(), 1);
    // MQTT-SN: the same for its PUBACK (QoS 1, short topic "ak").
    let sn = crate::gateways::sn::Sn::new(server.local_addr("mqttsn:udp:default").unwrap()).await;
    sn.connect("ack-sn").await;
    sn.send(Message::Publish {
        flags: Flags {
            qos: SnQoS::AtLeastOnce,
            topic_id_type: TopicIdType::Short,
            ..Flags::default()
        },
        topic: Topic::Short(*b"ak"),
        msg_id: 7,
        data: bytes::Bytes::from_static(b"from mqtt-sn"),
    })
    .await;
    assert!(matches!(sn.recv().await, Message::PubAck { msg_id: 7, .. }));
    assert_eq!(queued(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_timer_of_an_ended_session_leaves_the_new_sessions_record_alone() {
    let s = TestServer::start().await;
    let server = s.server.as_ref().unwrap();
    let mut o = v5::options(s.tcp, "reborn");
    o.set_clean_start(true);
    o.set_session_expiry_interval(Some(1));
    let mut old = v5::connect(o).await;
    old.subscribe("old/#", v5::QoS::AtLeastOnce).await;
    old.client.disconnect().await.unwrap();
    drop(old);
    offline(&s, "reborn").await;
    // A clean start ends the old session (its expiry timer still runs) and opens a new one.
    let mut new = v5::connect(persistent(s.tcp, "reborn", true)).await;
    new.subscribe("new/#", v5::QoS::AtLeastOnce).await;
    let filters = || -> Vec<String> {
        server.persist_now().unwrap();
        server
            .store()
            .get_session("", "reborn")
            .unwrap()
            .map(|r| r.subscriptions.into_iter().map(|s| s.filter).collect())
            .unwrap_or_default()
    };
    assert_eq!(filters(), vec!["new/#"]);
    // The old session's timer fires and looks at its (ended) session.
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    assert_eq!(
        filters(),
        vec!["new/#"],
        "the live session's record was deleted"
    );
}
