//! CoAP (RFC 7252) for `pubsub --proto coap`, driving the gateway's connectionless mode:
//! every client is a UDP socket of its own, so the gateway sees each as a client of its
//! own address.
//!
//! Publishers send `POST /ps/{topic}`: non-confirmable for QoS 0 (the gateway's NON 2.04
//! responses are read and dropped), confirmable with `qos=1` for QoS 1, at most
//! `--inflight` unacknowledged, each piggy-backed 2.04 ACK counted. Nothing is
//! retransmitted: a CON publish without its ACK within `--drain` is counted in `unacked`.
//! Subscribers register with one CON `GET /ps/{filter}` with Observe 0 (RFC 7641 §3.1)
//! and `qos=<--qos>`, then take every 2.05 notification with their token, acknowledging
//! confirmable ones with an empty ACK (RFC 7252 §4.2). Payloads are stamped and checked
//! as for the other protocols (`gw.rs`).

use super::client::{now_ns, STAMP_LEN};
use super::gw::{account, check, stamp, GwJob, MAX_BATCH, MAX_DATAGRAM};
use super::stats::{SeqTracker, Shared};
use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use junction_codec_coap::{decode, encode, option, Code, Message, MessageType, Token};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time::{sleep_until, timeout_at, Instant, MissedTickBehavior};

/// First wait for the response to a setup request, doubled on each retransmission
/// (RFC 7252 §4.8 ACK_TIMEOUT; the gateway drops datagrams of new peers beyond
/// `max_conn_rate`, so setup requests must be retransmitted).
const ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// Retransmissions of a setup request (RFC 7252 §4.8 MAX_RETRANSMIT).
const MAX_RETRANSMIT: u32 = 4;
/// A client silent this long sends a CoAP ping (RFC 7252 §4.3): the gateway drops a
/// client after 1.5 × its `heartbeat` (default 30 s) without a message.
const PING_EVERY: Duration = Duration::from_secs(10);
/// The token of a subscriber's observation (each subscriber is a client of its own).
const OBSERVE_TOKEN: &[u8] = b"jbench";

/// One CoAP client: a connected UDP socket.
#[derive(Debug)]
pub struct CoapClient {
    socket: UdpSocket,
    /// The Message ID of the next message sent.
    next_mid: u16,
    /// The observation's token (subscribers).
    token: Token,
}

fn encoded(msg: &Message) -> anyhow::Result<BytesMut> {
    let mut buf = BytesMut::new();
    encode(msg, &mut buf).map_err(|e| anyhow::anyhow!("encode: {e}"))?;
    Ok(buf)
}

/// A request with `code` to `/ps/{topic}`.
fn ps_request(kind: MessageType, code: Code, mid: u16, topic: &str) -> Message {
    let mut m = Message::new(kind, code, mid);
    // Uri-Path segments, `ps` then the topic's levels (an empty level stays one).
    m.options.push(option::URI_PATH, Bytes::from_static(b"ps"));
    for level in topic.split('/') {
        m.options
            .push(option::URI_PATH, Bytes::copy_from_slice(level.as_bytes()));
    }
    m
}

/// "2.05" or "4.01 (Unauthorized)" with the response's diagnostic payload.
fn describe(msg: &Message) -> String {
    let text = String::from_utf8_lossy(&msg.payload);
    if text.is_empty() {
        format!("{} {}", msg.message_type.name(), msg.code)
    } else {
        format!("{} {} ({text})", msg.message_type.name(), msg.code)
    }
}

impl CoapClient {
    /// Open a client at `addr`. A subscriber observes `topic` at `qos`; a publisher sends
    /// a heartbeat (`PUT /mqtt/connection`), so the gateway admits it before the run.
    pub async fn open(
        addr: SocketAddr,
        topic: &str,
        subscriber: bool,
        qos: u8,
    ) -> anyhow::Result<CoapClient> {
        let bind: SocketAddr = if addr.is_ipv4() {
            "0.0.0.0:0".parse()?
        } else {
            "[::]:0".parse()?
        };
        let socket = UdpSocket::bind(bind).await?;
        socket.connect(addr).await?;
        let mut client = CoapClient {
            socket,
            next_mid: 1,
            token: Token::new(OBSERVE_TOKEN).expect("a short token"),
        };
        let mid = client.mid();
        if subscriber {
            let mut get = ps_request(MessageType::Confirmable, Code::GET, mid, topic)
                .with_token(client.token);
            get.options.push_uint(option::OBSERVE, 0);
            get.push_uri_query("qos", &qos.to_string());
            let response = client.exchange(&get).await?;
            if response.code != Code::CONTENT || response.observe().is_none() {
                bail!(
                    "observe {topic}: expected 2.05 with Observe, got {}",
                    describe(&response)
                );
            }
        } else {
            let mut put = Message::new(MessageType::Confirmable, Code::PUT, mid)
                .with_token(Token::new(b"hb").expect("a short token"));
            put.set_uri_path("mqtt/connection");
            let response = client.exchange(&put).await?;
            if response.code != Code::CHANGED {
                bail!("heartbeat: expected 2.04, got {}", describe(&response));
            }
        }
        Ok(client)
    }

    fn mid(&mut self) -> u16 {
        let mid = self.next_mid;
        self.next_mid = self.next_mid.wrapping_add(1);
        mid
    }

    /// Send the confirmable `request` until its response comes (piggy-backed, or separate
    /// after an empty ACK), retransmitting with RFC 7252's back-off.
    async fn exchange(&mut self, request: &Message) -> anyhow::Result<Message> {
        let frame = encoded(request)?;
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut wait = ACK_TIMEOUT;
        for _ in 0..=MAX_RETRANSMIT {
            self.socket.send(&frame).await?;
            let deadline = Instant::now() + wait;
            while let Ok(n) = timeout_at(deadline, self.socket.recv(&mut buf)).await {
                let Ok(msg) = decode(Bytes::copy_from_slice(&buf[..n?])) else {
                    continue;
                };
                let acked = msg.message_type == MessageType::Acknowledgement
                    && msg.message_id == request.message_id;
                if msg.message_type == MessageType::Reset && msg.message_id == request.message_id {
                    bail!("{} refused with a Reset", request.code);
                }
                if msg.token != request.token || !(acked || msg.code.is_response()) {
                    continue;
                }
                if msg.message_type == MessageType::Confirmable {
                    self.socket
                        .send(&encoded(&Message::empty_ack(msg.message_id))?)
                        .await?;
                }
                if msg.code.is_response() {
                    return Ok(msg);
                }
                // An empty ACK: the response comes separately (RFC 7252 §5.2.2).
            }
            wait *= 2;
        }
        bail!(
            "{} {}: no response to {} transmissions",
            request.code,
            request.uri_path().unwrap_or_default(),
            MAX_RETRANSMIT + 1
        )
    }

    async fn ping(&mut self) -> std::io::Result<()> {
        let ping = Message::ping(self.mid());
        let frame = encoded(&ping).map_err(std::io::Error::other)?;
        self.socket.send(&frame).await.map(drop)
    }
}

/// A pre-encoded `POST /ps/{topic}` with the offsets of its Message ID and payload.
struct PostTemplate {
    frame: Vec<u8>,
    payload_at: usize,
}

impl PostTemplate {
    /// NON for QoS 0, CON with `qos=1` for QoS 1; no token (the ACK is matched by its
    /// Message ID).
    fn new(topic: &str, qos: u8, size: usize) -> anyhow::Result<PostTemplate> {
        if size < STAMP_LEN {
            bail!("payload size must be at least {STAMP_LEN} bytes");
        }
        let kind = if qos == 0 {
            MessageType::NonConfirmable
        } else {
            MessageType::Confirmable
        };
        let mut post =
            ps_request(kind, Code::POST, 0, topic).with_payload(Bytes::from(vec![b'x'; size]));
        if qos > 0 {
            post.push_uri_query("qos", &qos.to_string());
        }
        let frame = encoded(&post)?.to_vec();
        let payload_at = frame.len() - size;
        Ok(PostTemplate { frame, payload_at })
    }

    /// Set the Message ID (header octets 2-3, RFC 7252 §3) and stamp the payload.
    fn put(&mut self, mid: u16, sent_ns: u64, publisher: u32, seq: u32) -> &[u8] {
        self.frame[2..4].copy_from_slice(&mid.to_be_bytes());
        stamp(&mut self.frame[self.payload_at..], sent_ns, publisher, seq);
        &self.frame
    }
}

/// Confirmable publishes waiting for their ACK, oldest first.
#[derive(Debug, Default)]
struct Outstanding {
    sent: VecDeque<(u16, Instant)>,
}

impl Outstanding {
    fn len(&self) -> u64 {
        self.sent.len() as u64
    }

    /// Remove `mid`; false if it was not outstanding (a late or repeated ACK).
    fn remove(&mut self, mid: u16) -> bool {
        match self.sent.iter().position(|(m, _)| *m == mid) {
            Some(at) => {
                self.sent.remove(at);
                true
            }
            None => false,
        }
    }

    /// Forget those sent before `before`; returns how many.
    fn expire(&mut self, before: Instant) -> u64 {
        let mut expired = 0;
        while self.sent.front().is_some_and(|(_, at)| *at < before) {
            self.sent.pop_front();
            expired += 1;
        }
        expired
    }

    fn oldest(&self) -> Option<Instant> {
        self.sent.front().map(|(_, at)| *at)
    }
}

/// Publish per `job` from `start` until `stop_at` or `job.limit`, then wait up to
/// `job.drain` for outstanding ACKs. Returns the number of messages sent.
pub async fn publisher(
    mut client: CoapClient,
    job: GwJob,
    start: Instant,
    stop_at: Instant,
    shared: Arc<Shared>,
) -> u64 {
    let mut template = match PostTemplate::new(&job.topic, job.qos, job.size) {
        Ok(t) => t,
        Err(e) => {
            shared.error(format!("publisher {}: {e}", job.number));
            return 0;
        }
    };
    let confirmable = job.qos > 0;
    let first_due = start + job.offset;
    let drain_until = stop_at + job.drain;
    let mut sent: u64 = 0;
    let mut outstanding = Outstanding::default();
    let mut unacked: u64 = 0;
    let mut last_send = Instant::now();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let now = Instant::now();
        if let Some(cutoff) = now.checked_sub(job.drain) {
            unacked += outstanding.expire(cutoff);
        }
        let sending = now < stop_at && sent < job.limit;
        if sending {
            let due = match job.period {
                None => job.limit,
                Some(_) if now < first_due => 0,
                Some(p) => {
                    let elapsed = (now - first_due).as_nanos() / p.as_nanos().max(1);
                    (elapsed as u64 + 1).min(job.limit)
                }
            };
            let window = if confirmable {
                job.inflight.saturating_sub(outstanding.len())
            } else {
                MAX_BATCH
            };
            let n = due.saturating_sub(sent).min(window).min(MAX_BATCH);
            if n > 0 {
                let ts = now_ns();
                let mut failed = None;
                let mut written = 0;
                for _ in 0..n {
                    let mid = client.mid();
                    let frame = template.put(mid, ts, job.number, sent as u32);
                    if let Err(e) = client.socket.send(frame).await {
                        failed = Some(e);
                        break;
                    }
                    if confirmable {
                        outstanding.sent.push_back((mid, now));
                    }
                    sent += 1;
                    written += 1;
                }
                last_send = now;
                Shared::add(&shared.sent, written);
                Shared::add(&shared.publish_writes, 1);
                Shared::add(&shared.expected, written * job.fanout);
                if let Some(e) = failed {
                    shared.error(format!("publisher {}: {e}", job.number));
                    Shared::add(&shared.disconnected, 1);
                    break;
                }
                continue;
            }
        } else if outstanding.len() == 0 || now >= drain_until {
            break;
        }
        // Wake for the next message due, an ACK, an ACK overdue, a ping, or the phase end.
        let window_open = !confirmable || outstanding.len() < job.inflight;
        let phase_end = if sending { stop_at } else { drain_until };
        let mut wake = phase_end.min(last_send + PING_EVERY);
        if let (Some(p), true, true) = (job.period, sending, window_open) {
            wake = wake.min(first_due + p * sent as u32);
        }
        if let Some(oldest) = outstanding.oldest() {
            wake = wake.min(oldest + job.drain);
        }
        tokio::select! {
            read = client.socket.recv(&mut buf) => {
                let n = match read {
                    Ok(n) => n,
                    Err(e) => {
                        // ICMP port unreachable: the gateway is gone.
                        shared.error(format!("publisher {}: {e}", job.number));
                        Shared::add(&shared.disconnected, 1);
                        break;
                    }
                };
                let Ok(msg) = decode(Bytes::copy_from_slice(&buf[..n])) else {
                    shared.error(format!("publisher {}: malformed datagram", job.number));
                    continue;
                };
                match msg.message_type {
                    MessageType::Acknowledgement if outstanding.remove(msg.message_id) => {
                        if msg.code == Code::CHANGED {
                            Shared::add(&shared.acked, 1);
                        } else {
                            unacked += 1;
                            shared.error(format!("publisher {}: {}", job.number, describe(&msg)));
                        }
                    }
                    MessageType::Reset if outstanding.remove(msg.message_id) => {
                        unacked += 1;
                        shared.error(format!("publisher {}: publish refused with a Reset", job.number));
                    }
                    // NON responses to NON publishes, Resets answering pings.
                    _ if msg.code.is_error() => {
                        shared.error(format!("publisher {}: {}", job.number, describe(&msg)));
                    }
                    _ => {}
                }
            }
            _ = sleep_until(wake) => {
                if Instant::now() >= last_send + PING_EVERY {
                    if let Err(e) = client.ping().await {
                        shared.error(format!("publisher {}: {e}", job.number));
                        break;
                    }
                    last_send = Instant::now();
                }
            }
        }
    }
    unacked += outstanding.len();
    if unacked > 0 {
        Shared::add(&shared.unacked, unacked);
        shared.error(format!(
            "publisher {}: {unacked} confirmable publishes without a 2.04 ACK",
            job.number
        ));
    }
    sent
}

/// Receive notifications until aborted.
pub async fn subscriber(mut client: CoapClient, shared: Arc<Shared>) {
    let mut seen = SeqTracker::default();
    if let Err(e) = receive(&mut client, &shared, &mut seen).await {
        shared.error(format!("subscriber: {e:#}"));
    }
    Shared::add(&shared.disconnected, 1);
}

async fn receive(
    client: &mut CoapClient,
    shared: &Shared,
    seen: &mut SeqTracker,
) -> anyhow::Result<()> {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let n = tokio::select! {
            read = client.socket.recv(&mut buf) => read.context("receive")?,
            _ = ping.tick() => {
                client.ping().await?;
                continue;
            }
        };
        let now = now_ns();
        let msg = match decode(Bytes::copy_from_slice(&buf[..n])) {
            Ok(m) => m,
            Err(e) => {
                shared.error(format!("subscriber: malformed datagram: {e}"));
                continue;
            }
        };
        // Notifications are CON or NON; an ACK with the token repeats the registration's
        // response (to a retransmitted GET).
        let notification = matches!(
            msg.message_type,
            MessageType::Confirmable | MessageType::NonConfirmable
        ) && msg.token == client.token
            && msg.code.is_response();
        if msg.message_type == MessageType::Confirmable {
            // A notification is acknowledged; anything else is rejected (RFC 7252 §4.2).
            let reply = if notification {
                Message::empty_ack(msg.message_id)
            } else {
                Message::reset(msg.message_id)
            };
            client.socket.send(&encoded(&reply)?).await?;
        }
        if !notification {
            continue; // the Reset answering a ping, a late duplicate ACK
        }
        if msg.code != Code::CONTENT || msg.observe().is_none() {
            // The observation ended (RFC 7641 §3.2: a response without Observe).
            bail!("observation ended: {}", describe(&msg));
        }
        let (duplicate, unstamped) = check(shared, seen, now, &msg.payload);
        account(shared, now, 1, duplicate, unstamped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::read_stamp;

    #[test]
    fn qos0_template_is_a_stamped_non_post_to_ps_topic() {
        let mut t = PostTemplate::new("bench/gw/1", 0, 64).unwrap();
        let frame = t.put(0xBEEF, 123, 4, 5).to_vec();
        let m = decode(Bytes::from(frame)).unwrap();
        assert_eq!(m.message_type, MessageType::NonConfirmable);
        assert_eq!(m.code, Code::POST);
        assert_eq!(m.message_id, 0xBEEF);
        assert_eq!(m.uri_path().as_deref(), Some("ps/bench/gw/1"));
        assert_eq!(m.uri_query("qos"), None);
        assert_eq!(m.payload.len(), 64);
        assert_eq!(read_stamp(&m.payload), Some((123, 4, 5)));
    }

    #[test]
    fn qos1_template_is_a_confirmable_post_asking_qos_1() {
        let mut t = PostTemplate::new("a/b", 1, 16).unwrap();
        let m = decode(Bytes::from(t.put(7, 1, 2, 3).to_vec())).unwrap();
        assert_eq!(m.message_type, MessageType::Confirmable);
        assert_eq!(m.message_id, 7);
        assert_eq!(m.uri_query("qos"), Some("1"));
        assert_eq!(read_stamp(&m.payload), Some((1, 2, 3)));
    }

    #[test]
    fn wildcard_and_empty_levels_stay_path_segments() {
        let m = ps_request(MessageType::Confirmable, Code::GET, 1, "/bench/+/#");
        let segments: Vec<&[u8]> = m.uri_path_segments().collect();
        assert_eq!(
            segments,
            [&b"ps"[..], b"", b"bench", b"+", b"#"].to_vec(),
            "the gateway joins them back into /bench/+/#"
        );
    }

    #[test]
    fn outstanding_acks_expire_oldest_first() {
        let t0 = Instant::now();
        let mut o = Outstanding::default();
        for (mid, ms) in [(1, 0), (2, 10), (3, 20)] {
            o.sent.push_back((mid, t0 + Duration::from_millis(ms)));
        }
        assert!(o.remove(2));
        assert!(!o.remove(2), "a repeated ACK is not counted twice");
        assert_eq!(o.expire(t0 + Duration::from_millis(15)), 1);
        assert_eq!(o.len(), 1);
        assert_eq!(o.oldest(), Some(t0 + Duration::from_millis(20)));
    }
}
