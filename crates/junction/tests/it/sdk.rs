//! The gateway SDK from a newcomer's side: a small line protocol, written here against
//! `junction_gateway` alone (its config section, its channel on the stream driver), is
//! registered with one line and serves real connections.
//!
//! MQTT itself runs on the same framework: see `mqtt_clients_are_framework_clients`.
//!
//! The protocol: `CONNECT <clientid> [<password>]` answered `OK` or `ERR <reason>`, then
//! `PUB <topic> <payload>`, `SUB <filter>` (deliveries come as `MSG <topic> <payload>`)
//! and `BYE`. One line per frame, at most 1 KiB.

use crate::common::*;
use bytes::{BufMut, BytesMut};
use junction_config::authn::AuthnConfig;
use junction_config::KeyStatus::Honoured;
use junction_config::{GatewayListener, GatewayListeners, KeyTable, ListenerType};
use junction_gateway::driver::stream::{Opening, Output, Peer, StreamChannel};
use junction_gateway::listener_opts::stream_listener_options;
use junction_gateway::{
    common_settings, ClientCall, ClientInfo, CloseReason, CommonSettings, ConnectRequest, Gateway,
    GatewayCtx, Listening, Session,
};
use junction_session::{Outbound, SubOptions};
use junction_types::QoS;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::time::Instant;

/// `gateway.linegw { … }`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
struct LineConfig {
    enable: bool,
    mountpoint: String,
    listeners: GatewayListeners,
}

impl Default for LineConfig {
    fn default() -> Self {
        LineConfig {
            enable: true,
            mountpoint: String::new(),
            listeners: GatewayListeners::one(ListenerType::Tcp, 0),
        }
    }
}

junction_gateway::frame_types! {
    /// Its frame types, for `packets.<type>.received|sent`.
    mod frame {
        CONNECT => "connect",
        PUB => "pub",
        SUB => "sub",
        BYE => "bye",
        OK => "ok",
        MSG => "msg",
    }
}

enum LineGw {}

impl Gateway for LineGw {
    type Config = LineConfig;
    const NAME: &'static str = "linegw";
    const PROTOCOL: &'static str = "line";
    const FRAMES: &'static [&'static str] = frame::NAMES;
    const LISTENER_TYPES: &'static [ListenerType] = &[ListenerType::Tcp];
    const KEY_STATUS: KeyTable = &[(
        "gateway.linegw.**",
        Honoured("a_gateway_registered_with_one_line_serves_real_connections"),
    )];

    fn enabled(c: &LineConfig) -> bool {
        c.enable
    }
    fn listeners(c: &LineConfig) -> &GatewayListeners {
        &c.listeners
    }
    fn authentication(_: &LineConfig) -> Option<&AuthnConfig> {
        None
    }
    fn common(c: &LineConfig) -> CommonSettings {
        common_settings(
            &c.mountpoint,
            std::time::Duration::from_secs(5),
            true,
            &Default::default(),
        )
    }
    fn restart_listeners(_: &LineConfig, _: &LineConfig) -> bool {
        false
    }
    async fn start(
        ctx: Arc<GatewayCtx>,
        _: &LineConfig,
        kind: ListenerType,
        name: &str,
        l: &GatewayListener,
    ) -> anyhow::Result<Box<dyn Listening>> {
        let id = format!("linegw:{}:{name}", kind.as_str());
        let opts = stream_listener_options(&id, kind.as_str(), l)?;
        let handle = junction_transport::start(opts, move |accepted| {
            let opening = LineOpening {
                ctx: ctx.clone(),
                out: Output::default(),
            };
            junction_gateway::driver::stream::serve(ctx.clone(), accepted, opening)
        })
        .await?;
        Ok(Box::new(handle))
    }
}

/// One whole line out of `input`, or `Err` for a line over 1 KiB.
fn take_line(input: &mut BytesMut) -> Result<Option<String>, ()> {
    match input.iter().position(|b| *b == b'\n') {
        Some(i) => {
            let line = input.split_to(i + 1);
            Ok(Some(String::from_utf8_lossy(&line[..i]).into_owned()))
        }
        None if input.len() > 1024 => Err(()),
        None => Ok(None),
    }
}

struct LineOpening {
    ctx: Arc<GatewayCtx>,
    out: Output,
}

impl Opening for LineOpening {
    type Channel = LineChannel;

    fn output(&mut self) -> &mut Output {
        &mut self.out
    }

    fn open(&mut self, input: &mut BytesMut, peer: &Peer) -> Result<Option<ConnectRequest>, ()> {
        let Some(line) = take_line(input)? else {
            return Ok(None);
        };
        let mut words = line.split(' ');
        let (Some("CONNECT"), Some(id)) = (words.next(), words.next()) else {
            return Err(());
        };
        self.ctx.metrics.received(frame::CONNECT);
        let info = ClientInfo {
            clientid: id.into(),
            username: None,
            protocol: self.ctx.protocol,
            proto_ver: "1".into(),
            peername: peer.addr,
            sockport: peer.sockport,
            listener: peer.listener.clone(),
            mountpoint: String::new(),
            keepalive: 0,
            clean_start: true,
            expiry_interval: 0,
            connected_at: junction_types::now_ms(),
            is_superuser: false,
            extras: Default::default(),
        };
        Ok(Some(ConnectRequest {
            info,
            password: words.next().map(|p| bytes::Bytes::from(p.to_string())),
            listener_mountpoint: None,
            limits: self.ctx.settings().session,
            resume: false,
        }))
    }

    fn refused(&mut self, reason: &str) {
        self.out
            .bytes
            .put_slice(format!("ERR {reason}\n").as_bytes());
    }

    fn admitted(mut self, session: Session, _now: Instant) -> LineChannel {
        self.out.bytes.put_slice(b"OK\n");
        self.ctx.metrics.sent(frame::OK);
        LineChannel {
            session,
            out: self.out,
        }
    }
}

struct LineChannel {
    session: Session,
    out: Output,
}

impl StreamChannel for LineChannel {
    fn session(&self) -> &Session {
        &self.session
    }

    fn output(&mut self) -> &mut Output {
        &mut self.out
    }

    fn on_input(&mut self, input: &mut BytesMut, _now: Instant) -> Result<(), CloseReason> {
        while let Some(line) =
            take_line(input).map_err(|()| CloseReason::Protocol("line_too_long"))?
        {
            let s = &self.session;
            let mut words = line.splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("PUB"), Some(topic), payload) => {
                    s.ctx.metrics.received(frame::PUB);
                    if s.ctx.check_topic_name(topic).is_err()
                        || !s.ctx.authorize_publish(&s.info, topic)
                    {
                        return Err(CloseReason::Protocol("not_authorized"));
                    }
                    let payload = bytes::Bytes::from(payload.unwrap_or("").to_string());
                    let routed = s.ctx.publish(
                        &s.info,
                        &s.mountpoint,
                        topic,
                        payload,
                        QoS::AtMostOnce,
                        false,
                        Default::default(),
                    );
                    self.out.congested |= routed.congested;
                }
                (Some("SUB"), Some(filter), None) => {
                    s.ctx.metrics.received(frame::SUB);
                    s.ctx
                        .subscribe(
                            &s.info,
                            &s.cell,
                            &s.mountpoint,
                            filter,
                            SubOptions::default(),
                        )
                        .map_err(|_| CloseReason::Protocol("invalid_filter"))?;
                    self.out.bytes.put_slice(b"OK\n");
                    s.ctx.metrics.sent(frame::OK);
                }
                (Some("BYE"), None, None) => {
                    s.ctx.metrics.received(frame::BYE);
                    return Err(CloseReason::Normal);
                }
                _ => return Err(CloseReason::Protocol("unknown_command")),
            }
        }
        Ok(())
    }

    fn on_deliveries(&mut self, _now: Instant) -> Result<(), CloseReason> {
        let s = &self.session;
        let mut taken = Vec::new();
        s.cell.take_outbox(s.conn_id, &mut taken);
        for o in taken {
            if let Outbound::Publish { delivery, .. } = o {
                let m = &delivery.message;
                let topic = s.mountpoint.unmount(&m.topic).to_string();
                self.out.bytes.put_slice(format!("MSG {topic} ").as_bytes());
                self.out.bytes.put_slice(&m.payload);
                self.out.bytes.put_u8(b'\n');
                s.ctx.delivered(&s.info, m);
                s.ctx.metrics.sent(frame::MSG);
            }
        }
        Ok(())
    }

    fn on_call(&mut self, _call: ClientCall) {}

    fn on_timer(&mut self, _now: Instant) -> Result<(), CloseReason> {
        Ok(())
    }

    fn next_timer(&self) -> Option<Instant> {
        None
    }

    fn silent_until(&self) -> Option<(Instant, CloseReason)> {
        None
    }

    fn goodbye(&mut self, reason: CloseReason) {
        if reason != CloseReason::Normal {
            self.out
                .bytes
                .put_slice(format!("ERR {}\n", reason.as_str()).as_bytes());
        }
    }

    fn on_close(&mut self, _reason: CloseReason) -> (Option<junction_broker::Will>, u32) {
        (None, 0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_registered_with_one_line_serves_real_connections() {
    let config = test_config(
        &fresh_data_dir(),
        "gateway.linegw { mountpoint = \"line/\", listeners.tcp.default.bind = \"127.0.0.1:0\" }",
    );
    // Without its line in the list, the section is refused by name.
    let refused = junction::Server::start(&config).await.unwrap_err();
    assert!(
        format!("{refused:#}").contains("gateway.linegw: unknown gateway"),
        "{refused:#}"
    );

    // The one line.
    let registry = junction::gateways::registry().with::<LineGw>();
    let server = junction::Server::start_with(&config, registry)
        .await
        .unwrap();
    let tcp = server.local_addr("tcp:default").unwrap();
    let addr = server
        .local_addr("linegw:tcp:default")
        .expect("its listener");
    let mut mqtt = v5::simple(tcp, "watch-line").await;
    mqtt.subscribe("line/#", v5::QoS::AtMostOnce).await;

    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut next_line = async || {
        tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("a line in time")
            .unwrap()
    };
    write.write_all(b"CONNECT dev1\n").await.unwrap();
    assert_eq!(next_line().await.as_deref(), Some("OK"));
    // A publish reaches the MQTT subscriber under the gateway's mountpoint.
    write.write_all(b"PUB temp 21.5\n").await.unwrap();
    let p = mqtt.publish_in().await;
    assert_eq!(&p.topic[..], b"line/temp");
    assert_eq!(&p.payload[..], b"21.5");
    // A subscription gets what MQTT publishes under it.
    write.write_all(b"SUB cmd/#\n").await.unwrap();
    assert_eq!(next_line().await.as_deref(), Some("OK"));
    mqtt.client
        .publish("line/cmd/reboot", v5::QoS::AtMostOnce, false, "now")
        .await
        .unwrap();
    assert_eq!(next_line().await.as_deref(), Some("MSG cmd/reboot now"));

    // The framework sees the client like any other: registry, counters, close path.
    let ctx = server.gateway("linegw").await.expect("loaded");
    assert_eq!(ctx.clients.list()[0].clientid, "dev1");
    assert_eq!(ctx.clients.list()[0].mountpoint, "line/");
    assert_eq!(ctx.metrics.get("client.connected"), 1);
    // Its own frame types are counted in the same typed system.
    assert_eq!(ctx.metrics.get("packets.connect.received"), 1);
    assert_eq!(ctx.metrics.get("packets.pub.received"), 1);
    assert_eq!(ctx.metrics.get("packets.ok.sent"), 2);
    assert_eq!(ctx.metrics.get("packets.msg.sent"), 1);
    assert_eq!(ctx.metrics.get("messages.delivered"), 1);
    write.write_all(b"BYE\n").await.unwrap();
    assert_eq!(next_line().await, None);
    eventually("the client is gone", || ctx.clients.is_empty()).await;
    assert_eq!(ctx.metrics.get("client.disconnected"), 1);
    server.shutdown().await;
}

/// MQTT runs on the same framework as the gateways: its clients are in the MQTT
/// listeners' registry, the management calls (list, add, remove subscriptions) reach
/// their connections, and a kick through the registry ends one with DISCONNECT 0x98.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_clients_are_framework_clients() {
    use junction_gateway::CallError;

    let s = TestServer::start().await;
    let ctx = s.server.as_ref().expect("running").mqtt().clone();
    let mut c = v5::simple(s.tcp, "fw-1").await;
    c.subscribe("a/+", v5::QoS::AtLeastOnce).await;
    assert!(ctx.clients.list().iter().any(|i| i.clientid == "fw-1"));
    let subs = ctx.subscriptions("fw-1").await.unwrap();
    assert_eq!(subs.len(), 1);
    assert_eq!((subs[0].topic.as_str(), subs[0].qos), ("a/+", 1));

    // A subscription added by the API delivers, and is gone once removed.
    ctx.add_subscription("fw-1", "b/c", SubOptions::default(), None)
        .await
        .unwrap();
    let publisher = v5::simple(s.tcp, "fw-pub").await;
    publisher
        .client
        .publish("b/c", v5::QoS::AtMostOnce, false, "x")
        .await
        .unwrap();
    assert_eq!(&c.publish_in().await.topic[..], b"b/c");
    ctx.remove_subscription("fw-1", "b/c").await.unwrap();
    assert_eq!(
        ctx.remove_subscription("fw-1", "b/c").await.unwrap_err(),
        CallError::NoSuchSubscription
    );
    assert_eq!(ctx.subscriptions("fw-1").await.unwrap().len(), 1);

    // The registry's kick is the broker's: DISCONNECT 0x98 "administrative action".
    let (mut raw, _) = Raw::open(
        s.tcp,
        junction_codec_mqtt::ProtocolVersion::V5,
        "fw-1",
        true,
    )
    .await;
    assert!(ctx
        .clients
        .kick("fw-1", junction_broker::KickReason::Administrative));
    match raw.recv().await {
        Some(junction_codec_mqtt::Packet::Disconnect(d)) => assert_eq!(d.reason_code, 0x98),
        other => panic!("expected DISCONNECT 0x98, got {other:?}"),
    }
    eventually("the client is unregistered", || {
        !ctx.clients.list().iter().any(|i| i.clientid == "fw-1")
    })
    .await;
    assert_eq!(
        ctx.subscriptions("fw-1").await.unwrap_err(),
        CallError::ClientNotFound
    );
}
