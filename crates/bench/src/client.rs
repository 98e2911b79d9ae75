//! A minimal MQTT client for load generation: a `TcpStream`, the Junction codec, one read
//! buffer and one write buffer per connection.
//!
//! Every packet produced while handling one read (acks) or one send tick (publishes) is
//! encoded into the write buffer and written with a single `write_all`, so a batch costs one
//! syscall. PUBLISH frames are stamped from a template encoded once per publisher, so the hot
//! path allocates nothing per message.

use anyhow::{bail, Context};
use bytes::{BufMut, Bytes, BytesMut};
use junction_codec_mqtt::{
    encode_publish, Codec, Connect, ConnectProperties, Packet, ProtocolVersion, Publish,
    PublishProperties, QoS, Subscribe, SubscriptionOptions,
};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bytes at the front of every payload: send time (ns, u64), publisher number (u32) and
/// the publisher's sequence number (u32), all big-endian.
pub const STAMP_LEN: usize = 16;

/// Largest packet the load tool accepts from the broker.
const MAX_PACKET: u32 = 1 << 28;

/// How long CONNECT → CONNACK and SUBSCRIBE → SUBACK may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Wall-clock time in nanoseconds since the Unix epoch: publisher and subscriber may be
/// different processes on the same machine, so the stamp must be on a shared clock.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Target {
    /// Broker address.
    pub addr: SocketAddr,
    /// MQTT protocol version.
    pub version: ProtocolVersion,
    /// Keep alive sent in CONNECT, seconds.
    pub keepalive: u16,
    /// User name, if any.
    pub username: Option<String>,
    /// Password, if any.
    pub password: Option<String>,
    /// Session expiry interval (seconds) for a session that outlives the connection:
    /// the Session Expiry Interval property in 5.0, `clean_session = false` in 3.x.
    pub session_expiry: Option<u32>,
}

/// One MQTT connection.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    codec: Codec,
    /// Bytes read and not yet decoded.
    rbuf: BytesMut,
    /// Packets encoded and not yet written.
    pub wbuf: BytesMut,
    /// Capacity the read buffer is topped up to before each read.
    read_chunk: usize,
}

impl Client {
    /// Connect, send CONNECT (clean start) and wait for a successful CONNACK.
    /// `read_chunk` is the read buffer size: small for idle connections, large for
    /// subscribers.
    pub async fn connect(
        target: &Target,
        client_id: &str,
        read_chunk: usize,
    ) -> anyhow::Result<Client> {
        tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            Self::handshake(target, client_id, read_chunk),
        )
        .await
        .context("no CONNACK within 30 s")?
    }

    async fn handshake(
        target: &Target,
        client_id: &str,
        read_chunk: usize,
    ) -> anyhow::Result<Client> {
        let stream = TcpStream::connect(target.addr)
            .await
            .with_context(|| format!("connect to {}", target.addr))?;
        stream.set_nodelay(true)?;
        let mut client = Client {
            stream,
            codec: Codec::new(target.version, MAX_PACKET),
            rbuf: BytesMut::with_capacity(read_chunk),
            wbuf: BytesMut::with_capacity(256),
            read_chunk,
        };
        let mut properties = ConnectProperties::default();
        if target.version == ProtocolVersion::V5 {
            properties.session_expiry_interval = target.session_expiry;
        }
        let connect = Connect {
            protocol: target.version,
            // 5.0 starts a fresh session that persists by its expiry; 3.x can only ask
            // for a persistent session by not starting clean.
            clean_start: target.session_expiry.is_none() || target.version == ProtocolVersion::V5,
            keep_alive: target.keepalive,
            client_id: client_id.into(),
            will: None,
            username: target.username.as_deref().map(Into::into),
            password: target
                .password
                .as_ref()
                .map(|p| Bytes::from(p.clone().into_bytes())),
            properties,
        };
        client.send(&Packet::Connect(Box::new(connect)))?;
        client.flush().await?;
        match client.next_packet().await? {
            Packet::ConnAck(ack) if ack.reason_code == 0 => Ok(client),
            Packet::ConnAck(ack) => bail!("CONNACK refused with code {:#04x}", ack.reason_code),
            other => bail!("expected CONNACK, got {}", other.kind()),
        }
    }

    /// Subscribe to one filter and wait for a granting SUBACK.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> anyhow::Result<()> {
        let subscribe = Subscribe {
            packet_id: 1,
            filters: vec![(
                filter.into(),
                SubscriptionOptions {
                    qos,
                    ..SubscriptionOptions::default()
                },
            )],
            subscription_identifier: None,
            user_properties: vec![],
        };
        self.send(&Packet::Subscribe(subscribe))?;
        self.flush().await?;
        let reply = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.next_packet())
            .await
            .context("no SUBACK within 30 s")??;
        match reply {
            Packet::SubAck(ack) if ack.reason_codes.iter().all(|&c| c < 0x80) => Ok(()),
            Packet::SubAck(ack) => bail!("SUBSCRIBE {filter} refused: {:?}", ack.reason_codes),
            other => bail!("expected SUBACK, got {}", other.kind()),
        }
    }

    /// Encode a packet into the write buffer (written by the next [`Client::flush`]).
    pub fn send(&mut self, packet: &Packet) -> anyhow::Result<()> {
        self.codec
            .encode(packet, &mut self.wbuf)
            .map_err(|e| anyhow::anyhow!("encode {}: {e}", packet.kind()))
    }

    /// Write everything buffered in one `write_all`.
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// Read once into the read buffer; Ok(0) when the broker closed the connection.
    /// Cancel-safe (a plain read), so it can sit in a `select!`.
    pub async fn read_more(&mut self) -> std::io::Result<usize> {
        if self.rbuf.capacity() - self.rbuf.len() < self.read_chunk / 4 {
            self.rbuf.reserve(self.read_chunk);
        }
        self.stream.read_buf(&mut self.rbuf).await
    }

    /// The next whole packet already read, if any.
    pub fn decode(&mut self) -> anyhow::Result<Option<Packet>> {
        self.codec
            .decode(&mut self.rbuf)
            .map_err(|e| anyhow::anyhow!("malformed packet from broker: {e}"))
    }

    async fn next_packet(&mut self) -> anyhow::Result<Packet> {
        loop {
            if let Some(p) = self.decode()? {
                return Ok(p);
            }
            if self.read_more().await? == 0 {
                bail!("connection closed by the broker");
            }
        }
    }
}

/// PUBLISH frames for one publisher: the frame is encoded once by the codec and copied
/// for every message, with the packet id and the payload stamp patched in.
#[derive(Debug)]
pub struct PublishTemplate {
    frame: Vec<u8>,
    /// Offset of the packet identifier (QoS > 0).
    packet_id_at: Option<usize>,
    /// Offset of the payload.
    payload_at: usize,
}

impl PublishTemplate {
    /// The frame of a `size`-byte PUBLISH to `topic` (`size` at least [`STAMP_LEN`]).
    pub fn new(
        version: ProtocolVersion,
        topic: &str,
        qos: QoS,
        size: usize,
    ) -> anyhow::Result<Self> {
        if size < STAMP_LEN {
            bail!("payload size must be at least {STAMP_LEN} bytes");
        }
        let publish = Publish {
            dup: false,
            qos,
            retain: false,
            topic: topic.into(),
            packet_id: (qos != QoS::AtMostOnce).then_some(1),
            payload: Bytes::from(vec![b'x'; size]),
            properties: PublishProperties::default(),
        };
        let mut buf = BytesMut::new();
        encode_publish(version, &publish, &mut buf)
            .map_err(|e| anyhow::anyhow!("encode PUBLISH to {topic}: {e}"))?;
        let payload_at = buf.len() - size;
        let props = usize::from(version.is_v5());
        let packet_id_at = (qos != QoS::AtMostOnce).then(|| payload_at - props - 2);
        Ok(PublishTemplate {
            frame: buf.to_vec(),
            packet_id_at,
            payload_at,
        })
    }

    /// Append one PUBLISH to `buf`, stamped with `sent_ns`, `publisher` and `seq`.
    #[inline]
    pub fn put(&self, buf: &mut BytesMut, packet_id: u16, sent_ns: u64, publisher: u32, seq: u32) {
        let start = buf.len();
        buf.put_slice(&self.frame);
        let frame = &mut buf[start..];
        if let Some(at) = self.packet_id_at {
            frame[at..at + 2].copy_from_slice(&packet_id.to_be_bytes());
        }
        let stamp = &mut frame[self.payload_at..self.payload_at + STAMP_LEN];
        stamp[..8].copy_from_slice(&sent_ns.to_be_bytes());
        stamp[8..12].copy_from_slice(&publisher.to_be_bytes());
        stamp[12..16].copy_from_slice(&seq.to_be_bytes());
    }
}

/// The stamp of a payload written by [`PublishTemplate::put`]: (sent_ns, publisher, seq).
#[inline]
pub fn read_stamp(payload: &[u8]) -> Option<(u64, u32, u32)> {
    let stamp = payload.get(..STAMP_LEN)?;
    let sent = u64::from_be_bytes(stamp[..8].try_into().ok()?);
    let publisher = u32::from_be_bytes(stamp[8..12].try_into().ok()?);
    let seq = u32::from_be_bytes(stamp[12..16].try_into().ok()?);
    Some((sent, publisher, seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_frames_decode_to_the_stamped_publish() {
        for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                let t = PublishTemplate::new(version, "bench/1", qos, 64).unwrap();
                let mut buf = BytesMut::new();
                t.put(&mut buf, 7, 123_456_789, 3, 41);
                t.put(&mut buf, 8, 5, 3, 42);
                let codec = Codec::new(version, MAX_PACKET);
                let Some(Packet::Publish(first)) = codec.decode(&mut buf).unwrap() else {
                    panic!("not a publish");
                };
                assert_eq!(first.topic, "bench/1");
                assert_eq!(first.qos, qos);
                assert_eq!(first.payload.len(), 64);
                assert_eq!(read_stamp(&first.payload), Some((123_456_789, 3, 41)));
                let expected_id = (qos != QoS::AtMostOnce).then_some(7);
                assert_eq!(first.packet_id, expected_id);
                let Some(Packet::Publish(second)) = codec.decode(&mut buf).unwrap() else {
                    panic!("not a publish");
                };
                assert_eq!(read_stamp(&second.payload), Some((5, 3, 42)));
                assert!(buf.is_empty());
            }
        }
    }

    #[test]
    fn payloads_shorter_than_the_stamp_are_refused() {
        assert!(PublishTemplate::new(ProtocolVersion::V5, "t", QoS::AtMostOnce, 15).is_err());
        assert_eq!(read_stamp(&[0; 15]), None);
    }
}
