//! Gateways inside the real server: STOMP ⇄ MQTT across the shared pub/sub space, and
//! gateway changes at run time.

use crate::common::*;
use bytes::BytesMut;
use junction_codec_stomp::{encode, Command, Decoder, Frame, Item, Version};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A minimal STOMP 1.2 client over a raw socket.
pub(crate) struct Stomp {
    stream: TcpStream,
    buf: BytesMut,
    decoder: Decoder,
}

impl Stomp {
    pub(crate) async fn connect(addr: SocketAddr) -> Stomp {
        Self::connect_with(addr, &[("accept-version", "1.2"), ("login", "user")]).await
    }

    pub(crate) async fn connect_with(addr: SocketAddr, headers: &[(&str, &str)]) -> Stomp {
        let stream = TcpStream::connect(addr).await.expect("connect to STOMP");
        let mut c = Stomp {
            stream,
            buf: BytesMut::new(),
            decoder: Decoder::default(),
        };
        let mut connect = Frame::new(Command::Connect).with_header("host", "junction");
        for (k, v) in headers {
            connect = connect.with_header(*k, *v);
        }
        c.send(connect).await;
        let f = c.frame().await.expect("CONNECTED");
        assert_eq!(f.command, Command::Connected, "{f:?}");
        c
    }

    pub(crate) async fn send(&mut self, f: Frame) {
        let mut out = BytesMut::new();
        encode(&f, Version::V1_2, &mut out);
        self.stream.write_all(&out).await.unwrap();
    }

    pub(crate) async fn frame_within(&mut self, d: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(Item::Frame(f))) => return Some(f),
                Ok(Some(Item::HeartBeat)) => continue,
                Ok(None) => {}
                Err(e) => panic!("bad frame from server: {e}"),
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return None,
            }
        }
    }

    pub(crate) async fn frame(&mut self) -> Option<Frame> {
        self.frame_within(WAIT).await
    }

    pub(crate) async fn subscribe(&mut self, id: &str, destination: &str) {
        self.send(
            Frame::new(Command::Subscribe)
                .with_header("id", id)
                .with_header("destination", destination)
                .with_header("receipt", format!("sub-{id}")),
        )
        .await;
        let r = self.frame().await.expect("RECEIPT");
        assert_eq!(r.command, Command::Receipt, "{r:?}");
    }
}

pub(crate) fn stomp_addr(s: &TestServer) -> SocketAddr {
    s.server
        .as_ref()
        .unwrap()
        .local_addr("stomp:tcp:default")
        .expect("stomp listener")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stomp_send_reaches_mqtt_subscriber_under_the_mountpoint() {
    let s = TestServer::start_with("gateway.stomp.mountpoint = \"stomp/\"").await;
    let mut mqtt = v5::simple(s.tcp, "mqtt-side").await;
    mqtt.subscribe("stomp/#", v5::QoS::AtMostOnce).await;
    let mut st = Stomp::connect(stomp_addr(&s)).await;
    st.send(
        Frame::new(Command::Send)
            .with_header("destination", "sensors/t1")
            .with_header("content-type", "application/json")
            .with_body(&b"{\"t\":21}"[..]),
    )
    .await;
    let p = mqtt.publish_in().await;
    assert_eq!(&p.topic[..], b"stomp/sensors/t1");
    assert_eq!(&p.payload[..], b"{\"t\":21}");
    let props = p.properties.expect("properties");
    assert_eq!(props.content_type.as_deref(), Some("application/json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_publish_reaches_a_stomp_wildcard_subscriber() {
    let s = TestServer::start_with("gateway.stomp.mountpoint = \"stomp/\"").await;
    let mut st = Stomp::connect(stomp_addr(&s)).await;
    st.subscribe("1", "room/+/temp").await;
    let publisher = v4::simple(s.tcp, "mqtt-pub").await;
    publisher
        .client
        .publish(
            "stomp/room/kitchen/temp",
            v4::QoS::AtLeastOnce,
            false,
            "22.5",
        )
        .await
        .unwrap();
    let m = st.frame().await.expect("MESSAGE");
    assert_eq!(m.command, Command::Message);
    assert_eq!(m.header("destination"), Some("room/kitchen/temp"));
    assert_eq!(m.header("subscription"), Some("1"));
    assert_eq!(&m.body[..], b"22.5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stomp_and_mqtt_clients_share_one_space_without_sharing_ids() {
    let s = TestServer::start().await;
    let (_mqtt, _) = Raw::open(
        s.tcp,
        junction_codec_mqtt::ProtocolVersion::V5,
        "shared-id",
        true,
    )
    .await;
    let _st = Stomp::connect(stomp_addr(&s)).await;
    let ctx = s.server.as_ref().unwrap().gateway("stomp").await.unwrap();
    eventually("stomp client registered", || ctx.clients.len() == 1).await;
    let stomp_id = ctx.clients.list()[0].clientid.clone();
    assert!(s.broker().lookup_in("stomp", &stomp_id).is_some());
    assert!(s.broker().lookup("shared-id").is_some());
    assert!(s.broker().lookup_in("stomp", "shared-id").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_update_keeps_connections_and_applies_the_new_mountpoint() {
    let s = TestServer::start_with("gateway.stomp.mountpoint = \"old/\"").await;
    let server = s.server.as_ref().unwrap();
    let mut mqtt = v5::simple(s.tcp, "watch-mp").await;
    mqtt.subscribe("+/t", v5::QoS::AtMostOnce).await;
    let addr = stomp_addr(&s);
    let mut before = Stomp::connect(addr).await;

    // The same listener settings (port 0 as before): it keeps running, on its address.
    let config = test_config(&fresh_data_dir(), "gateway.stomp.mountpoint = \"new/\"");
    server.update_gateways(&config).await.unwrap();
    assert_eq!(server.local_addr("stomp:tcp:default"), Some(addr));

    // The old connection still works, with the mountpoint it connected with.
    before
        .send(
            Frame::new(Command::Send)
                .with_header("destination", "t")
                .with_body(&b"a"[..]),
        )
        .await;
    assert_eq!(&mqtt.publish_in().await.topic[..], b"old/t");
    // A new connection gets the new mountpoint.
    let mut after = Stomp::connect(addr).await;
    after
        .send(
            Frame::new(Command::Send)
                .with_header("destination", "t")
                .with_body(&b"b"[..]),
        )
        .await;
    assert_eq!(&mqtt.publish_in().await.topic[..], b"new/t");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_added_at_run_time_accepts_and_unload_closes_the_ports() {
    let s = TestServer::start().await;
    let server = s.server.as_ref().unwrap();
    let first = stomp_addr(&s);
    let listeners = "gateway.stomp.listeners.tcp.extra.bind = \"127.0.0.1:0\"";
    let config = test_config(&fresh_data_dir(), listeners);
    server.update_gateways(&config).await.unwrap();
    let extra = server.local_addr("stomp:tcp:extra").expect("new listener");
    let _c = Stomp::connect(extra).await;

    let config = test_config(
        &fresh_data_dir(),
        &format!("{listeners}\ngateway.stomp.enable = false"),
    );
    server.update_gateways(&config).await.unwrap();
    assert!(server.local_addr("stomp:tcp:default").is_none());
    for addr in [first, extra] {
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "{addr} still accepts"
        );
    }
}

// ------------------------------------------------------------------ MQTT-SN

pub(crate) mod sn {
    use super::*;
    use bytes::Bytes;
    use junction_codec_mqttsn::{decode, encode, Flags, Message, QoS as SnQoS, Topic, TopicIdType};
    use tokio::net::UdpSocket;

    pub struct Sn {
        sock: UdpSocket,
        gw: SocketAddr,
    }

    impl Sn {
        pub async fn new(gw: SocketAddr) -> Sn {
            Sn {
                sock: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
                gw,
            }
        }

        /// Talk to a gateway at another address from the same socket (after a restart).
        pub fn retarget(&mut self, gw: SocketAddr) {
            self.gw = gw;
        }

        pub async fn send(&self, m: Message) {
            let mut b = BytesMut::new();
            encode(&m, &mut b).unwrap();
            self.sock.send_to(&b, self.gw).await.unwrap();
        }

        pub async fn recv(&self) -> Message {
            let mut buf = vec![0u8; 65536];
            let (n, _) = tokio::time::timeout(WAIT, self.sock.recv_from(&mut buf))
                .await
                .expect("a datagram from the gateway")
                .unwrap();
            decode(Bytes::copy_from_slice(&buf[..n])).unwrap()
        }

        pub async fn silent_for(&self, d: Duration) -> bool {
            let mut buf = vec![0u8; 65536];
            tokio::time::timeout(d, self.sock.recv_from(&mut buf))
                .await
                .is_err()
        }

        pub async fn connect(&self, id: &str) {
            self.send(Message::Connect {
                flags: Flags {
                    clean_session: true,
                    ..Flags::default()
                },
                protocol_id: 1,
                duration: 60,
                client_id: id.into(),
            })
            .await;
            assert!(matches!(self.recv().await, Message::ConnAck { .. }));
        }

        /// Subscribe at QoS 1 to a 2-character short topic and wait for the SUBACK.
        pub async fn subscribe_short(&self, topic: &[u8; 2]) {
            self.send(Message::Subscribe {
                flags: Flags {
                    qos: SnQoS::AtLeastOnce,
                    topic_id_type: TopicIdType::Short,
                    ..Flags::default()
                },
                msg_id: 1,
                topic: Topic::Short(*topic),
            })
            .await;
            assert!(matches!(self.recv().await, Message::SubAck { .. }));
        }

        /// Publish at QoS 0 on a 2-character short topic.
        pub async fn publish_short(&self, topic: &[u8; 2], data: &'static [u8]) {
            self.send(Message::Publish {
                flags: Flags {
                    qos: SnQoS::AtMostOnce,
                    topic_id_type: TopicIdType::Short,
                    ..Flags::default()
                },
                topic: Topic::Short(*topic),
                msg_id: 0,
                data: Bytes::from_static(data),
            })
            .await;
        }
    }
}

pub(crate) fn sn_addr(s: &TestServer) -> SocketAddr {
    s.server
        .as_ref()
        .unwrap()
        .local_addr("mqttsn:udp:default")
        .expect("mqttsn listener")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqttsn_publish_reaches_mqtt_and_stomp_subscribers() {
    let s = TestServer::start().await;
    let mut mqtt = v4::simple(s.tcp, "sn-watch").await;
    mqtt.subscribe("ab", v4::QoS::AtMostOnce).await;
    let mut st = Stomp::connect(stomp_addr(&s)).await;
    st.subscribe("1", "ab").await;
    let sn = sn::Sn::new(sn_addr(&s)).await;
    sn.connect("sn-dev").await;
    sn.publish_short(b"ab", b"from-sn").await;
    let p = mqtt.publish_in().await;
    assert_eq!(&p.payload[..], b"from-sn");
    let m = st.frame().await.expect("MESSAGE");
    assert_eq!(&m.body[..], b"from-sn");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_publish_reaches_a_sleeping_mqttsn_client_on_wake_up() {
    use junction_codec_mqttsn::Message;
    let s = TestServer::start().await;
    let sn = sn::Sn::new(sn_addr(&s)).await;
    sn.connect("sleepy-sn").await;
    sn.subscribe_short(b"zz").await;
    sn.send(Message::Disconnect { duration: Some(60) }).await;
    assert!(matches!(sn.recv().await, Message::Disconnect { .. }));
    let publisher = v4::simple(s.tcp, "wake-pub").await;
    publisher
        .client
        .publish("zz", v4::QoS::AtLeastOnce, false, "while asleep")
        .await
        .unwrap();
    let mut publisher = publisher;
    publisher
        .wait_for("PUBACK", |p| matches!(p, v4::Packet::PubAck(_)))
        .await;
    // Nothing reaches the client while it sleeps; the message waits in its session.
    assert!(sn.silent_for(QUIET).await, "no datagram while asleep");
    sn.send(Message::PingReq {
        client_id: Some("sleepy-sn".into()),
    })
    .await;
    match sn.recv().await {
        Message::Publish { data, msg_id, .. } => {
            assert_eq!(&data[..], b"while asleep");
            sn.send(Message::PubAck {
                topic_id: u16::from_be_bytes(*b"zz"),
                msg_id,
                rc: junction_codec_mqttsn::ReturnCode::Accepted,
            })
            .await;
        }
        other => panic!("expected the buffered PUBLISH, got {other:?}"),
    }
    assert!(matches!(sn.recv().await, Message::PingResp));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_client_id_on_mqtt_stomp_and_mqttsn_all_stay_connected() {
    // EMQX's clientinfo_override lets a STOMP client choose its id from a header.
    let s = TestServer::start_with(
        "gateway.stomp.clientinfo_override.clientid = \"${Packet.headers.client-id}\"",
    )
    .await;
    let (_mqtt, ack) = Raw::open(
        s.tcp,
        junction_codec_mqtt::ProtocolVersion::V5,
        "same-everywhere",
        true,
    )
    .await;
    assert_eq!(ack.reason_code, 0);
    let sn = sn::Sn::new(sn_addr(&s)).await;
    sn.connect("same-everywhere").await;
    let _st = Stomp::connect_with(
        stomp_addr(&s),
        &[("accept-version", "1.2"), ("client-id", "same-everywhere")],
    )
    .await;
    let mqtt_cell = s.broker().lookup("same-everywhere").unwrap();
    let sn_cell = s.broker().lookup_in("mqttsn", "same-everywhere").unwrap();
    let stomp_cell = s.broker().lookup_in("stomp", "same-everywhere").unwrap();
    assert!(mqtt_cell.is_online() && sn_cell.is_online() && stomp_cell.is_online());
    // Neither took the other over: the MQTT connection still answers.
    let mut probe = _mqtt;
    probe.send(&junction_codec_mqtt::Packet::PingReq).await;
    assert_eq!(
        probe.recv().await,
        Some(junction_codec_mqtt::Packet::PingResp)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_mqttsn_datagrams_leave_the_gateway_serving() {
    let s = TestServer::start().await;
    let gw = sn_addr(&s);
    let mut mqtt = v4::simple(s.tcp, "sn-bystander-watch").await;
    mqtt.subscribe("ok", v4::QoS::AtMostOnce).await;
    // A connected bystander, before the attack.
    let bystander = sn::Sn::new(gw).await;
    bystander.connect("bystander").await;

    let attacker = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut hostile: Vec<Vec<u8>> = vec![
        vec![],                                                     // empty datagram
        vec![0x05],                                                 // length only
        vec![0x02, 0x04],                                           // CONNECT cut short
        vec![0x10, 0x0c, 0x00],       // length larger than the datagram
        vec![0x03, 0xff, 0x00],       // unknown message type
        vec![0x01, 0x00, 0x02, 0x04], // long form with a length below its header
        vec![0x09, 0x04, 0x04, 0x01, 0x00, 0x3c, 0xff, 0xfe, 0x80], // CONNECT, bad UTF-8 id
        vec![0x07, 0x0c, 0x63, 0x00, 0x01, 0x00, 0x00], // PUBLISH, reserved topic type
    ];
    // Seeded pseudo-random datagrams.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..500 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 40) as usize;
        let mut d = Vec::with_capacity(len);
        for i in 0..len {
            d.push((x >> ((i % 8) * 8)) as u8 ^ i as u8);
        }
        if let Some(first) = d.first_mut() {
            *first = len as u8; // plausible length byte
        }
        hostile.push(d);
    }
    for d in &hostile {
        attacker.send_to(d, gw).await.unwrap();
    }
    // The gateway still serves the bystander and new clients. UDP may drop datagrams while
    // the flood fills the socket buffer, so a real client would retry: so does the test.
    let mut delivered = false;
    for _ in 0..20 {
        bystander.publish_short(b"ok", b"still here").await;
        if let Some(p) = mqtt.maybe_publish(Duration::from_millis(250)).await {
            assert_eq!(&p.payload[..], b"still here");
            delivered = true;
            break;
        }
    }
    assert!(delivered, "the bystander's publish never got through");
    while mqtt.maybe_publish(QUIET).await.is_some() {}
    let newcomer = sn::Sn::new(gw).await;
    newcomer.connect("newcomer").await;
    newcomer.publish_short(b"ok", b"new").await;
    assert_eq!(&mqtt.publish_in().await.payload[..], b"new");
}

#[tokio::test]
async fn the_zone_session_settings_reach_mqttsn_sessions() {
    use junction_codec_mqttsn::{Flags, Message, QoS as SnQoS, Topic, TopicIdType};
    // `mqtt.retry_interval` applies to gateway sessions as to MQTT ones.
    let s = TestServer::start_with("mqtt.retry_interval = \"300ms\"").await;
    let sn = sn::Sn::new(sn_addr(&s)).await;
    sn.connect("retry-sn").await;
    sn.send(Message::Subscribe {
        flags: Flags {
            qos: SnQoS::AtLeastOnce,
            topic_id_type: TopicIdType::Short,
            ..Flags::default()
        },
        msg_id: 1,
        topic: Topic::Short(*b"rr"),
    })
    .await;
    assert!(matches!(sn.recv().await, Message::SubAck { .. }));
    let publisher = v4::simple(s.tcp, "retry-pub").await;
    publisher
        .client
        .publish("rr", v4::QoS::AtLeastOnce, false, "again")
        .await
        .unwrap();
    let Message::Publish { flags, msg_id, .. } = sn.recv().await else {
        panic!("expected PUBLISH")
    };
    assert!(!flags.dup);
    // Not acknowledged: resent with DUP after the configured 300 ms (default is 30 s).
    match sn.recv().await {
        Message::Publish {
            flags, msg_id: id, ..
        } => {
            assert!(flags.dup);
            assert_eq!(id, msg_id);
        }
        other => panic!("expected the resend, got {other:?}"),
    }
}
