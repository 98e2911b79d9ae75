//! One MQTT-SN client as a channel of the framework's datagram driver: the CONNECT
//! dialogue (with WILLTOPIC / WILLMSG) or a PINGREQ waking a known client
//! ([`SnOpening`]), then the connected state machine ([`SnChannel`]). No I/O.

use crate::identity::{self, Identity};
use crate::protocol::{kind, SnProtocol};
use bytes::Bytes;
use bytestring::ByteString;
use junction_broker::hooks::Action;
use junction_broker::Will;
use junction_codec_mqttsn::{decode, Flags, Message, QoS as SnQoS, ReturnCode, Topic};
use junction_gateway::driver::datagram::{
    DatagramChannel, DatagramOpening, DatagramOutput, Opened, Peer,
};
use junction_gateway::metrics::GatewayCounters;
use junction_gateway::{ClientCall, ClientInfo, CloseReason, ConnectRequest, Session};
use junction_session::{
    AckResult, IncomingQos2, InflightState, Outbound, SessionLimits, SubOptions,
};
use junction_types::metrics::Counter;
use junction_types::{now_ms, MessageProperties, QoS};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Session expiry of a `clean_session = false` client (EMQX: 2 h).
const PERSISTENT_EXPIRY_SECS: u32 = 7200;
/// First dynamic topic id (predefined ids end at 1024).
const FIRST_DYNAMIC_ID: u32 = 1025;
/// Gateway REGISTER retransmission period and retries.
const REGISTER_RETRY: Duration = Duration::from_secs(5);
const REGISTER_MAX_RETRIES: u32 = 3;

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Per-session topic registry: dynamic ids from 1025.
///
/// A name is *registered* (usable both ways) once the client knows its id: it sent the
/// REGISTER itself, subscribed to the name, or acknowledged the gateway's REGISTER. An id
/// handed out in a gateway REGISTER stays the name's id even while unregistered, so that a
/// REGISTER retried later (a refused one, or a re-REGISTER after a client's PUBACK "invalid
/// topic id") names the same id, as EMQX does.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    by_name: HashMap<String, u16>,
    by_id: HashMap<u16, String>,
    /// Every id handed out, registered or not.
    allocated: HashMap<String, u16>,
    /// Names the client refused in a delivery (PUBACK 0x02): they go through REGISTER
    /// next, even when predefined or short.
    must_register: HashSet<String>,
    next: u32,
}

impl Registry {
    /// The id of `name` (`predefined` if it has one), allocating a dynamic one if needed;
    /// `None` when ids are exhausted. Does not register the name.
    fn allocate(&mut self, name: &str, predefined: Option<u16>) -> Option<u16> {
        if let Some(id) = predefined.or_else(|| self.allocated.get(name).copied()) {
            return Some(id);
        }
        let next = self.next.max(FIRST_DYNAMIC_ID);
        if next > 0xFFFF {
            return None;
        }
        self.next = next + 1;
        let id = next as u16;
        self.allocated.insert(name.to_string(), id);
        Some(id)
    }

    /// `name` is known to the client as `id`.
    fn confirm(&mut self, name: &str, id: u16) {
        self.must_register.remove(name);
        self.by_name.insert(name.to_string(), id);
        self.by_id.insert(id, name.to_string());
    }

    /// The id of `name`, allocating and registering it; `None` when ids are exhausted.
    fn register(&mut self, name: &str) -> Option<u16> {
        if let Some(id) = self.by_name.get(name) {
            return Some(*id);
        }
        let id = self.allocate(name, None)?;
        self.confirm(name, id);
        Some(id)
    }

    /// Forget that the client knows `name` (it keeps its id for the next REGISTER).
    fn remove(&mut self, name: &str) {
        if let Some(id) = self.by_name.remove(name) {
            self.by_id.remove(&id);
        }
    }

    fn clear(&mut self) {
        self.by_name.clear();
        self.by_id.clear();
        self.allocated.clear();
        self.must_register.clear();
        self.next = 0;
    }
}

/// A will as set by the CONNECT dialogue or the update messages.
#[derive(Debug, Clone)]
pub(crate) struct WillSpec {
    topic: ByteString,
    qos: QoS,
    retain: bool,
    payload: Bytes,
}

/// MQTT-SN state of a client id that outlives one peer address (NAT rebinding) or one
/// connection (resumed sessions).
#[derive(Debug, Default)]
pub(crate) struct ClientData {
    registry: Registry,
    /// User name from `clientinfo_override` (kept for a re-attach from a new address).
    username: Option<ByteString>,
    /// Set by the authenticator at CONNECT (kept for a re-attach).
    is_superuser: bool,
    will: Option<WillSpec>,
    /// Sleep duration while asleep.
    asleep: Option<u16>,
    keepalive: u16,
    clean: bool,
    /// The address the client last connected from (the one its CONNECT authenticated).
    addr: Option<SocketAddr>,
}

/// How long a connected client may stay silent: 1.5 × its Duration. Over UDP an address
/// that went away never says so, so a Duration of 0 does not mean forever: it is taken as
/// the longest a client can ask for (65,535 s), after which the peer is forgotten.
fn silence_limit(duration: u16) -> Duration {
    let secs = if duration == 0 { u16::MAX } else { duration };
    Duration::from_millis(secs as u64 * 1500)
}

/// The largest UDP payload over IPv4 (65,535 − 8 − 20): a PUBLISH longer than this cannot
/// be sent in one datagram.
const MAX_DATAGRAM: usize = 65_507;

/// True if a PUBLISH with `payload_len` octets of data fits no datagram.
fn too_large(payload_len: usize) -> bool {
    junction_codec_mqttsn::publish_len(payload_len).is_none_or(|n| n > MAX_DATAGRAM)
}

/// The 2-octet TopicId field of a PUBLISH topic (for PUBACK).
pub(crate) fn raw_topic_id(t: &Topic) -> u16 {
    match t {
        Topic::Id(i) | Topic::Predefined(i) => *i,
        Topic::Short(b) => u16::from_be_bytes(*b),
        _ => 0,
    }
}

/// A short topic name if it is UTF-8 without wildcards.
pub(crate) fn short_name(b: &[u8; 2]) -> Option<String> {
    let s = std::str::from_utf8(b).ok()?;
    (!s.contains(['+', '#'])).then(|| s.to_string())
}

fn sn_qos(q: SnQoS) -> QoS {
    match q {
        SnQoS::AtLeastOnce => QoS::AtLeastOnce,
        SnQoS::ExactlyOnce => QoS::ExactlyOnce,
        SnQoS::AtMostOnce | SnQoS::MinusOne => QoS::AtMostOnce,
    }
}

fn to_sn_qos(q: QoS) -> SnQoS {
    match q {
        QoS::AtMostOnce => SnQoS::AtMostOnce,
        QoS::AtLeastOnce => SnQoS::AtLeastOnce,
        QoS::ExactlyOnce => SnQoS::ExactlyOnce,
    }
}

fn will_of(flags: Flags, topic: ByteString) -> WillSpec {
    WillSpec {
        topic,
        qos: sn_qos(flags.qos),
        retain: flags.retain,
        payload: Bytes::new(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Connected,
    Asleep,
    Awake,
}

/// A REGISTER sent by the gateway, waiting for its REGACK.
#[derive(Debug)]
struct RegWait {
    topic_id: u16,
    msg_id: u16,
    name: String,
    sent_at: Instant,
    retries: u32,
}

pub(crate) struct SnChannel {
    proto: Arc<SnProtocol>,
    session: Session,
    /// What the driver sends: `out`, encoded after every step.
    dout: DatagramOutput,
    /// The time the driver last handed in.
    now: Instant,
    data: Arc<Mutex<ClientData>>,
    state: State,
    last_recv: Instant,
    asleep_until: Option<Instant>,
    /// Deliveries taken from the outbox, held while a REGISTER is outstanding.
    pending: VecDeque<Outbound>,
    reg_wait: Option<RegWait>,
    next_msg_id: u16,
    out: Vec<Message>,
    /// `out` holds a PUBACK, PUBREC or PUBCOMP: the broker's ack barrier
    /// (`durable_sessions.commit_before_ack`) is awaited before it is sent.
    ack_pending: bool,
    /// A connection this client published to is behind (`junction_broker::Routed::congested`):
    /// yield before taking the next datagram.
    congested: bool,
    /// `retry_interval` (0: no resend while connected).
    retry_interval: Duration,
    /// How often inbound QoS 2 messages awaiting PUBREL are checked for `await_rel_timeout`.
    rel_check_every: Duration,
    /// When this connection last sent each in-flight delivery (PUBLISH, or PUBREL once
    /// PUBREC came): the resend clock. An id missing here was never sent by this
    /// connection (it still waits in the outbox or behind a REGISTER).
    sent_at: HashMap<u16, Instant>,
    /// Next resend check of the in-flight window.
    retry_at: Option<Instant>,
    /// Next expiry check of inbound QoS 2 messages awaiting PUBREL.
    rel_check_at: Option<Instant>,
}

/// The ClientInfo of a client of this listener (mountpoint and clean start filled later).
pub(crate) fn client_info(
    proto: &SnProtocol,
    peer: &Peer,
    clientid: &ByteString,
    username: Option<ByteString>,
    keepalive: u16,
) -> ClientInfo {
    ClientInfo {
        clientid: clientid.clone(),
        username,
        protocol: proto.ctx.protocol,
        proto_ver: "1.2".to_string(),
        peername: peer.addr,
        sockport: peer.sockport,
        listener: peer.listener.clone(),
        mountpoint: String::new(),
        keepalive: keepalive as u32,
        clean_start: true,
        expiry_interval: 0,
        connected_at: now_ms(),
        is_superuser: false,
        extras: Default::default(),
    }
}

/// How often to look for inbound QoS 2 messages past `await_rel_timeout`: the timeout,
/// or the retry interval when that is shorter (the MQTT listener checks at its retry
/// ticks), so an expiry happens at most one period late.
fn rel_check_period(limits: &SessionLimits) -> Duration {
    let mut every = limits.await_rel_timeout_ms;
    if limits.retry_interval_ms > 0 {
        every = every.min(limits.retry_interval_ms);
    }
    Duration::from_millis(every.max(10))
}

impl SnChannel {
    /// The will as the broker publishes it.
    fn will_message(&self, w: WillSpec) -> Will {
        Will {
            message: junction_types::Message {
                id: 0,
                topic: self.session.mountpoint.mount(&w.topic).into(),
                payload: w.payload,
                qos: w.qos,
                retain: w.retain,
                properties: MessageProperties::default(),
                expires_at_ms: None,
                received_at_ms: now_ms(),
                from: self.session.info.clientid.clone(),
                namespace: ByteString::from_static(self.proto.ctx.name),
            },
            delay_secs: 0,
            publisher: Arc::new((*self.session.info).clone()),
        }
    }

    /// Keep the current will with a persistent session, so that it outlives a restart.
    fn sync_will(&self) {
        if !self.session.cell.is_persistent() {
            return;
        }
        let will = self.data.lock().will.clone().map(|w| self.will_message(w));
        self.proto.ctx.set_will(&self.session, will.as_ref());
    }

    fn msg_id(&mut self) -> u16 {
        self.next_msg_id = self.next_msg_id.wrapping_add(1).max(1);
        self.next_msg_id
    }

    fn next_deadline(&self) -> Instant {
        let far = self.now + Duration::from_secs(86_400);
        let mut at = far;
        let ka = self.data.lock().keepalive;
        if self.state != State::Asleep {
            at = at.min(self.last_recv + silence_limit(ka));
        }
        if self.state != State::Connected {
            if let Some(t) = self.asleep_until {
                at = at.min(t);
            }
        }
        if let Some(r) = &self.reg_wait {
            at = at.min(r.sent_at + REGISTER_RETRY);
        }
        for t in [self.retry_at, self.rel_check_at].into_iter().flatten() {
            at = at.min(t);
        }
        at
    }

    /// Arm the resend timer after a step: due when the oldest delivery this connection sent
    /// has gone unacknowledged for `retry_interval`. Not while asleep, nor while a REGISTER
    /// is outstanding (the deliveries wait for it).
    fn arm_retry(&mut self) {
        self.retry_at = None;
        if !self.retry_interval.is_zero() && self.state != State::Asleep && self.reg_wait.is_none()
        {
            if let Some(oldest) = self.sent_at.values().min() {
                self.retry_at = Some(*oldest + self.retry_interval);
            }
        }
    }

    /// Make sure inbound QoS 2 messages awaiting PUBREL get checked for expiry.
    fn arm_rel_check(&mut self) {
        if self.rel_check_at.is_none() {
            self.rel_check_at = Some(self.now + self.rel_check_every);
        }
    }

    /// Resend what the client has not acknowledged within `retry_interval`: PUBLISH with
    /// DUP set (MQTT-SN 1.2 §5.3.4 Flags), or PUBREL for a QoS 2 delivery past PUBREC.
    fn retry_inflight(&mut self, now: Instant) {
        let due: Vec<u16> = self
            .sent_at
            .iter()
            .filter(|(_, at)| now >= **at + self.retry_interval)
            .map(|(id, _)| *id)
            .collect();
        if due.is_empty() {
            return;
        }
        let mut resend = Vec::new();
        {
            let st = self.session.cell.lock();
            for (id, e) in st.session.inflight() {
                if !due.contains(&id) {
                    continue;
                }
                resend.push(match e.state {
                    InflightState::WaitAck => Outbound::Publish {
                        packet_id: Some(id),
                        dup: true,
                        delivery: e.delivery.clone(),
                    },
                    InflightState::WaitComp => Outbound::PubRel(id),
                });
            }
        }
        // Ids the session no longer has in flight were settled elsewhere.
        for id in due {
            self.sent_at.remove(&id);
        }
        if resend.is_empty() {
            return;
        }
        // In front of anything held, in the session's send order.
        for o in resend.into_iter().rev() {
            self.pending.push_front(o);
        }
        self.pump();
    }

    /// Drop inbound QoS 2 messages whose PUBREL did not come within `await_rel_timeout`.
    fn expire_awaiting_rel(&mut self) {
        let (expired, left) = {
            let mut st = self.session.cell.lock();
            let expired = st.session.expire_awaiting_rel(now_ms());
            (expired, st.session.awaiting_rel_len())
        };
        if expired > 0 {
            tracing::debug!(clientid = %self.session.info.clientid, expired, "QoS 2 messages dropped: no PUBREL within await_rel_timeout");
            self.proto
                .ctx
                .metrics
                .messages_dropped_await_pubrel_timeout
                .add(expired as u64);
        }
        self.rel_check_at = (left > 0).then(|| self.now + self.rel_check_every);
    }

    fn tick(&mut self) -> Result<(), CloseReason> {
        let now = self.now;
        let ka = self.data.lock().keepalive;
        if self.state != State::Asleep && now >= self.last_recv + silence_limit(ka) {
            self.out.push(Message::Disconnect { duration: None });
            return Err(CloseReason::KeepaliveTimeout);
        }
        if self.state != State::Connected && self.asleep_until.is_some_and(|t| now >= t) {
            return Err(CloseReason::AsleepTimeout);
        }
        if let Some(r) = &mut self.reg_wait {
            if now >= r.sent_at + REGISTER_RETRY {
                if r.retries >= REGISTER_MAX_RETRIES {
                    self.out.push(Message::Disconnect { duration: None });
                    return Err(CloseReason::RetriesExhausted);
                }
                r.retries += 1;
                r.sent_at = now;
                let m = Message::Register {
                    topic_id: r.topic_id,
                    msg_id: r.msg_id,
                    topic_name: ByteString::from(r.name.as_str()),
                };
                self.out.push(m);
            }
        }
        if self.retry_at.is_some_and(|t| now >= t) {
            self.retry_at = None;
            if self.state != State::Asleep && self.reg_wait.is_none() {
                self.retry_inflight(now);
            }
        }
        if self.rel_check_at.is_some_and(|t| now >= t) {
            self.expire_awaiting_rel();
        }
        Ok(())
    }

    /// Awake: once everything queued was delivered and acknowledged, PINGRESP and sleep
    /// again.
    fn check_awake_done(&mut self) {
        if self.state != State::Awake || !self.pending.is_empty() || self.reg_wait.is_some() {
            return;
        }
        let idle = {
            let st = self.session.cell.lock();
            st.outbox.is_empty() && st.session.inflight_len() == 0 && st.session.mqueue_len() == 0
        };
        if idle {
            self.out.push(Message::PingResp);
            self.state = State::Asleep;
        }
    }

    fn handle(&mut self, m: Message) -> Result<(), CloseReason> {
        match m {
            Message::Connect { duration, .. } => {
                // A retried CONNECT (lost CONNACK) or a CONNECT from asleep/awake.
                self.data.lock().keepalive = duration;
                self.data.lock().asleep = None;
                self.out.push(Message::ConnAck {
                    rc: ReturnCode::Accepted,
                });
                if self.state == State::Asleep {
                    self.drain_outbox();
                }
                self.state = State::Connected;
            }
            Message::Register {
                msg_id, topic_name, ..
            } => self.on_register(msg_id, &topic_name),
            Message::RegAck {
                topic_id,
                msg_id,
                rc,
            } => self.on_regack(topic_id, msg_id, rc),
            Message::Publish {
                flags,
                topic,
                msg_id,
                data,
            } => self.on_publish(flags, topic, msg_id, data),
            Message::PubAck {
                topic_id,
                msg_id,
                rc,
            } => self.on_puback(topic_id, msg_id, rc),
            Message::PubRec { msg_id } => {
                let r = self
                    .session
                    .cell
                    .lock()
                    .session
                    .pubrec(msg_id, false, now_ms());
                match r {
                    AckResult::Released => {
                        self.out.push(Message::PubRel { msg_id });
                        self.sent_at.insert(msg_id, self.now);
                    }
                    _ => self.proto.ctx.metrics.packets_pubrec_missed.inc(),
                }
            }
            Message::PubComp { msg_id } => {
                let r = self.session.cell.lock().session.pubcomp(msg_id);
                if matches!(r, AckResult::Completed(_)) {
                    self.sent_at.remove(&msg_id);
                }
                self.acked(r, |m| &m.packets_pubcomp_missed);
            }
            Message::PubRel { msg_id } => {
                let known = self.session.cell.lock().session.release(msg_id);
                if !known {
                    self.proto.ctx.metrics.packets_pubrel_missed.inc();
                }
                self.out.push(Message::PubComp { msg_id });
                // The released id must be on disk before PUBCOMP lets the client reuse it.
                self.ack_pending |= known;
            }
            Message::Subscribe {
                flags,
                msg_id,
                topic,
            } => self.on_subscribe(flags, msg_id, topic),
            Message::Unsubscribe { msg_id, topic, .. } => {
                if let Some(filter) = self.filter_of(&topic) {
                    let ctx = &self.proto.ctx;
                    for filter in ctx.client_unsubscribe(&self.session.info, vec![filter]) {
                        ctx.unsubscribe(
                            &self.session.info,
                            &self.session.cell,
                            &self.session.mountpoint,
                            &filter,
                        );
                    }
                }
                self.out.push(Message::UnsubAck { msg_id });
            }
            Message::PingReq { .. } => match self.state {
                State::Asleep | State::Awake => {
                    self.state = State::Awake;
                    self.drain_outbox();
                }
                State::Connected => self.out.push(Message::PingResp),
            },
            Message::Disconnect { duration: Some(d) } => {
                self.out.push(Message::Disconnect { duration: None });
                self.state = State::Asleep;
                self.asleep_until = Some(self.now + Duration::from_secs(d as u64));
                self.data.lock().asleep = Some(d);
            }
            Message::Disconnect { duration: None } => {
                self.out.push(Message::Disconnect { duration: None });
                return Err(CloseReason::Normal);
            }
            Message::WillTopicUpd { flags, topic } => {
                if topic
                    .as_ref()
                    .is_some_and(|t| self.proto.ctx.check_topic_name(t).is_err())
                {
                    self.out.push(Message::WillTopicResp {
                        rc: ReturnCode::NotSupported,
                    });
                    return Ok(());
                }
                let mut d = self.data.lock();
                match topic {
                    None => d.will = None,
                    Some(t) => {
                        let payload = d.will.take().map(|w| w.payload).unwrap_or_default();
                        let mut w = will_of(flags, t);
                        w.payload = payload;
                        d.will = Some(w);
                    }
                }
                drop(d);
                self.sync_will();
                self.out.push(Message::WillTopicResp {
                    rc: ReturnCode::Accepted,
                });
            }
            Message::WillMsgUpd { payload } => {
                if let Some(w) = &mut self.data.lock().will {
                    w.payload = payload;
                }
                self.sync_will();
                self.out.push(Message::WillMsgResp {
                    rc: ReturnCode::Accepted,
                });
            }
            Message::WillTopic { flags, topic } => {
                // Late will dialogue message: treat like an update, without an answer
                // (and without a topic that is not a valid name).
                if topic
                    .as_ref()
                    .is_some_and(|t| self.proto.ctx.check_topic_name(t).is_err())
                {
                    return Ok(());
                }
                self.data.lock().will = topic.map(|t| will_of(flags, t));
                self.sync_will();
            }
            Message::WillMsg { payload } => {
                if let Some(w) = &mut self.data.lock().will {
                    w.payload = payload;
                }
                self.sync_will();
            }
            other => {
                tracing::debug!(clientid = %self.session.info.clientid, msg = other.name(), "unexpected mqtt-sn message ignored");
            }
        }
        Ok(())
    }

    /// Answer a framework call (management API subscriptions). Deliveries on a topic the
    /// client never registered are preceded by a gateway REGISTER, as for wildcards.
    fn answer_call(&mut self, call: ClientCall) {
        if self.session.answer_call(call) && self.state != State::Asleep {
            self.drain_outbox();
        }
    }

    /// A QoS 1/2 flow towards the client ended: count it and send what is next.
    fn acked(&mut self, r: AckResult, missed: fn(&GatewayCounters) -> &Counter) {
        match r {
            AckResult::Completed(d) => {
                self.proto.ctx.acked(&self.session.info, Some(&d.message));
                self.window_freed();
            }
            _ => missed(&self.proto.ctx.metrics).inc(),
        }
    }

    /// The in-flight slot is free: move the next queued message into it and send it.
    fn window_freed(&mut self) {
        {
            let mut guard = self.session.cell.lock();
            let st = &mut *guard;
            let mut dropped = Vec::new();
            st.session.dequeue(now_ms(), &mut st.outbox, &mut dropped);
        }
        if self.state != State::Asleep {
            self.drain_outbox();
        }
    }

    /// PUBACK from the client (MQTT-SN 1.2 §5.4.13): the end of a QoS 1 delivery, or the
    /// refusal of a delivery with a ReturnCode (§5.3.10).
    fn on_puback(&mut self, topic_id: u16, msg_id: u16, rc: ReturnCode) {
        match rc {
            ReturnCode::Accepted => {
                let r = self.session.cell.lock().session.puback(msg_id);
                if matches!(r, AckResult::Completed(_)) {
                    self.sent_at.remove(&msg_id);
                }
                self.acked(r, |m| &m.packets_puback_missed);
            }
            ReturnCode::InvalidTopicId => self.reregister_refused(topic_id, msg_id),
            ReturnCode::Congestion => {
                // Stays in flight: resent after `retry_interval`.
                tracing::debug!(clientid = %self.session.info.clientid, msg_id, "PUBACK congestion: the delivery is retried later");
            }
            other => {
                // "Not supported" (or a reserved code): the client will never take this
                // message, and keeping it in the window of one would stall every delivery.
                tracing::debug!(clientid = %self.session.info.clientid, msg_id, rc = ?other, "client refused a delivery: dropped");
                let discarded = self.session.cell.lock().session.discard_inflight(msg_id);
                if discarded.is_some() {
                    self.sent_at.remove(&msg_id);
                    self.proto.ctx.metrics.delivery_dropped.inc();
                    self.window_freed();
                } else {
                    self.proto.ctx.metrics.packets_puback_missed.inc();
                }
            }
        }
    }

    /// PUBACK "invalid topic id": the client lost the registration the delivery used (it
    /// restarted, or a REGISTER was lost). The topic is REGISTERed again, with the same
    /// id, and the refused delivery is sent again once the client acknowledges it
    /// (reference §5.2, EMQX `t_delivery_qos1_register_invalid_topic_id`). A predefined or
    /// short topic the client refused is REGISTERed too and delivered by id from then on.
    fn reregister_refused(&mut self, topic_id: u16, msg_id: u16) {
        let refused = {
            let st = self.session.cell.lock();
            let found = st
                .session
                .inflight()
                .find(|(id, e)| *id == msg_id && e.state == InflightState::WaitAck)
                .map(|(_, e)| e.delivery.clone());
            found
        };
        let name = match &refused {
            Some(d) => self
                .session
                .mountpoint
                .unmount(&d.message.topic)
                .to_string(),
            None => {
                // Nothing in flight under that MsgId (a QoS 0 delivery): the next delivery
                // on the topic registers it again.
                let d = self.data.lock();
                let name = d
                    .registry
                    .by_id
                    .get(&topic_id)
                    .or_else(|| self.proto.predefined_by_id.get(&topic_id))
                    .cloned();
                drop(d);
                match name {
                    Some(n) => n,
                    None => {
                        tracing::debug!(clientid = %self.session.info.clientid, topic_id, "PUBACK invalid topic id for an unknown topic: ignored");
                        return;
                    }
                }
            }
        };
        tracing::debug!(clientid = %self.session.info.clientid, topic_id, %name, "client lost a topic registration: REGISTER again");
        {
            let mut d = self.data.lock();
            d.registry.remove(&name);
            d.registry.must_register.insert(name);
        }
        let Some(delivery) = refused else {
            return;
        };
        // Already waiting to go out again (a repeated PUBACK)?
        let queued = self
            .pending
            .iter()
            .any(|o| matches!(o, Outbound::Publish { packet_id: Some(id), .. } if *id == msg_id));
        if queued {
            return;
        }
        // Not a resend of something the client accepted: no DUP (as EMQX).
        self.sent_at.remove(&msg_id);
        self.pending.push_front(Outbound::Publish {
            packet_id: Some(msg_id),
            dup: false,
            delivery,
        });
        if self.reg_wait.is_none() {
            self.pump();
        }
    }

    fn on_register(&mut self, msg_id: u16, name: &str) {
        let (topic_id, rc) = if self.proto.ctx.check_topic_name(name).is_err() {
            (0, ReturnCode::NotSupported)
        } else if let Some(id) = self.proto.predefined_by_name.get(name) {
            (*id, ReturnCode::Accepted)
        } else {
            match self.data.lock().registry.register(name) {
                Some(id) => (id, ReturnCode::Accepted),
                None => (0, ReturnCode::NotSupported),
            }
        };
        self.out.push(Message::RegAck {
            topic_id,
            msg_id,
            rc,
        });
    }

    fn on_regack(&mut self, topic_id: u16, msg_id: u16, rc: ReturnCode) {
        let Some(r) = &mut self.reg_wait else {
            return;
        };
        // EMQX matches the REGACK on the topic id alone; the spec on the MsgId. Either will do.
        if r.msg_id != msg_id && r.topic_id != topic_id {
            return;
        }
        match rc {
            ReturnCode::Accepted => {
                let name = std::mem::take(&mut r.name);
                let id = r.topic_id;
                self.reg_wait = None;
                self.data.lock().registry.confirm(&name, id);
            }
            ReturnCode::Congestion => {
                // Retried by the timer, which counts the retries: a client that answers
                // every REGISTER with "congestion" is disconnected after
                // `REGISTER_MAX_RETRIES`, not kept waiting forever.
                return;
            }
            _ => {
                let name = std::mem::take(&mut r.name);
                self.reg_wait = None;
                tracing::debug!(topic_id, %name, ?rc, "client refused REGISTER: skipping the topic");
                self.data.lock().registry.remove(&name);
                // Drop the held deliveries of that topic.
                let mut held = std::mem::take(&mut self.pending);
                held.retain(|o| match o {
                    Outbound::Publish {
                        packet_id,
                        delivery,
                        ..
                    } if self.session.mountpoint.unmount(&delivery.message.topic) == name => {
                        if let Some(id) = packet_id {
                            self.session.cell.lock().session.discard_inflight(*id);
                            self.sent_at.remove(id);
                        }
                        self.proto.ctx.metrics.delivery_dropped.inc();
                        false
                    }
                    _ => true,
                });
                self.pending = held;
                let mut guard = self.session.cell.lock();
                let st = &mut *guard;
                let mut dropped = Vec::new();
                st.session.dequeue(now_ms(), &mut st.outbox, &mut dropped);
            }
        }
        self.drain_outbox();
    }

    /// Resolve the topic of an inbound PUBLISH.
    fn publish_topic(&self, topic: &Topic) -> Result<String, ReturnCode> {
        match topic {
            Topic::Id(id) => self
                .data
                .lock()
                .registry
                .by_id
                .get(id)
                .cloned()
                .ok_or(ReturnCode::InvalidTopicId),
            Topic::Predefined(id) => self
                .proto
                .predefined_by_id
                .get(id)
                .cloned()
                .or_else(|| self.data.lock().registry.by_id.get(id).cloned())
                .ok_or(ReturnCode::InvalidTopicId),
            Topic::Short(b) => short_name(b).ok_or(ReturnCode::NotSupported),
            Topic::Name(_) | Topic::Reserved(_) => Err(ReturnCode::NotSupported),
        }
    }

    fn on_publish(&mut self, flags: Flags, topic: Topic, msg_id: u16, data: Bytes) {
        let topic_id = raw_topic_id(&topic);
        let puback = |rc| Message::PubAck {
            topic_id,
            msg_id,
            rc,
        };
        if flags.qos == SnQoS::MinusOne && !self.proto.settings.enable_qos3 {
            self.out.push(puback(ReturnCode::NotSupported));
            return;
        }
        let name = match self.publish_topic(&topic) {
            Ok(n) => n,
            Err(rc) => {
                if flags.qos != SnQoS::AtMostOnce {
                    self.out.push(puback(rc));
                }
                return;
            }
        };
        if !self.proto.ctx.authorize_publish(&self.session.info, &name) {
            self.out.push(puback(ReturnCode::Other(0x80)));
            return;
        }
        let qos = sn_qos(flags.qos);
        if qos == QoS::ExactlyOnce {
            let r = self
                .session
                .cell
                .lock()
                .session
                .incoming_qos2(msg_id, now_ms());
            match r {
                IncomingQos2::New => self.arm_rel_check(),
                IncomingQos2::Duplicate => {
                    if flags.dup {
                        // A retransmission whose PUBREC was lost.
                        self.out.push(Message::PubRec { msg_id });
                    } else {
                        self.proto.ctx.metrics.packets_publish_inuse.inc();
                        self.out.push(puback(ReturnCode::NotSupported));
                    }
                    return;
                }
                // MQTT-SN has no Receive Maximum: only `max_awaiting_rel` bounds it.
                IncomingQos2::TooMany | IncomingQos2::OverReceiveMaximum => {
                    self.proto
                        .ctx
                        .metrics
                        .messages_dropped_receive_maximum
                        .inc();
                    self.out.push(puback(ReturnCode::Congestion));
                    return;
                }
            }
        }
        inc(&self.session.stats.recv_msg);
        let routed = self.proto.ctx.publish(
            &self.session.info,
            &self.session.mountpoint,
            &name,
            data,
            qos,
            flags.retain,
            MessageProperties::default(),
        );
        self.congested |= routed.congested;
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                self.out.push(puback(ReturnCode::Accepted));
                self.ack_pending = true;
            }
            QoS::ExactlyOnce => {
                self.out.push(Message::PubRec { msg_id });
                self.ack_pending = true;
            }
        }
    }

    /// The filter named by a SUBSCRIBE / UNSUBSCRIBE topic.
    fn filter_of(&self, topic: &Topic) -> Option<String> {
        match topic {
            Topic::Name(n) => Some(n.to_string()),
            Topic::Predefined(id) => self.proto.predefined_by_id.get(id).cloned(),
            Topic::Short(b) => std::str::from_utf8(b).ok().map(str::to_string),
            Topic::Id(_) | Topic::Reserved(_) => None,
        }
    }

    fn on_subscribe(&mut self, flags: Flags, msg_id: u16, topic: Topic) {
        let qos = sn_qos(flags.qos);
        let suback = |topic_id, rc| Message::SubAck {
            flags: Flags {
                qos: to_sn_qos(qos),
                ..Flags::default()
            },
            topic_id,
            msg_id,
            rc,
        };
        let (filter, topic_id) = match &topic {
            Topic::Reserved(_) | Topic::Id(_) => {
                self.out.push(suback(0, ReturnCode::NotSupported));
                return;
            }
            Topic::Predefined(id) => match self.proto.predefined_by_id.get(id) {
                Some(name) => (name.clone(), *id),
                None => {
                    self.out.push(suback(0, ReturnCode::InvalidTopicId));
                    return;
                }
            },
            Topic::Short(b) => match std::str::from_utf8(b) {
                Ok(s) => (s.to_string(), 0),
                Err(_) => {
                    self.out.push(suback(0, ReturnCode::InvalidTopicId));
                    return;
                }
            },
            Topic::Name(n) => (n.to_string(), 0),
        };
        if self.proto.ctx.check_filter(&filter).is_err() {
            self.out.push(suback(0, ReturnCode::InvalidTopicId));
            return;
        }
        // `client.subscribe` may rewrite the filter or refuse it (SUBACK 0x83, EMQX).
        let requested = vec![(
            filter,
            SubOptions {
                qos,
                ..SubOptions::default()
            },
        )];
        let hooked = self
            .proto
            .ctx
            .client_subscribe(&self.session.info, requested)
            .pop();
        let Some((filter, opts)) = hooked else {
            self.out.push(suback(0, ReturnCode::Other(0x83)));
            return;
        };
        if self.proto.ctx.check_filter(&filter).is_err() {
            self.out.push(suback(0, ReturnCode::InvalidTopicId));
            return;
        }
        let action = Action::Subscribe { qos: opts.qos };
        if !self
            .proto
            .ctx
            .authorize(&self.session.info, action, &filter)
        {
            self.out.push(suback(0, ReturnCode::Other(0x80)));
            return;
        }
        let topic_id = match &topic {
            Topic::Name(_) if !junction_topic::is_wildcard(&filter) => {
                if let Some(id) = self.proto.predefined_by_name.get(&filter) {
                    *id
                } else {
                    match self.data.lock().registry.register(&filter) {
                        Some(id) => id,
                        None => {
                            self.out.push(suback(0, ReturnCode::Other(0x83)));
                            return;
                        }
                    }
                }
            }
            _ => topic_id,
        };
        // SUBACK first, then any retained message the subscription brings (queued in the
        // session's outbox, drained below).
        let subscribed = self.proto.ctx.subscribe(
            &self.session.info,
            &self.session.cell,
            &self.session.mountpoint,
            &filter,
            opts,
        );
        if subscribed.is_err() {
            self.out.push(suback(0, ReturnCode::InvalidTopicId));
            return;
        }
        self.out.push(suback(topic_id, ReturnCode::Accepted));
        if self.state != State::Asleep {
            self.drain_outbox();
        }
    }

    /// `subs_resume`: REGISTER every non-wildcard subscribed topic before the replay.
    fn reregister_subscriptions(&mut self) {
        let filters: Vec<String> = self
            .session
            .cell
            .lock()
            .session
            .subscriptions
            .keys()
            .map(|f| self.session.mountpoint.unmount(f).to_string())
            .filter(|f| !junction_topic::is_wildcard(f))
            .collect();
        let mut d = self.data.lock();
        for f in filters {
            if self.proto.predefined_by_name.contains_key(&f) || f.len() == 2 {
                continue;
            }
            if let Some(id) = d.registry.register(&f) {
                self.next_msg_id = self.next_msg_id.wrapping_add(1).max(1);
                self.out.push(Message::Register {
                    topic_id: id,
                    msg_id: self.next_msg_id,
                    topic_name: ByteString::from(f),
                });
            }
        }
    }

    /// Take what the session has for the client and send it (REGISTER first when needed).
    /// While a REGISTER is outstanding nothing can go out, so deliveries are left in the
    /// session's outbox and queue, whose bounds (`mqtt.max_mqueue_len`,
    /// `mqtt.max_outbox_bytes`) drop the excess, instead of piling up here.
    fn drain_outbox(&mut self) {
        if self.reg_wait.is_none() {
            let mut v = Vec::new();
            self.session.cell.take_outbox(self.session.conn_id, &mut v);
            self.pending.extend(v);
        }
        self.pump();
    }

    fn pump(&mut self) {
        while self.reg_wait.is_none() {
            let Some(o) = self.pending.pop_front() else {
                break;
            };
            match o {
                Outbound::PubRel(id) => {
                    self.out.push(Message::PubRel { msg_id: id });
                    self.sent_at.insert(id, self.now);
                }
                Outbound::Publish {
                    packet_id,
                    dup,
                    delivery,
                } => {
                    let name = self
                        .session
                        .mountpoint
                        .unmount(&delivery.message.topic)
                        .to_string();
                    let predefined = self.proto.predefined_by_name.get(&name).copied();
                    let topic = {
                        let d = self.data.lock();
                        if let Some(id) = d.registry.by_name.get(&name) {
                            Some(Topic::Id(*id))
                        } else if d.registry.must_register.contains(&name) {
                            None
                        } else if let Some(id) = predefined {
                            Some(Topic::Predefined(id))
                        } else if name.len() == 2 {
                            let b = name.as_bytes();
                            Some(Topic::Short([b[0], b[1]]))
                        } else {
                            None
                        }
                    };
                    if too_large(delivery.message.payload.len()) {
                        // No datagram can carry it: dropped and counted, and its packet id
                        // freed so the next delivery is not stuck behind it.
                        tracing::debug!(clientid = %self.session.info.clientid, len = delivery.message.payload.len(), "mqtt-sn delivery too large for a datagram: dropped");
                        self.proto.ctx.metrics.delivery_dropped.inc();
                        self.proto.ctx.metrics.delivery_dropped_too_large.inc();
                        if let Some(pid) = packet_id {
                            self.sent_at.remove(&pid);
                            let mut guard = self.session.cell.lock();
                            let st = &mut *guard;
                            st.session.discard_inflight(pid);
                            let mut dropped = Vec::new();
                            st.session.dequeue(now_ms(), &mut st.outbox, &mut dropped);
                            drop(guard);
                            self.proto.ctx.count_dropped(dropped);
                            let mut v = Vec::new();
                            self.session.cell.take_outbox(self.session.conn_id, &mut v);
                            self.pending.extend(v);
                        }
                        continue;
                    }
                    match topic {
                        Some(topic) => {
                            let m = Message::Publish {
                                flags: Flags {
                                    dup,
                                    qos: to_sn_qos(delivery.qos),
                                    retain: delivery.retain,
                                    topic_id_type: topic.id_type(),
                                    ..Flags::default()
                                },
                                topic,
                                msg_id: packet_id.unwrap_or(0),
                                data: delivery.message.payload.clone(),
                            };
                            self.out.push(m);
                            if let Some(pid) = packet_id {
                                self.sent_at.insert(pid, self.now);
                            }
                            if !dup {
                                self.proto
                                    .ctx
                                    .delivered(&self.session.info, &delivery.message);
                                inc(&self.session.stats.send_msg);
                            }
                        }
                        None => {
                            // Registered only once the client acknowledges it.
                            let id = self.data.lock().registry.allocate(&name, predefined);
                            let Some(topic_id) = id else {
                                self.proto.ctx.metrics.delivery_dropped.inc();
                                if let Some(pid) = packet_id {
                                    self.session.cell.lock().session.discard_inflight(pid);
                                    self.sent_at.remove(&pid);
                                }
                                continue;
                            };
                            let msg_id = self.msg_id();
                            self.out.push(Message::Register {
                                topic_id,
                                msg_id,
                                topic_name: ByteString::from(name.as_str()),
                            });
                            self.reg_wait = Some(RegWait {
                                topic_id,
                                msg_id,
                                name,
                                sent_at: self.now,
                                retries: 0,
                            });
                            self.pending.push_front(Outbound::Publish {
                                packet_id,
                                dup,
                                delivery,
                            });
                        }
                    }
                }
            }
        }
    }
}

/// Where the CONNECT dialogue is.
#[derive(Debug)]
enum Stage {
    /// Waiting for CONNECT (or a PINGREQ naming a known client).
    Connect,
    /// CONNECT asked for a will: WILLTOPICREQ sent.
    WillTopic,
    /// WILLMSGREQ sent for this will topic.
    WillMsg(Flags, ByteString),
}

/// What the opening learned, for the channel it becomes.
#[derive(Debug)]
enum Opening {
    /// A CONNECT.
    Connect {
        flags: Flags,
        duration: u16,
        will: Option<WillSpec>,
    },
    /// A PINGREQ with a client id, waking that client's session at this address.
    Wake { data: Arc<Mutex<ClientData>> },
}

/// A peer's CONNECT dialogue: CONNECT, then WILLTOPIC and WILLMSG when it asks for a will;
/// or a PINGREQ naming a client whose session it resumes.
pub(crate) struct SnOpening {
    proto: Arc<SnProtocol>,
    peer: Peer,
    dout: DatagramOutput,
    stage: Stage,
    /// The CONNECT being answered.
    connect: Option<(Flags, u16, ByteString)>,
    opened: Option<Opening>,
}

impl SnOpening {
    pub(crate) fn new(proto: Arc<SnProtocol>, peer: Peer) -> SnOpening {
        SnOpening {
            proto,
            peer,
            dout: DatagramOutput::default(),
            stage: Stage::Connect,
            connect: None,
            opened: None,
        }
    }

    fn send(&mut self, m: &Message) {
        if let Some(d) = self.proto.encode(m) {
            self.dout.push(d);
        }
    }

    /// The CONNECT (and its will) is complete: the request for the connect pipeline.
    fn request(&mut self, will: Option<WillSpec>) -> Option<Opened> {
        let (flags, duration, client_id) = self.connect.take()?;
        // `clientinfo_override` (reference §1.6): by default the CONNECT's ClientId; an
        // empty one becomes a random id.
        let Identity {
            clientid,
            username,
            password,
        } = identity::identity(&self.proto.ctx.settings(), &client_id);
        let mut info = client_info(&self.proto, &self.peer, &clientid, username, duration);
        info.clean_start = flags.clean_session;
        info.expiry_interval = expiry_of(flags.clean_session);
        self.opened = Some(Opening::Connect {
            flags,
            duration,
            will,
        });
        Some(Opened::Connect(ConnectRequest {
            info,
            password: password.map(Bytes::from),
            listener_mountpoint: self.proto.settings.listener_mountpoint.clone(),
            limits: session_limits(&self.proto),
            resume: false,
        }))
    }

    /// A PINGREQ naming a client from an address without a client: wake its session here.
    fn wake(&mut self, named: &str) -> Option<Opened> {
        // The PINGREQ names the client as its CONNECT did: the same override applies.
        let clientid = identity::clientid_of(&self.proto.ctx.settings(), named)?;
        let data = self.proto.clients.lock().get(&clientid).cloned()?;
        if !self.proto.ctx.session_exists(&clientid) {
            return None;
        }
        let info = {
            let mut d = data.lock();
            // A PINGREQ proves nothing about who sent it. Where clients authenticate,
            // only the address the client's CONNECT authenticated from may wake its
            // session; a session moves to a new address by a new CONNECT.
            if d.addr != Some(self.peer.addr) && self.proto.ctx.authn_required(&self.peer.listener)
            {
                tracing::debug!(%clientid, peer = %self.peer.addr, "mqtt-sn PINGREQ from another address refused: the listener requires authentication");
                self.proto.ctx.metrics.packets_dropped.inc();
                return None;
            }
            d.addr = Some(self.peer.addr);
            let mut info = client_info(
                &self.proto,
                &self.peer,
                &clientid,
                d.username.clone(),
                d.keepalive,
            );
            info.clean_start = false;
            info.expiry_interval = expiry_of(d.clean);
            info.is_superuser = d.is_superuser;
            info
        };
        self.opened = Some(Opening::Wake { data });
        Some(Opened::Connect(ConnectRequest {
            info,
            password: None,
            listener_mountpoint: self.proto.settings.listener_mountpoint.clone(),
            limits: session_limits(&self.proto),
            resume: true,
        }))
    }
}

/// The session expiry of a client: 0 for a clean session, else EMQX's 2 h.
fn expiry_of(clean: bool) -> u32 {
    if clean {
        0
    } else {
        PERSISTENT_EXPIRY_SECS
    }
}

/// EMQX: the zone's session settings with a receive maximum of 1 (reference §5.2).
fn session_limits(proto: &SnProtocol) -> SessionLimits {
    SessionLimits {
        max_inflight: 1,
        ..proto.settings.session
    }
}

impl DatagramOpening for SnOpening {
    type Channel = SnChannel;

    fn output(&mut self) -> &mut DatagramOutput {
        &mut self.dout
    }

    fn open(&mut self, datagram: Bytes, _peer: &Peer) -> Result<Option<Opened>, ()> {
        let msg = match decode(datagram) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(peer = %self.peer.addr, error = %e, "mqtt-sn frame error");
                self.proto.ctx.metrics.packets_frame_error.inc();
                return Ok(None);
            }
        };
        self.proto.ctx.metrics.received(kind(&msg));
        match (&self.stage, msg) {
            (
                Stage::Connect,
                Message::Connect {
                    flags,
                    duration,
                    client_id,
                    ..
                },
            ) => {
                self.connect = Some((flags, duration, client_id));
                if flags.will {
                    self.send(&Message::WillTopicReq);
                    self.stage = Stage::WillTopic;
                    return Ok(None);
                }
                Ok(self.request(None))
            }
            (
                Stage::Connect,
                Message::PingReq {
                    client_id: Some(id),
                },
            ) => self.wake(&id).map(Some).ok_or(()),
            (Stage::WillTopic, Message::WillTopic { flags, topic }) => match topic {
                None => Ok(self.request(None)),
                Some(topic) => {
                    // A will topic is a topic name like any other: no wildcards, within
                    // `mqtt.max_topic_levels` (refused as "not supported").
                    if self.proto.ctx.check_topic_name(&topic).is_err() {
                        self.send(&Message::ConnAck {
                            rc: ReturnCode::NotSupported,
                        });
                        return Err(());
                    }
                    self.send(&Message::WillMsgReq);
                    self.stage = Stage::WillMsg(flags, topic);
                    Ok(None)
                }
            },
            (Stage::WillTopic, Message::Connect { .. }) => {
                self.send(&Message::WillTopicReq);
                Ok(None)
            }
            (Stage::WillMsg(flags, topic), Message::WillMsg { payload }) => {
                let mut w = will_of(*flags, topic.clone());
                w.payload = payload;
                Ok(self.request(Some(w)))
            }
            (Stage::WillMsg(..), Message::WillTopic { .. }) => {
                self.send(&Message::WillMsgReq);
                Ok(None)
            }
            _ => Err(()),
        }
    }

    /// CONNACK 0x80 (EMQX maps only `not_authorized`), or 0x85 for a client id or user
    /// name that would widen or move the mountpoint.
    fn refused(&mut self, reason: &str) {
        if matches!(self.opened, Some(Opening::Wake { .. })) {
            return;
        }
        let rc = ReturnCode::Other(if reason == "client_identifier_not_valid" {
            0x85
        } else {
            0x80
        });
        self.send(&Message::ConnAck { rc });
    }

    fn admitted(self, session: Session, now: Instant) -> SnChannel {
        let SnOpening {
            proto,
            peer,
            dout,
            opened,
            ..
        } = self;
        let clientid = session.info.clientid.clone();
        let (data, state, asleep, connack) = match opened {
            Some(Opening::Connect {
                flags,
                duration,
                will,
            }) => {
                let data = proto.clients.lock().entry(clientid).or_default().clone();
                {
                    let mut d = data.lock();
                    // A CONNECT starts a new topic-id space; a clean session forgets
                    // everything.
                    d.registry.clear();
                    d.username = session.info.username.clone();
                    d.will = will;
                    d.asleep = None;
                    d.keepalive = duration;
                    d.clean = flags.clean_session;
                    d.is_superuser = session.info.is_superuser;
                    d.addr = Some(peer.addr);
                }
                (data, State::Connected, None, true)
            }
            Some(Opening::Wake { data }) => {
                let asleep = data.lock().asleep;
                let state = if asleep.is_some() {
                    State::Awake
                } else {
                    State::Connected
                };
                tracing::debug!(%clientid, peer = %peer.addr, "mqtt-sn client re-attached from a new address");
                (data, state, asleep, false)
            }
            None => unreachable!("admitted without an opening"),
        };
        let limits = session_limits(&proto);
        let mut channel = SnChannel {
            proto,
            session,
            dout,
            now,
            data,
            state,
            last_recv: now,
            asleep_until: asleep.map(|s| now + Duration::from_secs(s as u64)),
            pending: VecDeque::new(),
            reg_wait: None,
            next_msg_id: 0,
            out: Vec::new(),
            ack_pending: false,
            congested: false,
            retry_interval: Duration::from_millis(limits.retry_interval_ms),
            rel_check_every: rel_check_period(&limits),
            sent_at: HashMap::new(),
            retry_at: None,
            rel_check_at: None,
        };
        if connack {
            channel.out.push(Message::ConnAck {
                rc: ReturnCode::Accepted,
            });
            if channel.session.session_present && channel.proto.settings.subs_resume {
                channel.reregister_subscriptions();
            }
        } else if state == State::Connected {
            channel.out.push(Message::PingResp);
        }
        if channel.state != State::Asleep {
            channel.drain_outbox();
        }
        channel.sync_will();
        channel.after_step();
        // A resumed session may hold inbound QoS 2 messages awaiting PUBREL.
        if channel.session.cell.lock().session.awaiting_rel_len() > 0 {
            channel.arm_rel_check();
        }
        channel.encode_out();
        channel
    }
}

impl SnChannel {
    /// After every handled event: PINGRESP to an awake client with nothing left, and the
    /// resend timer.
    fn after_step(&mut self) {
        self.check_awake_done();
        self.arm_retry();
    }

    /// Encode what the step queued into the driver's output.
    fn encode_out(&mut self) {
        let mut queued = std::mem::take(&mut self.out);
        for m in queued.drain(..) {
            let ack = matches!(
                m,
                Message::PubAck { .. } | Message::PubRec { .. } | Message::PubComp { .. }
            );
            if let Some(d) = self.proto.encode(&m) {
                inc(&self.session.stats.send_pkt);
                self.dout.datagrams.push((d, ack));
            }
        }
        // The emptied queue keeps its capacity for the next step.
        self.out = queued;
        self.dout.ack |= std::mem::take(&mut self.ack_pending);
        self.dout.congested |= std::mem::take(&mut self.congested);
    }

    /// Run one event's handler, then the bookkeeping every step does.
    fn step(
        &mut self,
        now: Instant,
        f: impl FnOnce(&mut SnChannel) -> Result<(), CloseReason>,
    ) -> Result<(), CloseReason> {
        self.now = now;
        let result = f(self);
        if result.is_ok() {
            self.after_step();
        }
        self.encode_out();
        result
    }
}

impl DatagramChannel for SnChannel {
    fn session(&self) -> &Session {
        &self.session
    }

    fn output(&mut self) -> &mut DatagramOutput {
        &mut self.dout
    }

    fn on_datagram(&mut self, datagram: Bytes, now: Instant) -> Result<(), CloseReason> {
        let msg = match decode(datagram) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(clientid = %self.session.info.clientid, error = %e, "mqtt-sn frame error");
                self.proto.ctx.metrics.packets_frame_error.inc();
                return Ok(());
            }
        };
        self.proto.ctx.metrics.received(kind(&msg));
        self.step(now, |c| {
            c.last_recv = now;
            inc(&c.session.stats.recv_pkt);
            c.handle(msg)
        })
    }

    fn on_deliveries(&mut self, now: Instant) -> Result<(), CloseReason> {
        self.step(now, |c| {
            if c.state != State::Asleep {
                c.drain_outbox();
            }
            Ok(())
        })
    }

    fn on_call(&mut self, call: ClientCall) {
        let now = self.now;
        let _ = self.step(now, |c| {
            c.answer_call(call);
            Ok(())
        });
    }

    fn on_timer(&mut self, now: Instant) -> Result<(), CloseReason> {
        self.step(now, SnChannel::tick)
    }

    fn next_timer(&self) -> Option<Instant> {
        Some(self.next_deadline())
    }

    fn goodbye(&mut self, _reason: CloseReason) {}

    /// The will unless the client said goodbye or another connection took over; a clean
    /// session's MQTT-SN state is forgotten.
    fn on_close(&mut self, reason: CloseReason) -> (Option<Will>, u32) {
        let taken_over = reason.taken_over();
        let (will, clean) = {
            let mut d = self.data.lock();
            let will = if taken_over || reason == CloseReason::Normal {
                None
            } else {
                d.will.take()
            };
            (will, d.clean)
        };
        let will = will.map(|w| self.will_message(w));
        if clean && !taken_over {
            let mut clients = self.proto.clients.lock();
            if clients
                .get(&self.session.info.clientid)
                .is_some_and(|d| Arc::ptr_eq(d, &self.data))
            {
                clients.remove(&self.session.info.clientid);
            }
        }
        if !taken_over {
            self.data.lock().asleep = None;
        }
        (will, expiry_of(clean))
    }
}

#[cfg(test)]
mod tests {
    //! The MQTT-SN channel driven by hand: scripted datagrams in, datagrams out, a clock
    //! that moves only when the test says. No socket.

    use super::*;
    use crate::MqttSnSettings;
    use bytes::BytesMut;
    use junction_broker::{system_message, Broker};
    use junction_codec_mqttsn::encode;
    use junction_gateway::{CommonSettings, GatewayCtx};

    struct Script {
        broker: Arc<Broker>,
        channel: SnChannel,
        t0: Instant,
    }

    fn bytes(m: Message) -> Bytes {
        let mut b = BytesMut::new();
        encode(&m, &mut b).unwrap();
        b.freeze()
    }

    impl Script {
        async fn connect(duration: u16, settings: MqttSnSettings) -> Script {
            let broker = Broker::new(Default::default());
            let ctx = GatewayCtx::new(
                "mqttsn",
                "mqtt-sn",
                crate::protocol::frame::NAMES,
                broker.clone(),
                CommonSettings::default(),
            );
            let proto = Arc::new(SnProtocol::new(ctx.clone(), Arc::new(settings)));
            let peer = Peer {
                addr: "127.0.0.1:5000".parse().unwrap(),
                listener: "mqttsn:udp:default".into(),
                sockport: 1884,
                identity: None,
            };
            let mut opening = SnOpening::new(proto, peer.clone());
            let connect = Message::Connect {
                flags: Flags {
                    clean_session: true,
                    ..Flags::default()
                },
                protocol_id: 1,
                duration,
                client_id: "dev".into(),
            };
            let Ok(Some(Opened::Connect(request))) = opening.open(bytes(connect), &peer) else {
                panic!("a CONNECT without a will opens at once")
            };
            let admission = ctx.connect(request).await.expect("admitted");
            let t0 = Instant::now();
            let channel = opening.admitted(admission.session, t0);
            let mut s = Script {
                broker,
                channel,
                t0,
            };
            assert_eq!(
                s.output(),
                [Message::ConnAck {
                    rc: ReturnCode::Accepted
                }]
            );
            s
        }

        fn at(&self, ms: u64) -> Instant {
            self.t0 + Duration::from_millis(ms)
        }

        fn output(&mut self) -> Vec<Message> {
            std::mem::take(&mut self.channel.output().datagrams)
                .into_iter()
                .map(|(d, _)| decode(d).unwrap())
                .collect()
        }

        fn send(&mut self, m: Message, ms: u64) -> Result<(), CloseReason> {
            self.channel.on_datagram(bytes(m), self.at(ms))
        }

        fn subscribe(&mut self, topic: Topic, qos: SnQoS, ms: u64) {
            self.send(
                Message::Subscribe {
                    flags: Flags {
                        qos,
                        topic_id_type: topic.id_type(),
                        ..Flags::default()
                    },
                    msg_id: 1,
                    topic,
                },
                ms,
            )
            .unwrap();
            assert!(matches!(self.output()[..], [Message::SubAck { .. }]));
        }

        fn publish(&mut self, topic: &str, payload: &'static str, qos: QoS, ms: u64) {
            let mut m = system_message(topic.into(), payload, false);
            m.qos = qos;
            self.broker.publish(m);
            self.channel.on_deliveries(self.at(ms)).unwrap();
        }
    }

    #[tokio::test]
    async fn silence_past_one_and_a_half_keepalives_ends_with_disconnect() {
        let mut s = Script::connect(10, MqttSnSettings::default()).await;
        assert_eq!(s.channel.next_timer(), Some(s.at(15_000)));
        s.send(Message::PingReq { client_id: None }, 9_000).unwrap();
        assert_eq!(s.output(), [Message::PingResp]);
        assert_eq!(s.channel.next_timer(), Some(s.at(24_000)));
        s.channel.on_timer(s.at(23_999)).unwrap();
        assert_eq!(
            s.channel.on_timer(s.at(24_000)),
            Err(CloseReason::KeepaliveTimeout)
        );
        assert_eq!(s.output(), [Message::Disconnect { duration: None }]);
    }

    #[tokio::test]
    async fn a_sleeping_client_gets_its_messages_when_it_wakes_and_times_out_asleep() {
        let mut s = Script::connect(10, MqttSnSettings::default()).await;
        s.subscribe(Topic::Short(*b"sl"), SnQoS::AtMostOnce, 0);
        s.send(Message::Disconnect { duration: Some(60) }, 1_000)
            .unwrap();
        assert_eq!(s.output(), [Message::Disconnect { duration: None }]);
        // Asleep: nothing is sent, and the keepalive no longer runs.
        s.publish("sl", "while asleep", QoS::AtMostOnce, 2_000);
        assert!(s.output().is_empty());
        assert_eq!(s.channel.next_timer(), Some(s.at(61_000)));
        // Awake: the message, then PINGRESP, and asleep again.
        s.send(
            Message::PingReq {
                client_id: Some("dev".into()),
            },
            30_000,
        )
        .unwrap();
        let out = s.output();
        assert!(
            matches!(&out[..], [Message::Publish { data, .. }, Message::PingResp] if &data[..] == b"while asleep"),
            "{out:?}"
        );
        assert_eq!(
            s.channel.on_timer(s.at(61_000)),
            Err(CloseReason::AsleepTimeout)
        );
    }

    #[tokio::test]
    async fn an_unacknowledged_qos1_delivery_is_resent_with_dup_after_retry_interval() {
        let settings = MqttSnSettings {
            session: SessionLimits {
                retry_interval_ms: 2_000,
                ..SessionLimits::default()
            },
            ..MqttSnSettings::default()
        };
        let mut s = Script::connect(60, settings).await;
        s.subscribe(Topic::Short(*b"rt"), SnQoS::AtLeastOnce, 0);
        s.publish("rt", "once", QoS::AtLeastOnce, 1_000);
        let out = s.output();
        let [Message::Publish { flags, msg_id, .. }] = &out[..] else {
            panic!("{out:?}")
        };
        assert!(!flags.dup);
        let id = *msg_id;
        assert_eq!(s.channel.next_timer(), Some(s.at(3_000)));
        s.channel.on_timer(s.at(3_000)).unwrap();
        let out = s.output();
        assert!(
            matches!(&out[..], [Message::Publish { flags, msg_id, .. }] if flags.dup && *msg_id == id),
            "{out:?}"
        );
        // Acknowledged: no more resends.
        s.send(
            Message::PubAck {
                topic_id: u16::from_be_bytes(*b"rt"),
                msg_id: id,
                rc: ReturnCode::Accepted,
            },
            3_500,
        )
        .unwrap();
        s.channel.on_timer(s.at(10_000)).unwrap();
        assert!(s.output().is_empty());
    }

    #[tokio::test]
    async fn a_register_nobody_answers_is_retried_then_the_client_is_disconnected() {
        let mut s = Script::connect(600, MqttSnSettings::default()).await;
        s.subscribe(Topic::Name("wild/#".into()), SnQoS::AtMostOnce, 0);
        s.publish("wild/card", "x", QoS::AtMostOnce, 100);
        let out = s.output();
        assert!(
            matches!(&out[..], [Message::Register { topic_name, .. }] if topic_name == "wild/card"),
            "{out:?}"
        );
        let mut t = 100;
        for _ in 0..REGISTER_MAX_RETRIES {
            t += REGISTER_RETRY.as_millis() as u64;
            assert_eq!(s.channel.next_timer(), Some(s.at(t)));
            s.channel.on_timer(s.at(t)).unwrap();
            assert!(matches!(s.output()[..], [Message::Register { .. }]));
        }
        // A "congestion" answer does not push the deadline back.
        s.send(
            Message::RegAck {
                topic_id: 1025,
                msg_id: 1,
                rc: ReturnCode::Congestion,
            },
            t + 10,
        )
        .unwrap();
        t += REGISTER_RETRY.as_millis() as u64;
        assert_eq!(
            s.channel.on_timer(s.at(t)),
            Err(CloseReason::RetriesExhausted)
        );
        assert_eq!(s.output(), [Message::Disconnect { duration: None }]);
    }
}
