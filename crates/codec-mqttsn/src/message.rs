//! The decoded form of every MQTT-SN 1.2 message (§5.4, §5.5).
//!
//! Payloads, gateway addresses and wireless node ids are [`Bytes`] slices of the received
//! datagram; client ids and topic names are UTF-8 checked [`ByteString`]s, also zero-copy.

use bytes::Bytes;
use bytestring::ByteString;

use crate::flags::{Flags, TopicIdType};
use crate::msg_type;

/// The topic of a PUBLISH, SUBSCRIBE or UNSUBSCRIBE, as selected by the TopicIdType of its
/// Flags octet (§5.3.4, §5.3.11, §5.3.12).
///
/// | TopicIdType | PUBLISH (2-octet TopicId) | SUBSCRIBE / UNSUBSCRIBE |
/// |---|---|---|
/// | `0b00` normal | [`Topic::Id`] | [`Topic::Name`] (rest of the message) |
/// | `0b01` pre-defined | [`Topic::Predefined`] | [`Topic::Predefined`] (exactly 2 octets) |
/// | `0b10` short | [`Topic::Short`] | [`Topic::Short`] (exactly 2 octets) |
/// | `0b11` reserved | [`Topic::Reserved`] (2 octets) | [`Topic::Reserved`] (rest of the message) |
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    /// A normal topic id registered with REGISTER / REGACK (PUBLISH only).
    Id(u16),
    /// A pre-defined topic id.
    Predefined(u16),
    /// A two-octet short topic name, kept as raw octets (the gateway decides what to do with
    /// ones that are not UTF-8 or contain wildcards).
    Short([u8; 2]),
    /// A topic name or filter (SUBSCRIBE / UNSUBSCRIBE only).
    Name(ByteString),
    /// The raw topic field under the reserved TopicIdType `0b11`; kept decodable so the
    /// gateway can answer return code 0x03 "not supported".
    Reserved(Bytes),
}

impl Topic {
    /// The TopicIdType that announces this topic in the Flags octet.
    pub fn id_type(&self) -> TopicIdType {
        match self {
            Topic::Id(_) | Topic::Name(_) => TopicIdType::Normal,
            Topic::Predefined(_) => TopicIdType::Predefined,
            Topic::Short(_) => TopicIdType::Short,
            Topic::Reserved(_) => TopicIdType::Reserved,
        }
    }
}

/// ReturnCode (§5.3.10). 0x04–0xFF are reserved in 1.2 and kept as [`ReturnCode::Other`]
/// (EMQX sends 0x80 "not authorized" and 0x83 in CONNACK / SUBACK / PUBACK).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReturnCode {
    /// 0x00 Accepted.
    Accepted,
    /// 0x01 Rejected: congestion.
    Congestion,
    /// 0x02 Rejected: invalid topic ID.
    InvalidTopicId,
    /// 0x03 Rejected: not supported.
    NotSupported,
    /// Any other value (reserved in 1.2). Holds 0x04–0xFF: `Other(0x00..=0x03)` encodes to
    /// the same octet as the named code and decodes as that code.
    Other(u8),
}

impl ReturnCode {
    /// Decodes a ReturnCode octet.
    pub const fn from_byte(byte: u8) -> Self {
        match byte {
            0x00 => ReturnCode::Accepted,
            0x01 => ReturnCode::Congestion,
            0x02 => ReturnCode::InvalidTopicId,
            0x03 => ReturnCode::NotSupported,
            other => ReturnCode::Other(other),
        }
    }

    /// The wire octet.
    pub const fn to_byte(self) -> u8 {
        match self {
            ReturnCode::Accepted => 0x00,
            ReturnCode::Congestion => 0x01,
            ReturnCode::InvalidTopicId => 0x02,
            ReturnCode::NotSupported => 0x03,
            ReturnCode::Other(other) => other,
        }
    }
}

impl From<u8> for ReturnCode {
    fn from(byte: u8) -> Self {
        ReturnCode::from_byte(byte)
    }
}

/// One MQTT-SN 1.2 message. Field names follow the spec's message tables (§5.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// ADVERTISE (§5.4.1): a gateway announces itself every `duration` seconds.
    Advertise {
        /// GwId.
        gw_id: u8,
        /// Seconds until the next ADVERTISE.
        duration: u16,
    },
    /// SEARCHGW (§5.4.2).
    SearchGw {
        /// Broadcast radius in hops.
        radius: u8,
    },
    /// GWINFO (§5.4.3). `gw_add` is empty when a gateway answers for itself.
    GwInfo {
        /// GwId.
        gw_id: u8,
        /// GwAdd: the gateway's address, present only when a client answers (§5.3.5).
        gw_add: Bytes,
    },
    /// CONNECT (§5.4.4). Only the Will and CleanSession flags are meaningful.
    Connect {
        /// Flags (§5.3.4).
        flags: Flags,
        /// ProtocolId: 0x01 for 1.2 (not checked by the codec).
        protocol_id: u8,
        /// Keep-alive in seconds.
        duration: u16,
        /// ClientId (the spec says 1–23 characters; the length is the gateway's policy).
        client_id: ByteString,
    },
    /// CONNACK (§5.4.5).
    ConnAck {
        /// ReturnCode.
        rc: ReturnCode,
    },
    /// WILLTOPICREQ (§5.4.6).
    WillTopicReq,
    /// WILLTOPIC (§5.4.7). `topic: None` is the empty WILLTOPIC (2 octets, no Flags field)
    /// that deletes the will; it must carry `Flags::default()`.
    WillTopic {
        /// Flags: QoS and Retain of the will.
        flags: Flags,
        /// WillTopic.
        topic: Option<ByteString>,
    },
    /// WILLMSGREQ (§5.4.8).
    WillMsgReq,
    /// WILLMSG (§5.4.9).
    WillMsg {
        /// WillMsg.
        payload: Bytes,
    },
    /// REGISTER (§5.4.10).
    Register {
        /// 0x0000 from a client; the assigned id from a gateway.
        topic_id: u16,
        /// MsgId.
        msg_id: u16,
        /// TopicName.
        topic_name: ByteString,
    },
    /// REGACK (§5.4.11).
    RegAck {
        /// The assigned topic id.
        topic_id: u16,
        /// MsgId of the REGISTER.
        msg_id: u16,
        /// ReturnCode.
        rc: ReturnCode,
    },
    /// PUBLISH (§5.4.12). `flags.topic_id_type` must equal `topic.id_type()`.
    Publish {
        /// Flags: DUP, QoS, Retain, TopicIdType.
        flags: Flags,
        /// The 2-octet TopicId field, read as the TopicIdType says.
        topic: Topic,
        /// MsgId (0x0000 for QoS 0 and −1).
        msg_id: u16,
        /// Data.
        data: Bytes,
    },
    /// PUBACK (§5.4.13).
    PubAck {
        /// TopicId of the PUBLISH.
        topic_id: u16,
        /// MsgId of the PUBLISH.
        msg_id: u16,
        /// ReturnCode.
        rc: ReturnCode,
    },
    /// PUBREC (§5.4.14).
    PubRec {
        /// MsgId.
        msg_id: u16,
    },
    /// PUBREL (§5.4.14).
    PubRel {
        /// MsgId.
        msg_id: u16,
    },
    /// PUBCOMP (§5.4.14).
    PubComp {
        /// MsgId.
        msg_id: u16,
    },
    /// SUBSCRIBE (§5.4.15). `flags.topic_id_type` must equal `topic.id_type()`.
    Subscribe {
        /// Flags: DUP, requested QoS, TopicIdType.
        flags: Flags,
        /// MsgId.
        msg_id: u16,
        /// TopicName (filter), pre-defined id or short name.
        topic: Topic,
    },
    /// SUBACK (§5.4.16).
    SubAck {
        /// Flags: granted QoS.
        flags: Flags,
        /// The topic id assigned (0x0000 for wildcard and short topics).
        topic_id: u16,
        /// MsgId of the SUBSCRIBE.
        msg_id: u16,
        /// ReturnCode.
        rc: ReturnCode,
    },
    /// UNSUBSCRIBE (§5.4.17). `flags.topic_id_type` must equal `topic.id_type()`.
    Unsubscribe {
        /// Flags: TopicIdType.
        flags: Flags,
        /// MsgId.
        msg_id: u16,
        /// TopicName (filter), pre-defined id or short name.
        topic: Topic,
    },
    /// UNSUBACK (§5.4.18).
    UnsubAck {
        /// MsgId of the UNSUBSCRIBE.
        msg_id: u16,
    },
    /// PINGREQ (§5.4.19). A sleeping client wakes with its ClientId; `Some("")` cannot be
    /// encoded (it would read back as `None`).
    PingReq {
        /// ClientId, present only from a client leaving the asleep state.
        client_id: Option<ByteString>,
    },
    /// PINGRESP (§5.4.20).
    PingResp,
    /// DISCONNECT (§5.4.21). With a duration, the client goes to sleep for that many
    /// seconds.
    Disconnect {
        /// Sleep duration in seconds.
        duration: Option<u16>,
    },
    /// WILLTOPICUPD (§5.4.22). `topic: None` is the empty message (2 octets) that deletes
    /// the will; it must carry `Flags::default()`.
    WillTopicUpd {
        /// Flags: QoS and Retain of the will.
        flags: Flags,
        /// WillTopic.
        topic: Option<ByteString>,
    },
    /// WILLTOPICRESP (§5.4.24).
    WillTopicResp {
        /// ReturnCode.
        rc: ReturnCode,
    },
    /// WILLMSGUPD (§5.4.23).
    WillMsgUpd {
        /// WillMsg.
        payload: Bytes,
    },
    /// WILLMSGRESP (§5.4.25).
    WillMsgResp {
        /// ReturnCode.
        rc: ReturnCode,
    },
    /// A message relayed by a forwarder (§5.5): the encapsulation header (whose one-octet
    /// Length counts only itself) followed by the client's message.
    Encapsulated {
        /// Ctrl: bits 1–0 are the broadcast radius, the rest reserved (kept as received).
        ctrl: u8,
        /// Wireless Node Id: the forwarder's identifier for the client (≤ 252 octets).
        wireless_node_id: Bytes,
        /// The client's message; never itself ENCAPSULATED.
        inner: Box<Message>,
    },
}

impl Message {
    /// The MsgType octet (§5.2.2).
    pub fn msg_type(&self) -> u8 {
        use msg_type::*;
        match self {
            Message::Advertise { .. } => ADVERTISE,
            Message::SearchGw { .. } => SEARCHGW,
            Message::GwInfo { .. } => GWINFO,
            Message::Connect { .. } => CONNECT,
            Message::ConnAck { .. } => CONNACK,
            Message::WillTopicReq => WILLTOPICREQ,
            Message::WillTopic { .. } => WILLTOPIC,
            Message::WillMsgReq => WILLMSGREQ,
            Message::WillMsg { .. } => WILLMSG,
            Message::Register { .. } => REGISTER,
            Message::RegAck { .. } => REGACK,
            Message::Publish { .. } => PUBLISH,
            Message::PubAck { .. } => PUBACK,
            Message::PubRec { .. } => PUBREC,
            Message::PubRel { .. } => PUBREL,
            Message::PubComp { .. } => PUBCOMP,
            Message::Subscribe { .. } => SUBSCRIBE,
            Message::SubAck { .. } => SUBACK,
            Message::Unsubscribe { .. } => UNSUBSCRIBE,
            Message::UnsubAck { .. } => UNSUBACK,
            Message::PingReq { .. } => PINGREQ,
            Message::PingResp => PINGRESP,
            Message::Disconnect { .. } => DISCONNECT,
            Message::WillTopicUpd { .. } => WILLTOPICUPD,
            Message::WillTopicResp { .. } => WILLTOPICRESP,
            Message::WillMsgUpd { .. } => WILLMSGUPD,
            Message::WillMsgResp { .. } => WILLMSGRESP,
            Message::Encapsulated { .. } => ENCAPSULATED,
        }
    }

    /// The message name as the spec writes it ("PUBLISH").
    pub fn name(&self) -> &'static str {
        msg_type::name(self.msg_type()).unwrap_or("RESERVED")
    }
}
