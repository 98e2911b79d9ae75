//! DISCONNECT (§5.4.21): a bare header, or with a Duration when the client goes to sleep.
//!
//! ```text
//! DISCONNECT  Length MsgType Duration(2, optional)   2 or 4 octets
//! ```

use bytes::Bytes;

use crate::error::DecodeError;
use crate::message::Message;
use crate::msg_type::DISCONNECT;
use crate::wire::Reader;

/// Decodes a DISCONNECT variable part: nothing, or exactly a two-octet Duration.
pub(crate) fn decode_disconnect(body: Bytes) -> Result<Message, DecodeError> {
    let mut r = Reader::new(DISCONNECT, body, 0, Some(2))?;
    let duration = match r.remaining() {
        0 => None,
        1 => {
            return Err(DecodeError::BodyTooShort {
                msg_type: DISCONNECT,
                len: 1,
                min: 2,
            })
        }
        _ => Some(r.u16()?),
    };
    Ok(Message::Disconnect { duration })
}

#[cfg(test)]
mod tests {
    use crate::test_util::*;
    use crate::*;

    #[test]
    fn disconnect_matches_section_5_4_21_with_and_without_duration() {
        assert_wire(&Message::Disconnect { duration: None }, &[0x02, 0x18]);
        assert_wire(
            &Message::Disconnect {
                duration: Some(300),
            },
            &[0x04, 0x18, 0x01, 0x2C],
        );
        // A zero duration is still a sleep request on the wire (4 octets).
        assert_wire(
            &Message::Disconnect { duration: Some(0) },
            &[0x04, 0x18, 0x00, 0x00],
        );
    }

    #[test]
    fn disconnect_with_a_partial_or_oversized_duration_is_malformed() {
        assert_eq!(
            decode_slice(&[0x03, 0x18, 0x01]),
            Err(DecodeError::BodyTooShort {
                msg_type: 0x18,
                len: 1,
                min: 2
            })
        );
        assert_eq!(
            decode_slice(&[0x05, 0x18, 0x00, 0x01, 0x02]),
            Err(DecodeError::BodyTooLong {
                msg_type: 0x18,
                len: 3,
                max: 2
            })
        );
    }
}
