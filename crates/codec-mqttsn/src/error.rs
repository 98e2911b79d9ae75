//! Decode and encode errors. Every decode error cites the MQTT-SN 1.2 section it enforces.
//!
//! MQTT-SN has no "malformed packet" reply: a gateway drops a datagram that fails to decode
//! (EMQX logs `malformed_message_len` / `unkown_message_type` and stops the channel process
//! for that datagram). Semantic refusals — an unknown topic id, a reserved TopicIdType, a
//! wildcard in REGISTER — are not decode errors: those messages decode, and the gateway
//! answers them with a return code (§5.3.10).

use crate::flags::TopicIdType;
use crate::msg_type::section;

/// Why a datagram is not a well-formed MQTT-SN 1.2 message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The datagram ends inside the Length or MsgType field (0 or 1 octet, or `0x01`
    /// followed by fewer than 3 octets).
    #[error("datagram of {0} octets ends inside the Length and MsgType fields [MQTT-SN 1.2 §5.2 Message Header]")]
    TooShort(usize),
    /// The Length field counts fewer octets than the header it is part of (one-octet form
    /// below 2, three-octet form below 4).
    #[error("Length field {declared} is smaller than its own {header}-octet header [MQTT-SN 1.2 §5.2.1 Length]")]
    LengthTooSmall {
        /// The value of the Length field.
        declared: usize,
        /// Octets taken by Length and MsgType (2 or 4).
        header: usize,
    },
    /// The Length field does not equal the datagram's size: one datagram carries exactly
    /// one message (EMQX `malformed_message_len`).
    #[error("Length field says {declared} octets but the datagram has {actual} [MQTT-SN 1.2 §5.2.1 Length]")]
    LengthMismatch {
        /// The value of the Length field.
        declared: usize,
        /// The datagram's size.
        actual: usize,
    },
    /// A reserved MsgType (0x03, 0x11, 0x19, 0x1E–0xFD, 0xFF).
    #[error("unknown or reserved MsgType {0:#04x} [MQTT-SN 1.2 §5.2.2 MsgType]")]
    UnknownType(u8),
    /// The variable part is shorter than the message's fixed fields.
    #[error("variable part of {len} octets is shorter than the {min} this message needs [MQTT-SN 1.2 {}]", section(*msg_type))]
    BodyTooShort {
        /// The MsgType.
        msg_type: u8,
        /// Octets after the MsgType field.
        len: usize,
        /// The fewest octets the message may have there.
        min: usize,
    },
    /// The variable part is longer than the message's fields (a fixed-size message with
    /// trailing octets, or a DISCONNECT with more than a Duration).
    #[error("variable part of {len} octets is longer than the {max} this message may have [MQTT-SN 1.2 {}]", section(*msg_type))]
    BodyTooLong {
        /// The MsgType.
        msg_type: u8,
        /// Octets after the MsgType field.
        len: usize,
        /// The most octets the message may have there.
        max: usize,
    },
    /// A ClientId, TopicName or WillTopic that is not well-formed UTF-8.
    #[error("{field} is not well-formed UTF-8 [MQTT-SN 1.2 {}; strings as in MQTT 3.1.1 §1.5.3]", section(*msg_type))]
    InvalidUtf8 {
        /// The MsgType.
        msg_type: u8,
        /// The field, with its section ("TopicName §5.3.12").
        field: &'static str,
    },
    /// A pre-defined topic id or short topic name in SUBSCRIBE / UNSUBSCRIBE that is not
    /// exactly two octets.
    #[error("{id_type:?} topic must be exactly 2 octets, got {len} [MQTT-SN 1.2 §5.3.11 TopicId, §5.3.4 Flags, {}]", section(*msg_type))]
    TopicLength {
        /// The MsgType.
        msg_type: u8,
        /// The TopicIdType of the Flags octet.
        id_type: TopicIdType,
        /// Octets in the topic field.
        len: usize,
    },
    /// The ENCAPSULATED Length field (which counts only the encapsulation header: Length,
    /// MsgType, Ctrl and Wireless Node Id) is below 3 or runs past the datagram.
    #[error("ENCAPSULATED Length {declared} must count 3..={available} header octets [MQTT-SN 1.2 §5.5 Forwarder Encapsulation]")]
    EncapsulationLength {
        /// The value of the Length field.
        declared: usize,
        /// The datagram's size.
        available: usize,
    },
    /// An ENCAPSULATED message using the three-octet Length form, which §5.5 does not allow
    /// (its Length field is one octet).
    #[error("ENCAPSULATED message with a 3-octet Length field [MQTT-SN 1.2 §5.5 Forwarder Encapsulation: Length is 1 octet]")]
    LongEncapsulationHeader,
    /// An ENCAPSULATED message inside an ENCAPSULATED message. §5.5 wraps a client's
    /// message; refusing nesting also bounds recursion on hostile input.
    #[error("ENCAPSULATED message inside an ENCAPSULATED message [MQTT-SN 1.2 §5.5 Forwarder Encapsulation]")]
    NestedEncapsulation,
}

/// Why a message cannot be encoded. Nothing is written to the buffer on error, and every
/// message that encodes decodes back to itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The message needs more than 65,535 octets.
    #[error("message of {0} octets exceeds 65535 [MQTT-SN 1.2 §5.2.1 Length]")]
    TooLong(usize),
    /// The Flags octet's TopicIdType differs from the type of the topic carried.
    #[error("Flags TopicIdType {flags:?} does not match the topic's {topic:?} [MQTT-SN 1.2 §5.3.4 Flags]")]
    TopicIdTypeMismatch {
        /// TopicIdType of the Flags octet.
        flags: TopicIdType,
        /// TopicIdType of the topic.
        topic: TopicIdType,
    },
    /// A topic form the message cannot carry: a topic name in PUBLISH, a normal topic id in
    /// SUBSCRIBE / UNSUBSCRIBE.
    #[error("this topic form cannot be carried by the message [MQTT-SN 1.2 {}]", section(*msg_type))]
    TopicNotAllowed {
        /// The MsgType.
        msg_type: u8,
    },
    /// A reserved-type topic in PUBLISH that is not two octets (the TopicId field is fixed).
    #[error("PUBLISH TopicId must be 2 octets, got {0} [MQTT-SN 1.2 §5.4.12 PUBLISH]")]
    TopicLength(usize),
    /// WILLTOPIC / WILLTOPICUPD without a topic but with non-default flags: the empty form
    /// is the bare 2-octet header, with no Flags field to carry them.
    #[error("empty WILLTOPIC/WILLTOPICUPD cannot carry flags [MQTT-SN 1.2 §5.4.7 WILLTOPIC, §5.4.22 WILLTOPICUPD]")]
    FlagsWithoutWillTopic,
    /// PINGREQ with `Some("")`: on the wire it is the same as no client id.
    #[error(
        "PINGREQ with an empty ClientId is the same as one without [MQTT-SN 1.2 §5.4.19 PINGREQ]"
    )]
    EmptyPingClientId,
    /// A Wireless Node Id too long for the one-octet ENCAPSULATED Length (at most 252).
    #[error(
        "Wireless Node Id of {0} octets exceeds 252 [MQTT-SN 1.2 §5.5 Forwarder Encapsulation]"
    )]
    WirelessNodeIdTooLong(usize),
    /// An ENCAPSULATED message inside an ENCAPSULATED message.
    #[error("ENCAPSULATED message inside an ENCAPSULATED message [MQTT-SN 1.2 §5.5 Forwarder Encapsulation]")]
    NestedEncapsulation,
}
