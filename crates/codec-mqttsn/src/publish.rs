//! Publishing: PUBLISH (§5.4.12), PUBACK (§5.4.13) and PUBREC / PUBREL / PUBCOMP (§5.4.14).
//!
//! ```text
//! PUBLISH                   Length MsgType Flags(1) TopicId(2) MsgId(2) Data(n)   7+n octets
//! PUBACK                    Length MsgType TopicId(2) MsgId(2) ReturnCode(1)      7 octets
//! PUBREC / PUBREL / PUBCOMP Length MsgType MsgId(2)                               4 octets
//! ```
//!
//! The TopicId field of PUBLISH is always two octets; the TopicIdType of its Flags says
//! whether they are a normal id, a pre-defined id or a short topic name. The reserved type
//! is decoded too (as [`Topic::Reserved`]) so the gateway can answer PUBACK 0x03.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::flags::{Flags, TopicIdType};
use crate::message::{Message, ReturnCode, Topic};
use crate::msg_type::PUBLISH;
use crate::wire::Reader;

/// PUBLISH fixed fields: Flags, TopicId, MsgId.
const PUBLISH_FIXED: usize = 5;
/// PUBACK / REGACK variable part: TopicId, MsgId, ReturnCode.
const TOPIC_ACK_LEN: usize = 5;

/// Decodes a PUBLISH variable part.
pub(crate) fn decode_publish(body: Bytes) -> Result<Message, DecodeError> {
    let mut r = Reader::new(PUBLISH, body, PUBLISH_FIXED, None)?;
    let flags = Flags::from_byte(r.u8()?);
    let field = r.take(2)?;
    let octets = [field[0], field[1]];
    let topic = match flags.topic_id_type {
        TopicIdType::Normal => Topic::Id(u16::from_be_bytes(octets)),
        TopicIdType::Predefined => Topic::Predefined(u16::from_be_bytes(octets)),
        TopicIdType::Short => Topic::Short(octets),
        TopicIdType::Reserved => Topic::Reserved(field),
    };
    Ok(Message::Publish {
        flags,
        topic,
        msg_id: r.u16()?,
        data: r.rest(),
    })
}

/// Writes a PUBLISH variable part after checking that the topic fits the TopicId field and
/// agrees with the Flags' TopicIdType.
pub(crate) fn put_publish(
    buf: &mut BytesMut,
    flags: Flags,
    topic: &Topic,
    msg_id: u16,
    data: &Bytes,
) -> Result<(), EncodeError> {
    check_topic_id_type(flags, topic)?;
    let field = match topic {
        Topic::Id(id) | Topic::Predefined(id) => id.to_be_bytes(),
        Topic::Short(octets) => *octets,
        Topic::Reserved(raw) => match raw[..] {
            [hi, lo] => [hi, lo],
            _ => return Err(EncodeError::TopicLength(raw.len())),
        },
        Topic::Name(_) => return Err(EncodeError::TopicNotAllowed { msg_type: PUBLISH }),
    };
    buf.put_u8(flags.to_byte());
    buf.put_slice(&field);
    buf.put_u16(msg_id);
    buf.put_slice(data);
    Ok(())
}

/// Refuses a message whose Flags announce another TopicIdType than its topic has.
pub(crate) fn check_topic_id_type(flags: Flags, topic: &Topic) -> Result<(), EncodeError> {
    if flags.topic_id_type == topic.id_type() {
        Ok(())
    } else {
        Err(EncodeError::TopicIdTypeMismatch {
            flags: flags.topic_id_type,
            topic: topic.id_type(),
        })
    }
}

/// Decodes the TopicId, MsgId, ReturnCode layout shared by PUBACK and REGACK.
pub(crate) fn decode_topic_ack(
    msg_type: u8,
    body: Bytes,
) -> Result<(u16, u16, ReturnCode), DecodeError> {
    let mut r = Reader::exact(msg_type, body, TOPIC_ACK_LEN)?;
    Ok((r.u16()?, r.u16()?, ReturnCode::from_byte(r.u8()?)))
}

/// Writes the TopicId, MsgId, ReturnCode layout shared by PUBACK and REGACK.
pub(crate) fn put_topic_ack(buf: &mut BytesMut, topic_id: u16, msg_id: u16, rc: ReturnCode) {
    buf.put_u16(topic_id);
    buf.put_u16(msg_id);
    buf.put_u8(rc.to_byte());
}

/// Decodes a MsgId-only variable part (PUBREC, PUBREL, PUBCOMP, UNSUBACK).
pub(crate) fn decode_msg_id(msg_type: u8, body: Bytes) -> Result<u16, DecodeError> {
    Reader::exact(msg_type, body, 2)?.u16()
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
    fn publish_with_a_normal_topic_id_matches_section_5_4_12() {
        let msg = Message::Publish {
            flags: Flags {
                dup: true,
                retain: true,
                ..flags(QoS::AtLeastOnce, TopicIdType::Normal)
            },
            topic: Topic::Id(0x0401),
            msg_id: 0x1234,
            data: Bytes::from_static(b"21.5"),
        };
        assert_wire(
            &msg,
            &[
                0x0B, 0x0C, 0xB0, 0x04, 0x01, 0x12, 0x34, b'2', b'1', b'.', b'5',
            ],
        );
    }

    #[test]
    fn publish_with_a_predefined_topic_id() {
        let msg = Message::Publish {
            flags: flags(QoS::MinusOne, TopicIdType::Predefined),
            topic: Topic::Predefined(1),
            msg_id: 0,
            data: Bytes::from_static(b"x"),
        };
        assert_wire(&msg, &[0x08, 0x0C, 0x61, 0x00, 0x01, 0x00, 0x00, b'x']);
    }

    #[test]
    fn publish_with_a_short_topic_name() {
        let msg = Message::Publish {
            flags: flags(QoS::ExactlyOnce, TopicIdType::Short),
            topic: Topic::Short(*b"ab"),
            msg_id: 9,
            data: Bytes::new(),
        };
        assert_wire(&msg, &[0x07, 0x0C, 0x42, b'a', b'b', 0x00, 0x09]);
    }

    #[test]
    fn publish_with_the_reserved_topic_type_stays_decodable() {
        let msg = Message::Publish {
            flags: flags(QoS::AtLeastOnce, TopicIdType::Reserved),
            topic: Topic::Reserved(Bytes::from_static(&[0xAB, 0xCD])),
            msg_id: 1,
            data: Bytes::from_static(b"?"),
        };
        assert_wire(&msg, &[0x08, 0x0C, 0x23, 0xAB, 0xCD, 0x00, 0x01, b'?']);
    }

    #[test]
    fn publish_of_255_octets_uses_the_short_form_and_256_the_long_form() {
        let short = Message::Publish {
            flags: Flags::default(),
            topic: Topic::Id(1),
            msg_id: 0,
            data: Bytes::from(vec![7u8; 248]),
        };
        let wire = encode_vec(&short).unwrap();
        assert_eq!(wire.len(), 255);
        assert_eq!(&wire[..2], &[0xFF, 0x0C]);
        assert_eq!(decode_slice(&wire), Ok(short));

        let long = Message::Publish {
            flags: Flags::default(),
            topic: Topic::Id(1),
            msg_id: 0,
            data: Bytes::from(vec![7u8; 249]),
        };
        let wire = encode_vec(&long).unwrap();
        // 249 data + 5 fixed + 4 header = 258: 1 + 2 + 1 would not fit in one octet.
        assert_eq!(wire.len(), 258);
        assert_eq!(&wire[..4], &[0x01, 0x01, 0x02, 0x0C]);
        assert_eq!(decode_slice(&wire), Ok(long));
    }

    #[test]
    fn publish_up_to_65535_octets_encodes_and_one_more_does_not() {
        let biggest = Message::Publish {
            flags: Flags::default(),
            topic: Topic::Id(1),
            msg_id: 0,
            data: Bytes::from(vec![0u8; 0xFFFF - 9]),
        };
        let wire = encode_vec(&biggest).unwrap();
        assert_eq!(wire.len(), 0xFFFF);
        assert_eq!(decode_slice(&wire), Ok(biggest));
        let too_big = Message::Publish {
            flags: Flags::default(),
            topic: Topic::Id(1),
            msg_id: 0,
            data: Bytes::from(vec![0u8; 0xFFFF - 8]),
        };
        let mut buf = bytes::BytesMut::from(&b"kept"[..]);
        assert_eq!(
            encode(&too_big, &mut buf),
            Err(EncodeError::TooLong(0x10000))
        );
        assert_eq!(&buf[..], b"kept", "nothing written on error");
    }

    #[test]
    fn publish_without_its_fixed_fields_is_too_short() {
        assert_eq!(
            decode_slice(&[0x06, 0x0C, 0x00, 0x00, 0x01, 0x00]),
            Err(DecodeError::BodyTooShort {
                msg_type: 0x0C,
                len: 4,
                min: 5
            })
        );
    }

    #[test]
    fn publish_topic_must_agree_with_the_flags() {
        let msg = Message::Publish {
            flags: flags(QoS::AtMostOnce, TopicIdType::Normal),
            topic: Topic::Short(*b"ab"),
            msg_id: 0,
            data: Bytes::new(),
        };
        assert_eq!(
            encode_vec(&msg),
            Err(EncodeError::TopicIdTypeMismatch {
                flags: TopicIdType::Normal,
                topic: TopicIdType::Short
            })
        );
        let msg = Message::Publish {
            flags: flags(QoS::AtMostOnce, TopicIdType::Normal),
            topic: Topic::Name("a/b".into()),
            msg_id: 0,
            data: Bytes::new(),
        };
        assert_eq!(
            encode_vec(&msg),
            Err(EncodeError::TopicNotAllowed { msg_type: 0x0C })
        );
        let msg = Message::Publish {
            flags: flags(QoS::AtMostOnce, TopicIdType::Reserved),
            topic: Topic::Reserved(Bytes::from_static(b"abc")),
            msg_id: 0,
            data: Bytes::new(),
        };
        assert_eq!(encode_vec(&msg), Err(EncodeError::TopicLength(3)));
    }

    #[test]
    fn puback_matches_section_5_4_13() {
        let msg = Message::PubAck {
            topic_id: 0x0401,
            msg_id: 0x1234,
            rc: ReturnCode::InvalidTopicId,
        };
        assert_wire(&msg, &[0x07, 0x0D, 0x04, 0x01, 0x12, 0x34, 0x02]);
        assert!(matches!(
            decode_slice(&[0x06, 0x0D, 0x04, 0x01, 0x12, 0x34]),
            Err(DecodeError::BodyTooShort { min: 5, .. })
        ));
    }

    #[test]
    fn qos2_acknowledgements_match_section_5_4_14() {
        assert_wire(
            &Message::PubRec { msg_id: 0x0102 },
            &[0x04, 0x0F, 0x01, 0x02],
        );
        assert_wire(
            &Message::PubRel { msg_id: 0x0102 },
            &[0x04, 0x10, 0x01, 0x02],
        );
        assert_wire(
            &Message::PubComp { msg_id: 0x0102 },
            &[0x04, 0x0E, 0x01, 0x02],
        );
        assert!(matches!(
            decode_slice(&[0x03, 0x0F, 0x01]),
            Err(DecodeError::BodyTooShort { min: 2, .. })
        ));
        assert!(matches!(
            decode_slice(&[0x05, 0x10, 0x01, 0x02, 0x03]),
            Err(DecodeError::BodyTooLong { max: 2, .. })
        ));
    }
}
