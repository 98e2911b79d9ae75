//! The records the store keeps, independent of the session crate's in-memory layout.
//!
//! A session record refers to messages by id ([`junction_types::Message::id`]); the
//! message itself is stored once in the messages table, however many sessions wait for it.

use junction_types::{Message, QoS};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// One persistent session as stored: everything MQTT says outlives the connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSession {
    /// Client-id namespace: empty for MQTT, the gateway name for gateway clients.
    pub namespace: String,
    /// Client identifier.
    pub client_id: String,
    /// Session expiry interval in seconds (`u32::MAX` = never).
    pub expiry_interval_secs: u32,
    /// When the session may be discarded, ms since the Unix epoch; `None` while the
    /// client is connected or when it never expires. [`crate::Store::sweep_expired`]
    /// removes the session once `now_ms >= expiry_deadline_ms`.
    pub expiry_deadline_ms: Option<u64>,
    /// When the session was created, ms since the Unix epoch.
    pub created_at_ms: u64,
    /// Subscriptions, in the order the broker keeps them.
    pub subscriptions: Vec<StoredSubscription>,
    /// Outbound QoS 1/2 messages sent and not yet acknowledged, in send order.
    pub inflight: Vec<StoredInflight>,
    /// Messages queued for the client (offline, or the in-flight window is full).
    pub queued: Vec<StoredDelivery>,
    /// Inbound QoS 2 packet ids awaiting PUBREL.
    pub awaiting_rel: Vec<AwaitingRel>,
    /// The will message, if the client set one.
    pub will: Option<StoredWill>,
}

impl StoredSession {
    /// An empty session record for `namespace` / `client_id`.
    pub fn new(namespace: impl Into<String>, client_id: impl Into<String>) -> Self {
        StoredSession {
            namespace: namespace.into(),
            client_id: client_id.into(),
            expiry_interval_secs: 0,
            expiry_deadline_ms: None,
            created_at_ms: 0,
            subscriptions: Vec::new(),
            inflight: Vec::new(),
            queued: Vec::new(),
            awaiting_rel: Vec::new(),
            will: None,
        }
    }

    /// Ids of every message this record refers to (in-flight, queued, will), each once.
    pub fn message_ids(&self) -> BTreeSet<u64> {
        self.inflight
            .iter()
            .map(|i| i.delivery.message_id)
            .chain(self.queued.iter().map(|d| d.message_id))
            .chain(self.will.iter().map(|w| w.message_id))
            .collect()
    }

    /// True if the session may be discarded at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        matches!(self.expiry_deadline_ms, Some(t) if now_ms >= t)
    }
}

/// One subscription and its options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSubscription {
    /// The filter as subscribed (including any `$share/<group>/` prefix).
    pub filter: String,
    /// Maximum QoS granted.
    pub qos: QoS,
    /// Do not deliver messages published by this same client (5.0).
    pub no_local: bool,
    /// Keep the RETAIN flag as published (5.0).
    pub retain_as_published: bool,
    /// Retain handling 0, 1 or 2 (5.0).
    pub retain_handling: u8,
    /// Subscription identifier (5.0).
    pub subscription_id: Option<u32>,
}

/// A message on its way to the client, by reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredDelivery {
    /// Id of the message in the messages table.
    pub message_id: u64,
    /// QoS to deliver at.
    pub qos: QoS,
    /// RETAIN flag to send.
    pub retain: bool,
    /// Subscription identifiers of the matching subscriptions (5.0).
    pub subscription_ids: Vec<u32>,
}

/// Where an outbound QoS 1/2 flow stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InflightStage {
    /// PUBLISH sent, waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    WaitAck,
    /// PUBREL sent, waiting for PUBCOMP (QoS 2).
    WaitComp,
}

/// One outbound in-flight message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredInflight {
    /// The packet id it was sent with.
    pub packet_id: u16,
    /// Where the flow stands.
    pub stage: InflightStage,
    /// When it was last sent, ms since the Unix epoch.
    pub sent_at_ms: u64,
    /// What was sent.
    pub delivery: StoredDelivery,
}

/// An inbound QoS 2 packet id awaiting PUBREL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwaitingRel {
    /// The packet id.
    pub packet_id: u16,
    /// When the PUBLISH arrived, ms since the Unix epoch (for `mqtt.await_rel_timeout`).
    pub received_at_ms: u64,
}

/// A will message and when it is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredWill {
    /// Id of the will message in the messages table.
    pub message_id: u64,
    /// When to publish it, ms since the Unix epoch: the disconnect time plus the will
    /// delay; `None` while the client is connected.
    pub publish_at_ms: Option<u64>,
    /// The Will Delay Interval, seconds: counted from the restart for a will whose
    /// connection the broker's stop ended (`publish_at_ms` is `None` then).
    pub delay_secs: u32,
}

/// What [`crate::Store::sweep_expired`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Sessions removed because their expiry deadline passed.
    pub sessions: usize,
    /// Messages removed: expired ones, and those only the removed sessions referred to.
    pub messages: usize,
    /// Retained entries removed because their message expired.
    pub retained: usize,
    /// Will messages of the removed sessions that had not expired: the session ended, so
    /// the broker publishes them now ([MQTT-3.1.3-9]). They are no longer in the store.
    pub wills: Vec<Message>,
}
