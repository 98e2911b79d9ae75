//! Connection setup: CONNECT (§5.4.4) and CONNACK (§5.4.5).
//!
//! ```text
//! CONNECT  Length MsgType Flags(1) ProtocolId(1) Duration(2) ClientId(n)   6+n octets
//! CONNACK  Length MsgType ReturnCode(1)                                    3 octets
//! ```

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use crate::error::DecodeError;
use crate::flags::Flags;
use crate::message::{Message, ReturnCode};
use crate::msg_type::{CONNACK, CONNECT};
use crate::wire::{field, Reader};

/// CONNECT fixed fields: Flags, ProtocolId, Duration.
const CONNECT_FIXED: usize = 4;

/// Decodes a CONNECT variable part. An empty ClientId is accepted: whether to assign one
/// or refuse is the gateway's decision, as in MQTT.
pub(crate) fn decode_connect(body: Bytes) -> Result<Message, DecodeError> {
    let mut r = Reader::new(CONNECT, body, CONNECT_FIXED, None)?;
    Ok(Message::Connect {
        flags: Flags::from_byte(r.u8()?),
        protocol_id: r.u8()?,
        duration: r.u16()?,
        client_id: r.rest_utf8(field::CLIENT_ID)?,
    })
}

/// Writes a CONNECT variable part.
pub(crate) fn put_connect(
    buf: &mut BytesMut,
    flags: Flags,
    protocol_id: u8,
    duration: u16,
    client_id: &ByteString,
) {
    buf.put_u8(flags.to_byte());
    buf.put_u8(protocol_id);
    buf.put_u16(duration);
    buf.put_slice(client_id.as_bytes());
}

/// Decodes a one-octet ReturnCode variable part (CONNACK, WILLTOPICRESP, WILLMSGRESP).
pub(crate) fn decode_return_code(msg_type: u8, body: Bytes) -> Result<ReturnCode, DecodeError> {
    let mut r = Reader::exact(msg_type, body, 1)?;
    Ok(ReturnCode::from_byte(r.u8()?))
}

/// Decodes a CONNACK variable part.
pub(crate) fn decode_connack(body: Bytes) -> Result<Message, DecodeError> {
    Ok(Message::ConnAck {
        rc: decode_return_code(CONNACK, body)?,
    })
}

#[cfg(test)]
mod tests {
    use crate::test_util::*;
    use crate::*;

    #[test]
    fn connect_matches_section_5_4_4() {
        let msg = Message::Connect {
            flags: Flags {
                will: true,
                clean_session: true,
                ..Flags::default()
            },
            protocol_id: 0x01,
            duration: 60,
            client_id: "sensor-1".into(),
        };
        assert_wire(
            &msg,
            &[
                0x0E, 0x04, 0x0C, 0x01, 0x00, 0x3C, b's', b'e', b'n', b's', b'o', b'r', b'-', b'1',
            ],
        );
    }

    #[test]
    fn connect_keeps_an_empty_client_id_and_any_protocol_id() {
        let msg = Message::Connect {
            flags: Flags::default(),
            protocol_id: 0x02,
            duration: 0,
            client_id: "".into(),
        };
        assert_wire(&msg, &[0x06, 0x04, 0x00, 0x02, 0x00, 0x00]);
    }

    #[test]
    fn connect_without_its_fixed_fields_is_too_short() {
        assert_eq!(
            decode_slice(&[0x05, 0x04, 0x04, 0x01, 0x00]),
            Err(DecodeError::BodyTooShort {
                msg_type: 0x04,
                len: 3,
                min: 4
            })
        );
    }

    #[test]
    fn connect_client_id_must_be_utf8() {
        let err = decode_slice(&[0x08, 0x04, 0x04, 0x01, 0x00, 0x0A, 0xC3, 0x28]).unwrap_err();
        assert_eq!(
            err,
            DecodeError::InvalidUtf8 {
                msg_type: 0x04,
                field: "ClientId (§5.3.1)"
            }
        );
        assert!(err.to_string().contains("§5.4.4 CONNECT"), "{err}");
    }

    #[test]
    fn connack_matches_section_5_4_5_for_every_return_code() {
        for (octet, rc) in [
            (0x00, ReturnCode::Accepted),
            (0x01, ReturnCode::Congestion),
            (0x02, ReturnCode::InvalidTopicId),
            (0x03, ReturnCode::NotSupported),
            (0x80, ReturnCode::Other(0x80)),
            (0xFF, ReturnCode::Other(0xFF)),
        ] {
            assert_wire(&Message::ConnAck { rc }, &[0x03, 0x05, octet]);
        }
        assert!(matches!(
            decode_slice(&[0x04, 0x05, 0x00, 0x00]),
            Err(DecodeError::BodyTooLong { max: 1, .. })
        ));
    }
}
