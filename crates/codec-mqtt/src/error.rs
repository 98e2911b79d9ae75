//! Decode and encode errors. Every decode error cites the spec clause it enforces and knows
//! the MQTT 5.0 reason code that goes on the wire for it ([`DecodeError::reason_code`]).

use crate::packet::ProtocolVersion;
use crate::reason;

/// Why a byte sequence is not a valid MQTT packet. After any of these the connection is
/// closed (for 5.0 after a DISCONNECT / CONNACK carrying [`DecodeError::reason_code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The Remaining Length (or another Variable Byte Integer) runs past 4 bytes.
    #[error(
        "malformed variable byte integer: more than 4 bytes [MQTT 5.0 §1.5.5, MQTT 3.1.1 §2.2.3]"
    )]
    MalformedRemainingLength,
    /// The packet (fixed header + remaining length) exceeds the maximum packet size.
    #[error("packet of {size} bytes exceeds the maximum packet size {max} [MQTT 5.0 §3.1.2.11.4, MQTT-3.2.2-15]")]
    PacketTooLarge {
        /// Total packet size announced by the fixed header.
        size: usize,
        /// The configured limit.
        max: u32,
    },
    /// Packet type 0, which is reserved in every version (type 15 in 3.x is [`Self::AuthInV3`]).
    #[error("invalid (reserved) packet type {0} [MQTT 5.0 §2.1.2, MQTT 3.1.1 §2.2.1]")]
    InvalidPacketType(u8),
    /// The fixed header flags are not the ones required for this packet type.
    #[error("invalid fixed header flags {flags:#06b} for packet type {packet_type} [MQTT-2.1.3-1, MQTT-3.6.1-1, MQTT-3.8.1-1, MQTT-3.10.1-1]")]
    InvalidFlags {
        /// Packet type (upper nibble of the first byte).
        packet_type: u8,
        /// The flags (lower nibble) received.
        flags: u8,
    },
    /// A PUBLISH with both QoS bits set.
    #[error("PUBLISH with QoS 3 [MQTT-3.3.1-4]")]
    InvalidQoS,
    /// DUP set on a QoS 0 PUBLISH, treated as malformed.
    #[error("DUP flag set on a QoS 0 PUBLISH [MQTT-3.3.1-2]")]
    DupOnQoS0,
    /// A UTF-8 encoded string that is not well-formed UTF-8 (or encodes a surrogate).
    #[error("ill-formed UTF-8 string [MQTT-1.5.4-1]")]
    InvalidUtf8,
    /// A UTF-8 encoded string containing U+0000.
    #[error("UTF-8 string contains U+0000 [MQTT-1.5.4-2]")]
    NullCharacter,
    /// `+` or `#` in a topic name.
    #[error("wildcard character in a topic name [MQTT-3.3.2-2]")]
    WildcardInTopicName,
    /// Empty topic name (allowed only in 5.0 with a Topic Alias).
    #[error("empty topic name without a topic alias [MQTT-3.3.2-1, MQTT 5.0 §3.3.2.1]")]
    EmptyTopicName,
    /// Packet identifier 0 where a non-zero one is required.
    #[error("packet identifier 0 [MQTT-2.2.1-3, MQTT-2.3.1-1]")]
    ZeroPacketId,
    /// A property identifier that MQTT 5.0 does not define.
    #[error("unknown property identifier {0:#04x} [MQTT 5.0 §2.2.2.2]")]
    UnknownProperty(u32),
    /// A single-valued property present twice.
    #[error("duplicate property {0:#04x} [MQTT 5.0 §2.2.2.2]")]
    DuplicateProperty(u8),
    /// A known property that this packet may not carry.
    #[error("property {property:#04x} not allowed in {packet} [MQTT 5.0 §2.2.2.2]")]
    PropertyNotAllowed {
        /// The property identifier.
        property: u8,
        /// The packet (or "will properties").
        packet: &'static str,
    },
    /// A property value outside its allowed range (a 0/1 flag that is 2, Receive Maximum 0,
    /// Maximum Packet Size 0, Subscription Identifier 0, …).
    #[error("invalid value for property {0:#04x} [MQTT 5.0 §3.1.2.11, §3.2.2.3, §3.3.2.3.8]")]
    InvalidPropertyValue(u8),
    /// Topic Alias property with value 0.
    #[error("topic alias 0 [MQTT 5.0 §3.3.2.3.4, MQTT-3.3.2-8]")]
    ZeroTopicAlias,
    /// Authentication Data without an Authentication Method.
    #[error("authentication data without authentication method [MQTT 5.0 §3.1.2.11.10]")]
    AuthDataWithoutMethod,
    /// A length field or fixed-size field reaches past the end of the packet.
    #[error("truncated packet: a field runs past the remaining length [MQTT 5.0 §1.5, §2.1.4]")]
    Truncated,
    /// Bytes left over after the last field of the packet.
    #[error("{0} unexpected trailing bytes in packet [MQTT 5.0 §2.1.4]")]
    TrailingBytes(usize),
    /// CONNECT protocol name is neither "MQTT" nor "MQIsdp".
    #[error("invalid protocol name in CONNECT [MQTT-3.1.2-1]")]
    InvalidProtocolName {
        /// The protocol level, when the packet was long enough to carry one.
        level: Option<u8>,
    },
    /// CONNECT protocol level this codec does not speak (or that does not match the name).
    #[error("unsupported protocol level {level} in CONNECT [MQTT-3.1.2-2]")]
    UnsupportedProtocolVersion {
        /// The protocol level received.
        level: u8,
    },
    /// CONNECT reserved flag (bit 0) set.
    #[error("reserved CONNECT flag set [MQTT-3.1.2-3]")]
    ReservedConnectFlag,
    /// Will QoS / Will Retain set without the Will Flag, or Will QoS 3.
    #[error(
        "inconsistent will flags [MQTT-3.1.2-11, MQTT-3.1.2-13, MQTT-3.1.2-14, MQTT-3.1.2-15]"
    )]
    InvalidWillFlags,
    /// Password flag without user name flag (MQTT 3.x; allowed in 5.0).
    #[error("password flag set without user name flag [MQTT-3.1.2-22 (3.1.1)]")]
    PasswordWithoutUsername,
    /// CONNACK acknowledge flags with reserved bits set.
    #[error("reserved CONNACK acknowledge flags set [MQTT-3.2.2-1]")]
    InvalidConnAckFlags,
    /// A reason / return code not defined for this packet and version.
    #[error("invalid reason code {0:#04x} [MQTT 3.1.1 §3.2.2.3, §3.9.3]")]
    InvalidReasonCode(u8),
    /// SUBSCRIBE without any topic filter.
    #[error("SUBSCRIBE without topic filters [MQTT-3.8.3-3]")]
    NoSubscribeFilters,
    /// Reserved bits of a subscription options byte set.
    #[error("reserved subscription option bits set in {0:#010b} [MQTT-3.8.3-5 (5.0), MQTT-3.8.3-4 (3.1.1)]")]
    ReservedSubscriptionOptionBits(u8),
    /// Subscription options with maximum QoS 3.
    #[error("subscription with QoS 3 [MQTT 5.0 §3.8.3.1, MQTT-3.8.3-4 (3.1.1)]")]
    InvalidSubscriptionQoS,
    /// Retain Handling 3.
    #[error("retain handling 3 [MQTT 5.0 §3.8.3.1]")]
    InvalidRetainHandling,
    /// UNSUBSCRIBE without any topic filter.
    #[error("UNSUBSCRIBE without topic filters [MQTT-3.10.3-2]")]
    NoUnsubscribeFilters,
    /// AUTH packet (type 15) in MQTT 3.x, where the type is reserved.
    #[error("AUTH packet in MQTT 3.x [MQTT 5.0 §3.15; MQTT 3.1.1 §2.2.1 type 15 reserved]")]
    AuthInV3,
}

impl DecodeError {
    /// The MQTT 5.0 reason code for a DISCONNECT (or CONNACK) answering this error:
    /// 0x81 malformed, 0x82 protocol error, 0x84 unsupported version, 0x90 topic name
    /// invalid, 0x94 topic alias invalid, 0x95 packet too large.
    pub fn reason_code(&self) -> u8 {
        use DecodeError::*;
        match self {
            PacketTooLarge { .. } => reason::PACKET_TOO_LARGE,
            InvalidProtocolName { .. } | UnsupportedProtocolVersion { .. } => {
                reason::UNSUPPORTED_PROTOCOL_VERSION
            }
            WildcardInTopicName => reason::TOPIC_NAME_INVALID,
            ZeroTopicAlias => reason::TOPIC_ALIAS_INVALID,
            EmptyTopicName
            | DuplicateProperty(_)
            | InvalidPropertyValue(_)
            | AuthDataWithoutMethod
            | NoSubscribeFilters
            | NoUnsubscribeFilters
            | InvalidSubscriptionQoS
            | InvalidRetainHandling => reason::PROTOCOL_ERROR,
            MalformedRemainingLength
            | InvalidPacketType(_)
            | InvalidFlags { .. }
            | InvalidQoS
            | DupOnQoS0
            | InvalidUtf8
            | NullCharacter
            | ZeroPacketId
            | UnknownProperty(_)
            | PropertyNotAllowed { .. }
            | Truncated
            | TrailingBytes(_)
            | ReservedConnectFlag
            | InvalidWillFlags
            | PasswordWithoutUsername
            | InvalidConnAckFlags
            | InvalidReasonCode(_)
            | ReservedSubscriptionOptionBits(_)
            | AuthInV3 => reason::MALFORMED_PACKET,
        }
    }

    /// For an unsupported or unknown protocol in CONNECT: the version whose CONNACK format
    /// the answer should use (level 5 → 5.0 with reason 0x84, anything else → 3.x with
    /// return code 1, [MQTT-3.1.2-2]). `None` for every other error.
    pub fn connack_version(&self) -> Option<ProtocolVersion> {
        match self {
            DecodeError::UnsupportedProtocolVersion { level: 5 }
            | DecodeError::InvalidProtocolName { level: Some(5) } => Some(ProtocolVersion::V5),
            DecodeError::UnsupportedProtocolVersion { .. }
            | DecodeError::InvalidProtocolName { .. } => Some(ProtocolVersion::V3_1_1),
            _ => None,
        }
    }
}

/// Why a packet cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A UTF-8 string or binary field longer than 65,535 bytes [MQTT 5.0 §1.5.4, §1.5.6].
    #[error("string or binary field of {0} bytes exceeds 65535 [MQTT 5.0 §1.5.4]")]
    StringTooLong(usize),
    /// Remaining length over 268,435,455 [MQTT 5.0 §1.5.5].
    #[error("remaining length {0} exceeds 268435455 [MQTT 5.0 §1.5.5]")]
    PacketTooLarge(usize),
    /// A Variable Byte Integer value over 268,435,455 (e.g. a subscription identifier).
    #[error("variable byte integer {0} exceeds 268435455 [MQTT 5.0 §1.5.5]")]
    VarintTooLarge(u32),
    /// A QoS 1 or 2 PUBLISH without a packet identifier [MQTT-2.2.1-2].
    #[error("QoS > 0 PUBLISH without packet identifier [MQTT-2.2.1-2]")]
    MissingPacketId,
    /// A password without a user name in MQTT 3.x [MQTT-3.1.2-22].
    #[error("password without user name in MQTT 3.x [MQTT-3.1.2-22]")]
    PasswordWithoutUsername,
    /// AUTH does not exist in MQTT 3.x.
    #[error("AUTH packet cannot be encoded for MQTT 3.x [MQTT 5.0 §3.15]")]
    AuthInV3,
}
