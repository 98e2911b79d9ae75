//! Config keys that no other test sets: each test sets one away from its default and shows
//! the broker doing what it says (named in `junction_config::key_status`).

use crate::common::*;
use junction_codec_mqtt::{ConnectProperties, Packet, ProtocolVersion, QoS};

const V5: ProtocolVersion = ProtocolVersion::V5;
const V4: ProtocolVersion = ProtocolVersion::V3_1_1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_clientid_len_refuses_longer_client_ids() {
    let s = TestServer::start_with("mqtt.max_clientid_len = 23").await;
    let (_ok, ack) = Raw::open(s.tcp, V5, &"a".repeat(23), true).await;
    assert_eq!(ack.reason_code, 0);
    let (_long, ack) = Raw::open(s.tcp, V5, &"a".repeat(24), true).await;
    assert_eq!(ack.reason_code, 0x85);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_available_false_is_announced_and_a_retained_will_refused() {
    let s = TestServer::start_with("mqtt.retain_available = false").await;
    let (_c, ack) = Raw::open(s.tcp, V5, "no-retain", true).await;
    assert_eq!(ack.properties.retain_available, Some(false));
    let mut c = Raw::connect(s.tcp, V5).await;
    let mut connect = pk::connect(V5, "retained-will", true, 30);
    connect.will = Some(junction_codec_mqtt::LastWill {
        topic: "w".into(),
        payload: bytes::Bytes::from_static(b"x"),
        qos: QoS::AtMostOnce,
        retain: true,
        properties: Default::default(),
    });
    assert_eq!(c.handshake(connect).await.reason_code, 0x9A);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_subscription_false_refuses_wildcard_filters() {
    let s = TestServer::start_with("mqtt.wildcard_subscription = false").await;
    let (mut c, _) = Raw::open(s.tcp, V5, "no-wild", true).await;
    assert_eq!(
        c.subscribe(pk::subscribe(1, "a/+", QoS::AtMostOnce)).await,
        [0xA2]
    );
    assert_eq!(
        c.subscribe(pk::subscribe(2, "a/b", QoS::AtMostOnce)).await,
        [0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_qos_delivers_at_the_subscription_qos() {
    let s = TestServer::start_with("mqtt.upgrade_qos = true").await;
    let (mut sub, _) = Raw::open(s.tcp, V4, "up-sub", true).await;
    sub.subscribe(pk::subscribe(1, "up", QoS::AtLeastOnce))
        .await;
    let (mut publisher, _) = Raw::open(s.tcp, V4, "up-pub", true).await;
    publisher
        .send(&Packet::Publish(pk::publish(
            "up",
            QoS::AtMostOnce,
            None,
            "x",
        )))
        .await;
    assert_eq!(sub.next_publish().await.unwrap().qos, QoS::AtLeastOnce);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignore_loop_deliver_withholds_a_clients_own_messages() {
    let s = TestServer::start_with("mqtt.ignore_loop_deliver = true").await;
    let (mut me, _) = Raw::open(s.tcp, V4, "loop", true).await;
    me.subscribe(pk::subscribe(1, "loop/#", QoS::AtMostOnce))
        .await;
    me.send(&Packet::Publish(pk::publish(
        "loop/a",
        QoS::AtMostOnce,
        None,
        "mine",
    )))
    .await;
    let (mut other, _) = Raw::open(s.tcp, V4, "loop-other", true).await;
    other
        .send(&Packet::Publish(pk::publish(
            "loop/b",
            QoS::AtMostOnce,
            None,
            "theirs",
        )))
        .await;
    let p = me.next_publish().await.unwrap();
    assert_eq!(&p.topic[..], "loop/b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_information_is_given_to_a_client_that_asks() {
    let s = TestServer::start_with("mqtt.response_information = \"replies/\"").await;
    let mut c = Raw::connect(s.tcp, V5).await;
    let mut connect = pk::connect(V5, "asks", true, 30);
    connect.properties = ConnectProperties {
        request_response_information: Some(1),
        ..ConnectProperties::default()
    };
    let ack = c.handshake(connect).await;
    assert_eq!(
        ack.properties.response_information.as_deref(),
        Some("replies/")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqueue_store_qos0_false_queues_no_qos0_for_an_offline_session() {
    let s = TestServer::start_with("mqtt.mqueue_store_qos0 = false").await;
    let (mut sub, _) = Raw::open(s.tcp, V4, "offline", false).await;
    sub.subscribe(pk::subscribe(1, "q/#", QoS::AtLeastOnce))
        .await;
    drop(sub);
    eventually("the session is offline", || {
        s.broker().lookup("offline").is_some_and(|c| !c.is_online())
    })
    .await;
    let (mut publisher, _) = Raw::open(s.tcp, V4, "q-pub", true).await;
    publisher
        .send(&Packet::Publish(pk::publish(
            "q/0",
            QoS::AtMostOnce,
            None,
            "zero",
        )))
        .await;
    publisher
        .send(&Packet::Publish(pk::publish(
            "q/1",
            QoS::AtLeastOnce,
            Some(1),
            "one",
        )))
        .await;
    assert!(matches!(publisher.recv().await, Some(Packet::PubAck(_))));
    let (mut back, ack) = Raw::open(s.tcp, V4, "offline", false).await;
    assert!(ack.session_present);
    let p = back.next_publish().await.unwrap();
    assert_eq!(&p.topic[..], "q/1", "the QoS 0 message was queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_awaiting_rel_refuses_qos2_past_it_with_0x93() {
    let s = TestServer::start_with("mqtt.max_awaiting_rel = 1").await;
    let (mut c, _) = Raw::open(s.tcp, V5, "awaiting", true).await;
    for (id, code) in [(1u16, 0x10u8), (2, 0x93)] {
        c.send(&Packet::Publish(pk::publish(
            "a",
            QoS::ExactlyOnce,
            Some(id),
            "x",
        )))
        .await;
        match c.recv().await {
            Some(Packet::PubRec(r)) => assert_eq!(r.reason_code, code, "packet {id}"),
            other => panic!("expected PUBREC, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_options_backlog_sizes_the_listen_queue() {
    let s = TestServer::start_with("listeners.tcp.default.tcp_options.backlog = 77").await;
    // For a listening socket `ss` reports the backlog as its Send-Q.
    let out = std::process::Command::new("ss")
        .args(["-ltnH", &format!("sport = :{}", s.tcp.port())])
        .output()
        .expect("ss (iproute2) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let send_q: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(send_q.get(2).copied(), Some("77"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_mqtt_path_and_supported_subprotocols_gate_the_upgrade() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let s = TestServer::start_with(
        "listeners.ws.default.websocket { mqtt_path = \"/iot\", supported_subprotocols = \"mqttv3.1\" }",
    )
    .await;
    let request = |path: &str, proto: &str| {
        let mut req = format!("ws://{}{path}", s.ws)
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("sec-websocket-protocol", proto.parse().unwrap());
        req
    };
    assert!(
        tokio_tungstenite::connect_async(request("/iot", "mqttv3.1"))
            .await
            .is_ok()
    );
    assert!(
        tokio_tungstenite::connect_async(request("/mqtt", "mqttv3.1"))
            .await
            .is_err()
    );
    assert!(tokio_tungstenite::connect_async(request("/iot", "mqtt"))
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_subscriptions_answers_quota_exceeded_past_it() {
    let s = TestServer::start_with("mqtt.max_subscriptions = 2").await;
    let (mut c, _) = Raw::open(s.tcp, V5, "quota", true).await;
    for (id, filter, code) in [(1u16, "a", 0u8), (2, "b", 0), (3, "c", 0x97), (4, "a", 0)] {
        assert_eq!(
            c.subscribe(pk::subscribe(id, filter, QoS::AtMostOnce))
                .await,
            [code],
            "{filter}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_subscription_false_refuses_share_filters() {
    let s = TestServer::start_with("mqtt.shared_subscription = false").await;
    let (mut c, ack) = Raw::open(s.tcp, V5, "no-share", true).await;
    assert_eq!(ack.properties.shared_subscription_available, Some(false));
    assert_eq!(
        c.subscribe(pk::subscribe(1, "$share/g/t", QoS::AtMostOnce))
            .await,
        [0x9E]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_expiry_interval_caps_messages_that_set_none() {
    let s = TestServer::start_with("mqtt.message_expiry_interval = 1h").await;
    let (mut sub, _) = Raw::open(s.tcp, V5, "exp-sub", true).await;
    sub.subscribe(pk::subscribe(1, "exp", QoS::AtMostOnce))
        .await;
    let (mut publisher, _) = Raw::open(s.tcp, V5, "exp-pub", true).await;
    publisher
        .send(&Packet::Publish(pk::publish(
            "exp",
            QoS::AtMostOnce,
            None,
            "x",
        )))
        .await;
    let p = sub.next_publish().await.unwrap();
    let left = p.properties.message_expiry_interval.expect("an expiry");
    assert!((3590..=3600).contains(&left), "{left}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_if_no_subprotocol_false_upgrades_without_one() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let s = TestServer::start_with("listeners.ws.default.websocket.fail_if_no_subprotocol = false")
        .await;
    let req = format!("ws://{}/mqtt", s.ws).into_client_request().unwrap();
    assert!(tokio_tungstenite::connect_async(req).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_max_frame_size_closes_on_a_larger_frame_header() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start_with("listeners.ws.default.websocket.max_frame_size = 1KB").await;
    let mut sock = tokio::net::TcpStream::connect(s.ws).await.unwrap();
    sock.write_all(
        b"GET /mqtt HTTP/1.1\r\nHost: j\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Protocol: mqtt\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = [0u8; 512];
    let n = sock.read(&mut head).await.unwrap();
    assert!(head[..n].starts_with(b"HTTP/1.1 101"));
    // A binary frame announcing 2 KiB (masked, 16-bit length): refused from its header.
    sock.write_all(&[0x82, 0x80 | 126, 0x08, 0x00, 0, 0, 0, 0])
        .await
        .unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, sock.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the connection stayed open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_idle_timeout_bounds_the_upgrade() {
    use tokio::io::AsyncReadExt;
    let s = TestServer::start_with("listeners.ws.default.websocket.idle_timeout = 200ms").await;
    // A connection that never sends its upgrade request is closed.
    let mut sock = tokio::net::TcpStream::connect(s.ws).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(WAIT, sock.read(&mut buf))
        .await
        .expect("closed within the wait")
        .unwrap_or(0);
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_address_and_port_headers_name_the_websocket_client() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let s = TestServer::start_with(
        "listeners.ws.default.websocket { proxy_address_header = \"X-Real-IP\", \
         proxy_port_header = \"X-Real-Port\" }",
    )
    .await;
    let (mut watcher, _) = Raw::open(s.tcp, V4, "ws-watch", true).await;
    watcher
        .subscribe(pk::subscribe(
            1,
            "$SYS/brokers/+/clients/+/connected",
            QoS::AtMostOnce,
        ))
        .await;
    let mut req = format!("ws://{}/mqtt", s.ws).into_client_request().unwrap();
    let h = req.headers_mut();
    h.insert("sec-websocket-protocol", "mqtt".parse().unwrap());
    h.insert("x-real-ip", "203.0.113.9, 10.0.0.1".parse().unwrap());
    h.insert("x-real-port", "4242".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let mut connect = bytes::BytesMut::new();
    junction_codec_mqtt::Codec::new(V4, 1 << 20)
        .encode(
            &Packet::Connect(Box::new(pk::connect(V4, "behind-proxy", true, 30))),
            &mut connect,
        )
        .unwrap();
    ws.send(Message::Binary(connect.freeze())).await.unwrap();
    let event = watcher.next_publish().await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&event.payload).unwrap();
    assert_eq!(body["ipaddress"], "203.0.113.9", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqttsn_udp_buffer_and_max_conn_rate_are_kept() {
    use crate::gateways::{sn::Sn, sn_addr};
    use junction_codec_mqttsn::{Flags, Message as SnMessage};
    let s = TestServer::start_with(
        "gateway.mqttsn.listeners.udp.default { max_conn_rate = 1, udp_options.buffer = 64B }",
    )
    .await;
    let addr = sn_addr(&s);
    let first = Sn::new(addr).await;
    first.connect("rate-1").await;
    // The bucket held one: a second new peer within the second is dropped.
    let second = Sn::new(addr).await;
    second
        .send(SnMessage::Connect {
            flags: Flags::default(),
            protocol_id: 1,
            duration: 60,
            client_id: "rate-2".into(),
        })
        .await;
    assert!(
        second.silent_for(QUIET).await,
        "a peer past max_conn_rate was admitted"
    );
    // A datagram longer than `buffer` is cut short, so refused as malformed.
    let gateway = s.server.as_ref().unwrap().gateway("mqttsn").await.unwrap();
    let before = gateway.metrics.get("packets.frame_error");
    first
        .send(SnMessage::Register {
            topic_id: 0,
            msg_id: 3,
            topic_name: "t/".repeat(40).into(),
        })
        .await;
    eventually("the long datagram is refused", || {
        gateway.metrics.get("packets.frame_error") == before + 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sys_subscribed_and_unsubscribed_events_follow_sys_event_messages() {
    let s = TestServer::start_with(
        "sys_topics.sys_event_messages { client_subscribed = true, client_unsubscribed = true }",
    )
    .await;
    let (mut watcher, _) = Raw::open(s.tcp, V4, "sys-sub-watch", true).await;
    watcher
        .subscribe(pk::subscribe(
            1,
            "$SYS/brokers/+/clients/+/+",
            QoS::AtMostOnce,
        ))
        .await;
    let (mut c, _) = Raw::open(s.tcp, V5, "subber", true).await;
    c.subscribe(pk::subscribe(1, "t/#", QoS::AtLeastOnce)).await;
    c.send(&Packet::Unsubscribe(junction_codec_mqtt::Unsubscribe {
        packet_id: 2,
        filters: vec!["t/#".into()],
        user_properties: vec![],
    }))
    .await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let p = watcher.next_publish().await.expect("an event");
        if p.topic.contains("/clients/subber/") && p.topic.ends_with("subscribed") {
            let body: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
            assert_eq!(body["topic"], "t/#");
            seen.push(p.topic.rsplit('/').next().unwrap().to_string());
            if seen.len() == 1 {
                assert_eq!(body["subopts"]["qos"], 1);
            }
        }
    }
    assert_eq!(seen, ["subscribed", "unsubscribed"]);
}
