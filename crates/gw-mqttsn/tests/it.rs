//! End-to-end tests of the MQTT-SN gateway: a real broker, gateway context and UDP listener,
//! driven by a raw UDP client that encodes and decodes with the codec.

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use junction_broker::{system_message, Broker, OpenSession, SessionCell};
use junction_codec_mqttsn::{
    decode, encode, Flags, Message, QoS as SnQoS, ReturnCode, Topic, TopicIdType,
};
use junction_gateway::{CommonSettings, GatewayCtx};
use junction_gw_mqttsn::{start_udp, MqttSnSettings, UdpListenerHandle};
use junction_session::{Outbound, SessionLimits, SubOptions};
use junction_types::QoS;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::time::{timeout, Instant};

const WAIT: Duration = Duration::from_secs(3);

struct Env {
    /// The broker the gateway was given (the harness's; the gateway reaches it only
    /// through its context).
    broker: Arc<Broker>,
    ctx: Arc<GatewayCtx>,
    addr: SocketAddr,
    _listener: UdpListenerHandle,
}

async fn env_with(mountpoint: &str, settings: MqttSnSettings) -> Env {
    env_common(
        CommonSettings {
            mountpoint: mountpoint.into(),
            ..CommonSettings::default()
        },
        settings,
    )
    .await
}

async fn env_common(common: CommonSettings, settings: MqttSnSettings) -> Env {
    let broker = Broker::new(Default::default());
    let ctx = GatewayCtx::new(
        "mqttsn",
        "mqtt-sn",
        junction_gw_mqttsn::FRAMES,
        broker.clone(),
        CommonSettings {
            idle_timeout: Duration::from_secs(5),
            ..common
        },
    );
    let listener = start_udp(
        ctx.clone(),
        Arc::new(settings),
        "mqttsn:udp:default".into(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    Env {
        broker,
        ctx,
        addr: listener.local_addr,
        _listener: listener,
    }
}

async fn env() -> Env {
    env_with(
        "",
        MqttSnSettings {
            predefined: vec![(1, "pre/one".into()), (2, "pre/two".into())],
            ..MqttSnSettings::default()
        },
    )
    .await
}

struct Client {
    sock: UdpSocket,
    gw: SocketAddr,
}

impl Client {
    async fn new(gw: SocketAddr) -> Client {
        Client {
            sock: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            gw,
        }
    }

    async fn send(&self, m: Message) {
        let mut b = BytesMut::new();
        encode(&m, &mut b).unwrap();
        self.sock.send_to(&b, self.gw).await.unwrap();
    }

    async fn recv(&self) -> Message {
        let mut buf = vec![0u8; 65536];
        let (n, _) = timeout(WAIT, self.sock.recv_from(&mut buf))
            .await
            .expect("no datagram from the gateway")
            .unwrap();
        decode(Bytes::copy_from_slice(&buf[..n])).unwrap()
    }

    async fn silent_for(&self, d: Duration) -> bool {
        let mut buf = vec![0u8; 65536];
        timeout(d, self.sock.recv_from(&mut buf)).await.is_err()
    }

    async fn connect_with(&self, id: &str, clean: bool, duration: u16) -> Message {
        self.send(Message::Connect {
            flags: Flags {
                clean_session: clean,
                ..Flags::default()
            },
            protocol_id: 1,
            duration,
            client_id: id.into(),
        })
        .await;
        self.recv().await
    }

    async fn connect(&self, id: &str) {
        let r = self.connect_with(id, true, 60).await;
        assert_eq!(
            r,
            Message::ConnAck {
                rc: ReturnCode::Accepted
            }
        );
    }

    async fn subscribe(&self, topic: Topic, qos: SnQoS, msg_id: u16) -> Message {
        self.send(Message::Subscribe {
            flags: Flags {
                qos,
                topic_id_type: topic.id_type(),
                ..Flags::default()
            },
            msg_id,
            topic,
        })
        .await;
        self.recv().await
    }

    async fn publish(&self, topic: Topic, qos: SnQoS, msg_id: u16, data: &'static [u8]) {
        self.send(Message::Publish {
            flags: Flags {
                qos,
                topic_id_type: topic.id_type(),
                ..Flags::default()
            },
            topic,
            msg_id,
            data: Bytes::from_static(data),
        })
        .await;
    }
}

/// An MQTT-side session subscribed to `filter`.
fn mqtt_sub(e: &Env, filter: &str) -> Arc<SessionCell> {
    let (tx, rx) = oneshot::channel();
    std::mem::forget(rx);
    let opened = e.broker.open_session(OpenSession {
        namespace: ByteString::new(),
        client_id: "mqtt-sub".into(),
        clean_start: true,
        expiry_interval_secs: 0,
        limits: SessionLimits::default(),
        conn_id: 1,
        kick: tx,
    });
    e.broker
        .subscribe(
            &opened.cell,
            filter,
            SubOptions {
                qos: QoS::ExactlyOnce,
                ..SubOptions::default()
            },
        )
        .unwrap();
    opened.cell
}

/// (topic, payload) delivered to the MQTT session, waiting up to `WAIT` for `n` of them.
async fn mqtt_received(cell: &SessionCell, n: usize) -> Vec<(String, Bytes)> {
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        let mut out = Vec::new();
        cell.take_outbox(1, &mut out);
        for o in out {
            if let Outbound::Publish { delivery, .. } = o {
                got.push((
                    delivery.message.topic.to_string(),
                    delivery.message.payload.clone(),
                ));
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    got
}

fn bmsg(topic: &str, payload: &'static str, qos: QoS) -> junction_types::Message {
    let mut m = system_message(topic.into(), payload, false);
    m.qos = qos;
    m
}

#[tokio::test]
async fn connect_ping_and_disconnect() {
    let e = env().await;
    let c = Client::new(e.addr).await;
    c.connect("c1").await;
    assert_eq!(e.ctx.clients.len(), 1);
    assert_eq!(e.ctx.clients.list()[0].protocol, "mqtt-sn");
    c.send(Message::PingReq { client_id: None }).await;
    assert_eq!(c.recv().await, Message::PingResp);
    c.send(Message::Disconnect { duration: None }).await;
    assert_eq!(c.recv().await, Message::Disconnect { duration: None });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(e.ctx.clients.is_empty());
    assert_eq!(e.ctx.metrics.get("packets.connect.received"), 1);
    assert_eq!(e.ctx.metrics.get("packets.connack.sent"), 1);
    assert_eq!(e.ctx.metrics.get("packets.pingresp.sent"), 1);
}

#[tokio::test]
async fn empty_client_id_gets_a_random_one() {
    let e = env().await;
    let c = Client::new(e.addr).await;
    c.connect("").await;
    let list = e.ctx.clients.list();
    assert_eq!(list[0].clientid.len(), 16);
}

#[tokio::test]
async fn searchgw_is_answered_with_gwinfo() {
    let e = env_with(
        "",
        MqttSnSettings {
            gateway_id: 7,
            ..Default::default()
        },
    )
    .await;
    let c = Client::new(e.addr).await;
    c.send(Message::SearchGw { radius: 0 }).await;
    assert_eq!(
        c.recv().await,
        Message::GwInfo {
            gw_id: 7,
            gw_add: Bytes::new()
        }
    );
    assert_eq!(e.ctx.metrics.get("packets.serachgw.received"), 1);
}

#[tokio::test]
async fn idle_packets_other_than_connect_are_ignored_and_disconnect_is_answered() {
    let e = env().await;
    let c = Client::new(e.addr).await;
    c.send(Message::PingReq { client_id: None }).await;
    assert!(c.silent_for(Duration::from_millis(200)).await);
    c.send(Message::Disconnect { duration: None }).await;
    assert_eq!(c.recv().await, Message::Disconnect { duration: None });
}

#[tokio::test]
async fn register_then_publish_qos1_reaches_an_mqtt_subscriber() {
    let e = env().await;
    let sub = mqtt_sub(&e, "#");
    let c = Client::new(e.addr).await;
    c.connect("p1").await;
    c.send(Message::Register {
        topic_id: 0,
        msg_id: 5,
        topic_name: "a/b".into(),
    })
    .await;
    let Message::RegAck {
        topic_id,
        msg_id: 5,
        rc: ReturnCode::Accepted,
    } = c.recv().await
    else {
        panic!("no REGACK")
    };
    assert_eq!(topic_id, 1025);
    c.publish(Topic::Id(topic_id), SnQoS::AtLeastOnce, 9, b"hello")
        .await;
    assert_eq!(
        c.recv().await,
        Message::PubAck {
            topic_id,
            msg_id: 9,
            rc: ReturnCode::Accepted
        }
    );
    let got = mqtt_received(&sub, 1).await;
    assert_eq!(got, vec![("a/b".to_string(), Bytes::from_static(b"hello"))]);
}

#[tokio::test]
async fn register_wildcard_and_predefined_names() {
    let e = env().await;
    let c = Client::new(e.addr).await;
    c.connect("r1").await;
    c.send(Message::Register {
        topic_id: 0,
        msg_id: 1,
        topic_name: "a/+".into(),
    })
    .await;
    assert_eq!(
        c.recv().await,
        Message::RegAck {
            topic_id: 0,
            msg_id: 1,
            rc: ReturnCode::NotSupported
        }
    );
    c.send(Message::Register {
        topic_id: 0,
        msg_id: 2,
        topic_name: "pre/two".into(),
    })
    .await;
    assert_eq!(
        c.recv().await,
        Message::RegAck {
            topic_id: 2,
            msg_id: 2,
            rc: ReturnCode::Accepted
        }
    );
}

#[tokio::test]
async fn publish_predefined_and_short_topics_and_unknown_ids() {
    let e = env().await;
    let sub = mqtt_sub(&e, "#");
    let c = Client::new(e.addr).await;
    c.connect("p2").await;
    c.publish(Topic::Predefined(1), SnQoS::AtMostOnce, 0, b"x")
        .await;
    c.publish(Topic::Short(*b"ab"), SnQoS::AtLeastOnce, 3, b"y")
        .await;
    assert_eq!(
        c.recv().await,
        Message::PubAck {
            topic_id: u16::from_be_bytes(*b"ab"),
            msg_id: 3,
            rc: ReturnCode::Accepted
        }
    );
    c.publish(Topic::Id(4242), SnQoS::AtLeastOnce, 4, b"z")
        .await;
    assert_eq!(
        c.recv().await,
        Message::PubAck {
            topic_id: 4242,
            msg_id: 4,
            rc: ReturnCode::InvalidTopicId
        }
    );
    c.publish(Topic::Predefined(99), SnQoS::AtLeastOnce, 5, b"z")
        .await;
    assert_eq!(
        c.recv().await,
        Message::PubAck {
            topic_id: 99,
            msg_id: 5,
            rc: ReturnCode::InvalidTopicId
        }
    );
    c.publish(Topic::Short(*b"a#"), SnQoS::AtLeastOnce, 6, b"z")
        .await;
    let Message::PubAck {
        rc: ReturnCode::NotSupported,
        ..
    } = c.recv().await
    else {
        panic!("wildcard short topic accepted")
    };
    let got = mqtt_received(&sub, 2).await;
    assert_eq!(
        got,
        vec![
            ("pre/one".to_string(), Bytes::from_static(b"x")),
            ("ab".to_string(), Bytes::from_static(b"y")),
        ]
    );
}

#[tokio::test]
async fn publish_is_mounted_for_mqtt_subscribers() {
    let e = env_with("sn/${clientid}/", MqttSnSettings::default()).await;
    let sub = mqtt_sub(&e, "sn/#");
    let c = Client::new(e.addr).await;
    c.connect("m1").await;
    c.publish(Topic::Short(*b"tt"), SnQoS::AtMostOnce, 0, b"v")
        .await;
    let got = mqtt_received(&sub, 1).await;
    assert_eq!(
        got,
        vec![("sn/m1/tt".to_string(), Bytes::from_static(b"v"))]
    );
}

#[tokio::test]
async fn subscribe_normal_name_allocates_an_id_and_delivers_with_it() {
    let e = env().await;
    let c = Client::new(e.addr).await;
    c.connect("s1").await;
    let Message::SubAck {
        topic_id,
        msg_id: 1,
        rc: ReturnCode::Accepted,
        flags,
    } = c
        .subscribe(Topic::Name("x/y".into()), SnQoS::AtLeastOnce, 1)
        .await
    else {
        panic!("no SUBACK")
    };
    assert_eq!(topic_id, 1025);
    assert_eq!(flags.qos, SnQoS::AtLeastOnce);
    e.broker.publish(bmsg("x/y", "p", QoS::AtMostOnce));
    let Message::Publish {
        topic,
        msg_id: 0,
        data,
        flags,
    } = c.recv().await
    else {
        panic!("no PUBLISH")
    };
    assert_eq!(topic, Topic::Id(1025));
    assert_eq!(flags.topic_id_type, TopicIdType::Normal);
    assert_eq!(data, Bytes::from_static(b"p"));
}

#[tokio::test]
async fn wildcard_subscription_registers_before_the_first_delivery() {
    let e = env().await;
    let c = Client::new(e.addr).await;
    c.connect("s2").await;
    let Message::SubAck {
        topic_id: 0,
        rc: ReturnCode::Accepted,
        ..
    } = c
        .subscribe(Topic::Name("w/#".into()), SnQoS::AtMostOnce, 1)
        .await
    else {
        panic!("bad SUBACK")
    };
    e.broker.publish(bmsg("w/long/name", "1", QoS::AtMostOnce));
    e.broker.publish(bmsg("w/long/name", "2", QoS::AtMostOnce));
    let Message::Register {
        topic_id,
        msg_id,
        topic_name,
    } = c.recv().await
    else {
        panic!("no REGISTER")
    };
    assert_eq!(topic_name, "w/long/name");
    // Held until REGACK.
    assert!(c.silent_for(Duration::from_millis(150)).await);
    c.send(Message::RegAck {
        topic_id,
        msg_id,
        rc: ReturnCode::Accepted,
    })
    .await;
    for p in ["1", "2"] {
        let Message::Publish { topic, data, .. } = c.recv().await else {
            panic!("no PUBLISH")
        };
        assert_eq!(topic, Topic::Id(topic_id));
        assert_eq!(data, Bytes::from(p));
    }
}

#[tokio::test]
async fn subscribe_predefined_short_and_unknown_ids() {
    let e = env().await;
    let c = Client::new(e.addr).await;
    c.connect("s3").await;
    let Message::SubAck {
        topic_id: 2,
        rc: ReturnCode::Accepted,
        ..
    } = c
        .subscribe(Topic::Predefined(2), SnQoS::AtMostOnce, 1)
        .await
    else {
        panic!("bad SUBACK")
    };
    let Message::SubAck {
        topic_id: 0,
        rc: ReturnCode::InvalidTopicId,
        ..
    } = c
        .subscribe(Topic::Predefined(77), SnQoS::AtMostOnce, 2)
        .await
    else {
        panic!("bad SUBACK")
    };
    let Message::SubAck {
        topic_id: 0,
        rc: ReturnCode::Accepted,
        ..
    } = c
        .subscribe(Topic::Short(*b"zz"), SnQoS::AtMostOnce, 3)
        .await
    else {
        panic!("bad SUBACK")
    };
    e.broker.publish(bmsg("pre/two", "a", QoS::AtMostOnce));
    let Message::Publish {
        topic: Topic::Predefined(2),
        ..
    } = c.recv().await
    else {
        panic!("predefined delivery")
    };
    e.broker.publish(bmsg("zz", "b", QoS::AtMostOnce));
    let Message::Publish {
        topic: Topic::Short(t),
        ..
    } = c.recv().await
    else {
        panic!("short delivery")
    };
    assert_eq!(&t, b"zz");
    c.send(Message::Unsubscribe {
        flags: Flags {
            topic_id_type: TopicIdType::Short,
            ..Flags::default()
        },
        msg_id: 4,
        topic: Topic::Short(*b"zz"),
    })
    .await;
    assert_eq!(c.recv().await, Message::UnsubAck { msg_id: 4 });
    e.broker.publish(bmsg("zz", "c", QoS::AtMostOnce));
    assert!(c.silent_for(Duration::from_millis(150)).await);
}

#[tokio::test]
async fn qos1_deliveries_use_a_window_of_one() {
    let e = env().await;
    let c = Client::new(e.addr).await;
    c.connect("q1").await;
    c.subscribe(Topic::Short(*b"q1"), SnQoS::AtLeastOnce, 1)
        .await;
    e.broker.publish(bmsg("q1", "1", QoS::AtLeastOnce));
    e.broker.publish(bmsg("q1", "2", QoS::AtLeastOnce));
    let Message::Publish {
        msg_id,
        data,
        flags,
        ..
    } = c.recv().await
    else {
        panic!()
    };
    assert_eq!(flags.qos, SnQoS::AtLeastOnce);
    assert_eq!(data, Bytes::from_static(b"1"));
    assert!(c.silent_for(Duration::from_millis(150)).await);
    c.send(Message::PubAck {
        topic_id: 0,
        msg_id,
        rc: ReturnCode::Accepted,
    })
    .await;
    let Message::Publish { data, .. } = c.recv().await else {
        panic!()
    };
    assert_eq!(data, Bytes::from_static(b"2"));
    assert_eq!(e.ctx.metrics.get("messages.acked"), 1);
}

#[tokio::test]
async fn qos2_publish_from_the_client() {
    let e = env().await;
    let sub = mqtt_sub(&e, "#");
    let c = Client::new(e.addr).await;
    c.connect("q2in").await;
    c.publish(Topic::Short(*b"k2"), SnQoS::ExactlyOnce, 11, b"once")
        .await;
    assert_eq!(c.recv().await, Message::PubRec { msg_id: 11 });
    c.send(Message::PubRel { msg_id: 11 }).await;
    assert_eq!(c.recv().await, Message::PubComp { msg_id: 11 });
    let got = mqtt_received(&sub, 1).await;
    assert_eq!(got, vec![("k2".to_string(), Bytes::from_static(b"once"))]);
}

#[tokio::test]
async fn qos2_delivery_to_the_client() {
    let e = env().await;
    let c = Client::new(e.addr).await;
    c.connect("q2out").await;
    c.subscribe(Topic::Short(*b"k3"), SnQoS::ExactlyOnce, 1)
        .await;
    e.broker.publish(bmsg("k3", "x", QoS::ExactlyOnce));
    let Message::Publish { msg_id, flags, .. } = c.recv().await else {
        panic!()
    };
    assert_eq!(flags.qos, SnQoS::ExactlyOnce);
    c.send(Message::PubRec { msg_id }).await;
    assert_eq!(c.recv().await, Message::PubRel { msg_id });
    c.send(Message::PubComp { msg_id }).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(e.ctx.metrics.get("messages.acked"), 1);
}

#[tokio::test]
async fn qos_minus_one_without_connecting() {
    let e = env().await;
    let sub = mqtt_sub(&e, "#");
    let c = Client::new(e.addr).await;
    c.publish(Topic::Short(*b"nq"), SnQoS::MinusOne, 0, b"fire")
        .await;
    c.publish(Topic::Predefined(1), SnQoS::MinusOne, 0, b"forget")
        .await;
    let got = mqtt_received(&sub, 2).await;
    assert_eq!(
        got,
        vec![
            ("nq".to_string(), Bytes::from_static(b"fire")),
            ("pre/one".to_string(), Bytes::from_static(b"forget")),
        ]
    );
    assert!(e.ctx.clients.is_empty());

    let e = env_with(
        "",
        MqttSnSettings {
            enable_qos3: false,
            ..Default::default()
        },
    )
    .await;
    let c = Client::new(e.addr).await;
    c.publish(Topic::Short(*b"nq"), SnQoS::MinusOne, 0, b"fire")
        .await;
    assert_eq!(
        c.recv().await,
        Message::PubAck {
            topic_id: u16::from_be_bytes(*b"nq"),
            msg_id: 0,
            rc: ReturnCode::NotSupported
        }
    );
}

async fn connect_with_will(c: &Client, id: &str, duration: u16, topic: &str, msg: &'static [u8]) {
    c.send(Message::Connect {
        flags: Flags {
            will: true,
            clean_session: true,
            ..Flags::default()
        },
        protocol_id: 1,
        duration,
        client_id: id.into(),
    })
    .await;
    assert_eq!(c.recv().await, Message::WillTopicReq);
    c.send(Message::WillTopic {
        flags: Flags::default(),
        topic: Some(topic.into()),
    })
    .await;
    assert_eq!(c.recv().await, Message::WillMsgReq);
    c.send(Message::WillMsg {
        payload: Bytes::from_static(msg),
    })
    .await;
    assert_eq!(
        c.recv().await,
        Message::ConnAck {
            rc: ReturnCode::Accepted
        }
    );
}

#[tokio::test]
async fn will_is_published_on_keepalive_timeout() {
    let e = env().await;
    let sub = mqtt_sub(&e, "will/#");
    let c = Client::new(e.addr).await;
    connect_with_will(&c, "w1", 1, "will/w1", b"gone").await;
    // 1 s keepalive × 1.5.
    assert_eq!(c.recv().await, Message::Disconnect { duration: None });
    let got = mqtt_received(&sub, 1).await;
    assert_eq!(
        got,
        vec![("will/w1".to_string(), Bytes::from_static(b"gone"))]
    );
}

#[tokio::test]
async fn will_updates_and_no_will_on_disconnect() {
    let e = env().await;
    let sub = mqtt_sub(&e, "will/#");
    let c = Client::new(e.addr).await;
    connect_with_will(&c, "w2", 60, "will/old", b"old").await;
    c.send(Message::WillTopicUpd {
        flags: Flags::default(),
        topic: Some("will/new".into()),
    })
    .await;
    assert_eq!(
        c.recv().await,
        Message::WillTopicResp {
            rc: ReturnCode::Accepted
        }
    );
    c.send(Message::WillMsgUpd {
        payload: Bytes::from_static(b"new"),
    })
    .await;
    assert_eq!(
        c.recv().await,
        Message::WillMsgResp {
            rc: ReturnCode::Accepted
        }
    );
    c.send(Message::Disconnect { duration: None }).await;
    assert_eq!(c.recv().await, Message::Disconnect { duration: None });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut out = Vec::new();
    sub.take_outbox(1, &mut out);
    assert!(out.is_empty(), "will published on DISCONNECT");

    // The updated will goes out when the client is kicked.
    let c = Client::new(e.addr).await;
    connect_with_will(&c, "w3", 60, "will/old", b"old").await;
    c.send(Message::WillTopicUpd {
        flags: Flags::default(),
        topic: Some("will/new".into()),
    })
    .await;
    c.recv().await;
    c.send(Message::WillMsgUpd {
        payload: Bytes::from_static(b"new"),
    })
    .await;
    c.recv().await;
    assert!(e
        .ctx
        .clients
        .kick("w3", junction_broker::KickReason::Administrative));
    let got = mqtt_received(&sub, 1).await;
    assert_eq!(
        got,
        vec![("will/new".to_string(), Bytes::from_static(b"new"))]
    );
}

#[tokio::test]
async fn empty_will_topic_connects_without_a_will() {
    let e = env().await;
    let c = Client::new(e.addr).await;
    c.send(Message::Connect {
        flags: Flags {
            will: true,
            clean_session: true,
            ..Flags::default()
        },
        protocol_id: 1,
        duration: 60,
        client_id: "w4".into(),
    })
    .await;
    assert_eq!(c.recv().await, Message::WillTopicReq);
    c.send(Message::WillTopic {
        flags: Flags::default(),
        topic: None,
    })
    .await;
    assert_eq!(
        c.recv().await,
        Message::ConnAck {
            rc: ReturnCode::Accepted
        }
    );
}

#[tokio::test]
async fn sleeping_client_gets_queued_messages_on_pingreq() {
    let e = env().await;
    let c = Client::new(e.addr).await;
    c.connect("z1").await;
    c.subscribe(Topic::Name("sleep/t".into()), SnQoS::AtLeastOnce, 1)
        .await;
    c.send(Message::Disconnect { duration: Some(60) }).await;
    assert_eq!(c.recv().await, Message::Disconnect { duration: None });
    e.broker.publish(bmsg("sleep/t", "a", QoS::AtLeastOnce));
    e.broker.publish(bmsg("sleep/t", "b", QoS::AtMostOnce));
    assert!(c.silent_for(Duration::from_millis(200)).await);
    c.send(Message::PingReq {
        client_id: Some("z1".into()),
    })
    .await;
    let Message::Publish {
        msg_id,
        data,
        topic: Topic::Id(1025),
        ..
    } = c.recv().await
    else {
        panic!("no queued PUBLISH")
    };
    assert_eq!(data, Bytes::from_static(b"a"));
    c.send(Message::PubAck {
        topic_id: 1025,
        msg_id,
        rc: ReturnCode::Accepted,
    })
    .await;
    let Message::Publish { data, .. } = c.recv().await else {
        panic!()
    };
    assert_eq!(data, Bytes::from_static(b"b"));
    assert_eq!(c.recv().await, Message::PingResp);
    // Back asleep.
    e.broker.publish(bmsg("sleep/t", "c", QoS::AtMostOnce));
    assert!(c.silent_for(Duration::from_millis(200)).await);
    // CONNECT wakes it for good.
    assert_eq!(
        c.connect_with("z1", false, 60).await,
        Message::ConnAck {
            rc: ReturnCode::Accepted
        }
    );
    let Message::Publish { data, .. } = c.recv().await else {
        panic!()
    };
    assert_eq!(data, Bytes::from_static(b"c"));
}

#[tokio::test]
async fn persistent_session_resumes_with_registration_of_queued_topics() {
    let e = env().await;
    let c = Client::new(e.addr).await;
    assert_eq!(
        c.connect_with("keep", false, 60).await,
        Message::ConnAck {
            rc: ReturnCode::Accepted
        }
    );
    c.subscribe(Topic::Name("keep/t".into()), SnQoS::AtLeastOnce, 1)
        .await;
    c.send(Message::Disconnect { duration: None }).await;
    c.recv().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    e.broker
        .publish(bmsg("keep/t", "while away", QoS::AtLeastOnce));
    let c = Client::new(e.addr).await;
    assert_eq!(
        c.connect_with("keep", false, 60).await,
        Message::ConnAck {
            rc: ReturnCode::Accepted
        }
    );
    let m = c.recv().await;
    let Message::Register {
        topic_id,
        msg_id,
        topic_name,
    } = m
    else {
        panic!("no REGISTER: {m:?}")
    };
    assert_eq!(topic_name, "keep/t");
    c.send(Message::RegAck {
        topic_id,
        msg_id,
        rc: ReturnCode::Accepted,
    })
    .await;
    let Message::Publish { data, .. } = c.recv().await else {
        panic!()
    };
    assert_eq!(data, Bytes::from_static(b"while away"));
}

#[tokio::test]
async fn nat_rebinding_moves_the_session_to_the_new_address() {
    let e = env().await;
    let a = Client::new(e.addr).await;
    a.connect("nat").await;
    a.subscribe(Topic::Short(*b"nt"), SnQoS::AtMostOnce, 1)
        .await;
    let b = Client::new(e.addr).await;
    b.send(Message::PingReq {
        client_id: Some("nat".into()),
    })
    .await;
    assert_eq!(b.recv().await, Message::PingResp);
    e.broker.publish(bmsg("nt", "moved", QoS::AtMostOnce));
    let Message::Publish { data, .. } = b.recv().await else {
        panic!()
    };
    assert_eq!(data, Bytes::from_static(b"moved"));
    assert!(a.silent_for(Duration::from_millis(150)).await);
    assert_eq!(e.ctx.clients.len(), 1);
    assert_eq!(
        e.ctx.clients.list()[0].peername,
        b.sock.local_addr().unwrap()
    );
}

#[tokio::test]
async fn reconnect_from_a_new_address_takes_the_session_over() {
    let e = env().await;
    let a = Client::new(e.addr).await;
    assert_eq!(
        a.connect_with("mv", false, 60).await,
        Message::ConnAck {
            rc: ReturnCode::Accepted
        }
    );
    a.subscribe(Topic::Short(*b"mv"), SnQoS::AtMostOnce, 1)
        .await;
    let b = Client::new(e.addr).await;
    assert_eq!(
        b.connect_with("mv", false, 60).await,
        Message::ConnAck {
            rc: ReturnCode::Accepted
        }
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    e.broker.publish(bmsg("mv", "here", QoS::AtMostOnce));
    let Message::Publish { data, .. } = b.recv().await else {
        panic!()
    };
    assert_eq!(data, Bytes::from_static(b"here"));
    assert_eq!(e.ctx.clients.len(), 1);
}

// ---------------------------------------------------------------------------------------
// ADVERTISE (`broadcast`)

/// A UDP socket standing in for the broadcast address.
async fn advertise_env(broadcast: bool, period: Duration) -> (Env, UdpSocket) {
    let watcher = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let e = env_with(
        "",
        MqttSnSettings {
            gateway_id: 9,
            broadcast,
            advertise_interval: period,
            advertise_to: Some(vec![watcher.local_addr().unwrap()]),
            ..MqttSnSettings::default()
        },
    )
    .await;
    (e, watcher)
}

async fn recv_datagram(sock: &UdpSocket) -> (Message, SocketAddr) {
    let mut buf = vec![0u8; 65536];
    let (n, from) = timeout(WAIT, sock.recv_from(&mut buf))
        .await
        .expect("no datagram")
        .unwrap();
    (decode(Bytes::copy_from_slice(&buf[..n])).unwrap(), from)
}

#[tokio::test]
async fn broadcast_sends_advertise_at_start_and_every_period_from_the_listener() {
    let (e, watcher) = advertise_env(true, Duration::from_secs(1)).await;
    let (first, from) = recv_datagram(&watcher).await;
    let first_at = Instant::now();
    assert_eq!(
        first,
        Message::Advertise {
            gw_id: 9,
            duration: 1
        }
    );
    // From the listener's own address: a client connects where the ADVERTISE came from.
    assert_eq!(from, e.addr);
    let (second, _) = recv_datagram(&watcher).await;
    assert_eq!(second, first);
    let gap = first_at.elapsed();
    assert!(
        gap >= Duration::from_millis(700),
        "second ADVERTISE after {gap:?}, before the period"
    );
    assert!(e.ctx.metrics.get("packets.advertise.sent") >= 2);
    // The gateway still answers SEARCHGW with the same id.
    let c = Client::new(e.addr).await;
    c.send(Message::SearchGw { radius: 1 }).await;
    assert_eq!(
        c.recv().await,
        Message::GwInfo {
            gw_id: 9,
            gw_add: Bytes::new()
        }
    );
}

#[tokio::test]
async fn no_advertise_without_broadcast() {
    let (e, watcher) = advertise_env(false, Duration::from_millis(20)).await;
    let mut buf = [0u8; 64];
    assert!(
        timeout(Duration::from_millis(300), watcher.recv_from(&mut buf))
            .await
            .is_err(),
        "ADVERTISE sent with broadcast = false"
    );
    assert_eq!(e.ctx.metrics.get("packets.advertise.sent"), 0);
}

#[tokio::test]
async fn stopping_the_listener_stops_the_advertise_broadcaster() {
    let (e, watcher) = advertise_env(true, Duration::from_millis(50)).await;
    recv_datagram(&watcher).await;
    let Env { _listener, .. } = e;
    _listener.shutdown().await;
    // At most one that was on its way when the listener stopped, then nothing (a running
    // broadcaster would send four in that time).
    let mut buf = [0u8; 64];
    let mut late = 0;
    while timeout(Duration::from_millis(200), watcher.recv_from(&mut buf))
        .await
        .is_ok()
    {
        late += 1;
        assert!(late <= 1, "ADVERTISE after the listener stopped");
    }
}

// ---------------------------------------------------------------------------------------
// PUBACK "invalid topic id": REGISTER again, then redeliver

#[tokio::test]
async fn puback_invalid_topic_id_reregisters_the_topic_and_redelivers() {
    let e = env().await;
    let c = Client::new(e.addr).await;
    c.connect("inv1").await;
    let Message::SubAck {
        topic_id: 1025,
        rc: ReturnCode::Accepted,
        ..
    } = c
        .subscribe(Topic::Name("lost/reg".into()), SnQoS::AtLeastOnce, 1)
        .await
    else {
        panic!("bad SUBACK")
    };
    e.broker
        .publish(bmsg("lost/reg", "again", QoS::AtLeastOnce));
    let Message::Publish {
        topic: Topic::Id(1025),
        msg_id,
        flags,
        data,
    } = c.recv().await
    else {
        panic!("no PUBLISH")
    };
    assert!(!flags.dup);
    // The client lost its registration (it restarted, say).
    c.send(Message::PubAck {
        topic_id: 1025,
        msg_id,
        rc: ReturnCode::InvalidTopicId,
    })
    .await;
    let Message::Register {
        topic_id: 1025,
        msg_id: reg_id,
        topic_name,
    } = c.recv().await
    else {
        panic!("no REGISTER")
    };
    assert_eq!(topic_name, "lost/reg");
    // Held until REGACK.
    assert!(c.silent_for(Duration::from_millis(150)).await);
    c.send(Message::RegAck {
        topic_id: 1025,
        msg_id: reg_id,
        rc: ReturnCode::Accepted,
    })
    .await;
    assert_eq!(
        c.recv().await,
        Message::Publish {
            flags,
            topic: Topic::Id(1025),
            msg_id,
            data,
        },
        "the same delivery, sent again"
    );
    c.send(Message::PubAck {
        topic_id: 1025,
        msg_id,
        rc: ReturnCode::Accepted,
    })
    .await;
    // The window of one is free again: the next message flows.
    e.broker.publish(bmsg("lost/reg", "next", QoS::AtLeastOnce));
    let Message::Publish {
        topic: Topic::Id(1025),
        data,
        ..
    } = c.recv().await
    else {
        panic!("no next PUBLISH")
    };
    assert_eq!(data, Bytes::from_static(b"next"));
    assert_eq!(e.ctx.metrics.get("messages.acked"), 1);
}

#[tokio::test]
async fn regack_matching_the_topic_id_only_is_accepted_as_emqx_does() {
    // EMQX's t_delivery_qos1_register_invalid_topic_id answers with MsgId + 1.
    let e = env().await;
    let c = Client::new(e.addr).await;
    c.connect("inv2").await;
    c.subscribe(Topic::Name("lost/emqx".into()), SnQoS::AtLeastOnce, 1)
        .await;
    e.broker.publish(bmsg("lost/emqx", "p", QoS::AtLeastOnce));
    let Message::Publish { msg_id, .. } = c.recv().await else {
        panic!("no PUBLISH")
    };
    c.send(Message::PubAck {
        topic_id: 1025,
        msg_id,
        rc: ReturnCode::InvalidTopicId,
    })
    .await;
    let Message::Register {
        topic_id,
        msg_id: reg_id,
        ..
    } = c.recv().await
    else {
        panic!("no REGISTER")
    };
    c.send(Message::RegAck {
        topic_id,
        msg_id: reg_id.wrapping_add(1),
        rc: ReturnCode::Accepted,
    })
    .await;
    let Message::Publish {
        msg_id: again,
        topic: Topic::Id(id),
        ..
    } = c.recv().await
    else {
        panic!("no replay")
    };
    assert_eq!((again, id), (msg_id, topic_id));
}

#[tokio::test]
async fn a_refused_predefined_topic_is_registered_and_then_delivered_by_id() {
    let e = env().await;
    let c = Client::new(e.addr).await;
    c.connect("inv3").await;
    c.subscribe(Topic::Predefined(1), SnQoS::AtLeastOnce, 1)
        .await;
    e.broker.publish(bmsg("pre/one", "x", QoS::AtLeastOnce));
    let Message::Publish {
        topic: Topic::Predefined(1),
        msg_id,
        ..
    } = c.recv().await
    else {
        panic!("no predefined PUBLISH")
    };
    // A client that was not configured with the predefined topics.
    c.send(Message::PubAck {
        topic_id: 1,
        msg_id,
        rc: ReturnCode::InvalidTopicId,
    })
    .await;
    let Message::Register {
        topic_id: 1,
        msg_id: reg_id,
        topic_name,
    } = c.recv().await
    else {
        panic!("no REGISTER")
    };
    assert_eq!(topic_name, "pre/one");
    c.send(Message::RegAck {
        topic_id: 1,
        msg_id: reg_id,
        rc: ReturnCode::Accepted,
    })
    .await;
    let Message::Publish {
        topic: Topic::Id(1),
        flags,
        msg_id: again,
        ..
    } = c.recv().await
    else {
        panic!("no replay by normal topic id")
    };
    assert_eq!(flags.topic_id_type, TopicIdType::Normal);
    assert_eq!(again, msg_id);
}

#[tokio::test]
async fn a_refused_reregistration_drops_the_delivery_and_frees_the_window() {
    let e = env().await;
    let c = Client::new(e.addr).await;
    c.connect("inv4").await;
    c.subscribe(Topic::Name("lost/no".into()), SnQoS::AtLeastOnce, 1)
        .await;
    c.subscribe(Topic::Short(*b"ok"), SnQoS::AtLeastOnce, 2)
        .await;
    e.broker
        .publish(bmsg("lost/no", "refused", QoS::AtLeastOnce));
    e.broker.publish(bmsg("ok", "fine", QoS::AtLeastOnce));
    let Message::Publish { msg_id, .. } = c.recv().await else {
        panic!("no PUBLISH")
    };
    c.send(Message::PubAck {
        topic_id: 1025,
        msg_id,
        rc: ReturnCode::InvalidTopicId,
    })
    .await;
    let Message::Register {
        topic_id,
        msg_id: reg_id,
        ..
    } = c.recv().await
    else {
        panic!("no REGISTER")
    };
    c.send(Message::RegAck {
        topic_id,
        msg_id: reg_id,
        rc: ReturnCode::NotSupported,
    })
    .await;
    let Message::Publish {
        topic: Topic::Short(t),
        data,
        ..
    } = c.recv().await
    else {
        panic!("the next message did not flow")
    };
    assert_eq!((&t, &data[..]), (b"ok", &b"fine"[..]));
    assert_eq!(e.ctx.metrics.get("delivery.dropped"), 1);
}

// ---------------------------------------------------------------------------------------
// Retry of unacknowledged deliveries, expiry of QoS 2 messages awaiting PUBREL

fn session_limits(retry_ms: u64, await_rel_ms: u64) -> MqttSnSettings {
    MqttSnSettings {
        session: SessionLimits {
            retry_interval_ms: retry_ms,
            await_rel_timeout_ms: await_rel_ms,
            ..SessionLimits::default()
        },
        ..MqttSnSettings::default()
    }
}

#[tokio::test]
async fn unacknowledged_qos1_delivery_is_resent_with_dup_after_retry_interval() {
    let e = env_with("", session_limits(300, 300_000)).await;
    let c = Client::new(e.addr).await;
    c.connect("rt1").await;
    c.subscribe(Topic::Short(*b"r1"), SnQoS::AtLeastOnce, 1)
        .await;
    e.broker.publish(bmsg("r1", "once", QoS::AtLeastOnce));
    let Message::Publish {
        msg_id,
        flags,
        data,
        topic,
    } = c.recv().await
    else {
        panic!("no PUBLISH")
    };
    let sent = Instant::now();
    assert!(!flags.dup);
    // No PUBACK: the same message again, DUP set.
    let Message::Publish {
        msg_id: again,
        flags: again_flags,
        data: again_data,
        topic: again_topic,
    } = c.recv().await
    else {
        panic!("no resend")
    };
    let waited = sent.elapsed();
    assert!(
        waited >= Duration::from_millis(200),
        "resent after {waited:?}, before retry_interval"
    );
    assert_eq!((again, &again_data, &again_topic), (msg_id, &data, &topic));
    assert!(again_flags.dup);
    assert_eq!(again_flags.qos, SnQoS::AtLeastOnce);
    c.send(Message::PubAck {
        topic_id: 0,
        msg_id,
        rc: ReturnCode::Accepted,
    })
    .await;
    // Acknowledged: no more resends.
    assert!(c.silent_for(Duration::from_millis(700)).await);
    assert_eq!(e.ctx.metrics.get("messages.acked"), 1);
}

#[tokio::test]
async fn unacknowledged_pubrel_is_resent_after_retry_interval() {
    let e = env_with("", session_limits(300, 300_000)).await;
    let c = Client::new(e.addr).await;
    c.connect("rt2").await;
    c.subscribe(Topic::Short(*b"r2"), SnQoS::ExactlyOnce, 1)
        .await;
    e.broker.publish(bmsg("r2", "exactly", QoS::ExactlyOnce));
    let Message::Publish { msg_id, .. } = c.recv().await else {
        panic!("no PUBLISH")
    };
    c.send(Message::PubRec { msg_id }).await;
    assert_eq!(c.recv().await, Message::PubRel { msg_id });
    // No PUBCOMP: PUBREL again.
    assert_eq!(c.recv().await, Message::PubRel { msg_id });
    c.send(Message::PubComp { msg_id }).await;
    assert!(c.silent_for(Duration::from_millis(700)).await);
    assert_eq!(e.ctx.metrics.get("messages.acked"), 1);
}

#[tokio::test]
async fn a_sleeping_client_gets_no_resend_until_it_wakes() {
    let e = env_with("", session_limits(200, 300_000)).await;
    let c = Client::new(e.addr).await;
    c.connect("rt3").await;
    c.subscribe(Topic::Short(*b"r3"), SnQoS::AtLeastOnce, 1)
        .await;
    e.broker.publish(bmsg("r3", "nap", QoS::AtLeastOnce));
    let Message::Publish { msg_id, .. } = c.recv().await else {
        panic!("no PUBLISH")
    };
    c.send(Message::Disconnect { duration: Some(60) }).await;
    assert_eq!(c.recv().await, Message::Disconnect { duration: None });
    // Several retry intervals asleep: nothing is sent.
    assert!(c.silent_for(Duration::from_millis(600)).await);
    c.send(Message::PingReq {
        client_id: Some("rt3".into()),
    })
    .await;
    let Message::Publish {
        msg_id: again,
        flags,
        data,
        ..
    } = c.recv().await
    else {
        panic!("no resend on wake-up")
    };
    assert_eq!((again, flags.dup, &data[..]), (msg_id, true, &b"nap"[..]));
    c.send(Message::PubAck {
        topic_id: 0,
        msg_id,
        rc: ReturnCode::Accepted,
    })
    .await;
    assert_eq!(c.recv().await, Message::PingResp);
}

#[tokio::test]
async fn congestion_puback_keeps_the_delivery_for_a_resend() {
    let e = env_with("", session_limits(300, 300_000)).await;
    let c = Client::new(e.addr).await;
    c.connect("rt4").await;
    c.subscribe(Topic::Short(*b"r4"), SnQoS::AtLeastOnce, 1)
        .await;
    e.broker.publish(bmsg("r4", "busy", QoS::AtLeastOnce));
    let Message::Publish { msg_id, .. } = c.recv().await else {
        panic!("no PUBLISH")
    };
    c.send(Message::PubAck {
        topic_id: u16::from_be_bytes(*b"r4"),
        msg_id,
        rc: ReturnCode::Congestion,
    })
    .await;
    let Message::Publish {
        msg_id: again,
        flags,
        ..
    } = c.recv().await
    else {
        panic!("no resend after congestion")
    };
    assert_eq!((again, flags.dup), (msg_id, true));
    assert_eq!(e.ctx.metrics.get("messages.acked"), 0);
}

#[tokio::test]
async fn qos2_publish_without_pubrel_expires_after_await_rel_timeout() {
    let e = env_with("", session_limits(30_000, 200)).await;
    let sub = mqtt_sub(&e, "#");
    let c = Client::new(e.addr).await;
    c.connect("ar1").await;
    c.publish(Topic::Short(*b"a2"), SnQoS::ExactlyOnce, 7, b"first")
        .await;
    assert_eq!(c.recv().await, Message::PubRec { msg_id: 7 });
    // While it awaits PUBREL, the same packet id is in use.
    c.publish(Topic::Short(*b"a2"), SnQoS::ExactlyOnce, 7, b"reuse")
        .await;
    let Message::PubAck {
        msg_id: 7,
        rc: ReturnCode::NotSupported,
        ..
    } = c.recv().await
    else {
        panic!("packet id reuse accepted")
    };
    // No PUBREL: dropped after await_rel_timeout.
    let deadline = Instant::now() + WAIT;
    while e.ctx.metrics.get("messages.dropped.await_pubrel_timeout") == 0 {
        assert!(Instant::now() < deadline, "never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A late PUBREL is still completed, and counted as missed.
    c.send(Message::PubRel { msg_id: 7 }).await;
    assert_eq!(c.recv().await, Message::PubComp { msg_id: 7 });
    assert_eq!(e.ctx.metrics.get("packets.pubrel.missed"), 1);
    // The packet id is free again: a new message.
    c.publish(Topic::Short(*b"a2"), SnQoS::ExactlyOnce, 7, b"second")
        .await;
    assert_eq!(c.recv().await, Message::PubRec { msg_id: 7 });
    let got = mqtt_received(&sub, 2).await;
    assert_eq!(
        got,
        vec![
            ("a2".to_string(), Bytes::from_static(b"first")),
            ("a2".to_string(), Bytes::from_static(b"second")),
        ]
    );
}

// ---------------------------------------------------------------------------------------
// clientinfo_override

fn overrides(clientid: Option<&str>, username: Option<&str>) -> CommonSettings {
    CommonSettings {
        mountpoint: "${username}/${clientid}/".into(),
        override_clientid: clientid.map(str::to_string),
        override_username: username.map(str::to_string),
        ..CommonSettings::default()
    }
}

#[tokio::test]
async fn clientinfo_override_renders_client_id_and_username_from_the_connect() {
    let e = env_common(
        overrides(
            Some("sn-${ConnInfo.clientid}"),
            Some("u-${ConnInfo.clientid}"),
        ),
        MqttSnSettings::default(),
    )
    .await;
    let sub = mqtt_sub(&e, "#");
    let c = Client::new(e.addr).await;
    c.connect("dev7").await;
    let list = e.ctx.clients.list();
    assert_eq!(list[0].clientid, "sn-dev7");
    assert_eq!(list[0].username.as_deref(), Some("u-dev7"));
    assert!(e.broker.lookup_in("mqttsn", "sn-dev7").is_some());
    // The mountpoint sees the rendered identity.
    c.publish(Topic::Short(*b"tt"), SnQoS::AtMostOnce, 0, b"v")
        .await;
    let got = mqtt_received(&sub, 1).await;
    assert_eq!(
        got,
        vec![("u-dev7/sn-dev7/tt".to_string(), Bytes::from_static(b"v"))]
    );
}

#[tokio::test]
async fn default_override_keeps_the_connect_client_id_and_no_username() {
    let e = env_common(overrides(None, None), MqttSnSettings::default()).await;
    let c = Client::new(e.addr).await;
    c.connect("plain").await;
    let list = e.ctx.clients.list();
    assert_eq!(list[0].clientid, "plain");
    assert_eq!(list[0].username, None);
}

#[tokio::test]
async fn a_client_id_override_that_renders_empty_gets_a_random_id() {
    let e = env_common(
        overrides(Some("${ConnInfo.nothing}"), None),
        MqttSnSettings::default(),
    )
    .await;
    let c = Client::new(e.addr).await;
    c.connect("ignored").await;
    let list = e.ctx.clients.list();
    assert_eq!(list[0].clientid.len(), 16);
    assert_ne!(list[0].clientid, "ignored");
}

#[tokio::test]
async fn pingreq_from_a_new_address_finds_the_overridden_client() {
    let e = env_common(
        overrides(Some("sn-${ConnInfo.clientid}"), None),
        MqttSnSettings::default(),
    )
    .await;
    let a = Client::new(e.addr).await;
    a.connect("roam").await;
    let b = Client::new(e.addr).await;
    b.send(Message::PingReq {
        client_id: Some("roam".into()),
    })
    .await;
    assert_eq!(b.recv().await, Message::PingResp);
    let list = e.ctx.clients.list();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].clientid, "sn-roam");
    assert_eq!(list[0].peername, b.sock.local_addr().unwrap());
}

fn clientid_db(users: &[(&str, &str)]) -> Arc<dyn junction_auth::Authenticator> {
    let cfg: junction_config::authn::AuthnConfig = serde_json::from_value(serde_json::json!({
        "mechanism": "password_based",
        "backend": "built_in_database",
        "user_id_type": "clientid",
    }))
    .unwrap();
    let db = junction_auth::BuiltInDatabase::new(&cfg);
    for (u, p) in users {
        db.add_user(u, p.as_bytes(), false).unwrap();
    }
    Arc::new(db)
}

#[tokio::test]
async fn a_refused_authentication_is_connack_0x80_and_nothing_is_registered() {
    // MQTT-SN carries no password: `clientinfo_override.password` supplies one.
    let e = env_common(
        CommonSettings {
            override_password: Some("fleet-secret".into()),
            ..CommonSettings::default()
        },
        MqttSnSettings::default(),
    )
    .await;
    e.ctx.authn.set_chain(
        "mqtt-sn:global",
        vec![clientid_db(&[("dev1", "fleet-secret"), ("dev2", "other")])],
    );
    let c = Client::new(e.addr).await;
    c.connect("dev1").await;
    for refused in ["dev2", "stranger"] {
        let c = Client::new(e.addr).await;
        assert_eq!(
            c.connect_with(refused, true, 60).await,
            Message::ConnAck {
                rc: ReturnCode::Other(0x80)
            },
            "{refused}"
        );
    }
    assert_eq!(e.ctx.clients.len(), 1);
    assert_eq!(e.ctx.metrics.get("client.authenticate"), 3);
    assert_eq!(e.ctx.metrics.get("client.connack"), 3);
    assert_eq!(e.ctx.metrics.get("client.connected"), 1);
}

#[tokio::test]
async fn hooks_see_mqtt_sn_clients_and_an_emptied_subscribe_is_suback_0x83() {
    use junction_broker::hooks::{ConnectArgs, MessageArgs, SubscribeArgs};
    use junction_broker::Flow;
    use junction_types::ClientInfo;
    let e = env().await;
    let seen: Arc<parking_lot::Mutex<Vec<String>>> = Arc::default();
    let hooks = &e.broker.hooks;
    let s = seen.clone();
    hooks.client_connect.add(
        0,
        Arc::new(move |c: &ClientInfo, _: &mut ConnectArgs| {
            s.lock()
                .push(format!("connect {} {}", c.protocol, c.listener));
            Flow::Continue
        }),
    );
    let s = seen.clone();
    hooks.message_delivered.add(
        0,
        Arc::new(move |c: &ClientInfo, m: &mut MessageArgs| {
            s.lock()
                .push(format!("delivered {} {}", c.clientid, m.message.topic));
            Flow::Continue
        }),
    );
    let s = seen.clone();
    hooks.message_acked.add(
        0,
        Arc::new(move |c: &ClientInfo, m: &mut MessageArgs| {
            s.lock()
                .push(format!("acked {} {}", c.clientid, m.message.topic));
            Flow::Continue
        }),
    );
    hooks.client_subscribe.add(
        0,
        Arc::new(|_: &ClientInfo, a: &mut SubscribeArgs| {
            a.filters.retain(|(f, _)| !f.starts_with("blocked/"));
            Flow::Continue
        }),
    );
    let c = Client::new(e.addr).await;
    c.connect("hooked").await;
    let r = c
        .subscribe(Topic::Name("blocked/x".into()), SnQoS::AtMostOnce, 1)
        .await;
    assert!(
        matches!(
            r,
            Message::SubAck {
                rc: ReturnCode::Other(0x83),
                topic_id: 0,
                ..
            }
        ),
        "{r:?}"
    );
    let r = c
        .subscribe(Topic::Name("open/x".into()), SnQoS::AtLeastOnce, 2)
        .await;
    let Message::SubAck {
        rc: ReturnCode::Accepted,
        topic_id,
        ..
    } = r
    else {
        panic!("{r:?}")
    };
    e.broker
        .publish(system_message("blocked/x".into(), "no", false));
    let mut m = system_message("open/x".into(), "yes", false);
    m.qos = QoS::AtLeastOnce;
    e.broker.publish(m);
    let p = c.recv().await;
    let Message::Publish { msg_id, .. } = p else {
        panic!("{p:?}")
    };
    c.send(Message::PubAck {
        topic_id,
        msg_id,
        rc: ReturnCode::Accepted,
    })
    .await;
    let deadline = Instant::now() + WAIT;
    while seen.lock().len() < 3 {
        assert!(Instant::now() < deadline, "{:?}", seen.lock());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        *seen.lock(),
        vec![
            "connect mqtt-sn mqttsn:udp:default",
            "delivered hooked open/x",
            "acked hooked open/x",
        ]
    );
    assert_eq!(e.ctx.metrics.get("client.subscribe"), 2);
    assert_eq!(e.ctx.metrics.get("session.subscribed"), 1);
}

#[tokio::test]
async fn subscriptions_are_listed_added_and_removed_through_the_framework() {
    use junction_gateway::CallError;
    let e = env_with("sn/", MqttSnSettings::default()).await;
    let c = Client::new(e.addr).await;
    c.connect("api").await;
    let r = c
        .subscribe(Topic::Name("own/t".into()), SnQoS::AtMostOnce, 1)
        .await;
    assert!(matches!(
        r,
        Message::SubAck {
            rc: ReturnCode::Accepted,
            ..
        }
    ));
    let list = e.ctx.subscriptions("api").await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].topic, "sn/own/t");
    let added = e
        .ctx
        .add_subscription("api", "api/t", SubOptions::default(), None)
        .await
        .unwrap();
    assert_eq!(added.topic, "sn/api/t");
    assert_eq!(e.ctx.subscriptions("api").await.unwrap().len(), 2);
    // A topic the client never registered: the gateway REGISTERs it, then publishes.
    e.broker
        .publish(system_message("sn/api/t".into(), "via api", false));
    let reg = c.recv().await;
    let Message::Register {
        topic_id,
        msg_id,
        topic_name,
    } = reg
    else {
        panic!("{reg:?}")
    };
    assert_eq!(topic_name, "api/t");
    c.send(Message::RegAck {
        topic_id,
        msg_id,
        rc: ReturnCode::Accepted,
    })
    .await;
    let p = c.recv().await;
    assert!(
        matches!(&p, Message::Publish { topic: Topic::Id(id), data, .. } if *id == topic_id && &data[..] == b"via api"),
        "{p:?}"
    );
    assert_eq!(e.ctx.remove_subscription("api", "api/t").await, Ok(()));
    assert_eq!(
        e.ctx.remove_subscription("api", "api/t").await,
        Err(CallError::NoSuchSubscription)
    );
    assert_eq!(e.ctx.subscriptions("api").await.unwrap().len(), 1);
    assert_eq!(
        e.ctx.subscriptions("gone").await,
        Err(CallError::ClientNotFound)
    );
}

// ---------------------------------------------------------------------------------------
// Issue 10: a UDP source address is a claim, not a fact.

#[tokio::test]
async fn with_authentication_a_pingreq_from_another_address_takes_nothing_over() {
    let e = env_common(
        CommonSettings {
            override_password: Some("fleet-secret".into()),
            ..CommonSettings::default()
        },
        MqttSnSettings::default(),
    )
    .await;
    e.ctx.authn.set_chain(
        "mqtt-sn:global",
        vec![clientid_db(&[("victim", "fleet-secret")])],
    );
    let victim = Client::new(e.addr).await;
    victim.connect("victim").await;
    assert!(matches!(
        victim
            .subscribe(Topic::Short(*b"vt"), SnQoS::AtMostOnce, 1)
            .await,
        Message::SubAck { .. }
    ));
    // Someone else names the victim's client id in a PINGREQ: no answer, no session.
    let attacker = Client::new(e.addr).await;
    attacker
        .send(Message::PingReq {
            client_id: Some("victim".into()),
        })
        .await;
    assert!(attacker.silent_for(Duration::from_millis(300)).await);
    e.broker.publish(bmsg("vt", "still mine", QoS::AtMostOnce));
    let Message::Publish { data, .. } = victim.recv().await else {
        panic!("the victim lost its deliveries")
    };
    assert_eq!(data, Bytes::from_static(b"still mine"));
    assert!(attacker.silent_for(Duration::from_millis(100)).await);
    let list = e.ctx.clients.list();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].peername, victim.sock.local_addr().unwrap());
    assert_eq!(list[0].username, None);
    assert_eq!(e.ctx.metrics.get("packets.dropped"), 1);
}

#[tokio::test]
async fn a_qos_minus_one_publish_is_authorized_and_mounted_and_refused_where_clients_authenticate()
{
    use junction_broker::hooks::{Action, AuthorizeArgs, AuthzResult};
    use junction_broker::Flow;
    let e = env_with(
        "neg/",
        MqttSnSettings {
            predefined: vec![(1, "pre/one".into()), (2, "secret".into())],
            ..MqttSnSettings::default()
        },
    )
    .await;
    e.broker.hooks.client_authorize.add(
        0,
        Arc::new(|c: &junction_types::ClientInfo, a: &mut AuthorizeArgs| {
            if matches!(a.action, Action::Publish { .. }) && a.topic == "secret" {
                assert_eq!(c.clientid, "NegQoS-Client");
                a.result = AuthzResult::Deny;
            }
            Flow::Continue
        }),
    );
    let sub = mqtt_sub(&e, "#");
    let c = Client::new(e.addr).await;
    c.publish(Topic::Predefined(2), SnQoS::MinusOne, 0, b"denied")
        .await;
    c.publish(Topic::Predefined(1), SnQoS::MinusOne, 0, b"allowed")
        .await;
    assert_eq!(
        mqtt_received(&sub, 1).await,
        vec![("neg/pre/one".to_string(), Bytes::from_static(b"allowed"))]
    );
    assert_eq!(e.ctx.metrics.get("messages.dropped.not_authorized"), 1);

    // With an authenticator on the listener, a publisher that cannot authenticate is refused.
    e.ctx
        .authn
        .set_chain("mqtt-sn:global", vec![clientid_db(&[("dev", "pw")])]);
    c.publish(Topic::Predefined(1), SnQoS::MinusOne, 0, b"anonymous")
        .await;
    let deadline = Instant::now() + WAIT;
    while e.ctx.metrics.get("messages.dropped.not_authorized") < 2 {
        assert!(Instant::now() < deadline, "the publish was not refused");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(e.ctx.metrics.get("messages.received"), 1);
}

#[tokio::test]
async fn a_delivery_too_large_for_a_datagram_is_dropped_and_frees_its_packet_id() {
    let e = env().await;
    let c = Client::new(e.addr).await;
    c.connect("big").await;
    assert!(matches!(
        c.subscribe(Topic::Short(*b"bg"), SnQoS::AtLeastOnce, 1)
            .await,
        Message::SubAck { .. }
    ));
    let huge = Bytes::from(vec![b'x'; 70_000]);
    let mut m = bmsg("bg", "", QoS::AtLeastOnce);
    m.payload = huge;
    e.broker.publish(m);
    e.broker.publish(bmsg("bg", "next", QoS::AtLeastOnce));
    let Message::Publish { data, msg_id, .. } = c.recv().await else {
        panic!("expected the next delivery")
    };
    assert_eq!(data, Bytes::from_static(b"next"));
    assert_eq!(e.ctx.metrics.get("delivery.dropped.too_large"), 1);
    c.send(Message::PubAck {
        topic_id: u16::from_be_bytes(*b"bg"),
        msg_id,
        rc: ReturnCode::Accepted,
    })
    .await;
    let cell = e.broker.lookup_in("mqttsn", "big").unwrap();
    let deadline = Instant::now() + WAIT;
    while cell.lock().session.inflight().count() > 0 {
        assert!(Instant::now() < deadline, "the window stayed full");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_held_behind_a_congested_register_stay_within_the_session_bounds() {
    let e = env().await;
    let c = Client::new(e.addr).await;
    c.connect("slow").await;
    assert!(matches!(
        c.subscribe(Topic::Name("flood/#".into()), SnQoS::AtMostOnce, 1)
            .await,
        Message::SubAck { .. }
    ));
    e.broker.publish(bmsg("flood/a", "first", QoS::AtMostOnce));
    let Message::Register {
        topic_id, msg_id, ..
    } = c.recv().await
    else {
        panic!("expected a REGISTER")
    };
    // The client keeps saying "congestion" while 30,000 QoS 0 messages arrive for it.
    let cell = e.broker.lookup_in("mqttsn", "slow").unwrap();
    for i in 0..30_000u32 {
        if i % 1000 == 0 {
            c.send(Message::RegAck {
                topic_id,
                msg_id,
                rc: ReturnCode::Congestion,
            })
            .await;
        }
        let mut m = bmsg("flood/a", "", QoS::AtMostOnce);
        m.payload = Bytes::from(vec![0u8; 512]);
        e.broker.publish(m);
        // The connection task runs beside the publisher and sees every notification.
        tokio::task::yield_now().await;
    }
    // They wait in the session's outbox, which drops what exceeds its bound (10,000 QoS 0
    // messages by default), rather than in a queue of the connection's own.
    let outbox = cell.lock().outbox.len();
    assert!(outbox <= 10_000, "outbox holds {outbox}");
    assert!(
        e.broker.metrics.messages_dropped_queue_full.get() >= 19_000,
        "the excess was not dropped"
    );
    // Once the client accepts the topic, deliveries flow again.
    c.send(Message::RegAck {
        topic_id,
        msg_id,
        rc: ReturnCode::Accepted,
    })
    .await;
    let Message::Publish { data, .. } = c.recv().await else {
        panic!("expected a delivery")
    };
    assert_eq!(data, Bytes::from_static(b"first"));
}

/// Resident memory of this process, in bytes.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_connects_from_50000_addresses_stays_within_max_connections() {
    let e = env_with(
        "",
        MqttSnSettings {
            udp: junction_gw_mqttsn::UdpSettings {
                max_peers: Some(1000),
                max_new_peers_per_sec: None,
                ..Default::default()
            },
            ..MqttSnSettings::default()
        },
    )
    .await;
    let sub = mqtt_sub(&e, "real/out");
    let real = Client::new(e.addr).await;
    real.connect("real").await;
    assert!(matches!(
        real.subscribe(Topic::Short(*b"in"), SnQoS::AtMostOnce, 1)
            .await,
        Message::SubAck { .. }
    ));
    let before = rss_bytes();

    // 50,000 CONNECTs with Duration 0, each from its own address in 127.10.0.0/16, sent
    // from a blocking thread so the gateway reads them as they come.
    let gw = e.addr;
    tokio::task::spawn_blocking(move || {
        let mut b = BytesMut::new();
        for i in 0..50_000u32 {
            let ip = std::net::Ipv4Addr::new(127, 10, (i >> 8) as u8, (i & 0xff) as u8);
            let sock = std::net::UdpSocket::bind((ip, 0)).unwrap();
            b.clear();
            encode(
                &Message::Connect {
                    flags: Flags::default(),
                    protocol_id: 1,
                    duration: 0,
                    client_id: format!("spoof-{i}").into(),
                },
                &mut b,
            )
            .unwrap();
            let _ = sock.send_to(&b, gw);
        }
    })
    .await
    .unwrap();

    // The real client, connected before, still publishes and receives.
    let Message::RegAck { topic_id, .. } = ({
        real.send(Message::Register {
            topic_id: 0,
            msg_id: 2,
            topic_name: "real/out".into(),
        })
        .await;
        real.recv().await
    }) else {
        panic!("expected a REGACK")
    };
    real.publish(
        Topic::Id(topic_id),
        SnQoS::AtMostOnce,
        0,
        b"after the flood",
    )
    .await;
    assert_eq!(
        mqtt_received(&sub, 1).await,
        vec![(
            "real/out".to_string(),
            Bytes::from_static(b"after the flood")
        )]
    );
    e.broker
        .publish(bmsg("in", "to the real one", QoS::AtMostOnce));
    let got = loop {
        match real.recv().await {
            Message::Publish { data, .. } => break data,
            _ => continue,
        }
    };
    assert_eq!(got, Bytes::from_static(b"to the real one"));

    let peers = e.ctx.clients.len();
    assert!(peers <= 1000, "{peers} clients after the flood");
    let grown = rss_bytes().saturating_sub(before);
    assert!(grown < 64 << 20, "memory grew by {grown} bytes");
    eprintln!(
        "flood: {} CONNECTs read, {peers} clients, {} datagrams dropped, memory +{} KiB",
        e.ctx.metrics.get("packets.connect.received"),
        e.ctx.metrics.get("packets.dropped"),
        grown >> 10
    );
}
