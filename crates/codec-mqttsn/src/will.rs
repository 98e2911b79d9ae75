//! Will handling: WILLTOPICREQ (§5.4.6), WILLTOPIC (§5.4.7), WILLMSGREQ (§5.4.8),
//! WILLMSG (§5.4.9), WILLTOPICUPD (§5.4.22), WILLMSGUPD (§5.4.23), WILLTOPICRESP (§5.4.24)
//! and WILLMSGRESP (§5.4.25).
//!
//! ```text
//! WILLTOPICREQ / WILLMSGREQ      Length MsgType                      2 octets
//! WILLTOPIC / WILLTOPICUPD       Length MsgType Flags(1) WillTopic(n) 3+n octets
//!   empty form                   Length MsgType                      2 octets (deletes the will)
//! WILLMSG / WILLMSGUPD           Length MsgType WillMsg(n)           2+n octets
//! WILLTOPICRESP / WILLMSGRESP    Length MsgType ReturnCode(1)        3 octets
//! ```

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use crate::error::{DecodeError, EncodeError};
use crate::flags::Flags;
use crate::wire::{field, Reader};

/// Decodes a variable part that must be empty (WILLTOPICREQ, WILLMSGREQ, PINGRESP).
pub(crate) fn decode_empty(msg_type: u8, body: Bytes) -> Result<(), DecodeError> {
    Reader::exact(msg_type, body, 0).map(|_| ())
}

/// Decodes a WILLTOPIC / WILLTOPICUPD variable part: nothing (the empty form, with
/// `Flags::default()`), or Flags followed by the topic.
pub(crate) fn decode_will_topic(
    msg_type: u8,
    body: Bytes,
) -> Result<(Flags, Option<ByteString>), DecodeError> {
    let mut r = Reader::new(msg_type, body, 0, None)?;
    if r.remaining() == 0 {
        return Ok((Flags::default(), None));
    }
    let flags = Flags::from_byte(r.u8()?);
    let topic = r.rest_utf8(field::WILL_TOPIC)?;
    Ok((flags, Some(topic)))
}

/// Writes a WILLTOPIC / WILLTOPICUPD variable part; refuses flags on the empty form, which
/// has no Flags field to carry them.
pub(crate) fn put_will_topic(
    buf: &mut BytesMut,
    flags: Flags,
    topic: &Option<ByteString>,
) -> Result<(), EncodeError> {
    match topic {
        Some(topic) => {
            buf.put_u8(flags.to_byte());
            buf.put_slice(topic.as_bytes());
            Ok(())
        }
        None if flags == Flags::default() => Ok(()),
        None => Err(EncodeError::FlagsWithoutWillTopic),
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::*;
    use crate::*;
    use bytes::Bytes;

    #[test]
    fn will_requests_are_bare_headers() {
        assert_wire(&Message::WillTopicReq, &[0x02, 0x06]);
        assert_wire(&Message::WillMsgReq, &[0x02, 0x08]);
        assert_eq!(
            decode_slice(&[0x03, 0x06, 0x00]),
            Err(DecodeError::BodyTooLong {
                msg_type: 0x06,
                len: 1,
                max: 0
            })
        );
    }

    #[test]
    fn willtopic_matches_section_5_4_7() {
        let msg = Message::WillTopic {
            flags: Flags {
                qos: QoS::AtLeastOnce,
                retain: true,
                ..Flags::default()
            },
            topic: Some("dev/1/lost".into()),
        };
        let mut wire = vec![0x0D, 0x07, 0x30];
        wire.extend_from_slice(b"dev/1/lost");
        assert_wire(&msg, &wire);
    }

    #[test]
    fn empty_willtopic_is_two_octets_and_has_no_topic() {
        let msg = Message::WillTopic {
            flags: Flags::default(),
            topic: None,
        };
        assert_wire(&msg, &[0x02, 0x07]);
        // Flags with an empty topic is a different message: it keeps its flags.
        assert_wire(
            &Message::WillTopic {
                flags: Flags::from_byte(0x20),
                topic: Some("".into()),
            },
            &[0x03, 0x07, 0x20],
        );
    }

    #[test]
    fn empty_willtopic_cannot_carry_flags() {
        let msg = Message::WillTopic {
            flags: Flags::from_byte(0x20),
            topic: None,
        };
        assert_eq!(encode_vec(&msg), Err(EncodeError::FlagsWithoutWillTopic));
        let msg = Message::WillTopicUpd {
            flags: Flags::from_byte(0x10),
            topic: None,
        };
        assert_eq!(encode_vec(&msg), Err(EncodeError::FlagsWithoutWillTopic));
    }

    #[test]
    fn willtopic_must_be_utf8() {
        assert_eq!(
            decode_slice(&[0x04, 0x07, 0x00, 0xFF]),
            Err(DecodeError::InvalidUtf8 {
                msg_type: 0x07,
                field: "WillTopic (§5.3.14)"
            })
        );
        assert_eq!(
            decode_slice(&[0x04, 0x1A, 0x00, 0xFF]),
            Err(DecodeError::InvalidUtf8 {
                msg_type: 0x1A,
                field: "WillTopic (§5.3.14)"
            })
        );
    }

    #[test]
    fn willmsg_matches_section_5_4_9_and_may_be_binary() {
        let msg = Message::WillMsg {
            payload: Bytes::from_static(&[0x00, 0xFF, b'x']),
        };
        assert_wire(&msg, &[0x05, 0x09, 0x00, 0xFF, b'x']);
        assert_wire(
            &Message::WillMsg {
                payload: Bytes::new(),
            },
            &[0x02, 0x09],
        );
    }

    #[test]
    fn willtopicupd_matches_section_5_4_22() {
        let msg = Message::WillTopicUpd {
            flags: Flags {
                qos: QoS::ExactlyOnce,
                ..Flags::default()
            },
            topic: Some("w".into()),
        };
        assert_wire(&msg, &[0x04, 0x1A, 0x40, b'w']);
        assert_wire(
            &Message::WillTopicUpd {
                flags: Flags::default(),
                topic: None,
            },
            &[0x02, 0x1A],
        );
    }

    #[test]
    fn willmsgupd_matches_section_5_4_23() {
        let msg = Message::WillMsgUpd {
            payload: Bytes::from_static(b"bye"),
        };
        assert_wire(&msg, &[0x05, 0x1C, b'b', b'y', b'e']);
    }

    #[test]
    fn will_responses_carry_a_return_code() {
        assert_wire(
            &Message::WillTopicResp {
                rc: ReturnCode::Accepted,
            },
            &[0x03, 0x1B, 0x00],
        );
        assert_wire(
            &Message::WillMsgResp {
                rc: ReturnCode::NotSupported,
            },
            &[0x03, 0x1D, 0x03],
        );
        assert!(matches!(
            decode_slice(&[0x02, 0x1B]),
            Err(DecodeError::BodyTooShort { min: 1, .. })
        ));
        assert!(matches!(
            decode_slice(&[0x04, 0x1D, 0x00, 0x00]),
            Err(DecodeError::BodyTooLong { max: 1, .. })
        ));
    }
}
