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
