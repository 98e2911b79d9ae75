//! Gateway protocols for `pubsub --proto stomp|mqttsn|coap`: QoS 0 publishers and
//! subscribers speaking STOMP 1.2 (TCP) or MQTT-SN 1.2 (UDP, one socket per client), and
//! CoAP (UDP, one socket per client, QoS 0 and 1; `coap.rs`), with the same stamped
//! payload, pacing and accounting as the MQTT path.

use super::client::{now_ns, read_stamp, STAMP_LEN};
use super::coap::{self, CoapClient};
use super::stats::{SeqTracker, Shared};
use anyhow::{bail, Context};
use bytes::{BufMut, Bytes, BytesMut};
use junction_codec_mqttsn as sn;
use junction_codec_stomp as stomp;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{sleep_until, Instant};

/// Most messages written in one batch (as the MQTT publisher).
pub(crate) const MAX_BATCH: u64 = 256;
/// How long a handshake step may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest datagram read.
pub(crate) const MAX_DATAGRAM: usize = 65_536;

/// The wire protocol of `pubsub`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Proto {
    /// MQTT over TCP.
    #[default]
    Mqtt,
    /// STOMP 1.2 over TCP (QoS 0 only).
    Stomp,
    /// MQTT-SN 1.2 over UDP (QoS 0 only).
    Mqttsn,
    /// CoAP over UDP, the gateway's connectionless mode (QoS 0 and 1).
    Coap,
}

impl Proto {
    /// Whether the protocol can publish and subscribe at `qos`.
    pub fn supports(self, qos: u8) -> bool {
        match self {
            Proto::Mqtt => true,
            Proto::Coap => qos <= 1,
            Proto::Stomp | Proto::Mqttsn => qos == 0,
        }
    }
}

/// One connected gateway client.
#[derive(Debug)]
pub enum GwClient {
    /// A STOMP connection and its unread bytes.
    Stomp {
        /// The socket.
        stream: TcpStream,
        /// Bytes read and not yet decoded.
        rbuf: BytesMut,
        /// The decoder.
        decoder: stomp::Decoder,
    },
    /// An MQTT-SN client: a connected UDP socket and the registered topic id (publishers).
    Sn {
        /// The socket.
        socket: UdpSocket,
        /// Topic id registered by a publisher (0 for subscribers).
        topic_id: u16,
    },
    /// A CoAP client: a connected UDP socket.
    Coap(CoapClient),
}

fn stomp_decoder() -> stomp::Decoder {
    stomp::Decoder::new(stomp::Version::V1_2, stomp::Limits::UNLIMITED)
}

async fn stomp_next(
    stream: &mut TcpStream,
    rbuf: &mut BytesMut,
    decoder: &mut stomp::Decoder,
) -> anyhow::Result<stomp::Frame> {
    loop {
        while let Some(item) = decoder.decode(rbuf).map_err(|e| anyhow::anyhow!("{e}"))? {
            if let stomp::Item::Frame(f) = item {
                return Ok(f);
            }
        }
        if rbuf.capacity() - rbuf.len() < 1024 {
            rbuf.reserve(64 * 1024);
        }
        if stream.read_buf(rbuf).await? == 0 {
            bail!("connection closed by the gateway");
        }
    }
}

async fn sn_next(socket: &UdpSocket) -> anyhow::Result<sn::Message> {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let n = socket.recv(&mut buf).await?;
    buf.truncate(n);
    sn::decode(Bytes::from(buf)).map_err(|e| anyhow::anyhow!("malformed datagram: {e}"))
}

async fn sn_send(socket: &UdpSocket, msg: &sn::Message) -> anyhow::Result<()> {
    let mut buf = BytesMut::new();
    sn::encode(msg, &mut buf).map_err(|e| anyhow::anyhow!("encode {}: {e}", msg.name()))?;
    socket.send(&buf).await?;
    Ok(())
}

impl GwClient {
    /// Connect and, for `topic`: publishers register it (MQTT-SN), subscribers subscribe
    /// (CoAP: observe at `qos`).
    pub async fn open(
        proto: Proto,
        addr: SocketAddr,
        client_id: &str,
        keepalive: u16,
        topic: &str,
        subscriber: bool,
        qos: u8,
    ) -> anyhow::Result<GwClient> {
        tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            Self::handshake(proto, addr, client_id, keepalive, topic, subscriber, qos),
        )
        .await
        .context("handshake timed out")?
    }

    async fn handshake(
        proto: Proto,
        addr: SocketAddr,
        client_id: &str,
        keepalive: u16,
        topic: &str,
        subscriber: bool,
        qos: u8,
    ) -> anyhow::Result<GwClient> {
        match proto {
            Proto::Mqtt => bail!("MQTT is not a gateway protocol"),
            Proto::Coap => Ok(GwClient::Coap(
                CoapClient::open(addr, topic, subscriber, qos).await?,
            )),
            Proto::Stomp => {
                let mut stream = TcpStream::connect(addr)
                    .await
                    .with_context(|| format!("connect to {addr}"))?;
                stream.set_nodelay(true)?;
                let mut rbuf = BytesMut::with_capacity(64 * 1024);
                let mut decoder = stomp_decoder();
                let mut wbuf = BytesMut::new();
                let connect = stomp::Frame::new(stomp::Command::Connect)
                    .with_header("accept-version", "1.2")
                    .with_header("host", "/")
                    .with_header("heart-beat", "0,0")
                    .with_header("client-id", client_id);
                stomp::encode(&connect, stomp::Version::V1_2, &mut wbuf);
                stream.write_all(&wbuf).await?;
                let reply = stomp_next(&mut stream, &mut rbuf, &mut decoder).await?;
                if reply.command != stomp::Command::Connected {
                    bail!(
                        "expected CONNECTED, got {} {:?}",
                        reply.command.as_str(),
                        reply.header("message")
                    );
                }
                if subscriber {
                    wbuf.clear();
                    let sub = stomp::Frame::new(stomp::Command::Subscribe)
                        .with_header("id", "0")
                        .with_header("destination", topic)
                        .with_header("ack", "auto")
                        .with_header("receipt", "sub-0");
                    stomp::encode(&sub, stomp::Version::V1_2, &mut wbuf);
                    stream.write_all(&wbuf).await?;
                    let reply = stomp_next(&mut stream, &mut rbuf, &mut decoder).await?;
                    if reply.command != stomp::Command::Receipt {
                        bail!(
                            "expected RECEIPT for SUBSCRIBE, got {} {:?}",
                            reply.command.as_str(),
                            reply.header("message")
                        );
                    }
                }
                Ok(GwClient::Stomp {
                    stream,
                    rbuf,
                    decoder,
                })
            }
            Proto::Mqttsn => {
                let bind: SocketAddr = if addr.is_ipv4() {
                    "0.0.0.0:0".parse()?
                } else {
                    "[::]:0".parse()?
                };
                let socket = UdpSocket::bind(bind).await?;
                socket.connect(addr).await?;
                let connect = sn::Message::Connect {
                    flags: sn::Flags {
                        clean_session: true,
                        ..sn::Flags::default()
                    },
                    protocol_id: 1,
                    duration: keepalive,
                    client_id: client_id.into(),
                };
                sn_send(&socket, &connect).await?;
                match sn_next(&socket).await? {
                    sn::Message::ConnAck {
                        rc: sn::ReturnCode::Accepted,
                    } => {}
                    other => bail!("expected accepting CONNACK, got {other:?}"),
                }
                let mut topic_id = 0;
                if subscriber {
                    let sub = sn::Message::Subscribe {
                        flags: sn::Flags::default(),
                        msg_id: 1,
                        topic: sn::Topic::Name(topic.into()),
                    };
                    sn_send(&socket, &sub).await?;
                    loop {
                        match sn_next(&socket).await? {
                            sn::Message::SubAck {
                                rc: sn::ReturnCode::Accepted,
                                ..
                            } => break,
                            sn::Message::Register {
                                topic_id, msg_id, ..
                            } => sn_regack(&socket, topic_id, msg_id).await?,
                            other => bail!("expected SUBACK, got {other:?}"),
                        }
                    }
                } else {
                    let reg = sn::Message::Register {
                        topic_id: 0,
                        msg_id: 1,
                        topic_name: topic.into(),
                    };
                    sn_send(&socket, &reg).await?;
                    match sn_next(&socket).await? {
                        sn::Message::RegAck {
                            topic_id: id,
                            rc: sn::ReturnCode::Accepted,
                            ..
                        } => topic_id = id,
                        other => bail!("expected REGACK, got {other:?}"),
                    }
                }
                Ok(GwClient::Sn { socket, topic_id })
            }
        }
    }
}

async fn sn_regack(socket: &UdpSocket, topic_id: u16, msg_id: u16) -> anyhow::Result<()> {
    let ack = sn::Message::RegAck {
        topic_id,
        msg_id,
        rc: sn::ReturnCode::Accepted,
    };
    sn_send(socket, &ack).await
}

/// What one gateway publisher sends.
#[derive(Debug)]
pub struct GwJob {
    /// Publisher number, stamped into payloads.
    pub number: u32,
    /// Topic / destination.
    pub topic: String,
    /// Payload size.
    pub size: usize,
    /// Time between two messages (`None`: as fast as possible).
    pub period: Option<Duration>,
    /// Delay of the first message after the start.
    pub offset: Duration,
    /// Messages to send at most.
    pub limit: u64,
    /// Subscribers receiving each message.
    pub fanout: u64,
    /// QoS of the publishes (CoAP: 0 NON, 1 CON; the others: 0).
    pub qos: u8,
    /// Confirmable publishes in flight at most (CoAP QoS 1).
    pub inflight: u64,
    /// After publishing, how long to wait for outstanding acknowledgements (CoAP QoS 1).
    pub drain: Duration,
}

/// Write the send time, publisher number and sequence number into a payload's first
/// [`STAMP_LEN`] bytes.
pub(crate) fn stamp(payload: &mut [u8], sent_ns: u64, publisher: u32, seq: u32) {
    payload[..8].copy_from_slice(&sent_ns.to_be_bytes());
    payload[8..12].copy_from_slice(&publisher.to_be_bytes());
    payload[12..16].copy_from_slice(&seq.to_be_bytes());
}

/// A pre-encoded frame with the offset of its payload.
struct Template {
    frame: Vec<u8>,
    payload_at: usize,
}

impl Template {
    fn new(client: &GwClient, topic: &str, size: usize) -> anyhow::Result<Template> {
        match client {
            GwClient::Stomp { .. } => Template::build(None, topic, size),
            GwClient::Sn { topic_id, .. } => Template::build(Some(*topic_id), topic, size),
            GwClient::Coap(_) => bail!("CoAP publishers use coap::publisher"),
        }
    }

    /// A STOMP SEND to `topic`, or with `sn_topic_id` an MQTT-SN QoS 0 PUBLISH.
    fn build(sn_topic_id: Option<u16>, topic: &str, size: usize) -> anyhow::Result<Template> {
        if size < STAMP_LEN {
            bail!("payload size must be at least {STAMP_LEN} bytes");
        }
        let body = Bytes::from(vec![b'x'; size]);
        let mut buf = BytesMut::new();
        match sn_topic_id {
            None => {
                let send = stomp::Frame::new(stomp::Command::Send)
                    .with_header("destination", topic)
                    .with_body(body);
                stomp::encode(&send, stomp::Version::V1_2, &mut buf);
                // The body is followed by the NUL terminator.
                let payload_at = buf.len() - size - 1;
                Ok(Template {
                    frame: buf.to_vec(),
                    payload_at,
                })
            }
            Some(topic_id) => {
                let publish = sn::Message::Publish {
                    flags: sn::Flags::default(),
                    topic: sn::Topic::Id(topic_id),
                    msg_id: 0,
                    data: body,
                };
                sn::encode(&publish, &mut buf).map_err(|e| anyhow::anyhow!("encode: {e}"))?;
                let payload_at = buf.len() - size;
                Ok(Template {
                    frame: buf.to_vec(),
                    payload_at,
                })
            }
        }
    }
}

/// Publish per `job` from `start` until `stop_at`. Returns the number of messages sent.
pub async fn publisher(
    mut client: GwClient,
    job: GwJob,
    start: Instant,
    stop_at: Instant,
    shared: Arc<Shared>,
) -> u64 {
    if let GwClient::Coap(client) = client {
        return coap::publisher(client, job, start, stop_at, shared).await;
    }
    let template = match Template::new(&client, &job.topic, job.size) {
        Ok(t) => t,
        Err(e) => {
            shared.error(format!("publisher {}: {e}", job.number));
            return 0;
        }
    };
    let first_due = start + job.offset;
    let mut sent: u64 = 0;
    let mut wbuf = BytesMut::with_capacity(template.frame.len() * 16);
    let mut frame = template.frame.clone();
    while Instant::now() < stop_at && sent < job.limit {
        let now = Instant::now();
        let due = match job.period {
            None => job.limit,
            Some(_) if now < first_due => 0,
            Some(p) => {
                let elapsed = (now - first_due).as_nanos() / p.as_nanos().max(1);
                (elapsed as u64 + 1).min(job.limit)
            }
        };
        let n = due.saturating_sub(sent).min(MAX_BATCH);
        if n > 0 {
            let ts = now_ns();
            let result: std::io::Result<()> = match &mut client {
                GwClient::Stomp { stream, .. } => {
                    for i in 0..n {
                        let start = wbuf.len();
                        wbuf.put_slice(&template.frame);
                        let at = start + template.payload_at;
                        stamp(&mut wbuf[at..], ts, job.number, (sent + i) as u32);
                    }
                    let r = stream.write_all(&wbuf).await;
                    wbuf.clear();
                    r
                }
                GwClient::Sn { socket, .. } => {
                    let mut r = Ok(());
                    for i in 0..n {
                        let at = template.payload_at;
                        stamp(&mut frame[at..], ts, job.number, (sent + i) as u32);
                        if let Err(e) = socket.send(&frame).await {
                            r = Err(e);
                            break;
                        }
                    }
                    r
                }
                GwClient::Coap(_) => unreachable!("coap::publisher above"),
            };
            if let Err(e) = result {
                shared.error(format!("publisher {}: {e}", job.number));
                Shared::add(&shared.disconnected, 1);
                break;
            }
            sent += n;
            Shared::add(&shared.sent, n);
            Shared::add(&shared.publish_writes, 1);
            Shared::add(&shared.expected, n * job.fanout);
            continue;
        }
        let next_due = match job.period {
            Some(p) => first_due + p * sent as u32,
            None => stop_at,
        };
        sleep_until(next_due.min(stop_at)).await;
    }
    sent
}

/// Count one batch of deliveries that arrived at `now`.
pub(crate) fn account(shared: &Shared, now: u64, received: u64, duplicates: u64, unstamped: u64) {
    if received > 0 {
        shared.last_receive_ns.fetch_max(now, Ordering::Relaxed);
        let _ =
            shared
                .first_receive_ns
                .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        Shared::add(&shared.received, received);
        Shared::add(&shared.receive_reads, 1);
        Shared::add(&shared.duplicates, duplicates);
        Shared::add(&shared.unstamped, unstamped);
    }
}

/// Latency and duplicate check of one payload: (duplicate, unstamped).
pub(crate) fn check(
    shared: &Shared,
    seen: &mut SeqTracker,
    now: u64,
    payload: &[u8],
) -> (u64, u64) {
    match read_stamp(payload) {
        Some((sent_ns, publisher, seq)) => {
            shared.latency.record(now.saturating_sub(sent_ns));
            (u64::from(!seen.first_time(publisher, seq)), 0)
        }
        None => (0, 1),
    }
}

/// Receive until aborted.
pub async fn subscriber(client: GwClient, shared: Arc<Shared>) {
    let mut seen = SeqTracker::default();
    let result = match client {
        GwClient::Stomp {
            mut stream,
            mut rbuf,
            mut decoder,
        } => stomp_receive(&mut stream, &mut rbuf, &mut decoder, &shared, &mut seen).await,
        GwClient::Sn { socket, .. } => sn_receive(&socket, &shared, &mut seen).await,
        GwClient::Coap(client) => return coap::subscriber(client, shared).await,
    };
    if let Err(e) = result {
        shared.error(format!("subscriber: {e:#}"));
    }
    Shared::add(&shared.disconnected, 1);
}

async fn stomp_receive(
    stream: &mut TcpStream,
    rbuf: &mut BytesMut,
    decoder: &mut stomp::Decoder,
    shared: &Shared,
    seen: &mut SeqTracker,
) -> anyhow::Result<()> {
    loop {
        if rbuf.capacity() - rbuf.len() < 16 * 1024 {
            rbuf.reserve(64 * 1024);
        }
        if stream.read_buf(rbuf).await? == 0 {
            bail!("connection closed by the gateway");
        }
        let now = now_ns();
        let (mut received, mut duplicates, mut unstamped) = (0, 0, 0);
        while let Some(item) = decoder.decode(rbuf).map_err(|e| anyhow::anyhow!("{e}"))? {
            let stomp::Item::Frame(frame) = item else {
                continue;
            };
            match frame.command {
                stomp::Command::Message => {
                    received += 1;
                    let (d, u) = check(shared, seen, now, &frame.body);
                    duplicates += d;
                    unstamped += u;
                }
                stomp::Command::Error => {
                    bail!("ERROR from gateway: {:?}", frame.header("message"))
                }
                _ => {}
            }
        }
        account(shared, now, received, duplicates, unstamped);
    }
}

async fn sn_receive(
    socket: &UdpSocket,
    shared: &Shared,
    seen: &mut SeqTracker,
) -> anyhow::Result<()> {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let n = socket.recv(&mut buf).await?;
        let now = now_ns();
        let msg = match sn::decode(Bytes::copy_from_slice(&buf[..n])) {
            Ok(m) => m,
            Err(e) => {
                shared.error(format!("subscriber: malformed datagram: {e}"));
                continue;
            }
        };
        match msg {
            sn::Message::Publish { data, .. } => {
                let (d, u) = check(shared, seen, now, &data);
                account(shared, now, 1, d, u);
            }
            sn::Message::Register {
                topic_id, msg_id, ..
            } => sn_regack(socket, topic_id, msg_id).await?,
            sn::Message::Disconnect { .. } => bail!("DISCONNECT from gateway"),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stomp_template_decodes_to_a_stamped_send() {
        let t = Template::build(None, "bench/gw/1", 64).unwrap();
        let mut frame = t.frame.clone();
        stamp(&mut frame[t.payload_at..], 123, 4, 5);
        let mut buf = BytesMut::from(&frame[..]);
        let Some(stomp::Item::Frame(f)) = stomp_decoder().decode(&mut buf).unwrap() else {
            panic!("no frame");
        };
        assert_eq!(f.command, stomp::Command::Send);
        assert_eq!(f.header("destination"), Some("bench/gw/1"));
        assert_eq!(f.body.len(), 64);
        assert_eq!(read_stamp(&f.body), Some((123, 4, 5)));
    }

    #[test]
    fn mqttsn_template_decodes_to_a_stamped_publish() {
        let t = Template::build(Some(7), "bench/gw/1", 64).unwrap();
        let mut frame = t.frame.clone();
        stamp(&mut frame[t.payload_at..], 123, 4, 5);
        let sn::Message::Publish { topic, data, .. } = sn::decode(Bytes::from(frame)).unwrap()
        else {
            panic!("not a publish");
        };
        assert_eq!(topic, sn::Topic::Id(7));
        assert_eq!(read_stamp(&data), Some((123, 4, 5)));
    }
}
