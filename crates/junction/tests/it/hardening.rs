//! Issue 9: what an attacker sends without credentials is refused with each protocol's
//! error, and every other client keeps being served.

use crate::common::*;
use crate::gateways::{sn::Sn, sn_addr, stomp_addr, Stomp};
use bytes::Bytes;
use junction_codec_mqttsn::{Flags, Message as SnMessage, QoS as SnQoS, ReturnCode, Topic};
use junction_codec_stomp::{Command, Frame};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_mqttsn_filter_is_refused_and_the_broker_outlives_the_keepalive() {
    let s = TestServer::start().await;
    let mut bystander = v4::simple(s.tcp, "bystander").await;
    bystander.subscribe("alive", v4::QoS::AtMostOnce).await;

    // CONNECT with Duration 1, then SUBSCRIBE to 65,000 `/`: no credentials needed.
    let sn = Sn::new(sn_addr(&s)).await;
    sn.send(SnMessage::Connect {
        flags: Flags {
            clean_session: false,
            ..Flags::default()
        },
        protocol_id: 1,
        duration: 1,
        client_id: "deep".into(),
    })
    .await;
    assert!(matches!(sn.recv().await, SnMessage::ConnAck { .. }));
    sn.send(SnMessage::Subscribe {
        flags: Flags {
            qos: SnQoS::AtMostOnce,
            ..Flags::default()
        },
        msg_id: 7,
        topic: Topic::Name("/".repeat(65_000).into()),
    })
    .await;
    match sn.recv().await {
        SnMessage::SubAck { msg_id, rc, .. } => {
            assert_eq!(msg_id, 7);
            assert_eq!(rc, ReturnCode::InvalidTopicId);
        }
        other => panic!("expected SUBACK, got {other:?}"),
    }
    assert_eq!(
        s.broker().subscription_counts().1,
        1,
        "only the bystander's"
    );
    // The same depth as a REGISTER is refused too.
    sn.send(SnMessage::Register {
        topic_id: 0,
        msg_id: 8,
        topic_name: "a/".repeat(200).into(),
    })
    .await;
    match sn.recv().await {
        SnMessage::RegAck { msg_id, rc, .. } => {
            assert_eq!(msg_id, 8);
            assert_eq!(rc, ReturnCode::NotSupported);
        }
        other => panic!("expected REGACK, got {other:?}"),
    }

    // The keepalive runs out (1.5 × 1 s) and the client leaves; the broker stays up and
    // the bystander is still served.
    let gateway = s.server.as_ref().unwrap().gateway("mqttsn").await.unwrap();
    assert_eq!(gateway.clients.len(), 1);
    eventually("the keepalive ends the mqtt-sn client", || {
        gateway.clients.is_empty()
    })
    .await;
    let publisher = v4::simple(s.tcp, "publisher").await;
    publisher
        .client
        .publish("alive", v4::QoS::AtMostOnce, false, "yes")
        .await
        .unwrap();
    assert_eq!(bystander.publish_in().await.payload, Bytes::from("yes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_will_on_sys_is_not_published_and_is_counted() {
    let s = TestServer::start().await;
    let node = s.broker().settings.node_name.clone();
    let mut watcher = v4::simple(s.tcp, "sys-watcher").await;
    watcher
        .subscribe("$SYS/brokers/+/version", v4::QoS::AtMostOnce)
        .await;
    let mut opts = v4::options(s.tcp, "will-attacker");
    opts.set_last_will(rumqttc::LastWill::new(
        format!("$SYS/brokers/{node}/version"),
        "pwned",
        v4::QoS::AtMostOnce,
        true,
    ));
    let attacker = v4::connect(opts).await;
    // The socket drops without DISCONNECT: the will is due now.
    drop(attacker);
    eventually("the will is judged", || {
        s.metric("messages.dropped.not_authorized") == 1
    })
    .await;
    while let Some(p) = watcher.maybe_publish(QUIET).await {
        assert_ne!(
            p.payload,
            Bytes::from("pwned"),
            "a denied will was delivered"
        );
    }
    // Nor was it retained.
    let mut late = v4::simple(s.tcp, "sys-late").await;
    late.subscribe("$SYS/brokers/+/version", v4::QoS::AtMostOnce)
        .await;
    while let Some(p) = late.maybe_publish(QUIET).await {
        assert_ne!(
            p.payload,
            Bytes::from("pwned"),
            "a denied will was retained"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqttsn_will_topic_with_a_wildcard_is_refused() {
    let s = TestServer::start().await;
    let sn = Sn::new(sn_addr(&s)).await;
    sn.send(SnMessage::Connect {
        flags: Flags {
            will: true,
            clean_session: true,
            ..Flags::default()
        },
        protocol_id: 1,
        duration: 60,
        client_id: "sn-will".into(),
    })
    .await;
    assert!(matches!(sn.recv().await, SnMessage::WillTopicReq));
    sn.send(SnMessage::WillTopic {
        flags: Flags::default(),
        topic: Some("alarm/#".into()),
    })
    .await;
    match sn.recv().await {
        SnMessage::ConnAck { rc } => assert_eq!(rc, ReturnCode::NotSupported),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stomp_destination_deeper_than_max_topic_levels_gets_an_error() {
    let s = TestServer::start_with("mqtt.max_topic_levels = 8").await;
    let mut st = Stomp::connect(stomp_addr(&s)).await;
    st.send(
        Frame::new(Command::Send)
            .with_header("destination", "a/".repeat(8) + "z")
            .with_body(Bytes::from_static(b"deep")),
    )
    .await;
    let f = st.frame().await.expect("ERROR");
    assert_eq!(f.command, Command::Error, "{f:?}");
    let mut st = Stomp::connect(stomp_addr(&s)).await;
    st.send(
        Frame::new(Command::Subscribe)
            .with_header("id", "1")
            .with_header("destination", "+/".repeat(8) + "#"),
    )
    .await;
    let f = st.frame().await.expect("ERROR");
    assert_eq!(f.command, Command::Error, "{f:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_unacknowledged_qos2_publishes_than_the_receive_maximum_get_disconnect_0x93() {
    use junction_codec_mqtt::{Packet, ProtocolVersion, QoS};
    let s = TestServer::start_with("mqtt.max_inflight = 4").await;
    let (mut c, ack) = Raw::open(s.tcp, ProtocolVersion::V5, "flooder", true).await;
    assert_eq!(ack.properties.receive_maximum, Some(4));
    // Four unacknowledged QoS 2 messages (no PUBREL, so no PUBCOMP) are within it.
    for id in 1..=4u16 {
        c.send(&Packet::Publish(pk::publish(
            "q2",
            QoS::ExactlyOnce,
            Some(id),
            "x",
        )))
        .await;
        match c.recv().await {
            Some(Packet::PubRec(r)) => assert_eq!((r.packet_id, r.reason_code), (id, 0x10)),
            other => panic!("expected PUBREC, got {other:?}"),
        }
    }
    // A resend of one of them is not a new one.
    let mut resend = pk::publish("q2", QoS::ExactlyOnce, Some(4), "x");
    resend.dup = true;
    c.send(&Packet::Publish(resend)).await;
    assert!(matches!(c.recv().await, Some(Packet::PubRec(_))));
    // The fifth is one too many.
    c.send(&Packet::Publish(pk::publish(
        "q2",
        QoS::ExactlyOnce,
        Some(5),
        "x",
    )))
    .await;
    match c.recv().await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason_code, 0x93),
        other => panic!("expected DISCONNECT 0x93, got {other:?}"),
    }
    assert!(c.closed().await);
}

/// The process's resident set, in bytes (Linux).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// A masked client frame header (RFC 6455 §5.2) for `len` bytes of zeros under a zero mask.
fn ws_frame_header(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
    let mut h = vec![if fin { 0x80 } else { 0 } | opcode, 0x80 | 127];
    h.extend_from_slice(&len.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 0]);
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_60_mib_websocket_message_before_connect_is_refused_without_being_buffered() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start().await;
    let mut sock = tokio::net::TcpStream::connect(s.ws).await.unwrap();
    sock.write_all(
        b"GET /mqtt HTTP/1.1\r\nHost: junction\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Protocol: mqtt\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        assert_eq!(sock.read(&mut b).await.unwrap(), 1);
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let before = rss_bytes();
    // 60 MiB in 1 MiB fragments: each frame is small, the message is not.
    const MIB: u64 = 1 << 20;
    let zeros = vec![0u8; 64 * 1024];
    let mut sent: u64 = 0;
    'send: for i in 0..60u64 {
        let opcode = if i == 0 { 0x2 } else { 0x0 };
        if sock
            .write_all(&ws_frame_header(i == 59, opcode, MIB))
            .await
            .is_err()
        {
            break;
        }
        for _ in 0..16 {
            if sock.write_all(&zeros).await.is_err() {
                break 'send;
            }
            sent += zeros.len() as u64;
        }
    }
    // The server closed the connection long before the message was whole...
    assert!(sent < 60 * MIB, "the server read all {sent} bytes");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(WAIT, sock.read_to_end(&mut rest)).await;
    // ...without holding it: the process grew by far less than the message.
    let grown = rss_bytes().saturating_sub(before);
    assert!(grown < 16 * MIB, "RSS grew by {grown} bytes");
    // Other clients are served.
    let _ok = v4::simple(s.tcp, "after-ws-flood").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_upgrade_from_a_foreign_origin_gets_403() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Error;
    let s = TestServer::start_with(
        "listeners.ws.default.websocket { check_origin_enable = true, \
         check_origins = \"https://app.example.com, http://localhost:18083\", \
         allow_origin_absence = false }",
    )
    .await;
    let request = |origin: Option<&str>| {
        let mut req = format!("ws://{}/mqtt", s.ws).into_client_request().unwrap();
        req.headers_mut()
            .insert("sec-websocket-protocol", "mqtt".parse().unwrap());
        if let Some(o) = origin {
            req.headers_mut().insert("origin", o.parse().unwrap());
        }
        req
    };
    for refused in [Some("https://evil.example.net"), None] {
        match tokio_tungstenite::connect_async(request(refused)).await {
            Err(Error::Http(resp)) => assert_eq!(resp.status(), 403, "{refused:?}"),
            other => panic!("{refused:?}: expected 403, got {:?}", other.map(|r| r.1)),
        }
    }
    let (_ws, resp) = tokio_tungstenite::connect_async(request(Some("https://app.example.com")))
        .await
        .expect("an allowed origin upgrades");
    assert_eq!(resp.status(), 101);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_never_reads_is_closed_after_send_timeout_while_others_receive() {
    use junction_codec_mqtt::{Packet, ProtocolVersion, QoS};
    let s = TestServer::start_with(
        "listeners.tcp.default.tcp_options { send_timeout = 1s, sndbuf = 8KB }",
    )
    .await;
    // A subscriber with a small receive window that stops reading after its SUBACK.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let stream = sock.connect(s.tcp).await.unwrap();
    let mut stalled = Raw::over(stream, ProtocolVersion::V3_1_1);
    stalled
        .handshake(pk::connect(ProtocolVersion::V3_1_1, "stalled", true, 0))
        .await;
    stalled
        .subscribe(pk::subscribe(1, "flood", QoS::AtMostOnce))
        .await;
    let mut opts = v4::options(s.tcp, "healthy");
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let mut healthy = v4::connect(opts).await;
    healthy.subscribe("flood", v4::QoS::AtMostOnce).await;
    let (mut publisher, _) = Raw::open(s.tcp, ProtocolVersion::V3_1_1, "flooder", true).await;
    let payload = "x".repeat(32 * 1024);
    let mut sent = 0u32;
    // Publish until the stalled connection is closed; the healthy one reads them all.
    while s.metric("send.timeout") == 0 {
        assert!(sent < 20_000, "the stalled subscriber was never closed");
        publisher
            .send(&Packet::Publish(pk::publish(
                "flood",
                QoS::AtMostOnce,
                None,
                &payload,
            )))
            .await;
        sent += 1;
        let got = healthy.publish_in().await;
        assert_eq!(got.payload.len(), payload.len());
    }
    // The stalled connection counted its timeout as it gave up; its session goes as it
    // finishes closing.
    eventually("the stalled session is gone", || {
        s.broker().session_count() == 2
    })
    .await;
    // The healthy subscriber is still served.
    publisher
        .send(&Packet::Publish(pk::publish(
            "flood",
            QoS::AtMostOnce,
            None,
            "after",
        )))
        .await;
    loop {
        if healthy.publish_in().await.payload.as_ref() == b"after" {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_blocked_in_a_write_is_still_taken_over_at_once() {
    use junction_codec_mqtt::{Packet, ProtocolVersion, QoS};
    let s = TestServer::start_with(
        "listeners.tcp.default.tcp_options { send_timeout = 1h, sndbuf = 8KB }",
    )
    .await;
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut stalled = Raw::over(sock.connect(s.tcp).await.unwrap(), ProtocolVersion::V3_1_1);
    stalled
        .handshake(pk::connect(ProtocolVersion::V3_1_1, "blocked", true, 0))
        .await;
    stalled
        .subscribe(pk::subscribe(1, "flood", QoS::AtMostOnce))
        .await;
    let (mut publisher, _) = Raw::open(s.tcp, ProtocolVersion::V3_1_1, "flooder2", true).await;
    let payload = "x".repeat(32 * 1024);
    // Far more than the two socket buffers hold: the broker's write to it blocks.
    for _ in 0..200 {
        publisher
            .send(&Packet::Publish(pk::publish(
                "flood",
                QoS::AtMostOnce,
                None,
                &payload,
            )))
            .await;
    }
    // A bystander's round trip proves the flood was routed.
    let mut probe = v4::simple(s.tcp, "probe").await;
    probe.subscribe("probe", v4::QoS::AtMostOnce).await;
    publisher
        .send(&Packet::Publish(pk::publish(
            "probe",
            QoS::AtMostOnce,
            None,
            "p",
        )))
        .await;
    probe.publish_in().await;
    // The same client id connects again: the blocked connection is kicked, not waited for.
    let again = tokio::time::timeout(WAIT, v4::simple(s.tcp, "blocked")).await;
    assert!(again.is_ok(), "the takeover waited for the blocked write");
    eventually("the blocked connection is gone", || {
        s.metric("connections.count") == 3
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stomp_transaction_over_its_limits_gets_an_error_and_an_idle_one_expires() {
    let s = TestServer::start_with(
        "gateway.stomp { max_subscriptions = 2, \
         transaction { max_frames = 3, max_bytes = 100B, max_open = 2, timeout = 300ms } }",
    )
    .await;
    let send_in = |tx: &str, body: &'static [u8]| {
        Frame::new(Command::Send)
            .with_header("destination", "tx/t")
            .with_header("transaction", tx.to_string())
            .with_body(Bytes::from_static(body))
    };
    let begin = |tx: &str| {
        Frame::new(Command::Begin)
            .with_header("transaction", tx.to_string())
            .with_header("receipt", format!("b-{tx}"))
    };
    // Frames: the fourth is one too many.
    let mut st = Stomp::connect(stomp_addr(&s)).await;
    st.send(begin("a")).await;
    assert_eq!(st.frame().await.unwrap().command, Command::Receipt);
    for _ in 0..3 {
        st.send(send_in("a", b"x")).await;
    }
    st.send(send_in("a", b"x")).await;
    let f = st.frame().await.expect("ERROR");
    assert_eq!(f.command, Command::Error, "{f:?}");
    assert!(st.frame().await.is_none(), "the connection is closed");
    // Bytes: 60 + 60 is past 100.
    let mut st = Stomp::connect(stomp_addr(&s)).await;
    st.send(begin("b")).await;
    assert_eq!(st.frame().await.unwrap().command, Command::Receipt);
    st.send(send_in("b", &[b'y'; 60])).await;
    st.send(send_in("b", &[b'y'; 60])).await;
    assert_eq!(st.frame().await.unwrap().command, Command::Error);
    // Open transactions: a third is refused.
    let mut st = Stomp::connect(stomp_addr(&s)).await;
    for tx in ["c1", "c2"] {
        st.send(begin(tx)).await;
        assert_eq!(st.frame().await.unwrap().command, Command::Receipt);
    }
    st.send(begin("c3")).await;
    assert_eq!(st.frame().await.unwrap().command, Command::Error);
    // Subscriptions: a third is refused.
    let mut st = Stomp::connect(stomp_addr(&s)).await;
    st.subscribe("1", "s/1").await;
    st.subscribe("2", "s/2").await;
    st.send(
        Frame::new(Command::Subscribe)
            .with_header("id", "3")
            .with_header("destination", "s/3"),
    )
    .await;
    assert_eq!(st.frame().await.unwrap().command, Command::Error);
    // Expiry: an idle transaction is aborted by a timer, without another BEGIN.
    let gateway = s.server.as_ref().unwrap().gateway("stomp").await.unwrap();
    let mut st = Stomp::connect(stomp_addr(&s)).await;
    st.send(begin("idle")).await;
    assert_eq!(st.frame().await.unwrap().command, Command::Receipt);
    st.send(send_in("idle", b"never")).await;
    eventually("the idle transaction expires", || {
        gateway.metrics.get("transactions.expired") == 1
    })
    .await;
    st.send(
        Frame::new(Command::Commit)
            .with_header("transaction", "idle")
            .with_header("receipt", "c-idle"),
    )
    .await;
    let f = st.frame().await.expect("ERROR");
    assert_eq!(f.command, Command::Error);
    assert!(
        String::from_utf8_lossy(&f.body).contains("not found"),
        "{f:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqtt_listener_mountpoint_isolates_each_client_and_refuses_a_widening_id() {
    use junction_codec_mqtt::ProtocolVersion;
    let s = TestServer::start_with(
        "listeners.tcp.tenant { bind = \"127.0.0.1:0\", mountpoint = \"tenant/${clientid}/\" }",
    )
    .await;
    let tenant = s.server.as_ref().unwrap().local_addr("tcp:tenant").unwrap();
    let mut watcher = v4::simple(s.tcp, "watcher").await;
    watcher.subscribe("tenant/#", v4::QoS::AtMostOnce).await;
    // A device's publish lands under its own prefix.
    let mut dev1 = v4::simple(tenant, "dev1").await;
    dev1.subscribe("#", v4::QoS::AtMostOnce).await;
    dev1.client
        .publish("temp", v4::QoS::AtMostOnce, false, "21")
        .await
        .unwrap();
    let p = watcher.publish_in().await;
    assert_eq!(p.topic, "tenant/dev1/temp");
    // Its `#` covers its own tree only, and it sees its topics unmounted.
    watcher
        .client
        .publish("tenant/dev2/cmd", v4::QoS::AtMostOnce, false, "not yours")
        .await
        .unwrap();
    watcher
        .client
        .publish("tenant/dev1/cmd", v4::QoS::AtMostOnce, false, "yours")
        .await
        .unwrap();
    let p = dev1.publish_in().await;
    assert_eq!((p.topic.as_str(), &p.payload[..]), ("temp", &b"21"[..]));
    let p = dev1.publish_in().await;
    assert_eq!((p.topic.as_str(), &p.payload[..]), ("cmd", &b"yours"[..]));
    assert!(dev1.maybe_publish(QUIET).await.is_none());
    // A client id `+` (or `#`, or one with `/`) would widen or move the prefix: refused.
    for (version, id, code) in [
        (ProtocolVersion::V5, "+", 0x85),
        (ProtocolVersion::V3_1_1, "#", 0x02),
        (ProtocolVersion::V5, "dev2/..", 0x85),
    ] {
        let mut raw = Raw::connect(tenant, version).await;
        let ack = raw.handshake(pk::connect(version, id, true, 30)).await;
        assert_eq!(ack.reason_code, code, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqttsn_client_id_that_would_widen_the_mountpoint_is_refused() {
    let s = TestServer::start_with("gateway.mqttsn.mountpoint = \"sn/${clientid}/\"").await;
    let sn = Sn::new(sn_addr(&s)).await;
    sn.send(SnMessage::Connect {
        flags: Flags {
            clean_session: true,
            ..Flags::default()
        },
        protocol_id: 1,
        duration: 60,
        client_id: "+".into(),
    })
    .await;
    match sn.recv().await {
        SnMessage::ConnAck { rc } => assert_eq!(rc, ReturnCode::Other(0x85)),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    sn.connect("fine").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn use_username_as_clientid_names_the_session_after_the_user() {
    let s = TestServer::start_with("mqtt.use_username_as_clientid = true").await;
    let mut opts = v4::options(s.tcp, "ignored-id");
    opts.set_credentials("alice", "pw");
    let _c = v4::connect(opts).await;
    assert!(s.broker().lookup("alice").is_some());
    assert!(s.broker().lookup("ignored-id").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqttsn_listener_keeps_to_max_connections_and_answers_its_health_check() {
    let s = TestServer::start_with(
        "gateway.mqttsn.listeners.udp.default { max_connections = 2, \
         health_check { request = \"ping?\", reply = \"pong!\" } }",
    )
    .await;
    let addr = sn_addr(&s);
    let a = Sn::new(addr).await;
    a.connect("first").await;
    let b = Sn::new(addr).await;
    b.connect("second").await;
    // A third address gets no task and no answer; the first two are still served.
    let c = Sn::new(addr).await;
    c.send(SnMessage::Connect {
        flags: Flags::default(),
        protocol_id: 1,
        duration: 60,
        client_id: "third".into(),
    })
    .await;
    assert!(c.silent_for(QUIET).await, "a third peer was admitted");
    a.send(SnMessage::PingReq { client_id: None }).await;
    assert!(matches!(a.recv().await, SnMessage::PingResp));
    // The load balancer's probe is answered by the listener itself.
    let probe = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    probe.send_to(b"ping?", addr).await.unwrap();
    let mut buf = [0u8; 16];
    let (n, _) = tokio::time::timeout(WAIT, probe.recv_from(&mut buf))
        .await
        .expect("a health check reply")
        .unwrap();
    assert_eq!(&buf[..n], b"pong!");
}
