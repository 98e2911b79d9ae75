//! Value types shared by every Junction crate: QoS, messages and client identity.
//!
//! Nothing here does IO; everything is cheap to clone (`Bytes`, `ByteString`, `Arc`).

use bytes::Bytes;
use bytestring::ByteString;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

mod client;
pub mod metrics;
pub mod time;
pub use client::ClientInfo;

/// MQTT quality of service level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum QoS {
    /// At most once (0).
    AtMostOnce = 0,
    /// At least once (1).
    AtLeastOnce = 1,
    /// Exactly once (2).
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS for a wire value, `None` for 3 and above.
    pub fn from_u8(v: u8) -> Option<QoS> {
        match v {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }

    /// The wire value.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// A user property (MQTT 5.0 key/value pair), passed through unchanged.
pub type UserProperty = (ByteString, ByteString);

/// The MQTT 5.0 properties of a message that travel with it from publisher to subscriber.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageProperties {
    /// Payload format indicator (0 bytes, 1 UTF-8).
    pub payload_format_indicator: Option<u8>,
    /// Content type.
    pub content_type: Option<ByteString>,
    /// Response topic for request/response.
    pub response_topic: Option<ByteString>,
    /// Correlation data for request/response.
    pub correlation_data: Option<Bytes>,
    /// User properties, in order.
    pub user_properties: Vec<UserProperty>,
}

impl MessageProperties {
    /// True when no property is set.
    pub fn is_empty(&self) -> bool {
        self.payload_format_indicator.is_none()
            && self.content_type.is_none()
            && self.response_topic.is_none()
            && self.correlation_data.is_none()
            && self.user_properties.is_empty()
    }
}

/// A published application message as the broker routes it.
///
/// It is shared by reference (`Arc<Message>`) between all the sessions it is delivered to,
/// so a fan-out to many subscribers copies no payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Unique id of this message within the node (monotonic).
    pub id: u64,
    /// The topic it was published to (after mountpoint and alias resolution).
    pub topic: ByteString,
    /// The payload.
    pub payload: Bytes,
    /// QoS it was published with.
    pub qos: QoS,
    /// Retain flag as published.
    pub retain: bool,
    /// MQTT 5.0 pass-through properties.
    pub properties: MessageProperties,
    /// Absolute expiry deadline, milliseconds since the Unix epoch (from message expiry interval).
    pub expires_at_ms: Option<u64>,
    /// When the broker received it, milliseconds since the Unix epoch.
    pub received_at_ms: u64,
    /// Client id of the publisher (for no-local), empty for broker-originated messages.
    pub from: ByteString,
    /// Client-id namespace of the publisher: empty for MQTT, the gateway name (`stomp`,
    /// `mqttsn`, …) for gateway clients. Client ids are unique only within a namespace.
    #[serde(default)]
    pub namespace: ByteString,
}

impl Message {
    /// True if the message has expired at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        matches!(self.expires_at_ms, Some(t) if now_ms >= t)
    }

    /// Remaining message expiry interval in seconds at `now_ms` (MQTT-3.3.2-6), if any.
    pub fn remaining_expiry_secs(&self, now_ms: u64) -> Option<u32> {
        self.expires_at_ms
            .map(|t| (t.saturating_sub(now_ms).div_ceil(1000)).min(u32::MAX as u64) as u32)
    }
}

impl Message {
    /// A copy whose topic, payload and properties live in allocations of their own.
    ///
    /// Messages decoded from the network share the connection's read buffer; one that is
    /// kept for long (a retained message, a will) is detached so that it does not keep a
    /// whole read buffer alive.
    pub fn detached(&self) -> Message {
        fn s(v: &ByteString) -> ByteString {
            ByteString::from(String::from(&v[..]))
        }
        let p = &self.properties;
        Message {
            topic: s(&self.topic),
            payload: Bytes::copy_from_slice(&self.payload),
            properties: MessageProperties {
                payload_format_indicator: p.payload_format_indicator,
                content_type: p.content_type.as_ref().map(s),
                response_topic: p.response_topic.as_ref().map(s),
                correlation_data: p.correlation_data.as_deref().map(Bytes::copy_from_slice),
                user_properties: p
                    .user_properties
                    .iter()
                    .map(|(k, v)| (s(k), s(v)))
                    .collect(),
            },
            from: s(&self.from),
            namespace: s(&self.namespace),
            ..self.clone()
        }
    }
}

/// A shared message.
pub type SharedMessage = Arc<Message>;

/// Milliseconds since the Unix epoch, from the system clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_round_trips_and_rejects_three() {
        for v in 0..3 {
            assert_eq!(QoS::from_u8(v).map(QoS::as_u8), Some(v));
        }
        assert_eq!(QoS::from_u8(3), None);
    }

    #[test]
    fn remaining_expiry_rounds_up() {
        let m = Message {
            id: 1,
            topic: "t".into(),
            payload: Bytes::new(),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: MessageProperties::default(),
            expires_at_ms: Some(10_500),
            received_at_ms: 0,
            from: "".into(),
            namespace: "".into(),
        };
        assert_eq!(m.remaining_expiry_secs(10_000), Some(1));
        assert!(!m.is_expired(10_499));
        assert!(m.is_expired(10_500));
    }
}
