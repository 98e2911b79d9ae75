//! One MQTT-SN client: a task fed with the datagrams of one peer address.

use crate::listener::Shared;
use bytes::Bytes;
use bytestring::ByteString;
use junction_broker::{Close, KickReason, SessionCell, Will};
use junction_codec_mqttsn::{Flags, Message, QoS as SnQoS, ReturnCode, Topic};
use junction_gateway::{ClientInfo, ConnStats, Mountpoint};
use junction_session::{AckResult, IncomingQos2, Outbound, SessionLimits, SubOptions};
use junction_types::{now_ms, MessageProperties, QoS};
use parking_lot::Mutex;
use rand::Rng;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Time allowed for the CONNECT dialogue when the gateway sets no `idle_timeout`.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
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
#[derive(Debug, Default)]
pub(crate) struct Registry {
    by_name: HashMap<String, u16>,
    by_id: HashMap<u16, String>,
    next: u32,
}

impl Registry {
    /// The id of `name`, allocating one; `None` when ids are exhausted.
    fn register(&mut self, name: &str) -> Option<u16> {
        if let Some(id) = self.by_name.get(name) {
            return Some(*id);
        }
        let next = self.next.max(FIRST_DYNAMIC_ID);
        if next > 0xFFFF {
            return None;
        }
        self.next = next + 1;
        let id = next as u16;
        self.by_name.insert(name.to_string(), id);
        self.by_id.insert(id, name.to_string());
        Some(id)
    }

    fn remove(&mut self, name: &str) {
        if let Some(id) = self.by_name.remove(name) {
            self.by_id.remove(&id);
        }
    }

    fn clear(&mut self) {
        self.by_name.clear();
        self.by_id.clear();
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
    will: Option<WillSpec>,
    /// Sleep duration while asleep.
    asleep: Option<u16>,
    keepalive: u16,
    clean: bool,
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

/// How a connection ended.
#[derive(Debug)]
enum Exit {
    /// The listener stopped.
    Closed,
    /// DISCONNECT without duration.
    Disconnected,
    KeepaliveTimeout,
    AsleepTimeout,
    RegisterRetries,
    Kicked(KickReason),
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

struct Conn {
    shared: Arc<Shared>,
    peer: SocketAddr,
    conn_id: u64,
    info: ClientInfo,
    stats: Arc<ConnStats>,
    cell: Arc<SessionCell>,
    mountpoint: Mountpoint,
    data: Arc<Mutex<ClientData>>,
    state: State,
    last_recv: Instant,
    asleep_until: Option<Instant>,
    /// Deliveries taken from the outbox, held while a REGISTER is outstanding.
    pending: VecDeque<Outbound>,
    reg_wait: Option<RegWait>,
    next_msg_id: u16,
    out: Vec<Message>,
}

/// Serve one peer until it disconnects, times out or is taken over.
pub(crate) async fn run(
    shared: Arc<Shared>,
    peer: SocketAddr,
    task: u64,
    mut rx: mpsc::Receiver<Message>,
) {
    let conn = Box::pin(handshake(&shared, peer, &mut rx)).await;
    if let Some((mut conn, kick_rx, registry_rx)) = conn {
        let exit = conn.run(&mut rx, kick_rx, registry_rx).await;
        shared.remove_peer(peer, task);
        conn.finish(exit).await;
    } else {
        shared.remove_peer(peer, task);
    }
}

type Accept = (
    Conn,
    oneshot::Receiver<KickReason>,
    oneshot::Receiver<KickReason>,
);

/// Receive the next message before `deadline`.
async fn recv_until(rx: &mut mpsc::Receiver<Message>, deadline: Instant) -> Option<Message> {
    tokio::time::timeout_at(deadline, rx.recv())
        .await
        .ok()
        .flatten()
}

/// The CONNECT dialogue (with WILLTOPIC / WILLMSG), or a PINGREQ(client id) re-attaching a
/// known session from a new address.
async fn handshake(
    shared: &Arc<Shared>,
    peer: SocketAddr,
    rx: &mut mpsc::Receiver<Message>,
) -> Option<Accept> {
    let idle = shared.ctx.settings().idle_timeout;
    let idle = if idle.is_zero() {
        DEFAULT_IDLE_TIMEOUT
    } else {
        idle
    };
    let deadline = Instant::now() + idle;
    match recv_until(rx, deadline).await? {
        Message::Connect {
            flags,
            duration,
            client_id,
            ..
        } => {
            let mut will = None;
            if flags.will {
                shared.send(peer, &Message::WillTopicReq).await;
                let topic = loop {
                    match recv_until(rx, deadline).await? {
                        Message::WillTopic { flags, topic } => break topic.map(|t| (flags, t)),
                        Message::Connect { .. } => {
                            shared.send(peer, &Message::WillTopicReq).await;
                        }
                        _ => return None,
                    }
                };
                if let Some((wflags, topic)) = topic {
                    shared.send(peer, &Message::WillMsgReq).await;
                    let payload = loop {
                        match recv_until(rx, deadline).await? {
                            Message::WillMsg { payload } => break payload,
                            Message::WillTopic { .. } => {
                                shared.send(peer, &Message::WillMsgReq).await;
                            }
                            _ => return None,
                        }
                    };
                    let mut w = will_of(wflags, topic);
                    w.payload = payload;
                    will = Some(w);
                }
            }
            let clientid = if client_id.is_empty() {
                let id: String = rand::rng()
                    .sample_iter(rand::distr::Alphanumeric)
                    .take(16)
                    .map(char::from)
                    .collect();
                ByteString::from(id)
            } else {
                client_id
            };
            let clean = flags.clean_session;
            let data = {
                let mut clients = shared.clients.lock();
                let d = clients.entry(clientid.clone()).or_default().clone();
                d
            };
            {
                let mut d = data.lock();
                // A CONNECT starts a new topic-id space; a clean session forgets everything.
                d.registry.clear();
                d.will = will;
                d.asleep = None;
                d.keepalive = duration;
                d.clean = clean;
            }
            let (conn, kick_rx, registry_rx, present) =
                attach(shared, peer, clientid, clean, clean, data, State::Connected);
            let mut conn = conn;
            conn.out.push(Message::ConnAck {
                rc: ReturnCode::Accepted,
            });
            if present && shared.settings.subs_resume {
                conn.reregister_subscriptions();
            }
            Some((conn, kick_rx, registry_rx))
        }
        Message::PingReq {
            client_id: Some(clientid),
        } => {
            let data = shared.clients.lock().get(&clientid).cloned()?;
            shared.ctx.broker.lookup_in(shared.ctx.name, &clientid)?;
            let (clean, asleep) = {
                let d = data.lock();
                (d.clean, d.asleep)
            };
            let state = if asleep.is_some() {
                State::Awake
            } else {
                State::Connected
            };
            let (mut conn, kick_rx, registry_rx, _) =
                attach(shared, peer, clientid, clean, false, data, state);
            conn.asleep_until = asleep.map(|s| Instant::now() + Duration::from_secs(s as u64));
            if state == State::Connected {
                conn.out.push(Message::PingResp);
            }
            tracing::debug!(clientid = %conn.info.clientid, %peer, "mqtt-sn client re-attached from a new address");
            Some((conn, kick_rx, registry_rx))
        }
        _ => None,
    }
}

/// Open (or take over) the session and register the client.
fn attach(
    shared: &Arc<Shared>,
    peer: SocketAddr,
    clientid: ByteString,
    clean: bool,
    clean_start: bool,
    data: Arc<Mutex<ClientData>>,
    state: State,
) -> (
    Conn,
    oneshot::Receiver<KickReason>,
    oneshot::Receiver<KickReason>,
    bool,
) {
    let ctx = &shared.ctx;
    ctx.metrics.inc("client.connect");
    let mountpoint = ctx.mountpoint_for(
        shared.settings.listener_mountpoint.as_deref(),
        &clientid,
        None,
    );
    let expiry = if clean { 0 } else { PERSISTENT_EXPIRY_SECS };
    let conn_id = ctx.broker.next_conn_id();
    let (kick_tx, kick_rx) = oneshot::channel();
    let limits = SessionLimits {
        max_inflight: 1,
        ..SessionLimits::default()
    };
    let opened = ctx.open_session(&clientid, clean_start, expiry, limits, conn_id, kick_tx);
    let keepalive = data.lock().keepalive;
    let info = ClientInfo {
        clientid: clientid.clone(),
        username: None,
        protocol: ctx.protocol,
        proto_ver: "1.2".to_string(),
        peername: peer,
        sockport: shared.sockport,
        listener: shared.listener.clone(),
        mountpoint: mountpoint.as_str().to_string(),
        keepalive: keepalive as u32,
        clean_start: clean,
        expiry_interval: expiry,
        connected_at: now_ms(),
        is_superuser: false,
        extras: Default::default(),
    };
    let stats = Arc::new(ConnStats::default());
    let (registry_tx, registry_rx) = oneshot::channel();
    ctx.connected(info.clone(), stats.clone(), conn_id, registry_tx);
    ctx.metrics.inc("client.connack");
    let conn = Conn {
        shared: shared.clone(),
        peer,
        conn_id,
        info,
        stats,
        cell: opened.cell,
        mountpoint,
        data,
        state,
        last_recv: Instant::now(),
        asleep_until: None,
        pending: VecDeque::new(),
        reg_wait: None,
        next_msg_id: 0,
        out: Vec::new(),
    };
    (conn, kick_rx, registry_rx, opened.session_present)
}

impl Conn {
    async fn flush(&mut self) {
        for m in std::mem::take(&mut self.out) {
            if self.shared.send(self.peer, &m).await {
                inc(&self.stats.send_pkt);
            }
        }
    }

    fn msg_id(&mut self) -> u16 {
        self.next_msg_id = self.next_msg_id.wrapping_add(1).max(1);
        self.next_msg_id
    }

    fn next_deadline(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(86_400);
        let mut at = far;
        let ka = self.data.lock().keepalive;
        if self.state != State::Asleep && ka > 0 {
            at = at.min(self.last_recv + Duration::from_millis(ka as u64 * 1500));
        }
        if self.state != State::Connected {
            if let Some(t) = self.asleep_until {
                at = at.min(t);
            }
        }
        if let Some(r) = &self.reg_wait {
            at = at.min(r.sent_at + REGISTER_RETRY);
        }
        at
    }

    async fn run(
        &mut self,
        rx: &mut mpsc::Receiver<Message>,
        mut kick_rx: oneshot::Receiver<KickReason>,
        mut registry_rx: oneshot::Receiver<KickReason>,
    ) -> Exit {
        if self.state != State::Asleep {
            self.drain_outbox();
        }
        self.check_awake_done();
        self.flush().await;
        loop {
            let deadline = self.next_deadline();
            let step: Result<(), Exit> = tokio::select! {
                biased;
                k = &mut kick_rx => Err(Exit::Kicked(k.unwrap_or(KickReason::Administrative))),
                k = &mut registry_rx => Err(Exit::Kicked(k.unwrap_or(KickReason::Administrative))),
                m = rx.recv() => match m {
                    None => Err(Exit::Closed),
                    Some(m) => {
                        self.last_recv = Instant::now();
                        inc(&self.stats.recv_pkt);
                        self.handle(m)
                    }
                },
                _ = self.cell.notified(), if self.state != State::Asleep => {
                    self.drain_outbox();
                    Ok(())
                }
                _ = tokio::time::sleep_until(deadline) => self.on_timer(),
            };
            if step.is_ok() {
                self.check_awake_done();
            }
            self.flush().await;
            if let Err(e) = step {
                return e;
            }
        }
    }

    fn on_timer(&mut self) -> Result<(), Exit> {
        let now = Instant::now();
        let ka = self.data.lock().keepalive;
        if self.state != State::Asleep
            && ka > 0
            && now >= self.last_recv + Duration::from_millis(ka as u64 * 1500)
        {
            self.out.push(Message::Disconnect { duration: None });
            return Err(Exit::KeepaliveTimeout);
        }
        if self.state != State::Connected && self.asleep_until.is_some_and(|t| now >= t) {
            return Err(Exit::AsleepTimeout);
        }
        if let Some(r) = &mut self.reg_wait {
            if now >= r.sent_at + REGISTER_RETRY {
                if r.retries >= REGISTER_MAX_RETRIES {
                    self.out.push(Message::Disconnect { duration: None });
                    return Err(Exit::RegisterRetries);
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
        Ok(())
    }

    /// Awake: once everything queued was delivered and acknowledged, PINGRESP and sleep
    /// again.
    fn check_awake_done(&mut self) {
        if self.state != State::Awake || !self.pending.is_empty() || self.reg_wait.is_some() {
            return;
        }
        let idle = {
            let st = self.cell.lock();
            st.outbox.is_empty() && st.session.inflight_len() == 0 && st.session.mqueue_len() == 0
        };
        if idle {
            self.out.push(Message::PingResp);
            self.state = State::Asleep;
        }
    }

    fn handle(&mut self, m: Message) -> Result<(), Exit> {
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
            Message::PubAck { msg_id, rc, .. } => {
                let r = self.cell.lock().session.puback(msg_id);
                if rc != ReturnCode::Accepted {
                    tracing::debug!(clientid = %self.info.clientid, ?rc, "PUBACK with an error");
                }
                self.acked(r, "packets.puback.missed");
            }
            Message::PubRec { msg_id } => {
                let r = self.cell.lock().session.pubrec(msg_id, false, now_ms());
                match r {
                    AckResult::Released => self.out.push(Message::PubRel { msg_id }),
                    _ => self.shared.ctx.metrics.inc("packets.pubrec.missed"),
                }
            }
            Message::PubComp { msg_id } => {
                let r = self.cell.lock().session.pubcomp(msg_id);
                self.acked(r, "packets.pubcomp.missed");
            }
            Message::PubRel { msg_id } => {
                if !self.cell.lock().session.release(msg_id) {
                    self.shared.ctx.metrics.inc("packets.pubrel.missed");
                }
                self.out.push(Message::PubComp { msg_id });
            }
            Message::Subscribe {
                flags,
                msg_id,
                topic,
            } => self.on_subscribe(flags, msg_id, topic),
            Message::Unsubscribe { msg_id, topic, .. } => {
                self.shared.ctx.metrics.inc("client.unsubscribe");
                if let Some(filter) = self.filter_of(&topic) {
                    self.shared
                        .ctx
                        .unsubscribe(&self.cell, &self.mountpoint, &filter);
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
                self.asleep_until = Some(Instant::now() + Duration::from_secs(d as u64));
                self.data.lock().asleep = Some(d);
            }
            Message::Disconnect { duration: None } => {
                self.out.push(Message::Disconnect { duration: None });
                return Err(Exit::Disconnected);
            }
            Message::WillTopicUpd { flags, topic } => {
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
                self.out.push(Message::WillTopicResp {
                    rc: ReturnCode::Accepted,
                });
            }
            Message::WillMsgUpd { payload } => {
                if let Some(w) = &mut self.data.lock().will {
                    w.payload = payload;
                }
                self.out.push(Message::WillMsgResp {
                    rc: ReturnCode::Accepted,
                });
            }
            Message::WillTopic { flags, topic } => {
                // Late will dialogue message: treat like an update, without an answer.
                let mut d = self.data.lock();
                d.will = topic.map(|t| will_of(flags, t));
            }
            Message::WillMsg { payload } => {
                if let Some(w) = &mut self.data.lock().will {
                    w.payload = payload;
                }
            }
            other => {
                tracing::debug!(clientid = %self.info.clientid, msg = other.name(), "unexpected mqtt-sn message ignored");
            }
        }
        Ok(())
    }

    /// A QoS 1/2 flow towards the client ended: count it and send what is next.
    fn acked(&mut self, r: AckResult, missed: &'static str) {
        match r {
            AckResult::Completed(_) => {
                self.shared.ctx.metrics.inc("messages.acked");
                {
                    let mut guard = self.cell.lock();
                    let st = &mut *guard;
                    let mut dropped = Vec::new();
                    st.session.dequeue(now_ms(), &mut st.outbox, &mut dropped);
                }
                if self.state != State::Asleep {
                    self.drain_outbox();
                }
            }
            _ => self.shared.ctx.metrics.inc(missed),
        }
    }

    fn on_register(&mut self, msg_id: u16, name: &str) {
        let (topic_id, rc) = if junction_topic::is_wildcard(name)
            || junction_topic::validate_topic_name(name).is_err()
        {
            (0, ReturnCode::NotSupported)
        } else if let Some(id) = self.shared.predefined_by_name.get(name) {
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
        if r.msg_id != msg_id {
            return;
        }
        match rc {
            ReturnCode::Accepted => {
                let name = std::mem::take(&mut r.name);
                let id = r.topic_id;
                self.reg_wait = None;
                let mut d = self.data.lock();
                d.registry.by_id.insert(id, name.clone());
                d.registry.by_name.insert(name, id);
            }
            ReturnCode::Congestion => {
                // Retried by the timer.
                r.sent_at = Instant::now();
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
                    } if self.mountpoint.unmount(&delivery.message.topic) == name => {
                        if let Some(id) = packet_id {
                            self.cell.lock().session.discard_inflight(*id);
                        }
                        self.shared.ctx.metrics.inc("delivery.dropped");
                        false
                    }
                    _ => true,
                });
                self.pending = held;
                let mut guard = self.cell.lock();
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
                .shared
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
        if flags.qos == SnQoS::MinusOne && !self.shared.settings.enable_qos3 {
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
        if !self.shared.ctx.authorize_publish(&self.info, &name) {
            self.out.push(puback(ReturnCode::Other(0x80)));
            return;
        }
        let qos = sn_qos(flags.qos);
        if qos == QoS::ExactlyOnce {
            let r = self.cell.lock().session.incoming_qos2(msg_id, now_ms());
            match r {
                IncomingQos2::New => {}
                IncomingQos2::Duplicate => {
                    if flags.dup {
                        // A retransmission whose PUBREC was lost.
                        self.out.push(Message::PubRec { msg_id });
                    } else {
                        self.shared.ctx.metrics.inc("packets.publish.inuse");
                        self.out.push(puback(ReturnCode::NotSupported));
                    }
                    return;
                }
                IncomingQos2::TooMany => {
                    self.shared
                        .ctx
                        .metrics
                        .inc("messages.dropped.receive_maximum");
                    self.out.push(puback(ReturnCode::Congestion));
                    return;
                }
            }
        }
        inc(&self.stats.recv_msg);
        self.shared.ctx.metrics.inc("messages.received");
        self.shared.ctx.publish(
            &self.info,
            &self.mountpoint,
            &name,
            data,
            qos,
            flags.retain,
            MessageProperties::default(),
        );
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.out.push(puback(ReturnCode::Accepted)),
            QoS::ExactlyOnce => self.out.push(Message::PubRec { msg_id }),
        }
    }

    /// The filter named by a SUBSCRIBE / UNSUBSCRIBE topic.
    fn filter_of(&self, topic: &Topic) -> Option<String> {
        match topic {
            Topic::Name(n) => Some(n.to_string()),
            Topic::Predefined(id) => self.shared.predefined_by_id.get(id).cloned(),
            Topic::Short(b) => std::str::from_utf8(b).ok().map(str::to_string),
            Topic::Id(_) | Topic::Reserved(_) => None,
        }
    }

    fn on_subscribe(&mut self, flags: Flags, msg_id: u16, topic: Topic) {
        self.shared.ctx.metrics.inc("client.subscribe");
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
            Topic::Predefined(id) => match self.shared.predefined_by_id.get(id) {
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
        if junction_topic::parse_filter(&filter).is_err() {
            self.out.push(suback(0, ReturnCode::InvalidTopicId));
            return;
        }
        if !self.shared.ctx.authorize_subscribe(&self.info, &filter) {
            self.out.push(suback(0, ReturnCode::Other(0x80)));
            return;
        }
        let topic_id = match &topic {
            Topic::Name(_) if !junction_topic::is_wildcard(&filter) => {
                if let Some(id) = self.shared.predefined_by_name.get(&filter) {
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
        let opts = SubOptions {
            qos,
            ..SubOptions::default()
        };
        // SUBACK first, then any retained message the subscription brings.
        self.out.push(suback(topic_id, ReturnCode::Accepted));
        if self
            .shared
            .ctx
            .subscribe(&self.cell, &self.mountpoint, &filter, opts)
            .is_err()
        {
            if let Some(Message::SubAck { rc, topic_id, .. }) = self.out.last_mut() {
                *rc = ReturnCode::InvalidTopicId;
                *topic_id = 0;
            }
            return;
        }
        if self.state != State::Asleep {
            self.drain_outbox();
        }
    }

    /// `subs_resume`: REGISTER every non-wildcard subscribed topic before the replay.
    fn reregister_subscriptions(&mut self) {
        let filters: Vec<String> = self
            .cell
            .lock()
            .session
            .subscriptions
            .keys()
            .map(|f| self.mountpoint.unmount(f).to_string())
            .filter(|f| !junction_topic::is_wildcard(f))
            .collect();
        let mut d = self.data.lock();
        for f in filters {
            if self.shared.predefined_by_name.contains_key(&f) || f.len() == 2 {
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
    fn drain_outbox(&mut self) {
        let mut v = Vec::new();
        self.cell.take_outbox(self.conn_id, &mut v);
        self.pending.extend(v);
        self.pump();
    }

    fn pump(&mut self) {
        while self.reg_wait.is_none() {
            let Some(o) = self.pending.pop_front() else {
                break;
            };
            match o {
                Outbound::PubRel(id) => self.out.push(Message::PubRel { msg_id: id }),
                Outbound::Publish {
                    packet_id,
                    dup,
                    delivery,
                } => {
                    let name = self.mountpoint.unmount(&delivery.message.topic).to_string();
                    let topic = if let Some(id) = self.shared.predefined_by_name.get(&name) {
                        Some(Topic::Predefined(*id))
                    } else if let Some(id) = self.data.lock().registry.by_name.get(&name) {
                        Some(Topic::Id(*id))
                    } else if name.len() == 2 {
                        let b = name.as_bytes();
                        Some(Topic::Short([b[0], b[1]]))
                    } else {
                        None
                    };
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
                            self.shared.ctx.metrics.inc("messages.delivered");
                            inc(&self.stats.send_msg);
                        }
                        None => {
                            let id = self.data.lock().registry.register(&name);
                            let Some(topic_id) = id else {
                                self.shared.ctx.metrics.inc("delivery.dropped");
                                if let Some(pid) = packet_id {
                                    self.cell.lock().session.discard_inflight(pid);
                                }
                                continue;
                            };
                            // Registered only once the client acknowledges it.
                            self.data.lock().registry.remove(&name);
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
                                sent_at: Instant::now(),
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

    /// Hand the session back to the broker (with the will unless the client said goodbye
    /// or another connection took over) and unregister.
    async fn finish(mut self, exit: Exit) {
        let reason = match &exit {
            Exit::Closed => "sock_closed",
            Exit::Disconnected => "normal",
            Exit::KeepaliveTimeout => "rejected_keepalive_timeout",
            Exit::AsleepTimeout => "asleep_timeout",
            Exit::RegisterRetries => "reached_max_retry_times",
            Exit::Kicked(KickReason::TakenOver) => "discarded",
            Exit::Kicked(KickReason::Administrative) => "kicked",
            Exit::Kicked(KickReason::Shutdown) => "shutdown",
        };
        self.flush().await;
        let taken_over = matches!(exit, Exit::Kicked(KickReason::TakenOver));
        let (will, clean) = {
            let mut d = self.data.lock();
            let will = if taken_over || matches!(exit, Exit::Disconnected) {
                None
            } else {
                d.will.take()
            };
            (will, d.clean)
        };
        let will = will.map(|w| Will {
            message: junction_types::Message {
                id: 0,
                topic: self.mountpoint.mount(&w.topic).into(),
                payload: w.payload,
                qos: w.qos,
                retain: w.retain,
                properties: MessageProperties::default(),
                expires_at_ms: None,
                received_at_ms: now_ms(),
                from: self.info.clientid.clone(),
                namespace: ByteString::from_static(self.shared.ctx.name),
            },
            delay_secs: 0,
        });
        tracing::debug!(clientid = %self.info.clientid, %reason, "mqtt-sn client disconnected");
        self.shared.ctx.broker.close_session(
            &self.cell,
            self.conn_id,
            Close {
                expiry_interval_secs: if clean { 0 } else { PERSISTENT_EXPIRY_SECS },
                will,
            },
        );
        if clean && !taken_over {
            let mut clients = self.shared.clients.lock();
            if clients
                .get(&self.info.clientid)
                .is_some_and(|d| Arc::ptr_eq(d, &self.data))
            {
                clients.remove(&self.info.clientid);
            }
        }
        if !taken_over {
            self.data.lock().asleep = None;
        }
        self.shared.ctx.metrics.inc("session.terminated");
        self.shared
            .ctx
            .disconnected(&self.info, self.conn_id, reason);
    }
}
