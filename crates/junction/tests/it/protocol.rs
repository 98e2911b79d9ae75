//! MQTT protocol behaviour: CONNECT and sessions, QoS flows, keepalive, will, properties,
//! subscribe options, DISCONNECT and takeover.

use crate::common::*;
use bytes::Bytes;
use junction_codec_mqtt::{
    reason, Disconnect, DisconnectProperties, LastWill, Packet, ProtocolVersion, QoS,
    SubscriptionOptions, WillProperties,
};
use std::time::Duration;

const V5: ProtocolVersion = ProtocolVersion::V5;
const V4: ProtocolVersion = ProtocolVersion::V3_1_1;

// ------------------------------------------------------------------ CONNECT

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_accepts_mqtt_3_1_3_1_1_and_5() {
    let s = TestServer::start().await;
    for v in [ProtocolVersion::V3_1, V4, V5] {
        let (_c, ack) = Raw::open(s.tcp, v, &format!("c-{}", v.level()), true).await;
        assert_eq!(ack.reason_code, 0, "{v:?}");
        assert!(!ack.session_present);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_with_username_and_password_is_accepted() {
    let s = TestServer::start().await;
    let mut c = v4::options(s.tcp, "with-creds");
    c.set_credentials("user", "secret");
    let client = v4::connect(c).await;
    assert!(!client.session_present);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_protocol_level_gets_connack_return_code_1() {
    let s = TestServer::start().await;
    let mut r = Raw::connect(s.tcp, V4).await;
    // CONNECT "MQTT" level 6.
    r.send_bytes(&[0x10, 0x0c, 0, 4, b'M', b'Q', b'T', b'T', 6, 2, 0, 60, 0, 0])
        .await;
    match r.recv().await {
        Some(Packet::ConnAck(a)) => assert_eq!(a.reason_code, 1),
        other => panic!("expected CONNACK 1, got {other:?}"),
    }
    assert!(r.closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_client_id_gets_assigned_identifier_in_v5() {
    let s = TestServer::start().await;
    let (_c, ack) = Raw::open(s.tcp, V5, "", true).await;
    assert_eq!(ack.reason_code, 0);
    let id = ack
        .properties
        .assigned_client_identifier
        .expect("assigned client identifier");
    assert!(!id.is_empty());
    assert!(s.broker().lookup(&id).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_client_id_with_persistent_session_is_rejected_in_v311() {
    let s = TestServer::start().await;
    let (mut c, ack) = Raw::open(s.tcp, V4, "", false).await;
    assert_eq!(ack.reason_code, reason::v3_connack::IDENTIFIER_REJECTED);
    assert!(c.closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connack_advertises_server_limits_in_v5() {
    let s = TestServer::start_with(
        "mqtt { max_packet_size = 64KB, max_topic_alias = 10, max_inflight = 7, server_keepalive = 20 }",
    )
    .await;
    let (_c, ack) = Raw::open(s.tcp, V5, "limits", true).await;
    let p = ack.properties;
    assert_eq!(p.maximum_packet_size, Some(64 * 1024));
    assert_eq!(p.topic_alias_maximum, Some(10));
    assert_eq!(p.receive_maximum, Some(7));
    assert_eq!(p.server_keep_alive, Some(20), "server keep alive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_packet_must_be_connect() {
    let s = TestServer::start().await;
    let mut r = Raw::connect(s.tcp, V4).await;
    r.send(&Packet::PingReq).await;
    assert!(r.closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_connect_is_a_protocol_error() {
    let s = TestServer::start().await;
    let (mut c, _) = Raw::open(s.tcp, V5, "twice", true).await;
    c.send(&Packet::Connect(Box::new(pk::connect(
        V5, "twice", true, 60,
    ))))
    .await;
    match c.recv().await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason_code, reason::PROTOCOL_ERROR),
        other => panic!("expected DISCONNECT 0x82, got {other:?}"),
    }
    assert!(c.closed().await);
}

// ------------------------------------------------------------------ sessions

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_start_discards_the_previous_session() {
    let s = TestServer::start().await;
    let mut c = pk::connect(V5, "clean", false, 60);
    c.properties.session_expiry_interval = Some(300);
    let mut r = Raw::connect(s.tcp, V5).await;
    assert!(!r.handshake(c.clone()).await.session_present);
    r.subscribe(pk::subscribe(1, "clean/t", QoS::AtLeastOnce))
        .await;
    drop(r);
    // Resume: session present.
    let mut r = Raw::connect(s.tcp, V5).await;
    assert!(r.handshake(c.clone()).await.session_present);
    drop(r);
    // Clean start: no session, and the old subscription is gone.
    let mut clean = c.clone();
    clean.clean_start = true;
    let mut r = Raw::connect(s.tcp, V5).await;
    assert!(!r.handshake(clean).await.session_present);
    let (mut p, _) = Raw::open(s.tcp, V5, "clean-pub", true).await;
    p.send(&Packet::Publish(pk::publish(
        "clean/t",
        QoS::AtMostOnce,
        None,
        "x",
    )))
    .await;
    assert!(r.next_publish_within(QUIET).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_session_receives_messages_published_while_offline_v311() {
    let s = TestServer::start().await;
    let mut o = v4::options(s.tcp, "offline-v4");
    o.set_clean_session(false);
    let mut sub = v4::connect(o.clone()).await;
    sub.subscribe("offline/v4", v4::QoS::AtLeastOnce).await;
    sub.client.disconnect().await.unwrap();
    drop(sub);
    eventually("session offline", || {
        s.broker()
            .lookup("offline-v4")
            .is_some_and(|c| !c.is_online())
    })
    .await;
    let publisher = v4::simple(s.tcp, "offline-v4-pub").await;
    for i in 0..5 {
        publisher
            .client
            .publish("offline/v4", v4::QoS::AtLeastOnce, false, format!("m{i}"))
            .await
            .unwrap();
    }
    eventually("queued", || {
        s.broker().lookup("offline-v4").is_some_and(|c| {
            let st = c.lock();
            st.session.mqueue_len() + st.session.inflight_len() == 5
        })
    })
    .await;
    let mut sub = v4::connect(o).await;
    assert!(sub.session_present);
    for i in 0..5 {
        let p = sub.publish_in().await;
        assert_eq!(p.payload, Bytes::from(format!("m{i}")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_session_receives_messages_published_while_offline_v5() {
    let s = TestServer::start().await;
    let mut o = v5::options(s.tcp, "offline-v5");
    o.set_clean_start(false);
    o.set_session_expiry_interval(Some(600));
    let mut sub = v5::connect(o.clone()).await;
    sub.subscribe("offline/v5", v5::QoS::ExactlyOnce).await;
    sub.client.disconnect().await.unwrap();
    drop(sub);
    eventually("session offline", || {
        s.broker()
            .lookup("offline-v5")
            .is_some_and(|c| !c.is_online())
    })
    .await;
    let publisher = v5::simple(s.tcp, "offline-v5-pub").await;
    for i in 0..3 {
        publisher
            .client
            .publish("offline/v5", v5::QoS::ExactlyOnce, false, format!("m{i}"))
            .await
            .unwrap();
    }
    eventually("queued", || {
        s.broker().lookup("offline-v5").is_some_and(|c| {
            let st = c.lock();
            st.session.mqueue_len() + st.session.inflight_len() == 3
        })
    })
    .await;
    let mut sub = v5::connect(o).await;
    assert!(sub.connack.session_present);
    for i in 0..3 {
        let p = sub.publish_in().await;
        assert_eq!(p.payload, Bytes::from(format!("m{i}")));
        assert_eq!(p.qos, v5::QoS::ExactlyOnce);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_expires_after_its_expiry_interval() {
    let s = TestServer::start().await;
    let mut c = pk::connect(V5, "expiring", false, 60);
    c.properties.session_expiry_interval = Some(1);
    let mut r = Raw::connect(s.tcp, V5).await;
    r.handshake(c.clone()).await;
    drop(r);
    eventually("session removed after expiry", || {
        s.broker().lookup("expiring").is_none()
    })
    .await;
    let mut r = Raw::connect(s.tcp, V5).await;
    assert!(!r.handshake(c).await.session_present);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_expiry_zero_ends_session_at_disconnect() {
    let s = TestServer::start().await;
    let (mut r, _) = Raw::open(s.tcp, V5, "ephemeral", false).await;
    r.send(&Packet::Disconnect(Disconnect::default())).await;
    assert!(r.closed().await);
    eventually("session removed", || {
        s.broker().lookup("ephemeral").is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_may_set_session_expiry_when_connect_had_one() {
    let s = TestServer::start().await;
    let mut c = pk::connect(V5, "extend", false, 60);
    c.properties.session_expiry_interval = Some(1);
    let mut r = Raw::connect(s.tcp, V5).await;
    r.handshake(c.clone()).await;
    r.send(&Packet::Disconnect(Disconnect {
        reason_code: 0,
        properties: DisconnectProperties {
            session_expiry_interval: Some(600),
            ..Default::default()
        },
    }))
    .await;
    assert!(r.closed().await);
    let cell = s.broker().lookup("extend").expect("session kept");
    assert_eq!(cell.lock().session.expiry_interval_secs, 600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_setting_expiry_after_zero_is_a_protocol_error() {
    let s = TestServer::start().await;
    let (mut r, _) = Raw::open(s.tcp, V5, "zero-then-some", true).await;
    r.send(&Packet::Disconnect(Disconnect {
        reason_code: 0,
        properties: DisconnectProperties {
            session_expiry_interval: Some(60),
            ..Default::default()
        },
    }))
    .await;
    match r.recv().await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason_code, reason::PROTOCOL_ERROR),
        other => panic!("expected DISCONNECT 0x82, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_takeover_disconnects_the_old_connection_with_0x8e() {
    let s = TestServer::start().await;
    let mut c = pk::connect(V5, "taken", false, 60);
    c.properties.session_expiry_interval = Some(300);
    let mut old = Raw::connect(s.tcp, V5).await;
    old.handshake(c.clone()).await;
    old.subscribe(pk::subscribe(1, "takeover/t", QoS::AtLeastOnce))
        .await;
    let mut new = Raw::connect(s.tcp, V5).await;
    let ack = new.handshake(c).await;
    assert!(ack.session_present, "the new connection takes the session");
    match old.recv().await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason_code, reason::SESSION_TAKEN_OVER),
        other => panic!("expected DISCONNECT 0x8E, got {other:?}"),
    }
    assert!(old.closed().await);
    // The subscription moved with the session.
    let (mut p, _) = Raw::open(s.tcp, V5, "takeover-pub", true).await;
    p.send(&Packet::Publish(pk::publish(
        "takeover/t",
        QoS::AtMostOnce,
        None,
        "after",
    )))
    .await;
    let got = new
        .next_publish()
        .await
        .expect("delivered to the new connection");
    assert_eq!(got.payload, Bytes::from("after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_takeover_of_a_v311_client_closes_the_old_socket() {
    let s = TestServer::start().await;
    let (mut old, _) = Raw::open(s.tcp, V4, "taken-v4", true).await;
    let (_new, ack) = Raw::open(s.tcp, V4, "taken-v4", true).await;
    assert_eq!(ack.reason_code, 0);
    assert!(old.closed().await);
}

// ------------------------------------------------------------------ QoS flows

async fn pubsub_roundtrip_v4(qos_pub: v4::QoS, qos_sub: v4::QoS, expect: v4::QoS) {
    let s = TestServer::start().await;
    let mut sub = v4::simple(s.tcp, "qos-sub").await;
    sub.subscribe("qos/t", qos_sub).await;
    let publisher = v4::simple(s.tcp, "qos-pub").await;
    publisher
        .client
        .publish("qos/t", qos_pub, false, "payload")
        .await
        .unwrap();
    let p = sub.publish_in().await;
    assert_eq!(p.topic, "qos/t");
    assert_eq!(p.payload, Bytes::from("payload"));
    assert_eq!(
        p.qos, expect,
        "delivered at min(publish QoS, subscription QoS)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos0_publish_and_deliver_v311() {
    pubsub_roundtrip_v4(
        v4::QoS::AtMostOnce,
        v4::QoS::ExactlyOnce,
        v4::QoS::AtMostOnce,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos1_publish_and_deliver_v311() {
    pubsub_roundtrip_v4(
        v4::QoS::AtLeastOnce,
        v4::QoS::AtLeastOnce,
        v4::QoS::AtLeastOnce,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_publish_and_deliver_v311() {
    pubsub_roundtrip_v4(
        v4::QoS::ExactlyOnce,
        v4::QoS::ExactlyOnce,
        v4::QoS::ExactlyOnce,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_qos_is_downgraded_to_the_subscription_qos() {
    pubsub_roundtrip_v4(
        v4::QoS::ExactlyOnce,
        v4::QoS::AtLeastOnce,
        v4::QoS::AtLeastOnce,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos0_1_2_publish_and_deliver_v5() {
    let s = TestServer::start().await;
    let mut sub = v5::simple(s.tcp, "qos5-sub").await;
    sub.subscribe("qos5/#", v5::QoS::ExactlyOnce).await;
    let publisher = v5::simple(s.tcp, "qos5-pub").await;
    for (i, q) in [
        v5::QoS::AtMostOnce,
        v5::QoS::AtLeastOnce,
        v5::QoS::ExactlyOnce,
    ]
    .into_iter()
    .enumerate()
    {
        publisher
            .client
            .publish(format!("qos5/{i}"), q, false, format!("m{i}"))
            .await
            .unwrap();
        let p = sub.publish_in().await;
        assert_eq!(p.qos, q);
        assert_eq!(p.payload, Bytes::from(format!("m{i}")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos1_publish_is_acknowledged_with_no_matching_subscribers_in_v5() {
    let s = TestServer::start().await;
    let (mut p, _) = Raw::open(s.tcp, V5, "nomatch", true).await;
    p.send(&Packet::Publish(pk::publish(
        "nobody/here",
        QoS::AtLeastOnce,
        Some(9),
        "x",
    )))
    .await;
    match p.recv().await {
        Some(Packet::PubAck(a)) => {
            assert_eq!(a.packet_id, 9);
            assert_eq!(a.reason_code, reason::NO_MATCHING_SUBSCRIBERS);
        }
        other => panic!("expected PUBACK, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inflight_window_follows_client_receive_maximum() {
    let s = TestServer::start().await;
    let mut c = pk::connect(V5, "rm-sub", true, 60);
    c.properties.receive_maximum = Some(2);
    let mut sub = Raw::connect(s.tcp, V5).await;
    sub.handshake(c).await;
    sub.subscribe(pk::subscribe(1, "rm/t", QoS::AtLeastOnce))
        .await;
    let (mut p, _) = Raw::open(s.tcp, V5, "rm-pub", true).await;
    for i in 0..5u16 {
        p.send(&Packet::Publish(pk::publish(
            "rm/t",
            QoS::AtLeastOnce,
            Some(i + 1),
            &format!("m{i}"),
        )))
        .await;
    }
    let first = sub.next_publish().await.unwrap();
    let second = sub.next_publish().await.unwrap();
    assert!(
        sub.next_publish_within(QUIET).await.is_none(),
        "no more than Receive Maximum unacknowledged"
    );
    sub.send(&Packet::PubAck(pk::ack(first.packet_id.unwrap())))
        .await;
    let third = sub.next_publish().await.unwrap();
    assert_eq!(third.payload, Bytes::from("m2"));
    assert_ne!(third.packet_id, second.packet_id);
    assert!(sub.next_publish_within(QUIET).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_qos1_is_resent_with_dup_on_session_resume() {
    let s = TestServer::start().await;
    let mut c = pk::connect(V5, "dup-sub", false, 60);
    c.properties.session_expiry_interval = Some(300);
    let mut sub = Raw::connect(s.tcp, V5).await;
    sub.handshake(c.clone()).await;
    sub.subscribe(pk::subscribe(1, "dup/t", QoS::AtLeastOnce))
        .await;
    let (mut p, _) = Raw::open(s.tcp, V5, "dup-pub", true).await;
    p.send(&Packet::Publish(pk::publish(
        "dup/t",
        QoS::AtLeastOnce,
        Some(1),
        "once",
    )))
    .await;
    let first = sub.next_publish().await.unwrap();
    assert!(!first.dup);
    drop(sub); // no PUBACK
    let mut sub = Raw::connect(s.tcp, V5).await;
    assert!(sub.handshake(c).await.session_present);
    let again = sub.next_publish().await.expect("resent on resume");
    assert!(again.dup, "resend carries DUP=1");
    assert_eq!(again.packet_id, first.packet_id);
    assert_eq!(again.payload, Bytes::from("once"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_qos1_is_resent_after_retry_interval_while_connected() {
    let s = TestServer::start_with("mqtt.retry_interval = 200ms").await;
    let (mut sub, _) = Raw::open(s.tcp, V4, "retry-sub", true).await;
    sub.subscribe(pk::subscribe(1, "retry/t", QoS::AtLeastOnce))
        .await;
    let (mut p, _) = Raw::open(s.tcp, V4, "retry-pub", true).await;
    p.send(&Packet::Publish(pk::publish(
        "retry/t",
        QoS::AtLeastOnce,
        Some(1),
        "r",
    )))
    .await;
    let first = sub.next_publish().await.unwrap();
    let again = sub
        .next_publish()
        .await
        .expect("resent after retry_interval");
    assert!(again.dup);
    assert_eq!(again.packet_id, first.packet_id);
    sub.send(&Packet::PubAck(pk::ack(first.packet_id.unwrap())))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_inbound_is_exactly_once_across_a_reconnect_before_pubrel() {
    let s = TestServer::start().await;
    let (mut sub, _) = Raw::open(s.tcp, V4, "eo-in-sub", true).await;
    sub.subscribe(pk::subscribe(1, "eo/in", QoS::ExactlyOnce))
        .await;

    let mut c = pk::connect(V5, "eo-in-pub", false, 60);
    c.properties.session_expiry_interval = Some(300);
    let mut p = Raw::connect(s.tcp, V5).await;
    p.handshake(c.clone()).await;
    p.send(&Packet::Publish(pk::publish(
        "eo/in",
        QoS::ExactlyOnce,
        Some(42),
        "exactly",
    )))
    .await;
    match p.recv().await {
        Some(Packet::PubRec(a)) => assert_eq!(a.packet_id, 42),
        other => panic!("expected PUBREC, got {other:?}"),
    }
    drop(p); // connection lost before PUBREL
    let mut p = Raw::connect(s.tcp, V5).await;
    assert!(p.handshake(c).await.session_present);
    // The client resends the PUBLISH with DUP, then releases it.
    let mut again = pk::publish("eo/in", QoS::ExactlyOnce, Some(42), "exactly");
    again.dup = true;
    p.send(&Packet::Publish(again)).await;
    match p.recv().await {
        Some(Packet::PubRec(a)) => assert_eq!(a.packet_id, 42),
        other => panic!("expected PUBREC, got {other:?}"),
    }
    p.send(&Packet::PubRel(pk::ack(42))).await;
    match p.recv().await {
        Some(Packet::PubComp(a)) => assert_eq!((a.packet_id, a.reason_code), (42, 0)),
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
    let got = sub.next_publish().await.unwrap();
    assert_eq!(got.payload, Bytes::from("exactly"));
    sub.send(&Packet::PubRec(pk::ack(got.packet_id.unwrap())))
        .await;
    assert!(
        sub.next_publish_within(QUIET).await.is_none(),
        "the subscriber gets exactly one copy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_outbound_resumes_with_pubrel_after_reconnect() {
    let s = TestServer::start().await;
    let mut c = pk::connect(V5, "eo-out-sub", false, 60);
    c.properties.session_expiry_interval = Some(300);
    let mut sub = Raw::connect(s.tcp, V5).await;
    sub.handshake(c.clone()).await;
    sub.subscribe(pk::subscribe(1, "eo/out", QoS::ExactlyOnce))
        .await;
    let (mut p, _) = Raw::open(s.tcp, V5, "eo-out-pub", true).await;
    p.send(&Packet::Publish(pk::publish(
        "eo/out",
        QoS::ExactlyOnce,
        Some(1),
        "x",
    )))
    .await;
    let got = sub.next_publish().await.unwrap();
    let id = got.packet_id.unwrap();
    sub.send(&Packet::PubRec(pk::ack(id))).await;
    match sub.recv().await {
        Some(Packet::PubRel(a)) => assert_eq!(a.packet_id, id),
        other => panic!("expected PUBREL, got {other:?}"),
    }
    drop(sub); // lost before PUBCOMP
    let mut sub = Raw::connect(s.tcp, V5).await;
    assert!(sub.handshake(c).await.session_present);
    match sub.recv().await {
        Some(Packet::PubRel(a)) => assert_eq!(a.packet_id, id, "PUBREL resent, not PUBLISH"),
        other => panic!("expected PUBREL, got {other:?}"),
    }
    sub.send(&Packet::PubComp(pk::ack(id))).await;
    assert!(sub.next_publish_within(QUIET).await.is_none());
    eventually("flow completed", || {
        s.broker()
            .lookup("eo-out-sub")
            .is_some_and(|c| c.lock().session.inflight_len() == 0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubrel_for_unknown_packet_id_gets_pubcomp_0x92() {
    let s = TestServer::start().await;
    let (mut p, _) = Raw::open(s.tcp, V5, "unknown-rel", true).await;
    p.send(&Packet::PubRel(pk::ack(77))).await;
    match p.recv().await {
        Some(Packet::PubComp(a)) => {
            assert_eq!(a.packet_id, 77);
            assert_eq!(a.reason_code, reason::PACKET_IDENTIFIER_NOT_FOUND);
        }
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
}

// ------------------------------------------------------------------ keepalive

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_is_disconnected_after_one_and_a_half_keepalives() {
    let s = TestServer::start().await;
    let mut r = Raw::connect(s.tcp, V5).await;
    r.handshake(pk::connect(V5, "sleepy", true, 1)).await;
    let started = tokio::time::Instant::now();
    match r.recv().await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason_code, reason::KEEP_ALIVE_TIMEOUT),
        other => panic!("expected DISCONNECT 0x8D, got {other:?}"),
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1400),
        "not before 1.5 × keepalive: {waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pingreq_gets_pingresp_and_keeps_the_connection() {
    let s = TestServer::start().await;
    let mut r = Raw::connect(s.tcp, V4).await;
    r.handshake(pk::connect(V4, "pinger", true, 1)).await;
    for _ in 0..3 {
        r.send(&Packet::PingReq).await;
        assert_eq!(r.recv().await, Some(Packet::PingResp));
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    assert!(s.broker().lookup("pinger").is_some_and(|c| c.is_online()));
}

// ------------------------------------------------------------------ will

fn will(topic: &str, payload: &str, delay: Option<u32>) -> LastWill {
    LastWill {
        topic: topic.into(),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: WillProperties {
            delay_interval: delay,
            content_type: Some("text/plain".into()),
            user_properties: vec![("k".into(), "v".into())],
            ..Default::default()
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_is_published_when_the_connection_drops() {
    let s = TestServer::start().await;
    let mut watcher = v5::simple(s.tcp, "will-watch").await;
    watcher.subscribe("will/#", v5::QoS::AtLeastOnce).await;
    let mut c = pk::connect(V5, "will-dies", true, 60);
    c.will = Some(will("will/dies", "gone", None));
    let mut r = Raw::connect(s.tcp, V5).await;
    r.handshake(c).await;
    drop(r);
    let p = watcher.publish_in().await;
    assert_eq!(p.topic, Bytes::from("will/dies"));
    assert_eq!(p.payload, Bytes::from("gone"));
    let props = p.properties.expect("will properties passed through");
    assert_eq!(props.content_type.as_deref(), Some("text/plain"));
    assert_eq!(
        props.user_properties,
        vec![("k".to_string(), "v".to_string())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_is_not_published_after_normal_disconnect() {
    let s = TestServer::start().await;
    let mut watcher = v4::simple(s.tcp, "will-watch2").await;
    watcher.subscribe("will/#", v4::QoS::AtLeastOnce).await;
    let mut c = pk::connect(V4, "will-polite", true, 60);
    c.will = Some(will("will/polite", "gone", None));
    let mut r = Raw::connect(s.tcp, V4).await;
    r.handshake(c).await;
    r.send(&Packet::Disconnect(Disconnect::default())).await;
    assert!(r.closed().await);
    assert!(watcher.maybe_publish(QUIET).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_with_will_message_publishes_the_will() {
    let s = TestServer::start().await;
    let mut watcher = v5::simple(s.tcp, "will-watch3").await;
    watcher.subscribe("will/#", v5::QoS::AtLeastOnce).await;
    let mut c = pk::connect(V5, "will-0x04", true, 60);
    c.will = Some(will("will/0x04", "asked", None));
    let mut r = Raw::connect(s.tcp, V5).await;
    r.handshake(c).await;
    r.send(&Packet::Disconnect(Disconnect {
        reason_code: reason::DISCONNECT_WITH_WILL,
        properties: Default::default(),
    }))
    .await;
    let p = watcher.publish_in().await;
    assert_eq!(p.payload, Bytes::from("asked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_delay_publishes_after_the_delay() {
    let s = TestServer::start().await;
    let mut watcher = v5::simple(s.tcp, "will-watch4").await;
    watcher.subscribe("will/#", v5::QoS::AtLeastOnce).await;
    let mut c = pk::connect(V5, "will-delayed", false, 60);
    c.properties.session_expiry_interval = Some(60);
    c.will = Some(will("will/delayed", "late", Some(1)));
    let mut r = Raw::connect(s.tcp, V5).await;
    r.handshake(c).await;
    let dropped_at = tokio::time::Instant::now();
    drop(r);
    let p = watcher.publish_in().await;
    assert_eq!(p.payload, Bytes::from("late"));
    assert!(dropped_at.elapsed() >= Duration::from_millis(900));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_delay_is_cancelled_by_a_reconnect() {
    let s = TestServer::start().await;
    let mut watcher = v5::simple(s.tcp, "will-watch5").await;
    watcher.subscribe("will/#", v5::QoS::AtLeastOnce).await;
    let mut c = pk::connect(V5, "will-back", false, 60);
    c.properties.session_expiry_interval = Some(60);
    c.will = Some(will("will/back", "should not", Some(2)));
    let mut r = Raw::connect(s.tcp, V5).await;
    r.handshake(c.clone()).await;
    drop(r);
    eventually("offline", || {
        s.broker()
            .lookup("will-back")
            .is_some_and(|c| !c.is_online())
    })
    .await;
    let mut back = pk::connect(V5, "will-back", false, 60);
    back.properties.session_expiry_interval = Some(60);
    let mut r = Raw::connect(s.tcp, V5).await;
    assert!(r.handshake(back).await.session_present);
    assert!(
        watcher
            .maybe_publish(Duration::from_millis(2500))
            .await
            .is_none(),
        "the will was cancelled by the reconnect"
    );
}

// ------------------------------------------------------------------ properties and aliases

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_properties_pass_through_to_subscribers() {
    let s = TestServer::start().await;
    let mut sub = v5::simple(s.tcp, "props-sub").await;
    sub.subscribe("props/t", v5::QoS::AtLeastOnce).await;
    let publisher = v5::simple(s.tcp, "props-pub").await;
    let props = v5::PublishProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(3600),
        content_type: Some("application/json".into()),
        response_topic: Some("props/reply".into()),
        correlation_data: Some(Bytes::from_static(b"corr-1")),
        user_properties: vec![("a".into(), "1".into()), ("b".into(), "2".into())],
        ..Default::default()
    };
    publisher
        .client
        .publish_with_properties("props/t", v5::QoS::AtLeastOnce, false, "{}", props)
        .await
        .unwrap();
    let p = sub.publish_in().await;
    let got = p.properties.expect("properties");
    assert_eq!(got.payload_format_indicator, Some(1));
    assert_eq!(got.content_type.as_deref(), Some("application/json"));
    assert_eq!(got.response_topic.as_deref(), Some("props/reply"));
    assert_eq!(got.correlation_data, Some(Bytes::from_static(b"corr-1")));
    assert_eq!(
        got.user_properties,
        vec![
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string())
        ]
    );
    let left = got.message_expiry_interval.expect("remaining expiry");
    assert!((3590..=3600).contains(&left), "remaining expiry {left}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_message_is_not_delivered_to_a_returning_session() {
    let s = TestServer::start().await;
    let mut c = pk::connect(V5, "expiry-sub", false, 60);
    c.properties.session_expiry_interval = Some(300);
    let mut sub = Raw::connect(s.tcp, V5).await;
    sub.handshake(c.clone()).await;
    sub.subscribe(pk::subscribe(1, "exp/t", QoS::AtLeastOnce))
        .await;
    drop(sub);
    eventually("offline", || {
        s.broker()
            .lookup("expiry-sub")
            .is_some_and(|c| !c.is_online())
    })
    .await;
    let (mut p, _) = Raw::open(s.tcp, V5, "expiry-pub", true).await;
    let mut short = pk::publish("exp/t", QoS::AtLeastOnce, Some(1), "short");
    short.properties.message_expiry_interval = Some(1);
    p.send(&Packet::Publish(short)).await;
    let mut long = pk::publish("exp/t", QoS::AtLeastOnce, Some(2), "long");
    long.properties.message_expiry_interval = Some(600);
    p.send(&Packet::Publish(long)).await;
    p.recv().await;
    p.recv().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut sub = Raw::connect(s.tcp, V5).await;
    sub.handshake(c).await;
    let got = sub.next_publish().await.unwrap();
    assert_eq!(got.payload, Bytes::from("long"));
    assert!(got.properties.message_expiry_interval.unwrap() <= 599);
    assert!(sub.next_publish_within(QUIET).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_topic_alias_maps_to_the_topic() {
    let s = TestServer::start().await;
    let (mut sub, _) = Raw::open(s.tcp, V4, "alias-sub", true).await;
    sub.subscribe(pk::subscribe(1, "alias/#", QoS::AtMostOnce))
        .await;
    let (mut p, _) = Raw::open(s.tcp, V5, "alias-pub", true).await;
    let mut first = pk::publish("alias/long/topic", QoS::AtMostOnce, None, "1");
    first.properties.topic_alias = Some(3);
    p.send(&Packet::Publish(first)).await;
    let mut second = pk::publish("", QoS::AtMostOnce, None, "2");
    second.properties.topic_alias = Some(3);
    p.send(&Packet::Publish(second)).await;
    for want in ["1", "2"] {
        let got = sub.next_publish().await.unwrap();
        assert_eq!(&got.topic[..], "alias/long/topic");
        assert_eq!(got.payload, Bytes::from(want));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_alias_above_maximum_is_disconnected_with_0x94() {
    let s = TestServer::start_with("mqtt.max_topic_alias = 4").await;
    let (mut p, _) = Raw::open(s.tcp, V5, "alias-big", true).await;
    let mut publish = pk::publish("a/b", QoS::AtMostOnce, None, "x");
    publish.properties.topic_alias = Some(5);
    p.send(&Packet::Publish(publish)).await;
    match p.recv().await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason_code, reason::TOPIC_ALIAS_INVALID),
        other => panic!("expected DISCONNECT 0x94, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_topic_alias_is_a_protocol_error() {
    let s = TestServer::start().await;
    let (mut p, _) = Raw::open(s.tcp, V5, "alias-unknown", true).await;
    let mut publish = pk::publish("", QoS::AtMostOnce, None, "x");
    publish.properties.topic_alias = Some(1);
    p.send(&Packet::Publish(publish)).await;
    match p.recv().await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason_code, reason::PROTOCOL_ERROR),
        other => panic!("expected DISCONNECT 0x82, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_topic_aliases_are_used_when_the_client_allows_them() {
    let s = TestServer::start().await;
    let mut c = pk::connect(V5, "alias-out", true, 60);
    c.properties.topic_alias_maximum = Some(2);
    let mut sub = Raw::connect(s.tcp, V5).await;
    sub.handshake(c).await;
    sub.subscribe(pk::subscribe(1, "ao/#", QoS::AtMostOnce))
        .await;
    let (mut p, _) = Raw::open(s.tcp, V4, "alias-out-pub", true).await;
    for _ in 0..2 {
        p.send(&Packet::Publish(pk::publish(
            "ao/x",
            QoS::AtMostOnce,
            None,
            "m",
        )))
        .await;
    }
    let first = sub.next_publish().await.unwrap();
    assert_eq!(&first.topic[..], "ao/x");
    let alias = first.properties.topic_alias.expect("alias assigned");
    let second = sub.next_publish().await.unwrap();
    assert!(second.topic.is_empty(), "topic replaced by the alias");
    assert_eq!(second.properties.topic_alias, Some(alias));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_larger_than_client_maximum_packet_size_is_not_sent() {
    let s = TestServer::start().await;
    let mut c = pk::connect(V5, "small-max", true, 60);
    c.properties.maximum_packet_size = Some(64);
    let mut sub = Raw::connect(s.tcp, V5).await;
    sub.handshake(c).await;
    sub.subscribe(pk::subscribe(1, "size/t", QoS::AtLeastOnce))
        .await;
    let (mut p, _) = Raw::open(s.tcp, V4, "small-max-pub", true).await;
    let big = "x".repeat(200);
    p.send(&Packet::Publish(pk::publish(
        "size/t",
        QoS::AtLeastOnce,
        Some(1),
        &big,
    )))
    .await;
    p.send(&Packet::Publish(pk::publish(
        "size/t",
        QoS::AtLeastOnce,
        Some(2),
        "small",
    )))
    .await;
    let got = sub.next_publish().await.unwrap();
    assert_eq!(
        got.payload,
        Bytes::from("small"),
        "the oversized message was dropped"
    );
    assert!(s.metric("delivery.dropped.too_large") >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packet_over_maximum_packet_size_is_disconnected_with_0x95() {
    let s = TestServer::start_with("mqtt.max_packet_size = 1KB").await;
    let (mut p, _) = Raw::open(s.tcp, V5, "too-big", true).await;
    let big = "x".repeat(2000);
    p.send(&Packet::Publish(pk::publish(
        "big/t",
        QoS::AtMostOnce,
        None,
        &big,
    )))
    .await;
    match p.recv().await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason_code, reason::PACKET_TOO_LARGE),
        other => panic!("expected DISCONNECT 0x95, got {other:?}"),
    }
}

// ------------------------------------------------------------------ subscribe options

fn opts(qos: QoS) -> SubscriptionOptions {
    SubscriptionOptions {
        qos,
        ..SubscriptionOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_local_suppresses_own_messages() {
    let s = TestServer::start().await;
    let (mut c, _) = Raw::open(s.tcp, V5, "nolocal", true).await;
    let mut sub = pk::subscribe(1, "nl/t", QoS::AtMostOnce);
    sub.filters[0].1.no_local = true;
    sub.filters.push(("nl/other".into(), opts(QoS::AtMostOnce)));
    assert_eq!(c.subscribe(sub).await, vec![0, 0]);
    c.send(&Packet::Publish(pk::publish(
        "nl/t",
        QoS::AtMostOnce,
        None,
        "mine",
    )))
    .await;
    c.send(&Packet::Publish(pk::publish(
        "nl/other",
        QoS::AtMostOnce,
        None,
        "loop",
    )))
    .await;
    let got = c.next_publish().await.unwrap();
    assert_eq!(
        &got.topic[..],
        "nl/other",
        "only the subscription without no_local echoes"
    );
    assert!(c.next_publish_within(QUIET).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_as_published_keeps_the_retain_flag() {
    let s = TestServer::start().await;
    let (mut c, _) = Raw::open(s.tcp, V5, "rap", true).await;
    let mut sub = pk::subscribe(1, "rap/keep", QoS::AtMostOnce);
    sub.filters[0].1.retain_as_published = true;
    sub.filters
        .push(("rap/clear".into(), opts(QoS::AtMostOnce)));
    c.subscribe(sub).await;
    let (mut p, _) = Raw::open(s.tcp, V5, "rap-pub", true).await;
    for t in ["rap/keep", "rap/clear"] {
        let mut m = pk::publish(t, QoS::AtMostOnce, None, "r");
        m.retain = true;
        p.send(&Packet::Publish(m)).await;
    }
    let mut flags = std::collections::HashMap::new();
    for _ in 0..2 {
        let got = c.next_publish().await.unwrap();
        flags.insert(got.topic.to_string(), got.retain);
    }
    assert!(flags["rap/keep"], "retain kept");
    assert!(!flags["rap/clear"], "retain cleared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_handling_0_1_2() {
    let s = TestServer::start().await;
    let (mut p, _) = Raw::open(s.tcp, V5, "rh-pub", true).await;
    let mut m = pk::publish("rh/t", QoS::AtLeastOnce, Some(1), "kept");
    m.retain = true;
    p.send(&Packet::Publish(m)).await;
    p.recv().await;
    let (mut c, _) = Raw::open(s.tcp, V5, "rh-sub", true).await;
    // 0: sent at every subscribe.
    for _ in 0..2 {
        c.subscribe(pk::subscribe(1, "rh/t", QoS::AtMostOnce)).await;
        let got = c.next_publish().await.unwrap();
        assert!(got.retain);
    }
    // 1: only if the subscription is new.
    let mut s1 = pk::subscribe(2, "rh/+", QoS::AtMostOnce);
    s1.filters[0].1.retain_handling = 1;
    c.subscribe(s1.clone()).await;
    assert!(c.next_publish().await.unwrap().retain);
    c.subscribe(s1).await;
    assert!(
        c.next_publish_within(QUIET).await.is_none(),
        "not again for an existing subscription"
    );
    // 2: never.
    let mut s2 = pk::subscribe(3, "rh/#", QoS::AtMostOnce);
    s2.filters[0].1.retain_handling = 2;
    c.subscribe(s2).await;
    assert!(c.next_publish_within(QUIET).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_identifiers_are_sent_with_matching_messages() {
    let s = TestServer::start().await;
    let (mut c, _) = Raw::open(s.tcp, V5, "subid", true).await;
    let mut sub = pk::subscribe(1, "sid/t", QoS::AtMostOnce);
    sub.subscription_identifier = Some(99);
    c.subscribe(sub).await;
    let (mut p, _) = Raw::open(s.tcp, V5, "subid-pub", true).await;
    p.send(&Packet::Publish(pk::publish(
        "sid/t",
        QoS::AtMostOnce,
        None,
        "x",
    )))
    .await;
    let got = c.next_publish().await.unwrap();
    assert_eq!(got.properties.subscription_identifiers, vec![99]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_subscription_with_no_local_is_a_protocol_error() {
    let s = TestServer::start().await;
    let (mut c, _) = Raw::open(s.tcp, V5, "share-nolocal", true).await;
    let mut sub = pk::subscribe(1, "$share/g/t", QoS::AtMostOnce);
    sub.filters[0].1.no_local = true;
    c.send(&Packet::Subscribe(sub)).await;
    match c.recv().await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason_code, reason::PROTOCOL_ERROR),
        other => panic!("expected DISCONNECT 0x82, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_filters_get_failure_codes_in_suback() {
    let s = TestServer::start().await;
    let (mut c, _) = Raw::open(s.tcp, V5, "badfilters", true).await;
    let mut sub = pk::subscribe(1, "a/#/b", QoS::AtMostOnce);
    sub.filters.push(("ok/+".into(), opts(QoS::AtLeastOnce)));
    sub.filters.push(("$share/g".into(), opts(QoS::AtMostOnce)));
    assert_eq!(
        c.subscribe(sub).await,
        vec![
            reason::TOPIC_FILTER_INVALID,
            1,
            reason::TOPIC_FILTER_INVALID
        ]
    );
    let (mut c4, _) = Raw::open(s.tcp, V4, "badfilters4", true).await;
    assert_eq!(
        c4.subscribe(pk::subscribe(1, "x+/y", QoS::AtMostOnce))
            .await,
        vec![0x80]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn granted_qos_is_capped_by_max_qos_allowed() {
    let s = TestServer::start_with("mqtt.max_qos_allowed = 1").await;
    let (mut c, ack) = Raw::open(s.tcp, V5, "capped", true).await;
    assert_eq!(ack.properties.maximum_qos, Some(1));
    assert_eq!(
        c.subscribe(pk::subscribe(1, "cap/t", QoS::ExactlyOnce))
            .await,
        vec![1]
    );
    c.send(&Packet::Publish(pk::publish(
        "cap/t",
        QoS::ExactlyOnce,
        Some(1),
        "x",
    )))
    .await;
    match c.recv().await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason_code, reason::QOS_NOT_SUPPORTED),
        other => panic!("expected DISCONNECT 0x9B, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_stops_delivery_and_reports_missing_subscriptions() {
    let s = TestServer::start().await;
    let (mut c, _) = Raw::open(s.tcp, V5, "unsub", true).await;
    c.subscribe(pk::subscribe(1, "un/t", QoS::AtMostOnce)).await;
    c.send(&Packet::Unsubscribe(junction_codec_mqtt::Unsubscribe {
        packet_id: 2,
        filters: vec!["un/t".into(), "never/subscribed".into()],
        user_properties: vec![],
    }))
    .await;
    match c.recv().await {
        Some(Packet::UnsubAck(a)) => {
            assert_eq!(a.packet_id, 2);
            assert_eq!(a.reason_codes, vec![0, reason::NO_SUBSCRIPTION_EXISTED]);
        }
        other => panic!("expected UNSUBACK, got {other:?}"),
    }
    let (mut p, _) = Raw::open(s.tcp, V4, "unsub-pub", true).await;
    p.send(&Packet::Publish(pk::publish(
        "un/t",
        QoS::AtMostOnce,
        None,
        "x",
    )))
    .await;
    assert!(c.next_publish_within(QUIET).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttc_v311_unsubscribe_round_trip() {
    let s = TestServer::start().await;
    let mut c = v4::simple(s.tcp, "rq-unsub").await;
    c.subscribe("rq/t", v4::QoS::AtMostOnce).await;
    c.client.unsubscribe("rq/t").await.unwrap();
    c.wait_for("UNSUBACK", |p| matches!(p, v4::Packet::UnsubAck(_)))
        .await;
    c.client
        .publish("rq/t", v4::QoS::AtMostOnce, false, "x")
        .await
        .unwrap();
    assert!(c.maybe_publish(QUIET).await.is_none());
}
