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
    ctx: Arc<GatewayCtx>,
    addr: SocketAddr,
    _listener: UdpListenerHandle,
}

async fn env_with(mountpoint: &str, settings: MqttSnSettings) -> Env {
    let broker = Broker::new(Default::default());
    let ctx = GatewayCtx::new(
        "mqttsn",
        "mqtt-sn",
        broker,
        CommonSettings {
            mountpoint: mountpoint.into(),
            idle_timeout: Duration::from_secs(5),
            ..CommonSettings::default()
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
fn mqtt_sub(ctx: &GatewayCtx, filter: &str) -> Arc<SessionCell> {
    let (tx, rx) = oneshot::channel();
    std::mem::forget(rx);
    let opened = ctx.broker.open_session(OpenSession {
        namespace: ByteString::new(),
        client_id: "mqtt-sub".into(),
        clean_start: true,
        expiry_interval_secs: 0,
        limits: SessionLimits::default(),
        conn_id: 1,
        kick: tx,
    });
    ctx.broker
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
    let sub = mqtt_sub(&e.ctx, "#");
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
    let sub = mqtt_sub(&e.ctx, "#");
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
    let sub = mqtt_sub(&e.ctx, "sn/#");
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
    e.ctx.broker.publish(bmsg("x/y", "p", QoS::AtMostOnce));
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
    e.ctx
        .broker
        .publish(bmsg("w/long/name", "1", QoS::AtMostOnce));
    e.ctx
        .broker
        .publish(bmsg("w/long/name", "2", QoS::AtMostOnce));
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
    e.ctx.broker.publish(bmsg("pre/two", "a", QoS::AtMostOnce));
    let Message::Publish {
        topic: Topic::Predefined(2),
        ..
    } = c.recv().await
    else {
        panic!("predefined delivery")
    };
    e.ctx.broker.publish(bmsg("zz", "b", QoS::AtMostOnce));
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
    e.ctx.broker.publish(bmsg("zz", "c", QoS::AtMostOnce));
    assert!(c.silent_for(Duration::from_millis(150)).await);
}

#[tokio::test]
async fn qos1_deliveries_use_a_window_of_one() {
    let e = env().await;
    let c = Client::new(e.addr).await;
    c.connect("q1").await;
    c.subscribe(Topic::Short(*b"q1"), SnQoS::AtLeastOnce, 1)
        .await;
    e.ctx.broker.publish(bmsg("q1", "1", QoS::AtLeastOnce));
    e.ctx.broker.publish(bmsg("q1", "2", QoS::AtLeastOnce));
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
    let sub = mqtt_sub(&e.ctx, "#");
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
    e.ctx.broker.publish(bmsg("k3", "x", QoS::ExactlyOnce));
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
    let sub = mqtt_sub(&e.ctx, "#");
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
    let sub = mqtt_sub(&e.ctx, "will/#");
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
    let sub = mqtt_sub(&e.ctx, "will/#");
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
    e.ctx.broker.publish(bmsg("sleep/t", "a", QoS::AtLeastOnce));
    e.ctx.broker.publish(bmsg("sleep/t", "b", QoS::AtMostOnce));
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
    e.ctx.broker.publish(bmsg("sleep/t", "c", QoS::AtMostOnce));
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
    e.ctx
        .broker
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
    e.ctx.broker.publish(bmsg("nt", "moved", QoS::AtMostOnce));
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
    e.ctx.broker.publish(bmsg("mv", "here", QoS::AtMostOnce));
    let Message::Publish { data, .. } = b.recv().await else {
        panic!()
    };
    assert_eq!(data, Bytes::from_static(b"here"));
    assert_eq!(e.ctx.clients.len(), 1);
}
