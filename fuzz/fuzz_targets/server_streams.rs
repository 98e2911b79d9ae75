//! The whole server, not a codec: one Junction runs for the life of the fuzzing process,
//! and each input is split into an MQTT byte stream, a STOMP byte stream and MQTT-SN
//! datagrams, sent to its listeners on loopback. A canary subscriber connected before the
//! first input must get a fresh message after every input: a crash (any panic aborts the
//! process), a hang or a disturbed neighbour is a finding.
//! Run with `scripts/fuzz.sh server_streams`.
#![no_main]

use bytes::BytesMut;
use junction_codec_mqtt::{Codec, Connect, ConnectProperties, Packet, ProtocolVersion};
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How long the canary may take to arrive, and a stream to be closed, before it counts as
/// a hang.
const PATIENCE: Duration = Duration::from_secs(5);

struct Harness {
    runtime: tokio::runtime::Runtime,
    mqtt: SocketAddr,
    stomp: SocketAddr,
    mqttsn: SocketAddr,
    // Keeps the server running for the life of the process.
    _server: junction::Server,
    canary: Mutex<Canary>,
    datagrams: UdpSocket,
}

struct Canary {
    subscriber: TcpStream,
    publisher: TcpStream,
    inbox: BytesMut,
}

fn codec() -> Codec {
    Codec::new(ProtocolVersion::V3_1_1, 1 << 20)
}

fn encode(p: &Packet) -> BytesMut {
    let mut out = BytesMut::new();
    codec().encode(p, &mut out).expect("encodable");
    out
}

async fn mqtt_client(addr: SocketAddr, id: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("canary connects");
    let connect = Packet::Connect(Box::new(Connect {
        protocol: ProtocolVersion::V3_1_1,
        clean_start: true,
        keep_alive: 0,
        client_id: id.into(),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    }));
    s.write_all(&encode(&connect)).await.unwrap();
    let mut buf = BytesMut::new();
    loop {
        if let Ok(Some(Packet::ConnAck(_))) = codec().decode(&mut buf) {
            return s;
        }
        assert!(s.read_buf(&mut buf).await.unwrap() > 0, "canary refused");
    }
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = std::env::temp_dir().join(format!("junction-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let text = format!(
            "listeners.tcp.default.bind = \"127.0.0.1:0\"\n\
             listeners.ws.default.enable = false\n\
             gateway.stomp.listeners.tcp.default.bind = \"127.0.0.1:0\"\n\
             gateway.mqttsn.listeners.udp.default.bind = \"127.0.0.1:0\"\n\
             dashboard.listeners.http.enable = false\n\
             sys_topics.sys_msg_interval = disabled\n\
             sys_topics.sys_heartbeat_interval = disabled\n\
             node.data_dir = \"{}\"\n",
            dir.display()
        );
        let config = junction_config::Config::from_str_with_env(&text, Vec::<(String, String)>::new())
            .expect("fuzz config");
        let (server, canary, datagrams) = runtime.block_on(async {
            let server = junction::Server::start(&config).await.expect("server starts");
            let mqtt = server.local_addr("tcp:default").unwrap();
            let mut subscriber = mqtt_client(mqtt, "canary-sub").await;
            let subscribe = Packet::Subscribe(junction_codec_mqtt::Subscribe {
                packet_id: 1,
                filters: vec![("canary".into(), Default::default())],
                subscription_identifier: None,
                user_properties: vec![],
            });
            subscriber.write_all(&encode(&subscribe)).await.unwrap();
            let mut inbox = BytesMut::new();
            loop {
                if let Ok(Some(Packet::SubAck(_))) = codec().decode(&mut inbox) {
                    break;
                }
                assert!(subscriber.read_buf(&mut inbox).await.unwrap() > 0);
            }
            let publisher = mqtt_client(mqtt, "canary-pub").await;
            let datagrams = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            (
                server,
                Canary {
                    subscriber,
                    publisher,
                    inbox,
                },
                datagrams,
            )
        });
        Harness {
            mqtt: server.local_addr("tcp:default").unwrap(),
            stomp: server.local_addr("stomp:tcp:default").unwrap(),
            mqttsn: server.local_addr("mqttsn:udp:default").unwrap(),
            _server: server,
            runtime,
            canary: Mutex::new(canary),
            datagrams,
        }
    })
}

/// Write `bytes` as one client would, then end the stream and wait for the server to close
/// its side (it must, within [`PATIENCE`], once the client has said all it will).
async fn stream(addr: SocketAddr, bytes: &[u8]) {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return;
    };
    let _ = s.write_all(bytes).await;
    let _ = s.shutdown().await;
    let mut sink = [0u8; 4096];
    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            match s.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept a half-closed connection open");
}

/// The canary still gets a message published after the input.
async fn canary_sings(c: &mut Canary, n: u64) {
    let payload = format!("canary-{n}");
    let publish = Packet::Publish(junction_codec_mqtt::Publish {
        dup: false,
        qos: junction_codec_mqtt::QoS::AtMostOnce,
        retain: false,
        topic: "canary".into(),
        packet_id: None,
        payload: bytes::Bytes::from(payload.clone()),
        properties: Default::default(),
    });
    c.publisher.write_all(&encode(&publish)).await.unwrap();
    let got = tokio::time::timeout(PATIENCE, async {
        loop {
            while let Ok(Some(p)) = codec().decode(&mut c.inbox) {
                if let Packet::Publish(p) = p {
                    if p.payload == payload.as_bytes() {
                        return;
                    }
                }
            }
            assert!(c.subscriber.read_buf(&mut c.inbox).await.unwrap() > 0, "canary dropped");
        }
    })
    .await;
    assert!(got.is_ok(), "the canary got nothing after an input");
}

static ROUND: AtomicU64 = AtomicU64::new(0);

fuzz_target!(|data: &[u8]| {
    let h = harness();
    // Two length octets split the rest into an MQTT stream, a STOMP stream and datagrams.
    let (a, b, rest) = match data {
        [a, b, rest @ ..] => (*a as usize, *b as usize, rest),
        _ => return,
    };
    let first = (a * rest.len() / 256).min(rest.len());
    let second = (first + b * (rest.len() - first) / 256).min(rest.len());
    let (mqtt, stomp, sn) = (&rest[..first], &rest[first..second], &rest[second..]);
    let n = ROUND.fetch_add(1, Ordering::Relaxed);
    h.runtime.block_on(async {
        for datagram in sn.chunks(256) {
            let _ = h.datagrams.send_to(datagram, h.mqttsn).await;
        }
        tokio::join!(stream(h.mqtt, mqtt), stream(h.stomp, stomp));
        canary_sings(&mut h.canary.lock().unwrap(), n).await;
    });
});
