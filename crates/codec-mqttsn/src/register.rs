//! Topic registration: REGISTER (§5.4.10) and REGACK (§5.4.11).
//!
//! ```text
//! REGISTER  Length MsgType TopicId(2) MsgId(2) TopicName(n)   6+n octets
//! REGACK    Length MsgType TopicId(2) MsgId(2) ReturnCode(1)  7 octets
//! ```
//!
//! A wildcard or empty TopicName decodes: refusing it (REGACK 0x03) is the gateway's job.

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use crate::error::DecodeError;
use crate::message::Message;
use crate::msg_type::{REGACK, REGISTER};
use crate::publish::decode_topic_ack;
use crate::wire::{field, Reader};

/// REGISTER fixed fields: TopicId, MsgId.
const REGISTER_FIXED: usize = 4;

/// Decodes a REGISTER variable part.
pub(crate) fn decode_register(body: Bytes) -> Result<Message, DecodeError> {
    let mut r = Reader::new(REGISTER, body, REGISTER_FIXED, None)?;
    Ok(Message::Register {
        topic_id: r.u16()?,
        msg_id: r.u16()?,
        topic_name: r.rest_utf8(field::TOPIC_NAME)?,
    })
}

/// Writes a REGISTER variable part.
pub(crate) fn put_register(buf: &mut BytesMut, topic_id: u16, msg_id: u16, name: &ByteString) {
    buf.put_u16(topic_id);
    buf.put_u16(msg_id);
    buf.put_slice(name.as_bytes());
}

/// Decodes a REGACK variable part.
pub(crate) fn decode_regack(body: Bytes) -> Result<Message, DecodeError> {
    let (topic_id, msg_id, rc) = decode_topic_ack(REGACK, body)?;
    Ok(Message::RegAck {
        topic_id,
        msg_id,
        rc,
    })
}

#[cfg(test)]
mod tests {
    use crate::test_util::*;
    use crate::*;

    #[test]
    fn register_matches_section_5_4_10() {
        let msg = Message::Register {
            topic_id: 0,
            msg_id: 0x0102,
            topic_name: "sensors/temp".into(),
        };
        let mut wire = vec![0x12, 0x0A, 0x00, 0x00, 0x01, 0x02];
        wire.extend_from_slice(b"sensors/temp");
        assert_wire(&msg, &wire);
    }

    #[test]
    fn register_from_the_gateway_carries_the_assigned_id() {
        let msg = Message::Register {
            topic_id: 1025,
            msg_id: 7,
            topic_name: "a/#".into(),
        };
        assert_wire(
            &msg,
            &[0x09, 0x0A, 0x04, 0x01, 0x00, 0x07, b'a', b'/', b'#'],
        );
    }

    #[test]
    fn register_topic_name_must_be_utf8() {
        assert_eq!(
            decode_slice(&[0x08, 0x0A, 0x00, 0x00, 0x00, 0x01, 0xE2, 0x82]),
            Err(DecodeError::InvalidUtf8 {
                msg_type: 0x0A,
                field: "TopicName (§5.3.12)"
            })
        );
    }

    #[test]
    fn register_without_its_ids_is_too_short() {
        assert!(matches!(
            decode_slice(&[0x05, 0x0A, 0x00, 0x00, 0x00]),
            Err(DecodeError::BodyTooShort { min: 4, .. })
        ));
    }

    #[test]
    fn regack_matches_section_5_4_11() {
        let msg = Message::RegAck {
            topic_id: 1025,
            msg_id: 0x0102,
            rc: ReturnCode::Accepted,
        };
        assert_wire(&msg, &[0x07, 0x0B, 0x04, 0x01, 0x01, 0x02, 0x00]);
        assert!(matches!(
            decode_slice(&[0x08, 0x0B, 0x04, 0x01, 0x01, 0x02, 0x00, 0x00]),
            Err(DecodeError::BodyTooLong { max: 5, .. })
        ));
    }
}
