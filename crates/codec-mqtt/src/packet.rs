//! MQTT control packet types, shared by 3.1, 3.1.1 and 5.0.
//!
//! Fields that exist only in MQTT 5.0 (properties, reason codes on acks) are ignored when
//! encoding for 3.x and left at their defaults when decoding 3.x.

use bytes::Bytes;
use bytestring::ByteString;
pub use junction_types::{QoS, UserProperty};

/// Protocol level from the CONNECT variable header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProtocolVersion {
    /// MQTT 3.1 (protocol name "MQIsdp", level 3).
    V3_1,
    /// MQTT 3.1.1 (level 4).
    V3_1_1,
    /// MQTT 5.0 (level 5).
    V5,
}

impl ProtocolVersion {
    /// The protocol level byte.
    pub fn level(self) -> u8 {
        match self {
            ProtocolVersion::V3_1 => 3,
            ProtocolVersion::V3_1_1 => 4,
            ProtocolVersion::V5 => 5,
        }
    }

    /// True for MQTT 5.0.
    pub fn is_v5(self) -> bool {
        self == ProtocolVersion::V5
    }
}

/// Any MQTT control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// CONNECT (1).
    Connect(Box<Connect>),
    /// CONNACK (2).
    ConnAck(ConnAck),
    /// PUBLISH (3).
    Publish(Publish),
    /// PUBACK (4).
    PubAck(PubAck),
    /// PUBREC (5).
    PubRec(PubAck),
    /// PUBREL (6).
    PubRel(PubAck),
    /// PUBCOMP (7).
    PubComp(PubAck),
    /// SUBSCRIBE (8).
    Subscribe(Subscribe),
    /// SUBACK (9).
    SubAck(SubAck),
    /// UNSUBSCRIBE (10).
    Unsubscribe(Unsubscribe),
    /// UNSUBACK (11).
    UnsubAck(UnsubAck),
    /// PINGREQ (12).
    PingReq,
    /// PINGRESP (13).
    PingResp,
    /// DISCONNECT (14).
    Disconnect(Disconnect),
    /// AUTH (15, MQTT 5.0 only).
    Auth(Auth),
}

impl Packet {
    /// A short name of the packet type, for metrics and logs ("connect", "publish", …).
    pub fn kind(&self) -> &'static str {
        match self {
            Packet::Connect(_) => "connect",
            Packet::ConnAck(_) => "connack",
            Packet::Publish(_) => "publish",
            Packet::PubAck(_) => "puback",
            Packet::PubRec(_) => "pubrec",
            Packet::PubRel(_) => "pubrel",
            Packet::PubComp(_) => "pubcomp",
            Packet::Subscribe(_) => "subscribe",
            Packet::SubAck(_) => "suback",
            Packet::Unsubscribe(_) => "unsubscribe",
            Packet::UnsubAck(_) => "unsuback",
            Packet::PingReq => "pingreq",
            Packet::PingResp => "pingresp",
            Packet::Disconnect(_) => "disconnect",
            Packet::Auth(_) => "auth",
        }
    }
}

/// CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// Protocol version requested.
    pub protocol: ProtocolVersion,
    /// Clean start (5.0) / clean session (3.x).
    pub clean_start: bool,
    /// Keep alive in seconds (0 = off).
    pub keep_alive: u16,
    /// Client identifier (may be empty).
    pub client_id: ByteString,
    /// Will message, if the will flag is set.
    pub will: Option<LastWill>,
    /// User name, if the flag is set.
    pub username: Option<ByteString>,
    /// Password, if the flag is set.
    pub password: Option<Bytes>,
    /// MQTT 5.0 properties.
    pub properties: ConnectProperties,
}

/// CONNECT properties (MQTT 5.0 §3.1.2.11).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectProperties {
    /// Session Expiry Interval (0x11), seconds.
    pub session_expiry_interval: Option<u32>,
    /// Receive Maximum (0x21).
    pub receive_maximum: Option<u16>,
    /// Maximum Packet Size (0x27).
    pub maximum_packet_size: Option<u32>,
    /// Topic Alias Maximum (0x22).
    pub topic_alias_maximum: Option<u16>,
    /// Request Response Information (0x19).
    pub request_response_information: Option<u8>,
    /// Request Problem Information (0x17).
    pub request_problem_information: Option<u8>,
    /// User Property (0x26).
    pub user_properties: Vec<UserProperty>,
    /// Authentication Method (0x15).
    pub authentication_method: Option<ByteString>,
    /// Authentication Data (0x16).
    pub authentication_data: Option<Bytes>,
}

/// The will message of a CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWill {
    /// Will topic.
    pub topic: ByteString,
    /// Will payload.
    pub payload: Bytes,
    /// Will QoS.
    pub qos: QoS,
    /// Will retain.
    pub retain: bool,
    /// Will properties (5.0).
    pub properties: WillProperties,
}

/// Will properties (MQTT 5.0 §3.1.3.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WillProperties {
    /// Will Delay Interval (0x18), seconds.
    pub delay_interval: Option<u32>,
    /// Payload Format Indicator (0x01).
    pub payload_format_indicator: Option<u8>,
    /// Message Expiry Interval (0x02), seconds.
    pub message_expiry_interval: Option<u32>,
    /// Content Type (0x03).
    pub content_type: Option<ByteString>,
    /// Response Topic (0x08).
    pub response_topic: Option<ByteString>,
    /// Correlation Data (0x09).
    pub correlation_data: Option<Bytes>,
    /// User Property (0x26).
    pub user_properties: Vec<UserProperty>,
}

/// CONNACK.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnAck {
    /// Session present flag.
    pub session_present: bool,
    /// Reason code (5.0) or return code (3.x; see [`crate::reason::v3_connack`]).
    pub reason_code: u8,
    /// MQTT 5.0 properties.
    pub properties: ConnAckProperties,
}

/// CONNACK properties (MQTT 5.0 §3.2.2.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnAckProperties {
    /// Session Expiry Interval (0x11).
    pub session_expiry_interval: Option<u32>,
    /// Receive Maximum (0x21).
    pub receive_maximum: Option<u16>,
    /// Maximum QoS (0x24).
    pub maximum_qos: Option<u8>,
    /// Retain Available (0x25).
    pub retain_available: Option<bool>,
    /// Maximum Packet Size (0x27).
    pub maximum_packet_size: Option<u32>,
    /// Assigned Client Identifier (0x12).
    pub assigned_client_identifier: Option<ByteString>,
    /// Topic Alias Maximum (0x22).
    pub topic_alias_maximum: Option<u16>,
    /// Reason String (0x1F).
    pub reason_string: Option<ByteString>,
    /// User Property (0x26).
    pub user_properties: Vec<UserProperty>,
    /// Wildcard Subscription Available (0x28).
    pub wildcard_subscription_available: Option<bool>,
    /// Subscription Identifiers Available (0x29).
    pub subscription_identifiers_available: Option<bool>,
    /// Shared Subscription Available (0x2A).
    pub shared_subscription_available: Option<bool>,
    /// Server Keep Alive (0x13).
    pub server_keep_alive: Option<u16>,
    /// Response Information (0x1A).
    pub response_information: Option<ByteString>,
    /// Server Reference (0x1C).
    pub server_reference: Option<ByteString>,
    /// Authentication Method (0x15).
    pub authentication_method: Option<ByteString>,
    /// Authentication Data (0x16).
    pub authentication_data: Option<Bytes>,
}

/// PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// DUP flag.
    pub dup: bool,
    /// QoS.
    pub qos: QoS,
    /// RETAIN flag.
    pub retain: bool,
    /// Topic name; may be empty in 5.0 when a topic alias is used.
    pub topic: ByteString,
    /// Packet identifier, present iff qos > 0.
    pub packet_id: Option<u16>,
    /// Payload.
    pub payload: Bytes,
    /// MQTT 5.0 properties.
    pub properties: PublishProperties,
}

/// PUBLISH properties (MQTT 5.0 §3.3.2.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishProperties {
    /// Payload Format Indicator (0x01).
    pub payload_format_indicator: Option<u8>,
    /// Message Expiry Interval (0x02), seconds.
    pub message_expiry_interval: Option<u32>,
    /// Topic Alias (0x23).
    pub topic_alias: Option<u16>,
    /// Response Topic (0x08).
    pub response_topic: Option<ByteString>,
    /// Correlation Data (0x09).
    pub correlation_data: Option<Bytes>,
    /// User Property (0x26), in order.
    pub user_properties: Vec<UserProperty>,
    /// Subscription Identifier (0x0B), may repeat in server-to-client PUBLISH.
    pub subscription_identifiers: Vec<u32>,
    /// Content Type (0x03).
    pub content_type: Option<ByteString>,
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP share this shape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PubAck {
    /// Packet identifier.
    pub packet_id: u16,
    /// Reason code (5.0; 0 = success; always 0 for 3.x).
    pub reason_code: u8,
    /// Properties (5.0).
    pub properties: AckProperties,
}

/// Reason string and user properties, the properties of the ack packets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckProperties {
    /// Reason String (0x1F).
    pub reason_string: Option<ByteString>,
    /// User Property (0x26).
    pub user_properties: Vec<UserProperty>,
}

/// Subscription options of one SUBSCRIBE entry (MQTT 5.0 §3.8.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionOptions {
    /// Maximum QoS.
    pub qos: QoS,
    /// No Local.
    pub no_local: bool,
    /// Retain As Published.
    pub retain_as_published: bool,
    /// Retain Handling (0, 1 or 2).
    pub retain_handling: u8,
}

impl Default for SubscriptionOptions {
    fn default() -> Self {
        SubscriptionOptions {
            qos: QoS::AtMostOnce,
            no_local: false,
            retain_as_published: false,
            retain_handling: 0,
        }
    }
}

/// SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Packet identifier.
    pub packet_id: u16,
    /// Topic filters with their options, at least one.
    pub filters: Vec<(ByteString, SubscriptionOptions)>,
    /// Subscription Identifier (0x0B).
    pub subscription_identifier: Option<u32>,
    /// User Property (0x26).
    pub user_properties: Vec<UserProperty>,
}

/// SUBACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// Packet identifier.
    pub packet_id: u16,
    /// One reason code per filter (3.x: 0, 1, 2 or 0x80).
    pub reason_codes: Vec<u8>,
    /// Properties (5.0).
    pub properties: AckProperties,
}

/// UNSUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Packet identifier.
    pub packet_id: u16,
    /// Topic filters, at least one.
    pub filters: Vec<ByteString>,
    /// User Property (0x26).
    pub user_properties: Vec<UserProperty>,
}

/// UNSUBACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    /// Packet identifier.
    pub packet_id: u16,
    /// One reason code per filter (5.0 only; empty for 3.x).
    pub reason_codes: Vec<u8>,
    /// Properties (5.0).
    pub properties: AckProperties,
}

/// DISCONNECT.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Disconnect {
    /// Reason code (5.0; 0 = normal disconnection).
    pub reason_code: u8,
    /// Properties (5.0).
    pub properties: DisconnectProperties,
}

/// DISCONNECT properties (MQTT 5.0 §3.14.2.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DisconnectProperties {
    /// Session Expiry Interval (0x11).
    pub session_expiry_interval: Option<u32>,
    /// Reason String (0x1F).
    pub reason_string: Option<ByteString>,
    /// User Property (0x26).
    pub user_properties: Vec<UserProperty>,
    /// Server Reference (0x1C).
    pub server_reference: Option<ByteString>,
}

/// AUTH (MQTT 5.0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Auth {
    /// Reason code (0x00 success, 0x18 continue, 0x19 re-authenticate).
    pub reason_code: u8,
    /// Properties.
    pub properties: AuthProperties,
}

/// AUTH properties (MQTT 5.0 §3.15.2.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthProperties {
    /// Authentication Method (0x15).
    pub authentication_method: Option<ByteString>,
    /// Authentication Data (0x16).
    pub authentication_data: Option<Bytes>,
    /// Reason String (0x1F).
    pub reason_string: Option<ByteString>,
    /// User Property (0x26).
    pub user_properties: Vec<UserProperty>,
}
