//! Subscriptions: SUBSCRIBE (§5.4.15), SUBACK (§5.4.16), UNSUBSCRIBE (§5.4.17) and
//! UNSUBACK (§5.4.18).
//!
//! ```text
//! SUBSCRIBE / UNSUBSCRIBE  Length MsgType Flags(1) MsgId(2) TopicName(n) or TopicId(2)  5+n octets
//! SUBACK                   Length MsgType Flags(1) TopicId(2) MsgId(2) ReturnCode(1)   8 octets
//! UNSUBACK                 Length MsgType MsgId(2)                                     4 octets
//! ```
//!
//! The TopicIdType of the Flags octet says what follows MsgId: a topic name or filter
//! (normal, any length, UTF-8), a pre-defined topic id or a short topic name (both exactly two
//! octets), or, for the reserved type, raw octets the gateway answers with SUBACK 0x03.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::flags::{Flags, TopicIdType};
use crate::message::{Message, ReturnCode, Topic};
use crate::msg_type::SUBACK;
use crate::publish::check_topic_id_type;
use crate::wire::{field, Reader};

/// SUBSCRIBE / UNSUBSCRIBE fixed fields: Flags, MsgId.
const FIXED: usize = 3;
/// SUBACK variable part: Flags, TopicId, MsgId, ReturnCode.
const SUBACK_LEN: usize = 6;

/// Decodes a SUBSCRIBE or UNSUBSCRIBE variable part into (flags, msg_id, topic).
pub(crate) fn decode_subscription(
    msg_type: u8,
    body: Bytes,
) -> Result<(Flags, u16, Topic), DecodeError> {
    let mut r = Reader::new(msg_type, body, FIXED, None)?;
    let flags = Flags::from_byte(r.u8()?);
    let msg_id = r.u16()?;
    let id_type = flags.topic_id_type;
    let two_octets = |raw: Bytes| match raw[..] {
        [hi, lo] => Ok([hi, lo]),
        _ => Err(DecodeError::TopicLength {
            msg_type,
            id_type,
            len: raw.len(),
        }),
    };
    let topic = match id_type {
        TopicIdType::Normal => Topic::Name(r.rest_utf8(field::TOPIC_NAME)?),
        TopicIdType::Predefined => Topic::Predefined(u16::from_be_bytes(two_octets(r.rest())?)),
        TopicIdType::Short => Topic::Short(two_octets(r.rest())?),
        TopicIdType::Reserved => Topic::Reserved(r.rest()),
    };
    Ok((flags, msg_id, topic))
}

/// Writes a SUBSCRIBE or UNSUBSCRIBE variable part after checking the topic against the
/// Flags' TopicIdType; a registered topic id ([`Topic::Id`]) cannot be subscribed to.
pub(crate) fn put_subscription(
    buf: &mut BytesMut,
    msg_type: u8,
    flags: Flags,
    msg_id: u16,
    topic: &Topic,
) -> Result<(), EncodeError> {
    check_topic_id_type(flags, topic)?;
    if let Topic::Id(_) = topic {
        return Err(EncodeError::TopicNotAllowed { msg_type });
    }
    buf.put_u8(flags.to_byte());
    buf.put_u16(msg_id);
    match topic {
        Topic::Name(name) => buf.put_slice(name.as_bytes()),
        Topic::Predefined(id) | Topic::Id(id) => buf.put_u16(*id),
        Topic::Short(octets) => buf.put_slice(octets),
        Topic::Reserved(raw) => buf.put_slice(raw),
    }
    Ok(())
}

/// Decodes a SUBACK variable part.
pub(crate) fn decode_suback(body: Bytes) -> Result<Message, DecodeError> {
    let mut r = Reader::exact(SUBACK, body, SUBACK_LEN)?;
    Ok(Message::SubAck {
        flags: Flags::from_byte(r.u8()?),
        topic_id: r.u16()?,
        msg_id: r.u16()?,
        rc: ReturnCode::from_byte(r.u8()?),
    })
}

/// Writes a SUBACK variable part.
pub(crate) fn put_suback(
    buf: &mut BytesMut,
    flags: Flags,
    topic_id: u16,
    msg_id: u16,
    rc: ReturnCode,
) {
    buf.put_u8(flags.to_byte());
    buf.put_u16(topic_id);
    buf.put_u16(msg_id);
    buf.put_u8(rc.to_byte());
}

#[cfg(test)]
mod tests {
    use crate::test_util::*;
    use crate::*;
    use bytes::Bytes;

    fn flags(qos: QoS, topic_id_type: TopicIdType) -> Flags {
        Flags {
            qos,
            topic_id_type,
            ..Flags::default()
        }
    }

    #[test]
    fn subscribe_to_a_topic_filter_matches_section_5_4_15() {
        let msg = Message::Subscribe {
            flags: flags(QoS::AtLeastOnce, TopicIdType::Normal),
            msg_id: 0x0102,
            topic: Topic::Name("sensors/+/temp".into()),
        };
        let mut wire = vec![0x13, 0x12, 0x20, 0x01, 0x02];
        wire.extend_from_slice(b"sensors/+/temp");
        assert_wire(&msg, &wire);
    }

    #[test]
    fn subscribe_to_a_predefined_topic_id() {
        let msg = Message::Subscribe {
            flags: flags(QoS::ExactlyOnce, TopicIdType::Predefined),
            msg_id: 3,
            topic: Topic::Predefined(0x0203),
        };
        assert_wire(&msg, &[0x07, 0x12, 0x41, 0x00, 0x03, 0x02, 0x03]);
    }

    #[test]
    fn subscribe_to_a_short_topic_name() {
        let msg = Message::Subscribe {
            flags: Flags {
                dup: true,
                ..flags(QoS::AtMostOnce, TopicIdType::Short)
            },
            msg_id: 4,
            topic: Topic::Short(*b"tt"),
        };
        assert_wire(&msg, &[0x07, 0x12, 0x82, 0x00, 0x04, b't', b't']);
    }

    #[test]
    fn subscribe_with_the_reserved_topic_type_keeps_the_raw_octets() {
        let msg = Message::Subscribe {
            flags: flags(QoS::AtMostOnce, TopicIdType::Reserved),
            msg_id: 5,
            topic: Topic::Reserved(Bytes::from_static(&[0xFF, 0x00, 0x01])),
        };
        assert_wire(&msg, &[0x08, 0x12, 0x03, 0x00, 0x05, 0xFF, 0x00, 0x01]);
    }

    #[test]
    fn short_and_predefined_topics_must_be_exactly_two_octets() {
        for (id_type_bits, id_type) in [(0x02, TopicIdType::Short), (0x01, TopicIdType::Predefined)]
        {
            for topic in [&b"a"[..], &b"abc"[..], &b""[..]] {
                for msg_type in [0x12, 0x14] {
                    let mut wire = vec![5 + topic.len() as u8, msg_type, id_type_bits, 0, 1];
                    wire.extend_from_slice(topic);
                    let err = decode_slice(&wire).unwrap_err();
                    assert_eq!(
                        err,
                        DecodeError::TopicLength {
                            msg_type,
                            id_type,
                            len: topic.len()
                        }
                    );
                    assert!(err.to_string().contains("§5.3.11"), "{err}");
                }
            }
        }
    }

    #[test]
    fn subscribe_topic_name_must_be_utf8() {
        assert_eq!(
            decode_slice(&[0x06, 0x12, 0x00, 0x00, 0x01, 0x80]),
            Err(DecodeError::InvalidUtf8 {
                msg_type: 0x12,
                field: "TopicName (§5.3.12)"
            })
        );
    }

    #[test]
    fn subscribe_without_flags_and_msg_id_is_too_short() {
        assert_eq!(
            decode_slice(&[0x04, 0x12, 0x00, 0x00]),
            Err(DecodeError::BodyTooShort {
                msg_type: 0x12,
                len: 2,
                min: 3
            })
        );
    }

    #[test]
    fn a_registered_topic_id_cannot_be_subscribed_to() {
        let msg = Message::Subscribe {
            flags: Flags::default(),
            msg_id: 1,
            topic: Topic::Id(1),
        };
        assert_eq!(
            encode_vec(&msg),
            Err(EncodeError::TopicNotAllowed { msg_type: 0x12 })
        );
        let msg = Message::Unsubscribe {
            flags: Flags::default(),
            msg_id: 1,
            topic: Topic::Predefined(1),
        };
        assert_eq!(
            encode_vec(&msg),
            Err(EncodeError::TopicIdTypeMismatch {
                flags: TopicIdType::Normal,
                topic: TopicIdType::Predefined
            })
        );
    }

    #[test]
    fn suback_matches_section_5_4_16() {
        let msg = Message::SubAck {
            flags: flags(QoS::AtLeastOnce, TopicIdType::Normal),
            topic_id: 1025,
            msg_id: 0x0102,
            rc: ReturnCode::Accepted,
        };
        assert_wire(&msg, &[0x08, 0x13, 0x20, 0x04, 0x01, 0x01, 0x02, 0x00]);
        assert!(matches!(
            decode_slice(&[0x07, 0x13, 0x20, 0x04, 0x01, 0x01, 0x02]),
            Err(DecodeError::BodyTooShort { min: 6, .. })
        ));
    }

    #[test]
    fn unsubscribe_matches_section_5_4_17() {
        let msg = Message::Unsubscribe {
            flags: Flags::default(),
            msg_id: 0x0102,
            topic: Topic::Name("a/b".into()),
        };
        assert_wire(&msg, &[0x08, 0x14, 0x00, 0x01, 0x02, b'a', b'/', b'b']);
        let msg = Message::Unsubscribe {
            flags: flags(QoS::AtMostOnce, TopicIdType::Short),
            msg_id: 2,
            topic: Topic::Short(*b"zz"),
        };
        assert_wire(&msg, &[0x07, 0x14, 0x02, 0x00, 0x02, b'z', b'z']);
        let msg = Message::Unsubscribe {
            flags: flags(QoS::AtMostOnce, TopicIdType::Predefined),
            msg_id: 3,
            topic: Topic::Predefined(7),
        };
        assert_wire(&msg, &[0x07, 0x14, 0x01, 0x00, 0x03, 0x00, 0x07]);
    }

    #[test]
    fn unsuback_matches_section_5_4_18() {
        assert_wire(
            &Message::UnsubAck { msg_id: 0x0102 },
            &[0x04, 0x15, 0x01, 0x02],
        );
        assert!(matches!(
            decode_slice(&[0x02, 0x15]),
            Err(DecodeError::BodyTooShort { min: 2, .. })
        ));
    }
}
