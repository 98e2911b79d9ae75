//! Keep-alive and wake-up: PINGREQ (§5.4.19) and PINGRESP (§5.4.20).
//!
//! ```text
//! PINGREQ   Length MsgType ClientId(n, optional)   2+n octets
//! PINGRESP  Length MsgType                         2 octets
//! ```

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;

use crate::error::{DecodeError, EncodeError};
use crate::message::Message;
use crate::msg_type::PINGREQ;
use crate::wire::{field, Reader};

/// Decodes a PINGREQ variable part: empty, or the ClientId of a client waking up.
pub(crate) fn decode_pingreq(body: Bytes) -> Result<Message, DecodeError> {
    let mut r = Reader::new(PINGREQ, body, 0, None)?;
    let client_id = if r.remaining() == 0 {
        None
    } else {
        Some(r.rest_utf8(field::CLIENT_ID)?)
    };
    Ok(Message::PingReq { client_id })
}

/// Writes a PINGREQ variable part; `Some("")` is refused as it would read back as `None`.
pub(crate) fn put_pingreq(
    buf: &mut BytesMut,
    client_id: &Option<ByteString>,
) -> Result<(), EncodeError> {
    match client_id {
        Some(id) if id.is_empty() => Err(EncodeError::EmptyPingClientId),
        Some(id) => {
            buf.put_slice(id.as_bytes());
            Ok(())
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::*;
    use crate::*;

    #[test]
    fn pingreq_matches_section_5_4_19_with_and_without_client_id() {
        assert_wire(&Message::PingReq { client_id: None }, &[0x02, 0x16]);
        assert_wire(
            &Message::PingReq {
                client_id: Some("c1".into()),
            },
            &[0x04, 0x16, b'c', b'1'],
        );
    }

    #[test]
    fn pingreq_client_id_must_be_utf8() {
        assert_eq!(
            decode_slice(&[0x03, 0x16, 0xC0]),
            Err(DecodeError::InvalidUtf8 {
                msg_type: 0x16,
                field: "ClientId (§5.3.1)"
            })
        );
    }

    #[test]
    fn pingreq_with_an_empty_client_id_is_refused_on_encode() {
        let msg = Message::PingReq {
            client_id: Some("".into()),
        };
        assert_eq!(encode_vec(&msg), Err(EncodeError::EmptyPingClientId));
    }

    #[test]
    fn pingresp_is_a_bare_header() {
        assert_wire(&Message::PingResp, &[0x02, 0x17]);
        assert_eq!(
            decode_slice(&[0x03, 0x17, 0x00]),
            Err(DecodeError::BodyTooLong {
                msg_type: 0x17,
                len: 1,
                max: 0
            })
        );
    }
}
