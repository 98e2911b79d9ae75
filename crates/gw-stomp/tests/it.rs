//! End-to-end tests of the STOMP gateway: a real broker, gateway context and TCP listener,
//! driven by a raw STOMP client that encodes and decodes frames with the codec.

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use junction_broker::{Broker, KickReason, OpenSession, SessionCell};
use junction_codec_stomp::{encode, Command, Decoder, Frame, Item, Limits, Version};
use junction_gateway::{CommonSettings, GatewayCtx};
use junction_gw_stomp::{serve, StompSettings};
use junction_session::{Outbound, SessionLimits, SubOptions};
use junction_transport::{ListenerHandle, ListenerKind, ListenerOptions};
use junction_types::Message;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::{timeout, Instant};

const WAIT: Duration = Duration::from_secs(3);

struct Env {
    /// The broker the gateway was given (the harness's; the gateway reaches it only
    /// through its context).
    broker: Arc<Broker>,
    ctx: Arc<GatewayCtx>,
    addr: SocketAddr,
    _listener: ListenerHandle,
}

async fn env_with(mountpoint: &str, idle_timeout: Duration) -> Env {
    let broker = Broker::new(Default::default());
    let ctx = GatewayCtx::new(
        "stomp",
        "stomp",
        junction_gw_stomp::FRAMES,
        broker.clone(),
        CommonSettings {
            mountpoint: mountpoint.into(),
            idle_timeout,
            ..CommonSettings::default()
        },
    );
    let settings = Arc::new(StompSettings::default());
    let c = ctx.clone();
    let listener = junction_transport::start(
        ListenerOptions::new(
            "stomp:tcp:default",
            ListenerKind::Tcp,
            "127.0.0.1:0".parse().unwrap(),
        ),
        move |a| serve(c.clone(), settings.clone(), a),
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

async fn env(mountpoint: &str) -> Env {
    env_with(mountpoint, Duration::from_secs(5)).await
}

struct Client {
    sock: TcpStream,
    rbuf: BytesMut,
    dec: Decoder,
}

fn frame(command: Command, headers: &[(&str, &str)]) -> Frame {
    let mut f = Frame::new(command);
    for (k, v) in headers {
        f = f.with_header(*k, *v);
    }
    f
}

impl Client {
    async fn raw(addr: SocketAddr) -> Client {
        Client {
            sock: TcpStream::connect(addr).await.unwrap(),
            rbuf: BytesMut::new(),
            dec: Decoder::new(Version::V1_2, Limits::UNLIMITED),
        }
    }

    /// Connect with STOMP 1.2 and no heart-beats.
    async fn connect(addr: SocketAddr) -> Client {
        let (c, connected) =
            Client::connect_with(addr, &[("accept-version", "1.2"), ("host", "h")]).await;
        assert_eq!(connected.command, Command::Connected);
        c
    }

    async fn connect_with(addr: SocketAddr, headers: &[(&str, &str)]) -> (Client, Frame) {
        let mut c = Client::raw(addr).await;
        c.send(&frame(Command::Connect, headers)).await;
        let f = c.recv().await;
        if let Some(v) = f.header("version") {
            c.dec.version = match v {
                "1.0" => Version::V1_0,
                "1.1" => Version::V1_1,
                _ => Version::V1_2,
            };
        }
        (c, f)
    }

    async fn send(&mut self, f: &Frame) {
        let mut out = BytesMut::new();
        encode(f, self.dec.version, &mut out);
        self.sock.write_all(&out).await.unwrap();
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.sock.write_all(bytes).await.unwrap();
    }

    /// The next item, or `None` when the server closed the connection.
    async fn item(&mut self, within: Duration) -> Option<Item> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(item) = self
                .dec
                .decode(&mut self.rbuf)
                .expect("server sent garbage")
            {
                return Some(item);
            }
            let n = timeout(
                deadline - Instant::now(),
                self.sock.read_buf(&mut self.rbuf),
            )
            .await
            .expect("timed out waiting for the server")
            .unwrap_or(0);
            if n == 0 {
                return None;
            }
        }
    }

    /// The next frame (heart-beats skipped).
    async fn recv(&mut self) -> Frame {
        loop {
            match self.item(WAIT).await {
                Some(Item::Frame(f)) => return f,
                Some(Item::HeartBeat) => {}
                None => panic!("connection closed while waiting for a frame"),
            }
        }
    }

    /// Assert the next frame is an ERROR with this body, and return it.
    async fn expect_error(&mut self, body: &str) -> Frame {
        let f = self.recv().await;
        assert_eq!(f.command, Command::Error, "{f:?}");
        assert_eq!(std::str::from_utf8(&f.body).unwrap(), body);
        f
    }

    /// Assert the server closes the connection (frames before the close are returned).
    async fn expect_closed(&mut self) -> Vec<Item> {
        let mut seen = Vec::new();
        while let Some(item) = self.item(WAIT).await {
            seen.push(item);
        }
        seen
    }

    /// Assert no frame arrives for `ms` milliseconds.
    async fn expect_silence(&mut self, ms: u64) {
        let d = Duration::from_millis(ms);
        if let Ok(Some(item)) = timeout(d, self.item(WAIT)).await {
            panic!("unexpected {item:?}");
        }
    }

    /// Round trip: a RECEIPT for a no-op UNSUBSCRIBE proves everything before it was handled.
    async fn sync(&mut self, tag: &str) {
        self.send(&frame(
            Command::Unsubscribe,
            &[("id", "no-such-sub"), ("receipt", tag)],
        ))
        .await;
        let f = self.recv().await;
        assert_eq!(f.command, Command::Receipt, "{f:?}");
        assert_eq!(f.header("receipt-id"), Some(tag));
    }

    async fn subscribe(&mut self, id: &str, dest: &str) {
        self.subscribe_with(id, dest, &[]).await;
    }

    async fn subscribe_with(&mut self, id: &str, dest: &str, extra: &[(&str, &str)]) {
        let receipt = format!("sub-{id}");
        let mut f = frame(
            Command::Subscribe,
            &[("id", id), ("destination", dest), ("receipt", &receipt)],
        );
        for (k, v) in extra {
            f = f.with_header(*k, *v);
        }
        self.send(&f).await;
        let r = self.recv().await;
        assert_eq!(r.command, Command::Receipt, "{r:?}");
        assert_eq!(r.header("receipt-id"), Some(receipt.as_str()));
    }

    async fn send_text(&mut self, dest: &str, body: &str) {
        self.send(&frame(Command::Send, &[("destination", dest)]).with_body(body.to_string()))
            .await;
    }
}

fn body(f: &Frame) -> &str {
    std::str::from_utf8(&f.body).unwrap()
}

/// An MQTT-side session in the broker's MQTT namespace.
fn mqtt_session(broker: &Arc<Broker>, id: &str, filter: &str) -> Arc<SessionCell> {
    let (tx, rx) = oneshot::channel();
    std::mem::forget(rx);
    let opened = broker.open_session(OpenSession {
        namespace: ByteString::new(),
        client_id: id.into(),
        clean_start: true,
        expiry_interval_secs: 0,
        limits: SessionLimits::default(),
        conn_id: 1,
        kick: tx,
    });
    broker
        .subscribe(&opened.cell, filter, SubOptions::default())
        .unwrap();
    opened.cell
}

async fn mqtt_receive(cell: &SessionCell) -> Vec<Arc<Message>> {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut out = Vec::new();
        cell.take_outbox(1, &mut out);
        if !out.is_empty() {
            return out
                .into_iter()
                .filter_map(|o| match o {
                    Outbound::Publish { delivery, .. } => Some(delivery.message),
                    Outbound::PubRel(_) => None,
                })
                .collect();
        }
        assert!(Instant::now() < deadline, "nothing delivered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn only_client(ctx: &GatewayCtx) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let list = ctx.clients.list();
        if list.len() == 1 {
            return list[0].clientid.to_string();
        }
        assert!(Instant::now() < deadline, "{} clients", list.len());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn connect_without_accept_version_is_1_0_and_connected_has_emqx_headers() {
    let e = env("").await;
    let (_c, f) = Client::connect_with(e.addr, &[("login", "bob"), ("passcode", "pw")]).await;
    assert_eq!(f.command, Command::Connected);
    assert_eq!(f.header("version"), Some("1.0"));
    assert_eq!(f.header("heart-beat"), Some("0,0"));
    assert!(f.header("server").unwrap().starts_with("junction-stomp/"));
    let id = only_client(&e.ctx).await;
    assert_eq!(id.len(), 16);
    let (info, stats) = e.ctx.clients.lookup(&id).unwrap();
    let stat = |name: &str| stats.iter().find(|(n, _)| *n == name).unwrap().1;
    assert_eq!(stat("recv_pkt"), 1);
    assert!(stat("recv_oct") > 0);
    // CONNECTED is counted before the write completes; the octets follow right after.
    assert_eq!(stat("send_pkt"), 1);
    assert_eq!(info.username.as_deref(), Some("bob"));
    assert_eq!(info.proto_ver, "1.0");
    assert_eq!(&*info.listener, "stomp:tcp:default");
    assert_eq!(e.ctx.metrics.get("client.connected"), 1);
    assert_eq!(e.ctx.metrics.get("packets.connect.received"), 1);
    assert_eq!(e.ctx.metrics.get("packets.connected.sent"), 1);
}

#[tokio::test]
async fn stomp_frame_negotiates_the_highest_version_and_swaps_heart_beats() {
    let e = env("").await;
    let mut c = Client::raw(e.addr).await;
    c.send(&frame(
        Command::Stomp,
        &[
            ("accept-version", "1.0,1.1,1.2"),
            ("heart-beat", "10000,20000"),
        ],
    ))
    .await;
    let f = c.recv().await;
    assert_eq!(f.command, Command::Connected);
    assert_eq!(f.header("version"), Some("1.2"));
    assert_eq!(f.header("heart-beat"), Some("20000,10000"));

    let (_c, f) = Client::connect_with(e.addr, &[("accept-version", "1.1,1.0")]).await;
    assert_eq!(f.header("version"), Some("1.1"));
}

#[tokio::test]
async fn unsupported_version_is_refused_with_login_failed() {
    let e = env("").await;
    let mut c = Client::raw(e.addr).await;
    c.send(&frame(Command::Connect, &[("accept-version", "2.0,1.3")]))
        .await;
    c.expect_error("Login Failed: Supported protocol versions < 1.2")
        .await;
    assert!(c.expect_closed().await.is_empty());
    assert!(e.ctx.clients.is_empty());
}

#[tokio::test]
async fn frames_before_connect_close_the_connection_without_error() {
    let e = env("").await;
    let mut c = Client::raw(e.addr).await;
    c.send_text("a", "x").await;
    assert!(c.expect_closed().await.is_empty());
    let mut c = Client::raw(e.addr).await;
    c.send_raw(b"HELLO\n\n\0").await;
    assert!(c.expect_closed().await.is_empty());
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_idle_timeout() {
    let e = env_with("", Duration::from_millis(200)).await;
    let mut c = Client::raw(e.addr).await;
    let started = Instant::now();
    assert!(c.expect_closed().await.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn send_reaches_mqtt_subscribers_on_the_mounted_topic_with_properties() {
    let e = env("stomp/").await;
    let mqtt = mqtt_session(&e.broker, "mqtt-sub", "stomp/#");
    let mut c = Client::connect(e.addr).await;
    c.send(
        &frame(
            Command::Send,
            &[
                ("destination", "a/b"),
                ("content-type", "application/json"),
                ("x-trace", "t1"),
                ("receipt", "r1"),
            ],
        )
        .with_body("{}"),
    )
    .await;
    let r = c.recv().await;
    assert_eq!(r.command, Command::Receipt);
    assert_eq!(r.header("receipt-id"), Some("r1"));
    let msgs = mqtt_receive(&mqtt).await;
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(m.topic, "stomp/a/b");
    assert_eq!(m.payload, Bytes::from_static(b"{}"));
    assert_eq!(
        m.properties.content_type.as_deref(),
        Some("application/json")
    );
    let props: Vec<(&str, &str)> = m
        .properties
        .user_properties
        .iter()
        .map(|(k, v)| (&**k, &**v))
        .collect();
    assert_eq!(props, vec![("x-trace", "t1")]);
    assert_eq!(m.namespace, "stomp");
    assert_eq!(e.ctx.metrics.get("packets.send.received"), 1);
    assert_eq!(e.ctx.metrics.get("packets.receipt.sent"), 1);
    assert!(e.ctx.metrics.get("bytes.received") > 0);
    assert!(e.ctx.metrics.get("bytes.sent") > 0);
}

#[tokio::test]
async fn exact_and_wildcard_subscriptions_really_deliver_unmounted() {
    let e = env("mp/").await;
    let mut sub = Client::connect(e.addr).await;
    sub.subscribe("1", "a/b").await;
    sub.subscribe("2", "a/+").await;
    sub.subscribe("3", "a/#").await;
    let mut publisher = Client::connect(e.addr).await;
    publisher.send_text("a/b", "hello").await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let f = sub.recv().await;
        assert_eq!(f.command, Command::Message);
        assert_eq!(f.header("destination"), Some("a/b"));
        assert_eq!(f.header("content-type"), Some("text/plain"));
        assert_eq!(f.header("ack"), None);
        assert_eq!(body(&f), "hello");
        seen.push((
            f.header("subscription").unwrap().to_string(),
            f.header("message-id").unwrap().to_string(),
        ));
    }
    let mut subs: Vec<&str> = seen.iter().map(|(s, _)| s.as_str()).collect();
    subs.sort();
    assert_eq!(subs, vec!["1", "2", "3"]);
    let mut ids: Vec<&str> = seen.iter().map(|(_, m)| m.as_str()).collect();
    ids.sort();
    assert_eq!(ids, vec!["1", "2", "3"]);
    // Only `a/#` matches a deeper topic.
    publisher.send_text("a/b/c", "deep").await;
    let f = sub.recv().await;
    assert_eq!(f.header("subscription"), Some("3"));
    assert_eq!(f.header("destination"), Some("a/b/c"));
    assert_eq!(f.header("message-id"), Some("4"));
    sub.expect_silence(100).await;
    assert_eq!(e.ctx.metrics.get("messages.delivered"), 4);
    assert_eq!(e.ctx.metrics.get("packets.message.sent"), 4);
}

#[tokio::test]
async fn shared_and_queue_subscriptions_deliver() {
    let e = env("g/").await;
    let mut sub = Client::connect(e.addr).await;
    sub.subscribe("s", "$share/grp/s/+").await;
    sub.subscribe("q", "$queue/q/1").await;
    let mut publisher = Client::connect(e.addr).await;
    publisher.send_text("s/1", "shared").await;
    let f = sub.recv().await;
    assert_eq!(f.header("subscription"), Some("s"));
    assert_eq!(f.header("destination"), Some("s/1"));
    publisher.send_text("q/1", "queued").await;
    let f = sub.recv().await;
    assert_eq!(f.header("subscription"), Some("q"));
    assert_eq!(body(&f), "queued");
}

#[tokio::test]
async fn user_headers_and_escaped_values_survive_stomp_to_stomp() {
    let e = env("").await;
    let mut sub = Client::connect(e.addr).await;
    sub.subscribe("1", "h/1").await;
    let mut publisher = Client::connect(e.addr).await;
    let tricky = "a:b\nc\\d\re";
    publisher
        .send(
            &frame(
                Command::Send,
                &[
                    ("destination", "h/1"),
                    ("content-type", "application/xml"),
                    ("x-plain", "v"),
                    ("x-tricky", tricky),
                    ("we:ird", "name"),
                    ("subscription", "spoofed"),
                    ("x-plain", "second-is-ignored"),
                ],
            )
            .with_body("<a/>"),
        )
        .await;
    let f = sub.recv().await;
    assert_eq!(f.header("subscription"), Some("1"));
    assert_eq!(f.header("content-type"), Some("application/xml"));
    assert_eq!(f.header("x-plain"), Some("v"));
    assert_eq!(f.header("x-tricky"), Some(tricky));
    assert_eq!(f.header("we:ird"), Some("name"));
    assert_eq!(
        f.headers
            .iter()
            .filter(|(k, _)| k == "subscription")
            .count(),
        1
    );
    assert_eq!(f.headers.iter().filter(|(k, _)| k == "x-plain").count(), 1);
    assert_eq!(body(&f), "<a/>");
}

#[tokio::test]
async fn content_length_bodies_may_contain_nul_bytes() {
    let e = env("").await;
    let mut sub = Client::connect(e.addr).await;
    sub.subscribe("1", "bin").await;
    let mut publisher = Client::connect(e.addr).await;
    let payload: &[u8] = b"a\0b\0\0c";
    publisher
        .send(
            &frame(
                Command::Send,
                &[("destination", "bin"), ("content-length", "6")],
            )
            .with_body(Bytes::from_static(payload)),
        )
        .await;
    let f = sub.recv().await;
    assert_eq!(&f.body[..], payload);
    assert_eq!(f.header("content-length"), Some("6"));
}

#[tokio::test]
async fn receipts_for_every_client_frame_and_disconnect_closes() {
    let e = env("").await;
    let mut c = Client::connect(e.addr).await;
    let frames = [
        frame(
            Command::Subscribe,
            &[("id", "1"), ("destination", "r/1"), ("receipt", "a")],
        ),
        frame(Command::Send, &[("destination", "r/2"), ("receipt", "b")]),
        frame(Command::Ack, &[("id", "7"), ("receipt", "c")]),
        frame(Command::Nack, &[("id", "8"), ("receipt", "d")]),
        frame(Command::Unsubscribe, &[("id", "1"), ("receipt", "e")]),
        frame(Command::Unsubscribe, &[("id", "unknown"), ("receipt", "f")]),
    ];
    for f in &frames {
        c.send(f).await;
    }
    for want in ["a", "b", "c", "d", "e", "f"] {
        let r = c.recv().await;
        assert_eq!(r.command, Command::Receipt);
        assert_eq!(r.header("receipt-id"), Some(want));
    }
    c.send(&frame(Command::Disconnect, &[("receipt", "bye")]))
        .await;
    let r = c.recv().await;
    assert_eq!(r.command, Command::Receipt);
    assert_eq!(r.header("receipt-id"), Some("bye"));
    assert!(c.expect_closed().await.is_empty());
    let deadline = Instant::now() + WAIT;
    while !e.ctx.clients.is_empty() {
        assert!(Instant::now() < deadline, "client still registered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(e.ctx.metrics.get("client.disconnected"), 1);
    assert_eq!(e.ctx.metrics.get("packets.disconnect.received"), 1);
    assert_eq!(e.broker.session_count(), 0);
}

#[tokio::test]
async fn transactions_defer_until_commit_and_abort_drops() {
    let e = env("").await;
    let mut sub = Client::connect(e.addr).await;
    sub.subscribe("1", "tx/#").await;
    let mut c = Client::connect(e.addr).await;
    c.send(&frame(
        Command::Begin,
        &[("transaction", "t1"), ("receipt", "b1")],
    ))
    .await;
    assert_eq!(c.recv().await.header("receipt-id"), Some("b1"));
    c.send(
        &frame(
            Command::Send,
            &[("destination", "tx/1"), ("transaction", "t1")],
        )
        .with_body("one"),
    )
    .await;
    c.send(
        &frame(
            Command::Send,
            &[("destination", "tx/2"), ("transaction", "t1")],
        )
        .with_body("two"),
    )
    .await;
    c.send(&frame(Command::Ack, &[("id", "1"), ("transaction", "t1")]))
        .await;
    c.sync("s1").await;
    sub.expect_silence(150).await;
    c.send(&frame(
        Command::Commit,
        &[("transaction", "t1"), ("receipt", "c1")],
    ))
    .await;
    assert_eq!(c.recv().await.header("receipt-id"), Some("c1"));
    assert_eq!(body(&sub.recv().await), "one");
    assert_eq!(body(&sub.recv().await), "two");

    c.send(&frame(Command::Begin, &[("transaction", "t2")]))
        .await;
    c.send(&frame(
        Command::Send,
        &[("destination", "tx/3"), ("transaction", "t2")],
    ))
    .await;
    c.send(&frame(
        Command::Abort,
        &[("transaction", "t2"), ("receipt", "a2")],
    ))
    .await;
    assert_eq!(c.recv().await.header("receipt-id"), Some("a2"));
    sub.expect_silence(150).await;
    // The committed transaction is gone.
    c.send(&frame(
        Command::Commit,
        &[("transaction", "t1"), ("receipt", "again")],
    ))
    .await;
    let f = c.expect_error("Transaction t1 not found").await;
    assert_eq!(f.header("receipt-id"), Some("again"));
}

#[tokio::test]
async fn transaction_errors_keep_the_connection_open() {
    let e = env("").await;
    let mut c = Client::connect(e.addr).await;
    c.send(&frame(Command::Begin, &[("transaction", "t")]))
        .await;
    c.send(&frame(Command::Begin, &[("transaction", "t")]))
        .await;
    c.expect_error("Transaction t already started").await;
    c.send(&frame(Command::Abort, &[("transaction", "nope")]))
        .await;
    c.expect_error("Transaction nope not found").await;
    c.send(&frame(
        Command::Send,
        &[("destination", "x"), ("transaction", "nope")],
    ))
    .await;
    c.expect_error("Transaction nope not found").await;
    c.sync("still-open").await;
}

#[tokio::test]
async fn client_ack_modes_carry_an_ack_header() {
    let e = env("").await;
    let mut sub = Client::connect(e.addr).await;
    sub.subscribe_with("c", "ack/c", &[("ack", "client")]).await;
    sub.subscribe_with("ci", "ack/ci", &[("ack", "client-individual")])
        .await;
    sub.subscribe_with("a", "ack/a", &[("ack", "auto")]).await;
    let mut p = Client::connect(e.addr).await;
    p.send_text("ack/c", "1").await;
    let f = sub.recv().await;
    assert_eq!(f.header("subscription"), Some("c"));
    assert_eq!(f.header("ack"), f.header("message-id"));
    assert!(f.header("ack").is_some());
    p.send_text("ack/ci", "2").await;
    let f = sub.recv().await;
    assert_eq!(f.header("subscription"), Some("ci"));
    assert_eq!(f.header("ack"), Some("2"));
    p.send_text("ack/a", "3").await;
    let f = sub.recv().await;
    assert_eq!(f.header("subscription"), Some("a"));
    assert_eq!(f.header("ack"), None);
    sub.send(&frame(Command::Ack, &[("id", "2"), ("receipt", "acked")]))
        .await;
    assert_eq!(sub.recv().await.header("receipt-id"), Some("acked"));
}

#[tokio::test]
async fn duplicate_subscription_id_is_an_error_and_closes() {
    let e = env("").await;
    let mut c = Client::connect(e.addr).await;
    c.subscribe("1", "d/1").await;
    c.send(&frame(
        Command::Subscribe,
        &[("id", "1"), ("destination", "d/2")],
    ))
    .await;
    c.expect_error("Subscription id 1 is in used").await;
    assert!(c.expect_closed().await.is_empty());
}

#[tokio::test]
async fn duplicate_subscription_topic_is_an_error_and_closes() {
    let e = env("").await;
    let mut c = Client::connect(e.addr).await;
    c.subscribe("1", "d/1").await;
    c.send(&frame(
        Command::Subscribe,
        &[("id", "2"), ("destination", "d/1")],
    ))
    .await;
    c.expect_error("Topic d/1 already in subscribed").await;
    assert!(c.expect_closed().await.is_empty());
}

#[tokio::test]
async fn invalid_filter_is_an_error_and_closes() {
    let e = env("").await;
    let mut c = Client::connect(e.addr).await;
    c.send(&frame(
        Command::Subscribe,
        &[("id", "1"), ("destination", "a/#/b")],
    ))
    .await;
    c.expect_error("Invalid destination a/#/b").await;
    assert!(c.expect_closed().await.is_empty());
}

#[tokio::test]
async fn unsubscribe_stops_delivery() {
    let e = env("").await;
    let mut sub = Client::connect(e.addr).await;
    sub.subscribe("1", "u/1").await;
    let mut p = Client::connect(e.addr).await;
    p.send_text("u/1", "before").await;
    assert_eq!(body(&sub.recv().await), "before");
    sub.send(&frame(
        Command::Unsubscribe,
        &[("id", "1"), ("receipt", "gone")],
    ))
    .await;
    assert_eq!(sub.recv().await.header("receipt-id"), Some("gone"));
    p.send_text("u/1", "after").await;
    p.sync("p").await;
    sub.expect_silence(150).await;
    // The id may be reused after UNSUBSCRIBE.
    sub.subscribe("1", "u/1").await;
}

#[tokio::test]
async fn send_to_a_forbidden_topic_is_an_error_with_receipt_id() {
    let e = env("").await;
    let mut c = Client::connect(e.addr).await;
    c.send(&frame(
        Command::Send,
        &[("destination", "$SYS/x"), ("receipt", "r9")],
    ))
    .await;
    let f = c.expect_error("Insufficient permissions for $SYS/x").await;
    assert_eq!(f.header("receipt-id"), Some("r9"));
    assert_eq!(f.header("content-type"), Some("text/plain"));
    assert!(c.expect_closed().await.is_empty());
}

#[tokio::test]
async fn heart_beats_are_sent_and_a_silent_client_times_out() {
    let e = env("").await;
    let started = Instant::now();
    let (mut c, f) = Client::connect_with(
        e.addr,
        &[("accept-version", "1.2"), ("heart-beat", "300,100")],
    )
    .await;
    assert_eq!(f.header("heart-beat"), Some("100,300"));
    let items = c.expect_closed().await;
    let elapsed = started.elapsed();
    assert!(
        items.iter().filter(|i| **i == Item::HeartBeat).count() >= 2,
        "{items:?}"
    );
    assert!(elapsed >= Duration::from_millis(550), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(2000), "{elapsed:?}");
    assert!(e.ctx.metrics.get("packets.heartbeat.sent") >= 2);
}

#[tokio::test]
async fn huge_heart_beat_periods_are_capped_not_fatal() {
    let e = env("").await;
    let (mut c, f) = Client::connect_with(
        e.addr,
        &[
            ("accept-version", "1.2"),
            ("heart-beat", "18446744073709551615,18446744073709551615"),
        ],
    )
    .await;
    assert_eq!(f.header("heart-beat"), Some("86400000,86400000"));
    c.sync("ok").await;
}

#[tokio::test]
async fn client_heart_beats_keep_the_connection_alive() {
    let e = env("").await;
    let (mut c, _) = Client::connect_with(
        e.addr,
        &[("accept-version", "1.2"), ("heart-beat", "150,0")],
    )
    .await;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        c.send_raw(b"\n").await;
    }
    c.sync("alive").await;
    assert!(e.ctx.metrics.get("packets.heartbeat.received") >= 8);
}

#[tokio::test]
async fn too_many_headers_is_a_frame_error() {
    let e = env("").await;
    let mut c = Client::connect(e.addr).await;
    let mut f = frame(Command::Send, &[("destination", "l/1")]);
    for i in 0..10 {
        f = f.with_header(format!("h{i}"), "v");
    }
    c.send(&f).await;
    let err = c.expect_error("Frame error: too_many_headers").await;
    assert_eq!(err.header("content-type"), Some("text/plain"));
    assert!(c.expect_closed().await.is_empty());
}

#[tokio::test]
async fn kick_sends_kicked_out_and_discard_sends_discarded() {
    let e = env("").await;
    let mut c = Client::connect(e.addr).await;
    let id = only_client(&e.ctx).await;
    assert!(e.ctx.clients.kick(&id, KickReason::Administrative));
    c.expect_error("Kicked out").await;
    assert!(c.expect_closed().await.is_empty());

    let mut c = Client::connect(e.addr).await;
    let id = only_client(&e.ctx).await;
    assert!(e.ctx.clients.kick(&id, KickReason::TakenOver));
    c.expect_error("Discarded").await;
    assert!(c.expect_closed().await.is_empty());

    // A broker-side kick of the session works the same way.
    let mut c = Client::connect(e.addr).await;
    let id = only_client(&e.ctx).await;
    assert!(e.broker.kick("stomp", &id, KickReason::Administrative));
    c.expect_error("Kicked out").await;
    assert!(c.expect_closed().await.is_empty());
}

#[tokio::test]
async fn garbage_is_a_frame_error_and_other_clients_are_unaffected() {
    let e = env("").await;
    let mut sub = Client::connect(e.addr).await;
    sub.subscribe("1", "g/1").await;
    let mut bad = Client::connect(e.addr).await;
    bad.send_raw(b"BOGUS\nx:y\n\n\0").await;
    bad.expect_error("Frame error: unknown_command").await;
    assert!(bad.expect_closed().await.is_empty());
    let mut p = Client::connect(e.addr).await;
    p.send_text("g/1", "fine").await;
    assert_eq!(body(&sub.recv().await), "fine");
}

#[tokio::test]
async fn deliveries_matching_no_stomp_subscription_are_dropped_and_counted() {
    let e = env("").await;
    let mut c = Client::connect(e.addr).await;
    let id = only_client(&e.ctx).await;
    let cell = e.broker.lookup_in("stomp", &id).unwrap();
    // A subscription made behind the client's back, without a subscription id.
    e.broker
        .subscribe(&cell, "z/1", SubOptions::default())
        .unwrap();
    let mut p = Client::connect(e.addr).await;
    p.send_text("z/1", "lost").await;
    p.sync("p").await;
    c.sync("c").await;
    assert_eq!(e.ctx.metrics.get("delivery.dropped.no_subid"), 1);
    assert_eq!(e.ctx.metrics.get("delivery.dropped"), 1);
}

#[tokio::test]
async fn stomp_1_0_subscribes_without_id_and_mqtt_messages_arrive() {
    let e = env("").await;
    let (mut c, f) = Client::connect_with(e.addr, &[]).await;
    assert_eq!(f.header("version"), Some("1.0"));
    c.send(&frame(
        Command::Subscribe,
        &[("destination", "old/1"), ("receipt", "r")],
    ))
    .await;
    assert_eq!(c.recv().await.header("receipt-id"), Some("r"));
    let mut m = junction_broker::system_message("old/1".into(), "from mqtt", false);
    m.properties.content_type = Some("text/x-mqtt".into());
    e.broker.publish(m);
    let f = c.recv().await;
    assert_eq!(f.header("subscription"), Some("old/1"));
    assert_eq!(f.header("content-type"), Some("text/x-mqtt"));
    assert_eq!(body(&f), "from mqtt");
}

fn builtin_db(users: &[(&str, &str, bool)]) -> Arc<dyn junction_auth::Authenticator> {
    let cfg: junction_config::authn::AuthnConfig = serde_json::from_value(serde_json::json!({
        "mechanism": "password_based",
        "backend": "built_in_database",
    }))
    .unwrap();
    let db = junction_auth::BuiltInDatabase::new(&cfg);
    for (u, p, s) in users {
        db.add_user(u, p.as_bytes(), *s).unwrap();
    }
    Arc::new(db)
}

#[tokio::test]
async fn failed_login_answers_login_failed_and_closes() {
    let e = env("").await;
    e.ctx
        .authn
        .set_chain("stomp:global", vec![builtin_db(&[("bob", "pw", false)])]);
    let (mut c, f) = Client::connect_with(
        e.addr,
        &[
            ("accept-version", "1.2"),
            ("login", "bob"),
            ("passcode", "nope"),
        ],
    )
    .await;
    assert_eq!(f.command, Command::Error);
    assert_eq!(body(&f), "Login Failed: bad_username_or_password");
    assert!(c.expect_closed().await.is_empty());
    let (mut c, f) = Client::connect_with(
        e.addr,
        &[
            ("accept-version", "1.2"),
            ("login", "eve"),
            ("passcode", "pw"),
        ],
    )
    .await;
    assert_eq!(body(&f), "Login Failed: not_authorized");
    assert!(c.expect_closed().await.is_empty());
    assert!(e.ctx.clients.is_empty());
    assert_eq!(e.ctx.metrics.get("client.authenticate"), 2);
    assert_eq!(e.ctx.metrics.get("client.connected"), 0);

    let (_c, f) = Client::connect_with(
        e.addr,
        &[
            ("accept-version", "1.2"),
            ("login", "bob"),
            ("passcode", "pw"),
        ],
    )
    .await;
    assert_eq!(f.command, Command::Connected);
    let id = only_client(&e.ctx).await;
    let (info, _) = e.ctx.clients.lookup(&id).unwrap();
    assert_eq!(info.sockport, e.addr.port());
}

#[tokio::test]
async fn a_superuser_may_publish_where_others_may_not() {
    let e = env("").await;
    e.ctx
        .authn
        .set_chain("stomp:global", vec![builtin_db(&[("root", "pw", true)])]);
    let mqtt = mqtt_session(&e.broker, "watch", "$SYS/custom");
    let (mut c, f) = Client::connect_with(
        e.addr,
        &[
            ("accept-version", "1.2"),
            ("login", "root"),
            ("passcode", "pw"),
        ],
    )
    .await;
    assert_eq!(f.command, Command::Connected);
    c.send_text("$SYS/custom", "from root").await;
    c.sync("s").await;
    let got = mqtt_receive(&mqtt).await;
    assert_eq!(&got[0].payload[..], b"from root");
}

#[tokio::test]
async fn hooks_run_through_a_client_lifecycle_and_are_counted_by_name() {
    use junction_broker::hooks::{
        AuthenticateArgs, ConnackArgs, ConnectArgs, MessageArgs, PublishArgs, ReasonArgs,
        SessionSubArgs, SubscribeArgs, UnsubscribeArgs,
    };
    use junction_broker::Flow;
    use junction_types::ClientInfo;
    let e = env("").await;
    let seen: Arc<parking_lot::Mutex<Vec<String>>> = Arc::default();
    let hooks = &e.broker.hooks;
    macro_rules! record {
        ($chain:ident, $name:literal, $arg:ty) => {{
            let s = seen.clone();
            hooks.$chain.add(
                0,
                Arc::new(move |c: &ClientInfo, _: &mut $arg| {
                    s.lock().push(format!("{} {}", $name, c.protocol));
                    Flow::Continue
                }),
            );
        }};
    }
    record!(client_connect, "client.connect", ConnectArgs);
    record!(client_authenticate, "client.authenticate", AuthenticateArgs);
    record!(session_created, "session.created", ());
    record!(client_connected, "client.connected", ());
    record!(client_connack, "client.connack", ConnackArgs);
    record!(client_subscribe, "client.subscribe", SubscribeArgs);
    record!(session_subscribed, "session.subscribed", SessionSubArgs);
    record!(message_delivered, "message.delivered", MessageArgs);
    record!(client_unsubscribe, "client.unsubscribe", UnsubscribeArgs);
    record!(session_unsubscribed, "session.unsubscribed", SessionSubArgs);
    record!(session_terminated, "session.terminated", ReasonArgs);
    record!(client_disconnected, "client.disconnected", ReasonArgs);
    let s = seen.clone();
    hooks.message_publish.add(
        0,
        Arc::new(move |p: &mut PublishArgs| {
            // The broker's own `$SYS` events go through `message.publish` too.
            if !p.message.topic.starts_with("$SYS/") {
                s.lock()
                    .push(format!("message.publish {}", p.message.topic));
            }
            Flow::Continue
        }),
    );

    let mut c = Client::connect(e.addr).await;
    c.subscribe("1", "h/#").await;
    c.send_text("h/1", "x").await;
    let m = c.recv().await;
    assert_eq!(m.command, Command::Message);
    c.send(&frame(
        Command::Unsubscribe,
        &[("id", "1"), ("receipt", "u")],
    ))
    .await;
    assert_eq!(c.recv().await.command, Command::Receipt);
    c.send(&frame(Command::Disconnect, &[("receipt", "bye")]))
        .await;
    assert_eq!(c.recv().await.command, Command::Receipt);
    c.expect_closed().await;
    let deadline = Instant::now() + WAIT;
    while !seen
        .lock()
        .iter()
        .any(|s| s.starts_with("client.disconnected"))
    {
        assert!(Instant::now() < deadline, "{:?}", seen.lock());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = seen.lock().clone();
    assert_eq!(
        seen,
        vec![
            "client.connect stomp",
            "client.authenticate stomp",
            "session.created stomp",
            "client.connected stomp",
            "client.connack stomp",
            "client.subscribe stomp",
            "session.subscribed stomp",
            "message.publish h/1",
            "message.delivered stomp",
            "client.unsubscribe stomp",
            "session.unsubscribed stomp",
            "session.terminated stomp",
            "client.disconnected stomp",
        ]
    );
    for name in [
        "client.connect",
        "client.authenticate",
        "client.connack",
        "client.connected",
        "client.disconnected",
        "client.subscribe",
        "client.unsubscribe",
        "session.created",
        "session.subscribed",
        "session.unsubscribed",
        "session.terminated",
        "messages.delivered",
    ] {
        assert_eq!(e.ctx.metrics.get(name), 1, "{name}");
    }
    assert_eq!(e.ctx.metrics.get("client.authorize"), 2);
}

#[tokio::test]
async fn a_client_connect_hook_can_refuse_the_client() {
    use junction_broker::hooks::ConnectArgs;
    use junction_broker::Flow;
    let e = env("").await;
    e.broker.hooks.client_connect.add(
        0,
        Arc::new(|c: &junction_types::ClientInfo, a: &mut ConnectArgs| {
            if c.username.as_deref() == Some("banned") {
                a.refuse = Some("banned".into());
                return Flow::Stop;
            }
            Flow::Continue
        }),
    );
    let (mut c, f) =
        Client::connect_with(e.addr, &[("accept-version", "1.2"), ("login", "banned")]).await;
    assert_eq!(body(&f), "Login Failed: banned");
    assert!(c.expect_closed().await.is_empty());
    let (_c, f) = Client::connect_with(e.addr, &[("accept-version", "1.2"), ("login", "ok")]).await;
    assert_eq!(f.command, Command::Connected);
}

#[tokio::test]
async fn a_client_subscribe_hook_that_removes_the_filter_blocks_the_subscription() {
    use junction_broker::hooks::SubscribeArgs;
    use junction_broker::Flow;
    let e = env("").await;
    e.broker.hooks.client_subscribe.add(
        0,
        Arc::new(|_: &junction_types::ClientInfo, a: &mut SubscribeArgs| {
            a.filters.retain(|(f, _)| !f.starts_with("private/"));
            Flow::Continue
        }),
    );
    let mut c = Client::connect(e.addr).await;
    c.subscribe("1", "public/x").await;
    c.send(&frame(
        Command::Subscribe,
        &[("id", "2"), ("destination", "private/x"), ("receipt", "r")],
    ))
    .await;
    c.expect_error("The client.subscribe hook blocked the private/x subscription request")
        .await;
    assert!(c.expect_closed().await.is_empty());
}

#[tokio::test]
async fn a_client_authorize_hook_denies_a_subscription() {
    use junction_broker::hooks::{Action, AuthorizeArgs, AuthzResult};
    use junction_broker::Flow;
    let e = env("").await;
    e.broker.hooks.client_authorize.add(
        0,
        Arc::new(|_: &junction_types::ClientInfo, a: &mut AuthorizeArgs| {
            if matches!(a.action, Action::Subscribe { .. }) && a.topic == "secret" {
                a.result = AuthzResult::Deny;
            }
            Flow::Continue
        }),
    );
    let mut c = Client::connect(e.addr).await;
    c.send(&frame(
        Command::Subscribe,
        &[("id", "1"), ("destination", "secret"), ("receipt", "r")],
    ))
    .await;
    let f = c.expect_error("Insufficient permissions for secret").await;
    assert_eq!(f.header("receipt-id"), Some("r"));
    assert!(c.expect_closed().await.is_empty());
}

#[tokio::test]
async fn subscriptions_are_listed_added_and_removed_through_the_framework() {
    use junction_gateway::{CallError, SubscriptionInfo};
    let e = env("stomp/").await;
    let mut c = Client::connect(e.addr).await;
    c.subscribe("1", "a/1").await;
    let id = only_client(&e.ctx).await;
    let list = e.ctx.subscriptions(&id).await.unwrap();
    assert_eq!(
        list,
        vec![SubscriptionInfo {
            topic: "stomp/a/1".into(),
            qos: 0,
            nl: 0,
            rap: 0,
            rh: 1,
            subid: Some("1".into()),
        }]
    );
    let opts = SubOptions::default();
    let added = e
        .ctx
        .add_subscription(&id, "b/#", opts, Some("9".into()))
        .await
        .unwrap();
    assert_eq!(added.topic, "stomp/b/#");
    e.broker.publish(junction_broker::system_message(
        "stomp/b/x".into(),
        "via api",
        false,
    ));
    let m = c.recv().await;
    assert_eq!(m.command, Command::Message);
    assert_eq!(m.header("subscription"), Some("9"));
    assert_eq!(m.header("destination"), Some("b/x"));
    assert_eq!(body(&m), "via api");
    assert_eq!(
        e.ctx
            .add_subscription(&id, "c", opts, Some("9".into()))
            .await,
        Err(CallError::Refused("Subscription id 9 is in used".into()))
    );
    assert_eq!(
        e.ctx
            .add_subscription(&id, "b/#", opts, Some("10".into()))
            .await,
        Err(CallError::Refused("Topic b/# already in subscribed".into()))
    );
    assert!(matches!(
        e.ctx.add_subscription(&id, "c", opts, None).await,
        Err(CallError::Refused(_))
    ));
    assert_eq!(e.ctx.subscriptions(&id).await.unwrap().len(), 2);
    assert_eq!(e.ctx.remove_subscription(&id, "b/#").await, Ok(()));
    assert_eq!(
        e.ctx.remove_subscription(&id, "b/#").await,
        Err(CallError::NoSuchSubscription)
    );
    assert_eq!(e.ctx.subscriptions(&id).await.unwrap().len(), 1);
    assert_eq!(
        e.ctx.subscriptions("nobody").await,
        Err(CallError::ClientNotFound)
    );
    // After the removal nothing arrives on b/#.
    e.broker.publish(junction_broker::system_message(
        "stomp/b/y".into(),
        "late",
        false,
    ));
    c.expect_silence(200).await;
}

#[tokio::test]
async fn a_header_over_max_headers_length_is_a_frame_error() {
    let e = env("").await;
    let mut c = Client::connect(e.addr).await;
    // Default `frame.max_headers_length` is 1024 (name plus value).
    let long = "v".repeat(1100);
    c.send(&frame(
        Command::Send,
        &[("destination", "l/1"), ("big", &long)],
    ))
    .await;
    c.expect_error("Frame error: too_long_header").await;
    assert!(c.expect_closed().await.is_empty());
    // The gateway keeps serving others.
    let _other = Client::connect(e.addr).await;
}

#[tokio::test]
async fn a_body_over_max_body_length_is_a_frame_error_with_or_without_content_length() {
    let e = env("").await;
    // Default `frame.max_body_length` is 65536.
    let body = "b".repeat(70_000);
    let mut c = Client::connect(e.addr).await;
    let raw = format!("SEND\ndestination:l/1\n\n{body}\0");
    // The server may close before it has read everything: a failed write is fine.
    let _ = c.sock.write_all(raw.as_bytes()).await;
    c.expect_error("Frame error: too_long_body").await;
    assert!(c.expect_closed().await.is_empty());
    let mut c = Client::connect(e.addr).await;
    let raw = format!("SEND\ndestination:l/1\ncontent-length:{}\n\n", body.len());
    c.send_raw(raw.as_bytes()).await;
    c.expect_error("Frame error: too_long_body").await;
    assert!(c.expect_closed().await.is_empty());
}
