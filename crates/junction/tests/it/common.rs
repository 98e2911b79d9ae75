//! Test harness: start a server on free ports, connect clients, wait for events.

#![allow(dead_code)]

use bytes::BytesMut;
use junction::Server;
use junction_codec_mqtt::{Codec, Packet, ProtocolVersion};
use junction_config::Config;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// How long a test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long a test waits to be sure something does NOT happen.
pub const QUIET: Duration = Duration::from_millis(300);

/// A server listening on loopback with OS-assigned ports.
pub struct TestServer {
    pub server: Option<Server>,
    pub tcp: SocketAddr,
    pub ws: SocketAddr,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with("").await
    }

    /// Start with extra HOCON appended to the test defaults, in a data directory of its own.
    pub async fn start_with(extra: &str) -> TestServer {
        Self::start_at(&fresh_data_dir(), extra).await
    }

    /// Start with its data in `data_dir` (to restart on the same data).
    pub async fn start_at(data_dir: &std::path::Path, extra: &str) -> TestServer {
        let config = test_config(data_dir, extra);
        let server = Server::start(&config).await.expect("server starts");
        let tcp = server.local_addr("tcp:default").expect("tcp listener");
        let ws = server.local_addr("ws:default").expect("ws listener");
        TestServer {
            server: Some(server),
            tcp,
            ws,
        }
    }

    /// Stop the server (clients are disconnected, the data file committed).
    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }

    pub fn broker(&self) -> &std::sync::Arc<junction_broker::Broker> {
        &self.server.as_ref().expect("running").broker
    }

    pub fn metric(&self, name: &str) -> u64 {
        self.broker()
            .metrics
            .snapshot()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no metric {name}"))
    }
}

/// The test defaults (loopback, free ports) plus `extra`, with data in `data_dir`.
pub fn test_config(data_dir: &std::path::Path, extra: &str) -> Config {
    let text = format!(
        "listeners.tcp.default.bind = \"127.0.0.1:0\"\n\
         listeners.ws.default.bind = \"127.0.0.1:0\"\n\
         gateway.stomp.listeners.tcp.default.bind = \"127.0.0.1:0\"\n\
         gateway.mqttsn.listeners.udp.default.bind = \"127.0.0.1:0\"\n\
         gateway.coap.listeners.udp.default.bind = \"127.0.0.1:0\"\n\
         gateway.lwm2m.listeners.udp.default.bind = \"127.0.0.1:0\"\n\
         dashboard.listeners.http.bind = \"127.0.0.1:0\"\n\
         node.data_dir = \"{}\"\n\
         {extra}\n",
        data_dir.display()
    );
    Config::from_str_with_env(&text, std::iter::empty::<(String, String)>()).expect("test config")
}

/// A new, empty data directory (the data file allows one server at a time).
pub fn fresh_data_dir() -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("junction-it-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Wait until `f` is true, polling; panics after [`WAIT`].
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f() {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------- rumqttc MQTT 3.1.1

pub mod v4 {
    use super::*;
    pub use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS};

    pub struct Client {
        pub client: AsyncClient,
        pub events: mpsc::UnboundedReceiver<Packet>,
        pub session_present: bool,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Client {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    pub fn options(addr: SocketAddr, id: &str) -> MqttOptions {
        let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
        o.set_keep_alive(Duration::from_secs(30));
        o
    }

    /// Connect and wait for CONNACK. Incoming packets go to `events`.
    pub async fn connect(opts: MqttOptions) -> Client {
        let (client, mut el) = AsyncClient::new(opts, 1000);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(p)) => {
                        if tx.send(p).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        let session_present = loop {
            match tokio::time::timeout(WAIT, rx.recv()).await {
                Ok(Some(Packet::ConnAck(ack))) => {
                    assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
                    break ack.session_present;
                }
                Ok(Some(_)) => continue,
                other => panic!("no CONNACK: {other:?}"),
            }
        };
        Client {
            client,
            events: rx,
            session_present,
            task,
        }
    }

    pub async fn simple(addr: SocketAddr, id: &str) -> Client {
        connect(options(addr, id)).await
    }

    impl Client {
        /// Next incoming PUBLISH within [`WAIT`].
        pub async fn publish_in(&mut self) -> Publish {
            loop {
                match tokio::time::timeout(WAIT, self.events.recv()).await {
                    Ok(Some(Packet::Publish(p))) => return p,
                    Ok(Some(_)) => continue,
                    other => panic!("expected a PUBLISH, got {other:?}"),
                }
            }
        }

        /// Next incoming PUBLISH within `d`, if any.
        pub async fn maybe_publish(&mut self, d: Duration) -> Option<Publish> {
            let deadline = tokio::time::Instant::now() + d;
            loop {
                match tokio::time::timeout_at(deadline, self.events.recv()).await {
                    Ok(Some(Packet::Publish(p))) => return Some(p),
                    Ok(Some(_)) => continue,
                    _ => return None,
                }
            }
        }

        /// Wait for a packet matching `f`.
        pub async fn wait_for(&mut self, what: &str, mut f: impl FnMut(&Packet) -> bool) -> Packet {
            loop {
                match tokio::time::timeout(WAIT, self.events.recv()).await {
                    Ok(Some(p)) if f(&p) => return p,
                    Ok(Some(_)) => continue,
                    other => panic!("waiting for {what}: {other:?}"),
                }
            }
        }

        pub async fn subscribe(&mut self, filter: &str, qos: QoS) {
            self.client.subscribe(filter, qos).await.unwrap();
            self.wait_for("SUBACK", |p| matches!(p, Packet::SubAck(_)))
                .await;
        }
    }
}

// ---------------------------------------------------------------- rumqttc MQTT 5.0

pub mod v5 {
    use super::*;
    pub use rumqttc::v5::mqttbytes::v5::Publish;
    pub use rumqttc::v5::mqttbytes::v5::{ConnAck, Filter, Packet, PublishProperties};
    pub use rumqttc::v5::mqttbytes::QoS;
    pub use rumqttc::v5::{AsyncClient, Event, MqttOptions};

    pub struct Client {
        pub client: AsyncClient,
        pub events: mpsc::UnboundedReceiver<Packet>,
        pub connack: ConnAck,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Client {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    pub fn options(addr: SocketAddr, id: &str) -> MqttOptions {
        let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
        o.set_keep_alive(Duration::from_secs(30));
        o
    }

    pub async fn connect(opts: MqttOptions) -> Client {
        let (client, mut el) = AsyncClient::new(opts, 1000);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(p)) => {
                        if tx.send(p).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        let connack = loop {
            match tokio::time::timeout(WAIT, rx.recv()).await {
                Ok(Some(Packet::ConnAck(ack))) => break ack,
                Ok(Some(_)) => continue,
                other => panic!("no CONNACK: {other:?}"),
            }
        };
        Client {
            client,
            events: rx,
            connack,
            task,
        }
    }

    pub async fn simple(addr: SocketAddr, id: &str) -> Client {
        connect(options(addr, id)).await
    }

    impl Client {
        pub async fn publish_in(&mut self) -> Publish {
            loop {
                match tokio::time::timeout(WAIT, self.events.recv()).await {
                    Ok(Some(Packet::Publish(p))) => return p,
                    Ok(Some(_)) => continue,
                    other => panic!("expected a PUBLISH, got {other:?}"),
                }
            }
        }

        pub async fn maybe_publish(&mut self, d: Duration) -> Option<Publish> {
            let deadline = tokio::time::Instant::now() + d;
            loop {
                match tokio::time::timeout_at(deadline, self.events.recv()).await {
                    Ok(Some(Packet::Publish(p))) => return Some(p),
                    Ok(Some(_)) => continue,
                    _ => return None,
                }
            }
        }

        pub async fn wait_for(&mut self, what: &str, mut f: impl FnMut(&Packet) -> bool) -> Packet {
            loop {
                match tokio::time::timeout(WAIT, self.events.recv()).await {
                    Ok(Some(p)) if f(&p) => return p,
                    Ok(Some(_)) => continue,
                    other => panic!("waiting for {what}: {other:?}"),
                }
            }
        }

        pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> Vec<u8> {
            self.client.subscribe(filter, qos).await.unwrap();
            self.suback().await
        }

        pub async fn subscribe_filter(&mut self, filter: Filter) -> Vec<u8> {
            self.client.subscribe_many([filter]).await.unwrap();
            self.suback().await
        }

        async fn suback(&mut self) -> Vec<u8> {
            match self
                .wait_for("SUBACK", |p| matches!(p, Packet::SubAck(_)))
                .await
            {
                Packet::SubAck(s) => s.return_codes.iter().map(suback_code).collect(),
                _ => unreachable!(),
            }
        }
    }

    fn suback_code(c: &rumqttc::v5::mqttbytes::v5::SubscribeReasonCode) -> u8 {
        use rumqttc::v5::mqttbytes::v5::SubscribeReasonCode as R;
        match c {
            R::Success(q) => *q as u8,
            R::Unspecified => 0x80,
            R::ImplementationSpecific => 0x83,
            R::NotAuthorized => 0x87,
            R::TopicFilterInvalid => 0x8F,
            R::PkidInUse => 0x91,
            R::QuotaExceeded => 0x97,
            R::SharedSubscriptionsNotSupported => 0x9E,
            R::SubscriptionIdNotSupported => 0xA1,
            R::WildcardSubscriptionsNotSupported => 0xA2,
            R::Failure => 0x80,
        }
    }
}

// ---------------------------------------------------------------- raw byte-level client

/// A hand-driven MQTT connection for byte-level edge cases.
pub struct Raw {
    pub stream: TcpStream,
    pub codec: Codec,
    buf: BytesMut,
}

impl Raw {
    pub async fn connect(addr: SocketAddr, version: ProtocolVersion) -> Raw {
        let stream = TcpStream::connect(addr).await.expect("tcp connect");
        Raw::over(stream, version)
    }

    /// A client on a socket connected elsewhere (with socket options of its own).
    pub fn over(stream: TcpStream, version: ProtocolVersion) -> Raw {
        stream.set_nodelay(true).ok();
        Raw {
            stream,
            codec: Codec::new(version, 16 * 1024 * 1024),
            buf: BytesMut::new(),
        }
    }

    pub async fn send(&mut self, p: &Packet) {
        let mut out = BytesMut::new();
        self.codec.encode(p, &mut out).expect("encode");
        self.stream.write_all(&out).await.expect("write");
    }

    pub async fn send_bytes(&mut self, b: &[u8]) {
        // The server may already have closed; a failed write is then fine.
        let _ = self.stream.write_all(b).await;
    }

    /// Next packet, or `None` if the connection closed (or nothing came within [`WAIT`]).
    pub async fn recv(&mut self) -> Option<Packet> {
        self.recv_within(WAIT).await
    }

    pub async fn recv_within(&mut self, d: Duration) -> Option<Packet> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            if let Ok(Some(p)) = self.codec.decode(&mut self.buf) {
                return Some(p);
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return None,
            }
        }
    }

    /// True if the server closes the connection (EOF or reset) within [`WAIT`], after
    /// reading and discarding anything it sent first.
    pub async fn closed(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut scratch = [0u8; 1024];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut scratch)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

// ---------------------------------------------------------------- packet builders

pub mod pk {
    use bytes::Bytes;
    use junction_codec_mqtt::*;

    pub fn connect(
        version: ProtocolVersion,
        id: &str,
        clean_start: bool,
        keep_alive: u16,
    ) -> Connect {
        Connect {
            protocol: version,
            clean_start,
            keep_alive,
            client_id: id.into(),
            will: None,
            username: None,
            password: None,
            properties: ConnectProperties::default(),
        }
    }

    pub fn publish(topic: &str, qos: QoS, packet_id: Option<u16>, payload: &str) -> Publish {
        Publish {
            dup: false,
            qos,
            retain: false,
            topic: topic.into(),
            packet_id,
            payload: Bytes::copy_from_slice(payload.as_bytes()),
            properties: PublishProperties::default(),
        }
    }

    pub fn subscribe(packet_id: u16, filter: &str, qos: QoS) -> Subscribe {
        Subscribe {
            packet_id,
            filters: vec![(
                filter.into(),
                SubscriptionOptions {
                    qos,
                    ..SubscriptionOptions::default()
                },
            )],
            subscription_identifier: None,
            user_properties: vec![],
        }
    }

    pub fn ack(packet_id: u16) -> PubAck {
        PubAck {
            packet_id,
            reason_code: 0,
            properties: AckProperties::default(),
        }
    }
}

impl Raw {
    /// Connect at the MQTT level and return the CONNACK.
    pub async fn handshake(
        &mut self,
        c: junction_codec_mqtt::Connect,
    ) -> junction_codec_mqtt::ConnAck {
        self.send(&Packet::Connect(Box::new(c))).await;
        match self.recv().await {
            Some(Packet::ConnAck(a)) => a,
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Open a TCP connection and connect with `id`.
    pub async fn open(
        addr: SocketAddr,
        version: ProtocolVersion,
        id: &str,
        clean_start: bool,
    ) -> (Raw, junction_codec_mqtt::ConnAck) {
        let mut r = Raw::connect(addr, version).await;
        let ack = r.handshake(pk::connect(version, id, clean_start, 60)).await;
        (r, ack)
    }

    /// Subscribe and return the SUBACK reason codes.
    pub async fn subscribe(&mut self, s: junction_codec_mqtt::Subscribe) -> Vec<u8> {
        self.send(&Packet::Subscribe(s)).await;
        loop {
            match self.recv().await {
                Some(Packet::SubAck(a)) => return a.reason_codes,
                Some(_) => continue,
                None => panic!("no SUBACK"),
            }
        }
    }

    /// Next PUBLISH (skipping other packets).
    pub async fn next_publish(&mut self) -> Option<junction_codec_mqtt::Publish> {
        self.next_publish_within(WAIT).await
    }

    pub async fn next_publish_within(
        &mut self,
        d: Duration,
    ) -> Option<junction_codec_mqtt::Publish> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv_within(left).await {
                Some(Packet::Publish(p)) => return Some(p),
                Some(_) => continue,
                None => return None,
            }
        }
    }
}
