//! Hostile and malformed input: bytes that are not a valid MQTT conversation.
//!
//! Every test checks two things:
//! (a) how the offending connection ends — for MQTT 5.0 a DISCONNECT carrying the reason
//!     code the spec asks for, then a close; for 3.x (and before CONNECT) a plain close;
//! (b) that nobody else notices — a subscriber connected before the attack still receives a
//!     message published after it by another client, the server still accepts a new
//!     connection, and `connections.count` comes back down (a connection task that panicked
//!     or hangs would leave it up).
//!
//! Failures name the input bytes, so a broker fix can start from them.

use crate::common::*;
use bytes::BytesMut;
use junction_codec_mqtt::{reason, Codec, Packet, ProtocolVersion, QoS};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

const V5: ProtocolVersion = ProtocolVersion::V5;
const V4: ProtocolVersion = ProtocolVersion::V3_1_1;
const V3: ProtocolVersion = ProtocolVersion::V3_1;

// PUBLISH fixed header flags.
const QOS1: u8 = 0x02;
const QOS2: u8 = 0x04;
const QOS3: u8 = 0x06;
const DUP: u8 = 0x08;

// Property identifiers (MQTT 5.0 §2.2.2.2).
const P_PAYLOAD_FORMAT: u8 = 0x01;
const P_MESSAGE_EXPIRY: u8 = 0x02;
const P_CONTENT_TYPE: u8 = 0x03;
const P_SUBSCRIPTION_ID: u8 = 0x0B;
const P_SESSION_EXPIRY: u8 = 0x11;
const P_TOPIC_ALIAS: u8 = 0x23;
const P_USER_PROPERTY: u8 = 0x26;

// ---------------------------------------------------------------- byte builders

fn varint(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            return out;
        }
    }
}

/// First byte, Remaining Length, body.
fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    out.extend(varint(body.len()));
    out.extend_from_slice(body);
    out
}

/// A length-prefixed string / binary field.
fn field(b: &[u8]) -> Vec<u8> {
    let mut out = (b.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(b);
    out
}

/// A property block (5.0): its length, then the properties. `None` (3.x): nothing.
fn props(p: Option<&[u8]>) -> Vec<u8> {
    match p {
        Some(p) => {
            let mut out = varint(p.len());
            out.extend_from_slice(p);
            out
        }
        None => Vec::new(),
    }
}

/// The property block argument for `version` with no properties.
fn no_props(version: ProtocolVersion) -> Option<&'static [u8]> {
    version.is_v5().then_some(&[][..])
}

/// A PUBLISH with fixed header `flags`; `props`: `Some` for 5.0, `None` for 3.x.
fn publish(
    flags: u8,
    topic: &[u8],
    packet_id: Option<u16>,
    p: Option<&[u8]>,
    payload: &[u8],
) -> Vec<u8> {
    let mut body = field(topic);
    if let Some(id) = packet_id {
        body.extend(id.to_be_bytes());
    }
    body.extend(props(p));
    body.extend_from_slice(payload);
    frame(0x30 | flags, &body)
}

/// A SUBSCRIBE with first byte `first` (0x82 when well-formed).
fn subscribe(first: u8, packet_id: u16, p: Option<&[u8]>, filters: &[(&[u8], u8)]) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    body.extend(props(p));
    for (f, opts) in filters {
        body.extend(field(f));
        body.push(*opts);
    }
    frame(first, &body)
}

/// An UNSUBSCRIBE with first byte `first` (0xA2 when well-formed).
fn unsubscribe(first: u8, packet_id: u16, p: Option<&[u8]>, filters: &[&[u8]]) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    body.extend(props(p));
    for f in filters {
        body.extend(field(f));
    }
    frame(first, &body)
}

/// A four-byte-integer property.
fn prop_u32(id: u8, v: u32) -> Vec<u8> {
    let mut out = vec![id];
    out.extend(v.to_be_bytes());
    out
}

fn connect_bytes(version: ProtocolVersion, id: &str) -> Vec<u8> {
    let mut out = BytesMut::new();
    Codec::new(version, u32::MAX)
        .encode(
            &Packet::Connect(Box::new(pk::connect(version, id, true, 60))),
            &mut out,
        )
        .expect("encode CONNECT");
    out.to_vec()
}

const HTTP_GET: &[u8] = b"GET / HTTP/1.1\r\nHost: junction.example\r\nUpgrade: websocket\r\n\r\n";
/// The first bytes of a TLS 1.2 ClientHello: 0x16 reads as CONNECT with flags 0b0110.
const TLS_HELLO: &[u8] = &[
    0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03, 0x5e, 0x11, 0x0b, 0x7a,
];

fn hex(b: &[u8]) -> String {
    let mut s: String = b.iter().take(48).map(|x| format!("{x:02x} ")).collect();
    if b.len() > 48 {
        s.push_str(&format!("… ({} bytes)", b.len()));
    }
    s.trim_end().to_string()
}

fn next_id(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}", N.fetch_add(1, Ordering::Relaxed))
}

// ---------------------------------------------------------------- outcomes

/// How the server must end the offending connection.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// MQTT 5.0: DISCONNECT with this reason code, then close.
    Disconnect(u8),
    /// Close without sending anything.
    Close,
}

/// `Expect::Disconnect` for 5.0, `Expect::Close` for 3.x.
fn by_version(version: ProtocolVersion, code: u8) -> Expect {
    if version.is_v5() {
        Expect::Disconnect(code)
    } else {
        Expect::Close
    }
}

/// Everything the peer sends until it closes; `None` if still open after `within`.
async fn read_until_close(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

async fn outcome(c: &mut Raw, expect: Expect) -> Result<(), String> {
    match expect {
        Expect::Disconnect(code) => match c.recv().await {
            Some(Packet::Disconnect(d)) if d.reason_code == code => {}
            Some(Packet::Disconnect(d)) => {
                return Err(format!(
                    "DISCONNECT {:#04x}, expected {code:#04x}",
                    d.reason_code
                ))
            }
            Some(other) => return Err(format!("got {other:?}, expected DISCONNECT {code:#04x}")),
            None => return Err(format!("no DISCONNECT {code:#04x} (closed or silent)")),
        },
        Expect::Close => {
            if let Some(p) = c.recv().await {
                return Err(format!("got {p:?}, expected a plain close"));
            }
        }
    }
    if !c.closed().await {
        return Err("connection left open".into());
    }
    Ok(())
}

/// Connect a fresh client, send `input` after the CONNACK, check how the connection ends.
async fn attack(
    addr: SocketAddr,
    version: ProtocolVersion,
    input: &[u8],
    expect: Expect,
) -> Result<(), String> {
    let id = next_id("attacker");
    let (mut c, ack) = Raw::open(addr, version, &id, true).await;
    if ack.reason_code != 0 {
        return Err(format!("{id}: CONNACK {:#04x}", ack.reason_code));
    }
    c.send_bytes(input).await;
    outcome(&mut c, expect)
        .await
        .map_err(|e| format!("{version:?} [{}]: {e}", hex(input)))
}

// ---------------------------------------------------------------- the bystander

const BYSTANDER_TOPIC: &str = "bystander/news";

/// A subscriber connected before the attack.
struct Bystander {
    sub: Raw,
}

impl Bystander {
    async fn join(s: &TestServer) -> Bystander {
        let (mut sub, ack) = Raw::open(s.tcp, V5, "bystander", true).await;
        assert_eq!(ack.reason_code, 0);
        let codes = sub
            .subscribe(pk::subscribe(1, BYSTANDER_TOPIC, QoS::AtLeastOnce))
            .await;
        assert_eq!(codes, vec![1]);
        Bystander { sub }
    }

    /// Others are unaffected: connections are accounted for, a new client is accepted and
    /// its message reaches the bystander (first, and intact).
    async fn unaffected(&mut self, s: &TestServer) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let n = s.metric("connections.count");
            if n == 1 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "connections.count stuck at {n}, expected 1 (the bystander): a connection \
                 task hangs or died without cleaning up"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let id = next_id("after-attack");
        let (mut p, ack) = Raw::open(s.tcp, V4, &id, true).await;
        assert_eq!(
            ack.reason_code, 0,
            "new connection refused after the attack"
        );
        p.send(&Packet::Publish(pk::publish(
            BYSTANDER_TOPIC,
            QoS::AtLeastOnce,
            Some(1),
            "still serving",
        )))
        .await;
        match p.recv().await {
            Some(Packet::PubAck(a)) => assert_eq!(a.packet_id, 1),
            other => panic!("publisher after the attack: expected PUBACK, got {other:?}"),
        }
        let m = self
            .sub
            .next_publish()
            .await
            .expect("the bystander no longer receives messages");
        assert_eq!(&m.payload[..], b"still serving");
        if let Some(id) = m.packet_id {
            self.sub.send(&Packet::PubAck(pk::ack(id))).await;
        }
    }
}

/// Each case on its own connection (after CONNECT), then the bystander check. All cases run
/// even if one fails, so the report lists every misbehaviour.
async fn rejects_with(config: &str, cases: Vec<(ProtocolVersion, Vec<u8>, Expect)>) {
    let s = TestServer::start_with(config).await;
    let mut b = Bystander::join(&s).await;
    let mut failures = Vec::new();
    for (version, input, expect) in &cases {
        if let Err(e) = attack(s.tcp, *version, input, *expect).await {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "broker misbehaved:\n{}",
        failures.join("\n")
    );
    b.unaffected(&s).await;
}

async fn rejects(cases: Vec<(ProtocolVersion, Vec<u8>, Expect)>) {
    rejects_with("", cases).await
}

/// The same input for 5.0 (DISCONNECT `code`) and 3.1.1 (close); `input` builds it for a
/// version.
fn both(
    code: u8,
    input: impl Fn(ProtocolVersion) -> Vec<u8>,
) -> Vec<(ProtocolVersion, Vec<u8>, Expect)> {
    [V5, V4]
        .into_iter()
        .map(|v| (v, input(v), by_version(v, code)))
        .collect()
}

// ---------------------------------------------------------------- fixed header

/// A Variable Byte Integer is at most 4 bytes [MQTT 5.0 §1.5.5, MQTT 3.1.1 §2.2.3]; more is
/// a Malformed Packet (0x81) [MQTT 5.0 §4.13].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remaining_length_over_four_bytes_is_malformed() {
    let input = vec![0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F];
    let mut cases = both(reason::MALFORMED_PACKET, |_| input.clone());
    cases.push((V3, input.clone(), Expect::Close));
    rejects(cases).await;
}

/// Reserved fixed header flags must be as the spec lists them; anything else is malformed
/// [MQTT-2.1.3-1, MQTT-3.6.1-1, MQTT-3.8.1-1, MQTT-3.10.1-1] → 0x81.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_fixed_header_flags_are_malformed() {
    let mut cases = Vec::new();
    for v in [V5, V4] {
        let np = no_props(v);
        for input in [
            subscribe(0x80, 1, np, &[(b"a/b", 1)]), // SUBSCRIBE, flags 0000
            subscribe(0x8A, 1, np, &[(b"a/b", 1)]), // SUBSCRIBE, flags 1010
            frame(0x60, &[0, 1]),                   // PUBREL, flags 0000
            unsubscribe(0xA0, 1, np, &[b"a/b"]),    // UNSUBSCRIBE, flags 0000
            vec![0xC1, 0x00],                       // PINGREQ, flags 0001
            vec![0xC8, 0x00],                       // PINGREQ, flags 1000
            frame(0x41, &[0, 1]),                   // PUBACK, flags 0001
            vec![0xE2, 0x00],                       // DISCONNECT, flags 0010
            vec![0x00, 0x00],                       // packet type 0 (reserved)
        ] {
            cases.push((v, input, by_version(v, reason::MALFORMED_PACKET)));
        }
    }
    rejects(cases).await;
}

/// A packet whose fields run past its Remaining Length, or that has bytes left over, is
/// malformed [MQTT 5.0 §1.5, §2.1.4] → 0x81.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_past_or_short_of_remaining_length_are_malformed() {
    let mut cases = Vec::new();
    for v in [V5, V4] {
        let code = by_version(v, reason::MALFORMED_PACKET);
        // Topic length 100, 5 bytes of body.
        cases.push((v, frame(0x30, &[0, 100, b'a', b'b', b'c']), code));
        // PINGREQ with one byte of body.
        cases.push((v, vec![0xC0, 0x01, 0x00], code));
        // PUBACK with one byte where a packet identifier needs two.
        cases.push((v, frame(0x40, &[0]), code));
    }
    rejects(cases).await;
}

// ---------------------------------------------------------------- PUBLISH

/// Topic names are UTF-8; ill-formed UTF-8 (bad continuation, surrogate, overlong, 0xFF)
/// is malformed [MQTT-1.5.4-1] → 0x81.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_in_publish_topic_is_malformed() {
    let mut cases = Vec::new();
    for v in [V5, V4] {
        for topic in [
            &b"a/\xC3\x28"[..],
            &b"a/\xED\xA0\x80"[..],
            &b"\xC0\xAF"[..],
            &b"\xFF\xFE"[..],
            &b"a/\xE2\x82"[..],
        ] {
            let input = publish(0, topic, None, no_props(v), b"x");
            cases.push((v, input, by_version(v, reason::MALFORMED_PACKET)));
        }
    }
    rejects(cases).await;
}

/// U+0000 must not appear in a UTF-8 string [MQTT-1.5.4-2] → 0x81.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_character_in_publish_topic_is_malformed() {
    rejects(both(reason::MALFORMED_PACKET, |v| {
        publish(0, b"a/\0/b", None, no_props(v), b"x")
    }))
    .await;
}

/// Wildcards are not allowed in a topic name [MQTT-3.3.2-2]; 5.0 answers Topic Name
/// invalid (0x90) [MQTT 5.0 §3.3.2.1, §4.13].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_in_publish_topic_is_topic_name_invalid() {
    let mut cases = Vec::new();
    for topic in [&b"a/+"[..], b"a/#", b"#", b"+/b"] {
        cases.extend(both(reason::TOPIC_NAME_INVALID, |v| {
            publish(0, topic, None, no_props(v), b"x")
        }));
    }
    rejects(cases).await;
}

/// An empty topic name without a Topic Alias: 5.0 Protocol Error (0x82) [MQTT 5.0
/// §3.3.2.1]; 3.1.1 topics are at least one character [MQTT-4.7.3-1].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_publish_topic_without_alias_is_rejected() {
    rejects(both(reason::PROTOCOL_ERROR, |v| {
        publish(0, b"", None, no_props(v), b"x")
    }))
    .await;
}

/// QoS 3 is malformed [MQTT-3.3.1-4] → 0x81.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_with_qos_3_is_malformed() {
    rejects(both(reason::MALFORMED_PACKET, |v| {
        publish(QOS3, b"a/b", Some(1), no_props(v), b"x")
    }))
    .await;
}

/// DUP must be 0 on a QoS 0 PUBLISH [MQTT-3.3.1-2] → 0x81.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dup_flag_on_qos0_publish_is_malformed() {
    rejects(both(reason::MALFORMED_PACKET, |v| {
        publish(DUP, b"a/b", None, no_props(v), b"x")
    }))
    .await;
}

/// QoS > 0 PUBLISH, SUBSCRIBE and UNSUBSCRIBE need a non-zero packet identifier
/// [MQTT-2.2.1-3 (5.0), MQTT-2.3.1-1 (3.1.1)] → 0x81.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packet_identifier_0_is_malformed() {
    let mut cases = Vec::new();
    for v in [V5, V4] {
        let np = no_props(v);
        for input in [
            publish(QOS1, b"a/b", Some(0), np, b"x"),
            publish(QOS2, b"a/b", Some(0), np, b"x"),
            subscribe(0x82, 0, np, &[(b"a/b", 1)]),
            unsubscribe(0xA2, 0, np, &[b"a/b"]),
        ] {
            cases.push((v, input, by_version(v, reason::MALFORMED_PACKET)));
        }
    }
    rejects(cases).await;
}

// ---------------------------------------------------------------- SUBSCRIBE / UNSUBSCRIBE

/// SUBSCRIBE / UNSUBSCRIBE must carry at least one filter [MQTT-3.8.3-3, MQTT-3.10.3-2];
/// 5.0: Protocol Error (0x82).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_or_unsubscribe_without_filters_is_a_protocol_error() {
    let mut cases = both(reason::PROTOCOL_ERROR, |v| {
        subscribe(0x82, 1, no_props(v), &[])
    });
    cases.extend(both(reason::PROTOCOL_ERROR, |v| {
        unsubscribe(0xA2, 1, no_props(v), &[])
    }));
    rejects(cases).await;
}

/// Reserved bits of the subscription options byte must be 0 [MQTT-3.8.3-5 (5.0): malformed
/// → 0x81; MQTT-3.8.3-4 (3.1.1): close].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_options_reserved_bits_are_malformed() {
    let mut cases = Vec::new();
    for opts in [0xC0, 0x40, 0x80, 0xC1] {
        let input = subscribe(0x82, 1, Some(&[]), &[(b"a/b", opts)]);
        cases.push((V5, input, Expect::Disconnect(reason::MALFORMED_PACKET)));
    }
    for opts in [0x04, 0x80, 0xFD] {
        let input = subscribe(0x82, 1, None, &[(b"a/b", opts)]);
        cases.push((V4, input, Expect::Close));
    }
    rejects(cases).await;
}

/// Maximum QoS 3 and Retain Handling 3 are Protocol Errors [MQTT 5.0 §3.8.3.1] → 0x82;
/// 3.1.1: QoS 3 is malformed [MQTT-3.8.3-4] → close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_qos_3_or_retain_handling_3_is_rejected() {
    let v5 = |opts: u8| subscribe(0x82, 1, Some(&[]), &[(b"a/b", opts)]);
    rejects(vec![
        (V5, v5(0x03), Expect::Disconnect(reason::PROTOCOL_ERROR)),
        (V5, v5(0x30), Expect::Disconnect(reason::PROTOCOL_ERROR)),
        (
            V4,
            subscribe(0x82, 1, None, &[(b"a/b", 0x03)]),
            Expect::Close,
        ),
    ])
    .await;
}

// ---------------------------------------------------------------- properties (5.0)

/// A property the packet type may not carry (Session Expiry Interval in PUBLISH, Message
/// Expiry in SUBSCRIBE), or an unknown property identifier, is malformed [MQTT 5.0
/// §2.2.2.2] → 0x81.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn property_not_allowed_in_packet_is_malformed() {
    let code = Expect::Disconnect(reason::MALFORMED_PACKET);
    rejects(vec![
        (
            V5,
            publish(0, b"a/b", None, Some(&prop_u32(P_SESSION_EXPIRY, 10)), b"x"),
            code,
        ),
        (
            V5,
            subscribe(
                0x82,
                1,
                Some(&prop_u32(P_MESSAGE_EXPIRY, 10)),
                &[(b"a/b", 1)],
            ),
            code,
        ),
        (
            V5,
            publish(0, b"a/b", None, Some(&[0x7F, 0x00]), b"x"),
            code,
        ),
    ])
    .await;
}

/// A single-valued property included twice is a Protocol Error [MQTT 5.0 §2.2.2.2,
/// §3.3.2.3.3, §3.8.2.1.2] → 0x82.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_property_is_a_protocol_error() {
    let mut twice_expiry = prop_u32(P_MESSAGE_EXPIRY, 10);
    twice_expiry.extend(prop_u32(P_MESSAGE_EXPIRY, 20));
    let mut twice_type = vec![P_CONTENT_TYPE];
    twice_type.extend(field(b"text/plain"));
    twice_type.push(P_CONTENT_TYPE);
    twice_type.extend(field(b"text/html"));
    let twice_sub_id = [P_SUBSCRIPTION_ID, 5, P_SUBSCRIPTION_ID, 6];
    let code = Expect::Disconnect(reason::PROTOCOL_ERROR);
    let sub = subscribe(0x82, 1, Some(&twice_sub_id), &[(b"a/b", 1)]);
    rejects(vec![
        (
            V5,
            publish(0, b"a/b", None, Some(&twice_expiry), b"x"),
            code,
        ),
        (V5, publish(0, b"a/b", None, Some(&twice_type), b"x"), code),
        (V5, sub, code),
    ])
    .await;
}

/// Topic Alias 0 is not permitted [MQTT-3.3.2-8], nor one above the server's Topic Alias
/// Maximum [MQTT-3.3.2-9]; both → DISCONNECT 0x94 [MQTT 5.0 §3.3.2.3.4].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_topic_alias_is_topic_alias_invalid() {
    let code = Expect::Disconnect(reason::TOPIC_ALIAS_INVALID);
    rejects_with(
        "mqtt.max_topic_alias = 10",
        vec![
            (
                V5,
                publish(0, b"a/b", None, Some(&[P_TOPIC_ALIAS, 0, 0]), b"x"),
                code,
            ),
            (
                V5,
                publish(QOS1, b"a/b", Some(3), Some(&[P_TOPIC_ALIAS, 0, 11]), b"x"),
                code,
            ),
        ],
    )
    .await;
}

// ---------------------------------------------------------------- wrong packet types

/// CONNACK, SUBACK, UNSUBACK and PINGRESP only go server → client; from a client they are a
/// Protocol Error (0x82) [MQTT 5.0 §4.13; MQTT-4.8.0-1 (3.1.1)].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_only_packets_from_a_client_are_protocol_errors() {
    let code = Expect::Disconnect(reason::PROTOCOL_ERROR);
    rejects(vec![
        (V5, frame(0x20, &[0, 0, 0]), code),
        (V5, frame(0x90, &[0, 1, 0, 0]), code),
        (V5, frame(0xB0, &[0, 1, 0, 0]), code),
        (V5, vec![0xD0, 0x00], code),
        (V4, frame(0x20, &[0, 0]), Expect::Close),
        (V4, frame(0x90, &[0, 1, 0]), Expect::Close),
        (V4, frame(0xB0, &[0, 1]), Expect::Close),
        (V4, vec![0xD0, 0x00], Expect::Close),
    ])
    .await;
}

/// Packet type 15 is reserved in 3.1.1 [MQTT 3.1.1 §2.2.1] → close. In 5.0 an AUTH without
/// an Authentication Method at CONNECT is a Protocol Error [MQTT-4.12.0-1..] → 0x82.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_packet_is_refused_without_enhanced_authentication() {
    rejects(vec![
        (V4, vec![0xF0, 0x00], Expect::Close),
        (V3, vec![0xF0, 0x00], Expect::Close),
        (
            V5,
            vec![0xF0, 0x00],
            Expect::Disconnect(reason::PROTOCOL_ERROR),
        ),
    ])
    .await;
}

/// Non-MQTT bytes after a valid CONNECT: 5.0 Malformed Packet (0x81), 3.x close
/// [MQTT 5.0 §4.13, MQTT-4.8.0-1].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_after_connect_is_malformed() {
    let mut cases = Vec::new();
    for input in [HTTP_GET, TLS_HELLO, &[0u8; 8][..], b"\r\n\r\n"] {
        cases.extend(both(reason::MALFORMED_PACKET, |_| input.to_vec()));
    }
    rejects(cases).await;
}

// ---------------------------------------------------------------- size limits

/// A packet over the server's Maximum Packet Size is refused from its fixed header alone —
/// the server must not wait for (or buffer) a body it will reject: 5.0 DISCONNECT 0x95
/// [MQTT 5.0 §3.2.2.3.6, §4.13], 3.x close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_packet_is_refused_from_its_header_without_waiting_for_the_body() {
    let s = TestServer::start_with("mqtt.max_packet_size = 1KB").await;
    let mut b = Bystander::join(&s).await;
    let mut failures = Vec::new();
    let headers: [&[u8]; 3] = [
        &[0x30, 0xFF, 0xFF, 0xFF, 0x7F], // 268,435,455 bytes announced
        &[0x30, 0xD0, 0x0F],             // 2,000 bytes announced
        &[0x82, 0x80, 0x80, 0x04],       // SUBSCRIBE, 65,536 bytes announced
    ];
    for version in [V5, V4] {
        for header in headers {
            let (mut c, _) = Raw::open(s.tcp, version, &next_id("big"), true).await;
            c.send_bytes(header).await; // the body never comes
            let fail = |e: String| format!("{version:?} [{}]: {e}", hex(header));
            if version.is_v5() {
                match c.recv_within(Duration::from_secs(3)).await {
                    Some(Packet::Disconnect(d)) if d.reason_code == reason::PACKET_TOO_LARGE => {}
                    other => {
                        failures.push(fail(format!(
                            "expected DISCONNECT 0x95 within 3 s, got {other:?}"
                        )));
                        continue;
                    }
                }
            }
            match read_until_close(&mut c.stream, Duration::from_secs(3)).await {
                Some(rest) if rest.is_empty() => {}
                Some(rest) => failures.push(fail(format!("unexpected bytes {}", hex(&rest)))),
                None => failures.push(fail("still open 3 s after the header".into())),
            }
        }
    }
    // A whole packet over the limit is refused the same way.
    let big = publish(0, b"big", None, Some(&[]), &[b'x'; 2000]);
    if let Err(e) = attack(
        s.tcp,
        V5,
        &big,
        Expect::Disconnect(reason::PACKET_TOO_LARGE),
    )
    .await
    {
        failures.push(e);
    }
    // Before CONNECT: an over-size CONNECT header is closed at once, without a CONNACK.
    let mut c = TcpStream::connect(s.tcp).await.unwrap();
    c.write_all(&[0x10, 0xFF, 0xFF, 0x7F]).await.unwrap();
    match read_until_close(&mut c, Duration::from_secs(3)).await {
        Some(rest) if rest.is_empty() => {}
        other => failures.push(format!(
            "over-size CONNECT header [10 ff ff 7f]: expected a silent close within 3 s, got {other:?}"
        )),
    }
    assert!(
        failures.is_empty(),
        "broker misbehaved:\n{}",
        failures.join("\n")
    );
    b.unaffected(&s).await;
}

// ---------------------------------------------------------------- before CONNECT

/// The first packet must be CONNECT [MQTT-3.1.0-1]; anything else is closed without a
/// CONNACK [MQTT-4.8.0-1]. (Idle timeout 1 s bounds inputs that look like an unfinished
/// packet.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_as_first_packet_is_closed_without_connack() {
    let s = TestServer::start_with("mqtt.idle_timeout = 1s").await;
    let mut b = Bystander::join(&s).await;
    let mut inputs: Vec<Vec<u8>> = vec![
        HTTP_GET.to_vec(),
        TLS_HELLO.to_vec(),
        b"SSH-2.0-OpenSSH_9.6\r\n".to_vec(),
        vec![0; 32],
        vec![0xFF; 32],
        b"\r\n".to_vec(),
    ];
    let mut rng = XorShift(0x005E_ED0F_BADB_17E5);
    for _ in 0..10 {
        let n = 1 + rng.below(40);
        let mut g = rng.bytes(n);
        if g[0] >> 4 == 1 {
            g[0] ^= 0x80; // anything but CONNECT
        }
        inputs.push(g);
    }
    let mut set = JoinSet::new();
    for input in inputs {
        let addr = s.tcp;
        set.spawn(async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            let _ = c.write_all(&input).await;
            match read_until_close(&mut c, WAIT).await {
                Some(got) if got.is_empty() => Ok(()),
                Some(got) => Err(format!("[{}]: answered {}", hex(&input), hex(&got))),
                None => Err(format!("[{}]: left open", hex(&input))),
            }
        });
    }
    let failures = join_all(&mut set).await;
    assert!(
        failures.is_empty(),
        "broker misbehaved:\n{}",
        failures.join("\n")
    );
    b.unaffected(&s).await;
}

/// A first packet that is not CONNECT is refused as soon as its fixed header shows it
/// [MQTT-3.1.0-1, MQTT-4.8.0-1]: the server must not buffer up to max_packet_size of a
/// pre-authentication client's body until the idle timeout (here 30 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_connect_first_packet_is_refused_from_its_fixed_header() {
    let s = TestServer::start_with("mqtt.idle_timeout = 30s").await;
    let mut b = Bystander::join(&s).await;
    let mut failures = Vec::new();
    // PUBLISH and SUBSCRIBE announcing 500,000 bytes, then 100 bytes of body.
    for first in [0x30u8, 0x82] {
        let mut input = vec![first, 0xA0, 0xC2, 0x1E];
        input.extend([b'x'; 100]);
        let mut c = TcpStream::connect(s.tcp).await.unwrap();
        c.write_all(&input).await.unwrap();
        match read_until_close(&mut c, Duration::from_secs(3)).await {
            Some(got) if got.is_empty() => {}
            other => failures.push(format!(
                "[{}]: expected a silent close within 3 s, got {other:?}",
                hex(&input)
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "broker misbehaved:\n{}",
        failures.join("\n")
    );
    b.unaffected(&s).await;
}

/// A connection that never sends CONNECT is closed after mqtt.idle_timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connection_is_closed_after_idle_timeout() {
    let s = TestServer::start_with("mqtt.idle_timeout = 500ms").await;
    let mut b = Bystander::join(&s).await;
    let mut c = TcpStream::connect(s.tcp).await.unwrap();
    let t0 = Instant::now();
    let got = read_until_close(&mut c, WAIT).await;
    let took = t0.elapsed();
    assert_eq!(
        got,
        Some(vec![]),
        "silent connection not closed (or answered)"
    );
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "closed after {took:?}, idle_timeout is 500 ms"
    );
    b.unaffected(&s).await;
}

/// Slowloris: a CONNECT dribbled one byte per 100 ms must not keep the connection alive past
/// mqtt.idle_timeout — the deadline is for the whole CONNECT, not per byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connect_is_closed_after_idle_timeout() {
    let s = TestServer::start_with("mqtt.idle_timeout = 500ms").await;
    let mut b = Bystander::join(&s).await;
    let connect = connect_bytes(V5, "slowloris-dribbling-one-byte-every-100ms");
    assert!(
        connect.len() > 30,
        "the dribble must outlast the idle timeout"
    );
    let mut c = TcpStream::connect(s.tcp).await.unwrap();
    c.set_nodelay(true).unwrap();
    let t0 = Instant::now();
    let mut closed_after = None;
    let mut answered = Vec::new();
    let mut buf = [0u8; 256];
    for &byte in &connect {
        if c.write_all(&[byte]).await.is_err() {
            closed_after = Some(t0.elapsed());
            break;
        }
        match tokio::time::timeout(Duration::from_millis(100), c.read(&mut buf)).await {
            Err(_) => {}
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed_after = Some(t0.elapsed());
                break;
            }
            Ok(Ok(n)) => answered.extend_from_slice(&buf[..n]),
        }
    }
    assert!(
        answered.is_empty(),
        "the server answered a dribbled CONNECT: {}",
        hex(&answered)
    );
    let took = closed_after.unwrap_or_else(|| {
        panic!(
            "still open after the whole CONNECT dribbled in over {:?} [{}]",
            t0.elapsed(),
            hex(&connect)
        )
    });
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(2),
        "closed after {took:?}, idle_timeout is 500 ms"
    );
    b.unaffected(&s).await;
}

// ---------------------------------------------------------------- hang-ups

/// Half a packet, then the client hangs up: the session is cleaned up (discarded for a
/// clean session, kept offline for a persistent one), nothing half-read is routed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_packet_then_hangup_cleans_up_the_session() {
    let s = TestServer::start().await;
    let mut b = Bystander::join(&s).await;
    let topic = BYSTANDER_TOPIC.as_bytes();

    let full = publish(QOS1, topic, Some(7), Some(&[]), &[b'h'; 200]);
    let (mut c, _) = Raw::open(s.tcp, V5, "trunc-clean", true).await;
    c.send_bytes(&full[..full.len() / 2]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(c);

    let full = publish(QOS1, topic, Some(7), None, &[b'h'; 200]);
    let (mut c, _) = Raw::open(s.tcp, V4, "trunc-persistent", false).await;
    c.send_bytes(&full[..full.len() / 2]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(c);

    // Half a Remaining Length.
    let (mut c, _) = Raw::open(s.tcp, V5, "trunc-header", true).await;
    c.send_bytes(&[0x32, 0xC8]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(c);

    eventually("clean session discarded", || {
        s.broker().lookup("trunc-clean").is_none()
    })
    .await;
    eventually("header-only session discarded", || {
        s.broker().lookup("trunc-header").is_none()
    })
    .await;
    eventually("persistent session kept offline", || {
        s.broker()
            .lookup("trunc-persistent")
            .is_some_and(|c| !c.is_online())
    })
    .await;
    // `unaffected` also checks that the half PUBLISHes to its topic were not delivered.
    b.unaffected(&s).await;
}

// ---------------------------------------------------------------- volume

/// A small seeded xorshift64: reproducible "random" bytes without a new dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Well-formed packets for `version`, to mutate.
fn seeds(version: ProtocolVersion) -> Vec<Vec<u8>> {
    let v5 = version.is_v5();
    let p = |b: &[u8]| -> Option<Vec<u8>> { v5.then(|| b.to_vec()) };
    let mut rich = vec![P_PAYLOAD_FORMAT, 1];
    rich.extend(prop_u32(P_MESSAGE_EXPIRY, 60));
    rich.extend([P_TOPIC_ALIAS, 0, 5]);
    rich.push(P_USER_PROPERTY);
    rich.extend(field(b"k"));
    rich.extend(field(b"v"));
    rich.push(P_CONTENT_TYPE);
    rich.extend(field(b"text/plain"));
    let rich = p(&rich);
    let none = p(&[]);
    let sub_props = p(&[P_SUBSCRIPTION_ID, 7]);
    let mut out = vec![
        publish(0, b"fuzz/a", None, rich.as_deref(), b"payload"),
        publish(QOS1, b"fuzz/b", Some(10), none.as_deref(), b"q1"),
        publish(
            QOS2 | 1,
            b"fuzz/c",
            Some(11),
            rich.as_deref(),
            b"q2 retained",
        ),
        subscribe(
            0x82,
            12,
            sub_props.as_deref(),
            &[(b"fuzz/+", 1), (b"fuzz/#", 2)],
        ),
        unsubscribe(0xA2, 13, none.as_deref(), &[b"fuzz/+", b"other"]),
        frame(0x40, &[0, 14]),
        frame(0x62, &[0, 15]),
        vec![0xC0, 0x00],
    ];
    if v5 {
        out.push(frame(0x40, &[0, 16, 0x10, 0]));
        out.push(frame(0xE0, &[0x04, 5, P_SESSION_EXPIRY, 0, 0, 0, 0]));
        out.push(frame(0xF0, &[0x19, 0]));
    }
    out
}

/// One hostile input: random bytes, a random body under a plausible fixed header, or a
/// well-formed packet with a few bits flipped.
fn hostile_input(rng: &mut XorShift, version: ProtocolVersion) -> Vec<u8> {
    match rng.below(3) {
        0 => {
            let n = 1 + rng.below(64);
            rng.bytes(n)
        }
        1 => {
            let kind = 1 + rng.below(15) as u8;
            let flags = match (rng.below(2), kind) {
                (0, _) => rng.next() as u8 & 0x0F,
                (_, 3) => rng.next() as u8 & 0x07,
                (_, 6 | 8 | 10) => 0x02,
                _ => 0,
            };
            let n = rng.below(48);
            let body = rng.bytes(n);
            frame(kind << 4 | flags, &body)
        }
        _ => {
            let seeds = seeds(version);
            let mut p = seeds[rng.below(seeds.len())].clone();
            for _ in 0..1 + rng.below(3) {
                let i = rng.below(p.len());
                if rng.below(2) == 0 {
                    p[i] ^= 1 << rng.below(8);
                } else {
                    p[i] = rng.next() as u8;
                }
            }
            p
        }
    }
}

/// Connect (CONNECT alone, or CONNECT and `input` in one write), send `input`, give the
/// server a moment to react, hang up. `Ok(true)`: the server closed the connection.
async fn fuzz_one(
    addr: SocketAddr,
    version: ProtocolVersion,
    id: String,
    input: Vec<u8>,
    together: bool,
) -> Result<bool, String> {
    let mut r = Raw::connect(addr, version).await;
    let connect = connect_bytes(version, &id);
    if together {
        let mut all = connect;
        all.extend_from_slice(&input);
        r.send_bytes(&all).await;
    } else {
        r.send_bytes(&connect).await;
        match r.recv().await {
            Some(Packet::ConnAck(a)) if a.reason_code == 0 => {}
            other => return Err(format!("{id}: no CONNACK: {other:?}")),
        }
        r.send_bytes(&input).await;
    }
    Ok(read_until_close(&mut r.stream, Duration::from_millis(100))
        .await
        .is_some())
}

async fn join_all(set: &mut JoinSet<Result<(), String>>) -> Vec<String> {
    let mut failures = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(e),
            Err(e) => failures.push(format!("client task failed: {e}")),
        }
    }
    failures
}

/// 1,000 seeded random inputs, each on its own connection after a valid CONNECT (3.1, 3.1.1
/// and 5.0; half sent in the same write as the CONNECT), 50 connections at a time. The
/// server keeps serving and every connection is accounted for afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes_after_connect_leave_the_server_serving() {
    let s = TestServer::start().await;
    let mut b = Bystander::join(&s).await;
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut failures = Vec::new();
    let mut closed_by_server = 0;
    for batch in 0..20 {
        let mut set = JoinSet::new();
        for j in 0..50 {
            let i = batch * 50 + j;
            let version = [V5, V4, V3][i % 3];
            let input = hostile_input(&mut rng, version);
            let together = rng.below(2) == 0;
            let (addr, id) = (s.tcp, format!("fz{i}"));
            set.spawn(async move {
                let what = format!("#{i} {version:?} together={together} [{}]", hex(&input));
                fuzz_one(addr, version, id, input, together)
                    .await
                    .map_err(|e| format!("{what}: {e}"))
            });
        }
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Ok(closed)) => closed_by_server += usize::from(closed),
                Ok(Err(e)) => failures.push(e),
                Err(e) => failures.push(format!("client task failed: {e}")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "broker misbehaved:\n{}",
        failures.join("\n")
    );
    eprintln!("{closed_by_server} of 1000 random inputs made the server close the connection");
    // The inputs must actually be hostile: most of them are rejected outright.
    assert!(
        closed_by_server >= 300,
        "only {closed_by_server} inputs were rejected"
    );
    b.unaffected(&s).await;
}

/// Every malformed-packet case of this file, for 5.0 and 3.1.1, each made distinct by
/// `salt` (topic / packet identifier).
fn catalog(salt: u16) -> Vec<(ProtocolVersion, Vec<u8>, Expect)> {
    let id = salt.max(1);
    let topic = format!("t/{salt}");
    let t = topic.as_bytes();
    let mut out = Vec::new();
    for v in [V5, V4] {
        let np = no_props(v);
        let malformed = by_version(v, reason::MALFORMED_PACKET);
        let protocol = by_version(v, reason::PROTOCOL_ERROR);
        let mut bad_topic = t.to_vec();
        bad_topic.extend(b"/\xC3\x28");
        let mut null_topic = t.to_vec();
        null_topic.push(0);
        let mut wild_topic = t.to_vec();
        wild_topic.extend(b"/+");
        out.extend([
            (v, vec![0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F], malformed),
            (v, subscribe(0x80, id, np, &[(t, 1)]), malformed),
            (v, frame(0x60, &id.to_be_bytes()), malformed),
            (v, vec![0xC1, 0x00], malformed),
            (v, publish(0, &bad_topic, None, np, b"x"), malformed),
            (v, publish(0, &null_topic, None, np, b"x"), malformed),
            (
                v,
                publish(0, &wild_topic, None, np, b"x"),
                by_version(v, reason::TOPIC_NAME_INVALID),
            ),
            (v, publish(QOS3, t, Some(id), np, b"x"), malformed),
            (v, publish(QOS1, t, Some(0), np, b"x"), malformed),
            (v, subscribe(0x82, id, np, &[]), protocol),
            (
                v,
                frame(0x90, &[0, 1, 0, 0][..if v.is_v5() { 4 } else { 3 }]),
                protocol,
            ),
            (v, vec![0xD0, 0x00], protocol),
            (v, HTTP_GET.to_vec(), malformed),
        ]);
    }
    let code = |c| Expect::Disconnect(c);
    out.extend([
        (
            V5,
            subscribe(0x82, id, Some(&[]), &[(t, 0xC0)]),
            code(reason::MALFORMED_PACKET),
        ),
        (
            V5,
            publish(0, t, None, Some(&prop_u32(P_SESSION_EXPIRY, 1)), b"x"),
            code(reason::MALFORMED_PACKET),
        ),
        (
            V5,
            publish(0, t, None, Some(&[P_TOPIC_ALIAS, 0, 0]), b"x"),
            code(reason::TOPIC_ALIAS_INVALID),
        ),
        (V5, vec![0xF0, 0x00], code(reason::PROTOCOL_ERROR)),
        (V4, vec![0xF0, 0x00], Expect::Close),
        (V4, subscribe(0x82, id, None, &[(t, 0x04)]), Expect::Close),
    ]);
    let mut dup = prop_u32(P_MESSAGE_EXPIRY, 1);
    dup.extend(prop_u32(P_MESSAGE_EXPIRY, 2));
    out.push((
        V5,
        publish(0, t, None, Some(&dup), b"x"),
        code(reason::PROTOCOL_ERROR),
    ));
    out
}

/// 200 connections at once, each sending a different malformed packet: each gets the right
/// answer and the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_malformed_connections_leave_the_server_serving() {
    let s = TestServer::start().await;
    let mut b = Bystander::join(&s).await;
    let mut set = JoinSet::new();
    let mut n = 0;
    let mut salt = 0u16;
    while n < 200 {
        for (version, input, expect) in catalog(salt) {
            if n == 200 {
                break;
            }
            n += 1;
            let addr = s.tcp;
            set.spawn(async move { attack(addr, version, &input, expect).await });
        }
        salt += 1;
    }
    let failures = join_all(&mut set).await;
    assert!(
        failures.is_empty(),
        "broker misbehaved:\n{}",
        failures.join("\n")
    );
    b.unaffected(&s).await;
}
