//! The `mqtt { … }` section: protocol limits and session defaults (EMQX 5.x names).

use crate::units::{disabled_or, infinity_or, ByteSize, Duration};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

/// MQTT protocol and session settings, `mqtt { … }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// Largest MQTT packet accepted, in bytes (at most 256MB). Default `"1MB"`.
    pub max_packet_size: ByteSize,
    /// Longest client ID accepted, in characters (at least 23). Default `65535`.
    pub max_clientid_len: u16,
    /// Most levels (`/`-separated parts) a topic may have. Default `128`.
    pub max_topic_levels: u16,
    /// Highest QoS granted to publishes and subscriptions (0, 1 or 2). Default `2`.
    pub max_qos_allowed: u8,
    /// Largest topic alias a client may use (MQTT 5 Topic Alias Maximum). Default `65535`.
    pub max_topic_alias: u16,
    /// Whether retained messages are supported. Default `true`.
    pub retain_available: bool,
    /// Whether wildcard subscriptions (`+`, `#`) are allowed. Default `true`.
    pub wildcard_subscription: bool,
    /// Whether shared subscriptions (`$share/…`) are allowed. Default `true`.
    pub shared_subscription: bool,
    /// Whether exclusive subscriptions (`$exclusive/…`) are allowed. Default `false`.
    pub exclusive_subscription: bool,
    /// Whether a client's own publishes are withheld from its matching subscriptions
    /// (MQTT 3.x; MQTT 5 uses the No Local option). Default `false`.
    pub ignore_loop_deliver: bool,
    /// Whether packets are checked strictly (UTF-8 validity, topic rules). Junction always
    /// is: `false` (EMQX's default, which lets invalid UTF-8 through) is refused ("not
    /// supported yet"). Default `true`.
    pub strict_mode: bool,
    /// How long a new connection may stay silent before sending CONNECT. Default `"15s"`.
    pub idle_timeout: Duration,
    /// A client is dropped after `keepalive × keepalive_multiplier` without a packet.
    /// Default `1.5`.
    pub keepalive_multiplier: f64,
    /// Keep alive imposed on MQTT 5 clients (Server Keep Alive), in seconds;
    /// `None` is `"disabled"` (the client's value is used). Default `"disabled"`.
    #[serde(with = "disabled_or")]
    pub server_keepalive: Option<u16>,
    /// Most subscriptions one client may hold; `None` is `"infinity"`. Default `"infinity"`.
    #[serde(with = "infinity_or")]
    pub max_subscriptions: Option<u32>,
    /// Whether a subscription's QoS upgrades the delivery QoS of lower-QoS messages.
    /// Default `false`.
    pub upgrade_qos: bool,
    /// Most unacknowledged QoS 1/2 messages in flight per session (Receive Maximum).
    /// Default `32`.
    pub max_inflight: u16,
    /// How long to wait for a PUBACK/PUBREC before resending (MQTT 3.x; clean
    /// sessions resend only on reconnect in MQTT 5). Default `"30s"`.
    pub retry_interval: Duration,
    /// Most QoS 2 messages received but not yet released (awaiting PUBREL) per
    /// session; `None` is `"infinity"`. Default `100`.
    #[serde(with = "infinity_or")]
    pub max_awaiting_rel: Option<u32>,
    /// How long a received QoS 2 message waits for its PUBREL before being dropped.
    /// Default `"300s"`.
    pub await_rel_timeout: Duration,
    /// Session expiry for MQTT 3.x clients with `clean_session = false`, and the cap
    /// for MQTT 5 clients' Session Expiry Interval. Default `"2h"`.
    pub session_expiry_interval: Duration,
    /// Most messages queued for an offline or busy session; `None` is `"infinity"`.
    /// Default `1000`.
    #[serde(with = "infinity_or")]
    pub max_mqueue_len: Option<u32>,
    /// Per-topic queue priorities (1 lowest … 255 highest), written
    /// `{"topic/1" = 10, "topic/2" = 8}`; `None` is `"disabled"`. Default `"disabled"`.
    #[serde(with = "priorities")]
    pub mqueue_priorities: Option<BTreeMap<String, u8>>,
    /// Priority of topics not listed in `mqueue_priorities`. Default `"lowest"`.
    pub mqueue_default_priority: MqueueDefaultPriority,
    /// Whether QoS 0 messages are queued for offline sessions too. Default `true`.
    pub mqueue_store_qos0: bool,
    /// Junction key: most payload bytes of QoS 0 messages waiting to be written to one
    /// connected client (one that reads slower than it is sent to); past it they are
    /// dropped and counted (`delivery.dropped.queue_full`), as past `max_mqueue_len`
    /// messages. QoS 1/2 wait in the session, bounded by `max_inflight` and
    /// `max_mqueue_len`. Default `"16MB"`.
    pub max_outbox_bytes: ByteSize,
    /// Whether the username replaces the client ID once authenticated. Default `false`.
    pub use_username_as_clientid: bool,
    /// Which part of a TLS client certificate becomes the username. Default `"disabled"`.
    pub peer_cert_as_username: PeerCertAs,
    /// Which part of a TLS client certificate becomes the client ID. Default `"disabled"`.
    pub peer_cert_as_clientid: PeerCertAs,
    /// Response Information sent in CONNACK to MQTT 5 clients that ask for it;
    /// empty sends none. Default `""`.
    pub response_information: String,
    /// How a shared subscription group picks the member that gets a message.
    /// Default `"round_robin"`.
    pub shared_subscription_strategy: SharedSubscriptionStrategy,
    /// Upper bound on a message's expiry (also applied to messages that set none);
    /// `None` is `"infinity"`. Default `"infinity"`.
    #[serde(with = "infinity_or")]
    pub message_expiry_interval: Option<Duration>,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            max_packet_size: ByteSize::from_mb(1),
            max_clientid_len: 65535,
            max_topic_levels: 128,
            max_qos_allowed: 2,
            max_topic_alias: 65535,
            retain_available: true,
            wildcard_subscription: true,
            shared_subscription: true,
            exclusive_subscription: false,
            ignore_loop_deliver: false,
            strict_mode: true,
            idle_timeout: Duration::from_secs(15),
            keepalive_multiplier: 1.5,
            server_keepalive: None,
            max_subscriptions: None,
            upgrade_qos: false,
            max_inflight: 32,
            retry_interval: Duration::from_secs(30),
            max_awaiting_rel: Some(100),
            await_rel_timeout: Duration::from_secs(300),
            session_expiry_interval: Duration::from_secs(2 * 3600),
            max_mqueue_len: Some(1000),
            mqueue_priorities: None,
            mqueue_default_priority: MqueueDefaultPriority::Lowest,
            mqueue_store_qos0: true,
            max_outbox_bytes: ByteSize::from_mb(16),
            use_username_as_clientid: false,
            peer_cert_as_username: PeerCertAs::Disabled,
            peer_cert_as_clientid: PeerCertAs::Disabled,
            response_information: String::new(),
            shared_subscription_strategy: SharedSubscriptionStrategy::RoundRobin,
            message_expiry_interval: None,
        }
    }
}

/// Priority given to topics missing from `mqtt.mqueue_priorities`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MqueueDefaultPriority {
    /// Above every listed topic.
    Highest,
    /// Below every listed topic.
    #[default]
    Lowest,
}

/// Which part of a TLS client certificate to take as username or client ID.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerCertAs {
    /// Do not use the certificate.
    #[default]
    Disabled,
    /// The subject's Common Name.
    Cn,
    /// The full subject Distinguished Name.
    Dn,
    /// The whole certificate, DER, base64-encoded.
    Crt,
    /// The whole certificate, PEM.
    Pem,
    /// MD5 hash of the DER certificate, hex.
    Md5,
}

/// How a shared subscription group picks the subscriber that receives a message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SharedSubscriptionStrategy {
    /// A random member.
    Random,
    /// Members in turn, one counter per publisher.
    #[default]
    RoundRobin,
    /// Members in turn, one counter per group.
    RoundRobinPerGroup,
    /// The same member until it leaves.
    Sticky,
    /// A member on the local node if any, else random.
    Local,
    /// A member chosen by hashing the topic.
    HashTopic,
    /// A member chosen by hashing the publisher's client ID.
    HashClientid,
}

/// `"disabled"` or a map of topic → priority.
mod priorities {
    use super::*;

    struct PrioritiesVisitor;

    impl<'de> Visitor<'de> for PrioritiesVisitor {
        type Value = Option<BTreeMap<String, u8>>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("\"disabled\" or a map of topic to priority (1..255)")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            if text.trim().eq_ignore_ascii_case("disabled") {
                Ok(None)
            } else {
                Err(E::custom(format!(
                    "invalid value {text:?} (expected \"disabled\" or a map of topic to \
                     priority, e.g. {{ \"t/1\" = 10 }})"
                )))
            }
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            BTreeMap::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<BTreeMap<String, u8>>, D::Error> {
        d.deserialize_any(PrioritiesVisitor)
    }

    pub(super) fn serialize<S: Serializer>(
        value: &Option<BTreeMap<String, u8>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(map) => map.serialize(s),
            None => s.serialize_str("disabled"),
        }
    }
}
