//! Listener limits and the `junction start` command itself.

use crate::common::*;
use junction_codec_mqtt::{Packet, ProtocolVersion, QoS};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const V4: ProtocolVersion = ProtocolVersion::V3_1_1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_refuses_connections_over_the_limit() {
    let s = TestServer::start_with("listeners.tcp.default.max_connections = 2").await;
    let (_a, _) = Raw::open(s.tcp, V4, "mc-a", true).await;
    let (_b, _) = Raw::open(s.tcp, V4, "mc-b", true).await;
    let mut c = Raw::connect(s.tcp, V4).await;
    c.send(&Packet::Connect(Box::new(pk::connect(
        V4, "mc-c", true, 60,
    ))))
    .await;
    assert!(c.closed().await, "the third connection is closed");
    drop(_a);
    // A slot frees up once a connection ends.
    let mut tries = 0;
    loop {
        let mut d = Raw::connect(s.tcp, V4).await;
        d.send(&Packet::Connect(Box::new(pk::connect(
            V4, "mc-d", true, 60,
        ))))
        .await;
        if let Some(Packet::ConnAck(a)) = d.recv_within(Duration::from_millis(500)).await {
            assert_eq!(a.reason_code, 0);
            break;
        }
        tries += 1;
        assert!(tries < 20, "no slot freed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_conn_rate_delays_connections_beyond_the_rate() {
    let s = TestServer::start_with("listeners.tcp.default.max_conn_rate = 5").await;
    let started = tokio::time::Instant::now();
    for i in 0..10 {
        let (_c, ack) = Raw::open(s.tcp, V4, &format!("rate-{i}"), true).await;
        assert_eq!(ack.reason_code, 0);
    }
    // 5 at once, then 5 more at 5 per second: about a second in all.
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "accepts were paced: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_listener_is_not_started() {
    let config = junction_config::Config::from_str_with_env(
        &format!(
            "listeners.tcp.default.bind = \"127.0.0.1:0\"\nlisteners.ws.default.enable = false\n\
             gateway.stomp.enable = false\nnode.data_dir = \"{}\"",
            fresh_data_dir().display()
        ),
        std::iter::empty::<(String, String)>(),
    )
    .unwrap();
    let server = junction::Server::start(&config).await.unwrap();
    assert!(server.local_addr("tcp:default").is_some());
    assert!(server.local_addr("ws:default").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_listener_carries_mqtt_in_binary_frames() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    let s = TestServer::start().await;
    let (mut sub, _) = Raw::open(s.tcp, V4, "ws-tcp-sub", true).await;
    sub.subscribe(pk::subscribe(1, "ws/t", QoS::AtMostOnce))
        .await;

    let mut req = format!("ws://{}/mqtt", s.ws).into_client_request().unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", "mqtt".parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "mqtt",
        "the subprotocol is echoed"
    );
    let codec = junction_codec_mqtt::Codec::new(V4, 1 << 20);
    let mut out = bytes::BytesMut::new();
    codec
        .encode(
            &Packet::Connect(Box::new(pk::connect(V4, "ws-pub", true, 60))),
            &mut out,
        )
        .unwrap();
    codec
        .encode(
            &Packet::Publish(pk::publish("ws/t", QoS::AtMostOnce, None, "over ws")),
            &mut out,
        )
        .unwrap();
    // CONNECT and PUBLISH in one frame: frames need not align with packets [MQTT-6.0.0-2].
    ws.send(Message::Binary(out.freeze())).await.unwrap();
    let msg = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let mut buf = bytes::BytesMut::from(&msg.into_data()[..]);
    match codec.decode(&mut buf).unwrap() {
        Some(Packet::ConnAck(a)) => assert_eq!(a.reason_code, 0),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    let got = sub.next_publish().await.unwrap();
    assert_eq!(&got.payload[..], b"over ws");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_listener_refuses_mqtt_without_upgrade() {
    let s = TestServer::start().await;
    let mut raw = Raw::connect(s.ws, V4).await;
    raw.send(&Packet::Connect(Box::new(pk::connect(
        V4, "not-ws", true, 60,
    ))))
    .await;
    assert!(
        raw.closed().await,
        "MQTT without a WebSocket upgrade is refused"
    );
}

// ------------------------------------------------------------------ the binary

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `junction start` with env overrides, in `dir`, and wait for `junction: started`.
fn spawn_junction(
    dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Running, Vec<String>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_junction"));
    cmd.arg("start").args(args).current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn junction");
    let stderr = child.stderr.take().unwrap();
    let mut lines = Vec::new();
    let mut reader = BufReader::new(stderr);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let done = line.contains("junction: started");
        lines.push(line.trim_end().to_string());
        if done {
            break;
        }
    }
    (Running(child), lines)
}

fn listener_addr(lines: &[String], id: &str) -> SocketAddr {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(&format!("junction: listener {id} on ")))
        .unwrap_or_else(|| panic!("no {id} line in {lines:?}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junction_start_without_config_serves_mqtt_and_creates_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let (_run, lines) = spawn_junction(
        dir.path(),
        &[],
        &[
            ("JUNCTION_LISTENERS__TCP__DEFAULT__BIND", "127.0.0.1:0"),
            ("JUNCTION_LISTENERS__WS__DEFAULT__BIND", "127.0.0.1:0"),
            (
                "JUNCTION_GATEWAY__STOMP__LISTENERS__TCP__DEFAULT__BIND",
                "127.0.0.1:0",
            ),
            (
                "JUNCTION_GATEWAY__MQTTSN__LISTENERS__UDP__DEFAULT__BIND",
                "127.0.0.1:0",
            ),
            (
                "JUNCTION_GATEWAY__COAP__LISTENERS__UDP__DEFAULT__BIND",
                "127.0.0.1:0",
            ),
            ("JUNCTION_DASHBOARD__LISTENERS__HTTP__BIND", "127.0.0.1:0"),
        ],
    );
    assert!(lines.iter().any(|l| l.contains("started")), "{lines:?}");
    let tcp = listener_addr(&lines, "tcp:default");
    listener_addr(&lines, "ws:default");
    listener_addr(&lines, "stomp:tcp:default");
    listener_addr(&lines, "coap:udp:default");
    // The management API is on by default, as EMQX's.
    listener_addr(&lines, "dashboard:http");
    assert!(dir.path().join("data").is_dir(), "data under ./data");
    let mut sub = v5::simple(tcp, "bin-sub").await;
    sub.subscribe("bin/t", v5::QoS::AtLeastOnce).await;
    let publisher = v4::simple(tcp, "bin-pub").await;
    publisher
        .client
        .publish("bin/t", v4::QoS::AtLeastOnce, false, "through the binary")
        .await
        .unwrap();
    assert_eq!(&sub.publish_in().await.payload[..], b"through the binary");
}

#[test]
fn junction_start_rejects_unknown_keys_with_the_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("bad.conf");
    std::fs::write(&conf, "mqtt { max_pakcet_size = 1MB }\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_junction"))
        .args(["start", "--config", conf.to_str().unwrap()])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mqtt.max_pakcet_size"), "{err}");
}

#[test]
fn junction_start_rejects_bad_values_with_the_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_junction"))
        .arg("start")
        .env("JUNCTION_MQTT__IDLE_TIMEOUT", "soon")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mqtt.idle_timeout"), "{err}");
}
