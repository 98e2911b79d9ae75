//! Sans-IO MQTT session state.
//!
//! A [`Session`] holds everything MQTT says must outlive a network connection: the
//! subscriptions, the outbound in-flight window (QoS 1 and 2 messages sent and not yet
//! acknowledged), the queue of messages waiting for a free in-flight slot or for the client
//! to come back, and the inbound QoS 2 packet ids awaiting PUBREL. It takes `now` (ms) as an
//! argument and returns [`Outbound`] actions; it never touches a socket or a clock, so it can
//! be tested with scripted input and serialized as plain data.

use bytestring::ByteString;
use junction_types::{QoS, SharedMessage};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Options of one subscription as the session keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubOptions {
    /// Maximum QoS granted.
    pub qos: QoS,
    /// Do not deliver messages published by this same client (5.0).
    pub no_local: bool,
    /// Keep the RETAIN flag as published on forwarded messages (5.0).
    pub retain_as_published: bool,
    /// 0: send retained on subscribe, 1: only if the subscription is new, 2: never.
    pub retain_handling: u8,
    /// Subscription identifier (5.0), sent back with each matching message.
    pub subscription_id: Option<u32>,
}

impl Default for SubOptions {
    fn default() -> Self {
        SubOptions {
            qos: QoS::AtMostOnce,
            no_local: false,
            retain_as_published: false,
            retain_handling: 0,
            subscription_id: None,
        }
    }
}

/// A message on its way to this session's client, with what the subscription decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The routed message (shared with every other receiver).
    pub message: SharedMessage,
    /// QoS to deliver at: min(published QoS, subscription QoS), or upgraded.
    pub qos: QoS,
    /// RETAIN flag to send.
    pub retain: bool,
    /// Subscription identifiers of the matching subscriptions (5.0).
    pub subscription_ids: Vec<u32>,
}

/// What the session asks the connection to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// Send a PUBLISH. `packet_id` is `None` for QoS 0.
    Publish {
        /// Packet id for QoS 1/2.
        packet_id: Option<u16>,
        /// DUP flag (a resend).
        dup: bool,
        /// What to send.
        delivery: Delivery,
    },
    /// Send a PUBREL (resend after reconnect or retry).
    PubRel(u16),
}

/// State of one outbound in-flight message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InflightState {
    /// PUBLISH sent, waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    WaitAck,
    /// PUBREC received and PUBREL sent, waiting for PUBCOMP (QoS 2).
    WaitComp,
}

/// One outbound in-flight message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inflight {
    /// The delivery.
    pub delivery: Delivery,
    /// Where the QoS flow stands.
    pub state: InflightState,
    /// When it was last sent (ms).
    pub sent_at_ms: u64,
}

/// Limits that shape a session, from `mqtt.*` config and the client's CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionLimits {
    /// In-flight window: min(`mqtt.max_inflight`, client's Receive Maximum).
    pub max_inflight: u16,
    /// `mqtt.max_mqueue_len`; 0 means unbounded.
    pub max_mqueue_len: usize,
    /// `mqtt.mqueue_store_qos0`: queue QoS 0 messages while the client is offline.
    pub mqueue_store_qos0: bool,
    /// `mqtt.retry_interval` in ms; 0 disables resending while connected.
    pub retry_interval_ms: u64,
    /// `mqtt.max_awaiting_rel`: inbound QoS 2 messages awaiting PUBREL; 0 means unbounded.
    pub max_awaiting_rel: usize,
    /// `mqtt.await_rel_timeout` in ms.
    pub await_rel_timeout_ms: u64,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            max_inflight: 32,
            max_mqueue_len: 1000,
            mqueue_store_qos0: true,
            retry_interval_ms: 30_000,
            max_awaiting_rel: 100,
            await_rel_timeout_ms: 300_000,
        }
    }
}

/// Why a message did not reach the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The message queue was full (`mqueue_full`).
    QueueFull,
    /// The message expired before it could be sent (`expired`).
    Expired,
    /// A QoS 0 message for an offline session that does not queue QoS 0 (`qos0_msg`).
    Qos0Offline,
}

/// A message the session dropped, for the `message.dropped` counters and hooks.
#[derive(Debug, Clone)]
pub struct Dropped {
    /// The dropped delivery.
    pub delivery: Delivery,
    /// Why.
    pub reason: DropReason,
}

/// Result of acknowledging an outbound packet id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckResult {
    /// The flow finished (PUBACK / PUBCOMP): the message is delivered.
    Completed(Delivery),
    /// PUBREC accepted: a PUBREL must be sent.
    Released,
    /// No in-flight message has that id in the right state [MQTT 5 reason 0x92].
    NotFound,
}

/// Result of an inbound QoS 2 PUBLISH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncomingQos2 {
    /// First time this packet id is seen: route the message, answer PUBREC.
    New,
    /// The packet id is already awaiting PUBREL (a DUP resend): answer PUBREC, do not route.
    Duplicate,
    /// Too many messages awaiting PUBREL (`mqtt.max_awaiting_rel`): reason 0x93.
    TooMany,
    /// The client has more QoS 2 messages unacknowledged (no PUBCOMP yet) than the Receive
    /// Maximum the server gave it: DISCONNECT 0x93 [MQTT-3.3.4-8], §4.9.
    OverReceiveMaximum,
}

/// What [`Session::restore`] rebuilds a session from.
#[derive(Debug, Clone, Default)]
pub struct RestoredParts {
    /// When the session was created (ms).
    pub created_at_ms: u64,
    /// Session expiry interval in seconds.
    pub expiry_interval_secs: u32,
    /// Subscriptions by filter.
    pub subscriptions: Vec<(String, SubOptions)>,
    /// In-flight messages by packet id, in send order.
    pub inflight: Vec<(u16, Inflight)>,
    /// Queued deliveries, oldest first.
    pub queued: Vec<Delivery>,
    /// Inbound QoS 2 packet ids awaiting PUBREL, with when each arrived (ms).
    pub awaiting_rel: Vec<(u16, u64)>,
}

/// The state of one MQTT session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Client identifier the session belongs to.
    pub client_id: ByteString,
    /// Subscriptions by the filter as subscribed (including any `$share/<group>/` prefix).
    pub subscriptions: HashMap<String, SubOptions>,
    /// Session expiry interval in seconds (`u32::MAX` = never).
    pub expiry_interval_secs: u32,
    /// When the session was created (ms).
    pub created_at_ms: u64,
    /// Limits in force.
    pub limits: SessionLimits,
    inflight: BTreeMap<u16, Inflight>,
    /// Packet ids in send order, so resends keep the original order [MQTT-4.6.0-1].
    inflight_order: VecDeque<u16>,
    mqueue: VecDeque<Delivery>,
    /// Sequence number of `mqueue[0]`; entry `i` has `mqueue_head + i`. Popping from the
    /// front advances it, pushing at the back extends the range: a persister that saw
    /// the range before writes only the difference.
    mqueue_head: u64,
    /// Bumped whenever the queue changes other than at its ends in FIFO order (a drop
    /// from the middle, a push at the front): sequence numbers restart meaning then.
    mqueue_epoch: u64,
    /// How many queued deliveries are QoS 0: a full queue looks for a QoS 0 victim only
    /// when it holds one, so a queue full of QoS 1/2 messages drops in constant time.
    mqueue_qos0: usize,
    awaiting_rel: BTreeMap<u16, u64>,
    next_packet_id: u16,
    /// Deliveries the full queue dropped (a figure for the API, not kept).
    #[serde(skip)]
    mqueue_dropped: u64,
}

/// Where a session's message queue stands, for incremental persistence
/// ([`Session::queue_window`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueWindow {
    /// Changes when sequence numbers were reassigned; a persister rewrites the queue.
    pub epoch: u64,
    /// Sequence number of the oldest queued delivery.
    pub head: u64,
    /// Number of queued deliveries (sequence numbers `head .. head + len`).
    pub len: usize,
}

impl Session {
    /// A new, empty session.
    pub fn new(client_id: ByteString, limits: SessionLimits, now_ms: u64) -> Self {
        Session {
            client_id,
            subscriptions: HashMap::new(),
            expiry_interval_secs: 0,
            created_at_ms: now_ms,
            limits,
            inflight: BTreeMap::new(),
            inflight_order: VecDeque::new(),
            mqueue: VecDeque::new(),
            mqueue_head: 0,
            mqueue_epoch: 0,
            mqueue_qos0: 0,
            awaiting_rel: BTreeMap::new(),
            next_packet_id: 1,
            mqueue_dropped: 0,
        }
    }

    /// Number of outbound messages in flight.
    pub fn inflight_len(&self) -> usize {
        self.inflight.len()
    }

    /// Number of queued messages.
    pub fn mqueue_len(&self) -> usize {
        self.mqueue.len()
    }

    /// Deliveries the full queue dropped since the session was created or restored.
    pub fn mqueue_dropped(&self) -> u64 {
        self.mqueue_dropped
    }

    /// Number of inbound QoS 2 packet ids awaiting PUBREL.
    pub fn awaiting_rel_len(&self) -> usize {
        self.awaiting_rel.len()
    }

    /// The in-flight messages in send order.
    pub fn inflight(&self) -> impl Iterator<Item = (u16, &Inflight)> {
        self.inflight_order
            .iter()
            .filter_map(|id| self.inflight.get(id).map(|e| (*id, e)))
    }

    /// The queued deliveries, oldest first.
    pub fn queued(&self) -> impl Iterator<Item = &Delivery> {
        self.mqueue.iter()
    }

    /// The queue's sequence-number range (see [`QueueWindow`]).
    pub fn queue_window(&self) -> QueueWindow {
        QueueWindow {
            epoch: self.mqueue_epoch,
            head: self.mqueue_head,
            len: self.mqueue.len(),
        }
    }

    /// The queued deliveries from sequence number `seq` on (nothing if `seq` is past
    /// the end; from the head if it is before it).
    pub fn queued_from(&self, seq: u64) -> impl Iterator<Item = (u64, &Delivery)> {
        let skip = seq.saturating_sub(self.mqueue_head) as usize;
        let head = self.mqueue_head;
        self.mqueue
            .iter()
            .enumerate()
            .skip(skip)
            .map(move |(i, d)| (head + i as u64, d))
    }

    fn pop_queue_front(&mut self) -> Option<Delivery> {
        let d = self.mqueue.pop_front()?;
        self.mqueue_head += 1;
        self.count_qos0_out(&d);
        Some(d)
    }

    fn count_qos0_out(&mut self, d: &Delivery) {
        if d.qos == QoS::AtMostOnce {
            self.mqueue_qos0 = self.mqueue_qos0.saturating_sub(1);
        }
    }

    fn count_qos0_in(&mut self, d: &Delivery) {
        if d.qos == QoS::AtMostOnce {
            self.mqueue_qos0 += 1;
        }
    }

    /// Inbound QoS 2 packet ids awaiting PUBREL, with when each arrived (ms), by id.
    pub fn awaiting_rel(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        let mut ids: Vec<(u16, u64)> = self.awaiting_rel.iter().map(|(k, v)| (*k, *v)).collect();
        ids.sort_unstable();
        ids.into_iter()
    }

    /// Rebuild a session from its persisted parts (after a restart). In-flight messages
    /// keep their packet ids and are resent, in the order given, when a connection
    /// attaches ([`Session::resume`]); packet ids for new messages continue after them.
    pub fn restore(client_id: ByteString, limits: SessionLimits, parts: RestoredParts) -> Self {
        let mut session = Session::new(client_id, limits, parts.created_at_ms);
        session.expiry_interval_secs = parts.expiry_interval_secs;
        session.subscriptions = parts.subscriptions.into_iter().collect();
        for (id, entry) in parts.inflight {
            if id == 0 || session.inflight.contains_key(&id) {
                continue;
            }
            session.inflight.insert(id, entry);
            session.inflight_order.push_back(id);
        }
        if let Some(last) = session.inflight_order.back() {
            session.next_packet_id = if *last == u16::MAX { 1 } else { *last + 1 };
        }
        session.mqueue = parts.queued.into();
        session.mqueue_qos0 = session
            .mqueue
            .iter()
            .filter(|d| d.qos == QoS::AtMostOnce)
            .count();
        session.awaiting_rel = parts.awaiting_rel.into_iter().collect();
        session
    }

    fn alloc_packet_id(&mut self) -> Option<u16> {
        if self.inflight.len() >= u16::MAX as usize {
            return None;
        }
        loop {
            let id = self.next_packet_id;
            self.next_packet_id = if id == u16::MAX { 1 } else { id + 1 };
            if !self.inflight.contains_key(&id) {
                return Some(id);
            }
        }
    }

    fn window_open(&self) -> bool {
        self.inflight.len() < self.limits.max_inflight.max(1) as usize
    }

    fn send_inflight(&mut self, delivery: Delivery, now_ms: u64, out: &mut Vec<Outbound>) {
        let Some(id) = self.alloc_packet_id() else {
            self.count_qos0_in(&delivery);
            self.mqueue.push_front(delivery);
            self.mqueue_epoch += 1;
            return;
        };
        self.inflight.insert(
            id,
            Inflight {
                delivery: delivery.clone(),
                state: InflightState::WaitAck,
                sent_at_ms: now_ms,
            },
        );
        self.inflight_order.push_back(id);
        out.push(Outbound::Publish {
            packet_id: Some(id),
            dup: false,
            delivery,
        });
    }

    /// Queue a delivery, dropping per `mqtt.max_mqueue_len`: a QoS 0 message goes first,
    /// else the oldest message (EMQX's mqueue behaviour).
    fn enqueue(&mut self, delivery: Delivery, dropped: &mut Vec<Dropped>) {
        let max = self.limits.max_mqueue_len;
        if max > 0 && self.mqueue.len() >= max {
            let first_qos0 = if self.mqueue_qos0 > 0 {
                self.mqueue.iter().position(|d| d.qos == QoS::AtMostOnce)
            } else {
                None
            };
            let victim = match first_qos0 {
                Some(0) => self.pop_queue_front(),
                Some(i) => {
                    self.mqueue_epoch += 1;
                    self.mqueue_qos0 = self.mqueue_qos0.saturating_sub(1);
                    self.mqueue.remove(i)
                }
                None if delivery.qos == QoS::AtMostOnce => {
                    self.mqueue_dropped += 1;
                    dropped.push(Dropped {
                        delivery,
                        reason: DropReason::QueueFull,
                    });
                    return;
                }
                None => self.pop_queue_front(),
            };
            if let Some(d) = victim {
                self.mqueue_dropped += 1;
                dropped.push(Dropped {
                    delivery: d,
                    reason: DropReason::QueueFull,
                });
            }
        }
        self.count_qos0_in(&delivery);
        self.mqueue.push_back(delivery);
    }

    /// Hand a message to the session. `online` says whether a connection is attached: if so,
    /// messages that may be sent now are returned in `out`; the rest are queued.
    pub fn deliver(
        &mut self,
        delivery: Delivery,
        online: bool,
        now_ms: u64,
        out: &mut Vec<Outbound>,
        dropped: &mut Vec<Dropped>,
    ) {
        if delivery.message.is_expired(now_ms) {
            dropped.push(Dropped {
                delivery,
                reason: DropReason::Expired,
            });
            return;
        }
        if delivery.qos == QoS::AtMostOnce {
            if online {
                out.push(Outbound::Publish {
                    packet_id: None,
                    dup: false,
                    delivery,
                });
            } else if self.limits.mqueue_store_qos0 {
                self.enqueue(delivery, dropped);
            } else {
                dropped.push(Dropped {
                    delivery,
                    reason: DropReason::Qos0Offline,
                });
            }
            return;
        }
        if online && self.mqueue.is_empty() && self.window_open() {
            self.send_inflight(delivery, now_ms, out);
        } else {
            self.enqueue(delivery, dropped);
        }
    }

    /// Move queued messages into the in-flight window while it has room (after an ack, or
    /// when the client connects).
    pub fn dequeue(&mut self, now_ms: u64, out: &mut Vec<Outbound>, dropped: &mut Vec<Dropped>) {
        while self.window_open() {
            let Some(delivery) = self.pop_queue_front() else {
                break;
            };
            if delivery.message.is_expired(now_ms) {
                dropped.push(Dropped {
                    delivery,
                    reason: DropReason::Expired,
                });
                continue;
            }
            if delivery.qos == QoS::AtMostOnce {
                out.push(Outbound::Publish {
                    packet_id: None,
                    dup: false,
                    delivery,
                });
            } else {
                self.send_inflight(delivery, now_ms, out);
            }
        }
    }

    fn remove_inflight(&mut self, id: u16) -> Option<Inflight> {
        let entry = self.inflight.remove(&id)?;
        if let Some(pos) = self.inflight_order.iter().position(|x| *x == id) {
            self.inflight_order.remove(pos);
        }
        Some(entry)
    }

    /// PUBACK received for an outbound QoS 1 message.
    pub fn puback(&mut self, id: u16) -> AckResult {
        match self.inflight.get(&id) {
            Some(e) if e.state == InflightState::WaitAck && e.delivery.qos == QoS::AtLeastOnce => {
                let e = self.remove_inflight(id).map(|e| e.delivery);
                e.map_or(AckResult::NotFound, AckResult::Completed)
            }
            _ => AckResult::NotFound,
        }
    }

    /// PUBREC received for an outbound QoS 2 message. `error` is true when the reason code
    /// is 0x80 or above: the flow ends there and the message counts as not delivered.
    pub fn pubrec(&mut self, id: u16, error: bool, now_ms: u64) -> AckResult {
        match self.inflight.get_mut(&id) {
            Some(e) if e.delivery.qos == QoS::ExactlyOnce => {
                if error {
                    let e = self.remove_inflight(id).map(|e| e.delivery);
                    return e.map_or(AckResult::NotFound, AckResult::Completed);
                }
                e.state = InflightState::WaitComp;
                e.sent_at_ms = now_ms;
                AckResult::Released
            }
            _ => AckResult::NotFound,
        }
    }

    /// PUBCOMP received.
    pub fn pubcomp(&mut self, id: u16) -> AckResult {
        match self.inflight.get(&id) {
            Some(e) if e.state == InflightState::WaitComp => {
                let e = self.remove_inflight(id).map(|e| e.delivery);
                e.map_or(AckResult::NotFound, AckResult::Completed)
            }
            _ => AckResult::NotFound,
        }
    }

    /// Drop an in-flight message that could not be sent (e.g. over the client's maximum
    /// packet size [MQTT-3.1.2-25]), freeing its packet id.
    pub fn discard_inflight(&mut self, id: u16) -> Option<Delivery> {
        self.remove_inflight(id).map(|e| e.delivery)
    }

    /// A connection (re)attached: resend every in-flight message in order, PUBLISH with DUP
    /// or PUBREL [MQTT-4.4.0-1], then fill the window from the queue.
    pub fn resume(&mut self, now_ms: u64, out: &mut Vec<Outbound>, dropped: &mut Vec<Dropped>) {
        self.resend_older_than(u64::MAX, now_ms, out);
        self.dequeue(now_ms, out, dropped);
    }

    fn resend_older_than(&mut self, cutoff_ms: u64, now_ms: u64, out: &mut Vec<Outbound>) {
        for id in self.inflight_order.iter() {
            let Some(e) = self.inflight.get_mut(id) else {
                continue;
            };
            if e.sent_at_ms > cutoff_ms {
                continue;
            }
            e.sent_at_ms = now_ms;
            match e.state {
                InflightState::WaitAck => out.push(Outbound::Publish {
                    packet_id: Some(*id),
                    dup: true,
                    delivery: e.delivery.clone(),
                }),
                InflightState::WaitComp => out.push(Outbound::PubRel(*id)),
            }
        }
    }

    /// Resend what has waited longer than `retry_interval`; returns when to call again.
    pub fn retry(&mut self, now_ms: u64, out: &mut Vec<Outbound>) -> Option<u64> {
        let interval = self.limits.retry_interval_ms;
        if interval == 0 || self.inflight.is_empty() {
            return None;
        }
        self.resend_older_than(now_ms.saturating_sub(interval), now_ms, out);
        self.inflight
            .values()
            .map(|e| e.sent_at_ms + interval)
            .min()
    }

    /// An inbound QoS 2 PUBLISH with packet id `id` arrived.
    pub fn incoming_qos2(&mut self, id: u16, now_ms: u64) -> IncomingQos2 {
        if self.awaiting_rel.contains_key(&id) {
            return IncomingQos2::Duplicate;
        }
        let max = self.limits.max_awaiting_rel;
        if max > 0 && self.awaiting_rel.len() >= max {
            return IncomingQos2::TooMany;
        }
        self.awaiting_rel.insert(id, now_ms);
        IncomingQos2::New
    }

    /// [`Session::incoming_qos2`] for an MQTT 5 client that was given `receive_maximum`:
    /// a new packet id past it is [`IncomingQos2::OverReceiveMaximum`]. Only QoS 2 counts:
    /// a QoS 1 PUBLISH is acknowledged as soon as it is routed.
    pub fn incoming_qos2_within(
        &mut self,
        id: u16,
        now_ms: u64,
        receive_maximum: usize,
    ) -> IncomingQos2 {
        if !self.awaiting_rel.contains_key(&id) && self.awaiting_rel.len() >= receive_maximum {
            return IncomingQos2::OverReceiveMaximum;
        }
        self.incoming_qos2(id, now_ms)
    }

    /// PUBREL for an inbound QoS 2 message: true if the id was awaiting release.
    pub fn release(&mut self, id: u16) -> bool {
        self.awaiting_rel.remove(&id).is_some()
    }

    /// Forget inbound QoS 2 ids that waited longer than `await_rel_timeout`; returns how many.
    pub fn expire_awaiting_rel(&mut self, now_ms: u64) -> usize {
        let timeout = self.limits.await_rel_timeout_ms;
        let before = self.awaiting_rel.len();
        self.awaiting_rel
            .retain(|_, at| now_ms.saturating_sub(*at) < timeout);
        before - self.awaiting_rel.len()
    }

    /// Take every queued and in-flight delivery (the session is being discarded).
    pub fn drain_all(&mut self) -> Vec<Delivery> {
        let mut all: Vec<Delivery> = Vec::new();
        let order: Vec<u16> = self.inflight_order.drain(..).collect();
        for id in order {
            if let Some(e) = self.inflight.remove(&id) {
                if e.state == InflightState::WaitAck {
                    all.push(e.delivery);
                }
            }
        }
        self.mqueue_head += self.mqueue.len() as u64;
        self.mqueue_qos0 = 0;
        all.extend(self.mqueue.drain(..));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use junction_types::{Message, MessageProperties};
    use std::sync::Arc;

    fn delivery(id: u64, qos: QoS) -> Delivery {
        Delivery {
            message: Arc::new(Message {
                id,
                topic: "t".into(),
                payload: Bytes::from(format!("m{id}")),
                qos,
                retain: false,
                properties: MessageProperties::default(),
                expires_at_ms: None,
                received_at_ms: 0,
                from: "".into(),
                namespace: "".into(),
            }),
            qos,
            retain: false,
            subscription_ids: vec![],
        }
    }

    fn session(max_inflight: u16, max_mqueue_len: usize) -> Session {
        Session::new(
            "c".into(),
            SessionLimits {
                max_inflight,
                max_mqueue_len,
                ..SessionLimits::default()
            },
            0,
        )
    }

    fn ids(out: &[Outbound]) -> Vec<(Option<u16>, bool, u64)> {
        out.iter()
            .map(|o| match o {
                Outbound::Publish {
                    packet_id,
                    dup,
                    delivery,
                } => (*packet_id, *dup, delivery.message.id),
                Outbound::PubRel(id) => (Some(*id), false, 0),
            })
            .collect()
    }

    #[test]
    fn qos1_window_limits_inflight_and_ack_refills_from_queue() {
        let mut s = session(2, 10);
        let (mut out, mut dropped) = (vec![], vec![]);
        for i in 1..=4 {
            s.deliver(
                delivery(i, QoS::AtLeastOnce),
                true,
                0,
                &mut out,
                &mut dropped,
            );
        }
        assert_eq!(ids(&out), vec![(Some(1), false, 1), (Some(2), false, 2)]);
        assert_eq!((s.inflight_len(), s.mqueue_len()), (2, 2));
        out.clear();
        assert!(matches!(s.puback(1), AckResult::Completed(_)));
        s.dequeue(0, &mut out, &mut dropped);
        assert_eq!(ids(&out), vec![(Some(3), false, 3)]);
        assert_eq!(s.puback(1), AckResult::NotFound);
    }

    #[test]
    fn qos2_flow_goes_through_pubrec_and_pubcomp() {
        let mut s = session(10, 10);
        let (mut out, mut dropped) = (vec![], vec![]);
        s.deliver(
            delivery(1, QoS::ExactlyOnce),
            true,
            0,
            &mut out,
            &mut dropped,
        );
        assert_eq!(
            s.puback(1),
            AckResult::NotFound,
            "QoS 2 is not completed by PUBACK"
        );
        assert_eq!(s.pubcomp(1), AckResult::NotFound, "PUBCOMP before PUBREC");
        assert_eq!(s.pubrec(1, false, 5), AckResult::Released);
        assert!(matches!(s.pubcomp(1), AckResult::Completed(_)));
        assert_eq!(s.inflight_len(), 0);
    }

    #[test]
    fn resume_resends_publish_with_dup_and_pubrel_in_order() {
        let mut s = session(10, 10);
        let (mut out, mut dropped) = (vec![], vec![]);
        s.deliver(
            delivery(1, QoS::ExactlyOnce),
            true,
            0,
            &mut out,
            &mut dropped,
        );
        s.deliver(
            delivery(2, QoS::AtLeastOnce),
            true,
            0,
            &mut out,
            &mut dropped,
        );
        s.pubrec(1, false, 0);
        // Offline now: a further message is queued.
        s.deliver(
            delivery(3, QoS::AtLeastOnce),
            false,
            0,
            &mut out,
            &mut dropped,
        );
        out.clear();
        s.resume(10, &mut out, &mut dropped);
        assert_eq!(
            out,
            vec![
                Outbound::PubRel(1),
                Outbound::Publish {
                    packet_id: Some(2),
                    dup: true,
                    delivery: delivery(2, QoS::AtLeastOnce)
                },
                Outbound::Publish {
                    packet_id: Some(3),
                    dup: false,
                    delivery: delivery(3, QoS::AtLeastOnce)
                },
            ]
        );
    }

    #[test]
    fn a_restored_session_resends_its_inflight_then_its_queue_and_continues_packet_ids() {
        let mut s = session(10, 10);
        let (mut out, mut dropped) = (vec![], vec![]);
        for (i, q) in [(1, QoS::ExactlyOnce), (2, QoS::AtLeastOnce)] {
            s.deliver(delivery(i, q), true, 0, &mut out, &mut dropped);
        }
        s.pubrec(1, false, 0);
        s.deliver(
            delivery(3, QoS::ExactlyOnce),
            false,
            0,
            &mut out,
            &mut dropped,
        );
        s.incoming_qos2(7, 5);
        s.subscriptions.insert("a/#".into(), SubOptions::default());
        let parts = RestoredParts {
            created_at_ms: s.created_at_ms,
            expiry_interval_secs: 300,
            subscriptions: s
                .subscriptions
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            inflight: s.inflight().map(|(id, e)| (id, e.clone())).collect(),
            queued: s.queued().cloned().collect(),
            awaiting_rel: s.awaiting_rel().collect(),
        };
        let mut r = Session::restore("c".into(), s.limits, parts);
        assert_eq!(r.expiry_interval_secs, 300);
        assert_eq!(r.awaiting_rel().collect::<Vec<_>>(), vec![(7, 5)]);
        // The id is still awaiting release: a resend is a duplicate.
        assert_eq!(r.incoming_qos2(7, 6), IncomingQos2::Duplicate);
        out.clear();
        r.resume(10, &mut out, &mut dropped);
        assert_eq!(
            ids(&out),
            vec![(Some(1), false, 0), (Some(2), true, 2), (Some(3), false, 3)]
        );
        assert_eq!(
            r.pubcomp(1),
            AckResult::Completed(delivery(1, QoS::ExactlyOnce))
        );
        assert!(r.subscriptions.contains_key("a/#"));
    }

    #[test]
    fn the_queue_window_slides_in_fifo_order_and_changes_epoch_otherwise() {
        let mut s = session(1, 3);
        let (mut out, mut dropped) = (vec![], vec![]);
        let w0 = s.queue_window();
        for i in 1..=3 {
            s.deliver(
                delivery(i, QoS::AtLeastOnce),
                false,
                0,
                &mut out,
                &mut dropped,
            );
        }
        assert_eq!(s.queue_window(), QueueWindow { len: 3, ..w0 });
        // Full: the oldest goes, at the front.
        s.deliver(
            delivery(4, QoS::AtLeastOnce),
            false,
            0,
            &mut out,
            &mut dropped,
        );
        let w = s.queue_window();
        assert_eq!((w.epoch, w.head, w.len), (w0.epoch, w0.head + 1, 3));
        let seqs: Vec<(u64, u64)> = s
            .queued_from(w.head + 1)
            .map(|(q, d)| (q, d.message.id))
            .collect();
        assert_eq!(seqs, vec![(w.head + 1, 3), (w.head + 2, 4)]);
        // Attaching moves the head into the in-flight window.
        s.resume(0, &mut out, &mut dropped);
        assert_eq!(s.queue_window().head, w.head + 1);
        // A QoS 0 victim from the middle of a full queue renumbers: a new epoch.
        let mut s = session(1, 3);
        for (i, q) in [
            (1, QoS::AtLeastOnce),
            (2, QoS::AtMostOnce),
            (3, QoS::AtLeastOnce),
        ] {
            s.deliver(delivery(i, q), false, 0, &mut out, &mut dropped);
        }
        let before = s.queue_window();
        s.deliver(
            delivery(4, QoS::AtLeastOnce),
            false,
            0,
            &mut out,
            &mut dropped,
        );
        assert_ne!(s.queue_window().epoch, before.epoch);
    }

    #[test]
    fn full_queue_drops_qos0_first_then_oldest() {
        let mut s = session(1, 2);
        let (mut out, mut dropped) = (vec![], vec![]);
        s.deliver(
            delivery(1, QoS::AtMostOnce),
            false,
            0,
            &mut out,
            &mut dropped,
        );
        s.deliver(
            delivery(2, QoS::AtLeastOnce),
            false,
            0,
            &mut out,
            &mut dropped,
        );
        s.deliver(
            delivery(3, QoS::AtLeastOnce),
            false,
            0,
            &mut out,
            &mut dropped,
        );
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].delivery.message.id, 1);
        s.deliver(
            delivery(4, QoS::AtLeastOnce),
            false,
            0,
            &mut out,
            &mut dropped,
        );
        assert_eq!(dropped[1].delivery.message.id, 2);
        let queued: Vec<u64> = s.queued().map(|d| d.message.id).collect();
        assert_eq!(queued, vec![3, 4]);
        assert!(out.is_empty());
    }

    #[test]
    fn a_full_queue_counts_its_qos0_messages_through_every_change() {
        let mut s = session(1, 3);
        let (mut out, mut dropped) = (vec![], vec![]);
        let mut offline = |s: &mut Session, id, qos| {
            s.deliver(delivery(id, qos), false, 0, &mut out, &mut dropped);
            dropped.last().map(|d: &Dropped| d.delivery.message.id)
        };
        offline(&mut s, 2, QoS::AtLeastOnce);
        offline(&mut s, 3, QoS::AtMostOnce);
        offline(&mut s, 4, QoS::AtLeastOnce);
        assert_eq!((s.mqueue_len(), s.mqueue_qos0), (3, 1));
        // Full: the QoS 0 message goes first, from the middle.
        assert_eq!(offline(&mut s, 5, QoS::AtLeastOnce), Some(3));
        assert_eq!(s.mqueue_qos0, 0);
        // No QoS 0 left: the oldest goes, and an incoming QoS 0 is the one dropped.
        assert_eq!(offline(&mut s, 6, QoS::ExactlyOnce), Some(2));
        assert_eq!(offline(&mut s, 7, QoS::AtMostOnce), Some(7));
        let queued: Vec<u64> = s.queued().map(|d| d.message.id).collect();
        assert_eq!((queued, s.mqueue_qos0), (vec![4, 5, 6], 0));
        // A restored session counts again what it was given.
        let parts = RestoredParts {
            queued: vec![delivery(8, QoS::AtMostOnce), delivery(9, QoS::AtLeastOnce)],
            ..RestoredParts::default()
        };
        let r = Session::restore("c".into(), s.limits, parts);
        assert_eq!(r.mqueue_qos0, 1);
        // Taking everything out leaves nothing counted.
        assert_eq!(s.drain_all().len(), 3);
        assert_eq!((s.mqueue_len(), s.mqueue_qos0), (0, 0));
    }

    #[test]
    fn qos0_offline_is_dropped_unless_stored() {
        let mut s = session(1, 2);
        s.limits.mqueue_store_qos0 = false;
        let (mut out, mut dropped) = (vec![], vec![]);
        s.deliver(
            delivery(1, QoS::AtMostOnce),
            false,
            0,
            &mut out,
            &mut dropped,
        );
        assert_eq!(dropped[0].reason, DropReason::Qos0Offline);
    }

    #[test]
    fn expired_messages_are_dropped_not_sent() {
        let mut s = session(1, 5);
        let (mut out, mut dropped) = (vec![], vec![]);
        let mut d = delivery(1, QoS::AtLeastOnce);
        Arc::make_mut(&mut d.message).expires_at_ms = Some(100);
        s.deliver(d, false, 0, &mut out, &mut dropped);
        s.resume(200, &mut out, &mut dropped);
        assert!(out.is_empty());
        assert_eq!(dropped[0].reason, DropReason::Expired);
    }

    #[test]
    fn inbound_qos2_dedups_until_release() {
        let mut s = session(1, 5);
        assert_eq!(s.incoming_qos2(7, 0), IncomingQos2::New);
        assert_eq!(s.incoming_qos2(7, 1), IncomingQos2::Duplicate);
        assert!(s.release(7));
        assert!(!s.release(7));
        assert_eq!(s.incoming_qos2(7, 2), IncomingQos2::New);
    }

    #[test]
    fn awaiting_rel_is_bounded_and_expires() {
        let mut s = session(1, 5);
        s.limits.max_awaiting_rel = 1;
        s.limits.await_rel_timeout_ms = 100;
        assert_eq!(s.incoming_qos2(1, 0), IncomingQos2::New);
        assert_eq!(s.incoming_qos2(2, 0), IncomingQos2::TooMany);
        assert_eq!(s.expire_awaiting_rel(100), 1);
        assert_eq!(s.incoming_qos2(2, 100), IncomingQos2::New);
    }

    #[test]
    fn qos2_past_the_receive_maximum_is_a_protocol_violation_but_a_resend_is_not() {
        let mut s = session(32, 100);
        assert_eq!(s.incoming_qos2_within(1, 0, 2), IncomingQos2::New);
        assert_eq!(s.incoming_qos2_within(2, 0, 2), IncomingQos2::New);
        assert_eq!(s.incoming_qos2_within(2, 0, 2), IncomingQos2::Duplicate);
        assert_eq!(
            s.incoming_qos2_within(3, 0, 2),
            IncomingQos2::OverReceiveMaximum
        );
        assert!(s.release(1));
        assert_eq!(s.incoming_qos2_within(3, 0, 2), IncomingQos2::New);
    }

    #[test]
    fn retry_resends_only_old_entries() {
        let mut s = session(5, 5);
        s.limits.retry_interval_ms = 1000;
        let (mut out, mut dropped) = (vec![], vec![]);
        s.deliver(
            delivery(1, QoS::AtLeastOnce),
            true,
            0,
            &mut out,
            &mut dropped,
        );
        s.deliver(
            delivery(2, QoS::AtLeastOnce),
            true,
            600,
            &mut out,
            &mut dropped,
        );
        out.clear();
        let next = s.retry(1000, &mut out);
        assert_eq!(ids(&out), vec![(Some(1), true, 1)]);
        assert_eq!(next, Some(1600));
    }

    #[test]
    fn packet_ids_skip_ids_in_use_and_wrap() {
        let mut s = session(u16::MAX, 5);
        s.next_packet_id = u16::MAX;
        let (mut out, mut dropped) = (vec![], vec![]);
        s.deliver(
            delivery(1, QoS::AtLeastOnce),
            true,
            0,
            &mut out,
            &mut dropped,
        );
        s.deliver(
            delivery(2, QoS::AtLeastOnce),
            true,
            0,
            &mut out,
            &mut dropped,
        );
        assert_eq!(
            ids(&out),
            vec![(Some(u16::MAX), false, 1), (Some(1), false, 2)]
        );
    }

    #[test]
    fn session_round_trips_through_serde() {
        let mut s = session(5, 5);
        let (mut out, mut dropped) = (vec![], vec![]);
        s.subscriptions.insert("a/#".into(), SubOptions::default());
        s.deliver(
            delivery(1, QoS::ExactlyOnce),
            true,
            0,
            &mut out,
            &mut dropped,
        );
        s.deliver(
            delivery(2, QoS::AtLeastOnce),
            false,
            0,
            &mut out,
            &mut dropped,
        );
        s.incoming_qos2(9, 0);
        let json = serde_json::to_string(&s).unwrap();
        let back: Session = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }
}
