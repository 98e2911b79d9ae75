//! Sans-IO MQTT-SN v1.2 codec: one datagram in, one [`Message`] out, and back.
//!
//! MQTT-SN runs over datagrams, so there is no partial input: [`decode`] takes a whole
//! datagram and returns the message it carries or a [`DecodeError`] citing the section of
//! the MQTT-SN 1.2 specification it violates. [`encode`] appends a message to a buffer.
//! Payloads, client ids and topic names are zero-copy slices of the datagram.
//!
//! # Length field (§5.2.1)
//!
//! The Length field is one octet (`0x02..=0xFF`, the whole message's size) or three
//! (`0x01` then a two-octet size). The declared size must equal the datagram's size (EMQX
//! `malformed_message_len`), and must at least cover its own header.
//!
//! * **Encoding** uses the one-octet form whenever the whole message fits in 255 octets
//!   (a variable part of up to 253 octets), the three-octet form above that, and refuses
//!   messages over 65,535 octets. This is the spec's rule ("messages with lengths smaller
//!   than 256 octets may use the shorter 1-octet format") and the same cut-over EMQX uses
//!   (its "variable part ≥ 254" excludes the MsgType octet).
//! * **Decoding** also accepts the three-octet form for messages under 256 octets: the spec
//!   says the short form *may* be used there, not must, so such a datagram is well-formed.
//!   It decodes to the same [`Message`]; re-encoding produces the one-octet form.
//!
//! # What is checked, and what is left to the gateway
//!
//! Checked: the Length field, reserved MsgTypes, the size of every message's fixed fields
//! (exact for fixed-size messages, a minimum for those ending in a variable field),
//! DISCONNECT having 0 or 2 octets of Duration, well-formed UTF-8 in ClientId, TopicName and
//! WillTopic, and two-octet pre-defined / short topics in SUBSCRIBE and UNSUBSCRIBE.
//!
//! Decoded as received for the gateway to judge: every Flags octet (QoS −1, the reserved
//! TopicIdType `0b11` — answered with return code 0x03 — and the bits a message does not
//! use), the ProtocolId, the ClientId length (1–23 in the spec), empty or wildcard topic
//! names, MsgId 0, and reserved return codes.
//!
//! One file per message family (`publish.rs`, `subscribe.rs`, …); `wire.rs` holds the
//! header and a bounds-checked reader.

mod connect;
mod disconnect;
mod encapsulated;
pub mod error;
pub mod flags;
mod gateway;
pub mod message;
pub mod msg_type;
mod ping;
mod publish;
mod register;
mod subscribe;
mod will;
mod wire;

use bytes::{BufMut, Bytes, BytesMut};

pub use error::{DecodeError, EncodeError};
pub use flags::{Flags, QoS, TopicIdType};
pub use message::{Message, ReturnCode, Topic};

/// Decodes the one message that `datagram` carries.
pub fn decode(datagram: Bytes) -> Result<Message, DecodeError> {
    match wire::peek_type(&datagram) {
        Some(msg_type::ENCAPSULATED) if datagram[0] != wire::LONG_FORM => {
            encapsulated::decode(datagram)
        }
        Some(msg_type::ENCAPSULATED) => Err(DecodeError::LongEncapsulationHeader),
        _ => decode_plain(datagram),
    }
}

/// Decodes a message from a borrowed datagram (copies it once; prefer [`decode`]).
pub fn decode_slice(datagram: &[u8]) -> Result<Message, DecodeError> {
    decode(Bytes::copy_from_slice(datagram))
}

/// Decodes a message that is not ENCAPSULATED.
fn decode_plain(mut datagram: Bytes) -> Result<Message, DecodeError> {
    use msg_type::*;
    let header = wire::parse_header(&datagram)?;
    let body = datagram.split_off(header.len);
    let msg_type = header.msg_type;
    Ok(match msg_type {
        ADVERTISE => gateway::decode_advertise(body)?,
        SEARCHGW => gateway::decode_searchgw(body)?,
        GWINFO => gateway::decode_gwinfo(body)?,
        CONNECT => connect::decode_connect(body)?,
        CONNACK => connect::decode_connack(body)?,
        WILLTOPICREQ => {
            will::decode_empty(msg_type, body)?;
            Message::WillTopicReq
        }
        WILLTOPIC => {
            let (flags, topic) = will::decode_will_topic(msg_type, body)?;
            Message::WillTopic { flags, topic }
        }
        WILLMSGREQ => {
            will::decode_empty(msg_type, body)?;
            Message::WillMsgReq
        }
        WILLMSG => Message::WillMsg { payload: body },
        REGISTER => register::decode_register(body)?,
        REGACK => register::decode_regack(body)?,
        PUBLISH => publish::decode_publish(body)?,
        PUBACK => {
            let (topic_id, msg_id, rc) = publish::decode_topic_ack(msg_type, body)?;
            Message::PubAck {
                topic_id,
                msg_id,
                rc,
            }
        }
        PUBREC => Message::PubRec {
            msg_id: publish::decode_msg_id(msg_type, body)?,
        },
        PUBREL => Message::PubRel {
            msg_id: publish::decode_msg_id(msg_type, body)?,
        },
        PUBCOMP => Message::PubComp {
            msg_id: publish::decode_msg_id(msg_type, body)?,
        },
        SUBSCRIBE => {
            let (flags, msg_id, topic) = subscribe::decode_subscription(msg_type, body)?;
            Message::Subscribe {
                flags,
                msg_id,
                topic,
            }
        }
        SUBACK => subscribe::decode_suback(body)?,
        UNSUBSCRIBE => {
            let (flags, msg_id, topic) = subscribe::decode_subscription(msg_type, body)?;
            Message::Unsubscribe {
                flags,
                msg_id,
                topic,
            }
        }
        UNSUBACK => Message::UnsubAck {
            msg_id: publish::decode_msg_id(msg_type, body)?,
        },
        PINGREQ => ping::decode_pingreq(body)?,
        PINGRESP => {
            will::decode_empty(msg_type, body)?;
            Message::PingResp
        }
        DISCONNECT => disconnect::decode_disconnect(body)?,
        WILLTOPICUPD => {
            let (flags, topic) = will::decode_will_topic(msg_type, body)?;
            Message::WillTopicUpd { flags, topic }
        }
        WILLTOPICRESP => Message::WillTopicResp {
            rc: connect::decode_return_code(msg_type, body)?,
        },
        WILLMSGUPD => Message::WillMsgUpd { payload: body },
        WILLMSGRESP => Message::WillMsgResp {
            rc: connect::decode_return_code(msg_type, body)?,
        },
        // Only reachable for an ENCAPSULATED message's inner message, which the caller has
        // already refused; kept so no path can recurse.
        ENCAPSULATED => return Err(DecodeError::NestedEncapsulation),
        other => return Err(DecodeError::UnknownType(other)),
    })
}

/// The size of a PUBLISH carrying `payload_len` octets of data, or `None` when no MQTT-SN
/// message can carry that much (the Length field says at most 65,535 octets).
pub fn publish_len(payload_len: usize) -> Option<usize> {
    // Flags, TopicId and MsgId, then the data.
    wire::frame_len(payload_len.checked_add(5)?).ok()
}

/// Appends the encoding of `msg` to `buf`. Nothing is written on error; whatever encodes
/// decodes back to an equal message.
pub fn encode(msg: &Message, buf: &mut BytesMut) -> Result<(), EncodeError> {
    match msg {
        Message::Encapsulated {
            ctrl,
            wireless_node_id,
            inner,
        } => encapsulated::encode(*ctrl, wireless_node_id, inner, buf),
        _ => encode_plain(msg, buf),
    }
}

/// Encodes a message that is not ENCAPSULATED.
///
/// The variable part is written after room for the long header, then moved two octets
/// back when the message fits the short form, so every message is validated and sized in
/// one pass (the move is of at most 253 octets).
fn encode_plain(msg: &Message, buf: &mut BytesMut) -> Result<(), EncodeError> {
    const LONG_HEADER: usize = 4;
    let start = buf.len();
    buf.put_bytes(0, LONG_HEADER);
    let total = put_body(msg, buf).and_then(|()| wire::frame_len(buf.len() - start - LONG_HEADER));
    let total = match total {
        Ok(total) => total,
        Err(err) => {
            buf.truncate(start);
            return Err(err);
        }
    };
    let (header, header_len) = wire::header(total, msg.msg_type());
    if header_len < LONG_HEADER {
        buf.copy_within(start + LONG_HEADER.., start + header_len);
        buf.truncate(start + total);
    }
    buf[start..start + header_len].copy_from_slice(&header[..header_len]);
    Ok(())
}

/// Writes the variable part of a message that is not ENCAPSULATED.
fn put_body(msg: &Message, buf: &mut BytesMut) -> Result<(), EncodeError> {
    match msg {
        Message::Advertise { gw_id, duration } => gateway::put_advertise(buf, *gw_id, *duration),
        Message::SearchGw { radius } => buf.put_u8(*radius),
        Message::GwInfo { gw_id, gw_add } => gateway::put_gwinfo(buf, *gw_id, gw_add),
        Message::Connect {
            flags,
            protocol_id,
            duration,
            client_id,
        } => connect::put_connect(buf, *flags, *protocol_id, *duration, client_id),
        Message::ConnAck { rc } | Message::WillTopicResp { rc } | Message::WillMsgResp { rc } => {
            buf.put_u8(rc.to_byte())
        }
        Message::WillTopicReq | Message::WillMsgReq | Message::PingResp => {}
        Message::WillTopic { flags, topic } | Message::WillTopicUpd { flags, topic } => {
            will::put_will_topic(buf, *flags, topic)?
        }
        Message::WillMsg { payload } | Message::WillMsgUpd { payload } => buf.put_slice(payload),
        Message::Register {
            topic_id,
            msg_id,
            topic_name,
        } => register::put_register(buf, *topic_id, *msg_id, topic_name),
        Message::RegAck {
            topic_id,
            msg_id,
            rc,
        }
        | Message::PubAck {
            topic_id,
            msg_id,
            rc,
        } => publish::put_topic_ack(buf, *topic_id, *msg_id, *rc),
        Message::Publish {
            flags,
            topic,
            msg_id,
            data,
        } => publish::put_publish(buf, *flags, topic, *msg_id, data)?,
        Message::PubRec { msg_id }
        | Message::PubRel { msg_id }
        | Message::PubComp { msg_id }
        | Message::UnsubAck { msg_id } => buf.put_u16(*msg_id),
        Message::Subscribe {
            flags,
            msg_id,
            topic,
        }
        | Message::Unsubscribe {
            flags,
            msg_id,
            topic,
        } => subscribe::put_subscription(buf, msg.msg_type(), *flags, *msg_id, topic)?,
        Message::SubAck {
            flags,
            topic_id,
            msg_id,
            rc,
        } => subscribe::put_suback(buf, *flags, *topic_id, *msg_id, *rc),
        Message::PingReq { client_id } => ping::put_pingreq(buf, client_id)?,
        Message::Disconnect { duration } => {
            if let Some(duration) = duration {
                buf.put_u16(*duration)
            }
        }
        Message::Encapsulated { .. } => return Err(EncodeError::NestedEncapsulation),
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;

    /// Encodes `msg` into a fresh vector.
    pub(crate) fn encode_vec(msg: &Message) -> Result<Vec<u8>, EncodeError> {
        let mut buf = BytesMut::new();
        encode(msg, &mut buf)?;
        Ok(buf.to_vec())
    }

    /// The same message with a three-octet Length field.
    pub(crate) fn to_long_form(wire: &[u8]) -> Vec<u8> {
        assert_ne!(wire[0], 0x01, "already long");
        let total = (wire.len() + 2) as u16;
        let mut long = vec![0x01];
        long.extend_from_slice(&total.to_be_bytes());
        long.extend_from_slice(&wire[1..]);
        long
    }

    /// Asserts that `wire` decodes to `msg` and `msg` encodes to `wire`; that the
    /// three-octet Length form of the same message decodes to `msg` too; and that every
    /// strict prefix of `wire` is an error.
    pub(crate) fn assert_wire(msg: &Message, wire: &[u8]) {
        assert_eq!(decode_slice(wire), Ok(msg.clone()), "decoding {wire:02X?}");
        assert_eq!(encode_vec(msg).as_deref(), Ok(wire), "encoding {msg:?}");
        if wire[1] != msg_type::ENCAPSULATED {
            let long = to_long_form(wire);
            assert_eq!(decode_slice(&long), Ok(msg.clone()), "decoding {long:02X?}");
        }
        for cut in 0..wire.len() {
            assert!(
                decode_slice(&wire[..cut]).is_err(),
                "prefix of {cut} octets"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::*;
    use super::*;

    #[test]
    fn publish_len_is_what_encode_writes() {
        for n in [0usize, 248, 249, 250, 1000, 65_526] {
            let msg = Message::Publish {
                flags: Flags::default(),
                topic: Topic::Id(1),
                msg_id: 1,
                data: Bytes::from(vec![0u8; n]),
            };
            let mut buf = BytesMut::new();
            encode(&msg, &mut buf).unwrap();
            assert_eq!(publish_len(n), Some(buf.len()), "payload of {n}");
        }
        assert_eq!(publish_len(65_527), None);
        assert_eq!(publish_len(usize::MAX), None);
    }

    #[test]
    fn a_datagram_without_a_whole_header_is_too_short() {
        assert_eq!(decode_slice(&[]), Err(DecodeError::TooShort(0)));
        assert_eq!(decode_slice(&[0x02]), Err(DecodeError::TooShort(1)));
        assert_eq!(decode_slice(&[0x01]), Err(DecodeError::TooShort(1)));
        assert_eq!(
            decode_slice(&[0x01, 0x00, 0x04]),
            Err(DecodeError::TooShort(3))
        );
    }

    #[test]
    fn a_length_below_its_own_header_is_refused() {
        assert_eq!(
            decode_slice(&[0x00, 0x17]),
            Err(DecodeError::LengthTooSmall {
                declared: 0,
                header: 2
            })
        );
        for declared in 0..4u8 {
            assert_eq!(
                decode_slice(&[0x01, 0x00, declared, 0x17]),
                Err(DecodeError::LengthTooSmall {
                    declared: declared.into(),
                    header: 4
                })
            );
        }
    }

    #[test]
    fn the_declared_length_must_equal_the_datagram_length() {
        // Shorter datagram than declared, and trailing octets after the message.
        assert_eq!(
            decode_slice(&[0x03, 0x17]),
            Err(DecodeError::LengthMismatch {
                declared: 3,
                actual: 2
            })
        );
        let err = decode_slice(&[0x02, 0x17, 0x02, 0x17]).unwrap_err();
        assert_eq!(
            err,
            DecodeError::LengthMismatch {
                declared: 2,
                actual: 4
            }
        );
        assert!(err.to_string().contains("§5.2.1 Length"), "{err}");
        assert_eq!(
            decode_slice(&[0x01, 0x01, 0x00, 0x0C, 0x00]),
            Err(DecodeError::LengthMismatch {
                declared: 256,
                actual: 5
            })
        );
    }

    #[test]
    fn the_long_form_is_accepted_below_256_octets_and_re_encoded_short() {
        let long = [0x01, 0x00, 0x06, 0x0F, 0x00, 0x01];
        let msg = decode_slice(&long).unwrap();
        assert_eq!(msg, Message::PubRec { msg_id: 1 });
        assert_eq!(encode_vec(&msg).unwrap(), vec![0x04, 0x0F, 0x00, 0x01]);
    }

    #[test]
    fn reserved_message_types_are_unknown() {
        for msg_type in (0x00..=0xFFu8).filter(|t| msg_type::name(*t).is_none()) {
            let err = decode_slice(&[0x02, msg_type]).unwrap_err();
            assert_eq!(err, DecodeError::UnknownType(msg_type));
            assert!(err.to_string().contains("§5.2.2 MsgType"), "{err}");
        }
        let reserved: Vec<u8> = (0x00..=0xFFu8)
            .filter(|t| msg_type::name(*t).is_none())
            .collect();
        assert_eq!(&reserved[..4], &[0x03, 0x11, 0x19, 0x1E]);
        assert_eq!(reserved.len(), 256 - 28);
        assert_eq!(reserved.last(), Some(&0xFF));
    }

    #[test]
    fn body_errors_cite_the_message_section() {
        let err = decode_slice(&[0x03, 0x0C, 0x00]).unwrap_err();
        assert!(err.to_string().contains("§5.4.12 PUBLISH"), "{err}");
        let err = decode_slice(&[0x05, 0x0B, 0, 0, 0]).unwrap_err();
        assert!(err.to_string().contains("§5.4.11 REGACK"), "{err}");
    }

    #[test]
    fn every_message_knows_its_type_and_name() {
        let msg = Message::PubComp { msg_id: 1 };
        assert_eq!(msg.msg_type(), msg_type::PUBCOMP);
        assert_eq!(msg.name(), "PUBCOMP");
    }

    #[test]
    fn encode_appends_after_existing_content() {
        let mut buf = BytesMut::from(&b"xy"[..]);
        encode(&Message::PingResp, &mut buf).unwrap();
        encode(&Message::PubRel { msg_id: 2 }, &mut buf).unwrap();
        assert_eq!(&buf[..], &[b'x', b'y', 0x02, 0x17, 0x04, 0x10, 0x00, 0x02]);
        let long = Message::WillMsg {
            payload: Bytes::from(vec![9u8; 300]),
        };
        encode(&long, &mut buf).unwrap();
        assert_eq!(&buf[8..12], &[0x01, 0x01, 0x30, 0x09]);
        assert_eq!(buf.len(), 8 + 304);
        assert_eq!(decode_slice(&buf[8..]), Ok(long));
    }

    #[test]
    fn decoded_fields_share_the_datagram_buffer() {
        let datagram = Bytes::from(vec![0x08, 0x0C, 0x00, 0x00, 0x01, 0x00, 0x00, b'!']);
        let start = datagram.as_ptr() as usize;
        let Ok(Message::Publish { data, .. }) = decode(datagram) else {
            panic!("not a PUBLISH");
        };
        assert_eq!(data.as_ptr() as usize, start + 7);
    }
}
